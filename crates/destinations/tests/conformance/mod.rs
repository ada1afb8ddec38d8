//! The destination conformance suite: one set of behaviours every destination must show, written once
//! against the [`Destination`] trait and run against each real database through a small [`Harness`].
//!
//! A harness knows how to create the suite's standard tables in its dialect, run SQL directly (to set up
//! and to read rows back as text, bypassing Sluice) and how its database spells a few things. Adding a
//! destination means writing a harness and invoking [`conformance_tests!`] with it; every case below then
//! runs against it as its own `#[tokio::test]`, each on its own randomly named table.
//!
//! Values are compared through canonical forms (numbers parsed, instants compared as instants, booleans
//! as true/false, bytes as lowercase hex, JSON parsed), so each database may print them its own way.

#![allow(dead_code)] // each test binary uses the cases through the macro, and not every helper

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::json;
use sluice_core::{ColumnType, TableDescription, Value};
use sluice_destinations::{
    upsert_isolating, Destination, ErrorKind, Row, UpsertCounts, WriteTarget,
};

/// The standard tables. Column names are fixed by the suite; types come from each harness's DDL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `id` text primary key (≤ 64 chars); `email` text, unique; `name` text; `age` integer;
    /// `note` text NOT NULL DEFAULT 'default note'; `code` text limited to 5 characters by the database;
    /// `qty` integer with CHECK (qty >= 0).
    People,
    /// `id` integer primary key filled in by the database; `email` text NOT NULL UNIQUE; `name` text.
    Accounts,
    /// `id` 64-bit integer primary key plus one column per supported type, named as in
    /// [`Harness::expected_types`]; `t_text` is NOT NULL and `t_unique` has a unique constraint.
    Types,
    /// `id` UUID primary key; `name` text.
    UuidKeyed,
    /// `id` 64-bit integer primary key (not filled in by the database); `n` integer.
    IntKeyed,
}

/// What the suite needs from each database.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new destination instance (its own connection) on the database under test.
    fn destination(&self) -> Box<dyn Destination>;
    /// A destination like [`Harness::destination`] but naming `database`, which does not exist; `None`
    /// where a destination names no database (SQLite: a file, created when missing).
    fn missing_database(&self, database: &str) -> Option<Box<dyn Destination>>;
    /// Runs SQL statements directly on the database.
    async fn execute(&self, sql: &str) -> anyhow::Result<()>;
    /// Runs a query directly and returns every value as text (`None` for NULL).
    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>>;
    /// DDL creating `table` in `shape` (may hold several statements).
    fn create_table(&self, shape: Shape, table: &str) -> String;
    /// DDL dropping `table` and whatever `create_table` made with it.
    fn drop_table(&self, table: &str) -> String;
    /// Whether the server under test reports a missing database exactly. Snowflake answers "does not
    /// exist or not authorized" for both a missing and a forbidden database, and its test server creates
    /// the database a login names: there only the connection test's message is checked.
    fn reports_missing_databases_exactly(&self) -> bool {
        true
    }
    /// SQL dropping a view made by `CREATE VIEW`.
    fn drop_view(&self, view: &str) -> String {
        format!("DROP VIEW {}", self.quote(view))
    }
    fn quote(&self, ident: &str) -> String;
    /// An expression reading `column` of portable type `ty` as text: booleans as `true`/`false`, bytes
    /// as lowercase hex, arrays as JSON; the rest as the database prints it.
    fn text_expr(&self, column: &str, ty: &ColumnType) -> String;
    /// The columns of [`Shape::Types`] (without `id`) and the portable type `describe_table` must report.
    fn expected_types(&self) -> Vec<(&'static str, Option<ColumnType>)>;
    /// Whether decimals keep every digit (SQLite's NUMERIC affinity keeps 15 significant digits).
    fn exact_decimals(&self) -> bool {
        true
    }
    /// Part of the database's message when `People.code` gets more than 5 characters.
    fn too_long_message(&self) -> &'static str;
    /// Part of the database's message when `People.qty` breaks its CHECK constraint.
    fn check_violation_message(&self) -> &'static str;
    /// How a read names `table`: databases that keep several versions of a row until they merge them
    /// (ClickHouse) read with `FINAL`, so that a duplicate of a key fails the suite.
    fn table_ref(&self, table: &str) -> String {
        self.quote(table)
    }
    /// The portable type of `People.id`.
    fn key_text_type(&self) -> ColumnType {
        ColumnType::Text { max_len: Some(64) }
    }
    /// Whether the database enforces unique constraints besides the key and fills in generated keys
    /// (`People.email`, `Types.t_unique`, `Shape::Accounts`); the cases about them are skipped otherwise.
    fn unique_constraints(&self) -> bool {
        true
    }
    /// Whether the database refuses a duplicate in a unique column besides the key. Snowflake records
    /// unique constraints (and they are reported) but stores duplicates all the same.
    fn enforces_unique_constraints(&self) -> bool {
        self.unique_constraints()
    }
    /// What the suite's timestamp columns hold of `instant`; `None` when they cannot hold it (ClickHouse
    /// `DateTime` keeps whole seconds from 1970 on).
    fn stored_instant(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Some(instant)
    }
}

/// The counts of an upsert, compared with the expected ones: exactly when the destination tells inserts
/// from updates ([`Destination::reports_upsert_counts`]), by their sum otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Counts {
    pub got: UpsertCounts,
    pub exact: bool,
}

impl PartialEq<UpsertCounts> for Counts {
    fn eq(&self, expected: &UpsertCounts) -> bool {
        if self.exact {
            self.got == *expected
        } else {
            self.got.inserted + self.got.updated == expected.inserted + expected.updated
        }
    }
}

/// Generates one `#[tokio::test]` per conformance case, each building its harness with `$make`
/// (an expression evaluating to a future of the harness).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            connection_test, describe_people, describe_types, describe_missing_table, insert_new_keys,
            update_existing_keys, rerun_same_rows, nulls, unicode, long_text, timestamps_across_time_zones,
            decimals_full_precision, all_types_round_trip, unique_key_not_primary, bad_rows_among_thousands,
            failed_batch_writes_nothing, delete_by_keys, integer_keys, uuid_keys, key_only_columns,
            column_dropped_between_describe_and_upsert, table_dropped_between_describe_and_upsert,
            write_prepared_ahead, large_batch_counts, duplicate_in_another_unique_column,
            key_column_not_unique, batches_switch_between_new_and_taken_keys,
            drift_identity_and_count, drift_rows_read_back, drift_change_marker,
            list_tables_names_the_tables, missing_database_is_not_found);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let harness = $make.await;
                conformance::$case(&harness).await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/// A table created for one test; dropped by [`Fixture::finish`] (a failing test leaves it behind for
