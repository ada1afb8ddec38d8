//! The conformance suite against ClickHouse (reads with `FINAL`), plus ClickHouse-specific cases: the
//! engine's version column, refusals of tables that cannot upsert, the types (arrays, low cardinality,
//! nullable at any level, unsupported ones listed), TLS on the native TLS port, and a wrong password.
//!
//! Needs a server — `scripts/services.sh start clickhouse` prints the variables:
//! `SLUICE_TEST_CLICKHOUSE_NATIVE=host:port` (native protocol), `SLUICE_TEST_CLICKHOUSE_NATIVE_TLS=host:port`
//! and `SLUICE_TEST_CLICKHOUSE_TLS_CA=<PEM file>` (native TLS), `SLUICE_TEST_CLICKHOUSE_USER` and
//! `SLUICE_TEST_CLICKHOUSE_PASSWORD` (default: `default`, no password). Without them every test here fails,
//! naming the variable. Tables go to the database `sluice_ch_test`, created when missing.

mod conformance;
mod sources;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use conformance::{random_table_name, s, Harness, Shape};
use futures::StreamExt;
use klickhouse::{Client, ClientOptions, Value as Ch};
use serde_json::json;
use sluice_core::{ColumnType, Value};
use sluice_destinations::clickhouse::{ClickHouse, ClickHouseSettings};
use sluice_destinations::source::Source;
use sluice_destinations::{upsert_isolating, Destination, ErrorKind, Row, WriteTarget};

const NATIVE_VAR: &str = "SLUICE_TEST_CLICKHOUSE_NATIVE";
const TLS_VAR: &str = "SLUICE_TEST_CLICKHOUSE_NATIVE_TLS";
const CA_VAR: &str = "SLUICE_TEST_CLICKHOUSE_TLS_CA";
const DATABASE: &str = "sluice_ch_test";

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need a ClickHouse server; `scripts/services.sh start clickhouse` \
             starts one and prints the variables"
        )
    })
}

fn user() -> (String, String) {
    (
        std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
    )
}

fn split_addr(addr: &str) -> (String, u16) {
    let (h, p) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("`{addr}` is not host:port"));
    (h.to_string(), p.parse().expect("a port number"))
}

fn settings_json() -> serde_json::Value {
    let (host, port) = split_addr(&var(NATIVE_VAR));
    let (username, password) = user();
    json!({"host": host, "port": port, "username": username, "password": password, "database": DATABASE})
}

fn settings() -> ClickHouseSettings {
    ClickHouseSettings::from_json(&settings_json()).expect("valid settings")
}

struct Ch18 {
    settings: ClickHouseSettings,
    admin: Client,
}

