//! Reading MySQL and MariaDB as a source: a query's columns from its prepared statement's metadata,
//! pages read with bound parameters.

use std::time::Duration;

use mysql_async::consts::{ColumnFlags, ColumnType as Wire};
use mysql_async::prelude::Queryable;
use mysql_async::Params;
use sluice_core::{Column, ColumnType, Value};

use super::drift::{text, text_expr};
use super::{bind, map_error, Session};
use crate::drift::decode;
use crate::mysql::{dialect, Mysql};
use crate::source::{reads_source, Reads, SourceColumn};
use crate::{Capabilities, Destination, Result};

/// The character set number of binary strings.
const BINARY_CHARSET: u16 = 63;

/// A result column's `DATA_TYPE` and `COLUMN_TYPE` as `information_schema` would name them, from the
/// protocol's metadata, so that a query's columns map by the same rule as a table's. The protocol tells
/// no JSON apart on MariaDB (its JSON is `LONGTEXT`) and no enum labels: those read as text.
pub fn data_type(
    wire: Wire,
    flags: ColumnFlags,
    charset: u16,
    length: u32,
    decimals: u8,
) -> (&'static str, String) {
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = charset == BINARY_CHARSET;
    let name = match wire {
        Wire::MYSQL_TYPE_TINY => "tinyint",
        Wire::MYSQL_TYPE_SHORT => "smallint",
        Wire::MYSQL_TYPE_INT24 => "mediumint",
        Wire::MYSQL_TYPE_LONG => "int",
        Wire::MYSQL_TYPE_LONGLONG => "bigint",
        Wire::MYSQL_TYPE_YEAR => "year",
        Wire::MYSQL_TYPE_DECIMAL | Wire::MYSQL_TYPE_NEWDECIMAL => "decimal",
        Wire::MYSQL_TYPE_FLOAT => "float",
        Wire::MYSQL_TYPE_DOUBLE => "double",
        Wire::MYSQL_TYPE_DATE | Wire::MYSQL_TYPE_NEWDATE => "date",
        Wire::MYSQL_TYPE_TIME | Wire::MYSQL_TYPE_TIME2 => "time",
        Wire::MYSQL_TYPE_DATETIME | Wire::MYSQL_TYPE_DATETIME2 => "datetime",
        Wire::MYSQL_TYPE_TIMESTAMP | Wire::MYSQL_TYPE_TIMESTAMP2 => "timestamp",
        Wire::MYSQL_TYPE_JSON => "json",
        Wire::MYSQL_TYPE_VARCHAR | Wire::MYSQL_TYPE_VAR_STRING if binary => "varbinary",
        Wire::MYSQL_TYPE_STRING if binary => "binary",
        Wire::MYSQL_TYPE_VARCHAR | Wire::MYSQL_TYPE_VAR_STRING | Wire::MYSQL_TYPE_STRING => {
            "varchar"
        }
        Wire::MYSQL_TYPE_TINY_BLOB
        | Wire::MYSQL_TYPE_MEDIUM_BLOB
        | Wire::MYSQL_TYPE_LONG_BLOB
        | Wire::MYSQL_TYPE_BLOB
            if binary =>
        {
            "blob"
        }
        Wire::MYSQL_TYPE_TINY_BLOB
        | Wire::MYSQL_TYPE_MEDIUM_BLOB
        | Wire::MYSQL_TYPE_LONG_BLOB
        | Wire::MYSQL_TYPE_BLOB => "text",
        _ => "unknown",
    };
    let column_type = match name {
        "tinyint" if length == 1 && !unsigned => "tinyint(1)".to_string(),
        "decimal" => {
            // The display length counts the sign and the decimal point.
            let precision = length
                .saturating_sub(u32::from(!unsigned))
                .saturating_sub(u32::from(decimals > 0));
            format!("decimal({precision},{decimals})")
        }
        _ if unsigned => format!("{name} unsigned"),
        _ => name.to_string(),
    };
    (name, column_type)
}

/// The precision and scale of `decimal(p,s)`.
fn decimal_spec(column_type: &str) -> (Option<u64>, Option<u64>) {
    let inner = column_type
        .strip_prefix("decimal(")
        .and_then(|r| r.strip_suffix(')'));
    match inner.and_then(|i| i.split_once(',')) {
        Some((p, s)) => (p.parse().ok(), s.parse().ok()),
        None => (None, None),
    }
}

/// `sql` (a `SELECT`) stopped by the server after `timeout`: MariaDB's `SET STATEMENT
/// max_statement_time = s FOR`, MySQL's `MAX_EXECUTION_TIME(ms)` optimizer hint.
pub fn with_time_limit(sql: &str, mariadb: bool, timeout: Duration) -> String {
    if mariadb {
        format!(
            "SET STATEMENT max_statement_time = {:.3} FOR {sql}",
            timeout.as_secs_f64().max(0.001)
        )
    } else {
        let ms = timeout.as_millis().max(1);
        match sql.strip_prefix("SELECT ") {
            Some(rest) => format!("SELECT /*+ MAX_EXECUTION_TIME({ms}) */ {rest}"),
            None => sql.to_string(),
        }
    }
}

