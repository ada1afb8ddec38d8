//! The body of one run; see the crate documentation for the flow.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::FutureExt;
use sluice_core::filter::Filter;
use sluice_core::hash::{hash_row, shape_seed};
use sluice_core::pipeline::{OnLeave, Transformation};
use sluice_core::{ColumnType, Profile, RawProfile, Schema, TableDescription, Value};
use sluice_destinations::{
    upsert_isolating_unconfirmed, Destination, DestinationError, ErrorKind, Row, TestReport,
    UpsertCounts, WriteTarget,
};
use sluice_store::{
    MetadataStore, PipelineRecord, ProfileStore, RunErrorGroup, RunRecord, RunStatus, StoreError,
    SyncCheckpoint, SyncEntry, SyncKey, MAX_SAMPLES, TOMBSTONE_RETENTION,
};
use sluice_transform::{Evaluator, Limits, Output, RowError, Transform};
use tokio::sync::{mpsc, watch};

use crate::validate;
use crate::EngineConfig;

pub(crate) struct RunContext {
    pub meta: Arc<dyn MetadataStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub config: EngineConfig,
    pub cancel: Arc<AtomicBool>,
    pub updates: watch::Sender<RunRecord>,
}

/// A pipeline made ready to run: everything compiled and checked against the live table.
pub struct Prepared {
    pub pipeline: PipelineRecord,
    pub schema: Schema,
    pub filter: Option<Filter>,
    pub destination: Box<dyn Destination>,
    pub destination_name: String,
    pub table: TableDescription,
    /// The compiled transformation; its columns are the target's.
    pub transform: Transform,
    pub target: WriteTarget,
    /// Whether the key column is mapped to `_id` itself: keys are then unique by construction.
    pub key_is_profile_id: bool,
    /// Seeds row hashes with what they mean (destination, table, key, columns), so a change of any of
    /// them makes every row compare afresh.
    pub seed: u64,
    /// Everything besides the profiles that the rows depend on (see [`fingerprint`]).
    pub fingerprint: String,
}

/// A digest of what a pipeline's rows are computed from besides the profiles themselves: the pipeline's
/// audience, table, key, transformation and on-leave rule, the destination, the Customer Model, the live
/// table and this version of Sluice (conversion rules may change between versions). A sync checkpoint
/// is only used while this stays the same.
fn fingerprint(
    spec: &sluice_core::pipeline::PipelineSpec,
    destination: &sluice_store::DestinationRecord,
    schema: &Schema,
    table: &TableDescription,
) -> String {
    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let parts = [
        env!("CARGO_PKG_VERSION").to_string(),
        json(&spec.filter),
        spec.table.clone(),
        spec.key.clone(),
        json(&spec.transformation),
        json(&spec.on_leave),
        destination.id.clone(),
        destination.kind.clone(),
        destination.settings.to_string(),
        destination.updated_at.to_rfc3339(),
        // Debug output is stable within a version, which the first part pins.
        format!("{schema:?}"),
        format!("{table:?}"),
    ];
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    sluice_core::hash::fingerprint(&parts)
}

/// Loads and checks everything a run needs, scripts under the default limits; the error is the message
/// the run fails with.
pub async fn prepare(
    meta: &dyn MetadataStore,
    pipeline: PipelineRecord,
) -> Result<Prepared, String> {
    prepare_with(meta, pipeline, Limits::default()).await
}

/// [`prepare`] with the limits scripts run under.
pub async fn prepare_with(
    meta: &dyn MetadataStore,
    pipeline: PipelineRecord,
    limits: Limits,
) -> Result<Prepared, String> {
    let spec = &pipeline.spec;
    let dest_rec = meta
        .get_destination(&spec.destination)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("destination `{}` no longer exists", spec.destination))?;
    let destination =
        sluice_destinations::open(&dest_rec.kind, &dest_rec.settings).map_err(|e| {
            format!(
                "the settings of destination `{}` are invalid: {e}",
                dest_rec.name
            )
        })?;
    let schema = meta.get_schema().await.map_err(|e| e.to_string())?;
    let table = describe_retrying(destination.as_ref(), &spec.table)
        .await
        .map_err(|e| format!("could not read table `{}`: {e}", spec.table))?;
    let checked = validate::check_blocking(spec.clone(), schema.clone(), table.clone(), limits)
        .await
        .map_err(|e| format!("the pipeline no longer fits the table or the Customer Model: {e}"))?;
    let table = table.expect("check() fails when the table is missing");
    let transform = checked
        .transform
        .ok_or("the transformation did not compile")?;
    let target = WriteTarget {
        table: table.clone(),
        columns: transform.columns().to_vec(),
        key: spec.key.clone(),
        run_version: sluice_destinations::run_version(),
    };
    let mut shape: Vec<&str> = vec![&dest_rec.id, &spec.table, &spec.key];
    shape.extend(transform.columns().iter().map(String::as_str));
    let seed = shape_seed(&shape);
    let key_is_profile_id = matches!(&spec.transformation,
        Transformation::Mapping(m) if m.get(&spec.key).map(str::trim) == Some("_id"));
    let fingerprint = fingerprint(spec, &dest_rec, &schema, &table);
    Ok(Prepared {
        fingerprint,
        key_is_profile_id,
        filter: checked.filter,
        destination,
        destination_name: dest_rec.name,
        table,
        transform,
        target,
        seed,
        schema,
        pipeline,
    })
}

