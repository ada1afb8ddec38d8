//! The profile store: normalized profiles, and the history of their changes.

use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use sluice_core::filter::Filter;
use sluice_core::{Profile, RawProfile};

use crate::{Result, StoreError};

/// How long the profile store remembers deleted profiles; a sync checkpoint older than this is not used.
pub const TOMBSTONE_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Profiles changed and deleted since a change mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeCounts {
    pub changed: u64,
    pub deleted: u64,
}

/// The outcome of loading a batch of profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpsertOutcome {
    pub inserted: u64,
    /// Existing profiles merged, whether or not the merge changed them.
    pub updated: u64,
    /// Of [`Self::updated`], the profiles the merge left exactly as they were.
    pub unchanged: u64,
}

/// A validated, normalized profile's properties as a batch brings them to the store: as a map, which
/// merges into a stored profile without being parsed, or written out as JSON text, which is stored as
/// it is when the profile is new (and parsed only to merge). A caller that knows which profiles are
/// likely new sends those as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Properties {
    Map(Map<String, Json>),
    Text(String),
}

impl Properties {
    /// The properties as a map.
    pub fn into_map(self, id: &str) -> Result<Map<String, Json>> {
        match self {
            Properties::Map(m) => Ok(m),
            Properties::Text(t) => crate::codec::doc_from_text(id, &t),
        }
    }

    /// The properties as JSON text.
    pub fn into_text(self) -> String {
        match self {
            Properties::Map(m) => Json::Object(m).to_string(),
            Properties::Text(t) => t,
        }
    }
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
    /// [`ProfileStore::upsert`] of profiles each given as a map or already written out as JSON text
    /// (see [`Properties`]; ids distinct within the batch). Writing out is then done where the caller
    /// has a core to spare, not in the store's one writer, and a new profile is stored as the very
    /// text given.
    async fn upsert_properties(&self, profiles: Vec<(String, Properties)>)
        -> Result<UpsertOutcome>;
    async fn get(&self, id: &str) -> Result<Option<Profile>>;
    /// `Ok(false)` when absent.
    async fn delete(&self, id: &str) -> Result<bool>;
    /// Up to `limit` profiles matching `filter` with id greater than `after`, ordered by id (byte order).
    /// Keyset pagination: each page is a range scan of the id index, however deep into the store. Fewer
    /// than `limit` means there were no more (runs stop there).
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
    /// writing transaction; PostgreSQL: transaction ids against the oldest one of this database still
    /// running).
    async fn change_mark(&self) -> Result<i64>;
    /// How many stored profiles changed at or after `mark`, and how many were deleted since.
    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts>;
    /// Up to `limit` profiles changed at or after `mark` with id greater than `after`, ordered by id;
    /// fewer than `limit` means there were no more.
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
    /// Where the change history stands now, exactly, as text to keep: unlike [`ProfileStore::change_mark`]
    /// (a lower bound), a change counts as after the cursor only if it was not committed when the cursor
    /// was taken — a transaction left open elsewhere does not make changes committed before it look new
    /// (SQLite: the change counter; PostgreSQL: the transaction snapshot).
    async fn change_cursor(&self) -> Result<String>;
    /// How many profiles changed, and were deleted, since `cursor` was taken (each profile once, however
    /// often it changed). `Ok(None)` when the cursor is not one this store made (the store was replaced):
    /// the caller must assume everything changed.
    async fn count_changes_after(&self, cursor: &str) -> Result<Option<ChangeCounts>>;
    /// Ids of the profiles deleted at or after `mark` and not stored again, ordered by id. Deletions are
    /// remembered for [`TOMBSTONE_RETENTION`].
    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>>;
}

fn parse_page(raw: Vec<RawProfile>) -> Result<Vec<Profile>> {
    raw.iter()
        .map(|r| r.parse().map_err(StoreError::Corrupt))
        .collect()
}
