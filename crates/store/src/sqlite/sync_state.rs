//! Each pipeline's sync entries and checkpoint: the largest table by far, and the one a run writes
//! most, so its layout is chosen for that (see the migrations that numbered pipelines and implied keys).

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::SqliteMetadata;
use crate::codec;
use crate::{Result, StoreError, SyncCheckpoint, SyncEntry, SyncKey, SyncState};

/// Sets up each connection to the metadata file. The count trigger must see the rows `INSERT OR
/// REPLACE` deletes to make room, which SQLite shows triggers only under `recursive_triggers`. It is set
/// here, once: setting a flag pragma expires every statement the connection has prepared, and set per
/// record it had each record prepare its statements again. Only the sync entries are written with
/// `REPLACE`, so no other trigger sees a difference.
pub(super) fn setup(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("PRAGMA recursive_triggers = ON")
}

#[async_trait]
impl SyncState for SqliteMetadata {
    async fn sync_range(
        &self,
        pipeline: &str,
        after: Option<&str>,
        upto: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SyncEntry>> {
        let (pipeline, after, upto) = (
            pipeline.to_owned(),
            after.map(str::to_owned),
            upto.map(str::to_owned),
        );
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let Some(num) = sync_number(c, &pipeline)? else {
                    return Ok(Vec::new());
                };
                // One statement per bound combination keeps each a plain range scan of the primary key.
                let mut sql = String::from(
                    "SELECT profile_id, key, hash, has_left FROM sync_entries WHERE pipeline = ?1",
                );
                let mut args: Vec<SqlValue> = vec![num.into(), limit.into()];
                if let Some(after) = after {
                    args.push(after.into());
                    sql.push_str(&format!(" AND profile_id > ?{}", args.len()));
                }
                if let Some(upto) = upto {
                    args.push(upto.into());
                    sql.push_str(&format!(" AND profile_id <= ?{}", args.len()));
                }
                sql.push_str(" ORDER BY profile_id LIMIT ?2");
                let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                collect(&mut stmt, rusqlite::params_from_iter(args), |r| {
                    let profile_id: String = r.get(0).map_err(sql_error)?;
                    entry_from_row(r, profile_id, 1)
                })
            })
            .await
    }

    async fn sync_owners(&self, pipeline: &str, keys: &[SyncKey]) -> Result<Vec<SyncEntry>> {
        let (pipeline, keys) = (pipeline.to_owned(), keys.to_vec());
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(SyncPipeline { num, implied, .. }) = sync_pipeline(&tx, &pipeline)? else {
                    return Ok(Vec::new());
                };
                let mut written = tx
                    .prepare_cached(
                        "SELECT profile_id, key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND key = ?2",
                    )
                    .map_err(sql_error)?;
                // A key held as an implied one is the id of the profile holding it.
                let mut implied_by = tx
                    .prepare_cached(
                        "SELECT profile_id, key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND profile_id = ?2 AND key IS NULL",
                    )
                    .map_err(sql_error)?;
                let mut seen = std::collections::HashSet::with_capacity(keys.len());
                let mut out = Vec::new();
                let holder = |stmt: &mut rusqlite::Statement<'_>, key: &str| {
                    let mut rows = stmt.query(params![num, key]).map_err(sql_error)?;
                    match rows.next().map_err(sql_error)? {
                        Some(r) => {
                            let profile_id: String = r.get(0).map_err(sql_error)?;
                            entry_from_row(r, profile_id, 1).map(Some)
                        }
                        None => Ok(None),
                    }
                };
                for key in &keys {
                    if !seen.insert(key) {
                        continue;
                    }
                    let mut entry = holder(&mut written, key.as_str())?;
                    if entry.is_none() && implied {
                        entry = holder(&mut implied_by, key.as_str())?;
                    }
                    out.extend(entry);
                }
                Ok(out)
            })
            .await
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
        let pipeline = pipeline.to_owned();
        self.db
            .write(move |c| {
                let started = std::time::Instant::now();
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let sp = match sync_pipeline(&tx, &pipeline)? {
                    Some(sp) => sp,
                    // Nothing recorded yet, so nothing to delete either.
                    None if upserts.is_empty() => return Ok(()),
                    None => {
                        tx.execute(
                            "INSERT INTO sync_pipelines (pipeline, written_keys, implied_keys)
                             VALUES (?1, 0, 0)",
                            [&pipeline],
                        )
                        .map_err(|err| match violation(&err) {
                            Some(Violation::ForeignKey) => StoreError::NotFound(format!(
                                "pipeline `{pipeline}` does not exist"
                            )),
                            _ => sql_error(err),
                        })?;
                        SyncPipeline {
                            num: tx.last_insert_rowid(),
                            written: false,
                            implied: false,
                        }
                    }
                };
                let num = sp.num;
                // Keys are implied (not stored) only while every entry of the pipeline, recorded and new,
                // is keyed by its own profile id: then the primary key alone keeps keys unique. Otherwise
                // every key is written, and the unique index keeps them so.
                let imply = !sp.written && upserts.iter().all(|e| e.key.as_str() == e.profile_id);
                let (written, implied) = (sp.written || !imply, sp.implied || imply);
                if !upserts.is_empty() && (written, implied) != (sp.written, sp.implied) {
                    tx.execute(
                        "UPDATE sync_pipelines SET written_keys = ?2, implied_keys = ?3 WHERE num = ?1",
                        params![num, written, implied],
                    )
                    .map_err(sql_error)?;
                }
                {
                    let mut delete = tx
                        .prepare_cached(
                            "DELETE FROM sync_entries WHERE pipeline = ?1 AND profile_id = ?2",
                        )
                        .map_err(sql_error)?;
                    for id in &deletes {
                        delete.execute(params![num, id]).map_err(sql_error)?;
                    }
                    if !imply && sp.implied {
                        // A written key taken from a profile that holds it implied: the unique index
                        // cannot see that holder, so it gives the key up here, as REPLACE would make it.
                        let mut give_up = tx
                            .prepare_cached(
                                "DELETE FROM sync_entries
                                 WHERE pipeline = ?1 AND profile_id = ?2 AND key IS NULL",
                            )
                            .map_err(sql_error)?;
                        for e in &upserts {
                            give_up
                                .execute(params![num, e.key.as_str()])
                                .map_err(sql_error)?;
                        }
                    }
                    // With written keys, REPLACE deletes every row that conflicts on either the primary key
                    // or the unique key, which is exactly "this profile's entry is replaced and its key taken
                    // from any other holder"; implied keys conflict only on the primary key, and an entry is
                    // overwritten in place (see `sync_upsert_sql`). Rows of one statement are applied in
                    // order, as separate statements would be.
                    // Many rows per statement: executing one statement per entry cost more than the inserts.
                    // Chunks without a left entry, all of them in most runs, bind no flag: the statement
                    // leaves it NULL.
                    for chunk in upserts.chunks(SYNC_ROWS_PER_STATEMENT) {
                        let flagged = chunk.iter().any(|e| e.left);
                        let mut upsert = tx
                            .prepare_cached(&sync_upsert_sql(chunk.len(), imply, flagged))
                            .map_err(sql_error)?;
                        let hashes: Vec<[u8; 16]> =
                            chunk.iter().map(|e| codec::hash_to_bytes(e.hash)).collect();
                        let keys: Vec<&str> = chunk.iter().map(|e| e.key.as_str()).collect();
                        let lefts: Vec<Option<bool>> =
                            chunk.iter().map(|e| e.left.then_some(true)).collect();
                        let mut args: Vec<&dyn rusqlite::ToSql> =
                            Vec::with_capacity(1 + 4 * chunk.len());
                        args.push(&num);
                        for ((e, h), (key, left)) in
                            chunk.iter().zip(&hashes).zip(keys.iter().zip(&lefts))
                        {
                            args.push(&e.profile_id);
                            if !imply {
                                args.push(key);
                            }
                            args.push(h);
                            if flagged {
                                args.push(left);
                            }
                        }
                        upsert.execute(args.as_slice()).map_err(sql_error)?;
                    }
                }
                // Every upsert wrote a row; whatever it deleted or overwrote, a trigger took off.
                let left_added = upserts.iter().filter(|e| e.left).count() as i64;
                let live_added = upserts.len() as i64 - left_added;
                if live_added != 0 || left_added != 0 {
                    tx.prepare_cached(
                        "UPDATE sync_pipelines SET live = live + ?2, left_ = left_ + ?3 WHERE num = ?1",
                    )
                    .and_then(|mut s| s.execute(params![num, live_added, left_added]))
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                tracing::debug!(
                    upserts = upserts.len(),
                    deletes = deletes.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "recorded sync entries"
                );
                Ok(())
            })
            .await
    }

    async fn sync_get(&self, pipeline: &str, ids: &[String]) -> Result<Vec<SyncEntry>> {
        let (pipeline, mut ids) = (pipeline.to_owned(), ids.to_vec());
        ids.sort_unstable();
        ids.dedup();
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let Some(num) = sync_number(&tx, &pipeline)? else {
                    return Ok(Vec::new());
                };
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT key, hash, has_left FROM sync_entries
                         WHERE pipeline = ?1 AND profile_id = ?2",
                    )
                    .map_err(sql_error)?;
                let mut out = Vec::new();
                for id in ids {
                    let mut rows = stmt.query(params![num, id]).map_err(sql_error)?;
                    if let Some(r) = rows.next().map_err(sql_error)? {
                        out.push(entry_from_row(r, id, 0)?);
                    }
                }
                Ok(out)
            })
            .await
    }

    async fn sync_clear(&self, pipeline: &str) -> Result<()> {
        let pipeline = pipeline.to_owned();
        self.db
            .write(move |c| {
                let tx = c.transaction().map_err(sql_error)?;
                tx.execute(
                    "DELETE FROM sync_checkpoints WHERE pipeline = ?1",
                    [&pipeline],
                )
                .map_err(sql_error)?;
                // The trigger on the number's row drops the entries.
                tx.execute(
                    "DELETE FROM sync_pipelines WHERE pipeline = ?1",
                    [&pipeline],
                )
                .map_err(sql_error)?;
                tx.commit().map_err(sql_error)
            })
            .await
    }

    async fn sync_checkpoint(&self, pipeline: &str) -> Result<Option<SyncCheckpoint>> {
        let pipeline = pipeline.to_owned();
        self.db
            .read(move |c| {
                let row = c
                    .query_row(
                        "SELECT mark, fingerprint, taken_at FROM sync_checkpoints WHERE pipeline = ?1",
                        [&pipeline],
                        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                row.map(|(mark, fingerprint, taken_at)| {
                    Ok(SyncCheckpoint {
                        mark,
                        fingerprint,
                        taken_at: time(taken_at)?,
                    })
                })
                .transpose()
            })
            .await
    }

    async fn set_sync_checkpoint(
        &self,
        pipeline: &str,
        checkpoint: Option<&SyncCheckpoint>,
    ) -> Result<()> {
        let (pipeline, checkpoint) = (pipeline.to_owned(), checkpoint.cloned());
        self.db
            .write(move |c| {
                let Some(cp) = checkpoint else {
                    c.execute("DELETE FROM sync_checkpoints WHERE pipeline = ?1", [&pipeline])
                        .map_err(sql_error)?;
                    return Ok(());
                };
                c.execute(
                    "INSERT INTO sync_checkpoints (pipeline, mark, fingerprint, taken_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (pipeline) DO UPDATE SET mark = excluded.mark,
                         fingerprint = excluded.fingerprint, taken_at = excluded.taken_at",
                    params![pipeline, cp.mark, cp.fingerprint, micros(&cp.taken_at)],
                )
                .map_err(|err| match violation(&err) {
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
                    }
                    _ => sql_error(err),
                })?;
                Ok(())
            })
            .await
    }

    async fn sync_table_identity(&self, pipeline: &str) -> Result<Option<String>> {
        let pipeline = pipeline.to_owned();
        self.db
            .read(move |c| {
                c.query_row(
                    "SELECT identity FROM sync_tables WHERE pipeline = ?1",
                    [&pipeline],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(sql_error)
            })
            .await
    }

    async fn set_sync_table_identity(&self, pipeline: &str, identity: Option<&str>) -> Result<()> {
        let (pipeline, identity) = (pipeline.to_owned(), identity.map(str::to_owned));
        self.db
            .write(move |c| {
                let Some(identity) = identity else {
                    c.execute("DELETE FROM sync_tables WHERE pipeline = ?1", [&pipeline])
                        .map_err(sql_error)?;
                    return Ok(());
                };
                c.execute(
                    "INSERT INTO sync_tables (pipeline, identity) VALUES (?1, ?2)
                     ON CONFLICT (pipeline) DO UPDATE SET identity = excluded.identity",
                    params![pipeline, identity],
                )
                .map_err(|err| match violation(&err) {
                    Some(Violation::ForeignKey) => {
                        StoreError::NotFound(format!("pipeline `{pipeline}` does not exist"))
                    }
                    _ => sql_error(err),
                })?;
                Ok(())
            })
            .await
    }

    async fn sync_count(&self, pipeline: &str) -> Result<u64> {
        Ok(self.sync_counts(pipeline).await?.kept)
    }

    async fn sync_count_left(&self, pipeline: &str) -> Result<u64> {
        Ok(self.sync_counts(pipeline).await?.left)
    }
}

