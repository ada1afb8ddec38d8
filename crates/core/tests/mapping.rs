//! End-to-end: a Customer Model, a destination table, a mapping compiled against both and evaluated on
//! profiles, as a pipeline run does it.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use sluice_core::mapping::{functions, ColumnError, CompiledMapping, Type};
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::schema::SchemaWire;
use sluice_core::{Column, ColumnType, Profile, Schema, TableDescription, Value};

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "vip", "type": "boolean"},
        {"name": "signup", "type": "datetime"},
        {"name": "birthday", "type": "string"},
        {"name": "tier", "type": "string"},
        {"name": "tags", "type": "array(string)"},
        {"name": "prefs", "type": "json"},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "zip", "type": "string"}
        ]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn col(name: &str, native: &str, ty: Option<ColumnType>, nullable: bool) -> Column {
    Column {
        name: name.into(),
        native_type: native.into(),
        nullable,
        ty,
        has_default: false,
    }
}

fn table() -> TableDescription {
    TableDescription {
        name: "customers".into(),
        columns: vec![
            col(
                "customer_id",
                "varchar(64)",
                Some(ColumnType::Text { max_len: Some(64) }),
                false,
            ),
            col(
                "email",
                "varchar(20)",
                Some(ColumnType::Text { max_len: Some(20) }),
                true,
            ),
            col(
                "full_name",
                "text",
                Some(ColumnType::Text { max_len: None }),
                true,
            ),
            col(
                "age",
                "smallint",
                Some(ColumnType::Int {
                    bits: 16,
                    unsigned: false,
                }),
                true,
            ),
            col(
                "ltv",
                "numeric(8,2)",
                Some(ColumnType::Decimal {
                    precision: Some(8),
                    scale: Some(2),
                }),
                true,
            ),
            col("is_vip", "boolean", Some(ColumnType::Bool), false),
            col(
                "signed_up",
                "timestamptz",
                Some(ColumnType::Timestamp { with_tz: true }),
                true,
            ),
            col("signup_day", "date", Some(ColumnType::Date), true),
            col("birthday", "date", Some(ColumnType::Date), true),
            col(
                "tier",
                "enum('gold','silver')",
                Some(ColumnType::Enum {
                    values: vec!["gold".into(), "silver".into()],
                }),
                true,
            ),
            col(
                "tags",
                "text[]",
                Some(ColumnType::Array {
                    element: Box::new(ColumnType::Text { max_len: None }),
                }),
                true,
            ),
            col("prefs", "jsonb", Some(ColumnType::Json), true),
            col(
                "city",
                "varchar(5)",
                Some(ColumnType::Text { max_len: Some(5) }),
                true,
            ),
            col(
                "synced_at",
                "timestamp",
                Some(ColumnType::Timestamp { with_tz: false }),
                true,
            ),
            col("mac", "macaddr", None, true),
            col(
                "untouched",
                "text",
                Some(ColumnType::Text { max_len: None }),
                true,
            ),
        ],
        keys: vec![vec!["customer_id".into()]],
        has_primary_key: true,
        issues: vec!["column `mac` has unsupported type `macaddr`".into()],
        rules: Default::default(),
    }
}

fn mapping(pairs: &[(&str, &str)]) -> OrderedMap {
    OrderedMap(
        pairs
            .iter()
            .map(|(c, e)| (c.to_string(), e.to_string()))
            .collect(),
    )
}

fn run_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap()
}

fn profile(id: &str, props: serde_json::Value) -> Profile {
    let mut input = props.as_object().unwrap().clone();
    input.insert("_id".into(), json!(id));
    let (id, doc) = schema().validate_profile(&input).unwrap();
    Profile {
        id,
        updated_at: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
        doc,
    }
}

