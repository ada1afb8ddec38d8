//! Source runs against every database a source reads — PostgreSQL, MariaDB, ClickHouse, the
//! Snowflake-protocol test server and SQLite — into the embedded stores: each scenario is written once
//! against the small `Src` harness and expanded for each database. Tables are named `src_…` in a schema
//! (PostgreSQL), database (MariaDB, ClickHouse, Snowflake) or file (SQLite) of the test's own.
//!
//! ClickHouse is the server of the other tests (18.16), read over the native protocol; a current
//! ClickHouse (chDB, in-process) has no server for a source to read from: the statements a ClickHouse
//! source sends are run on it by `sluice-destinations`' `clickhouse_statements` test.
//!
//! Late commits: PostgreSQL and MariaDB hold the earlier row's transaction open while a later one
//! commits. ClickHouse has no transactions, SQLite one writer at a time and the Snowflake test server
//! one statement at a time: there the earlier row is written after the first run, which is the same
//! case to the reader (a row whose cursor is below the greatest one read appears after the read), and
//! the lookback covers both.

use serde_json::{json, Value};
use sluice_core::schema::SchemaWire;
use sluice_core::source::SourceSpec;
use sluice_core::Schema;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{DestinationRecord, RunRecord, RunStatus, SecretBox, SourceRecord};

/// The column types of the scenarios' tables, as each database spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// The id column: text, not NULL, the table's key.
    Key,
    Text,
    Int,
    /// A timestamp, not NULL (the cursor).
    Time,
}

/// A transaction a scenario holds open, to commit later.
#[async_trait::async_trait]
trait Open: Send {
    async fn commit(self: Box<Self>);
}

/// A source database the scenarios set up and change.
#[async_trait::async_trait]
trait Src: Send + Sync {
    fn kind(&self) -> &'static str;
    fn settings(&self) -> Value;
    /// A column type of the database.
    fn ty(&self, ty: Ty) -> &'static str;
    /// The DDL of a table whose first column is its key.
    fn create(&self, table: &str, columns: &[(&str, Ty)]) -> String {
        let columns: Vec<String> = columns
            .iter()
            .map(|(name, ty)| format!("{name} {}", self.ty(*ty)))
            .collect();
        format!(
            "CREATE TABLE {table} ({}, PRIMARY KEY ({}))",
            columns.join(", "),
            columns[0].split(' ').next().unwrap()
        )
    }
    /// A table's name as a query source writes it (a query is not qualified by the connection's schema).
    fn qualified(&self, table: &str) -> String;
    async fn exec(&self, sql: &str);
    /// Changes rows in place (ClickHouse has no `UPDATE` statement).
    async fn update(&self, table: &str, set: &str, filter: &str) {
        self.exec(&format!("UPDATE {table} SET {set} WHERE {filter}"))
            .await;
    }
    async fn delete(&self, table: &str, filter: &str) {
        self.exec(&format!("DELETE FROM {table} WHERE {filter}"))
            .await;
    }
    /// Runs `sql` in a transaction left open; `None` where the database has no transactions that a
    /// test can hold open while another commits (ClickHouse has none; SQLite has one writer at a time;
    /// the Snowflake test server runs one statement at a time).
    async fn open(&self, _sql: &str) -> Option<Box<dyn Open>> {
        None
    }
}

struct PgSrc {
    url: String,
    schema: String,
}

impl PgSrc {
    async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO \"{}\"", self.schema))
            .await
            .unwrap();
        c
    }
}

struct PgOpen(tokio_postgres::Client);

#[async_trait::async_trait]
impl Open for PgOpen {
    async fn commit(self: Box<Self>) {
        self.0.batch_execute("COMMIT").await.unwrap();
    }
}

#[async_trait::async_trait]
impl Src for PgSrc {
    fn kind(&self) -> &'static str {
        "postgresql"
    }
    fn settings(&self) -> Value {
        let mut s =
            sluice_destinations::postgres::PostgresSettings::json_from_url(&self.url).unwrap();
        s["schema"] = json!(self.schema);
        s["tls"] = json!({"mode": "disable"});
        s
    }
    fn ty(&self, ty: Ty) -> &'static str {
        match ty {
            Ty::Key => "varchar(20) NOT NULL",
            Ty::Text => "varchar(100)",
            Ty::Int => "integer",
            Ty::Time => "timestamptz NOT NULL",
        }
    }
    fn qualified(&self, table: &str) -> String {
        format!("\"{}\".{table}", self.schema)
    }
    async fn exec(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }
    async fn open(&self, sql: &str) -> Option<Box<dyn Open>> {
        let c = self.client().await;
        c.batch_execute(&format!("BEGIN; {sql}")).await.unwrap();
        Some(Box::new(PgOpen(c)))
    }
}

async fn pg_src() -> Box<dyn Src> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL").expect(
        "SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)",
    );
    let schema = format!("src_{}", uuid::Uuid::new_v4().simple());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    Box::new(PgSrc { url, schema })
}

struct MySrc {
    settings: sluice_destinations::mysql::MysqlSettings,
}

impl MySrc {
    async fn conn(&self) -> mysql_async::Conn {
        use mysql_async::prelude::Queryable;
        let s = &self.settings;
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(s.host.clone())
            .tcp_port(s.port)
            .user(Some(s.username.clone()))
            .pass(s.password.clone())
            .db_name(Some(s.database.clone()))
            .prefer_socket(false);
        let mut c = mysql_async::Conn::new(opts).await.unwrap();
        c.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'")
            .await
            .unwrap();
        c
    }
}

struct MyOpen(mysql_async::Conn);

#[async_trait::async_trait]
impl Open for MyOpen {
    async fn commit(self: Box<Self>) {
        use mysql_async::prelude::Queryable;
        let mut c = self.0;
        c.query_drop("COMMIT").await.unwrap();
        c.disconnect().await.unwrap();
    }
}