async fn admin(database: &str) -> Client {
    let (username, password) = user();
    let options = ClientOptions {
        username,
        password,
        default_database: database.to_string(),
        ..ClientOptions::default()
    };
    Client::connect(var(NATIVE_VAR), options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the server of {NATIVE_VAR}: {e}"))
}

async fn harness() -> Ch18 {
    let setup = admin("default").await;
    setup
        .execute(format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"))
        .await
        .expect("create the test database");
    Ch18 {
        settings: settings(),
        admin: admin(DATABASE).await,
    }
}

fn cell(v: Ch) -> Option<String> {
    match v {
        Ch::Null => None,
        Ch::String(b) => Some(String::from_utf8(b).expect("UTF-8 text")),
        Ch::UInt8(n) => Some(n.to_string()),
        Ch::UInt16(n) => Some(n.to_string()),
        Ch::UInt32(n) => Some(n.to_string()),
        Ch::UInt64(n) => Some(n.to_string()),
        Ch::Int8(n) => Some(n.to_string()),
        Ch::Int16(n) => Some(n.to_string()),
        Ch::Int32(n) => Some(n.to_string()),
        Ch::Int64(n) => Some(n.to_string()),
        other => Some(format!("{other:?}")),
    }
}

impl Ch18 {
    async fn rows(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let mut stream = self.admin.query_raw(sql, None).await?;
        let mut rows = Vec::new();
        while let Some(block) = stream.next().await {
            let block = block?;
            let mut columns: Vec<_> = block
                .column_data
                .into_values()
                .map(|c| c.into_iter())
                .collect();
            for _ in 0..block.rows {
                rows.push(
                    columns
                        .iter_mut()
                        .filter_map(|c| c.next())
                        .map(cell)
                        .collect(),
                );
            }
        }
        Ok(rows)
    }
}

#[async_trait]
impl Harness for Ch18 {
    fn destination(&self) -> Box<dyn Destination> {
        Box::new(ClickHouse::new(self.settings.clone()))
    }

    fn missing_database(&self, database: &str) -> Option<Box<dyn Destination>> {
        let mut settings = self.settings.clone();
        settings.database = database.to_string();
        Some(Box::new(ClickHouse::new(settings)))
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
            self.admin.execute(statement).await?;
        }
        Ok(())
    }

    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        self.rows(sql).await
    }

    fn create_table(&self, shape: Shape, table: &str) -> String {
        let t = self.quote(table);
        let engine = "ENGINE = ReplacingMergeTree() ORDER BY id";
        match shape {
            Shape::People => format!(
                "CREATE TABLE {t} (id String, email Nullable(String), name Nullable(String), age Nullable(Int32), \
                 note String DEFAULT 'default note', code Nullable(FixedString(5)), qty Nullable(UInt32)) {engine}"
            ),
            // ClickHouse has no generated keys: the cases using this shape are skipped.
            Shape::Accounts => format!(
                "CREATE TABLE {t} (id Int64, email String, name Nullable(String)) {engine}"
            ),
            Shape::Types => format!(
                "CREATE TABLE {t} (id Int64, t_text String, t_int1 Nullable(Int8), t_int2 Nullable(Int16), \
                 t_int4 Nullable(Int32), t_int8 Nullable(Int64), t_uint1 Nullable(UInt8), \
                 t_uint4 Nullable(UInt32), t_float Nullable(Float64), t_float4 Nullable(Float32), \
                 t_decimal Nullable(Decimal(38, 10)), t_date Nullable(Date), t_ts Nullable(DateTime('UTC')), \
                 t_tstz Nullable(DateTime('UTC')), t_uuid Nullable(UUID), \
                 t_enum Nullable(Enum8('free' = 1, 'pro' = 2))) {engine}"
            ),
            Shape::UuidKeyed => format!("CREATE TABLE {t} (id UUID, name Nullable(String)) {engine}"),
            Shape::IntKeyed => format!("CREATE TABLE {t} (id Int64, n Nullable(Int64)) {engine}"),
        }
    }

    fn drop_table(&self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", self.quote(table))
    }

    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('\\', "\\\\").replace('`', "\\`"))
    }

    fn text_expr(&self, column: &str, ty: &ColumnType) -> String {
        match ty {
            // The Enums of the suite number their values from 1. (ClickHouse 18.16's toString() fails on the
            // NULLs of a Nullable(Enum8) written over the native protocol, whose hidden value is 0.)
            ColumnType::Enum { values } => {
                let labels: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                format!(
                    "arrayElement([{}], CAST({} AS Nullable(Int8)))",
                    labels.join(", "),
                    self.quote(column)
                )
            }
            _ => format!("toString({})", self.quote(column)),
        }
    }

    fn expected_types(&self) -> Vec<(&'static str, Option<ColumnType>)> {
        let int = |bits, unsigned| Some(ColumnType::Int { bits, unsigned });
        vec![
            ("t_text", Some(ColumnType::Text { max_len: None })),
            ("t_int1", int(8, false)),
            ("t_int2", int(16, false)),
            ("t_int4", int(32, false)),
            ("t_int8", int(64, false)),
            ("t_uint1", int(8, true)),
            ("t_uint4", int(32, true)),
            ("t_float", Some(ColumnType::Float { bits: 64 })),
            ("t_float4", Some(ColumnType::Float { bits: 32 })),
            (
                "t_decimal",
                Some(ColumnType::Decimal {
                    precision: Some(38),
                    scale: Some(10),
                }),
            ),
            ("t_date", Some(ColumnType::Date)),
            ("t_ts", Some(ColumnType::Timestamp { with_tz: true })),
            ("t_tstz", Some(ColumnType::Timestamp { with_tz: true })),
            ("t_uuid", Some(ColumnType::Uuid)),
            (
                "t_enum",
                Some(ColumnType::Enum {
                    values: vec!["free".into(), "pro".into()],
                }),
            ),
        ]
    }

    fn too_long_message(&self) -> &'static str {
        "FixedString(5)"
    }

    fn check_violation_message(&self) -> &'static str {
        // `qty` is a UInt32: ClickHouse 18.16 has no CHECK constraints, so the type is the constraint.
        "out of range"
    }

    /// 18.16 has no `DROP VIEW`; `DROP TABLE` drops views too.
    fn drop_view(&self, view: &str) -> String {
        format!("DROP TABLE {}", self.quote(view))
    }

    fn table_ref(&self, table: &str) -> String {
        format!("{} FINAL", self.quote(table))
    }

    fn key_text_type(&self) -> ColumnType {
        ColumnType::Text { max_len: None }
    }

    fn unique_constraints(&self) -> bool {
        false
    }

    fn stored_instant(&self, instant: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // DateTime: whole seconds, from 1970.
        (instant.timestamp() >= 0)
            .then(|| DateTime::from_timestamp(instant.timestamp(), 0))
            .flatten()
    }
}

