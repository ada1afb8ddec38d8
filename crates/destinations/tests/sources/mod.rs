//! The source conformance suite: what every database read as a source must do, written once against
//! the [`Source`] trait and run against each real server through a [`SourceHarness`] (the destination
//! suite's [`Harness`] plus the source table's DDL).
//!
//! Rows are written with the connection's own destination side (already proved by the destination
//! suite), so the cases need no literal syntax of each database; each case uses its own random table.

#![allow(dead_code)] // each test binary uses the cases through the macro, and not every helper

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use sluice_core::convert::to_column;
use sluice_core::source::{next_mark, CursorValue, Lookback};
use sluice_core::{TableDescription, Value};
use sluice_destinations::source::{Pages, ReadPlan, Source, SourceFrom, SourcePage};
use sluice_destinations::{ErrorKind, Row, WriteTarget};

use crate::conformance::{random_table_name, Harness};

/// The type of the source table's `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Text,
    Int,
    Uuid,
}

/// A transaction left open by a test, to be committed later.
#[async_trait]
pub trait OpenTransaction: Send {
    async fn commit(self: Box<Self>) -> anyhow::Result<()>;
}

/// What the source suite needs from each database beyond the destination suite's harness.
#[async_trait]
pub trait SourceHarness: Harness {
    /// The reading side of a new connection to the database under test.
    fn source(&self) -> Box<dyn Source>;
    /// DDL of the source table: `id` of `kind` (the key), `email` text, `age` integer, `score`
    /// decimal(10,2), `active` boolean, `updated_at` timestamp (whole seconds suffice), `seq` 64-bit
    /// integer, `attrs` JSON — all nullable but `id`, `updated_at` and `seq`.
    fn source_table(&self, table: &str, kind: IdKind) -> String;
    /// Whether the database has a JSON type (ClickHouse 18.16 has none: `attrs` is a string).
    fn has_json(&self) -> bool {
        true
    }
    /// Whether a query's result says a column is JSON (MariaDB's JSON is `LONGTEXT` on the wire).
    fn json_in_queries(&self) -> bool {
        self.has_json()
    }
    /// Whether the database has a boolean type (ClickHouse 18.16 has `UInt8`).
    fn has_bool(&self) -> bool {
        true
    }
    /// Inserts `(id, updated_at, seq)` into `table` in a transaction left open; `None` where the test
    /// cannot hold one open (no transactions, or one writer at a time).
    async fn open_insert(
        &self,
        _table: &str,
        _id: &str,
        _updated_at: DateTime<Utc>,
        _seq: i64,
    ) -> Option<Box<dyn OpenTransaction>> {
        None
    }
    /// A source whose server cannot be reached; `None` where there is no server (SQLite).
    fn unreachable(&self) -> Option<Box<dyn Source>>;
    /// A `SELECT` that runs for longer than a second, for [`source_inspect_guards`]; `None` where
    /// [`Source::inspect`] has no server-side guard (Snowflake).
    fn slow_query(&self) -> Option<String> {
        None
    }
    /// A `SELECT` that would change something (or reach outside the database), made ready (a sequence
    /// created …); `None` where no `SELECT` can.
    async fn writing_query(&self) -> Option<String> {
        None
    }
}

/// Generates one `#[tokio::test]` per source case.
#[macro_export]
macro_rules! source_tests {
    ($make:expr) => {
        $crate::source_tests!(@cases $make;
            source_columns_of_a_table, source_columns_of_a_query, source_sample_with_nulls_and_json,
            source_cursor_pages_split_equal_timestamps, source_cursor_pages_split_equal_integers,
            source_cursor_pages_split_equal_texts,
            source_query_cursor_pages, source_late_commit_is_read_by_the_next_run,
            source_full_read_in_pages_text_ids, source_full_read_in_pages_integer_ids,
            source_full_read_in_pages_uuid_ids, source_dropped_column_is_named,
            source_bad_names_and_queries, source_unreachable_is_retriable,
            source_null_cursors_are_counted_not_read, source_inspect_reads_as_sample_does,
            source_row_hashes_follow_the_values);
    };
    (guards $make:expr) => {
        $crate::source_tests!(@cases $make; source_inspect_guards);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $make.await;
                sources::$case(&harness).await;
            }
        )*
    };
}

