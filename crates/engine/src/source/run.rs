//! One run of a source pipeline: read a page, transform, validate, compare, merge into the profile
//! store, record; then, in `full` mode, deal with the rows that disappeared; then advance the mark.
//!
//! The steps overlap, each on its own page: while one page is read, the page before it is transformed,
//! the one before that written and the one before that recorded. Memory holds those few pages,
//! whatever the size of the source. What is written is recorded page by page after the profile store
//! confirmed it, so a run that fails half-way leaves the pages it wrote recorded (their rows are
//! unchanged next time) and the mark where it was: the next run reads the same rows again and
//! converges. The mark moves only when the whole read succeeded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sluice_core::mapping::RowPlan;
use sluice_core::source::{next_mark, Changes, CursorValue, FirstSeen, Lookback, OnMissing};
use sluice_core::Profile;
use sluice_core::Schema;
use sluice_destinations::source::{Pages, ReadPlan, Source, SourcePage, SourceSchema};
use sluice_store::{
    MetadataStore, ProfileStore, Properties, RunRecord, RunStatus, SourceRecord, SourceRow,
    UpsertOutcome,
};
use sluice_transform::{Output, RowError, Transform};
use tokio::sync::{mpsc, watch};

use super::check::{check_source, CheckedSource};
use super::rows;
use crate::error::{EngineError, ErrorKind, Result};
use crate::run::failures::ErrorLog;
use crate::EngineConfig;

/// Source rows read per page when the engine's batch size is not set.
pub const DEFAULT_PAGE_ROWS: usize = 10_000;

/// Ids per page of the rows a `full` read did not see.
const MISSING_PAGE: usize = 1_000;

/// What a source run needs from around it.
pub(crate) struct SourceRunContext {
    pub meta: Arc<dyn MetadataStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub config: EngineConfig,
    pub cancel: Arc<AtomicBool>,
    pub updates: watch::Sender<RunRecord>,
}

/// Runs the source and returns the run's final record (also stored).
pub(crate) async fn execute(
    ctx: &SourceRunContext,
    source: &SourceRecord,
    mut run: RunRecord,
) -> RunRecord {
    let mut log = ErrorLog::default();
    let outcome = read_all(ctx, source, &mut run, &mut log).await;
    run.errors = std::mem::take(&mut log.groups);
    run.finished_at = Some(Utc::now().trunc_subsecs(6));
    match outcome {
        Ok(true) => run.status = RunStatus::Succeeded,
        Ok(false) => {
            run.status = RunStatus::Cancelled;
            run.message = Some("cancelled; the rows written so far stay".into());
        }
        Err(e) => {
            tracing::warn!(run = %run.id, source = %source.id, kind = ?e.kind, "source run failed");
            run.status = RunStatus::Failed;
            run.message = Some(e.message);
        }
    }
    if let Err(e) = ctx.meta.update_run(&run).await {
        tracing::warn!(run = %run.id, error = %e, "could not record the source run's outcome");
    }
    run
}

