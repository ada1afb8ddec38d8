//! Source pipelines: their definitions, and what each one remembers between runs.
//!
//! A source's runs are [`RunRecord`](crate::RunRecord)s in the same history as export runs, named by the
//! source's id in `pipeline`: they are claimed, leased, cancelled and read at `GET /v1/runs/{id}` exactly
//! as export runs are, and "one unfinished run at a time" is the same unique rule of the store. The runs
//! table's reference to its owner is therefore a check that the id is a pipeline's or a source's (a
//! trigger in both backends), and a source's runs are deleted with it.
//!
//! What a source remembers:
//! - its *mark* (`cursor` mode): where the next run starts reading, advanced only by a run that
//!   succeeded;
//! - per profile id it wrote, the hash of the properties it last wrote, and the run (`seen`, a number
//!   that grows from run to run) that last read the id's row. A row read again with the same hash is not
//!   written; in `full` mode the ids not seen by a run that read everything are the rows that
//!   disappeared from the source (`on_missing`). These are kept per source, so several sources feeding
//!   one profile each know their own rows;
//! - its scheduler state (the last tick handled, a follow-up pending), advanced by compare-and-set as
//!   pipelines' are.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_core::schedule::TickState;
use sluice_core::source::{CursorValue, SourceSpec};

use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub id: String,
    pub spec: SourceSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a source last wrote for one profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRow<'a> {
    pub profile_id: &'a str,
    /// The hash of the properties written (see `sluice_core::hash`).
    pub hash: u128,
}

#[async_trait]
pub trait Sources: Send + Sync {
    /// All sources, ordered by creation.
    async fn list_sources(&self) -> Result<Vec<SourceRecord>>;
    async fn get_source(&self, id: &str) -> Result<Option<SourceRecord>>;
    /// `Conflict` when the name or the id is taken, `NotFound` when the connection does not exist.
    async fn insert_source(&self, rec: &SourceRecord) -> Result<()>;
    /// Replaces the spec and `updated_at`. `NotFound` when the source or the connection is absent,
    /// `Conflict` when the new name is taken.
    async fn update_source(&self, rec: &SourceRecord) -> Result<()>;
    /// Deletes the source with its runs, mark and rows; `Ok(false)` when absent.
    async fn delete_source(&self, id: &str) -> Result<bool>;

    /// Where the source's next cursor read starts; `None` before its first successful run.
    async fn source_mark(&self, source: &str) -> Result<Option<CursorValue>>;
    /// Replaces the mark (`None` forgets it: the next run reads everything). Nothing happens for a
    /// source that is gone.
    async fn set_source_mark(&self, source: &str, mark: Option<&CursorValue>) -> Result<()>;

    /// The stored hashes of those of `profile_ids` the source wrote, as `(id, hash)` in no order.
    async fn source_hashes(
        &self,
        source: &str,
        profile_ids: &[&str],
    ) -> Result<Vec<(String, u128)>>;
    /// Records `rows` (hash replaced) as seen by run number `seen`, in one transaction. Nothing happens
    /// for a source that is gone.
    async fn record_source_rows(
        &self,
        source: &str,
        rows: &[SourceRow<'_>],
        seen: i64,
    ) -> Result<()>;
    /// Up to `limit` ids of rows the source wrote that were last seen before run number `seen`, with an
    /// id greater than `after`, in id order (byte order): after a `full` read, the rows that are gone.
    async fn unseen_source_rows(
        &self,
        source: &str,
        seen: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>>;
    /// Forgets the source's rows of these ids.
    async fn forget_source_rows(&self, source: &str, profile_ids: &[&str]) -> Result<()>;
    /// Those of `profile_ids` that another source than `source` also wrote.
    async fn fed_by_other_sources(&self, source: &str, profile_ids: &[&str])
        -> Result<Vec<String>>;

    /// The scheduler's state of every source that has one, as `(source id, state)`.
    async fn source_tick_states(&self) -> Result<Vec<(String, TickState)>>;
    /// Replaces the source's scheduler state with `next` if it still is `expected` (a source without
    /// one has the default state), as `Coordination::advance_tick` does for pipelines. `Ok(false)` when
    /// another instance changed it first or the source is gone.
    async fn advance_source_tick(
        &self,
        source: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool>;
}
