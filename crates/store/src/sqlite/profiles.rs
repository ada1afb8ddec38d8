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

/// A profile of a batch as the writer gets it: merged already, against the version of the stored
/// profile that a reader saw, or left for the writer to look up.
enum Planned {
    /// Not stored when the batch was read (or not looked up): inserted, or merged by the writer if it
    /// is stored by then.
    Unknown(String, Properties),
    /// Stored as version `was`; `text` is the merge, written if the profile is still at that version.
    Merged {
        id: String,
        text: String,
        was: i64,
        incoming: Properties,
    },
    /// Stored as version `was`, which the merge leaves as it is.
    Same {
        id: String,
        was: i64,
        incoming: Properties,
    },
}

/// How many of a batch's ids are looked up to tell whether any of its profiles is stored.
const SAMPLED_IDS: usize = 16;

/// Reads the stored profiles of a batch (on a reader connection) and merges into them, so that the one
/// writer is left only the writes. A batch none of whose sampled ids is stored is taken as new and not
/// looked up one by one: the writer inserts it, and merges whatever turns out to be stored after all.
fn plan(c: &Connection, profiles: Vec<(String, Properties)>) -> Result<Vec<Planned>> {
    // One snapshot for the whole batch: a statement outside a transaction takes and drops the
    // database's read locks each time, a few system calls per profile.
    let tx = c.unchecked_transaction().map_err(sql_error)?;
    let planned = plan_in(&tx, profiles)?;
    tx.commit().map_err(sql_error)?;
    Ok(planned)
}

fn plan_in(c: &Connection, mut profiles: Vec<(String, Properties)>) -> Result<Vec<Planned>> {
    let mut exists = c
        .prepare_cached("SELECT 1 FROM profiles WHERE id = ?1")
        .map_err(sql_error)?;
    let step = profiles.len().div_ceil(SAMPLED_IDS).max(1);
    let mut any = false;
    for (id, _) in profiles.iter().step_by(step) {
        if exists.exists([id]).map_err(sql_error)? {
            any = true;
            break;
        }
    }
    if !any {
        return Ok(profiles
            .into_iter()
            .map(|(id, p)| Planned::Unknown(id, p))
            .collect());
    }
    // In id order, neighbouring look-ups (and then writes) fall on the same pages.
    profiles.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let (first, last) = match (profiles.first(), profiles.last()) {
        (Some(first), Some(last)) => (first.0.clone(), last.0.clone()),
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::with_capacity(profiles.len());
    let mut batch = profiles.into_iter().peekable();
    walk_range(c, (&first, &last), &mut batch, &mut out)?;
    let mut select = c
        .prepare_cached("SELECT doc, change_id FROM profiles WHERE id = ?1")
        .map_err(sql_error)?;
    for (id, incoming) in batch {
        let mut rows = select.query([&id]).map_err(sql_error)?;
        out.push(match rows.next().map_err(sql_error)? {
            Some(row) => plan_one(id, incoming, row, 0)?,
            None => unknown(id, incoming),
        });
    }
    Ok(out)
}

/// How many stored profiles the batch does not name a walk steps over per profile it plans, at most,
/// and how many more it may step over before it has planned any.
const PASSED_OVER_PER_NAMED: usize = 4;
const PASSED_OVER_SLACK: usize = 64;

/// Plans the profiles of a batch sorted by id by walking the stored profiles of its id range beside it:
/// one range scan instead of a descent of the id index per profile. A batch of neighbouring ids (a file
/// loaded again in the same order) is planned this way whole. Stepping over a stored profile the batch
/// does not name costs a fraction of a look-up, so the walk goes on while they are fewer than
/// [`PASSED_OVER_PER_NAMED`] per named one (with a little slack at the start); past that, as in a batch
/// of ids in random order, what the walk did not reach stays in `batch`, to be looked up one by one.
fn walk_range(
    c: &Connection,
    (first, last): (&str, &str),
    batch: &mut std::iter::Peekable<std::vec::IntoIter<(String, Properties)>>,
    out: &mut Vec<Planned>,
) -> Result<()> {
    let (mut passed_over, mut planned) = (0usize, 0usize);
    let mut range = c
        .prepare_cached(
            "SELECT id, doc, change_id FROM profiles WHERE id >= ?1 AND id <= ?2 ORDER BY id",
        )
        .map_err(sql_error)?;
    let mut rows = range.query([first, last]).map_err(sql_error)?;
    while let Some(row) = rows.next().map_err(sql_error)? {
        let stored = text_at(row, 0)?;
        // The batch's ids before this stored one are not stored.
        while let Some((id, incoming)) = batch.next_if(|(id, _)| id.as_str() < stored) {
            out.push(unknown(id, incoming));
        }
        // A profile named twice is merged twice into the stored version; the writer then merges the
        // second into the first's result (its version no longer matches).
        let mut named = false;
        while let Some((id, incoming)) = batch.next_if(|(id, _)| id.as_str() == stored) {
            out.push(plan_one(id, incoming, row, 1)?);
            named = true;
            planned += 1;
        }
        if batch.peek().is_none() {
            return Ok(());
        }
        if !named {
            passed_over += 1;
            if passed_over > PASSED_OVER_PER_NAMED * planned + PASSED_OVER_SLACK {
                return Ok(());
            }
        }
    }
    // Past the last stored profile of the range: the rest is not stored.
    out.extend(batch.map(|(id, incoming)| unknown(id, incoming)));
    Ok(())
}

/// A profile not stored when its batch was read, written out as text for the writer.
fn unknown(id: String, incoming: Properties) -> Planned {
    Planned::Unknown(id, Properties::Text(incoming.into_text()))
}

/// The text of column `i` as SQLite holds it, without a copy.
fn text_at<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    row.get_ref(i)
        .and_then(|v| v.as_str().map_err(Into::into))
        .map_err(sql_error)
}