/// inspection — its random name cannot collide with another run's).
pub struct Fixture<'h> {
    pub h: &'h dyn Harness,
    pub dest: Box<dyn Destination>,
    pub table: String,
    pub desc: TableDescription,
}

impl<'h> Fixture<'h> {
    pub async fn new(h: &'h dyn Harness, shape: Shape) -> Fixture<'h> {
        let table = random_table_name();
        h.execute(&h.create_table(shape, &table))
            .await
            .expect("create the test table");
        let dest = h.destination();
        let desc = dest
            .describe_table(&table)
            .await
            .expect("describe the test table")
            .expect("the test table exists");
        Fixture {
            h,
            dest,
            table,
            desc,
        }
    }

    pub fn target(&self, columns: &[&str], key: &str) -> WriteTarget {
        WriteTarget {
            table: self.desc.clone(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            key: key.to_string(),
            run_version: sluice_destinations::run_version(),
        }
    }

    pub async fn upsert(&self, target: &WriteTarget, rows: Vec<Vec<Value>>) -> Counts {
        let rows: Vec<Row> = rows.into_iter().map(|values| Row { values }).collect();
        let got = self
            .dest
            .upsert(target, &rows)
            .await
            .unwrap_or_else(|e| panic!("upsert failed: {e} ({:?})", e.kind));
        Counts {
            got,
            exact: self.dest.capabilities().reports_upsert_counts,
        }
    }

    /// When the table cannot delete rows (see [`sluice_core::TableRules::delete`]), checks that deleting is
    /// refused as a settings problem and returns true: the case ends there.
    pub async fn refuses_deletes(&self, target: &WriteTarget, key: Value) -> bool {
        if self.desc.rules.delete.is_none() {
            return false;
        }
        let err = self
            .dest
            .delete(target, &[key])
            .await
            .expect_err("the table cannot delete rows");
        assert_eq!(err.kind, ErrorKind::Config, "{err}");
        true
    }

    /// The rows of the table (ordered by `order_by`), the given columns as text.
    pub async fn read(&self, columns: &[&str], order_by: &str) -> Vec<Vec<Option<String>>> {
        let exprs: Vec<String> = columns
            .iter()
            .map(|c| {
                let ty = self
                    .desc
                    .column(c)
                    .and_then(|col| col.ty.clone())
                    .unwrap_or(ColumnType::Text { max_len: None });
                self.h.text_expr(c, &ty)
            })
            .collect();
        // ORDER BY the table's column, not the text expression of the same name.
        let table = self.h.quote(&self.table);
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {table}.{}",
            exprs.join(", "),
            self.h.table_ref(&self.table),
            self.h.quote(order_by)
        );
        self.h.query(&sql).await.expect("read the rows back")
    }

    pub async fn count(&self) -> i64 {
        let rows = self
            .h
            .query(&format!(
                "SELECT count(*) FROM {}",
                self.h.table_ref(&self.table)
            ))
            .await
            .unwrap();
        rows[0][0].as_deref().unwrap().parse().unwrap()
    }

    pub async fn finish(self) {
        self.h
            .execute(&self.h.drop_table(&self.table))
            .await
            .expect("drop the test table");
    }
}

pub fn random_table_name() -> String {
    format!(
        "sluice_t_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn text(cell: &Option<String>) -> &str {
    cell.as_deref().expect("a value, not NULL")
}

/// Parses a date-time as databases print it (`2024-01-02 03:04:05.6+00`, RFC 3339, or without offset,
/// meaning UTC).
pub fn parse_instant(text: &str) -> DateTime<Utc> {
    let t = text.trim().replace(' ', "T");
    if let Ok(dt) = DateTime::parse_from_rfc3339(&t) {
        return dt.with_timezone(&Utc);
    }
    // PostgreSQL prints short offsets (`+00`, `+05:45`).
    if let Some(pos) = t.rfind(['+', '-']).filter(|p| *p > 10) {
        let (base, offset) = t.split_at(pos);
        let offset = if offset.len() == 3 {
            format!("{offset}:00")
        } else {
            offset.to_string()
        };
        if let Ok(dt) = DateTime::parse_from_rfc3339(&format!("{base}{offset}")) {
            return dt.with_timezone(&Utc);
        }
    }
    NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("cannot parse date-time `{text}`: {e}"))
        .and_utc()
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A sample value of each portable type, chosen to hit edges (type limits, fractional seconds,
/// non-ASCII text).
pub fn sample(ty: &ColumnType) -> Value {
    match ty {
        ColumnType::Text { max_len: Some(n) } => Value::String("ü".repeat(*n as usize).into()),
        ColumnType::Text { max_len: None } => s("hello, wörld — 你好"),
        ColumnType::Int { bits: 8, .. } => Value::Int(i8::MAX as i64),
        ColumnType::Int { bits: 16, .. } => Value::Int(i16::MIN as i64),
        ColumnType::Int { bits: 32, .. } => Value::Int(i32::MAX as i64),
        ColumnType::Int { .. } => Value::Int(i64::MIN + 1),
        ColumnType::Float { .. } => Value::Float(-1234.5),
        ColumnType::Decimal { .. } => {
            Value::Decimal(Decimal::from_str("123456789012345678.0123456789").unwrap())
        }
        ColumnType::Bool => Value::Bool(true),
        ColumnType::Date => Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
        ColumnType::Time => Value::Time(NaiveTime::from_hms_micro_opt(23, 59, 58, 123456).unwrap()),
        ColumnType::Timestamp { .. } => Value::DateTime(utc("2024-03-31T01:30:00.5+02:00")),
        ColumnType::Uuid => {
            Value::Uuid(uuid::Uuid::from_str("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8").unwrap())
        }
        ColumnType::Json => Value::json(json!({"a": [1, 2.5, {"b": null}], "ü": "✓", "n": true})),
        ColumnType::Binary => Value::Bytes(vec![0, 1, 2, 127, 128, 255]),
        ColumnType::Enum { values } => {
            Value::String(values.last().cloned().unwrap_or_default().into())
        }
        ColumnType::Array { element } => {
            Value::Array(vec![sample(element), Value::Null, sample(element)])
        }
    }
}

/// Asserts that `actual` (as read back by the harness) is `expected` written to a column of type `ty`.
pub fn assert_same(
    h: &dyn Harness,
    column: &str,
    ty: &ColumnType,
    expected: &Value,
    actual: &Option<String>,
) {
    if expected.is_null() {
        assert_eq!(actual, &None, "column `{column}` should be NULL");
        return;
    }
    let got = actual
        .as_deref()
        .unwrap_or_else(|| panic!("column `{column}` is NULL, expected {expected:?}"));
    let ok = match (ty, expected) {
        (ColumnType::Int { .. }, Value::Int(i)) => got.parse::<i64>().ok() == Some(*i),
        (ColumnType::Float { .. }, Value::Float(f)) => got.parse::<f64>().ok() == Some(*f),
        (ColumnType::Decimal { .. }, Value::Decimal(d)) => {
            if h.exact_decimals() {
                Decimal::from_str(got).ok() == Some(*d)
            } else {
                let (g, e) = (got.parse::<f64>().unwrap(), f64::try_from(*d).unwrap());
                (g - e).abs() <= e.abs() * 1e-14
            }
        }
        (ColumnType::Bool, Value::Bool(b)) => matches!(got, "true" | "t" | "1") == *b,
        (ColumnType::Date, Value::Date(d)) => {
            NaiveDate::parse_from_str(got, "%Y-%m-%d").ok() == Some(*d)
        }
        (ColumnType::Time, Value::Time(t)) => {
            NaiveTime::parse_from_str(got, "%H:%M:%S%.f").ok() == Some(*t)
        }
        (ColumnType::Timestamp { .. }, Value::DateTime(dt)) => {
            Some(parse_instant(got)) == h.stored_instant(*dt)
        }
        (ColumnType::Uuid, Value::Uuid(u)) => uuid::Uuid::from_str(got).ok() == Some(*u),
        (ColumnType::Json | ColumnType::Array { .. }, v) => {
            serde_json::from_str::<serde_json::Value>(got).ok() == Some(v.to_json())
        }
        (ColumnType::Binary, Value::Bytes(b)) => got == hex(b),
        (_, Value::String(s)) => got == s,
        _ => got == expected.to_string(),
    };
    assert!(
        ok,
        "column `{column}` ({ty:?}): wrote {expected:?}, read back `{got}`"
    );
}

// ---------------------------------------------------------------------------------------------------
// Cases

pub async fn connection_test(h: &dyn Harness) {
    let report = h
        .destination()
        .test()
        .await
        .unwrap_or_else(|e| panic!("test failed: {e}"));
    assert!(!report.server_version.is_empty());
    assert!(!report.checks.is_empty());
}

pub async fn describe_people(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let names: Vec<&str> = f.desc.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["id", "email", "name", "age", "note", "code", "qty"],
        "columns in table order"
    );
    if h.unique_constraints() {
        assert_eq!(
            f.desc.keys,
            vec![vec!["id".to_string()], vec!["email".to_string()]]
        );
        assert!(f.desc.is_unique_key("email"));
    } else {
        assert_eq!(f.desc.keys, vec![vec!["id".to_string()]]);
    }
    assert!(f.desc.has_primary_key);
    assert!(f.desc.is_unique_key("id") && !f.desc.is_unique_key("name"));
    let col = |n: &str| f.desc.column(n).unwrap().clone();
    assert!(
        !col("id").nullable
            && col("email").nullable
            && col("name").nullable
            && !col("note").nullable
    );
    assert!(col("note").has_default && !col("name").has_default);
    assert_eq!(col("id").ty, Some(h.key_text_type()));
    assert!(matches!(col("age").ty, Some(ColumnType::Int { .. })));
    assert!(matches!(col("name").ty, Some(ColumnType::Text { .. })));
    assert!(f.desc.issues.is_empty(), "{:?}", f.desc.issues);
    f.finish().await;
}

pub async fn describe_types(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::Types).await;
    let expected = h.expected_types();
    assert_eq!(f.desc.columns.len(), expected.len() + 1);
    for (name, ty) in &expected {
        let col = f
            .desc
            .column(name)
            .unwrap_or_else(|| panic!("column `{name}` missing"));
        assert_eq!(&col.ty, ty, "type of `{name}` ({})", col.native_type);
        assert_eq!(col.nullable, *name != "t_text", "nullability of `{name}`");
        if ty.is_none() {
            let issue = format!("column `{name}` has unsupported type `{}`", col.native_type);
            assert!(
                f.desc.issues.contains(&issue),
                "expected issue `{issue}` in {:?}",
                f.desc.issues
            );
        }
    }
    assert_eq!(f.desc.keys[0], ["id"]);
    assert!(f.desc.has_primary_key);
    assert!(
        f.desc.is_unique_key("t_unique") || !h.unique_constraints(),
        "unique but not primary: {:?}",
        f.desc.keys
    );
    let unsupported = expected.iter().filter(|(_, t)| t.is_none()).count();
    assert_eq!(f.desc.issues.len(), unsupported, "{:?}", f.desc.issues);
    f.finish().await;
}

pub async fn describe_missing_table(h: &dyn Harness) {
    let dest = h.destination();
    assert_eq!(
        dest.describe_table(&random_table_name()).await.unwrap(),
        None
    );
}

/// The table list holds a table just created, by the name a pipeline writes it with (which
/// `describe_table` finds), and no views.
pub async fn list_tables_names_the_tables(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::IntKeyed).await;
    let view = format!("{}_v", f.table);
    h.execute(&format!(
        "CREATE VIEW {} AS SELECT * FROM {}",
        h.quote(&view),
        h.quote(&f.table)
    ))
    .await
    .expect("create a view");
    let tables = f.dest.list_tables().await.unwrap();
    let found: Vec<_> = tables
        .iter()
        .filter(|t| t.name.eq_ignore_ascii_case(&f.table))
        .collect();
    assert_eq!(found.len(), 1, "{} in {tables:?}", f.table);
    assert!(
        f.dest
            .describe_table(&found[0].name)
            .await
            .unwrap()
            .is_some(),
        "a listed name is describable"
    );
    assert!(
        !tables.iter().any(|t| t.name.eq_ignore_ascii_case(&view)),
        "views are not listed: {tables:?}"
    );
    let mut sorted = tables.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(tables, sorted, "sorted by name");
    h.execute(&h.drop_view(&view)).await.expect("drop the view");
    f.finish().await;
}

