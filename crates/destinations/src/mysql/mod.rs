//! The MySQL and MariaDB destination (MySQL 5.7+/8, MariaDB 10.x), over `mysql_async` with rustls.
//!
//! - [`config`]: settings and their validation, URL parsing;
//! - [`dialect`]: SQL text, native-type mapping, error code → error kind (pure, unit-tested);
//! - [`client`]: the connection and the statements run on it.
//!
//! Rows are loaded in bulk with `LOAD DATA LOCAL INFILE` from the batch encoded in memory (tab-separated,
//! `\N` for NULL, escapes for tabs, newlines and backslashes, binary columns hex-encoded and `UNHEX`ed)
//! when the server's `local_infile` allows it — measured 1.4 times as fast as the alternative (see
//! `BENCHMARKS.md`) — and otherwise with large multi-row `INSERT`s of bound values, sized under both the
//! 65,535-placeholder limit and `max_allowed_packet`. `LOAD DATA LOCAL` only warns about a bad value (the
//! server cannot stop the stream), so a load that warned is undone to a savepoint and inserted again,
//! which fails with strict mode's error and message for the isolating writer.
//!
//! A batch whose keys are all new goes straight into the table (one query checks that none exists; after
//! such a batch the next one skips the check, as first runs are all inserts). A key taken meanwhile
//! makes the load fail on the key's unique index; the batch is then rolled back and takes the staged path.
//!
//! Every batch is one transaction, so it lands whole or not at all. The staged path:
//! - the rows are loaded into a session-private `TEMPORARY` table shaped like the written columns of the
//!   target (`CREATE … AS SELECT … LIMIT 0`, so types, charsets and collations match);
//! - one locking `SELECT COUNT(*)` joins the stage to the target on the key: the rows already there are
//!   the updates, the rest the inserts (affected-row counts cannot tell an unchanged update from an
//!   insert);
//! - one `INSERT … SELECT … ON DUPLICATE KEY UPDATE c = VALUES(c)` writes the batch (accepted by MariaDB
//!   and MySQL 8 alike);
//! - `ON DUPLICATE KEY` fires on any unique index, not only the key's: a new row whose value clashes with
//!   another row in some other unique column would silently update that row instead. A last query checks
//!   that every staged key is in the table and otherwise rolls the batch back as bad data, so the
//!   isolating writer finds the row.
//!
//! The session runs with `time_zone = '+00:00'` (TIMESTAMP columns store the instant; DATETIME columns
//! get the UTC wall-clock time) and with `STRICT_ALL_TABLES` added to the server's `sql_mode`, so a bad
//! value is an error with MySQL's message instead of a silently truncated or zeroed value.
//!
//! One connection is kept per [`Mysql`] instance under the rules every destination shares (see
//! `session`): opened on first use, reopened after it breaks, or once it has been idle for as long as
//! the server keeps idle connections (`wait_timeout`).

pub mod client;
pub mod config;
pub mod dialect;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};

pub use client::BulkLoad;
pub use config::{MysqlSettings, TlsMode, TlsSettings};

use crate::session::{SessionGuard, Sessions};
use crate::{
    Capabilities, Destination, Result, Row, TableRef, TestReport, UpsertCounts, WriteTarget,
};

pub struct Mysql {
    settings: MysqlSettings,
    sql_mode: Option<String>,
    bulk: BulkLoad,
    sessions: Sessions<client::Session>,
}

impl Mysql {
    /// Builds the destination; nothing is connected until the first call.
    pub fn new(settings: MysqlSettings) -> Self {
        Self {
            settings,
            sql_mode: None,
            bulk: BulkLoad::default(),
            sessions: Sessions::new(),
        }
    }

    /// Starts each session with this `sql_mode` instead of the server's (`STRICT_ALL_TABLES` is added
    /// either way) — to prove the writer under modes a server may be configured with.
    pub fn with_sql_mode(mut self, sql_mode: impl Into<String>) -> Self {
        self.sql_mode = Some(sql_mode.into());
        self
    }

    /// Loads rows with `bulk` instead of the default ([`BulkLoad::Auto`]) — to measure and test both ways.
    pub fn with_bulk_load(mut self, bulk: BulkLoad) -> Self {
        self.bulk = bulk;
        self
    }

    pub fn settings(&self) -> &MysqlSettings {
        &self.settings
    }

    /// The session for one call, connected.
    async fn session(&self) -> Result<SessionGuard<'_, client::Session>> {
        self.sessions
            .connected(|| client::connect(&self.settings, self.sql_mode.as_deref(), self.bulk))
            .await
    }
}

#[async_trait]
impl Destination for Mysql {
    fn capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    async fn test(&self) -> Result<TestReport> {
        let mut s = self.session().await?;
        let result = s.session().test(&self.settings).await;
        s.settle(result)
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        let mut s = self.session().await?;
        let result = s.session().describe_table(name).await;
        s.settle(result)
    }

    async fn list_tables(&self) -> Result<Vec<TableRef>> {
        let mut s = self.session().await?;
        let result = s.session().list_tables().await;
        let names = s.settle(result)?;
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
        let mut s = self.session().await?;
        let result = s.session().upsert(target, rows).await;
        s.settle(result)
    }

    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s.session().delete(target, keys).await;
        s.settle(result)
    }

    async fn table_identity(&self, name: &str) -> Result<Option<String>> {
        let mut s = self.session().await?;
        let result = s.session().table_identity(name).await;
        s.settle(result)
    }

    async fn count_rows(&self, target: &WriteTarget) -> Result<u64> {
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s.session().count_rows(target).await;
        s.settle(result)
    }

    async fn read_rows(&self, target: &WriteTarget, keys: &[Value]) -> Result<Vec<Vec<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s.session().read_rows(target, keys).await;
        s.settle(result)
    }
}
