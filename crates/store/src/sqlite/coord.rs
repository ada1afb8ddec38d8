//! Run leases and schedule state in SQLite (see `crate::coord`). One process owns the file, so leases
//! only matter for runs a previous, killed process left behind; the same rules keep both backends alike.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use sluice_core::schedule::TickState;

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::runs::{run_from_row, RUN_COLUMNS};
use super::SqliteMetadata;
use crate::coord::{Coordination, Held, LOST_MESSAGE};
use crate::{codec, Result, RunRecord, StoreError};

fn lease_end(lease: Duration) -> i64 {
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    micros(&(codec::now() + lease))
}

#[async_trait]
impl Coordination for SqliteMetadata {
    fn shared(&self) -> bool {
        false
    }

    async fn claim_run(
        &self,
        run: &RunRecord,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<String>> {
        let run = run.clone();
        let owner = owner.to_string();
        self.db
            .write(move |c| {
                let inserted = c.execute(
                    &format!(
                        "INSERT INTO runs ({RUN_COLUMNS}, owner, lease_until)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
                    ),
                    params![
                        run.id,
                        run.pipeline,
                        run.trigger,
                        run.status.as_str(),
                        micros(&run.queued_at),
                        run.started_at.as_ref().map(micros),
                        run.finished_at.as_ref().map(micros),
                        codec::to_i64(run.progress.processed),
                        run.progress.total.map(codec::to_i64),
                        codec::counts_to_json(&run.counts),
                        codec::errors_to_json(&run.errors),
                        run.message,
                        codec::changes_to_json(run.changes.as_ref()),
                        owner,
                        lease_end(lease),
                    ],
                );
                match inserted {
                    Ok(_) => Ok(None),
                    Err(e) => match violation(&e) {
                        Some(Violation::Unique(m)) if m.contains("runs.pipeline") => {
                            let holder: Option<String> = c
                                .query_row(
                                    "SELECT id FROM runs WHERE pipeline = ?1 AND status IN ('queued', 'running')",
                                    [&run.pipeline],
                                    |r| r.get(0),
                                )
                                .optional()
                                .map_err(sql_error)?;
                            Ok(Some(holder.unwrap_or_else(|| "(just finished)".into())))
                        }
                        Some(Violation::Unique(_)) => Err(StoreError::Conflict(format!(
                            "a run with id `{}` already exists",
                            run.id
                        ))),
                        Some(Violation::ForeignKey) => Err(StoreError::NotFound(format!(
                            "pipeline `{}` does not exist",
                            run.pipeline
                        ))),
                        None => Err(sql_error(e)),
                    },
                }
            })
            .await
    }

    async fn heartbeat(&self, owner: &str, lease: Duration) -> Result<Vec<Held>> {
        let owner = owner.to_string();
        self.db
            .write(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "UPDATE runs SET lease_until = ?2
                         WHERE owner = ?1 AND status IN ('queued', 'running') RETURNING id, cancel_requested",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, params![owner, lease_end(lease)], |r| {
                    Ok(Held {
                        run: r.get(0).map_err(sql_error)?,
                        cancel_requested: r.get::<_, i64>(1).map_err(sql_error)? != 0,
                    })
                })
            })
            .await
    }

    async fn request_cancel(&self, run: &str) -> Result<bool> {
        let run = run.to_string();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE runs SET cancel_requested = 1 WHERE id = ?1 AND status IN ('queued', 'running')",
                        [&run],
                    )
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }

    async fn reap_expired(&self) -> Result<Vec<RunRecord>> {
        self.db
            .write(move |c| {
                let now = micros(&codec::now());
                let mut stmt = c
                    .prepare_cached(&format!(
                        "UPDATE runs SET status = 'failed', finished_at = ?1, message = ?2
                         WHERE status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < ?1)
                         RETURNING {RUN_COLUMNS}"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, params![now, LOST_MESSAGE], run_from_row)
            })
            .await
    }

    async fn reap_owner(&self, owner: &str, message: &str) -> Result<Vec<RunRecord>> {
        let owner = owner.to_string();
        let message = message.to_string();
        self.db
            .write(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "UPDATE runs SET status = 'failed', finished_at = ?3, message = ?2
                         WHERE owner = ?1 AND status IN ('queued', 'running')
                         RETURNING {RUN_COLUMNS}"
                    ))
                    .map_err(sql_error)?;
                collect(
                    &mut stmt,
                    params![owner, message, micros(&codec::now())],
                    run_from_row,
                )
            })
            .await
    }

    async fn tick_states(&self) -> Result<Vec<(String, TickState)>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT pipeline, last_tick, pending FROM schedules")
                    .map_err(sql_error)?;
                collect(&mut stmt, [], |r| {
                    let last: Option<i64> = r.get(1).map_err(sql_error)?;
                    Ok((
                        r.get(0).map_err(sql_error)?,
                        TickState {
                            last_tick: last.map(time).transpose()?,
                            pending: r.get::<_, i64>(2).map_err(sql_error)? != 0,
                        },
                    ))
                })
            })
            .await
    }

    async fn advance_tick(
        &self,
        pipeline: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool> {
        let pipeline = pipeline.to_string();
        self.db
            .write(move |c| {
                let stored: Option<(Option<i64>, i64)> = c
                    .query_row(
                        "SELECT last_tick, pending FROM schedules WHERE pipeline = ?1",
                        [&pipeline],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                let current = match stored {
                    None => TickState::default(),
                    Some((last, pending)) => TickState {
                        last_tick: last.map(time).transpose()?,
                        pending: pending != 0,
                    },
                };
                if current != expected {
                    return Ok(false);
                }
                let n = c.execute(
                    "INSERT INTO schedules (pipeline, last_tick, pending)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = ?1)
                     ON CONFLICT (pipeline) DO UPDATE SET last_tick = excluded.last_tick, pending = excluded.pending",
                    params![pipeline, next.last_tick.as_ref().map(micros), i64::from(next.pending)],
                );
                match n {
                    Ok(n) => Ok(n > 0),
                    Err(e) if matches!(violation(&e), Some(Violation::ForeignKey)) => Ok(false),
                    Err(e) => Err(sql_error(e)),
                }
            })
            .await
    }

    async fn change_cursors(&self) -> Result<Vec<(String, String)>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT pipeline, cursor FROM change_cursors")
                    .map_err(sql_error)?;
                collect(&mut stmt, [], |r| {
                    Ok((r.get(0).map_err(sql_error)?, r.get(1).map_err(sql_error)?))
                })
            })
            .await
    }

    async fn advance_change_cursor(
        &self,
        pipeline: &str,
        expected: Option<&str>,
        next: Option<&str>,
    ) -> Result<bool> {
        let pipeline = pipeline.to_string();
        let expected = expected.map(str::to_string);
        let next = next.map(str::to_string);
        self.db
            .write(move |c| {
                let n = match (&expected, &next) {
                    (None, None) => return Ok(true),
                    (None, Some(next)) => c.execute(
                        "INSERT INTO change_cursors (pipeline, cursor)
                         SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = ?1)
                         ON CONFLICT (pipeline) DO NOTHING",
                        params![pipeline, next],
                    ),
                    (Some(expected), Some(next)) => c.execute(
                        "UPDATE change_cursors SET cursor = ?2 WHERE pipeline = ?1 AND cursor = ?3",
                        params![pipeline, next, expected],
                    ),
                    (Some(expected), None) => c.execute(
                        "DELETE FROM change_cursors WHERE pipeline = ?1 AND cursor = ?2",
                        params![pipeline, expected],
                    ),
                };
                match n {
                    Ok(n) => Ok(n > 0),
                    Err(e) if matches!(violation(&e), Some(Violation::ForeignKey)) => Ok(false),
                    Err(e) => Err(sql_error(e)),
                }
            })
            .await
    }

    async fn last_reconcile(&self, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
        let pipeline = pipeline.to_string();
        self.db
            .read(move |c| {
                let at: Option<i64> = c
                    .query_row(
                        "SELECT started_at FROM reconciles WHERE pipeline = ?1",
                        [&pipeline],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_error)?;
                at.map(time).transpose()
            })
            .await
    }

    async fn record_reconcile(&self, pipeline: &str, at: DateTime<Utc>) -> Result<()> {
        let pipeline = pipeline.to_string();
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO reconciles (pipeline, started_at)
                     SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM pipelines WHERE id = ?1)
                     ON CONFLICT (pipeline) DO UPDATE SET started_at = excluded.started_at",
                    params![pipeline, micros(&at)],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }
}
