//! The embedded stores: SQLite files in the data directory (`metadata.db`, `profiles.db`).
//!
//! Each file is opened with one writer connection and a few reader connections. WAL mode lets the readers
//! proceed from their snapshot while a long write (a 10,000-profile batch, a pipeline deletion) holds the
//! writer, so an export run keeps paging profiles while an import is loading more. Writes take the write
//! lock up front (`BEGIN IMMEDIATE`) so that two processes on one file wait on `busy_timeout` instead of
//! failing when a read transaction upgrades.
//!
//! Every call runs on tokio's blocking pool; async callers only wait on a semaphore, never on a mutex held
//! by a blocked thread.
//!
//! Timestamps are INTEGER microseconds since the epoch; JSON is kept as text (`doc` of profiles is what
//! `Filter::to_sql(SqlDialect::Sqlite, …)` reads with SQLite's JSON functions).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value as Json};
use sluice_core::filter::{self, Filter, SqlDialect, SqlParam};
use sluice_core::{Profile, RawProfile, Schema};
use tokio::sync::Semaphore;

use crate::codec::{self, corrupt};

mod coord;
use crate::{
    Catalog, ChangeCounts, DestinationRecord, PipelineRecord, ProfileStore, Progress, Result,
    RunLog, RunRecord, SecretBox, StoreError, SyncCheckpoint, SyncEntry, SyncKey, SyncState,
    UpsertOutcome, TOMBSTONE_RETENTION,
};

/// Reader connections per database file; more would only compete for the machine's few cores.
const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------
// Connections, pooling and migrations
// ---------------------------------------------------------------------------------------------------------

struct Db {
    inner: Arc<DbInner>,
}

struct DbInner {
    path: PathBuf,
    writer: Mutex<Connection>,
    write_gate: Arc<Semaphore>,
    readers: Mutex<Vec<Connection>>,
    read_gate: Arc<Semaphore>,
    setup: fn(&Connection) -> rusqlite::Result<()>,
}

impl Db {
    fn open(
        path: &Path,
        component: &str,
        migrations: &[&str],
        setup: fn(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Db> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut writer = open_connection(path, setup, false)?;
        migrate(&mut writer, path, component, migrations)?;
        Ok(Db {
            inner: Arc::new(DbInner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                write_gate: Arc::new(Semaphore::new(1)),
                readers: Mutex::new(Vec::with_capacity(READERS)),
                read_gate: Arc::new(Semaphore::new(READERS)),
                setup,
            }),
        })
    }

    /// Runs `f` with the writer connection, on the blocking pool.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .inner
            .write_gate
            .clone()
            .acquire_owned()
            .await
            .expect("the write gate is never closed");
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(join_error)?
    }

    /// Runs `f` with a reader connection (opened on first need), on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let permit = self
            .inner
            .read_gate
            .clone()
            .acquire_owned()
            .await
            .expect("the read gate is never closed");
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_connection(&inner.path, inner.setup, true)?,
            };
            let out = f(&conn);
            inner
                .readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            out
        })
        .await
        .map_err(join_error)?
    }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    StoreError::Backend("the store task was cancelled".into())
}

/// SQLite's process-wide settings, made once before the first connection (SQLite refuses them after).
fn configure_sqlite() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Memory statistics take a process-wide mutex on every allocation SQLite makes, which the
        // reader and writer threads of a run then contend for; Sluice never reads them.
        // SAFETY: a documented start-up option with an int argument, set before SQLite is initialized
        // (if something in the process initialized it already, SQLite refuses the call and nothing
        // changes).
        unsafe {
            rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0);
        }
    });
}

