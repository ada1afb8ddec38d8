//! Connections to an SQLite file — one writer, a few readers, each call on the blocking pool, and a
//! checkpointer (see [`Checkpointer`]) — and the runner of its migrations; with the conversions every
//! module of the store shares.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    checkpoints: Arc<Checkpointer>,
}

impl Drop for DbInner {
    fn drop(&mut self) {
        self.checkpoints.stop();
    }
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
        writer
            .pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_FRAMES)
            .and_then(|()| writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT))
            .map_err(|e| StoreError::Backend(format!("cannot set up {}: {e}", path.display())))?;
        let checkpoints = Checkpointer::start(path)?;
        Ok(Db {
            inner: Arc::new(DbInner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                write_gate: Arc::new(Semaphore::new(1)),
                readers: Mutex::new(Vec::with_capacity(READERS)),
                read_gate: Arc::new(Semaphore::new(READERS)),
                setup,
                checkpoints,
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
            let out = f(&mut conn);
            inner.checkpoints.wrote();
            out
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

/// The WAL frames past which the writer checkpoints in line, as SQLite does by default at 1,000: a
/// backstop for writes that never pause, and which the checkpointer cannot keep up with (64 MiB of 4 KiB
/// pages).
const WRITER_CHECKPOINT_FRAMES: i64 = 16_384;

/// The bytes the WAL file is cut back to once checkpointed: a large write leaves no large file behind.
const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// How long writes must pause before the checkpointer copies the WAL into the database.
const CHECKPOINT_IDLE: Duration = Duration::from_millis(200);

/// How long written pages may wait in the WAL while writes go on without such a pause.
const CHECKPOINT_LATEST: Duration = Duration::from_secs(2);

/// Copies the WAL back into the database file from a thread and connection of its own, once writes
/// pause, instead of in the commit that crosses SQLite's threshold of 1,000 pages.
///
/// Why: a checkpoint writes every page the WAL holds into the database file and syncs both, and the
/// writer used to do it inside whichever commit crossed the threshold. A re-run recording 1% changed
/// rows touches most pages of the sync entries, so it checkpointed several times in its own records,
/// and those writes and syncs went to the disk the destination database was committing the run's rows
/// to. Now a short run's records stay in the WAL (written, not synced: `synchronous = NORMAL`) and reach
/// the database file once the run is over; a long run's are checkpointed every few seconds beside its
/// writes (a passive checkpoint never blocks the writer or the readers).
pub(super) struct Checkpointer {
    state: Mutex<CheckpointState>,
    changed: Condvar,
}

#[derive(Default)]
struct CheckpointState {
    /// The first write not yet checkpointed, and the last.
    dirty_since: Option<Instant>,
    last_write: Option<Instant>,
    stopping: bool,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Arc<Checkpointer>> {
        let conn = open_connection(path, no_setup, false)?;
        let this = Arc::new(Checkpointer {
            state: Mutex::new(CheckpointState::default()),
            changed: Condvar::new(),
        });
        let worker = this.clone();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::thread::Builder::new()
            .name(format!("checkpoint {name}"))
            .spawn(move || worker.run(conn))
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpointer: {e}")))?;
        Ok(this)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CheckpointState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called after each write (committed or not: a checkpoint of nothing costs little).
    fn wrote(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        s.dirty_since.get_or_insert(now);
        s.last_write = Some(now);
        drop(s);
        self.changed.notify_one();
    }

    fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_one();
    }

    /// When the written pages are due: after a pause in the writes, or a while after the first of them.
    fn due(s: &CheckpointState) -> Option<Instant> {
        let (first, last) = (s.dirty_since?, s.last_write?);
        Some((last + CHECKPOINT_IDLE).min(first + CHECKPOINT_LATEST))
    }

    fn run(&self, conn: Connection) {
        let mut s = self.lock();
        loop {
            if s.stopping {
                return;
            }
            let Some(due) = Self::due(&s) else {
                s = self.changed.wait(s).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            let now = Instant::now();
            if now < due {
                s = self
                    .changed
                    .wait_timeout(s, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                continue;
            }
            // Writes from here on are after what this checkpoint copies, or in it: either way the next
            // one takes them.
            s.dirty_since = None;
            s.last_write = None;
            drop(s);
            let outcome: rusqlite::Result<(i64, i64, i64)> =
                conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                });
            match outcome {
                Ok((_, frames, copied)) if copied < frames => {
                    // A reader still on older pages, or a write under way: try again after the next
                    // pause, or soon if there is none.
                    let mut st = self.lock();
                    st.dirty_since.get_or_insert_with(Instant::now);
                    st.last_write.get_or_insert_with(Instant::now);
                    s = st;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "checkpointing the SQLite WAL failed"),
            }
            s = self.lock();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `table` in the database file alone, as a copy without the WAL shows them: what
    /// checkpoints have copied there. None while the file does not hold the table yet.
    fn rows_in_file(path: &Path, table: &str, scratch: &Path) -> Option<i64> {
        std::fs::copy(path, scratch).ok()?;
        let _ = std::fs::remove_file(scratch.with_extension("db-wal"));
        let c = Connection::open(scratch).ok()?;
        c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .ok()
    }

    fn open(dir: &Path) -> Db {
        Db::open(
            &dir.join("t.db"),
            "test",
            &["CREATE TABLE t (v INTEGER)"],
            no_setup,
        )
        .unwrap()
    }

    async fn insert(db: &Db, v: i64) {
        db.write(move |c| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map_err(sql_error)
                .map(drop)
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn writes_reach_the_database_file_once_they_pause() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        for v in 0..50 {
            insert(&db, v).await;
        }
        // The writer's own threshold (16,384 pages) is far off: only the checkpointer copies them.
        let started = Instant::now();
        let scratch = dir.path().join("copy.db");
        while rows_in_file(&dir.path().join("t.db"), "t", &scratch) != Some(50) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the WAL was not checkpointed after the writes paused"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[tokio::test]
    async fn writes_that_never_pause_are_checkpointed_as_they_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let scratch = dir.path().join("copy.db");
        let started = Instant::now();
        let mut v = 0;
        // A write every 20 ms never leaves the 200 ms pause the checkpointer otherwise waits for.
        loop {
            insert(&db, v).await;
            v += 1;
            if v % 10 == 0 && rows_in_file(&dir.path().join("t.db"), "t", &scratch) > Some(0) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "continuous writes were never checkpointed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_checkpointer_stops_with_its_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        insert(&db, 1).await;
        let checkpointer = Arc::downgrade(&db.inner.checkpoints);
        drop(db);
        let started = Instant::now();
        while checkpointer.upgrade().is_some() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the checkpoint thread outlived its store"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