/// `Ok(false)` when cancelled.
async fn read_all(
    ctx: &SourceRunContext,
    source: &SourceRecord,
    run: &mut RunRecord,
    log: &mut ErrorLog,
) -> Result<bool> {
    let checked = check_source(ctx.meta.as_ref(), &source.spec, ctx.config.script_limits)
        .await
        .map_err(|e| match e.kind {
            // What the check calls invalid was valid when the source was saved: the source changed.
            ErrorKind::Invalid => EngineError::new(
                ErrorKind::TableChanged,
                format!("the source no longer fits this pipeline: {}", e.message),
            ),
            _ => e,
        })?;
    let mark = match &source.spec.changes {
        Changes::Cursor { .. } => ctx
            .meta
            .source_mark(&source.id)
            .await
            .map_err(|e| EngineError::store("reading the source's mark failed", e))?,
        Changes::Full { .. } => None,
    };
    let page_rows = ctx.config.batch_size.unwrap_or(DEFAULT_PAGE_ROWS).max(1);
    let plan = checked.plan(mark.clone(), page_rows)?;
    let unread = retried(ctx, || checked.reader.count_unread(&plan))
        .await
        .map_err(|e| EngineError::destination("reading the source failed", e))?;
    if unread > 0 {
        let what = match plan.mode {
            sluice_destinations::source::ReadMode::Cursor { .. } => "id or cursor",
            sluice_destinations::source::ReadMode::Full => "id",
        };
        log.add(
            "read",
            format!("{unread} source rows have a NULL {what} and were not read"),
            "",
        );
        if let Some(g) = log.groups.last_mut() {
            g.count = unread;
            g.sample_profiles.clear();
        }
    }
    // Runs of one source never overlap and start later and later: the start time, in microseconds,
    // numbers the run for the rows it sees.
    let seen = run.started_at.unwrap_or(run.queued_at).timestamp_micros();
    let now = run.started_at.unwrap_or(run.queued_at);
    let mut first = FirstSeen::default();
    let mut greatest: Option<CursorValue> = None;
    let shape = Arc::new(Shape {
        row_plan: match &checked.transform {
            Transform::Mapping(m) => {
                let visible: Vec<Option<String>> = checked
                    .columns
                    .columns
                    .iter()
                    .map(|c| c.property.as_ref().map(|_| c.name.clone()))
                    .collect();
                Some(m.row_plan(&visible))
            }
            _ => None,
        },
        wanted: checked
            .columns
            .columns
            .iter()
            .map(|c| c.property.is_some())
            .collect(),
        columns: checked.columns.clone(),
        model: checked.model.clone(),
        transform: checked.transform.clone(),
        paths: rows::PropertyPaths::new(checked.transform.columns()),
        seed: checked.seed,
    });
    let mut pages = read_ahead(ctx, checked.reader.clone(), plan);
    // The steps of a page run one after another, and each step on the next page as soon as it is done
    // with this one: while one page is read, the page before it is transformed (on a thread of its
    // own), the one before that written to the profile store and the one before that recorded in the
    // source's state (another database, another writer). A page is recorded only once its profiles
    // are stored, so a run that stops in between writes it again.
    let (to_write, ready) = mpsc::channel::<ReadyPage>(1);
    let (to_record, stored) = mpsc::channel::<Vec<(String, u128)>>(1);
    let writes = Mutex::new(UpsertOutcome::default());
    let mut own_unchanged = 0;
    let (prepared, wrote, recorded) = tokio::join!(
        async {
            let result: Result<()> = async {
                while let Some(page) = pages.next().await? {
                    if ctx.cancel.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    if let Some(c) = page.end.as_ref().and_then(|e| e.cursor.clone()) {
                        greatest = Some(c);
                    }
                    run.counts.read += page.rows.len() as u64;
                    let mut r =
                        prepare_page(ctx, &checked, &shape, source, &mut first, page, now).await?;
                    own_unchanged += r.unchanged;
                    r.count(run, log);
                    if to_write.send(r).await.is_err() {
                        // The write or the record failed: its error ends the run.
                        return Ok(());
                    }
                    let done = writes
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone();
                    report(ctx, run, own_unchanged, &done).await;
                }
                Ok(())
            }
            .await;
            drop(to_write);
            result
        },
        async {
            let mut ready = ready;
            while let Some(page) = ready.recv().await {
                if ctx.cancel.load(Ordering::SeqCst) {
                    break;
                }
                let outcome = write_profiles(ctx, page.write).await?;
                {
                    let mut w = writes.lock().unwrap_or_else(PoisonError::into_inner);
                    w.inserted += outcome.inserted;
                    w.updated += outcome.updated;
                    w.unchanged += outcome.unchanged;
                }
                if to_record.send(page.record).await.is_err() {
                    break;
                }
            }
            drop(to_record);
            Ok::<(), EngineError>(())
        },
        async {
            let mut stored = stored;
            while let Some(rows) = stored.recv().await {
                record_page(ctx, source, rows, seen).await?;
            }
            Ok::<(), EngineError>(())
        },
    );
    let done = writes.into_inner().unwrap_or_else(PoisonError::into_inner);
    report(ctx, run, own_unchanged, &done).await;
    // The record's failure first, then the write's: each ends the run whatever the steps before gave.
    recorded?;
    wrote?;
    prepared?;
    if ctx.cancel.load(Ordering::SeqCst) {
        return Ok(false);
    }
    match &source.spec.changes {
        Changes::Full {
            on_missing: OnMissing::Delete,
        } => delete_missing(ctx, source, run, seen).await?,
        Changes::Full {
            on_missing: OnMissing::Keep,
        } => {}
        Changes::Cursor { lookback, .. } => {
            let lookback = lookback.as_ref().and_then(|l| Lookback::parse(l).ok());
            let next = next_mark(mark.as_ref(), greatest.as_ref(), lookback);
            ctx.meta
                .set_source_mark(&source.id, next.as_ref())
                .await
                .map_err(|e| EngineError::store("recording the source's mark failed", e))?;
        }
    }
    Ok(true)
}