fn open_connection(
    path: &Path,
    setup: fn(&Connection) -> rusqlite::Result<()>,
    reader: bool,
) -> Result<Connection> {
    configure_sqlite();
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
    let configure = || -> rusqlite::Result<()> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if !reader {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(path = %path.display(), mode, "SQLite could not switch to WAL mode");
            }
        }
        // NORMAL is durable across process crashes in WAL mode; only a power loss can drop the last
        // commits, which the next run repairs (sync state lagging behind only means rewriting rows).
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        if reader {
            conn.execute_batch("PRAGMA query_only = ON;")?;
        }
        conn.set_prepared_statement_cache_capacity(32);
        setup(&conn)
    };
    // Switching a fresh file to WAL needs it to itself, and SQLite reports BUSY at once rather than
    // calling the busy handler when several instances open a new store together: try again until the
    // busy timeout (every setting above is idempotent).
    let started = std::time::Instant::now();
    loop {
        match configure() {
            Ok(()) => return Ok(conn),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot set up {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

fn no_setup(_: &Connection) -> rusqlite::Result<()> {
    Ok(())
}

/// Applies the migrations not yet recorded in `schema_version`, in one transaction. Refuses a file
/// written by a newer Sluice, whose tables this version does not know.
fn migrate(conn: &mut Connection, path: &Path, component: &str, migrations: &[&str]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             component TEXT PRIMARY KEY NOT NULL,
             version INTEGER NOT NULL,
             migrated_at INTEGER NOT NULL
         )",
    )
    .map_err(sql_error)?;
    let current: i64 = tx
        .query_row(
            "SELECT version FROM schema_version WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .unwrap_or(0);
    let latest = migrations.len() as i64;
    if current > latest {
        return Err(corrupt(format!(
            "the {component} database {} has schema version {current}, but this Sluice knows versions up to \
             {latest}: it was written by a newer Sluice; upgrade Sluice to open it",
            path.display()
        )));
    }
    if current == latest {
        return Ok(());
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(|e| {
            StoreError::Backend(format!(
                "migration {} of the {component} database failed: {e}",
                i + 1
            ))
        })?;
    }
    tx.execute(
        "INSERT INTO schema_version (component, version, migrated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (component) DO UPDATE SET version = excluded.version, migrated_at = excluded.migrated_at",
        params![component, latest, codec::now().timestamp_micros()],
    )
    .map_err(sql_error)?;
    tx.commit().map_err(sql_error)?;
    tracing::info!(component, from = current, to = latest, path = %path.display(), "migrated the SQLite store");
    Ok(())
}

fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The constraint a write broke, when it was a uniqueness or foreign-key rule.
enum Violation {
    Unique(String),
    ForeignKey,
}

fn violation(e: &rusqlite::Error) -> Option<Violation> {
    let rusqlite::Error::SqliteFailure(err, message) = e else {
        return None;
    };
    if err.code != ErrorCode::ConstraintViolation {
        return None;
    }
    const UNIQUE: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
    const PRIMARY_KEY: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
    const FOREIGN_KEY: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;
    match err.extended_code {
        UNIQUE | PRIMARY_KEY => Some(Violation::Unique(message.clone().unwrap_or_default())),
        FOREIGN_KEY => Some(Violation::ForeignKey),
        _ => None,
    }
}

fn time(micros: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    codec::micros_to_time(micros)
}

fn micros(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

// ---------------------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------------------

const METADATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE customer_model (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    model TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE destinations (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE pipelines (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    destination TEXT NOT NULL REFERENCES destinations (id),
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (destination, name)
);
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    processed INTEGER NOT NULL,
    total INTEGER,
    counts TEXT NOT NULL,
    errors TEXT NOT NULL,
    message TEXT
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, queued_at, seq);
CREATE INDEX runs_unfinished ON runs (queued_at, seq) WHERE status IN ('queued', 'running');
CREATE TABLE sync_state (
    pipeline TEXT NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    profile_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sync_state_by_key ON sync_state (pipeline, key);
"#,
    r#"
CREATE TABLE sync_checkpoints (
    pipeline TEXT PRIMARY KEY NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    mark INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    taken_at INTEGER NOT NULL
);
"#,
    r#"
ALTER TABLE runs ADD COLUMN owner TEXT;
ALTER TABLE runs ADD COLUMN lease_until INTEGER;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET status = 'failed', finished_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000,
    message = 'Sluice stopped while this run was in progress; the next run will repair the table'
WHERE status IN ('queued', 'running')
  AND seq NOT IN (SELECT max(seq) FROM runs WHERE status IN ('queued', 'running') GROUP BY pipeline);
CREATE UNIQUE INDEX runs_one_unfinished ON runs (pipeline) WHERE status IN ('queued', 'running');
CREATE TABLE schedules (
    pipeline TEXT PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    last_tick INTEGER,
    pending INTEGER NOT NULL
);
"#,
    // Sync entries name their pipeline by a small number instead of its id: the id text in every key of
    // both B-trees, and a foreign-key check per entry, made recording a million entries about twice as
    // slow. The number's row holds the foreign key; deleting it (with the pipeline) drops the entries.
    r#"
CREATE TABLE sync_pipelines (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    pipeline TEXT NOT NULL UNIQUE REFERENCES pipelines (id) ON DELETE CASCADE
);
CREATE TABLE sync_entries (
    pipeline INTEGER NOT NULL,
    profile_id TEXT NOT NULL,
    key TEXT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX sync_entries_by_key ON sync_entries (pipeline, key);
CREATE TRIGGER sync_pipelines_gone AFTER DELETE ON sync_pipelines BEGIN
    DELETE FROM sync_entries WHERE pipeline = old.num;
END;
INSERT INTO sync_pipelines (pipeline) SELECT DISTINCT pipeline FROM sync_state ORDER BY pipeline;
INSERT INTO sync_entries (pipeline, profile_id, key, hash)
    SELECT n.num, s.profile_id, s.key, s.hash FROM sync_state s JOIN sync_pipelines n ON n.pipeline = s.pipeline;
DROP TABLE sync_state;
"#,
    // An entry whose key is its profile's id (a pipeline keyed by `_id`) stores no key, and the key
    // index, a quarter of the cost of recording a first run, holds only keys of other kinds. A pipeline records
    // which forms it holds (see `sync_apply`); existing entries all have their key written out.
    r#"
DROP TRIGGER sync_pipelines_gone;
DROP INDEX sync_entries_by_key;
ALTER TABLE sync_entries RENAME TO sync_entries_old;
CREATE TABLE sync_entries (
    pipeline INTEGER NOT NULL,
    profile_id TEXT NOT NULL,
    key TEXT,
    hash BLOB NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
) WITHOUT ROWID;
INSERT INTO sync_entries (pipeline, profile_id, key, hash)
    SELECT pipeline, profile_id, key, hash FROM sync_entries_old;
DROP TABLE sync_entries_old;
CREATE UNIQUE INDEX sync_entries_by_key ON sync_entries (pipeline, key) WHERE key IS NOT NULL;
CREATE TRIGGER sync_pipelines_gone AFTER DELETE ON sync_pipelines BEGIN
    DELETE FROM sync_entries WHERE pipeline = old.num;
END;
ALTER TABLE sync_pipelines ADD COLUMN written_keys INTEGER NOT NULL DEFAULT 1;
ALTER TABLE sync_pipelines ADD COLUMN implied_keys INTEGER NOT NULL DEFAULT 0;
"#,
    // Entries of profiles that left while their rows are kept (`SyncEntry::left`) hold 1, every other
    // entry NULL: what entries written before read back, so "not left" has one form, and each entry pays
    // one byte of record header for the column (1 and NULL take no payload). No index: counting the left
    // entries of a pipeline is the same scan of its range of the primary key as counting all of them.
    r#"
ALTER TABLE sync_entries ADD COLUMN has_left INTEGER;
"#,
];

/// See [`crate::migrate_metadata_to`].
pub(crate) fn migrate_metadata_to(path: &Path, version: usize) -> Result<()> {
    let migrations = METADATA_MIGRATIONS.get(..version).ok_or_else(|| {
        StoreError::Backend(format!("there is no metadata schema version {version}"))
    })?;
    Db::open(path, "metadata", migrations, no_setup).map(drop)
}

/// Metadata in an SQLite file.
pub struct SqliteMetadata {
    db: Db,
    secrets: SecretBox,
}

impl SqliteMetadata {
    /// Opens (creating when absent) the file and brings its tables up to date.
    pub fn open(path: &Path, secrets: SecretBox) -> Result<SqliteMetadata> {
        Ok(SqliteMetadata {
            db: Db::open(path, "metadata", METADATA_MIGRATIONS, no_setup)?,
            secrets,
        })
    }
}

const DESTINATION_COLUMNS: &str = "id, name, kind, settings, created_at, updated_at";

fn destination_from_row(secrets: &SecretBox, r: &rusqlite::Row<'_>) -> Result<DestinationRecord> {
    let name: String = r.get(1).map_err(sql_error)?;
    let settings: String = r.get(3).map_err(sql_error)?;
    Ok(DestinationRecord {
        id: r.get(0).map_err(sql_error)?,
        settings: codec::open_settings(secrets, &name, &settings)?,
        name,
        kind: r.get(2).map_err(sql_error)?,
        created_at: time(r.get(4).map_err(sql_error)?)?,
        updated_at: time(r.get(5).map_err(sql_error)?)?,
    })
}

fn destination_conflict(e: rusqlite::Error, rec: &DestinationRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique(m)) if m.contains("destinations.name") => {
            StoreError::Conflict(format!("a destination named `{}` already exists", rec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a destination with id `{}` already exists", rec.id))
        }
        _ => sql_error(e),
    }
}

const PIPELINE_COLUMNS: &str = "id, spec, created_at, updated_at";

fn pipeline_from_row(r: &rusqlite::Row<'_>) -> Result<PipelineRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let spec: String = r.get(1).map_err(sql_error)?;
    Ok(PipelineRecord {
        spec: codec::spec_from_json(&id, &spec)?,
        id,
        created_at: time(r.get(2).map_err(sql_error)?)?,
        updated_at: time(r.get(3).map_err(sql_error)?)?,
    })
}

fn pipeline_conflict(e: rusqlite::Error, rec: &PipelineRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique(m)) if m.contains("pipelines.name") => {
            StoreError::Conflict(format!(
                "the destination already has a pipeline named `{}`",
                rec.spec.name
            ))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a pipeline with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.spec.destination
        )),
        None => sql_error(e),
    }
}

const RUN_COLUMNS: &str =
    "id, pipeline, trigger, status, queued_at, started_at, finished_at, processed, total, counts, errors, message";

fn run_from_row(r: &rusqlite::Row<'_>) -> Result<RunRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let status: String = r.get(3).map_err(sql_error)?;
    let counts: String = r.get(9).map_err(sql_error)?;
    let errors: String = r.get(10).map_err(sql_error)?;
    let opt_time = |i: usize| -> Result<_> {
        r.get::<_, Option<i64>>(i)
            .map_err(sql_error)?
            .map(time)
            .transpose()
    };
    Ok(RunRecord {
        pipeline: r.get(1).map_err(sql_error)?,
        trigger: r.get(2).map_err(sql_error)?,
        status: codec::status_from_str(&id, &status)?,
        queued_at: time(r.get(4).map_err(sql_error)?)?,
        started_at: opt_time(5)?,
        finished_at: opt_time(6)?,
        progress: Progress {
            processed: codec::to_u64(r.get(7).map_err(sql_error)?),
            total: r
                .get::<_, Option<i64>>(8)
                .map_err(sql_error)?
                .map(codec::to_u64),
        },
        counts: codec::counts_from_json(&id, &counts)?,
        errors: codec::errors_from_json(&id, &errors)?,
        message: r.get(11).map_err(sql_error)?,
        id,
    })
}

fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(f(row)?);
    }
    Ok(out)
}

