//! Destination databases: connect and test, describe a table, upsert rows by key, delete rows by key.
//!
//! One small [`Destination`] trait, and a closed set of implementations chosen by [`open`] with a `match`
//! (no plugin registry: the databases are known at compile time). Each implementation lives in its own
//! module split into `config` (its settings, declared once, and their validation), `dialect` (pure SQL
//! text and the database's [`Capabilities`], unit-tested) and `client` (I/O).
//!
//! Each destination also states what its database is, as data: one [`Capabilities`] value (identifier
//! limits, quoting and case rule, upsert and delete style, batch and statement limits, whether it reports
//! insert/update counts, defers confirmation or enforces keys), which [`Destination::capabilities`]
//! answers and which the engine and the checks of a pipeline read instead of asking which database it is.
//!
//! Contracts shared by all destinations:
//! - identifiers are validated and quoted by the rules of the destination's [`Capabilities`], written
//!   once; values are always bound, never pasted into SQL;
//! - a [`WriteTarget`] names its columns as the table stores them, and its key as the table stores it or
//!   as a user writes it (the table's identifier rule finds the stored name);
//! - [`Destination::upsert`] is atomic for the batch: every row lands or none does, and a rejection caused by
//!   the data comes back with [`ErrorKind::BadData`] so that [`upsert_isolating`] can split the batch and
//!   find the bad rows;
//! - only the given columns are written: an update leaves other columns as they were, an insert leaves them
//!   to their defaults;
//! - values arrive converted to the column types by [`sluice_core::convert`] and are written as they are;
//!   where the wire format needs a value of the column's own kind (PostgreSQL's binary format,
//!   ClickHouse's native blocks), a value of another kind is converted by those same rules, so a
//!   destination never refuses what a pipeline's conversion accepts;
//! - one session per destination, under the same rules everywhere (see `session`): opened on first use,
//!   replaced once closed, dropped after a failure that leaves its connection unfit;
//! - a table can be checked against what was written to it (see [`drift`]): its identity, its row
//!   count, and its rows read back by key as the values written;
//! - errors carry a kind; the retry policy and HTTP status are a `match` on it.
//!
//! The same connection is also read as a source ([`source::Source`], built by [`source::open_source`]):
//! the columns of a table or a `SELECT` with their Customer Model types, a sample, and pages of rows in
//! keyset order — by `(cursor, id)` from a mark, or by id for a full read — so a read holds one page,
//! never the table. It is written once over each database's small [`source::Reads`] side, with the
//! session, identifier rules and value decoding the destination already has.
//!
//! [`connectors::connectors`] describes every kind and its settings fields for the API and the UI, from the
//! same declaration of each kind's settings that parses them (see `settings`).
//! `tests/conformance/` holds the suite every destination must pass, written once against this trait: a
//! new destination adds a `Harness` for its database and invokes `conformance_tests!` with it;
//! `tests/sources/` holds the one every source must pass (`SourceHarness`, `source_tests!`).

use std::borrow::Cow;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;
use sluice_core::{FieldErrors, TableDescription, Value};

pub use sluice_core::capabilities::{Capabilities, Deletes, IdentifierCase, UpsertStyle};

pub mod clickhouse;
pub mod connectors;
pub mod drift;
pub mod mysql;
pub mod postgres;
mod session;
mod settings;
pub use settings::check_secret_reuse;
pub mod snowflake;
pub mod source;
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
            // The table, its schema or the database itself: the message says which.
            ErrorKind::NotFound => "NotFound",
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

