//! The conformance suite against a Snowflake-protocol server, plus Snowflake-specific cases: key-pair
//! login, the connection test naming what fails, deduplication of keys within a batch, statements counted
//! per batch, VARIANT values.
//!
//! Needs a server speaking Snowflake's connector protocol: `SLUICE_TEST_SNOWFLAKE_URL=http://127.0.0.1:58085`
//! (`scripts/services.sh start snowflake` runs fakesnow behind its JSON shim there). Without it every test
//! here fails, naming the variable.
//!
//! That server runs fakesnow on DuckDB; its shim (`scripts/fakesnow_json.py`) makes it behave as Snowflake
//! where Sluice depends on it: PRIMARY KEY and UNIQUE are recorded but not enforced, a MERGE joining a
//! target row to two source rows fails with 100090, Sluice's sessions (login name `…_strict`) refuse
//! quoted names whose case differs, and `inf` binds are refused. It also answers "still running", splits
//! results into chunks, expires session tokens and injects HTTP 429/5xx answers and protocol errors when a
//! test asks for them, so those paths are tested here. What it cannot prove is covered by unit tests in
//! `src/snowflake/`: it accepts any password or JWT (the JWT's claims, fingerprint and RS256 signature are
//! checked in `auth`) or S3 signature (checked in `client/upload.rs` against botocore's); its stages answer
//! as an S3 internal stage with moto behind it (`SLUICE_TEST_S3_URL`), and it decrypts what Sluice
//! uploads. DuckDB enforces the suite's CHECK constraints, which stand in for Snowflake's VARCHAR length
//! limit.

mod conformance;
mod sources;

use async_trait::async_trait;
use conformance::{random_table_name, s, Harness, Shape};
use serde_json::{json, Value as Json};
use sluice_core::{ColumnType, Value};
use sluice_destinations::snowflake::{Snowflake, SnowflakeSettings};
use sluice_destinations::source::Source;
use sluice_destinations::{Destination, ErrorKind, Row, UpsertCounts, WriteTarget};
use tokio::sync::OnceCell;

const URL_VAR: &str = "SLUICE_TEST_SNOWFLAKE_URL";
const DATABASE: &str = "SLUICE_TEST";

fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: these tests need a Snowflake-protocol server, e.g. \
             `eval \"$(scripts/services.sh start snowflake)\"` (fakesnow), which sets {URL_VAR}=http://127.0.0.1:58085"
        )
    })
}

fn settings_json() -> Json {
    json!({
        "account": "sluice-test",
        // The test server holds sessions of a `…_strict` login name to Snowflake's identifier rules.
        "username": "sluice_strict",
        "password": "not checked by the test server",
        "role": "SLUICE_ROLE",
        "database": DATABASE,
        "schema": "PUBLIC",
        "warehouse": "SLUICE_WH",
        "base_url": url(),
    })
}

fn settings() -> SnowflakeSettings {
    SnowflakeSettings::from_json(&settings_json()).expect("valid settings")
}

/// A direct client of the server for setting up and reading back, independent of Sluice's client.
struct Sf {
    http: reqwest::Client,
    token: String,
}

static DATABASE_READY: OnceCell<()> = OnceCell::const_new();

