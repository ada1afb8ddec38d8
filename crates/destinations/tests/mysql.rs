//! The conformance suite against MySQL / MariaDB, plus MySQL-specific cases: ENUM, unsigned integers,
//! TIMESTAMP time-zone conversion, strict mode under `ANSI_QUOTES`, bad values isolated with MySQL's
//! message, privileges, authentication and reachability.
//!
//! Needs a server: `SLUICE_TEST_MYSQL_URL=mysql://user[:password]@host:port/db`. Without it every test
//! here fails, naming the variable — a suite that silently passes without its server proves nothing.

mod conformance;
mod recording;
mod sources;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use conformance::{random_table_name, s, Harness, Shape};
use mysql_async::prelude::Queryable;
use sluice_core::{ColumnType, Value};
use sluice_destinations::mysql::{BulkLoad, Mysql, MysqlSettings, TlsMode};
use sluice_destinations::source::Source;
use sluice_destinations::{upsert_isolating, Destination, ErrorKind, Row, UpsertCounts};
use tokio::sync::Mutex;

const URL_VAR: &str = "SLUICE_TEST_MYSQL_URL";

struct My {
    settings: MysqlSettings,
    bulk: BulkLoad,
    admin: Mutex<mysql_async::Conn>,
}

fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{URL_VAR} is not set: these tests need a MySQL or MariaDB server, \
             e.g. export {URL_VAR}=mysql://root@127.0.0.1:3306/test"
        )
    })
}

/// The test server's settings. TLS is `require` unless chosen, and the local test servers offer none: plain
/// TCP is asked for explicitly unless the URL names a mode.
fn settings() -> MysqlSettings {
    let url = url();
    let mut s =
        MysqlSettings::from_url(&url).unwrap_or_else(|e| panic!("{URL_VAR} is not usable: {e}"));
    if !["ssl-mode=", "ssl_mode=", "sslmode=", "tls="]
        .iter()
        .any(|k| url.contains(k))
    {
        s.tls.mode = TlsMode::Disable;
    }
    s
}

async fn admin_conn(settings: &MysqlSettings) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(settings.host.clone())
        .tcp_port(settings.port)
        .user(Some(settings.username.clone()))
        .pass(settings.password.clone())
        .db_name(Some(settings.database.clone()))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts).await.unwrap_or_else(|e| {
        panic!(
            "cannot connect to the server of {URL_VAR} ({}:{}): {e}",
            settings.host, settings.port
        )
    });
    conn.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'")
        .await
        .unwrap();
    conn
}

async fn harness() -> My {
    harness_loading_with(BulkLoad::default()).await
}

async fn harness_loading_with(bulk: BulkLoad) -> My {
    let settings = settings();
    let admin = Mutex::new(admin_conn(&settings).await);
    My {
        settings,
        bulk,
        admin,
    }
}

fn cell(v: mysql_async::Value) -> Option<String> {
    match v {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).expect("UTF-8 text")),
        mysql_async::Value::Int(i) => Some(i.to_string()),
        mysql_async::Value::UInt(u) => Some(u.to_string()),
        mysql_async::Value::Float(f) => Some(f.to_string()),
        mysql_async::Value::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

#[async_trait]
impl Harness for My {
    fn destination(&self) -> Box<dyn Destination> {
        Box::new(Mysql::new(self.settings.clone()).with_bulk_load(self.bulk))
    }