/// A table a pipeline can write to, as [`Destination::list_tables`] names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRef {
    /// The schema the destination writes in, where the database has schemas inside a database
    /// (PostgreSQL, Snowflake); `None` where the database is the only namespace.
    pub schema: Option<String>,
    /// The name as the database stores it, usable as a pipeline's `table`.
    pub name: String,
}

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
    /// The position of the key among [`Self::columns`].
    pub fn key_index(&self) -> usize {
        let key = self.key_column();
        self.columns
            .iter()
            .position(|c| c == key)
            .expect("the key column is among the written columns")
    }

    /// The key column's name as the table stores it: [`Self::key`] may be written as a user writes it,
    /// which the table's identifier rule resolves.
    pub fn key_column(&self) -> &str {
        self.table.stored_name(&self.key)
    }

    /// Checks the target against a database's identifier rules, and gives it with its key under the
    /// stored name — the name the dialect quotes.
    pub(crate) fn checked(&self, capabilities: &Capabilities) -> Result<Cow<'_, WriteTarget>> {
        let config = |e| DestinationError::new(ErrorKind::Config, e);
        capabilities
            .validate_identifier(&self.table.name, "the table name")
            .map_err(config)?;
        for c in &self.columns {
            capabilities
                .validate_identifier(c, "a column name")
                .map_err(config)?;
        }
        let key = self.key_column();
        if !self.columns.iter().any(|c| c == key) {
            return Err(config(format!(
                "the key column `{}` is not among the written columns",
                self.key
            )));
        }
        Ok(if key == self.key {
            Cow::Borrowed(self)
        } else {
            Cow::Owned(WriteTarget {
                key: key.to_string(),
                ..self.clone()
            })
        })
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
///
/// # Deferred confirmation
///
/// A destination whose capabilities say it [defers confirmation](Capabilities::defers_confirmation)
/// may leave the rows of [`Destination::upsert_unconfirmed`] sent but not yet stored; the engine
/// records them as written only once [`Destination::confirm`] succeeds. To overlap the server's work
/// with its own, the engine polls the future of `confirm()` once, goes on writing the next batches, and
/// awaits the same future later. So **the first poll of `confirm()` sends what ends the write**
/// (ClickHouse: the end of its open insert) and lets go of what the next calls need: rows written after
/// that first poll belong to the next confirmation, never to this one, and their writes do not wait for
/// this one to finish.
#[async_trait]
pub trait Destination: Send + Sync {
    /// The facts about this database that decide how it is written to (see [`Capabilities`]): how many
    /// rows a run hands to one upsert, whether upsert counts tell inserts from updates, whether
    /// confirmation is deferred, … No default: a destination that wraps another answers with the inner
    /// one's, and a forgotten answer must not compile.
    fn capabilities(&self) -> &'static Capabilities;

    /// Connects (with a timeout), reports the server version and checks that the user can read and
    /// write where pipelines will write.
    async fn test(&self) -> Result<TestReport>;

    /// The table's columns, keys and issues; `Ok(None)` when it does not exist.
    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>>;

    /// The tables pipelines can write to where this destination writes (its schema, or its database),
    /// sorted by name: ordinary tables only, no views, no system or temporary tables. A database or
    /// schema that does not exist is [`ErrorKind::NotFound`] naming it.
    async fn list_tables(&self) -> Result<Vec<TableRef>>;

    /// Upserts `rows` by the key column, atomically. Rows have distinct keys. Returns how many rows were
    /// inserted and how many updated. A data error fails the whole batch with [`ErrorKind::BadData`].
    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts>;

    /// Deletes the rows whose key is one of `keys`; returns how many were deleted.
    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64>;

    /// Sets up what upserting into `target` needs (PostgreSQL: its staging table and prepared
    /// statements) before the first rows are ready, so that a run does it while it reads its first
    /// page instead of after. Writing sets it up itself when this was not called or failed.
    async fn prepare_write(&self, _target: &WriteTarget) -> Result<()> {
        Ok(())
    }

    /// Upserts `rows` as [`Destination::upsert`] does, except that the rows may stay unconfirmed — sent,
    /// but not known to be stored — until the next [`Destination::confirm`]. Errors of `rows` themselves
    /// are reported here, as by `upsert`. Any other use of the destination may confirm them earlier.
    async fn upsert_unconfirmed(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        self.upsert(target, rows).await
    }

    /// Waits until every row [`Destination::upsert_unconfirmed`] left unconfirmed is stored. The first
    /// poll of the returned future sends what ends the write (see [Deferred
    /// confirmation](Destination#deferred-confirmation)). An error means none of them can be counted as
    /// written (some may be): they must be written again, and this must not be retried as if nothing was
    /// lost.
    async fn confirm(&self) -> Result<()> {
        Ok(())
    }

    /// A marker of the table's identity that changes when the table is dropped and created again
    /// (see [`drift`] for what each database gives); `Ok(None)` when the table does not exist. Only
    /// ever compared for equality with an earlier answer of the same destination kind.
    async fn table_identity(&self, name: &str) -> Result<Option<String>>;

    /// How many rows the target's table holds as Sluice would read them (ClickHouse: after `FINAL`,
    /// without tombstones). Each implementation states its cost (see [`drift`]).
    async fn count_rows(&self, target: &WriteTarget) -> Result<u64>;

    /// A cheap marker that changes whenever rows of the table may have been removed by anyone (deleted,
    /// truncated, the table rewritten), so that a run can skip [`Destination::count_rows`] while it is
    /// unchanged. `Ok(None)` when the database offers no such marker: the run counts every time.
    async fn change_marker(&self, _target: &WriteTarget) -> Result<Option<String>> {
        Ok(None)
    }

