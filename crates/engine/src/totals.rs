//! Running totals of the runs this instance finished: what `/metrics` reports as counters.
//!
//! Prometheus counters must only go up (`rate()` reads any decrease as a restart), so they are counted
//! here, once, when a run ends, instead of being recomputed from stored runs that age out. The totals
//! belong to this process: a restart starts them from zero, which Prometheus handles, and several
//! instances sharing a store each report their own runs (sum them across instances). Reading them costs
//! the same whatever the number of runs.

use std::collections::HashMap;
use std::sync::Mutex;

use sluice_store::{RunRecord, RunStatus};

/// The statuses a run ends with, in the order metrics list them.
pub const OUTCOMES: [RunStatus; 3] = [
    RunStatus::Succeeded,
    RunStatus::Failed,
    RunStatus::Cancelled,
];

/// One pipeline's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PipelineTotals {
    /// Finished runs by outcome, indexed like [`OUTCOMES`].
    pub runs: [u64; 3],
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    /// Rows that failed to write or to transform.
    pub failed: u64,
    /// Finished runs that started (a run cancelled while queued never did) and their total duration.
    pub timed_runs: u64,
    pub seconds: f64,
}

impl PipelineTotals {
    /// Finished runs with `status` (0 for a status that is not an outcome).
    pub fn runs_with(&self, status: RunStatus) -> u64 {
        OUTCOMES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |i| self.runs[i])
    }

    /// Rows by outcome, as `sluice_rows_total` labels them.
    pub fn rows(&self) -> [(&'static str, u64); 5] {
        [
            ("inserted", self.inserted),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("deleted", self.deleted),
            ("failed", self.failed),
        ]
    }
}

/// The totals of every pipeline that finished a run here.
#[derive(Debug, Default)]
pub struct Totals {
    by_pipeline: Mutex<HashMap<String, PipelineTotals>>,
}

impl Totals {
    /// Adds a finished run; unfinished ones are ignored, so that nothing is counted twice.
    pub(crate) fn record(&self, run: &RunRecord) {
        let Some(outcome) = OUTCOMES.iter().position(|s| *s == run.status) else {
            return;
        };
        let mut all = self.by_pipeline.lock().unwrap();
        let t = all.entry(run.pipeline.clone()).or_default();
        t.runs[outcome] += 1;
        let c = &run.counts;
        t.inserted += c.inserted;
        t.updated += c.updated;
        t.unchanged += c.unchanged;
        t.deleted += c.deleted;
        t.failed += c.failed + c.transform_failed;
        if let (Some(start), Some(end)) = (run.started_at, run.finished_at) {
            t.timed_runs += 1;
            t.seconds += (end - start).num_milliseconds().max(0) as f64 / 1000.0;
        }
    }

    /// The totals of one pipeline; zeros before its first run here.
    pub fn pipeline(&self, pipeline: &str) -> PipelineTotals {
        self.by_pipeline
            .lock()
            .unwrap()
            .get(pipeline)
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use sluice_store::{Counts, Progress};

    use super::*;

    fn run(pipeline: &str, status: RunStatus, inserted: u64, secs: i64) -> RunRecord {
        let start = Utc::now();
        RunRecord {
            id: "run_1".into(),
            pipeline: pipeline.into(),
            trigger: "api".into(),
            changes: None,
            status,
            queued_at: start,
            started_at: Some(start),
            finished_at: status
                .is_finished()
                .then(|| start + Duration::seconds(secs)),
            progress: Progress::default(),
            counts: Counts {
                inserted,
                failed: 1,
                transform_failed: 2,
                ..Counts::default()
            },
            errors: vec![],
            message: None,
        }
    }

    #[test]
    fn adds_finished_runs_by_pipeline_and_outcome() {
        let totals = Totals::default();
        totals.record(&run("a", RunStatus::Succeeded, 5, 2));
        totals.record(&run("a", RunStatus::Failed, 1, 1));
        totals.record(&run("a", RunStatus::Running, 100, 0));
        totals.record(&run("b", RunStatus::Cancelled, 0, 0));
        let a = totals.pipeline("a");
        assert_eq!(a.runs, [1, 1, 0]);
        assert_eq!(a.runs_with(RunStatus::Failed), 1);
        assert_eq!(a.runs_with(RunStatus::Running), 0);
        assert_eq!(a.inserted, 6, "a running run is not counted");
        assert_eq!(a.failed, 6, "write and transform failures");
        assert_eq!((a.timed_runs, a.seconds), (2, 3.0));
        assert_eq!(totals.pipeline("b").runs, [0, 0, 1]);
        assert_eq!(totals.pipeline("c"), PipelineTotals::default());
    }
}
