//! The profile store: documents, their change numbers and tombstones.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use sluice_core::filter::{Filter, SqlDialect, SqlParam};
use sluice_core::{Profile, RawProfile};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::filter_params::PgParam;
use super::migrations::PROFILE_MIGRATIONS;
use super::pool::{get, limit_param, migrate, pg_error, rows_to, Pool};
use crate::codec;
use crate::{
    ChangeCounts, ProfileStore, Properties, Result, StoreError, UpsertOutcome, TOMBSTONE_RETENTION,
};

/// This transaction's change number: its id, which is assigned on first use, only grows, and is compared
/// with the oldest transaction of this database still running (see [`ProfileStore::change_mark`]).
const CHANGE_ID: &str = "pg_current_xact_id()::text::bigint";

/// The profile store in PostgreSQL.
pub struct PgProfiles {
    pool: Pool,
}

impl PgProfiles {
    /// Connects and brings the table up to date. The URL is never logged or put in an error.
    pub async fn connect(url: &str) -> Result<PgProfiles> {
        let pool = Pool::new(url, "profiles")?;
        migrate(&pool, "profiles", PROFILE_MIGRATIONS).await?;
        Ok(PgProfiles { pool })
    }
}

fn raw_profile_from_row(r: &Row) -> Result<RawProfile> {
    Ok(RawProfile {
        id: get(r, 0)?,
        updated_at: get(r, 1)?,
        doc: get(r, 2)?,
    })
}

fn profile_from_row(r: &Row) -> Result<Profile> {
    let id: String = get(r, 0)?;
    Ok(Profile {
        updated_at: get(r, 1)?,
        doc: codec::doc_from_json(&id, get(r, 2)?)?,
        id,
    })
}

/// How many times an upsert retries the profiles another writer inserted between our read and our insert.
const UPSERT_ATTEMPTS: usize = 5;

async fn upsert_batch(
    tx: &tokio_postgres::Transaction<'_>,
    mut pending: Vec<(String, Properties)>,
    now: DateTime<Utc>,
) -> Result<UpsertOutcome> {
    let mut outcome = UpsertOutcome::default();
    for _ in 0..UPSERT_ATTEMPTS {
        let ids: Vec<&str> = pending.iter().map(|(id, _)| id.as_str()).collect();
        // Locking in id order keeps two overlapping batches from deadlocking each other.
        let rows = tx
            .query("SELECT id, doc FROM sluice_profiles WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", &[&ids])
            .await
            .map_err(pg_error)?;
        let mut stored: HashMap<String, Map<String, Json>> = HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: String = get(r, 0)?;
            let doc = codec::doc_from_json(&id, get(r, 1)?)?;
            stored.insert(id, doc);
        }
        let (mut updates, mut inserts) = (Vec::with_capacity(stored.len()), Vec::new());
        for (id, doc) in pending {
            match stored.remove(&id) {
                Some(mut merged) => {
                    let doc = doc.into_map(&id)?;
                    // Unchanged profiles keep their change number: exports skip them.
                    if !sluice_core::schema::merge_profile_changed(&mut merged, doc) {
                        outcome.updated += 1;
                        outcome.unchanged += 1;
                    } else {
                        updates.push((id, merged));
                    }
                }
                None => inserts.push((id, doc.into_text())),
            }
        }
        if !updates.is_empty() {
            let ids: Vec<&str> = updates.iter().map(|(id, _)| id.as_str()).collect();
            let docs: Vec<tokio_postgres::types::Json<&Map<String, Json>>> = updates
                .iter()
                .map(|(_, d)| tokio_postgres::types::Json(d))
                .collect();
            tx.execute(
                &format!(
                    "UPDATE sluice_profiles AS p SET doc = u.doc, updated_at = $3, change_id = {CHANGE_ID}
                     FROM unnest($1::text[], $2::jsonb[]) AS u(id, doc) WHERE p.id = u.id"
                ),
                &[&ids, &docs, &now],
            )
            .await
            .map_err(pg_error)?;
            outcome.updated += updates.len() as u64;
        }
        if inserts.is_empty() {
            return Ok(outcome);
        }
        let ids: Vec<&str> = inserts.iter().map(|(id, _)| id.as_str()).collect();
        let docs: Vec<&str> = inserts.iter().map(|(_, d)| d.as_str()).collect();
        let rows = tx
            .query(
                &format!(
                    "INSERT INTO sluice_profiles (id, updated_at, doc, change_id)
                     SELECT u.id, $3, u.doc::jsonb, {CHANGE_ID} FROM unnest($1::text[], $2::text[]) AS u(id, doc)
                     ON CONFLICT (id) DO NOTHING RETURNING id"
                ),
                &[&ids, &docs, &now],
            )
            .await
            .map_err(pg_error)?;
        outcome.inserted += rows.len() as u64;
        if rows.len() == inserts.len() {
            return Ok(outcome);
        }
        // Another writer inserted some of these ids after our read: merge into theirs on the next pass.
        let done: HashSet<String> = rows.iter().map(|r| get(r, 0)).collect::<Result<_>>()?;
        pending = inserts
            .into_iter()
            .filter(|(id, _)| !done.contains(id))
            .map(|(id, text)| (id, Properties::Text(text)))
            .collect();
    }
    Err(StoreError::Backend(
        "other writers kept inserting the same profiles concurrently; the batch was not stored, retry it".into(),
    ))
}

