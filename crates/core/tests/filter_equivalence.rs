//! The SQL translation of a filter selects exactly the profiles the Rust evaluator matches, in SQLite and
//! in PostgreSQL, on random profiles of a Customer Model that uses every type (with nulls, absent keys,
//! unicode, nested objects, arrays, decimals and datetimes with fractions and offsets) and random filters
//! over every operator.
//!
//! The PostgreSQL test needs a server: `SLUICE_TEST_POSTGRES_URL=postgres://user@host:port/db`. Without
//! it the test fails, naming the variable; it never passes silently.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestRunner};
use rusqlite::functions::FunctionFlags;
use serde_json::{json, Map, Value as Json};
use sluice_core::filter::{
    sqlite_dec_cmp, sqlite_ts, Filter, Operator, SqlDialect, SqlParam, SQLITE_FN_DEC_CMP,
    SQLITE_FN_TS,
};
use sluice_core::schema::{PropertyType, Schema, SchemaWire};
use sluice_core::Profile;

const PG_URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";
const CASES: u32 = 96;
/// At most this many rounds of `CASES` cases, while some operator was never generated.
const ROUNDS: usize = 4;
const PROFILES_PER_CASE: usize = 50;
const FILTERS_PER_CASE: usize = 8;

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "name", "type": "string"},
        {"name": "country", "type": "string", "nullable": false},
        {"name": "vip", "type": "boolean"},
        {"name": "age", "type": "int"},
        {"name": "score", "type": "float"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "units", "type": "decimal(6,0)"},
        {"name": "seen", "type": "datetime"},
        {"name": "born", "type": "date"},
        {"name": "wake", "type": "time"},
        {"name": "ref", "type": "uuid"},
        {"name": "extra", "type": "json"},
        {"name": "tags", "type": "array(string)"},
        {"name": "lucky", "type": "array(int)"},
        {"name": "weights", "type": "array(float)"},
        {"name": "prices", "type": "array(decimal(8,3))"},
        {"name": "visits", "type": "array(datetime)"},
        {"name": "days", "type": "array(date)"},
        {"name": "flags", "type": "array(boolean)"},
        {"name": "refs", "type": "array(uuid)"},
        {"name": "blobs", "type": "array(json)"},
        {"name": "items", "type": "array(object)", "properties": [{"name": "sku", "type": "string"}]},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "zip", "type": "int"},
            {"name": "geo", "type": "object", "properties": [
                {"name": "lat", "type": "float"},
                {"name": "at", "type": "datetime"},
                {"name": "note", "type": "json"}
            ]}
        ]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

// ---------------------------------------------------------------------------------------------------
// Values. Small pools make equal values (and so matches) frequent; random values cover the rest.

fn string_value() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => select(vec![
            "", "a", "A", "ab", "abc", "b", "ba", "Zoë", "zoë", "日本語", "🎉x", "a%b_c", "x'y\"z", "back\\slash",
            " a ", "IT", "FR", "Rome", "c1",
        ])
        .prop_map(|s| json!(s)),
        // Any characters but controls: PostgreSQL cannot store NUL in text or jsonb.
        1 => prop::collection::vec(any::<char>().prop_filter("not a control", |c| !c.is_control()), 0..6)
            .prop_map(|chars| Json::String(chars.into_iter().collect())),
    ]
    .boxed()
}

fn int_value() -> BoxedStrategy<Json> {
    prop_oneof![
        4 => (-3i64..=3).prop_map(|i| json!(i)),
        1 => select(vec![i64::MIN, i64::MAX, 1 << 53, (1 << 53) + 1]).prop_map(|i| json!(i)),
        1 => any::<i64>().prop_map(|i| json!(i)),
        // Loose input, normalized on load and on parse.
        1 => (-3i64..=3).prop_map(|i| json!(i.to_string())),
    ]
    .boxed()
}

fn float_value() -> BoxedStrategy<Json> {
    prop_oneof![
        4 => select(vec![
            0.0, -0.0, 0.1, 0.2, 0.30000000000000004, 0.3, 1.5, -1.5, 3.0, 1e20, 1e-300, 5e-324,
            f64::MAX, f64::MIN_POSITIVE, -2.5e-8,
        ])
        .prop_map(|f| json!(f)),
        2 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        1 => (-3i64..=3).prop_map(|i| json!(i)),
    ]
    .boxed()
}