#[async_trait]
impl Catalog for SqliteMetadata {
    async fn get_schema(&self) -> Result<Schema> {
        self.db
            .read(|c| {
                let model: Option<String> = c
                    .query_row("SELECT model FROM customer_model WHERE id = 1", [], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql_error)?;
                model.map_or_else(|| Ok(Schema::default()), |m| codec::schema_from_json(&m))
            })
            .await
    }

    async fn put_schema(&self, schema: &Schema) -> Result<()> {
        let model = codec::schema_to_json(schema);
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO customer_model (id, model, updated_at) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
                    params![model, codec::now().timestamp_micros()],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn list_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let secrets = self.secrets.clone();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY created_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], |r| destination_from_row(&secrets, r))
            })
            .await
    }

    async fn get_destination(&self, id: &str) -> Result<Option<DestinationRecord>> {
        let (secrets, id) = (self.secrets.clone(), id.to_owned());
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], |r| destination_from_row(&secrets, r))?.pop())
            })
            .await
    }

    async fn insert_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let settings = codec::seal_settings(&self.secrets, &rec.settings)?;
        let rec = rec.clone();
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO destinations (id, name, kind, settings, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        rec.id,
                        rec.name,
                        rec.kind,
                        settings,
                        micros(&rec.created_at),
                        micros(&rec.updated_at)
                    ],
                )
                .map_err(|e| destination_conflict(e, &rec))?;
                Ok(())
            })
            .await
    }

    async fn update_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let settings = codec::seal_settings(&self.secrets, &rec.settings)?;
        let rec = rec.clone();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE destinations SET name = ?2, kind = ?3, settings = ?4, updated_at = ?5 WHERE id = ?1",
                        params![rec.id, rec.name, rec.kind, settings, micros(&rec.updated_at)],
                    )
                    .map_err(|e| destination_conflict(e, &rec))?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("destination `{}` does not exist", rec.id)));
                }
                Ok(())
            })
            .await
    }

    async fn delete_destination(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql_error)?;
                let users = {
                    let mut stmt = tx
                        .prepare_cached("SELECT name FROM pipelines WHERE destination = ?1 ORDER BY created_at, seq")
                        .map_err(sql_error)?;
                    collect(&mut stmt, [&id], |r| r.get::<_, String>(0).map_err(sql_error))?
                };
                if !users.is_empty() {
                    return Err(codec::in_use(&users));
                }
                let n = tx.execute("DELETE FROM destinations WHERE id = ?1", [&id]).map_err(sql_error)?;
                tx.commit().map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }

    async fn list_pipelines(&self, destination: Option<&str>) -> Result<Vec<PipelineRecord>> {
        let destination = destination.map(str::to_owned);
        self.db
            .read(move |c| match destination {
                Some(d) => {
                    let mut stmt = c
                        .prepare_cached(&format!(
                            "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE destination = ?1 ORDER BY created_at, seq"
                        ))
                        .map_err(sql_error)?;
                    collect(&mut stmt, [&d], pipeline_from_row)
                }
                None => {
                    let mut stmt = c
                        .prepare_cached(&format!("SELECT {PIPELINE_COLUMNS} FROM pipelines ORDER BY created_at, seq"))
                        .map_err(sql_error)?;
                    collect(&mut stmt, [], pipeline_from_row)
                }
            })
            .await
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], pipeline_from_row)?.pop())
            })
            .await
    }

    async fn insert_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let rec = rec.clone();
        let spec = codec::spec_to_json(&rec.spec);
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO pipelines (id, destination, name, spec, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        rec.id,
                        rec.spec.destination,
                        rec.spec.name,
                        spec,
                        micros(&rec.created_at),
                        micros(&rec.updated_at)
                    ],
                )
                .map_err(|e| pipeline_conflict(e, &rec))?;
                Ok(())
            })
            .await
    }

    async fn update_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let rec = rec.clone();
        let spec = codec::spec_to_json(&rec.spec);
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE pipelines SET destination = ?2, name = ?3, spec = ?4, updated_at = ?5 WHERE id = ?1",
                        params![rec.id, rec.spec.destination, rec.spec.name, spec, micros(&rec.updated_at)],
                    )
                    .map_err(|e| pipeline_conflict(e, &rec))?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("pipeline `{}` does not exist", rec.id)));
                }
                Ok(())
            })
            .await
    }

    async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                // Runs and sync state go with it through ON DELETE CASCADE.
                let n = c
                    .execute("DELETE FROM pipelines WHERE id = ?1", [&id])
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }
}