/// A pipeline's entries, split by whether their profile left.
struct SyncCounts {
    kept: u64,
    left: u64,
}

impl SqliteMetadata {
    async fn sync_counts(&self, pipeline: &str) -> Result<SyncCounts> {
        let pipeline = pipeline.to_owned();
        self.db
            .read(move |c| {
                // Kept by every write of the entries (see the migration that added them): one row.
                let counts = c
                    .prepare_cached("SELECT live, left_ FROM sync_pipelines WHERE pipeline = ?1")
                    .and_then(|mut s| {
                        s.query_row([&pipeline], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                        })
                        .optional()
                    })
                    .map_err(sql_error)?;
                let (live, left) = counts.unwrap_or((0, 0));
                Ok(SyncCounts {
                    kept: codec::to_u64(live),
                    left: codec::to_u64(left),
                })
            })
            .await
    }
}

/// Sync entries per `INSERT` statement: at most 4 parameters each, well under SQLite's limit of 32,766
/// (500 was measurably slower at 1M entries).
const SYNC_ROWS_PER_STATEMENT: usize = 2000;

/// The number that names `pipeline` in `sync_entries`; `None` while it has never recorded an entry.
fn sync_number(c: &Connection, pipeline: &str) -> Result<Option<i64>> {
    Ok(sync_pipeline(c, pipeline)?.map(|sp| sp.num))
}

