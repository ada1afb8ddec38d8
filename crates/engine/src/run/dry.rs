//! Dry runs: a run that decides everything a real run would and writes nothing anywhere.
//!
//! The run's body is the real one; what it may change is taken away from it by construction:
//!
//! - its sync state is a [`DryState`]: reads go to the pipeline's real sync state, and every write (a
//!   reset after the table was recreated, entries a reconcile marks stale, checkpoints, the table's
//!   identity) goes to an overlay in memory that later reads of the same run see;
//! - its run record goes to the dry-run table ([`DryRunLog`]), never to the history, so a dry run is
//!   never a pipeline's last run, holds no run slot of the pipeline and raises no alert;
//! - the writer counts what it would write, delete and leave, and keeps a few sample rows of each kind
//!   ([`DryReport`]) instead of calling the destination (`run/write.rs`).
//!
//! What a dry run cannot know: values the database would refuse (a real run finds them only by writing)
//! count as written.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use sluice_core::Value;
use sluice_destinations::drift::KEYS_PER_READ;
use sluice_destinations::Destination;
use sluice_store::{
    Counts, Result as StoreResult, RunLog, RunRecord, SyncCheckpoint, SyncEntry, SyncKey, SyncState,
};

use super::Prepared;
use crate::error::{EngineError, Result};

/// How many sample rows a dry run keeps of each kind.
pub const DRY_RUN_SAMPLES: usize = 5;

/// A row a dry run would insert: its profile, key and the values of the mapped columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsertSample {
    pub profile: String,
    pub key: Json,
    pub row: Map<String, Json>,
}

/// A column of a row a dry run would update, as the table holds it and as it would be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnChange {
    pub column: String,
    pub before: Json,
    pub after: Json,
}

/// A row a dry run would update, with the columns that differ from the row in the table (read back
/// from it; empty when the row could not be read, e.g. it is missing and a real run writes it again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSample {
    pub profile: String,
    pub key: Json,
    pub changes: Vec<ColumnChange>,
}

/// A row a dry run would delete, by its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteSample {
    pub key: Json,
}

/// What a dry run found besides its counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DryReport {
    pub inserts: Vec<InsertSample>,
    pub updates: Vec<UpdateSample>,
    pub deletes: Vec<DeleteSample>,
}

/// A dry run as stored and answered: the run (status, counts, errors, message) and its samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRunRecord {
    pub run: RunRecord,
    pub samples: DryReport,
}

/// Writes a dry run's record, with its samples, to the dry-run table instead of the history.
pub(crate) struct DryRunLog {
    pub inner: Arc<dyn RunLog>,
    pub report: Arc<Mutex<DryReport>>,
    /// The pipeline the dry run is of, when it is saved.
    pub pipeline: Option<String>,
}

impl DryRunLog {
    async fn put(&self, run: &RunRecord) -> StoreResult<()> {
        let record = DryRunRecord {
            run: run.clone(),
            samples: self.report.lock().unwrap().clone(),
        };
        let text = serde_json::to_string(&record).map_err(|e| {
            sluice_store::StoreError::Backend(format!("encoding the dry run failed: {e}"))
        })?;
        self.inner
            .put_dry_run(&run.id, self.pipeline.as_deref(), Utc::now(), &text)
            .await
    }
}

#[async_trait]
impl RunLog for DryRunLog {
    async fn insert_run(&self, run: &RunRecord) -> StoreResult<()> {
        self.put(run).await
    }
    async fn update_run(&self, run: &RunRecord) -> StoreResult<()> {
        self.put(run).await
    }
    async fn update_run_progress(&self, run: &RunRecord) -> StoreResult<bool> {
        self.put(run).await.map(|()| true)
    }
    async fn get_run(&self, id: &str) -> StoreResult<Option<RunRecord>> {
        self.inner.get_run(id).await
    }
    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Vec<RunRecord>> {
        self.inner.list_runs(pipeline, limit, before).await
    }
    async fn unfinished_runs(&self) -> StoreResult<Vec<RunRecord>> {
        self.inner.unfinished_runs().await
    }
    async fn put_dry_run(
        &self,
        id: &str,
        pipeline: Option<&str>,
        at: DateTime<Utc>,
        record: &str,
    ) -> StoreResult<()> {
        self.inner.put_dry_run(id, pipeline, at, record).await
    }
    async fn get_dry_run(&self, id: &str) -> StoreResult<Option<String>> {
        self.inner.get_dry_run(id).await
    }
}

/// What a dry run changed of its sync state, kept in memory.
#[derive(Default)]
struct Overlay {
    /// Every entry forgotten (the table was recreated, or the pipeline is not saved yet).
    cleared: bool,
    /// Entries replaced (`Some`) or removed (`None`), by profile id.
    entries: BTreeMap<String, Option<SyncEntry>>,
    /// Changes to the counts of live and left entries the overlay makes.
    live_delta: i64,
    left_delta: i64,
    checkpoint: Option<Option<SyncCheckpoint>>,
    identity: Option<Option<String>>,
}

