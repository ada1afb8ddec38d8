//! The history of runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::SqliteMetadata;
use crate::codec;
use crate::{Progress, Result, RunLog, RunRecord, StoreError};

pub(super) const RUN_COLUMNS: &str =
    "id, pipeline, trigger, status, queued_at, started_at, finished_at, processed, total, counts, errors, message, changes";

pub(super) fn run_from_row(r: &rusqlite::Row<'_>) -> Result<RunRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let status: String = r.get(3).map_err(sql_error)?;
    let counts: String = r.get(9).map_err(sql_error)?;
    let errors: String = r.get(10).map_err(sql_error)?;
    let opt_time = |i: usize| -> Result<_> {
        r.get::<_, Option<i64>>(i)
            .map_err(sql_error)?
            .map(time)
            .transpose()
    };
    Ok(RunRecord {
        pipeline: r.get(1).map_err(sql_error)?,
        trigger: r.get(2).map_err(sql_error)?,
        status: codec::status_from_str(&id, &status)?,
        queued_at: time(r.get(4).map_err(sql_error)?)?,
        started_at: opt_time(5)?,
        finished_at: opt_time(6)?,
        progress: Progress {
            processed: codec::to_u64(r.get(7).map_err(sql_error)?),
            total: r
                .get::<_, Option<i64>>(8)
                .map_err(sql_error)?
                .map(codec::to_u64),
        },
        counts: codec::counts_from_json(&id, &counts)?,
        errors: codec::errors_from_json(&id, &errors)?,
        message: r.get(11).map_err(sql_error)?,
        changes: codec::changes_from_json(&id, r.get(12).map_err(sql_error)?)?,
        id,
    })
}

#[async_trait]
impl RunLog for SqliteMetadata {
    async fn insert_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.db
            .write(move |c| {
                c.execute(
                    &format!("INSERT INTO runs ({RUN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
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
                    ],
                )
                .map_err(|e| match violation(&e) {
                    Some(Violation::Unique(_)) => StoreError::Conflict(format!("a run with id `{}` already exists", run.id)),
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound(format!("pipeline `{}` does not exist", run.pipeline))
                    }
                    None => sql_error(e),
                })?;
                Ok(())
            })
            .await
    }

    async fn update_run(&self, run: &RunRecord) -> Result<()> {
        let run = run.clone();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE runs SET trigger = ?2, status = ?3, queued_at = ?4, started_at = ?5, finished_at = ?6,
                             processed = ?7, total = ?8, counts = ?9, errors = ?10, message = ?11
                         WHERE id = ?1",
                        params![
                            run.id,
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
                        ],
                    )
                    .map_err(sql_error)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("run `{}` does not exist", run.id)));
                }
                Ok(())
            })
            .await
    }

    async fn update_run_progress(&self, run: &RunRecord) -> Result<bool> {
        let run = run.clone();
        self.db
            .write(move |c| {
                let n = c
                    .execute(
                        "UPDATE runs SET processed = ?2, total = ?3, counts = ?4, errors = ?5
                         WHERE id = ?1 AND status IN ('queued', 'running')",
                        params![
                            run.id,
                            codec::to_i64(run.progress.processed),
                            run.progress.total.map(codec::to_i64),
                            codec::counts_to_json(&run.counts),
                            codec::errors_to_json(&run.errors),
                        ],
                    )
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }

    async fn get_run(&self, id: &str) -> Result<Option<RunRecord>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], run_from_row)?.pop())
            })
            .await
    }

    async fn list_runs(
        &self,
        pipeline: &str,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<RunRecord>> {
        let (pipeline, before) = (pipeline.to_owned(), before.map(str::to_owned));
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(before) = before else {
                    let mut stmt = tx
                        .prepare_cached(&format!(
                            "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1
                             ORDER BY queued_at DESC, seq DESC LIMIT ?2"
                        ))
                        .map_err(sql_error)?;
                    return collect(&mut stmt, params![pipeline, limit], run_from_row);
                };
                let cursor: Option<(i64, i64)> = tx
                    .query_row(
                        "SELECT queued_at, seq FROM runs WHERE id = ?1 AND pipeline = ?2",
                        [&before, &pipeline],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                let Some((queued_at, seq)) = cursor else {
                    return Err(StoreError::NotFound(format!("run `{before}` of pipeline `{pipeline}` does not exist")));
                };
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE pipeline = ?1 AND (queued_at, seq) < (?3, ?4)
                         ORDER BY queued_at DESC, seq DESC LIMIT ?2"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, params![pipeline, limit, queued_at, seq], run_from_row)
            })
            .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<RunRecord>> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {RUN_COLUMNS} FROM runs WHERE status IN ('queued', 'running') ORDER BY queued_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], run_from_row)
            })
            .await
    }

    async fn put_dry_run(
        &self,
        id: &str,
        pipeline: Option<&str>,
        at: DateTime<Utc>,
        record: &str,
    ) -> Result<()> {
        let (id, pipeline, record) = (
            id.to_owned(),
            pipeline.map(str::to_owned),
            record.to_owned(),
        );
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO dry_runs (id, pipeline, written_at, record) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at, record = excluded.record",
                    params![id, pipeline, micros(&at), record],
                )
                .map_err(sql_error)?;
                c.execute(
                    "DELETE FROM dry_runs WHERE written_at < ?1",
                    [micros(&(at - crate::DRY_RUN_RETENTION))],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn get_dry_run(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                c.query_row("SELECT record FROM dry_runs WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(sql_error)
            })
            .await
    }
}