/// A wrong database name is reported as such, by the connection test and by the table list: kind
/// `NotFound` (API code `NotFound`, not `TableNotFound`), with a message that names the database.
pub async fn missing_database_is_not_found(h: &dyn Harness) {
    let name = format!(
        "sluice_missing_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let Some(dest) = h.missing_database(&name) else {
        return;
    };
    let mut errors = vec![dest.test().await.expect_err("the database does not exist")];
    if h.reports_missing_databases_exactly() {
        errors.push(
            dest.list_tables()
                .await
                .expect_err("the database does not exist"),
        );
    }
    for e in errors {
        if h.reports_missing_databases_exactly() {
            assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
            assert_eq!(e.kind.code(), "NotFound");
        } else {
            assert!(
                matches!(e.kind, ErrorKind::NotFound | ErrorKind::Permission),
                "{e:?}"
            );
        }
        let lower = e.message.to_lowercase();
        assert!(
            lower.contains(&name.to_lowercase()) && lower.contains("database"),
            "the message names the database: {e}"
        );
    }
}

pub async fn insert_new_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name", "age"], "id");
    let counts = f
        .upsert(
            &t,
            vec![
                vec![s("c1"), s("Ada"), Value::Int(36)],
                vec![s("c2"), s("Grace"), Value::Int(45)],
                vec![s("c3"), s("Linus"), Value::Int(28)],
            ],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 3,
            updated: 0
        }
    );
    let rows = f.read(&["id", "name", "age", "note", "email"], "id").await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        [
            Some("c1".into()),
            Some("Ada".into()),
            Some("36".into()),
            Some("default note".into()),
            None
        ]
    );
    assert_eq!(text(&rows[2][1]), "Linus");
    f.finish().await;
}

