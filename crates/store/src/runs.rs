//! The history of runs: what each run did, how far it got and why it failed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;

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

/// The history of runs. Claiming a run for an instance, and leases, are [`Coordination`](crate::Coordination)'s.
#[async_trait]
pub trait RunLog: Send + Sync {
    /// `NotFound` when the pipeline does not exist, `Conflict` when the id is taken.
    async fn insert_run(&self, run: &RunRecord) -> Result<()>;
    /// Replaces the stored run (trigger, status, progress, counts, errors, times, message); `NotFound`
    /// when absent.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;
    /// Stores a running run's progress, counts and errors, and nothing else; `Ok(false)` when the run is
    /// no longer queued or running. A run records these as its batches are recorded, from a task that
    /// may still be going when the run ends, so it must never overwrite a finished run's record.
    async fn update_run_progress(&self, run: &RunRecord) -> Result<bool>;
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
    /// Stores a dry run's record (a document the engine writes), replacing the one with the same id.
    /// Dry runs are kept apart from the history: they never count as a pipeline's last run, hold no
    /// run slot and raise no alert. Those older than [`DRY_RUN_RETENTION`] are dropped here.
    async fn put_dry_run(
        &self,
        id: &str,
        pipeline: Option<&str>,
        at: DateTime<Utc>,
        record: &str,
    ) -> Result<()>;
    async fn get_dry_run(&self, id: &str) -> Result<Option<String>>;
}

/// How long a dry run's record is kept after it was last written.
pub const DRY_RUN_RETENTION: chrono::TimeDelta = chrono::TimeDelta::days(7);
