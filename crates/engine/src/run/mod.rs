//! The body of one run, one file per step: [`prepare`] (check and compile), [`plan`] (read everything
//! or only the changes), [`read`] (pages of profiles and their sync entries), [`transform`] (rows, keys
//! and hashes on blocking threads), [`write`] (the sync decision, deletions and upserts), [`record`]
//! (the sync state, after the destination confirmed). [`failures`] groups the rows that failed. This
//! module strings them together; see the crate documentation for the flow.

mod budget;
mod drift;
pub(crate) mod dry;
pub(crate) mod failures;
mod plan;
mod prepare;
mod read;
mod record;
mod transform;
mod write;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sluice_destinations::Destination;
use sluice_store::{
    MetadataStore, PipelineRecord, ProfileStore, RunLog, RunRecord, RunStatus, SyncCheckpoint,
    SyncState,
};
use tokio::sync::watch;

use crate::error::{EngineError, Result};
use crate::EngineConfig;
use plan::Plan;
use read::Source;

pub(crate) use budget::Budget;
pub use drift::RunMode;
pub use dry::DryReport;
pub use prepare::{prepare, prepare_with, Prepared};
pub use read::change_page_plan;
pub use transform::transform_profiles;

pub(crate) struct RunContext {
    pub meta: Arc<dyn MetadataStore>,
    /// The pipeline's sync state (kept by the metadata store).
    pub sync: Arc<dyn SyncState>,
    pub profiles: Arc<dyn ProfileStore>,
    pub config: EngineConfig,
    pub cancel: Arc<AtomicBool>,
    pub updates: watch::Sender<RunRecord>,
    /// Whether the run reconciles the table whatever its row count says.
    pub mode: RunMode,
    /// Where the run's record goes: the history, or the dry-run table.
    pub runs: Arc<dyn RunLog>,
    /// The definition to run, when it is not the stored pipeline's (a dry run of a change).
    pub pipeline: Option<PipelineRecord>,
    /// A dry run's report: set, the run writes nothing (see `dry`).
    pub dry: Option<Arc<Mutex<DryReport>>>,
    /// The bytes this instance's runs may hold in rows between reading and writing them.
    pub budget: Arc<Budget>,
}

/// Runs to the end, records the outcome and returns the final record (not yet published to followers).
pub(crate) async fn execute(ctx: &RunContext, mut run: RunRecord) -> RunRecord {
    let started = Instant::now();
    let outcome = run_inner(ctx, &mut run).await;
    run.finished_at = Some(Utc::now());
    match outcome {
        Ok(Finish::Done) => run.status = RunStatus::Succeeded,
        Ok(Finish::Cancelled) => {
            run.status = RunStatus::Cancelled;
            run.message = Some(if ctx.dry.is_some() {
                "cancelled; a dry run writes nothing".into()
            } else {
                "cancelled; rows written before the cancel are recorded".into()
            });
        }
        Err(e) => {
            tracing::warn!(run = %run.id, pipeline = %run.pipeline, kind = ?e.kind, "run failed");
            run.status = RunStatus::Failed;
            run.message = Some(e.message);
        }
    }
    tracing::info!(
        run = %run.id, pipeline = %run.pipeline, status = run.status.as_str(),
        inserted = run.counts.inserted, updated = run.counts.updated, unchanged = run.counts.unchanged,
        failed = run.counts.failed, seconds = started.elapsed().as_secs_f64(), "run finished"
    );
    // The final record matters more than any progress update: retry a store hiccup a few times.
    for attempt in 0..5u64 {
        match ctx.runs.update_run(&run).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "could not record the run's outcome");
                tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
            }
        }
    }
    run
}

enum Finish {
    Done,
    Cancelled,
}

