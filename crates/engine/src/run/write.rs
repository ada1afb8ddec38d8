//! Write: the sync decision for a page (see `sluice_core::sync`), then the deletions and the upsert it
//! calls for, retried when the destination fails for a transient reason.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::sync::{decide, Outcome, Verdict};
use sluice_core::{TableDescription, Value};
use sluice_destinations::{upsert_isolating_unconfirmed, Destination, DestinationError, Row};
use sluice_store::{Counts, SyncEntry, SyncState};

use super::dry::{self, DryReport, DryWrite};
use super::failures::ErrorLog;
use super::record::Recorder;
use super::transform::Computed;
use super::Prepared;
use crate::error::{EngineError, Result};
use crate::retry::Retrying;

/// Decides and writes pages one after the other, recording what the destination confirmed.
pub(crate) struct Writer<'a> {
    pub prepared: &'a Prepared,
    pub dest: &'a Retrying<'a>,
    pub sync: Arc<dyn SyncState>,
    pub log: ErrorLog,
    pub recorder: Recorder<'a>,
    /// A dry run's report: the writer then counts and samples instead of writing or recording.
    pub dry: Option<Arc<Mutex<DryReport>>>,
    /// Time spent looking up key holders, deleting and writing.
    pub owners_time: Duration,
    pub delete_time: Duration,
    pub write_time: Duration,
}

impl Writer<'_> {
    /// Decides, deletes, writes and records one page, given the sync entries of the same id range.
    /// `page` may be empty: entries alone are of profiles that were deleted or left the audience.
    pub async fn process(
        &mut self,
        page: &mut [Computed],
        entries: Vec<SyncEntry>,
        counts: &mut Counts,
    ) -> Result<()> {
        let p = self.prepared;
        let pid = p.pipeline.id.as_str();
        // As the table stores it: what messages name and what deletions are typed by.
        let key_col = p.target.key_column();
        let on_leave = p.pipeline.spec.on_leave;

        // The rows' values wait here, by page position, while the decision is made from keys and hashes.
        let mut values: Vec<Option<Vec<Value>>> = Vec::with_capacity(page.len());
        let mut outcomes = Vec::with_capacity(page.len());
        for row in page.iter_mut() {
            counts.read += 1;
            let outcome = match std::mem::replace(&mut row.outcome, Ok(None)) {
                Ok(Some((row_values, key, hash))) => {
                    values.push(Some(row_values));
                    Outcome::Row { key, hash }
                }
                Ok(None) => {
                    values.push(None);
                    Outcome::Skipped
                }
                Err(e) => {
                    values.push(None);
                    self.log.add("transform", e.to_string(), &row.id);
                    Outcome::Failed
                }
            };
            outcomes.push(outcome);
        }
        let ids = page.iter().map(|c| c.id.as_str());
        let mut decision = decide(ids.zip(outcomes), entries, p.key_is_profile_id)
            .map_err(|e| EngineError::internal(e.to_string()))?;

        // Keys held by other profiles in the sync state (see `Decision::arbitrate`).
        let keys = decision.keys_to_check();
        if !keys.is_empty() {
            let t = Instant::now();
            let owners = self
                .sync
                .sync_owners(pid, &keys)
                .await
                .map_err(|e| EngineError::store("reading the sync state failed", e))?;
            self.owners_time += t.elapsed();
            decision.arbitrate(&owners);
        }
        for (i, verdict) in decision.verdicts.iter().enumerate() {
            match verdict {
                Verdict::Unchanged => counts.unchanged += 1,
                // A profile the transformation skipped is treated as filtered out.
                Verdict::Skipped => counts.filtered_out += 1,
                Verdict::TransformFailed => counts.transform_failed += 1,
                Verdict::NullKey | Verdict::KeyTaken { .. } => {
                    counts.failed += 1;
                    let message = verdict.failure(key_col).unwrap_or_default();
                    self.log.add("write", message, decision.id(i));
                }
                Verdict::Write { .. } => {}
            }
        }

        let deletions = decision.deletions(on_leave);
        if let Some(report) = self.dry.clone() {
            let deletes = key_values(&p.table, key_col, &deletions);
            let writes: Vec<DryWrite> = decision
                .writes()
                .map(|i| DryWrite {
                    profile: decision.id(i).to_string(),
                    known: matches!(decision.verdicts[i], Verdict::Write { update: true, .. }),
                    row: values[i].take().unwrap_or_default(),
                })
                .collect();
            return dry::write(p, self.dest, &report, writes, deletes, counts).await;
        }
        if !deletions.is_empty() {
            // Deletions go after every row written before them, as they would without deferral.
            self.recorder.confirm().await?;
            let keys = key_values(&p.table, key_col, &deletions);
            if !keys.is_empty() {
                let t = Instant::now();
                let n = self
                    .dest
                    .delete(&p.target, &keys)
                    .await
                    .map_err(|e| write_failure(&p.table.name, e))?;
                counts.deleted += n;
                self.delete_time += t.elapsed();
            }
        }

        let writes: Vec<usize> = decision.writes().collect();
        let mut rejected = HashSet::new();
        if !writes.is_empty() {
            let rows: Vec<Row> = writes
                .iter()
                .map(|&i| Row {
                    values: values[i].take().unwrap_or_default(),
                })
                .collect();
            let t = Instant::now();
            // A destination that does not defer confirmation stores the rows here, as `upsert` would.
            let (written, refused) = upsert_isolating_unconfirmed(self.dest, &p.target, &rows)
                .await
                .map_err(|e| write_failure(&p.table.name, e))?;
            self.write_time += t.elapsed();
            if self.dest.capabilities().reports_upsert_counts {
                counts.inserted += written.inserted;
                counts.updated += written.updated;
            }
            for r in refused {
                let position = writes[r.index];
                counts.failed += 1;
                self.log.add("write", r.message, decision.id(position));
                rejected.insert(position);
            }
        }
        let records = decision.into_records(on_leave, &rejected);
        // When the destination cannot tell inserts from updates, the sync state does: a key it knows is
        // an update.
        if !self.dest.capabilities().reports_upsert_counts {
            counts.inserted += records.inserted;
            counts.updated += records.updated;
        }
        self.recorder.record(records.upserts, records.deletes).await
    }
}

/// The values of the key column for `keys`, to delete their rows. A recorded key that the column can no
/// longer hold (its type changed since) has no row to delete: it is left out.
fn key_values(
    table: &TableDescription,
    key_col: &str,
    keys: &[sluice_core::sync::SyncKey],
) -> Vec<Value> {
    let ty = table.column(key_col).and_then(|c| c.ty.as_ref());
    keys.iter()
        .filter_map(|k| match k.to_value(ty) {
            Ok(v) => Some(v),
            Err(why) => {
                tracing::warn!(table = %table.name, column = key_col, "{why}; no row to delete");
                None
            }
        })
        .collect()
}

fn write_failure(table: &str, e: DestinationError) -> EngineError {
    let context = match e.kind {
        sluice_destinations::ErrorKind::NotFound
        | sluice_destinations::ErrorKind::SchemaMismatch => {
            format!("table `{table}` changed during the run")
        }
        _ => format!("writing to `{table}` failed"),
    };
    EngineError::destination(&context, e)
}
