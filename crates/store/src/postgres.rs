//! The PostgreSQL stores, for several Sluice instances sharing one workspace or larger profile sets.
//!
//! Tables live in the first schema of the connection's `search_path` (normally `public`; pick another with
//! `?options=-csearch_path%3Dmy_schema` in the URL) and are prefixed `sluice_`. Migrations are versioned in
//! `sluice_schema_version` and run in one transaction under an advisory lock, so instances starting
//! together apply each step once and the others wait, then see it done.
//!
//! Connections come from a small pool of our own: a semaphore bounds how many are open and idle clients
//! are reused; a client whose connection died is dropped instead of reused. That is all Sluice needs, and
//! it keeps the dependency tree to tokio-postgres.
//!
//! Hot paths are set-based: a batch of profiles or sync entries is bound as arrays and written with one
//! statement per step (`unnest`), not one round trip per row. Profile ids and sync profile ids use
//! `COLLATE "C"` so that keyset pagination follows byte order, as SQLite's does.

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use sluice_core::filter::{Filter, SqlDialect, SqlParam};
use sluice_core::{Profile, RawProfile, Schema};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::codec::{self, corrupt};

mod coord;
use crate::{
    Catalog, ChangeCounts, DestinationRecord, PipelineRecord, ProfileStore, Progress, Result,
    RunLog, RunRecord, SecretBox, StoreError, SyncCheckpoint, SyncEntry, SyncKey, SyncState,
    UpsertOutcome, TOMBSTONE_RETENTION,
};

/// Connections per store; enough for an export run, the API and the scheduler side by side.
const POOL_SIZE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------------------
// Connections, pooling and migrations
// ---------------------------------------------------------------------------------------------------------

struct Pool {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: std::sync::Mutex<Vec<Client>>,
    gate: Semaphore,
    /// `metadata` or `profiles`, for messages and logs.
    what: &'static str,
}

/// A pooled client, returned to the pool when dropped unless its connection has closed.
struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled client is present until drop")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a pooled client is present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(client);
            }
        }
    }
}

impl Pool {
    fn new(url: &str, what: &'static str) -> Result<Pool> {
        // The parse error names the offending option, never its value, so it is safe to show.
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "the {what} store URL is not a valid PostgreSQL URL: {}",
                chain(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sluice");
        }
        let tls = crate::tls::connector(
            &config,
            std::env::var_os(crate::tls::ROOT_CERT_VAR).as_deref(),
        )?;
        Ok(Pool {
            config,
            tls,
            idle: std::sync::Mutex::new(Vec::new()),
            gate: Semaphore::new(POOL_SIZE),
            what,
        })
    }

    async fn get(&self) -> Result<Conn<'_>> {
        let permit = self
            .gate
            .acquire()
            .await
            .expect("the pool gate is never closed");
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match idle {
                Some(client) if !client.is_closed() => {
                    return Ok(Conn {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let failed = |e: tokio_postgres::Error| {
            StoreError::Backend(format!(
                "cannot connect to the PostgreSQL {} store: {}",
                self.what,
                chain(&e)
            ))
        };
        let client = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
                tokio::spawn(watch(connection, self.what));
                client
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(failed)?;
                tokio::spawn(watch(connection, self.what));
                client
            }
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

/// Drives a connection until it closes; its client then reports `is_closed` and leaves the pool.
async fn watch(
    connection: impl std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
    what: &'static str,
) {
    if let Err(e) = connection.await {
        tracing::warn!(store = what, error = %chain(&e), "PostgreSQL connection ended with an error");
    }
}

/// An error with its causes, which tokio-postgres keeps out of its `Display`.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(db.to_string()),
        None => StoreError::Backend(chain(&e)),
    }
}

enum Violation<'e> {
    Unique(&'e str),
    ForeignKey,
}

fn violation(e: &tokio_postgres::Error) -> Option<Violation<'_>> {
    let db = e.as_db_error()?;
    if *db.code() == SqlState::UNIQUE_VIOLATION {
        Some(Violation::Unique(db.constraint().unwrap_or_default()))
    } else if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
        Some(Violation::ForeignKey)
    } else {
        None
    }
}

