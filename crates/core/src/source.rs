//! Source pipelines: a table or a `SELECT` in a database, read into the profile store.
//!
//! The spec as the API takes it ([`SourceSpec`]) and the pure rules of reading changes:
//!
//! - `cursor` mode reads the rows whose cursor column is at or past the source's *mark*, in
//!   `(cursor, id)` order, a page at a time: a page ends at a `(cursor, id)` pair and the next starts
//!   strictly after it ([`Page::after`]), so rows with equal cursor values across a page boundary are
//!   neither skipped nor read twice. After a run the mark moves to the greatest cursor seen minus a
//!   *lookback* ([`next_mark`]): a transaction that took its `updated_at` (or id) before another one
//!   but committed after the run read past it is still read by the next run. Rows read again are
//!   found unchanged by their hash and written nowhere, so the overlap costs reading only.
//! - `full` mode reads everything, in id order, and leaves the profiles whose source row is gone to
//!   `on_missing`.
//!
//! Within one read, an id met twice keeps its first row; the others are failed rows ([`FirstSeen`]).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::errors::FieldErrors;
use crate::pipeline::{Schedule, Transformation};

mod query;

/// A query source must be one `SELECT` (or `WITH … SELECT`): it is wrapped as a subquery to page it,
/// and it runs with the connection's rights, so a second statement is refused outright.
pub use query::{check_query, check_query_shape};

/// How a source finds what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Changes {
    /// A column that grows with every change (`updated_at`, an id).
    Cursor {
        column: String,
        /// How far behind the greatest cursor seen the next run starts: a duration (`30s`, `5m`, `1h`)
        /// for a time column, a number for an integer one. Defaults: [`DEFAULT_TIME_LOOKBACK`] and
        /// [`DEFAULT_INT_LOOKBACK`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lookback: Option<serde_json::Value>,
    },
    /// Every run reads everything.
    Full {
        #[serde(default)]
        on_missing: OnMissing,
    },
}

/// What happens to a profile whose source row disappeared (`full` mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    #[default]
    Keep,
    Delete,
}

fn yes() -> bool {
    true
}

/// A source pipeline as it is sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The id of the connection read from.
    pub connection: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Exactly one of `table` and `query`.
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// The column whose value becomes the profile's `_id`.
    pub id_column: String,
    /// Customer Model property path → expression over the source's columns (or a script).
    pub transformation: Transformation,
    pub changes: Changes,
    #[serde(default)]
    pub schedule: Option<Schedule>,
}

/// Lookback of a time cursor when none is given.
///
/// A row is missed only if its transaction took its `updated_at` more than the lookback before the
/// greatest cursor a run saw, and committed after that run read: so the lookback must outlast the
/// longest gap between a writer taking its timestamp (PostgreSQL's `now()` is the start of the
/// transaction) and committing, plus how far apart the writers' clocks are when they stamp the rows
/// themselves. Ten seconds covers the short transactions of an application database; a source written
/// by long batch transactions sets its own. Every run reads the lookback's rows again (found unchanged
/// by their hash and written nowhere), so a source polled every 5 s re-reads about 10 s of changes per
/// run, not minutes of them.
pub const DEFAULT_TIME_LOOKBACK: TimeDelta = TimeDelta::seconds(10);
/// Lookback of an integer cursor when none is given, in cursor units.
pub const DEFAULT_INT_LOOKBACK: i64 = 10_000;

impl SourceSpec {
    /// The checks that need nothing but the spec; each problem at its field's path.
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.name.trim().is_empty() {
            errors.add("name", "a source needs a name");
        }
        if self.connection.trim().is_empty() {
            errors.add("connection", "name the connection to read from");
        }
        match (&self.table, &self.query) {
            (Some(_), Some(_)) => errors.add("query", "give a table or a query, not both"),
            (None, None) => errors.add("table", "give a table or a query"),
            (Some(t), None) if t.trim().is_empty() => {
                errors.add("table", "the table name is empty")
            }
            (None, Some(q)) => {
                // The database's rules decide the rest (`check_query`), once the connection is known.
                if let Err(why) = check_query_shape(q) {
                    errors.add("query", why);
                }
            }
            _ => {}
        }
        if self.id_column.trim().is_empty() {
            errors.add("id_column", "name the column that identifies a profile");
        }
        if self.schedule.as_ref().is_some_and(Schedule::is_on_change) {
            // `on_change` follows the profile store's changes, which a source makes rather than
            // follows: a source so scheduled would never run, or run on its own writes.
            errors.add(
                "schedule",
                "`on_change` is for export pipelines; a source runs on an interval (5s, 1m, 1h, …), a cron schedule, or on demand (null)",
            );
        }
        if let Changes::Cursor { column, lookback } = &self.changes {
            if column.trim().is_empty() {
                errors.add(
                    "changes.column",
                    "name the column that grows with every change",
                );
            }
            if let Some(l) = lookback {
                if let Err(why) = Lookback::parse(l) {
                    errors.add("changes.lookback", why);
                }
            }
        }
        errors.into_result(())
    }
}