async fn run_inner(ctx: &RunContext, run: &mut RunRecord) -> Result<Finish> {
    let pipeline = match &ctx.pipeline {
        Some(p) => p.clone(),
        None => ctx.meta.get_pipeline(&run.pipeline).await?.ok_or_else(|| {
            EngineError::new(
                crate::error::ErrorKind::NotFound,
                "the pipeline was deleted",
            )
        })?,
    };
    let prepared = prepare_with(ctx.meta.as_ref(), pipeline, ctx.config.script_limits).await?;
    let checked = crate::retry::Retrying {
        inner: prepared.destination.as_ref(),
        attempts: ctx.config.write_attempts,
    };
    // Before the change mark and the plan: a repaired sync state must be read in full.
    let findings = drift::check(ctx, &prepared, &checked, ctx.mode).await?;
    if findings.full_read {
        ctx.sync
            .set_sync_checkpoint(&prepared.pipeline.id, None)
            .await
            .map_err(|e| EngineError::store("recording the sync state failed", e))?;
    }
    if !findings.notes.is_empty() {
        run.message = Some(findings.notes.join("; "));
        publish(ctx, run, true).await;
    }
    let now = run.started_at.unwrap_or_else(Utc::now);
    // Taken before any profile is read: a later run need only read what changed from here on.
    let mark = ctx
        .profiles
        .change_mark()
        .await
        .map_err(|e| EngineError::store("reading the profile store failed", e))?;
    let plan = plan::plan(ctx, &prepared, now).await?;
    let outcome = run_plan(ctx, &prepared, run, now, plan).await;
    // The checkpoint moves only past a run that wrote everything it had to; a failed row may depend on
    // other rows (a unique email, say), so it must be retried by reading everything again.
    let pid = &prepared.pipeline.id;
    let clean = run.counts.failed == 0 && run.counts.transform_failed == 0;
    let checkpoint = match (&outcome, clean) {
        (_, false) => Some(None),
        (Ok(Finish::Done), true) if !prepared.transform.depends_on_run() => {
            Some(Some(SyncCheckpoint {
                mark,
                fingerprint: prepared.fingerprint.clone(),
                taken_at: now,
            }))
        }
        // Cancelled or stopped by an error: what was recorded is true, and the previous checkpoint with
        // it (the profiles this run did not finish have changed since that checkpoint, or kept their rows).
        _ => None,
    };
    if let Some(cp) = checkpoint {
        if let Err(e) = ctx.sync.set_sync_checkpoint(pid, cp.as_ref()).await {
            tracing::warn!(run = %run.id, error = %e, "could not record the sync checkpoint");
        }
    }
    outcome
}

