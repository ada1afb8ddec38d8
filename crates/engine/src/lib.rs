//! Checking and running pipelines, and the bookkeeping around runs.
//!
//! [`check::check_pipeline`] is the one check of a pipeline spec against its destination, the Customer
//! Model and the live table (the rules are pure, in [`validate`]); saving, previewing, the quickstart and
//! every run go through it. Errors carry an [`ErrorKind`] that callers match on (the API's status).
//!
//! A run flows `read → filter → transform → decide → write → record`, one file per step under `run/`:
//!
//! 1. **Prepare**: the check above, then the write target, the hash seed and the fingerprint. A table
//!    that changed under the pipeline (a dropped column) fails the run here, before anything is written.
//!    Then the drift checks (`run/drift.rs`): a table dropped and created again (its identity changed)
//!    resets the sync state; fewer rows than Sluice keeps there, or a [`RunMode::Reconcile`] run, reads
//!    the written rows back and marks those missing or changed for rewriting.
//! 2. **Read**: page through the profile store in `_id` order with the filter pushed down into SQL, one
//!    bounded page at a time (memory does not grow with the number of profiles). A reader task fetches the
//!    next page while the current one is processed.
//! 3. **Transform**: compute each row on blocking threads (two taking pages in turn for a visual
//!    mapping, one owning the runtime for a script; a profile the script skips by returning null counts as
//!    filtered out) and hash it.
//! 4. **Decide**: pair the rows with the pipeline's sync state for the same id range (a merge join: both
//!    are ordered by `_id`) and let the pure sync decision (`sluice_core::sync`) say what each needs;
//!    sync entries with no matching profile belong to profiles that left the audience or were deleted.
//!    When keys are the profile ids, a task reads each page's entries a page ahead of the writes (a
//!    page's records then touch only its own ids); otherwise after the page before is recorded.
//! 5. **Write**: upsert the changed rows in one large batch through the destination's bulk path; a batch
//!    refused for its data is split until the bad rows are found. `on_leave: delete` deletes the rows of
//!    profiles that left; `keep` leaves them and remembers them.
//! 6. **Record**: the sync state advances only after the destination confirmed the write, so a crash or a
//!    retry converges instead of losing rows. The run sees the sync state through the small
//!    [`sluice_store::SyncState`] trait alone.
//!
//! Re-runs read only what changed. After a run that wrote every row it had to (no failed rows), the
//! pipeline keeps a *sync checkpoint*: the profile store's change mark taken before that run read anything,
//! and a fingerprint of everything else the rows depend on (pipeline, destination, Customer Model, live
//! table, Sluice version). The next run, when the fingerprint is the same and the transformation cannot
//! depend on the run (no `now()`, no script), reads only the profiles changed or deleted since the mark
//! — deletions first, so a key they held can pass to a changed profile — and looks their sync entries up
//! by id; every other synced row is counted unchanged without being read. The changes are read in a few
//! pages (about four, of at least 1,000 rows), so that reading, writing and recording overlap, and the
//! destination sets its write up while the first page is read. Past a quarter of the audience
//! changed, a full read is cheaper and is used instead. A run with failed rows drops the checkpoint, so
//! that the next run reads, and retries, everything.
//!
//! Keys: a key belongs to one profile. Two profiles producing the same key in one run — the lower `_id` wins
//! (pages are read in `_id` order), the other is a failed row that says which profile holds the key.
//!
//! Around the runs (see [`scheduler`] and [`alerts`]): every run is claimed in the metadata store by this
//! instance with a lease its heartbeats renew, so several instances can share one PostgreSQL metadata store
//! and never run one pipeline twice at once; a run waits (status `queued`) for a slot under the global and
//! per-destination limits; a run whose failed rows exceed a share of its rows fails; failures and
//! recoveries are posted to webhooks.