#[async_trait::async_trait]
impl Src for MySrc {
    fn kind(&self) -> &'static str {
        "mysql"
    }
    fn settings(&self) -> Value {
        let s = &self.settings;
        json!({"host": s.host, "port": s.port, "username": s.username, "password": s.password,
               "database": s.database, "tls": {"mode": "disable"}})
    }
    fn ty(&self, ty: Ty) -> &'static str {
        match ty {
            Ty::Key => "varchar(20) NOT NULL",
            Ty::Text => "varchar(100)",
            Ty::Int => "integer",
            Ty::Time => "DATETIME(6) NOT NULL",
        }
    }
    fn qualified(&self, table: &str) -> String {
        table.to_string()
    }
    async fn exec(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        let mut c = self.conn().await;
        c.query_drop(sql).await.unwrap();
        c.disconnect().await.unwrap();
    }
    async fn open(&self, sql: &str) -> Option<Box<dyn Open>> {
        use mysql_async::prelude::Queryable;
        let mut c = self.conn().await;
        c.query_drop("START TRANSACTION").await.unwrap();
        c.query_drop(sql).await.unwrap();
        Some(Box::new(MyOpen(c)))
    }
}

/// Drops a test's MariaDB database when the test ends, passed or failed.
struct DropDatabase {
    admin: sluice_destinations::mysql::MysqlSettings,
    database: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin = MySrc {
            settings: self.admin.clone(),
        };
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.database);
        let _ = std::thread::spawn(move || {
            use mysql_async::prelude::Queryable;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let mut conn = admin.conn().await;
                let _ = conn.query_drop(sql).await;
                let _ = conn.disconnect().await;
            })
        })
        .join();
    }
}

async fn mysql_src() -> (Box<dyn Src>, DropDatabase) {
    use mysql_async::prelude::Queryable;
    let url = std::env::var("SLUICE_TEST_MYSQL_URL").expect(
        "SLUICE_TEST_MYSQL_URL must name a MySQL or MariaDB server for these tests (scripts/services.sh starts one)",
    );
    let mut settings = sluice_destinations::mysql::MysqlSettings::from_url(&url).unwrap();
    if !url.contains("ssl") {
        settings.tls.mode = sluice_destinations::mysql::config::TlsMode::Disable;
    }
    let admin = MySrc {
        settings: settings.clone(),
    };
    let database = format!("src_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let mut conn = admin.conn().await;
    conn.query_drop(format!(
        "CREATE DATABASE `{database}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .unwrap();
    let _ = conn.disconnect().await;
    let cleanup = DropDatabase {
        admin: settings.clone(),
        database: database.clone(),
    };
    settings.database = database;
    (Box::new(MySrc { settings }), cleanup)
}

/// A database of its own per test on the ClickHouse server: Sluice reads it over the native protocol,
/// the test sets it up over HTTP (which takes `INSERT … VALUES` as text).
struct ChSrc {
    native: String,
    http: String,
    user: String,
    password: String,
    database: String,
}

impl ChSrc {
    async fn query(&self, sql: &str) -> String {
        let answer = reqwest::Client::new()
            .post(&self.http)
            .query(&[
                ("database", self.database.as_str()),
                ("user", self.user.as_str()),
                ("password", self.password.as_str()),
            ])
            .body(sql.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot reach SLUICE_TEST_CLICKHOUSE_HTTP: {e}"));
        let ok = answer.status().is_success();
        let text = answer.text().await.unwrap();
        assert!(ok, "{sql}: {text}");
        text
    }
}

#[async_trait::async_trait]
impl Src for ChSrc {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }
    fn settings(&self) -> Value {
        let (host, port) = self.native.rsplit_once(':').unwrap();
        json!({"host": host, "port": port, "username": self.user, "password": self.password,
            "database": self.database})
    }
    fn ty(&self, ty: Ty) -> &'static str {
        match ty {
            Ty::Key => "String",
            Ty::Text => "Nullable(String)",
            Ty::Int => "Nullable(Int64)",
            Ty::Time => "DateTime('UTC')",
        }
    }
    /// A plain `MergeTree`: a source reads a table as it is, and the versions a `ReplacingMergeTree`
    /// keeps until it merges would be rows of their own.
    fn create(&self, table: &str, columns: &[(&str, Ty)]) -> String {
        let list: Vec<String> = columns
            .iter()
            .map(|(name, ty)| format!("{name} {}", self.ty(*ty)))
            .collect();
        format!(
            "CREATE TABLE {table} ({}) ENGINE = MergeTree() ORDER BY {}",
            list.join(", "),
            columns[0].0
        )
    }
    fn qualified(&self, table: &str) -> String {
        format!("{}.{table}", self.database)
    }
    async fn exec(&self, sql: &str) {
        self.query(sql).await;
    }
    /// A mutation, waited for: ClickHouse applies it in the background. 18.16 does not convert a
    /// string assigned to a `DateTime` by itself.
    async fn update(&self, table: &str, set: &str, filter: &str) {
        let set: Vec<String> = set
            .split(", ")
            .map(|a| match a.strip_prefix("updated_at = ") {
                Some(v) => format!("updated_at = toDateTime({v}, 'UTC')"),
                None => a.to_string(),
            })
            .collect();
        self.exec(&format!(
            "ALTER TABLE {table} UPDATE {} WHERE {filter}",
            set.join(", ")
        ))
        .await;
        self.mutated(table).await;
    }
    async fn delete(&self, table: &str, filter: &str) {
        self.exec(&format!("ALTER TABLE {table} DELETE WHERE {filter}"))
            .await;
        self.mutated(table).await;
    }
}

impl ChSrc {
    async fn mutated(&self, table: &str) {
        let sql = format!(
            "SELECT count() FROM system.mutations WHERE database = '{}' AND table = '{table}' AND is_done = 0",
            self.database
        );
        for _ in 0..500 {
            if self.query(&sql).await.trim() == "0" {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the mutations of {table} did not finish");
    }
}

async fn clickhouse_src() -> Box<dyn Src> {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} must name a ClickHouse server for these tests (scripts/services.sh starts one)")
        })
    };
    let src = ChSrc {
        native: var("SLUICE_TEST_CLICKHOUSE_NATIVE"),
        http: var("SLUICE_TEST_CLICKHOUSE_HTTP"),
        user: std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        password: std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
        database: "default".into(),
    };
    let database = format!("src_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    src.exec(&format!("CREATE DATABASE {database}")).await;
    Box::new(ChSrc { database, ..src })
}

/// A database of its own per test on the Snowflake-protocol server, set up through Sluice's own client
/// (the protocol is all that server speaks).
struct SfSrc {
    url: String,
    database: String,
}

impl SfSrc {
    fn settings_for(url: &str, database: &str) -> Value {
        json!({"account": "sluice-test", "username": "sluice", "password": "x", "database": database,
               "schema": "PUBLIC", "warehouse": "SLUICE_WH", "base_url": url})
    }

    async fn run(&self, database: Option<&str>, sql: &str) {
        use sluice_destinations::snowflake::{client::Connection, SnowflakeSettings};
        let settings = SnowflakeSettings::from_json(&Self::settings_for(
            &self.url,
            database.unwrap_or("SLUICE_TEST"),
        ))
        .unwrap();
        let conn = Connection::new(settings, Default::default()).unwrap();
        let mut session = conn.login(database.is_some()).await.unwrap();
        conn.run(&mut session, sql, &[], true)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[async_trait::async_trait]
impl Src for SfSrc {
    fn kind(&self) -> &'static str {
        "snowflake"
    }
    fn settings(&self) -> Value {
        Self::settings_for(&self.url, &self.database)
    }
    fn ty(&self, ty: Ty) -> &'static str {
        match ty {
            Ty::Key => "VARCHAR(20) NOT NULL",
            Ty::Text => "VARCHAR(100)",
            Ty::Int => "NUMBER(38,0)",
            Ty::Time => "TIMESTAMP_NTZ NOT NULL",
        }
    }
    /// Names in double quotes, stored in lower case as the scenarios write them. (Unquoted, Snowflake
    /// stores them upper-cased, and a mapping must then name `EMAIL`: only the id and cursor columns
    /// are found whatever their case.)
    fn create(&self, table: &str, columns: &[(&str, Ty)]) -> String {
        let list: Vec<String> = columns
            .iter()
            .map(|(name, ty)| format!("\"{name}\" {}", self.ty(*ty)))
            .collect();
        format!(
            "CREATE TABLE {table} ({}, PRIMARY KEY (\"{}\"))",
            list.join(", "),
            columns[0].0
        )
    }
    fn qualified(&self, table: &str) -> String {
        format!("{}.PUBLIC.{table}", self.database)
    }
    async fn exec(&self, sql: &str) {
        self.run(Some(&self.database), sql).await;
    }
}

async fn snowflake_src() -> Box<dyn Src> {
    let url = std::env::var("SLUICE_TEST_SNOWFLAKE_URL").expect(
        "SLUICE_TEST_SNOWFLAKE_URL must name a Snowflake-protocol server for these tests \
         (scripts/services.sh start snowflake runs one)",
    );
    let database =
        format!("SRC_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]).to_uppercase();
    let src = SfSrc { url, database };
    src.run(None, &format!("CREATE DATABASE {}", src.database))
        .await;
    src.run(
        None,
        &format!("CREATE SCHEMA IF NOT EXISTS {}.PUBLIC", src.database),
    )
    .await;
    Box::new(src)
}

/// A database file of its own per test.
struct LiteSrc {
    dir: tempfile::TempDir,
}

impl LiteSrc {
    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("source.sqlite")
    }
}

#[async_trait::async_trait]
impl Src for LiteSrc {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn settings(&self) -> Value {
        json!({"path": self.path().to_string_lossy()})
    }
    fn ty(&self, ty: Ty) -> &'static str {
        match ty {
            Ty::Key => "TEXT NOT NULL",
            Ty::Text => "TEXT",
            Ty::Int => "INTEGER",
            Ty::Time => "TIMESTAMP NOT NULL",
        }
    }
    fn qualified(&self, table: &str) -> String {
        table.to_string()
    }
    async fn exec(&self, sql: &str) {
        let c = rusqlite::Connection::open(self.path()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute_batch(sql).unwrap();
    }
}

fn sqlite_src() -> Box<dyn Src> {
    Box::new(LiteSrc {
        dir: tempfile::tempdir().unwrap(),
    })
}

fn model() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "orders", "type": "int"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

struct World {
    engine: Engine,
    src: Box<dyn Src>,
    connection: String,
    _dir: tempfile::TempDir,
}

async fn world(src: Box<dyn Src>) -> World {
    world_paged(src, Some(64)).await
}

/// A world reading pages of `page_rows` rows (`None`: the engine's default).
async fn world_paged(src: Box<dyn Src>, page_rows: Option<usize>) -> World {
    world_with(
        src,
        EngineConfig {
            batch_size: page_rows,
            write_attempts: 2,
            ..EngineConfig::default()
        },
    )
    .await
}

async fn world_with(src: Box<dyn Src>, config: EngineConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let secrets = SecretBox::load_or_create(dir.path()).unwrap();
    let meta = sluice_store::open_metadata(None, dir.path(), secrets)
        .await
        .unwrap();
    let profiles = sluice_store::open_profiles(None, dir.path()).await.unwrap();
    meta.put_schema(&model()).await.unwrap();
    let engine = Engine::new(meta.clone(), profiles, config);
    let now = chrono::Utc::now();
    let connection = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "crm".into(),
        kind: src.kind().into(),
        settings: src.settings(),
        created_at: now,
        updated_at: now,
    };
    meta.insert_destination(&connection).await.unwrap();
    World {
        engine,
        src,
        connection: connection.id,
        _dir: dir,
    }
}

