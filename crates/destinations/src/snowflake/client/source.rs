//! Reading Snowflake as a source. A query's columns come from the `rowtype` of its answer with no rows
//! (`LIMIT 0`), named as `DESCRIBE TABLE` prints types so that they map by the same rule as a table's.

use serde_json::Value as Json;
use sluice_core::{Column, ColumnType, Value};

use super::drift::text_expr;
use super::{Connection, Session};
use crate::drift::decode;
use crate::snowflake::dialect::{self, Binding};
use crate::snowflake::Snowflake;
use crate::source::{reads_source, Reads, SourceColumn};
use crate::{Capabilities, Destination, Result};

/// A result column's type as `DESCRIBE TABLE` would print it, from its `rowtype` entry.
pub fn native_type(rowtype: &Json) -> String {
    let n = |k: &str| rowtype[k].as_u64();
    let ty = rowtype["type"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match ty.as_str() {
        "FIXED" => format!(
            "NUMBER({},{})",
            n("precision").unwrap_or(38),
            n("scale").unwrap_or(0)
        ),
        "TEXT" => match n("length") {
            Some(len) => format!("VARCHAR({len})"),
            None => "VARCHAR".into(),
        },
        "REAL" => "FLOAT".into(),
        other => other.to_string(),
    }
}

impl Session {
    pub async fn query_columns(&mut self, conn: &Connection, sql: &str) -> Result<Vec<Column>> {
        let answer = conn.run(self, &format!("{sql} LIMIT 0"), &[], true).await?;
        Ok(answer
            .rowtype
            .iter()
            .map(|r| {
                let native_type = native_type(r);
                Column {
                    name: r["name"].as_str().unwrap_or_default().to_string(),
                    ty: dialect::column_type(&native_type),
                    native_type,
                    nullable: r["nullable"].as_bool().unwrap_or(true),
                    has_default: false,
                }
            })
            .collect())
    }

    pub async fn fetch(
        &mut self,
        conn: &Connection,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let binds: Vec<Binding> = params
            .iter()
            .map(|(v, c)| dialect::binding(v, c.ty.as_ref(), &c.native_type))
            .collect();
        let answer = conn.run(self, sql, &binds, true).await?;
        Ok(answer
            .rows
            .into_iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| decode(row.get(i).cloned().flatten(), ty.as_ref()))
                    .collect()
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Reads for Snowflake {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    fn relation(&self, table: &str) -> String {
        match self.conn() {
            Ok(conn) => {
                let s = conn.settings();
                dialect::qualified(&s.database, &s.schema, table)
            }
            // Settings that failed to parse fail the read before this name is used.
            Err(_) => dialect::quote(table),
        }
    }

    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String {
        text_expr(column, ty)
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>> {
        Ok(self.describe_table(table).await?.map(|d| d.columns))
    }

    async fn query_columns(&self, sql: &str) -> Result<Vec<Column>> {
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().query_columns(conn, sql).await;
        s.settle(result)
    }

    async fn fetch(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().fetch(conn, sql, params, types).await;
        s.settle(result)
    }

    /// Timestamps are read as text to the microsecond while Snowflake keeps nanoseconds: the cursor is
    /// compared and ordered truncated alike, or a page ending at `…00.0000005` would start the next one
    /// before that row and read it again.
    fn cursor_expr(&self, quoted: String, ty: Option<&ColumnType>) -> String {
        match ty {
            Some(ColumnType::Timestamp { .. }) => format!("DATE_TRUNC('MICROSECOND', {quoted})"),
            _ => quoted,
        }
    }

    fn placeholder(&self, _: usize, _: &Value, _: &SourceColumn) -> Result<String> {
        Ok("?".into())
    }
}

reads_source!(Snowflake);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rowtypes_name_types_as_describe_does() {
        let fixed = json!({"name": "ID", "type": "fixed", "precision": 38, "scale": 0});
        assert_eq!(native_type(&fixed), "NUMBER(38,0)");
        assert_eq!(
            native_type(&json!({"type": "text", "length": 16777216})),
            "VARCHAR(16777216)"
        );
        assert_eq!(
            native_type(&json!({"type": "timestamp_ntz", "scale": 9})),
            "TIMESTAMP_NTZ"
        );
        assert_eq!(native_type(&json!({"type": "variant"})), "VARIANT");
        assert_eq!(
            dialect::column_type(&native_type(
                &json!({"type": "fixed", "precision": 12, "scale": 2})
            )),
            Some(ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2)
            })
        );
    }
}