conformance_tests!(harness());

/// ClickHouse has no transactions: the late-commit case writes the late row after the first read.
#[async_trait]
impl sources::SourceHarness for Ch18 {
    fn source(&self) -> Box<dyn Source> {
        Box::new(ClickHouse::new(self.settings.clone()))
    }

    fn source_table(&self, table: &str, kind: sources::IdKind) -> String {
        let id = match kind {
            sources::IdKind::Text => "String",
            sources::IdKind::Int => "Int64",
            sources::IdKind::Uuid => "UUID",
        };
        format!(
            "CREATE TABLE {} (id {id}, email Nullable(String), age Nullable(Int32), \
             score Nullable(Decimal(10, 2)), active Nullable(UInt8), updated_at DateTime('UTC'), seq Int64, \
             attrs Nullable(String)) ENGINE = ReplacingMergeTree() ORDER BY id",
            self.quote(table)
        )
    }

    fn has_json(&self) -> bool {
        false
    }

    fn has_bool(&self) -> bool {
        false
    }

    fn unreachable(&self) -> Option<Box<dyn Source>> {
        let mut settings = self.settings.clone();
        settings.host = "127.0.0.1".into();
        settings.port = 1;
        Some(Box::new(ClickHouse::new(settings)))
    }

    fn slow_query(&self) -> Option<String> {
        Some("SELECT count() AS n FROM system.numbers".into())
    }

    async fn writing_query(&self) -> Option<String> {
        // Table functions reach outside the database (`url`, `file`, `remote`): refused read-only.
        Some("SELECT number FROM numbers(3)".into())
    }
}

source_tests!(harness());
source_tests!(guards harness());

// ---------------------------------------------------------------------------------------------------
// ClickHouse-specific cases

async fn table(h: &Ch18, ddl: &str) -> (String, Box<dyn Destination>) {
    let name = random_table_name();
    h.execute(&ddl.replace("{t}", &h.quote(&name)))
        .await
        .unwrap_or_else(|e| panic!("create table: {e}"));
    (name, h.destination())
}

fn target(dest_table: sluice_core::TableDescription, columns: &[&str], key: &str) -> WriteTarget {
    WriteTarget {
        table: dest_table,
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key: key.to_string(),
        run_version: sluice_destinations::run_version(),
    }
}

fn rows(values: Vec<Vec<Value>>) -> Vec<Row> {
    values.into_iter().map(|values| Row { values }).collect()
}