/// Applies the migrations not yet recorded in `sluice_schema_version`, in one transaction holding an
/// advisory lock scoped to the schema. Refuses a schema written by a newer Sluice.
async fn migrate(pool: &Pool, component: &str, migrations: &[&str]) -> Result<()> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(pg_error)?;
    let schema: Option<String> = tx
        .query_one("SELECT current_schema()", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let Some(schema) = schema else {
        return Err(StoreError::Backend(format!(
            "the search_path of the PostgreSQL {} store names no existing schema to keep Sluice's tables in; \
             create the schema first",
            pool.what
        )));
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sluice.migrations.' || $1::text, 0))",
        &[&schema],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sluice_schema_version (
             component text PRIMARY KEY,
             version integer NOT NULL,
             migrated_at timestamptz NOT NULL
         )",
    )
    .await
    .map_err(pg_error)?;
    let current: i32 = tx
        .query_opt(
            "SELECT version FROM sluice_schema_version WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(pg_error)?
        .map_or(0, |r| r.get(0));
    let latest = migrations.len() as i32;
    if current > latest {
        return Err(corrupt(format!(
            "the {component} tables in PostgreSQL schema `{schema}` have schema version {current}, but this Sluice \
             knows versions up to {latest}: they were written by a newer Sluice; upgrade Sluice to open them"
        )));
    }
    if current == latest {
        return Ok(());
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} of the {component} store failed: {}",
                i + 1,
                pg_error(e)
            ))
        })?;
    }
    tx.execute(
        "INSERT INTO sluice_schema_version (component, version, migrated_at) VALUES ($1, $2, now())
         ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, migrated_at = EXCLUDED.migrated_at",
        &[&component, &latest],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    tracing::info!(
        component,
        from = current,
        to = latest,
        schema,
        "migrated the PostgreSQL store"
    );
    Ok(())
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------------------

const METADATA_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sluice_customer_model (
    id integer PRIMARY KEY CHECK (id = 1),
    model json NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sluice_destinations (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    name text NOT NULL CONSTRAINT sluice_destinations_name_key UNIQUE,
    kind text NOT NULL,
    settings json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE sluice_pipelines (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    destination text NOT NULL REFERENCES sluice_destinations (id),
    name text NOT NULL,
    spec json NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT sluice_pipelines_name_key UNIQUE (destination, name)
);
CREATE TABLE sluice_runs (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    id text PRIMARY KEY,
    pipeline text NOT NULL REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    trigger text NOT NULL,
    status text NOT NULL,
    queued_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    processed bigint NOT NULL,
    total bigint,
    counts json NOT NULL,
    errors json NOT NULL,
    message text
);
CREATE INDEX sluice_runs_by_pipeline ON sluice_runs (pipeline, queued_at, seq);
CREATE INDEX sluice_runs_unfinished ON sluice_runs (queued_at, seq) WHERE status IN ('queued', 'running');
CREATE TABLE sluice_sync_state (
    pipeline text NOT NULL REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    profile_id text COLLATE "C" NOT NULL,
    key text NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (pipeline, profile_id)
);
CREATE UNIQUE INDEX sluice_sync_state_by_key ON sluice_sync_state (pipeline, key);
"#,
    r#"
CREATE TABLE sluice_sync_checkpoints (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    mark bigint NOT NULL,
    fingerprint text NOT NULL,
    taken_at timestamptz NOT NULL
);
"#,
    r#"
ALTER TABLE sluice_runs ADD COLUMN owner text, ADD COLUMN lease_until timestamptz,
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
UPDATE sluice_runs SET status = 'failed', finished_at = now(),
    message = 'Sluice stopped while this run was in progress; the next run will repair the table'
WHERE status IN ('queued', 'running')
  AND seq NOT IN (SELECT max(seq) FROM sluice_runs WHERE status IN ('queued', 'running') GROUP BY pipeline);
CREATE UNIQUE INDEX sluice_runs_one_unfinished ON sluice_runs (pipeline) WHERE status IN ('queued', 'running');
CREATE TABLE sluice_schedules (
    pipeline text PRIMARY KEY REFERENCES sluice_pipelines (id) ON DELETE CASCADE,
    last_tick timestamptz,
    pending boolean NOT NULL
);
"#,
    // Entries of profiles that left while their rows are kept (`SyncEntry::left`) hold true, every other
    // entry NULL, as in SQLite: adding the column rewrites nothing, and a NULL takes no room in a row (its
    // bit fits in the padding of the row header).
    r#"
ALTER TABLE sluice_sync_state ADD COLUMN has_left boolean;
"#,
];

/// Metadata in PostgreSQL.
pub struct PgMetadata {
    pool: Pool,
    secrets: SecretBox,
}

impl PgMetadata {
    /// Connects and brings the tables up to date. The URL is never logged or put in an error.
    pub async fn connect(url: &str, secrets: SecretBox) -> Result<PgMetadata> {
        let pool = Pool::new(url, "metadata")?;
        migrate(&pool, "metadata", METADATA_MIGRATIONS).await?;
        Ok(PgMetadata { pool, secrets })
    }
}

/// See [`crate::migrate_metadata_to`].
pub(crate) async fn migrate_metadata_to(url: &str, version: usize) -> Result<()> {
    let migrations = METADATA_MIGRATIONS.get(..version).ok_or_else(|| {
        StoreError::Backend(format!("there is no metadata schema version {version}"))
    })?;
    migrate(&Pool::new(url, "metadata")?, "metadata", migrations).await
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(pg_error)
}

const DESTINATION_COLUMNS: &str = "id, name, kind, settings::text, created_at, updated_at";

fn destination_from_row(secrets: &SecretBox, r: &Row) -> Result<DestinationRecord> {
    let name: String = get(r, 1)?;
    Ok(DestinationRecord {
        id: get(r, 0)?,
        settings: codec::open_settings(secrets, &name, get(r, 3)?)?,
        name,
        kind: get(r, 2)?,
        created_at: get(r, 4)?,
        updated_at: get(r, 5)?,
    })
}

fn destination_conflict(e: tokio_postgres::Error, rec: &DestinationRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique("sluice_destinations_name_key")) => {
            StoreError::Conflict(format!("a destination named `{}` already exists", rec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a destination with id `{}` already exists", rec.id))
        }
        _ => pg_error(e),
    }
}

const PIPELINE_COLUMNS: &str = "id, spec::text, created_at, updated_at";

fn pipeline_from_row(r: &Row) -> Result<PipelineRecord> {
    let id: String = get(r, 0)?;
    Ok(PipelineRecord {
        spec: codec::spec_from_json(&id, get(r, 1)?)?,
        id,
        created_at: get(r, 2)?,
        updated_at: get(r, 3)?,
    })
}

fn pipeline_conflict(e: tokio_postgres::Error, rec: &PipelineRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique("sluice_pipelines_name_key")) => StoreError::Conflict(format!(
            "the destination already has a pipeline named `{}`",
            rec.spec.name
        )),
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a pipeline with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.spec.destination
        )),
        None => pg_error(e),
    }
}

