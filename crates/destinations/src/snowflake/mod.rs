//! The Snowflake destination, over Snowflake's connector protocol (JSON over HTTPS, through `reqwest` with
//! rustls and ring), with password or key-pair (JWT) authentication.
//!
//! - [`config`]: settings and their validation;
//! - [`dialect`]: SQL text, native-type mapping, bindings, batch planning, error code → error kind (pure,
//!   unit-tested);
//! - [`auth`]: PEM private keys and the key-pair JWT (pure, unit-tested);
//! - [`client`]: the protocol (login, statements, token renewal, polling, result chunks) and the
//!   statements run for each operation.
//!
//! Snowflake does not enforce primary keys or unique constraints; it only records them. Sluice uses a
//! declared primary key or unique column as the key and keeps it unique itself: each batch is
//! deduplicated by key as the key column compares values (NUMBER keys as numbers rounded to the column's
//! scale: `1`, `"1"` and `1.0` are one key; see [`dialect::key_identity`]), the last row winning, before it
//! is merged, and only the MERGE writes the table. The first batch of each run also checks the table for
//! keys already stored more than once (by another writer) and refuses to write to it, naming some, rather
//! than let one MERGE update several rows per key.
//!
//! Each batch:
//! - is loaded into a session-private `TEMPORARY` staging table (created once per session and target, with
//!   the target's column types) with large multi-row `INSERT`s of bound values, kept under Snowflake's
//!   16,384-row `VALUES` limit and a request-size budget;
//! - is written by one `MERGE` (between `BEGIN` and `COMMIT`, so that it lands whole on every server) that
//!   updates only the rows whose written values changed (`IS DISTINCT FROM`) and inserts the rest; the
//!   counts come from the MERGE's own answer.
//!
//! A run with nothing changed sends no write at all: the engine only calls [`Destination::upsert`] for rows
//! whose hash changed, and describing the table at the start of a run uses `DESCRIBE TABLE` and
//! `SHOW … KEYS`, which are metadata operations that do not start the warehouse.
//!
//! The protocol side ([`client`]) retries HTTP 408/429/5xx answers and transport failures with backoff in
//! the same session (a statement keeps its requestId, so Snowflake runs it once), renews an expired token
//! while polling without sending the statement again, sets `STATEMENT_TIMEOUT_IN_SECONDS` and aborts a
//! statement still running past it, and logs out a session it gives up after a failure (so that a
//! transaction left open ends at once).
//!
//! Batches of 2,000 rows or more, or of more bound values than the official drivers bind inline (65,280),
//! load through the stage path instead where the server allows it: the rows
//! as a gzip-compressed CSV file ([`dialect::csv_rows`]) are PUT into the staging table's own stage and
//! loaded with one COPY ([`dialect::put_file`], [`dialect::copy_into_stage`]) — two statements whatever the
//! batch size. The upload is the one the PUT answer asks for, made as Snowflake's connectors make it
//! (`client/upload.rs`): to S3, GCS or Azure, encrypted on the client with the answer's
//! `encryptionMaterial`, or plain to a presigned URL; where the PUT or the upload fails, or the answer asks
//! for something else, the session falls back to the inserts for good.
//!
//! The local test server (fakesnow behind `scripts/fakesnow_json.py`) speaks the same protocol on DuckDB;
//! its shim makes DuckDB behave as Snowflake where Sluice depends on it (keys not enforced, MERGE error
//! 100090, quoted names matched exactly, `inf` binds refused) and injects the failures of a real service
//! ("still running", result chunks, token expiry, HTTP 429/5xx) when a test asks for them. Its stages
//! answer as S3 internal stages do, with an S3-protocol server (moto) behind them, and it decrypts what
//! Sluice uploads there. It does not check passwords, JWTs or S3 signatures: the JWT (claims, RS256
//! signature, key fingerprint) is proved by the unit tests of [`auth`], SigV4 and the GCS and Azure upload
//! shapes by those of `client/upload.rs`.

pub mod auth;
pub mod client;
pub mod config;
pub mod dialect;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};

pub use config::{Credentials, SnowflakeSettings};

use crate::session::{SessionGuard, Sessions};
use crate::{
    Capabilities, Destination, DestinationError, ErrorKind, Result, Row, TableRef, TestReport,
    UpsertCounts, WriteTarget,
};

/// Statements sent to Snowflake by every destination of this process (what a benchmark reports).
static STATEMENTS_SENT: AtomicU64 = AtomicU64::new(0);

/// How many statements all Snowflake destinations of this process have sent so far.
pub fn statements_sent() -> u64 {
    STATEMENTS_SENT.load(Ordering::Relaxed)
}