/// Runs a plan page by page. A full read takes the whole audience in `_id` order and merge-joins it with
/// the sync state by id range; a read of changes takes the deleted profiles, then the changed ones (the
/// filter applied in memory, so a profile that left is seen), and looks their sync entries up by id —
/// every other synced row is unchanged by construction.
async fn run_plan(
    ctx: &RunContext,
    prepared: &Prepared,
    run: &mut RunRecord,
    now: DateTime<Utc>,
    plan: Plan,
) -> Result<Finish> {
    let pid = prepared.pipeline.id.clone();
    let batch = ctx
        .config
        .batch_size
        .unwrap_or_else(|| prepared.destination.capabilities().batch_rows)
        .max(1);
    let read_error = |e| EngineError::store("reading the profile store failed", e);
    let sync_error = |e| EngineError::store("reading the sync state failed", e);
    let mut counting = None;
    let (source, filter_in_memory) = match plan {
        Plan::Full => {
            // Counting the audience (for progress and `filtered_out`) scans the store: it goes on
            // beside the run.
            counting = Some(read::spawn_counter(
                ctx.profiles.clone(),
                prepared.filter.clone(),
            ));
            (Source::Audience(prepared.filter.clone()), None)
        }
        Plan::Changes { since, changes, .. } => {
            run.progress.total = Some(changes);
            // A change committed after the count is past this run's mark: the next run reads it.
            let source = match changes {
                0 => Source::Nothing,
                _ => Source::ChangedSince(since),
            };
            (source, prepared.filter.clone())
        }
    };
    publish(ctx, run, true).await;
    let retrying = crate::retry::Retrying {
        inner: prepared.destination.as_ref(),
        attempts: ctx.config.write_attempts,
    };
    let mut writer = write::Writer {
        prepared,
        dest: &retrying,
        sync: ctx.sync.clone(),
        log: failures::ErrorLog::default(),
        recorder: record::Recorder::new(
            &retrying,
            ctx.sync.clone(),
            ctx.runs.clone(),
            &pid,
            &prepared.table.name,
            ctx.config.unconfirmed_rows,
        ),
        dry: ctx.dry.clone(),
        owners_time: Duration::ZERO,
        delete_time: Duration::ZERO,
        write_time: Duration::ZERO,
    };
    let mut timings = Timings::default();
    // Synced rows (not kept after their profile left) that a read of changes looked at; the others are
    // unchanged.
    let mut looked_at = 0u64;
    let live =
        |entries: &[sluice_store::SyncEntry]| entries.iter().filter(|e| !e.left).count() as u64;
    if let Plan::Changes {
        since,
        changes: 1..,
        ..
    } = plan
    {
        // Deleted profiles first: a key they held may go to a profile changed since.
        let deleted = ctx
            .profiles
            .deleted_since(since)
            .await
            .map_err(read_error)?;
        for ids in deleted.chunks(batch) {
            let entries = ctx.sync.sync_get(&pid, ids).await.map_err(sync_error)?;
            looked_at += live(&entries);
            writer.process(&mut [], entries, &mut run.counts).await?;
            run.progress.processed += ids.len() as u64;
            writer.recorder.checkpoint(run).await?;
        }
    }

    let (first_rows, page_rows) = match plan {
        Plan::Full => (batch, batch),
        Plan::Changes { changes, .. } => read::change_page_plan(changes, batch),
    };
    let will_read = !matches!(source, Source::Nothing);
    let pages = read::spawn_reader(
        ctx.profiles.clone(),
        source,
        first_rows,
        page_rows,
        ctx.budget.clone(),
    );
    let rows =
        transform::spawn_transformer(pages, prepared, filter_in_memory, now, ctx.cancel.clone());
    let entry_reader = read::EntryReader {
        sync: ctx.sync.clone(),
        pid: pid.clone(),
        by_ids: matches!(plan, Plan::Changes { .. }),
    };
    // Entries read ahead must not miss what the page before records: only a run whose keys are the
    // profile ids records nothing outside each page's own ids.
    let mut rows = read::spawn_entry_reader(rows, entry_reader.clone(), prepared.key_is_profile_id);
    let mut prev_last: Option<String> = None;
    let mut waited = Instant::now();
    // The destination sets its write up while the first page is read and transformed, instead of
    // after: with a read of a few changes, that set-up is a sizeable part of the run.
    let mut warm_up =
        (will_read && ctx.dry.is_none()).then(|| retrying.prepare_write(&prepared.target));
    loop {
        let page = match warm_up.take() {
            Some(warm_up) => {
                let (page, ready) = tokio::join!(rows.recv(), warm_up);
                if let Err(e) = ready {
                    tracing::debug!(run = %run.id, error = %e, "the write could not be set up ahead");
                }
                page
            }
            None => rows.recv().await,
        };
        let Some(page) = page else { break };
        timings.read_transform += waited.elapsed();
        // The page's charge is given back at the end of this turn, once its rows are written.
        let (
            read::Charged {
                items: mut page,
                charge: _charge,
            },
            ahead,
        ) = match page {
            Ok(page) => page,
            Err(e) => {
                // The rows written before (a stuck script's, say) are recorded as usual.
                let settled = writer.recorder.settle().await;
                // A cancel interrupts the script wherever it is, its top-level code included, which
                // makes the evaluator fail: that is the cancel, not a failure of the run.
                if ctx.cancel.load(Ordering::SeqCst) {
                    run.errors = writer.log.groups.clone();
                    settled?;
                    return Ok(Finish::Cancelled);
                }
                return Err(e);
            }
        };
        if ctx.cancel.load(Ordering::SeqCst) {
            run.errors = writer.log.groups.clone();
            writer.recorder.settle().await?;
            return Ok(Finish::Cancelled);
        }
        let last = page
            .last()
            .map(|p| p.id.clone())
            .ok_or_else(|| EngineError::internal("the reader handed over an empty page"))?;
        // Pages are transformed on several threads; the sync state is merged by id range, so a page out
        // of turn would pair profiles with the wrong entries.
        if prev_last.as_deref() >= page.first().map(|p| p.id.as_str()) {
            return Err(EngineError::internal(
                "internal error: pages of profiles came out of order",
            ));
        }
        let entries = match ahead {
            Some((entries, took)) => {
                timings.sync_read += took;
                entries
            }
            None => {
                // Key transfers recorded by the previous batch may touch this batch's profiles.
                writer.recorder.settle().await?;
                let t = Instant::now();
                let entries = entry_reader.entries(prev_last.as_deref(), &page).await?;
                timings.sync_read += t.elapsed();
                entries
            }
        };
        looked_at += live(&entries);
        writer.process(&mut page, entries, &mut run.counts).await?;
        prev_last = Some(last);
        run.progress.processed += page.len() as u64;
        run.errors = writer.log.groups.clone();
        if counting.as_ref().is_some_and(|c| c.is_finished()) {
            read::apply_counts(run, counting.take()).await?;
        }
        let t = Instant::now();
        // Watchers in this instance see every page. The stored record (what other instances and a
        // restart see) is refreshed behind the sync-state records of the batches it counts, so that the
        // counts a killed run leaves match what it recorded; the chain is already a task apart, so this
        // does not hold up the next page.
        publish(ctx, run, false).await;
        writer.recorder.checkpoint(run).await?;
        timings.publish += t.elapsed();
        waited = Instant::now();
    }
    writer.recorder.settle().await?;
    match plan {
        Plan::Full => {
            read::apply_counts(run, counting.take()).await?;
            // Sync entries past the last profile belong to profiles that left the audience or were
            // deleted.
            loop {
                let entries = ctx
                    .sync
                    .sync_range(&pid, prev_last.as_deref(), None, batch)
                    .await
                    .map_err(sync_error)?;
                let Some(last) = entries.last().map(|e| e.profile_id.clone()) else {
                    break;
                };
                writer.process(&mut [], entries, &mut run.counts).await?;
                writer.recorder.checkpoint(run).await?;
                prev_last = Some(last);
            }
            writer.recorder.settle().await?;
        }
        Plan::Changes { synced, .. } => {
            run.counts.unchanged += synced.saturating_sub(looked_at);
        }
    }
    timings.owners = writer.owners_time;
    timings.delete = writer.delete_time;
    timings.write = writer.write_time;
    timings.confirm = writer.recorder.confirm_time;
    timings.sync_write = writer.recorder.record_time;
    timings.log(&run.id, plan.name());
    run.errors = writer.log.groups;
    Ok(Finish::Done)
}