#[tokio::test]
async fn version_column_grows_with_every_run() {
    let h = harness().await;
    let (name, dest) = table(
        &h,
        "CREATE TABLE {t} (id String, name String, city String DEFAULT 'none', ver UInt64) \
         ENGINE = ReplacingMergeTree(ver) ORDER BY id",
    )
    .await;
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    assert_eq!(desc.keys, vec![vec!["id".to_string()]]);
    let first = target(desc.clone(), &["id", "name"], "id");
    dest.upsert(
        &first,
        &rows(vec![vec![s("a"), s("A1")], vec![s("b"), s("B1")]]),
    )
    .await
    .unwrap();
    // Another pipeline sets `city`; the next run of the first one must keep it.
    let cities = target(desc.clone(), &["id", "city"], "id");
    dest.upsert(&cities, &rows(vec![vec![s("a"), s("Rome")]]))
        .await
        .unwrap();
    let second = target(desc.clone(), &["id", "name"], "id");
    assert!(second.run_version > first.run_version);
    dest.upsert(&second, &rows(vec![vec![s("a"), s("A2")]]))
        .await
        .unwrap();
    let q = format!(
        "SELECT id, name, city, toString(ver) FROM {} FINAL ORDER BY id",
        h.quote(&name)
    );
    let got = h.rows(&q).await.unwrap();
    assert_eq!(
        got,
        vec![
            vec![
                Some("a".into()),
                Some("A2".into()),
                Some("Rome".into()),
                Some(second.run_version.to_string())
            ],
            vec![
                Some("b".into()),
                Some("B1".into()),
                Some("none".into()),
                Some(first.run_version.to_string())
            ],
        ]
    );
    // Versions, not updates in place: the old rows are there until a merge.
    let all = h
        .rows(&format!("SELECT count() FROM {}", h.quote(&name)))
        .await
        .unwrap();
    assert_eq!(all[0][0].as_deref(), Some("4"));
    // A mapping that sets the version column is obeyed.
    let mapped = target(desc, &["id", "name", "ver"], "id");
    dest.upsert(
        &mapped,
        &rows(vec![vec![
            s("b"),
            s("B-mapped"),
            Value::Int(u32::MAX as i64 * 1_000_000_000),
        ]]),
    )
    .await
    .unwrap();
    let got = h.rows(&q).await.unwrap();
    assert_eq!(got[1][1].as_deref(), Some("B-mapped"));
    assert_eq!(got[1][3].as_deref(), Some("4294967295000000000"));
    h.execute(&h.drop_table(&name)).await.unwrap();
}

