//! Record: the sync state advances only after the destination confirmed a write.
//!
//! Records go on behind the next writes: up to [`SYNC_QUEUE_BATCHES`] batches' records wait in a chain
//! of tasks that apply them in order, so the destination is not left idle while the metadata store
//! catches up. A destination that defers confirmation (see `Destination::defers_confirmation`) has its
//! batches' records held until it confirms them.
//!
//! The run's counts are stored in the same chain, after the records of the batches they count
//! ([`Recorder::checkpoint`]): a process killed mid-run leaves a run record whose counts say what the
//! sync state holds (one small update per batch), and the next start's repair keeps them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use sluice_destinations::Destination;
use sluice_store::{RunLog, RunRecord, SyncEntry, SyncState};

use crate::error::{EngineError, ErrorKind, Result};
use crate::retry::Retrying;

/// How many batches' sync-state writes may wait behind the destination writes. Recording a batch can take
/// longer than writing the next (both compete for the same cores), and waiting for it held the
/// destination idle; a short queue absorbs that while keeping the entries held in memory bounded.
const SYNC_QUEUE_BATCHES: usize = 3;

/// One batch's change to the sync state: entries to upsert, profile ids whose entries go.
pub(crate) type BatchRecord = (Vec<SyncEntry>, Vec<String>);

/// How many rows the held sync records are of.
fn held_rows(held: &[BatchRecord]) -> usize {
    held.iter().map(|(upserts, _)| upserts.len()).sum()
}

/// A confirmation asked for and not yet answered, with the sync records it releases.
struct Confirming<'a> {
    done: futures::future::BoxFuture<'a, sluice_destinations::Result<()>>,
    held: Vec<BatchRecord>,
    /// The run as of the last of these batches, stored once they are recorded.
    run: Option<RunRecord>,
}

pub(crate) struct Recorder<'a> {
    dest: &'a Retrying<'a>,
    sync: Arc<dyn SyncState>,
    runs: Arc<dyn RunLog>,
    pid: String,
    table: String,
    /// How many written rows may wait for confirmation.
    unconfirmed_rows: usize,
    /// The sync-state writes of the batches before, still going while this batch is written: a chain of
    /// tasks, each applying its batch after the one before it succeeded.
    pending: Option<tokio::task::JoinHandle<Result<()>>>,
    /// How many batches the chain holds.
    pending_batches: usize,
    /// The sync-state records of batches written but not confirmed yet, in order: recorded only once the
    /// destination confirms them.
    held: Vec<BatchRecord>,
    /// The run as of the last held batch, stored once the held batches are recorded.
    held_run: Option<RunRecord>,
    /// The confirmation under way, if any.
    confirming: Option<Confirming<'a>>,
    /// Time spent waiting for confirmations, and for the sync state to record.
    pub confirm_time: Duration,
    pub record_time: Duration,
}

impl<'a> Recorder<'a> {
    pub fn new(
        dest: &'a Retrying<'a>,
        sync: Arc<dyn SyncState>,
        runs: Arc<dyn RunLog>,
        pid: &str,
        table: &str,
        unconfirmed_rows: usize,
    ) -> Self {
        Self {
            dest,
            sync,
            runs,
            pid: pid.to_string(),
            table: table.to_string(),
            unconfirmed_rows,
            pending: None,
            pending_batches: 0,
            held: Vec::new(),
            held_run: None,
            confirming: None,
            confirm_time: Duration::ZERO,
            record_time: Duration::ZERO,
        }
    }

