//! Profile JSON on any text, the two ways Sluice reads it: the API's check of an input profile
//! (`Schema::validate_profile`), and a run's lazy scan of a stored document (`raw::Locator`) against the
//! full parse. The scan must accept exactly the documents the parser accepts and give the same row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};
use sluice_core::mapping::CompiledMapping;
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::RawProfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = sluice_fuzz::schema();
    let now = sluice_fuzz::now();
    let mapping = OrderedMap(
        sluice_fuzz::MAPPING
            .iter()
            .map(|(c, e)| (c.to_string(), e.to_string()))
            .collect(),
    );
    let mapping = CompiledMapping::compile(&mapping, &schema, &sluice_fuzz::table())
        .expect("the fuzz mapping compiles");

    // As an input profile: validated and normalized, and the normalized form is stored as it would be.
    let mut docs = vec![text.to_string()];
    if let Ok(input) = serde_json::from_str::<Map<String, Json>>(text) {
        if let Ok((_, normalized)) = schema.validate_profile(&input) {
            docs.push(Json::Object(normalized).to_string());
        }
    }

    // As a stored document: the scan and the parser agree on every one.
    let mut locator = mapping.locator();
    for doc in docs {
        let raw = RawProfile {
            id: "p".into(),
            updated_at: now,
            doc,
        };
        let parsed = raw.parse();
        let located = locator.locate(&raw);
        match (&parsed, &located) {
            (Ok(profile), Ok(located)) => assert_eq!(
                mapping.eval(profile, now),
                mapping.eval_located(located, now),
                "the scan and the parser give the same row for {:?}",
                raw.doc
            ),
            (Err(_), Err(_)) => {}
            _ => panic!(
                "the scan ({}) and the parser ({}) disagree on {:?}",
                if located.is_ok() {
                    "accepts"
                } else {
                    "refuses"
                },
                if parsed.is_ok() { "accepts" } else { "refuses" },
                raw.doc
            ),
        }
    }
});
