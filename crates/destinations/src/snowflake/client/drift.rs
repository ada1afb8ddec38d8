//! Reading a table back for drift checks: `created_on` of `SHOW TABLES` as its identity, a count
//! (which Snowflake answers from its metadata), rows by key. The checks at the start of a run are
//! metadata only, so an unchanged re-run still resumes no warehouse.

use sluice_core::Value;

use super::{Connection, Session};
use crate::drift::{column_types, decode, text_columns, KEYS_PER_READ};
use crate::snowflake::dialect::{self, quote, setting_ident, Binding};
use crate::{Result, WriteTarget};

/// A column as text the conversion rules read back: JSON rowsets give dates as days and instants as
/// seconds since the epoch, so those are formatted by the server, instants in UTC.
pub(crate) fn text_expr(column: &str, ty: Option<&sluice_core::ColumnType>) -> String {
    use sluice_core::ColumnType::*;
    let c = quote(column);
    match ty {
        Some(Timestamp { with_tz: true }) => format!(
            "TO_VARCHAR(CONVERT_TIMEZONE('UTC', {c})::TIMESTAMP_NTZ, 'YYYY-MM-DD HH24:MI:SS.FF6')"
        ),
        Some(Timestamp { with_tz: false }) => {
            format!("TO_VARCHAR({c}, 'YYYY-MM-DD HH24:MI:SS.FF6')")
        }
        Some(Date) => format!("TO_VARCHAR({c}, 'YYYY-MM-DD')"),
        Some(Time) => format!("TO_VARCHAR({c}, 'HH24:MI:SS.FF6')"),
        _ => c,
    }
}

/// `SELECT <columns> FROM t WHERE key IN (?, …)`. Values come back as text in the JSON rowsets.
pub(crate) fn select_by_keys(qualified: &str, target: &WriteTarget, keys: usize) -> String {
    format!(
        "SELECT {} FROM {qualified} WHERE {} IN ({})",
        text_columns(target, text_expr),
        quote(&target.key),
        vec!["?"; keys].join(", ")
    )
}

impl Session {
    /// `created_on` of the table in `SHOW TABLES` of its schema: metadata only, so the check at the
    /// start of a run resumes no warehouse. (`SHOW` lists at most 10,000 tables; a table beyond that
    /// has no identity, and the row count alone watches it.)
    pub async fn table_identity(
        &mut self,
        conn: &Connection,
        name: &str,
    ) -> Result<Option<String>> {
        let s = conn.settings();
        let sql = format!(
            "SHOW TABLES IN SCHEMA {}.{}",
            setting_ident(&s.database),
            setting_ident(&s.schema)
        );
        let r = conn.run(self, &sql, &[], true).await?;
        let (Some(i_name), Some(i_created)) = (r.index("name"), r.index("created_on")) else {
            return Ok(None);
        };
        Ok(r.rows
            .iter()
            .find(|row| row.get(i_name).cloned().flatten().as_deref() == Some(name))
            .map(|row| {
                format!(
                    "created:{}",
                    row.get(i_created).cloned().flatten().unwrap_or_default()
                )
            }))
    }

    /// `COUNT(*)` of the whole table, which Snowflake answers from its metadata.
    pub async fn count_rows(&mut self, conn: &Connection, target: &WriteTarget) -> Result<u64> {
        let s = conn.settings();
        let q = dialect::qualified(&s.database, &s.schema, &target.table.name);
        let r = conn.run(self, &dialect::row_count(&q), &[], true).await?;
        Ok(r.rows
            .first()
            .and_then(|row| row.first().cloned().flatten())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0))
    }

    pub async fn read_rows(
        &mut self,
        conn: &Connection,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<Vec<Vec<Value>>> {
        let s = conn.settings();
        let q = dialect::qualified(&s.database, &s.schema, &target.table.name);
        let column = target.table.column(&target.key);
        let ty = column.and_then(|c| c.ty.clone());
        let native = column.map(|c| c.native_type.clone()).unwrap_or_default();
        let types = column_types(target);
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_READ) {
            let binds: Vec<Binding> = chunk
                .iter()
                .map(|k| dialect::binding(k, ty.as_ref(), &native))
                .collect();
            let r = conn
                .run(self, &select_by_keys(&q, target, chunk.len()), &binds, true)
                .await?;
            for row in r.rows {
                out.push(
                    types
                        .iter()
                        .enumerate()
                        .map(|(i, ty)| decode(row.get(i).cloned().flatten(), ty.as_ref()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