pub mod alerts;
pub mod check;
mod dry_run;
pub mod error;
mod retry;
mod run;
pub mod scheduler;
pub mod source;
pub mod totals;
pub mod validate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_store::{
    Counts, MetadataStore, PipelineRecord, ProfileStore, Progress, RunRecord, RunStatus,
};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

pub use check::{check_change, check_pipeline, check_pipeline_with, Fitted};
pub use dry_run::DryRunStartError;
pub use error::{EngineError, ErrorKind};
pub use run::dry::{
    ColumnChange, DeleteSample, DryReport, DryRunRecord, InsertSample, UpdateSample,
    DRY_RUN_SAMPLES,
};
pub use run::{change_page_plan, prepare, prepare_with, transform_profiles, Prepared, RunMode};

/// The default of [`EngineConfig::rows_in_flight_bytes`].
pub const DEFAULT_ROWS_IN_FLIGHT_BYTES: usize = 64 << 20;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Profiles read per page, and rows upserted per destination batch; `None` lets each destination
    /// choose ([`sluice_destinations::Destination::batch_rows`]).
    pub batch_size: Option<usize>,
    /// Bytes that the rows between reading and writing may hold, for all of this instance's runs
    /// together: what bounds a run's memory whatever the batch size and the width of a row (see
    /// `run/budget.rs`). A page is read only while the pages in flight hold less.
    pub rows_in_flight_bytes: usize,
    /// Attempts for a batch that fails for a transient reason (connection lost, deadlock).
    pub write_attempts: u32,
    /// How many written rows may wait for confirmation at a destination that defers it
    /// ([`sluice_destinations::Destination::defers_confirmation`]): the larger, the fewer (ClickHouse)
    /// parts, but the more sync records held in memory and written again after a failure.
    pub unconfirmed_rows: usize,
    /// Time and memory limits of script transformations.
    pub script_limits: sluice_transform::Limits,
    /// Runs going at once in this instance; more wait, queued.
    pub max_concurrent_runs: usize,
    /// Dry runs going at once in this instance; more wait, queued. Dry runs have slots of their own, so
    /// that however many are started, a real run never waits behind one.
    pub max_concurrent_dry_runs: usize,
    /// Dry runs that may wait for a slot in this instance; more are refused
    /// ([`DryRunStartError::TooMany`]), so that starting dry runs in a loop cannot pile up tasks.
    pub max_waiting_dry_runs: usize,
    /// Runs going at once against one destination in this instance, so that many pipelines on one database
    /// do not open as many connections.
    pub max_runs_per_destination: usize,
    /// A run whose failed rows (write and transform failures) exceed this share of its rows fails.
    pub failed_rows_threshold: f64,
    /// The workspace's webhook, told about every pipeline's failures and recoveries.
    pub alert_webhook: Option<String>,
    /// Refuse to send alerts to a host that is, or resolves to, a private, loopback or link-local address
    /// (see [`sluice_core::address`]); off by default, so local development keeps working.
    pub deny_private_webhooks: bool,
    /// How long a claimed run stays this instance's without a heartbeat; heartbeats go every third of it.
    pub lease: Duration,
    /// How often the scheduler looks for due pipelines.
    pub scheduler_interval: Duration,
    /// How often the scheduler looks for profile changes for `on_change` pipelines (one cheap count per
    /// distinct cursor).
    pub on_change_interval: Duration,
    /// How long changes wait before they set off an `on_change` run.
    pub on_change_debounce: sluice_core::on_change::Debounce,
    /// The name under which this instance claims runs; kept across restarts (`sluice serve` keeps it in
    /// the data directory) so that a restart fails its previous process's runs at once. A fresh random
    /// name when `None`.
    pub instance: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: None,
            rows_in_flight_bytes: DEFAULT_ROWS_IN_FLIGHT_BYTES,
            write_attempts: 4,
            unconfirmed_rows: 250_000,
            script_limits: sluice_transform::Limits::default(),
            max_concurrent_runs: 4,
            max_concurrent_dry_runs: 2,
            max_waiting_dry_runs: 8,
            max_runs_per_destination: 2,
            failed_rows_threshold: 0.1,
            alert_webhook: None,
            deny_private_webhooks: false,
            lease: Duration::from_secs(30),
            scheduler_interval: Duration::from_secs(5),
            on_change_interval: Duration::from_secs(1),
            on_change_debounce: sluice_core::on_change::Debounce::default(),
            instance: None,
        }
    }
}

