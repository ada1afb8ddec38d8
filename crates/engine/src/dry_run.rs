//! Starting and reading dry runs (the run itself is `run::execute` under `run/dry.rs`'s rules).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sluice_store::{
    Counts, PipelineRecord, Progress, RunLog, RunRecord, RunStatus, StoreError, SyncState,
};
use tokio::sync::watch;

use crate::run::dry::{DryReport, DryRunLog, DryRunRecord, DryState};
use crate::{new_id, run, Engine, Stop};

/// Why a dry run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DryRunStartError {
    /// As many dry runs as may go and wait are queued or going in this instance.
    #[error("{0} dry runs are already going or waiting here: wait for one to end, or cancel one")]
    TooMany(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A dry run's place among the active ones, given back however its task ends (dropped unpolled too).
struct Place {
    engine: Engine,
    id: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.engine
            .inner
            .dry_active
            .lock()
            .unwrap()
            .remove(&self.id);
    }
}

impl Engine {
    /// Starts a dry run of `pipeline` — the stored pipeline, or a changed definition under the stored
    /// pipeline's id (`saved`), or a definition not saved yet (`!saved`: it has no sync state, so every
    /// row of its audience would be new) — and returns its first record. It waits for one of the dry
    /// runs' own slots ([`crate::EngineConfig::max_concurrent_dry_runs`]), never a real run's or the
    /// pipeline's: it may go on beside a real run, and real runs never queue behind it.
    /// [`Engine::cancel`] stops it, queued or running.
    pub async fn start_dry_run(
        &self,
        pipeline: PipelineRecord,
        saved: bool,
        trigger: &str,
    ) -> Result<RunRecord, DryRunStartError> {
        let (record, task) = self.dry_run_task(pipeline, saved, trigger).await?;
        tokio::spawn(task);
        Ok(record)
    }

    /// A dry run to its end (see [`Engine::start_dry_run`]).
    pub async fn dry_run(
        &self,
        pipeline: PipelineRecord,
        saved: bool,
        trigger: &str,
    ) -> Result<DryRunRecord, DryRunStartError> {
        let (_, task) = self.dry_run_task(pipeline, saved, trigger).await?;
        Ok(task.await)
    }

    /// A dry run's record, while it goes on and for a week after (`None` when there is no such dry run).
    /// A store of this process alone (SQLite) shows a dry run left unfinished by a previous process as
    /// failed: nothing will finish it. (A shared store cannot tell it from one another instance runs.)
    pub async fn get_dry_run(&self, id: &str) -> Result<Option<DryRunRecord>, StoreError> {
        // Asked before the record is read: a dry run writes its last record before it leaves the
        // active set, so one that was not active then has its last record in the store now.
        let active = self.inner.dry_active.lock().unwrap().contains_key(id);
        let Some(text) = self.inner.meta.get_dry_run(id).await? else {
            return Ok(None);
        };
        let mut record: DryRunRecord = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("dry run `{id}`: {e}")))?;
        if !record.run.status.is_finished() && !self.inner.meta.shared() && !active {
            record.run.status = RunStatus::Failed;
            record.run.message =
                Some("Sluice stopped while this dry run was in progress; it wrote nothing".into());
        }
        Ok(Some(record))
    }

    async fn dry_run_task(
        &self,
        pipeline: PipelineRecord,
        saved: bool,
        trigger: &str,
    ) -> Result<
        (
            RunRecord,
            impl std::future::Future<Output = DryRunRecord> + Send + 'static,
        ),
        DryRunStartError,
    > {
        let now = Utc::now();
        let record = RunRecord {
            id: new_id("dry"),
            pipeline: pipeline.id.clone(),
            trigger: trigger.to_string(),
            changes: None,
            status: RunStatus::Queued,
            queued_at: now,
            started_at: None,
            finished_at: None,
            progress: Progress::default(),
            counts: Counts::default(),
            errors: Vec::new(),
            message: None,
        };
        let report = Arc::new(Mutex::new(DryReport::default()));
        let log = Arc::new(DryRunLog {
            inner: self.inner.meta.clone(),
            report: report.clone(),
            pipeline: saved.then(|| pipeline.id.clone()),
        });
        let stop = Stop::default();
        {
            let mut active = self.inner.dry_active.lock().unwrap();
            let cap = self.inner.config.max_concurrent_dry_runs.max(1)
                + self.inner.config.max_waiting_dry_runs;
            if active.len() >= cap {
                return Err(DryRunStartError::TooMany(active.len()));
            }
            active.insert(record.id.clone(), stop.clone());
        }
        let place = Place {
            engine: self.clone(),
            id: record.id.clone(),
        };
        log.insert_run(&record).await?;
        let engine = self.clone();
        let first = record.clone();
        let task = async move {
            let _place = place;
            let mut run = record;
            let slot = tokio::select! {
                s = engine.inner.dry_slots.clone().acquire_owned() => s.ok(),
                _ = stop.wake.notified() => None,
            };
            if slot.is_none() || stop.cancel.load(Ordering::SeqCst) {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(Utc::now());
                run.message = Some("cancelled before it started".into());
                if let Err(e) = log.update_run(&run).await {
                    tracing::warn!(run = %run.id, error = %e, "could not record the cancelled dry run");
                }
                let samples = report.lock().unwrap().clone();
                return DryRunRecord { run, samples };
            }
            run.status = RunStatus::Running;
            run.started_at = Some(Utc::now());
            let (tx, _rx) = watch::channel(run.clone());
            let sync: Arc<dyn SyncState> = Arc::new(DryState::new(
                engine.inner.meta.clone() as Arc<dyn SyncState>,
                !saved,
            ));
            let ctx = run::RunContext {
                meta: engine.inner.meta.clone(),
                sync,
                profiles: engine.inner.profiles.clone(),
                config: engine.inner.config.clone(),
                cancel: stop.cancel.clone(),
                updates: tx,
                mode: run::RunMode::Normal,
                runs: log,
                pipeline: Some(pipeline),
                dry: Some(report.clone()),
                budget: engine.inner.budget.clone(),
            };
            let done = run::execute(&ctx, run).await;
            drop(slot);
            let samples = report.lock().unwrap().clone();
            DryRunRecord { run: done, samples }
        };
        Ok((first, task))
    }
}