pub async fn update_existing_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    // Another pipeline owns `email`; this one writes `name` and `age`.
    let other = f.target(&["id", "email"], "id");
    f.upsert(
        &other,
        vec![
            vec![s("c1"), s("ada@example.com")],
            vec![s("c2"), s("grace@example.com")],
        ],
    )
    .await;
    let t = f.target(&["id", "name", "age"], "id");
    let counts = f
        .upsert(
            &t,
            vec![
                vec![s("c1"), s("Ada Lovelace"), Value::Int(37)],
                vec![s("c2"), s("Grace Hopper"), Value::Int(46)],
                vec![s("c3"), s("Linus"), Value::Int(28)],
            ],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 1,
            updated: 2
        }
    );
    let rows = f.read(&["id", "name", "age", "email", "note"], "id").await;
    assert_eq!(
        rows[0],
        [
            Some("c1".into()),
            Some("Ada Lovelace".into()),
            Some("37".into()),
            Some("ada@example.com".into()),
            Some("default note".into())
        ],
        "an update leaves unmapped columns as they were"
    );
    assert_eq!(rows[1][3].as_deref(), Some("grace@example.com"));
    assert_eq!(
        rows[2][3], None,
        "an insert leaves unmapped columns to their defaults"
    );
    assert_eq!(rows[2][4].as_deref(), Some("default note"));
    f.finish().await;
}

/// Runs of all-new batches, then a batch with taken keys, then new ones again, through one destination
/// instance (writers may take shortcuts while batches hold only new keys): counts and rows stay exact.
pub async fn batches_switch_between_new_and_taken_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name"], "id");
    let batch = |ids: &[&str], tag: &str| -> Vec<Vec<Value>> {
        ids.iter()
            .map(|id| vec![s(id), s(&format!("{id} {tag}"))])
            .collect()
    };
    let counts = |inserted, updated| UpsertCounts { inserted, updated };
    assert_eq!(
        f.upsert(&t, batch(&["a1", "a2", "a3"], "v1")).await,
        counts(3, 0)
    );
    assert_eq!(
        f.upsert(&t, batch(&["b1", "b2", "b3"], "v1")).await,
        counts(3, 0)
    );
    assert_eq!(
        f.upsert(&t, batch(&["a2", "c1", "b3"], "v2")).await,
        counts(1, 2)
    );
    assert_eq!(f.upsert(&t, batch(&["d1", "d2"], "v1")).await, counts(2, 0));
    assert_eq!(f.upsert(&t, batch(&["d3"], "v1")).await, counts(1, 0));
    assert_eq!(f.upsert(&t, batch(&["d2"], "v2")).await, counts(0, 1));
    let names: Vec<String> = f
        .read(&["id", "name"], "id")
        .await
        .iter()
        .map(|r| text(&r[1]).to_string())
        .collect();
    assert_eq!(
        names,
        [
            "a1 v1", "a2 v2", "a3 v1", "b1 v1", "b2 v1", "b3 v2", "c1 v2", "d1 v1", "d2 v2",
            "d3 v1"
        ]
    );
    f.finish().await;
}

pub async fn rerun_same_rows(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name"], "id");
    let rows = || {
        (0..50)
            .map(|i| vec![s(&format!("k{i:03}")), s(&format!("name {i}"))])
            .collect::<Vec<_>>()
    };
    assert_eq!(
        f.upsert(&t, rows()).await,
        UpsertCounts {
            inserted: 50,
            updated: 0
        }
    );
    let before = f.read(&["id", "name", "note"], "id").await;
    assert_eq!(
        f.upsert(&t, rows()).await,
        UpsertCounts {
            inserted: 0,
            updated: 50
        }
    );
    assert_eq!(
        f.read(&["id", "name", "note"], "id").await,
        before,
        "re-running converges to the same table"
    );
    assert_eq!(f.count().await, 50);
    f.finish().await;
}

pub async fn nulls(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name", "age", "email"], "id");
    f.upsert(
        &t,
        vec![
            vec![s("n1"), Value::Null, Value::Null, Value::Null],
            vec![s("n2"), s("Set"), Value::Int(1), s("x@y.z")],
        ],
    )
    .await;
    // Writing NULL over a value clears it.
    let counts = f
        .upsert(
            &t,
            vec![vec![s("n2"), Value::Null, Value::Null, Value::Null]],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 0,
            updated: 1
        }
    );
    let rows = f.read(&["id", "name", "age", "email"], "id").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("n1".into()), None, None, None],
            vec![Some("n2".into()), None, None, None]
        ]
    );
    f.finish().await;
}

