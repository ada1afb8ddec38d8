//! The blocking SQLite work: opening the file, the connection test, describing tables through the
//! `pragma_*` table-valued functions, and upserts/deletes with cached prepared statements.
//!
//! Everything here runs on a blocking thread (see [`super::Sqlite`]); errors keep SQLite's message.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, ToSql, TransactionBehavior};
use sluice_core::{Column, ColumnType, TableDescription, TableRules, Value};

use super::dialect::{self, map_error};
use crate::{DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts, WriteTarget};

/// Opens (creating when missing) the database file and its folder.
pub fn open(path: &Path) -> Result<Connection> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                ErrorKind::Permission
            } else {
                ErrorKind::Unavailable
            };
            DestinationError::new(
                kind,
                format!("cannot create the folder {}: {e}", parent.display()),
            )
        })?;
    }
    let with_path = |e: rusqlite::Error| {
        let mut err = map_error(e);
        err.message = format!("{}: {}", path.display(), err.message);
        err
    };
    let conn = Connection::open(path).map_err(with_path)?;
    // Another process (the API, a user's tool) may hold the file briefly: wait rather than fail.
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(map_error)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Opening is lazy in SQLite; reading the schema is what reveals a file that is not a database.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(with_path)?;
    Ok(conn)
}

pub fn test(conn: &mut Connection, path: &Path) -> Result<TestReport> {
    let version: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(map_error)?;
    // A table created and rolled back proves the file (and its journal) can be written.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_error)?;
    tx.execute_batch("CREATE TABLE sluice_write_test (x INTEGER)")
        .map_err(|e| {
            let mut err = map_error(e);
            err.message = format!("{} is not writable: {}", path.display(), err.message);
            err
        })?;
    tx.rollback().map_err(map_error)?;
    Ok(TestReport {
        server_version: format!("SQLite {version}"),
        checks: vec![
            format!("opened {}", path.display()),
            "can write to the database file".to_string(),
        ],
    })
}

/// The tables of the file, by name, without SQLite's own (`sqlite_…`).
pub fn list_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
             ORDER BY name",
        )
        .map_err(map_error)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(map_error)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(map_error)?;
    Ok(names)
}

pub fn describe(conn: &Connection, name: &str) -> Result<Option<TableDescription>> {
    // Table names are case-insensitive in SQLite; answer with the name as created.
    let real: Option<String> = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_error)?;
    let Some(real) = real else { return Ok(None) };

    let mut stmt = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden \
             FROM pragma_table_xinfo(?1) ORDER BY cid",
        )
        .map_err(map_error)?;
    let raw: Vec<(String, String, bool, bool, i64, i64)> = stmt
        .query_map([&real], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .map_err(map_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_error)?;

    let mut primary: Vec<(i64, String)> = raw
        .iter()
        .filter(|c| c.4 > 0)
        .map(|c| (c.4, c.0.clone()))
        .collect();
    primary.sort();
    // `INTEGER PRIMARY KEY` aliases the rowid: SQLite fills it in when it is not written.
    let rowid_alias = primary.len() == 1
        && raw
            .iter()
            .any(|c| c.4 > 0 && c.1.trim().eq_ignore_ascii_case("INTEGER"));

    let mut columns = Vec::new();
    let mut issues = Vec::new();
    for (name, declared, not_null, has_default, pk, hidden) in raw {
        if hidden == 1 {
            continue; // hidden columns of virtual tables
        }
        let generated = hidden >= 2;
        if generated {
            issues.push(format!(
                "column `{name}` is generated by the database and cannot be written"
            ));
        }
        let native_type = if declared.is_empty() {
            "(none)".to_string()
        } else {
            declared.clone()
        };
        columns.push(Column {
            ty: (!generated).then(|| dialect::column_type(&declared)),
            nullable: !not_null && pk == 0,
            has_default: has_default || generated || (pk > 0 && rowid_alias),
            name,
            native_type,
        });
    }

    let mut keys: Vec<Vec<String>> = Vec::new();
    if !primary.is_empty() {
        keys.push(primary.into_iter().map(|(_, n)| n).collect());
    }
    let has_primary_key = !keys.is_empty();
    // Unique constraints ('u') before unique indexes ('c'); partial and expression indexes cannot serve
    // as an ON CONFLICT target.
    let mut idx = conn
        .prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0 AND origin <> 'pk' \
             ORDER BY origin DESC, name",
        )
        .map_err(map_error)?;
    let indexes: Vec<String> = idx
        .query_map([&real], |r| r.get(0))
        .map_err(map_error)?
        .collect::<rusqlite::Result<_>>()
        .map_err(map_error)?;
    let mut info = conn
        .prepare("SELECT cid, name FROM pragma_index_info(?1) ORDER BY seqno")
        .map_err(map_error)?;
    for index in indexes {
        let cols: Vec<(i64, Option<String>)> = info
            .query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(map_error)?
            .collect::<rusqlite::Result<_>>()
            .map_err(map_error)?;
        if cols.iter().any(|(cid, _)| *cid < 0) {
            continue;
        }
        let cols: Vec<String> = cols.into_iter().filter_map(|(_, n)| n).collect();
        if !cols.is_empty() && !keys.contains(&cols) {
            keys.push(cols);
        }
    }
    if keys.is_empty() {
        issues.push(
            "the table has no primary key or unique constraint: add one on the column that identifies a row"
                .to_string(),
        );
    }
    Ok(Some(TableDescription {
        name: real,
        columns,
        keys,
        has_primary_key,
        issues,
        rules: TableRules {
            identifiers: dialect::CAPABILITIES.identifiers.case,
            ..TableRules::default()
        },
    }))
}

