//! Where Sluice keeps its state: metadata (Customer Model, destinations, pipelines, runs, sync state) and
//! the profile store.
//!
//! Each store has two implementations — embedded SQLite in the data directory (zero setup) and
//! PostgreSQL (for several instances sharing one workspace, or larger profile sets) — and both pass one
//! shared test suite. Schema migrations are versioned and run when a store is opened.
//!
//! The metadata store is one database behind small traits, one per thing it holds, so that code asks
//! only for what it uses and a test fakes only that:
//!
//! - [`Catalog`]: the Customer Model, destinations and pipelines (what the user configured);
//! - [`RunLog`]: the history of runs;
//! - [`SyncState`]: per pipeline, what the destination last confirmed for each profile ([`SyncEntry`]:
//!   key, row hash, and whether the profile left while its row was kept) and the [`SyncCheckpoint`]
//!   that lets a re-run read only changed profiles. This is what a run writes most: an entry per row;
//! - [`Coordination`]: run claims, leases and the scheduler's per-pipeline state;
//! - [`Access`]: API tokens (as hashes, each with a [`Role`]) and the audit log of changes;
//! - [`Sources`]: source pipelines, each one's cursor mark and the hash of what it last wrote per profile.
//!
//! [`MetadataStore`] is their union, what `open_metadata` returns; a `&dyn MetadataStore` upcasts to any
//! of them. [`ProfileStore`] is the profile store. Each backend is a folder of modules named the same way
//! (`catalog`, `runs`, `sync_state`, `coord`, `profiles`), beside its connections (`db`, `pool`) and its
//! `migrations`: a file's name says which tables it may touch.
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

mod access;
mod catalog;
mod codec;
pub mod coord;
pub mod postgres;
mod profiles;
mod runs;
pub mod secrets;
mod sources;
pub mod sqlite;
mod sync_state;
mod tls;

pub use access::{Access, AuditEntry, Role, TokenHash, TokenRecord};
pub use catalog::{
    Catalog, CatalogChanges, DestinationRecord, DestinationTest, PipelineRecord, SECRET_FIELDS,
};
pub use coord::{Coordination, Held};
pub use profiles::{ChangeCounts, ProfileStore, Properties, UpsertOutcome, TOMBSTONE_RETENTION};
pub use runs::{
    thousands, Counts, Progress, RunErrorGroup, RunLog, RunRecord, RunStatus, DRY_RUN_RETENTION,
    MAX_SAMPLES,
};
pub use secrets::SecretBox;
pub use sluice_core::sync::{SyncEntry, SyncKey};
pub use sources::{SourceRecord, SourceRow, Sources};
pub use sync_state::{SyncCheckpoint, SyncState};

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

/// Metadata: the Customer Model, destinations and pipelines ([`Catalog`]), runs ([`RunLog`]), each
/// pipeline's sync state ([`SyncState`]), run leases and schedule state ([`Coordination`]), tokens and
/// the audit log ([`Access`]). One store
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
pub trait MetadataStore: Catalog + RunLog + SyncState + Coordination + Access + Sources {}

impl<T: Catalog + RunLog + SyncState + Coordination + Access + Sources + ?Sized> MetadataStore
    for T
{
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