pub async fn unicode(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let names = [
        "emoji 👩🏽‍💻🚀 and flags 🇮🇹🇯🇵",
        "مرحبا بالعالم",                // Arabic, right-to-left
        "שלום עולם",                    // Hebrew, right-to-left
        "e\u{301}le\u{300}ve n\u{303}", // combining marks (not precomposed)
        "日本語のテキスト、中文、한국어",
        "quotes ' \" \\ and ; -- /* */",
        "zero\u{200b}width and\ttab\nnewline",
    ];
    let t = f.target(&["id", "name"], "id");
    // Non-ASCII keys too.
    let rows: Vec<Vec<Value>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| vec![s(&format!("ключ-{i}-🔑")), s(n)])
        .collect();
    f.upsert(&t, rows).await;
    let back = f.read(&["id", "name"], "id").await;
    let mut got: Vec<(String, String)> = back
        .iter()
        .map(|r| (text(&r[0]).to_string(), text(&r[1]).to_string()))
        .collect();
    got.sort();
    for (i, n) in names.iter().enumerate() {
        let key = format!("ключ-{i}-🔑");
        let found = got
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("row {key} missing"));
        assert_eq!(found.1, *n, "text must come back byte for byte");
    }
    f.finish().await;
}

pub async fn long_text(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let long: String = "abcdefghij€".repeat(10_000); // 110,000 characters, multi-byte included
    let t = f.target(&["id", "name"], "id");
    f.upsert(
        &t,
        vec![vec![s("long"), Value::String(long.clone().into())]],
    )
    .await;
    let back = f.read(&["name"], "id").await;
    assert_eq!(text(&back[0][0]).chars().count(), 110_000);
    assert!(text(&back[0][0]) == long);
    f.finish().await;
}

pub async fn timestamps_across_time_zones(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::Types).await;
    let instants = [
        "2024-03-10T02:30:00-08:00",        // US spring-forward day
        "2024-10-27T02:30:00+02:00",        // EU fall-back day
        "2023-12-31T23:59:59.999999+14:00", // Kiribati: still the 31st in UTC minus 14 h
        "2024-06-01T12:00:00+05:45",        // Nepal
        "2024-02-29T00:00:00-03:30",        // Newfoundland, leap day
        "1969-07-20T20:17:40Z",             // before the Unix epoch
    ];
    let instants: Vec<&str> = instants
        .into_iter()
        .filter(|x| h.stored_instant(utc(x)).is_some())
        .collect();
    let t = f.target(&["id", "t_text", "t_ts", "t_tstz"], "id");
    let rows = instants
        .iter()
        .enumerate()
        .map(|(i, x)| {
            vec![
                Value::Int(i as i64),
                s("x"),
                Value::DateTime(utc(x)),
                Value::DateTime(utc(x)),
            ]
        })
        .collect();
    f.upsert(&t, rows).await;
    let back = f.read(&["t_ts", "t_tstz"], "id").await;
    for (i, x) in instants.iter().enumerate() {
        let expected = h.stored_instant(utc(x)).unwrap();
        assert_eq!(
            parse_instant(text(&back[i][1])),
            expected,
            "timestamptz of {x}"
        );
        // A column without time zone holds the UTC wall-clock time.
        assert_eq!(
            parse_instant(text(&back[i][0])),
            expected,
            "timestamp (UTC wall clock) of {x}"
        );
    }
    f.finish().await;
}

pub async fn decimals_full_precision(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::Types).await;
    let values = [
        "123456789012345678.0123456789", // 28 significant digits
        "-99999999999999999.9999999999",
        "0.0000000001",
        "-0.0000000001",
        "0",
        "1",
        "10.5",
    ];
    let t = f.target(&["id", "t_text", "t_decimal"], "id");
    let rows = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            vec![
                Value::Int(i as i64),
                s("x"),
                Value::Decimal(v.parse().unwrap()),
            ]
        })
        .collect();
    f.upsert(&t, rows).await;
    let back = f.read(&["t_decimal"], "id").await;
    let ty = f.desc.column("t_decimal").unwrap().ty.clone().unwrap();
    for (i, v) in values.iter().enumerate() {
        assert_same(
            h,
            "t_decimal",
            &ty,
            &Value::Decimal(v.parse().unwrap()),
            &back[i][0],
        );
    }
    f.finish().await;
}

pub async fn all_types_round_trip(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::Types).await;
    let writable: Vec<(&str, ColumnType)> = h
        .expected_types()
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| (n, t)))
        .collect();
    let mut columns = vec!["id"];
    columns.extend(writable.iter().map(|(n, _)| *n));
    let t = f.target(&columns, "id");
    let mut row = vec![Value::Int(1)];
    row.extend(writable.iter().map(|(_, ty)| sample(ty)));
    // A second row with NULL everywhere it is allowed.
    let mut nulls = vec![Value::Int(2)];
    nulls.extend(writable.iter().map(|(n, ty)| {
        if *n == "t_text" {
            sample(ty)
        } else {
            Value::Null
        }
    }));
    assert_eq!(
        f.upsert(&t, vec![row.clone(), nulls.clone()]).await,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    let back = f.read(&columns, "id").await;
    for (i, (name, ty)) in writable.iter().enumerate() {
        assert_same(h, name, ty, &row[i + 1], &back[0][i + 1]);
        assert_same(h, name, ty, &nulls[i + 1], &back[1][i + 1]);
    }
    // Updating every column in place works as well.
    assert_eq!(
        f.upsert(&t, vec![row]).await,
        UpsertCounts {
            inserted: 0,
            updated: 1
        }
    );
    f.finish().await;
}

pub async fn unique_key_not_primary(h: &dyn Harness) {
    if !h.unique_constraints() {
        return;
    }
    let f = Fixture::new(h, Shape::Accounts).await;
    assert!(f.desc.is_unique_key("email"));
    let t = f.target(&["email", "name"], "email");
    let counts = f
        .upsert(
            &t,
            vec![vec![s("a@x.io"), s("A")], vec![s("b@x.io"), s("B")]],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    let ids_before = f.read(&["email", "id"], "email").await;
    let counts = f
        .upsert(
            &t,
            vec![vec![s("b@x.io"), s("B2")], vec![s("c@x.io"), s("C")]],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 1,
            updated: 1
        }
    );
    let rows = f.read(&["email", "id", "name"], "email").await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][2].as_deref(), Some("B2"));
    assert_eq!(
        rows[1][1], ids_before[1][1],
        "the primary key of an updated row does not change"
    );
    assert!(
        rows[2][1].is_some(),
        "the database filled in the primary key of the inserted row"
    );
    f.finish().await;
}

