//! Where Sluice keeps its state: metadata (Customer Model, destinations, pipelines, runs, sync state) and
//! the profile store.
//!
//! Each store is a trait with two implementations — embedded SQLite in the data directory (zero setup) and
//! PostgreSQL (for several instances sharing one workspace, or larger profile sets) — and both pass one
//! shared test suite. Schema migrations are versioned and run when a store is opened.
//!
//! Destination secrets (`password`, `private_key`, …) are encrypted with [`SecretBox`] before they are
//! written and decrypted when read; nothing else in Sluice sees them at rest.
//!
//! Profiles are kept as normalized JSON documents (see `sluice_core::schema`) with the id and update time in
//! their own columns, so the filter pushdown of `sluice_core::filter` can select them in SQL.
//!
//! Both backends order text ids by their bytes (SQLite's BINARY collation, `COLLATE "C"` in PostgreSQL), so
//! keyset pagination visits profiles and sync entries in the same order whichever store holds them.
//! Timestamps are kept to the microsecond: a record reads back equal to what was written when its times
//! have no finer part.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sluice_core::filter::Filter;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::{Profile, RawProfile, Schema};

mod codec;
pub mod coord;
pub mod postgres;
pub mod secrets;
pub mod sqlite;
mod tls;

pub use coord::{Coordination, Held};
pub use secrets::SecretBox;
pub use sluice_core::sync::{SyncEntry, SyncKey};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (a name already taken) or an object is still in use.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// The store could not be reached or answered with an error.
    #[error("store error: {0}")]
    Backend(String),
    /// Stored data could not be read back (corrupt JSON, a secret that does not decrypt).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Top-level settings fields that hold secrets and are stored encrypted.
pub const SECRET_FIELDS: [&str; 3] = ["password", "private_key", "private_key_passphrase"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationRecord {
    pub id: String,
    pub name: String,
    /// `postgresql`, `mysql`, `clickhouse`, `snowflake` or `sqlite`.
    pub kind: String,
    /// The connection settings, secrets in clear (they are encrypted only at rest).
    pub settings: Json,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub id: String,
    pub spec: PipelineSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub processed: u64,
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub read: u64,
    pub filtered_out: u64,
    pub transform_failed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub failed: u64,
}

/// Failures of one kind in a run, grouped by message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunErrorGroup {
    /// `read`, `filter`, `transform`, `write` or `delete`.
    pub step: String,
    pub message: String,
    pub count: u64,
    /// A few profile ids that failed this way (at most [`MAX_SAMPLES`]).
    pub sample_profiles: Vec<String>,
    pub last_seen: DateTime<Utc>,
}

pub const MAX_SAMPLES: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub pipeline: String,
    /// `manual`, `schedule` or `api`.
    pub trigger: String,
    pub status: RunStatus,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: Progress,
    pub counts: Counts,
    pub errors: Vec<RunErrorGroup>,
    /// Why the run failed or was cancelled, when it did.
    pub message: Option<String>,
}

/// Until which point of the profile store's history a pipeline's sync state is known to be complete.
///
/// Kept only while it holds: every profile that did not change at or after `mark` (see
/// [`ProfileStore::change_mark`]) has the sync entry that the pipeline, as described by `fingerprint`,
/// would compute for it today. A run may then read only the profiles changed since `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCheckpoint {
    pub mark: i64,
    /// What the rows were computed from (pipeline, Customer Model, table, destination), hashed by the
    /// engine: a different fingerprint makes the checkpoint worthless.
    pub fingerprint: String,
    pub taken_at: DateTime<Utc>,
}

/// Metadata: the Customer Model, destinations and pipelines ([`Catalog`]), runs ([`RunLog`]), each
/// pipeline's sync state ([`SyncState`]), run leases and schedule state ([`Coordination`]). One store
/// holds them all; code that needs one part takes that trait (`&dyn SyncState` upcasts from a
/// `&dyn MetadataStore`).
///
/// Every method of these traits is one transaction: it either fully happens or not at all.
///
/// ```
/// use sluice_store::{MetadataStore, SyncState};
///
/// fn record(_sync: &dyn SyncState) {}
/// fn run(meta: &dyn MetadataStore) {
///     record(meta)
/// }
/// ```
pub trait MetadataStore: Catalog + RunLog + SyncState + Coordination {}

impl<T: Catalog + RunLog + SyncState + Coordination + ?Sized> MetadataStore for T {}

/// What the user configured: the Customer Model, destinations and pipelines. Names are unique as
/// written (case-sensitive).
#[async_trait]
pub trait Catalog: Send + Sync {
    /// The Customer Model; an empty one before the first `put_schema`.
    async fn get_schema(&self) -> Result<Schema>;
    async fn put_schema(&self, schema: &Schema) -> Result<()>;