/// The columns of the source table, in the order rows are written.
const COLUMNS: [&str; 8] = [
    "id",
    "email",
    "age",
    "score",
    "active",
    "updated_at",
    "seq",
    "attrs",
];

/// One row of the source table as a test writes it.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: Value,
    pub email: Option<String>,
    pub age: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub seq: i64,
    pub attrs: Option<serde_json::Value>,
}

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("a test instant")
}

pub fn person(id: Value, updated_at: &str, seq: i64) -> Person {
    Person {
        email: Some(format!("{}@example.com", text(&id))),
        id,
        age: Some(30),
        updated_at: at(updated_at),
        seq,
        attrs: None,
    }
}

/// A value's text, to compare ids of every kind.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        other => format!("{other:?}"),
    }
}

/// A source table of one test.
pub struct Table<'h> {
    pub h: &'h dyn SourceHarness,
    pub name: String,
    pub desc: TableDescription,
    pub source: Box<dyn Source>,
}

impl<'h> Table<'h> {
    pub async fn new(h: &'h dyn SourceHarness, kind: IdKind) -> Table<'h> {
        let name = random_table_name();
        h.execute(&h.source_table(&name, kind))
            .await
            .expect("create the source table");
        let desc = h
            .destination()
            .describe_table(&name)
            .await
            .expect("describe the source table")
            .expect("the source table exists");
        Table {
            h,
            name,
            desc,
            source: h.source(),
        }
    }

    pub fn from(&self) -> SourceFrom {
        SourceFrom::Table(self.name.clone())
    }

    /// Writes `people` through the connection's destination side.
    pub async fn write(&self, people: &[Person]) {
        let target = WriteTarget {
            table: self.desc.clone(),
            columns: COLUMNS.iter().map(|c| c.to_string()).collect(),
            key: "id".into(),
            run_version: sluice_destinations::run_version(),
        };
        let rows: Vec<Row> = people
            .iter()
            .map(|p| {
                let attrs = match &p.attrs {
                    Some(j) => Value::json(j.clone()),
                    None => Value::Null,
                };
                let raw = [
                    p.id.clone(),
                    p.email
                        .as_ref()
                        .map_or(Value::Null, |e| Value::String(e.as_str().into())),
                    p.age.map_or(Value::Null, Value::Int),
                    Value::Decimal(Decimal::from_str("12.50").unwrap()),
                    // 0 or 1: a boolean column converts it, an integer one (ClickHouse 18.16) keeps it.
                    Value::Int(i64::from(p.seq % 2 == 0)),
                    Value::DateTime(p.updated_at),
                    Value::Int(p.seq),
                    attrs,
                ];
                let values = raw
                    .into_iter()
                    .zip(COLUMNS)
                    .map(|(v, c)| {
                        let ty = self.desc.column(c).and_then(|c| c.ty.clone());
                        match ty {
                            Some(ty) => to_column(v, &ty)
                                .unwrap_or_else(|e| panic!("{c} does not convert: {e}")),
                            None => v,
                        }
                    })
                    .collect();
                Row { values }
            })
            .collect();
        self.h
            .destination()
            .upsert(&target, &rows)
            .await
            .expect("write the source rows");
    }

    /// Every page of `plan`, read through [`Pages`].
    pub async fn pages(&self, plan: &ReadPlan) -> Vec<SourcePage> {
        let mut pages = Pages::new(self.source.as_ref(), plan);
        let mut out = Vec::new();
        while let Some(page) = pages.next().await.expect("read a page") {
            assert!(page.rows.len() <= plan.page_rows, "a page is bounded");
            out.push(page);
        }
        out
    }

    /// A plan over the whole source table.
    pub async fn plan(
        &self,
        from: SourceFrom,
        cursor: Option<(&str, Option<CursorValue>)>,
        page_rows: usize,
    ) -> ReadPlan {
        let schema = self
            .source
            .columns(&from)
            .await
            .expect("the source's columns");
        ReadPlan::new(from, schema, "id", cursor, page_rows).expect("a valid plan")
    }

    pub async fn finish(self) {
        self.h
            .execute(&self.h.drop_table(&self.name))
            .await
            .expect("drop the source table");
    }
}

/// The ids of `pages`, in read order.
fn ids(plan: &ReadPlan, pages: &[SourcePage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| (0..p.rows.len()).map(|r| text(&p.rows.value(r, plan.id))))
        .collect()
}

fn text_ids(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| Value::String(format!("c{i:02}").into()))
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Cases

pub async fn source_columns_of_a_table(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let schema = t.source.columns(&t.from()).await.unwrap();
    let names: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, COLUMNS);
    let model = |name: &str| {
        let c = &schema.columns[schema.resolve(name).unwrap()];
        (c.model_type.clone().unwrap_or_default(), c.json)
    };
    assert_eq!(model("id"), ("string".into(), false));
    assert_eq!(model("email"), ("string".into(), false));
    assert_eq!(model("age"), ("int".into(), false));
    assert_eq!(model("score"), ("decimal(10,2)".into(), false));
    assert_eq!(model("updated_at").0, "datetime");
    assert_eq!(model("seq").0, "int");
    if h.has_bool() {
        assert_eq!(model("active").0, "boolean");
    }
    if h.has_json() {
        assert_eq!(model("attrs"), ("json".into(), true));
    } else {
        assert_eq!(model("attrs"), ("string".into(), false));
    }
    let e = t
        .source
        .columns(&SourceFrom::Table(random_table_name()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    t.finish().await;
}

pub async fn source_columns_of_a_query(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Int).await;
    let q = |c: &str| h.quote(c);
    let query = format!(
        "SELECT {}, {} AS mail, {}, {}, {} FROM {} WHERE {} > 0",
        q("id"),
        q("email"),
        q("age"),
        q("updated_at"),
        q("attrs"),
        h.quote(&t.name),
        q("seq")
    );
    let schema = t
        .source
        .columns(&SourceFrom::Query(format!("{query};")))
        .await
        .unwrap();
    let got: Vec<(String, String, bool)> = schema
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_ascii_lowercase(),
                c.model_type.clone().unwrap_or_default(),
                c.json,
            )
        })
        .collect();
    let json = h.json_in_queries();
    assert_eq!(
        got,
        [
            ("id".into(), "int".into(), false),
            ("mail".into(), "string".into(), false),
            ("age".into(), "int".into(), false),
            ("updated_at".into(), "datetime".into(), false),
            (
                "attrs".into(),
                if json { "json" } else { "string" }.into(),
                json
            ),
        ]
    );
    t.finish().await;
}