const RUN_COLUMNS: &str =
    "id, pipeline, trigger, status, queued_at, started_at, finished_at, processed, total, \
                           counts::text, errors::text, message";

fn run_from_row(r: &Row) -> Result<RunRecord> {
    let id: String = get(r, 0)?;
    Ok(RunRecord {
        pipeline: get(r, 1)?,
        trigger: get(r, 2)?,
        status: codec::status_from_str(&id, get(r, 3)?)?,
        queued_at: get(r, 4)?,
        started_at: get(r, 5)?,
        finished_at: get(r, 6)?,
        progress: Progress {
            processed: codec::to_u64(get(r, 7)?),
            total: get::<Option<i64>>(r, 8)?.map(codec::to_u64),
        },
        counts: codec::counts_from_json(&id, get(r, 9)?)?,
        errors: codec::errors_from_json(&id, get(r, 10)?)?,
        message: get(r, 11)?,
        id,
    })
}

fn rows_to<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

#[async_trait]
impl Catalog for PgMetadata {
    async fn get_schema(&self) -> Result<Schema> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT model::text FROM sluice_customer_model WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        match row {
            Some(row) => codec::schema_from_json(get(&row, 0)?),
            None => Ok(Schema::default()),
        }
    }

    async fn put_schema(&self, schema: &Schema) -> Result<()> {
        let model = codec::schema_to_json(schema);
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_customer_model (id, model, updated_at) VALUES (1, $1::text::json, $2)
             ON CONFLICT (id) DO UPDATE SET model = EXCLUDED.model, updated_at = EXCLUDED.updated_at",
            &[&model, &codec::now()],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn list_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(&format!("SELECT {DESTINATION_COLUMNS} FROM sluice_destinations ORDER BY created_at, seq"), &[])
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| destination_from_row(&self.secrets, r))
    }

    async fn get_destination(&self, id: &str) -> Result<Option<DestinationRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {DESTINATION_COLUMNS} FROM sluice_destinations WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| destination_from_row(&self.secrets, &r))
            .transpose()
    }

    async fn insert_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let settings = codec::seal_settings(&self.secrets, &rec.settings)?;
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_destinations (id, name, kind, settings, created_at, updated_at)
             VALUES ($1, $2, $3, $4::text::json, $5, $6)",
            &[
                &rec.id,
                &rec.name,
                &rec.kind,
                &settings,
                &rec.created_at,
                &rec.updated_at,
            ],
        )
        .await
        .map_err(|e| destination_conflict(e, rec))?;
        Ok(())
    }

    async fn update_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let settings = codec::seal_settings(&self.secrets, &rec.settings)?;
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_destinations SET name = $2, kind = $3, settings = $4::text::json, updated_at = $5
                 WHERE id = $1",
                &[&rec.id, &rec.name, &rec.kind, &settings, &rec.updated_at],
            )
            .await
            .map_err(|e| destination_conflict(e, rec))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "destination `{}` does not exist",
                rec.id
            )));
        }
        Ok(())
    }

    async fn delete_destination(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        // Locking the destination row makes a concurrent insert_pipeline (whose foreign key check takes a
        // share lock on it) wait, so no pipeline can appear between the check and the delete.
        let exists = tx
            .query_opt(
                "SELECT 1 FROM sluice_destinations WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(pg_error)?
            .is_some();
        if !exists {
            return Ok(false);
        }
        let users: Vec<String> = tx
            .query(
                "SELECT name FROM sluice_pipelines WHERE destination = $1 ORDER BY created_at, seq",
                &[&id],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_>>()?;
        if !users.is_empty() {
            return Err(codec::in_use(&users));
        }
        tx.execute("DELETE FROM sluice_destinations WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        Ok(true)
    }

    async fn list_pipelines(&self, destination: Option<&str>) -> Result<Vec<PipelineRecord>> {
        let conn = self.pool.get().await?;
        let rows = match destination {
            Some(d) => {
                let sql = format!(
                    "SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines WHERE destination = $1 ORDER BY created_at, seq"
                );
                conn.query(&sql, &[&d]).await
            }
            None => {
                let sql = format!("SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines ORDER BY created_at, seq");
                conn.query(&sql, &[]).await
            }
        }
        .map_err(pg_error)?;
        rows_to(rows, pipeline_from_row)
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| pipeline_from_row(&r)).transpose()
    }

    async fn insert_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let spec = codec::spec_to_json(&rec.spec);
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_pipelines (id, destination, name, spec, created_at, updated_at)
             VALUES ($1, $2, $3, $4::text::json, $5, $6)",
            &[
                &rec.id,
                &rec.spec.destination,
                &rec.spec.name,
                &spec,
                &rec.created_at,
                &rec.updated_at,
            ],
        )
        .await
        .map_err(|e| pipeline_conflict(e, rec))?;
        Ok(())
    }

    async fn update_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let spec = codec::spec_to_json(&rec.spec);
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_pipelines SET destination = $2, name = $3, spec = $4::text::json, updated_at = $5
                 WHERE id = $1",
                &[&rec.id, &rec.spec.destination, &rec.spec.name, &spec, &rec.updated_at],
            )
            .await
            .map_err(|e| pipeline_conflict(e, rec))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "pipeline `{}` does not exist",
                rec.id
            )));
        }
        Ok(())
    }

    async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let conn = self.pool.get().await?;
        // Runs and sync state go with it through ON DELETE CASCADE.
        let n = conn
            .execute("DELETE FROM sluice_pipelines WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }
}

