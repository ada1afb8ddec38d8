//! The profile store in `profiles.db`: documents, the change counter and tombstones.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{Map, Value as Json};
use sluice_core::filter::{self, Filter, SqlDialect, SqlParam};
use sluice_core::{Profile, RawProfile};

use super::db::{collect, sql_error, time, Db};
use super::migrations::PROFILE_MIGRATIONS;
use crate::codec::{self, corrupt};
use crate::{ChangeCounts, ProfileStore, Properties, Result, UpsertOutcome, TOMBSTONE_RETENTION};

/// Bumps the change counter inside a writing transaction and returns the number of this transaction's
/// changes. SQLite has one writer at a time, so numbers follow commit order exactly.
fn next_change(tx: &Connection) -> Result<i64> {
    tx.query_row(
        "UPDATE profile_clock SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        [],
        |r| r.get(0),
    )
    .map_err(sql_error)
}

/// The profile store in an SQLite file.
pub struct SqliteProfiles {
    db: Db,
}

impl SqliteProfiles {
    /// Opens (creating when absent) the file and brings its table up to date.
    pub fn open(path: &Path) -> Result<SqliteProfiles> {
        Ok(SqliteProfiles {
            db: Db::open(path, "profiles", PROFILE_MIGRATIONS, register_functions)?,
        })
    }
}

/// Registers the functions that pushed-down filters call; deterministic, so SQLite may use them in indexes
/// and evaluate them once per distinct argument.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function(filter::SQLITE_FN_TS, 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(filter::sqlite_ts),
            _ => None,
        })
    })?;
    conn.create_scalar_function(filter::SQLITE_FN_DEC_CMP, 2, flags, |ctx| {
        let (a, b) = (number_text(ctx.get_raw(0)), number_text(ctx.get_raw(1)));
        Ok(match (a, b) {
            (Some(a), Some(b)) => filter::sqlite_dec_cmp(&a, &b),
            _ => None,
        })
    })?;
    Ok(())
}

/// Decimals are stored as strings, but JSON numbers and bound numbers compare just as well.
fn number_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_owned),
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) if f.is_finite() => Some(f.to_string()),
        _ => None,
    }
}

fn sql_param(p: SqlParam) -> SqlValue {
    match p {
        SqlParam::Null => SqlValue::Null,
        SqlParam::Bool(b) => SqlValue::Integer(b.into()),
        SqlParam::Int(i) => SqlValue::Integer(i),
        SqlParam::Float(f) => SqlValue::Real(f),
        SqlParam::Text(s) => SqlValue::Text(s),
    }
}

fn raw_profile_from_row(r: &rusqlite::Row<'_>) -> Result<RawProfile> {
    let doc = r.get_ref(2).map_err(sql_error)?;
    Ok(RawProfile {
        id: r.get(0).map_err(sql_error)?,
        updated_at: time(r.get(1).map_err(sql_error)?)?,
        doc: doc.as_str().map_err(|e| sql_error(e.into()))?.to_owned(),
    })
}

fn profile_from_row(r: &rusqlite::Row<'_>) -> Result<Profile> {
    raw_profile_from_row(r)?.parse().map_err(corrupt)
}