#[async_trait]
impl RunLog for SqliteMetadata {
    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.db
            .write(move |c| {
                c.execute(
                    &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                    params![
                        run.id,
                        run.pipeline,
                        run.trigger,
                        run.status.as_str(),
                        micros(&run.queued_at),
                        run.started_at.as_ref().map(micros),
                        run.finished_at.as_ref().map(micros),
                        codec::to_i64(run.progress.processed),
                        run.progress.total.map(codec::to_i64),
                        codec::counts_to_json(&run.counts),
                        codec::errors_to_json(&run.errors),
                        run.message,
                    ],
                )
                .map_err(|e| match violation(&e) {
                    Some(Violation::Unique(_)) => StoreError::Conflict(format!("a run with id `{}` already exists", run.id)),
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound(format!("pipeline `{}` does not exist", run.pipeline))
                    }
                    None => sql_error(e),
                })?;
                Ok(())
            })
            .await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE runs SET trigger = ?2, status = ?3, queued_at = ?4, started_at = ?5, finished_at = ?6,
                             processed = ?7, total = ?8, counts = ?9, errors = ?10, message = ?11
                         WHERE id = ?1",
                        params![
                            run.id,
                            run.trigger,
                            run.status.as_str(),
                            micros(&run.queued_at),
                            run.started_at.as_ref().map(micros),
                            run.finished_at.as_ref().map(micros),
                            codec::to_i64(run.progress.processed),
                            run.progress.total.map(codec::to_i64),
                            codec::counts_to_json(&run.counts),
                            codec::errors_to_json(&run.errors),
                            run.message,
                        ],
                    )
                    .map_err(sql_error)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("run `{}` does not exist", run.id)));
                }
                Ok(())
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], run_from_row)?.pop())
            })
            .await
    }

    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let (pipeline, before) = (pipeline.to_owned(), before.map(str::to_owned));
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(before) = before else {
                    let mut stmt = tx
                        .prepare_cached(&format!(
                            "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1
                             ORDER BY queued_at DESC, seq DESC LIMIT ?2"
                        ))
                        .map_err(sql_error)?;
                    return collect(&mut stmt, params![pipeline, limit], run_from_row);
                };
                let cursor: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT queued_at, seq FROM runs WHERE id = ?1 AND pipeline = ?2",
                        [&before, &pipeline],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                let Some((queued_at, seq)) = cursor else {
                    return Err(StoreError::NotFound(format!("run `{before}` of pipeline `{pipeline}` does not exist")));
                };
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 AND (queued_at, seq) < (?3, ?4)
                         ORDER BY queued_at DESC, seq DESC LIMIT ?2"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, params![pipeline, limit, queued_at, seq], run_from_row)
            })
            .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY queued_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], run_from_row)
            })
            .await
    }
}