fn full_mapping() -> OrderedMap {
    mapping(&[
        ("customer_id", "_id"),
        ("email", "lower(trim(email))"),
        ("full_name", r#"initcap(first_name) " " initcap(last_name)"#),
        ("age", "age"),
        ("ltv", "ltv"),
        ("is_vip", "coalesce(vip, false)"),
        ("signed_up", "signup"),
        ("signup_day", "signup"),
        ("birthday", "birthday"),
        ("tier", "tier"),
        ("tags", "tags"),
        ("prefs", "prefs"),
        ("city", "address.city"),
        ("synced_at", "now()"),
    ])
}

#[test]
fn a_mapping_computes_typed_rows() {
    let m = CompiledMapping::compile(&full_mapping(), &schema(), &table()).unwrap();
    assert_eq!(m.columns[0], "customer_id");
    assert_eq!(m.columns.len(), 14);
    let p = profile(
        "c1",
        json!({
            "email": "  Ada@Example.COM ", "first_name": "ada", "last_name": "LOVELACE", "age": 36,
            "ltv": "1234.5", "vip": true, "signup": "2024-05-13T23:30:00-04:00", "birthday": "1815-12-10",
            "tier": "gold", "tags": ["a", "b"], "prefs": {"news": true}, "address": {"city": "Turin"}
        }),
    );
    let row = m.eval(&p, run_start()).unwrap();
    let signup = Utc.with_ymd_and_hms(2024, 5, 14, 3, 30, 0).unwrap();
    assert_eq!(
        row,
        vec![
            Value::String("c1".into()),
            Value::String("ada@example.com".into()),
            Value::String("Ada Lovelace".into()),
            Value::Int(36),
            Value::Decimal(Decimal::from_str("1234.50").unwrap()),
            Value::Bool(true),
            Value::DateTime(signup),
            // The UTC date of 23:30 in New York is the next day.
            Value::Date(NaiveDate::from_ymd_opt(2024, 5, 14).unwrap()),
            Value::Date(NaiveDate::from_ymd_opt(1815, 12, 10).unwrap()),
            Value::String("gold".into()),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            Value::json(json!({"news": true})),
            Value::String("Turin".into()),
            Value::DateTime(run_start()),
        ]
    );
    let Value::Decimal(ltv) = &row[4] else {
        panic!()
    };
    assert_eq!(ltv.to_string(), "1234.50");
    let mut props = m.properties();
    props.sort();
    assert_eq!(
        props,
        [
            "_id",
            "address.city",
            "age",
            "birthday",
            "email",
            "first_name",
            "last_name",
            "ltv",
            "prefs",
            "signup",
            "tags",
            "tier",
            "vip"
        ]
    );
    let types: Vec<(&str, &Type)> = m.types().collect();
    assert_eq!(types[2], ("full_name", &Type::String));
}

#[test]
fn missing_properties_become_nulls_and_fallbacks() {
    let m = CompiledMapping::compile(&full_mapping(), &schema(), &table()).unwrap();
    let row = m.eval(&profile("c2", json!({})), run_start()).unwrap();
    assert_eq!(row[0], Value::String("c2".into()));
    assert_eq!(row[1], Value::Null); // lower(trim(null))
    assert_eq!(row[2], Value::String(" ".into())); // concatenation reads nulls as ""
    assert_eq!(row[3], Value::Null);
    assert_eq!(row[5], Value::Bool(false)); // coalesce
    assert!(row[6..13].iter().all(Value::is_null), "{row:?}");
}

#[test]
fn bad_values_fail_one_row_naming_the_column() {
    let m = CompiledMapping::compile(&full_mapping(), &schema(), &table()).unwrap();
    let cases = [
        (json!({"email": "a-very-long-address@example.com"}), "email", "the text is longer than the column's limit of 20 characters; shorten it, e.g. with left(…, 20)"),
        (json!({"address": {"city": "Zürich"}}), "city", "the text is longer than the column's limit of 5 characters; shorten it, e.g. with left(…, 5)"),
        (json!({"age": 40000}), "age", "out of range for a 16-bit integer column (-32768 to 32767)"),
        (json!({"ltv": "1000000.00"}), "ltv", "the number does not fit the column's decimal(8,2): at most 6 digits before the decimal point"),
        (json!({"birthday": "10/12/1815"}), "birthday", "the text is not a date (YYYY-MM-DD)"),
        (json!({"tier": "bronze"}), "tier", "the text is not one of the column's values (gold, silver)"),
    ];
    for (props, column, message) in cases {
        let err = m.eval(&profile("c3", props), run_start()).unwrap_err();
        assert_eq!(
            err,
            ColumnError {
                column: column.into(),
                message: message.into()
            }
        );
    }
    // Multi-byte characters count once: five characters fit a varchar(5) whatever their bytes.
    let row = m
        .eval(
            &profile("c4", json!({"address": {"city": "Zürch"}})),
            run_start(),
        )
        .unwrap();
    assert_eq!(row[12], Value::String("Zürch".into()));
    let row = m
        .eval(
            &profile("c5", json!({"address": {"city": "😀😀😀😀😀"}})),
            run_start(),
        )
        .unwrap();
    assert_eq!(row[12], Value::String("😀😀😀😀😀".into()));
}

#[test]
fn null_into_a_not_null_column_fails_the_row() {
    let m = CompiledMapping::compile(
        &mapping(&[("customer_id", "_id"), ("is_vip", "vip")]),
        &schema(),
        &table(),
    )
    .unwrap();
    let err = m.eval(&profile("c1", json!({})), run_start()).unwrap_err();
    assert_eq!(err.column, "is_vip");
    assert!(
        err.message.starts_with("does not accept null"),
        "{}",
        err.message
    );
    assert_eq!(
        err.to_string(),
        "column `is_vip`: does not accept null; give a fallback with coalesce(…, …)"
    );
    assert_eq!(
        m.eval(&profile("c1", json!({"vip": false})), run_start())
            .unwrap()[1],
        Value::Bool(false)
    );
}

#[test]
fn run_time_function_errors_are_located() {
    let m = CompiledMapping::compile(
        &mapping(&[("customer_id", "_id"), ("age", "to_int(birthday)")]),
        &schema(),
        &table(),
    )
    .unwrap();
    let err = m
        .eval(&profile("c1", json!({"birthday": "soon"})), run_start())
        .unwrap_err();
    assert_eq!(
        err,
        ColumnError {
            column: "age".into(),
            message: "at 1: to_int: the text is not an integer".into()
        }
    );
}

#[test]
fn every_problem_is_reported_by_column() {
    let m = mapping(&[
        ("customer_id", "_id"),
        ("nope", "email"),
        ("emial", "email"),
        ("mac", "email"),
        ("age", "vip"),
        ("full_name", "lowr(email)"),
        ("city", "lower(adress.city"),
        ("signed_up", "age"),
        ("is_vip", "null"),
        ("tier", "\"bronze\""),
        ("email", "tags"),
        ("tags", "first_name"),
        ("ltv", "\"12.345\""),
        ("birthday", "upper(age) lower(vip)"),
    ]);
    let e = CompiledMapping::compile(&m, &schema(), &table()).unwrap_err();
    let get = |c: &str| {
        e.get(c)
            .unwrap_or_else(|| panic!("no error for {c}: {e}"))
            .join(" | ")
    };
    assert_eq!(
        get("nope"),
        "column `nope` does not exist in table `customers`"
    );
    assert_eq!(
        get("emial"),
        "column `emial` does not exist in table `customers`; did you mean `email`?"
    );
    assert_eq!(
        get("mac"),
        "column `mac` has type `macaddr`, which Sluice cannot write; leave it out of the mapping"
    );
    assert_eq!(get("age"), "a boolean cannot be written to column `age` of type `smallint`; convert it, e.g. if(…, 1, 0)");
    assert_eq!(
        get("full_name"),
        "at 1: unknown function `lowr`; did you mean `lower`?"
    );
    assert_eq!(
        get("city"),
        "at 18: missing `)` to close the call of `lower` opened at 1"
    );
    assert_eq!(get("signed_up"), "an int cannot be written to column `signed_up` of type `timestamptz`; to read Unix seconds, use to_datetime(…)");
    assert_eq!(get("is_vip"), "column `is_vip` does not accept null");
    assert_eq!(get("tier"), "the value cannot be written to column `tier`: the text is not one of the column's values (gold, silver)");
    // Arrays become JSON text in a text column, so only the length is checked when the row is written.
    assert!(e.get("email").is_none());
    assert_eq!(
        get("tags"),
        "a string cannot be written to column `tags` of type `text[]`"
    );
    assert_eq!(
        get("ltv"),
        "the value cannot be written to column `ltv`: the number has more than 2 digits after the decimal point (the column's scale); round it explicitly, e.g. with round(…, 2)"
    );
    assert_eq!(
        get("birthday"),
        "at 7: `upper` expects a string as argument 1, got int; convert it with to_string(…) | at 18: `lower` expects a string as argument 1, got boolean; convert it with to_string(…)"
    );
    assert_eq!(e.len(), 13, "{e}");
}

#[test]
fn strings_into_typed_columns_are_parsed_per_row() {
    let m = CompiledMapping::compile(
        &mapping(&[
            ("customer_id", "_id"),
            ("birthday", "birthday"),
            ("age", "address.zip"),
            ("is_vip", "tier"),
        ]),
        &schema(),
        &table(),
    )
    .unwrap();
    let row = m
        .eval(
            &profile(
                "c1",
                json!({"birthday": "2000-02-29", "address": {"zip": "10121"}, "tier": "yes"}),
            ),
            run_start(),
        )
        .unwrap();
    assert_eq!(
        row[1],
        Value::Date(NaiveDate::from_ymd_opt(2000, 2, 29).unwrap())
    );
    assert_eq!(row[2], Value::Int(10121));
    assert_eq!(row[3], Value::Bool(true));
}

#[test]
fn constants_and_json_sub_paths() {
    let m = CompiledMapping::compile(
        &mapping(&[
            ("customer_id", "\"fixed\""),
            ("tier", "\"silver\""),
            ("email", "prefs.contact.email"),
            ("age", "prefs.age"),
        ]),
        &schema(),
        &table(),
    )
    .unwrap();
    let p = profile(
        "c1",
        json!({"prefs": {"contact": {"email": "x@y.z"}, "age": "41"}}),
    );
    let row = m.eval(&p, run_start()).unwrap();
    assert_eq!(
        row,
        vec![
            Value::String("fixed".into()),
            Value::String("silver".into()),
            Value::String("x@y.z".into()),
            Value::Int(41)
        ]
    );
}

#[test]
fn now_is_the_same_for_every_profile_of_a_run() {
    let m = CompiledMapping::compile(
        &mapping(&[("customer_id", "_id"), ("synced_at", "now()")]),
        &schema(),
        &table(),
    )
    .unwrap();
    let a = m.eval(&profile("a", json!({})), run_start()).unwrap();
    let b = m.eval(&profile("b", json!({})), run_start()).unwrap();
    assert_eq!(a[1], b[1]);
    assert_eq!(a[1], Value::DateTime(run_start()));
}

#[test]
fn the_function_list_serves_autocompletion() {
    let list = functions();
    let lower = list.iter().find(|f| f.name == "lower").unwrap();
    assert_eq!(lower.signature, "lower(text: string) -> string");
    assert_eq!(lower.category, "text");
    let as_json = serde_json::to_value(lower).unwrap();
    assert_eq!(as_json["name"], "lower");
}

#[test]
fn many_profiles_evaluate_without_surprises() {
    let m = CompiledMapping::compile(&full_mapping(), &schema(), &table()).unwrap();
    let profiles: Vec<Profile> = (0..2000)
        .map(|i| profile(&format!("c{i}"), json!({"email": format!("U{i}@X.IO"), "first_name": "a", "age": i % 100, "vip": i % 2 == 0})))
        .collect();
    let mut emails = 0;
    for p in &profiles {
        let row = m.eval(p, run_start()).unwrap();
        if let Value::String(e) = &row[1] {
            assert_eq!(e, &e.to_lowercase());
            emails += 1;
        }
    }
    assert_eq!(emails, 2000);
}

/// A run reads stored documents lazily (`sluice_core::raw`); the rows must be exactly those of the parsed
/// profile, whatever the document holds — including values validation would not let in.
#[test]
fn a_document_read_lazily_gives_the_rows_of_the_parsed_profile() {
    let m = CompiledMapping::compile(&full_mapping(), &schema(), &table()).unwrap();
    let docs = [
        r#"{"email": " Ada@Example.COM ", "first_name": "ada", "last_name": "L", "age": 36, "ltv": "1234.5",
            "vip": true, "signup": "2024-05-13T23:30:00-04:00", "birthday": "1815-12-10", "tier": "gold",
            "tags": ["a", "b"], "prefs": {"news": true}, "address": {"city": "Turin", "zip": "10100"}}"#,
        // Escapes in values and keys, keys in another order, a key twice (the last wins), extra keys.
        r#"{"tier": "silver", "unused": [1, {"x": [2, 3]}], "l\u0061st_name": "O\"Brien\u00e9\n",
            "first_name": "\ud83d\ude00 \u05e9\u05dc\u05d5\u05dd", "email": "a@b.c", "email": "X@Y.Z",
            "address": {"zip": "1", "city": "Z\u00fcrich", "city": "Bern"}}"#,
        // Wrong types everywhere: each must go through the same conversion and fail or not alike.
        r#"{"age": "36", "ltv": 12.5, "vip": "yes", "signup": "yesterday", "birthday": "1815-13-10",
            "tags": "a", "prefs": "text", "address": "Main street"}"#,
        r#"{"age": 36.0, "ltv": 7, "vip": 1, "signup": 1715600000, "birthday": 18151210,
            "tags": [1, null, "c"], "prefs": [1, 2], "address": null}"#,
        r#"{"age": -0, "ltv": "-0.005", "birthday": "  1815-12-10  ", "tier": "bronze"}"#,
        r#"{"age": 99999999999999999999, "ltv": "1e3", "first_name": null, "last_name": null,
            "address": {"city": null}}"#,
        r#"{"age": 12, "birthday": "+1815-12-10", "signup": "2024-05-13 23:30:00"}"#,
        // Arrays whose items the quick scan reads, or leaves to the parser.
        r#"{"tags": [ "x\"y" , ["n"], 5, {"k": "v"}, true ]}"#,
        r#"{"tags": ["\u00e9", "plain"]}"#,
        r#"{"tags": []}"#,
        "  {  }  ",
    ];
    for (i, text) in docs.iter().enumerate() {
        let raw = sluice_core::RawProfile {
            id: format!("c{i}"),
            updated_at: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            doc: text.to_string(),
        };
        let parsed = raw.parse().unwrap();
        let mut locator = m.locator();
        // Twice: the second time the locator goes by the key positions it learned.
        for _ in 0..2 {
            let located = locator.locate(&raw).unwrap();
            assert_eq!(
                format!("{:?}", m.eval_located(&located, run_start())),
                format!("{:?}", m.eval(&parsed, run_start())),
                "document {i}: {text}"
            );
        }
    }
}

