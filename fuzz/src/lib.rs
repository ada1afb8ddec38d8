//! What the fuzz targets share: a Customer Model with every kind of property, a table with a column of
//! each type, and profiles to evaluate against. Kept small and fixed, so that a finding reproduces from
//! its input alone.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value as Json};
use sluice_core::schema::SchemaWire;
use sluice_core::{Column, ColumnType, Profile, Schema, TableDescription};

pub fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "score", "type": "float"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "vip", "type": "boolean"},
        {"name": "signup", "type": "datetime"},
        {"name": "birthday", "type": "date"},
        {"name": "wake", "type": "time"},
        {"name": "ref", "type": "uuid"},
        {"name": "tags", "type": "array(string)"},
        {"name": "scores", "type": "array(int)"},
        {"name": "prefs", "type": "json"},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float"}]}
        ]}
    ]}))
    .expect("the fuzz model is valid");
    Schema::from_wire(&wire).expect("the fuzz model is valid")
}

/// A stored profile of [`schema`], as the profile store keeps it, for merges to go into and come from.
pub const STORED_DOC: &str = r#"{"email":"a@b.c","age":41,"score":1.5,"tags":["x","y"],"prefs":{"b":[1,{"c":null}],"a":"x"},"address":{"city":"Oslo","geo":{"lat":59.9}}}"#;

fn col(name: &str, ty: ColumnType) -> Column {
    Column {
        name: name.into(),
        native_type: name.into(),
        nullable: true,
        ty: Some(ty),
        has_default: false,
    }
}

/// A table whose columns take each mapped property of [`schema`].
pub fn table() -> TableDescription {
    TableDescription {
        name: "t".into(),
        columns: vec![
            col("c_email", ColumnType::Text { max_len: Some(40) }),
            col(
                "c_age",
                ColumnType::Int {
                    bits: 32,
                    unsigned: false,
                },
            ),
            col("c_score", ColumnType::Float { bits: 64 }),
            col(
                "c_ltv",
                ColumnType::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                },
            ),
            col("c_vip", ColumnType::Bool),
            col("c_signup", ColumnType::Timestamp { with_tz: true }),
            col("c_birthday", ColumnType::Date),
            col("c_wake", ColumnType::Time),
            col("c_ref", ColumnType::Uuid),
            col(
                "c_tags",
                ColumnType::Array {
                    element: Box::new(ColumnType::Text { max_len: None }),
                },
            ),
            col("c_prefs", ColumnType::Json),
            col("c_city", ColumnType::Text { max_len: None }),
            col("c_lat", ColumnType::Float { bits: 64 }),
        ],
        keys: vec![vec!["c_email".into()]],
        has_primary_key: true,
        issues: Vec::new(),
        rules: Default::default(),
    }
}

/// Each column of [`table`] with the expression that fills it.
pub const MAPPING: &[(&str, &str)] = &[
    ("c_email", "email"),
    ("c_age", "age"),
    ("c_score", "score"),
    ("c_ltv", "ltv"),
    ("c_vip", "vip"),
    ("c_signup", "signup"),
    ("c_birthday", "birthday"),
    ("c_wake", "wake"),
    ("c_ref", "ref"),
    ("c_tags", "tags"),
    ("c_prefs", "prefs"),
    ("c_city", "address.city"),
    ("c_lat", "address.geo.lat"),
];

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 8, 0, 0).unwrap()
}

pub fn profile(id: &str, doc: Map<String, Json>) -> Profile {
    Profile {
        id: id.into(),
        updated_at: now(),
        doc,
    }
}

/// A full profile, an empty one, and one of awkward values.
pub fn profiles() -> Vec<Profile> {
    let full = json!({"email": "Ana@Example.com", "age": 41, "score": 2.5, "ltv": "1234.50", "vip": true,
        "signup": "2024-05-13T15:30:00Z", "birthday": "1985-02-01", "wake": "07:30:00",
        "ref": "5f0c6f4e-2b9a-4a59-9d57-7a1f0b3c9e11", "tags": ["a", "b"], "scores": [1, 2],
        "prefs": {"x": [1, {"y": null}]}, "address": {"city": "São Paulo", "geo": {"lat": -23.5}}});
    let odd = json!({"email": "", "age": -9223372036854775808i64, "score": -0.0, "ltv": "-0.01",
        "vip": false, "tags": [], "scores": [], "prefs": null, "address": {"city": "\u{0}\u{ffff}"}});
    [("p1", full), ("p2", json!({})), ("p3", odd)]
        .into_iter()
        .map(|(id, d)| match d {
            Json::Object(m) => profile(id, m),
            _ => unreachable!(),
        })
        .collect()
}
