//! Drift: before a run reads a profile, it makes sure the table is the one its sync state describes
//! (the pure rules are `sluice_core::drift`).
//!
//! 1. The table's identity is compared with the one recorded: a table dropped and created again resets
//!    the sync state, so every row is written again.
//! 2. Otherwise its row count is compared with the rows Sluice keeps there; fewer means rows were
//!    deleted or the table truncated, and the run reconciles.
//! 3. A reconcile (asked for, or after the count) reads the rows of the sync entries back a page at a
//!    time, hashes them as they were hashed when written, and marks the entries whose rows are missing
//!    or changed stale: the run that follows, a full read, writes exactly those rows again. Memory holds
//!    one page of entries and rows.

use std::collections::HashMap;

use sluice_core::drift::{compare, count_check, identity_changed, CountCheck, TableState};
use sluice_core::hash::{hash_row, RowHash};
use sluice_core::sync::SyncKey;
use sluice_destinations::Destination;

use super::{Prepared, RunContext};
use crate::error::{EngineError, Result};

/// How a run treats the table before writing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunMode {
    /// The checks of identity and row count; a reconcile only when the count says rows are missing.
    #[default]
    Normal,
    /// Reads every row Sluice wrote back and rewrites what differs, whatever the count says.
    Reconcile,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Normal => "normal",
            RunMode::Reconcile => "reconcile",
        }
    }
}

/// What the checks found, for the run's record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Findings {
    /// Sentences for the run's message.
    pub notes: Vec<String>,
    /// Whether the sync state changed, so that the run must read everything.
    pub full_read: bool,
    pub missing: u64,
    pub changed: u64,
}

/// Checks the table against the sync state and repairs the sync state so that the run rewrites what
/// the table lost.
pub(crate) async fn check(
    ctx: &RunContext,
    p: &Prepared,
    dest: &dyn Destination,
    mode: RunMode,
) -> Result<Findings> {
    let pid = &p.pipeline.id;
    let table = &p.table.name;
    let store = |e| EngineError::store("reading the sync state failed", e);
    let write_store = |e| EngineError::store("recording the sync state failed", e);
    let dest_error = |e| EngineError::destination(&format!("checking `{table}` failed"), e);
    let mut findings = Findings::default();

    let current = dest.table_identity(table).await.map_err(dest_error)?;
    let stored = ctx.sync.sync_table_identity(pid).await.map_err(store)?;
    let recorded = TableState::parse(stored.as_deref());
    // Read before the count, so that a deletion after it moves the marker away from the one recorded.
    let marker = dest.change_marker(&p.target).await.map_err(dest_error)?;
    let mut state = TableState {
        identity: current.clone(),
        marker: None,
    };
    if identity_changed(recorded.identity.as_deref(), current.as_deref()) {
        tracing::warn!(pipeline = %pid, table = %table, "the table was dropped and created again; resetting the sync state");
        ctx.sync.sync_clear(pid).await.map_err(write_store)?;
        findings
            .notes
            .push(format!("table `{table}` was recreated; all rows rewritten"));
        findings.full_read = true;
    }
    if findings.full_read {
        record_state(ctx, pid, &state, stored.as_deref()).await?;
        return Ok(findings);
    }

    let mut reconcile = mode == RunMode::Reconcile;
    if !reconcile && !recorded.count_unneeded(marker.as_deref()) {
        let live = ctx.sync.sync_count(pid).await.map_err(store)?;
        let left = ctx.sync.sync_count_left(pid).await.map_err(store)?;
        if live + left > 0 {
            let rows = dest.count_rows(&p.target).await.map_err(dest_error)?;
            if let CountCheck::Missing { table: n, believed } = count_check(rows, live, left) {
                tracing::warn!(pipeline = %pid, table = %table, rows = n, believed, "rows are missing from the table; reconciling");
                findings.notes.push(format!(
                    "table `{table}` holds {n} rows where Sluice keeps {believed}; reconciled before writing"
                ));
                reconcile = true;
            }
        }
    }
    if reconcile {
        reconcile_entries(ctx, p, dest, &mut findings).await?;
        if mode == RunMode::Reconcile {
            findings.notes.push(format!(
                "reconciled `{table}`: {} rows missing and {} rows changed by someone else rewritten",
                findings.missing, findings.changed
            ));
        }
    }
    // The count agreed, was skipped under the same marker, or its difference is now marked for rewriting:
    // the marker read before it is the one later runs compare with.
    state.marker = marker;
    record_state(ctx, pid, &state, stored.as_deref()).await?;
    Ok(findings)
}

/// Records the table's identity and marker when they differ from what is stored.
async fn record_state(
    ctx: &RunContext,
    pid: &str,
    state: &TableState,
    stored: Option<&str>,
) -> Result<()> {
    let text = state.stored();
    if text.is_some() && text.as_deref() != stored {
        ctx.sync
            .set_sync_table_identity(pid, text.as_deref())
            .await
            .map_err(|e| EngineError::store("recording the sync state failed", e))?;
    }
    Ok(())
}

/// Reads the rows of every sync entry back, a page at a time, and marks stale the entries whose rows
/// are missing or differ.
async fn reconcile_entries(
    ctx: &RunContext,
    p: &Prepared,
    dest: &dyn Destination,
    findings: &mut Findings,
) -> Result<()> {
    let pid = &p.pipeline.id;
    let table = &p.table.name;
    let page = ctx
        .config
        .batch_size
        .unwrap_or(sluice_destinations::drift::KEYS_PER_READ)
        .max(1);
    let key_ty = p
        .table
        .column(p.target.key_column())
        .and_then(|c| c.ty.as_ref());
    let key_index = p.target.key_index();
    let mut after: Option<String> = None;
    let (mut sync_time, mut read_time, mut compare_time) = Default::default();
    loop {
        let t = std::time::Instant::now();
        let entries = ctx
            .sync
            .sync_range(pid, after.as_deref(), None, page)
            .await
            .map_err(|e| EngineError::store("reading the sync state failed", e))?;
        sync_time += t.elapsed();
        let Some(last) = entries.last().map(|e| e.profile_id.clone()) else {
            break;
        };
        let t = std::time::Instant::now();
        // A recorded key the column can no longer hold has no row to read: it compares as missing.
        let keys: Vec<_> = entries
            .iter()
            .filter_map(|e| e.key.to_value(key_ty).ok())
            .collect();
        let rows = dest
            .read_rows(&p.target, &keys)
            .await
            .map_err(|e| EngineError::destination(&format!("reading `{table}` back failed"), e))?;
        read_time += t.elapsed();
        let t = std::time::Instant::now();
        let found: HashMap<SyncKey, RowHash> = rows
            .iter()
            .filter_map(|values| {
                let key = SyncKey::from_value(values.get(key_index)?)?;
                Some((key, hash_row(p.seed, values)))
            })
            .collect();
        let repair = compare(entries, &found);
        compare_time += t.elapsed();
        findings.missing += repair.missing;
        findings.changed += repair.changed;
        if !repair.stale.is_empty() || !repair.forget.is_empty() {
            ctx.sync
                .sync_apply(pid, repair.stale, repair.forget)
                .await
                .map_err(|e| EngineError::store("recording the sync state failed", e))?;
            findings.full_read = true;
        }
        after = Some(last);
    }
    let secs = |d: std::time::Duration| d.as_secs_f64();
    tracing::info!(
        pipeline = %pid,
        missing = findings.missing,
        changed = findings.changed,
        sync_read_s = secs(sync_time),
        read_back_s = secs(read_time),
        compare_s = secs(compare_time),
        "reconciled"
    );
    Ok(())
}
