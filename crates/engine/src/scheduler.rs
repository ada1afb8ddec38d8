//! The scheduler and the instance's housekeeping: start scheduled runs when due, renew run leases, and
//! fail the runs of instances that died.
//!
//! The decision for each pipeline is `sluice_core::schedule::decide`, a pure function of the time; this
//! module feeds it the time from a [`Clock`] (injectable, so tests step through hours in microseconds) and
//! applies the outcome. The scheduler's state lives in the metadata store and is advanced by
//! compare-and-set before a run starts: when several instances see the same tick, one wins and runs it; the
//! others see the state already moved. An instance with no free slot leaves due pipelines to instances
//! that have one (or to its own next pass), which spreads scheduled runs over the instances.
//!
//! `on_change` pipelines have no ticks: [`follow_changes`] (every `on_change_interval`, and within each
//! [`tick`]) counts the profile changes since each one's change cursor — the profile store's position
//! when its last run started, kept in the metadata store — and asks `sluice_core::on_change::decide`
//! whether the debounce has passed. Polling the store, rather than being told by the process that
//! wrote, is what makes writes through any instance (or `sluice profiles import` against any of them)
//! count. The run starts only on the instance that moved the cursor by compare-and-set; the run's
//! `changes` names what set it off.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::on_change::{self, Start};
use sluice_core::schedule::{decide, next_run_at, reconcile_due, TickState};
use sluice_store::{ChangeCounts, PipelineRecord};

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
    /// Of the runs started, those of `on_change` pipelines (set off by changes, a catch-up, or a due
    /// reconcile).
    pub on_change: Vec<String>,
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
    follow(engine, &pipelines, &busy, now, &mut pass).await?;
    for p in pipelines {
        if is_on_change(&p) {
            continue;
        }
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

fn is_on_change(p: &PipelineRecord) -> bool {
    p.spec.schedule.as_ref().is_some_and(|s| s.is_on_change())
}

/// One look at the profile store's changes for every `on_change` pipeline at `now`, starting the runs
/// whose debounce has passed.
pub async fn follow_changes(
    engine: &Engine,
    now: DateTime<Utc>,
) -> Result<Pass, sluice_store::StoreError> {
    let mut pass = Pass::default();
    // A pipeline created or switched to `on_change` meanwhile is seen by the next full pass (which
    // follows changes too), at most `scheduler_interval` later.
    if !engine
        .following_changes()
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Ok(pass);
    }
    let meta = engine.meta();
    let pipelines = meta.list_pipelines(None).await?;
    if !pipelines.iter().any(is_on_change) {
        engine
            .following_changes()
            .store(false, std::sync::atomic::Ordering::Relaxed);
        engine.watches().clear();
        return Ok(pass);
    }
    let busy: HashSet<String> = meta
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|r| r.pipeline)
        .collect();
    follow(engine, &pipelines, &busy, now, &mut pass).await?;
    Ok(pass)
}