/// Where names match as in Snowflake's SQL, a mapping names columns as its user writes them, and the
/// compiled mapping writes them under their stored names.
#[test]
fn names_resolve_by_the_tables_identifier_rule() {
    let text = Some(ColumnType::Text { max_len: None });
    let mut table = TableDescription {
        name: "CUSTOMERS".into(),
        columns: vec![
            col("CUSTOMER_ID", "VARCHAR(64)", text.clone(), false),
            col("MixedCase", "VARCHAR", text.clone(), true),
            col("EMAIL", "VARCHAR", text.clone(), true),
            col("Email", "VARCHAR", text.clone(), true),
        ],
        keys: vec![vec!["CUSTOMER_ID".into()]],
        has_primary_key: true,
        issues: vec![],
        rules: Default::default(),
    };
    let m = mapping(&[("customer_id", "_id"), ("\"MixedCase\"", "first_name")]);
    // Exact names elsewhere: the same mapping finds nothing.
    let e = CompiledMapping::compile(&m, &schema(), &table).unwrap_err();
    assert!(e.get("customer_id").is_some(), "{e}");

    table.rules.identifiers = sluice_core::IdentifierCase::UnquotedInsensitive;
    let compiled = CompiledMapping::compile(&m, &schema(), &table).unwrap();
    assert_eq!(compiled.columns, ["CUSTOMER_ID", "MixedCase"]);
    let row = compiled
        .eval(&profile("c1", json!({"first_name": "Ada"})), run_start())
        .unwrap();
    assert_eq!(
        row,
        [Value::String("c1".into()), Value::String("Ada".into())]
    );

    // A quoted name matches only its exact spelling; an unquoted one that fits two columns is refused.
    let e = CompiledMapping::compile(
        &mapping(&[("\"mixedcase\"", "first_name"), ("email", "email")]),
        &schema(),
        &table,
    )
    .unwrap_err();
    assert!(
        e.get("\"mixedcase\"").unwrap()[0].contains("does not exist"),
        "{e}"
    );
    let ambiguous = &e.get("email").unwrap()[0];
    assert!(ambiguous.contains("`EMAIL` and `Email`"), "{ambiguous}");
    // Two spellings of one column are one column mapped twice.
    let e = CompiledMapping::compile(
        &mapping(&[("customer_id", "_id"), ("Customer_Id", "email")]),
        &schema(),
        &table,
    )
    .unwrap_err();
    assert!(
        e.get("Customer_Id").unwrap()[0].contains("`CUSTOMER_ID` is mapped twice"),
        "{e}"
    );
}