/// Message of a run found unfinished when its instance starts again.
const RESTART_MESSAGE: &str =
    "Sluice stopped while this run was in progress; the next run will repair the table";

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
    stop: Stop,
    updates: watch::Receiver<RunRecord>,
}

/// How a run, real or dry, is asked to stop.
#[derive(Clone, Default)]
struct Stop {
    cancel: Arc<AtomicBool>,
    /// Wakes a run still waiting for a slot, so that a cancel ends it at once.
    wake: Arc<Notify>,
}

impl Stop {
    fn request(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
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
    /// This process's name as the owner of the runs it claims.
    instance: String,
    slots: Arc<Semaphore>,
    /// Dry runs' own slots (see [`EngineConfig::max_concurrent_dry_runs`]).
    dry_slots: Arc<Semaphore>,
    /// Dry runs queued or going here, by run id: what a cancel needs to reach them.
    dry_active: Mutex<HashMap<String, Stop>>,
    destination_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    totals: totals::Totals,
    /// What this instance's scheduler has seen of each `on_change` pipeline's pending changes, with the
    /// cursor they were counted from.
    watches: Mutex<HashMap<String, (String, sluice_core::on_change::Watch)>>,
    /// Whether the last scheduler pass saw any `on_change` pipeline: the looks for changes between
    /// passes (every second) skip listing the pipelines when it saw none.
    following_changes: AtomicBool,
    /// The rows in flight of every run here (see [`EngineConfig::rows_in_flight_bytes`]).
    budget: Arc<run::Budget>,
    /// Tells the sources' scheduler to look now rather than at the next tick: a source was saved, or
    /// a source run here ended (its follow-up, if a tick fell during it, starts at once).
    sources_wake: Arc<Notify>,
}

impl Engine {
    pub fn new(
        meta: Arc<dyn MetadataStore>,
        profiles: Arc<dyn ProfileStore>,
        config: EngineConfig,
    ) -> Self {
        let instance = config.instance.clone().unwrap_or_else(|| new_id("inst"));
        let budget = run::Budget::new(config.rows_in_flight_bytes);
        Self {
            inner: Arc::new(Inner {
                meta,
                profiles,
                slots: Arc::new(Semaphore::new(config.max_concurrent_runs.max(1))),
                dry_slots: Arc::new(Semaphore::new(config.max_concurrent_dry_runs.max(1))),
                dry_active: Mutex::new(HashMap::new()),
                config,
                active: Mutex::new(HashMap::new()),
                instance,
                destination_slots: Mutex::new(HashMap::new()),
                totals: totals::Totals::default(),
                watches: Mutex::new(HashMap::new()),
                following_changes: AtomicBool::new(true),
                budget,
                sources_wake: Arc::new(Notify::new()),
            }),
        }
    }

    pub fn meta(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.meta
    }

    /// Has this instance's scheduler look at the sources now (after a source was created or changed),
    /// instead of at their next tick. Other instances see the change by their next tick or
    /// `scheduler_interval`, whichever comes first.
    pub fn wake_sources(&self) {
        self.inner.sources_wake.notify_one();
    }

    /// Has this instance's scheduler follow the profile store's changes from its next look (a second
    /// at most), after an export pipeline was saved: one created or switched to `on_change` would
    /// otherwise wait for the next full pass, up to `scheduler_interval`. Costless when none follows
    /// changes: the next look finds none and stops following again.
    pub fn follow_changes_now(&self) {
        self.inner.following_changes.store(true, Ordering::Relaxed);
    }

