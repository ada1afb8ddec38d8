//! The mapping evaluator's size limits, with the hostile expressions that once took a server to gigabytes:
//! each level of a nested `replace(…, concat(…))` doubles the text, so a few hundred characters of
//! expression ask for more memory than any machine has. Each must fail its row quickly, naming the limit.
//!
//! A test binary of its own, so the peak memory it reads (`VmHWM`) is this file's alone.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;
use sluice_core::mapping::{CompiledMapping, MAX_ARRAY_ITEMS, MAX_ROW_BYTES, MAX_TEXT_BYTES};
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::schema::SchemaWire;
use sluice_core::{Column, ColumnType, Profile, Schema, TableDescription};

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "tags", "type": "array(string)"}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

/// A table of `n` unbounded text columns `c0`, `c1`, ….
fn table(n: usize) -> TableDescription {
    TableDescription {
        name: "t".into(),
        columns: (0..n)
            .map(|i| Column {
                name: format!("c{i}"),
                native_type: "text".into(),
                nullable: true,
                ty: Some(ColumnType::Text { max_len: None }),
                has_default: false,
            })
            .collect(),
        keys: vec![],
        has_primary_key: false,
        issues: vec![],
        rules: Default::default(),
    }
}

fn compile(exprs: &[String]) -> Result<CompiledMapping, sluice_core::FieldErrors> {
    let map = OrderedMap(
        exprs
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("c{i}"), e.clone()))
            .collect(),
    );
    CompiledMapping::compile(&map, &schema(), &table(exprs.len()))
}

fn profile(email: &str) -> Profile {
    let input = json!({"_id": "p1", "email": email});
    let (id, doc) = schema()
        .validate_profile(input.as_object().unwrap())
        .unwrap();
    Profile {
        id,
        updated_at: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
        doc,
    }
}

/// `levels` nested `replace(…, "a", concat("a", "a"))` around `email`, each doubling the `a`s, padded
/// with leading spaces to exactly `chars` characters.
fn doubling(levels: usize, chars: usize) -> String {
    let mut e = "email".to_string();
    for _ in 0..levels {
        e = format!(r#"replace({e},"a",concat("a","a"))"#);
    }
    assert!(
        e.len() <= chars,
        "{levels} levels take {} characters",
        e.len()
    );
    format!("{}{e}", " ".repeat(chars - e.len()))
}

/// Peak resident memory of this process so far, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn nested_replace_of_636_and_802_characters_fails_the_row_quickly_and_small() {
    // 300 `a`s doubled 21 times is 630 MB (the 636-character case); 26 times, 20 GB (the 802 one).
    let email = "a".repeat(300);
    let p = profile(&email);
    let now = Utc::now();
    for (levels, chars) in [(21, 636), (26, 802)] {
        let expr = doubling(levels, chars);
        assert_eq!(expr.chars().count(), chars);
        let m = compile(&[expr]).expect("the expression compiles: it depends on the profile");
        let started = Instant::now();
        let err = m.eval(&p, now).expect_err("the row must fail");
        let took = started.elapsed();
        assert_eq!(err.column, "c0");
        assert!(
            err.message
                .contains(&format!("over the limit of {MAX_TEXT_BYTES} bytes")),
            "{err}"
        );
        assert!(err.message.contains("replace"), "{err}");
        assert!(
            took < Duration::from_secs(2),
            "{chars} characters took {took:?}"
        );
    }
    if let Some(peak) = peak_rss() {
        assert!(
            peak < 200 << 20,
            "peak memory {} MB; the limits should keep it to a few",
            peak >> 20
        );
    }
}

#[test]
fn a_concatenation_over_the_text_limit_fails_its_row() {
    let p = profile(&"x".repeat(MAX_TEXT_BYTES / 2 + 1));
    for expr in [
        "email email",
        "concat(email, email)",
        r#"join(split(concat(email, "," , email), ","), "")"#,
    ] {
        let m = compile(&[expr.to_string()]).unwrap();
        let err = m.eval(&p, Utc::now()).expect_err(expr);
        assert!(err.message.contains("per text value"), "{expr}: {err}");
    }
    // Just under the limit is fine.
    let p = profile(&"x".repeat(MAX_TEXT_BYTES / 2));
    let m = compile(&["email email".to_string()]).unwrap();
    let row = m.eval(&p, Utc::now()).unwrap();
    assert_eq!(row[0].to_string().len(), MAX_TEXT_BYTES);
}

#[test]
fn an_array_over_the_element_limit_fails_its_row() {
    let p = profile(&"ab".repeat(MAX_ARRAY_ITEMS / 2 + 1));
    let m = compile(&[r#"join(split(email, ""), "-")"#.to_string()]).unwrap();
    let err = m.eval(&p, Utc::now()).unwrap_err();
    assert!(
        err.message
            .contains(&format!("over the limit of {MAX_ARRAY_ITEMS} elements")),
        "{err}"
    );
    // Exactly at the limit, the split is fine.
    let p = profile(&"ab".repeat(MAX_ARRAY_ITEMS / 2));
    let m = compile(&[r#"len(split(email, ""))"#.to_string()]).unwrap();
    assert!(m.eval(&p, Utc::now()).is_ok());
}

#[test]
fn a_row_building_more_than_its_total_fails_naming_the_row_limit() {
    // Each column builds just under 1 MiB; seventeen of them build more than the row's 16 MiB.
    let p = profile(&"x".repeat(MAX_TEXT_BYTES - 8));
    let columns = MAX_ROW_BYTES / MAX_TEXT_BYTES + 1;
    let exprs: Vec<String> = (0..columns).map(|_| "lower(email)".to_string()).collect();
    let m = compile(&exprs).unwrap();
    let err = m.eval(&p, Utc::now()).unwrap_err();
    assert!(err.message.contains("the limit per row"), "{err}");
    assert_eq!(err.column, format!("c{}", columns - 1), "{err}");
    // One column fewer fits, and the budget is per row: the next row starts afresh.
    let m = compile(&exprs[1..]).unwrap();
    assert!(m.eval(&p, Utc::now()).is_ok());
    assert!(m.eval(&p, Utc::now()).is_ok());
}

#[test]
fn constants_over_the_limit_are_refused_when_the_mapping_is_saved() {
    let mut e = format!("\"{}\"", "a".repeat(100));
    for _ in 0..20 {
        e = format!(r#"replace({e}, "a", "aa")"#);
    }
    let errors = compile(&[e]).unwrap_err();
    let text = format!("{errors:?}");
    assert!(text.contains("per text value"), "{text}");
}