/// Plans `incoming` against its stored row, whose document and version are at `doc` and `doc + 1`.
fn plan_one(
    id: String,
    incoming: Properties,
    row: &rusqlite::Row<'_>,
    doc: usize,
) -> Result<Planned> {
    // Written out here rather than in the writer, whatever happens next.
    let sent = incoming.into_text();
    // Merged from the row as SQLite holds it, not from a copy.
    let stored = text_at(row, doc)?;
    let was: i64 = row.get(doc + 1).map_err(sql_error)?;
    let merged = merge_text(&id, stored, &sent)?;
    let incoming = Properties::Text(sent);
    Ok(match merged {
        Some(text) => Planned::Merged {
            id,
            text,
            was,
            incoming,
        },
        None => Planned::Same { id, was, incoming },
    })
}

fn merge_text(id: &str, stored: &str, sent: &str) -> Result<Option<String>> {
    sluice_core::schema::merge_profile_text(stored, sent)
        .map_err(|e| corrupt(format!("profile `{id}`: {e}")))
}

/// Stores a planned batch in one transaction: new profiles inserted as their text, merges written where
/// the stored profile is still the version they were made from, and everything else merged here.
fn upsert_rows(c: &mut Connection, profiles: Vec<Planned>) -> Result<UpsertOutcome> {
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
        let mut version = tx
            .prepare_cached("SELECT change_id FROM profiles WHERE id = ?1")
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
        // Every write of a profile gives it its transaction's change number, so a profile still at
        // the number it was read with is still the document it was read as.
        let mut update_if = tx
            .prepare_cached(
                "UPDATE profiles SET updated_at = ?2, doc = ?3, change_id = ?4 WHERE id = ?1 AND change_id = ?5",
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
        for planned in profiles {
            let (id, incoming) = match planned {
                Planned::Unknown(id, incoming) => (id, incoming),
                Planned::Merged {
                    id,
                    text,
                    was,
                    incoming,
                } => {
                    let n = update_if
                        .execute(params![id, now, text, change, was])
                        .map_err(sql_error)?;
                    if n == 1 {
                        outcome.updated += 1;
                        continue;
                    }
                    (id, incoming)
                }
                Planned::Same { id, was, incoming } => {
                    let now_at: Option<i64> = version
                        .query_row([&id], |r| r.get(0))
                        .optional()
                        .map_err(sql_error)?;
                    if now_at == Some(was) {
                        outcome.updated += 1;
                        outcome.unchanged += 1;
                        continue;
                    }
                    (id, incoming)
                }
            };
            // Not planned, or changed since it was read.
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
                    let sent = incoming.into_text();
                    // Unchanged profiles keep their change number: exports skip them.
                    if let Some(text) = merge_text(&id, &stored, &sent)? {
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

impl SqliteProfiles {
    /// Plans a batch on a reader, then writes it.
    async fn store(&self, profiles: Vec<(String, Properties)>) -> Result<UpsertOutcome> {
        if profiles.is_empty() {
            return Ok(UpsertOutcome::default());
        }
        let planned = self.db.read(move |c| plan(c, profiles)).await?;
        self.db.write(move |c| upsert_rows(c, planned)).await
    }
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
        self.store(profiles).await
    }

    async fn upsert_properties(
        &self,
        profiles: Vec<(String, Properties)>,
    ) -> Result<UpsertOutcome> {
        self.store(profiles).await
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: Json) -> Properties {
        Properties::Text(v.to_string())
    }

    async fn doc(store: &SqliteProfiles, id: &str) -> Json {
        Json::Object(store.get(id).await.unwrap().expect("stored").doc)
    }

    /// A batch planned against versions that another write replaced before it was written: what it
    /// merged is merged again into the newer versions, and nothing of the other write is lost.
    #[tokio::test]
    async fn a_plan_overtaken_by_another_write_is_merged_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteProfiles::open(&dir.path().join("profiles.db")).unwrap();
        store
            .upsert_properties(vec![
                ("a".into(), text(json!({"name": "Ada", "age": 36}))),
                ("b".into(), text(json!({"name": "Bo", "age": 20}))),
                ("c".into(), text(json!({"name": "Cy"}))),
            ])
            .await
            .unwrap();
        // Planned now: `a` merged, `b` the same as stored, `d` new, `c` merged and left alone.
        let batch = vec![
            ("a".into(), text(json!({"age": 37}))),
            ("b".into(), text(json!({"age": 20}))),
            ("c".into(), text(json!({"age": 5}))),
            ("d".into(), text(json!({"name": "Di"}))),
        ];
        let planned = store.db.read(move |c| plan(c, batch)).await.unwrap();
        assert!(matches!(planned[0], Planned::Merged { .. }));
        assert!(matches!(planned[1], Planned::Same { .. }));
        assert!(matches!(planned[3], Planned::Unknown(..)));
        // Meanwhile `a`, `b` and `d` are written by someone else.
        store
            .upsert_properties(vec![
                ("a".into(), text(json!({"email": "ada@x"}))),
                ("b".into(), text(json!({"age": 21}))),
                ("d".into(), text(json!({"age": 4}))),
            ])
            .await
            .unwrap();
        let outcome = store
            .db
            .write(move |c| upsert_rows(c, planned))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            UpsertOutcome {
                inserted: 0,
                updated: 4,
                unchanged: 0
            }
        );
        assert_eq!(
            doc(&store, "a").await,
            json!({"name": "Ada", "age": 37, "email": "ada@x"})
        );
        assert_eq!(doc(&store, "b").await, json!({"name": "Bo", "age": 20}));
        assert_eq!(doc(&store, "c").await, json!({"name": "Cy", "age": 5}));
        assert_eq!(doc(&store, "d").await, json!({"age": 4, "name": "Di"}));
    }

    /// A batch is planned by walking its id range where the range holds little else, and profile by
    /// profile past a batch's worth of stored profiles it does not name: either way each profile is
    /// planned against its own stored version, and new ones are told apart.
    #[tokio::test]
    async fn a_batch_is_planned_the_same_by_walking_its_range_or_looking_up_each_profile() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteProfiles::open(&dir.path().join("profiles.db")).unwrap();
        let stored: Vec<(String, Properties)> = (0..1_000)
            .map(|i| (format!("p{i:04}"), text(json!({"n": i, "name": "x"}))))
            .collect();
        store.upsert_properties(stored).await.unwrap();
        // Dense: every stored profile of the range, and new ids before, between and after them (the
        // whole batch is planned by the walk).
        // Sparse: one stored profile in fifty (the walk gives up after a few dozen unnamed ones), the
        // same new ids, and one profile changed to its stored value.
        let dense: Vec<String> = (100..200).map(|i| format!("p{i:04}")).collect();
        let sparse: Vec<String> = (0..1_000).step_by(50).map(|i| format!("p{i:04}")).collect();
        for named in [dense, sparse] {
            let mut batch: Vec<(String, Properties)> = named
                .iter()
                .map(|id| (id.clone(), text(json!({"name": format!("y{id}")}))))
                .collect();
            for new in ["p0099z", "p0100a", "p0150a", "p0199a"] {
                batch.push((new.into(), text(json!({"name": new}))));
            }
            batch.push((named[1].clone(), text(json!({"name": "x"}))));
            batch.reverse();
            let planned = store.db.read(move |c| plan(c, batch)).await.unwrap();
            let ids: Vec<&str> = planned
                .iter()
                .map(|p| match p {
                    Planned::Unknown(id, _)
                    | Planned::Merged { id, .. }
                    | Planned::Same { id, .. } => id.as_str(),
                })
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, sorted, "planned in id order");
            for p in &planned {
                match p {
                    Planned::Unknown(id, _) => {
                        assert!(
                            ["p0099z", "p0100a", "p0150a", "p0199a"].contains(&id.as_str()),
                            "{id}"
                        )
                    }
                    Planned::Merged { id, text, was, .. } => {
                        assert!(named.contains(id) && *was > 0, "{id}");
                        let n: u32 = id[1..].parse().unwrap();
                        let merged: Json = serde_json::from_str(text).unwrap();
                        assert_eq!(merged, json!({"n": n, "name": format!("y{id}")}));
                    }
                    Planned::Same { id, .. } => assert_eq!(id, &named[1]),
                }
            }
            assert_eq!(planned.len(), named.len() + 5);
        }
    }

    /// A batch whose sampled ids are all new is not looked up one by one, and its stored members are
    /// still merged, by the writer.
    #[tokio::test]
    async fn a_batch_taken_as_new_still_merges_what_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteProfiles::open(&dir.path().join("profiles.db")).unwrap();
        store
            .upsert_properties(vec![("p8".into(), text(json!({"name": "Old", "age": 1})))])
            .await
            .unwrap();
        let batch: Vec<(String, Properties)> = (0..100)
            .map(|i| (format!("p{i}"), text(json!({"age": i}))))
            .collect();
        // Every seventh id is sampled: `p8` is not among them.
        let probe = batch.clone();
        let planned = store.db.read(move |c| plan(c, probe)).await.unwrap();
        assert!(planned.iter().all(|p| matches!(p, Planned::Unknown(..))));
        let outcome = store.upsert_properties(batch).await.unwrap();
        assert_eq!((outcome.inserted, outcome.updated), (99, 1));
        assert_eq!(doc(&store, "p8").await, json!({"name": "Old", "age": 8}));
    }
}