    fn missing_database(&self, database: &str) -> Option<Box<dyn Destination>> {
        let mut settings = self.settings.clone();
        settings.database = database.to_string();
        Some(Box::new(Mysql::new(settings)))
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        let mut conn = self.admin.lock().await;
        for statement in sql.split(";\n").filter(|s| !s.trim().is_empty()) {
            conn.query_drop(statement).await?;
        }
        Ok(())
    }

    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let mut conn = self.admin.lock().await;
        // The text protocol answers every value as text, which is what the suite compares.
        let rows: Vec<mysql_async::Row> = conn.query(sql).await?;
        Ok(rows
            .into_iter()
            .map(|r| r.unwrap().into_iter().map(cell).collect())
            .collect())
    }

    fn create_table(&self, shape: Shape, table: &str) -> String {
        let t = self.quote(table);
        let opts = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
        match shape {
            Shape::People => format!(
                "CREATE TABLE {t} (id varchar(64) PRIMARY KEY, email varchar(255) UNIQUE, name longtext, \
                 age int, note varchar(100) NOT NULL DEFAULT 'default note', code varchar(5), \
                 qty int CHECK (qty >= 0)) {opts}"
            ),
            Shape::Accounts => format!(
                "CREATE TABLE {t} (id bigint AUTO_INCREMENT PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, \
                 name text) {opts}"
            ),
            Shape::Types => format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, t_text text NOT NULL, t_varchar varchar(20), \
                 t_int1 tinyint, t_int2 smallint, t_int4 int, t_int8 bigint, t_uint1 tinyint unsigned, \
                 t_uint4 int unsigned, t_float double, t_decimal decimal(28,10), t_bool boolean, t_date date, \
                 t_time time(6), t_ts datetime(6), t_tstz datetime(6), t_stamp timestamp(6) NULL, t_uuid uuid, \
                 t_json json, t_bytes varbinary(100), t_unique varchar(100) UNIQUE, \
                 t_enum enum('free','pro','enterprise'), t_set set('a','b')) {opts}"
            ),
            Shape::UuidKeyed => format!("CREATE TABLE {t} (id uuid PRIMARY KEY, name text) {opts}"),
            Shape::IntKeyed => format!("CREATE TABLE {t} (id bigint PRIMARY KEY, n int) {opts}"),
        }
    }

    fn drop_table(&self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", self.quote(table))
    }

    fn quote(&self, ident: &str) -> String {
        format!("`{}`", ident.replace('`', "``"))
    }

    fn text_expr(&self, column: &str, ty: &ColumnType) -> String {
        let c = self.quote(column);
        match ty {
            ColumnType::Binary => format!("LOWER(HEX({c}))"),
            ColumnType::Bool => {
                format!("CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN 'true' ELSE 'false' END")
            }
            _ => format!("CAST({c} AS CHAR)"),
        }
    }

    fn expected_types(&self) -> Vec<(&'static str, Option<ColumnType>)> {
        let int = |bits, unsigned| Some(ColumnType::Int { bits, unsigned });
        vec![
            ("t_text", Some(ColumnType::Text { max_len: None })),
            ("t_varchar", Some(ColumnType::Text { max_len: Some(20) })),
            ("t_int1", int(8, false)),
            ("t_int2", int(16, false)),
            ("t_int4", int(32, false)),
            ("t_int8", int(64, false)),
            ("t_uint1", int(8, true)),
            ("t_uint4", int(32, true)),
            ("t_float", Some(ColumnType::Float { bits: 64 })),
            (
                "t_decimal",
                Some(ColumnType::Decimal {
                    precision: Some(28),
                    scale: Some(10),
                }),
            ),
            ("t_bool", Some(ColumnType::Bool)),
            ("t_date", Some(ColumnType::Date)),
            ("t_time", Some(ColumnType::Time)),
            ("t_ts", Some(ColumnType::Timestamp { with_tz: false })),
            // MySQL's TIMESTAMP cannot hold the suite's 1969 instant: `t_tstz` is a DATETIME holding the
            // UTC wall clock, and TIMESTAMP (`t_stamp`) has its own test below.
            ("t_tstz", Some(ColumnType::Timestamp { with_tz: false })),
            ("t_stamp", Some(ColumnType::Timestamp { with_tz: true })),
            ("t_uuid", Some(ColumnType::Uuid)),
            ("t_json", Some(ColumnType::Json)),
            ("t_bytes", Some(ColumnType::Binary)),
            ("t_unique", Some(ColumnType::Text { max_len: Some(100) })),
            (
                "t_enum",
                Some(ColumnType::Enum {
                    values: vec!["free".into(), "pro".into(), "enterprise".into()],
                }),
            ),
            ("t_set", None),
        ]
    }

    fn too_long_message(&self) -> &'static str {
        "Data too long for column 'code'"
    }

    fn check_violation_message(&self) -> &'static str {
        "failed for"
    }
}

conformance_tests!(harness());

/// The whole suite again with rows loaded by multi-row inserts — the path taken when the server does
/// not allow `LOAD DATA LOCAL`.
mod with_inserts {
    use super::*;

    conformance_tests!(harness_loading_with(BulkLoad::Inserts));
}

#[async_trait]
impl sources::SourceHarness for My {
    fn source(&self) -> Box<dyn Source> {
        Box::new(Mysql::new(self.settings.clone()))
    }

