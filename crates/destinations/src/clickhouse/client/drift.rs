//! Reading a table back for drift checks: `system.tables.uuid` (or, on servers without it such as 18.16,
//! the metadata file's modification time) as its identity, a count with `FINAL`, rows by key.
//!
//! Keys are never pasted into SQL: like deletions, a read sends its keys as a native block into a
//! temporary table and selects the rows whose key is in it.

use sluice_core::Value;

use super::{build_blocks, count, error, planned, Session, Source, WritePlan};
use crate::clickhouse::dialect::{self, quote};
use crate::drift::{column_types, decode, text_columns, KEYS_PER_READ};
use crate::{ErrorKind, Result, Row, WriteTarget};

impl Session {
    pub async fn table_identity(&mut self, database: &str, name: &str) -> Result<Option<String>> {
        let has_uuid = count(&self.query(dialect::HAS_TABLE_UUID_QUERY).await?) > 0;
        let rows = self
            .query_system_tables(&dialect::identity_query(has_uuid, database, name))
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
        Ok(dialect::live_rows(&info.engine, database, table))
    }

    pub async fn count_rows(&mut self, database: &str, target: &WriteTarget) -> Result<u64> {
        let (from, live) = self.live_rows_sql(database, &target.table.name).await?;
        Ok(count(
            &self.query(&dialect::count_live(&from, &live)).await?,
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
        let columns = text_columns(target, dialect::text_expr);
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
                let sql = dialect::read_live(&columns, &from, &live, &stage, &target.key);
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
