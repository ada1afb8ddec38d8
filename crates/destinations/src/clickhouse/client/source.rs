//! Reading ClickHouse as a source. A query's columns come from `DESCRIBE TABLE (<query>)`, which 18.16
//! answers. The native protocol of 18.16 has no query parameters, so values in a page's conditions are
//! literals of the column's type, text escaped by [`dialect::literal`].
//!
//! A table is read as it is stored: rows of a `ReplacingMergeTree` not merged yet are read once per
//! version (the first one of an id wins, the others are reported as duplicates).

use std::time::Duration;

use sluice_core::{Column, ColumnType, Value};

use super::Session;
use crate::clickhouse::dialect::{self, literal, ChType};
use crate::clickhouse::native::{Datum, Setting};
use crate::clickhouse::ClickHouse;
use crate::drift::decode;
use crate::source::{reads_source, Reads, SourceColumn};
use crate::{Capabilities, Destination, DestinationError, ErrorKind, Result};

/// `value` as a literal of the column whose type ClickHouse names `native`.
pub fn typed_literal(value: &Value, native: &str) -> Result<String> {
    let base = ChType::parse(native)
        .map(|t| t.base().clone())
        .and_then(|t| match t {
            ChType::Scalar { name, args } => Some((name, args)),
            _ => None,
        });
    let name = base.as_ref().map(|(n, _)| n.as_str()).unwrap_or_default();
    Ok(match value {
        Value::Int(n) => n.to_string(),
        Value::DateTime(t) if name == "DateTime64" => {
            // Nanoseconds, the finest a DateTime64 keeps: a page must resume exactly after its last row.
            let text = t.format("%Y-%m-%d %H:%M:%S%.9f").to_string();
            format!("toDateTime64({}, 9, 'UTC')", literal(&text))
        }
        // Seconds since the epoch: no time zone of the server or the column can shift them.
        Value::DateTime(t) => format!("toDateTime({})", t.timestamp()),
        Value::Uuid(u) => format!("toUUID({})", literal(&u.hyphenated().to_string())),
        Value::String(s) => literal(s),
        other => {
            return Err(DestinationError::new(
                ErrorKind::Config,
                format!(
                    "a {} value cannot start a page of a ClickHouse source",
                    other.kind()
                ),
            ))
        }
    })
}

impl Session {
    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<Column>> {
        let rows = self.query(&format!("DESCRIBE TABLE ({sql})")).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let text = |i: usize| r.get(i).map(Datum::text).unwrap_or_default();
                let native_type = text(1);
                let parsed = ChType::parse(&native_type);
                Column {
                    name: text(0),
                    ty: parsed.as_ref().and_then(|t| dialect::column_type(t.base())),
                    nullable: parsed.as_ref().is_some_and(ChType::is_nullable),
                    native_type,
                    has_default: false,
                }
            })
            .collect())
    }

    pub async fn fetch(
        &mut self,
        sql: &str,
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        self.fetch_with(sql, types, &[]).await
    }

    /// [`Self::fetch`] with query `settings`.
    pub async fn fetch_with(
        &mut self,
        sql: &str,
        types: &[Option<ColumnType>],
        settings: &[Setting],
    ) -> Result<Vec<Vec<Value>>> {
        let rows = self.query_with(sql, settings).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| {
                        let text = match row.get(i) {
                            None | Some(Datum::Null) => None,
                            Some(d) => Some(d.text()),
                        };
                        decode(text, ty.as_ref())
                    })
                    .collect()
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Reads for ClickHouse {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    /// A `ReplacingMergeTree` keeps the versions of a row until it merges them: it is read with
    /// `FINAL`, and without the rows marked deleted, as Sluice reads its own tables, so that a source
    /// sees one row per key, the latest.
    fn relation(&self, table: &str) -> String {
        self.source_tables
            .lock()
            .unwrap()
            .get(table)
            .cloned()
            .unwrap_or_else(|| dialect::qualified(&self.settings.database, table))
    }

    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String {
        dialect::text_expr(column, ty)
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>> {
        let database = &self.settings.database;
        let info = {
            let mut s = self.session().await?;
            let result = s.session().table_info(database, table).await;
            s.settle(result)?
        };
        // (The session is given back first: describing the table takes it again.)
        if let Some(info) = info {
            let from = match dialect::live_rows(&info.engine, database, table) {
                (from, live) if info.engine.replacing => {
                    format!("(SELECT * FROM {from} WHERE {live})")
                }
                _ => dialect::qualified(database, table),
            };
            self.source_tables
                .lock()
                .unwrap()
                .insert(table.to_string(), from);
        }
        Ok(self.describe_table(table).await?.map(|d| d.columns))
    }

    async fn query_columns(&self, sql: &str) -> Result<Vec<Column>> {
        let mut s = self.session().await?;
        let result = s.session().query_columns(sql).await;
        s.settle(result)
    }

    async fn fetch(
        &self,
        sql: &str,
        _params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        // The values are in the text already (see `placeholder`).
        let mut s = self.session().await?;
        let result = s.session().fetch(sql, types).await;
        s.settle(result)
    }

    fn placeholder(&self, _: usize, value: &Value, column: &SourceColumn) -> Result<String> {
        typed_literal(value, &column.native_type)
    }

    async fn fetch_guarded(
        &self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let mut s = self.session().await?;
        let result = s
            .session()
            .fetch_with(sql, types, &preview_settings(timeout))
            .await;
        s.settle(result)
    }
}

/// The settings of a preview's query: stopped after `timeout` (whole seconds, at least one), and
/// read-only. `readonly` comes last: once it is 1 no further setting may change.
pub fn preview_settings(timeout: Duration) -> [Setting; 2] {
    [
        ("max_execution_time", timeout.as_secs().max(1)),
        ("readonly", 1),
    ]
}

reads_source!(ClickHouse);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_keep_their_type() {
        let t: chrono::DateTime<chrono::Utc> = "2026-12-06T10:00:00.5Z".parse().unwrap();
        assert_eq!(
            typed_literal(&Value::DateTime(t), "Nullable(DateTime)").unwrap(),
            format!("toDateTime({})", t.timestamp())
        );
        assert_eq!(
            typed_literal(&Value::DateTime(t), "DateTime64(3, 'UTC')").unwrap(),
            "toDateTime64('2026-12-06 10:00:00.500000000', 9, 'UTC')"
        );
        assert_eq!(
            typed_literal(&Value::String("it's".into()), "String").unwrap(),
            "'it\\'s'"
        );
        assert_eq!(typed_literal(&Value::Int(-3), "UInt64").unwrap(), "-3");
        assert!(typed_literal(&Value::Float(1.0), "Float64").is_err());
    }
}
