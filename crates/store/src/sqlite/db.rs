//! Connections to an SQLite file — one writer, a few readers, each call on the blocking pool — and the
//! runner of its migrations; with the conversions every module of the store shares.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::Semaphore;

use crate::codec::{self, corrupt};
use crate::{Result, StoreError};

/// Reader connections per database file; more would only compete for the machine's few cores.
const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Db {
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
    pub(super) fn open(
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
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
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
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
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

pub(super) fn join_error(e: tokio::task::JoinError) -> StoreError {
    if e.is_panic() {
        std::panic::resume_unwind(e.into_panic());
    }
    StoreError::Backend("the store task was cancelled".into())
}

/// SQLite's process-wide settings, which SQLite accepts only before it is first used in the process:
/// the binary makes them first thing, and every store connection makes sure they were tried before it
/// opens. True when SQLite took them; otherwise a warning says so, once.
pub fn configure_sqlite() -> bool {
    static APPLIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *APPLIED.get_or_init(|| {
        // Memory statistics take a process-wide mutex on every allocation SQLite makes, which the
        // reader and writer threads of a run then contend for; Sluice never reads them.
        // SAFETY: a documented start-up option with an int argument; once SQLite is initialized it
        // refuses the call (SQLITE_MISUSE) and nothing changes.
        let memstatus =
            unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
        // Statement journals keep SQLite's own spill threshold (64 KiB): with a larger one
        // (SQLITE_CONFIG_STMTJRNL_SPILL of 1, 4 or 6 MiB), the first statement whose journal
        // outgrew it failed with "database or disk is full" in the bundled SQLite 3.46.0 (see the
        // store suite's `sync_records_past_the_statement_journal_spill`).
        let applied = memstatus == rusqlite::ffi::SQLITE_OK;
        if !applied {
            tracing::warn!(
                "SQLite was in use before its settings were made: memory statistics stay on, and every \
                 allocation SQLite makes takes their lock"
            );
        }
        applied
    })
}

pub(super) fn open_connection(
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

#[cfg(test)]
pub(super) fn no_setup(_: &Connection) -> rusqlite::Result<()> {
    Ok(())
}

/// Applies the migrations not yet recorded in `schema_version`, in one transaction. Refuses a file
/// written by a newer Sluice, whose tables this version does not know.
pub(super) fn migrate(
    conn: &mut Connection,
    path: &Path,
    component: &str,
    migrations: &[&str],
) -> Result<()> {
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

pub(super) fn sql_error(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The constraint a write broke, when it was a uniqueness or foreign-key rule.
pub(super) enum Violation {
    Unique(String),
    ForeignKey,
}

pub(super) fn violation(e: &rusqlite::Error) -> Option<Violation> {
    let rusqlite::Error::SqliteFailure(err, message) = e else {
        return None;
    };
    if err.code != ErrorCode::ConstraintViolation {
        return None;
    }
    const UNIQUE: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE;
    const PRIMARY_KEY: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
    const FOREIGN_KEY: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;
    const TRIGGER: std::os::raw::c_int = rusqlite::ffi::SQLITE_CONSTRAINT_TRIGGER;
    match err.extended_code {
        UNIQUE | PRIMARY_KEY => Some(Violation::Unique(message.clone().unwrap_or_default())),
        FOREIGN_KEY => Some(Violation::ForeignKey),
        // A reference kept by a trigger (a run names a pipeline or a source) says so in its message.
        TRIGGER if message.as_deref() == Some("FOREIGN KEY constraint failed") => {
            Some(Violation::ForeignKey)
        }
        _ => None,
    }
}

pub(super) fn time(micros: i64) -> Result<chrono::DateTime<chrono::Utc>> {
    codec::micros_to_time(micros)
}

pub(super) fn micros(t: &chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

pub(super) fn collect<T>(
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
