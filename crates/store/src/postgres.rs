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

use crate::{Result, SecretBox, StoreError};

mod access;
mod catalog;
mod coord;
mod filter_params;
mod migrations;
mod pool;
mod profiles;
mod runs;
mod sources;
mod sync_state;

use migrations::METADATA_MIGRATIONS;
use pool::{migrate, Pool};
pub use profiles::PgProfiles;

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