    fn source_table(&self, table: &str, kind: sources::IdKind) -> String {
        let id = match kind {
            sources::IdKind::Text => "varchar(64)",
            sources::IdKind::Int => "bigint",
            sources::IdKind::Uuid => "uuid",
        };
        format!(
            "CREATE TABLE {} (id {id} PRIMARY KEY, email varchar(200), age int, score decimal(10,2), \
             active boolean, updated_at datetime(6) NOT NULL, seq bigint NOT NULL, attrs json) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            self.quote(table)
        )
    }

    /// MariaDB's JSON is `LONGTEXT` with a CHECK: a table's description finds it, a query's result
    /// metadata cannot.
    fn json_in_queries(&self) -> bool {
        false
    }

    async fn open_insert(
        &self,
        table: &str,
        id: &str,
        updated_at: chrono::DateTime<chrono::Utc>,
        seq: i64,
    ) -> Option<Box<dyn sources::OpenTransaction>> {
        let mut conn = admin_conn(&self.settings).await;
        conn.query_drop("START TRANSACTION").await.unwrap();
        conn.query_drop(format!(
            "INSERT INTO {} (id, updated_at, seq) VALUES ('{id}', '{}', {seq})",
            self.quote(table),
            updated_at.format("%Y-%m-%d %H:%M:%S")
        ))
        .await
        .unwrap();
        Some(Box::new(MyTransaction(conn)))
    }

    fn unreachable(&self) -> Option<Box<dyn Source>> {
        let mut settings = self.settings.clone();
        settings.host = "127.0.0.1".into();
        settings.port = 1;
        Some(Box::new(Mysql::new(settings)))
    }

    fn slow_query(&self) -> Option<String> {
        Some("SELECT SLEEP(30) AS slept".into())
    }

    async fn writing_query(&self) -> Option<String> {
        // A stored function may write: a SELECT calling it is refused in a read-only transaction.
        let table = random_table_name();
        let function = random_table_name();
        self.execute(&format!("CREATE TABLE `{table}` (a int)"))
            .await
            .expect("create a table");
        self.execute(&format!(
            "CREATE FUNCTION `{function}`() RETURNS INT MODIFIES SQL DATA \
             BEGIN INSERT INTO `{table}` VALUES (1); RETURN 1; END"
        ))
        .await
        .expect("create a writing function");
        Some(format!("SELECT `{function}`() AS wrote"))
    }
}

struct MyTransaction(mysql_async::Conn);

#[async_trait]
impl sources::OpenTransaction for MyTransaction {
    async fn commit(mut self: Box<Self>) -> anyhow::Result<()> {
        Ok(self.0.query_drop("COMMIT").await?)
    }
}

source_tests!(harness());
source_tests!(guards harness());

// ---------------------------------------------------------------------------------------------------
// MySQL-specific cases

fn rows(values: Vec<Vec<Value>>) -> Vec<Row> {
    values.into_iter().map(|values| Row { values }).collect()
}

/// Creates `ddl` (with `{t}` for the table name) and describes it with a fresh destination.
async fn table(h: &My, ddl: &str) -> (String, Box<dyn Destination>, sluice_core::TableDescription) {
    let name = random_table_name();
    h.execute(&ddl.replace("{t}", &format!("`{name}`")))
        .await
        .unwrap();
    let dest = h.destination();
    let desc = dest.describe_table(&name).await.unwrap().unwrap();
    (name, dest, desc)
}

