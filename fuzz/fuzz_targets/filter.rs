//! The filter parser on any bytes: no panic; a filter it accepts renders SQL for both dialects, reads
//! back from its own wire form to the same filter, and gives one answer per profile whichever way the
//! profile is handed over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use sluice_core::filter::{Filter, SqlDialect};

fuzz_target!(|data: &[u8]| {
    let Ok(wire) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    let schema = sluice_fuzz::schema();
    let Ok(filter) = Filter::parse(&wire, &schema) else {
        return;
    };
    let _ = filter.to_sql(SqlDialect::Sqlite, 1);
    let _ = filter.to_sql(SqlDialect::Postgres, 3);
    let _ = filter.summary();
    let _ = filter.properties();
    let again = Filter::parse(&filter.to_wire(), &schema).expect("a filter's own wire form parses");
    assert_eq!(again.to_wire(), filter.to_wire(), "the wire form is stable");
    for p in sluice_fuzz::profiles() {
        assert_eq!(
            filter.matches(&p),
            filter.matches_doc(&p.id, &p.doc),
            "one answer for profile {}",
            p.id
        );
        assert_eq!(filter.matches(&p), again.matches(&p));
    }
});