impl Sf {
    async fn login(database: Option<&str>) -> Sf {
        // The test server speaks plain HTTP, but reqwest wants a TLS provider all the same.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let mut login = format!("{}/session/v1/login-request?schemaName=PUBLIC", url());
        if let Some(db) = database {
            login.push_str(&format!("&databaseName={db}"));
        }
        let doc: Json = http
            .post(login)
            .json(&json!({"data": {"LOGIN_NAME": "admin", "PASSWORD": "x", "SESSION_PARAMETERS": {}}}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot reach the server of {URL_VAR}: {e}"))
            .json()
            .await
            .expect("a login answer");
        let token = doc["data"]["token"]
            .as_str()
            .expect("a session token")
            .to_string();
        Sf { http, token }
    }

    async fn run(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let doc: Json = self
            .http
            .post(format!("{}/queries/v1/query-request", url()))
            .header(
                "Authorization",
                format!("Snowflake Token=\"{}\"", self.token),
            )
            .json(&json!({"sqlText": sql, "sequenceId": 1}))
            .send()
            .await?
            .json()
            .await?;
        if doc["success"].as_bool() != Some(true) {
            anyhow::bail!("{sql}: {} ({})", doc["message"], doc["code"]);
        }
        Ok(doc["data"]["rowset"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| match c {
                        Json::Null => None,
                        Json::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                    .collect()
            })
            .collect())
    }
}

async fn harness() -> Sf {
    DATABASE_READY
        .get_or_init(|| async {
            let sf = Sf::login(None).await;
            sf.run(&format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"))
                .await
                .unwrap();
            sf.run(&format!("CREATE SCHEMA IF NOT EXISTS {DATABASE}.PUBLIC"))
                .await
                .unwrap();
        })
        .await;
    Sf::login(Some(DATABASE)).await
}

fn qualified(table: &str) -> String {
    format!("{DATABASE}.PUBLIC.\"{}\"", table.replace('"', "\"\""))
}

#[async_trait]
impl Harness for Sf {
    fn destination(&self) -> Box<dyn Destination> {
        Box::new(Snowflake::new(settings()))
    }

    fn reports_missing_databases_exactly(&self) -> bool {
        false
    }

    fn missing_database(&self, database: &str) -> Option<Box<dyn Destination>> {
        let mut settings = settings();
        settings.database = database.to_string();
        Some(Box::new(Snowflake::new(settings)))
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
            self.run(statement).await?;
        }
        Ok(())
    }

    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        self.run(sql).await
    }

    fn create_table(&self, shape: Shape, table: &str) -> String {
        let t = qualified(table);
        match shape {
            // Snowflake itself would take `code VARCHAR(5)` alone and refuse longer values; the test server's
            // DuckDB ignores VARCHAR lengths, so a CHECK stands in for it (and for the CHECK on qty, which
            // Snowflake does not have).
            Shape::People => format!(
                "CREATE TABLE {t} (\"id\" VARCHAR(64) PRIMARY KEY, \"email\" VARCHAR UNIQUE, \"name\" VARCHAR, \
                 \"age\" NUMBER(38,0), \"note\" VARCHAR NOT NULL DEFAULT 'default note', \
                 \"code\" VARCHAR(5) CHECK (LENGTH(\"code\") <= 5), \"qty\" NUMBER(38,0) CHECK (\"qty\" >= 0))"
            ),
            Shape::Accounts => format!(
                "CREATE TABLE {t} (\"id\" NUMBER(38,0) AUTOINCREMENT PRIMARY KEY, \"email\" VARCHAR NOT NULL UNIQUE, \
                 \"name\" VARCHAR)"
            ),
            Shape::Types => format!(
                "CREATE TABLE {t} (\"id\" NUMBER(38,0) PRIMARY KEY, \"t_text\" VARCHAR NOT NULL, \
                 \"t_varchar\" VARCHAR(20), \"t_int\" NUMBER(38,0), \"t_float\" FLOAT, \
                 \"t_decimal\" NUMBER(38,10), \"t_bool\" BOOLEAN, \"t_date\" DATE, \"t_time\" TIME, \
                 \"t_ts\" TIMESTAMP_NTZ, \"t_tstz\" TIMESTAMP_TZ, \"t_json\" VARIANT, \"t_object\" OBJECT, \
                 \"t_bytes\" BINARY, \"t_unique\" VARCHAR(100) UNIQUE)"
            ),
            Shape::UuidKeyed => {
                format!("CREATE TABLE {t} (\"id\" VARCHAR(36) PRIMARY KEY, \"name\" VARCHAR)")
            }
            Shape::IntKeyed => format!(
                "CREATE TABLE {t} (\"id\" NUMBER(38,0) PRIMARY KEY, \"n\" NUMBER(38,0))"
            ),
        }
    }

    fn drop_table(&self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", qualified(table))
    }

    fn quote(&self, ident: &str) -> String {
        // Reads go through the fully qualified name.
        if ident.starts_with("sluice_t_") {
            qualified(ident)
        } else {
            format!("\"{}\"", ident.replace('"', "\"\""))
        }
    }

    fn text_expr(&self, column: &str, ty: &ColumnType) -> String {
        let c = format!("\"{}\"", column.replace('"', "\"\""));
        match ty {
            ColumnType::Binary => format!("LOWER(HEX_ENCODE({c}))"),
            ColumnType::Bool => {
                format!("CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN 'true' ELSE 'false' END")
            }
            ColumnType::Json => format!("TO_JSON({c})"),
            _ => format!("CAST({c} AS VARCHAR)"),
        }
    }

    fn expected_types(&self) -> Vec<(&'static str, Option<ColumnType>)> {
        vec![
            ("t_text", Some(ColumnType::Text { max_len: None })),
            ("t_varchar", Some(ColumnType::Text { max_len: Some(20) })),
            (
                "t_int",
                Some(ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                }),
            ),
            ("t_float", Some(ColumnType::Float { bits: 64 })),
            (
                "t_decimal",
                Some(ColumnType::Decimal {
                    precision: Some(38),
                    scale: Some(10),
                }),
            ),
            ("t_bool", Some(ColumnType::Bool)),
            ("t_date", Some(ColumnType::Date)),
            ("t_time", Some(ColumnType::Time)),
            ("t_ts", Some(ColumnType::Timestamp { with_tz: false })),
            ("t_tstz", Some(ColumnType::Timestamp { with_tz: true })),
            ("t_json", Some(ColumnType::Json)),
            ("t_object", Some(ColumnType::Json)),
            ("t_bytes", Some(ColumnType::Binary)),
            ("t_unique", Some(ColumnType::Text { max_len: Some(100) })),
        ]
    }

    fn too_long_message(&self) -> &'static str {
        "CHECK constraint failed"
    }

    fn check_violation_message(&self) -> &'static str {
        "CHECK constraint failed"
    }

    fn enforces_unique_constraints(&self) -> bool {
        false
    }
}

conformance_tests!(harness());

/// The test server answers one statement at a time: the late-commit case writes the late row after the
/// first read instead of holding a transaction open.
impl sources::SourceHarness for Sf {
    fn source(&self) -> Box<dyn Source> {
        Box::new(Snowflake::new(settings()))
    }

