//! SQLite SQL text, declared-type mapping and error classification — pure functions, tested below.
//!
//! SQLite columns have an affinity rather than a strict type; Sluice reads the declared type the way
//! SQLite does (the affinity rules of <https://sqlite.org/datatype3.html>), after first recognising the
//! common names that carry more meaning (`BOOLEAN`, `DATE`, `DATETIME`, `UUID`, `JSON`, `DECIMAL(p,s)` …).

use rusqlite::ErrorCode;
use sluice_core::capabilities::{Identifiers, LengthUnit, QuoteEscape};
use sluice_core::ColumnType;

use crate::{Capabilities, Deletes, DestinationError, ErrorKind, IdentifierCase, UpsertStyle};

/// SQLite, as data.
pub static CAPABILITIES: Capabilities = Capabilities {
    name: "SQLite",
    identifiers: Identifiers {
        // SQLite sets no limit of its own on names.
        max_len: None,
        len_unit: LengthUnit::Bytes,
        quote: '"',
        escape: QuoteEscape::Doubled,
        trailing_space: true,
        case: IdentifierCase::Exact,
    },
    upsert: UpsertStyle::OnConflict,
    deletes: Deletes::ByKey,
    batch_rows: 10_000,
    // SQLITE_MAX_VARIABLE_NUMBER since 3.32 (rows are written one statement each).
    max_bind_parameters: Some(32_766),
    max_rows_per_insert: None,
    reports_upsert_counts: true,
    defers_confirmation: false,
    enforces_keys: true,
    lexical: sluice_core::capabilities::lexical::SQLITE,
};

/// `"name"`, with inner double quotes doubled.
pub fn quote(name: &str) -> String {
    CAPABILITIES.quote(name)
}

/// Checks that `name` can be a SQLite identifier once quoted; the message names `what`.
pub fn validate_identifier(name: &str, what: &str) -> Result<(), String> {
    CAPABILITIES.validate_identifier(name, what)
}

/// Insert-or-update of one row, values bound as `?1 … ?n` in column order. Only the written columns are
/// set on conflict, so other columns keep their values (or take their defaults on insert).
pub fn upsert(table: &str, columns: &[String], key: &str) -> String {
    let cols = columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ");
    let params = (1..=columns.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sets: Vec<String> = columns
        .iter()
        .filter(|c| c.as_str() != key)
        .map(|c| format!("{q} = excluded.{q}", q = quote(c)))
        .collect();
    if sets.is_empty() {
        sets.push(format!("{q} = excluded.{q}", q = quote(key)));
    }
    format!(
        "INSERT INTO {} ({cols}) VALUES ({params}) ON CONFLICT ({}) DO UPDATE SET {}",
        quote(table),
        quote(key),
        sets.join(", ")
    )
}

pub fn key_exists(table: &str, key: &str) -> String {
    format!("SELECT 1 FROM {} WHERE {} = ?1", quote(table), quote(key))
}

pub fn delete_by_key(table: &str, key: &str) -> String {
    format!("DELETE FROM {} WHERE {} = ?1", quote(table), quote(key))
}

/// The portable type of a declared column type.
pub fn column_type(declared: &str) -> ColumnType {
    let upper = declared.trim().to_ascii_uppercase();
    let (base, args) = match upper.split_once('(') {
        Some((b, rest)) => (
            b.trim(),
            rest.trim_end_matches(')')
                .split(',')
                .map(|a| a.trim().parse::<u32>().ok())
                .collect(),
        ),
        None => (upper.as_str(), Vec::new()),
    };
    let arg = |i: usize| args.get(i).copied().flatten();
    let base = base.split_whitespace().collect::<Vec<_>>().join(" ");
    match base.as_str() {
        "BOOLEAN" | "BOOL" => return ColumnType::Bool,
        "DATE" => return ColumnType::Date,
        "TIME" => return ColumnType::Time,
        "DATETIME" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => {
            return ColumnType::Timestamp { with_tz: false }
        }
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            return ColumnType::Timestamp { with_tz: true }
        }
        "UUID" => return ColumnType::Uuid,
        "JSON" | "JSONB" => return ColumnType::Json,
        "DECIMAL" | "NUMERIC" => {
            return ColumnType::Decimal {
                precision: arg(0).and_then(|p| u8::try_from(p).ok()),
                scale: arg(1)
                    .and_then(|s| u8::try_from(s).ok())
                    .or(arg(0).map(|_| 0)),
            }
        }
        "TINYINT" | "INT1" => {
            return ColumnType::Int {
                bits: 8,
                unsigned: false,
            }
        }
        "SMALLINT" | "INT2" => {
            return ColumnType::Int {
                bits: 16,
                unsigned: false,
            }
        }
        "MEDIUMINT" | "INT4" => {
            return ColumnType::Int {
                bits: 32,
                unsigned: false,
            }
        }
        // A column without a type (or STRICT's ANY) takes anything; text is the most forgiving target.
        "" | "ANY" => return ColumnType::Text { max_len: None },
        _ => {}
    }
    // SQLite's affinity rules, in their order.
    if base.contains("INT") {
        ColumnType::Int {
            bits: 64,
            unsigned: false,
        }
    } else if base.contains("CHAR") || base.contains("CLOB") || base.contains("TEXT") {
        ColumnType::Text { max_len: arg(0) }
    } else if base.contains("BLOB") {
        ColumnType::Binary
    } else if base.contains("REAL") || base.contains("FLOA") || base.contains("DOUB") {
        ColumnType::Float { bits: 64 }
    } else {
        ColumnType::Decimal {
            precision: None,
            scale: None,
        }
    }
}