#[tokio::test]
async fn tables_that_cannot_upsert_are_refused_with_what_to_change() {
    let h = harness().await;
    let (plain, dest) = table(
        &h,
        "CREATE TABLE {t} (id String, name String) ENGINE = MergeTree() ORDER BY id",
    )
    .await;
    let desc = dest.describe_table(&plain).await.unwrap().unwrap();
    assert!(desc.keys.is_empty());
    let rule = desc.rules.key.clone().unwrap();
    assert!(
        rule.contains("MergeTree engine") && rule.contains("ReplacingMergeTree"),
        "{rule}"
    );
    assert!(desc.issues.iter().any(|i| i.contains("ReplacingMergeTree")));
    let err = dest
        .upsert(
            &target(desc, &["id", "name"], "id"),
            &rows(vec![vec![s("a"), s("A")]]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("ReplacingMergeTree"), "{err}");

    let (composite, dest) = table(
        &h,
        "CREATE TABLE {t} (id String, region String, name String) ENGINE = ReplacingMergeTree() \
         ORDER BY (region, id)",
    )
    .await;
    let desc = dest.describe_table(&composite).await.unwrap().unwrap();
    assert!(!desc.is_unique_key("id"));
    let err = dest
        .upsert(
            &target(desc.clone(), &["id", "region"], "id"),
            &rows(vec![vec![s("a"), s("eu")]]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch);
    assert!(err.message.contains("sorting key alone"), "{err}");
    // ClickHouse 18.16 has no is_deleted: on_leave: delete is refused when saving, with the reason and
    // the version that can.
    let why = desc.rules.delete.clone().unwrap();
    assert!(
        why.contains("23.12") && why.contains("on_leave: keep"),
        "{why}"
    );
    let err = dest
        .delete(&target(desc, &["id"], "id"), &[s("a")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config);
    assert_eq!(
        h.rows(&format!("SELECT count() FROM {}", h.quote(&composite)))
            .await
            .unwrap()[0][0]
            .as_deref(),
        Some("0"),
        "nothing written"
    );
    h.execute(&h.drop_table(&plain)).await.unwrap();
    h.execute(&h.drop_table(&composite)).await.unwrap();
}

#[tokio::test]
async fn types_arrays_low_cardinality_and_unsupported() {
    let h = harness().await;
    h.execute("SET allow_experimental_low_cardinality_type = 1")
        .await
        .ok();
    let (name, dest) = table(
        &h,
        "CREATE TABLE {t} (id UInt64, ints Array(Nullable(Int32)), words Array(String), \
         nested Array(Array(UInt8)), lc LowCardinality(String), code FixedString(3), \
         price Decimal(9, 2), tier Enum16('a' = 1, 'b' = 1000), day Nullable(Date), \
         pair Tuple(UInt8, String), doubled UInt64 MATERIALIZED id * 2) \
         ENGINE = ReplacingMergeTree() ORDER BY id",
    )
    .await;
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    let ty = |c: &str| desc.column(c).unwrap().ty.clone();
    assert_eq!(
        ty("ints"),
        Some(ColumnType::Array {
            element: Box::new(ColumnType::Int {
                bits: 32,
                unsigned: false
            })
        })
    );
    assert_eq!(ty("lc"), Some(ColumnType::Text { max_len: None }));
    assert_eq!(ty("pair"), None);
    assert!(desc
        .issues
        .contains(&"column `pair` has unsupported type `Tuple(UInt8, String)`".to_string()));
    assert!(desc
        .issues
        .iter()
        .any(|i| i.contains("`doubled` is materialized")));
    let t = target(
        desc,
        &[
            "id", "ints", "words", "nested", "lc", "code", "price", "tier", "day",
        ],
        "id",
    );
    let row = vec![
        Value::Int(i64::MAX),
        Value::Array(vec![Value::Int(1), Value::Null, Value::Int(-3)]),
        Value::Array(vec![s("x, 'y'"), s("ü")]),
        Value::Array(vec![
            Value::Array(vec![Value::Int(255)]),
            Value::Array(vec![]),
        ]),
        s("repeated"),
        s("ab"),
        Value::Decimal("-1234567.89".parse().unwrap()),
        s("b"),
        Value::Null,
    ];
    dest.upsert(&t, &[Row { values: row }]).await.unwrap();
    let got = h
        .rows(&format!(
            "SELECT toString(id), toString(ints), toString(words), toString(nested), lc, \
             hex(code), toString(price), toString(tier), toString(day), \
             toString(doubled) FROM {} FINAL",
            h.quote(&name)
        ))
        .await
        .unwrap();
    assert_eq!(
        got[0],
        [
            Some(i64::MAX.to_string()),
            Some("[1,NULL,-3]".into()),
            Some("['x, \\'y\\'','ü']".into()),
            Some("[[255],[]]".into()),
            Some("repeated".into()),
            Some("616200".into()),
            Some("-1234567.89".into()),
            Some("b".into()),
            None,
            Some("18446744073709551614".into()),
        ]
    );
    // Values that do not fit are bad data for that row alone.
    let bad = |i: i64, code: &str, price: &str| Row {
        values: vec![
            Value::Int(i),
            Value::Array(vec![]),
            Value::Array(vec![]),
            Value::Array(vec![]),
            s("x"),
            s(code),
            Value::Decimal(price.parse().unwrap()),
            s("a"),
            Value::Null,
        ],
    };
    let batch = vec![
        bad(1, "ok", "1"),
        bad(2, "long", "1"),
        bad(3, "ok", "0.001"),
        bad(-4, "ok", "1"),
    ];
    let (_, rejected) = upsert_isolating(dest.as_ref(), &t, &batch).await.unwrap();
    let indexes: Vec<usize> = rejected.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [1, 2, 3], "{rejected:?}");
    assert!(rejected[0].message.contains("FixedString(3)"));
    assert!(rejected[1]
        .message
        .contains("digits after the decimal point"));
    assert!(rejected[2].message.contains("out of range"));
    h.execute(&h.drop_table(&name)).await.unwrap();
}

/// A refused value is reported by what is wrong with it, never quoting it (so that a run's errors group by
/// reason), and values of another kind convert by the pipelines' rules.
#[tokio::test]
async fn refused_values_are_not_quoted() {
    let h = harness().await;
    let (name, dest) = table(
        &h,
        "CREATE TABLE {t} (id UInt64, n Int8, u UUID, tier Enum8('free' = 1, 'pro' = 2)) \
         ENGINE = ReplacingMergeTree() ORDER BY id",
    )
    .await;
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    let t = target(desc, &["id", "n", "u", "tier"], "id");
    let row = |id: i64, n: Value, u: &str, tier: &str| Row {
        values: vec![Value::Int(id), n, s(u), s(tier)],
    };
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    let batch = vec![
        row(1, Value::Int(300), uuid, "pro"),
        row(2, Value::Int(1), "not-a-uuid-7", "pro"),
        row(3, Value::Int(1), uuid, "gold-tier"),
        row(4, s(" 42 "), uuid, "free"),
    ];
    let (_, rejected) = upsert_isolating(dest.as_ref(), &t, &batch).await.unwrap();
    let indexes: Vec<usize> = rejected.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [0, 1, 2], "{rejected:?}");
    for (r, (quoted, reason)) in rejected.iter().zip([
        ("300", "out of range for Int8"),
        ("not-a-uuid-7", "not a UUID"),
        ("gold-tier", "(free, pro)"),
    ]) {
        assert!(r.message.contains(reason), "{r:?}");
        assert!(!r.message.contains(quoted), "the value is quoted: {r:?}");
    }
    let got = h
        .rows(&format!(
            "SELECT toString(id), toString(n) FROM {} FINAL",
            h.quote(&name)
        ))
        .await
        .unwrap();
    assert_eq!(got, [[Some("4".to_string()), Some("42".to_string())]]);
    h.execute(&h.drop_table(&name)).await.unwrap();
}

#[tokio::test]
async fn tls_on_the_native_tls_port_verifies_the_server() {
    let (host, port) = split_addr(&var(TLS_VAR));
    let ca = std::fs::read_to_string(var(CA_VAR)).expect("read the CA certificate");
    let (username, password) = user();
    let base = json!({"host": host, "port": port, "username": username, "password": password, "database": "default"});
    let with = |extra: serde_json::Value| {
        let mut j = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        ClickHouse::new(ClickHouseSettings::from_json(&j).unwrap())
    };
    // Verified against the given CA; the certificate names 127.0.0.1 and localhost.
    let report = with(json!({"tls": {"ca_cert": ca}})).test().await.unwrap();
    assert!(
        report.checks[0].contains("verified certificate"),
        "{report:?}"
    );
    // Not signed by a public CA: refused when verifying without the CA.
    let err = with(json!({"tls": {"mode": "verify"}}))
        .test()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(err.message.contains("TLS"), "{err}");
    // The certificate does not name example.com.
    let err = with(json!({"tls": {"ca_cert": ca}, "tls_server_name": "example.com"}))
        .test()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    // Encrypted without verification.
    with(json!({"tls": {"mode": "require"}}))
        .test()
        .await
        .unwrap();
    // And rows go through TLS like through plain TCP.
    let h = harness().await;
    let name = random_table_name();
    h.execute(&format!(
        "CREATE TABLE {}.{} (id String, n UInt32) ENGINE = ReplacingMergeTree() ORDER BY id",
        DATABASE,
        h.quote(&name)
    ))
    .await
    .unwrap();
    let mut j = base.clone();
    j["database"] = json!(DATABASE);
    j["tls"] = json!({"ca_cert": ca});
    let dest = ClickHouse::new(ClickHouseSettings::from_json(&j).unwrap());
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    let batch: Vec<Row> = (0..100_000)
        .map(|i| Row {
            values: vec![s(&format!("k{i}")), Value::Int(i)],
        })
        .collect();
    dest.upsert(&target(desc, &["id", "n"], "id"), &batch)
        .await
        .unwrap();
    let got = h
        .rows(&format!(
            "SELECT count(), toString(sum(n)) FROM {} FINAL",
            h.quote(&name)
        ))
        .await
        .unwrap();
    assert_eq!(got[0][0].as_deref(), Some("100000"));
    assert_eq!(got[0][1].as_deref(), Some("4999950000"));
    h.execute(&h.drop_table(&name)).await.unwrap();
}

#[tokio::test]
async fn wrong_password_and_unreachable_server() {
    let mut j = settings_json();
    j["password"] = json!("certainly-wrong");
    let err = ClickHouse::new(ClickHouseSettings::from_json(&j).unwrap())
        .test()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    assert!(!err.message.contains("certainly-wrong"), "{err}");
    let mut j = settings_json();
    j["host"] = json!("127.0.0.1");
    j["port"] = json!(1);
    let err = ClickHouse::new(ClickHouseSettings::from_json(&j).unwrap())
        .test()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
}

/// Batches written unconfirmed go into one insert: the server stores nothing until the confirmation,
/// then all of it in one part. A row refused by Sluice's own checks leaves the insert as it was; any
/// other use of the destination confirms early; a failure while the insert is open is reported by the
/// confirmation, whatever happened in between.
#[tokio::test]
async fn batches_written_unconfirmed_make_one_insert() {
    let h = harness().await;
    let (name, dest) = table(
        &h,
        "CREATE TABLE {t} (id String, n Int64, ver UInt64, \
         checked UInt8 MATERIALIZED throwIf(n < 0)) \
         ENGINE = ReplacingMergeTree(ver) ORDER BY id",
    )
    .await;
    assert!(dest.capabilities().defers_confirmation);
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    let t = target(desc, &["id", "n"], "id");
    let batch = |from: i64, to: i64| {
        rows(
            (from..to)
                .map(|i| vec![s(&format!("k{i:04}")), Value::Int(i)])
                .collect(),
        )
    };
    let count = |sql: &'static str| {
        let q = sql.replace("{t}", &h.quote(&name)).replace("{name}", &name);
        let h = &h;
        async move { h.rows(&q).await.unwrap()[0][0].clone().unwrap() }
    };
    let stored = "SELECT toString(count()) FROM {t}";
    let parts = "SELECT toString(count()) FROM system.parts \
                 WHERE database = 'sluice_ch_test' AND table = '{name}' AND active";

    dest.upsert_unconfirmed(&t, &batch(0, 100)).await.unwrap();
    let bad = rows(vec![vec![s("bad"), s("not a number")]]);
    let refused = dest.upsert_unconfirmed(&t, &bad).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::BadData, "{refused:?}");
    dest.upsert_unconfirmed(&t, &batch(100, 250)).await.unwrap();
    assert_eq!(
        count(stored).await,
        "0",
        "nothing is stored before the confirmation"
    );
    dest.confirm().await.unwrap();
    assert_eq!(count(stored).await, "250");
    assert_eq!(count(parts).await, "1", "one insert, one part");
    dest.confirm().await.unwrap();

    // Describing the table (or any other call) needs the connection: the open insert is ended first.
    dest.upsert_unconfirmed(&t, &batch(250, 260)).await.unwrap();
    dest.describe_table(&name).await.unwrap().unwrap();
    assert_eq!(count(stored).await, "260");
    dest.confirm().await.unwrap();

    // The server refuses the insert only when it stores it: every row sent with it is lost, and the
    // confirmation says so, even after another call ended the insert.
    dest.upsert_unconfirmed(&t, &batch(260, 270)).await.unwrap();
    dest.upsert_unconfirmed(&t, &batch(-1, 0)).await.unwrap();
    dest.describe_table(&name).await.unwrap().unwrap();
    let lost = dest.confirm().await.unwrap_err();
    assert!(lost.message.contains("not confirmed"), "{lost:?}");
    assert!(lost.message.contains("throwIf"), "{lost:?}");
    assert_eq!(count(stored).await, "260");
    // The loss is reported once; the destination works on.
    dest.confirm().await.unwrap();
    dest.upsert_unconfirmed(&t, &batch(260, 270)).await.unwrap();
    dest.confirm().await.unwrap();
    assert_eq!(count(stored).await, "270");
    h.execute(&h.drop_table(&name)).await.unwrap();
}

