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

use std::path::Path;

use crate::{Result, SecretBox, StoreError};

mod access;
mod catalog;
mod coord;
mod db;
mod migrations;
mod profiles;
mod runs;
mod sources;
mod sync_state;

pub use db::configure_sqlite;
use db::Db;
use migrations::METADATA_MIGRATIONS;
pub use profiles::SqliteProfiles;

/// See [`crate::migrate_metadata_to`].
pub(crate) fn migrate_metadata_to(path: &Path, version: usize) -> Result<()> {
    let migrations = METADATA_MIGRATIONS.get(..version).ok_or_else(|| {
        StoreError::Backend(format!("there is no metadata schema version {version}"))
    })?;
    Db::open(path, "metadata", migrations, sync_state::setup).map(drop)
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
            db: Db::open(path, "metadata", METADATA_MIGRATIONS, sync_state::setup)?,
            secrets,
        })
    }
}