    async fn list_destinations(&self) -> Result<Vec<DestinationRecord>>;
    async fn get_destination(&self, id: &str) -> Result<Option<DestinationRecord>>;
    /// Seals the secret fields of `settings` before writing. `Conflict` when the name or id is taken.
    async fn insert_destination(&self, rec: &DestinationRecord) -> Result<()>;
    /// Replaces name, kind, settings and `updated_at` (`created_at` stays as stored). `NotFound` when
    /// absent, `Conflict` when the new name is taken.
    async fn update_destination(&self, rec: &DestinationRecord) -> Result<()>;
    /// `Conflict` (naming them) while pipelines use the destination; `Ok(false)` when absent.
    async fn delete_destination(&self, id: &str) -> Result<bool>;

    /// All pipelines, or one destination's, ordered by creation.
    async fn list_pipelines(&self, destination: Option<&str>) -> Result<Vec<PipelineRecord>>;
    async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>>;
    /// `Conflict` when the destination already has a pipeline with that name (or the id is taken),
    /// `NotFound` when the spec's destination does not exist.
    async fn insert_pipeline(&self, rec: &PipelineRecord) -> Result<()>;
    /// Replaces the spec and `updated_at`; the pipeline may move to another destination. `NotFound` when
    /// the pipeline or the new destination is absent, `Conflict` when the name is taken there.
    async fn update_pipeline(&self, rec: &PipelineRecord) -> Result<()>;
    /// Deletes the pipeline with its runs and sync state; `Ok(false)` when absent.
    async fn delete_pipeline(&self, id: &str) -> Result<bool>;
}

/// The history of runs. Claiming a run for an instance, and leases, are [`Coordination`]'s.
#[async_trait]
pub trait RunLog: Send + Sync {
    /// `NotFound` when the pipeline does not exist, `Conflict` when the id is taken.
    async fn insert_run(&self, run: &RunRecord) -> Result<()>;
    /// Replaces the stored run (trigger, status, progress, counts, errors, times, message); `NotFound`
    /// when absent.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;
    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>>;
    /// A pipeline's runs, newest first (by `queued_at`, then insertion); `before` is the id of the last run
    /// of the previous page, `NotFound` when it is not a run of this pipeline.
    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>>;
    /// Runs not finished (queued or running), any pipeline, oldest first.
    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>>;
}

/// What each pipeline last confirmed writing: a [`SyncEntry`] per profile, and a [`SyncCheckpoint`].
/// A pipeline's sync state goes with the pipeline.
#[async_trait]
pub trait SyncState: Send + Sync {
    /// Sync entries with `after < profile_id <= upto` (bounds optional), ordered by profile id; left
    /// entries included, flagged.
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncEntry>>;
    /// The entries holding any of `keys`, left ones included (flagged), in no particular order; a key
    /// no entry holds has none.
    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> Result<Vec<SyncEntry>>;
    /// Removes the entries of `deletes` (profile ids), then upserts `upserts`, atomically. A key is held by at
    /// most one profile per pipeline, left entries included: an upsert takes its key from any other
    /// holder, which is left with no entry. The result is that of applying the upserts one by one in order
    /// (the last entry for a profile or a key wins). An upsert with `left: true` records that its
    /// profile left while its row was kept. `NotFound` when the pipeline does not exist.
    /// The entries are taken by value: the SQLite store hands them to its writer thread as they are.
    async fn sync_apply(
        &self,
        pipeline: &str,
        upserts: Vec<SyncEntry>,
        deletes: Vec<String>,
    ) -> Result<()>;
    /// The entries of the profiles among `ids` that have one (left ones flagged), ordered by profile id.
    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> Result<Vec<SyncEntry>>;
    /// Forgets what the pipeline wrote (and its checkpoint), so its next run compares afresh.
    async fn sync_clear(&self, pipeline: &str) -> Result<()>;
    /// How many entries are not left: the rows the pipeline keeps in step with their profiles. One scan
    /// of the pipeline's entries, without reading them out.
    async fn sync_count(&self, pipeline: &str) -> Result<u64>;
    /// How many entries are left: rows kept in the table for profiles no longer in the audience.
    async fn sync_count_left(&self, pipeline: &str) -> Result<u64>;
    async fn sync_checkpoint(&self, pipeline: &str) -> Result<Option<SyncCheckpoint>>;
    /// Replaces (or, with `None`, removes) the pipeline's checkpoint. `NotFound` when the pipeline does not
    /// exist.
    async fn set_sync_checkpoint(
        &self,
        pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<()>;
}

/// How long the profile store remembers deleted profiles; a sync checkpoint older than this is not used.
pub const TOMBSTONE_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Profiles changed and deleted since a change mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub changed: u64,
    pub deleted: u64,
}