/// Maps a rusqlite error to a destination error, keeping SQLite's message.
pub fn map_error(e: rusqlite::Error) -> DestinationError {
    match e {
        rusqlite::Error::SqliteFailure(err, message) => {
            let message = message.unwrap_or_else(|| err.to_string());
            let kind = match err.code {
                ErrorCode::ConstraintViolation | ErrorCode::TypeMismatch | ErrorCode::TooBig => {
                    ErrorKind::BadData
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Conflict,
                ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::AuthorizationForStatementDenied => ErrorKind::Permission,
                ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::DiskFull => {
                    ErrorKind::Unavailable
                }
                ErrorCode::NotADatabase => ErrorKind::Config,
                ErrorCode::Unknown => classify_message(&message),
                _ => ErrorKind::Internal,
            };
            DestinationError::new(kind, message)
        }
        rusqlite::Error::ToSqlConversionFailure(e) => {
            DestinationError::new(ErrorKind::BadData, e.to_string())
        }
        other => DestinationError::new(ErrorKind::Internal, other.to_string()),
    }
}

/// SQLITE_ERROR covers both "the table changed" and plain bugs; only the message tells them apart.
fn classify_message(message: &str) -> ErrorKind {
    if message.starts_with("no such table") {
        ErrorKind::NotFound
    } else if message.starts_with("no such column")
        || message.contains("has no column named")
        || message.contains("does not match any PRIMARY KEY or UNIQUE constraint")
    {
        ErrorKind::SchemaMismatch
    } else {
        ErrorKind::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_sql() {
        let cols = vec!["id".to_string(), "na\"me".to_string()];
        assert_eq!(
            upsert("people", &cols, "id"),
            "INSERT INTO \"people\" (\"id\", \"na\"\"me\") VALUES (?1, ?2) ON CONFLICT (\"id\") \
             DO UPDATE SET \"na\"\"me\" = excluded.\"na\"\"me\""
        );
        assert!(upsert("t", &cols[..1], "id").ends_with("SET \"id\" = excluded.\"id\""));
        assert_eq!(
            key_exists("t", "id"),
            "SELECT 1 FROM \"t\" WHERE \"id\" = ?1"
        );
        assert_eq!(
            delete_by_key("t", "id"),
            "DELETE FROM \"t\" WHERE \"id\" = ?1"
        );
    }

    #[test]
    fn declared_types() {
        assert_eq!(
            column_type("VARCHAR(20)"),
            ColumnType::Text { max_len: Some(20) }
        );
        assert_eq!(column_type("text"), ColumnType::Text { max_len: None });
        assert_eq!(
            column_type("INTEGER"),
            ColumnType::Int {
                bits: 64,
                unsigned: false
            }
        );
        assert_eq!(
            column_type("smallint"),
            ColumnType::Int {
                bits: 16,
                unsigned: false
            }
        );
        assert_eq!(
            column_type("DECIMAL(28, 10)"),
            ColumnType::Decimal {
                precision: Some(28),
                scale: Some(10)
            }
        );
        assert_eq!(
            column_type("NUMERIC"),
            ColumnType::Decimal {
                precision: None,
                scale: None
            }
        );
        assert_eq!(column_type("boolean"), ColumnType::Bool);
        assert_eq!(
            column_type("DATETIME"),
            ColumnType::Timestamp { with_tz: false }
        );
        assert_eq!(
            column_type("timestamp"),
            ColumnType::Timestamp { with_tz: false }
        );
        assert_eq!(column_type("UUID"), ColumnType::Uuid);
        assert_eq!(column_type("json"), ColumnType::Json);
        assert_eq!(column_type("BLOB"), ColumnType::Binary);
        assert_eq!(
            column_type("double precision"),
            ColumnType::Float { bits: 64 }
        );
        assert_eq!(column_type(""), ColumnType::Text { max_len: None });
        assert_eq!(
            column_type("MONEY"),
            ColumnType::Decimal {
                precision: None,
                scale: None
            }
        );
    }

    #[test]
    fn messages_classified() {
        assert_eq!(
            classify_message("no such table: people"),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify_message("table people has no column named age"),
            ErrorKind::SchemaMismatch
        );
        assert_eq!(
            classify_message("near \"x\": syntax error"),
            ErrorKind::Internal
        );
    }
}
