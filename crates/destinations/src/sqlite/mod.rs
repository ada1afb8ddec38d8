//! The embedded SQLite destination: a database file on the machine running Sluice, for trying Sluice
//! out and for local work.
//!
//! - [`config`]: the settings (`path`);
//! - [`dialect`]: SQL text, declared-type mapping, error classification;
//! - [`client`]: the blocking work on the connection.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool with the one connection of the
//! instance behind a mutex (SQLite allows a single writer anyway). Rows are copied into the blocking task
//! because it must own its data; SQLite's own work dominates that cost.
//!
//! Types: values are bound as SQLite understands them — see [`client::Bind`]. `DATETIME`/`TIMESTAMP`
//! columns are described as timestamps without time zone and receive UTC text; `DECIMAL` columns have
//! NUMERIC affinity, which SQLite stores as a 64-bit float when the text looks numeric (15 significant
//! digits) — declare the column `TEXT` to keep decimals exact.

pub mod client;
pub mod config;
pub mod dialect;
mod drift;
mod source;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use sluice_core::{TableDescription, Value};

pub use config::SqliteSettings;

use crate::{
    Capabilities, Destination, DestinationError, ErrorKind, Result, Row, TableRef, TestReport,
    UpsertCounts, WriteTarget,
};

pub struct Sqlite {
    settings: SqliteSettings,
    conn: Arc<Mutex<Option<Connection>>>,
}

impl Sqlite {
    /// Builds the destination; the file is opened (and created) on first use.
    pub fn new(settings: SqliteSettings) -> Self {
        Self {
            settings,
            conn: Arc::new(Mutex::new(None)),
        }
    }

    pub fn settings(&self) -> &SqliteSettings {
        &self.settings
    }

    /// Runs `work` on the connection in the blocking pool, opening the file first if needed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let path = self.settings.path.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves nothing half-done in SQLite (the transaction rolls
            // back when dropped), so a poisoned lock can be reused.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                // Checked again: a link may have been made since the settings were read.
                if let Some(dir) = config::folder() {
                    config::confine(dir, &path).map_err(|m| {
                        DestinationError::new(ErrorKind::Permission, format!("path: {m}"))
                    })?;
                }
                *guard = Some(client::open(&path)?);
            }
            work(guard.as_mut().expect("opened"))
        })
        .await
        .map_err(|e| {
            DestinationError::new(ErrorKind::Internal, format!("the SQLite task failed: {e}"))
        })?
    }
}

#[async_trait]
impl Destination for Sqlite {
    fn capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    async fn test(&self) -> Result<TestReport> {
        let path = self.settings.path.clone();
        self.run(move |conn| client::test(conn, &path)).await
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        dialect::validate_identifier(name, "the table name")
            .map_err(|e| DestinationError::new(ErrorKind::Config, e))?;
        let name = name.to_string();
        self.run(move |conn| client::describe(conn, &name)).await
    }

    async fn list_tables(&self) -> Result<Vec<TableRef>> {
        let names = self.run(|conn| client::list_tables(conn)).await?;
        Ok(names
            .into_iter()
            .map(|name| TableRef { schema: None, name })
            .collect())
    }

    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let target = target.clone();
        let rows = rows.to_vec();
        self.run(move |conn| client::upsert(conn, &target, &rows))
            .await
    }

    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let target = target.clone();
        let keys = keys.to_vec();
        self.run(move |conn| client::delete(conn, &target, &keys))
            .await
    }

    async fn table_identity(&self, name: &str) -> Result<Option<String>> {
        dialect::validate_identifier(name, "the table name")
            .map_err(|e| DestinationError::new(ErrorKind::Config, e))?;
        let name = name.to_string();
        self.run(move |conn| drift::table_identity(conn, &name))
            .await
    }

    async fn count_rows(&self, target: &WriteTarget) -> Result<u64> {
        let target = target.checked(&dialect::CAPABILITIES)?.into_owned();
        self.run(move |conn| drift::count_rows(conn, &target)).await
    }

    async fn read_rows(&self, target: &WriteTarget, keys: &[Value]) -> Result<Vec<Vec<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let target = target.checked(&dialect::CAPABILITIES)?.into_owned();
        let keys = keys.to_vec();
        self.run(move |conn| drift::read_rows(conn, &target, &keys))
            .await
    }
}
