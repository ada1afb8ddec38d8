//! Read: pages of profiles in `_id` order, fetched ahead of the processing, and the sync entries of
//! the same id range.

use std::sync::Arc;

use sluice_core::filter::Filter;
use sluice_core::RawProfile;
use sluice_store::{ProfileStore, RunRecord, StoreError, SyncEntry, SyncState};
use tokio::sync::mpsc;

use super::budget::{raw_page_bytes, Budget, Charge};
use crate::error::{EngineError, Result};

/// Which profiles a run reads.
pub(crate) enum Source {
    /// Those matching the filter (pushed down to the store).
    Audience(Option<Filter>),
    /// Those changed at or after a change mark, whatever the filter.
    ChangedSince(i64),
    /// None: the plan counted no change since the mark. Looking for changes that are not there would
    /// cost a scan in proportion to the store (PostgreSQL walks the ids in order to find none).
    Nothing,
}

/// A page on its way from the read to the write, with the bytes it holds charged to the budget.
pub(crate) struct Charged<T> {
    pub items: T,
    pub charge: Charge,
}

pub(crate) type Pages = mpsc::Receiver<Result<Charged<Vec<RawProfile>>, StoreError>>;

/// Reads pages ahead of the processing, so that reading overlaps transforming and writing, as far as
/// `budget` leaves room (see [`super::budget`]).
pub(crate) fn spawn_reader(
    profiles: Arc<dyn ProfileStore>,
    source: Source,
    batch: usize,
    budget: Arc<Budget>,
) -> Pages {
    // One page waiting is enough to keep the stages overlapped; each more costs a page of memory.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        loop {
            // The run ends with the receiver: a reader waiting for room must not outlive it.
            tokio::select! {
                _ = budget.room() => {}
                _ = tx.closed() => break,
            }
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
                Source::Nothing => break,
            };
            match page {
                Ok(page) if page.is_empty() => break,
                Ok(page) => {
                    // A short page is the last: asking again would cost a query that finds nothing,
                    // which for a read of changes is a second pass over every changed profile (most of
                    // the read when the changes fit in one page). A profile changed meanwhile is past
                    // the run's mark, so the next run reads it.
                    let last = page.len() < batch;
                    after = page.last().map(|p| p.id.clone());
                    let charge = budget.charge(raw_page_bytes(&page));
                    let page = Charged {
                        items: page,
                        charge,
                    };
                    if tx.send(Ok(page)).await.is_err() || last {
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

pub(crate) type Counter = tokio::task::JoinHandle<Result<(u64, u64), StoreError>>;

/// Counts the profiles matching the filter, and all profiles.
pub(crate) fn spawn_counter(profiles: Arc<dyn ProfileStore>, filter: Option<Filter>) -> Counter {
    tokio::spawn(async move {
        let total = profiles.count(filter.as_ref()).await?;
        let all = match filter {
            Some(_) => profiles.count(None).await?,
            None => total,
        };
        Ok((total, all))
    })
}

/// Takes the audience count into the run: its total, and the profiles outside the audience as
/// filtered out.
pub(crate) async fn apply_counts(run: &mut RunRecord, counter: Option<Counter>) -> Result<()> {
    if let Some(c) = counter {
        let (total, all) = c
            .await
            .map_err(|e| EngineError::internal(format!("counting profiles failed: {e}")))?
            .map_err(|e| EngineError::store("counting profiles failed", e))?;
        run.progress.total = Some(total);
        // Added to the profiles the transformation skipped, counted as they come.
        run.counts.filtered_out += all.saturating_sub(total);
    }
    Ok(())
}

/// The sync entries with `after < profile_id <= upto`, read in chunks.
pub(crate) async fn load_entries(
    sync: &dyn SyncState,
    pid: &str,
    after: Option<&str>,
    upto: Option<&str>,
) -> Result<Vec<SyncEntry>> {
    const CHUNK: usize = 50_000;
    let mut out: Vec<SyncEntry> = Vec::new();
    let mut cursor = after.map(str::to_string);
    loop {
        let chunk = sync
            .sync_range(pid, cursor.as_deref(), upto, CHUNK)
            .await
            .map_err(|e| EngineError::store("reading the sync state failed", e))?;
        let n = chunk.len();
        cursor = chunk.last().map(|e| e.profile_id.clone()).or(cursor);
        out.extend(chunk);
        if n < CHUNK {
            return Ok(out);
        }
    }
}