pub async fn bad_rows_among_thousands(h: &dyn Harness) {
    let mut f = Fixture::new(h, Shape::People).await;
    // The run believes `code` is unbounded (say it was described before someone narrowed it), so only the
    // database can refuse the long value.
    for c in f.desc.columns.iter_mut().filter(|c| c.name == "code") {
        c.ty = Some(ColumnType::Text { max_len: None });
    }
    let t = f.target(&["id", "name", "code", "qty"], "id");
    let rows: Vec<Row> = (0..5000)
        .map(|i| {
            let code = if i == 1234 { "TOOLONG" } else { "ok" };
            let qty = if i == 4321 { -5 } else { i };
            Row {
                values: vec![
                    s(&format!("r{i:05}")),
                    s(&format!("row {i}")),
                    s(code),
                    Value::Int(qty),
                ],
            }
        })
        .collect();
    let (counts, rejected) = upsert_isolating(f.dest.as_ref(), &t, &rows)
        .await
        .expect("isolating upsert");
    assert_eq!(
        rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
        [1234, 4321],
        "{rejected:?}"
    );
    assert!(
        rejected[0].message.contains(h.too_long_message()),
        "message: {}",
        rejected[0].message
    );
    assert!(
        rejected[1].message.contains(h.check_violation_message()),
        "message: {}",
        rejected[1].message
    );
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 4998,
            updated: 0
        }
    );
    assert_eq!(f.count().await, 4998);
    f.finish().await;
}

pub async fn failed_batch_writes_nothing(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "qty"], "id");
    f.upsert(&t, vec![vec![s("keep"), Value::Int(1)]]).await;
    let rows: Vec<Row> = vec![
        Row {
            values: vec![s("keep"), Value::Int(2)],
        },
        Row {
            values: vec![s("new"), Value::Int(3)],
        },
        Row {
            values: vec![s("bad"), Value::Int(-1)],
        },
    ];
    let err = f
        .dest
        .upsert(&t, &rows)
        .await
        .expect_err("the CHECK constraint refuses the batch");
    assert_eq!(err.kind, ErrorKind::BadData, "{err}");
    assert_eq!(
        f.read(&["id", "qty"], "id").await,
        vec![vec![Some("keep".into()), Some("1".into())]]
    );
    // The destination is usable after the failure.
    assert_eq!(
        f.upsert(&t, vec![vec![s("new"), Value::Int(3)]]).await,
        UpsertCounts {
            inserted: 1,
            updated: 0
        }
    );
    f.finish().await;
}

pub async fn delete_by_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name"], "id");
    f.upsert(
        &t,
        (1..=5).map(|i| vec![s(&format!("d{i}")), s("x")]).collect(),
    )
    .await;
    if f.refuses_deletes(&t, s("d2")).await {
        return f.finish().await;
    }
    let deleted = f
        .dest
        .delete(&t, &[s("d2"), s("d4"), s("missing")])
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let ids: Vec<String> = f
        .read(&["id"], "id")
        .await
        .iter()
        .map(|r| text(&r[0]).to_string())
        .collect();
    assert_eq!(ids, ["d1", "d3", "d5"]);
    assert_eq!(f.dest.delete(&t, &[]).await.unwrap(), 0);
    f.finish().await;
}

pub async fn integer_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::IntKeyed).await;
    let t = f.target(&["id", "n"], "id");
    let keys = [i64::MIN + 1, -1, 0, 42, i64::MAX];
    let rows = keys
        .iter()
        .map(|k| vec![Value::Int(*k), Value::Int(1)])
        .collect();
    assert_eq!(
        f.upsert(&t, rows).await,
        UpsertCounts {
            inserted: 5,
            updated: 0
        }
    );
    let counts = f
        .upsert(
            &t,
            vec![
                vec![Value::Int(i64::MAX), Value::Int(2)],
                vec![Value::Int(7), Value::Int(2)],
            ],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 1,
            updated: 1
        }
    );
    if f.refuses_deletes(&t, Value::Int(-1)).await {
        return f.finish().await;
    }
    assert_eq!(
        f.dest
            .delete(
                &t,
                &[Value::Int(-1), Value::Int(i64::MIN + 1), Value::Int(99)]
            )
            .await
            .unwrap(),
        2
    );
    let rows = f.read(&["id", "n"], "id").await;
    let got: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (text(&r[0]).parse().unwrap(), text(&r[1]).parse().unwrap()))
        .collect();
    assert_eq!(got, [(0, 1), (7, 2), (42, 1), (i64::MAX, 2)]);
    f.finish().await;
}

pub async fn uuid_keys(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::UuidKeyed).await;
    let ids: Vec<uuid::Uuid> = (0..4).map(|_| uuid::Uuid::new_v4()).collect();
    let t = f.target(&["id", "name"], "id");
    let rows = ids
        .iter()
        .map(|u| vec![Value::Uuid(*u), s("first")])
        .collect();
    assert_eq!(
        f.upsert(&t, rows).await,
        UpsertCounts {
            inserted: 4,
            updated: 0
        }
    );
    let counts = f
        .upsert(&t, vec![vec![Value::Uuid(ids[0]), s("second")]])
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 0,
            updated: 1
        }
    );
    if f.refuses_deletes(&t, Value::Uuid(ids[1])).await {
        return f.finish().await;
    }
    assert_eq!(
        f.dest
            .delete(
                &t,
                &[Value::Uuid(ids[1]), Value::Uuid(uuid::Uuid::new_v4())]
            )
            .await
            .unwrap(),
        1
    );
    let rows = f.read(&["id", "name"], "id").await;
    assert_eq!(rows.len(), 3);
    let first = rows
        .iter()
        .find(|r| uuid::Uuid::from_str(text(&r[0])).unwrap() == ids[0])
        .expect("row of ids[0]");
    assert_eq!(first[1].as_deref(), Some("second"));
    f.finish().await;
}