#[async_trait]
impl SyncState for SqliteMetadata {
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncEntry>> {
        let (pipeline, after, upto) = (
            pipeline.to_owned(),
            after.map(str::to_owned),
            upto.map(str::to_owned),
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let Some(num) = sync_number(c, &pipeline)? else {
                    return Ok(Vec::new());
                };
                // One statement per bound combination keeps each a plain range scan of the primary key.
                let mut sql = String::from(
                    "SELECT profile_id, key, hash, has_left FROM sync_entries WHERE pipeline = ?1",
                );
                let mut args: Vec<SqlValue> = vec![num.into(), limit.into()];
                if let Some(after) = after {
                    args.push(after.into());
                    sql.push_str(&format!(" AND profile_id > ?{}", args.len()));
                }
                if let Some(upto) = upto {
                    args.push(upto.into());
                    sql.push_str(&format!(" AND profile_id <= ?{}", args.len()));
                }
                sql.push_str(" ORDER BY profile_id LIMIT ?2");
                let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                collect(&mut stmt, rusqlite::params_from_iter(args), |r| {
                    let profile_id: String = r.get(0).map_err(sql_error)?;
                    entry_from_row(r, profile_id, 1)
                })
            })
            .await
    }

    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> Result<Vec<SyncEntry>> {
        let (pipeline, keys) = (pipeline.to_owned(), keys.to_vec());
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(SyncPipeline { num, implied, .. }) = sync_pipeline(&tx, &pipeline)? else {
                    return Ok(Vec::new());
                };
                let mut written = tx
                    .prepare_cached(
                        "SELECT profile_id, key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND key = ?2",
                    )
                    .map_err(sql_error)?;
                // A key held as an implied one is the id of the profile holding it.
                let mut implied_by = tx
                    .prepare_cached(
                        "SELECT profile_id, key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND profile_id = ?2 AND key IS NULL",
                    )
                    .map_err(sql_error)?;
                let mut seen = std::collections::HashSet::with_capacity(keys.len());
                let mut out = Vec::new();
                let holder = |stmt: &mut rusqlite::Statement<'_>, key: &str| {
                    let mut rows = stmt.query(params![num, key]).map_err(sql_error)?;
                    match rows.next().map_err(sql_error)? {
                        Some(r) => {
                            let profile_id: String = r.get(0).map_err(sql_error)?;
                            entry_from_row(r, profile_id, 1).map(Some)
                        }
                        None => Ok(None),
                    }
                };
                for key in &keys {
                    if !seen.insert(key) {
                        continue;
                    }
                    let mut entry = holder(&mut written, key.as_str())?;
                    if entry.is_none() && implied {
                        entry = holder(&mut implied_by, key.as_str())?;
                    }
                    out.extend(entry);
                }
                Ok(out)
            })
            .await
    }

    async fn sync_apply(
        &self,
        pipeline: &str,
        upserts: Vec<SyncEntry>,
        deletes: Vec<String>,
    ) -> Result<()> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let pipeline = pipeline.to_owned();
        self.db
            .write(move |c| {
                let started = std::time::Instant::now();
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let sp = match sync_pipeline(&tx, &pipeline)? {
                    Some(sp) => sp,
                    // Nothing recorded yet, so nothing to delete either.
                    None if upserts.is_empty() => return Ok(()),
                    None => {
                        tx.execute(
                            "INSERT INTO sync_pipelines (pipeline, written_keys, implied_keys)
                             VALUES (?1, 0, 0)",
                            [&pipeline],
                        )
                        .map_err(|err| match violation(&err) {
                            Some(Violation::ForeignKey) => StoreError::NotFound(format!(
                                "pipeline `{pipeline}` does not exist"
                            )),
                            _ => sql_error(err),
                        })?;
                        SyncPipeline {
                            num: tx.last_insert_rowid(),
                            written: false,
                            implied: false,
                        }
                    }
                };
                let num = sp.num;
                // Keys are implied (not stored) only while every entry of the pipeline, recorded and new,
                // is keyed by its own profile id: then the primary key alone keeps keys unique. Otherwise
                // every key is written, and the unique index keeps them so.
                let imply = !sp.written && upserts.iter().all(|e| e.key.as_str() == e.profile_id);
                let (written, implied) = (sp.written || !imply, sp.implied || imply);
                if !upserts.is_empty() && (written, implied) != (sp.written, sp.implied) {
                    tx.execute(
                        "UPDATE sync_pipelines SET written_keys = ?2, implied_keys = ?3 WHERE num = ?1",
                        params![num, written, implied],
                    )
                    .map_err(sql_error)?;
                }
                {
                    let mut delete = tx
                        .prepare_cached(
                            "DELETE FROM sync_entries WHERE pipeline = ?1 AND profile_id = ?2",
                        )
                        .map_err(sql_error)?;
                    for id in &deletes {
                        delete.execute(params![num, id]).map_err(sql_error)?;
                    }
                    if !imply && sp.implied {
                        // A written key taken from a profile that holds it implied: the unique index
                        // cannot see that holder, so it gives the key up here, as REPLACE would make it.
                        let mut give_up = tx
                            .prepare_cached(
                                "DELETE FROM sync_entries
                                 WHERE pipeline = ?1 AND profile_id = ?2 AND key IS NULL",
                            )
                            .map_err(sql_error)?;
                        for e in &upserts {
                            give_up
                                .execute(params![num, e.key.as_str()])
                                .map_err(sql_error)?;
                        }
                    }
                    // REPLACE deletes every row that conflicts on either the primary key or the unique key,
                    // which is exactly "this profile's entry is replaced and its key taken from any other
                    // holder"; rows of one statement are applied in order, as separate statements would be.
                    // Many rows per statement: executing one statement per entry cost more than the inserts.
                    // Chunks without a left entry, all of them in most runs, bind no flag: the statement
                    // leaves it NULL.
                    for chunk in upserts.chunks(SYNC_ROWS_PER_STATEMENT) {
                        let flagged = chunk.iter().any(|e| e.left);
                        let mut upsert = tx
                            .prepare_cached(&sync_upsert_sql(chunk.len(), imply, flagged))
                            .map_err(sql_error)?;
                        let hashes: Vec<[u8; 16]> =
                            chunk.iter().map(|e| codec::hash_to_bytes(e.hash)).collect();
                        let keys: Vec<&str> = chunk.iter().map(|e| e.key.as_str()).collect();
                        let lefts: Vec<Option<bool>> =
                            chunk.iter().map(|e| e.left.then_some(true)).collect();
                        let mut args: Vec<&dyn rusqlite::ToSql> =
                            Vec::with_capacity(1 + 4 * chunk.len());
                        args.push(&num);
                        for ((e, h), (key, left)) in
                            chunk.iter().zip(&hashes).zip(keys.iter().zip(&lefts))
                        {
                            args.push(&e.profile_id);
                            if !imply {
                                args.push(key);
                            }
                            args.push(h);
                            if flagged {
                                args.push(left);
                            }
                        }
                        upsert.execute(args.as_slice()).map_err(sql_error)?;
                    }
                }
                tx.commit().map_err(sql_error)?;
                tracing::debug!(
                    upserts = upserts.len(),
                    deletes = deletes.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "recorded sync entries"
                );
                Ok(())
            })
            .await
    }

    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> Result<Vec<SyncEntry>> {
        let (pipeline, mut ids) = (pipeline.to_owned(), ids.to_vec());
        ids.sort_unstable();
        ids.dedup();
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(num) = sync_number(&tx, &pipeline)? else {
                    return Ok(Vec::new());
                };
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND profile_id = ?2",
                    )
                    .map_err(sql_error)?;
                let mut out = Vec::new();
                for id in ids {
                    let mut rows = stmt.query(params![num, id]).map_err(sql_error)?;
                    if let Some(r) = rows.next().map_err(sql_error)? {
                        out.push(entry_from_row(r, id, 0)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn sync_clear(&self, pipeline: &str) -> Result<()> {
        let pipeline = pipeline.to_owned();
        self.db
            .write(move |c| {
                let tx = c.transaction().map_err(sql_error)?;
                tx.execute(
                    "DELETE FROM sync_checkpoints WHERE pipeline = ?1",
                    [&pipeline],
                )
                .map_err(sql_error)?;
                // The trigger on the number's row drops the entries.
                tx.execute(
                    "DELETE FROM sync_pipelines WHERE pipeline = ?1",
                    [&pipeline],
                )
                .map_err(sql_error)?;
                tx.commit().map_err(sql_error)
            })
            .await
    }

    async fn sync_checkpoint(&self, pipeline: &str) -> Result<Option<SyncCheckpoint>> {
        let pipeline = pipeline.to_owned();
        self.db
            .read(move |c| {
                let row = c
                    .query_row(
                        "SELECT mark, fingerprint, taken_at FROM sync_checkpoints WHERE pipeline = ?1",
                        [&pipeline],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                row.map(|(mark, fingerprint, taken_at)| {
                    Ok(SyncCheckpoint {
                        mark,
                        fingerprint,
                        taken_at: time(taken_at)?,
                    })
                })
                .transpose()
            })
            .await
    }

    async fn set_sync_checkpoint(
        &self,
        pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<()> {
        let (pipeline, checkpoint) = (pipeline.to_owned(), checkpoint.cloned());
        self.db
            .write(move |c| {
                let Some(cp) = checkpoint else {
                    c.execute("DELETE FROM sync_checkpoints WHERE pipeline = ?1", [&pipeline])
                        .map_err(sql_error)?;
                    return Ok(());
                };
                c.execute(
                    "INSERT INTO sync_checkpoints (pipeline, mark, fingerprint, taken_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (pipeline) DO UPDATE SET mark = excluded.mark,
                         fingerprint = excluded.fingerprint, taken_at = excluded.taken_at",
                    params![pipeline, cp.mark, cp.fingerprint, micros(&cp.taken_at)],
                )
                .map_err(|err| match violation(&err) {
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
                    }
                    _ => sql_error(err),
                })?;
                Ok(())
            })
            .await
    }

    async fn sync_count(&self, pipeline: &str) -> Result<u64> {
        Ok(self.sync_counts(pipeline).await?.kept)
    }

    async fn sync_count_left(&self, pipeline: &str) -> Result<u64> {
        Ok(self.sync_counts(pipeline).await?.left)
    }
}

/// A pipeline's entries, split by whether their profile left.
struct SyncCounts {
    kept: u64,
    left: u64,
}

impl SqliteMetadata {
    async fn sync_counts(&self, pipeline: &str) -> Result<SyncCounts> {
        let pipeline = pipeline.to_owned();
        self.db
            .read(move |c| {
                let Some(num) = sync_number(c, &pipeline)? else {
                    return Ok(SyncCounts { kept: 0, left: 0 });
                };
                // One walk of the pipeline's range of the primary key; the flag is in the row it visits.
                let (all, left): (i64, i64) = c
                    .prepare_cached(
                        "SELECT count(*), count(has_left) FROM sync_entries WHERE pipeline = ?1",
                    )
                    .and_then(|mut s| s.query_row([num], |r| Ok((r.get(0)?, r.get(1)?))))
                    .map_err(sql_error)?;
                Ok(SyncCounts {
                    kept: codec::to_u64(all - left),
                    left: codec::to_u64(left),
                })
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------------------------

// WITHOUT ROWID keeps the documents in the id B-tree itself, so a page is one ordered range scan instead of
// an index walk plus a table lookup per profile.
const PROFILE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE profiles (
    id TEXT PRIMARY KEY NOT NULL,
    updated_at INTEGER NOT NULL,
    doc TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE profiles ADD COLUMN change_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX profiles_by_change ON profiles (change_id);
CREATE TABLE profile_clock (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
INSERT INTO profile_clock (id, seq) VALUES (1, 0);
CREATE TABLE profile_tombstones (
    id TEXT PRIMARY KEY NOT NULL,
    change_id INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX profile_tombstones_by_change ON profile_tombstones (change_id);
CREATE INDEX profile_tombstones_by_time ON profile_tombstones (deleted_at);
"#,
];

/// Bumps the change counter inside a writing transaction and returns the number of this transaction's
/// changes. SQLite has one writer at a time, so numbers follow commit order exactly.
fn next_change(tx: &Connection) -> Result<i64> {
    tx.query_row(
        "UPDATE profile_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        [],
        |r| r.get(0),
    )
    .map_err(sql_error)
}

/// The profile store in an SQLite file.
pub struct SqliteProfiles {
    db: Db,
}

impl SqliteProfiles {
    /// Opens (creating when absent) the file and brings its table up to date.
    pub fn open(path: &Path) -> Result<SqliteProfiles> {
        Ok(SqliteProfiles {
            db: Db::open(path, "profiles", PROFILE_MIGRATIONS, register_functions)?,
        })
    }
}

/// Registers the functions that pushed-down filters call; deterministic, so SQLite may use them in indexes
/// and evaluate them once per distinct argument.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(filter::SQLITE_FN_TS, 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(filter::sqlite_ts),
            _ => None,
        })
    })?;
    conn.create_scalar_function(filter::SQLITE_FN_DEC_CMP, 2, flags, |ctx| {
        let (a, b) = (number_text(ctx.get_raw(0)), number_text(ctx.get_raw(1)));
        Ok(match (a, b) {
            (Some(a), Some(b)) => filter::sqlite_dec_cmp(&a, &b),
            _ => None,
        })
    })?;
    Ok(())
}

/// Decimals are stored as strings, but JSON numbers and bound numbers compare just as well.
fn number_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_owned),
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    }
}

fn sql_param(p: SqlParam) -> SqlValue {
    match p {
        SqlParam::Null => SqlValue::Null,
        SqlParam::Bool(b) => SqlValue::Integer(b.into()),
        SqlParam::Int(i) => SqlValue::Integer(i),
        SqlParam::Float(f) => SqlValue::Real(f),
        SqlParam::Text(s) => SqlValue::Text(s),
    }
}

/// Sync entries per `INSERT` statement: at most 4 parameters each, well under SQLite's limit of 32,766
/// (500 was measurably slower at 1M entries).
const SYNC_ROWS_PER_STATEMENT: usize = 2000;

/// The number that names `pipeline` in `sync_entries`; `None` while it has never recorded an entry.
fn sync_number(c: &Connection, pipeline: &str) -> Result<Option<i64>> {
    Ok(sync_pipeline(c, pipeline)?.map(|sp| sp.num))
}

/// A pipeline's row in `sync_pipelines`: its number, and which forms of key its entries may hold.
struct SyncPipeline {
    num: i64,
    /// Some entry may have its key written out.
    written: bool,
    /// Some entry may have its key implied: a null key, meaning the profile's id.
    implied: bool,
}

fn sync_pipeline(c: &Connection, pipeline: &str) -> Result<Option<SyncPipeline>> {
    c.prepare_cached(
        "SELECT num, written_keys, implied_keys FROM sync_pipelines WHERE pipeline = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([pipeline], |r| {
            Ok(SyncPipeline {
                num: r.get(0)?,
                written: r.get(1)?,
                implied: r.get(2)?,
            })
        })
        .optional()
    })
    .map_err(sql_error)
}