pub async fn source_sample_with_nulls_and_json(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let ids = text_ids(5);
    let mut people: Vec<Person> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| person(id.clone(), "2026-12-06T10:00:00Z", i as i64))
        .collect();
    people[1].email = None;
    people[1].age = None;
    people[2].attrs = Some(json!({"plan": "pro", "tags": ["a", "b"], "n": 3}));
    t.write(&people).await;
    let sample = t.source.sample(&t.from(), 3).await.unwrap();
    assert_eq!(sample.rows.len(), 3);
    assert_eq!(sample.schema.columns.len(), COLUMNS.len());
    let all = t.source.sample(&t.from(), 100).await.unwrap();
    assert_eq!(all.rows.len(), 5);
    let row = |id: &str| {
        all.rows
            .iter()
            .find(|r| text(&r[0]) == id)
            .unwrap_or_else(|| panic!("row {id}"))
            .clone()
    };
    let c02 = row("c02");
    assert_eq!((&c02[1], &c02[2]), (&Value::Null, &Value::Null));
    assert_eq!(c02[7], Value::Null);
    let c01 = row("c01");
    assert_eq!(c01[1], Value::String("c01@example.com".into()));
    assert_eq!(c01[2], Value::Int(30));
    assert_eq!(c01[3], Value::Decimal(Decimal::from_str("12.5").unwrap()));
    assert_eq!(c01[5], Value::DateTime(at("2026-12-06T10:00:00Z")));
    let attrs = row("c03")[7].clone();
    let expected = json!({"plan": "pro", "tags": ["a", "b"], "n": 3});
    match attrs {
        Value::Json(j) => assert_eq!(*j, expected),
        Value::String(s) if !h.has_json() => {
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&s).unwrap(),
                expected
            )
        }
        other => panic!("attrs read as {other:?}"),
    }
    t.finish().await;
}

