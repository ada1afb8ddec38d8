//! Source pipelines, their marks and the rows each one wrote (see `crate::sources`).

use std::collections::HashSet;

use async_trait::async_trait;
use rusqlite::{params, params_from_iter, OptionalExtension, TransactionBehavior};

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::SqliteMetadata;
use crate::codec;
use crate::sources::{SourceRecord, SourceRow, Sources};
use crate::{Result, StoreError};
use sluice_core::schedule::TickState;
use sluice_core::source::CursorValue;

const SOURCE_COLUMNS: &str = "id, spec, created_at, updated_at";

/// Ids per statement: SQLite binds at most 32,766 parameters.
const CHUNK: usize = 500;

fn source_from_row(r: &rusqlite::Row<'_>) -> Result<SourceRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let spec: String = r.get(1).map_err(sql_error)?;
    Ok(SourceRecord {
        spec: codec::source_spec_from_json(&id, &spec)?,
        id,
        created_at: time(r.get(2).map_err(sql_error)?)?,
        updated_at: time(r.get(3).map_err(sql_error)?)?,
    })
}

fn source_conflict(e: rusqlite::Error, rec: &SourceRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique(m)) if m.contains("sources.name") => {
            StoreError::Conflict(format!("a source named `{}` already exists", rec.spec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a source with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "connection `{}` does not exist",
            rec.spec.connection
        )),
        None => sql_error(e),
    }
}

fn placeholders(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// One statement each, on a connection or a transaction: the single methods and the catalog's
// `apply_changes` (a workspace applied at once) share them.

pub(super) fn insert_source_on(c: &rusqlite::Connection, rec: &SourceRecord) -> Result<()> {
    c.execute(
        "INSERT INTO sources (id, connection, name, spec, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            rec.id,
            rec.spec.connection,
            rec.spec.name,
            codec::source_spec_to_json(&rec.spec),
            micros(&rec.created_at),
            micros(&rec.updated_at)
        ],
    )
    .map_err(|e| source_conflict(e, rec))?;
    Ok(())
}

pub(super) fn update_source_on(c: &rusqlite::Connection, rec: &SourceRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE sources SET connection = ?2, name = ?3, spec = ?4, updated_at = ?5 WHERE id = ?1",
            params![
                rec.id,
                rec.spec.connection,
                rec.spec.name,
                codec::source_spec_to_json(&rec.spec),
                micros(&rec.updated_at)
            ],
        )
        .map_err(|e| source_conflict(e, rec))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "source `{}` does not exist",
            rec.id
        )));
    }
    Ok(())
}

pub(super) fn delete_source_on(c: &rusqlite::Connection, id: &str) -> Result<bool> {
    // Runs go by trigger, the mark and rows by ON DELETE CASCADE.
    let n = c
        .execute("DELETE FROM sources WHERE id = ?1", [id])
        .map_err(sql_error)?;
    Ok(n > 0)
}

pub(super) fn forget_mark_on(c: &rusqlite::Connection, source: &str) -> Result<()> {
    c.execute("DELETE FROM source_marks WHERE source = ?1", [source])
        .map_err(sql_error)?;
    Ok(())
}