/// Computes the rows of `profiles` as a run would — same transformation, same conversions, on a blocking
/// thread that owns the script runtime — and writes nothing: what a preview shows. `now` is what `now()`
/// means in a mapping. Fails only when a script cannot be loaded.
pub async fn transform_profiles(
    prepared: &Prepared,
    profiles: Vec<Profile>,
    now: DateTime<Utc>,
) -> Result<Vec<Result<Output, RowError>>, String> {
    let transform = prepared.transform.clone();
    tokio::task::spawn_blocking(move || {
        let mut evaluator = transform.evaluator()?;
        Ok(evaluator.eval_batch(&profiles, now))
    })
    .await
    .map_err(|e| format!("the transformation stopped unexpectedly: {e}"))?
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
            run.message = Some("cancelled; rows written before the cancel are recorded".into());
        }
        Err(message) => {
            run.status = RunStatus::Failed;
            run.message = Some(message);
        }
    }
    tracing::info!(
        run = %run.id, pipeline = %run.pipeline, status = run.status.as_str(),
        inserted = run.counts.inserted, updated = run.counts.updated, unchanged = run.counts.unchanged,
        failed = run.counts.failed, seconds = started.elapsed().as_secs_f64(), "run finished"
    );
    // The final record matters more than any progress update: retry a store hiccup a few times.
    for attempt in 0..5u64 {
        match ctx.meta.update_run(&run).await {
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

async fn run_inner(ctx: &RunContext, run: &mut RunRecord) -> Result<Finish, String> {
    let pipeline = ctx
        .meta
        .get_pipeline(&run.pipeline)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the pipeline was deleted")?;
    let prepared = prepare_with(ctx.meta.as_ref(), pipeline, ctx.config.script_limits).await?;
    let now = run.started_at.unwrap_or_else(Utc::now);
    // Taken before any profile is read: a later run need only read what changed from here on.
    let mark = ctx
        .profiles
        .change_mark()
        .await
        .map_err(|e| format!("reading the profile store failed: {e}"))?;
    let plan = plan(ctx, &prepared, now).await?;
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
        if let Err(e) = ctx.meta.set_sync_checkpoint(pid, cp.as_ref()).await {
            tracing::warn!(run = %run.id, error = %e, "could not record the sync checkpoint");
        }
    }
    outcome
}

/// How a run reads the profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Every profile of the audience, merged with the whole sync state.
    Full,
    /// Only the profiles changed or deleted since the mark of the pipeline's sync checkpoint; the other
    /// `synced` rows are known to be unchanged.
    Changes { since: i64, synced: u64 },
}