/// The outcome of loading a batch of profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub inserted: u64,
    pub updated: u64,
}

/// The profile store.
#[async_trait]
pub trait ProfileStore: Send + Sync {
    /// Stores validated, normalized profiles (`(id, properties)`): new ones are inserted, existing ones are
    /// merged with `sluice_core::schema::merge_profile` (properties not sent are kept) and, when the merge
    /// changed them, their `_updated_at` set to now (an existing profile sent again as it is stays
    /// untouched, and still counts as updated). One transaction for the whole batch. The same id twice in
    /// one batch: the later entry is merged over the earlier.
    async fn upsert(&self, profiles: Vec<(String, Map<String, Json>)>) -> Result<UpsertOutcome>;
    async fn get(&self, id: &str) -> Result<Option<Profile>>;
    /// `Ok(false)` when absent.
    async fn delete(&self, id: &str) -> Result<bool>;
    /// Up to `limit` profiles matching `filter` with id greater than `after`, ordered by id (byte order).
    /// Keyset pagination: each page is a range scan of the id index, however deep into the store.
    async fn page(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Profile>> {
        parse_page(self.page_raw(filter, after, limit).await?)
    }
    /// [`ProfileStore::page`] with each document left as its stored JSON text, for runs to read lazily
    /// (see `sluice_core::raw`).
    async fn page_raw(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>>;
    async fn count(&self, filter: Option<&Filter>) -> Result<u64>;

    /// A mark of the store's change history, taken before reading: every insert, update or delete that is
    /// not visible to reads started after this call gets a change number at or above the mark. Numbers
    /// follow commit order closely enough for that, not wall clocks (SQLite: a counter bumped by each
    /// writing transaction; PostgreSQL: transaction ids against the oldest one still running).
    async fn change_mark(&self) -> Result<i64>;
    /// How many stored profiles changed at or after `mark`, and how many were deleted since.
    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts>;
    /// Up to `limit` profiles changed at or after `mark` with id greater than `after`, ordered by id.
    async fn changed_page(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Profile>> {
        parse_page(self.changed_page_raw(mark, after, limit).await?)
    }
    /// [`ProfileStore::changed_page`] with each document left as its stored JSON text.
    async fn changed_page_raw(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>>;
    /// Ids of the profiles deleted at or after `mark` and not stored again, ordered by id. Deletions are
    /// remembered for [`TOMBSTONE_RETENTION`].
    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>>;
}

fn parse_page(raw: Vec<RawProfile>) -> Result<Vec<Profile>> {
    raw.iter()
        .map(|r| r.parse().map_err(StoreError::Corrupt))
        .collect()
}

/// Opens the metadata store: PostgreSQL when a URL is given, else `metadata.db` in `data_dir`.
///
/// Either way the tables are migrated to this version first; a store written by a newer Sluice is refused.
pub async fn open_metadata(
    url: Option<&str>,
    data_dir: &std::path::Path,
    secrets: SecretBox,
) -> Result<std::sync::Arc<dyn MetadataStore>> {
    match url {
        Some(url) => Ok(std::sync::Arc::new(
            postgres::PgMetadata::connect(url, secrets).await?,
        )),
        None => {
            let path = data_dir.join("metadata.db");
            let store = blocking(move || sqlite::SqliteMetadata::open(&path, secrets)).await?;
            Ok(std::sync::Arc::new(store))
        }
    }
}

/// Brings the metadata tables to schema `version` and no further, as an older Sluice left them: for tests
/// of what a migration does to stored data.
#[doc(hidden)]
pub async fn migrate_metadata_to(
    url: Option<&str>,
    data_dir: &std::path::Path,
    version: usize,
) -> Result<()> {
    match url {
        Some(url) => postgres::migrate_metadata_to(url, version).await,
        None => {
            let path = data_dir.join("metadata.db");
            blocking(move || sqlite::migrate_metadata_to(&path, version)).await
        }
    }
}

/// Opens the profile store: PostgreSQL when a URL is given, else `profiles.db` in `data_dir`.
pub async fn open_profiles(
    url: Option<&str>,
    data_dir: &std::path::Path,
) -> Result<std::sync::Arc<dyn ProfileStore>> {
    match url {
        Some(url) => Ok(std::sync::Arc::new(
            postgres::PgProfiles::connect(url).await?,
        )),
        None => {
            let path = data_dir.join("profiles.db");
            let store = blocking(move || sqlite::SqliteProfiles::open(&path)).await?;
            Ok(std::sync::Arc::new(store))
        }
    }
}

/// Opening SQLite runs migrations, which may take a while on a large file: keep it off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("opening the store failed: {e}")))?
}