fn decimal_value(precision: u8, scale: u8) -> BoxedStrategy<Json> {
    let limit = 10i64.pow(u32::from(precision.min(18)));
    let text = move |m: i64| rust_decimal::Decimal::new(m, u32::from(scale)).to_string();
    prop_oneof![
        4 => (-300i64..=300).prop_map(move |m| json!(text(m))),
        1 => (-(limit - 1)..limit).prop_map(move |m| json!(text(m))),
        // Fewer fractional digits than the scale, and plain numbers: normalized on load and on parse.
        1 => (-30i64..=30).prop_map(move |m| json!(rust_decimal::Decimal::new(m, u32::from(scale.min(1))).to_string())),
        1 => (-5i64..=5).prop_map(|i| json!(i)),
    ]
    .boxed()
}

fn datetime_value() -> BoxedStrategy<Json> {
    let random = (
        -2_208_988_800i64..4_102_444_800, // 1900 to 2100
        prop_oneof![
            Just(0u32),
            (0u32..1_000_000).prop_map(|u| u * 1000),
            0u32..1_000_000_000
        ],
        prop_oneof![Just(0i32), -14 * 60..=14 * 60],
    )
        .prop_map(|(secs, nanos, offset_minutes)| {
            let utc = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            json!(utc
                .with_timezone(&offset)
                .format("%Y-%m-%dT%H:%M:%S%.f%:z")
                .to_string())
        });
    prop_oneof![
        3 => select(vec![
            "2024-05-13T15:30:00Z",
            "2024-05-13T17:30:00+02:00",
            "2024-05-13T15:30:00.5Z",
            "2024-05-13T15:30:00.500000Z",
            "2024-05-13T15:30:00.000001Z",
            "2024-05-13T15:30:00.0000019Z",
            "2024-05-13T15:29:59.999999999Z",
            "1969-12-31T23:59:59.9999995Z",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ])
        .prop_map(|s| json!(s)),
        2 => random,
    ]
    .boxed()
}

fn date_value() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => select(vec!["2024-05-13", "2024-05-14", "1999-12-31", "2000-01-01", "0001-01-01"]).prop_map(|s| json!(s)),
        1 => (0i32..80_000).prop_map(|d| {
            let date = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(i64::from(d));
            json!(date.format("%Y-%m-%d").to_string())
        }),
    ]
    .boxed()
}

fn time_value() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => select(vec!["07:30", "07:30:00", "07:30:00.5", "07:30:00.000001", "00:00:00", "23:59:59.999999"])
            .prop_map(|s| json!(s)),
        1 => (0u32..86_400, prop_oneof![Just(0u32), 0u32..1_000_000]).prop_map(|(s, micros)| {
            let t = NaiveTime::from_num_seconds_from_midnight_opt(s, micros * 1000).unwrap();
            json!(t.format("%H:%M:%S%.f").to_string())
        }),
    ]
    .boxed()
}