/// Upserts the batch in one transaction. Which keys exist is looked up first (through the key's index)
/// so inserts and updates are counted exactly; the first failing row rolls everything back.
pub fn upsert(conn: &mut Connection, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
    let table = &target.table.name;
    let types: Vec<Option<&ColumnType>> = target
        .columns
        .iter()
        .map(|c| target.table.column(c).and_then(|col| col.ty.as_ref()))
        .collect();
    let key_index = target.key_index();
    let width = target.columns.len();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_error)?;
    let mut counts = UpsertCounts::default();
    {
        let mut exists = tx
            .prepare_cached(&dialect::key_exists(table, &target.key))
            .map_err(map_error)?;
        let mut insert = tx
            .prepare_cached(&dialect::upsert(table, &target.columns, &target.key))
            .map_err(map_error)?;
        for (index, row) in rows.iter().enumerate() {
            if row.values.len() != width {
                return Err(DestinationError::new(
                    ErrorKind::Internal,
                    format!(
                        "row {index} has {} values for {width} columns",
                        row.values.len()
                    ),
                ));
            }
            let key = Bind {
                value: &row.values[key_index],
                ty: types[key_index],
            };
            if exists.exists([&key]).map_err(map_error)? {
                counts.updated += 1;
            } else {
                counts.inserted += 1;
            }
            let params = row
                .values
                .iter()
                .zip(&types)
                .map(|(value, ty)| Bind { value, ty: *ty });
            insert
                .execute(rusqlite::params_from_iter(params))
                .map_err(map_error)?;
        }
    }
    tx.commit().map_err(map_error)?;
    Ok(counts)
}

pub fn delete(conn: &mut Connection, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
    let ty = target.table.column(&target.key).and_then(|c| c.ty.as_ref());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_error)?;
    let mut deleted = 0u64;
    {
        let mut stmt = tx
            .prepare_cached(&dialect::delete_by_key(&target.table.name, &target.key))
            .map_err(map_error)?;
        for key in keys {
            deleted += stmt
                .execute([&Bind { value: key, ty }])
                .map_err(map_error)? as u64;
        }
    }
    tx.commit().map_err(map_error)?;
    Ok(deleted)
}

/// A value bound for SQLite: booleans as 0/1, decimals as text (exact in text columns; numeric columns
/// apply their own affinity), dates and times as ISO text, date-times as UTC text — `YYYY-MM-DD
/// HH:MM:SS[.ffffff]` for `DATETIME`/`TIMESTAMP` columns (what SQLite's date functions produce), RFC 3339
/// with `Z` elsewhere — UUIDs hyphenated, JSON and arrays as JSON text, bytes as BLOBs.
pub struct Bind<'a> {
    pub value: &'a Value,
    pub ty: Option<&'a ColumnType>,
}

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.value {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(*b as i64)),
            Value::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
            Value::Decimal(d) => ToSqlOutput::Owned(SqlValue::Text(d.to_string())),
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Date(d) => ToSqlOutput::Owned(SqlValue::Text(d.format("%Y-%m-%d").to_string())),
            Value::Time(t) => {
                ToSqlOutput::Owned(SqlValue::Text(t.format("%H:%M:%S%.f").to_string()))
            }
            Value::DateTime(dt) => {
                let format = if self.ty == Some(&ColumnType::Timestamp { with_tz: false }) {
                    "%Y-%m-%d %H:%M:%S%.f"
                } else {
                    "%Y-%m-%dT%H:%M:%S%.fZ"
                };
                ToSqlOutput::Owned(SqlValue::Text(dt.format(format).to_string()))
            }
            Value::Uuid(u) => ToSqlOutput::Owned(SqlValue::Text(u.hyphenated().to_string())),
            Value::Json(j) => ToSqlOutput::Owned(SqlValue::Text(j.to_string())),
            Value::Array(_) => ToSqlOutput::Owned(SqlValue::Text(self.value.to_json().to_string())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}
