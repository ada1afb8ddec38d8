//! Transform: profiles become rows (values converted to the column types), their keys and hashes, on
//! blocking threads away from the engine's tasks.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sluice_core::filter::Filter;
use sluice_core::hash::hash_row;
use sluice_core::sync::SyncKey;
use sluice_core::{Profile, RawProfile, Value};
use sluice_transform::{Evaluator, Output, RowError, Transform};
use tokio::sync::mpsc;

use super::budget::row_bytes;
use super::read::{Charged, Pages};
use super::Prepared;
use crate::error::{EngineError, ErrorKind, Result};

/// Computes the rows of `profiles` as a run would — same transformation, same conversions, on a blocking
/// thread that owns the script runtime — and writes nothing: what a preview shows. `now` is what `now()`
/// means in a mapping. Fails only when a script cannot be loaded.
pub async fn transform_profiles(
    prepared: &Prepared,
    profiles: Vec<Profile>,
    now: DateTime<Utc>,
) -> Result<Vec<Result<Output, RowError>>> {
    let transform = prepared.transform.clone();
    tokio::task::spawn_blocking(move || {
        let mut evaluator = transform.evaluator().map_err(EngineError::internal)?;
        Ok(evaluator.eval_batch(&profiles, now))
    })
    .await
    .map_err(|e| EngineError::internal(format!("the transformation stopped unexpectedly: {e}")))?
}

/// A computed row: the converted values, the key (`None` when null) and the hash.
pub(crate) type RowParts = (Vec<Value>, Option<SyncKey>, u128);

/// A profile turned into its row; `None` when the transformation skipped the profile.
pub(crate) struct Computed {
    pub id: String,
    pub outcome: Result<Option<RowParts>, RowError>,
}

/// Computes rows on blocking threads, so that mapping and hashing (CPU) overlap with the database round
/// trips of the batch before. A visual mapping is computed by two threads, pages taken in turn and
/// given back in order: transforming was the longest stage of a run, and one thread could not keep the
/// destination busy. Scripts keep one thread (their runtimes are heavy, Python's has its own workers).
/// With `filter`, profiles that do not match it come out skipped (as profiles that left the audience).
/// A script's evaluator is tied to `cancel`, so that a cancel interrupts the call in progress and the
/// rest of the page comes back at once (the run drops it); a mapping runs no user code and ignores it.
pub(crate) fn spawn_transformer(
    mut pages: Pages,
    prepared: &Prepared,
    filter: Option<Filter>,
    now: DateTime<Utc>,
    cancel: Arc<AtomicBool>,
) -> mpsc::Receiver<Result<Charged<Vec<Computed>>>> {
    if !matches!(prepared.transform, Transform::Mapping(_)) {
        return spawn_transform_worker(pages, prepared, filter, now, Some(cancel));
    }
    const WORKERS: usize = 2;
    let mut inputs = Vec::with_capacity(WORKERS);
    let mut outputs = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let (tx, rx) = mpsc::channel(1);
        inputs.push(tx);
        outputs.push(spawn_transform_worker(
            rx,
            prepared,
            filter.clone(),
            now,
            None,
        ));
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

/// Computes the rows of the pages it is given on one blocking thread, in order. When the evaluator gives
/// up on a stuck script, the page is cut before the first profile it did not evaluate (the rows before
/// are written and recorded as usual) and the run fails with the evaluator's reason.
fn spawn_transform_worker(
    mut pages: Pages,
    prepared: &Prepared,
    filter: Option<Filter>,
    now: DateTime<Utc>,
    stop: Option<Arc<AtomicBool>>,
) -> mpsc::Receiver<Result<Charged<Vec<Computed>>>> {
    // One page waiting is enough to keep the stages overlapped; each more costs a page of memory.
    let (tx, rx) = mpsc::channel(1);
    let transform = prepared.transform.clone();
    let seed = prepared.seed;
    let key_idx = prepared.target.key_index();
    tokio::task::spawn_blocking(move || {
        // A script runtime is not Send: it is made here, on the thread that uses it, for the whole run.
        let made = match stop {
            Some(stop) => transform.evaluator_with_stop(stop),
            None => transform.evaluator(),
        };
        let mut evaluator = match made {
            Ok(e) => e,
            Err(message) => {
                let _ = tx.blocking_send(Err(EngineError::internal(message)));
                return;
            }
        };
        while let Some(page) = pages.blocking_recv() {
            let out = match page {
                Err(e) => Err(EngineError::store("reading profiles failed", e)),
                Ok(Charged { items, mut charge }) => {
                    let computed =
                        compute_page(&mut evaluator, items, filter.as_ref(), now, seed, key_idx);
                    // The documents are gone; the page now holds its rows.
                    let bytes = computed_bytes(&computed);
                    tracing::debug!(
                        rows = computed.len(),
                        read_bytes = charge.bytes(),
                        row_bytes = bytes,
                        "page transformed"
                    );
                    charge.resize(bytes);
                    Ok(Charged {
                        items: computed,
                        charge,
                    })
                }
            };
            let (mut computed, reason) = match (out, evaluator.gave_up()) {
                (Ok(computed), Some(reason)) => (computed, reason),
                (out, _) => {
                    let failed = out.is_err();
                    if tx.blocking_send(out).is_err() || failed {
                        break;
                    }
                    continue;
                }
            };
            let cut = computed
                .items
                .iter()
                .position(|c| matches!(&c.outcome, Err(e) if !e.evaluated()))
                .unwrap_or(computed.items.len());
            computed.items.truncate(cut);
            // An empty page would read as the end of the profiles: only a non-empty one is sent.
            if !computed.items.is_empty() && tx.blocking_send(Ok(computed)).is_err() {
                break;
            }
            let _ = tx.blocking_send(Err(EngineError::new(ErrorKind::Invalid, reason)));
            break;
        }
    });
    rx
}

/// What a page of computed rows holds: ids, values and their heap, keys.
fn computed_bytes(page: &[Computed]) -> usize {
    page.iter()
        .map(|c| {
            let row = match &c.outcome {
                Ok(Some((values, key, _))) => {
                    row_bytes(values) + key.as_ref().map_or(0, |k| k.as_str().len())
                }
                _ => 0,
            };
            std::mem::size_of::<Computed>() + c.id.capacity() + row
        })
        .sum()
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
                let key = SyncKey::from_value(&values[key_idx]);
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
