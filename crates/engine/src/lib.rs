//! One pipeline run, and the bookkeeping around runs.
//!
//! A run flows `read → filter → transform → diff → write → record`:
//!
//! 1. **Prepare**: load the pipeline, its destination and the Customer Model; compile the filter; describe
//!    the live table and compile the transformation (mapping or script, see `sluice_transform`) against it. A table that changed under the pipeline (a dropped
//!    column) fails the run here, before anything is written.
//! 2. **Read**: page through the profile store in `_id` order with the filter pushed down into SQL, one
//!    bounded page at a time (memory does not grow with the number of profiles). A reader task fetches the
//!    next page while the current one is processed.
//! 3. **Transform and diff**: compute each row on a blocking thread that owns the script runtime (a profile
//!    the script skips by returning null counts as filtered out), hash it, and compare with the pipeline's sync state for the
//!    same id range (a merge join: both are ordered by `_id`). Unchanged rows are skipped; sync entries with
//!    no matching profile belong to profiles that left the audience or were deleted.
//! 4. **Write**: upsert the changed rows in one large batch through the destination's bulk path; a batch
//!    refused for its data is split until the bad rows are found. `on_leave: delete` deletes the rows of
//!    profiles that left.
//! 5. **Record**: the sync state advances only after the destination confirmed the write, so a crash or a
//!    retry converges instead of losing rows.
//!
//! Re-runs read only what changed. After a run that wrote every row it had to (no failed rows), the
//! pipeline keeps a *sync checkpoint*: the profile store's change mark taken before that run read anything,
//! and a fingerprint of everything else the rows depend on (pipeline, destination, Customer Model, live
//! table, Sluice version). The next run, when the fingerprint is the same and the transformation cannot
//! depend on the run (no `now()`, no script), reads only the profiles changed or deleted since the mark
//! — deletions first, so a key they held can pass to a changed profile — and looks their sync entries up
//! by id; every other synced row is counted unchanged without being read. Past a quarter of the audience
//! changed, a full read is cheaper and is used instead. A run with failed rows drops the checkpoint, so
//! that the next run reads, and retries, everything.
//!
//! Keys: a key belongs to one profile. Two profiles producing the same key in one run — the lower `_id` wins
//! (pages are read in `_id` order), the other is a failed row that says which profile holds the key.

mod run;
pub mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use sluice_store::{Counts, MetadataStore, ProfileStore, Progress, RunRecord, RunStatus};
use tokio::sync::watch;

pub use run::{prepare, prepare_with, transform_profiles, Prepared};

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Profiles read per page, and rows upserted per destination batch.
    pub batch_size: usize,
    /// Attempts for a batch that fails for a transient reason (connection lost, deadlock).
    pub write_attempts: u32,
    /// Time and memory limits of script transformations.
    pub script_limits: sluice_transform::Limits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 10_000,
            write_attempts: 4,
            script_limits: sluice_transform::Limits::default(),
        }
    }
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("pipeline `{0}` does not exist")]
    NotFound(String),
    #[error("pipeline `{0}` is disabled: enable it to run it")]
    Disabled(String),
    #[error("pipeline `{name}` is already running (run {run})")]
    AlreadyRunning { name: String, run: String },
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
}

struct Active {
    run_id: String,
    cancel: Arc<AtomicBool>,
    updates: watch::Receiver<RunRecord>,
}

/// Starts runs, tracks the active ones and lets callers follow or cancel them.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetadataStore>,
    profiles: Arc<dyn ProfileStore>,
    config: EngineConfig,
    active: Mutex<HashMap<String, Active>>,
}