    pub(crate) fn sources_wake(&self) -> Arc<Notify> {
        self.inner.sources_wake.clone()
    }

    pub(crate) fn watches(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (String, sluice_core::on_change::Watch)>> {
        self.inner.watches.lock().unwrap()
    }

    pub(crate) fn following_changes(&self) -> &AtomicBool {
        &self.inner.following_changes
    }

    pub fn profiles(&self) -> &Arc<dyn ProfileStore> {
        &self.inner.profiles
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The name under which this instance claims runs.
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// Counts of the runs this instance finished since it started.
    pub fn totals(&self) -> &totals::Totals {
        &self.inner.totals
    }

    /// Marks runs left unfinished by a previous process (killed mid-run) as failed. The next run repairs
    /// the table: the sync state only holds confirmed writes.
    ///
    /// A store shared by several instances fails this instance's own runs (it keeps its name across
    /// restarts) and those whose lease ran out (their instance died); an SQLite store belongs to this
    /// process alone, so every unfinished run not active here is left over.
    pub async fn recover(&self) -> Result<usize, sluice_store::StoreError> {
        if self.inner.meta.shared() {
            let mut reaped = self
                .inner
                .meta
                .reap_owner(&self.inner.instance, RESTART_MESSAGE)
                .await?;
            reaped.extend(self.inner.meta.reap_expired().await?);
            for run in &reaped {
                alerts::after_run(self, run);
            }
            return Ok(reaped.len());
        }
        let mut n = 0;
        for mut run in self.inner.meta.unfinished_runs().await? {
            if self.is_active(&run.id) {
                continue;
            }
            run.status = RunStatus::Failed;
            run.finished_at = Some(Utc::now());
            run.message = Some(RESTART_MESSAGE.into());
            self.inner.meta.update_run(&run).await?;
            n += 1;
        }
        Ok(n)
    }

    fn is_active(&self, run_id: &str) -> bool {
        self.inner
            .active
            .lock()
            .unwrap()
            .values()
            .any(|a| a.run_id == run_id)
    }

    /// Runs that can start now without waiting for a slot.
    pub fn free_slots(&self) -> usize {
        self.inner.slots.available_permits()
    }

    fn destination_slots(&self, destination: &str) -> Arc<Semaphore> {
        self.inner
            .destination_slots
            .lock()
            .unwrap()
            .entry(destination.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.inner.config.max_runs_per_destination.max(1),
                ))
            })
            .clone()
    }

    /// Starts a run of `pipeline_id` and returns it: `running`, or `queued` while the concurrency limits
    /// make it wait. The run goes on in the background.
    pub async fn start(&self, pipeline_id: &str, trigger: &str) -> Result<RunRecord, StartError> {
        self.start_with(pipeline_id, trigger, RunMode::Normal).await
    }

    /// [`Engine::start`] in the given mode: [`RunMode::Reconcile`] reads the rows Sluice wrote back
    /// before writing and rewrites those that are missing or changed.
    pub async fn start_with(
        &self,
        pipeline_id: &str,
        trigger: &str,
        mode: RunMode,
    ) -> Result<RunRecord, StartError> {
        self.start_at(pipeline_id, trigger, mode, Utc::now()).await
    }

    /// [`Engine::start_with`], recording a reconcile as started at `at` (the scheduler's clock, which
    /// tests set) for the pipeline's `reconcile_every`.
    pub async fn start_at(
        &self,
        pipeline_id: &str,
        trigger: &str,
        mode: RunMode,
        at: DateTime<Utc>,
    ) -> Result<RunRecord, StartError> {
        self.start_for(pipeline_id, trigger, mode, at, None).await
    }