async fn follow(
    engine: &Engine,
    pipelines: &[PipelineRecord],
    busy: &HashSet<String>,
    now: DateTime<Utc>,
    pass: &mut Pass,
) -> Result<(), sluice_store::StoreError> {
    let following: Vec<&PipelineRecord> = pipelines.iter().filter(|p| is_on_change(p)).collect();
    engine
        .following_changes()
        .store(!following.is_empty(), std::sync::atomic::Ordering::Relaxed);
    engine
        .watches()
        .retain(|id, _| following.iter().any(|p| p.id == *id));
    if following.is_empty() {
        return Ok(());
    }
    let meta = engine.meta();
    let cursors: std::collections::HashMap<String, String> =
        meta.change_cursors().await?.into_iter().collect();
    // Pipelines whose runs started together share a cursor: one count each.
    let mut counted: std::collections::HashMap<String, Option<ChangeCounts>> =
        std::collections::HashMap::new();
    let debounce = engine.config().on_change_debounce;
    for p in following {
        let enabled = p.spec.enabled;
        let is_busy = busy.contains(&p.id) || engine.active_run(&p.id).is_some();
        if is_busy {
            // Nothing starts while a run goes on, and the count can wait: during a long run beside a
            // long import it would count ever more changes every second for nothing. Changes made
            // meanwhile are still after the cursor when the run ends.
            continue;
        }
        let cursor = cursors.get(&p.id);
        let changes = match cursor {
            None => None,
            // A disabled pipeline's decision reads nothing: spare the store the count.
            Some(_) if !enabled => Some(ChangeCounts::default()),
            Some(c) => match counted.get(c) {
                Some(n) => *n,
                None => {
                    let n = engine.profiles().count_changes_after(c).await?;
                    counted.insert(c.clone(), n);
                    n
                }
            },
        };
        let reconcile = match &p.spec.reconcile_every {
            Some(every) if enabled => {
                reconcile_due(Some(every), meta.last_reconcile(&p.id).await?, now)
            }
            _ => false,
        };
        // A watch counted from another cursor (another instance started a run since) is stale.
        let watch = engine
            .watches()
            .get(&p.id)
            .filter(|(from, _)| Some(from) == cursor)
            .map(|(_, w)| *w);
        let d = on_change::decide(
            enabled,
            false,
            changes.map(|c| c.changed + c.deleted),
            watch,
            reconcile,
            now,
            debounce,
        );
        match (d.watch, cursor) {
            (Some(w), Some(from)) => engine.watches().insert(p.id.clone(), (from.clone(), w)),
            _ => engine.watches().remove(&p.id),
        };
        let Some(start) = d.start else { continue };
        if engine.free_slots() == 0 {
            // Full here: another instance (or a later look) starts it.
            continue;
        }
        // Taken before the run starts reading, so a change it may miss is after the cursor.
        let next = engine.profiles().change_cursor().await?;
        let previous = cursor.map(String::as_str);
        if !meta
            .advance_change_cursor(&p.id, previous, Some(&next))
            .await?
        {
            // Another instance moved it first: that one starts the run.
            engine.watches().remove(&p.id);
            continue;
        }
        engine.watches().remove(&p.id);
        let (trigger, named) = match start {
            Start::Changes => ("on_change", changes),
            Start::CatchUp => ("on_change", None),
            Start::Reconcile => ("schedule", None),
        };
        let mode = if reconcile {
            RunMode::Reconcile
        } else {
            RunMode::Normal
        };
        match engine.start_for(&p.id, trigger, mode, now, named).await {
            Ok(run) => {
                tracing::info!(
                    pipeline = %p.id, run = %run.id, trigger, mode = mode.as_str(),
                    changed = named.map(|c| c.changed), deleted = named.map(|c| c.deleted),
                    "run started for profile changes"
                );
                pass.started.push(p.id.clone());
                pass.on_change.push(p.id.clone());
                if mode == RunMode::Reconcile {
                    pass.reconciles.push(p.id.clone());
                }
            }
            Err(e) => {
                // Not started (a run began meanwhile, the pipeline was disabled or deleted): put the
                // cursor back, so the changes still make a run once it can start.
                meta.advance_change_cursor(&p.id, Some(&next), previous)
                    .await?;
                if let StartError::Store(e) = e {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
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

/// How long the sources' scheduler sleeps after a pass at `now`: until the next tick (and a few
/// milliseconds, so that the tick has passed on the clock that decides), at most `cap`.
pub fn sources_sleep(
    next_look: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    cap: Duration,
) -> Duration {
    const PAST_THE_TICK: Duration = Duration::from_millis(5);
    // A tick that passed while the pass went on is due at once.
    let until = next_look
        .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(cap);
    (until + PAST_THE_TICK).min(cap)
}

/// Runs the scheduler and the housekeeping until the process ends: a scheduler pass every
/// `scheduler_interval`, a pass over the sources at each of their ticks (and at least every
/// `scheduler_interval`, which is how other instances' changes are seen), heartbeats and reaping every
/// third of the lease.
pub fn spawn(engine: Engine, clock: Arc<dyn Clock>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = engine.config().clone();
        let cap = config.scheduler_interval.max(Duration::from_millis(100));
        let sources_wake = engine.sources_wake();
        let mut sources_at = tokio::time::Instant::now();
        let beat = (config.lease / 3).max(Duration::from_millis(100));
        let mut schedule =
            tokio::time::interval(config.scheduler_interval.max(Duration::from_millis(100)));
        let mut house = tokio::time::interval(beat);
        let mut changes =
            tokio::time::interval(config.on_change_interval.max(Duration::from_millis(100)));
        schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        house.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        changes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = schedule.tick() => {
                    if let Err(e) = tick(&engine, clock.now()).await {
                        tracing::warn!(error = %e, "the scheduler pass failed; trying again at the next one");
                    }
                }
                _ = tokio::time::sleep_until(sources_at) => {
                    let now = clock.now();
                    let wait = match crate::source::schedule::pass(&engine, now).await {
                        Ok(pass) => sources_sleep(pass.next_look, clock.now(), cap),
                        Err(e) => {
                            tracing::warn!(error = %e, "the sources' scheduler pass failed; trying again at the next one");
                            cap
                        }
                    };
                    sources_at = tokio::time::Instant::now() + wait;
                }
                _ = sources_wake.notified() => sources_at = tokio::time::Instant::now(),
                _ = changes.tick() => {
                    if let Err(e) = follow_changes(&engine, clock.now()).await {
                        tracing::warn!(error = %e, "the look for profile changes failed; trying again at the next one");
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn the_sources_scheduler_sleeps_until_just_past_the_next_tick() {
        let now: DateTime<Utc> = "2026-12-06T10:00:03.800Z".parse().unwrap();
        let tick: DateTime<Utc> = "2026-12-06T10:00:05Z".parse().unwrap();
        let cap = Duration::from_secs(5);
        assert_eq!(
            sources_sleep(Some(tick), now, cap),
            Duration::from_millis(1_205)
        );
        // No source with a tick, or a tick beyond the cap: look again at the cap.
        assert_eq!(sources_sleep(None, now, cap), cap);
        let later: DateTime<Utc> = "2026-12-06T11:00:00Z".parse().unwrap();
        assert_eq!(sources_sleep(Some(later), now, cap), cap);
        // A tick already passed (a slow pass): look again at once.
        assert_eq!(
            sources_sleep(Some(now - TimeDelta::seconds(1)), now, cap),
            Duration::from_millis(5)
        );
    }
}