/// Chooses between reading everything and reading only the changes since the last clean run.
async fn plan(ctx: &RunContext, p: &Prepared, now: DateTime<Utc>) -> Result<Plan, String> {
    let pid = &p.pipeline.id;
    let store = |e: StoreError| format!("reading the sync state failed: {e}");
    let Some(cp) = ctx.meta.sync_checkpoint(pid).await.map_err(store)? else {
        return Ok(Plan::Full);
    };
    if cp.fingerprint != p.fingerprint {
        // The rows recorded from here on follow the new settings: the old checkpoint must never be used
        // again, even if the settings come back.
        ctx.meta
            .set_sync_checkpoint(pid, None)
            .await
            .map_err(store)?;
        return Ok(Plan::Full);
    }
    // Deletions are remembered for a limited time; a day of margin covers clocks and long runs.
    if p.transform.depends_on_run()
        || cp.taken_at < now - TOMBSTONE_RETENTION + chrono::TimeDelta::days(1)
    {
        return Ok(Plan::Full);
    }
    let changes = ctx
        .profiles
        .count_changes(cp.mark)
        .await
        .map_err(|e| format!("reading the profile store failed: {e}"))?;
    let synced = ctx.meta.sync_count(pid).await.map_err(store)?;
    // Past a quarter of the audience, one ordered scan beats looking every change up.
    if changes.changed + changes.deleted > synced / 4 + 1_000 {
        return Ok(Plan::Full);
    }
    Ok(Plan::Changes {
        since: cp.mark,
        synced,
    })
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
) -> Result<Finish, String> {
    let pid = prepared.pipeline.id.clone();
    let batch = ctx
        .config
        .batch_size
        .unwrap_or_else(|| prepared.destination.batch_rows())
        .max(1);
    let read_error = |e: StoreError| format!("reading the profile store failed: {e}");
    let sync_error = |e: StoreError| format!("reading the sync state failed: {e}");
    let mut counting = None;
    let (source, filter_in_memory) = match plan {
        Plan::Full => {
            // Counting the audience (for progress and `filtered_out`) scans the store: it goes on
            // beside the run.
            counting = Some(spawn_counter(ctx.profiles.clone(), prepared.filter.clone()));
            (Source::Audience(prepared.filter.clone()), None)
        }
        Plan::Changes { since, .. } => {
            let changes = ctx
                .profiles
                .count_changes(since)
                .await
                .map_err(read_error)?;
            run.progress.total = Some(changes.changed + changes.deleted);
            (Source::ChangedSince(since), prepared.filter.clone())
        }
    };
    publish(ctx, run, true).await;
    let retrying = Retrying {
        inner: prepared.destination.as_ref(),
        attempts: ctx.config.write_attempts,
    };
    let mut log = ErrorLog::default();
    let mut state = BatchState {
        prepared,
        dest: &retrying,
        log: &mut log,
        pid: &pid,
        timings: Timings::default(),
        pending: None,
        pending_batches: 0,
        held: Vec::new(),
        confirming: None,
    };
    // Synced rows a read of changes looked at; the others are unchanged.
    let mut looked_at = 0u64;
    if let Plan::Changes { since, .. } = plan {
        // Deleted profiles first: a key they held may go to a profile changed since.
        let deleted = ctx
            .profiles
            .deleted_since(since)
            .await
            .map_err(read_error)?;
        for ids in deleted.chunks(batch) {
            let entries = ctx.meta.sync_get(&pid, ids).await.map_err(sync_error)?;
            looked_at += entries.len() as u64;
            state
                .process(ctx, &mut [], entries, &mut run.counts)
                .await?;
            run.progress.processed += ids.len() as u64;
        }
    }

    let pages = spawn_reader(ctx.profiles.clone(), source, batch);
    let mut rows = spawn_transformer(pages, prepared, filter_in_memory, now);
    let mut prev_last: Option<String> = None;
    let mut waited = Instant::now();
    let mut saved = Instant::now();
    while let Some(page) = rows.recv().await {
        state.timings.read_transform += waited.elapsed();
        let mut page = page?;
        if ctx.cancel.load(Ordering::SeqCst) {
            run.errors = state.log.groups.clone();
            state.settle(ctx).await?;
            return Ok(Finish::Cancelled);
        }
        let last = page
            .last()
            .map(|p| p.id.clone())
            .expect("pages are never empty");
        // Pages are transformed on several threads; the sync state is merged by id range, so a page out
        // of turn would pair profiles with the wrong entries.
        if prev_last.as_deref() >= page.first().map(|p| p.id.as_str()) {
            return Err("internal error: pages of profiles came out of order".into());
        }
        if !prepared.key_is_profile_id {
            // Key transfers recorded by the previous batch may touch this batch's profiles.
            state.settle(ctx).await?;
        }
        let t = Instant::now();
        let entries = match plan {
            Plan::Full => {
                load_entries(ctx.meta.as_ref(), &pid, prev_last.as_deref(), Some(&last)).await?
            }
            Plan::Changes { .. } => {
                let ids: Vec<String> = page.iter().map(|c| c.id.clone()).collect();
                ctx.meta.sync_get(&pid, &ids).await.map_err(sync_error)?
            }
        };
        state.timings.sync_read += t.elapsed();
        looked_at += entries.len() as u64;
        state
            .process(ctx, &mut page, entries, &mut run.counts)
            .await?;
        prev_last = Some(last);
        run.progress.processed += page.len() as u64;
        run.errors = state.log.groups.clone();
        if counting.as_ref().is_some_and(|c| c.is_finished()) {
            apply_counts(run, counting.take()).await?;
        }
        let t = Instant::now();
        // Watchers in this instance see every page; the stored record (what other instances and a restart
        // see) is refreshed at most once a PROGRESS_EVERY, so that it does not queue behind the sync-state
        // writes on the metadata store at every page.
        let store = saved.elapsed() >= PROGRESS_EVERY;
        publish(ctx, run, store).await;
        if store {
            saved = Instant::now();
        }
        state.timings.publish += t.elapsed();
        waited = Instant::now();
    }
    state.settle(ctx).await?;
    match plan {
        Plan::Full => {
            apply_counts(run, counting.take()).await?;
            // Sync entries past the last profile belong to profiles that left the audience or were
            // deleted.
            loop {
                let entries = ctx
                    .meta
                    .sync_range(&pid, prev_last.as_deref(), None, batch)
                    .await
                    .map_err(sync_error)?;
                let Some(last) = entries.last().map(|e| e.profile_id.clone()) else {
                    break;
                };
                state
                    .process(ctx, &mut [], entries, &mut run.counts)
                    .await?;
                prev_last = Some(last);
            }
            state.settle(ctx).await?;
        }
        Plan::Changes { synced, .. } => {
            run.counts.unchanged += synced.saturating_sub(looked_at);
        }
    }
    state.timings.log(
        &run.id,
        match plan {
            Plan::Full => "full",
            Plan::Changes { .. } => "changes",
        },
    );
    drop(state);
    run.errors = log.groups;
    Ok(Finish::Done)
}

/// How often a run's stored record is refreshed with its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Shows the run to watchers in this instance and, with `store`, saves it for the others.
async fn publish(ctx: &RunContext, run: &RunRecord, store: bool) {
    let _ = ctx.updates.send(run.clone());
    if !store {
        return;
    }
    if let Err(e) = ctx.meta.update_run(run).await {
        tracing::warn!(run = %run.id, error = %e, "could not record the run's progress");
    }
}

type Counter = tokio::task::JoinHandle<Result<(u64, u64), StoreError>>;

/// Counts the profiles matching the filter, and all profiles.
fn spawn_counter(profiles: Arc<dyn ProfileStore>, filter: Option<Filter>) -> Counter {
    tokio::spawn(async move {
        let total = profiles.count(filter.as_ref()).await?;
        let all = match filter {
            Some(_) => profiles.count(None).await?,
            None => total,
        };
        Ok((total, all))
    })
}