pub async fn key_only_columns(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id"], "id");
    assert_eq!(
        f.upsert(&t, vec![vec![s("a")], vec![s("b")]]).await,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    assert_eq!(
        f.upsert(&t, vec![vec![s("a")], vec![s("c")]]).await,
        UpsertCounts {
            inserted: 1,
            updated: 1
        }
    );
    assert_eq!(f.count().await, 3);
    f.finish().await;
}

pub async fn column_dropped_between_describe_and_upsert(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name", "age"], "id");
    // A first batch warms whatever the destination caches for this table.
    f.upsert(&t, vec![vec![s("before"), s("B"), Value::Int(1)]])
        .await;
    h.execute(&format!(
        "ALTER TABLE {} DROP COLUMN {}",
        h.quote(&f.table),
        h.quote("age")
    ))
    .await
    .unwrap();
    let rows = vec![
        Row {
            values: vec![s("after1"), s("A"), Value::Int(2)],
        },
        Row {
            values: vec![s("after2"), s("A"), Value::Int(3)],
        },
    ];
    for dest in [&f.dest, &h.destination()] {
        let err = dest
            .upsert(&t, &rows)
            .await
            .expect_err("the column is gone");
        assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
        assert!(
            err.message.contains("age"),
            "the message names the column: {err}"
        );
    }
    assert_eq!(
        f.count().await,
        1,
        "nothing of the failed batch was written"
    );
    // Once the pipeline stops writing the column, the same destination works again.
    let t2 = WriteTarget {
        table: f.dest.describe_table(&f.table).await.unwrap().unwrap(),
        ..f.target(&["id", "name"], "id")
    };
    assert_eq!(
        f.dest
            .upsert(
                &t2,
                &[Row {
                    values: vec![s("after1"), s("A")]
                }]
            )
            .await
            .unwrap()
            .inserted,
        1
    );
    f.finish().await;
}

pub async fn table_dropped_between_describe_and_upsert(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name"], "id");
    f.upsert(&t, vec![vec![s("x"), s("X")]]).await;
    h.execute(&h.drop_table(&f.table)).await.unwrap();
    let rows = [Row {
        values: vec![s("y"), s("Y")],
    }];
    for dest in [&f.dest, &h.destination()] {
        let err = dest.upsert(&t, &rows).await.expect_err("the table is gone");
        assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    }
    assert_eq!(f.dest.describe_table(&f.table).await.unwrap(), None);
}

/// A write set up ahead (`prepare_write`, done while a run reads its first page) writes as any other,
/// and one set up for a table that was then dropped fails as the write would have without it.
pub async fn write_prepared_ahead(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name", "age"], "id");
    f.dest.prepare_write(&t).await.unwrap();
    // Twice is harmless: the second finds the set-up done.
    f.dest.prepare_write(&t).await.unwrap();
    let counts = f
        .upsert(
            &t,
            vec![
                vec![s("p1"), s("Ada"), Value::Int(36)],
                vec![s("p2"), s("Grace"), Value::Int(45)],
            ],
        )
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    let counts = f
        .upsert(&t, vec![vec![s("p1"), s("Ada L."), Value::Int(37)]])
        .await;
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 0,
            updated: 1
        }
    );
    let rows = f.read(&["id", "name", "age"], "id").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(text(&rows[0][1]), "Ada L.");

    let fresh = h.destination();
    fresh.prepare_write(&t).await.unwrap();
    h.execute(&h.drop_table(&f.table)).await.unwrap();
    let rows = [Row {
        values: vec![s("p3"), s("Linus"), Value::Int(28)],
    }];
    let err = fresh
        .upsert(&t, &rows)
        .await
        .expect_err("the table is gone");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    // Set up for a table that does not exist: either refused as missing, or left to the write.
    if let Err(e) = h.destination().prepare_write(&t).await {
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    }
    assert_eq!(f.dest.describe_table(&f.table).await.unwrap(), None);
}

pub async fn large_batch_counts(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name", "age", "email"], "id");
    let rows = |from: usize, to: usize, tag: &str| {
        (from..to)
            .map(|i| {
                vec![
                    s(&format!("L{i:06}")),
                    s(&format!("{tag} {i}")),
                    Value::Int(i as i64),
                    s(&format!("u{i}@example.com")),
                ]
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        f.upsert(&t, rows(0, 20_000, "first")).await,
        UpsertCounts {
            inserted: 20_000,
            updated: 0
        }
    );
    // Half of them again plus 5,000 new ones.
    assert_eq!(
        f.upsert(&t, rows(10_000, 25_000, "second")).await,
        UpsertCounts {
            inserted: 5_000,
            updated: 10_000
        }
    );
    assert_eq!(f.count().await, 25_000);
    let back = f.read(&["id", "name"], "id").await;
    assert_eq!(back[9_999][1].as_deref(), Some("first 9999"));
    assert_eq!(back[10_000][1].as_deref(), Some("second 10000"));
    f.finish().await;
}

pub async fn duplicate_in_another_unique_column(h: &dyn Harness) {
    if !h.unique_constraints() {
        return;
    }
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "email"], "id");
    f.upsert(&t, vec![vec![s("p1"), s("taken@example.com")]])
        .await;
    // All keys are new, but one email is already used by another row: a data error for that row only.
    let rows: Vec<Row> = ["p2", "p3", "p4"]
        .iter()
        .map(|id| {
            let email = if *id == "p3" {
                "taken@example.com".to_string()
            } else {
                format!("{id}@example.com")
            };
            Row {
                values: vec![s(id), Value::String(email.into())],
            }
        })
        .collect();
    let (counts, rejected) = upsert_isolating(f.dest.as_ref(), &t, &rows)
        .await
        .expect("isolating upsert");
    if !h.enforces_unique_constraints() {
        // Recorded, not enforced: the taken email is stored a second time, as the database itself would.
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(
            counts,
            UpsertCounts {
                inserted: 3,
                updated: 0
            }
        );
        assert_eq!(f.count().await, 4);
        f.finish().await;
        return;
    }
    assert_eq!(
        rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
        [1],
        "{rejected:?}"
    );
    assert!(
        rejected[0].message.to_lowercase().contains("unique"),
        "{}",
        rejected[0].message
    );
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    assert_eq!(f.count().await, 3);
    f.finish().await;
}