/// The key of an entry as stored: written out, or implied by its profile's id.
fn stored_key(key: Option<String>, profile_id: &str) -> SyncKey {
    SyncKey::from_stored(key.unwrap_or_else(|| profile_id.to_owned()))
}

/// The entry of `profile_id` from a row holding its key, hash and left flag from column `first` on.
fn entry_from_row(r: &rusqlite::Row<'_>, profile_id: String, first: usize) -> Result<SyncEntry> {
    let hash = r
        .get_ref(first + 1)
        .map_err(sql_error)?
        .as_blob()
        .map_err(|e| sql_error(e.into()))?;
    Ok(SyncEntry {
        hash: codec::hash_from_bytes(&profile_id, hash)?,
        key: stored_key(r.get(first).map_err(sql_error)?, &profile_id),
        left: r.get::<_, Option<bool>>(first + 2).map_err(sql_error)? == Some(true),
        profile_id,
    })
}

/// `INSERT OR REPLACE` of `rows` sync entries of the pipeline numbered `?1`, with their keys written
/// out or (`implied`) left null, and their left flags bound (`flagged`) or left null. The full-size
/// statements, used by every chunk but a batch's last, are written once.
fn sync_upsert_sql(rows: usize, implied: bool, flagged: bool) -> std::borrow::Cow<'static, str> {
    static FULL: [std::sync::OnceLock<String>; 4] = [const { std::sync::OnceLock::new() }; 4];
    if rows == SYNC_ROWS_PER_STATEMENT {
        return FULL[usize::from(implied) * 2 + usize::from(flagged)]
            .get_or_init(|| write_sync_upsert_sql(rows, implied, flagged))
            .into();
    }
    write_sync_upsert_sql(rows, implied, flagged).into()
}