    /// Records the sync state of a written batch: at once, or once the destination confirms it.
    pub async fn record(&mut self, upserts: Vec<SyncEntry>, deletes: Vec<String>) -> Result<()> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        if !self.dest.capabilities().defers_confirmation {
            return self.queue(vec![(upserts, deletes)], None).await;
        }
        self.held.push((upserts, deletes));
        // A destination deferring confirmation writes the held rows as one (ClickHouse: one insert, a few
        // parts instead of one per batch).
        if held_rows(&self.held) >= self.unconfirmed_rows {
            self.start_confirm().await?;
        }
        Ok(())
    }

    /// Stores `run` (its progress, counts and errors) once every batch recorded so far is: the stored
    /// counts never run ahead of the sync state, whatever moment the process dies at.
    pub async fn checkpoint(&mut self, run: &RunRecord) -> Result<()> {
        if !self.held.is_empty() {
            self.held_run = Some(run.clone());
            return Ok(());
        }
        if let Some(c) = &mut self.confirming {
            c.run = Some(run.clone());
            return Ok(());
        }
        self.queue(Vec::new(), Some(run.clone())).await
    }

    /// Has the destination confirm the rows written unconfirmed, then queues their sync-state records.
    pub async fn confirm(&mut self) -> Result<()> {
        self.start_confirm().await?;
        self.finish_confirm().await
    }

    /// Has every written row confirmed and waits until the sync state records them.
    pub async fn settle(&mut self) -> Result<()> {
        self.confirm().await?;
        self.wait_records().await
    }

    /// Asks the destination to confirm the rows written unconfirmed, without waiting for the answer:
    /// the server stores them while the next batches are computed and sent (ClickHouse sends those on
    /// another connection meanwhile). One confirmation is under way at a time.
    async fn start_confirm(&mut self) -> Result<()> {
        self.finish_confirm().await?;
        if self.held.is_empty() {
            return Ok(());
        }
        let dest: &'a Retrying<'a> = self.dest;
        let mut done = dest.confirm();
        let held = std::mem::take(&mut self.held);
        let run = self.held_run.take();
        // The first poll sends what ends the write (the trait's contract); the answer is read later.
        match (&mut done).now_or_never() {
            Some(result) => self.confirmed(result, held, run).await,
            None => {
                self.confirming = Some(Confirming { done, held, run });
                Ok(())
            }
        }
    }

    /// Waits for the confirmation under way, if any, and queues the records it releases.
    async fn finish_confirm(&mut self) -> Result<()> {
        let Some(c) = self.confirming.take() else {
            return Ok(());
        };
        let t = Instant::now();
        let result = c.done.await;
        self.confirm_time += t.elapsed();
        self.confirmed(result, c.held, c.run).await
    }

    async fn confirmed(
        &mut self,
        result: sluice_destinations::Result<()>,
        held: Vec<BatchRecord>,
        run: Option<RunRecord>,
    ) -> Result<()> {
        let rows = held_rows(&held);
        if let Err(e) = result {
            let context = format!("writing to `{}` failed", self.table);
            let e = EngineError::destination(&context, e);
            return Err(EngineError::new(
                e.kind,
                format!(
                    "{}; the last {rows} rows written are not recorded, and the next run writes them again",
                    e.message
                ),
            ));
        }
        self.queue(held, run).await
    }

    /// Queues sync-state records behind the earlier ones, then the run as of them: applied in order, one
    /// at a time, but overlapping the next batches' destination writes.
    async fn queue(&mut self, batches: Vec<BatchRecord>, run: Option<RunRecord>) -> Result<()> {
        // A run alone is one small update: it does not take a batch's place in the queue.
        let records = !batches.is_empty();
        if records && self.pending_batches >= SYNC_QUEUE_BATCHES {
            self.wait_records().await?;
        }
        let sync = self.sync.clone();
        let runs = self.runs.clone();
        let pid = self.pid.clone();
        let before = self.pending.take();
        self.pending = Some(tokio::spawn(async move {
            if let Some(before) = before {
                before.await.map_err(|e| {
                    EngineError::internal(format!("recording the written rows failed: {e}"))
                })??;
            }
            for (upserts, deletes) in batches {
                sync.sync_apply(&pid, upserts, deletes).await.map_err(|e| {
                    EngineError::store("the rows were written but recording them failed", e)
                })?;
            }
            // The counts are a report, not the sync state: a failure to store them does not fail the
            // run (its final record stores them again).
            if let Some(run) = run {
                if let Err(e) = runs.update_run_progress(&run).await {
                    tracing::warn!(run = %run.id, error = %e, "could not record the run's counts");
                }
            }
            Ok(())
        }));
        if records {
            self.pending_batches += 1;
        }
        Ok(())
    }

    /// Waits for the sync-state records queued so far.
    pub async fn wait_records(&mut self) -> Result<()> {
        self.pending_batches = 0;
        if let Some(task) = self.pending.take() {
            let t = Instant::now();
            let outcome = task.await.map_err(|e| {
                EngineError::new(
                    ErrorKind::Internal,
                    format!("recording the written rows failed: {e}"),
                )
            })?;
            self.record_time += t.elapsed();
            outcome?;
        }
        Ok(())
    }
}