/// A value of a cursor column, ordered as the database orders the column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum CursorValue {
    Int(i64),
    Time(DateTime<Utc>),
    Text(String),
}

/// How far behind the greatest cursor seen the next run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    Time(TimeDelta),
    Int(i64),
}

impl Lookback {
    /// `"5m"`-style durations (`s`, `m`, `h`, `d`) or a non-negative integer.
    pub fn parse(v: &serde_json::Value) -> Result<Lookback, String> {
        if let Some(n) = v.as_i64() {
            return if n >= 0 {
                Ok(Lookback::Int(n))
            } else {
                Err(format!("the lookback {n} is negative"))
            };
        }
        let text = v
            .as_str()
            .ok_or("the lookback is a duration (`5m`) or a number")?;
        let bad = || format!("`{text}` is not a duration such as `30s`, `5m`, `1h` or `1d`");
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: i64 = text[..split].parse().map_err(|_| bad())?;
        let delta = match &text[split..] {
            "s" => TimeDelta::try_seconds(n),
            "m" => TimeDelta::try_minutes(n),
            "h" => TimeDelta::try_hours(n),
            "d" => TimeDelta::try_days(n),
            _ => None,
        };
        delta.map(Lookback::Time).ok_or_else(bad)
    }
}

/// Where the next run starts reading (inclusive): the greatest cursor seen minus the lookback, never
/// before the previous mark (a run that read nothing keeps it). Text cursors have no arithmetic: the
/// next run starts at the greatest value seen, so rows sharing it are read again and nothing is missed.
pub fn next_mark(
    previous: Option<&CursorValue>,
    greatest_seen: Option<&CursorValue>,
    lookback: Option<Lookback>,
) -> Option<CursorValue> {
    let Some(seen) = greatest_seen else {
        return previous.cloned();
    };
    let back = match (seen, lookback) {
        (CursorValue::Time(t), Some(Lookback::Time(d))) => {
            CursorValue::Time(t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC))
        }
        (CursorValue::Time(t), _) => CursorValue::Time(
            t.checked_sub_signed(DEFAULT_TIME_LOOKBACK)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        ),
        (CursorValue::Int(n), Some(Lookback::Int(k))) => CursorValue::Int(n.saturating_sub(k)),
        (CursorValue::Int(n), _) => CursorValue::Int(n.saturating_sub(DEFAULT_INT_LOOKBACK)),
        (CursorValue::Text(_), _) => seen.clone(),
    };
    Some(match previous {
        // Both of one kind (a column's type changing makes the source read everything again).
        Some(p) if std::mem::discriminant(p) == std::mem::discriminant(&back) && *p > back => {
            p.clone()
        }
        _ => back,
    })
}

/// Where a page of a cursor read ended: the next page starts strictly after this `(cursor, id)`
/// (`cursor > c OR (cursor = c AND id > i)`), so equal cursors across the boundary are read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub cursor: CursorValue,
    pub id: String,
}

impl Page {
    /// Whether the row `(cursor, id)` comes after this page in read order.
    pub fn after(&self, cursor: &CursorValue, id: &str) -> bool {
        (cursor, id) > (&self.cursor, self.id.as_str())
    }
}

/// Ids already met in one read: the first row of an id wins, later ones are reported. Hashes of the ids
/// are kept (8 bytes each), not the ids.
#[derive(Debug, Default)]
pub struct FirstSeen {
    seen: HashSet<u64, BuildHasherDefault<AsIs>>,
}

/// The keys of [`FirstSeen`] are hashes already: hashing them again is work for nothing, on every row of
/// a read.
#[derive(Debug, Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else is folded in rather than lost.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl FirstSeen {
    /// `true` the first time `id` is met.
    pub fn first(&mut self, id: &str) -> bool {
        self.seen.insert(id_hash(id))
    }
}

