//! Scheduled source runs: each source's `schedule` decided by `sluice_core::schedule::decide`, the
//! same pure rule as pipelines', with the source's own scheduler state (advanced by compare-and-set, so
//! when several instances see one tick, one runs it).
//!
//! A source may run every 5 s, so the scheduler does not poll for its ticks: each pass says when the
//! earliest next tick of any source falls ([`Pass::next_look`]) and the scheduler sleeps until then
//! (see `crate::scheduler::spawn`). Between ticks it does nothing.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sluice_core::schedule::{decide, next_look, TickState};
use sluice_store::StoreError;

use crate::{Engine, StartError};

/// What one pass over the sources did, and when the next one is due.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// The ids of the sources whose run it started.
    pub started: Vec<String>,
    /// The earliest tick after `now` of any enabled, scheduled source; `None` when no source has one.
    pub next_look: Option<DateTime<Utc>>,
}

/// One pass over the sources at `now`; answers the ids of the sources whose run it started.
pub async fn tick(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<String>, StoreError> {
    Ok(pass(engine, now).await?.started)
}

/// One pass over the sources at `now`: the runs due started, and the time of the next tick.
pub async fn pass(engine: &Engine, now: DateTime<Utc>) -> Result<Pass, StoreError> {
    let meta = engine.meta();
    let sources = meta.list_sources().await?;
    let next_look = sources
        .iter()
        .filter_map(|s| next_look(s.spec.schedule.as_ref(), s.spec.enabled, now))
        .min();
    if sources.iter().all(|s| s.spec.schedule.is_none()) {
        return Ok(Pass::default());
    }
    let states: std::collections::HashMap<String, TickState> =
        meta.source_tick_states().await?.into_iter().collect();
    let busy: HashSet<String> = meta
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|r| r.pipeline)
        .collect();
    let mut started = Vec::new();
    for s in sources {
        let state = states.get(&s.id).copied().unwrap_or_default();
        let is_busy = busy.contains(&s.id) || engine.active_run(&s.id).is_some();
        let d = decide(
            s.spec.schedule.as_ref(),
            s.spec.enabled,
            state,
            is_busy,
            now,
        );
        if d.start && engine.free_slots() == 0 {
            continue;
        }
        let next = d.save.unwrap_or(state);
        if d.save.is_some() && !meta.advance_source_tick(&s.id, state, next).await? {
            continue;
        }
        if !d.start {
            continue;
        }
        match engine.start_source(&s.id, "schedule").await {
            Ok(run) => {
                tracing::info!(source = %s.id, run = %run.id, "scheduled source run started");
                started.push(s.id.clone());
            }
            Err(StartError::AlreadyRunning { .. }) => {
                // Started elsewhere since we looked: keep the tick as a follow-up.
                let queued = TickState {
                    pending: true,
                    ..next
                };
                meta.advance_source_tick(&s.id, next, queued).await?;
            }
            Err(StartError::NotFound(_) | StartError::Disabled(_)) => {}
            Err(StartError::Store(e)) => return Err(e),
        }
    }
    Ok(Pass { started, next_look })
}