impl Engine {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        profiles: Arc<dyn ProfileStore>,
        config: EngineConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                meta,
                profiles,
                config,
                active: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.meta
    }

    pub fn profiles(&self) -> &Arc<dyn ProfileStore> {
        &self.inner.profiles
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Marks runs left unfinished by a previous process (killed mid-run) as failed. The next run repairs
    /// the table: the sync state only holds confirmed writes.
    pub async fn recover(&self) -> Result<usize, sluice_store::StoreError> {
        let mut n = 0;
        for mut run in self.inner.meta.unfinished_runs().await? {
            if self
                .inner
                .active
                .lock()
                .unwrap()
                .values()
                .any(|a| a.run_id == run.id)
            {
                continue;
            }
            run.status = RunStatus::Failed;
            run.finished_at = Some(Utc::now());
            run.message = Some(
                "Sluice stopped while this run was in progress; the next run will repair the table"
                    .into(),
            );
            self.inner.meta.update_run(&run).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Starts a run of `pipeline_id` now and returns it (status `running`). The run goes on in the background.
    pub async fn start(&self, pipeline_id: &str, trigger: &str) -> Result<RunRecord, StartError> {
        let pipeline = self
            .inner
            .meta
            .get_pipeline(pipeline_id)
            .await?
            .ok_or_else(|| StartError::NotFound(pipeline_id.to_string()))?;
        if !pipeline.spec.enabled {
            return Err(StartError::Disabled(pipeline.spec.name.clone()));
        }
        let now = Utc::now();
        let record = RunRecord {
            id: new_id("run"),
            pipeline: pipeline.id.clone(),
            trigger: trigger.to_string(),
            status: RunStatus::Running,
            queued_at: now,
            started_at: Some(now),
            finished_at: None,
            progress: Progress::default(),
            counts: Counts::default(),
            errors: Vec::new(),
            message: None,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = watch::channel(record.clone());
        {
            // Checked and claimed under one lock so that two simultaneous requests cannot both start.
            let mut active = self.inner.active.lock().unwrap();
            if let Some(a) = active.get(&pipeline.id) {
                return Err(StartError::AlreadyRunning {
                    name: pipeline.spec.name.clone(),
                    run: a.run_id.clone(),
                });
            }
            active.insert(
                pipeline.id.clone(),
                Active {
                    run_id: record.id.clone(),
                    cancel: cancel.clone(),
                    updates: rx,
                },
            );
        }
        if let Err(e) = self.inner.meta.insert_run(&record).await {
            self.inner.active.lock().unwrap().remove(&pipeline.id);
            return Err(e.into());
        }
        let engine = self.clone();
        let run = record.clone();
        tokio::spawn(async move {
            let pipeline_id = run.pipeline.clone();
            let ctx = run::RunContext {
                meta: engine.inner.meta.clone(),
                profiles: engine.inner.profiles.clone(),
                config: engine.inner.config.clone(),
                cancel,
                updates: tx,
            };
            let done = run::execute(&ctx, run).await;
            // Leave the active set before followers learn the run ended, so that a run started as soon as
            // they see it finished is not refused as "already running".
            engine.inner.active.lock().unwrap().remove(&pipeline_id);
            let _ = ctx.updates.send(done);
        });
        Ok(record)
    }

    /// The id of the pipeline's active run, if any.
    pub fn active_run(&self, pipeline_id: &str) -> Option<String> {
        self.inner
            .active
            .lock()
            .unwrap()
            .get(pipeline_id)
            .map(|a| a.run_id.clone())
    }

    /// The live state of an active run (fresher than the stored one).
    pub fn live(&self, run_id: &str) -> Option<RunRecord> {
        let active = self.inner.active.lock().unwrap();
        active
            .values()
            .find(|a| a.run_id == run_id)
            .map(|a| a.updates.borrow().clone())
    }

    /// Asks a running run to stop at the next batch boundary. `false` when it is not running here.
    pub fn cancel(&self, run_id: &str) -> bool {
        let active = self.inner.active.lock().unwrap();
        match active.values().find(|a| a.run_id == run_id) {
            Some(a) => {
                a.cancel.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Waits for a run started here to finish and returns its final record; `on_update` sees each
    /// progress update.
    pub async fn wait(
        &self,
        run_id: &str,
        mut on_update: impl FnMut(&RunRecord),
    ) -> Option<RunRecord> {
        let rx = {
            let active = self.inner.active.lock().unwrap();
            active
                .values()
                .find(|a| a.run_id == run_id)
                .map(|a| a.updates.clone())
        };
        if let Some(mut rx) = rx {
            loop {
                let current = rx.borrow_and_update().clone();
                on_update(&current);
                if current.status.is_finished() {
                    return Some(current);
                }
                if rx.changed().await.is_err() {
                    break;
                }
            }
        }
        self.inner.meta.get_run(run_id).await.ok().flatten()
    }
}

/// A new identifier: a readable prefix and 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &u[..16])
}
