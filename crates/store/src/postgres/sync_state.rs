//! Each pipeline's sync entries and checkpoint, written set-based (`unnest` of arrays) in one statement
//! per step.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::pool::{get, limit_param, pg_error, rows_to, violation, Violation};
use super::PgMetadata;
use crate::codec;
use crate::{Result, StoreError, SyncCheckpoint, SyncEntry, SyncKey, SyncState};

#[async_trait]
impl SyncState for PgMetadata {
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncEntry>> {
        let limit = limit_param(limit);
        let mut sql = format!("SELECT {SYNC_COLUMNS} FROM sluice_sync_state WHERE pipeline = $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&pipeline, &limit];
        if let Some(after) = &after {
            args.push(after);
            sql.push_str(&format!(" AND profile_id > ${}", args.len()));
        }
        if let Some(upto) = &upto {
            args.push(upto);
            sql.push_str(&format!(" AND profile_id <= ${}", args.len()));
        }
        sql.push_str(" ORDER BY profile_id LIMIT $2");
        let conn = self.pool.get().await?;
        let rows = conn.query(&sql, &args).await.map_err(pg_error)?;
        rows_to(rows, entry_from_row)
    }

    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> Result<Vec<SyncEntry>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<&str> = keys.iter().map(SyncKey::as_str).collect();
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SYNC_COLUMNS} FROM sluice_sync_state
                     WHERE pipeline = $1 AND key = ANY($2::text[])"
                ),
                &[&pipeline, &keys],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, entry_from_row)
    }

    async fn sync_apply(
        &self,
        pipeline: &str,
        upserts: Vec<SyncEntry>,
        deletes: Vec<String>,
    ) -> Result<()> {
        if upserts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let plan = codec::plan_sync(&upserts, &deletes);
        let ids: Vec<&str> = plan.keep.iter().map(|e| e.profile_id.as_str()).collect();
        let keys: Vec<&str> = plan.keep.iter().map(|e| e.key.as_str()).collect();
        let hashes: Vec<[u8; 16]> = plan
            .keep
            .iter()
            .map(|e| codec::hash_to_bytes(e.hash))
            .collect();
        let hashes: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let lefts: Vec<Option<bool>> = plan.keep.iter().map(|e| e.left.then_some(true)).collect();
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        if !plan.drop.is_empty() {
            tx.execute(
                "DELETE FROM sluice_sync_state WHERE pipeline = $1 AND profile_id = ANY($2::text[])",
                &[&pipeline, &plan.drop],
            )
            .await
            .map_err(pg_error)?;
        }
        if !ids.is_empty() {
            tx.execute(
                "DELETE FROM sluice_sync_state AS s USING unnest($2::text[], $3::text[]) AS u(profile_id, key)
                 WHERE s.pipeline = $1 AND s.key = u.key AND s.profile_id <> u.profile_id",
                &[&pipeline, &ids, &keys],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "INSERT INTO sluice_sync_state (pipeline, profile_id, key, hash, has_left)
                 SELECT $1, u.profile_id, u.key, u.hash, u.has_left
                 FROM unnest($2::text[], $3::text[], $4::bytea[], $5::boolean[])
                     AS u(profile_id, key, hash, has_left)
                 ON CONFLICT (pipeline, profile_id) DO UPDATE
                     SET key = EXCLUDED.key, hash = EXCLUDED.hash, has_left = EXCLUDED.has_left",
                &[&pipeline, &ids, &keys, &hashes, &lefts],
            )
            .await
            .map_err(unknown_pipeline(pipeline))?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> Result<Vec<SyncEntry>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {SYNC_COLUMNS} FROM sluice_sync_state
                     WHERE pipeline = $1 AND profile_id = ANY($2::text[]) ORDER BY profile_id"
                ),
                &[&pipeline, &ids],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, entry_from_row)
    }

    async fn sync_clear(&self, pipeline: &str) -> Result<()> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        for sql in [
            "DELETE FROM sluice_sync_checkpoints WHERE pipeline = $1",
            "DELETE FROM sluice_sync_state WHERE pipeline = $1",
        ] {
            tx.execute(sql, &[&pipeline]).await.map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn sync_checkpoint(&self, pipeline: &str) -> Result<Option<SyncCheckpoint>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT mark, fingerprint, taken_at FROM sluice_sync_checkpoints WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| {
            Ok(SyncCheckpoint {
                mark: get(&r, 0)?,
                fingerprint: get(&r, 1)?,
                taken_at: get(&r, 2)?,
            })
        })
        .transpose()
    }

    async fn set_sync_checkpoint(
        &self,
        pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<()> {
        match checkpoint {
            None => {
                self.clear_pipeline_row("sluice_sync_checkpoints", pipeline)
                    .await
            }
            Some(cp) => {
                self.upsert_pipeline_row(
                    pipeline,
                    "INSERT INTO sluice_sync_checkpoints (pipeline, mark, fingerprint, taken_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (pipeline) DO UPDATE SET mark = EXCLUDED.mark,
                         fingerprint = EXCLUDED.fingerprint, taken_at = EXCLUDED.taken_at",
                    &[&pipeline, &cp.mark, &cp.fingerprint, &cp.taken_at],
                )
                .await
            }
        }
    }

    async fn sync_table_identity(&self, pipeline: &str) -> Result<Option<String>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT identity FROM sluice_sync_tables WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| get(&r, 0)).transpose()
    }

    async fn set_sync_table_identity(&self, pipeline: &str, identity: Option<&str>) -> Result<()> {
        match identity {
            None => {
                self.clear_pipeline_row("sluice_sync_tables", pipeline)
                    .await
            }
            Some(identity) => {
                self.upsert_pipeline_row(
                    pipeline,
                    "INSERT INTO sluice_sync_tables (pipeline, identity) VALUES ($1, $2)
                     ON CONFLICT (pipeline) DO UPDATE SET identity = EXCLUDED.identity",
                    &[&pipeline, &identity],
                )
                .await
            }
        }
    }

    async fn sync_count(&self, pipeline: &str) -> Result<u64> {
        self.sync_count_where(pipeline, "has_left IS NULL").await
    }

    async fn sync_count_left(&self, pipeline: &str) -> Result<u64> {
        self.sync_count_where(pipeline, "has_left").await
    }
}

