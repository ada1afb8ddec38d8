//! What each pipeline last confirmed writing: its sync entries and checkpoint.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{Result, SyncEntry, SyncKey};

/// Until which point of the profile store's history a pipeline's sync state is known to be complete.
///
/// Kept only while it holds: every profile that did not change at or after `mark` (see
/// [`ProfileStore::change_mark`](crate::ProfileStore::change_mark)) has the sync entry that the pipeline, as described by `fingerprint`,
/// would compute for it today. A run may then read only the profiles changed since `mark`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCheckpoint {
    pub mark: i64,
    /// What the rows were computed from (pipeline, Customer Model, table, destination), hashed by the
    /// engine: a different fingerprint makes the checkpoint worthless.
    pub fingerprint: String,
    pub taken_at: DateTime<Utc>,
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
    /// The identity of the table the pipeline's sync state describes (see the destinations' `drift`
    /// module), as last recorded; `None` before any was.
    async fn sync_table_identity(&self, pipeline: &str) -> Result<Option<String>>;
    /// Records (or, with `None`, forgets) the identity of the table the pipeline writes. `NotFound` when
    /// the pipeline does not exist.
    async fn set_sync_table_identity(&self, pipeline: &str, identity: Option<&str>) -> Result<()>;
}