/// A 64-bit hash of an id, stable within a process: collisions among a read's ids would wrongly report
/// a duplicate, at odds of about n²/2⁶⁵ (10⁻⁷ for ten million ids).
fn id_hash(id: &str) -> u64 {
    crate::hash::shape_seed(&[id])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> Result<SourceSpec, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    fn base() -> serde_json::Value {
        json!({"connection": "dst_1", "name": "CRM customers", "table": "customers",
               "id_column": "customer_id",
               "transformation": {"mapping": {"email": "lower(email)", "address.city": "city"}},
               "changes": {"mode": "cursor", "column": "updated_at"}, "schedule": "5m"})
    }

    #[test]
    fn the_api_shape_reads_and_checks() {
        let s = spec(base()).unwrap();
        assert!(s.enabled);
        assert_eq!(s.check(), Ok(()));
        let mut full = base();
        full["changes"] = json!({"mode": "full", "on_missing": "delete"});
        let s = spec(full).unwrap();
        assert_eq!(
            s.changes,
            Changes::Full {
                on_missing: OnMissing::Delete
            }
        );
        let mut bad = base();
        bad["changes"] = json!({"mode": "sometimes"});
        assert!(spec(bad).is_err());
    }

    #[test]
    fn a_source_cannot_run_on_change() {
        let mut on = base();
        on["schedule"] = json!("on_change");
        let e = spec(on).unwrap().check().unwrap_err();
        let messages = e.get("schedule").expect("the error is at `schedule`");
        assert!(messages[0].contains("export pipelines"), "{messages:?}");
        let mut cron = base();
        cron["schedule"] = json!({"cron": "0 3 * * *", "timezone": "Europe/Rome"});
        assert_eq!(spec(cron).unwrap().check(), Ok(()));
    }

    #[test]
    fn table_or_query_and_the_columns_are_named() {
        let mut both = base();
        both["query"] = json!("SELECT * FROM customers");
        let e = spec(both).unwrap().check().unwrap_err();
        assert!(e.to_string().contains("query"), "{e}");
        let mut neither = base();
        neither["table"] = json!(null);
        neither["id_column"] = json!(" ");
        neither["changes"] = json!({"mode": "cursor", "column": "", "lookback": "soon"});
        let e = spec(neither).unwrap().check().unwrap_err().to_string();
        for field in ["table", "id_column", "changes.column", "changes.lookback"] {
            assert!(e.contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn a_query_starts_as_a_select() {
        assert_eq!(
            check_query_shape("with x as (select 1) select * from x"),
            Ok(())
        );
        assert!(check_query_shape("DELETE FROM t")
            .unwrap_err()
            .contains("SELECT"));
    }

    fn time(s: &str) -> CursorValue {
        CursorValue::Time(s.parse().unwrap())
    }

    #[test]
    fn the_mark_trails_the_greatest_cursor_and_never_goes_back() {
        let seen = time("2026-12-06T10:00:00Z");
        // The default lookback of a timestamp cursor: 10 seconds.
        assert_eq!(
            next_mark(None, Some(&seen), None),
            Some(time("2026-12-06T09:59:50Z"))
        );
        let lookback = Lookback::parse(&json!("30s")).unwrap();
        assert_eq!(
            next_mark(None, Some(&seen), Some(lookback)),
            Some(time("2026-12-06T09:59:30Z"))
        );
        // A run that saw only rows inside the lookback keeps the mark where it was.
        let previous = time("2026-12-06T09:58:00Z");
        assert_eq!(
            next_mark(Some(&previous), Some(&time("2026-12-06T09:58:05Z")), None),
            Some(previous.clone())
        );
        assert_eq!(next_mark(Some(&previous), None, None), Some(previous));
        assert_eq!(
            next_mark(
                None,
                Some(&CursorValue::Int(50_000)),
                Some(Lookback::Int(100))
            ),
            Some(CursorValue::Int(49_900))
        );
        assert_eq!(
            next_mark(None, Some(&CursorValue::Int(5)), None),
            Some(CursorValue::Int(5 - DEFAULT_INT_LOOKBACK))
        );
        let text = CursorValue::Text("2026-12-06 10:00".into());
        assert_eq!(next_mark(None, Some(&text), None), Some(text));
        assert!(Lookback::parse(&json!(-1)).is_err());
        assert!(Lookback::parse(&json!("5 minutes")).is_err());
    }

    #[test]
    fn equal_cursors_across_a_page_boundary_are_read_once() {
        let t = time("2026-12-06T10:00:00Z");
        let end = Page {
            cursor: t.clone(),
            id: "c2".into(),
        };
        assert!(!end.after(&t, "c1"));
        assert!(!end.after(&t, "c2"));
        assert!(end.after(&t, "c3"));
        assert!(end.after(&time("2026-12-06T10:00:01Z"), "c0"));
        assert!(!end.after(&time("2026-12-06T09:59:59Z"), "c9"));
    }

    #[test]
    fn the_first_row_of_an_id_wins() {
        let mut seen = FirstSeen::default();
        assert!(seen.first("c1"));
        assert!(seen.first("c2"));
        assert!(!seen.first("c1"));
    }
}