fn target(
    desc: &sluice_core::TableDescription,
    columns: &[&str],
    key: &str,
) -> sluice_destinations::WriteTarget {
    sluice_destinations::WriteTarget {
        table: desc.clone(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key: key.to_string(),
        run_version: sluice_destinations::run_version(),
    }
}

#[tokio::test]
async fn test_reports_the_server_version_and_privileges() {
    let h = harness().await;
    let report = h.destination().test().await.unwrap();
    assert!(
        report.server_version.starts_with("MariaDB ")
            || report.server_version.starts_with("MySQL "),
        "{}",
        report.server_version
    );
    assert!(
        report.checks.iter().any(|c| c.contains("temporary")),
        "{:?}",
        report.checks
    );
    assert!(
        report.checks.iter().any(|c| c.contains("insert")),
        "{:?}",
        report.checks
    );
}

#[tokio::test]
async fn enum_values_are_described_and_a_bad_label_is_an_isolated_row() {
    let h = harness().await;
    let (name, dest, desc) = table(
        &h,
        "CREATE TABLE {t} (id int PRIMARY KEY, plan enum('free','pro','it''s')) DEFAULT CHARSET=utf8mb4",
    )
    .await;
    assert_eq!(
        desc.column("plan").unwrap().ty,
        Some(ColumnType::Enum {
            values: vec!["free".into(), "pro".into(), "it's".into()]
        })
    );
    let t = target(&desc, &["id", "plan"], "id");
    let batch = rows(vec![
        vec![Value::Int(1), s("pro")],
        vec![Value::Int(2), s("gold")],
        vec![Value::Int(3), s("it's")],
    ]);
    let (counts, rejected) = upsert_isolating(dest.as_ref(), &t, &batch).await.unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].index, 1);
    assert!(
        rejected[0].message.contains("plan"),
        "{}",
        rejected[0].message
    );
    let back = h
        .query(&format!(
            "SELECT id, CAST(plan AS CHAR) FROM `{name}` ORDER BY id"
        ))
        .await
        .unwrap();
    assert_eq!(back[1][1].as_deref(), Some("it's"));
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn unsigned_integers_are_described_and_negative_values_rejected() {
    let h = harness().await;
    let (name, dest, desc) = table(
        &h,
        "CREATE TABLE {t} (id bigint unsigned PRIMARY KEY, small tinyint unsigned, mid mediumint unsigned)",
    )
    .await;
    for (col, bits) in [("id", 64), ("small", 8), ("mid", 32)] {
        assert_eq!(
            desc.column(col).unwrap().ty,
            Some(ColumnType::Int {
                bits,
                unsigned: true
            }),
            "{col}"
        );
    }
    let t = target(&desc, &["id", "small", "mid"], "id");
    let batch = rows(vec![
        vec![
            Value::Int(i64::MAX),
            Value::Int(255),
            Value::Int(16_777_215),
        ],
        vec![Value::Int(1), Value::Int(-1), Value::Int(0)],
        vec![Value::Int(2), Value::Int(0), Value::Int(16_777_216)],
    ]);
    let (counts, rejected) = upsert_isolating(dest.as_ref(), &t, &batch).await.unwrap();
    assert_eq!(counts.inserted, 1);
    assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
    for r in &rejected {
        assert!(r.message.contains("Out of range value"), "{}", r.message);
    }
    let back = h
        .query(&format!("SELECT CAST(id AS CHAR), small FROM `{name}`"))
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![vec![Some(i64::MAX.to_string()), Some("255".into())]]
    );
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn timestamp_columns_store_instants_whatever_the_session_time_zone() {
    let h = harness().await;
    let (name, dest, desc) = table(
        &h,
        "CREATE TABLE {t} (id int PRIMARY KEY, at_ts timestamp(6) NULL, at_dt datetime(6))",
    )
    .await;
    assert_eq!(
        desc.column("at_ts").unwrap().ty,
        Some(ColumnType::Timestamp { with_tz: true })
    );
    let instant = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    let given = [
        "2024-03-10T02:30:00-08:00",
        "2024-10-27T02:30:00.25+02:00",
        "2037-12-31T23:59:59.999999+14:00",
    ];
    let t = target(&desc, &["id", "at_ts", "at_dt"], "id");
    let batch = rows(
        given
            .iter()
            .enumerate()
            .map(|(i, x)| {
                vec![
                    Value::Int(i as i64),
                    Value::DateTime(instant(x)),
                    Value::DateTime(instant(x)),
                ]
            })
            .collect(),
    );
    dest.upsert(&t, &batch).await.unwrap();
    // Read from a session in another time zone: TIMESTAMP converts, DATETIME is the UTC wall clock.
    let mut conn = admin_conn(&h.settings).await;
    conn.query_drop("SET time_zone = '+05:45'").await.unwrap();
    let back: Vec<(i64, String, String, String)> = conn
        .query(format!(
            "SELECT id, CAST(UNIX_TIMESTAMP(at_ts) AS CHAR), CAST(at_ts AS CHAR), CAST(at_dt AS CHAR) \
             FROM `{name}` ORDER BY id"
        ))
        .await
        .unwrap();
    for (i, x) in given.iter().enumerate() {
        let expected = instant(x);
        let (_, epoch, local, wall) = &back[i];
        let micros = expected.timestamp_micros();
        assert_eq!(
            epoch.parse::<f64>().unwrap(),
            micros as f64 / 1e6,
            "instant of {x}"
        );
        let in_nepal =
            expected.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 45 * 60).unwrap());
        assert_eq!(
            conformance::parse_instant(local),
            in_nepal.naive_local().and_utc(),
            "TIMESTAMP shown in the reader's time zone"
        );
        assert_eq!(
            conformance::parse_instant(wall),
            expected,
            "DATETIME holds the UTC wall clock"
        );
    }
    // Outside TIMESTAMP's range (1970–2038) is a bad row, with MySQL's message.
    let before_epoch = rows(vec![vec![
        Value::Int(9),
        Value::DateTime(instant("1969-07-20T20:17:40Z")),
        Value::Null,
    ]]);
    let err = dest.upsert(&t, &before_epoch).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadData, "{err}");
    assert!(err.message.contains("at_ts"), "{err}");
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn ansi_quotes_and_strict_mode() {
    let h = harness().await;
    let (name, _, desc) = table(
        &h,
        "CREATE TABLE {t} (id varchar(20) PRIMARY KEY, `we\"ird` varchar(5), n tinyint, d date, \
         e varchar(50) UNIQUE) DEFAULT CHARSET=utf8mb4",
    )
    .await;
    let dest = Mysql::new(h.settings.clone()).with_sql_mode("ANSI_QUOTES,STRICT_ALL_TABLES");
    let t = target(&desc, &["id", "we\"ird", "n", "d", "e"], "id");
    let date = |y, m, d| Value::Date(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap());
    let batch = rows(vec![
        vec![
            s("ok1"),
            s("abc"),
            Value::Int(1),
            date(2024, 2, 29),
            s("a@x"),
        ],
        vec![
            s("long"),
            s("abcdef"),
            Value::Int(1),
            Value::Null,
            Value::Null,
        ],
        vec![
            s("range"),
            s("x"),
            Value::Int(300),
            Value::Null,
            Value::Null,
        ],
        vec![
            s("date"),
            s("x"),
            Value::Int(1),
            s("2023-02-30"),
            Value::Null,
        ],
        vec![s("ok2"), s("\"q'"), Value::Null, Value::Null, s("b@x")],
    ]);
    let (counts, rejected) = upsert_isolating(&dest, &t, &batch).await.unwrap();
    assert_eq!(
        counts,
        UpsertCounts {
            inserted: 2,
            updated: 0
        }
    );
    let messages: Vec<(usize, &str)> = rejected
        .iter()
        .map(|r| (r.index, r.message.as_str()))
        .collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].1.contains("Data too long"), "{messages:?}");
    assert!(messages[1].1.contains("Out of range value"), "{messages:?}");
    assert!(
        messages[2].1.contains("Incorrect date value"),
        "{messages:?}"
    );
    // Updates and deletes work under the same modes.
    let again = rows(vec![vec![
        s("ok1"),
        s("new"),
        Value::Int(2),
        Value::Null,
        s("a@x"),
    ]]);
    assert_eq!(
        dest.upsert(&t, &again).await.unwrap(),
        UpsertCounts {
            inserted: 0,
            updated: 1
        }
    );
    assert_eq!(dest.delete(&t, &[s("ok2"), s("nope")]).await.unwrap(), 1);
    let back = h
        .query(&format!("SELECT id, `we\"ird`, n FROM `{name}`"))
        .await
        .unwrap();
    assert_eq!(
        back,
        vec![vec![
            Some("ok1".into()),
            Some("new".into()),
            Some("2".into())
        ]]
    );
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn a_server_without_strict_mode_still_refuses_bad_values() {
    let h = harness().await;
    let (name, _, desc) = table(&h, "CREATE TABLE {t} (id int PRIMARY KEY, code varchar(3))").await;
    let dest = Mysql::new(h.settings.clone()).with_sql_mode("");
    let t = target(&desc, &["id", "code"], "id");
    let err = dest
        .upsert(&t, &rows(vec![vec![Value::Int(1), s("toolong")]]))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadData, "{err}");
    assert!(err.message.contains("Data too long"), "{err}");
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn a_key_without_unique_index_is_refused() {
    let h = harness().await;
    let (name, dest, desc) = table(
        &h,
        "CREATE TABLE {t} (id int PRIMARY KEY, email varchar(200), body text, UNIQUE KEY pre (body(10)))",
    )
    .await;
    assert!(!desc.is_unique_key("email"));
    assert!(
        !desc.is_unique_key("body"),
        "a unique prefix does not make the value unique"
    );
    let err = dest
        .upsert(
            &target(&desc, &["email"], "email"),
            &rows(vec![vec![s("a@x")]]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("unique index"), "{err}");
    h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
}

#[tokio::test]
async fn user_without_privileges_is_a_permission_error() {
    let h = harness().await;
    let user = format!(
        "sluice_np_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    h.execute(&format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-123'"))
        .await
        .unwrap();
    let mut settings = h.settings.clone();
    settings.username = user.clone();
    settings.password = Some("pw-123".into());
    // Without any privilege on the database, connecting to it is refused already.
    let err = Mysql::new(settings.clone()).test().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    settings.password = Some("wrong".into());
    let err = Mysql::new(settings).test().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err}");
    h.execute(&format!("DROP USER '{user}'@'%'")).await.unwrap();
}

