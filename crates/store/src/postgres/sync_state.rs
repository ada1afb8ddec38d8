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
                     WHERE pipeline = $1 AND key = ANY({BY_INDEX_2})"
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
        // Every entry removed or replaced is taken off the pipeline's counts, every entry kept added:
        // the counts follow the entries within the same transaction.
        let mut removed = Counts::default();
        if !plan.drop.is_empty() {
            let row = tx
                .query_one(
                    &format!(
                        "WITH d AS (DELETE FROM sluice_sync_state
                                    WHERE pipeline = $1 AND profile_id = ANY({BY_INDEX_2}) RETURNING has_left)
                         SELECT count(*) FILTER (WHERE has_left IS NULL), count(*) FILTER (WHERE has_left)
                         FROM d"
                    ),
                    &[&pipeline, &plan.drop],
                )
                .await
                .map_err(pg_error)?;
            removed.add(Counts::from_row(&row)?);
        }
        if !ids.is_empty() {
            let row = tx
                .query_one(
                    // Each key is looked up in the key index (`LIMIT 1` keeps the lookup a nested loop):
                    // as a join, the planner hashed every entry of the pipeline for each batch, which made
                    // recording a first run quadratic in its size.
                    "WITH d AS (DELETE FROM sluice_sync_state AS s
                                WHERE s.pipeline = $1 AND s.profile_id = ANY(ARRAY(
                                    SELECT h.profile_id FROM unnest($2::text[], $3::text[]) AS u(profile_id, key)
                                    CROSS JOIN LATERAL (
                                        SELECT o.profile_id FROM sluice_sync_state AS o
                                        WHERE o.pipeline = $1 AND o.key = u.key AND o.profile_id <> u.profile_id
                                        LIMIT 1
                                    ) AS h))
                                RETURNING s.has_left)
                     SELECT count(*) FILTER (WHERE has_left IS NULL), count(*) FILTER (WHERE has_left) FROM d",
                    &[&pipeline, &ids, &keys],
                )
                .await
                .map_err(pg_error)?;
            removed.add(Counts::from_row(&row)?);
            // Of the entries the upsert replaces, the left ones are found in their own small index (left
            // entries are rare); the upsert says how many it replaced in all.
            let row = tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM sluice_sync_state
                         WHERE pipeline = $1 AND has_left AND profile_id = ANY({BY_INDEX_2})"
                    ),
                    &[&pipeline, &ids],
                )
                .await
                .map_err(pg_error)?;
            let replaced_left: i64 = get(&row, 0)?;
            let row = tx
                .query_one(
                    "WITH i AS (
                         INSERT INTO sluice_sync_state (pipeline, profile_id, key, hash, has_left)
                         SELECT $1, u.profile_id, u.key, u.hash, u.has_left
                         FROM unnest($2::text[], $3::text[], $4::bytea[], $5::boolean[])
                             AS u(profile_id, key, hash, has_left)
                         ON CONFLICT (pipeline, profile_id) DO UPDATE
                             SET key = EXCLUDED.key, hash = EXCLUDED.hash, has_left = EXCLUDED.has_left
                         RETURNING (xmax = 0) AS inserted)
                     SELECT count(*) FILTER (WHERE NOT inserted) FROM i",
                    &[&pipeline, &ids, &keys, &hashes, &lefts],
                )
                .await
                .map_err(unknown_pipeline(pipeline))?;
            // A row the upsert updated rather than inserted has a non-zero `xmax` (the updating
            // transaction's), the usual way to tell the two apart.
            let replaced: i64 = get(&row, 0)?;
            removed.add(Counts {
                live: replaced - replaced_left,
                left: replaced_left,
            });
        }
        let left_kept = plan.keep.iter().filter(|e| e.left).count() as i64;
        let live = plan.keep.len() as i64 - left_kept - removed.live;
        let left = left_kept - removed.left;
        if live != 0 || left != 0 {
            tx.execute(
                "INSERT INTO sluice_sync_counts AS c (pipeline, live, left_) VALUES ($1, $2, $3)
                 ON CONFLICT (pipeline) DO UPDATE
                     SET live = c.live + EXCLUDED.live, left_ = c.left_ + EXCLUDED.left_",
                &[&pipeline, &live, &left],
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
                     WHERE pipeline = $1 AND profile_id = ANY({BY_INDEX_2}) ORDER BY profile_id"
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
            "DELETE FROM sluice_sync_counts WHERE pipeline = $1",
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
        Ok(codec::to_u64(self.sync_counts(pipeline).await?.live))
    }

    async fn sync_count_left(&self, pipeline: &str) -> Result<u64> {
        Ok(codec::to_u64(self.sync_counts(pipeline).await?.left))
    }
}

impl PgMetadata {
    /// The pipeline's counts as kept by [`SyncState::sync_apply`]: one row, not a scan of the entries.
    async fn sync_counts(&self, pipeline: &str) -> Result<Counts> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT live, left_ FROM sluice_sync_counts WHERE pipeline = $1",
                &[&pipeline],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| Counts::from_row(&r))
            .transpose()
            .map(Option::unwrap_or_default)
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

/// Live and left sync entries, counted or kept.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    live: i64,
    left: i64,
}

impl Counts {
    fn from_row(r: &Row) -> Result<Counts> {
        Ok(Counts {
            live: get(r, 0)?,
            left: get(r, 1)?,
        })
    }

    fn add(&mut self, other: Counts) {
        self.live += other.live;
        self.left += other.left;
    }
}

/// The array parameter `$2` as the planner cannot see its length: `= ANY($2)` with a literal array of
/// thousands made it scan every entry of the pipeline (linear in the sync state's size per call), where
/// looking each one up in the index is what a batch needs.
const BY_INDEX_2: &str = "ARRAY(SELECT unnest($2::text[]))";

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
