//! One run of a source pipeline: read a page, transform, validate, compare, merge into the profile
//! store, record; then, in `full` mode, deal with the rows that disappeared; then advance the mark.
//!
//! Memory holds one page of source rows at a time, whatever the size of the source. What is written is
//! recorded page by page after the profile store confirmed it, so a run that fails half-way leaves the
//! pages it wrote recorded (their rows are unchanged next time) and the mark where it was: the next run
//! reads the same rows again and converges. The mark moves only when the whole read succeeded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value as Json};
use sluice_core::source::{next_mark, Changes, CursorValue, FirstSeen, Lookback, OnMissing};
use sluice_core::Profile;
use sluice_destinations::source::{Pages, SourcePage};
use sluice_store::{MetadataStore, ProfileStore, RunRecord, RunStatus, SourceRecord, SourceRow};
use sluice_transform::{Output, RowError};
use tokio::sync::watch;

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
    let mut pages = Pages::new(checked.reader.as_ref(), &plan);
    let mut next = next_page(ctx, &mut pages).await?;
    loop {
        if ctx.cancel.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(page) = next.take() else { break };
        if let Some(c) = page.end.as_ref().and_then(|e| e.cursor.clone()) {
            greatest = Some(c);
        }
        // The next page is read while this one is transformed and written, so reading the source
        // and writing the profile store overlap; one page is read ahead, no more. A write that
        // fails ends the run whatever the read gave.
        let (written, read) = tokio::join!(
            write_page(ctx, &checked, source, run, log, &mut first, page, seen, now),
            next_page(ctx, &mut pages),
        );
        written?;
        next = read?;
        run.progress.processed = run.counts.read;
        let _ = ctx.updates.send(run.clone());
        let _ = ctx.meta.update_run_progress(run).await;
    }
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