    /// The rows of the target's table whose key is one of `keys`, in no particular order: each with the
    /// values of [`WriteTarget::columns`] in that order, read back as the values Sluice writes for the
    /// column types (see [`drift::decode`]), so that hashing them gives the hash of the row as written
    /// when nobody changed it. Keys with no row have none.
    async fn read_rows(&self, target: &WriteTarget, keys: &[Value]) -> Result<Vec<Vec<Value>>>;
}

/// A kind's declared settings and, among them, those that decide where its secrets are sent (its
/// `SECRET_BINDING`); `None` for an unknown kind.
pub(crate) fn secret_binding(
    kind: &str,
) -> Option<(&'static [settings::Field], &'static [&'static str])> {
    Some(match kind {
        "postgresql" => (postgres::config::FIELDS, postgres::config::SECRET_BINDING),
        "mysql" => (mysql::config::FIELDS, mysql::config::SECRET_BINDING),
        "clickhouse" => (
            clickhouse::config::FIELDS,
            clickhouse::config::SECRET_BINDING,
        ),
        "snowflake" => (snowflake::config::FIELDS, snowflake::config::SECRET_BINDING),
        "sqlite" => (sqlite::config::FIELDS, &[]),
        _ => return None,
    })
}

/// A destination kind's settings, validated: every problem is reported with its field name.
pub fn validate_settings(kind: &str, settings: &Json) -> std::result::Result<(), FieldErrors> {
    open(kind, settings).map(|_| ())
}

/// Builds the destination of `kind` from its settings (connecting lazily, on first use).
pub fn open(kind: &str, settings: &Json) -> std::result::Result<Box<dyn Destination>, FieldErrors> {
    Ok(open_kind!(kind, settings))
}

/// The connection of `kind` built from its settings, boxed as the trait object the caller asks for
/// (every kind is both a [`Destination`] and a [`source::Source`]); an unknown kind returns its error.
macro_rules! open_kind {
    ($kind:expr, $settings:expr) => {
        match $kind {
            "postgresql" => Box::new($crate::postgres::Postgres::new(
                $crate::postgres::PostgresSettings::from_json($settings)?,
            )),
            "mysql" => Box::new($crate::mysql::Mysql::new(
                $crate::mysql::MysqlSettings::from_json($settings)?,
            )),
            "clickhouse" => Box::new($crate::clickhouse::ClickHouse::new(
                $crate::clickhouse::ClickHouseSettings::from_json($settings)?,
            )),
            "snowflake" => Box::new($crate::snowflake::Snowflake::new(
                $crate::snowflake::SnowflakeSettings::from_json($settings)?,
            )),
            "sqlite" => Box::new($crate::sqlite::Sqlite::new(
                $crate::sqlite::SqliteSettings::from_json($settings)?,
            )),
            other => return Err($crate::unknown_kind(other)),
        }
    };
}
pub(crate) use open_kind;

/// The refusal of a kind this build cannot open.
pub(crate) fn unknown_kind(kind: &str) -> FieldErrors {
    let mut e = FieldErrors::new();
    let known = connectors::connectors()
        .iter()
        .map(|c| c.kind)
        .collect::<Vec<_>>()
        .join(", ");
    if connectors::connectors().iter().any(|c| c.kind == kind) {
        e.add(
            "type",
            format!("the {kind} destination is not available in this build yet"),
        );
    } else {
        e.add(
            "type",
            format!("unknown destination type `{kind}`: expected one of {known}"),
        );
    }
    e
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_core::{Column, ColumnType, TableRules};

    fn every_kind() -> Vec<Box<dyn Destination>> {
        [
            (
                "postgresql",
                json!({"host": "h", "username": "u", "database": "d"}),
            ),
            ("mysql", json!({"host": "h", "username": "u", "database": "d"})),
            ("clickhouse", json!({"host": "h", "database": "d"})),
            (
                "snowflake",
                json!({"account": "o-a", "username": "u", "password": "p", "database": "d", "warehouse": "w"}),
            ),
            ("sqlite", json!({"path": "x.sqlite"})),
        ]
        .into_iter()
        .map(|(kind, settings)| open(kind, &settings).unwrap())
        .collect()
    }

    /// Each destination states its own capabilities, and no two are the same database.
    #[test]
    fn each_destination_states_its_capabilities() {
        let seen: Vec<_> = every_kind()
            .iter()
            .map(|d| {
                let c = d.capabilities();
                (
                    c.name,
                    c.batch_rows,
                    c.reports_upsert_counts,
                    c.defers_confirmation,
                    c.identifiers.case,
                )
            })
            .collect();
        use IdentifierCase::*;
        assert_eq!(
            seen,
            [
                ("PostgreSQL", 20_000, true, false, Exact),
                ("MySQL", 10_000, true, false, Exact),
                ("ClickHouse", 30_000, false, true, Exact),
                ("Snowflake", 10_000, true, false, UnquotedInsensitive),
                ("SQLite", 10_000, true, false, Exact),
            ]
        );
        let deletes: Vec<_> = every_kind()
            .iter()
            .map(|d| d.capabilities().deletes)
            .collect();
        assert_eq!(deletes[2], Deletes::Tombstones);
        assert!(deletes
            .iter()
            .enumerate()
            .all(|(i, d)| i == 2 || *d == Deletes::ByKey));
    }

    fn target(case: IdentifierCase, columns: &[&str], key: &str) -> WriteTarget {
        let text = Some(ColumnType::Text { max_len: None });
        WriteTarget {
            table: TableDescription {
                name: "people".into(),
                columns: ["ID", "Name", "name", "e-mail"]
                    .iter()
                    .map(|n| Column {
                        name: n.to_string(),
                        native_type: "text".into(),
                        nullable: true,
                        ty: text.clone(),
                        has_default: false,
                    })
                    .collect(),
                keys: vec![vec!["ID".into()]],
                has_primary_key: true,
                issues: vec![],
                rules: TableRules {
                    identifiers: case,
                    ..TableRules::default()
                },
            },
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key: key.into(),
            run_version: 1,
        }
    }

    #[test]
    fn targets_are_checked_by_the_databases_rules() {
        let pg = &postgres::dialect::CAPABILITIES;
        let t = target(IdentifierCase::Exact, &["ID", "name"], "ID");
        assert!(matches!(t.checked(pg).unwrap(), Cow::Borrowed(_)));
        let long = "x".repeat(64);
        let e = target(IdentifierCase::Exact, &["ID", &long], "ID")
            .checked(pg)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert_eq!(e.message, "a column name is longer than 63 bytes");
        // MySQL counts characters and refuses a trailing space; SQLite has no limit.
        let my = &mysql::dialect::CAPABILITIES;
        assert!(target(IdentifierCase::Exact, &["ID", &long], "ID")
            .checked(my)
            .is_ok());
        assert!(target(IdentifierCase::Exact, &["ID", "a "], "ID")
            .checked(my)
            .unwrap_err()
            .message
            .contains("which MySQL does not allow"));
        assert!(
            target(IdentifierCase::Exact, &["ID", &"x".repeat(300)], "ID")
                .checked(&sqlite::dialect::CAPABILITIES)
                .is_ok()
        );
        let e = target(IdentifierCase::Exact, &["name"], "ID")
            .checked(pg)
            .unwrap_err();
        assert_eq!(
            e.message,
            "the key column `ID` is not among the written columns"
        );
        // Names exact elsewhere: `id` is not `ID`.
        assert!(target(IdentifierCase::Exact, &["ID", "name"], "id")
            .checked(pg)
            .is_err());
    }

    /// A key written as in Snowflake's SQL reaches the dialect under its stored name.
    #[test]
    fn a_key_written_as_a_user_writes_it_is_the_stored_column() {
        let sf = &snowflake::dialect::CAPABILITIES;
        let t = target(IdentifierCase::UnquotedInsensitive, &["Name", "ID"], "id");
        assert_eq!(t.key_column(), "ID");
        assert_eq!(t.key_index(), 1);
        let checked = t.checked(sf).unwrap();
        assert_eq!(checked.key, "ID");
        assert_eq!(checked.key_index(), 1);
        assert_eq!(
            snowflake::dialect::delete_by_keys("T", &checked.key, 1),
            "DELETE FROM T WHERE \"ID\" IN (?)"
        );
        let merge =
            snowflake::dialect::merge("T", "ST", &checked.columns, &checked.key, &[None, None]);
        assert!(
            merge.starts_with("MERGE INTO T t USING \"ST\" s ON t.\"ID\" = s.\"ID\" "),
            "{merge}"
        );
        assert!(!merge.contains("\"id\""), "{merge}");
        let quoted = target(IdentifierCase::UnquotedInsensitive, &["ID"], "\"ID\"");
        assert_eq!(quoted.checked(sf).unwrap().key, "ID");
        assert!(
            target(IdentifierCase::UnquotedInsensitive, &["ID"], "\"id\"")
                .checked(sf)
                .is_err()
        );
    }
}