    fn source_table(&self, table: &str, kind: sources::IdKind) -> String {
        let id = match kind {
            sources::IdKind::Text => "VARCHAR(64)",
            sources::IdKind::Int => "NUMBER(38,0)",
            sources::IdKind::Uuid => "VARCHAR(36)",
        };
        format!(
            "CREATE TABLE {} (\"id\" {id} PRIMARY KEY, \"email\" VARCHAR, \"age\" NUMBER(38,0), \
             \"score\" NUMBER(10,2), \"active\" BOOLEAN, \"updated_at\" TIMESTAMP_NTZ NOT NULL, \
             \"seq\" NUMBER(38,0) NOT NULL, \"attrs\" VARIANT)",
            qualified(table)
        )
    }

    fn unreachable(&self) -> Option<Box<dyn Source>> {
        let mut settings = settings_json();
        settings["base_url"] = json!("http://127.0.0.1:1");
        Some(Box::new(Snowflake::new(
            SnowflakeSettings::from_json(&settings).expect("valid settings"),
        )))
    }
}

source_tests!(harness());

// ---------------------------------------------------------------------------------------------------
// Snowflake-specific cases

const ENCRYPTED_KEY: &str = include_str!("../src/snowflake/testdata/test_key_encrypted.p8");

#[tokio::test]
async fn key_pair_login() {
    let _h = harness().await;
    let mut json = settings_json();
    let o = json.as_object_mut().unwrap();
    o.remove("password");
    o.insert("private_key".into(), json!(ENCRYPTED_KEY));
    o.insert("private_key_passphrase".into(), json!("sluice-test"));
    let dest = sluice_destinations::open("snowflake", &json).expect("valid key-pair settings");
    let report = dest.test().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.server_version.starts_with("Snowflake"), "{report:?}");
    assert!(report
        .checks
        .iter()
        .any(|c| c.contains("warehouse SLUICE_WH")));
    assert_eq!(
        dest.describe_table(&random_table_name()).await.unwrap(),
        None
    );

    // A wrong passphrase is a settings error naming the field, before any connection.
    o_set(&mut json, "private_key_passphrase", json!("wrong"));
    let e = sluice_destinations::open("snowflake", &json).err().unwrap();
    assert!(e.get("private_key_passphrase").is_some(), "{e}");
}

fn o_set(json: &mut Json, k: &str, v: Json) {
    json.as_object_mut().unwrap().insert(k.into(), v);
}

#[tokio::test]
async fn connection_test_names_the_database_that_fails() {
    let _h = harness().await;
    let mut json = settings_json();
    o_set(&mut json, "database", json!("SLUICE_NO_SUCH_DB"));
    let dest = sluice_destinations::open("snowflake", &json).unwrap();
    let e = dest.test().await.expect_err("the database does not exist");
    assert!(
        e.message.contains("cannot use database SLUICE_NO_SUCH_DB"),
        "{e}"
    );
    assert!(e.message.contains("GRANT USAGE ON DATABASE"), "{e}");
}

#[tokio::test]
async fn unreachable_server_is_unavailable() {
    let mut json = settings_json();
    o_set(&mut json, "base_url", json!("http://127.0.0.1:9"));
    let dest = sluice_destinations::open("snowflake", &json).unwrap();
    let e = dest.test().await.expect_err("nothing listens there");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.kind.is_transient());
}

#[tokio::test]
async fn duplicate_keys_in_a_batch_keep_the_last_row() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::People).await;
    let t = f.target(&["id", "name"], "id");
    let counts = f
        .upsert(
            &t,
            vec![
                vec![s("a"), s("first")],
                vec![s("b"), s("B")],
                vec![s("a"), s("last")],
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
    let rows = f.read(&["id", "name"], "id").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("a".into()), Some("last".into())],
            vec![Some("b".into()), Some("B".into())]
        ]
    );
    f.finish().await;
}