impl Session {
    /// [`Self::fetch`] without parameters in a read-only transaction, the statement stopped by the
    /// server after `timeout`; the transaction is rolled back whatever happened.
    pub async fn fetch_read_only(
        &mut self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let version: Option<String> = self
            .conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| map_error(&e))?;
        let mariadb = version.is_some_and(|v| v.to_ascii_lowercase().contains("mariadb"));
        let sql = with_time_limit(sql, mariadb, timeout);
        self.conn
            .query_drop("START TRANSACTION READ ONLY")
            .await
            .map_err(|e| map_error(&e))?;
        let result = self.fetch(&sql, &[], types).await;
        let end = self
            .conn
            .query_drop("ROLLBACK")
            .await
            .map_err(|e| map_error(&e));
        let rows = result?;
        end?;
        Ok(rows)
    }

    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<Column>> {
        let statement = self.conn.prep(sql).await.map_err(|e| map_error(&e))?;
        let columns = statement
            .columns()
            .iter()
            .map(|c| {
                let (name, column_type) = data_type(
                    c.column_type(),
                    c.flags(),
                    c.character_set(),
                    c.column_length(),
                    c.decimals(),
                );
                let (precision, scale) = decimal_spec(&column_type);
                Column {
                    name: c.name_str().into_owned(),
                    ty: dialect::column_type(name, &column_type, None, precision, scale),
                    native_type: column_type,
                    nullable: !c.flags().contains(ColumnFlags::NOT_NULL_FLAG),
                    has_default: false,
                }
            })
            .collect();
        self.conn
            .close(statement)
            .await
            .map_err(|e| map_error(&e))?;
        Ok(columns)
    }

    pub async fn fetch(
        &mut self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let params = params.iter().map(|(v, c)| bind(v, c.ty.as_ref())).collect();
        let rows: Vec<mysql_async::Row> = self
            .conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| map_error(&e))?;
        Ok(rows
            .iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| decode(row.as_ref(i).and_then(text), ty.as_ref()))
                    .collect()
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl Reads for Mysql {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    fn relation(&self, table: &str) -> String {
        dialect::quote(table)
    }

    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String {
        text_expr(column, ty)
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>> {
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
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let mut s = self.session().await?;
        let result = s.session().fetch(sql, params, types).await;
        s.settle(result)
    }

    fn placeholder(&self, _: usize, _: &Value, _: &SourceColumn) -> Result<String> {
        Ok("?".into())
    }

    async fn fetch_guarded(
        &self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let mut s = self.session().await?;
        let result = s.session().fetch_read_only(sql, types, timeout).await;
        s.settle(result)
    }
}

reads_source!(Mysql);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_is_stopped_by_the_server() {
        let t = Duration::from_millis(2500);
        assert_eq!(
            with_time_limit("SELECT a FROM (SELECT 1 AS a) AS s LIMIT 5", true, t),
            "SET STATEMENT max_statement_time = 2.500 FOR SELECT a FROM (SELECT 1 AS a) AS s LIMIT 5"
        );
        assert_eq!(
            with_time_limit("SELECT a FROM t AS s LIMIT 5", false, t),
            "SELECT /*+ MAX_EXECUTION_TIME(2500) */ a FROM t AS s LIMIT 5"
        );
    }

    #[test]
    fn result_metadata_names_the_types_a_table_would() {
        let none = ColumnFlags::empty();
        assert_eq!(
            data_type(
                Wire::MYSQL_TYPE_LONGLONG,
                ColumnFlags::UNSIGNED_FLAG,
                63,
                20,
                0
            ),
            ("bigint", "bigint unsigned".to_string())
        );
        assert_eq!(
            data_type(Wire::MYSQL_TYPE_TINY, none, 63, 1, 0).1,
            "tinyint(1)"
        );
        let (name, ty) = data_type(Wire::MYSQL_TYPE_NEWDECIMAL, none, 63, 14, 2);
        assert_eq!((name, ty.as_str()), ("decimal", "decimal(12,2)"));
        assert_eq!(decimal_spec(&ty), (Some(12), Some(2)));
        assert_eq!(data_type(Wire::MYSQL_TYPE_BLOB, none, 63, 0, 0).0, "blob");
        assert_eq!(data_type(Wire::MYSQL_TYPE_BLOB, none, 45, 0, 0).0, "text");
        assert_eq!(
            data_type(Wire::MYSQL_TYPE_VAR_STRING, none, 45, 80, 0).0,
            "varchar"
        );
    }
}