#[async_trait]
impl RunLog for PgMetadata {
    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            &format!(
                "INSERT INTO sluice_runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json, $11::text::json, $12)",
                RUN_COLUMNS.replace("::text", "")
            ),
            &[
                &run.id,
                &run.pipeline,
                &run.trigger,
                &run.status.as_str(),
                &run.queued_at,
                &run.started_at,
                &run.finished_at,
                &codec::to_i64(run.progress.processed),
                &run.progress.total.map(codec::to_i64),
                &codec::counts_to_json(&run.counts),
                &codec::errors_to_json(&run.errors),
                &run.message,
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique(_)) => StoreError::Conflict(format!("a run with id `{}` already exists", run.id)),
            Some(Violation::ForeignKey) => StoreError::NotFound(format!("pipeline `{}` does not exist", run.pipeline)),
            None => pg_error(e),
        })?;
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_runs SET trigger = $2, status = $3, queued_at = $4, started_at = $5, finished_at = $6,
                     processed = $7, total = $8, counts = $9::text::json, errors = $10::text::json, message = $11
                 WHERE id = $1",
                &[
                    &run.id,
                    &run.trigger,
                    &run.status.as_str(),
                    &run.queued_at,
                    &run.started_at,
                    &run.finished_at,
                    &codec::to_i64(run.progress.processed),
                    &run.progress.total.map(codec::to_i64),
                    &codec::counts_to_json(&run.counts),
                    &codec::errors_to_json(&run.errors),
                    &run.message,
                ],
            )
            .await
            .map_err(pg_error)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "run `{}` does not exist",
                run.id
            )));
        }
        Ok(())
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM sluice_runs WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let limit = limit_param(limit);
        let rows = match before {
            None => conn
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE pipeline = $1
                         ORDER BY queued_at DESC, seq DESC LIMIT $2"
                    ),
                    &[&pipeline, &limit],
                )
                .await
                .map_err(pg_error)?,
            Some(before) => {
                let cursor = conn
                    .query_opt(
                        "SELECT queued_at, seq FROM sluice_runs WHERE id = $1 AND pipeline = $2",
                        &[&before, &pipeline],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "run `{before}` of pipeline `{pipeline}` does not exist"
                        ))
                    })?;
                let (queued_at, seq): (DateTime<Utc>, i64) = (get(&cursor, 0)?, get(&cursor, 1)?);
                conn.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE pipeline = $1 AND (queued_at, seq) < ($3, $4)
                         ORDER BY queued_at DESC, seq DESC LIMIT $2"
                    ),
                    &[&pipeline, &limit, &queued_at, &seq],
                )
                .await
                .map_err(pg_error)?
            }
        };
        rows_to(rows, run_from_row)
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE status IN ('queued', 'running') ORDER BY queued_at, seq"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, run_from_row)
    }
}