fn write_sync_upsert_sql(rows: usize, implied: bool, flagged: bool) -> String {
    use std::fmt::Write as _;
    let mut sql =
        String::from("INSERT OR REPLACE INTO sync_entries (pipeline, profile_id, key, hash");
    sql.push_str(if flagged {
        ", has_left) VALUES "
    } else {
        ") VALUES "
    });
    let mut p = 2;
    let mut param = |sql: &mut String| {
        let _ = write!(sql, ", ?{p}");
        p += 1;
    };
    for i in 0..rows {
        sql.push_str(if i > 0 { ",(?1" } else { "(?1" });
        param(&mut sql);
        if implied {
            sql.push_str(", NULL");
        } else {
            param(&mut sql);
        }
        param(&mut sql);
        if flagged {
            param(&mut sql);
        }
        sql.push(')');
    }
    sql
}

fn raw_profile_from_row(r: &rusqlite::Row<'_>) -> Result<RawProfile> {
    let doc = r.get_ref(2).map_err(sql_error)?;
    Ok(RawProfile {
        id: r.get(0).map_err(sql_error)?,
        updated_at: time(r.get(1).map_err(sql_error)?)?,
        doc: doc.as_str().map_err(|e| sql_error(e.into()))?.to_owned(),
    })
}

fn profile_from_row(r: &rusqlite::Row<'_>) -> Result<Profile> {
    raw_profile_from_row(r)?.parse().map_err(corrupt)
}