/// A pipeline's row in `sync_pipelines`: its number, and which forms of key its entries may hold.
struct SyncPipeline {
    num: i64,
    /// Some entry may have its key written out.
    written: bool,
    /// Some entry may have its key implied: a null key, meaning the profile's id.
    implied: bool,
}

fn sync_pipeline(c: &Connection, pipeline: &str) -> Result<Option<SyncPipeline>> {
    c.prepare_cached(
        "SELECT num, written_keys, implied_keys FROM sync_pipelines WHERE pipeline = ?1",
    )
    .and_then(|mut stmt| {
        stmt.query_row([pipeline], |r| {
            Ok(SyncPipeline {
                num: r.get(0)?,
                written: r.get(1)?,
                implied: r.get(2)?,
            })
        })
        .optional()
    })
    .map_err(sql_error)
}

/// The key of an entry as stored: written out, or implied by its profile's id.
fn stored_key(key: Option<String>, profile_id: &str) -> SyncKey {
    SyncKey::from_stored(key.unwrap_or_else(|| profile_id.to_owned()))
}

/// The entry of `profile_id` from a row holding its key, hash and left flag from column `first` on.
fn entry_from_row(r: &rusqlite::Row<'_>, profile_id: String, first: usize) -> Result<SyncEntry> {
    let hash = r
        .get_ref(first + 1)
        .map_err(sql_error)?
        .as_blob()
        .map_err(|e| sql_error(e.into()))?;
    Ok(SyncEntry {
        hash: codec::hash_from_bytes(&profile_id, hash)?,
        key: stored_key(r.get(first).map_err(sql_error)?, &profile_id),
        left: r.get::<_, Option<bool>>(first + 2).map_err(sql_error)? == Some(true),
        profile_id,
    })
}