#[async_trait]
impl SyncState for PgMetadata {
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncEntry>> {
        let limit = limit_param(limit);
        let mut sql = format!("SELECT {SYNC_COLUMNS} FROM sluice_sync_state WHERE pipeline = $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&pipeline, &limit];
        if let Some(after) = &after {
            args.push(after);
            sql.push_str(&format!(" AND profile_id > ${}", args.len()));
        }
        if let Some(upto) = &upto {
            args.push(upto);
            sql.push_str(&format!(" AND profile_id <= ${}", args.len()));
        }
        sql.push_str(" ORDER BY profile_id LIMIT $2");
        let conn = self.pool.get().await?;
        let rows = conn.query(&sql, &args).await.map_err(pg_error)?;
        rows_to(rows, entry_from_row)
    }

    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> Result<Vec<SyncEntry>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.iter().map(SyncKey::as_str).collect();
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SYNC_COLUMNS} FROM sluice_sync_state
                     WHERE pipeline = $1 AND key = ANY($2::text[])"
                ),
                &[&pipeline, &keys],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, entry_from_row)
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
        let plan = codec::plan_sync(&upserts, &deletes);
        let ids: Vec<&str> = plan.keep.iter().map(|e| e.profile_id.as_str()).collect();
        let keys: Vec<&str> = plan.keep.iter().map(|e| e.key.as_str()).collect();
        let hashes: Vec<[u8; 16]> = plan
            .keep
            .iter()
            .map(|e| codec::hash_to_bytes(e.hash))
            .collect();
        let hashes: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let lefts: Vec<Option<bool>> = plan.keep.iter().map(|e| e.left.then_some(true)).collect();
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        if !plan.drop.is_empty() {
            tx.execute(
                "DELETE FROM sluice_sync_state WHERE pipeline = $1 AND profile_id = ANY($2::text[])",
                &[&pipeline, &plan.drop],
            )
            .await
            .map_err(pg_error)?;
        }
        if !ids.is_empty() {
            tx.execute(
                "DELETE FROM sluice_sync_state AS s USING unnest($2::text[], $3::text[]) AS u(profile_id, key)
                 WHERE s.pipeline = $1 AND s.key = u.key AND s.profile_id <> u.profile_id",
                &[&pipeline, &ids, &keys],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "INSERT INTO sluice_sync_state (pipeline, profile_id, key, hash, has_left)
                 SELECT $1, u.profile_id, u.key, u.hash, u.has_left
                 FROM unnest($2::text[], $3::text[], $4::bytea[], $5::boolean[])
                     AS u(profile_id, key, hash, has_left)
                 ON CONFLICT (pipeline, profile_id) DO UPDATE
                     SET key = EXCLUDED.key, hash = EXCLUDED.hash, has_left = EXCLUDED.has_left",
                &[&pipeline, &ids, &keys, &hashes, &lefts],
            )
            .await
            .map_err(|e| match violation(&e) {
                Some(Violation::ForeignKey) => {
                    StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
                }
                _ => pg_error(e),
            })?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> Result<Vec<SyncEntry>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SYNC_COLUMNS} FROM sluice_sync_state
                     WHERE pipeline = $1 AND profile_id = ANY($2::text[]) ORDER BY profile_id"
                ),
                &[&pipeline, &ids],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, entry_from_row)
    }

    async fn sync_clear(&self, pipeline: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        for sql in [
            "DELETE FROM sluice_sync_checkpoints WHERE pipeline = $1",
            "DELETE FROM sluice_sync_state WHERE pipeline = $1",
        ] {
            tx.execute(sql, &[&pipeline]).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn sync_checkpoint(&self, pipeline: &str) -> Result<Option<SyncCheckpoint>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT mark, fingerprint, taken_at FROM sluice_sync_checkpoints WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| {
            Ok(SyncCheckpoint {
                mark: get(&r, 0)?,
                fingerprint: get(&r, 1)?,
                taken_at: get(&r, 2)?,
            })
        })
        .transpose()
    }

    async fn set_sync_checkpoint(
        &self,
        pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<()> {
        let conn = self.pool.get().await?;
        let Some(cp) = checkpoint else {
            conn.execute(
                "DELETE FROM sluice_sync_checkpoints WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
            return Ok(());
        };
        conn.execute(
            "INSERT INTO sluice_sync_checkpoints (pipeline, mark, fingerprint, taken_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pipeline) DO UPDATE SET mark = EXCLUDED.mark,
                 fingerprint = EXCLUDED.fingerprint, taken_at = EXCLUDED.taken_at",
            &[&pipeline, &cp.mark, &cp.fingerprint, &cp.taken_at],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey) => {
                StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
            }
            _ => pg_error(e),
        })?;
        Ok(())
    }

    async fn sync_count(&self, pipeline: &str) -> Result<u64> {
        self.sync_count_where(pipeline, "has_left IS NULL").await
    }

    async fn sync_count_left(&self, pipeline: &str) -> Result<u64> {
        self.sync_count_where(pipeline, "has_left").await
    }
}

impl PgMetadata {
    async fn sync_count_where(&self, pipeline: &str, condition: &'static str) -> Result<u64> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                &format!(
                    "SELECT count(*) FROM sluice_sync_state WHERE pipeline = $1 AND {condition}"
                ),
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        Ok(codec::to_u64(get(&row, 0)?))
    }
}

const SYNC_COLUMNS: &str = "profile_id, key, hash, has_left";

fn entry_from_row(r: &Row) -> Result<SyncEntry> {
    let profile_id: String = get(r, 0)?;
    Ok(SyncEntry {
        hash: codec::hash_from_bytes(&profile_id, get(r, 2)?)?,
        key: SyncKey::from_stored(get::<String>(r, 1)?),
        left: get::<Option<bool>>(r, 3)? == Some(true),
        profile_id,
    })
}

// ---------------------------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------------------------

const PROFILE_MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE sluice_profiles (
    id text COLLATE "C" PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    doc jsonb NOT NULL
);
"#,
    r#"
ALTER TABLE sluice_profiles ADD COLUMN change_id bigint NOT NULL DEFAULT 0;
CREATE INDEX sluice_profiles_by_change ON sluice_profiles (change_id);
CREATE TABLE sluice_profile_tombstones (
    id text COLLATE "C" PRIMARY KEY,
    change_id bigint NOT NULL,
    deleted_at timestamptz NOT NULL
);
CREATE INDEX sluice_profile_tombstones_by_change ON sluice_profile_tombstones (change_id);
CREATE INDEX sluice_profile_tombstones_by_time ON sluice_profile_tombstones (deleted_at);
"#,
];

/// This transaction's change number: its id, which is assigned on first use, only grows, and is compared
/// with the oldest transaction still running (see [`ProfileStore::change_mark`]).
const CHANGE_ID: &str = "pg_current_xact_id()::text::bigint";

/// The profile store in PostgreSQL.
pub struct PgProfiles {
    pool: Pool,
}

impl PgProfiles {
    /// Connects and brings the table up to date. The URL is never logged or put in an error.
    pub async fn connect(url: &str) -> Result<PgProfiles> {
        let pool = Pool::new(url, "profiles")?;
        migrate(&pool, "profiles", PROFILE_MIGRATIONS).await?;
        Ok(PgProfiles { pool })
    }
}

fn raw_profile_from_row(r: &Row) -> Result<RawProfile> {
    Ok(RawProfile {
        id: get(r, 0)?,
        updated_at: get(r, 1)?,
        doc: get(r, 2)?,
    })
}

fn profile_from_row(r: &Row) -> Result<Profile> {
    let id: String = get(r, 0)?;
    Ok(Profile {
        updated_at: get(r, 1)?,
        doc: codec::doc_from_json(&id, get(r, 2)?)?,
        id,
    })
}

