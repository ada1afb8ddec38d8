//! Where a pipeline's column names meet a table: mapping columns, a script's `columns` list and the keys
//! of the objects it returns are names as the user writes them, which the table's identifier rule
//! resolves; rows come out under the stored names, which the dialect quotes.

use serde_json::json;
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::pipeline::Transformation;
use sluice_core::{ColumnType, IdentifierCase, Schema, TableDescription, TableRules, Value};
use sluice_transform::{Limits, Transform};

mod common;
use common::*;

/// A table as Snowflake describes one created with unquoted names, plus two quoted ones.
fn snowflake_table() -> TableDescription {
    let text = || ColumnType::Text { max_len: None };
    TableDescription {
        name: "CUSTOMERS".into(),
        columns: vec![
            col("CUSTOMER_ID", text(), false),
            col("FULL_NAME", text(), true),
            col("MixedCase", text(), true),
            col("EMAIL", text(), true),
            col("Email", text(), true),
        ],
        keys: vec![vec!["CUSTOMER_ID".into()]],
        has_primary_key: true,
        issues: vec![],
        rules: TableRules {
            identifiers: IdentifierCase::UnquotedInsensitive,
            ..TableRules::default()
        },
    }
}

fn schema() -> Schema {
    let wire = serde_json::from_value(json!({"properties": [{"name": "name", "type": "string"}]}))
        .unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn compile(
    transformation: Transformation,
    key: &str,
    table: &TableDescription,
) -> Result<Transform, sluice_core::FieldErrors> {
    Transform::compile(&transformation, key, &schema(), table, Limits::default())
}

fn mapping(pairs: &[(&str, &str)]) -> Transformation {
    Transformation::Mapping(OrderedMap(
        pairs
            .iter()
            .map(|(c, e)| (c.to_string(), e.to_string()))
            .collect(),
    ))
}

#[test]
fn a_mapping_names_columns_as_written_and_writes_stored_names() {
    let t = snowflake_table();
    let m = mapping(&[("customer_id", "_id"), ("Full_Name", "name")]);
    // The key may be spelled otherwise than in the mapping: both mean CUSTOMER_ID.
    for key in ["customer_id", "CUSTOMER_ID", "\"CUSTOMER_ID\""] {
        let compiled = compile(m.clone(), key, &t).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(compiled.columns(), ["CUSTOMER_ID", "FULL_NAME"]);
    }
    let row = run(
        &compile(m.clone(), "customer_id", &t).unwrap(),
        json!({"name": "Ada"}),
    )
    .unwrap()
    .unwrap();
    assert_eq!(get(&row, "FULL_NAME"), Value::String("Ada".into()));
    // A quoted key matches its exact spelling only, which no mapped column has.
    let e = compile(m, "\"customer_id\"", &t).unwrap_err();
    assert!(e.get("key").is_some(), "{e}");
    // An unquoted name of two columns is refused, naming both.
    let e = compile(
        mapping(&[("customer_id", "_id"), ("email", "name")]),
        "customer_id",
        &t,
    )
    .unwrap_err();
    let m = &e.get("transformation.mapping.email").unwrap()[0];
    assert!(m.contains("`EMAIL` and `Email`"), "{m}");
    // Exact names elsewhere, as before.
    let e = compile(mapping(&[("id", "_id"), ("S", "name")]), "id", &table()).unwrap_err();
    assert!(e.get("transformation.mapping.S").is_some(), "{e}");
}

#[test]
fn a_scripts_columns_and_returned_keys_resolve_by_the_tables_rule() {
    let t = snowflake_table();
    let script = |source: &str| Transformation::Javascript(source.into());
    let compiled = compile(
        script(
            r#"const columns = ["customer_id", "full_name", "\"MixedCase\""];
               function transform(p) {
                 return {customer_id: p._id, FULL_NAME: p.name, mixedcase: "m"};
               }"#,
        ),
        "CUSTOMER_ID",
        &t,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        compiled.columns(),
        ["CUSTOMER_ID", "FULL_NAME", "MixedCase"]
    );
    let row = run(&compiled, json!({"name": "Ada"})).unwrap().unwrap();
    assert_eq!(
        row,
        [
            ("CUSTOMER_ID".to_string(), Value::String("p1".into())),
            ("FULL_NAME".to_string(), Value::String("Ada".into())),
            ("MixedCase".to_string(), Value::String("m".into())),
        ]
    );

    // The list may not name a column twice under two spellings, nor a name of two columns.
    let e = compile(
        script(
            r#"const columns = ["customer_id", "CUSTOMER_ID", "email"];
               function transform(p) { return {}; }"#,
        ),
        "customer_id",
        &t,
    )
    .unwrap_err();
    let messages = e.get("transformation.javascript").unwrap().join(" | ");
    assert!(
        messages.contains("names column `CUSTOMER_ID` twice"),
        "{messages}"
    );
    assert!(messages.contains("`EMAIL` and `Email`"), "{messages}");
    // The key must be among the columns, however it is spelled.
    let e = compile(
        script(r#"const columns = ["full_name"]; function transform(p) { return {}; }"#),
        "customer_id",
        &t,
    )
    .unwrap_err();
    assert!(e.get("key").is_some(), "{e}");

    // Without a list every writable column is written, the two emails included: a returned key that
    // fits both fails its row naming them; quoted, it picks one.
    let all = |returned: &str| {
        let source =
            format!("function transform(p) {{ return {{CUSTOMER_ID: p._id, {returned}: 1}}; }}");
        let t = compile(script(&source), "customer_id", &t).unwrap();
        run(&t, json!({}))
    };
    let e = all("email").unwrap_err();
    assert!(e.contains("`EMAIL` and `Email`"), "{e}");
    assert!(
        all("EMAIL").is_err(),
        "an unquoted name matches whatever its case"
    );
    let row = all("'\"Email\"'").unwrap().unwrap();
    assert_eq!(get(&row, "Email"), Value::String("1".into()));
    assert_eq!(get(&row, "EMAIL"), Value::Null);
    let e = all("phone").unwrap_err();
    assert!(e.contains("does not exist in table `CUSTOMERS`"), "{e}");
}

#[test]
fn python_scripts_resolve_names_the_same_way() {
    let t = snowflake_table();
    let compiled = compile(
        Transformation::Python(
            "columns = ['customer_id', 'Full_Name']\n\
             def transform(p):\n    return {'customer_id': p['_id'], 'full_name': p.get('name')}\n"
                .into(),
        ),
        "customer_id",
        &t,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(compiled.columns(), ["CUSTOMER_ID", "FULL_NAME"]);
    let row = run(&compiled, json!({"name": "Ada"})).unwrap().unwrap();
    assert_eq!(get(&row, "FULL_NAME"), Value::String("Ada".into()));
}