fn uuid_value() -> BoxedStrategy<Json> {
    prop_oneof![
        2 => select(vec![
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
        ])
        .prop_map(|s| json!(s)),
        1 => any::<u128>().prop_map(|u| json!(uuid::Uuid::from_u128(u).to_string())),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Json> {
    select(vec![
        json!(null),
        json!(""),
        json!([]),
        json!({}),
        json!(0),
        json!(1.5),
        json!("x"),
        json!(true),
        json!([1, "a"]),
        json!({"a": {"b": null}}),
    ])
    .boxed()
}

/// A non-null value of type `ty`, in a form the Customer Model accepts.
fn value(ty: &PropertyType) -> BoxedStrategy<Json> {
    match ty {
        PropertyType::String => string_value(),
        PropertyType::Boolean => prop_oneof![
            4 => any::<bool>().prop_map(Json::Bool),
            1 => select(vec!["yes", "false"]).prop_map(|s| json!(s)),
        ]
        .boxed(),
        PropertyType::Int => int_value(),
        PropertyType::Float => float_value(),
        PropertyType::Decimal { precision, scale } => decimal_value(*precision, *scale),
        PropertyType::DateTime => datetime_value(),
        PropertyType::Date => date_value(),
        PropertyType::Time => time_value(),
        PropertyType::Uuid => uuid_value(),
        PropertyType::Json => json_value(),
        PropertyType::Array(inner) => {
            let element = prop_oneof![6 => value(inner), 1 => Just(Json::Null)];
            prop::collection::vec(element, 0..4)
                .prop_map(Json::Array)
                .boxed()
        }
        PropertyType::Object(props) => {
            let fields: Vec<BoxedStrategy<Option<(String, Json)>>> = props
                .iter()
                .map(|p| {
                    let name = p.name.clone();
                    let v = value(&p.ty);
                    let nullable = p.nullable;
                    prop_oneof![
                        2 => Just(None),
                        1 => Just(nullable.then(|| (name.clone(), Json::Null))),
                        4 => v.prop_map(move |v| Some((name.clone(), v))),
                    ]
                    .boxed()
                })
                .collect();
            fields
                .prop_map(|fields| Json::Object(fields.into_iter().flatten().collect()))
                .boxed()
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Profiles.

fn profile_input(schema: &Schema) -> BoxedStrategy<Map<String, Json>> {
    let props: Vec<BoxedStrategy<Option<(String, Json)>>> = schema
        .properties
        .iter()
        .map(|p| {
            let name = p.name.clone();
            let nullable = p.nullable;
            let v = value(&p.ty);
            prop_oneof![
                2 => Just(None),
                1 => Just(nullable.then(|| (name.clone(), Json::Null))),
                5 => v.prop_map(move |v| Some((name.clone(), v))),
            ]
            .boxed()
        })
        .collect();
    props
        .prop_map(|fields| fields.into_iter().flatten().collect())
        .boxed()
}

fn profiles(schema: &Schema) -> BoxedStrategy<Vec<Profile>> {
    let schema = schema.clone();
    let one = (
        select(vec!["c", "c", "Zoë-", "日本", "x'y", "A"]),
        // Whole microseconds, as both stores keep them.
        -2_208_988_800_000_000i64..4_102_444_800_000_000,
        profile_input(&schema),
    );
    prop::collection::vec(one, PROFILES_PER_CASE)
        .prop_map(move |items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (prefix, micros, mut input))| {
                    input.insert("_id".into(), json!(format!("{prefix}{i}")));
                    let (id, doc) = schema.validate_profile(&input).unwrap_or_else(|e| {
                        panic!("generated an invalid profile {input:?}: {e:?}")
                    });
                    Profile {
                        id,
                        updated_at: DateTime::from_timestamp_micros(micros).unwrap(),
                        doc,
                    }
                })
                .collect()
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------------
// Filters.

fn id_value() -> BoxedStrategy<Json> {
    prop_oneof![
        3 => (select(vec!["c", "Zoë-", "日本", "x'y", "A"]), 0..PROFILES_PER_CASE)
            .prop_map(|(p, i)| json!(format!("{p}{i}"))),
        1 => select(vec!["c", "c1", "1", "Zoë", "y", "日"]).prop_map(|s| json!(s)),
    ]
    .boxed()
}

fn condition(paths: &[(String, PropertyType)]) -> BoxedStrategy<Json> {
    let cases: Vec<BoxedStrategy<Json>> = paths
        .iter()
        .flat_map(|(path, ty)| {
            Operator::applicable(ty).into_iter().map(move |op| {
                let value_ty = match ty {
                    PropertyType::Array(inner) => inner.as_ref().clone(),
                    other => other.clone(),
                };
                let v = match path.as_str() {
                    "_id" => id_value(),
                    _ => value(&value_ty),
                };
                // Substring operators refuse an empty text (it would match everything).
                let substring = matches!(ty, PropertyType::String)
                    && matches!(
                        op,
                        Operator::Contains
                            | Operator::DoesNotContain
                            | Operator::StartsWith
                            | Operator::EndsWith
                    );
                let v = if substring {
                    v.prop_filter("non-empty", |v| v != "").boxed()
                } else {
                    v
                };
                let count = match op.arity() {
                    sluice_core::filter::Arity::None => 0..1usize,
                    sluice_core::filter::Arity::One => 1..2,
                    sluice_core::filter::Arity::Two => 2..3,
                    sluice_core::filter::Arity::Many => 1..5,
                };
                let path = path.clone();
                prop::collection::vec(v, count)
                    .prop_map(move |values| {
                        let mut c = json!({"property": path, "operator": op.name()});
                        if !values.is_empty() {
                            c["values"] = Json::Array(values);
                        }
                        c
                    })
                    .boxed()
            })
        })
        .collect();
    // Each (property, operator) pair is equally likely, so every operator is well covered.
    (0..cases.len())
        .prop_flat_map(move |i| cases[i].clone())
        .boxed()
}

fn filter_wire(schema: &Schema) -> BoxedStrategy<Json> {
    let leaf = condition(&schema.paths());
    let node = leaf.prop_recursive(3, 24, 4, |inner| {
        (
            select(vec!["and", "or"]),
            prop::collection::vec(inner, 0..4),
        )
            .prop_map(|(logical, conditions)| json!({"logical": logical, "conditions": conditions}))
    });
    (select(vec!["and", "or"]), prop::collection::vec(node, 0..4))
        .prop_map(|(logical, conditions)| json!({"logical": logical, "conditions": conditions}))
        .boxed()
}

/// Generated values are random, so `is between` bounds may come in the wrong order, which the parser
/// refuses: swap them.
fn fix_bounds(wire: &mut Json, schema: &Schema) {
    if let Some(conditions) = wire.get_mut("conditions").and_then(Json::as_array_mut) {
        for c in conditions {
            fix_bounds(c, schema);
        }
        return;
    }
    let probe = |c: &Json| Filter::parse(&json!({"logical": "and", "conditions": [c]}), schema);
    if probe(wire).is_err() {
        if let Some(values) = wire.get_mut("values").and_then(Json::as_array_mut) {
            values.reverse();
        }
    }
    if let Err(e) = probe(wire) {
        panic!("generated an invalid condition {wire}: {e}");
    }
}

fn filters(schema: &Schema) -> BoxedStrategy<Vec<Filter>> {
    let schema = schema.clone();
    prop::collection::vec(filter_wire(&schema), FILTERS_PER_CASE)
        .prop_map(move |wires| {
            wires
                .into_iter()
                .map(|mut wire| {
                    fix_bounds(&mut wire, &schema);
                    let filter =
                        Filter::parse(&wire, &schema).unwrap_or_else(|e| panic!("{wire}: {e}"));
                    // The normalized wire form parses back to the same filter.
                    assert_eq!(
                        Filter::parse(&filter.to_wire(), &schema).as_ref(),
                        Ok(&filter)
                    );
                    filter
                })
                .collect()
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------------
// The engines.

trait Store {
    fn load(&mut self, profiles: &[Profile]);
    fn select(&mut self, filter: &Filter) -> BTreeSet<String>;
}

struct Sqlite(rusqlite::Connection);

impl Sqlite {
    fn open() -> Sqlite {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
        // Strict about argument types: the filter promises to pass only TEXT.
        conn.create_scalar_function(SQLITE_FN_TS, 1, flags, |ctx| {
            let text: String = ctx.get(0)?;
            Ok(sqlite_ts(&text))
        })
        .unwrap();
        conn.create_scalar_function(SQLITE_FN_DEC_CMP, 2, flags, |ctx| {
            let a: String = ctx.get(0)?;
            let b: String = ctx.get(1)?;
            Ok(sqlite_dec_cmp(&a, &b))
        })
        .unwrap();
        conn.execute_batch("CREATE TABLE profiles (id TEXT PRIMARY KEY, updated_at INTEGER NOT NULL, doc TEXT NOT NULL)")
            .unwrap();
        Sqlite(conn)
    }
}

impl Store for Sqlite {
    fn load(&mut self, profiles: &[Profile]) {
        let tx = self.0.transaction().unwrap();
        tx.execute("DELETE FROM profiles", []).unwrap();
        for p in profiles {
            tx.execute(
                "INSERT INTO profiles (id, updated_at, doc) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    p.id,
                    p.updated_at.timestamp_micros(),
                    Json::Object(p.doc.clone()).to_string()
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    fn select(&mut self, filter: &Filter) -> BTreeSet<String> {
        // A parameter before the filter's own checks that numbering starts where asked and that the
        // expression composes with AND.
        let (sql, params) = filter.to_sql(SqlDialect::Sqlite, 2);
        let query = format!("SELECT id FROM profiles WHERE ?1 = 1 AND {sql}");
        let mut values: Vec<rusqlite::types::Value> = vec![rusqlite::types::Value::Integer(1)];
        values.extend(params.into_iter().map(|p| match p {
            SqlParam::Null => rusqlite::types::Value::Null,
            SqlParam::Bool(b) => rusqlite::types::Value::Integer(i64::from(b)),
            SqlParam::Int(i) => rusqlite::types::Value::Integer(i),
            SqlParam::Float(f) => rusqlite::types::Value::Real(f),
            SqlParam::Text(s) => rusqlite::types::Value::Text(s),
        }));
        let mut stmt = self
            .0
            .prepare(&query)
            .unwrap_or_else(|e| panic!("{e}: {query}"));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(values), |row| {
                row.get::<_, String>(0)
            })
            .unwrap_or_else(|e| panic!("{e}: {query}"));
        rows.collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}: {query}"))
    }
}

struct Postgres {
    client: postgres::Client,
    table: String,
}

impl Postgres {
    fn connect() -> Postgres {
        let url = std::env::var(PG_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{PG_URL_VAR} is not set: this test needs a PostgreSQL server, e.g. \
                 {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
            )
        });
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL at {PG_URL_VAR}={url}: {e}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let table = format!("sluice_filter_eq_{}_{nanos}", std::process::id());
        // Durability is not what this test is about; waiting for a flush at every load would dominate it.
        client
            .batch_execute(&format!(
                "SET synchronous_commit = off; \
                 CREATE TABLE {table} (id text PRIMARY KEY, updated_at timestamptz NOT NULL, doc jsonb NOT NULL)"
            ))
            .unwrap();
        Postgres { client, table }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table));
    }
}

impl Store for Postgres {
    fn load(&mut self, profiles: &[Profile]) {
        let ids: Vec<&str> = profiles.iter().map(|p| p.id.as_str()).collect();
        let times: Vec<DateTime<Utc>> = profiles.iter().map(|p| p.updated_at).collect();
        let docs: Vec<Json> = profiles
            .iter()
            .map(|p| Json::Object(p.doc.clone()))
            .collect();
        let mut tx = self.client.transaction().unwrap();
        tx.execute(&format!("DELETE FROM {}", self.table), &[])
            .unwrap();
        tx.execute(
            &format!(
                "INSERT INTO {} (id, updated_at, doc) SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::jsonb[])",
                self.table
            ),
            &[&ids, &times, &docs],
        )
        .unwrap();
        tx.commit().unwrap();
    }

    fn select(&mut self, filter: &Filter) -> BTreeSet<String> {
        let (sql, params) = filter.to_sql(SqlDialect::Postgres, 2);
        let query = format!("SELECT id FROM {} WHERE $1::int8 = 1 AND {sql}", self.table);
        let mut values: Vec<Box<dyn postgres::types::ToSql + Sync>> = vec![Box::new(1i64)];
        for p in params {
            values.push(match p {
                SqlParam::Null => Box::new(None::<String>),
                SqlParam::Bool(b) => Box::new(b),
                SqlParam::Int(i) => Box::new(i),
                SqlParam::Float(f) => Box::new(f),
                SqlParam::Text(s) => Box::new(s),
            });
        }
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            values.iter().map(|b| b.as_ref()).collect();
        let rows = self
            .client
            .query(&query, &refs)
            .unwrap_or_else(|e| panic!("{e}: {query}"));
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    }
}

/// What the runs saw, to check that the random filters were not trivial.
#[derive(Default)]
struct Coverage {
    operators: BTreeMap<&'static str, usize>,
    /// Filters that selected some but not all profiles.
    discriminating: usize,
    filters: usize,
}

fn record(coverage: &mut Coverage, wire: &Json) {
    if let Some(conditions) = wire.get("conditions").and_then(Json::as_array) {
        conditions.iter().for_each(|c| record(coverage, c));
    } else if let Some(op) = wire.get("operator").and_then(Json::as_str) {
        let op = Operator::from_name(op).unwrap();
        *coverage.operators.entry(op.name()).or_default() += 1;
    }
}

fn check_equivalence(store: &mut dyn Store, engine: &str) {
    let schema = schema();
    let coverage = RefCell::new(Coverage::default());
    let store = RefCell::new(store);
    // Rounds of fresh random cases until every operator has been tried: one round sometimes misses a
    // rare operator (only boolean properties take `is false`), which says nothing about the code.
    for round in 0..ROUNDS {
        let covered = Operator::all()
            .iter()
            .all(|op| coverage.borrow().operators.contains_key(op.name()));
        if round > 0 && covered {
            break;
        }
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            rng_algorithm: RngAlgorithm::XorShift,
            ..Config::default()
        });
        let result = runner.run(
            &(profiles(&schema), filters(&schema)),
            |(profiles, filters)| {
                let mut store = store.borrow_mut();
                store.load(&profiles);
                // The documents as previews see them, with their own `_updated_at`.
                let previews: Vec<Map<String, Json>> = profiles
                    .iter()
                    .map(|p| {
                        let mut doc = p.doc.clone();
                        doc.insert(
                            "_updated_at".into(),
                            json!(sluice_core::schema::format_datetime(&p.updated_at)),
                        );
                        doc
                    })
                    .collect();
                for filter in &filters {
                    let expected: BTreeSet<String> = profiles
                        .iter()
                        .filter(|p| filter.matches(p))
                        .map(|p| p.id.clone())
                        .collect();
                    for (p, doc) in profiles.iter().zip(&previews) {
                        prop_assert_eq!(
                            filter.matches_doc(&p.id, doc),
                            filter.matches(p),
                            "preview of {}",
                            p.id
                        );
                    }
                    let got = store.select(filter);
                    let (sql, params) = filter.to_sql(
                        if engine == "SQLite" {
                            SqlDialect::Sqlite
                        } else {
                            SqlDialect::Postgres
                        },
                        2,
                    );
                    prop_assert_eq!(
                        &got,
                        &expected,
                        "{} disagrees with Rust on {}\nSQL: {}\nparams: {:?}\nfilter: {}",
                        engine,
                        filter.summary(),
                        sql,
                        params,
                        filter.to_wire()
                    );
                    let mut coverage = coverage.borrow_mut();
                    record(&mut coverage, &filter.to_wire());
                    coverage.filters += 1;
                    if !expected.is_empty() && expected.len() < profiles.len() {
                        coverage.discriminating += 1;
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = result {
            panic!("{e}");
        }
    }
    let coverage = coverage.into_inner();
    for op in Operator::all() {
        assert!(
            coverage.operators.contains_key(op.name()),
            "operator `{}` was never generated",
            op.name()
        );
    }
    assert!(
        coverage.discriminating * 4 >= coverage.filters,
        "too few filters selected a strict subset: {} of {}",
        coverage.discriminating,
        coverage.filters
    );
}

#[test]
fn sqlite_selects_what_rust_matches() {
    let mut store = Sqlite::open();
    check_equivalence(&mut store, "SQLite");
}

#[test]
fn postgres_selects_what_rust_matches() {
    let mut store = Postgres::connect();
    check_equivalence(&mut store, "PostgreSQL");
}

// ---------------------------------------------------------------------------------------------------
// Stored data that does not fit the model (written before a type change, or by hand): every engine
// treats a mistyped value as no value, and PostgreSQL never fails on a cast.

fn mistyped_profiles() -> Vec<Profile> {
    let docs = [
        json!({"age": "abc", "score": "1.5", "ltv": 1.5, "seen": 42, "born": 7, "vip": "true", "tags": "a",
               "lucky": {"a": 1}, "address": "Rome", "name": ["a"], "ref": 1}),
        json!({"age": 1.5, "score": 2, "ltv": 7, "seen": "yesterday", "born": [], "vip": 1, "tags": {"0": "a"},
               "address": {"city": 5, "geo": "x"}, "name": {"a": "b"}, "wake": true}),
        json!({"age": 12345678901234567890u64, "ltv": "abc", "units": " 12 ", "seen": "2024-05-13T15:30:00.123456789Z",
               "prices": ["1.5", 2, "x", null, 1.25], "visits": ["nope", 3, "2024-05-13T15:30:00Z"],
               "lucky": [1.0, "1", null], "address": {"geo": {"lat": "47.1", "at": false}}}),
        json!({"age": null, "ltv": "1e2", "seen": "", "address": null, "tags": [], "extra": {}, "name": ""}),
        json!({"ltv": "-0.50", "weights": [0.1, "0.1", true], "flags": [1, "true", true], "refs": ["A", 3]}),
    ];
    docs.iter()
        .enumerate()
        .map(|(i, d)| Profile {
            id: format!("m{i}"),
            updated_at: DateTime::from_timestamp_micros(1_700_000_000_000_000 + i as i64).unwrap(),
            doc: d.as_object().unwrap().clone(),
        })
        .collect()
}

fn check_mistyped(store: &mut dyn Store, engine: &str) {
    let schema = schema();
    let profiles = mistyped_profiles();
    store.load(&profiles);
    let store = RefCell::new(store);
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    });
    let result = runner.run(&filters(&schema), |filters| {
        for filter in &filters {
            let expected: BTreeSet<String> = profiles
                .iter()
                .filter(|p| filter.matches(p))
                .map(|p| p.id.clone())
                .collect();
            let got = store.borrow_mut().select(filter);
            prop_assert_eq!(
                &got,
                &expected,
                "{} disagrees with Rust on {}",
                engine,
                filter.to_wire()
            );
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn sqlite_agrees_on_mistyped_data() {
    check_mistyped(&mut Sqlite::open(), "SQLite");
}

#[test]
fn postgres_agrees_on_mistyped_data() {
    check_mistyped(&mut Postgres::connect(), "PostgreSQL");
}