/// Old servers answer `system.tables` by opening every table of the database and fail when one of them
/// is dropped meanwhile: tables created and dropped by someone else while Sluice asks for a table's
/// identity or description must not fail Sluice's question.
#[tokio::test]
async fn tables_dropped_by_others_meanwhile_do_not_fail_lookups() {
    let h = harness().await;
    let (name, dest) = table(
        &h,
        "CREATE TABLE {t} (id Int64, n Int64) ENGINE = ReplacingMergeTree() ORDER BY id",
    )
    .await;
    let churn = tokio::spawn(async move {
        let other = admin(DATABASE).await;
        for _ in 0..400 {
            let t = random_table_name();
            other
                .execute(format!(
                    "CREATE TABLE `{t}` (id Int64) ENGINE = ReplacingMergeTree() ORDER BY id"
                ))
                .await
                .unwrap();
            other.execute(format!("DROP TABLE `{t}`")).await.unwrap();
        }
    });
    let mut asked = 0;
    while !churn.is_finished() || asked < 20 {
        assert!(dest.table_identity(&name).await.unwrap().is_some());
        assert!(dest.describe_table(&name).await.unwrap().is_some());
        asked += 1;
    }
    churn.await.unwrap();
    h.execute(&h.drop_table(&name)).await.unwrap();
}