/// Ten rows in three groups of equal cursor values, read three at a time: page boundaries fall inside
/// the groups, and every row comes once, in `(cursor, id)` order.
async fn equal_cursor_groups(h: &dyn SourceHarness, cursor: &str, query: bool) {
    let t = Table::new(h, IdKind::Text).await;
    let times = [
        "2026-12-06T10:00:00Z",
        "2026-12-06T10:00:05Z",
        "2026-12-06T10:01:00Z",
    ];
    let group = |i: usize| {
        if i < 4 {
            0
        } else if i < 8 {
            1
        } else {
            2
        }
    };
    let mut people: Vec<Person> = text_ids(10)
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let mut p = person(id, times[group(i)], 100 + group(i) as i64);
            // Equal in each group too, for a text cursor.
            p.email = Some(format!("{}@example.com", ["ann", "bob", "cid"][group(i)]));
            p
        })
        .collect();
    // Written out of order: the read orders them.
    people.reverse();
    people.swap(2, 7);
    t.write(&people).await;
    let from = if query {
        SourceFrom::Query(format!(
            "SELECT * FROM {} WHERE {} >= 0",
            h.quote(&t.name),
            h.quote("seq")
        ))
    } else {
        t.from()
    };
    let plan = t.plan(from, Some((cursor, None)), 3).await;
    let pages = t.pages(&plan).await;
    let expected: Vec<String> = (1..=10).map(|i| format!("c{i:02}")).collect();
    assert_eq!(ids(&plan, &pages), expected);
    assert_eq!(
        pages.iter().map(|p| p.rows.len()).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    // The first page ended inside the first group; it resumes after (cursor, id).
    let end = pages[0].end.clone().unwrap();
    assert_eq!(text(&end.id), "c03");
    t.finish().await;
}

pub async fn source_cursor_pages_split_equal_timestamps(h: &dyn SourceHarness) {
    equal_cursor_groups(h, "updated_at", false).await;
}

pub async fn source_cursor_pages_split_equal_integers(h: &dyn SourceHarness) {
    equal_cursor_groups(h, "seq", false).await;
}

pub async fn source_cursor_pages_split_equal_texts(h: &dyn SourceHarness) {
    equal_cursor_groups(h, "email", false).await;
}

pub async fn source_query_cursor_pages(h: &dyn SourceHarness) {
    equal_cursor_groups(h, "updated_at", true).await;
}