impl World {
    /// A `src_customers` table of `n` rows `c001…`, all with one `updated_at` (equal cursors across
    /// every page boundary).
    async fn customers(&self, n: usize) {
        let ddl = self.src.create(
            "src_customers",
            &[
                ("id", Ty::Key),
                ("email", Ty::Text),
                ("country", Ty::Text),
                ("city", Ty::Text),
                ("ltv", Ty::Text),
                ("updated_at", Ty::Time),
            ],
        );
        self.src.exec(&ddl).await;
        let values: Vec<String> = (1..=n)
            .map(|i| {
                format!(
                    "('c{i:03}', 'User{i}@Example.com', 'IT', 'Rome', '{i}.50', '2026-12-01 10:00:00')"
                )
            })
            .collect();
        self.src
            .exec(&format!(
                "INSERT INTO src_customers (id, email, country, city, ltv, updated_at) VALUES {}",
                values.join(", ")
            ))
            .await;
    }

    async fn source(&self, extra: Value) -> String {
        let spec = self.spec(extra);
        let now = chrono::Utc::now();
        let rec = SourceRecord {
            id: sluice_engine::new_id("src"),
            spec,
            created_at: now,
            updated_at: now,
        };
        self.engine.meta().insert_source(&rec).await.unwrap();
        rec.id
    }