#[async_trait]
impl ProfileStore for SqliteProfiles {
    async fn upsert(&self, profiles: Vec<(String, Map<String, Json>)>) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        self.db
            .write(move |c| {
                let profiles = codec::fold_batch(profiles);
                let now = codec::now().timestamp_micros();
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let change = next_change(&tx)?;
                let mut outcome = UpsertOutcome::default();
                {
                    let mut select = tx
                        .prepare_cached("SELECT doc FROM profiles WHERE id = ?1")
                        .map_err(sql_error)?;
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO profiles (id, updated_at, doc, change_id) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(sql_error)?;
                    let mut update = tx
                        .prepare_cached(
                            "UPDATE profiles SET updated_at = ?2, doc = ?3, change_id = ?4 WHERE id = ?1",
                        )
                        .map_err(sql_error)?;
                    for (id, doc) in profiles {
                        let stored: Option<String> = select
                            .query_row([&id], |r| r.get(0))
                            .optional()
                            .map_err(sql_error)?;
                        match stored {
                            None => {
                                let text = Json::Object(doc).to_string();
                                insert
                                    .execute(params![id, now, text, change])
                                    .map_err(sql_error)?;
                                outcome.inserted += 1;
                            }
                            Some(stored) => {
                                let stored: Json = serde_json::from_str(&stored).map_err(|e| {
                                    corrupt(format!("profile `{id}` is not valid JSON: {e}"))
                                })?;
                                let stored = codec::doc_from_json(&id, stored)?;
                                let mut merged = stored.clone();
                                sluice_core::schema::merge_profile(&mut merged, doc);
                                // Unchanged profiles keep their change number: exports skip them.
                                if merged != stored {
                                    let text = Json::Object(merged).to_string();
                                    update
                                        .execute(params![id, now, text, change])
                                        .map_err(sql_error)?;
                                }
                                outcome.updated += 1;
                            }
                        }
                    }
                }
                tx.commit().map_err(sql_error)?;
                Ok(outcome)
            })
            .await
    }

    async fn get(&self, id: &str) -> Result<Option<Profile>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT id, updated_at, doc FROM profiles WHERE id = ?1")
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], profile_from_row)?.pop())
            })
            .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let deleted = tx
                    .execute("DELETE FROM profiles WHERE id = ?1", [&id])
                    .map_err(sql_error)?
                    > 0;
                if deleted {
                    let change = next_change(&tx)?;
                    let now = codec::now();
                    tx.execute(
                        "INSERT OR REPLACE INTO profile_tombstones (id, change_id, deleted_at) VALUES (?1, ?2, ?3)",
                        params![id, change, now.timestamp_micros()],
                    )
                    .map_err(sql_error)?;
                    tx.execute(
                        "DELETE FROM profile_tombstones WHERE deleted_at < ?1",
                        [(now - TOMBSTONE_RETENTION).timestamp_micros()],
                    )
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(deleted)
            })
            .await
    }

    async fn page_raw(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut args: Vec<SqlValue> = vec![limit.into()];
        let mut sql = String::from("SELECT id, updated_at, doc FROM profiles WHERE ");
        if let Some(after) = after {
            args.push(after.to_owned().into());
            sql.push_str("id > ?2 AND ");
        }
        match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Sqlite, args.len() + 1);
                sql.push_str(&format!("({cond})"));
                args.extend(params.into_iter().map(sql_param));
            }
            None => sql.push_str("TRUE"),
        }
        sql.push_str(" ORDER BY id LIMIT ?1");
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                let mut out = Vec::with_capacity(limit.clamp(0, 10_000) as usize);
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(args))
                    .map_err(sql_error)?;
                while let Some(row) = rows.next().map_err(sql_error)? {
                    out.push(raw_profile_from_row(row)?);
                }
                Ok(out)
            })
            .await
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let (sql, args) = match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Sqlite, 1);
                (
                    format!("SELECT count(*) FROM profiles WHERE ({cond})"),
                    params.into_iter().map(sql_param).collect(),
                )
            }
            None => ("SELECT count(*) FROM profiles".to_owned(), Vec::new()),
        };
        self.db
            .read(move |c| {
                let n: i64 = c
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
                    .map_err(sql_error)?;
                Ok(codec::to_u64(n))
            })
            .await
    }

    async fn change_mark(&self) -> Result<i64> {
        self.db
            .read(|c| {
                c.query_row("SELECT seq + 1 FROM profile_clock WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(sql_error)
            })
            .await
    }

    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts> {
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let count = |sql: &str| -> Result<u64> {
                    let n: i64 = tx.query_row(sql, [mark], |r| r.get(0)).map_err(sql_error)?;
                    Ok(codec::to_u64(n))
                };
                Ok(ChangeCounts {
                    changed: count("SELECT count(*) FROM profiles WHERE change_id >= ?1")?,
                    deleted: count(
                        "SELECT count(*) FROM profile_tombstones WHERE change_id >= ?1",
                    )?,
                })
            })
            .await
    }

    async fn changed_page_raw(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let after = after.unwrap_or("").to_owned();
        self.db
            .read(move |c| {
                // The change index finds the few changed profiles; ordering them by id is a small sort.
                let mut stmt = c
                    .prepare_cached(
                        "SELECT id, updated_at, doc FROM profiles INDEXED BY profiles_by_change
                         WHERE change_id >= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, params![mark, after, limit], raw_profile_from_row)
            })
            .await
    }

    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT t.id FROM profile_tombstones AS t WHERE t.change_id >= ?1
                         AND NOT EXISTS (SELECT 1 FROM profiles AS p WHERE p.id = t.id) ORDER BY t.id",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, [mark], |r| r.get(0).map_err(sql_error))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store written before sync entries were numbered by pipeline keeps them, and they still go with
    /// their pipeline.
    #[tokio::test]
    async fn sync_entries_survive_the_move_to_numbered_pipelines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        // Before the migration that numbered pipelines (the fourth).
        let before = 3;
        {
            let mut c = open_connection(&path, no_setup, false).unwrap();
            migrate(&mut c, &path, "metadata", &METADATA_MIGRATIONS[..before]).unwrap();
            c.execute_batch(
                "INSERT INTO destinations (id, name, kind, settings, created_at, updated_at)
                     VALUES ('d', 'D', 'postgresql', '{}', 0, 0);
                 INSERT INTO pipelines (id, destination, name, spec, created_at, updated_at)
                     VALUES ('p1', 'd', 'one', '{}', 0, 0), ('p2', 'd', 'two', '{}', 0, 0);
                 INSERT INTO sync_state (pipeline, profile_id, key, hash) VALUES
                     ('p1', 'a', 'ka', x'00000000000000000000000000000001'),
                     ('p1', 'b', 'kb', x'00000000000000000000000000000002'),
                     ('p2', 'a', 'ka', x'00000000000000000000000000000003');",
            )
            .unwrap();
        }
        let store = SqliteMetadata::open(&path, SecretBox::generate()).unwrap();
        let p1 = store.sync_range("p1", None, None, 10).await.unwrap();
        let got: Vec<(&str, &str, u128)> = p1
            .iter()
            .map(|e| (e.profile_id.as_str(), e.key.as_str(), e.hash))
            .collect();
        assert_eq!(got, [("a", "ka", 1), ("b", "kb", 2)]);
        assert_eq!(store.sync_count("p2").await.unwrap(), 1);
        assert_eq!(
            store
                .sync_owners("p1", &[SyncKey::from_stored("kb")])
                .await
                .unwrap(),
            [SyncEntry::written("b", SyncKey::from_stored("kb"), 2)]
        );
        // New entries of a migrated pipeline share its number; the pipeline's deletion takes them all.
        let entry = SyncEntry::written("c", SyncKey::from_stored("kc"), 4);
        store.sync_apply("p1", vec![entry], vec![]).await.unwrap();
        assert_eq!(store.sync_count("p1").await.unwrap(), 3);
        assert!(store.delete_pipeline("p1").await.unwrap());
        let left: i64 = store
            .db
            .read(|c| {
                c.query_row("SELECT count(*) FROM sync_entries", [], |r| r.get(0))
                    .map_err(sql_error)
            })
            .await
            .unwrap();
        assert_eq!(left, 1, "only p2's entry is left");
    }
}
