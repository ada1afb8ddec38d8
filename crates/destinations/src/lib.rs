//! Destination databases: connect and test, describe a table, upsert rows by key, delete rows by key.
//!
//! One small [`Destination`] trait, and a closed set of implementations chosen by [`open`] with a `match`
//! (no plugin registry: the databases are known at compile time). Each implementation lives in its own
//! module split into `config` (settings and their validation), `dialect` (pure SQL text, unit-tested) and
//! `client` (I/O).
//!
//! Contracts shared by all destinations:
//! - identifiers are validated and quoted by the dialect; values are always bound, never pasted into SQL;
//! - [`Destination::upsert`] is atomic for the batch: every row lands or none does, and a rejection caused by
//!   the data comes back with [`ErrorKind::BadData`] so that [`upsert_isolating`] can split the batch and
//!   find the bad rows;
//! - only the given columns are written: an update leaves other columns as they were, an insert leaves them
//!   to their defaults;
//! - errors carry a kind; the retry policy and HTTP status are a `match` on it.
//!
//! [`connectors::connectors`] describes every kind and its settings fields for the API and the UI.
//! `tests/conformance/` holds the suite every destination must pass, written once against this trait: a
//! new destination adds a `Harness` for its database and invokes `conformance_tests!` with it.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;
use sluice_core::{FieldErrors, TableDescription, Value};

pub mod clickhouse;
pub mod connectors;
pub mod mysql;
pub mod postgres;
mod settings;
pub mod snowflake;
pub mod sqlite;

/// What went wrong, in terms that decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Connection refused or reset, server shutting down, too many connections: retry later.
    Unavailable,
    Timeout,
    /// Wrong user or password, bad certificate.
    Auth,
    /// The user lacks a privilege.
    Permission,
    /// The settings are invalid (caught before connecting).
    Config,
    /// The table (or schema, or database) does not exist.
    NotFound,
    /// The table no longer fits the pipeline: a column is missing or changed type.
    SchemaMismatch,
    /// The database refused the data: too long, out of range, constraint violated …
    BadData,
    /// Deadlock or serialization failure: retry the same batch.
    Conflict,
    Internal,
}

impl ErrorKind {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Conflict
        )
    }
    /// A stable code for API answers (`DestinationUnavailable`, …).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Unavailable => "DestinationUnavailable",
            ErrorKind::Timeout => "DestinationTimeout",
            ErrorKind::Auth => "DestinationAuthFailed",
            ErrorKind::Permission => "DestinationPermissionDenied",
            ErrorKind::Config => "InvalidDestinationSettings",
            ErrorKind::NotFound => "TableNotFound",
            ErrorKind::SchemaMismatch => "TableChanged",
            ErrorKind::BadData => "RowRejected",
            ErrorKind::Conflict => "DestinationConflict",
            ErrorKind::Internal => "DestinationError",
        }
    }
}

/// An error from a destination, with the database's own message (never containing secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DestinationError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DestinationError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

pub type Result<T, E = DestinationError> = std::result::Result<T, E>;

/// The outcome of a successful connection test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub server_version: String,
    /// What was checked, in words (`can create a temporary table in schema public`, …).
    pub checks: Vec<String>,
}

/// Where and how a batch is written.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    /// The table as described at the start of the run.
    pub table: TableDescription,
    /// The written columns, in the order of each row's values. Contains `key`.
    pub columns: Vec<String>,
    /// The key column (unique or primary key in the table).
    pub key: String,
    /// A value that grows with every run (see [`run_version`]): destinations that write new versions of
    /// rows instead of updating them (ClickHouse) fill their version column with it.
    pub run_version: u64,
}

/// A run's version: microseconds since the Unix epoch, and greater than any earlier value returned in this
/// process (so two runs started in the same microsecond, or across a small clock step back, still order).
pub fn run_version() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
    let prev = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .expect("the closure always returns Some");
    now.max(prev + 1)
}

impl WriteTarget {
    pub fn key_index(&self) -> usize {
        self.columns
            .iter()
            .position(|c| *c == self.key)
            .expect("the key column is among the written columns")
    }
}

/// One row to upsert: values in [`WriteTarget::columns`] order, already converted to the column types.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub values: Vec<Value>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertCounts {
    pub inserted: u64,
    pub updated: u64,
}

/// One destination database.
#[async_trait]
pub trait Destination: Send + Sync {
    /// Connects (with a timeout), reports the server version and checks that the user can read and
    /// write where pipelines will write.
    async fn test(&self) -> Result<TestReport>;

    /// The table's columns, keys and issues; `Ok(None)` when it does not exist.
    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>>;

    /// Upserts `rows` by the key column, atomically. Rows have distinct keys. Returns how many rows were
    /// inserted and how many updated. A data error fails the whole batch with [`ErrorKind::BadData`].
    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts>;

    /// Deletes the rows whose key is one of `keys`; returns how many were deleted.
    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64>;

    /// Whether [`Destination::upsert`]'s counts tell inserts from updates. A destination that writes new
    /// versions of rows without knowing whether the key was there (ClickHouse) answers false and counts
    /// every row as inserted; the engine then counts from its sync state (a key it recorded as written
    /// is an update).
    fn reports_upsert_counts(&self) -> bool {
        true
    }

