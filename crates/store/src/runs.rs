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

/// The words a user reads for a run's counts, the same in the CLI, the quickstart, the UI and the API
/// docs. The fields above are what the engine counts; `read` is not among these words because it counts
/// only the profiles read since the last clean run (new or changed), which users took for "all profiles".
impl Counts {
    pub const IN_AUDIENCE: &'static str = "in audience";
    pub const NOT_IN_AUDIENCE: &'static str = "not in audience";
    pub const WRITTEN: &'static str = "written";
    pub const UNCHANGED: &'static str = "skipped, unchanged";
    pub const REMOVED: &'static str = "removed";
    pub const FAILED: &'static str = "failed";
    /// What a detail view may call `read`.
    pub const READ: &'static str = "read from the store (new or changed)";

    /// Profiles the filter let through, whether or not their row needed writing.
    pub fn in_audience(&self) -> u64 {
        self.inserted + self.updated + self.unchanged + self.failed + self.transform_failed
    }

    pub fn not_in_audience(&self) -> u64 {
        self.filtered_out
    }

    /// Rows inserted or updated.
    pub fn written(&self) -> u64 {
        self.inserted + self.updated
    }

    /// Rows of profiles that failed, in the transformation or at the destination.
    pub fn failed_rows(&self) -> u64 {
        self.failed + self.transform_failed
    }

    /// One line such as `9,520 in audience; 480 not in audience; 9,520 written (9,520 new, 0 updated)`.
    /// Figures at zero are left out, but for "in audience" and "written", which a reader looks for.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!(
            "{} {}",
            thousands(self.in_audience()),
            Self::IN_AUDIENCE
        )];
        if self.not_in_audience() > 0 {
            parts.push(format!(
                "{} {}",
                thousands(self.not_in_audience()),
                Self::NOT_IN_AUDIENCE
            ));
        }
        if self.written() > 0 {
            parts.push(format!(
                "{} {} ({} new, {} updated)",
                thousands(self.written()),
                Self::WRITTEN,
                thousands(self.inserted),
                thousands(self.updated)
            ));
        } else {
            parts.push(format!("0 {}", Self::WRITTEN));
        }
        for (n, word) in [
            (self.unchanged, Self::UNCHANGED),
            (self.deleted, Self::REMOVED),
            (self.failed_rows(), Self::FAILED),
        ] {
            if n > 0 {
                parts.push(format!("{} {word}", thousands(n)));
            }
        }
        parts.join("; ")
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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
    /// `manual`, `schedule`, `api` or `on_change`.
    pub trigger: String,
    /// What set off an `on_change` run: profiles changed and deleted since the pipeline's previous run
    /// started. `None` for other runs, and for an `on_change` run that caught up without knowing (the
    /// pipeline's first). Written when the run is inserted; [`RunLog::update_run`] leaves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::ChangeCounts>,
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

#[cfg(test)]
mod words {
    use super::*;

    #[test]
    fn a_first_run_reads_as_audience_and_writes() {
        let c = Counts {
            read: 10_000,
            filtered_out: 480,
            inserted: 9_520,
            ..Counts::default()
        };
        assert_eq!(
            c.summary(),
            "9,520 in audience; 480 not in audience; 9,520 written (9,520 new, 0 updated)"
        );
    }

    #[test]
    fn a_re_run_that_read_nothing_still_counts_its_audience() {
        // What the issue saw as "read 0": the re-run checked 9,520 rows and wrote none.
        let c = Counts {
            unchanged: 9_520,
            ..Counts::default()
        };
        assert_eq!(
            c.summary(),
            "9,520 in audience; 0 written; 9,520 skipped, unchanged"
        );
    }

    #[test]
    fn failures_and_removals_are_named_and_failed_profiles_are_in_the_audience() {
        let c = Counts {
            read: 40,
            filtered_out: 3,
            transform_failed: 2,
            inserted: 10,
            updated: 5,
            unchanged: 1_200,
            deleted: 7,
            failed: 1,
        };
        assert_eq!(c.in_audience(), 1_218);
        assert_eq!(
            c.summary(),
            "1,218 in audience; 3 not in audience; 15 written (10 new, 5 updated); \
             1,200 skipped, unchanged; 7 removed; 3 failed"
        );
    }

    #[test]
    fn thousands_groups_by_three() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }
}