    /// [`Engine::start_at`] for a run set off by profile changes, naming them on the run (`None`: what
    /// changed is unknown).
    pub async fn start_for(
        &self,
        pipeline_id: &str,
        trigger: &str,
        mode: RunMode,
        at: DateTime<Utc>,
        changes: Option<sluice_store::ChangeCounts>,
    ) -> Result<RunRecord, StartError> {
        let pipeline = self
            .inner
            .meta
            .get_pipeline(pipeline_id)
            .await?
            .ok_or_else(|| StartError::NotFound(pipeline_id.to_string()))?;
        if !pipeline.spec.enabled {
            return Err(StartError::Disabled(pipeline.spec.name.clone()));
        }
        if let Some(run) = self.active_run(&pipeline.id) {
            return Err(StartError::AlreadyRunning {
                name: pipeline.spec.name.clone(),
                run,
            });
        }
        // Slots are taken destination first, so a run waiting for a global slot only holds up runs of its
        // own destination.
        let dest_slots = self.destination_slots(&pipeline.spec.destination);
        let dest_permit = dest_slots.clone().try_acquire_owned().ok();
        let permit = dest_permit
            .as_ref()
            .and_then(|_| self.inner.slots.clone().try_acquire_owned().ok());
        let now = Utc::now();
        let ready = permit.is_some();
        let record = RunRecord {
            id: new_id("run"),
            pipeline: pipeline.id.clone(),
            trigger: trigger.to_string(),
            changes,
            status: if ready {
                RunStatus::Running
            } else {
                RunStatus::Queued
            },
            queued_at: now,
            started_at: ready.then_some(now),
            finished_at: None,
            progress: Progress::default(),
            counts: Counts::default(),
            errors: Vec::new(),
            message: None,
        };
        // The store's unique rule decides between simultaneous starts, here or on other instances.
        if let Some(run) = self
            .inner
            .meta
            .claim_run(&record, &self.inner.instance, self.inner.config.lease)
            .await?
        {
            return Err(StartError::AlreadyRunning {
                name: pipeline.spec.name.clone(),
                run,
            });
        }
        if mode == RunMode::Reconcile {
            // Recorded once the run is claimed, so a refused start does not put the next reconcile off.
            self.inner.meta.record_reconcile(&pipeline.id, at).await?;
        }
        let stop = Stop::default();
        let (tx, rx) = watch::channel(record.clone());
        self.inner.active.lock().unwrap().insert(
            pipeline.id.clone(),
            Active {
                run_id: record.id.clone(),
                stop: stop.clone(),
                updates: rx,
            },
        );
        tracing::info!(run = %record.id, pipeline = %pipeline.id, trigger, mode = mode.as_str(), queued = !ready, "run claimed");
        let engine = self.clone();
        let run = record.clone();
        tokio::spawn(async move {
            let slots = (dest_permit, permit);
            engine
                .drive(pipeline, run, mode, slots, dest_slots, stop, tx)
                .await;
        });
        Ok(record)
    }