impl PgMetadata {
    async fn sync_count_where(&self, pipeline: &str, condition: &'static str) -> Result<u64> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                &format!(
                    "SELECT count(*) FROM sluice_sync_state WHERE pipeline = $1 AND {condition}"
                ),
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        Ok(codec::to_u64(get(&row, 0)?))
    }

    /// Deletes the pipeline's row of `table`, one of the tables holding a row per pipeline.
    async fn clear_pipeline_row(&self, table: &str, pipeline: &str) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            &format!("DELETE FROM {table} WHERE pipeline = $1"),
            &[&pipeline],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    /// Runs `upsert` of the pipeline's row; a pipeline that does not exist is `NotFound`.
    async fn upsert_pipeline_row(
        &self,
        pipeline: &str,
        upsert: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(upsert, params)
            .await
            .map_err(unknown_pipeline(pipeline))?;
        Ok(())
    }
}

const SYNC_COLUMNS: &str = "profile_id, key, hash, has_left";

fn entry_from_row(r: &Row) -> Result<SyncEntry> {
    let profile_id: String = get(r, 0)?;
    Ok(SyncEntry {
        hash: codec::hash_from_bytes(&profile_id, get(r, 2)?)?,
        key: SyncKey::from_stored(get::<String>(r, 1)?),
        left: get::<Option<bool>>(r, 3)? == Some(true),
        profile_id,
    })
}

/// A write naming a pipeline that is not there breaks a foreign key: that is the pipeline not found.
fn unknown_pipeline(pipeline: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| match violation(&e) {
        Some(Violation::ForeignKey) => {
            StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
        }
        _ => pg_error(e),
    }
}