#[async_trait]
impl ProfileStore for PgProfiles {
    async fn upsert(&self, profiles: Vec<(String, Map<String, Json>)>) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let profiles = codec::fold_batch(profiles)
            .into_iter()
            .map(|(id, doc)| (id, Properties::Map(doc)))
            .collect();
        self.upsert_properties(profiles).await
    }

    async fn upsert_properties(
        &self,
        profiles: Vec<(String, Properties)>,
    ) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        let outcome = upsert_batch(&tx, profiles, codec::now()).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(outcome)
    }

    async fn get(&self, id: &str) -> Result<Option<Profile>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT id, updated_at, doc FROM sluice_profiles WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| profile_from_row(&r)).transpose()
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        let n = tx
            .execute("DELETE FROM sluice_profiles WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        if n > 0 {
            let now = codec::now();
            tx.execute(
                &format!(
                    "INSERT INTO sluice_profile_tombstones (id, change_id, deleted_at) VALUES ($1, {CHANGE_ID}, $2)
                     ON CONFLICT (id) DO UPDATE SET change_id = EXCLUDED.change_id, deleted_at = EXCLUDED.deleted_at"
                ),
                &[&id, &now],
            )
            .await
            .map_err(pg_error)?;
            tx.execute(
                "DELETE FROM sluice_profile_tombstones WHERE deleted_at < $1",
                &[&(now - TOMBSTONE_RETENTION)],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn page_raw(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let mut args = vec![PgParam(SqlParam::Int(limit_param(limit)))];
        let mut sql = String::from("SELECT id, updated_at, doc::text FROM sluice_profiles WHERE ");
        if let Some(after) = after {
            args.push(PgParam(SqlParam::Text(after.to_owned())));
            sql.push_str("id > $2 AND ");
        }
        match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Postgres, args.len() + 1);
                sql.push_str(&format!("({cond})"));
                args.extend(params.into_iter().map(PgParam));
            }
            None => sql.push_str("TRUE"),
        }
        sql.push_str(" ORDER BY id LIMIT $1");
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let conn = self.pool.get().await?;
        let rows = conn.query(&sql, &refs).await.map_err(pg_error)?;
        rows_to(rows, raw_profile_from_row)
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let (sql, args) = match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Postgres, 1);
                (
                    format!("SELECT count(*) FROM sluice_profiles WHERE ({cond})"),
                    params.into_iter().map(PgParam).collect::<Vec<_>>(),
                )
            }
            None => (
                "SELECT count(*) FROM sluice_profiles".to_owned(),
                Vec::new(),
            ),
        };
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        let conn = self.pool.get().await?;
        let row = conn.query_one(&sql, &refs).await.map_err(pg_error)?;
        Ok(codec::to_u64(get(&row, 0)?))
    }

    async fn change_mark(&self) -> Result<i64> {
        // A transaction that had ended when the snapshot was taken is visible to any later read; one
        // that starts later gets an id at or above the snapshot's xmax. What is left is a transaction
        // in progress at the snapshot, which may still commit a change with its lower id: the mark
        // stays at or below the oldest of those. A transaction of another database of the server
        // cannot write this one's tables, so it is left out when `pg_stat_activity` shows whose it
        // is (a long import or report elsewhere would otherwise hold every mark back, and each run
        // read again all it had read); one whose database is not shown is kept, the safe side.
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT coalesce(
                     (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
                      WHERE x::text::bigint % 4294967296 NOT IN (
                          SELECT a.backend_xid::text::bigint FROM pg_stat_activity AS a
                          WHERE a.backend_xid IS NOT NULL AND a.datid IS NOT NULL
                            AND a.datid <> (SELECT d.oid FROM pg_database AS d
                                            WHERE d.datname = current_database()))),
                     pg_snapshot_xmax(s.snap)::text::bigint)
                 FROM (SELECT pg_current_snapshot() AS snap) AS s",
                &[],
            )
            .await
            .map_err(pg_error)?;
        get(&row, 0)
    }

    async fn change_cursor(&self) -> Result<String> {
        // The whole snapshot (xmin, xmax and the transactions in progress), not just its xmin: a change
        // by a transaction that had committed when it was taken is not after it, however old the oldest
        // transaction still running (any database of the server) is.
        let conn = self.pool.get().await?;
        let row = conn
            .query_one("SELECT pg_current_snapshot()::text", &[])
            .await
            .map_err(pg_error)?;
        let snapshot: String = get(&row, 0)?;
        Ok(format!("pg:{snapshot}"))
    }

    async fn count_changes_after(&self, cursor: &str) -> Result<Option<ChangeCounts>> {
        let Some(snapshot) = cursor.strip_prefix("pg:") else {
            return Ok(None);
        };
        // `xmin:xmax:xip,…`; the xmin bounds the index range scan, the snapshot decides the rest.
        let Some(xmin) = snapshot
            .split(':')
            .next()
            .and_then(|x| x.parse::<i64>().ok())
            .filter(|_| snapshot.split(':').count() == 3)
        else {
            return Ok(None);
        };
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT (SELECT count(*) FROM sluice_profiles WHERE change_id >= $1
                           AND NOT pg_visible_in_snapshot(change_id::text::xid8, $2::text::pg_snapshot)),
                        (SELECT count(*) FROM sluice_profile_tombstones WHERE change_id >= $1
                           AND NOT pg_visible_in_snapshot(change_id::text::xid8, $2::text::pg_snapshot))",
                &[&xmin, &snapshot],
            )
            .await
            .map_err(pg_error)?;
        Ok(Some(ChangeCounts {
            changed: codec::to_u64(get(&row, 0)?),
            deleted: codec::to_u64(get(&row, 1)?),
        }))
    }

    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts> {
        let conn = self.pool.get().await?;
        // Right after a large import, before the table is analyzed, the planner takes most rows for
        // changed and scans every profile, even for the ordered count below (1.5 s at 10,000,000 to
        // find none; planned that dear, the statement is also compiled, 70 ms more). The greatest
        // change id is one step down the change index whatever the statistics say, and when it is
        // below the mark there is nothing to count: change ids only grow.
        let newest = conn
            .query_one(
                "SELECT (SELECT max(change_id) FROM sluice_profiles),
                        (SELECT max(change_id) FROM sluice_profile_tombstones),
                        (SELECT reltuples < 0 FROM pg_class WHERE oid = 'sluice_profiles'::regclass)",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let after_mark = |i: usize| -> Result<bool> {
            Ok(get::<Option<i64>>(&newest, i)?.is_some_and(|n| n >= mark))
        };
        if !after_mark(0)? && !after_mark(1)? {
            return Ok(ChangeCounts::default());
        }
        // A table never analyzed (loaded within the last minute, before autovacuum came round) has no
        // statistics: the count below and every page of the changes would walk the whole table
        // (112 ms a page of 2,750 at 1,000,000). Analyzing samples a fixed number of rows.
        if get::<Option<bool>>(&newest, 2)?.unwrap_or(false) {
            conn.batch_execute("ANALYZE sluice_profiles")
                .await
                .map_err(pg_error)?;
            tracing::debug!("analyzed the profile table, which had no statistics");
        }
        // Ordered by the change id, so that the plan is the change index once statistics exist.
        let row = conn
            .query_one(
                "SELECT (SELECT count(*) FROM (SELECT change_id FROM sluice_profiles
                                               WHERE change_id >= $1 ORDER BY change_id) AS c),
                        (SELECT count(*) FROM (SELECT change_id FROM sluice_profile_tombstones
                                               WHERE change_id >= $1 ORDER BY change_id) AS t)",
                &[&mark],
            )
            .await
            .map_err(pg_error)?;
        Ok(ChangeCounts {
            changed: codec::to_u64(get(&row, 0)?),
            deleted: codec::to_u64(get(&row, 1)?),
        })
    }

    async fn changed_page_raw(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let conn = self.pool.get().await?;
        let rows = conn
            // The page's ids first, then only their documents: ordering whole rows would turn the
            // document of every change past `after` into text for each page of a read.
            .query(
                "WITH page AS MATERIALIZED (
                     SELECT id FROM sluice_profiles
                     WHERE change_id >= $1 AND id > $2 ORDER BY id LIMIT $3)
                 SELECT p.id, p.updated_at, p.doc::text FROM page
                 JOIN sluice_profiles AS p ON p.id = page.id ORDER BY p.id",
                &[&mark, &after.unwrap_or(""), &limit_param(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, raw_profile_from_row)
    }

    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT t.id FROM sluice_profile_tombstones AS t WHERE t.change_id >= $1
                 AND NOT EXISTS (SELECT 1 FROM sluice_profiles AS p WHERE p.id = t.id) ORDER BY t.id",
                &[&mark],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| get(r, 0))
    }
}
