//! Plan: read every profile of the audience, or only those changed since the last clean run.

use chrono::{DateTime, Utc};
use sluice_store::TOMBSTONE_RETENTION;

use super::{Prepared, RunContext};
use crate::error::{EngineError, Result};

/// How a run reads the profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Every profile of the audience, merged with the whole sync state.
    Full,
    /// Only the profiles changed or deleted since the mark of the pipeline's sync checkpoint (`changes`
    /// of them, counted by the plan); the other `synced` rows are known to be unchanged.
    Changes {
        since: i64,
        synced: u64,
        changes: u64,
    },
}

impl Plan {
    pub fn name(self) -> &'static str {
        match self {
            Plan::Full => "full",
            Plan::Changes { .. } => "changes",
        }
    }
}

/// Chooses between reading everything and reading only the changes since the last clean run.
pub(crate) async fn plan(ctx: &RunContext, p: &Prepared, now: DateTime<Utc>) -> Result<Plan> {
    let pid = &p.pipeline.id;
    let store = |e| EngineError::store("reading the sync state failed", e);
    let Some(cp) = ctx.sync.sync_checkpoint(pid).await.map_err(store)? else {
        return Ok(Plan::Full);
    };
    if cp.fingerprint != p.fingerprint {
        // The rows recorded from here on follow the new settings: the old checkpoint must never be used
        // again, even if the settings come back.
        ctx.sync
            .set_sync_checkpoint(pid, None)
            .await
            .map_err(store)?;
        return Ok(Plan::Full);
    }
    // Deletions are remembered for a limited time; a day of margin covers clocks and long runs.
    if p.transform.depends_on_run()
        || cp.taken_at < now - TOMBSTONE_RETENTION + chrono::TimeDelta::days(1)
    {
        return Ok(Plan::Full);
    }
    let changes = ctx
        .profiles
        .count_changes(cp.mark)
        .await
        .map_err(|e| EngineError::store("reading the profile store failed", e))?;
    let synced = ctx.sync.sync_count(pid).await.map_err(store)?;
    // Past a quarter of the audience, one ordered scan beats looking every change up.
    if changes.changed + changes.deleted > synced / 4 + 1_000 {
        return Ok(Plan::Full);
    }
    Ok(Plan::Changes {
        since: cp.mark,
        synced,
        changes: changes.changed + changes.deleted,
    })
}
