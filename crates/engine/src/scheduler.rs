//! The scheduler and the instance's housekeeping: start scheduled runs when due, renew run leases, and
//! fail the runs of instances that died.
//!
//! The decision for each pipeline is `sluice_core::schedule::decide`, a pure function of the time; this
//! module feeds it the time from a [`Clock`] (injectable, so tests step through hours in microseconds) and
//! applies the outcome. The scheduler's state lives in the metadata store and is advanced by
//! compare-and-set before a run starts: when several instances see the same tick, one wins and runs it; the
//! others see the state already moved. An instance with no free slot leaves due pipelines to instances
//! that have one (or to its own next pass), which spreads scheduled runs over the instances.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::schedule::{decide, next_run_at, reconcile_due, TickState};
use sluice_store::PipelineRecord;

use crate::{alerts, Engine, RunMode, StartError};

/// Where the scheduler gets the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What one scheduler pass did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Runs started, by pipeline id.
    pub started: Vec<String>,
    /// Of those, the runs started as reconciles (their `reconcile_every` had passed).
    pub reconciles: Vec<String>,
    /// Pipelines whose follow-up run was queued because they were busy.
    pub queued: Vec<String>,
}

/// One scheduler pass at `now`: every pipeline's decision applied.
pub async fn tick(engine: &Engine, now: DateTime<Utc>) -> Result<Pass, sluice_store::StoreError> {
    let meta = engine.meta();
    let pipelines = meta.list_pipelines(None).await?;
    let states: std::collections::HashMap<String, TickState> =
        meta.tick_states().await?.into_iter().collect();
    let busy: HashSet<String> = meta
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|r| r.pipeline)
        .collect();
    let mut pass = Pass::default();
    for p in pipelines {
        let state = states.get(&p.id).copied().unwrap_or_default();
        let is_busy = busy.contains(&p.id) || engine.active_run(&p.id).is_some();
        let d = decide(
            p.spec.schedule.as_ref(),
            p.spec.enabled,
            state,
            is_busy,
            now,
        );
        if d.start && engine.free_slots() == 0 {
            // Full here: another instance (or a later pass) takes the tick.
            continue;
        }
        let next = d.save.unwrap_or(state);
        if d.save.is_some() && !meta.advance_tick(&p.id, state, next).await? {
            continue;
        }
        if next.pending && !state.pending {
            tracing::info!(pipeline = %p.id, "a scheduled tick fell during a run: one follow-up run queued");
            pass.queued.push(p.id.clone());
        }
        if d.start {
            start_scheduled(engine, &p, next, now, &mut pass).await?;
        }
    }
    Ok(pass)
}

async fn start_scheduled(
    engine: &Engine,
    p: &PipelineRecord,
    state: TickState,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<(), sluice_store::StoreError> {
    // The tick (not the moment the pass reached it) is what the next reconcile counts from, so that
    // `reconcile_every` equal to a multiple of the schedule lands on a tick instead of the one after.
    let tick_at = state.last_tick.unwrap_or(now);
    let mode = match &p.spec.reconcile_every {
        Some(every) => {
            let last = engine.meta().last_reconcile(&p.id).await?;
            if reconcile_due(Some(every), last, tick_at) {
                RunMode::Reconcile
            } else {
                RunMode::Normal
            }
        }
        None => RunMode::Normal,
    };
    match engine.start_at(&p.id, "schedule", mode, tick_at).await {
        Ok(run) => {
            tracing::info!(pipeline = %p.id, run = %run.id, mode = mode.as_str(), "scheduled run started");
            pass.started.push(p.id.clone());
            if mode == RunMode::Reconcile {
                pass.reconciles.push(p.id.clone());
            }
        }
        Err(StartError::AlreadyRunning { .. }) => {
            // Started elsewhere since we looked: keep the tick as a follow-up instead of losing it.
            let queued = TickState {
                pending: true,
                ..state
            };
            if engine.meta().advance_tick(&p.id, state, queued).await? {
                pass.queued.push(p.id.clone());
            }
        }
        Err(StartError::NotFound(_) | StartError::Disabled(_)) => {}
        Err(StartError::Store(e)) => return Err(e),
    }
    Ok(())
}

/// Drops a pipeline's queued follow-up run (disabled, deleted or its schedule turned off).
pub async fn drop_follow_up(engine: &Engine, pipeline_id: &str) {
    let meta = engine.meta();
    for _ in 0..3 {
        let Ok(states) = meta.tick_states().await else {
            return;
        };
        let Some((_, state)) = states.into_iter().find(|(p, _)| p == pipeline_id) else {
            return;
        };
        if !state.pending {
            return;
        }
        let next = TickState {
            pending: false,
            ..state
        };
        match meta.advance_tick(pipeline_id, state, next).await {
            Ok(false) => continue,
            _ => return,
        }
    }
}

/// When the pipeline runs next by its schedule, seen at `now` (`None`: off or disabled). A due run is due
/// at `now`.
pub async fn next_run(
    engine: &Engine,
    p: &PipelineRecord,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    p.spec.schedule.as_ref()?;
    let state = engine
        .meta()
        .tick_states()
        .await
        .ok()?
        .into_iter()
        .find(|(id, _)| *id == p.id)
        .map(|(_, s)| s)
        .unwrap_or_default();
    next_run_at(p.spec.schedule.as_ref(), p.spec.enabled, state, now)
}

/// Runs the scheduler and the housekeeping until the process ends: a scheduler pass every
/// `scheduler_interval`, heartbeats and reaping every third of the lease.
pub fn spawn(engine: Engine, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = engine.config().clone();
        let beat = (config.lease / 3).max(Duration::from_millis(100));
        let mut schedule =
            tokio::time::interval(config.scheduler_interval.max(Duration::from_millis(100)));
        let mut house = tokio::time::interval(beat);
        schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        house.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = schedule.tick() => {
                    if let Err(e) = tick(&engine, clock.now()).await {
                        tracing::warn!(error = %e, "the scheduler pass failed; trying again at the next one");
                    }
                    if let Err(e) = crate::source::schedule::tick(&engine, clock.now()).await {
                        tracing::warn!(error = %e, "the sources' scheduler pass failed; trying again at the next one");
                    }
                }
                _ = house.tick() => housekeeping(&engine).await,
            }
        }
    })
}

async fn housekeeping(engine: &Engine) {
    if let Err(e) = engine.heartbeat().await {
        tracing::warn!(error = %e, "could not renew the leases of this instance's runs");
    }
    match engine.meta().reap_expired().await {
        Ok(reaped) => {
            for run in &reaped {
                tracing::warn!(run = %run.id, pipeline = %run.pipeline, "marked a run of a stopped instance as failed");
                alerts::after_run(engine, run);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not look for runs of stopped instances"),
    }
}
