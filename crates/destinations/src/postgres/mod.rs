//! The PostgreSQL destination (PostgreSQL 11 and later, no `MERGE` needed).
//!
//! - [`config`]: settings and their validation, URL parsing;
//! - [`dialect`]: SQL text, native-type mapping, SQLSTATE → error kind (pure, golden-tested);
//! - [`encode`]: values in the binary wire format used by COPY and parameters;
//! - [`client`]: the connection and the statements run on it.
//!
//! An upsert copies the batch into a temporary staging table with binary COPY and merges it into the
//! target with one `INSERT … SELECT … ON CONFLICT (key) DO UPDATE`, all in one transaction: the batch
//! lands whole or not at all, at close to COPY speed, with no per-row SQL. One connection is kept per
//! [`Postgres`] instance, opened on first use and reopened after it breaks; calls on one instance are
//! serialized on it.

pub mod client;
pub mod config;
pub mod dialect;
pub mod encode;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};
use tokio::sync::{Mutex, MutexGuard};

pub use config::{PostgresSettings, TlsMode, TlsSettings};

use crate::{Destination, DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts, WriteTarget};

pub struct Postgres {
    settings: PostgresSettings,
    session: Mutex<Option<client::Session>>,
}

impl Postgres {
    /// Builds the destination; nothing is connected until the first call.
    pub fn new(settings: PostgresSettings) -> Self {
        Self { settings, session: Mutex::new(None) }
    }

    pub fn settings(&self) -> &PostgresSettings {
        &self.settings
    }

    /// The session, connecting (again) when there is none or the previous connection broke.
    async fn session(&self) -> Result<MutexGuard<'_, Option<client::Session>>> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_none_or(|s| s.is_closed()) {
            *guard = None;
            *guard = Some(client::connect(&self.settings).await?);
        }
        Ok(guard)
    }

    /// Drops the session when the connection turned out broken, so the next call reconnects.
    fn forget_if_broken<T>(session: &mut Option<client::Session>, result: &Result<T>) {
        if let Err(e) = result {
            if e.kind == ErrorKind::Unavailable || session.as_ref().is_some_and(|s| s.is_closed()) {
                *session = None;
            }
        }
    }

    fn check_target(target: &WriteTarget) -> Result<()> {
        let config = |e| DestinationError::new(ErrorKind::Config, e);
        dialect::validate_identifier(&target.table.name, "the table name").map_err(config)?;
        for c in &target.columns {
            dialect::validate_identifier(c, "a column name").map_err(config)?;
        }
        if !target.columns.contains(&target.key) {
            return Err(config(format!("the key column `{}` is not among the written columns", target.key)));
        }
        Ok(())
    }
}

#[async_trait]
impl Destination for Postgres {
    async fn test(&self) -> Result<TestReport> {
        let settings = &self.settings;
        let mut guard = self.session().await?;
        let result = guard.as_mut().expect("connected").test(settings).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        let schema = self.settings.schema.as_str();
        let mut guard = self.session().await?;
        let result = guard.as_mut().expect("connected").describe_table(schema, name).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }

    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        Self::check_target(target)?;
        let schema = self.settings.schema.as_str();
        let mut guard = self.session().await?;
        let result = guard.as_mut().expect("connected").upsert(schema, target, rows).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }

    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        Self::check_target(target)?;
        let schema = self.settings.schema.as_str();
        let mut guard = self.session().await?;
        let result = guard.as_mut().expect("connected").delete(schema, target, keys).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }
}