    /// How many rows a run hands to one [`Destination::upsert`] unless the instance sets
    /// `SLUICE_BATCH_SIZE`: large enough that each batch's round trips, transaction and (for ClickHouse)
    /// part stay small against its rows; small enough that a run's memory stays bounded (a run holds a
    /// few batches at once).
    fn batch_rows(&self) -> usize {
        10_000
    }

    /// Whether [`Destination::upsert_unconfirmed`] may leave rows unconfirmed until
    /// [`Destination::confirm`]. A destination answers true when writes spanning several batches are
    /// much cheaper for it (ClickHouse makes a part, and later merges it, per insert).
    fn defers_confirmation(&self) -> bool {
        false
    }

    /// Upserts `rows` as [`Destination::upsert`] does, except that the rows may stay unconfirmed — sent,
    /// but not known to be stored — until the next [`Destination::confirm`]. Errors of `rows` themselves
    /// are reported here, as by `upsert`. Any other use of the destination may confirm them earlier.
    async fn upsert_unconfirmed(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        self.upsert(target, rows).await
    }

    /// Waits until every row [`Destination::upsert_unconfirmed`] left unconfirmed is stored. An error
    /// means none of them can be counted as written (some may be): they must be written again, and this
    /// must not be retried as if nothing was lost.
    async fn confirm(&self) -> Result<()> {
        Ok(())
    }
}

/// A destination kind's settings, validated: every problem is reported with its field name.
pub fn validate_settings(kind: &str, settings: &Json) -> std::result::Result<(), FieldErrors> {
    open(kind, settings).map(|_| ())
}

/// Builds the destination of `kind` from its settings (connecting lazily, on first use).
pub fn open(kind: &str, settings: &Json) -> std::result::Result<Box<dyn Destination>, FieldErrors> {
    match kind {
        "postgresql" => Ok(Box::new(postgres::Postgres::new(
            postgres::PostgresSettings::from_json(settings)?,
        ))),
        "mysql" => Ok(Box::new(mysql::Mysql::new(
            mysql::MysqlSettings::from_json(settings)?,
        ))),
        "clickhouse" => Ok(Box::new(clickhouse::ClickHouse::new(
            clickhouse::ClickHouseSettings::from_json(settings)?,
        ))),
        "snowflake" => Ok(Box::new(snowflake::Snowflake::new(
            snowflake::SnowflakeSettings::from_json(settings)?,
        ))),
        "sqlite" => Ok(Box::new(sqlite::Sqlite::new(
            sqlite::SqliteSettings::from_json(settings)?,
        ))),
        other => {
            let mut e = FieldErrors::new();
            let known = connectors::connectors()
                .iter()
                .map(|c| c.kind)
                .collect::<Vec<_>>()
                .join(", ");
            if connectors::connectors().iter().any(|c| c.kind == other) {
                e.add(
                    "type",
                    format!("the {other} destination is not available in this build yet"),
                );
            } else {
                e.add(
                    "type",
                    format!("unknown destination type `{other}`: expected one of {known}"),
                );
            }
            Err(e)
        }
    }
}

/// A row that the database refused, with its index in the batch and the database's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    pub index: usize,
    pub message: String,
}

/// Upserts `rows`; when the database rejects the batch for its data, splits it in halves until the bad
/// rows are found, so that every good row lands and each bad one is reported with the database's message.
/// Errors other than [`ErrorKind::BadData`] are returned as they are.
pub async fn upsert_isolating(
    dest: &dyn Destination,
    target: &WriteTarget,
    rows: &[Row],
) -> Result<(UpsertCounts, Vec<RejectedRow>)> {
    isolating(dest, target, rows, false).await
}

/// [`upsert_isolating`] through [`Destination::upsert_unconfirmed`]: the rows that are not rejected may
/// stay unconfirmed until [`Destination::confirm`].
pub async fn upsert_isolating_unconfirmed(
    dest: &dyn Destination,
    target: &WriteTarget,
    rows: &[Row],
) -> Result<(UpsertCounts, Vec<RejectedRow>)> {
    isolating(dest, target, rows, true).await
}

async fn isolating(
    dest: &dyn Destination,
    target: &WriteTarget,
    rows: &[Row],
    unconfirmed: bool,
) -> Result<(UpsertCounts, Vec<RejectedRow>)> {
    let mut counts = UpsertCounts::default();
    let mut rejected = Vec::new();
    // An explicit stack of (offset, len) slices keeps this iterative and in order.
    let mut stack = vec![(0usize, rows.len())];
    while let Some((start, len)) = stack.pop() {
        if len == 0 {
            continue;
        }
        let slice = &rows[start..start + len];
        let written = if unconfirmed {
            dest.upsert_unconfirmed(target, slice).await
        } else {
            dest.upsert(target, slice).await
        };
        match written {
            Ok(c) => {
                counts.inserted += c.inserted;
                counts.updated += c.updated;
            }
            Err(e) if e.kind == ErrorKind::BadData => {
                if len == 1 {
                    rejected.push(RejectedRow {
                        index: start,
                        message: e.message,
                    });
                } else {
                    let half = len / 2;
                    stack.push((start + half, len - half));
                    stack.push((start, half));
                }
            }
            Err(e) => return Err(e),
        }
    }
    rejected.sort_by_key(|r| r.index);
    Ok((counts, rejected))
}