/// How many times an upsert retries the profiles another writer inserted between our read and our insert.
const UPSERT_ATTEMPTS: usize = 5;

async fn upsert_batch(
    tx: &tokio_postgres::Transaction<'_>,
    mut pending: Vec<(String, Map<String, Json>)>,
    now: DateTime<Utc>,
) -> Result<UpsertOutcome> {
    let mut outcome = UpsertOutcome::default();
    for _ in 0..UPSERT_ATTEMPTS {
        let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
        // Locking in id order keeps two overlapping batches from deadlocking each other.
        let rows = tx
            .query("SELECT id, doc FROM sluice_profiles WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", &[&ids])
            .await
            .map_err(pg_error)?;
        let mut stored: HashMap<String, Map<String, Json>> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: String = get(r, 0)?;
            let doc = codec::doc_from_json(&id, get(r, 1)?)?;
            stored.insert(id, doc);
        }
        let (mut updates, mut inserts) = (Vec::with_capacity(stored.len()), Vec::new());
        for (id, doc) in pending {
            match stored.remove(&id) {
                Some(stored) => {
                    let mut merged = stored.clone();
                    sluice_core::schema::merge_profile(&mut merged, doc);
                    // Unchanged profiles keep their change number: exports skip them.
                    if merged == stored {
                        outcome.updated += 1;
                    } else {
                        updates.push((id, merged));
                    }
                }
                None => inserts.push((id, doc)),
            }
        }
        if !updates.is_empty() {
            let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_str()).collect();
            let docs: Vec<tokio_postgres::types::Json<&Map<String, Json>>> = updates
                .iter()
                .map(|(_, d)| tokio_postgres::types::Json(d))
                .collect();
            tx.execute(
                &format!(
                    "UPDATE sluice_profiles AS p SET doc = u.doc, updated_at = $3, change_id = {CHANGE_ID}
                     FROM unnest($1::text[], $2::jsonb[]) AS u(id, doc) WHERE p.id = u.id"
                ),
                &[&ids, &docs, &now],
            )
            .await
            .map_err(pg_error)?;
            outcome.updated += updates.len() as u64;
        }
        if inserts.is_empty() {
            return Ok(outcome);
        }
        let ids: Vec<&str> = inserts.iter().map(|(id, _)| id.as_str()).collect();
        let docs: Vec<tokio_postgres::types::Json<&Map<String, Json>>> = inserts
            .iter()
            .map(|(_, d)| tokio_postgres::types::Json(d))
            .collect();
        let rows = tx
            .query(
                &format!(
                    "INSERT INTO sluice_profiles (id, updated_at, doc, change_id)
                     SELECT u.id, $3, u.doc, {CHANGE_ID} FROM unnest($1::text[], $2::jsonb[]) AS u(id, doc)
                     ON CONFLICT (id) DO NOTHING RETURNING id"
                ),
                &[&ids, &docs, &now],
            )
            .await
            .map_err(pg_error)?;
        outcome.inserted += rows.len() as u64;
        if rows.len() == inserts.len() {
            return Ok(outcome);
        }
        // Another writer inserted some of these ids after our read: merge into theirs on the next pass.
        let done: HashSet<String> = rows.iter().map(|r| get(r, 0)).collect::<Result<_>>()?;
        pending = inserts
            .into_iter()
            .filter(|(id, _)| !done.contains(id))
            .collect();
    }
    Err(StoreError::Backend(
        "other writers kept inserting the same profiles concurrently; the batch was not stored, retry it".into(),
    ))
}

#[async_trait]
impl ProfileStore for PgProfiles {
    async fn upsert(&self, profiles: Vec<(String, Map<String, Json>)>) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let profiles = codec::fold_batch(profiles);
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        let outcome = upsert_batch(&tx, profiles, codec::now()).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(outcome)
    }

    async fn get(&self, id: &str) -> Result<Option<Profile>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT id, updated_at, doc FROM sluice_profiles WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| profile_from_row(&r)).transpose()
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute("DELETE FROM sluice_profiles WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        if n > 0 {
            let now = codec::now();
            tx.execute(
                &format!(
                    "INSERT INTO sluice_profile_tombstones (id, change_id, deleted_at) VALUES ($1, {CHANGE_ID}, $2)
                     ON CONFLICT (id) DO UPDATE SET change_id = EXCLUDED.change_id, deleted_at = EXCLUDED.deleted_at"
                ),
                &[&id, &now],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "DELETE FROM sluice_profile_tombstones WHERE deleted_at < $1",
                &[&(now - TOMBSTONE_RETENTION)],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn page_raw(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let mut args = vec![PgParam(SqlParam::Int(limit_param(limit)))];
        let mut sql = String::from("SELECT id, updated_at, doc::text FROM sluice_profiles WHERE ");
        if let Some(after) = after {
            args.push(PgParam(SqlParam::Text(after.to_owned())));
            sql.push_str("id > $2 AND ");
        }
        match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Postgres, args.len() + 1);
                sql.push_str(&format!("({cond})"));
                args.extend(params.into_iter().map(PgParam));
            }
            None => sql.push_str("TRUE"),
        }
        sql.push_str(" ORDER BY id LIMIT $1");
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let conn = self.pool.get().await?;
        let rows = conn.query(&sql, &refs).await.map_err(pg_error)?;
        rows_to(rows, raw_profile_from_row)
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let (sql, args) = match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Postgres, 1);
                (
                    format!("SELECT count(*) FROM sluice_profiles WHERE ({cond})"),
                    params.into_iter().map(PgParam).collect::<Vec<_>>(),
                )
            }
            None => (
                "SELECT count(*) FROM sluice_profiles".to_owned(),
                Vec::new(),
            ),
        };
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let conn = self.pool.get().await?;
        let row = conn.query_one(&sql, &refs).await.map_err(pg_error)?;
        Ok(codec::to_u64(get(&row, 0)?))
    }

    async fn change_mark(&self) -> Result<i64> {
        // Every transaction below the snapshot's xmin has ended, so its changes are visible to any later
        // read; one at or above it may still commit, and its change number is at least the mark.
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
                &[],
            )
            .await
            .map_err(pg_error)?;
        get(&row, 0)
    }

    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT (SELECT count(*) FROM sluice_profiles WHERE change_id >= $1),
                        (SELECT count(*) FROM sluice_profile_tombstones WHERE change_id >= $1)",
                &[&mark],
            )
            .await
            .map_err(pg_error)?;
        Ok(ChangeCounts {
            changed: codec::to_u64(get(&row, 0)?),
            deleted: codec::to_u64(get(&row, 1)?),
        })
    }

    async fn changed_page_raw(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT id, updated_at, doc::text FROM sluice_profiles
                 WHERE change_id >= $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&mark, &after.unwrap_or(""), &limit_param(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, raw_profile_from_row)
    }

    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT t.id FROM sluice_profile_tombstones AS t WHERE t.change_id >= $1
                 AND NOT EXISTS (SELECT 1 FROM sluice_profiles AS p WHERE p.id = t.id) ORDER BY t.id",
                &[&mark],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| get(r, 0))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Binding pushed-down filter parameters
