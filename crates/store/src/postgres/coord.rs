//! Run leases and schedule state in PostgreSQL (see `crate::coord`). Lease times use the server's `now()`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sluice_core::schedule::TickState;

use super::pool::{pg_error, rows_to, violation, Violation};
use super::runs::{run_from_row, RUN_COLUMNS};
use super::PgMetadata;
use crate::coord::{Coordination, Held, LOST_MESSAGE};
use crate::{codec, Result, RunRecord, StoreError};

/// The unique partial index that allows one queued or running run per pipeline.
const ONE_UNFINISHED: &str = "sluice_runs_one_unfinished";

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[async_trait]
impl Coordination for PgMetadata {
    fn shared(&self) -> bool {
        true
    }

    async fn claim_run(
        &self,
        run: &RunRecord,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<String>> {
        let conn = self.pool.get().await?;
        let inserted = conn
            .execute(
                &format!(
                    "INSERT INTO sluice_runs ({}, owner, lease_until)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json, $11::text::json, $12,
                             $13::text::json, $14, now() + make_interval(secs => $15))",
                    RUN_COLUMNS.replace("::text", "")
                ),
                &[
                    &run.id,
                    &run.pipeline,
                    &run.trigger,
                    &run.status.as_str(),
                    &run.queued_at,
                    &run.started_at,
                    &run.finished_at,
                    &codec::to_i64(run.progress.processed),
                    &run.progress.total.map(codec::to_i64),
                    &codec::counts_to_json(&run.counts),
                    &codec::errors_to_json(&run.errors),
                    &run.message,
                    &codec::changes_to_json(run.changes.as_ref()),
                    &owner,
                    &seconds(lease),
                ],
            )
            .await;
        match inserted {
            Ok(_) => Ok(None),
            Err(e) => match violation(&e) {
                Some(Violation::Unique(c)) if c == ONE_UNFINISHED => {
                    let holder = conn
                        .query_opt(
                            "SELECT id FROM sluice_runs WHERE pipeline = $1 AND status IN ('queued', 'running')",
                            &[&run.pipeline],
                        )
                        .await
                        .map_err(pg_error)?;
                    // The holder may have finished in between: still report a conflict, not a success.
                    Ok(Some(holder.map_or_else(
                        || "(just finished)".to_string(),
                        |r| r.get(0),
                    )))
                }
                Some(Violation::Unique(_)) => Err(StoreError::Conflict(format!(
                    "a run with id `{}` already exists",
                    run.id
                ))),
                Some(Violation::ForeignKey) => Err(StoreError::NotFound(format!(
                    "pipeline `{}` does not exist",
                    run.pipeline
                ))),
                None => Err(pg_error(e)),
            },
        }
    }

    async fn heartbeat(&self, owner: &str, lease: Duration) -> Result<Vec<Held>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "UPDATE sluice_runs SET lease_until = now() + make_interval(secs => $2)
                 WHERE owner = $1 AND status IN ('queued', 'running') RETURNING id, cancel_requested",
                &[&owner, &seconds(lease)],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| Held {
                run: r.get(0),
                cancel_requested: r.get(1),
            })
            .collect())
    }

    async fn request_cancel(&self, run: &str) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_runs SET cancel_requested = true WHERE id = $1 AND status IN ('queued', 'running')",
                &[&run],
            )
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn reap_expired(&self) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "UPDATE sluice_runs SET status = 'failed', finished_at = now(), message = $1
                     WHERE status IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < now())
                     RETURNING {RUN_COLUMNS}"
                ),
                &[&LOST_MESSAGE],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, run_from_row)
    }

    async fn reap_owner(&self, owner: &str, message: &str) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "UPDATE sluice_runs SET status = 'failed', finished_at = now(), message = $2
                     WHERE owner = $1 AND status IN ('queued', 'running')
                     RETURNING {RUN_COLUMNS}"
                ),
                &[&owner, &message],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, run_from_row)
    }

    async fn tick_states(&self) -> Result<Vec<(String, TickState)>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT pipeline, last_tick, pending FROM sluice_schedules",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    TickState {
                        last_tick: r.get::<_, Option<DateTime<Utc>>>(1),
                        pending: r.get(2),
                    },
                )
            })
            .collect())
    }

    async fn advance_tick(
        &self,
        pipeline: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool> {
        let conn = self.pool.get().await?;
        // A missing row is the default state: insert it, unless another instance inserted first.
        let n = if expected == TickState::default() {
            conn.execute(
                "INSERT INTO sluice_schedules (pipeline, last_tick, pending)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM sluice_pipelines WHERE id = $1)
                 ON CONFLICT (pipeline) DO UPDATE SET last_tick = EXCLUDED.last_tick, pending = EXCLUDED.pending
                 WHERE sluice_schedules.last_tick IS NULL AND NOT sluice_schedules.pending",
                &[&pipeline, &next.last_tick, &next.pending],
            )
            .await
        } else {
            conn.execute(
                "UPDATE sluice_schedules SET last_tick = $2, pending = $3
                 WHERE pipeline = $1 AND last_tick IS NOT DISTINCT FROM $4 AND pending = $5",
                &[
                    &pipeline,
                    &next.last_tick,
                    &next.pending,
                    &expected.last_tick,
                    &expected.pending,
                ],
            )
            .await
        };
        match n {
            Ok(n) => Ok(n > 0),
            // The pipeline was deleted between the check and the insert.
            Err(e) if matches!(violation(&e), Some(Violation::ForeignKey)) => Ok(false),
            Err(e) => Err(pg_error(e)),
        }
    }

    async fn change_cursors(&self) -> Result<Vec<(String, String)>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query("SELECT pipeline, cursor FROM sluice_change_cursors", &[])
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn advance_change_cursor(
        &self,
        pipeline: &str,
        expected: Option<&str>,
        next: Option<&str>,
    ) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = match (expected, next) {
            (None, None) => return Ok(true),
            (None, Some(next)) => {
                conn.execute(
                    "INSERT INTO sluice_change_cursors (pipeline, cursor)
                     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM sluice_pipelines WHERE id = $1)
                     ON CONFLICT (pipeline) DO NOTHING",
                    &[&pipeline, &next],
                )
                .await
            }
            (Some(expected), Some(next)) => {
                conn.execute(
                    "UPDATE sluice_change_cursors SET cursor = $2 WHERE pipeline = $1 AND cursor = $3",
                    &[&pipeline, &next, &expected],
                )
                .await
            }
            (Some(expected), None) => {
                conn.execute(
                    "DELETE FROM sluice_change_cursors WHERE pipeline = $1 AND cursor = $2",
                    &[&pipeline, &expected],
                )
                .await
            }
        };
        match n {
            Ok(n) => Ok(n > 0),
            Err(e) if matches!(violation(&e), Some(Violation::ForeignKey)) => Ok(false),
            Err(e) => Err(pg_error(e)),
        }
    }

    async fn last_reconcile(&self, pipeline: &str) -> Result<Option<DateTime<Utc>>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT started_at FROM sluice_reconciles WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn record_reconcile(&self, pipeline: &str, at: DateTime<Utc>) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_reconciles (pipeline, started_at)
             SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM sluice_pipelines WHERE id = $1)
             ON CONFLICT (pipeline) DO UPDATE SET started_at = EXCLUDED.started_at",
            &[&pipeline, &at],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }
}