    fn spec(&self, extra: Value) -> SourceSpec {
        let mut spec = json!({
            "connection": self.connection, "name": format!("s-{}", uuid::Uuid::new_v4()),
            "table": "src_customers", "id_column": "id",
            "transformation": {"mapping": {"email": "lower(email)", "country": "country",
                                           "address.city": "city", "ltv": "ltv"}},
            "changes": {"mode": "cursor", "column": "updated_at"},
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(spec).unwrap()
    }

    async fn run(&self, source: &str) -> RunRecord {
        let run = self.engine.start_source(source, "manual").await.unwrap();
        let done = self.engine.wait(&run.id, |_| {}).await.unwrap();
        // What the API reads back is what the run ended with.
        assert_eq!(
            self.engine.meta().get_run(&run.id).await.unwrap().as_ref(),
            Some(&done)
        );
        done
    }

    async fn profile(&self, id: &str) -> Option<Value> {
        self.engine
            .profiles()
            .get(id)
            .await
            .unwrap()
            .map(|p| Value::Object(p.doc))
    }
}

fn succeeded(run: &RunRecord) {
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "{:?} {:?}",
        run.message,
        run.errors
    );
}

async fn cursor_reads_then_rereads_nothing_changed(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(150).await;
    let s = w.source(json!({})).await;
    let first = w.run(&s).await;
    succeeded(&first);
    assert_eq!(first.counts.read, 150, "each row once across equal cursors");
    assert_eq!(first.counts.inserted, 150);
    assert_eq!(first.counts.failed, 0, "{:?}", first.errors);
    assert_eq!(
        w.profile("c007").await.unwrap(),
        json!({"email": "user7@example.com", "country": "IT", "address": {"city": "Rome"}, "ltv": "7.50"})
    );
    // Rows inside the lookback are read again, and written nowhere.
    let again = w.run(&s).await;
    succeeded(&again);
    assert_eq!(again.counts.inserted + again.counts.updated, 0);
    assert_eq!(again.counts.unchanged, again.counts.read);
    // A changed row is written, and only its properties.
    w.src
        .update(
            "src_customers",
            "city = 'Milan', updated_at = '2026-12-01 10:00:05'",
            "id = 'c042'",
        )
        .await;
    let third = w.run(&s).await;
    succeeded(&third);
    assert_eq!(third.counts.updated, 1, "{:?}", third.counts);
    assert_eq!(
        w.profile("c042").await.unwrap()["address"],
        json!({"city": "Milan"})
    );
}

async fn late_commit_inside_the_lookback_is_read(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(3).await;
    // Two transactions: the earlier `updated_at` is written first and committed last.
    let late = "INSERT INTO src_customers VALUES ('c100', 'late@example.com', 'FR', 'Lyon', '1.00', '2026-12-01 10:00:08')";
    let open = w.src.open(late).await;
    w.src
        .update(
            "src_customers",
            "updated_at = '2026-12-01 10:00:10'",
            "id = 'c003'",
        )
        .await;
    let s = w.source(json!({})).await;
    let first = w.run(&s).await;
    succeeded(&first);
    assert_eq!(first.counts.inserted, 3, "the open transaction is not seen");
    // Without transactions to hold open, the late row appears after the run all the same: to the
    // reader, a row that took its timestamp before the greatest one read and became visible after the
    // run is the same case, and the lookback covers both.
    match open {
        Some(tx) => tx.commit().await,
        None => w.src.exec(late).await,
    }
    let run = w.run(&s).await;
    succeeded(&run);
    assert_eq!(run.counts.inserted, 1, "{:?}", run.counts);
    assert_eq!(
        w.profile("c100").await.unwrap()["email"],
        json!("late@example.com")
    );
    // Outside the lookback it would not be: the mark trails the greatest cursor by the lookback only.
    let mark = w.engine.meta().source_mark(&s).await.unwrap();
    let greatest = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:10Z").unwrap();
    assert_eq!(
        mark,
        Some(sluice_core::source::CursorValue::Time(
            greatest.to_utc() - sluice_core::source::DEFAULT_TIME_LOOKBACK
        )),
    );
}

async fn a_query_source_reads_by_cursor(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(150).await;
    let t = w.src.qualified("src_customers");
    let query = format!(
        "SELECT id AS customer, email, updated_at AS changed FROM {t} WHERE country = 'IT'"
    );
    let s = w
        .source(
            json!({"table": null, "query": query, "id_column": "customer",
                       "transformation": {"mapping": {"email": "email"}},
                       "changes": {"mode": "cursor", "column": "changed"}}),
        )
        .await;
    let first = w.run(&s).await;
    succeeded(&first);
    assert_eq!(
        (first.counts.read, first.counts.inserted),
        (150, 150),
        "each row once across equal cursors: {:?}",
        first.errors
    );
    w.src
        .update(
            "src_customers",
            "email = 'moved@example.com', updated_at = '2026-12-01 12:00:00'",
            "id = 'c150'",
        )
        .await;
    let second = w.run(&s).await;
    succeeded(&second);
    assert_eq!(second.counts.updated, 1, "{:?}", second.counts);
    assert_eq!(
        w.profile("c150").await.unwrap()["email"],
        json!("moved@example.com")
    );
    // The mark moved past the rows of 10:00: the next run reads only what is inside the lookback.
    let third = w.run(&s).await;
    succeeded(&third);
    assert_eq!(
        (third.counts.read, third.counts.unchanged),
        (1, 1),
        "{:?}",
        third.counts
    );
}

async fn full_mode_deletes_or_keeps_missing_rows(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(100).await;
    let del = w
        .source(json!({"changes": {"mode": "full", "on_missing": "delete"}}))
        .await;
    let first = w.run(&del).await;
    succeeded(&first);
    assert_eq!(first.counts.inserted, 100);
    let again = w.run(&del).await;
    succeeded(&again);
    assert_eq!(
        (
            again.counts.read,
            again.counts.unchanged,
            again.counts.updated
        ),
        (100, 100, 0)
    );
    w.src
        .delete("src_customers", "id IN ('c010', 'c090')")
        .await;
    let after = w.run(&del).await;
    succeeded(&after);
    assert_eq!(after.counts.deleted, 2, "{:?}", after.counts);
    assert_eq!(w.profile("c010").await, None);
    assert!(w.profile("c011").await.is_some());
    // `keep` leaves the profile of a vanished row alone.
    let keep = w
        .source(json!({"changes": {"mode": "full", "on_missing": "keep"}, "transformation": {"mapping": {"orders": "1"}}}))
        .await;
    succeeded(&w.run(&keep).await);
    w.src.delete("src_customers", "id = 'c020'").await;
    let kept = w.run(&keep).await;
    succeeded(&kept);
    assert_eq!(kept.counts.deleted, 0);
    assert_eq!(w.profile("c020").await.unwrap()["orders"], json!(1));
    // The deleting source no longer has c020, but `keep` fed it: the profile stays.
    let shared = w.run(&del).await;
    succeeded(&shared);
    assert_eq!(shared.counts.deleted, 0, "{:?}", shared.counts);
    assert!(w.profile("c020").await.is_some());
}

async fn a_dropped_column_fails_the_run_naming_it(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(5).await;
    let s = w.source(json!({})).await;
    succeeded(&w.run(&s).await);
    let mark = w.engine.meta().source_mark(&s).await.unwrap();
    w.src
        .update(
            "src_customers",
            "email = 'new@example.com', updated_at = '2026-12-01 11:00:00'",
            "id = 'c001'",
        )
        .await;
    w.src
        .exec("ALTER TABLE src_customers DROP COLUMN city")
        .await;
    let run = w.run(&s).await;
    assert_eq!(run.status, RunStatus::Failed);
    let message = run.message.unwrap_or_default();
    assert!(message.contains("city"), "{message}");
    // Nothing half-written: the profile and the mark are as the last good run left them.
    assert_eq!(
        w.profile("c001").await.unwrap()["email"],
        json!("user1@example.com")
    );
    assert_eq!(w.engine.meta().source_mark(&s).await.unwrap(), mark);
}

async fn two_sources_merge_into_one_profile(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(10).await;
    let ddl = w
        .src
        .create("src_orders", &[("customer", Ty::Key), ("n", Ty::Int)]);
    w.src.exec(&ddl).await;
    w.src
        .exec("INSERT INTO src_orders VALUES ('c001', 7), ('c002', 3), ('z999', 1)")
        .await;
    let crm = w
        .source(json!({"transformation": {"mapping": {"email": "lower(email)"}}}))
        .await;
    let query = format!("SELECT customer, n FROM {}", w.src.qualified("src_orders"));
    let shop = w
        .source(
            json!({"table": null, "query": query, "id_column": "customer",
                       "transformation": {"mapping": {"orders": "n"}},
                       "changes": {"mode": "full", "on_missing": "delete"}}),
        )
        .await;
    succeeded(&w.run(&crm).await);
    let orders = w.run(&shop).await;
    succeeded(&orders);
    assert_eq!((orders.counts.inserted, orders.counts.updated), (1, 2));
    assert_eq!(
        w.profile("c001").await.unwrap(),
        json!({"email": "user1@example.com", "orders": 7})
    );
    // The order source loses c001: the CRM still feeds it, so the profile stays with its email.
    w.src
        .delete("src_orders", "customer IN ('c001', 'z999')")
        .await;
    let gone = w.run(&shop).await;
    succeeded(&gone);
    assert_eq!(
        gone.counts.deleted, 1,
        "only z999 was fed by this source alone"
    );
    assert_eq!(w.profile("z999").await, None);
    assert_eq!(
        w.profile("c001").await.unwrap()["email"],
        json!("user1@example.com")
    );
}

async fn bad_values_and_duplicate_ids_fail_alone(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(20).await;
    w.src
        .update("src_customers", "ltv = 'lots'", "id = 'c005'")
        .await;
    let t = w.src.qualified("src_customers");
    let query = format!(
        "SELECT id, email, country, city, ltv, updated_at FROM {t} \
         UNION ALL SELECT id, 'dup@example.com', country, city, ltv, updated_at FROM {t} WHERE id = 'c009'"
    );
    let s = w
        .source(
            json!({"table": null, "id_column": "id", "query": query, "changes": {"mode": "full"}}),
        )
        .await;
    let run = w.run(&s).await;
    succeeded(&run);
    assert_eq!(run.counts.read, 21);
    assert_eq!(run.counts.failed, 2, "{:?}", run.errors);
    assert_eq!(run.counts.inserted, 19);
    let ltv = run
        .errors
        .iter()
        .find(|g| g.sample_profiles == ["c005"])
        .expect("the bad value is reported with its id");
    assert!(ltv.message.contains("ltv"), "{}", ltv.message);
    let dup = run
        .errors
        .iter()
        .find(|g| g.sample_profiles == ["c009"])
        .expect("the duplicate id is reported");
    assert!(dup.message.contains("more than once"), "{}", dup.message);
    assert_eq!(w.profile("c005").await, None);
    // The first row read wins; two rows of one id have no order between them in the read.
    let email = w.profile("c009").await.unwrap()["email"].clone();
    assert!(
        email == json!("user9@example.com") || email == json!("dup@example.com"),
        "{email}"
    );
    let again = w.run(&s).await;
    succeeded(&again);
    assert_eq!(again.counts.inserted, 0, "{:?}", again.counts);
    assert!(again.counts.unchanged >= 18, "{:?}", again.counts);
}

async fn disabled_and_concurrent_runs_are_refused(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(3).await;
    let s = w.source(json!({"enabled": false})).await;
    assert!(matches!(
        w.engine.start_source(&s, "manual").await,
        Err(sluice_engine::StartError::Disabled(_))
    ));
    let s = w.source(json!({})).await;
    let run = w.engine.start_source(&s, "manual").await.unwrap();
    let second = w.engine.start_source(&s, "manual").await;
    let done = w.engine.wait(&run.id, |_| {}).await.unwrap();
    // Either the first was still going (refused), or it had already finished (a run of its own).
    match second {
        Err(sluice_engine::StartError::AlreadyRunning { run: r, .. }) => assert_eq!(r, run.id),
        Ok(other) => {
            w.engine.wait(&other.id, |_| {}).await.unwrap();
        }
        Err(e) => panic!("{e}"),
    }
    succeeded(&done);
}

async fn a_scheduled_source_runs_at_its_tick(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(4).await;
    let s = w.source(json!({"schedule": "5m"})).await;
    let off = w.source(json!({})).await;
    let t0: chrono::DateTime<chrono::Utc> = "2026-12-06T10:01:00Z".parse().unwrap();
    // First sight of a schedule: the first run is at its next tick.
    let first = sluice_engine::source::schedule::tick(&w.engine, t0)
        .await
        .unwrap();
    assert!(first.is_empty(), "{first:?}");
    let due = sluice_engine::source::schedule::tick(&w.engine, t0 + chrono::TimeDelta::minutes(5))
        .await
        .unwrap();
    assert_eq!(due, vec![s.clone()]);
    let runs = w.engine.meta().list_runs(&s, 10, None).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, "schedule");
    let done = w.engine.wait(&runs[0].id, |_| {}).await.unwrap();
    succeeded(&done);
    assert_eq!(done.counts.inserted, 4);
    assert!(w
        .engine
        .meta()
        .list_runs(&off, 10, None)
        .await
        .unwrap()
        .is_empty());
    // The same tick seen again starts nothing.
    let again =
        sluice_engine::source::schedule::tick(&w.engine, t0 + chrono::TimeDelta::minutes(6))
            .await
            .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

async fn scripts_transform_source_rows(src: Box<dyn Src>) {
    let w = world(src).await;
    // One failure in twenty stays under the failed-rows threshold.
    w.customers(20).await;
    let js = w
        .source(json!({"transformation": {"javascript":
            "const columns = ['email', 'address.city'];\n\
             function transform(row) {\n\
               if (row._id === 'c003') return null;\n\
               if (row._id === 'c002') throw new Error('no thanks');\n\
               return {email: row.email.toUpperCase(), 'address.city': row.city};\n\
             }"}}))
        .await;
    let run = w.run(&js).await;
    succeeded(&run);
    assert_eq!(
        (
            run.counts.inserted,
            run.counts.transform_failed,
            run.counts.filtered_out
        ),
        (18, 1, 1),
        "{:?}",
        run.errors
    );
    assert_eq!(
        w.profile("c001").await.unwrap(),
        json!({"email": "USER1@EXAMPLE.COM", "address": {"city": "Rome"}})
    );
    assert!(
        run.errors.iter().any(|g| g.message.contains("no thanks")),
        "{:?}",
        run.errors
    );
    let py = w
        .source(json!({"transformation": {"python":
            "columns = ['country']\n\
             def transform(row):\n    return {'country': row['country'].lower()}\n"}}))
        .await;
    let run = w.run(&py).await;
    succeeded(&run);
    assert_eq!(
        run.counts.updated + run.counts.inserted,
        20,
        "{:?}",
        run.errors
    );
    assert_eq!(
        w.profile("c001").await.unwrap(),
        json!({"email": "USER1@EXAMPLE.COM", "address": {"city": "Rome"}, "country": "it"})
    );
}

/// A `full` source finds each changed row and nothing else, whether it compares rows before the
/// transformation (a mapping) or what they write (a script, or a mapping reading the run's time); a
/// row whose change leaves its profile as it was counts as unchanged, and a changed Customer Model
/// makes every row compare afresh without counting any as changed.
async fn a_full_source_finds_exactly_the_changed_rows(src: Box<dyn Src>) {
    let w = world(src).await;
    w.customers(20).await;
    let full = json!({"mode": "full", "on_missing": "keep"});
    let by_row = w.source(json!({"changes": full})).await;
    let by_output = w
        .source(json!({"changes": full, "transformation": {"mapping": {
            "orders": r#"if(eq(email, "New2@Example.com"), 7, if(gt(now(), now()), 1, 2))"#}}}))
        .await;
    for s in [&by_row, &by_output] {
        let first = w.run(s).await;
        succeeded(&first);
        assert_eq!(first.counts.read, 20, "{:?}", first.counts);
        let again = w.run(s).await;
        succeeded(&again);
        assert_eq!(
            (again.counts.unchanged, again.counts.updated),
            (20, 0),
            "{:?}",
            again.counts
        );
    }
    // A column no property reads, and one that a property does.
    w.src
        .update(
            "src_customers",
            "updated_at = '2026-12-02 10:00:00'",
            "id = 'c001'",
        )
        .await;
    w.src
        .update("src_customers", "email = 'New2@Example.com'", "id = 'c002'")
        .await;
    for s in [&by_row, &by_output] {
        let run = w.run(s).await;
        succeeded(&run);
        let c = &run.counts;
        assert_eq!(
            (c.read, c.unchanged, c.updated, c.inserted),
            (20, 19, 1, 0),
            "{c:?}"
        );
    }
    let c002 = w.profile("c002").await.unwrap();
    assert_eq!(
        (&c002["email"], &c002["orders"]),
        (&json!("new2@example.com"), &json!(7))
    );
    // A wider Customer Model: every row is compared afresh, none changed.
    let mut wire = model().to_wire();
    wire.properties
        .push(serde_json::from_value(json!({"name": "tier", "type": "string"})).unwrap());
    w.engine
        .meta()
        .put_schema(&Schema::from_wire(&wire).unwrap())
        .await
        .unwrap();
    let run = w.run(&by_row).await;
    succeeded(&run);
    assert_eq!(
        (run.counts.unchanged, run.counts.updated),
        (20, 0),
        "{:?}",
        run.counts
    );
}

macro_rules! for_each_source {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::pg_src().await).await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (src, _cleanup) = super::mysql_src().await;
                    super::$case(src).await;
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::clickhouse_src().await).await;
                }
            )*
        }
        mod snowflake {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::snowflake_src().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::sqlite_src()).await;
                }
            )*
        }
    };
}

