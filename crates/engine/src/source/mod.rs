//! Source pipelines: a table or a query of a connection read into the profile store.
//!
//! [`check_source`] is the one check of a source (saving, previewing and every run go through it);
//! [`rows`] holds the pure steps from a source row to the properties it writes; `run` is a run. Source
//! runs are claimed, leased, limited by the global run slots and by their connection's
//! (`max_runs_per_destination`, counted with the export runs writing to the same connection), cancelled
//! like export runs, and alert as they do (`crate::alerts`); their records live in the same history
//! (see `sluice_store::Sources`).
//!
//! Merging: a source writes only the properties it maps, merged into the stored profile by `_id`
//! (`ProfileStore::upsert`), so several sources can feed one profile, each with its own properties.
//! `full` mode with `on_missing: delete` deletes a profile whose source row disappeared only when no
//! other source has written it; otherwise this source only forgets it (its properties stay as last
//! written: the profile store keeps no record of which source wrote which property).

mod check;
pub mod rows;
mod run;
pub mod schedule;

use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use sluice_core::source::SourceSpec;
use sluice_store::{Counts, Progress, RunRecord, RunStatus, SourceRecord};
use sluice_transform::Output;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub use check::{check_source, check_source_with, CheckedSource};
pub use run::DEFAULT_PAGE_ROWS;

use crate::error::{EngineError, Result};
use crate::{new_id, Active, Engine, StartError, Stop};

/// One sample row of a source preview: the source row, the properties it would write, and why it would
/// fail when it would.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourcePreviewRow {
    /// The profile id (`null` when the id column is NULL).
    pub id: Option<String>,
    /// The source row, column by column.
    pub row: Map<String, Json>,
    /// The properties the row would write (nested by path); `null` when it fails or is skipped.
    pub properties: Option<Map<String, Json>>,
    /// Why the row would fail (transformation or Customer Model), one message each.
    pub errors: Vec<String>,
    /// The script returned null for the row: it writes nothing.
    pub skipped: bool,
}

/// The first `limit` rows of the source of `spec` (saved or not), transformed and validated as a run
/// would; writes nothing.
pub async fn preview_source(
    engine: &Engine,
    spec: &SourceSpec,
    limit: usize,
) -> Result<Vec<SourcePreviewRow>> {
    let checked = check_source(engine.meta().as_ref(), spec, engine.config().script_limits).await?;
    let sample = checked
        .reader
        .sample(&checked.from, limit.clamp(1, 100))
        .await
        .map_err(|e| EngineError::destination("reading the source's sample failed", e))?;
    let id_index = sample
        .schema
        .resolve(&spec.id_column)
        .map_err(|e| EngineError::destination("reading the source's sample failed", e))?;
    let now = Utc::now();
    let mut out = Vec::with_capacity(sample.rows.len());
    let mut inputs = Vec::new();
    for r in &sample.rows {
        let row: Map<String, Json> = sample
            .schema
            .columns
            .iter()
            .zip(r)
            .map(|(c, v)| (c.name.clone(), v.to_json()))
            .collect();
        let id = rows::id_text(&r[id_index]);
        let mut errors = Vec::new();
        if id.is_none() {
            errors.push(format!(
                "the id column `{}` is NULL: the row is not read",
                spec.id_column
            ));
        }
        inputs.push(
            id.as_ref()
                .map(|id| rows::input_profile(&sample.schema, r, id.clone(), now)),
        );
        out.push(SourcePreviewRow {
            id,
            row,
            properties: None,
            errors,
            skipped: false,
        });
    }
    let profiles: Vec<_> = inputs.iter().flatten().cloned().collect();
    let transform = checked.transform.clone();
    let evaluated = {
        let profiles = profiles.clone();
        tokio::task::spawn_blocking(move || {
            transform
                .evaluator()
                .map(|mut e| e.eval_batch(&profiles, now))
        })
        .await
        .map_err(|e| EngineError::internal(format!("the transformation stopped: {e}")))?
        .map_err(EngineError::internal)?
    };
    let paths = rows::PropertyPaths::new(checked.transform.columns());
    let mut evaluated = evaluated.into_iter();
    for (slot, input) in out.iter_mut().zip(&inputs) {
        let Some(input) = input else { continue };
        match evaluated.next().expect("one output per input") {
            Ok(Output::Skip) => slot.skipped = true,
            Ok(Output::Row(values)) => {
                match rows::validated(&paths, &checked.model, &input.id, values) {
                    Ok(entries) => {
                        let doc = entries.into_iter().map(|(k, v)| (k.to_string(), v));
                        slot.properties = Some(doc.collect());
                    }
                    Err(e) => slot.errors.push(e),
                }
            }
            Err(e) => slot.errors.push(e.to_string()),
        }
    }
    Ok(out)
}

