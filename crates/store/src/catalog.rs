//! What the user configured: the Customer Model, destinations and pipelines.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::Schema;

use crate::Result;

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

/// The outcome of the last connection test of a saved destination: what the home page shows as its health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationTest {
    pub at: DateTime<Utc>,
    pub ok: bool,
    /// The error's code when the test failed (`DestinationAuthFailed`, `NotFound`, …).
    pub code: Option<String>,
    /// The database's message when the test failed.
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub id: String,
    pub spec: PipelineSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Several catalog changes made together by [`Catalog::apply_changes`], in the order of the fields:
/// pipelines and sources are deleted before others take their names, and destinations after their
/// pipelines and sources left.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogChanges {
    pub schema: Option<Schema>,
    pub insert_destinations: Vec<DestinationRecord>,
    pub update_destinations: Vec<DestinationRecord>,
    /// Pipeline ids.
    pub delete_pipelines: Vec<String>,
    pub update_pipelines: Vec<PipelineRecord>,
    pub insert_pipelines: Vec<PipelineRecord>,
    /// Source ids.
    pub delete_sources: Vec<String>,
    pub update_sources: Vec<crate::SourceRecord>,
    pub insert_sources: Vec<crate::SourceRecord>,
    /// Source ids whose mark is forgotten (they read something else now: the next run reads
    /// everything), after the updates.
    pub forget_source_marks: Vec<String>,
    /// Destination ids.
    pub delete_destinations: Vec<String>,
}

impl CatalogChanges {
    pub fn is_empty(&self) -> bool {
        *self == CatalogChanges::default()
    }
}

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
    /// Re-encrypts every destination's secrets, opened with the store's key, under `new`, in one
    /// transaction: all of them or, on any error (a secret the current key cannot open included), none.
    /// Answers how many destinations were rewritten. The store keeps its own key, so it is reopened with
    /// `new` afterwards.
    async fn reseal_secrets(&self, new: &crate::SecretBox) -> Result<usize>;
    /// Keeps `test` as the destination's last connection test, replacing the one before. Nothing
    /// happens for a destination that is gone.
    async fn record_destination_test(&self, id: &str, test: &DestinationTest) -> Result<()>;
    /// The last connection test of each destination that had one, as (destination id, test).
    async fn destination_tests(&self) -> Result<Vec<(String, DestinationTest)>>;

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

    /// Makes every change of `changes` in one transaction: all of them, or (on the first error, with the
    /// error each single method would give, absent records being `NotFound`) none. A workspace applied
    /// from files is never left half-applied.
    async fn apply_changes(&self, changes: &CatalogChanges) -> Result<()>;
}