for_each_source!(
    cursor_reads_then_rereads_nothing_changed,
    a_query_source_reads_by_cursor,
    late_commit_inside_the_lookback_is_read,
    full_mode_deletes_or_keeps_missing_rows,
    a_dropped_column_fails_the_run_naming_it,
    two_sources_merge_into_one_profile,
    bad_values_and_duplicate_ids_fail_alone,
    disabled_and_concurrent_runs_are_refused,
    a_scheduled_source_runs_at_its_tick,
    scripts_transform_source_rows,
    a_full_source_finds_exactly_the_changed_rows,
);

/// A mapping naming a column the source does not have says it is a source column that is unknown, with
/// the closest name, when the source is saved and when it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_naming_a_missing_source_column_says_so() {
    let w = world(sqlite_src()).await;
    w.customers(3).await;
    let spec = w.spec(
        json!({"transformation": {"mapping": {"email": "lower(emial)", "country": "region"}}}),
    );
    let e = sluice_engine::source::check_source(
        w.engine.meta().as_ref(),
        &spec,
        sluice_transform::Limits::default(),
    )
    .await
    .err()
    .expect("the check refuses the mapping");
    let fields = e
        .fields
        .expect("the problems are at their fields")
        .to_string();
    assert!(
        fields.contains("transformation.mapping.email")
            && fields.contains("unknown source column `emial`; did you mean `email`?"),
        "{fields}"
    );
    assert!(
        fields.contains("unknown source column `region`"),
        "{fields}"
    );
    assert!(!fields.contains("unknown property"), "{fields}");
}