#[tokio::test]
async fn statements_per_batch_are_counted() {
    let h = harness().await;
    let table = random_table_name();
    h.execute(&h.create_table(Shape::IntKeyed, &table))
        .await
        .unwrap();
    let dest = Snowflake::new(settings()).inserts_only();
    let desc = dest.describe_table(&table).await.unwrap().unwrap();
    let after_describe = dest.statements();
    // DESCRIBE TABLE plus SHOW PRIMARY KEYS and SHOW UNIQUE KEYS: metadata only, no warehouse.
    assert_eq!(after_describe, 3);
    let target = WriteTarget {
        table: desc,
        columns: vec!["id".into(), "n".into()],
        key: "id".into(),
        run_version: sluice_destinations::run_version(),
    };
    let rows = |n: i64| -> Vec<Row> {
        (0..40_000)
            .map(|i| Row {
                values: vec![Value::Int(i), Value::Int(n)],
            })
            .collect()
    };
    assert_eq!(
        dest.upsert(&target, &rows(1)).await.unwrap(),
        UpsertCounts {
            inserted: 40_000,
            updated: 0
        }
    );
    let first = dest.statements() - after_describe;
    // First batch: the stage is checked (3 metadata statements) and created, the table checked for
    // duplicate keys (once per run), 40,000 rows go in 3 INSERTs of at most 16,384 rows, then BEGIN,
    // MERGE, COMMIT.
    assert_eq!(first, 3 + 1 + 1 + 3 + 3, "statements of the first batch");
    assert_eq!(
        dest.upsert(&target, &rows(2)).await.unwrap(),
        UpsertCounts {
            inserted: 0,
            updated: 40_000
        }
    );
    // Later batches: TRUNCATE the stage, the INSERTs, BEGIN, MERGE, COMMIT.
    assert_eq!(dest.statements() - after_describe - first, 1 + 3 + 3);
    // Nothing to write: nothing sent.
    let before = dest.statements();
    dest.upsert(&target, &[]).await.unwrap();
    dest.delete(&target, &[]).await.unwrap();
    assert_eq!(dest.statements(), before);
    assert!(sluice_destinations::snowflake::statements_sent() >= dest.statements());

    // Through a stage file: PUT and COPY replace the INSERTs, whatever the batch size.
    let dest = Snowflake::new(settings());
    let target = WriteTarget {
        table: dest.describe_table(&table).await.unwrap().unwrap(),
        ..target
    };
    let start = dest.statements();
    assert_eq!(
        dest.upsert(&target, &rows(3)).await.unwrap(),
        UpsertCounts {
            inserted: 0,
            updated: 40_000
        }
    );
    assert_eq!(
        dest.statements() - start,
        3 + 1 + 1 + 2 + 3,
        "stage checked and created, duplicates checked, PUT, COPY, BEGIN, MERGE, COMMIT"
    );
    let more: Vec<Row> = (30_000..45_000)
        .map(|i| Row {
            values: vec![Value::Int(i), Value::Int(4)],
        })
        .collect();
    let start = dest.statements();
    assert_eq!(
        dest.upsert(&target, &more).await.unwrap(),
        UpsertCounts {
            inserted: 5_000,
            updated: 10_000
        }
    );
    assert_eq!(dest.statements() - start, 1 + 2 + 3);
    let back = h
        .query(&format!(
            "SELECT COUNT(*), SUM(\"n\") FROM {}",
            qualified(&table)
        ))
        .await
        .unwrap();
    assert_eq!(back[0][0].as_deref(), Some("45000"));
    let sum: f64 = back[0][1].as_deref().unwrap().parse().unwrap();
    assert_eq!(sum, (30_000 * 3 + 15_000 * 4) as f64);
    h.execute(&h.drop_table(&table)).await.unwrap();
}

/// The conformance cases with large batches, loaded with inserts only (the suite itself takes the stage
/// path for them).
#[tokio::test]
async fn large_batches_with_inserts_only() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::Types).await;
    let dest = Snowflake::new(settings()).inserts_only();
    let writable: Vec<(&str, ColumnType)> = h
        .expected_types()
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| (n, t)))
        .collect();
    let mut columns = vec!["id"];
    columns.extend(writable.iter().map(|(n, _)| *n));
    let t = f.target(&columns, "id");
    let rows: Vec<Row> = (0..3000)
        .map(|i| {
            let mut values = vec![Value::Int(i)];
            values.extend(writable.iter().map(|(n, ty)| {
                if *n == "t_unique" {
                    s(&format!("u{i}"))
                } else {
                    conformance::sample(ty)
                }
            }));
            Row { values }
        })
        .collect();
    assert_eq!(dest.upsert(&t, &rows).await.unwrap().inserted, 3000);
    let by_file = Snowflake::new(settings());
    assert_eq!(by_file.upsert(&t, &rows).await.unwrap().updated, 3000);
    let back = f.read(&columns, "id").await;
    for (i, (name, ty)) in writable.iter().enumerate() {
        conformance::assert_same(&h, name, ty, &rows[2999].values[i + 1], &back[2999][i + 1]);
    }
    f.finish().await;
}

#[tokio::test]
async fn variant_values_round_trip() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::Types).await;
    let t = f.target(&["id", "t_text", "t_json"], "id");
    let docs = [
        json!({"nested": {"list": [1, "two", null]}, "quote": "it's \"here\""}),
        json!([1, 2, 3]),
        json!("just a string"),
        json!(42.5),
    ];
    let rows = docs
        .iter()
        .enumerate()
        .map(|(i, d)| vec![Value::Int(i as i64), s("x"), Value::json(d.clone())])
        .collect();
    f.upsert(&t, rows).await;
    let back = f.read(&["t_json"], "id").await;
    for (i, d) in docs.iter().enumerate() {
        let got: Json = serde_json::from_str(back[i][0].as_deref().unwrap()).unwrap();
        assert_eq!(&got, d);
    }
    // The same documents again change nothing.
    let rows: Vec<Vec<Value>> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| vec![Value::Int(i as i64), s("x"), Value::json(d.clone())])
        .collect();
    assert_eq!(f.upsert(&t, rows).await.got.inserted, 0);
    f.finish().await;
}