/// A source that cannot be reached for a moment is tried again with backoff.
async fn retried<T, F, Fut>(ctx: &SourceRunContext, mut op: F) -> sluice_destinations::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sluice_destinations::Result<T>>,
{
    let attempts = ctx.config.write_attempts.max(1);
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.kind.is_transient() && attempt + 1 < attempts => {
                tracing::warn!(kind = ?e.kind, attempt, "transient source failure; retrying");
                let base = 100u64 << attempt.min(6);
                tokio::time::sleep(Duration::from_millis(base)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Shows the run's progress: the counts of the pages read so far, and of the writes done.
async fn report(
    ctx: &SourceRunContext,
    run: &mut RunRecord,
    own_unchanged: u64,
    writes: &UpsertOutcome,
) {
    run.counts.inserted = writes.inserted;
    // A changed row can leave its profile as it was (a column no property reads changed, or the
    // Customer Model did and the row's properties did not): the profile is unchanged.
    run.counts.updated = writes.updated - writes.unchanged;
    run.counts.unchanged = own_unchanged + writes.unchanged;
    run.progress.processed = run.counts.read;
    let _ = ctx.updates.send(run.clone());
    let _ = ctx.meta.update_run_progress(run).await;
}

/// Pages read by a task of their own, a page ahead of the run: the source works on the next page
/// while the run deals with the last, and its rows are received on another core.
struct ReadAhead {
    pages: mpsc::Receiver<Result<Option<SourcePage>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReadAhead {
    /// The next page; `None` once the read is over.
    async fn next(&mut self) -> Result<Option<SourcePage>> {
        match self.pages.recv().await {
            Some(page) => page,
            None => Ok(None),
        }
    }
}

impl Drop for ReadAhead {
    /// A run that ends early (an error, a cancel) stops its read.
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn read_ahead(ctx: &SourceRunContext, source: Arc<dyn Source>, plan: ReadPlan) -> ReadAhead {
    let (tx, rx) = mpsc::channel(1);
    let attempts = ctx.config.write_attempts.max(1);
    let task = tokio::spawn(async move {
        let mut pages = Pages::new(source.as_ref(), &plan);
        loop {
            let page = next_page(attempts, &mut pages).await;
            let last = !matches!(page, Ok(Some(_)));
            if tx.send(page).await.is_err() || last {
                return;
            }
        }
    });
    ReadAhead { pages: rx, task }
}

async fn next_page(attempts: u32, pages: &mut Pages<'_>) -> Result<Option<SourcePage>> {
    let mut attempt = 0;
    loop {
        match pages.next().await {
            Err(e) if e.kind.is_transient() && attempt + 1 < attempts => {
                tracing::warn!(kind = ?e.kind, attempt, "transient source failure; retrying the page");
                tokio::time::sleep(Duration::from_millis(100u64 << attempt.min(6))).await;
                attempt += 1;
            }
            Err(e) => return Err(EngineError::destination("reading the source failed", e)),
            Ok(p) => return Ok(p),
        }
    }
}

/// What the transformation's thread needs of a checked source, shared by the run's pages.
struct Shape {
    columns: SourceSchema,
    /// The columns a transformation may read (those with a property): the rest are neither decoded
    /// nor hashed.
    wanted: Vec<bool>,
    /// Where a mapping finds what it reads in a source row (`None` for a script).
    row_plan: Option<RowPlan>,
    model: Schema,
    transform: Transform,
    /// The output columns of the transformation: the property paths it writes.
    paths: rows::PropertyPaths,
    seed: u64,
}

/// A page made ready to write: the changed profiles (new ones as JSON text), what to record once they are
/// stored, and what became of the other rows.
#[derive(Default)]
struct ReadyPage {
    write: Vec<(String, Properties)>,
    record: Vec<(String, u128)>,
    unchanged: u64,
    failed: u64,
    transform_failed: u64,
    filtered_out: u64,
    /// `(step, message, id)` of each row that failed.
    failures: Vec<(&'static str, String, String)>,
}

impl ReadyPage {
    /// Adds what the page's rows came to, but the unchanged ones and the write's own counts (see
    /// [`report`]), to the run.
    fn count(&mut self, run: &mut RunRecord, log: &mut ErrorLog) {
        run.counts.failed += self.failed;
        run.counts.transform_failed += self.transform_failed;
        run.counts.filtered_out += self.filtered_out;
        for (step, message, id) in self.failures.drain(..) {
            log.add(step, message, &id);
        }
    }
}

/// The rows of a page that go on to the transformation, found on the run's task: duplicates settled
/// (the first row of an id is kept), rows compared by their source hash when the mapping allows it,
/// and what this source last recorded for each id looked up.
#[allow(clippy::too_many_arguments)]
async fn prepare_page(
    ctx: &SourceRunContext,
    checked: &CheckedSource,
    shape: &Arc<Shape>,
    source: &SourceRecord,
    first: &mut FirstSeen,
    page: SourcePage,
    now: DateTime<Utc>,
) -> Result<ReadyPage> {
    let id_index = checked
        .columns
        .resolve(&source.spec.id_column)
        .map_err(|e| EngineError::new(ErrorKind::TableChanged, e.message))?;
    let mut ready = ReadyPage::default();
    // The rows kept (by their place in the page), their ids and, when rows are compared before the
    // transformation, their hashes.
    let mut kept: Vec<(usize, String)> = Vec::with_capacity(page.rows.len());
    let mut row_hashes: Vec<u128> = Vec::new();
    for at in 0..page.rows.len() {
        let Some(id) = rows::id_text(&page.rows.value(at, id_index)) else {
            continue;
        };
        if !first.first(&id) {
            ready.failed += 1;
            let message = format!(
                "the id `{id}` appears more than once in the source; the first row was kept"
            );
            ready.failures.push(("read", message, id));
            continue;
        }
        if let Some(seed) = checked.row_seed {
            row_hashes.push(page.rows.hash(at, seed, &shape.wanted));
        }
        kept.push((at, id));
    }
    // Compare with what this source last wrote for the same ids.
    let stored: HashMap<String, u128> = {
        let ids: Vec<&str> = kept.iter().map(|(_, id)| id.as_str()).collect();
        ctx.meta
            .source_hashes(&source.id, &ids)
            .await
            .map_err(|e| EngineError::store("reading the source's rows failed", e))?
            .into_iter()
            .collect()
    };
    let stamp_seen = matches!(
        source.spec.changes,
        Changes::Full {
            on_missing: OnMissing::Delete
        }
    );
    // Rows compared by their source row: the unchanged ones go no further, not even into an input.
    if checked.row_seed.is_some() {
        let mut changed_rows = Vec::with_capacity(kept.len());
        let mut changed_hashes = Vec::with_capacity(kept.len());
        for ((at, id), h) in kept.into_iter().zip(row_hashes) {
            if stored.get(&id) == Some(&h) {
                ready.unchanged += 1;
                // An unchanged row needs recording only to stamp it as seen, which only
                // `on_missing: delete` reads.
                if stamp_seen {
                    ready.record.push((id, h));
                }
            } else {
                changed_rows.push((at, id));
                changed_hashes.push(h);
            }
        }
        kept = changed_rows;
        row_hashes = changed_hashes;
    }
    if kept.is_empty() {
        return Ok(ready);
    }
    // The rest is work for a core, not for the run's task: it goes to a thread of its own, so that
    // it overlaps the previous page's write and the next page's read.
    let shape = shape.clone();
    let cancel = ctx.cancel.clone();
    tokio::task::spawn_blocking(move || {
        transform_page(
            &shape, cancel, page, kept, row_hashes, &stored, stamp_seen, now, ready,
        )
    })
    .await
    .map_err(|e| EngineError::internal(format!("the transformation stopped: {e}")))?
}

/// Transforms, validates, compares and writes out the rows kept of a page.
#[allow(clippy::too_many_arguments)]
fn transform_page(
    shape: &Shape,
    cancel: Arc<AtomicBool>,
    page: SourcePage,
    kept: Vec<(usize, String)>,
    row_hashes: Vec<u128>,
    stored: &HashMap<String, u128>,
    stamp_seen: bool,
    now: DateTime<Utc>,
    mut ready: ReadyPage,
) -> Result<ReadyPage> {
    let (ids, outputs): (Vec<String>, Evaluated) = match (&shape.transform, &shape.row_plan) {
        // A mapping reads the row's values where they are; a script is given the row as a profile.
        (Transform::Mapping(mapping), Some(plan)) => {
            let outputs = kept
                .iter()
                .map(|(at, id)| {
                    mapping
                        .eval_row(plan, id, now, &page.rows.row(*at, &shape.wanted), now)
                        .map(Output::Row)
                        .map_err(Into::into)
                })
                .collect();
            (kept.into_iter().map(|(_, id)| id).collect(), outputs)
        }
        _ => {
            // A script's runtime is not `Send`: it is made for the page and dropped with it.
            let mut evaluator = shape
                .transform
                .evaluator_with_stop(cancel)
                .map_err(|e| EngineError::new(ErrorKind::Internal, e))?;
            let inputs: Vec<Profile> = kept
                .into_iter()
                .map(|(at, id)| {
                    rows::input_profile(&shape.columns, &page.rows.row(at, &shape.wanted), id, now)
                })
                .collect();
            let outputs = evaluator.eval_batch(&inputs, now);
            if let Some(why) = evaluator.gave_up() {
                return Err(EngineError::new(ErrorKind::Internal, why));
            }
            (inputs.into_iter().map(|p| p.id).collect(), outputs)
        }
    };
    drop(page);
    ready.write.reserve(ids.len());
    for (i, (id, out)) in ids.into_iter().zip(outputs).enumerate() {
        let doc = match out {
            Ok(Output::Skip) => {
                ready.filtered_out += 1;
                continue;
            }
            // Top-level entries: no map is built for a profile that is written out as text anyway.
            Ok(Output::Row(values)) => {
                match rows::validated(&shape.paths, &shape.model, &id, values) {
                    Ok(doc) => doc,
                    Err(message) => {
                        ready.failed += 1;
                        ready.failures.push(("validate", message, id.clone()));
                        failed_row(&mut ready, stored, id);
                        continue;
                    }
                }
            }
            // A value that does not convert to its property's type fails the Customer Model; anything
            // else (a script that threw, a time limit) is the transformation's.
            Err(e) => {
                match &e.column {
                    Some(path) => {
                        ready.failed += 1;
                        let message = format!("property `{path}`: {}", e.message);
                        ready.failures.push(("validate", message, id.clone()));
                    }
                    None => {
                        ready.transform_failed += 1;
                        ready
                            .failures
                            .push(("transform", e.to_string(), id.clone()));
                    }
                }
                failed_row(&mut ready, stored, id);
                continue;
            }
        };
        // Written out at most once, for the hash and for the store alike.
        let mut text = None;
        let h = match row_hashes.get(i) {
            Some(h) => *h,
            None => {
                let t = rows::entries_text(&doc);
                let h = sluice_core::hash::hash_json_text(shape.seed, &t);
                text = Some(t);
                h
            }
        };
        if stored.get(&id) == Some(&h) {
            ready.unchanged += 1;
            // An unchanged row needs recording only to stamp it as seen, which only
            // `on_missing: delete` reads.
            if stamp_seen {
                ready.record.push((id, h));
            }
        } else {
            // A row this source wrote before most likely merges into its profile: it goes as the map,
            // which the PostgreSQL store merges as it is (the SQLite store writes it out on a reader
            // and merges text there). A new one goes as the text, written out here rather than in the
            // store's writer.
            let properties = if stored.contains_key(&id) {
                Properties::Map(doc.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            } else {
                Properties::Text(text.unwrap_or_else(|| rows::entries_text(&doc)))
            };
            ready.record.push((id.clone(), h));
            ready.write.push((id, properties));
        }
    }
    // In key order, a page's writes land next to each other in the stores' indexes: a cursor
    // read's rows come in cursor order, whose ids are scattered over the whole key range.
    ready.write.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    ready.record.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(ready)
}

/// The outcome of transforming each input row, in order.
type Evaluated = Vec<std::result::Result<Output, RowError>>;

/// A row still in the source that failed keeps its profile from counting as missing, and is written
/// again next time (no hash matches 0 but by chance).
fn failed_row(ready: &mut ReadyPage, stored: &HashMap<String, u128>, id: String) {
    if stored.contains_key(&id) {
        ready.record.push((id, 0));
    }
}

/// Writes a page's changed profiles to the profile store.
async fn write_profiles(
    ctx: &SourceRunContext,
    profiles: Vec<(String, Properties)>,
) -> Result<UpsertOutcome> {
    if profiles.is_empty() {
        return Ok(UpsertOutcome::default());
    }
    ctx.profiles
        .upsert_properties(profiles)
        .await
        .map_err(|e| EngineError::store("writing profiles failed", e))
}

/// Records what a page's rows hash to, once their profiles are stored.
async fn record_page(
    ctx: &SourceRunContext,
    source: &SourceRecord,
    rows: Vec<(String, u128)>,
    seen: i64,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<SourceRow> = rows
        .iter()
        .map(|(id, hash)| SourceRow {
            profile_id: id,
            hash: *hash,
        })
        .collect();
    ctx.meta
        .record_source_rows(&source.id, &rows, seen)
        .await
        .map_err(|e| EngineError::store("recording the source's rows failed", e))
}

/// `full` mode, `on_missing: delete`: the profiles whose source row is gone are deleted, unless another
/// source also feeds them (then only this source forgets them).
async fn delete_missing(
    ctx: &SourceRunContext,
    source: &SourceRecord,
    run: &mut RunRecord,
    seen: i64,
) -> Result<()> {
    let store = |e| EngineError::store("removing the profiles of missing rows failed", e);
    loop {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Each batch is forgotten once handled, so the next batch starts from the beginning again.
        let ids = ctx
            .meta
            .unseen_source_rows(&source.id, seen, None, MISSING_PAGE)
            .await
            .map_err(store)?;
        if ids.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let shared = ctx
            .meta
            .fed_by_other_sources(&source.id, &refs)
            .await
            .map_err(store)?;
        for id in &ids {
            if shared.contains(id) {
                continue;
            }
            if ctx.profiles.delete(id).await.map_err(store)? {
                run.counts.deleted += 1;
            }
        }
        ctx.meta
            .forget_source_rows(&source.id, &refs)
            .await
            .map_err(store)?;
    }
}