/// A pipeline's sync state as a dry run sees it: the real one, under the run's own changes.
pub(crate) struct DryState {
    inner: Arc<dyn SyncState>,
    overlay: Mutex<Overlay>,
}

impl DryState {
    /// `fresh`: the definition is not saved yet, so it has no sync state of its own.
    pub fn new(inner: Arc<dyn SyncState>, fresh: bool) -> Self {
        Self {
            inner,
            overlay: Mutex::new(Overlay {
                cleared: fresh,
                ..Overlay::default()
            }),
        }
    }

    fn cleared(&self) -> bool {
        self.overlay.lock().unwrap().cleared
    }

    /// Entries as the overlay has them.
    fn overlaid(&self, entries: Vec<SyncEntry>) -> Vec<SyncEntry> {
        let o = self.overlay.lock().unwrap();
        if o.entries.is_empty() {
            return entries;
        }
        entries
            .into_iter()
            .filter_map(|e| match o.entries.get(&e.profile_id) {
                Some(replaced) => replaced.clone(),
                None => Some(e),
            })
            .collect()
    }
}

#[async_trait]
impl SyncState for DryState {
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<SyncEntry>> {
        if self.cleared() || limit == 0 {
            return Ok(Vec::new());
        }
        // Callers take a short page for the end of the range: entries the overlay removed must not make
        // one, so pages are read until `limit` entries remain or the range ends.
        let mut out = Vec::new();
        let mut cursor = after.map(str::to_string);
        loop {
            let page = self
                .inner
                .sync_range(pipeline, cursor.as_deref(), upto, limit)
                .await?;
            let ended = page.len() < limit;
            cursor = page.last().map(|e| e.profile_id.clone()).or(cursor);
            out.extend(self.overlaid(page));
            if ended || out.len() >= limit {
                out.truncate(limit);
                return Ok(out);
            }
        }
    }

    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> StoreResult<Vec<SyncEntry>> {
        if self.cleared() {
            return Ok(Vec::new());
        }
        let wanted: HashSet<&SyncKey> = keys.iter().collect();
        // An entry the overlay replaced keeps its key (a reconcile only marks rows stale).
        Ok(self
            .overlaid(self.inner.sync_owners(pipeline, keys).await?)
            .into_iter()
            .filter(|e| wanted.contains(&e.key))
            .collect())
    }

    async fn sync_apply(
        &self,
        pipeline: &str,
        upserts: Vec<SyncEntry>,
        deletes: Vec<String>,
    ) -> StoreResult<()> {
        if self.cleared() {
            // Nothing to change under a cleared state; a dry run records no written rows.
            return Ok(());
        }
        let ids: Vec<String> = deletes
            .iter()
            .cloned()
            .chain(upserts.iter().map(|e| e.profile_id.clone()))
            .collect();
        let before = self.sync_get(pipeline, &ids).await?;
        let mut o = self.overlay.lock().unwrap();
        let mut count = |e: &SyncEntry, sign: i64| {
            if e.left {
                o.left_delta += sign;
            } else {
                o.live_delta += sign;
            }
        };
        for e in &before {
            count(e, -1);
        }
        for e in &upserts {
            count(e, 1);
        }
        for id in deletes {
            o.entries.insert(id, None);
        }
        for e in upserts {
            o.entries.insert(e.profile_id.clone(), Some(e));
        }
        Ok(())
    }

    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> StoreResult<Vec<SyncEntry>> {
        if self.cleared() {
            return Ok(Vec::new());
        }
        Ok(self.overlaid(self.inner.sync_get(pipeline, ids).await?))
    }

    async fn sync_clear(&self, _pipeline: &str) -> StoreResult<()> {
        let mut o = self.overlay.lock().unwrap();
        *o = Overlay {
            cleared: true,
            checkpoint: Some(None),
            identity: o.identity.take(),
            ..Overlay::default()
        };
        Ok(())
    }

    async fn sync_count(&self, pipeline: &str) -> StoreResult<u64> {
        if self.cleared() {
            return Ok(0);
        }
        let n = self.inner.sync_count(pipeline).await?;
        let delta = self.overlay.lock().unwrap().live_delta;
        Ok(n.saturating_add_signed(delta))
    }

    async fn sync_count_left(&self, pipeline: &str) -> StoreResult<u64> {
        if self.cleared() {
            return Ok(0);
        }
        let n = self.inner.sync_count_left(pipeline).await?;
        let delta = self.overlay.lock().unwrap().left_delta;
        Ok(n.saturating_add_signed(delta))
    }