/// Two writers take `updated_at` values 10:00:01 and 10:00:02; the later one commits first and a run
/// reads past 10:00:01 before the earlier one commits. The next run starts at the mark (the greatest
/// cursor seen minus the lookback) and reads the late row; starting at the greatest cursor seen would
/// have missed it.
pub async fn source_late_commit_is_read_by_the_next_run(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let v = |s: &str| Value::String(s.into());
    t.write(&[person(v("c01"), "2026-12-06T10:00:00Z", 1)])
        .await;
    let early = at("2026-12-06T10:00:01Z");
    let held = h.open_insert(&t.name, "c02", early, 2).await;
    let later = person(v("c03"), "2026-12-06T10:00:02Z", 3);
    tokio::time::timeout(Duration::from_secs(30), t.write(&[later]))
        .await
        .expect("a writer is not blocked by another's open insert");

    let plan = t.plan(t.from(), Some(("updated_at", None)), 2).await;
    let first = t.pages(&plan).await;
    assert_eq!(ids(&plan, &first), ["c01", "c03"]);
    let greatest = first
        .last()
        .and_then(|p| p.end.clone())
        .and_then(|e| e.cursor);
    assert_eq!(
        greatest,
        Some(CursorValue::Time(at("2026-12-06T10:00:02Z")))
    );

    // The earlier writer commits now.
    match held {
        Some(tx) => tx.commit().await.expect("commit the held insert"),
        None => {
            let mut late = person(v("c02"), "2026-12-06T10:00:01Z", 2);
            late.updated_at = early;
            t.write(&[late]).await;
        }
    }
    let lookback = Lookback::parse(&json!("30s")).unwrap();
    let mark = next_mark(None, greatest.as_ref(), Some(lookback));
    assert_eq!(mark, Some(CursorValue::Time(at("2026-12-06T09:59:32Z"))));
    let plan = t.plan(t.from(), Some(("updated_at", mark)), 2).await;
    let second = t.pages(&plan).await;
    assert_eq!(ids(&plan, &second), ["c01", "c02", "c03"]);
    // Without the lookback, the run would start at the greatest cursor seen and miss it.
    let plan = t.plan(t.from(), Some(("updated_at", greatest)), 2).await;
    assert_eq!(ids(&plan, &t.pages(&plan).await), ["c03"]);
    t.finish().await;
}

/// The hashes a run compares rows by: the same for the same values whatever the page a row came in,
/// different when a column the transformation reads changed, unmoved by one it does not read; and a
/// page's rows decode as the sample reads them.
pub async fn source_row_hashes_follow_the_values(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let ids = text_ids(4);
    let mut people: Vec<Person> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| person(id.clone(), "2026-12-06T10:00:00Z", i as i64))
        .collect();
    people[1].attrs = Some(json!({"plan": "pro", "n": 3}));
    people[2].email = None;
    people[3].email = Some(String::new());
    t.write(&people).await;
    // Every column but `seq` is read by the transformation.
    let wanted: Vec<bool> = COLUMNS.iter().map(|c| *c != "seq").collect();
    let hashes = |pages: &[SourcePage], plan: &ReadPlan| -> HashMap<String, u128> {
        let mut out = HashMap::new();
        for p in pages {
            for r in 0..p.rows.len() {
                let id = text(&p.rows.value(r, plan.id));
                out.insert(id, p.rows.hash(r, 7, &wanted));
            }
        }
        out
    };
    let plan = t.plan(t.from(), None, 3).await;
    let pages = t.pages(&plan).await;
    let first = hashes(&pages, &plan);
    assert_eq!(first.len(), 4);
    let distinct: std::collections::HashSet<u128> = first.values().copied().collect();
    assert_eq!(distinct.len(), 4, "different rows hash apart: {first:?}");
    // Decoded, a page's rows are the sample's.
    let sample = t.source.sample(&t.from(), 100).await.unwrap();
    let mut sampled = sample.rows.clone();
    sampled.sort_by_key(|r| text(&r[plan.id]));
    let read: Vec<Vec<Value>> = pages.iter().flat_map(SourcePage::values).collect();
    assert_eq!(read, sampled);

    let plan = t.plan(t.from(), None, 2).await;
    assert_eq!(
        hashes(&t.pages(&plan).await, &plan),
        first,
        "pages of another size"
    );

    // `seq` is not read: a change to it leaves the row's hash; one to `email` does not.
    people[0].seq += 100;
    people[1].email = Some("changed@example.com".into());
    t.write(&people[..2]).await;
    let again = hashes(&t.pages(&plan).await, &plan);
    assert_eq!(again["c01"], first["c01"]);
    assert_ne!(again["c02"], first["c02"]);
    assert_eq!(again["c03"], first["c03"]);
    assert_eq!(again["c04"], first["c04"]);
    t.finish().await;
}