#[tokio::test]
async fn polls_running_statements_and_fetches_result_chunks() {
    use sluice_destinations::snowflake::client::Connection;
    let _h = harness().await;
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    // The test server answers "still running" (333334) and splits the rows into chunks when asked to.
    let sql =
        "SELECT x, 'row ' || x AS label FROM (VALUES (1), (2), (3), (4), (5)) v(x) ORDER BY x \
               /* fakesnow:in-progress */ /* fakesnow:chunks */";
    let r = conn.run(&mut session, sql, &[], true).await.unwrap();
    let got: Vec<(String, String)> = r
        .rows
        .iter()
        .map(|row| (row[0].clone().unwrap(), row[1].clone().unwrap()))
        .collect();
    let expected: Vec<(String, String)> = (1..=5)
        .map(|i| (i.to_string(), format!("row {i}")))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn logs_in_again_when_the_session_is_gone() {
    use sluice_destinations::snowflake::client::Connection;
    let _h = harness().await;
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    session.invalidate_token();
    // A statement that does not depend on the session's state is sent again after logging in.
    let r = conn.run(&mut session, "SELECT 1", &[], true).await.unwrap();
    assert_eq!(r.rows[0][0].as_deref(), Some("1"));
    // One that does (staging, a transaction) fails as transient: the caller retries the whole batch.
    session.invalidate_token();
    let e = conn
        .run(&mut session, "SELECT 2", &[], false)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("logged in again"), "{e}");
    let r = conn
        .run(&mut session, "SELECT 3", &[], false)
        .await
        .unwrap();
    assert_eq!(r.rows[0][0].as_deref(), Some("3"));
}

#[tokio::test]
async fn renews_an_expired_session_token() {
    use sluice_destinations::snowflake::client::Connection;
    let h = harness().await;
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    // A temporary table lives as long as the session: still there after the renewal, so the session was
    // kept, not replaced by a new login.
    let table = format!("renew_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    conn.run(
        &mut session,
        &format!("CREATE TEMPORARY TABLE {table} (n INT)"),
        &[],
        false,
    )
    .await
    .unwrap();
    // The test server answers "session token expired" (390112) once for this statement.
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let sql = format!("SELECT COUNT(*) FROM {table} /* fakesnow:expire-token {marker} */");
    let r = conn.run(&mut session, &sql, &[], false).await.unwrap();
    assert_eq!(r.rows[0][0].as_deref(), Some("0"));
    let _ = h;
}

/// A pipeline names columns and its key as its user writes them in Snowflake SQL: unquoted names match
/// whatever their case, quoted ones exactly. The table is described, and rows written, under the names
/// Snowflake stores. (The test server matches names case-insensitively itself, so the SQL it receives
/// cannot prove the stored names are used, and its DuckDB cannot hold two names that differ only in case:
/// the unit tests of `TableDescription::resolve_column`, `WriteTarget::checked` and the mapping's columns
/// cover both.)
#[tokio::test]
async fn columns_and_key_named_as_in_snowflake_sql() {
    use sluice_core::mapping::CompiledMapping;
    use sluice_core::pipeline::indexmap_like::OrderedMap;
    use sluice_core::{IdentifierCase, Profile, Schema};

    let h = harness().await;
    let t = random_table_name();
    h.run(&format!(
        "CREATE TABLE {} (customer_id VARCHAR(64) PRIMARY KEY, full_name VARCHAR, \"MixedCase\" VARCHAR, \
         email VARCHAR)",
        qualified(&t)
    ))
    .await
    .unwrap();
    let dest = h.destination();
    let desc = dest.describe_table(&t).await.unwrap().unwrap();
    // Shown as Snowflake stores them: unquoted names upper-cased, quoted ones as written.
    let stored: Vec<&str> = desc.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(stored, ["CUSTOMER_ID", "FULL_NAME", "MixedCase", "EMAIL"]);
    assert_eq!(desc.keys, [["CUSTOMER_ID"]]);
    assert_eq!(desc.rules.identifiers, IdentifierCase::UnquotedInsensitive);

    // The key as a user writes it finds the primary key.
    let key = desc.resolve_column("customer_id").unwrap();
    assert!(desc.is_unique_key(&key.name));
    assert!(desc.resolve_column("\"customer_id\"").is_err());
    assert!(desc.resolve_column("\"mixedcase\"").is_err());

    let wire = serde_json::from_value(json!({"properties": [
        {"name": "name", "type": "string"}, {"name": "mail", "type": "string"}
    ]}))
    .unwrap();
    let schema = Schema::from_wire(&wire).unwrap();
    let mapping = |pairs: &[(&str, &str)]| {
        OrderedMap(
            pairs
                .iter()
                .map(|(c, e)| (c.to_string(), e.to_string()))
                .collect(),
        )
    };
    let compiled = CompiledMapping::compile(
        &mapping(&[
            ("customer_id", "_id"),
            ("Full_Name", "name"),
            ("\"MixedCase\"", "'m'"),
            ("Email", "mail"),
        ]),
        &schema,
        &desc,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        compiled.columns,
        ["CUSTOMER_ID", "FULL_NAME", "MixedCase", "EMAIL"]
    );
    let profile = |id: &str, name: &str| Profile {
        id: id.into(),
        updated_at: chrono::Utc::now(),
        doc: json!({"name": name, "mail": format!("{id}@example.com")})
            .as_object()
            .unwrap()
            .clone(),
    };
    let rows = |names: &[(&str, &str)]| -> Vec<Row> {
        names
            .iter()
            .map(|(id, name)| Row {
                values: compiled
                    .eval(&profile(id, name), chrono::Utc::now())
                    .unwrap(),
            })
            .collect()
    };
    // What a run does: the mapping's columns, and the key as the pipeline spells it.
    let target = WriteTarget {
        table: desc.clone(),
        columns: compiled.columns.clone(),
        key: "customer_id".into(),
        run_version: sluice_destinations::run_version(),
    };
    assert_eq!(target.key_index(), 0);
    let read = || async {
        h.run(&format!(
            "SELECT \"CUSTOMER_ID\", \"FULL_NAME\", \"MixedCase\", \"EMAIL\" FROM {} ORDER BY 1",
            qualified(&t)
        ))
        .await
        .unwrap()
    };
    let counts = dest
        .upsert(&target, &rows(&[("a", "Ada"), ("b", "Bob")]))
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (2, 0));
    let counts = dest
        .upsert(&target, &rows(&[("a", "Ada L."), ("c", "Cy")]))
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (1, 1));
    let row = |id: &str, name: &str| {
        vec![
            Some(id.to_string()),
            Some(name.to_string()),
            Some("m".to_string()),
            Some(format!("{id}@example.com")),
        ]
    };
    assert_eq!(
        read().await,
        [row("a", "Ada L."), row("b", "Bob"), row("c", "Cy")]
    );
    assert_eq!(dest.delete(&target, &[s("b")]).await.unwrap(), 1);
    assert_eq!(read().await, [row("a", "Ada L."), row("c", "Cy")]);
    h.run(&format!("DROP TABLE {}", qualified(&t)))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Keys Snowflake does not enforce, and the failures of a real service (injected by the test server)