async fn apply_counts(run: &mut RunRecord, counter: Option<Counter>) -> Result<(), String> {
    if let Some(c) = counter {
        let (total, all) = c
            .await
            .map_err(|e| format!("counting profiles failed: {e}"))?
            .map_err(|e| format!("counting profiles failed: {e}"))?;
        run.progress.total = Some(total);
        // Added to the profiles the transformation skipped, counted as they come.
        run.counts.filtered_out += all.saturating_sub(total);
    }
    Ok(())
}

/// Which profiles a run reads.
enum Source {
    /// Those matching the filter (pushed down to the store).
    Audience(Option<Filter>),
    /// Those changed at or after a change mark, whatever the filter.
    ChangedSince(i64),
}

/// Reads pages ahead of the processing, so that reading overlaps transforming and writing.
fn spawn_reader(
    profiles: Arc<dyn ProfileStore>,
    source: Source,
    batch: usize,
) -> mpsc::Receiver<Result<Vec<RawProfile>, StoreError>> {
    // One page waiting is enough to keep the stages overlapped; each more costs a page of memory.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            let page = match &source {
                Source::Audience(filter) => {
                    profiles
                        .page_raw(filter.as_ref(), after.as_deref(), batch)
                        .await
                }
                Source::ChangedSince(mark) => {
                    profiles
                        .changed_page_raw(*mark, after.as_deref(), batch)
                        .await
                }
            };
            match page {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    after = page.last().map(|p| p.id.clone());
                    if tx.send(Ok(page)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });
    rx
}

/// A computed row: the converted values, the key as text (`None` when null) and the hash.
type RowParts = (Vec<Value>, Option<String>, u128);

/// A profile turned into its row; `None` when the transformation skipped the profile.
struct Computed {
    id: String,
    outcome: Result<Option<RowParts>, RowError>,
}

/// Computes rows on blocking threads, so that mapping and hashing (CPU) overlap with the database round
/// trips of the batch before. A visual mapping is computed by two threads, pages taken in turn and
/// given back in order: transforming was the longest stage of a run, and one thread could not keep the
/// destination busy. Scripts keep one thread (their runtimes are heavy, Python's has its own workers).
/// With `filter`, profiles that do not match it come out skipped (as profiles that left the audience).
fn spawn_transformer(
    mut pages: mpsc::Receiver<Result<Vec<RawProfile>, StoreError>>,
    prepared: &Prepared,
    filter: Option<Filter>,
    now: DateTime<Utc>,
) -> mpsc::Receiver<Result<Vec<Computed>, String>> {
    if !matches!(prepared.transform, Transform::Mapping(_)) {
        return spawn_transform_worker(pages, prepared, filter, now);
    }
    const WORKERS: usize = 2;
    let mut inputs = Vec::with_capacity(WORKERS);
    let mut outputs = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let (tx, rx) = mpsc::channel(1);
        inputs.push(tx);
        outputs.push(spawn_transform_worker(rx, prepared, filter.clone(), now));
    }
    // Page k goes to worker k % WORKERS and is taken back from it in the same turn, so the order holds;
    // when page k does not exist, neither does any after it, and its worker's output ends.
    tokio::spawn(async move {
        let mut k = 0;
        while let Some(page) = pages.recv().await {
            if inputs[k % WORKERS].send(page).await.is_err() {
                break;
            }
            k += 1;
        }
    });
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut k = 0;
        while let Some(out) = outputs[k % WORKERS].recv().await {
            let failed = out.is_err();
            if tx.send(out).await.is_err() || failed {
                break;
            }
            k += 1;
        }
    });
    rx
}

