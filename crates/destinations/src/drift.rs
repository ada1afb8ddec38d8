//! Noticing a table that changed under Sluice: its identity, its row count, and its rows read back.
//!
//! The engine keeps, with a pipeline's sync state, the identity of the table it wrote
//! ([`Destination::table_identity`](crate::Destination::table_identity)); when the identity changes the
//! table was dropped and created again and nothing Sluice wrote can be trusted to be there. Each database
//! offers a different marker, chosen so that a drop and a create change it and ordinary writes do not:
//!
//! | database | identity | why |
//! |---|---|---|
//! | PostgreSQL | the table's OID | assigned at `CREATE`, kept by `TRUNCATE`, `VACUUM FULL` and `ALTER`; never reused while the server runs long enough to matter |
//! | MySQL/MariaDB | `information_schema.TABLES.CREATE_TIME` | set at `CREATE` (and by `TRUNCATE`, which InnoDB does by recreating the table); whole seconds, so a drop and create within one second keep it — the row count catches that case |
//! | ClickHouse | `system.tables.uuid` where the server has it (Atomic databases), otherwise `metadata_modification_time` | 18.16 has no `uuid` column; the metadata file's time changes with a `CREATE` (and with an `ALTER`, which only costs a full rewrite) |
//! | Snowflake | `created_on` of `SHOW TABLES` | the creation instant, changed by `CREATE OR REPLACE` and a drop and create; `SHOW` (and the count) need no running warehouse |
//! | SQLite | the table's root page and its `CREATE` text | a dropped table's pages are freed; a new one usually starts elsewhere, and the count covers the rest |
//!
//! A marker that stays the same across a drop and create (same second, same root page) is not the only
//! line of defence: the start of every run also compares the table's row count with the number of rows
//! Sluice believes it keeps there ([`Destination::count_rows`](crate::Destination::count_rows)). Its
//! cost: PostgreSQL, MySQL (InnoDB) and SQLite count by scanning the smallest index (no exact count is
//! kept; about 0.05 s per million rows on PostgreSQL); Snowflake answers from its metadata; ClickHouse
//! counts with `FINAL`, which merges the key columns of every part it reads (a scan of the key).
//!
//! Reading back ([`Destination::read_rows`](crate::Destination::read_rows)) asks for the rows of a page
//! of keys at once (the key's index answers), each column as the database prints it as text, and
//! [`decode`]s the text by the column type with the conversion rules a run writes by
//! (`sluice_core::convert`). The engine hashes what it reads the way it hashed what it wrote, so a row
//! nobody touched compares equal. Values whose text form loses something (floats printed short, JSON
//! whose keys the database reorders, arrays) may compare different: such rows are rewritten by a
//! reconcile, which is wasteful but never wrong.

use sluice_core::convert::to_column;
use sluice_core::{ColumnType, Value};

/// How many keys one read-back statement asks for: a page of the sync state.
pub const KEYS_PER_READ: usize = 5_000;

/// A column's text as the database printed it (`None` for NULL), as the value Sluice writes for the
/// column's type. Text that does not convert stays text: its row then compares different and is
/// rewritten.
pub fn decode(text: Option<String>, ty: Option<&ColumnType>) -> Value {
    match (text, ty) {
        (None, _) => Value::Null,
        // Text is the column's value whether or not it fits the column's length: it is moved, not
        // copied into a value to convert.
        (Some(text), Some(ColumnType::Text { .. }) | None) => Value::String(text.into()),
        (Some(text), Some(ty)) => decode_str(&text, Some(ty)),
    }
}

/// [`decode`] of borrowed text: what converts to a number, a date or the like is read where it is,
/// and short text (most of it) fits its value without an allocation.
pub fn decode_str(text: &str, ty: Option<&ColumnType>) -> Value {
    match ty {
        Some(ColumnType::Json) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Null) => Value::Null,
            Ok(j) => Value::json(j),
            Err(_) => Value::String(text.into()),
        },
        // Binary is read back as hex (PostgreSQL's `\x` prefix allowed): raw bytes are not text.
        Some(ColumnType::Binary) => match hex(text.strip_prefix("\\x").unwrap_or(text)) {
            Some(bytes) => Value::Bytes(bytes),
            None => Value::String(text.into()),
        },
        // Arrays are read back as JSON arrays, whose elements convert like the written ones.
        Some(ty @ ColumnType::Array { .. }) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(j @ serde_json::Value::Array(_)) => {
                    to_column(Value::json(j), ty).unwrap_or_else(|_| Value::String(text.into()))
                }
                _ => Value::String(text.into()),
            }
        }
        Some(ColumnType::Text { .. }) | None => Value::String(text.into()),
        Some(ty) => {
            to_column(Value::String(text.into()), ty).unwrap_or_else(|_| Value::String(text.into()))
        }
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The column types of the target's columns, in their order (`None` for a type Sluice cannot read).
pub fn column_types(target: &crate::WriteTarget) -> Vec<Option<ColumnType>> {
    target
        .columns
        .iter()
        .map(|c| target.table.column(c).and_then(|c| c.ty.clone()))
        .collect()
}

/// The select list reading the target's columns back, in their order: each column as the dialect's
/// `text_expr` gives it for its type, so that [`decode`] reads the text back exactly.
pub fn text_columns(
    target: &crate::WriteTarget,
    text_expr: impl Fn(&str, Option<&ColumnType>) -> String,
) -> String {
    target
        .columns
        .iter()
        .zip(column_types(target))
        .map(|(c, ty)| text_expr(c, ty.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_decodes_by_the_column_type() {
        let int = ColumnType::Int {
            bits: 32,
            unsigned: false,
        };
        assert_eq!(decode(Some("42".into()), Some(&int)), Value::Int(42));
        assert_eq!(decode(None, Some(&int)), Value::Null);
        assert_eq!(
            decode(Some("t".into()), Some(&ColumnType::Bool)),
            Value::Bool(true)
        );
        // Text stays the very text, within the column's length or past it.
        for max_len in [None, Some(3), Some(100)] {
            let ty = ColumnType::Text { max_len };
            for t in ["", "abc", "a longer text than three, with ünïcode"] {
                assert_eq!(decode(Some(t.into()), Some(&ty)), Value::String(t.into()));
            }
        }
        let ts = ColumnType::Timestamp { with_tz: true };
        let Value::DateTime(dt) = decode(Some("2024-05-13 15:30:00.250".into()), Some(&ts)) else {
            panic!("not a datetime");
        };
        assert_eq!(dt.timestamp_millis(), 1_715_614_200_250);
        assert_eq!(
            decode(Some("{\"a\": 1}".into()), Some(&ColumnType::Json)),
            Value::json(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            decode(Some("\\x00ff".into()), Some(&ColumnType::Binary)),
            Value::Bytes(vec![0, 255])
        );
        assert_eq!(
            decode(Some("00FF".into()), Some(&ColumnType::Binary)),
            Value::Bytes(vec![0, 255])
        );
        let ints = ColumnType::Array {
            element: Box::new(int.clone()),
        };
        assert_eq!(
            decode(Some("[1,null]".into()), Some(&ints)),
            Value::Array(vec![Value::Int(1), Value::Null])
        );
        // Text that does not fit the type stays text, so that the row compares different.
        assert_eq!(
            decode(Some("x".into()), Some(&int)),
            Value::String("x".into())
        );
    }
}
