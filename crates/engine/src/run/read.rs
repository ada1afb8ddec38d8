//! Read: pages of profiles in `_id` order, fetched ahead of the processing, and the sync entries of
//! the same id range.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_core::filter::Filter;
use sluice_core::RawProfile;
use sluice_store::{ProfileStore, RunRecord, StoreError, SyncEntry, SyncState};
use tokio::sync::mpsc;

use super::budget::{raw_page_bytes, Budget, Charge};
use super::transform::Computed;
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
/// `budget` leaves room (see [`super::budget`]). The first page holds `first` profiles (at most
/// `batch`), the others `batch`.
pub(crate) fn spawn_reader(
    profiles: Arc<dyn ProfileStore>,
    source: Source,
    first: usize,
    batch: usize,
    budget: Arc<Budget>,
) -> Pages {
    // One page waiting is enough to keep the stages overlapped; each more costs a page of memory.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        let mut size = first.clamp(1, batch.max(1));
        loop {
            // The run ends with the receiver: a reader waiting for room must not outlive it.
            tokio::select! {
                _ = budget.room() => {}
                _ = tx.closed() => break,
            }
            let page = match &source {
                Source::Audience(filter) => {
                    profiles
                        .page_raw(filter.as_ref(), after.as_deref(), size)
                        .await
                }
                Source::ChangedSince(mark) => {
                    profiles
                        .changed_page_raw(*mark, after.as_deref(), size)
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
                    let last = page.len() < size;
                    size = batch;
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

/// Fewest rows in a page of changes: below this a page's round trips cost more than the overlap saves.
const MIN_CHANGE_PAGE_ROWS: usize = 1_000;

/// How many pages the changes of a run are split into at least, when there are enough of them.
const CHANGE_PAGES: u64 = 4;

/// The page size of a read of `changes` changed profiles. The changes of a typical re-run fit in one
/// destination batch, and a single page runs its stages one after the other: read, look its sync
/// entries up, write, record. A few pages let each stage overlap the next page's, so the run takes about
/// as long as its slowest stage instead of their sum.
pub(crate) fn change_page_rows(changes: u64, batch: usize) -> usize {
    let split = changes.div_ceil(CHANGE_PAGES);
    usize::try_from(split)
        .unwrap_or(usize::MAX)
        .max(MIN_CHANGE_PAGE_ROWS)
        .min(batch)
}

/// The first page of a read of changes: half the others. Nothing is written until the first page is
/// read, transformed and looked up, and the last page's records are what the run waits for at its end;
/// a short first page starts the writes sooner, and with it the pages after come out of step so that
/// the last is short too.
pub(crate) fn first_change_page_rows(page_rows: usize) -> usize {
    (page_rows / 2).max(MIN_CHANGE_PAGE_ROWS).min(page_rows)
}

/// How a read of `changes` changed profiles is paged for a destination writing at most `batch` rows a
/// batch: the first page's rows, then every other page's. Public so that the server benchmark's paged
/// floor writes the pages a run writes.
pub fn change_page_plan(changes: u64, batch: usize) -> (usize, usize) {
    let rows = change_page_rows(changes, batch);
    (first_change_page_rows(rows), rows)
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

/// Reads the sync entries of a page: those of its id range (a full read, merge-joined with it), or
/// those of its profiles (a read of changes; every other entry is of an unchanged profile).
#[derive(Clone)]
pub(crate) struct EntryReader {
    pub sync: Arc<dyn SyncState>,
    pub pid: String,
    pub by_ids: bool,
}

impl EntryReader {
    /// The entries for `page`, the page after the one that ended at `after`.
    pub async fn entries(&self, after: Option<&str>, page: &[Computed]) -> Result<Vec<SyncEntry>> {
        if self.by_ids {
            let ids: Vec<String> = page.iter().map(|c| c.id.clone()).collect();
            return self
                .sync
                .sync_get(&self.pid, &ids)
                .await
                .map_err(|e| EngineError::store("reading the sync state failed", e));
        }
        let last = page.last().map(|c| c.id.as_str());
        load_entries(self.sync.as_ref(), &self.pid, after, last).await
    }
}

/// A page of computed rows and, when they could be read ahead, its sync entries and the time they took.
pub(crate) type Looked = (Charged<Vec<Computed>>, Option<(Vec<SyncEntry>, Duration)>);

/// Reads each page's sync entries as the page comes from the transformation, a page ahead of the
/// writes, so that the look-ups overlap the destination's work instead of adding to it. With `ahead`
/// false the pages pass through without entries: a run whose keys are not the profile ids moves keys
/// between profiles, and the entries of a page must then be read after the page before is recorded.
/// Errors pass through in order.
pub(crate) fn spawn_entry_reader(
    mut rows: mpsc::Receiver<Result<Charged<Vec<Computed>>>>,
    reader: EntryReader,
    ahead: bool,
) -> mpsc::Receiver<Result<Looked>> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut after: Option<String> = None;
        while let Some(page) = rows.recv().await {
            let looked = match page {
                Ok(page) if ahead && !page.items.is_empty() => {
                    let t = Instant::now();
                    match reader.entries(after.as_deref(), &page.items).await {
                        Ok(entries) => {
                            after = page.items.last().map(|c| c.id.clone());
                            Ok((page, Some((entries, t.elapsed()))))
                        }
                        Err(e) => Err(e),
                    }
                }
                Ok(page) => Ok((page, None)),
                Err(e) => Err(e),
            };
            let failed = looked.is_err();
            if tx.send(looked).await.is_err() || failed {
                break;
            }
        }
    });
    rx
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

#[cfg(test)]
mod tests {
    use super::{change_page_rows, first_change_page_rows};

    #[test]
    fn changes_are_split_into_a_few_pages_of_a_useful_size() {
        // A typical re-run's changes: four pages instead of one batch.
        assert_eq!(change_page_rows(11_000, 20_000), 2_750);
        // Few changes stay in pages worth their round trips; never above the destination's batch.
        assert_eq!(change_page_rows(10, 20_000), 1_000);
        assert_eq!(change_page_rows(10, 500), 500);
        assert_eq!(change_page_rows(1_000_000, 20_000), 20_000);
        assert_eq!(first_change_page_rows(2_750), 1_375);
        assert_eq!(first_change_page_rows(1_500), 1_000);
        assert_eq!(first_change_page_rows(500), 500);
        assert_eq!(change_page_rows(u64::MAX, 20_000), 20_000);
    }
}