/// A listener standing for a webhook: the JSON bodies it was sent.
async fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                    seen.lock().unwrap().push(body);
                    let _ = sock
                        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (url, out)
}

async fn posted(seen: &std::sync::Mutex<Vec<Value>>, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    seen.lock().unwrap().clone()
}

/// A source run that fails alerts the workspace's webhook as an export run does, and so does its
/// recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_source_run_and_its_recovery_are_posted() {
    let (url, seen) = webhook().await;
    let w = world_with(
        sqlite_src(),
        EngineConfig {
            alert_webhook: Some(url),
            ..EngineConfig::default()
        },
    )
    .await;
    w.customers(3).await;
    let s = w.source(json!({})).await;
    w.src.exec("ALTER TABLE src_customers RENAME TO gone").await;
    let failed = w.run(&s).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let got = posted(&seen, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "run_failed");
    assert_eq!(got[0]["source"]["id"], s);
    assert_eq!(got[0]["run"]["id"], failed.id);
    let text = got[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Source `") && text.contains("src_customers"),
        "{text}"
    );
    w.src.exec("ALTER TABLE gone RENAME TO src_customers").await;
    succeeded(&w.run(&s).await);
    let got = posted(&seen, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["event"], "pipeline_recovered");
    assert_eq!(got[1]["source"]["id"], s);
}

/// Source runs count against their connection's run slots with the export runs on it: with one slot
/// per connection, a second source on the same connection waits, queued, while one on another
/// connection starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_runs_share_their_connection_slots() {
    let w = world_with(
        pg_src().await,
        EngineConfig {
            max_runs_per_destination: 1,
            max_concurrent_runs: 4,
            ..EngineConfig::default()
        },
    )
    .await;
    w.customers(3).await;
    // A source that holds its slot until the test lets it go: its query waits on a lock the test holds.
    w.src.exec("CREATE TABLE src_gate (id int)").await;
    let gate = w
        .src
        .open("LOCK TABLE src_gate IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let t = w.src.qualified("src_customers");
    let g = w.src.qualified("src_gate");
    let slow = w
        .source(json!({"table": null, "query": format!("SELECT c.* FROM {t} AS c LEFT JOIN {g} AS g ON false"),
                       "changes": {"mode": "full"}}))
        .await;
    let other = w.source(json!({})).await;
    let first = w.engine.start_source(&slow, "manual").await.unwrap();
    assert_eq!(first.status, RunStatus::Running);
    let second = w.engine.start_source(&other, "manual").await.unwrap();
    assert_eq!(
        second.status,
        RunStatus::Queued,
        "the connection's one slot is taken"
    );
    // Another connection has slots of its own.
    let lite = sqlite_src();
    let now = chrono::Utc::now();
    let conn = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "lite".into(),
        kind: lite.kind().into(),
        settings: lite.settings(),
        created_at: now,
        updated_at: now,
    };
    w.engine.meta().insert_destination(&conn).await.unwrap();
    lite.exec(&lite.create(
        "src_customers",
        &[
            ("id", Ty::Key),
            ("email", Ty::Text),
            ("country", Ty::Text),
            ("city", Ty::Text),
            ("ltv", Ty::Text),
            ("updated_at", Ty::Time),
        ],
    ))
    .await;
    let elsewhere = w.source(json!({"connection": conn.id})).await;
    let third = w.engine.start_source(&elsewhere, "manual").await.unwrap();
    assert_eq!(third.status, RunStatus::Running);
    succeeded(&w.engine.wait(&third.id, |_| {}).await.unwrap());
    gate.commit().await;
    succeeded(&w.engine.wait(&first.id, |_| {}).await.unwrap());
    succeeded(&w.engine.wait(&second.id, |_| {}).await.unwrap());
}

/// A ClickHouse table whose rows replace each other keeps a row's versions until it merges them: a
/// source reads the latest only (with `FINAL`), not each version as a duplicate id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacing_clickhouse_table_is_read_one_row_per_key() {
    let w = world(clickhouse_src().await).await;
    w.src
        .exec(
            "CREATE TABLE src_customers (id String, email Nullable(String), country Nullable(String), \
             city Nullable(String), ltv Nullable(String), updated_at DateTime('UTC')) \
             ENGINE = ReplacingMergeTree(updated_at) ORDER BY id",
        )
        .await;
    w.src
        .exec(
            "INSERT INTO src_customers VALUES ('c001', 'old@example.com', 'IT', 'Rome', '1.00', '2026-12-01 10:00:00'), \
             ('c002', 'two@example.com', 'IT', 'Rome', '2.00', '2026-12-01 10:00:00')",
        )
        .await;
    // A second insert is a part of its own: the two versions of c001 stay apart until a merge.
    w.src
        .exec("INSERT INTO src_customers VALUES ('c001', 'new@example.com', 'IT', 'Rome', '1.00', '2026-12-01 10:00:05')")
        .await;
    for changes in [
        json!({"mode": "full"}),
        json!({"mode": "cursor", "column": "updated_at"}),
    ] {
        let s = w.source(json!({"changes": changes})).await;
        let run = w.run(&s).await;
        succeeded(&run);
        assert_eq!(
            (run.counts.read, run.counts.failed),
            (2, 0),
            "{changes}: {:?}",
            run.errors
        );
        assert_eq!(
            w.profile("c001").await.unwrap()["email"],
            json!("new@example.com"),
            "{changes}"
        );
    }
}

/// Exports read profiles while two sources merge into them, page after page: every export run sees
/// whole profiles (each property a source maps, with its type) and fails no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_during_merging_source_runs_fail_no_row() {
    let w = world(sqlite_src()).await;
    w.customers(3_000).await;
    let crm = w.source(json!({"changes": {"mode": "full"}})).await;
    let t = w.src.qualified("src_customers");
    let shop = w
        .source(json!({"table": null, "query": format!("SELECT id, length(email) AS n FROM {t}"),
                       "transformation": {"mapping": {"orders": "n"}}, "changes": {"mode": "full"}}))
        .await;
    let dest = w._dir.path().join("dest.sqlite");
    rusqlite::Connection::open(&dest)
        .unwrap()
        .execute_batch(
            "CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT NOT NULL, city TEXT NOT NULL, \
             ltv NUMERIC NOT NULL, orders INTEGER)",
        )
        .unwrap();
    let now = chrono::Utc::now();
    let conn = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "out".into(),
        kind: "sqlite".into(),
        settings: json!({"path": dest.to_string_lossy()}),
        created_at: now,
        updated_at: now,
    };
    w.engine.meta().insert_destination(&conn).await.unwrap();
    let spec: sluice_core::pipeline::PipelineSpec = serde_json::from_value(json!({
        "destination": conn.id, "name": "out", "table": "people", "key": "id",
        "transformation": {"mapping": {"id": "_id", "email": "email", "city": "address.city",
                                       "ltv": "ltv", "orders": "orders"}},
    }))
    .unwrap();
    let pipeline = sluice_store::PipelineRecord {
        id: sluice_engine::new_id("pl"),
        spec,
        created_at: now,
        updated_at: now,
    };
    w.engine.meta().insert_pipeline(&pipeline).await.unwrap();
    // The profiles exist, with the properties the table needs, before the exports start: a profile
    // that one source made and the other has not reached yet lacks the other's properties, as the
    // merge means it to.
    succeeded(&w.run(&crm).await);
    for round in 0..2 {
        // Change every row, so that both sources write every profile again.
        w.src
            .update(
                "src_customers",
                &format!("email = 'r{round}-' || id || '@example.com', city = 'C{round}'"),
                "1 = 1",
            )
            .await;
        let a = w.engine.start_source(&crm, "manual").await.unwrap();
        let b = w.engine.start_source(&shop, "manual").await.unwrap();
        let mut exports = 0;
        loop {
            let done = w.engine.live(&a.id).is_none() && w.engine.live(&b.id).is_none();
            let run = w.engine.start(&pipeline.id, "manual").await.unwrap();
            let run = w.engine.wait(&run.id, |_| {}).await.unwrap();
            exports += 1;
            assert_eq!(
                run.status,
                RunStatus::Succeeded,
                "{:?} {:?}",
                run.message,
                run.errors
            );
            assert_eq!(
                (run.counts.failed, run.counts.transform_failed),
                (0, 0),
                "round {round}, export {exports}: {:?}",
                run.errors
            );
            if done {
                break;
            }
        }
        succeeded(&w.engine.wait(&a.id, |_| {}).await.unwrap());
        succeeded(&w.engine.wait(&b.id, |_| {}).await.unwrap());
        eprintln!("round {round}: {exports} exports during the source runs");
    }
}

/// A TCP proxy in front of a server that can be cut: once down, the connections it carries are dropped
/// and new ones are closed at once — a source that becomes unreachable.
struct Proxy {
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = down.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let flag = flag.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    let cut = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                    };
                    tokio::select! {
                        _ = copy => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Proxy { port, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The source goes away in the middle of a run: the read is retried, then the run fails saying so; the
/// mark stays, and the next run, with the source back, converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_unreachable_mid_run_fails_and_the_next_run_converges() {
    let pg = pg_src().await;
    let settings = pg.settings();
    let target = format!(
        "{}:{}",
        settings["host"].as_str().unwrap(),
        match &settings["port"] {
            Value::String(p) => p.clone(),
            Value::Number(n) => n.to_string(),
            _ => "5432".into(),
        }
    );
    let proxy = Proxy::start(target).await;
    let w = world(pg).await;
    w.customers(4_000).await;
    // The connection goes through the proxy.
    let mut conn = w
        .engine
        .meta()
        .get_destination(&w.connection)
        .await
        .unwrap()
        .unwrap();
    conn.settings["host"] = json!("127.0.0.1");
    conn.settings["port"] = json!(proxy.port);
    w.engine.meta().update_destination(&conn).await.unwrap();
    let s = w.source(json!({})).await;
    let run = w.engine.start_source(&s, "manual").await.unwrap();
    // Cut once the first pages are recorded.
    let mut cut = false;
    for _ in 0..5_000 {
        match w.engine.live(&run.id) {
            Some(r) if r.counts.read >= 128 => {
                proxy.set_down(true);
                cut = true;
                break;
            }
            Some(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
            None => break,
        }
    }
    let failed = w.engine.wait(&run.id, |_| {}).await.unwrap();
    assert!(
        cut,
        "the run ended before the source could be cut: {failed:?}"
    );
    assert_eq!(failed.status, RunStatus::Failed, "{failed:?}");
    assert!(
        failed.counts.read >= 128 && failed.counts.read < 4_000,
        "{:?}",
        failed.counts
    );
    assert!(
        failed
            .message
            .as_deref()
            .is_some_and(|m| m.contains("reading the source failed")),
        "{:?}",
        failed.message
    );
    assert_eq!(w.engine.meta().source_mark(&s).await.unwrap(), None);
    proxy.set_down(false);
    let next = w.run(&s).await;
    succeeded(&next);
    assert_eq!(next.counts.read, 4_000);
    assert_eq!(
        next.counts.inserted + next.counts.unchanged,
        4_000,
        "pages written before the cut are unchanged now: {:?}",
        next.counts
    );
    assert!(next.counts.unchanged >= 128, "{:?}", next.counts);
    assert!(w.profile("c3999").await.is_some());
}

/// A measurement, not a check (ignored by default): a first import and an unchanged re-import of
/// 100,000 rows from PostgreSQL into the embedded profile store, in both modes.
/// `cargo test -p sluice-engine --test sources measure_imports -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_imports() {
    let w = world_paged(pg_src().await, None).await;
    w.src
        .exec(
            "CREATE TABLE src_customers (id varchar(20) PRIMARY KEY, email varchar(100), country varchar(2),
                 city varchar(50), ltv varchar(20), updated_at timestamptz NOT NULL);
             INSERT INTO src_customers SELECT 'c' || i, 'User' || i || '@Example.com', 'IT', 'Rome', (i % 1000) || '.50',
                 '2026-12-01 10:00:00+00'::timestamptz + i * interval '1 second' FROM generate_series(1, 100000) AS i",
        )
        .await;
    for changes in [
        json!({"mode": "cursor", "column": "updated_at"}),
        json!({"mode": "full"}),
    ] {
        let s = w
            .source(json!({"changes": changes.clone(), "name": format!("m-{}", changes["mode"])}))
            .await;
        for label in ["first", "unchanged"] {
            let t = std::time::Instant::now();
            let run = w.run(&s).await;
            succeeded(&run);
            eprintln!(
                "{} {label}: {:.2} s, {:?}",
                changes["mode"],
                t.elapsed().as_secs_f64(),
                run.counts
            );
        }
    }
}
