//! The history of runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::pool::{get, limit_param, pg_error, rows_to, violation, Violation};
use super::PgMetadata;
use crate::codec;
use crate::{Progress, Result, RunLog, RunRecord, StoreError};

pub(super) const RUN_COLUMNS: &str =
    "id, pipeline, trigger, status, queued_at, started_at, finished_at, processed, total, \
                           counts::text, errors::text, message, changes::text";

pub(super) fn run_from_row(r: &Row) -> Result<RunRecord> {
    let id: String = get(r, 0)?;
    Ok(RunRecord {
        pipeline: get(r, 1)?,
        trigger: get(r, 2)?,
        status: codec::status_from_str(&id, get(r, 3)?)?,
        queued_at: get(r, 4)?,
        started_at: get(r, 5)?,
        finished_at: get(r, 6)?,
        progress: Progress {
            processed: codec::to_u64(get(r, 7)?),
            total: get::<Option<i64>>(r, 8)?.map(codec::to_u64),
        },
        counts: codec::counts_from_json(&id, get(r, 9)?)?,
        errors: codec::errors_from_json(&id, get(r, 10)?)?,
        message: get(r, 11)?,
        changes: codec::changes_from_json(&id, get(r, 12)?)?,
        id,
    })
}

#[async_trait]
impl RunLog for PgMetadata {
    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            &format!(
                "INSERT INTO sluice_runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::json, $11::text::json, $12, $13::text::json)",
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
            ],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique(_)) => StoreError::Conflict(format!("a run with id `{}` already exists", run.id)),
            Some(Violation::ForeignKey) => StoreError::NotFound(format!("pipeline `{}` does not exist", run.pipeline)),
            None => pg_error(e),
        })?;
        Ok(())
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_runs SET trigger = $2, status = $3, queued_at = $4, started_at = $5, finished_at = $6,
                     processed = $7, total = $8, counts = $9::text::json, errors = $10::text::json, message = $11
                 WHERE id = $1",
                &[
                    &run.id,
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
                ],
            )
            .await
            .map_err(pg_error)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "run `{}` does not exist",
                run.id
            )));
        }
        Ok(())
    }

    async fn update_run_progress(&self, run: &RunRecord) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = conn
            .execute(
                "UPDATE sluice_runs SET processed = $2, total = $3, counts = $4::text::json, errors = $5::text::json
                 WHERE id = $1 AND status IN ('queued', 'running')",
                &[
                    &run.id,
                    &codec::to_i64(run.progress.processed),
                    &run.progress.total.map(codec::to_i64),
                    &codec::counts_to_json(&run.counts),
                    &codec::errors_to_json(&run.errors),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM sluice_runs WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| run_from_row(&r)).transpose()
    }

    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let limit = limit_param(limit);
        let rows = match before {
            None => conn
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE pipeline = $1
                         ORDER BY queued_at DESC, seq DESC LIMIT $2"
                    ),
                    &[&pipeline, &limit],
                )
                .await
                .map_err(pg_error)?,
            Some(before) => {
                let cursor = conn
                    .query_opt(
                        "SELECT queued_at, seq FROM sluice_runs WHERE id = $1 AND pipeline = $2",
                        &[&before, &pipeline],
                    )
                    .await
                    .map_err(pg_error)?
                    .ok_or_else(|| {
                        StoreError::NotFound(format!(
                            "run `{before}` of pipeline `{pipeline}` does not exist"
                        ))
                    })?;
                let (queued_at, seq): (DateTime<Utc>, i64) = (get(&cursor, 0)?, get(&cursor, 1)?);
                conn.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE pipeline = $1 AND (queued_at, seq) < ($3, $4)
                         ORDER BY queued_at DESC, seq DESC LIMIT $2"
                    ),
                    &[&pipeline, &limit, &queued_at, &seq],
                )
                .await
                .map_err(pg_error)?
            }
        };
        rows_to(rows, run_from_row)
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sluice_runs WHERE status IN ('queued', 'running') ORDER BY queued_at, seq"
                ),
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, run_from_row)
    }

    async fn put_dry_run(
        &self,
        id: &str,
        pipeline: Option<&str>,
        at: DateTime<Utc>,
        record: &str,
    ) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_dry_runs (id, pipeline, written_at, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, record = excluded.record",
            &[&id, &pipeline, &at, &record],
        )
        .await
        .map_err(pg_error)?;
        conn.execute(
            "DELETE FROM sluice_dry_runs WHERE written_at < $1",
            &[&(at - crate::DRY_RUN_RETENTION)],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn get_dry_run(&self, id: &str) -> Result<Option<String>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt("SELECT record FROM sluice_dry_runs WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        row.map(|r| get(&r, 0)).transpose()
    }
}