async fn full_read(h: &dyn SourceHarness, kind: IdKind) {
    let t = Table::new(h, kind).await;
    let ids_written: Vec<Value> = match kind {
        IdKind::Text => text_ids(8),
        // In text order 10 < 2: the database's integer order must be the one used.
        IdKind::Int => [2, 10, 1, 33, 4, 21, 5, 100].map(Value::Int).to_vec(),
        IdKind::Uuid => (0..8).map(|_| Value::Uuid(uuid::Uuid::new_v4())).collect(),
    };
    let people: Vec<Person> = ids_written
        .iter()
        .map(|id| person(id.clone(), "2026-12-06T10:00:00Z", 7))
        .collect();
    t.write(&people).await;
    let plan = t.plan(t.from(), None, 3).await;
    let pages = t.pages(&plan).await;
    assert_eq!(
        pages.iter().map(|p| p.rows.len()).collect::<Vec<_>>(),
        [3, 3, 2]
    );
    let got = ids(&plan, &pages);
    let mut want: Vec<String> = ids_written.iter().map(text).collect();
    match kind {
        IdKind::Text => want.sort(),
        IdKind::Int => {
            assert_eq!(got, ["1", "2", "4", "5", "10", "21", "33", "100"]);
        }
        // Databases order UUIDs each their own way: each is read once.
        IdKind::Uuid => {
            let mut sorted = got.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len(), "each id once");
            want.sort();
            assert_eq!(sorted, want);
            t.finish().await;
            return;
        }
    }
    if kind == IdKind::Text {
        assert_eq!(got, want);
    }
    t.finish().await;
}

pub async fn source_full_read_in_pages_text_ids(h: &dyn SourceHarness) {
    full_read(h, IdKind::Text).await;
}

pub async fn source_full_read_in_pages_integer_ids(h: &dyn SourceHarness) {
    full_read(h, IdKind::Int).await;
}

pub async fn source_full_read_in_pages_uuid_ids(h: &dyn SourceHarness) {
    full_read(h, IdKind::Uuid).await;
}

pub async fn source_dropped_column_is_named(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    t.write(&[person(
        Value::String("c01".into()),
        "2026-12-06T10:00:00Z",
        1,
    )])
    .await;
    let plan = t.plan(t.from(), Some(("updated_at", None)), 10).await;
    assert_eq!(t.pages(&plan).await.len(), 1);
    h.execute(&format!(
        "ALTER TABLE {} DROP COLUMN {}",
        h.quote(&t.name),
        h.quote("email")
    ))
    .await
    .expect("drop a column");
    let e = t.source.read_page(&plan, None).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::SchemaMismatch, "{e}");
    assert!(e.message.to_lowercase().contains("email"), "{e}");
    t.finish().await;
}

pub async fn source_bad_names_and_queries(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let schema = t.source.columns(&t.from()).await.unwrap();
    let e = ReadPlan::new(t.from(), schema.clone(), "customer_no", None, 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::SchemaMismatch);
    assert!(e.message.contains("customer_no"), "{e}");
    let e = ReadPlan::new(t.from(), schema.clone(), "id", Some(("score", None)), 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("score"), "{e}");
    let e = ReadPlan::new(t.from(), schema, "updated_at", None, 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.contains("updated_at"), "{e}");
    let e = t
        .source
        .columns(&SourceFrom::Query(format!(
            "DELETE FROM {}",
            h.quote(&t.name)
        )))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    let e = t
        .source
        .sample(&SourceFrom::Query("SELECT 1; SELECT 2".into()), 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    t.finish().await;
}

pub async fn source_inspect_reads_as_sample_does(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Int).await;
    t.write(&[
        person(Value::Int(1), "2026-12-06T10:00:00Z", 1),
        person(Value::Int(2), "2026-12-06T10:00:01Z", 2),
        person(Value::Int(3), "2026-12-06T10:00:02Z", 3),
    ])
    .await;
    let timeout = Duration::from_secs(20);
    let query = SourceFrom::Query(format!(
        "SELECT id, email FROM {} WHERE seq >= 2",
        h.quote(&t.name)
    ));
    for (from, n, columns) in [(t.from(), 3, COLUMNS.len()), (query, 2, 2)] {
        let inspected = t.source.inspect(&from, 10, timeout).await.unwrap();
        let sampled = t.source.sample(&from, 10).await.unwrap();
        assert_eq!(inspected.schema, sampled.schema);
        assert_eq!(inspected.schema.columns.len(), columns);
        let sorted = |mut rows: Vec<Vec<Value>>| {
            rows.sort_by_key(|r| format!("{:?}", r[0]));
            rows
        };
        assert_eq!(inspected.rows.len(), n);
        assert_eq!(sorted(inspected.rows), sorted(sampled.rows));
    }
    // The row limit holds, and the guards leave the connection as it was: it still reads.
    let one = t.source.inspect(&t.from(), 1, timeout).await.unwrap();
    assert_eq!(one.rows.len(), 1);
    let e = t
        .source
        .inspect(&SourceFrom::Table("insp_no_such_table".into()), 5, timeout)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains("insp_no_such_table"), "{e}");
    assert_eq!(t.source.sample(&t.from(), 5).await.unwrap().rows.len(), 3);
    t.finish().await;
}