/// Shows the run to watchers in this instance and, with `store`, saves it for the others.
async fn publish(ctx: &RunContext, run: &RunRecord, store: bool) {
    let _ = ctx.updates.send(run.clone());
    if !store {
        return;
    }
    if let Err(e) = ctx.runs.update_run(run).await {
        tracing::warn!(run = %run.id, error = %e, "could not record the run's progress");
    }
}

/// Where a run spent its time, for the log line that closes it (and for tuning).
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    /// Waiting for the next page of computed rows (reading and transforming overlap this).
    read_transform: Duration,
    /// Reading the pages' sync entries: a page ahead of the writes where the run allows it, so much of
    /// it overlaps them.
    sync_read: Duration,
    owners: Duration,
    delete: Duration,
    write: Duration,
    /// Waiting for the destination to confirm rows written unconfirmed.
    confirm: Duration,
    sync_write: Duration,
    publish: Duration,
}

impl Timings {
    fn log(&self, run: &str, plan: &str) {
        tracing::info!(
            run,
            plan,
            read_transform_s = self.read_transform.as_secs_f64(),
            sync_read_s = self.sync_read.as_secs_f64(),
            owners_s = self.owners.as_secs_f64(),
            delete_s = self.delete.as_secs_f64(),
            write_s = self.write.as_secs_f64(),
            confirm_s = self.confirm.as_secs_f64(),
            sync_write_s = self.sync_write.as_secs_f64(),
            publish_s = self.publish.as_secs_f64(),
            "time spent per stage"
        );
    }
}