pub async fn key_column_not_unique(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::People).await;
    let t = f.target(&["id", "name"], "name");
    let rows = [
        Row {
            values: vec![s("u1"), s("Same")],
        },
        Row {
            values: vec![s("u2"), s("Other")],
        },
    ];
    let err = f
        .dest
        .upsert(&t, &rows)
        .await
        .expect_err("`name` cannot identify rows");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert_eq!(f.count().await, 0, "nothing written");
    f.finish().await;
}

// ---------------------------------------------------------------------------------------------------
// Drift: identity, row count, rows read back

/// The identity is stable while the table is, absent for a missing table; a table dropped and created
/// again is noticed by its identity or, where the database's marker can stay the same (a drop and
/// create within a second, a reused root page), by its row count. The count follows writes and
/// deletions made outside Sluice.
pub async fn drift_identity_and_count(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::IntKeyed).await;
    let t = f.target(&["id", "n"], "id");
    let first = f
        .dest
        .table_identity(&f.table)
        .await
        .unwrap()
        .expect("the table has an identity");
    assert_eq!(f.dest.count_rows(&t).await.unwrap(), 0);
    f.upsert(
        &t,
        (1..=5)
            .map(|i| vec![Value::Int(i), Value::Int(i)])
            .collect(),
    )
    .await;
    assert_eq!(f.dest.count_rows(&t).await.unwrap(), 5);
    assert_eq!(
        f.dest.table_identity(&f.table).await.unwrap().as_deref(),
        Some(first.as_str()),
        "writes keep the identity"
    );
    assert_eq!(
        f.dest.table_identity(&random_table_name()).await.unwrap(),
        None
    );
    h.execute(&h.drop_table(&f.table)).await.unwrap();
    h.execute(&h.create_table(Shape::IntKeyed, &f.table))
        .await
        .unwrap();
    let again = f.dest.table_identity(&f.table).await.unwrap();
    assert!(again.is_some());
    let rows = f.dest.count_rows(&t).await.unwrap();
    assert!(
        again.as_deref() != Some(first.as_str()) || rows == 0,
        "a recreated table is noticed by its identity or its count"
    );
    f.finish().await;
}

/// A destination's change marker, where it has one, stays put while Sluice upserts and moves once rows
/// are deleted by someone else (within a few seconds: PostgreSQL's comes from its statistics), so that a
/// run may skip its row count only while nobody removed anything.
pub async fn drift_change_marker(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::IntKeyed).await;
    let t = f.target(&["id", "n"], "id");
    let rows = |n: i64| -> Vec<Vec<Value>> {
        (1..=5)
            .map(|i| vec![Value::Int(i), Value::Int(i * n)])
            .collect()
    };
    f.upsert(&t, rows(1)).await;
    let Some(before) = f.dest.change_marker(&t).await.unwrap() else {
        // No marker: every run counts; nothing more to hold.
        assert_eq!(f.dest.change_marker(&t).await.unwrap(), None);
        f.finish().await;
        return;
    };
    f.upsert(&t, rows(2)).await;
    assert_eq!(
        f.dest.change_marker(&t).await.unwrap().as_deref(),
        Some(before.as_str()),
        "Sluice's upserts leave the marker as it is"
    );
    let table = h.quote(&f.table);
    h.execute(&format!("DELETE FROM {table} WHERE {} = 1", h.quote("id")))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let now = f.dest.change_marker(&t).await.unwrap();
        if now.as_deref() != Some(before.as_str()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a deletion by someone else moves the marker"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    f.finish().await;
}

/// Rows read back by key are the values Sluice wrote, typed as written, so that they hash as they did:
/// every type but those whose text form may lose something (see `lossy` below), which a reconcile then
/// rewrites, wastefully but correctly. Keys with
/// no row, and rows whose key was not asked for, are not read.
pub async fn drift_rows_read_back(h: &dyn Harness) {
    let f = Fixture::new(h, Shape::Types).await;
    let writable: Vec<(&str, ColumnType)> = h
        .expected_types()
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| (n, t)))
        .collect();
    let mut columns = vec!["id"];
    columns.extend(writable.iter().map(|(n, _)| *n));
    let t = f.target(&columns, "id");
    let row = |id: i64| {
        let mut values = vec![Value::Int(id)];
        values.extend(writable.iter().map(|(n, ty)| {
            let v = sample(ty);
            // Rows differ in their unique column.
            if *n == "t_unique" {
                sluice_core::convert::to_column(Value::Int(id), ty).unwrap_or(v)
            } else {
                sluice_core::convert::to_column(v.clone(), ty).unwrap_or(v)
            }
        }));
        values
    };
    f.upsert(&t, vec![row(1), row(2), row(3)]).await;
    let mut back = f
        .dest
        .read_rows(&t, &[Value::Int(3), Value::Int(1), Value::Int(99)])
        .await
        .unwrap();
    back.sort_by_key(|r| match r[0] {
        Value::Int(i) => i,
        _ => i64::MAX,
    });
    assert_eq!(back.len(), 2, "{back:?}");
    assert_eq!(back[0][0], Value::Int(1));
    assert_eq!(back[1][0], Value::Int(3));
    let expected = row(1);
    let mut differ = Vec::new();
    for (i, (name, ty)) in writable.iter().enumerate() {
        let want = match (&expected[i + 1], ty) {
            (Value::DateTime(dt), ColumnType::Timestamp { .. }) => h
                .stored_instant(*dt)
                .map(Value::DateTime)
                .unwrap_or(Value::Null),
            (v, _) => v.clone(),
        };
        if back[0][i + 1] != want {
            differ.push((*name, ty.clone(), back[0][i + 1].clone(), want));
        }
    }
    // Types whose text form may lose what the hash sees: floats printed short and JSON reordered by
    // some databases, binary as the Snowflake test server prints it (Python's bytes form, where
    // Snowflake sends hex), decimals where the database keeps 15 digits (SQLite).
    let lossy = |ty: &ColumnType| {
        matches!(
            ty,
            ColumnType::Float { .. } | ColumnType::Json | ColumnType::Binary
        ) || (matches!(ty, ColumnType::Decimal { .. }) && !h.exact_decimals())
    };
    let unexpected: Vec<_> = differ.iter().filter(|(_, ty, _, _)| !lossy(ty)).collect();
    assert!(
        unexpected.is_empty(),
        "read back differently: {unexpected:#?}"
    );
    eprintln!("types read back differently (rewritten by a reconcile): {differ:?}");
    f.finish().await;
}