/// Stores a batch in one transaction: new profiles inserted as their text, existing ones merged.
fn upsert_rows(c: &mut Connection, profiles: Vec<(String, Properties)>) -> Result<UpsertOutcome> {
    let now = codec::now().timestamp_micros();
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_error)?;
    let change = next_change(&tx)?;
    let mut outcome = UpsertOutcome::default();
    {
        let mut select = tx
            .prepare_cached("SELECT doc FROM profiles WHERE id = ?1")
            .map_err(sql_error)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO profiles (id, updated_at, doc, change_id) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sql_error)?;
        let mut update = tx
            .prepare_cached(
                "UPDATE profiles SET updated_at = ?2, doc = ?3, change_id = ?4 WHERE id = ?1",
            )
            .map_err(sql_error)?;
        // A profile given as text is most likely new: it is inserted straight away, and looked up
        // only when one with its id is already stored.
        let mut insert_new = tx
            .prepare_cached(
                "INSERT INTO profiles (id, updated_at, doc, change_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO NOTHING",
            )
            .map_err(sql_error)?;
        for (id, incoming) in profiles {
            if let Properties::Text(text) = &incoming {
                let n = insert_new
                    .execute(params![id, now, text, change])
                    .map_err(sql_error)?;
                if n == 1 {
                    outcome.inserted += 1;
                    continue;
                }
            }
            let stored: Option<String> = select
                .query_row([&id], |r| r.get(0))
                .optional()
                .map_err(sql_error)?;
            match stored {
                None => {
                    insert
                        .execute(params![id, now, incoming.into_text(), change])
                        .map_err(sql_error)?;
                    outcome.inserted += 1;
                }
                Some(stored) => {
                    let stored: Json = serde_json::from_str(&stored)
                        .map_err(|e| corrupt(format!("profile `{id}` is not valid JSON: {e}")))?;
                    let mut merged = codec::doc_from_json(&id, stored)?;
                    // Unchanged profiles keep their change number: exports skip them.
                    if sluice_core::schema::merge_profile_changed(
                        &mut merged,
                        incoming.into_map(&id)?,
                    ) {
                        let text = Json::Object(merged).to_string();
                        update
                            .execute(params![id, now, text, change])
                            .map_err(sql_error)?;
                    } else {
                        outcome.unchanged += 1;
                    }
                    outcome.updated += 1;
                }
            }
        }
    }
    tx.commit().map_err(sql_error)?;
    Ok(outcome)
}