    /// Waits for slots (unless cancelled first), runs, applies the failed-rows threshold, records and alerts.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &self,
        pipeline: PipelineRecord,
        mut run: RunRecord,
        mode: RunMode,
        slots: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>),
        dest_slots: Arc<Semaphore>,
        stop: Stop,
        tx: watch::Sender<RunRecord>,
    ) {
        let Stop { cancel, wake } = stop;
        let permits = match slots {
            (Some(d), Some(g)) => Some((d, g)),
            (dest, _) => {
                let global = self.inner.slots.clone();
                let acquire = async move {
                    let d = match dest {
                        Some(d) => d,
                        None => dest_slots.acquire_owned().await.ok()?,
                    };
                    let g = global.acquire_owned().await.ok()?;
                    Some((d, g))
                };
                tokio::select! {
                    p = acquire => p,
                    _ = wake.notified() => None,
                }
            }
        };
        let done = match permits {
            Some(_permits) if !cancel.load(Ordering::SeqCst) => {
                if run.status == RunStatus::Queued {
                    run.status = RunStatus::Running;
                    run.started_at = Some(Utc::now());
                    let _ = tx.send(run.clone());
                    if let Err(e) = self.inner.meta.update_run(&run).await {
                        tracing::warn!(run = %run.id, error = %e, "could not record the run's start");
                    }
                }
                let ctx = run::RunContext {
                    meta: self.inner.meta.clone(),
                    sync: self.inner.meta.clone() as Arc<dyn sluice_store::SyncState>,
                    profiles: self.inner.profiles.clone(),
                    config: self.inner.config.clone(),
                    cancel,
                    updates: tx.clone(),
                    mode,
                    runs: self.inner.meta.clone(),
                    pipeline: None,
                    dry: None,
                    budget: self.inner.budget.clone(),
                };
                let done = run::execute(&ctx, run).await;
                self.apply_threshold(done).await
            }
            _ => {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(Utc::now());
                run.message = Some("cancelled before it started".into());
                if let Err(e) = self.inner.meta.update_run(&run).await {
                    tracing::warn!(run = %run.id, error = %e, "could not record the cancelled run");
                }
                run
            }
        };
        // Counted while the run still shows as running here, so that whoever sees it finished through
        // this instance also sees it in the totals.
        self.inner.totals.record(&done);
        // Leave the active set before followers learn the run ended, so that a run started as soon as
        // they see it finished is not refused as "already running".
        self.inner.active.lock().unwrap().remove(&pipeline.id);
        let _ = tx.send(done.clone());
        alerts::after_run(self, &done);
    }

    /// Fails a succeeded run whose failed rows exceed the configured share of its rows.
    async fn apply_threshold(&self, mut run: RunRecord) -> RunRecord {
        if run.status != RunStatus::Succeeded {
            return run;
        }
        let threshold = self.inner.config.failed_rows_threshold;
        if let Some(message) = over_threshold(&run.counts, threshold) {
            tracing::warn!(run = %run.id, pipeline = %run.pipeline, failed = run.counts.failed,
                transform_failed = run.counts.transform_failed, threshold, "too many failed rows: the run fails");
            run.status = RunStatus::Failed;
            run.message = Some(message);
            if let Err(e) = self.inner.meta.update_run(&run).await {
                tracing::warn!(run = %run.id, error = %e, "could not record the run's outcome");
            }
        }
        run
    }

    /// The id of the pipeline's active run in this instance, if any.
    pub fn active_run(&self, pipeline_id: &str) -> Option<String> {
        self.inner
            .active
            .lock()
            .unwrap()
            .get(pipeline_id)
            .map(|a| a.run_id.clone())
    }

    /// The id of the pipeline's queued or running run on any instance, if any.
    pub async fn current_run(&self, pipeline_id: &str) -> Option<String> {
        if let Some(id) = self.active_run(pipeline_id) {
            return Some(id);
        }
        self.inner
            .meta
            .unfinished_runs()
            .await
            .ok()?
            .into_iter()
            .find(|r| r.pipeline == pipeline_id)
            .map(|r| r.id)
    }

    /// The live state of an active run (fresher than the stored one).
    pub fn live(&self, run_id: &str) -> Option<RunRecord> {
        let active = self.inner.active.lock().unwrap();
        active
            .values()
            .find(|a| a.run_id == run_id)
            .map(|a| a.updates.borrow().clone())
    }

    /// Asks a run, real or dry, to stop: a queued one ends at once, a running one at the next batch
    /// boundary (the rows written so far stay recorded); a script running at the time is interrupted, so
    /// that boundary comes within about one script time limit. `false` when it is not active here.
    pub fn cancel(&self, run_id: &str) -> bool {
        let active = self.inner.active.lock().unwrap();
        if let Some(a) = active.values().find(|a| a.run_id == run_id) {
            a.stop.request();
            return true;
        }
        drop(active);
        match self.inner.dry_active.lock().unwrap().get(run_id) {
            Some(stop) => {
                stop.request();
                true
            }
            None => false,
        }
    }

    /// Asks a run to stop wherever it runs: at once here, or through the store for the instance that holds
    /// it (which stops it at its next heartbeat). `false` when the run is not queued or running.
    pub async fn request_cancel(&self, run_id: &str) -> Result<bool, sluice_store::StoreError> {
        if self.cancel(run_id) {
            return Ok(true);
        }
        self.inner.meta.request_cancel(run_id).await
    }

    /// For a clean stop: cancels every run of this instance and waits up to `grace` for them to reach a
    /// batch boundary and record themselves, so they end `cancelled` (sync state true) instead of being
    /// failed later as abandoned. Returns how many were still going when the grace ran out.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        let runs: Vec<String> = self
            .inner
            .active
            .lock()
            .unwrap()
            .values()
            .map(|a| a.run_id.clone())
            .collect();
        for run in &runs {
            self.cancel(run);
        }
        for stop in self.inner.dry_active.lock().unwrap().values() {
            stop.request();
        }
        let end = tokio::time::Instant::now() + grace;
        loop {
            let left = self.inner.active.lock().unwrap().len()
                + self.inner.dry_active.lock().unwrap().len();
            if left == 0 || tokio::time::Instant::now() >= end {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops what a pipeline has going here and drops its queued follow-up: for disable and delete.
    pub async fn stop_pipeline(&self, pipeline_id: &str) {
        if let Some(run) = self.active_run(pipeline_id) {
            self.cancel(&run);
        }
        scheduler::drop_follow_up(self, pipeline_id).await;
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

    /// Renews the leases of this instance's runs and stops those it no longer holds (reaped after a
    /// stall, deleted with their pipeline), whose pipeline was disabled or whose cancel was requested,
    /// perhaps through another instance.
    pub async fn heartbeat(&self) -> Result<(), sluice_store::StoreError> {
        let claimed: Vec<(String, String)> = self
            .inner
            .active
            .lock()
            .unwrap()
            .iter()
            .map(|(p, a)| (p.clone(), a.run_id.clone()))
            .collect();
        let held = self
            .inner
            .meta
            .heartbeat(&self.inner.instance, self.inner.config.lease)
            .await?;
        for (pipeline, run) in claimed {
            let entry = held.iter().find(|h| h.run == run);
            let lost = entry.is_none();
            let requested = entry.is_some_and(|h| h.cancel_requested);
            // The active set holds runs of pipelines and of sources, each under its owner's id.
            let disabled = match self.inner.meta.get_pipeline(&pipeline).await? {
                Some(p) => !p.spec.enabled,
                None => match self.inner.meta.get_source(&pipeline).await? {
                    Some(s) => !s.spec.enabled,
                    None => true,
                },
            };
            // A run that finished between the snapshot and the heartbeat is no longer active: cancel is a no-op.
            if (lost || disabled || requested) && self.is_active(&run) {
                tracing::warn!(run = %run, pipeline = %pipeline, lost, disabled, requested, "stopping a run");
                self.cancel(&run);
            }
        }
        Ok(())
    }
}

/// Why a run with `counts` fails for its failed rows, when their share exceeds `threshold`.
pub fn over_threshold(counts: &Counts, threshold: f64) -> Option<String> {
    let failed = counts.failed + counts.transform_failed;
    let rows = counts.inserted + counts.updated + counts.unchanged + failed;
    if failed == 0 || rows == 0 {
        return None;
    }
    let share = failed as f64 / rows as f64;
    (share > threshold).then(|| {
        format!(
            "{failed} of {rows} rows failed ({:.1}%), more than the allowed {:.1}%; see the errors for why",
            share * 100.0,
            threshold * 100.0
        )
    })
}

/// A new identifier: a readable prefix and 16 random hex digits.
pub fn new_id(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &u[..16])
}