/// The upsert of `rows` sync entries of the pipeline numbered `?1`, with their keys written out or
/// (`implied`) left null, and their left flags bound (`flagged`) or left null. The full-size
/// statements, used by every chunk but a batch's last, are written once.
///
/// Written keys need `INSERT OR REPLACE`: it also removes another profile's entry holding the key.
/// Implied keys leave only the primary key to conflict on, so an entry is overwritten in place (the
/// `sync_entries_overwritten` trigger keeps the counts as `REPLACE`'s delete trigger does).
fn sync_upsert_sql(rows: usize, implied: bool, flagged: bool) -> std::borrow::Cow<'static, str> {
    static FULL: [std::sync::OnceLock<String>; 4] = [const { std::sync::OnceLock::new() }; 4];
    if rows == SYNC_ROWS_PER_STATEMENT {
        return FULL[usize::from(implied) * 2 + usize::from(flagged)]
            .get_or_init(|| write_sync_upsert_sql(rows, implied, flagged))
            .into();
    }
    write_sync_upsert_sql(rows, implied, flagged).into()
}

fn write_sync_upsert_sql(rows: usize, implied: bool, flagged: bool) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(if implied {
        "INSERT INTO sync_entries (pipeline, profile_id, key, hash"
    } else {
        "INSERT OR REPLACE INTO sync_entries (pipeline, profile_id, key, hash"
    });
    sql.push_str(if flagged {
        ", has_left) VALUES "
    } else {
        ") VALUES "
    });
    let mut p = 2;
    let mut param = |sql: &mut String| {
        let _ = write!(sql, ", ?{p}");
        p += 1;
    };
    for i in 0..rows {
        sql.push_str(if i > 0 { ",(?1" } else { "(?1" });
        param(&mut sql);
        if implied {
            sql.push_str(", NULL");
        } else {
            param(&mut sql);
        }
        param(&mut sql);
        if flagged {
            param(&mut sql);
        }
        sql.push(')');
    }
    if implied {
        sql.push_str(
            " ON CONFLICT (pipeline, profile_id) DO UPDATE SET hash = excluded.hash, has_left = excluded.has_left",
        );
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::db::{migrate, no_setup, open_connection};
    use crate::sqlite::migrations::METADATA_MIGRATIONS;
    use crate::{Catalog, SecretBox};

    /// A store written before sync entries were numbered by pipeline keeps them, and they still go with
    /// their pipeline.
    #[tokio::test]
    async fn sync_entries_survive_the_move_to_numbered_pipelines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metadata.db");
        // Before the migration that numbered pipelines (the fourth).
        let before = 3;
        {
            let mut c = open_connection(&path, no_setup, false).unwrap();
            migrate(&mut c, &path, "metadata", &METADATA_MIGRATIONS[..before]).unwrap();
            c.execute_batch(
                "INSERT INTO destinations (id, name, kind, settings, created_at, updated_at)
                     VALUES ('d', 'D', 'postgresql', '{}', 0, 0);
                 INSERT INTO pipelines (id, destination, name, spec, created_at, updated_at)
                     VALUES ('p1', 'd', 'one', '{}', 0, 0), ('p2', 'd', 'two', '{}', 0, 0);
                 INSERT INTO sync_state (pipeline, profile_id, key, hash) VALUES
                     ('p1', 'a', 'ka', x'00000000000000000000000000000001'),
                     ('p1', 'b', 'kb', x'00000000000000000000000000000002'),
                     ('p2', 'a', 'ka', x'00000000000000000000000000000003');",
            )
            .unwrap();
        }
        let store = SqliteMetadata::open(&path, SecretBox::generate()).unwrap();
        let p1 = store.sync_range("p1", None, None, 10).await.unwrap();
        let got: Vec<(&str, &str, u128)> = p1
            .iter()
            .map(|e| (e.profile_id.as_str(), e.key.as_str(), e.hash))
            .collect();
        assert_eq!(got, [("a", "ka", 1), ("b", "kb", 2)]);
        assert_eq!(store.sync_count("p2").await.unwrap(), 1);
        assert_eq!(
            store
                .sync_owners("p1", &[SyncKey::from_stored("kb")])
                .await
                .unwrap(),
            [SyncEntry::written("b", SyncKey::from_stored("kb"), 2)]
        );
        // New entries of a migrated pipeline share its number; the pipeline's deletion takes them all.
        let entry = SyncEntry::written("c", SyncKey::from_stored("kc"), 4);
        store.sync_apply("p1", vec![entry], vec![]).await.unwrap();
        assert_eq!(store.sync_count("p1").await.unwrap(), 3);
        assert!(store.delete_pipeline("p1").await.unwrap());
        let left: i64 = store
            .db
            .read(|c| {
                c.query_row("SELECT count(*) FROM sync_entries", [], |r| r.get(0))
                    .map_err(sql_error)
            })
            .await
            .unwrap();
        assert_eq!(left, 1, "only p2's entry is left");
    }
}
