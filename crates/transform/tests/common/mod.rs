//! Helpers shared by the script tests: a table with a column of every portable type, profiles, and
//! running a transformation on one profile.
#![allow(dead_code)]

use chrono::{TimeZone, Utc};
use serde_json::Value as Json;
use sluice_core::{Column, ColumnType, Profile, TableDescription, Value};
use sluice_transform::{Output, Transform};

pub fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column {
        name: name.into(),
        native_type: format!("{ty:?}"),
        nullable,
        ty: Some(ty),
        has_default: false,
    }
}

/// A table with a column of every portable type.
pub fn table() -> TableDescription {
    TableDescription {
        name: "t".into(),
        columns: vec![
            col("id", ColumnType::Text { max_len: None }, false),
            col("s", ColumnType::Text { max_len: None }, true),
            col("short", ColumnType::Text { max_len: Some(3) }, true),
            col(
                "i",
                ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                },
                true,
            ),
            col(
                "small",
                ColumnType::Int {
                    bits: 16,
                    unsigned: false,
                },
                true,
            ),
            col("f", ColumnType::Float { bits: 64 }, true),
            col(
                "d",
                ColumnType::Decimal {
                    precision: Some(30),
                    scale: Some(10),
                },
                true,
            ),
            col("b", ColumnType::Bool, true),
            col("dt", ColumnType::Timestamp { with_tz: true }, true),
            col("day", ColumnType::Date, true),
            col("tm", ColumnType::Time, true),
            col("u", ColumnType::Uuid, true),
            col("j", ColumnType::Json, true),
            col(
                "arr",
                ColumnType::Array {
                    element: Box::new(ColumnType::Text { max_len: None }),
                },
                true,
            ),
            Column {
                name: "geo".into(),
                native_type: "geometry".into(),
                nullable: true,
                ty: None,
                has_default: false,
            },
        ],
        keys: vec![vec!["id".into()]],
        has_primary_key: true,
        issues: vec![],
    }
}

pub fn profile(doc: Json) -> Profile {
    Profile {
        id: "p1".into(),
        updated_at: Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap(),
        doc: doc.as_object().unwrap().clone(),
    }
}

/// Runs the script on one profile; the row as column → value.
pub fn run(t: &Transform, doc: Json) -> Result<Option<Vec<(String, Value)>>, String> {
    let mut ev = t.evaluator().unwrap();
    match ev.eval(&profile(doc), Utc::now()) {
        Ok(Output::Skip) => Ok(None),
        Ok(Output::Row(values)) => Ok(Some(t.columns().iter().cloned().zip(values).collect())),
        Err(e) => Err(e.to_string()),
    }
}

pub fn get(row: &[(String, Value)], name: &str) -> Value {
    row.iter().find(|(c, _)| c == name).unwrap().1.clone()
}