#[async_trait]
impl Sources for SqliteMetadata {
    async fn list_sources(&self) -> Result<Vec<SourceRecord>> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM sources ORDER BY created_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], source_from_row)
            })
            .await
    }

    async fn get_source(&self, id: &str) -> Result<Option<SourceRecord>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], source_from_row)?.pop())
            })
            .await
    }

    async fn insert_source(&self, rec: &SourceRecord) -> Result<()> {
        let rec = rec.clone();
        self.db.write(move |c| insert_source_on(c, &rec)).await
    }

    async fn update_source(&self, rec: &SourceRecord) -> Result<()> {
        let rec = rec.clone();
        self.db.write(move |c| update_source_on(c, &rec)).await
    }

    async fn delete_source(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db.write(move |c| delete_source_on(c, &id)).await
    }

    async fn source_mark(&self, source: &str) -> Result<Option<CursorValue>> {
        let source = source.to_owned();
        self.db
            .read(move |c| {
                let text: Option<String> = c
                    .query_row(
                        "SELECT mark FROM source_marks WHERE source = ?1",
                        [&source],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql_error)?;
                text.map(|t| codec::mark_from_json(&source, &t)).transpose()
            })
            .await
    }

    async fn set_source_mark(&self, source: &str, mark: Option<&CursorValue>) -> Result<()> {
        let source = source.to_owned();
        let mark = mark.map(codec::mark_to_json);
        self.db
            .write(move |c| {
                match mark {
                    None => c
                        .execute("DELETE FROM source_marks WHERE source = ?1", [&source])
                        .map_err(sql_error)?,
                    Some(m) => c
                        .execute(
                            "INSERT INTO source_marks (source, mark)
                             SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM sources WHERE id = ?1)
                             ON CONFLICT (source) DO UPDATE SET mark = excluded.mark",
                            params![source, m],
                        )
                        .map_err(sql_error)?,
                };
                Ok(())
            })
            .await
    }

    async fn source_hashes(
        &self,
        source: &str,
        profile_ids: &[&str],
    ) -> Result<Vec<(String, u128)>> {
        let source = source.to_owned();
        let ids: Vec<String> = profile_ids.iter().map(|s| s.to_string()).collect();
        self.db
            .read(move |c| {
                let read = |r: &rusqlite::Row<'_>| {
                    let id: String = r.get(0).map_err(sql_error)?;
                    let hash: Vec<u8> = r.get(1).map_err(sql_error)?;
                    let hash = codec::hash_from_bytes(&id, &hash)?;
                    Ok((id, hash))
                };
                // Ids asked for in byte order (a page of a read in id order) are one range of the
                // table's key: one scan of it answers them all, unless the range holds many more
                // rows than were asked for (then they are looked up one by one).
                if ids.len() > 1 && ids.windows(2).all(|w| w[0] < w[1]) {
                    let limit = ids.len() * 2 + 16;
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT profile_id, hash FROM source_rows
                             WHERE source = ?1 AND profile_id >= ?2 AND profile_id <= ?3 LIMIT ?4",
                        )
                        .map_err(sql_error)?;
                    let (first, last) = (&ids[0], &ids[ids.len() - 1]);
                    let found = collect(&mut stmt, params![source, first, last, limit as i64], read)?;
                    if found.len() < limit {
                        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
                        return Ok(found
                            .into_iter()
                            .filter(|(id, _)| wanted.contains(id.as_str()))
                            .collect());
                    }
                }
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT profile_id, hash FROM source_rows WHERE source = ?1 AND profile_id IN ({})",
                        placeholders(chunk.len(), 2)
                    );
                    let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                    let params = std::iter::once(&source).chain(chunk.iter());
                    out.extend(collect(&mut stmt, params_from_iter(params), read)?);
                }
                Ok(out)
            })
            .await
    }

    async fn record_source_rows(
        &self,
        source: &str,
        rows: &[SourceRow<'_>],
        seen: i64,
    ) -> Result<()> {
        let source = source.to_owned();
        let rows: Vec<(String, [u8; 16])> = rows
            .iter()
            .map(|r| (r.profile_id.to_owned(), codec::hash_to_bytes(r.hash)))
            .collect();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let exists = tx
                    .query_row("SELECT 1 FROM sources WHERE id = ?1", [&source], |_| Ok(()))
                    .optional()
                    .map_err(sql_error)?
                    .is_some();
                if exists {
                    let mut stmt = tx
                        .prepare_cached(
                            "INSERT INTO source_rows (source, profile_id, hash, seen) VALUES (?1, ?2, ?3, ?4)
                             ON CONFLICT (source, profile_id) DO UPDATE SET hash = excluded.hash, seen = excluded.seen",
                        )
                        .map_err(sql_error)?;
                    for (id, hash) in &rows {
                        stmt.execute(params![source, id, &hash[..], seen])
                            .map_err(sql_error)?;
                    }
                }
                tx.commit().map_err(sql_error)
            })
            .await
    }

    async fn unseen_source_rows(
        &self,
        source: &str,
        seen: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let source = source.to_owned();
        let after = after.unwrap_or_default().to_owned();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT profile_id FROM source_rows WHERE source = ?1 AND seen < ?2 AND profile_id > ?3
                         ORDER BY profile_id LIMIT ?4",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, params![source, seen, after, limit], |r| {
                    r.get(0).map_err(sql_error)
                })
            })
            .await
    }

    async fn forget_source_rows(&self, source: &str, profile_ids: &[&str]) -> Result<()> {
        let source = source.to_owned();
        let ids: Vec<String> = profile_ids.iter().map(|s| s.to_string()).collect();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "DELETE FROM source_rows WHERE source = ?1 AND profile_id IN ({})",
                        placeholders(chunk.len(), 2)
                    );
                    let params = std::iter::once(&source).chain(chunk.iter());
                    tx.execute(&sql, params_from_iter(params))
                        .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)
            })
            .await
    }

    async fn fed_by_other_sources(
        &self,
        source: &str,
        profile_ids: &[&str],
    ) -> Result<Vec<String>> {
        let source = source.to_owned();
        let ids: Vec<String> = profile_ids.iter().map(|s| s.to_string()).collect();
        self.db
            .read(move |c| {
                let mut out = Vec::new();
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT DISTINCT profile_id FROM source_rows WHERE source <> ?1 AND profile_id IN ({})",
                        placeholders(chunk.len(), 2)
                    );
                    let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                    let params = std::iter::once(&source).chain(chunk.iter());
                    out.extend(collect(&mut stmt, params_from_iter(params), |r| {
                        r.get(0).map_err(sql_error)
                    })?);
                }
                Ok(out)
            })
            .await
    }
    async fn source_tick_states(&self) -> Result<Vec<(String, TickState)>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT source, last_tick, pending FROM source_schedules")
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

    async fn advance_source_tick(
        &self,
        source: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool> {
        let source = source.to_string();
        self.db
            .write(move |c| {
                let stored: Option<(Option<i64>, i64)> = c
                    .query_row(
                        "SELECT last_tick, pending FROM source_schedules WHERE source = ?1",
                        [&source],
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
                let n = c
                    .execute(
                        "INSERT INTO source_schedules (source, last_tick, pending)
                         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM sources WHERE id = ?1)
                         ON CONFLICT (source) DO UPDATE SET last_tick = excluded.last_tick, pending = excluded.pending",
                        params![source, next.last_tick.as_ref().map(micros), i64::from(next.pending)],
                    )
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }
}