/// Asks the test server for a fault (see `FAULTS` in scripts/fakesnow_json.py).
async fn inject(fault: Json) {
    let answer = reqwest::Client::new()
        .post(format!("{}/fakesnow/faults", url()))
        .json(&fault)
        .send()
        .await
        .expect("the test server takes faults");
    assert!(answer.status().is_success());
}

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[tokio::test]
async fn keys_are_compared_as_the_number_column_compares_them() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::IntKeyed).await;
    let t = f.target(&["id", "n"], "id");
    // 1, "1" and 1.0 are one NUMBER key: the last row wins, and the MERGE meets no duplicate source row.
    let counts = f
        .upsert(
            &t,
            vec![
                vec![Value::Int(1), Value::Int(10)],
                vec![s("1"), Value::Int(11)],
                vec![Value::Int(2), Value::Int(20)],
                vec![Value::Float(1.0), Value::Int(12)],
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
    let rows = f.read(&["id", "n"], "id").await;
    assert_eq!(
        rows,
        vec![
            vec![Some("1".into()), Some("12".into())],
            vec![Some("2".into()), Some("20".into())]
        ]
    );
    // What the dedup spares the MERGE: the server refuses a source holding one key twice, as Snowflake does.
    let q = qualified(&f.table);
    let err = h
        .run(&format!(
            "MERGE INTO {q} t USING (SELECT 1 AS \"id\", 5 AS \"n\" UNION ALL SELECT 1, 6) s ON t.\"id\" = s.\"id\" \
             WHEN MATCHED THEN UPDATE SET \"n\" = s.\"n\""
        ))
        .await
        .expect_err("a nondeterministic MERGE");
    assert!(err.to_string().contains("100090"), "{err}");
    f.finish().await;
}

#[tokio::test]
async fn duplicate_keys_already_in_the_target_are_refused() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::IntKeyed).await;
    let q = qualified(&f.table);
    // Another writer stored keys twice: Snowflake (and the test server) let it.
    h.run(&format!(
        "INSERT INTO {q} (\"id\", \"n\") VALUES (7, 1), (7, 2), (8, 1), (9, 1), (9, 2), (9, 3)"
    ))
    .await
    .unwrap();
    let t = f.target(&["id", "n"], "id");
    let err = f
        .dest
        .upsert(
            &t,
            &[Row {
                values: vec![Value::Int(7), Value::Int(100)],
            }],
        )
        .await
        .expect_err("the table holds duplicate keys");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(
        err.message
            .contains("already holds 2 key(s) of column `id` more than once"),
        "{err}"
    );
    assert!(
        err.message.contains("\"9\" (3 rows), \"7\" (2 rows)"),
        "{err}"
    );
    assert_eq!(f.count().await, 6, "nothing written");
    // Repaired by its owner, the table is written again (the next run checks again).
    h.run(&format!("DELETE FROM {q} WHERE \"n\" > 1"))
        .await
        .unwrap();
    let t = WriteTarget {
        run_version: t.run_version + 1,
        ..t
    };
    let counts = f
        .dest
        .upsert(
            &t,
            &[Row {
                values: vec![Value::Int(7), Value::Int(100)],
            }],
        )
        .await
        .unwrap();
    assert_eq!((counts.inserted, counts.updated), (0, 1));
    f.finish().await;
}