/// Computes the rows of the pages it is given on one blocking thread, in order.
fn spawn_transform_worker(
    mut pages: mpsc::Receiver<Result<Vec<RawProfile>, StoreError>>,
    prepared: &Prepared,
    filter: Option<Filter>,
    now: DateTime<Utc>,
) -> mpsc::Receiver<Result<Vec<Computed>, String>> {
    // One page waiting is enough to keep the stages overlapped; each more costs a page of memory.
    let (tx, rx) = mpsc::channel(1);
    let transform = prepared.transform.clone();
    let seed = prepared.seed;
    let key_idx = prepared.target.key_index();
    tokio::task::spawn_blocking(move || {
        // A script runtime is not Send: it is made here, on the thread that uses it, for the whole run.
        let mut evaluator = match transform.evaluator() {
            Ok(e) => e,
            Err(message) => {
                let _ = tx.blocking_send(Err(message));
                return;
            }
        };
        while let Some(page) = pages.blocking_recv() {
            let out = match page {
                Err(e) => Err(format!("reading profiles failed: {e}")),
                Ok(profiles) => Ok(compute_page(
                    &mut evaluator,
                    profiles,
                    filter.as_ref(),
                    now,
                    seed,
                    key_idx,
                )),
            };
            let failed = out.is_err();
            if tx.blocking_send(out).is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// The rows of one page, in page order. Without a filter, the documents go to the evaluator as they are
/// stored (a mapping reads only what it uses). With one, they are parsed to be matched: those outside it
/// are not transformed, the others go to the evaluator as one batch (which is what lets Python send them
/// to its workers in one message).
fn compute_page(
    evaluator: &mut Evaluator,
    profiles: Vec<RawProfile>,
    filter: Option<&Filter>,
    now: DateTime<Utc>,
    seed: u64,
    key_idx: usize,
) -> Vec<Computed> {
    let row = |outcome: Result<Output, RowError>| {
        outcome.map(|out| match out {
            Output::Skip => None,
            Output::Row(values) => {
                let key = &values[key_idx];
                let key = match key {
                    Value::Null => None,
                    // Most keys are text: copied as they are, without going through the formatter.
                    Value::String(s) => Some(s.to_string()),
                    other => Some(other.to_string()),
                };
                let hash = hash_row(seed, &values);
                Some((values, key, hash))
            }
        })
    };
    let Some(filter) = filter else {
        let outcomes = evaluator.eval_raw_batch(&profiles, now);
        return profiles
            .into_iter()
            .zip(outcomes)
            .map(|(p, outcome)| Computed {
                id: p.id,
                outcome: row(outcome),
            })
            .collect();
    };
    // Per profile: `Ok(true)` selected, `Ok(false)` left out, `Err` unreadable.
    let mut selected = Vec::with_capacity(profiles.len());
    let verdicts: Vec<Result<bool, String>> = profiles
        .iter()
        .map(|raw| {
            let p = raw.parse()?;
            let keep = filter.matches(&p);
            if keep {
                selected.push(p);
            }
            Ok(keep)
        })
        .collect();
    let mut outcomes = evaluator.eval_batch(&selected, now).into_iter();
    profiles
        .into_iter()
        .zip(verdicts)
        .map(|(p, verdict)| Computed {
            id: p.id,
            outcome: match verdict {
                Ok(true) => row(outcomes.next().expect("one per selected profile")),
                Ok(false) => Ok(None),
                Err(message) => Err(RowError::new(message)),
            },
        })
        .collect()
}

async fn load_entries(
    meta: &dyn MetadataStore,
    pid: &str,
    after: Option<&str>,
    upto: Option<&str>,
) -> Result<Vec<SyncEntry>, String> {
    const CHUNK: usize = 50_000;
    let mut out: Vec<SyncEntry> = Vec::new();
    let mut cursor = after.map(str::to_string);
    loop {
        let chunk = meta
            .sync_range(pid, cursor.as_deref(), upto, CHUNK)
            .await
            .map_err(|e| e.to_string())?;
        let n = chunk.len();
        cursor = chunk.last().map(|e| e.profile_id.clone()).or(cursor);
        out.extend(chunk);
        if n < CHUNK {
            return Ok(out);
        }
    }
}

struct BatchState<'a> {
    prepared: &'a Prepared,
    dest: &'a Retrying<'a>,
    log: &'a mut ErrorLog,
    pid: &'a str,
    timings: Timings,
    /// The sync-state writes of the batches before, still going while this batch is written: a chain of
    /// tasks, each applying its batch after the one before it succeeded.
    pending: Option<tokio::task::JoinHandle<Result<(), String>>>,
    /// How many batches the chain holds.
    pending_batches: usize,
    /// The sync-state records of batches written but not confirmed yet, in order: recorded only once the
    /// destination confirms them.
    held: Vec<(Vec<SyncEntry>, Vec<String>)>,
    /// The confirmation under way, if any.
    confirming: Option<Confirming<'a>>,
}

/// How many rows the held sync records are of.
fn held_rows(held: &[(Vec<SyncEntry>, Vec<String>)]) -> usize {
    held.iter().map(|(upserts, _)| upserts.len()).sum()
}

/// A confirmation asked for and not yet answered, with the sync records it releases.
struct Confirming<'a> {
    done: futures::future::BoxFuture<'a, sluice_destinations::Result<()>>,
    held: Vec<(Vec<SyncEntry>, Vec<String>)>,
}

/// How many batches' sync-state writes may wait behind the destination writes. Recording a batch can take
/// longer than writing the next (both compete for the same cores), and waiting for it held the
/// destination idle; a short queue absorbs that while keeping the entries held in memory bounded.
const SYNC_QUEUE_BATCHES: usize = 3;

/// Where a run spent its time, for the log line that closes it (and for tuning).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Timings {
    /// Waiting for the next page of computed rows (reading and transforming overlap this).
    read_transform: Duration,
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

struct Candidate<'p> {
    id: &'p str,
    key: String,
    hash: u128,
    values: Vec<Value>,
    /// Whether the sync state already records this profile with this key (its row exists).
    known: bool,
    /// The key this profile's row had until now, when the key changed: that row belongs to nobody now.
    old_key: Option<String>,
}

impl<'a> BatchState<'a> {
    /// Has the destination confirm the rows written unconfirmed, then queues their sync-state records.
    async fn confirm(&mut self, ctx: &RunContext) -> Result<(), String> {
        self.start_confirm(ctx).await?;
        self.finish_confirm(ctx).await
    }

    /// Asks the destination to confirm the rows written unconfirmed, without waiting for the answer:
    /// the server stores them while the next batches are computed and sent (ClickHouse sends those on
    /// another connection meanwhile). One confirmation is under way at a time.
    async fn start_confirm(&mut self, ctx: &RunContext) -> Result<(), String> {
        self.finish_confirm(ctx).await?;
        if self.held.is_empty() {
            return Ok(());
        }
        let dest: &'a Retrying<'a> = self.dest;
        let mut done = dest.confirm();
        let held = std::mem::take(&mut self.held);
        // The first poll sends what ends the write; the answer is read later.
        match (&mut done).now_or_never() {
            Some(result) => self.confirmed(ctx, result, held).await,
            None => {
                self.confirming = Some(Confirming { done, held });
                Ok(())
            }
        }
    }

    /// Waits for the confirmation under way, if any, and queues the records it releases.
    async fn finish_confirm(&mut self, ctx: &RunContext) -> Result<(), String> {
        let Some(c) = self.confirming.take() else {
            return Ok(());
        };
        let t = Instant::now();
        let result = c.done.await;
        self.timings.confirm += t.elapsed();
        self.confirmed(ctx, result, c.held).await
    }

    async fn confirmed(
        &mut self,
        ctx: &RunContext,
        result: sluice_destinations::Result<()>,
        held: Vec<(Vec<SyncEntry>, Vec<String>)>,
    ) -> Result<(), String> {
        let table = &self.prepared.table.name;
        let rows = held_rows(&held);
        result.map_err(|e| {
            format!(
                "writing to `{table}` failed: {}; the last {rows} rows written are not recorded, and the \
                 next run writes them again",
                e.message
            )
        })?;
        self.queue(ctx, held).await
    }

    /// Records the sync state of a written batch: at once, or once the destination confirms it.
    async fn record(
        &mut self,
        ctx: &RunContext,
        upserts: Vec<SyncEntry>,
        deletes: Vec<String>,
    ) -> Result<(), String> {
        if !self.dest.defers_confirmation() {
            return self.queue(ctx, vec![(upserts, deletes)]).await;
        }
        self.held.push((upserts, deletes));
        // A destination deferring confirmation writes the held rows as one (ClickHouse: one insert, a few
        // parts instead of one per batch).
        if held_rows(&self.held) >= ctx.config.unconfirmed_rows {
            self.start_confirm(ctx).await?;
        }
        Ok(())
    }

    /// Queues sync-state records behind the earlier ones: applied in order, one at a time, but
    /// overlapping the next batches' destination writes.
    async fn queue(
        &mut self,
        ctx: &RunContext,
        batches: Vec<(Vec<SyncEntry>, Vec<String>)>,
    ) -> Result<(), String> {
        if self.pending_batches >= SYNC_QUEUE_BATCHES {
            self.wait_records().await?;
        }
        let meta = ctx.meta.clone();
        let pid = self.pid.to_string();
        let before = self.pending.take();
        self.pending = Some(tokio::spawn(async move {
            if let Some(before) = before {
                before
                    .await
                    .map_err(|e| format!("recording the written rows failed: {e}"))??;
            }
            for (upserts, deletes) in batches {
                meta.sync_apply(&pid, upserts, deletes)
                    .await
                    .map_err(|e| format!("the rows were written but recording them failed: {e}"))?;
            }
            Ok(())
        }));
        self.pending_batches += 1;
        Ok(())
    }

    /// Has every written row confirmed and waits until the sync state records them.
    async fn settle(&mut self, ctx: &RunContext) -> Result<(), String> {
        self.confirm(ctx).await?;
        self.wait_records().await
    }

    /// Waits for the sync-state records queued so far.
    async fn wait_records(&mut self) -> Result<(), String> {
        self.pending_batches = 0;
        if let Some(task) = self.pending.take() {
            let t = Instant::now();
            let outcome = task
                .await
                .map_err(|e| format!("recording the written rows failed: {e}"))?;
            self.timings.sync_write += t.elapsed();
            outcome?;
        }
        Ok(())
    }

    /// Transforms, diffs and writes one page, given the sync entries of the same id range.
    async fn process(
        &mut self,
        ctx: &RunContext,
        page: &mut [Computed],
        entries: Vec<SyncEntry>,
        counts: &mut sluice_store::Counts,
    ) -> Result<(), String> {
        let p = self.prepared;
        let key_col = &p.target.key;
        // Page and entries are both ordered by profile id: one merge walk pairs each profile with its
        // entry. Entries left without a profile, or whose profile was skipped, are stale: rows of profiles
        // that left the audience (or were deleted).
        let mut entries = entries;
        // This run never records left entries; one found is taken as absent.
        entries.retain(|e| !e.left);
        if !entries.is_sorted_by(|a, b| a.profile_id <= b.profile_id) {
            entries.sort_unstable_by(|a, b| a.profile_id.cmp(&b.profile_id));
        }
        if !page.is_sorted_by(|a, b| a.id < b.id) {
            return Err("internal error: profiles came out of order".into());
        }
        let mut pending_entries = entries.iter().peekable();
        let mut stale: Vec<&SyncEntry> = Vec::new();

        // Keys held in this batch, by the profile holding them (the first, i.e. lowest, _id wins). Keys
        // that are the profile ids themselves cannot repeat.
        let mut held: HashSet<String> = if p.key_is_profile_id {
            HashSet::new()
        } else {
            HashSet::with_capacity(page.len())
        };
        let mut candidates: Vec<Candidate> = Vec::new();
        let dup_message = format!(
            "duplicate key: a profile with a lower _id produces the same value of key column `{key_col}`"
        );
        for row in page.iter_mut() {
            let mut entry = None;
            while let Some(e) = pending_entries.peek() {
                match e.profile_id.as_str().cmp(row.id.as_str()) {
                    std::cmp::Ordering::Less => stale.push(pending_entries.next().expect("peeked")),
                    std::cmp::Ordering::Equal => {
                        entry = pending_entries.next();
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
            counts.read += 1;
            let placeholder = Ok(Some((Vec::new(), None, 0)));
            let (values, key, hash) = match std::mem::replace(&mut row.outcome, placeholder) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    // A skipped profile is treated as filtered out.
                    counts.filtered_out += 1;
                    stale.extend(entry);
                    continue;
                }
                Err(e) => {
                    counts.transform_failed += 1;
                    self.log.add("transform", e.to_string(), &row.id);
                    continue;
                }
            };
            let Some(key_text) = key else {
                counts.failed += 1;
                let message = format!("the key column `{key_col}` is null");
                self.log.add("write", message, &row.id);
                continue;
            };
            if !p.key_is_profile_id && !held.insert(key_text.clone()) {
                counts.failed += 1;
                self.log.add("write", dup_message.clone(), &row.id);
                continue;
            }
            match entry {
                Some(e) if e.hash == hash && e.key.as_str() == key_text => counts.unchanged += 1,
                _ => candidates.push(Candidate {
                    known: entry.is_some_and(|e| e.key.as_str() == key_text),
                    old_key: entry
                        .filter(|e| e.key.as_str() != key_text)
                        .map(|e| e.key.to_string()),
                    id: &row.id,
                    key: key_text,
                    hash,
                    values,
                }),
            }
        }
        stale.extend(pending_entries);

        // Keys held by other profiles in the sync state: a lower _id keeps its key; a higher one gives it up.
        // A key that is the profile id itself cannot be held by another profile: skip the lookup.
        // When the destination cannot tell inserts from updates, a key in the sync state counts as an update.
        let count_here = !p.destination.reports_upsert_counts();
        let mut recorded: HashSet<String> = HashSet::new();
        if !candidates.is_empty() && !p.key_is_profile_id {
            let t = Instant::now();
            let keys: Vec<SyncKey> = candidates
                .iter()
                .map(|c| SyncKey::from_stored(c.key.clone()))
                .collect();
            let mut owners = ctx
                .meta
                .sync_owners(self.pid, &keys)
                .await
                .map_err(|e| e.to_string())?;
            owners.retain(|e| !e.left);
            self.timings.owners += t.elapsed();
            if count_here {
                recorded.extend(owners.iter().map(|e| e.key.to_string()));
            }
            let stale_ids: HashSet<&str> = stale.iter().map(|e| e.profile_id.as_str()).collect();
            let blocked: HashMap<&str, &str> = owners
                .iter()
                .map(|e| (e.key.as_str(), e.profile_id.as_str()))
                .filter(|(_, owner)| !stale_ids.contains(owner))
                .collect();
            let mut kept = Vec::with_capacity(candidates.len());
            for c in candidates {
                match blocked.get(c.key.as_str()) {
                    Some(owner) if *owner != c.id && *owner < c.id => {
                        counts.failed += 1;
                        self.log.add("write", dup_message.clone(), c.id);
                    }
                    _ => kept.push(c),
                }
            }
            candidates = kept;
        }

        // Rows of profiles that left, and rows left under a key that a profile of this batch gave up:
        // deleted first, unless a profile of this batch takes their key over.
        let moved = candidates.iter().filter_map(|c| c.old_key.as_deref());
        if p.pipeline.spec.on_leave == OnLeave::Delete
            && (!stale.is_empty() || moved.clone().next().is_some())
        {
            // Deletions go after every row written before them, as they would without deferral.
            self.confirm(ctx).await?;
            let claimed: HashSet<&str> = candidates.iter().map(|c| c.key.as_str()).collect();
            let key_ty = p.table.column(key_col).and_then(|c| c.ty.clone());
            let keys: Vec<Value> = stale
                .iter()
                .map(|e| e.key.as_str())
                .chain(moved)
                .filter(|k| !claimed.contains(k))
                .map(|k| key_value(k, key_ty.as_ref()))
                .collect();
            if !keys.is_empty() {
                let t = Instant::now();
                let n = self
                    .dest
                    .delete(&p.target, &keys)
                    .await
                    .map_err(|e| write_failure(&p.table.name, e))?;
                counts.deleted += n;
                self.timings.delete += t.elapsed();
            }
        }

        let mut upserts = Vec::with_capacity(candidates.len());
        if !candidates.is_empty() {
            let rows: Vec<Row> = candidates
                .iter_mut()
                .map(|c| Row {
                    values: std::mem::take(&mut c.values),
                })
                .collect();
            let t = Instant::now();
            // A destination that does not defer confirmation stores the rows here, as `upsert` would.
            let (written, rejected) = upsert_isolating_unconfirmed(self.dest, &p.target, &rows)
                .await
                .map_err(|e| write_failure(&p.table.name, e))?;
            self.timings.write += t.elapsed();
            if !count_here {
                counts.inserted += written.inserted;
                counts.updated += written.updated;
            }
            let mut rejected_idx = HashSet::with_capacity(rejected.len());
            for r in rejected {
                counts.failed += 1;
                self.log.add("write", r.message, candidates[r.index].id);
                rejected_idx.insert(r.index);
            }
            for (i, c) in candidates.iter().enumerate() {
                if !rejected_idx.contains(&i) {
                    if count_here {
                        let known = c.known || recorded.contains(&c.key);
                        if known {
                            counts.updated += 1;
                        } else {
                            counts.inserted += 1;
                        }
                    }
                    upserts.push(SyncEntry::written(
                        c.id,
                        SyncKey::from_stored(c.key.clone()),
                        c.hash,
                    ));
                }
            }
        }
        let deletes: Vec<String> = stale.iter().map(|e| e.profile_id.clone()).collect();
        if !upserts.is_empty() || !deletes.is_empty() {
            self.record(ctx, upserts, deletes).await?;
        }
        Ok(())
    }
}

fn write_failure(table: &str, e: DestinationError) -> String {
    match e.kind {
        ErrorKind::NotFound | ErrorKind::SchemaMismatch => {
            format!("table `{table}` changed during the run: {}", e.message)
        }
        _ => format!("writing to `{table}` failed: {}", e.message),
    }
}

/// The typed key of a sync entry, for deleting its row.
fn key_value(text: &str, ty: Option<&ColumnType>) -> Value {
    match ty {
        Some(ColumnType::Int { .. }) => text
            .parse()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::String(text.into())),
        Some(ColumnType::Uuid) => uuid::Uuid::parse_str(text)
            .map(Value::Uuid)
            .unwrap_or_else(|_| Value::String(text.into())),
        _ => Value::String(text.into()),
    }
}

/// Failures grouped by step and message, with a few sample profile ids each.
#[derive(Default)]
pub(crate) struct ErrorLog {
    pub groups: Vec<RunErrorGroup>,
}

/// Distinct messages kept per run; past it, failures are counted under one catch-all group.
const MAX_GROUPS: usize = 100;

impl ErrorLog {
    pub fn add(&mut self, step: &str, message: String, profile_id: &str) {
        let now = Utc::now();
        let idx = match self
            .groups
            .iter()
            .position(|g| g.step == step && g.message == message)
        {
            Some(i) => i,
            None if self.groups.len() < MAX_GROUPS => {
                self.groups.push(RunErrorGroup {
                    step: step.into(),
                    message,
                    count: 0,
                    sample_profiles: Vec::new(),
                    last_seen: now,
                });
                self.groups.len() - 1
            }
            None => {
                let other = "other errors (too many distinct messages to list)";
                match self.groups.iter().position(|g| g.message == other) {
                    Some(i) => i,
                    None => {
                        self.groups.push(RunErrorGroup {
                            step: step.into(),
                            message: other.into(),
                            count: 0,
                            sample_profiles: Vec::new(),
                            last_seen: now,
                        });
                        self.groups.len() - 1
                    }
                }
            }
        };
        let g = &mut self.groups[idx];
        g.count += 1;
        g.last_seen = now;
        if g.sample_profiles.len() < MAX_SAMPLES {
            g.sample_profiles.push(profile_id.to_string());
        }
    }
}

/// Attempts at reading the table before a run, when the destination fails for a transient reason.
const DESCRIBE_ATTEMPTS: u32 = 4;

/// Describes the table, retrying transient failures (the database restarting, refusing or dropping
/// connections) with backoff; permanent ones (auth, permissions) fail at once.
async fn describe_retrying(
    destination: &dyn Destination,
    table: &str,
) -> sluice_destinations::Result<Option<TableDescription>> {
    let mut attempt = 0;
    loop {
        match destination.describe_table(table).await {
            Err(e) if e.kind.is_transient() && attempt + 1 < DESCRIBE_ATTEMPTS => {
                tracing::warn!(kind = ?e.kind, attempt, "transient failure reading the table; retrying");
                Retrying::backoff(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Retries operations that failed for a transient reason, with exponential backoff and jitter.
struct Retrying<'a> {
    inner: &'a dyn Destination,
    attempts: u32,
}

impl Retrying<'_> {
    /// Runs `op` until it succeeds, fails for a lasting reason, or has been tried `attempts` times.
    async fn retried<T, F, Fut>(&self, mut op: F) -> sluice_destinations::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = sluice_destinations::Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.kind.is_transient() && attempt + 1 < self.attempts => {
                    tracing::warn!(kind = ?e.kind, attempt, "transient write failure; retrying");
                    Self::backoff(attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn backoff(attempt: u32) {
        let base = 100u64 << attempt.min(6);
        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % (base / 2 + 1);
        tokio::time::sleep(Duration::from_millis(base + jitter)).await;
    }
}

#[async_trait]
impl Destination for Retrying<'_> {
    async fn test(&self) -> sluice_destinations::Result<TestReport> {
        self.inner.test().await
    }

    async fn describe_table(
        &self,
        name: &str,
    ) -> sluice_destinations::Result<Option<TableDescription>> {
        self.inner.describe_table(name).await
    }

    async fn upsert(
        &self,
        target: &WriteTarget,
        rows: &[Row],
    ) -> sluice_destinations::Result<UpsertCounts> {
        self.retried(|| self.inner.upsert(target, rows)).await
    }

    async fn upsert_unconfirmed(
        &self,
        target: &WriteTarget,
        rows: &[Row],
    ) -> sluice_destinations::Result<UpsertCounts> {
        self.retried(|| self.inner.upsert_unconfirmed(target, rows))
            .await
    }

    /// Not retried: a failure means rows are lost, which trying again would not bring back.
    async fn confirm(&self) -> sluice_destinations::Result<()> {
        self.inner.confirm().await
    }

    fn defers_confirmation(&self) -> bool {
        self.inner.defers_confirmation()
    }

    fn reports_upsert_counts(&self) -> bool {
        self.inner.reports_upsert_counts()
    }

    fn batch_rows(&self) -> usize {
        self.inner.batch_rows()
    }

    async fn delete(
        &self,
        target: &WriteTarget,
        keys: &[Value],
    ) -> sluice_destinations::Result<u64> {
        self.retried(|| self.inner.delete(target, keys)).await
    }
}