impl Engine {
    /// Starts a run of the source `source_id` and returns it (`running`, or `queued` while the run
    /// slots are taken). The run goes on in the background. Refused as pipelines' runs are: absent,
    /// disabled, or already running here or on another instance.
    pub async fn start_source(
        &self,
        source_id: &str,
        trigger: &str,
    ) -> std::result::Result<RunRecord, StartError> {
        let source = self
            .inner
            .meta
            .get_source(source_id)
            .await?
            .ok_or_else(|| StartError::NotFound(source_id.to_string()))?;
        if !source.spec.enabled {
            return Err(StartError::Disabled(source.spec.name.clone()));
        }
        if let Some(run) = self.active_run(&source.id) {
            return Err(StartError::AlreadyRunning {
                name: source.spec.name.clone(),
                run,
            });
        }
        // A source's connection is a destination record: its runs share the connection's slots with
        // the export runs writing to it, taken first as those take them.
        let conn_slots = self.destination_slots(&source.spec.connection);
        let conn_permit = conn_slots.clone().try_acquire_owned().ok();
        let permit = conn_permit
            .as_ref()
            .and_then(|_| self.inner.slots.clone().try_acquire_owned().ok());
        // To the microsecond, as the store keeps it: the live record and the stored one agree.
        let now = Utc::now().trunc_subsecs(6);
        let ready = permit.is_some();
        let record = RunRecord {
            id: new_id("run"),
            pipeline: source.id.clone(),
            trigger: trigger.to_string(),
            changes: None,
            status: if ready {
                RunStatus::Running
            } else {
                RunStatus::Queued
            },
            queued_at: now,
            started_at: ready.then_some(now),
            finished_at: None,
            progress: Progress::default(),
            counts: Counts::default(),
            errors: Vec::new(),
            message: None,
        };
        if let Some(run) = self
            .inner
            .meta
            .claim_run(&record, &self.inner.instance, self.inner.config.lease)
            .await?
        {
            return Err(StartError::AlreadyRunning {
                name: source.spec.name.clone(),
                run,
            });
        }
        let stop = Stop::default();
        let (tx, rx) = watch::channel(record.clone());
        self.inner.active.lock().unwrap().insert(
            source.id.clone(),
            Active {
                run_id: record.id.clone(),
                stop: stop.clone(),
                updates: rx,
            },
        );
        tracing::info!(run = %record.id, source = %source.id, trigger, queued = !ready, "source run claimed");
        let engine = self.clone();
        let run = record.clone();
        tokio::spawn(async move {
            let slots = (conn_permit, permit);
            engine
                .drive_source(source, run, slots, conn_slots, stop, tx)
                .await;
        });
        Ok(record)
    }

    async fn drive_source(
        &self,
        source: SourceRecord,
        mut run: RunRecord,
        slots: (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>),
        conn_slots: Arc<Semaphore>,
        stop: Stop,
        tx: watch::Sender<RunRecord>,
    ) {
        let Stop { cancel, wake } = stop;
        let permit = match slots {
            (Some(c), Some(g)) => Some((c, g)),
            (conn, _) => {
                let global = self.inner.slots.clone();
                let acquire = async move {
                    let c = match conn {
                        Some(c) => c,
                        None => conn_slots.acquire_owned().await.ok()?,
                    };
                    let g = global.acquire_owned().await.ok()?;
                    Some((c, g))
                };
                tokio::select! {
                    p = acquire => p,
                    _ = wake.notified() => None,
                }
            }
        };
        let done = match permit {
            Some(_permit) if !cancel.load(std::sync::atomic::Ordering::SeqCst) => {
                if run.status == RunStatus::Queued {
                    run.status = RunStatus::Running;
                    run.started_at = Some(Utc::now().trunc_subsecs(6));
                    let _ = tx.send(run.clone());
                    if let Err(e) = self.inner.meta.update_run(&run).await {
                        tracing::warn!(run = %run.id, error = %e, "could not record the run's start");
                    }
                }
                let ctx = run::SourceRunContext {
                    meta: self.inner.meta.clone(),
                    profiles: self.inner.profiles.clone(),
                    config: self.inner.config.clone(),
                    cancel,
                    updates: tx.clone(),
                };
                let done = run::execute(&ctx, &source, run).await;
                self.apply_threshold(done).await
            }
            _ => {
                run.status = RunStatus::Cancelled;
                run.finished_at = Some(Utc::now().trunc_subsecs(6));
                run.message = Some("cancelled before it started".into());
                if let Err(e) = self.inner.meta.update_run(&run).await {
                    tracing::warn!(run = %run.id, error = %e, "could not record the cancelled run");
                }
                run
            }
        };
        tracing::info!(run = %done.id, source = %source.id, status = done.status.as_str(),
            read = done.counts.read, inserted = done.counts.inserted, updated = done.counts.updated,
            unchanged = done.counts.unchanged, deleted = done.counts.deleted, failed = done.counts.failed,
            "source run finished");
        self.inner.totals.record(&done);
        self.inner.active.lock().unwrap().remove(&source.id);
        crate::alerts::after_run(self, &done);
        let _ = tx.send(done);
        // A tick that fell during the run left a follow-up: it starts now, not at the next tick.
        self.wake_sources();
    }
}
