//! Run coordination: which instance holds a run, for how long, and the scheduler's per-pipeline memory.
//!
//! Every run is inserted *claimed*: it names its owner (one `sluice serve` process) and a lease that the
//! owner's heartbeats keep extending. A run whose lease ran out belongs to an instance that died; any
//! instance may then mark it failed ([`Coordination::reap_expired`]). Lease times are taken from the
//! store's clock (PostgreSQL's `now()`), so instances with skewed clocks still agree.
//!
//! "Never two runs of one pipeline at once" is a database rule, not a check-then-act in Sluice: a unique
//! partial index over the pipeline of runs that are queued or running lets exactly one such run exist per
//! pipeline, so two instances claiming together cannot both succeed ([`Coordination::claim_run`] says who
//! holds it instead). The scheduler's state is advanced with compare-and-set, so a tick seen by several
//! instances is acted on by one.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::schedule::TickState;

use crate::{Result, RunRecord};

/// Message of a run whose instance stopped holding it.
pub const LOST_MESSAGE: &str =
    "the Sluice instance running this run stopped (killed or unreachable); the next run will repair the table";

/// A run an instance still holds, as its heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub run: String,
    /// Someone asked to cancel the run (perhaps through another instance).
    pub cancel_requested: bool,
}

#[async_trait]
pub trait Coordination: Send + Sync {
    /// Whether several instances may share this store (PostgreSQL). An SQLite store belongs to the one
    /// process that holds its lock file.
    fn shared(&self) -> bool;

    /// Inserts `run` (queued or running) owned by `owner` with a lease of `lease` from now. `Ok(None)` when
    /// claimed; `Ok(Some(id))` when the pipeline already has a queued or running run `id` (nothing
    /// inserted). `NotFound` when the pipeline does not exist.
    async fn claim_run(
        &self,
        run: &RunRecord,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<String>>;

    /// Extends the lease of `owner`'s unfinished runs to `lease` from now; returns the runs it still holds
    /// (a run missing from the answer was taken from it: reaped, or deleted with its pipeline), each with
    /// whether a cancel was requested for it.
    async fn heartbeat(&self, owner: &str, lease: Duration) -> Result<Vec<Held>>;

    /// Asks the instance holding an unfinished run to cancel it (it learns at its next heartbeat).
    /// `Ok(false)` when the run is not queued or running.
    async fn request_cancel(&self, run: &str) -> Result<bool>;

    /// Marks unfinished runs whose lease has run out (or that have none, from an older Sluice) as failed
    /// with [`LOST_MESSAGE`]; returns them as they now are.
    async fn reap_expired(&self) -> Result<Vec<RunRecord>>;

    /// Marks `owner`'s unfinished runs as failed with `message` whatever their lease: a restarted instance
    /// (same owner name) knows its previous process left them. Returns them as they now are.
    async fn reap_owner(&self, owner: &str, message: &str) -> Result<Vec<RunRecord>>;

    /// The scheduler's state of every pipeline that has one, as `(pipeline id, state)`.
    async fn tick_states(&self) -> Result<Vec<(String, TickState)>>;

    /// Replaces the pipeline's state with `next` if it still is `expected` (a pipeline without a row has
    /// the default state). `Ok(false)` when another instance changed it first or the pipeline is gone.
    async fn advance_tick(
        &self,
        pipeline: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool>;

    /// The change cursor ([`crate::ProfileStore::change_cursor`]) of every `on_change` pipeline that has
    /// one, as `(pipeline id, cursor)`: taken when the pipeline's last run started, so changes after it
    /// are the ones its next run is for.
    async fn change_cursors(&self) -> Result<Vec<(String, String)>>;

    /// Replaces the pipeline's change cursor with `next` (`None`: forget it) if it still is `expected`.
    /// `Ok(false)` when another instance moved it first, or the pipeline is gone. The instance whose move
    /// succeeds is the one that starts the run.
    async fn advance_change_cursor(
        &self,
        pipeline: &str,
        expected: Option<&str>,
        next: Option<&str>,
    ) -> Result<bool>;

    /// When the pipeline's last reconcile started; `None` when it never reconciled.
    async fn last_reconcile(&self, pipeline: &str) -> Result<Option<DateTime<Utc>>>;

    /// Records that a reconcile of the pipeline started `at`. Nothing happens for a pipeline that is gone.
    async fn record_reconcile(&self, pipeline: &str, at: DateTime<Utc>) -> Result<()>;
}