// ---------------------------------------------------------------------------------------------------------

/// A filter parameter bound to whatever type PostgreSQL inferred for its placeholder.
///
/// The filter SQL decides the context of each `$n` (`(doc->>'ltv')::numeric > $3`, `$4::timestamptz`,
/// `doc->>'email' = $5`), so a text value may have to arrive as `numeric`, `timestamptz`, `date`, `uuid` or
/// `jsonb`, and an integer as `int4` or `numeric`. Binding by the inferred type, with the conversion
/// PostgreSQL itself would apply to a literal, keeps the pushdown free to write natural SQL.
#[derive(Debug)]
struct PgParam(SqlParam);

type BindResult = std::result::Result<IsNull, Box<dyn StdError + Sync + Send>>;

fn bind<T: ToSql>(value: T, ty: &Type, out: &mut BytesMut) -> BindResult {
    if !T::accepts(ty) {
        return Err(format!("a filter value cannot be bound to a parameter of type {ty}").into());
    }
    value.to_sql(ty, out)
}

fn parse_as<T: std::str::FromStr>(
    text: &str,
    ty: &Type,
) -> std::result::Result<T, Box<dyn StdError + Sync + Send>> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a valid {ty}").into())
}

impl ToSql for PgParam {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> BindResult {
        match &self.0 {
            SqlParam::Null => Ok(IsNull::Yes),
            SqlParam::Bool(b) => match *ty {
                Type::JSON | Type::JSONB => bind(Json::Bool(*b), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(b.to_string().as_str(), ty, out),
                _ => bind(*b, ty, out),
            },
            SqlParam::Int(i) => match *ty {
                Type::INT2 => bind(i16::try_from(*i)?, ty, out),
                Type::INT4 => bind(i32::try_from(*i)?, ty, out),
                Type::FLOAT4 => bind(*i as f32, ty, out),
                Type::FLOAT8 => bind(*i as f64, ty, out),
                Type::NUMERIC => numeric(&i.to_string(), out),
                Type::JSON | Type::JSONB => bind(Json::from(*i), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(i.to_string().as_str(), ty, out),
                _ => bind(*i, ty, out),
            },
            SqlParam::Float(f) => match *ty {
                Type::FLOAT4 => bind(*f as f32, ty, out),
                Type::NUMERIC if f.is_finite() => numeric(&f.to_string(), out),
                Type::JSON | Type::JSONB => bind(Json::from(*f), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(f.to_string().as_str(), ty, out),
                _ => bind(*f, ty, out),
            },
            SqlParam::Text(s) => match *ty {
                Type::NUMERIC => numeric(s, out),
                Type::INT2 => bind(parse_as::<i16>(s, ty)?, ty, out),
                Type::INT4 => bind(parse_as::<i32>(s, ty)?, ty, out),
                Type::INT8 => bind(parse_as::<i64>(s, ty)?, ty, out),
                Type::FLOAT4 => bind(parse_as::<f32>(s, ty)?, ty, out),
                Type::FLOAT8 => bind(parse_as::<f64>(s, ty)?, ty, out),
                Type::BOOL => bind(parse_as::<bool>(s, ty)?, ty, out),
                Type::TIMESTAMPTZ => bind(sluice_core::schema::parse_datetime(s)?, ty, out),
                Type::TIMESTAMP => {
                    bind(sluice_core::schema::parse_datetime(s)?.naive_utc(), ty, out)
                }
                Type::DATE => bind(parse_as::<chrono::NaiveDate>(s, ty)?, ty, out),
                Type::TIME => bind(sluice_core::schema::parse_time(s)?, ty, out),
                Type::UUID => bind(parse_as::<uuid::Uuid>(s, ty)?, ty, out),
                // As for a literal: text given for JSON is JSON text.
                Type::JSON | Type::JSONB => bind(serde_json::from_str::<Json>(s)?, ty, out),
                _ => bind(s.as_str(), ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows what it holds.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Writes a decimal number in the binary form of `numeric`: base-10000 digit groups around the point.
fn numeric(text: &str, out: &mut BytesMut) -> BindResult {
    let t = text.trim();
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !digits_only(int)
        || !digits_only(frac)
        || unsigned.len() > 1000
    {
        return Err(format!("`{text}` is not a decimal number").into());
    }
    let int = int.trim_start_matches('0');
    let mut padded = "0".repeat((4 - int.len() % 4) % 4);
    padded.push_str(int);
    let int_groups = padded.len() / 4;
    padded.push_str(frac);
    padded.push_str(&"0".repeat((4 - frac.len() % 4) % 4));
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = int_groups as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(frac.len() as u16);
    for g in groups {
        out.put_i16(g);
    }
    Ok(IsNull::No)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_url() -> String {
        std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
            panic!("SLUICE_TEST_POSTGRES_URL is not set: these tests need a PostgreSQL server")
        })
    }

    /// Each value through the placeholder type PostgreSQL infers, read back as text.
    #[tokio::test]
    async fn filter_parameters_bind_to_the_inferred_type() {
        let pool = Pool::new(&server_url(), "profiles").unwrap();
        let conn = pool.get().await.unwrap();
        let cases: Vec<(&str, SqlParam, Option<&str>)> = vec![
            (
                "$1::numeric",
                SqlParam::Text("-1234.5600".into()),
                Some("-1234.5600"),
            ),
            (
                "$1::numeric",
                SqlParam::Text("0.00001".into()),
                Some("0.00001"),
            ),
            (
                "$1::numeric",
                SqlParam::Text("100000000".into()),
                Some("100000000"),
            ),
            ("$1::numeric", SqlParam::Text("0".into()), Some("0")),
            ("$1::numeric", SqlParam::Text("-0.0".into()), Some("0.0")),
            ("$1::numeric", SqlParam::Text(".5".into()), Some("0.5")),
            ("$1::numeric", SqlParam::Int(-42), Some("-42")),
            ("$1::numeric", SqlParam::Float(2.5), Some("2.5")),
            ("$1::int4", SqlParam::Int(7), Some("7")),
            (
                "$1::int8",
                SqlParam::Text("9000000000".into()),
                Some("9000000000"),
            ),
            ("$1::float8", SqlParam::Int(3), Some("3")),
            (
                "$1::timestamptz",
                SqlParam::Text("2024-05-13T17:30:00+02:00".into()),
                Some("2024-05-13 15:30:00+00"),
            ),
            (
                "$1::date",
                SqlParam::Text("2024-02-29".into()),
                Some("2024-02-29"),
            ),
            (
                "$1::time",
                SqlParam::Text("07:30:00.25".into()),
                Some("07:30:00.25"),
            ),
            (
                "$1::uuid",
                SqlParam::Text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into()),
                Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ),
            (
                "$1::jsonb",
                SqlParam::Text(r#"{"a": [1]}"#.into()),
                Some(r#"{"a": [1]}"#),
            ),
            ("$1::jsonb", SqlParam::Int(5), Some("5")),
            ("$1::bool", SqlParam::Bool(true), Some("true")),
            ("$1::text", SqlParam::Bool(false), Some("false")),
            ("$1::text", SqlParam::Float(0.1), Some("0.1")),
            ("$1::text", SqlParam::Text("Zoë 😀".into()), Some("Zoë 😀")),
            ("$1::numeric", SqlParam::Null, None),
        ];
        conn.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        for (expr, value, expected) in cases {
            let sql = format!("SELECT ({expr})::text");
            let row = conn.query_one(&sql, &[&PgParam(value.clone())]).await;
            let got: Option<String> = row
                .unwrap_or_else(|e| panic!("{expr} with {value:?}: {}", chain(&e)))
                .get(0);
            assert_eq!(got.as_deref(), expected, "{expr} with {value:?}");
        }
        for (expr, value) in [
            ("$1::numeric", SqlParam::Text("12abc".into())),
            ("$1::int4", SqlParam::Int(i64::MAX)),
            ("$1::bool", SqlParam::Int(1)),
            ("$1::uuid", SqlParam::Text("nope".into())),
        ] {
            let sql = format!("SELECT ({expr})::text");
            assert!(
                conn.query_one(&sql, &[&PgParam(value.clone())])
                    .await
                    .is_err(),
                "{expr} with {value:?}"
            );
        }
    }

    #[tokio::test]
    async fn connection_errors_do_not_show_the_password() {
        let url = "postgres://sluice:hunter2-secret@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2";
        let err = PgMetadata::connect(url, SecretBox::generate())
            .await
            .err()
            .expect("nothing listens on port 1");
        let text = err.to_string();
        assert!(
            text.contains("cannot connect to the PostgreSQL metadata store"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let err = PgProfiles::connect("postgres://u:hunter2@h/db?sslmode=sometimes")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("not a valid PostgreSQL URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_schema_is_explained() {
        let base = server_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3Dsluice_no_such_schema");
        let err = PgProfiles::connect(&url)
            .await
            .err()
            .expect("no schema to create tables in")
            .to_string();
        assert!(err.contains("create the schema first"), "{err}");
    }
}
