//! Profile JSON on any text, the ways Sluice reads it: the API's check of an input profile
//! (`Schema::validate_profile`, and `Schema::validate_text` straight from the text, which must agree with
//! `validate_owned` exactly), a merge of documents as text (`merge_profile_text`, against the merge of
//! maps), and a run's lazy scan of a stored document (`raw::Locator`) against the full parse. The scan
//! must accept exactly the documents the parser accepts and give the same row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};
use sluice_core::mapping::CompiledMapping;
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::schema::{merge_profile_changed, merge_profile_text};
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

    // Read from its text, as `POST /v1/profiles` does: the same outcome as the full validation.
    let full = schema.validate_text_fully(text);
    assert_eq!(
        schema.validate_text(text),
        full,
        "validate_text of {text:?}"
    );

    // Merged as text, both ways round with a stored profile: the same document and the same verdict
    // (changed or not) as merging maps, wherever both texts are objects that parse.
    if let Ok(Json::Object(obj)) = serde_json::from_str::<Json>(text) {
        let stored = sluice_fuzz::STORED_DOC;
        let stored_map: Map<String, Json> =
            serde_json::from_str(stored).expect("the fuzz stored document parses");
        for (into, update, into_text, update_text) in [
            (stored_map.clone(), obj.clone(), stored, text),
            (obj.clone(), stored_map, text, stored),
        ] {
            let mut merged = into;
            let changed = merge_profile_changed(&mut merged, update);
            let by_text = merge_profile_text(into_text, update_text)
                .unwrap_or_else(|e| panic!("merging {update_text:?} into {into_text:?}: {e}"));
            match by_text {
                Some(t) => {
                    assert!(
                        changed,
                        "text says changed, maps not: {update_text:?} into {into_text:?}"
                    );
                    let t: Json = serde_json::from_str(&t).expect("a merge writes JSON");
                    assert_eq!(
                        t,
                        Json::Object(merged),
                        "{update_text:?} into {into_text:?}"
                    );
                }
                None => assert!(
                    !changed,
                    "maps say changed, text not: {update_text:?} into {into_text:?}"
                ),
            }
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