async fn next_page(ctx: &SourceRunContext, pages: &mut Pages<'_>) -> Result<Option<SourcePage>> {
    let attempts = ctx.config.write_attempts.max(1);
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

/// What became of one source row before the write.
enum Prepared {
    Write { id: String, doc: Map<String, Json> },
    Skip,
    Failed,
}

#[allow(clippy::too_many_arguments)]
async fn write_page(
    ctx: &SourceRunContext,
    checked: &CheckedSource,
    source: &SourceRecord,
    run: &mut RunRecord,
    log: &mut ErrorLog,
    first: &mut FirstSeen,
    page: SourcePage,
    seen: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let id_index = checked
        .columns
        .resolve(&source.spec.id_column)
        .map_err(|e| EngineError::new(ErrorKind::TableChanged, e.message))?;
    run.counts.read += page.rows.len() as u64;
    // Duplicates are settled before the transformation, so the first row of an id is the one kept.
    // The rows kept (by their place in the page), their ids and, when rows are compared before the
    // transformation, their hashes.
    let mut kept: Vec<(usize, String)> = Vec::with_capacity(page.rows.len());
    let mut row_hashes: Vec<u128> = Vec::new();
    for (at, row) in page.rows.iter().enumerate() {
        let Some(id) = rows::id_text(&row[id_index]) else {
            continue;
        };
        if !first.first(&id) {
            run.counts.failed += 1;
            log.add(
                "read",
                format!(
                    "the id `{id}` appears more than once in the source; the first row was kept"
                ),
                &id,
            );
            continue;
        }
        if let Some(seed) = checked.row_seed {
            row_hashes.push(rows::row_hash(seed, &checked.columns, row));
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
    let mut record: Vec<(String, u128)> = Vec::with_capacity(kept.len());
    // Rows compared by their source row: the unchanged ones go no further, not even into an input.
    if checked.row_seed.is_some() {
        let mut changed_rows = Vec::with_capacity(kept.len());
        let mut changed_hashes = Vec::with_capacity(kept.len());
        for ((at, id), h) in kept.into_iter().zip(row_hashes) {
            if stored.get(&id) == Some(&h) {
                run.counts.unchanged += 1;
                // An unchanged row needs recording only to stamp it as seen, which only
                // `on_missing: delete` reads.
                if stamp_seen {
                    record.push((id, h));
                }
            } else {
                changed_rows.push((at, id));
                changed_hashes.push(h);
            }
        }
        kept = changed_rows;
        row_hashes = changed_hashes;
    }
    let inputs: Vec<Profile> = kept
        .into_iter()
        .map(|(at, id)| rows::input_profile(&checked.columns, &page.rows[at], id, now))
        .collect();
    drop(page);
    let (inputs, outputs) = evaluate(ctx, checked, inputs, now).await?;
    let paths = checked.transform.columns().to_vec();
    let mut prepared = Vec::with_capacity(inputs.len());
    for (input, out) in inputs.iter().zip(outputs) {
        prepared.push(match out {
            Ok(Output::Skip) => Prepared::Skip,
            Ok(Output::Row(values)) => {
                match rows::validate(&checked.model, &input.id, rows::properties(&paths, values)) {
                    Ok(doc) => Prepared::Write {
                        id: input.id.clone(),
                        doc,
                    },
                    Err(message) => {
                        run.counts.failed += 1;
                        log.add("validate", message, &input.id);
                        Prepared::Failed
                    }
                }
            }
            // A value that does not convert to its property's type fails the Customer Model; anything
            // else (a script that threw, a time limit) is the transformation's.
            Err(e) => {
                match &e.column {
                    Some(path) => {
                        run.counts.failed += 1;
                        log.add(
                            "validate",
                            format!("property `{path}`: {}", e.message),
                            &input.id,
                        );
                    }
                    None => {
                        run.counts.transform_failed += 1;
                        log.add("transform", e.to_string(), &input.id);
                    }
                }
                Prepared::Failed
            }
        });
    }
    run.counts.filtered_out += prepared
        .iter()
        .filter(|p| matches!(p, Prepared::Skip))
        .count() as u64;
    let mut changed: Vec<(String, Map<String, Json>)> = Vec::new();
    for (i, (input, p)) in inputs.iter().zip(prepared).enumerate() {
        match p {
            Prepared::Write { id, doc } => {
                let h = match row_hashes.get(i) {
                    Some(h) => *h,
                    None => rows::hash(checked.seed, &doc),
                };
                if stored.get(&id) == Some(&h) {
                    run.counts.unchanged += 1;
                    // An unchanged row needs recording only to stamp it as seen, which only
                    // `on_missing: delete` reads.
                    if stamp_seen {
                        record.push((id, h));
                    }
                } else {
                    changed.push((id.clone(), doc));
                    record.push((id, h));
                }
            }
            // A row still in the source that failed keeps its profile from counting as missing, and
            // is written again next time (no hash matches 0 but by chance).
            Prepared::Failed if stored.contains_key(&input.id) => {
                record.push((input.id.clone(), 0))
            }
            Prepared::Failed | Prepared::Skip => {}
        }
    }
    if !changed.is_empty() {
        let outcome = ctx
            .profiles
            .upsert(changed)
            .await
            .map_err(|e| EngineError::store("writing profiles failed", e))?;
        run.counts.inserted += outcome.inserted;
        // A changed row can leave its profile as it was (a column no property reads changed, or the
        // Customer Model did and the row's properties did not): the profile is unchanged.
        run.counts.updated += outcome.updated - outcome.unchanged;
        run.counts.unchanged += outcome.unchanged;
    }
    let rows: Vec<SourceRow> = record
        .iter()
        .map(|(id, hash)| SourceRow {
            profile_id: id,
            hash: *hash,
        })
        .collect();
    ctx.meta
        .record_source_rows(&source.id, &rows, seen)
        .await
        .map_err(|e| EngineError::store("recording the source's rows failed", e))?;
    Ok(())
}

/// The outcome of transforming each input row, in order.
type Evaluated = Vec<std::result::Result<Output, RowError>>;

/// The transformation of a page, on a blocking thread (a script's runtime is not `Send`; it is made
/// for the page and dropped with it). The inputs go to the thread and come back with the outputs,
/// rather than being copied for it.
async fn evaluate(
    ctx: &SourceRunContext,
    checked: &CheckedSource,
    inputs: Vec<Profile>,
    now: DateTime<Utc>,
) -> Result<(Vec<Profile>, Evaluated)> {
    if inputs.is_empty() {
        return Ok((inputs, Vec::new()));
    }
    let transform = checked.transform.clone();
    let cancel = ctx.cancel.clone();
    tokio::task::spawn_blocking(move || {
        let mut evaluator = transform
            .evaluator_with_stop(cancel)
            .map_err(|e| EngineError::new(ErrorKind::Internal, e))?;
        let out = evaluator.eval_batch(&inputs, now);
        if let Some(why) = evaluator.gave_up() {
            return Err(EngineError::new(ErrorKind::Internal, why));
        }
        Ok((inputs, out))
    })
    .await
    .map_err(|e| EngineError::internal(format!("the transformation stopped: {e}")))?
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