    async fn sync_checkpoint(&self, pipeline: &str) -> StoreResult<Option<SyncCheckpoint>> {
        let (cleared, set) = {
            let o = self.overlay.lock().unwrap();
            (o.cleared, o.checkpoint.clone())
        };
        match set {
            Some(cp) => Ok(cp),
            None if cleared => Ok(None),
            None => self.inner.sync_checkpoint(pipeline).await,
        }
    }

    async fn set_sync_checkpoint(
        &self,
        _pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> StoreResult<()> {
        self.overlay.lock().unwrap().checkpoint = Some(checkpoint.cloned());
        Ok(())
    }

    async fn sync_table_identity(&self, pipeline: &str) -> StoreResult<Option<String>> {
        let set = self.overlay.lock().unwrap().identity.clone();
        match set {
            Some(identity) => Ok(identity),
            None => self.inner.sync_table_identity(pipeline).await,
        }
    }

    async fn set_sync_table_identity(
        &self,
        _pipeline: &str,
        identity: Option<&str>,
    ) -> StoreResult<()> {
        self.overlay.lock().unwrap().identity = Some(identity.map(str::to_string));
        Ok(())
    }
}

/// A row a dry run would write.
pub(crate) struct DryWrite {
    pub profile: String,
    /// Whether the sync state knows a row under its key (an update, by the sync state's reckoning).
    pub known: bool,
    pub row: Vec<Value>,
}

/// What a dry run does in place of a page's deletions and writes: counts them as a real run would and
/// keeps a few samples of each kind.
///
/// A destination that counts its own inserts and updates (an upsert tells them apart) gives a real run
/// its counts from the table: the dry run reads the written keys back to count the same way (a table
/// recreated behind Sluice's back holds none of them). Elsewhere the sync state's reckoning is the
/// real run's too.
pub(crate) async fn write(
    p: &Prepared,
    dest: &dyn Destination,
    report: &Mutex<DryReport>,
    writes: Vec<DryWrite>,
    deletes: Vec<Value>,
    counts: &mut Counts,
) -> Result<()> {
    counts.deleted += deletes.len() as u64;
    let key_index = p.target.key_index();
    let key_of = |row: &[Value]| row.get(key_index).and_then(SyncKey::from_value);
    let (want_inserts, want_updates) = {
        let r = report.lock().unwrap();
        (
            DRY_RUN_SAMPLES.saturating_sub(r.inserts.len()),
            DRY_RUN_SAMPLES.saturating_sub(r.updates.len()),
        )
    };
    let from_table = dest.capabilities().reports_upsert_counts;
    // The rows the table holds, by key: of every written row when counts come from the table, else of
    // the update samples only (to say which columns change).
    let read: Vec<&DryWrite> = if from_table {
        writes.iter().collect()
    } else {
        writes
            .iter()
            .filter(|w| w.known)
            .take(want_updates)
            .collect()
    };
    let mut stored: HashMap<SyncKey, Vec<Value>> = HashMap::new();
    for chunk in read.chunks(KEYS_PER_READ) {
        let keys: Vec<Value> = chunk
            .iter()
            .filter_map(|w| w.row.get(key_index).cloned())
            .collect();
        let table = &p.table.name;
        let rows = dest
            .read_rows(&p.target, &keys)
            .await
            .map_err(|e| EngineError::destination(&format!("reading `{table}` failed"), e))?;
        stored.extend(rows.into_iter().filter_map(|r| Some((key_of(&r)?, r))));
    }

    let columns = &p.target.columns;
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    for w in writes {
        let before = key_of(&w.row).and_then(|k| stored.get(&k));
        let update = if from_table {
            before.is_some()
        } else {
            w.known
        };
        let key = w
            .row
            .get(key_index)
            .map(Value::to_json)
            .unwrap_or(Json::Null);
        if update {
            counts.updated += 1;
            if updates.len() < want_updates {
                let changes = before
                    .map(|before| {
                        columns
                            .iter()
                            .zip(before.iter().zip(&w.row))
                            .map(|(c, (b, a))| (c, b.to_json(), a.to_json()))
                            .filter(|(_, b, a)| b != a)
                            .map(|(c, before, after)| ColumnChange {
                                column: c.clone(),
                                before,
                                after,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                updates.push(UpdateSample {
                    profile: w.profile,
                    key,
                    changes,
                });
            }
        } else {
            counts.inserted += 1;
            if inserts.len() < want_inserts {
                inserts.push(InsertSample {
                    profile: w.profile,
                    key,
                    row: columns
                        .iter()
                        .cloned()
                        .zip(w.row.iter().map(Value::to_json))
                        .collect(),
                });
            }
        }
    }
    let mut r = report.lock().unwrap();
    r.inserts.extend(inserts);
    r.updates.extend(updates);
    let room = DRY_RUN_SAMPLES.saturating_sub(r.deletes.len());
    r.deletes.extend(
        deletes
            .iter()
            .take(room)
            .map(|k| DeleteSample { key: k.to_json() }),
    );
    Ok(())
}
