//! Reading a table back for drift checks: its creation time as its identity, an exact count, rows by
//! key.

use mysql_async::prelude::Queryable;
use mysql_async::{Params, Value as My};
use sluice_core::Value;

use super::{bind, map_error, Session};
use crate::drift::{column_types, decode, text_columns, KEYS_PER_READ};
use crate::mysql::dialect::quote;
use crate::{Result, WriteTarget};

/// The creation time of a table of the current database (`NULL` for engines that keep none).
const IDENTITY: &str = "SELECT CAST(CREATE_TIME AS CHAR), CAST(ENGINE AS CHAR) \
     FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// `column` as text that the conversion rules read back.
pub(crate) fn text_expr(column: &str, ty: Option<&sluice_core::ColumnType>) -> String {
    match ty {
        // Bytes are not text in any character set.
        Some(sluice_core::ColumnType::Binary) => format!("HEX({})", quote(column)),
        _ => format!("CAST({} AS CHAR)", quote(column)),
    }
}

/// `SELECT <columns as text> FROM t WHERE key IN (?, …)`. The session's time zone is UTC, so
/// TIMESTAMP columns print the instant in UTC.
pub(crate) fn select_by_keys(target: &WriteTarget, keys: usize) -> String {
    let columns = text_columns(target, text_expr);
    format!(
        "SELECT {columns} FROM {} WHERE {} IN ({})",
        quote(&target.table.name),
        quote(&target.key),
        vec!["?"; keys].join(", ")
    )
}

pub(crate) fn text(v: &My) -> Option<String> {
    match v {
        My::NULL => None,
        My::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

impl Session {
    pub async fn table_identity(&mut self, name: &str) -> Result<Option<String>> {
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(IDENTITY, Params::Positional(vec![My::from(name)]))
            .await
            .map_err(|e| map_error(&e))?;
        Ok(rows.first().map(|r| {
            let created = r.as_ref(0).and_then(text).unwrap_or_default();
            let engine = r.as_ref(1).and_then(text).unwrap_or_default();
            format!("created:{created};engine:{engine}")
        }))
    }

    pub async fn count_rows(&mut self, target: &WriteTarget) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(&target.table.name));
        let n: Option<u64> = self
            .conn
            .query_first(sql)
            .await
            .map_err(|e| map_error(&e))?;
        Ok(n.unwrap_or(0))
    }

    pub async fn read_rows(
        &mut self,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<Vec<Vec<Value>>> {
        let types = column_types(target);
        let key_ty = target.table.column(&target.key).and_then(|c| c.ty.clone());
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_READ) {
            let params: Vec<My> = chunk.iter().map(|k| bind(k, key_ty.as_ref())).collect();
            let rows: Vec<mysql_async::Row> = self
                .conn
                .exec(
                    select_by_keys(target, chunk.len()),
                    Params::Positional(params),
                )
                .await
                .map_err(|e| map_error(&e))?;
            for row in rows {
                out.push(
                    types
                        .iter()
                        .enumerate()
                        .map(|(i, ty)| decode(row.as_ref(i).and_then(text), ty.as_ref()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