#[tokio::test]
async fn unreachable_port_is_unavailable_quickly() {
    let mut settings = settings();
    settings.host = "127.0.0.1".into();
    settings.port = 1;
    let started = Instant::now();
    let err = Mysql::new(settings).test().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("127.0.0.1:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `LOAD DATA`'s text format against values that look like its syntax, under `NO_BACKSLASH_ESCAPES`
/// (which changes how the server reads `'\t'` in SQL text): both ways of loading store the same bytes,
/// first straight into the table (new keys), then through the stage (taken keys).
#[tokio::test]
async fn both_bulk_loads_store_the_same_values() {
    let h = harness().await;
    let ddl = "CREATE TABLE {t} (id varchar(20) PRIMARY KEY, t text, b varbinary(50), d date, \
               dt datetime(6), tm time(6), dec_ decimal(30,10), f double, j json) DEFAULT CHARSET=utf8mb4";
    let texts = [
        "tab\there",
        "line\nbreak\r\n",
        "back\\slash\\",
        "\\N",
        "NULL",
        "",
        "nul\0byte",
        "Zoë 🎉 \"q'",
        "\\t\\n",
    ];
    let batch = |version: i64| -> Vec<Row> {
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| Row {
                values: vec![
                    s(&format!("k{i}")),
                    s(&format!("{text}{version}")),
                    Value::Bytes(vec![0, 9, 10, 13, 92, 255, i as u8, version as u8]),
                    Value::Date(
                        chrono::NaiveDate::from_ymd_opt(1969, 7, 20 + version as u32).unwrap(),
                    ),
                    Value::DateTime(
                        chrono::DateTime::parse_from_rfc3339("2024-02-29T23:59:59.123456Z")
                            .unwrap()
                            .into(),
                    ),
                    Value::Time(chrono::NaiveTime::from_hms_micro_opt(9, 5, 1, 250_000).unwrap()),
                    Value::Decimal("-123456789012345678.0123456789".parse().unwrap()),
                    Value::Float(if i % 2 == 0 { 0.1 } else { -1.5e-300 }),
                    if i == 0 {
                        Value::Null
                    } else {
                        Value::json(serde_json::json!({"text": text, "n": version}))
                    },
                ],
            })
            .collect()
    };
    let mut seen = Vec::new();
    for way in [BulkLoad::Auto, BulkLoad::Inserts] {
        let (name, _, desc) = table(&h, ddl).await;
        let dest = Mysql::new(h.settings.clone())
            .with_sql_mode("NO_BACKSLASH_ESCAPES,ANSI_QUOTES")
            .with_bulk_load(way);
        let columns = ["id", "t", "b", "d", "dt", "tm", "dec_", "f", "j"];
        let t = target(&desc, &columns, "id");
        let loads = || async {
            let v: Vec<(String, u64)> = h
                .admin
                .lock()
                .await
                .query("SHOW GLOBAL STATUS LIKE 'Com_load'")
                .await
                .unwrap();
            v[0].1
        };
        let loads_before = loads().await;
        let n = texts.len() as u64;
        let first = dest.upsert(&t, &batch(1)).await.unwrap();
        assert_eq!(
            first,
            UpsertCounts {
                inserted: n,
                updated: 0
            },
            "{way:?}"
        );
        let second = dest.upsert(&t, &batch(2)).await.unwrap();
        assert_eq!(
            second,
            UpsertCounts {
                inserted: 0,
                updated: n
            },
            "{way:?}"
        );
        if way == BulkLoad::Auto {
            // The server counts LOAD DATA statements (other sessions' too, hence at least).
            assert!(loads().await >= loads_before + 2, "LOAD DATA was not used");
        }
        let back = h
            .query(&format!(
                "SELECT id, t, LOWER(HEX(b)), CAST(d AS CHAR), CAST(dt AS CHAR), CAST(tm AS CHAR), \
                 CAST(dec_ AS CHAR), f, j FROM `{name}` ORDER BY id"
            ))
            .await
            .unwrap();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(
                back[i][1].as_deref(),
                Some(format!("{text}2").as_str()),
                "{way:?}"
            );
        }
        assert_eq!(back[0][2].as_deref(), Some("00090a0d5cff0002"), "{way:?}");
        assert_eq!(back[0][3].as_deref(), Some("1969-07-22"), "{way:?}");
        assert_eq!(
            back[0][4].as_deref(),
            Some("2024-02-29 23:59:59.123456"),
            "{way:?}"
        );
        assert_eq!(back[0][5].as_deref(), Some("09:05:01.250000"), "{way:?}");
        assert_eq!(
            back[0][6].as_deref(),
            Some("-123456789012345678.0123456789"),
            "{way:?}"
        );
        assert_eq!(back[0][8], None, "{way:?}");
        seen.push(back);
        h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
    }
    assert_eq!(
        seen[0], seen[1],
        "LOAD DATA and inserts stored different values"
    );
}