/// Statements sent to one database: all of them, and those that need a warehouse (anything but the
/// metadata-only `DESCRIBE`, `SHOW` and `USE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatementCounts {
    pub all: u64,
    pub warehouse: u64,
}

static BY_DATABASE: std::sync::Mutex<Option<std::collections::HashMap<String, StatementCounts>>> =
    std::sync::Mutex::new(None);

fn count_statement(database: &str, sql: &str) {
    STATEMENTS_SENT.fetch_add(1, Ordering::Relaxed);
    let mut map = BY_DATABASE.lock().unwrap_or_else(|e| e.into_inner());
    let c = map
        .get_or_insert_with(Default::default)
        .entry(database.to_string())
        .or_default();
    c.all += 1;
    if !dialect::is_metadata_only(sql) {
        c.warehouse += 1;
    }
}

/// The statements all Snowflake destinations of this process sent to `database` (as named in their
/// settings), so that a test or a benchmark can tell what a run cost.
pub fn statements_sent_to(database: &str) -> StatementCounts {
    BY_DATABASE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(database).copied())
        .unwrap_or_default()
}

pub struct Snowflake {
    conn: std::result::Result<client::Connection, DestinationError>,
    statements: Arc<AtomicU64>,
    sessions: Sessions<client::Session>,
}

impl Snowflake {
    /// Builds the destination; nothing is connected until the first call.
    pub fn new(settings: SnowflakeSettings) -> Self {
        let statements = Arc::new(AtomicU64::new(0));
        Self {
            conn: client::Connection::new(settings, statements.clone()),
            statements,
            sessions: Sessions::new(),
        }
    }

    /// Loads every batch with inserts, never through a stage file (PUT + COPY), which large batches
    /// otherwise use where the server allows.
    pub fn inserts_only(mut self) -> Self {
        if let Ok(conn) = &mut self.conn {
            conn.load_from_file = false;
        }
        self
    }

    /// How many statements this destination has sent.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    fn conn(&self) -> Result<&client::Connection> {
        self.conn.as_ref().map_err(Clone::clone)
    }

    /// The session for one call, logged in.
    async fn session(&self) -> Result<SessionGuard<'_, client::Session>> {
        let conn = self.conn()?;
        self.sessions.connected(|| conn.login(true)).await
    }
}

#[async_trait]
impl Destination for Snowflake {
    fn capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    async fn test(&self) -> Result<TestReport> {
        let conn = self.conn()?;
        // A session of its own, without context, so that each of role, warehouse, database and schema is
        // checked (and named when it fails).
        let mut session = conn.login(false).await?;
        session.test(conn).await
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        dialect::validate_identifier(name, "the table name")
            .map_err(|e| DestinationError::new(ErrorKind::Config, e))?;
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().describe_table(conn, name).await;
        s.settle(result)
    }

    async fn list_tables(&self) -> Result<Vec<TableRef>> {
        let conn = self.conn()?;
        let schema = conn.settings().schema.clone();
        let mut s = self.session().await?;
        let result = s.session().list_tables(conn).await;
        let names = s.settle(result)?;
        Ok(names
            .into_iter()
            .map(|name| TableRef {
                schema: Some(schema.clone()),
                name,
            })
            .collect())
    }

    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let conn = self.conn()?;
        let before = self.statements();
        let mut s = self.session().await?;
        let result = s.session().upsert(conn, target, rows).await;
        if let Err(e) = &result {
            if crate::session::breaks_session(e) {
                // The session is about to be dropped, maybe inside the batch's transaction: end it on the
                // server too, so that its locks go now.
                conn.logout(s.session()).await;
            }
        }
        let result = s.settle(result);
        tracing::debug!(
            table = %target.table.name,
            rows = rows.len(),
            statements = self.statements() - before,
            ok = result.is_ok(),
            "wrote a batch to Snowflake"
        );
        result
    }

    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().delete(conn, target, keys).await;
        s.settle(result)
    }

    async fn table_identity(&self, name: &str) -> Result<Option<String>> {
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().table_identity(conn, name).await;
        s.settle(result)
    }

    async fn count_rows(&self, target: &WriteTarget) -> Result<u64> {
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().count_rows(conn, target).await;
        s.settle(result)
    }

    async fn read_rows(&self, target: &WriteTarget, keys: &[Value]) -> Result<Vec<Vec<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let conn = self.conn()?;
        let mut s = self.session().await?;
        let result = s.session().read_rows(conn, target, keys).await;
        s.settle(result)
    }
}