/// A preview's statements are stopped by the server after its timeout, and cannot write.
pub async fn source_inspect_guards(h: &dyn SourceHarness) {
    let source = h.source();
    let slow = SourceFrom::Query(h.slow_query().expect("a slow query for this database"));
    let started = std::time::Instant::now();
    let e = source
        .inspect(&slow, 5, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    // Stopped by the server (or SQLite's interrupt), well before the caller's own grace ran out.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    if let Some(query) = h.writing_query().await {
        let e = source
            .inspect(&SourceFrom::Query(query), 5, Duration::from_secs(20))
            .await
            .unwrap_err();
        let m = e.message.to_lowercase();
        assert!(
            ["read-only", "readonly", "read only"]
                .iter()
                .any(|w| m.contains(w)),
            "{e}"
        );
    }
    // The same connection reads again after a statement was stopped.
    let t = Table::new(h, IdKind::Int).await;
    t.write(&[person(Value::Int(1), "2026-12-06T10:00:00Z", 1)])
        .await;
    let ok = source
        .inspect(&t.from(), 5, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ok.rows.len(), 1);
    t.finish().await;
}

pub async fn source_unreachable_is_retriable(h: &dyn SourceHarness) {
    let Some(source) = h.unreachable() else {
        return;
    };
    let e = source
        .columns(&SourceFrom::Table("anything".into()))
        .await
        .unwrap_err();
    assert!(e.kind.is_transient(), "{e} ({:?})", e.kind);
}

/// A row whose cursor is NULL has no place in `(cursor, id)` order: it is not read, and it is counted.
pub async fn source_null_cursors_are_counted_not_read(h: &dyn SourceHarness) {
    let t = Table::new(h, IdKind::Text).await;
    let people: Vec<Person> = text_ids(4)
        .into_iter()
        .enumerate()
        .map(|(i, id)| person(id, "2026-12-06T10:00:00Z", i as i64 + 1))
        .collect();
    t.write(&people).await;
    let q = |c: &str| h.quote(c);
    let from = SourceFrom::Query(format!(
        "SELECT {id}, CASE WHEN {seq} = 2 THEN NULL ELSE {seq} END AS {c} FROM {t}",
        id = q("id"),
        seq = q("seq"),
        c = q("c"),
        t = h.quote(&t.name)
    ));
    let plan = t.plan(from.clone(), Some(("c", None)), 10).await;
    assert_eq!(ids(&plan, &t.pages(&plan).await), ["c01", "c03", "c04"]);
    assert_eq!(t.source.count_unread(&plan).await.unwrap(), 1);
    let full = t.plan(from, None, 10).await;
    assert_eq!(
        t.pages(&full)
            .await
            .iter()
            .map(|p| p.rows.len())
            .sum::<usize>(),
        4
    );
    assert_eq!(t.source.count_unread(&full).await.unwrap(), 0);
    t.finish().await;
}