/// A batch larger than `max_allowed_packet` (in long values) loads: `LOAD DATA`'s stream goes in packets
/// under the limit, inserts split their statements.
#[tokio::test]
async fn a_batch_larger_than_max_allowed_packet_loads() {
    let h = harness().await;
    let max_packet: u64 = h.query("SELECT @@max_allowed_packet").await.unwrap()[0][0]
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let value = "é\t\\".repeat(1 << 18); // 1 MiB
    let n = (max_packet >> 20) as usize + 2;
    for way in [BulkLoad::Auto, BulkLoad::Inserts] {
        let (name, _, desc) = table(&h, "CREATE TABLE {t} (id int PRIMARY KEY, t longtext)").await;
        let dest = Mysql::new(h.settings.clone()).with_bulk_load(way);
        let t = target(&desc, &["id", "t"], "id");
        let batch: Vec<Row> = (0..n)
            .map(|i| Row {
                values: vec![Value::Int(i as i64), s(&value)],
            })
            .collect();
        let counts = dest.upsert(&t, &batch).await.unwrap();
        assert_eq!(counts.inserted, n as u64, "{way:?}");
        let counts = dest.upsert(&t, &batch).await.unwrap();
        assert_eq!(counts.updated, n as u64, "{way:?}");
        let back = h
            .query(&format!(
                "SELECT COUNT(*) FROM `{name}` WHERE t = CONCAT(REPEAT('é\\t\\\\', {}))",
                1 << 18
            ))
            .await
            .unwrap();
        assert_eq!(
            back[0][0].as_deref(),
            Some(n.to_string().as_str()),
            "{way:?}"
        );
        h.execute(&format!("DROP TABLE `{name}`")).await.unwrap();
    }
}

#[tokio::test]
async fn a_password_is_never_sent_in_cleartext() {
    let password = "never-in-clear-51c0";
    let (port, received) = recording::mysql_switching_to_cleartext().await;
    let fake = |mode: &str| {
        Mysql::new(
            MysqlSettings::from_json(&serde_json::json!({
                "host": "127.0.0.1", "port": port, "username": "app", "password": password,
                "database": "crm", "tls": {"mode": mode}, "connect_timeout_secs": 5
            }))
            .unwrap(),
        )
    };
    // `require` (the default) refuses a server without TLS before logging in.
    let err = fake("require").test().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("does not support TLS"), "{err}");
    // On plain TCP (`prefer` falls back to it, `disable` asks for it) the switch to the cleartext
    // plugin is refused.
    for mode in ["prefer", "disable"] {
        let err = fake(mode).test().await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Auth, "{mode}: {err}");
        assert!(err.message.contains("cleartext plugin"), "{mode}: {err}");
    }
    let seen = String::from_utf8_lossy(&received.lock().unwrap()).into_owned();
    assert!(
        seen.contains("app"),
        "the login reached the server: {seen:?}"
    );
    assert!(
        !seen.contains(password),
        "the password reached the server: {seen:?}"
    );
}
