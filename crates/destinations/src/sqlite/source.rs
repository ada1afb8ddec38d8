//! Reading SQLite as a source. A query's columns take their declared types where the result column
//! comes straight from a table column, otherwise the storage class of its first non-NULL value among
//! the first rows. Timestamps are text in whatever form the writer chose, so a timestamp cursor is
//! compared through `strftime` (milliseconds, the precision of SQLite's date functions), which reads
//! every form SQLite knows as the same instant.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::types::ValueRef;
use sluice_core::{Column, ColumnType, Value};

use super::client::Bind;
use super::dialect::{self, map_error, quote};
use super::drift::value;
use super::Sqlite;
use crate::source::{reads_source, Reads, SourceColumn};
use crate::{Capabilities, Destination, DestinationError, ErrorKind, Result};

/// Rows looked at to type a query column that has no declared type.
const ROWS_TO_TYPE: usize = 100;

/// `expr` as comparable text of an instant.
fn instant(expr: &str) -> String {
    format!("strftime('%Y-%m-%d %H:%M:%f', {expr})")
}

fn is_timestamp(ty: Option<&ColumnType>) -> bool {
    matches!(ty, Some(ColumnType::Timestamp { .. }))
}

fn query_columns(conn: &rusqlite::Connection, sql: &str) -> Result<Vec<Column>> {
    let mut stmt = conn.prepare(sql).map_err(map_error)?;
    let mut declared: Vec<(String, Option<String>)> = stmt
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.decl_type().map(str::to_string)))
        .collect();
    if declared.iter().any(|(_, d)| d.is_none()) {
        let mut rows = stmt.query([]).map_err(map_error)?;
        let mut seen = 0;
        while let Some(row) = rows.next().map_err(map_error)? {
            for (i, (_, d)) in declared.iter_mut().enumerate() {
                if d.is_none() {
                    *d = match row.get_ref(i).map_err(map_error)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(_) => Some("INTEGER".into()),
                        ValueRef::Real(_) => Some("REAL".into()),
                        ValueRef::Text(_) => Some("TEXT".into()),
                        ValueRef::Blob(_) => Some("BLOB".into()),
                    };
                }
            }
            seen += 1;
            if seen >= ROWS_TO_TYPE || declared.iter().all(|(_, d)| d.is_some()) {
                break;
            }
        }
    }
    Ok(declared
        .into_iter()
        .map(|(name, d)| {
            let native_type = d.unwrap_or_default();
            Column {
                name,
                ty: Some(dialect::column_type(&native_type)),
                native_type,
                nullable: true,
                has_default: false,
            }
        })
        .collect())
}

fn fetch(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[(Value, Option<ColumnType>)],
    types: &[Option<ColumnType>],
) -> Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let binds: Vec<Bind<'_>> = params
        .iter()
        .map(|(value, ty)| Bind {
            value,
            ty: ty.as_ref(),
        })
        .collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(binds.iter()))
        .map_err(map_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_error)? {
        let mut values = Vec::with_capacity(types.len());
        for (i, ty) in types.iter().enumerate() {
            values.push(value(row.get_ref(i).map_err(map_error)?, ty.as_ref()));
        }
        out.push(values);
    }
    Ok(out)
}

/// Runs `work` on `conn` made query-only (`PRAGMA query_only`: any write fails), interrupted once
/// `timeout` has passed; the connection is writable again afterwards.
fn guarded<T>(
    conn: &mut rusqlite::Connection,
    timeout: Duration,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    conn.pragma_update(None, "query_only", true)
        .map_err(map_error)?;
    let handle = conn.get_interrupt_handle();
    let (done, wait) = mpsc::channel::<()>();
    // An interrupt that comes after the work ended finds no statement running and does nothing.
    let watchdog = std::thread::spawn(move || {
        let fired = matches!(wait.recv_timeout(timeout), Err(RecvTimeoutError::Timeout));
        if fired {
            handle.interrupt();
        }
        fired
    });
    let result = work(conn);
    let _ = done.send(());
    let fired = watchdog.join().unwrap_or(false);
    let reset = conn
        .pragma_update(None, "query_only", false)
        .map_err(map_error);
    let value = match result {
        Err(_) if fired => {
            return Err(DestinationError::new(
                ErrorKind::Timeout,
                format!(
                    "the statement took longer than {} seconds and was interrupted",
                    timeout.as_secs()
                ),
            ))
        }
        other => other?,
    };
    reset?;
    Ok(value)
}

#[async_trait::async_trait]
impl Reads for Sqlite {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    fn relation(&self, table: &str) -> String {
        quote(table)
    }

    fn text_expr(&self, column: &str, _: Option<&ColumnType>) -> String {
        // Values are read as stored and converted by their column type. Qualified, because SQLite takes
        // a double-quoted name that matches no column for a string literal: a dropped column would
        // read as its own name instead of failing.
        format!("s.{}", quote(column))
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>> {
        Ok(self.describe_table(table).await?.map(|d| d.columns))
    }

    async fn query_columns(&self, sql: &str) -> Result<Vec<Column>> {
        let sql = sql.to_string();
        self.run(move |conn| query_columns(conn, &sql)).await
    }

    async fn fetch(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let sql = sql.to_string();
        let params: Vec<(Value, Option<ColumnType>)> = params
            .iter()
            .map(|(v, c)| (v.clone(), c.ty.clone()))
            .collect();
        let types = types.to_vec();
        self.run(move |conn| fetch(conn, &sql, &params, &types))
            .await
    }

    async fn fetch_guarded(
        &self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let sql = sql.to_string();
        let types = types.to_vec();
        self.run(move |conn| guarded(conn, timeout, |c| fetch(c, &sql, &[], &types)))
            .await
    }

    async fn query_columns_guarded(&self, sql: &str, timeout: Duration) -> Result<Vec<Column>> {
        let sql = sql.to_string();
        self.run(move |conn| guarded(conn, timeout, |c| query_columns(c, &sql)))
            .await
    }

    fn cursor_expr(&self, quoted: String, ty: Option<&ColumnType>) -> String {
        if is_timestamp(ty) {
            instant(&quoted)
        } else {
            quoted
        }
    }

    fn placeholder(&self, n: usize, _: &Value, column: &SourceColumn) -> Result<String> {
        let p = format!("?{n}");
        Ok(if is_timestamp(column.ty.as_ref()) {
            instant(&p)
        } else {
            p
        })
    }
}

reads_source!(Sqlite);