#[async_trait]
impl ProfileStore for SqliteProfiles {
    async fn upsert(&self, profiles: Vec<(String, Map<String, Json>)>) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let profiles = codec::fold_batch(profiles)
            .into_iter()
            .map(|(id, doc)| (id, Properties::Map(doc)))
            .collect();
        self.db.write(move |c| upsert_rows(c, profiles)).await
    }

    async fn upsert_properties(
        &self,
        profiles: Vec<(String, Properties)>,
    ) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        self.db.write(move |c| upsert_rows(c, profiles)).await
    }

    async fn get(&self, id: &str) -> Result<Option<Profile>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT id, updated_at, doc FROM profiles WHERE id = ?1")
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], profile_from_row)?.pop())
            })
            .await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let deleted = tx
                    .execute("DELETE FROM profiles WHERE id = ?1", [&id])
                    .map_err(sql_error)?
                    > 0;
                if deleted {
                    let change = next_change(&tx)?;
                    let now = codec::now();
                    tx.execute(
                        "INSERT OR REPLACE INTO profile_tombstones (id, change_id, deleted_at) VALUES (?1, ?2, ?3)",
                        params![id, change, now.timestamp_micros()],
                    )
                    .map_err(sql_error)?;
                    tx.execute(
                        "DELETE FROM profile_tombstones WHERE deleted_at < ?1",
                        [(now - TOMBSTONE_RETENTION).timestamp_micros()],
                    )
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(deleted)
            })
            .await
    }

    async fn page_raw(
        &self,
        filter: Option<&Filter>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let mut args: Vec<SqlValue> = vec![limit.into()];
        let mut sql = String::from("SELECT id, updated_at, doc FROM profiles WHERE ");
        if let Some(after) = after {
            args.push(after.to_owned().into());
            sql.push_str("id > ?2 AND ");
        }
        match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Sqlite, args.len() + 1);
                sql.push_str(&format!("({cond})"));
                args.extend(params.into_iter().map(sql_param));
            }
            None => sql.push_str("TRUE"),
        }
        sql.push_str(" ORDER BY id LIMIT ?1");
        self.db
            .read(move |c| {
                let mut stmt = c.prepare_cached(&sql).map_err(sql_error)?;
                let mut out = Vec::with_capacity(limit.clamp(0, 10_000) as usize);
                let mut rows = stmt
                    .query(rusqlite::params_from_iter(args))
                    .map_err(sql_error)?;
                while let Some(row) = rows.next().map_err(sql_error)? {
                    out.push(raw_profile_from_row(row)?);
                }
                Ok(out)
            })
            .await
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let (sql, args) = match filter {
            Some(f) => {
                let (cond, params) = f.to_sql(SqlDialect::Sqlite, 1);
                (
                    format!("SELECT count(*) FROM profiles WHERE ({cond})"),
                    params.into_iter().map(sql_param).collect(),
                )
            }
            None => ("SELECT count(*) FROM profiles".to_owned(), Vec::new()),
        };
        self.db
            .read(move |c| {
                let n: i64 = c
                    .prepare_cached(&sql)
                    .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get(0)))
                    .map_err(sql_error)?;
                Ok(codec::to_u64(n))
            })
            .await
    }

    async fn change_mark(&self) -> Result<i64> {
        self.db
            .read(|c| {
                c.query_row("SELECT seq + 1 FROM profile_clock WHERE id = 1", [], |r| {
                    r.get(0)
                })
                .map_err(sql_error)
            })
            .await
    }

    async fn count_changes(&self, mark: i64) -> Result<ChangeCounts> {
        self.db
            .read(move |c| {
                let tx = c.unchecked_transaction().map_err(sql_error)?;
                let count = |sql: &str| -> Result<u64> {
                    let n: i64 = tx.query_row(sql, [mark], |r| r.get(0)).map_err(sql_error)?;
                    Ok(codec::to_u64(n))
                };
                Ok(ChangeCounts {
                    changed: count("SELECT count(*) FROM profiles WHERE change_id >= ?1")?,
                    deleted: count(
                        "SELECT count(*) FROM profile_tombstones WHERE change_id >= ?1",
                    )?,
                })
            })
            .await
    }

    async fn change_cursor(&self) -> Result<String> {
        // Writing transactions commit in the order they bump the counter, so every change not yet
        // visible gets a number at or above the next one.
        Ok(format!("sqlite:{}", self.change_mark().await?))
    }

    async fn count_changes_after(&self, cursor: &str) -> Result<Option<ChangeCounts>> {
        let Some(mark) = cursor
            .strip_prefix("sqlite:")
            .and_then(|m| m.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        self.count_changes(mark).await.map(Some)
    }

    async fn changed_page_raw(
        &self,
        mark: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RawProfile>> {
        let limit = limit.min(i64::MAX as usize) as i64;
        let after = after.unwrap_or("").to_owned();
        self.db
            .read(move |c| {
                // The change index finds the few changed profiles and orders their ids (the index holds
                // them); only the page's documents are then fetched, by id. Sorting whole rows instead
                // would fetch the document of every changed profile past `after` for each page.
                let mut stmt = c
                    .prepare_cached(
                        "WITH page(id) AS MATERIALIZED (
                             SELECT id FROM profiles INDEXED BY profiles_by_change
                             WHERE change_id >= ?1 AND id > ?2 ORDER BY id LIMIT ?3)
                         SELECT p.id, p.updated_at, p.doc FROM page CROSS JOIN profiles AS p
                         ON p.id = page.id ORDER BY p.id",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, params![mark, after, limit], raw_profile_from_row)
            })
            .await
    }

    async fn deleted_since(&self, mark: i64) -> Result<Vec<String>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT t.id FROM profile_tombstones AS t WHERE t.change_id >= ?1
                         AND NOT EXISTS (SELECT 1 FROM profiles AS p WHERE p.id = t.id) ORDER BY t.id",
                    )
                    .map_err(sql_error)?;
                collect(&mut stmt, [mark], |r| r.get(0).map_err(sql_error))
            })
            .await
    }
}
