//! Reading a table back for drift checks: `system.tables.uuid` (or, on servers without it such as 18.16,
//! the metadata file's modification time) as its identity, a count with `FINAL`, rows by key.
//!
//! Keys are never pasted into SQL: like deletions, a read sends its keys as a native block into a
//! temporary table and selects the rows whose key is in it.

use sluice_core::Value;

use super::{build_blocks, count, error, planned, Session, Source, WritePlan};
use crate::clickhouse::dialect::{self, literal, qualified, quote};
use crate::drift::{column_types, decode, text_columns, KEYS_PER_READ};
use crate::{ErrorKind, Result, Row, WriteTarget};

/// `toString` of `column`; instants in UTC whatever the column's or the server's time zone.
fn text_expr(column: &str, ty: Option<&sluice_core::ColumnType>) -> String {
    match ty {
        Some(sluice_core::ColumnType::Timestamp { .. }) => {
            format!("toString({}, 'UTC')", quote(column))
        }
        _ => format!("toString({})", quote(column)),
    }
}

impl Session {
    pub async fn table_identity(&mut self, database: &str, name: &str) -> Result<Option<String>> {
        let has_uuid = count(
            &self
                .query(
                    "SELECT count() FROM system.columns \
                     WHERE database = 'system' AND table = 'tables' AND name = 'uuid'",
                )
                .await?,
        ) > 0;
        let marker = if has_uuid {
            "toString(uuid)"
        } else {
            "toString(metadata_modification_time)"
        };
        let rows = self
            .query_system_tables(&format!(
                "SELECT {marker}, engine FROM system.tables WHERE database = {} AND name = {}",
                literal(database),
                literal(name)
            ))
            .await?;
        Ok(rows.first().map(|r| {
            let f = |i: usize| r.get(i).map(|d| d.text()).unwrap_or_default();
            let kind = if has_uuid { "uuid" } else { "modified" };
            format!("{kind}:{};engine:{}", f(0), f(1))
        }))
    }

    /// `FROM db.t [FINAL] [WHERE is_deleted = 0]`: the rows as Sluice reads them.
    async fn live_rows_sql(&mut self, database: &str, table: &str) -> Result<(String, String)> {
        let info = self.writable(database, table).await?;
        let from = format!(
            "{}{}",
            qualified(database, table),
            if info.engine.replacing { " FINAL" } else { "" }
        );
        let live = match &info.engine.is_deleted {
            Some(c) => format!("{} = 0", quote(c)),
            None => "1".to_string(),
        };
        Ok((from, live))
    }

    pub async fn count_rows(&mut self, database: &str, target: &WriteTarget) -> Result<u64> {
        let (from, live) = self.live_rows_sql(database, &target.table.name).await?;
        Ok(count(
            &self
                .query(&format!("SELECT count() FROM {from} WHERE {live}"))
                .await?,
        ))
    }

    pub async fn read_rows(
        &mut self,
        database: &str,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<Vec<Vec<Value>>> {
        let table = &target.table.name;
        let info = self.writable(database, table).await?;
        let key_col = info.column(&target.key).ok_or_else(|| {
            error(
                ErrorKind::SchemaMismatch,
                format!("column `{}` of table `{table}` does not exist", target.key),
            )
        })?;
        let plan = WritePlan {
            columns: vec![planned(key_col, Source::Target(0), self.version)?],
            kept: Vec::new(),
        };
        let key_type = key_col.type_text.clone();
        let (from, live) = self.live_rows_sql(database, table).await?;
        let types = column_types(target);
        let columns = text_columns(target, text_expr);
        self.next_stage += 1;
        let stage = format!("sluice_keys_{}", self.next_stage);
        let mut out = Vec::with_capacity(keys.len());
        let result = async {
            for chunk in keys.chunks(KEYS_PER_READ) {
                let rows: Vec<Row> = chunk
                    .iter()
                    .map(|k| Row {
                        values: vec![k.clone()],
                    })
                    .collect();
                let blocks = build_blocks(&plan, &rows, target.run_version)?;
                self.execute(&dialect::drop_stage(&stage)).await?;
                self.execute(&dialect::create_stage(
                    &stage,
                    &[(target.key.clone(), key_type.clone())],
                ))
                .await?;
                self.insert_blocks(&plan.insert_sql(&quote(&stage)), &plan, blocks)
                    .await?;
                let sql = format!(
                    "SELECT {} FROM {from} WHERE {live} AND {k} IN (SELECT {k} FROM {})",
                    columns,
                    quote(&stage),
                    k = quote(&target.key)
                );
                for row in self.query(&sql).await? {
                    out.push(
                        types
                            .iter()
                            .enumerate()
                            .map(|(i, ty)| {
                                let text = match row.get(i) {
                                    None | Some(crate::clickhouse::native::Datum::Null) => None,
                                    Some(d) => Some(d.text()),
                                };
                                decode(text, ty.as_ref())
                            })
                            .collect(),
                    );
                }
            }
            Ok(())
        }
        .await;
        let _ = self.execute(&dialect::drop_stage(&stage)).await;
        result.map(|()| out)
    }
}