#[tokio::test]
async fn strict_identifiers_refuse_a_name_in_another_case() {
    use sluice_destinations::snowflake::client::Connection;
    let h = harness().await;
    let table = unique_name("strict");
    h.run(&format!("CREATE TABLE {} (\"id\" INT)", qualified(&table)))
        .await
        .unwrap();
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    let q = qualified(&table);
    conn.run(&mut session, &format!("SELECT \"id\" FROM {q}"), &[], true)
        .await
        .unwrap();
    let e = conn
        .run(&mut session, &format!("SELECT \"ID\" FROM {q}"), &[], true)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::SchemaMismatch, "{e}");
    assert!(e.message.contains("invalid identifier '\"ID\"'"), "{e}");
    let upper = qualified(&table.to_uppercase());
    let e = conn
        .run(
            &mut session,
            &format!("SELECT \"id\" FROM {upper}"),
            &[],
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    h.run(&format!("DROP TABLE {q}")).await.unwrap();
}

#[tokio::test]
async fn infinities_and_nan_are_bound_as_snowflake_reads_them() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::Types).await;
    let t = f.target(&["id", "t_text", "t_float"], "id");
    let values = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 2.5];
    let rows = values
        .iter()
        .enumerate()
        .map(|(i, v)| vec![Value::Int(i as i64), s("x"), Value::Float(*v)])
        .collect();
    f.upsert(&t, rows).await;
    let back = f.read(&["t_float"], "id").await;
    for (i, v) in values.iter().enumerate() {
        let got: f64 = back[i][0].as_deref().unwrap().parse().unwrap();
        assert!(got == *v || (got.is_nan() && v.is_nan()), "{got} for {v}");
    }
    f.finish().await;
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_in_the_same_session() {
    use sluice_destinations::snowflake::client::Connection;
    let _h = harness().await;
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    // A temporary table lives as long as its session: still there after the retries, so they kept it.
    let table = unique_name("retry");
    conn.run(
        &mut session,
        &format!("CREATE TEMPORARY TABLE {table} (n INT)"),
        &[],
        false,
    )
    .await
    .unwrap();
    inject(json!({"sql_contains": format!("INSERT INTO {table} VALUES (1)"), "http_status": 503, "times": 2}))
        .await;
    inject(json!({"sql_contains": format!("INSERT INTO {table} VALUES (2)"), "http_status": 429, "times": 1,
                  "retry_after": 1}))
        .await;
    // This one runs, and its answer is lost: sent again with the same requestId, it is not run twice.
    inject(json!({"sql_contains": format!("INSERT INTO {table} VALUES (3)"), "http_status": 502, "times": 1,
                  "after": true}))
        .await;
    let started = std::time::Instant::now();
    for n in 1..=3 {
        conn.run(
            &mut session,
            &format!("INSERT INTO {table} VALUES ({n})"),
            &[],
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("insert {n}: {e}"));
    }
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    let r = conn
        .run(
            &mut session,
            &format!("SELECT n, COUNT(*) FROM {table} GROUP BY n ORDER BY n"),
            &[],
            false,
        )
        .await
        .unwrap();
    let got: Vec<(String, String)> = r
        .rows
        .iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    let once = |n: &str| (n.to_string(), "1".to_string());
    assert_eq!(got, [once("1"), once("2"), once("3")]);
    // An error that lasts is given up on, as unavailable.
    inject(json!({"sql_contains": format!("SELECT 'down' FROM {table}"), "http_status": 503, "times": 100}))
        .await;
    let e = conn
        .run(
            &mut session,
            &format!("SELECT 'down' FROM {table}"),
            &[],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(e.message.contains("HTTP 503"), "{e}");
}

#[tokio::test]
async fn a_token_renewed_while_polling_never_runs_the_statement_twice() {
    use sluice_destinations::snowflake::client::Connection;
    let _h = harness().await;
    let conn = Connection::new(settings(), Default::default()).unwrap();
    let mut session = conn.login(true).await.unwrap();
    let table = unique_name("poll_renew");
    conn.run(
        &mut session,
        &format!("CREATE TEMPORARY TABLE {table} (n INT)"),
        &[],
        false,
    )
    .await
    .unwrap();
    // "Still running", then "session token expired" on the first poll of the result.
    inject(json!({"sql_contains": format!("INSERT INTO {table}"), "expire_while_polling": true}))
        .await;
    conn.run(
        &mut session,
        &format!("INSERT INTO {table} VALUES (1)"),
        &[],
        false,
    )
    .await
    .unwrap();
    let r = conn
        .run(
            &mut session,
            &format!("SELECT COUNT(*) FROM {table}"),
            &[],
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.rows[0][0].as_deref(), Some("1"), "the INSERT ran once");
}

#[tokio::test]
async fn a_statement_past_its_timeout_is_aborted() {
    use sluice_destinations::snowflake::client::Connection;
    let _h = harness().await;
    let conn = Connection::new(settings(), Default::default())
        .unwrap()
        .with_statement_timeout(std::time::Duration::from_secs(1));
    let mut session = conn.login(true).await.unwrap();
    let marker = unique_name("endless");
    inject(json!({"sql_contains": marker, "never_finishes": true})).await;
    let sql = format!("SELECT '{marker}'");
    let started = std::time::Instant::now();
    let e = conn.run(&mut session, &sql, &[], true).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("aborted"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let aborted: Json = reqwest::get(format!("{}/fakesnow/aborted", url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        aborted["aborted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["sqlText"] == sql && a["requestId"].as_str().is_some_and(|r| !r.is_empty())),
        "{aborted}"
    );
}

#[tokio::test]
async fn a_failed_put_falls_back_to_inserts() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::IntKeyed).await;
    let login = unique_name("putfail");
    let mut json = settings_json();
    o_set(&mut json, "username", json!(login));
    let dest = Snowflake::new(SnowflakeSettings::from_json(&json).unwrap());
    // Every PUT of this login fails, as a PUT does when the stage's storage is unreachable.
    inject(
        json!({"sql_contains": "PUT ", "login_name": login, "times": 100, "error_code": "253006",
                  "message": "File doesn't exist: upload failed"}),
    )
    .await;
    let t = WriteTarget {
        table: dest.describe_table(&f.table).await.unwrap().unwrap(),
        ..f.target(&["id", "n"], "id")
    };
    let rows: Vec<Row> = (0..5_000)
        .map(|i| Row {
            values: vec![Value::Int(i), Value::Int(1)],
        })
        .collect();
    let counts = dest.upsert(&t, &rows).await.unwrap();
    assert_eq!(counts.inserted, 5_000);
    assert_eq!(f.count().await, 5_000);
    f.finish().await;
}

#[tokio::test]
async fn a_session_dropped_after_a_failure_is_logged_out() {
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::IntKeyed).await;
    let login = unique_name("dropped");
    let mut json = settings_json();
    o_set(&mut json, "username", json!(login));
    let dest = Snowflake::new(SnowflakeSettings::from_json(&json).unwrap());
    let t = WriteTarget {
        table: dest.describe_table(&f.table).await.unwrap().unwrap(),
        ..f.target(&["id", "n"], "id")
    };
    // The MERGE inside the batch's transaction keeps failing with 503: the session is given up.
    inject(json!({"sql_contains": "MERGE INTO", "login_name": login, "http_status": 503, "times": 100}))
        .await;
    let before: Json = reqwest::get(format!("{}/fakesnow/logged-out", url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let e = dest
        .upsert(
            &t,
            &[Row {
                values: vec![Value::Int(1), Value::Int(1)],
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    let after: Json = reqwest::get(format!("{}/fakesnow/logged-out", url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        after["logged_out"].as_u64() > before["logged_out"].as_u64(),
        "{before} → {after}"
    );
    assert_eq!(f.count().await, 0);
    f.finish().await;
}

/// The stage path as real accounts take it: the test server answers a PUT as Snowflake does for an
/// internal stage on S3 (temporary credentials, `encryptionMaterial`), Sluice uploads to the S3-protocol
/// server (moto) encrypted on the client, and the COPY reads the file back only once the test server has
/// decrypted it with the stage master key (and checked its digest).
#[tokio::test]
async fn stage_files_go_to_s3_encrypted_on_the_client() {
    let s3 = std::env::var("SLUICE_TEST_S3_URL").unwrap_or_else(|_| {
        panic!(
            "SLUICE_TEST_S3_URL is not set: the stage path needs the S3-protocol server that \
             `scripts/services.sh start snowflake` starts behind the test server"
        )
    });
    let h = harness().await;
    let f = conformance::Fixture::new(&h, Shape::IntKeyed).await;
    let t = f.target(&["id", "n"], "id");
    let rows: Vec<Row> = (0..3_000)
        .map(|i| Row {
            values: vec![Value::Int(i), Value::Int(i * 2)],
        })
        .collect();
    let dest = Snowflake::new(settings());
    let counts = dest.upsert(&t, &rows).await.unwrap();
    assert_eq!(counts.inserted, 3_000);
    // Describe, create the stage, check duplicates, PUT, COPY, BEGIN, MERGE, COMMIT: no INSERT, so the
    // rows came through the file.
    assert_eq!(dest.statements(), 3 + 1 + 1 + 2 + 3);
    assert_eq!(f.count().await, 3_000);
    let back = f.read(&["id", "n"], "id").await;
    assert_eq!(back[2_999], [Some("2999".into()), Some("5998".into())]);
    // What reached S3 is not the gzip file itself: it is encrypted, and carries the wrapped key.
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0";
    let http = reqwest::Client::new();
    let listing = http
        .get(format!("{s3}/sluice-stage?list-type=2&prefix=stages/"))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = listing
        .split("<Key>")
        .nth(1)
        .and_then(|k| k.split("</Key>").next())
        .expect("an uploaded stage file");
    let object = http
        .get(format!("{s3}/sluice-stage/{key}"))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert!(object.headers().contains_key("x-amz-meta-x-amz-key"));
    assert!(object.headers().contains_key("x-amz-meta-x-amz-iv"));
    let body = object.bytes().await.unwrap();
    assert!(!body.starts_with(&[0x1f, 0x8b]), "not plain gzip");
    assert_eq!(body.len() % 16, 0, "AES-CBC blocks");
    f.finish().await;
}
