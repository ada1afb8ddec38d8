//! Reading a table back for drift checks: its OID as its identity, an exact count, rows by key.

use sluice_core::Value;

use super::{map_error, Session};
use crate::drift::{column_types, decode, text_columns};
use crate::postgres::dialect::{qualified, quote, FIND_TABLE};
use crate::postgres::encode::{Encoded, Encoder};
use crate::{Result, WriteTarget};

/// An expression giving `column`'s value as text that the conversion rules read back exactly:
/// instants in UTC with microseconds whatever the session's time zone and date style.
pub(crate) fn text_expr(column: &str, ty: Option<&sluice_core::ColumnType>) -> String {
    use sluice_core::ColumnType::*;
    let c = quote(column);
    match ty {
        Some(Timestamp { with_tz: true }) => {
            format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
        Some(Timestamp { with_tz: false }) => {
            format!("to_char({c}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        }
        Some(Binary) => format!("encode({c}, 'hex')"),
        Some(Array { .. }) => format!("array_to_json({c})::text"),
        _ => format!("{c}::text"),
    }
}

/// `SELECT <columns as text> FROM t WHERE key = ANY($1)`.
pub(crate) fn select_by_keys(schema: &str, target: &WriteTarget) -> String {
    format!(
        "SELECT {} FROM {} WHERE {} = ANY($1)",
        text_columns(target, text_expr),
        qualified(schema, &target.table.name),
        quote(&target.key)
    )
}

impl Session {
    pub async fn table_identity(&mut self, schema: &str, name: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt(FIND_TABLE, &[&schema, &name])
            .await
            .map_err(|e| map_error(&e))?;
        Ok(row.map(|r| {
            let oid: u32 = r.get(0);
            format!("oid:{oid}")
        }))
    }

    /// The table's file node and the server's count of rows deleted from it: TRUNCATE, `VACUUM FULL`
    /// and a rewrite give a new file node, and every DELETE (committed or not) raises the count, which an
    /// UPDATE or an INSERT leaves as it is. The count comes from the statistics system, to which a
    /// session reports when it ends or, while it works, about once a second, but an idle one only every
    /// ten seconds: a deletion not reported yet when a run starts is seen by a later run.
    /// `None` without `track_counts`, or for a partitioned table (its rows live in its partitions).
    pub async fn change_marker(&mut self, schema: &str, name: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt(
                "SELECT c.relfilenode::bigint, pg_catalog.pg_stat_get_tuples_deleted(c.oid), \
                        c.relkind::text, current_setting('track_counts') \
                 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .map_err(|e| map_error(&e))?;
        Ok(row.and_then(|r| {
            let (node, deleted): (i64, i64) = (r.get(0), r.get(1));
            let (kind, counting): (String, String) = (r.get(2), r.get(3));
            (kind == "r" && counting == "on").then(|| format!("{node}:{deleted}"))
        }))
    }

    pub async fn count_rows(&mut self, schema: &str, target: &WriteTarget) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM {}",
            qualified(schema, &target.table.name)
        );
        let row = self
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|e| map_error(&e))?;
        let n: i64 = row.get(0);
        Ok(n.max(0) as u64)
    }

    pub async fn read_rows(
        &mut self,
        schema: &str,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<Vec<Vec<Value>>> {
        let statement = self
            .client
            .prepare(&select_by_keys(schema, target))
            .await
            .map_err(|e| map_error(&e))?;
        let encoder = Encoder::for_type(&statement.params()[0]);
        let types = column_types(target);
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(crate::drift::KEYS_PER_READ) {
            let array = Value::Array(chunk.to_vec());
            let rows = self
                .client
                .query(
                    &statement,
                    &[&Encoded {
                        encoder: &encoder,
                        value: &array,
                    }],
                )
                .await
                .map_err(|e| map_error(&e))?;
            for row in rows {
                out.push(
                    types
                        .iter()
                        .enumerate()
                        .map(|(i, ty)| decode(row.get::<_, Option<String>>(i), ty.as_ref()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
