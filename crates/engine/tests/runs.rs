//! Whole runs against real destinations (SQLite, PostgreSQL, MySQL/MariaDB and a Snowflake-protocol server),
//! with the embedded stores: what a user sees from "Run now". The same scenarios run for every destination
//! through the `Db` harness. ClickHouse,
//! whose tables keep row versions and cannot delete on the server this suite runs against, has cases of
//! its own at the end.

use serde_json::{json, Value};
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{DestinationRecord, PipelineRecord, RunRecord, RunStatus, SecretBox};

/// A destination database the scenarios can set up and inspect.
#[async_trait::async_trait]
trait Db: Send + Sync {
    fn kind(&self) -> &'static str;
    fn settings(&self) -> Value;
    /// The DDL dialect: `sqlite` or `postgresql`.
    async fn exec(&self, sql: &str);
    /// Rows of `sql` as text (NULL → None), in the query's order.
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>>;
}

struct SqliteDb {
    path: std::path::PathBuf,
}

#[async_trait::async_trait]
impl Db for SqliteDb {
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn settings(&self) -> Value {
        json!({"path": self.path.to_string_lossy()})
    }
    async fn exec(&self, sql: &str) {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        c.execute_batch(sql).unwrap();
    }
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let c = rusqlite::Connection::open(&self.path).unwrap();
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        let mut out = Vec::new();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let mut row = Vec::new();
            for i in 0..n {
                let v: rusqlite::types::Value = r.get(i).unwrap();
                row.push(match v {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Real(f) => Some(f.to_string()),
                    rusqlite::types::Value::Text(t) => Some(t),
                    rusqlite::types::Value::Blob(b) => Some(format!("{b:?}")),
                });
            }
            out.push(row);
        }
        out
    }
}

struct PgDb {
    url: String,
    schema: String,
}

impl PgDb {
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

#[async_trait::async_trait]
impl Db for PgDb {
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
    async fn exec(&self, sql: &str) {
        // An idle session reports its deletions to the statistics system (which the destination's
        // change marker reads) only every ten seconds; report them now, so that the next run sees them as
        // a run ten seconds later would.
        let sql = format!("{sql}; SELECT pg_stat_force_next_flush()");
        self.client().await.batch_execute(&sql).await.unwrap();
    }
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let c = self.client().await;
        // Text protocol: every value comes back as the server prints it.
        let msgs = c.simple_query(sql).await.unwrap();
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    }
}

/// A MySQL / MariaDB database of its own per test (the tables have fixed names).
struct MyDb {
    settings: sluice_destinations::mysql::MysqlSettings,
}

impl MyDb {
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
        c.query_drop("SET NAMES utf8mb4").await.unwrap();
        c
    }
}

#[async_trait::async_trait]
impl Db for MyDb {
    fn kind(&self) -> &'static str {
        "mysql"
    }
    fn settings(&self) -> Value {
        let s = &self.settings;
        json!({"host": s.host, "port": s.port, "username": s.username, "password": s.password,
               "database": s.database, "tls": {"mode": "disable"}})
    }
    async fn exec(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        self.conn().await.query_drop(sql).await.unwrap();
    }
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use mysql_async::prelude::Queryable;
        // Text protocol: every value comes back as the server prints it.
        let rows: Vec<mysql_async::Row> = self.conn().await.query(sql).await.unwrap();
        rows.into_iter()
            .map(|r| {
                r.unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql_async::Value::NULL => None,
                        mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                        other => Some(other.as_sql(true)),
                    })
                    .collect()
            })
            .collect()
    }
}

/// Once per test process: drops the databases of earlier runs killed before their guard could (named
/// like ours, every table created more than an hour ago — no test of this file runs that long).
async fn drop_stale_databases(conn: &mut mysql_async::Conn) {
    use mysql_async::prelude::Queryable;
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let stale: Vec<String> = conn
        .query(
            "SELECT CAST(t.TABLE_SCHEMA AS CHAR) FROM information_schema.TABLES t \
             WHERE t.TABLE_SCHEMA LIKE 'run!_%' ESCAPE '!' AND LENGTH(t.TABLE_SCHEMA) = 20 \
             GROUP BY t.TABLE_SCHEMA HAVING MAX(t.CREATE_TIME) < NOW() - INTERVAL 1 HOUR",
        )
        .await
        .unwrap_or_default();
    for database in stale {
        let _ = conn
            .query_drop(format!("DROP DATABASE IF EXISTS `{database}`"))
            .await;
    }
}

/// Drops a test's MySQL database when the test ends, passed or failed (`Drop` runs while a panic
/// unwinds). Drop cannot await, so the statement runs on a thread with a runtime of its own.
struct DropDatabase {
    admin: sluice_destinations::mysql::MysqlSettings,
    database: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let admin = MyDb {
            settings: self.admin.clone(),
        };
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.database);
        let dropped = std::thread::spawn(move || {
            use mysql_async::prelude::Queryable;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let mut conn = admin.conn().await;
                let result = conn.query_drop(sql).await;
                let _ = conn.disconnect().await;
                result
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database `{}`", self.database);
        }
    }
}

async fn mysql_db() -> (Box<dyn Db>, DropDatabase) {
    use mysql_async::prelude::Queryable;
    let url = std::env::var("SLUICE_TEST_MYSQL_URL").expect(
        "SLUICE_TEST_MYSQL_URL must name a MySQL or MariaDB server for these tests (scripts/services.sh starts one)",
    );
    let mut settings = sluice_destinations::mysql::MysqlSettings::from_url(&url).unwrap();
    // The test servers offer no TLS, and `require` is the default.
    if !url.contains("ssl") {
        settings.tls.mode = sluice_destinations::mysql::config::TlsMode::Disable;
    }
    let admin = MyDb {
        settings: settings.clone(),
    };
    let database = format!("run_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let mut conn = admin.conn().await;
    drop_stale_databases(&mut conn).await;
    conn.query_drop(format!(
        "CREATE DATABASE `{database}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin"
    ))
    .await
    .unwrap();
    let cleanup = DropDatabase {
        admin: settings.clone(),
        database: database.clone(),
    };
    settings.database = database;
    (Box::new(MyDb { settings }), cleanup)
}

/// A ClickHouse database of its own per test.
struct ChDb {
    addr: String,
    user: String,
    password: String,
    database: String,
}

impl ChDb {
    async fn client(&self, database: &str) -> klickhouse::Client {
        let options = klickhouse::ClientOptions {
            username: self.user.clone(),
            password: self.password.clone(),
            default_database: database.to_string(),
            ..klickhouse::ClientOptions::default()
        };
        klickhouse::Client::connect(self.addr.clone(), options)
            .await
            .unwrap()
    }
}

#[async_trait::async_trait]
impl Db for ChDb {
    fn kind(&self) -> &'static str {
        "clickhouse"
    }
    fn settings(&self) -> Value {
        let (host, port) = self.addr.rsplit_once(':').unwrap();
        json!({"host": host, "port": port, "username": self.user, "password": self.password,
            "database": self.database})
    }
    async fn exec(&self, sql: &str) {
        self.client(&self.database)
            .await
            .execute(sql)
            .await
            .unwrap();
    }
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use futures::StreamExt;
        let c = self.client(&self.database).await;
        let mut stream = c.query_raw(sql, None).await.unwrap();
        let mut out = Vec::new();
        while let Some(block) = stream.next().await {
            let block = block.unwrap();
            let mut cols: Vec<_> = block
                .column_data
                .into_values()
                .map(|c| c.into_iter())
                .collect();
            for _ in 0..block.rows {
                out.push(
                    cols.iter_mut()
                        .filter_map(|c| c.next())
                        .map(|v| match v {
                            klickhouse::Value::Null => None,
                            klickhouse::Value::String(b) => Some(String::from_utf8(b).unwrap()),
                            klickhouse::Value::UInt64(n) => Some(n.to_string()),
                            other => Some(format!("{other:?}")),
                        })
                        .collect(),
                );
            }
        }
        out
    }
}

async fn clickhouse_db() -> Box<dyn Db> {
    let addr = std::env::var("SLUICE_TEST_CLICKHOUSE_NATIVE").expect(
        "SLUICE_TEST_CLICKHOUSE_NATIVE must name a ClickHouse server (host:port) for these tests \
         (scripts/services.sh starts one)",
    );
    let db = ChDb {
        addr,
        user: std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        password: std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
        database: format!("run_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
    };
    db.client("default")
        .await
        .execute(format!("CREATE DATABASE {}", db.database))
        .await
        .unwrap();
    Box::new(db)
}

/// A database of its own per test on the Snowflake-protocol server (fakesnow), set up and read through
/// Sluice's own Snowflake client (the protocol is all that server speaks).
struct SfDb {
    url: String,
    database: String,
}

impl SfDb {
    fn settings_for(url: &str, database: &str) -> Value {
        json!({"account": "sluice-test", "username": "sluice", "password": "x", "database": database,
               "schema": "PUBLIC", "warehouse": "SLUICE_WH", "base_url": url})
    }

    async fn run(&self, database: Option<&str>, sql: &str) -> Vec<Vec<Option<String>>> {
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
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows
    }
}

#[async_trait::async_trait]
impl Db for SfDb {
    fn kind(&self) -> &'static str {
        "snowflake"
    }
    fn settings(&self) -> Value {
        Self::settings_for(&self.url, &self.database)
    }
    async fn exec(&self, sql: &str) {
        self.run(Some(&self.database), sql).await;
    }
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.run(Some(&self.database), sql).await
    }
}

async fn snowflake_db() -> Box<dyn Db> {
    let url = std::env::var("SLUICE_TEST_SNOWFLAKE_URL").expect(
        "SLUICE_TEST_SNOWFLAKE_URL must name a Snowflake-protocol server for these tests \
         (scripts/services.sh start snowflake runs one)",
    );
    let database =
        format!("RUN_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]).to_uppercase();
    let db = SfDb { url, database };
    db.run(None, &format!("CREATE DATABASE {}", db.database))
        .await;
    db.run(
        None,
        &format!("CREATE SCHEMA IF NOT EXISTS {}.PUBLIC", db.database),
    )
    .await;
    Box::new(db)
}

async fn sqlite_db(dir: &std::path::Path) -> Box<dyn Db> {
    Box::new(SqliteDb {
        path: dir.join("dest.db"),
    })
}

async fn pg_db() -> Box<dyn Db> {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
    let schema = format!("run_{}", uuid::Uuid::new_v4().simple());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    Box::new(PgDb { url, schema })
}

struct World {
    engine: Engine,
    stores: Stores,
    db: Box<dyn Db>,
    dest: String,
    _dir: tempfile::TempDir,
}

fn model() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "orders", "type": "int"},
        {"name": "signed_up_at", "type": "datetime"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn profile(i: usize) -> Value {
    let countries = ["IT", "FR", "DE"];
    let first = ["Zoë", "José", "مريم", "Ōtsuka 🎉"][i % 4];
    json!({
        "_id": format!("p{i:05}"),
        "first_name": first,
        "last_name": format!("N{i}"),
        "email": format!("user{i}@example.com"),
        "country": countries[i % 3],
        "ltv": format!("{}.{:02}", i * 3, i % 100),
        "orders": i % 50,
        "signed_up_at": "2024-05-13T17:30:00+02:00",
        "address": {"city": "Zürich"}
    })
}

/// Which backend holds the metadata and the profiles.
#[derive(Debug, Clone, Copy)]
enum Stores {
    Sqlite,
    Postgres,
}

/// A PostgreSQL schema of its own for a test's stores, named in the URL's search path.
async fn pg_store_url() -> String {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
    let schema = format!("store_{}", uuid::Uuid::new_v4().simple());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// Profile `i` living in another country (in or out of a filtered audience).
fn moved_to(i: usize, country: &str) -> Value {
    let mut p = profile(i);
    p["country"] = json!(country);
    p
}

async fn world(db: Box<dyn Db>, dir: tempfile::TempDir, n: usize) -> World {
    world_on(Stores::Sqlite, db, dir, n).await
}

async fn world_on(stores: Stores, db: Box<dyn Db>, dir: tempfile::TempDir, n: usize) -> World {
    let secrets = SecretBox::load_or_create(dir.path()).unwrap();
    let url = match stores {
        Stores::Sqlite => None,
        Stores::Postgres => Some(pg_store_url().await),
    };
    let meta = sluice_store::open_metadata(url.as_deref(), dir.path(), secrets)
        .await
        .unwrap();
    let profiles = sluice_store::open_profiles(url.as_deref(), dir.path())
        .await
        .unwrap();
    let schema = model();
    meta.put_schema(&schema).await.unwrap();
    let batch: Vec<_> = (0..n)
        .map(|i| {
            schema
                .validate_profile(profile(i).as_object().unwrap())
                .unwrap()
        })
        .collect();
    profiles.upsert(batch).await.unwrap();
    // Small batches so that several pages, and their merge with the sync state, are exercised.
    let engine = Engine::new(
        meta.clone(),
        profiles,
        EngineConfig {
            batch_size: Some(64),
            write_attempts: 2,
            // Confirmed every two batches: runs go through confirmations under way while the next
            // batches are written.
            unconfirmed_rows: 100,
            ..EngineConfig::default()
        },
    );
    let now = chrono::Utc::now();
    let dest = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "test".into(),
        kind: db.kind().into(),
        settings: db.settings(),
        created_at: now,
        updated_at: now,
    };
    meta.insert_destination(&dest).await.unwrap();
    World {
        engine,
        stores,
        db,
        dest: dest.id,
        _dir: dir,
    }
}

impl World {
    async fn pipeline(&self, extra: Value) -> String {
        let mut spec = json!({
            "destination": self.dest, "name": format!("p-{}", uuid::Uuid::new_v4()), "table": "customers",
            "key": "id",
            "transformation": {"mapping": {"id": "_id", "email": "lower(email)",
                "full_name": "first_name \" \" last_name", "ltv": "ltv", "city": "address.city"}},
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: PipelineSpec = serde_json::from_value(spec).unwrap();
        let now = chrono::Utc::now();
        let rec = PipelineRecord {
            id: sluice_engine::new_id("pl"),
            spec,
            created_at: now,
            updated_at: now,
        };
        self.engine.meta().insert_pipeline(&rec).await.unwrap();
        rec.id
    }

    /// Changes fields of a stored pipeline.
    async fn set(&self, pipeline: &str, changes: Value) {
        let mut rec = self
            .engine
            .meta()
            .get_pipeline(pipeline)
            .await
            .unwrap()
            .unwrap();
        rec.spec = changed(&rec.spec, &changes);
        rec.updated_at = chrono::Utc::now();
        self.engine.meta().update_pipeline(&rec).await.unwrap();
    }

    async fn run(&self, pipeline: &str) -> RunRecord {
        let run = self.engine.start(pipeline, "manual").await.unwrap();
        self.engine.wait(&run.id, |_| {}).await.unwrap()
    }

    async fn upsert(&self, profiles: Vec<Value>) {
        let schema = model();
        let batch = profiles
            .iter()
            .map(|p| schema.validate_profile(p.as_object().unwrap()).unwrap())
            .collect();
        self.engine.profiles().upsert(batch).await.unwrap();
    }

    /// A pipeline of the profiles in Italy (100 of the 300), with the given rule for leavers.
    async fn italians(&self, on_leave: &str) -> String {
        self.pipeline(json!({"on_leave": on_leave,
            "filter": {"logical": "and", "conditions": [{"property": "country", "operator": "is", "values": ["IT"]}]}}))
            .await
    }

    /// Checks how many profiles a read of changes read. SQLite numbers changes exactly; PostgreSQL's
    /// change mark is the oldest transaction still running anywhere on the server when a run starts, so
    /// while other tests write to the same server, the profiles changed by the step before may be read
    /// again (and found unchanged): at most `RECENT` more than changed.
    fn assert_read(&self, got: u64, changed: u64) {
        const RECENT: u64 = 6;
        match self.stores {
            Stores::Sqlite => assert_eq!(got, changed, "profiles read"),
            Stores::Postgres => assert!(
                (changed..=changed + RECENT).contains(&got),
                "{got} profiles read, {changed} changed"
            ),
        }
    }

    /// The ids in the destination table, in order.
    async fn ids(&self) -> Vec<String> {
        self.db
            .rows("SELECT id FROM customers ORDER BY id")
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    }

    async fn count(&self) -> usize {
        self.db.rows("SELECT id FROM customers").await.len()
    }
}

fn ddl(kind: &str) -> &'static str {
    match kind {
        "postgresql" => "CREATE TABLE customers (id text PRIMARY KEY, email text UNIQUE, full_name text NOT NULL,
            ltv numeric(12,2), city text, orders int CHECK (orders >= 0), untouched text DEFAULT 'default')",
        "mysql" => "CREATE TABLE customers (id varchar(64) PRIMARY KEY, email varchar(255) UNIQUE, full_name text NOT NULL,
            ltv decimal(12,2), city text, orders int CHECK (orders >= 0), untouched varchar(100) DEFAULT 'default')",
        // Quoted names stay lower-case (Snowflake upper-cases unquoted ones). The test server runs on DuckDB,
        // which enforces the CHECK; Snowflake itself has no CHECK constraints.
        "snowflake" => r#"CREATE TABLE customers ("id" VARCHAR(64) PRIMARY KEY, "email" VARCHAR UNIQUE,
            "full_name" VARCHAR NOT NULL, "ltv" NUMBER(12,2), "city" VARCHAR, "orders" NUMBER(38,0) CHECK ("orders" >= 0),
            "untouched" VARCHAR DEFAULT 'default')"#,
        _ => "CREATE TABLE customers (id TEXT PRIMARY KEY, email TEXT UNIQUE, full_name TEXT NOT NULL,
            ltv DECIMAL(12,2), city TEXT, orders INTEGER CHECK (orders >= 0), untouched TEXT DEFAULT 'default')",
    }
}

/// On Snowflake, the statements sent to the world's database that need a warehouse (0 elsewhere).
fn warehouse_statements(w: &World) -> u64 {
    let settings = w.db.settings();
    match (w.db.kind(), settings["database"].as_str()) {
        ("snowflake", Some(db)) => sluice_destinations::snowflake::statements_sent_to(db).warehouse,
        _ => 0,
    }
}

fn assert_succeeded(r: &RunRecord) {
    assert_eq!(
        r.status,
        RunStatus::Succeeded,
        "run failed: {:?} {:?}",
        r.message,
        r.errors
    );
}

async fn scenario_insert_update_unchanged(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.pipeline(json!({})).await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!(
        (r1.counts.read, r1.counts.inserted, r1.counts.updated),
        (300, 300, 0)
    );
    assert_eq!(w.count().await, 300);
    let row =
        w.db.rows("SELECT full_name, ltv, city, untouched FROM customers WHERE id = 'p00002'")
            .await;
    assert_eq!(row[0][0].as_deref(), Some("مريم N2"));
    assert_eq!(row[0][1].as_deref(), Some("6.02"));
    assert_eq!(row[0][2].as_deref(), Some("Zürich"));
    assert_eq!(
        row[0][3].as_deref(),
        Some("default"),
        "unmapped columns get their default on insert"
    );

    let before = warehouse_statements(&w);
    if w.db.kind() == "snowflake" {
        assert!(before > 0, "the first run's writes were counted");
    }
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    assert_eq!(
        (r2.counts.unchanged, r2.counts.inserted, r2.counts.updated),
        (300, 0, 0),
        "an unchanged re-run writes nothing"
    );
    assert_eq!(
        warehouse_statements(&w),
        before,
        "an unchanged re-run sends nothing that needs a warehouse"
    );

    // An unmapped column keeps its value on update.
    w.db.exec("UPDATE customers SET untouched = 'mine' WHERE id = 'p00003'")
        .await;
    let mut changed: Vec<Value> = (0..10).map(profile).collect();
    for c in &mut changed {
        c["address"]["city"] = json!("Besançon");
    }
    changed[3]["address"]["city"] = json!("Nîmes");
    w.upsert(changed).await;
    w.upsert(vec![profile(1000)]).await;
    let r3 = w.run(&p).await;
    assert_succeeded(&r3);
    assert_eq!(
        (r3.counts.updated, r3.counts.inserted, r3.counts.unchanged),
        (10, 1, 290)
    );
    let row =
        w.db.rows("SELECT city, untouched FROM customers WHERE id = 'p00003'")
            .await;
    assert_eq!(row[0], vec![Some("Nîmes".into()), Some("mine".into())]);
}

async fn scenario_filter_and_on_leave_delete(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.italians("delete").await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!(r1.counts.inserted, 100);
    assert_eq!(r1.counts.filtered_out, 200);
    // One profile leaves the audience, one is deleted, one joins.
    let left = moved_to(0, "FR");
    let joined = moved_to(1, "IT");
    w.upsert(vec![left, joined]).await;
    assert!(w.engine.profiles().delete("p00003").await.unwrap());
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    assert_eq!(
        (r2.counts.deleted, r2.counts.inserted, r2.counts.unchanged),
        (2, 1, 98)
    );
    let ids = w.ids().await;
    assert_eq!(ids.len(), 99);
    assert!(!ids.contains(&"p00000".to_string()) && !ids.contains(&"p00003".to_string()));
    assert!(ids.contains(&"p00001".to_string()));
}

/// Leavers' rows kept, then the rule switched to `delete`: the rows Sluice kept are deleted too, and a
/// profile that came back in between updated its kept row rather than inserting one.
/// The pipeline's kept counts (`sync_count`, `sync_count_left`) equal its entries counted one by one.
async fn assert_counts_kept(w: &World, p: &str, step: &str) {
    let meta = w.engine.meta();
    let all = meta.sync_range(p, None, None, 1_000_000).await.unwrap();
    let left = all.iter().filter(|e| e.left).count() as u64;
    assert_eq!(
        (
            meta.sync_count(p).await.unwrap(),
            meta.sync_count_left(p).await.unwrap()
        ),
        (all.len() as u64 - left, left),
        "{step}: kept counts of the sync state (live, left)"
    );
}

async fn scenario_leavers_kept_then_deleted(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.italians("keep").await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!(r1.counts.inserted, 100);
    // Two profiles leave the audience and one is deleted: their rows stay.
    let gone = moved_to(0, "FR");
    let away = moved_to(6, "FR");
    w.upsert(vec![gone, away]).await;
    assert!(w.engine.profiles().delete("p00003").await.unwrap());
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    assert_eq!(
        (
            r2.counts.deleted,
            r2.counts.inserted,
            r2.counts.updated,
            r2.counts.unchanged
        ),
        (0, 0, 0, 97)
    );
    assert_eq!(w.count().await, 100);
    assert_counts_kept(&w, &p, "leavers kept").await;
    // One comes back as it was: its kept row is updated, not inserted.
    w.upsert(vec![profile(6)]).await;
    let r3 = w.run(&p).await;
    assert_succeeded(&r3);
    assert_eq!(
        (r3.counts.inserted, r3.counts.updated, r3.counts.unchanged),
        (0, 1, 97)
    );
    assert_eq!(w.count().await, 100);
    assert_counts_kept(&w, &p, "a leaver back").await;
    // Switched to delete: the next run makes the table match the audience.
    w.set(&p, json!({"on_leave": "delete"})).await;
    let r4 = w.run(&p).await;
    assert_succeeded(&r4);
    assert_eq!(
        (r4.counts.deleted, r4.counts.inserted, r4.counts.unchanged),
        (2, 0, 98)
    );
    let ids = w.ids().await;
    assert_eq!(ids.len(), 98);
    assert!(!ids.contains(&"p00000".to_string()) && !ids.contains(&"p00003".to_string()));
    assert!(ids.contains(&"p00006".to_string()));
    assert_counts_kept(&w, &p, "leavers deleted").await;
    // Nothing more to do.
    let r5 = w.run(&p).await;
    assert_succeeded(&r5);
    assert_eq!((r5.counts.deleted, r5.counts.unchanged), (0, 98));
    // Back to keeping leavers, and one more leaves.
    w.set(&p, json!({"on_leave": "keep"})).await;
    w.upsert(vec![moved_to(9, "FR")]).await;
    assert_succeeded(&w.run(&p).await);
    assert_counts_kept(&w, &p, "after an edit of the pipeline").await;
}

async fn scenario_duplicate_keys(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    // Key on the unique (not primary) email column; two profiles share an address.
    let mut twin = profile(250);
    twin["email"] = json!("USER7@example.com");
    w.upsert(vec![twin]).await;
    let p = w
        .pipeline(json!({"key": "email", "transformation": {"mapping": {"id": "_id", "email": "lower(email)",
            "full_name": "first_name \" \" last_name"}}}))
        .await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!((r.counts.inserted, r.counts.failed), (299, 1));
    let e = &r.errors[0];
    assert!(e.message.contains("duplicate key"), "{e:?}");
    assert_eq!(e.sample_profiles, vec!["p00250".to_string()]);
    let row =
        w.db.rows("SELECT id FROM customers WHERE email = 'user7@example.com'")
            .await;
    assert_eq!(row[0][0].as_deref(), Some("p00007"), "the lower _id wins");
    // The loser stays failed on the next run; nothing else is written.
    let r2 = w.run(&p).await;
    assert_eq!(
        (r2.counts.unchanged, r2.counts.failed, r2.counts.inserted),
        (299, 1, 0)
    );
}

async fn scenario_bad_row_isolated(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let mut bad = profile(123);
    bad["orders"] = json!(-5);
    w.upsert(vec![bad]).await;
    let p = w
        .pipeline(json!({"transformation": {"mapping": {"id": "_id", "full_name": "first_name", "orders": "orders"}}}))
        .await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!((r.counts.inserted, r.counts.failed), (299, 1));
    assert_eq!(r.errors[0].sample_profiles, vec!["p00123".to_string()]);
    assert!(
        r.errors[0].message.to_lowercase().contains("check"),
        "the database's message: {:?}",
        r.errors
    );
    assert_eq!(w.count().await, 299);
    // The bad row is retried (and fails again) next time; the good ones are unchanged.
    let r2 = w.run(&p).await;
    assert_eq!((r2.counts.unchanged, r2.counts.failed), (299, 1));
}

async fn scenario_column_dropped(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.pipeline(json!({})).await;
    assert_succeeded(&w.run(&p).await);
    w.db.exec("ALTER TABLE customers DROP COLUMN city").await;
    let mut changed = profile(5);
    changed["first_name"] = json!("Changed");
    w.upsert(vec![changed]).await;
    let r = w.run(&p).await;
    assert_eq!(r.status, RunStatus::Failed);
    let m = r.message.unwrap();
    assert!(m.contains("`city`"), "the message names the column: {m}");
    let row =
        w.db.rows("SELECT full_name FROM customers WHERE id = 'p00005'")
            .await;
    assert_ne!(
        row[0][0].as_deref(),
        Some("Changed N5"),
        "nothing is written"
    );
}

async fn scenario_missing_table(w: World) {
    let p = w.pipeline(json!({})).await;
    let r = w.run(&p).await;
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.message.unwrap().contains("customers"));
}

const SCRIPT: &str = r#"
const columns = ["id", "email", "full_name", "ltv", "city", "orders"];
function tier(ltv) { return Number(ltv) > 500 ? "gold" : "standard"; }
function transform(p) {
  if (p.country === "DE") return null;
  if (p._id === "p00007") {
    throw new Error("seven is unlucky");
  }
  return {
    id: p._id, email: p.email.toUpperCase(), full_name: `${p.first_name} ${p.last_name} (${tier(p.ltv)})`,
    ltv: p.ltv, city: p.address.city + " " + new Date(p.signed_up_at).getUTCFullYear(), orders: p.orders,
  };
}
"#;

/// A row as text, numbers normalized so that SQLite's numeric affinity (`0.00` stored as `0`) compares.
fn normalized(row: Vec<Option<String>>) -> Vec<Option<String>> {
    row.into_iter()
        .map(|v| v.map(|t| t.parse::<f64>().map(|f| f.to_string()).unwrap_or(t)))
        .collect()
}

/// The same transformation as [`SCRIPT`], in Python.
const PYTHON_SCRIPT: &str = r#"
from datetime import datetime, timezone
columns = ["id", "email", "full_name", "ltv", "city", "orders"]
def tier(ltv):
    return "gold" if float(ltv) > 500 else "standard"
def transform(p):
    if p["country"] == "DE":
        return None
    if p["_id"] == "p00007":
        raise ValueError("seven is unlucky")
    year = datetime.fromisoformat(p["signed_up_at"]).astimezone(timezone.utc).year
    return {
        "id": p["_id"], "email": p["email"].upper(),
        "full_name": f"{p['first_name']} {p['last_name']} ({tier(p['ltv'])})",
        "ltv": p["ltv"], "city": p["address"]["city"] + " " + str(year), "orders": p["orders"],
    }
"#;

async fn scenario_javascript_preview_equals_run(w: World) {
    script_preview_equals_run(
        w,
        json!({ "javascript": SCRIPT }),
        "Error: seven is unlucky (line 7",
    )
    .await
}

async fn scenario_python_preview_equals_run(w: World) {
    script_preview_equals_run(
        w,
        json!({ "python": PYTHON_SCRIPT }),
        "ValueError: seven is unlucky (line 10)",
    )
    .await
}

/// A script pipeline's preview (for every profile) shows exactly what its run then writes; `error` is
/// how the script's exception for profile p00007 reads.
async fn script_preview_equals_run(w: World, transformation: Value, error: &str) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w
        .pipeline(json!({"transformation": transformation, "on_leave": "delete"}))
        .await;
    // What a preview computes, for every profile.
    let rec = w.engine.meta().get_pipeline(&p).await.unwrap().unwrap();
    let prepared = sluice_engine::prepare(w.engine.meta().as_ref(), rec)
        .await
        .unwrap();
    let all = w.engine.profiles().page(None, None, 1000).await.unwrap();
    let ids: Vec<String> = all.iter().map(|p| p.id.clone()).collect();
    let outputs = sluice_engine::transform_profiles(&prepared, all, chrono::Utc::now())
        .await
        .unwrap();
    let mut expected = Vec::new();
    let (mut skipped, mut failed) = (0, 0);
    for (id, out) in ids.iter().zip(outputs) {
        match out {
            Ok(sluice_transform::Output::Row(values)) => expected.push(normalized(
                values
                    .iter()
                    .map(|v| (!v.is_null()).then(|| v.to_string()))
                    .collect(),
            )),
            Ok(sluice_transform::Output::Skip) => skipped += 1,
            Err(e) => {
                assert_eq!(id, "p00007");
                assert!(e.message.contains(error), "{e}");
                failed += 1;
            }
        }
    }
    assert_eq!((expected.len(), skipped, failed), (199, 100, 1));
    assert_eq!(w.count().await, 0, "computing the preview writes nothing");

    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(
        (
            r.counts.read,
            r.counts.inserted,
            r.counts.filtered_out,
            r.counts.transform_failed
        ),
        (300, 199, 100, 1)
    );
    assert!(
        r.errors[0].message.contains("seven is unlucky"),
        "{:?}",
        r.errors
    );
    assert_eq!(r.errors[0].sample_profiles, vec!["p00007".to_string()]);
    let written: Vec<Vec<Option<String>>> =
        w.db.rows("SELECT id, email, full_name, ltv, city, orders FROM customers ORDER BY id")
            .await
            .into_iter()
            .map(normalized)
            .collect();
    assert_eq!(written, expected, "the run writes what the preview showed");
    assert_eq!(
        written[1],
        normalized(vec![
            Some("p00001".into()),
            Some("USER1@EXAMPLE.COM".into()),
            Some("José N1 (standard)".into()),
            Some("3.01".into()),
            Some("Zürich 2024".into()),
            Some("1".into()),
        ])
    );

    // Unchanged on a re-run; a profile the script starts skipping leaves, like a filtered-out one.
    let now_skipped = moved_to(0, "DE");
    w.upsert(vec![now_skipped]).await;
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    assert_eq!(
        (
            r2.counts.unchanged,
            r2.counts.deleted,
            r2.counts.filtered_out,
            r2.counts.inserted
        ),
        (198, 1, 101, 0)
    );
    assert_eq!(w.count().await, 198);
}

/// A profile whose key changes moves its row: with `on_leave: delete` the row under the old key goes, and
/// another profile may take the old key in the same run.
async fn scenario_key_change_moves_the_row(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w
        .pipeline(json!({"key": "email", "on_leave": "delete",
            "transformation": {"mapping": {"id": "_id", "email": "lower(email)", "full_name": "first_name"}}}))
        .await;
    assert_succeeded(&w.run(&p).await);
    let mut moved = profile(5);
    moved["email"] = json!("new5@example.com");
    let mut taker = profile(6);
    taker["email"] = json!("user5@example.com");
    w.upsert(vec![moved]).await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(
        (r.counts.deleted, r.counts.inserted, r.counts.failed),
        (1, 1, 0),
        "{:?}",
        r.errors
    );
    let by_email = |e: &'static str| {
        let w = &w;
        async move {
            w.db.rows(&format!("SELECT id FROM customers WHERE email = '{e}'"))
                .await
        }
    };
    assert!(
        by_email("user5@example.com").await.is_empty(),
        "the old row is gone"
    );
    assert_eq!(
        by_email("new5@example.com").await,
        vec![vec![Some("p00005".to_string())]]
    );
    assert_eq!(w.count().await, 300);
    // Same run: one profile gives a key up, the next takes it over.
    let mut back = profile(5);
    back["email"] = json!("again5@example.com");
    w.upsert(vec![back, taker]).await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(r.counts.failed, 0, "{:?}", r.errors);
    assert_eq!(
        by_email("user5@example.com").await,
        vec![vec![Some("p00006".to_string())]]
    );
    assert!(
        by_email("user6@example.com").await.is_empty(),
        "p00006's old row is gone"
    );
    assert!(
        by_email("new5@example.com").await.is_empty(),
        "p00005's previous row is gone"
    );
    assert_eq!(w.count().await, 300);
    assert_counts_kept(&w, &p, "keys moved").await;
}

/// Re-runs read only what changed since the last clean run and leave the table exactly as a full run
/// would; anything that could make the shortcut wrong makes the run read everything.
async fn scenario_reads_only_changes(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    w.db.exec(&ddl(w.db.kind()).replace("customers", "twin"))
        .await;
    let spec = json!({"key": "email", "on_leave": "delete",
        "filter": {"logical": "and", "conditions": [{"property": "country", "operator": "is one of", "values": ["IT", "FR"]}]},
        "transformation": {"mapping": {"id": "_id", "email": "lower(email)", "full_name": "first_name \" \" last_name"}}});
    let p = w.pipeline(spec.clone()).await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!((r1.counts.read, r1.counts.inserted), (200, 200));
    assert!(w.engine.meta().sync_checkpoint(&p).await.unwrap().is_some());
    // Nothing changed, nothing read.
    w.assert_read(w.run(&p).await.counts.read, 0);

    // An update, a profile leaving, a deleted profile whose key another one takes as it joins, a new one,
    // and a profile sent again as it was.
    let mut updated = profile(0);
    updated["last_name"] = json!("Renamed");
    let left = moved_to(1, "DE");
    let mut joins = moved_to(2, "IT");
    joins["email"] = json!("USER3@example.com");
    assert!(w.engine.profiles().delete("p00003").await.unwrap());
    w.upsert(vec![updated, left, joins, profile(1000), profile(10)])
        .await;
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    w.assert_read(r2.counts.read, 4);
    assert_eq!(
        (
            r2.counts.updated,
            r2.counts.inserted,
            r2.counts.deleted,
            r2.counts.unchanged,
            r2.counts.failed
        ),
        (1, 2, 2, 197, 0)
    );
    let owner =
        w.db.rows("SELECT id FROM customers WHERE email = 'user3@example.com'")
            .await;
    assert_eq!(owner, vec![vec![Some("p00002".to_string())]]);

    // The same pipeline run from scratch into a twin table writes the same rows.
    let mut twin = spec.clone();
    twin["table"] = json!("twin");
    let t = w.pipeline(twin).await;
    assert_succeeded(&w.run(&t).await);
    let all = |table: &str| format!("SELECT id, email, full_name FROM {table} ORDER BY id");
    assert_eq!(
        w.db.rows(&all("customers")).await,
        w.db.rows(&all("twin")).await
    );

    // A changed pipeline reads everything again.
    let mut rec = w.engine.meta().get_pipeline(&p).await.unwrap().unwrap();
    rec.spec.transformation = serde_json::from_value(
        json!({"mapping": {"id": "_id", "email": "lower(email)", "full_name": "upper(first_name)"}}),
    )
    .unwrap();
    rec.updated_at = chrono::Utc::now();
    w.engine.meta().update_pipeline(&rec).await.unwrap();
    let r3 = w.run(&p).await;
    assert_succeeded(&r3);
    assert_eq!((r3.counts.read, r3.counts.updated), (200, 200));
    w.assert_read(w.run(&p).await.counts.read, 0);

    // A failed row makes the next run read everything, so that every failed row is retried.
    let mut six = profile(6);
    six["first_name"] = json!(null);
    w.upsert(vec![six]).await;
    let r4 = w.run(&p).await;
    w.assert_read(r4.counts.read, 1);
    assert_eq!(r4.counts.transform_failed, 1, "{:?}", r4.errors);
    assert!(w.engine.meta().sync_checkpoint(&p).await.unwrap().is_none());
    let mut six = profile(6);
    six["first_name"] = json!("Fixed");
    w.upsert(vec![six]).await;
    let r5 = w.run(&p).await;
    assert_eq!(
        (
            r5.counts.read,
            r5.counts.transform_failed,
            r5.counts.updated
        ),
        (200, 0, 1)
    );
    w.assert_read(w.run(&p).await.counts.read, 0);

    // A mapping that reads the clock is never shortcut.
    let clock = w
        .pipeline(
            json!({"table": "twin", "transformation": {"mapping": {"id": "_id",
            "full_name": "format_datetime(now(), \"%Y\")"}}}),
        )
        .await;
    assert_succeeded(&w.run(&clock).await);
    let again = w.run(&clock).await;
    assert_eq!((again.counts.read, again.counts.unchanged), (300, 300));
}

/// Expands every scenario for every destination, on each store backend (embedded SQLite and PostgreSQL):
/// `sqlite_store::mysql::…`, `postgres_store::snowflake::…`.
/// Changes over several pages: where the destination has several write lanes, the pages are upserted at
/// once; every row, count and sync entry must come out as a page at a time gives them.
async fn scenario_changes_over_several_pages(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    w.db.exec(&ddl(w.db.kind()).replace("customers", "twin"))
        .await;
    let p = w.pipeline(json!({})).await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!(r1.counts.inserted, 300);
    // 150 changed and 30 new: three pages of 64 or fewer.
    let mut changed: Vec<Value> = (0..150)
        .map(|i| {
            let mut p = profile(i);
            p["last_name"] = json!(format!("Changed{i}"));
            p
        })
        .collect();
    changed.extend((300..330).map(profile));
    w.upsert(changed).await;
    let r2 = w.run(&p).await;
    assert_succeeded(&r2);
    // The PostgreSQL change mark can be held back by other tests' transactions on the same server:
    // profiles written before it are then read again and found unchanged. Never fewer than changed.
    match w.stores {
        Stores::Sqlite => assert_eq!(r2.counts.read, 180),
        Stores::Postgres => assert!(r2.counts.read >= 180, "{:?}", r2.counts),
    }
    assert_eq!(
        (
            r2.counts.updated,
            r2.counts.inserted,
            r2.counts.unchanged,
            r2.counts.failed
        ),
        (150, 30, 150, 0)
    );
    // Everything written was recorded: the next run writes nothing (and, on SQLite, reads nothing).
    let r3 = w.run(&p).await;
    assert_succeeded(&r3);
    assert_eq!(
        (r3.counts.inserted, r3.counts.updated, r3.counts.unchanged),
        (0, 0, 330)
    );
    if matches!(w.stores, Stores::Sqlite) {
        assert_eq!(r3.counts.read, 0);
    }
    let t = w.pipeline(json!({"table": "twin"})).await;
    assert_succeeded(&w.run(&t).await);
    let all = |table: &str| format!("SELECT id, email, full_name, city FROM {table} ORDER BY id");
    assert_eq!(
        w.db.rows(&all("customers")).await,
        w.db.rows(&all("twin")).await
    );
    assert_eq!(w.ids().await.len(), 330);
}

macro_rules! for_each_destination {
    ($($name:ident => $scenario:ident),* $(,)?) => {
        for_each_destination!(@stores sqlite_store, Stores::Sqlite; $($name => $scenario),*);
        for_each_destination!(@stores postgres_store, Stores::Postgres; $($name => $scenario),*);
    };
    (@stores $stores_mod:ident, $stores:expr; $($name:ident => $scenario:ident),*) => {
        mod $stores_mod {
            use super::*;
            mod sqlite {
                use super::*;
                $(#[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = sqlite_db(dir.path()).await;
                    $scenario(world_on($stores, db, dir, 300).await).await;
                })*
            }
            mod postgres {
                use super::*;
                $(#[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = pg_db().await;
                    $scenario(world_on($stores, db, dir, 300).await).await;
                })*
            }
            mod mysql {
                use super::*;
                $(#[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    // Dropped when the test ends, after the scenario has consumed the world.
                    let (db, _drop_database) = mysql_db().await;
                    $scenario(world_on($stores, db, dir, 300).await).await;
                })*
            }
            mod snowflake {
                use super::*;
                $(#[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = snowflake_db().await;
                    $scenario(world_on($stores, db, dir, 300).await).await;
                })*
            }
        }
    };
}

/// What the table holds, for comparing with what a first export wrote.
async fn snapshot(w: &World) -> Vec<Vec<Option<String>>> {
    w.db.rows("SELECT id, email, full_name, ltv, city FROM customers ORDER BY id")
        .await
        .into_iter()
        .map(normalized)
        .collect()
}

async fn reconcile(w: &World, pipeline: &str) -> RunRecord {
    let run = w
        .engine
        .start_with(pipeline, "manual", sluice_engine::RunMode::Reconcile)
        .await
        .unwrap();
    w.engine.wait(&run.id, |_| {}).await.unwrap()
}

/// Rows written again by a run (inserts and updates: which of them depends on what is missing).
fn rewritten(r: &RunRecord) -> u64 {
    r.counts.inserted + r.counts.updated
}

/// A table changed behind Sluice's back converges: rows deleted (1%) are noticed by the row count at
/// the start of a run, rows edited (1%) by a reconcile, a truncated table by the count, a table dropped
/// and created again by its identity or its count. Each time the table ends as the first export wrote
/// it, a row that is not Sluice's is left alone, and only what differs is written.
async fn scenario_drift_converges(w: World) {
    let kind = w.db.kind();
    w.db.exec(ddl(kind)).await;
    let p = w.pipeline(json!({})).await;
    let r1 = w.run(&p).await;
    assert_succeeded(&r1);
    assert_eq!(r1.counts.inserted, 300);
    let first = snapshot(&w).await;
    assert_eq!(first.len(), 300);

    // Nothing changed: a reconcile reads every row back and rewrites none.
    let r = reconcile(&w, &p).await;
    assert_succeeded(&r);
    assert_eq!((rewritten(&r), r.counts.unchanged), (0, 300), "{r:?}");
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("0 rows missing and 0 rows changed"),
        "{r:?}"
    );

    // A row of someone else's, not in the sync state: never touched.
    w.db.exec("INSERT INTO customers (id, email, full_name, city) VALUES ('zz-other', 'o@x', 'Other', 'Mine')")
        .await;
    let others = "SELECT full_name, city FROM customers WHERE id = 'zz-other'";

    // 1% of the rows deleted: fewer rows than Sluice keeps, so the next run reconciles first.
    w.db.exec("DELETE FROM customers WHERE id IN ('p00010', 'p00120', 'p00230')")
        .await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!((rewritten(&r), r.counts.unchanged), (3, 297), "{r:?}");
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("reconciled before writing"),
        "{r:?}"
    );
    let mut now = snapshot(&w).await;
    now.retain(|row| row[0].as_deref() != Some("zz-other"));
    assert_eq!(now, first, "deleted rows are restored");

    // 1% of the rows edited: the count cannot see it, a reconcile does.
    w.db.exec("UPDATE customers SET city = 'Elsewhere' WHERE id IN ('p00011', 'p00121', 'p00231')")
        .await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(rewritten(&r), 0, "an ordinary run trusts its sync state");
    let r = reconcile(&w, &p).await;
    assert_succeeded(&r);
    assert_eq!((rewritten(&r), r.counts.unchanged), (3, 297), "{r:?}");
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("0 rows missing and 3 rows changed"),
        "{r:?}"
    );
    let mut now = snapshot(&w).await;
    now.retain(|row| row[0].as_deref() != Some("zz-other"));
    assert_eq!(now, first, "edited rows are rewritten");
    assert_eq!(
        w.db.rows(others).await,
        vec![vec![Some("Other".into()), Some("Mine".into())]]
    );

    // Truncated: the count (or, where truncating makes a new table, the identity) notices.
    let truncate = match kind {
        "sqlite" => "DELETE FROM customers",
        _ => "TRUNCATE TABLE customers",
    };
    w.db.exec(truncate).await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(rewritten(&r), 300, "{r:?}");
    assert_eq!(
        snapshot(&w).await,
        first,
        "a truncated table is written again"
    );

    // Dropped and created again, empty.
    w.db.exec("DROP TABLE customers").await;
    w.db.exec(ddl(kind)).await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(rewritten(&r), 300, "{r:?}");
    let m = r.message.clone().unwrap_or_default();
    assert!(m.contains("recreated") || m.contains("holds 0 rows"), "{m}");
    assert_eq!(
        snapshot(&w).await,
        first,
        "a recreated table is written again"
    );
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!((rewritten(&r), r.counts.unchanged), (0, 300), "{r:?}");
    assert_eq!(r.message, None, "a table in step says nothing");
    assert_counts_kept(&w, &p, "after drift was repaired").await;
}

/// `spec` with the fields of `changes` replaced.
fn changed(spec: &PipelineSpec, changes: &Value) -> PipelineSpec {
    let mut spec = serde_json::to_value(spec).unwrap();
    for (k, v) in changes.as_object().unwrap() {
        spec[k] = v.clone();
    }
    serde_json::from_value(spec).unwrap()
}

/// The counts of a run, but for how many profiles it read: on the PostgreSQL profile store, a read of
/// changes may read again profiles changed just before (see `World::assert_read`), finding them unchanged.
fn decided(c: &sluice_store::Counts) -> sluice_store::Counts {
    sluice_store::Counts { read: 0, ..*c }
}

/// Everything of a pipeline's sync state that a run may change.
async fn sync_snapshot(w: &World, p: &str) -> (u64, u64, Option<String>, Option<String>) {
    let meta = w.engine.meta();
    (
        meta.sync_count(p).await.unwrap(),
        meta.sync_count_left(p).await.unwrap(),
        meta.sync_checkpoint(p)
            .await
            .unwrap()
            .map(|c| c.fingerprint),
        meta.sync_table_identity(p).await.unwrap(),
    )
}

impl World {
    /// A dry run of the stored pipeline, or of `changes` to it (not saved), to its end.
    async fn dry(&self, pipeline: &str, changes: Value) -> sluice_engine::DryRunRecord {
        let mut rec = self
            .engine
            .meta()
            .get_pipeline(pipeline)
            .await
            .unwrap()
            .unwrap();
        rec.spec = changed(&rec.spec, &changes);
        let dry = self.engine.dry_run(rec, true, "manual").await.unwrap();
        let stored = self.engine.get_dry_run(&dry.run.id).await.unwrap();
        assert_eq!(
            stored.as_ref(),
            Some(&dry),
            "the dry run is stored as it ended"
        );
        dry
    }
}

/// A dry run says what the next real run does — the same counts, before the first run, after changes,
/// for a changed definition and for a recreated table — and writes nothing: the table and the sync
/// state are as they were, and the run history does not show it.
async fn scenario_dry_run_predicts_the_next_run(w: World) {
    let kind = w.db.kind();
    w.db.exec(ddl(kind)).await;
    let p = w.italians("delete").await;

    let d = w.dry(&p, json!({})).await;
    assert_succeeded(&d.run);
    assert_eq!(
        (d.run.counts.inserted, d.run.counts.updated),
        (100, 0),
        "{d:?}"
    );
    assert_eq!(w.count().await, 0, "a dry run writes nothing");
    assert_eq!(sync_snapshot(&w, &p).await, (0, 0, None, None));
    assert!(w
        .engine
        .meta()
        .list_runs(&p, 10, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(d.samples.inserts.len(), sluice_engine::DRY_RUN_SAMPLES);
    let first = &d.samples.inserts[0];
    assert_eq!(first.profile, "p00000");
    assert_eq!(first.row["email"], json!("user0@example.com"));
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(decided(&r.counts), decided(&d.run.counts));

    // 5 Italians leave, 5 change their e-mail, 2 arrive.
    let table = snapshot(&w).await;
    let state = sync_snapshot(&w, &p).await;
    let mut changes: Vec<Value> = (0..5).map(|i| moved_to(3 * i, "FR")).collect();
    for i in 5..10 {
        let mut c = profile(3 * i);
        c["email"] = json!(format!("new{i}@example.com"));
        changes.push(c);
    }
    changes.extend([profile(3000), profile(3003)]);
    w.upsert(changes).await;
    let d = w.dry(&p, json!({})).await;
    assert_succeeded(&d.run);
    let c = &d.run.counts;
    assert_eq!(
        (c.inserted, c.updated, c.deleted, c.unchanged, c.failed),
        (2, 5, 5, 90, 0),
        "{d:?}"
    );
    assert_eq!(snapshot(&w).await, table, "a dry run writes nothing");
    assert_eq!(sync_snapshot(&w, &p).await, state, "nor records anything");
    assert_eq!(d.samples.inserts.len(), 2);
    assert_eq!(d.samples.deletes.len(), 5);
    assert_eq!(d.samples.updates.len(), 5);
    let update = &d.samples.updates[0];
    assert_eq!(update.profile, "p00015");
    let changed: Vec<&str> = update.changes.iter().map(|c| c.column.as_str()).collect();
    assert_eq!(changed, ["email"], "{update:?}");
    assert_eq!(update.changes[0].before, json!("user15@example.com"));
    assert_eq!(update.changes[0].after, json!("new5@example.com"));
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(decided(&r.counts), decided(&d.run.counts));

    // A changed definition, not saved: the French join the audience.
    let both = json!({"filter": {"logical": "and", "conditions": [
        {"property": "country", "operator": "is one of", "values": ["IT", "FR"]}]}});
    let state = sync_snapshot(&w, &p).await;
    assert!(state.2.is_some(), "the run left a checkpoint");
    let d = w.dry(&p, both.clone()).await;
    assert_succeeded(&d.run);
    let c = &d.run.counts;
    assert_eq!((c.inserted, c.updated, c.unchanged), (105, 0, 97), "{d:?}");
    assert_eq!(
        sync_snapshot(&w, &p).await,
        state,
        "a changed definition's dry run keeps the checkpoint of the saved one"
    );
    w.set(&p, both).await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(decided(&r.counts), decided(&d.run.counts));

    // A table dropped and created again: the dry run says every row is written again, and leaves the
    // sync state to the real run to reset.
    let state = sync_snapshot(&w, &p).await;
    w.db.exec("DROP TABLE customers").await;
    w.db.exec(ddl(kind)).await;
    let d = w.dry(&p, json!({})).await;
    assert_succeeded(&d.run);
    assert_eq!(rewritten(&d.run), 202, "{d:?}");
    assert_eq!(sync_snapshot(&w, &p).await, state);
    assert_eq!(w.count().await, 0);
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(decided(&r.counts), decided(&d.run.counts));
    assert_eq!(r.message, d.run.message, "the same findings");
    assert!(w.engine.meta().list_runs(&p, 10, None).await.unwrap().len() == 4);
}

/// A kept row of a profile that left, deleted by someone else, is not brought back (the profile is not
/// in the audience) and Sluice stops counting it, so later runs do not reconcile again; a live row
/// deleted with it is restored.
async fn scenario_drift_kept_rows_of_leavers(w: World) {
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.italians("keep").await;
    assert_succeeded(&w.run(&p).await);
    w.upsert(vec![moved_to(0, "FR")]).await;
    assert_succeeded(&w.run(&p).await);
    assert_eq!(w.count().await, 100, "the leaver's row is kept");
    w.db.exec("DELETE FROM customers WHERE id IN ('p00000', 'p00003')")
        .await;
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(rewritten(&r), 1, "{r:?}");
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("holds 98 rows where Sluice keeps 100"),
        "{r:?}"
    );
    let ids = w.ids().await;
    assert!(ids.contains(&"p00003".to_string()) && !ids.contains(&"p00000".to_string()));
    let r = w.run(&p).await;
    assert_succeeded(&r);
    assert_eq!(r.message, None, "nothing is missing any more: {r:?}");
}

for_each_destination! {
    insert_update_unchanged => scenario_insert_update_unchanged,
    filter_and_on_leave_delete => scenario_filter_and_on_leave_delete,
    duplicate_keys_lower_id_wins => scenario_duplicate_keys,
    bad_row_is_isolated => scenario_bad_row_isolated,
    column_dropped_between_runs => scenario_column_dropped,
    missing_table_fails_the_run => scenario_missing_table,
    javascript_preview_equals_run => scenario_javascript_preview_equals_run,
    python_preview_equals_run => scenario_python_preview_equals_run,
    reads_only_changes => scenario_reads_only_changes,
    changes_over_several_pages => scenario_changes_over_several_pages,
    key_change_moves_the_row => scenario_key_change_moves_the_row,
    leavers_kept_then_deleted => scenario_leavers_kept_then_deleted,
    drift_converges => scenario_drift_converges,
    drift_kept_rows_of_leavers => scenario_drift_kept_rows_of_leavers,
    dry_run_predicts_the_next_run => scenario_dry_run_predicts_the_next_run,
}

mod clickhouse {
    use super::*;

    const DDL: &str = "CREATE TABLE customers (id String, email Nullable(String), full_name String, \
        ltv Nullable(Decimal(12, 2)), city Nullable(String), orders Nullable(UInt32), \
        untouched String DEFAULT 'default', version UInt64) ENGINE = ReplacingMergeTree(version) ORDER BY id";

    async fn count(w: &World, final_: bool) -> String {
        let sql = format!(
            "SELECT toString(count()) FROM customers{}",
            if final_ { " FINAL" } else { "" }
        );
        w.db.rows(&sql).await[0][0].clone().unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn inserts_and_updates_are_counted_from_the_sync_state() {
        let dir = tempfile::tempdir().unwrap();
        let w = world(clickhouse_db().await, dir, 300).await;
        w.db.exec(DDL).await;
        let p = w.pipeline(json!({})).await;
        let r1 = w.run(&p).await;
        assert_succeeded(&r1);
        assert_eq!(
            (r1.counts.read, r1.counts.inserted, r1.counts.updated),
            (300, 300, 0)
        );
        assert_eq!(count(&w, true).await, "300");
        let r2 = w.run(&p).await;
        assert_succeeded(&r2);
        assert_eq!(
            (r2.counts.unchanged, r2.counts.inserted, r2.counts.updated),
            (300, 0, 0)
        );
        let mut changed: Vec<Value> = (0..10).map(profile).collect();
        for c in &mut changed {
            c["address"]["city"] = json!("Besançon");
        }
        changed[3]["address"]["city"] = json!("Nîmes");
        w.upsert(changed).await;
        w.upsert(vec![profile(1000)]).await;
        let r3 = w.run(&p).await;
        assert_succeeded(&r3);
        assert_eq!(
            (r3.counts.updated, r3.counts.inserted, r3.counts.unchanged),
            (10, 1, 290)
        );
        // One row per key through FINAL (the replaced versions stay until ClickHouse merges them).
        assert_eq!(count(&w, true).await, "301");
        let rows =
            w.db.rows(
                "SELECT id, city, untouched, toString(version) FROM customers FINAL \
                 WHERE id IN ('p00003', 'p00100') ORDER BY id",
            )
            .await;
        assert_eq!(rows[0][1].as_deref(), Some("Nîmes"));
        assert_eq!(rows[0][2].as_deref(), Some("default"));
        let v = |i: usize| rows[i][3].as_deref().unwrap().parse::<u64>().unwrap();
        assert!(v(0) > v(1), "the third run's version is above the first's");
    }

    /// ClickHouse gets a run's batches in one insert, confirmed at the end: when the server refuses it
    /// then, no row of it is recorded, and the next run writes them all.
    #[tokio::test(flavor = "multi_thread")]
    async fn rows_the_server_did_not_confirm_are_written_by_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let w = world(clickhouse_db().await, dir, 300).await;
        // The server evaluates the check when it stores the insert, after every batch was sent.
        w.db.exec(&DDL.replace(
            "version UInt64)",
            "version UInt64, checked UInt8 MATERIALIZED throwIf(ifNull(orders, 0) > 1000))",
        ))
        .await;
        let mut bad = profile(7);
        bad["orders"] = json!(5000);
        w.upsert(vec![bad]).await;
        // Every column written: whole rows, which go into one insert (a partial mapping is staged).
        let p = w
            .pipeline(
                json!({"transformation": {"mapping": {"id": "_id", "email": "lower(email)",
                "full_name": "first_name \" \" last_name", "ltv": "ltv", "city": "address.city",
                "orders": "orders", "untouched": "country"}}}),
            )
            .await;
        let r1 = w.run(&p).await;
        assert_eq!(r1.status, RunStatus::Failed, "{r1:?}");
        let m = r1.message.unwrap();
        assert!(m.contains("not recorded") && m.contains("throwIf"), "{m}");
        // The refused insert stored nothing. (An insert cut off by the failed run's end may have been
        // stored in part: 18.16 stores what it received when the connection closes. Not recorded, it is
        // written again too.)
        let refused =
            w.db.rows("SELECT toString(count()) FROM customers WHERE id < 'p00128'")
                .await;
        assert_eq!(refused[0][0].as_deref(), Some("0"));

        w.upsert(vec![profile(7)]).await;
        let r2 = w.run(&p).await;
        assert_succeeded(&r2);
        assert_eq!(
            (r2.counts.inserted, r2.counts.updated, r2.counts.unchanged),
            (300, 0, 0)
        );
        assert_eq!(count(&w, true).await, "300");
    }

    async fn snapshot(w: &World) -> Vec<Vec<Option<String>>> {
        w.db.rows(
            "SELECT id, ifNull(email, ''), full_name, toString(ltv), ifNull(city, '') \
             FROM customers FINAL WHERE id LIKE 'p%' ORDER BY id",
        )
        .await
    }

    /// Runs a mutation and waits until the server applied it (18.16 applies them in the background).
    async fn mutate(w: &World, sql: &str) {
        w.db.exec(sql).await;
        for _ in 0..200 {
            let left = w
                .db
                .rows("SELECT toString(count()) FROM system.mutations WHERE database = currentDatabase() AND is_done = 0")
                .await;
            if left[0][0].as_deref() == Some("0") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the mutation did not finish: {sql}");
    }

    /// As `scenario_drift_converges`, with ClickHouse's own ways of changing a table: mutations to
    /// delete and edit rows, `TRUNCATE`, and a drop and create (whose identity on 18.16 is the
    /// metadata file's time, so within one second the row count is what notices).
    #[tokio::test(flavor = "multi_thread")]
    async fn drift_converges() {
        let dir = tempfile::tempdir().unwrap();
        let w = world(clickhouse_db().await, dir, 300).await;
        w.db.exec(DDL).await;
        let p = w.pipeline(json!({})).await;
        assert_succeeded(&w.run(&p).await);
        let first = snapshot(&w).await;
        assert_eq!(first.len(), 300);

        let r = reconcile(&w, &p).await;
        assert_succeeded(&r);
        assert_eq!((rewritten(&r), r.counts.unchanged), (0, 300), "{r:?}");

        w.db.exec("INSERT INTO customers (id, full_name, city, version) SELECT 'zz-other', 'Other', 'Mine', 1")
            .await;
        mutate(
            &w,
            "ALTER TABLE customers DELETE WHERE id IN ('p00010', 'p00120', 'p00230')",
        )
        .await;
        let r = w.run(&p).await;
        assert_succeeded(&r);
        assert_eq!((rewritten(&r), r.counts.unchanged), (3, 297), "{r:?}");
        assert!(
            r.message
                .as_deref()
                .unwrap_or("")
                .contains("reconciled before writing"),
            "{r:?}"
        );
        assert_eq!(snapshot(&w).await, first, "deleted rows are restored");

        mutate(&w, "ALTER TABLE customers UPDATE city = 'Elsewhere' WHERE id IN ('p00011', 'p00121', 'p00231')").await;
        let r = reconcile(&w, &p).await;
        assert_succeeded(&r);
        assert_eq!((rewritten(&r), r.counts.unchanged), (3, 297), "{r:?}");
        assert_eq!(snapshot(&w).await, first, "edited rows are rewritten");
        assert_eq!(
            w.db.rows("SELECT full_name, city FROM customers FINAL WHERE id = 'zz-other'")
                .await,
            vec![vec![Some("Other".into()), Some("Mine".into())]]
        );

        w.db.exec("TRUNCATE TABLE customers").await;
        let r = w.run(&p).await;
        assert_succeeded(&r);
        assert_eq!(rewritten(&r), 300, "{r:?}");
        assert_eq!(
            snapshot(&w).await,
            first,
            "a truncated table is written again"
        );

        w.db.exec("DROP TABLE customers").await;
        w.db.exec(DDL).await;
        let r = w.run(&p).await;
        assert_succeeded(&r);
        assert_eq!(rewritten(&r), 300, "{r:?}");
        assert_eq!(
            snapshot(&w).await,
            first,
            "a recreated table is written again"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn pipelines_the_table_cannot_serve_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let w = world(clickhouse_db().await, dir, 10).await;
        w.db.exec(DDL).await;
        let p = w.pipeline(json!({"on_leave": "delete"})).await;
        let r = w.run(&p).await;
        assert_eq!(r.status, RunStatus::Failed);
        let m = r.message.unwrap();
        assert!(m.contains("on_leave") && m.contains("23.12"), "{m}");
        let p = w.pipeline(json!({"key": "email"})).await;
        let r = w.run(&p).await;
        assert_eq!(r.status, RunStatus::Failed);
        let m = r.message.unwrap();
        assert!(m.contains("sorting key"), "{m}");
        assert_eq!(count(&w, false).await, "0");
    }
}

/// Scripts that never return: a cancel interrupts them at once, and a script that hits its time limit
/// on profile after profile fails its run instead of spending the limit on each of them.
mod stuck_scripts {
    use super::*;
    use std::time::{Duration, Instant};

    /// The world's stores behind an engine with pages of `batch` profiles and a time limit per profile.
    fn with_engine(w: World, batch: usize, time_limit: Duration) -> World {
        let engine = Engine::new(
            w.engine.meta().clone(),
            w.engine.profiles().clone(),
            EngineConfig {
                batch_size: Some(batch),
                script_limits: sluice_transform::Limits {
                    time_per_profile: time_limit,
                    ..sluice_transform::Limits::default()
                },
                ..EngineConfig::default()
            },
        );
        World { engine, ..w }
    }

    /// A run of a script that loops forever on every profile, on one page of 5,000, cancelled while a
    /// call is under way: with a time limit of 10 s per profile, only an interrupted call ends in time.
    async fn cancel_ends_a_looping_script(transformation: Value) {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(dir.path()).await;
        let w = with_engine(world(db, dir, 5000).await, 5000, Duration::from_secs(10));
        w.db.exec(ddl(w.db.kind())).await;
        let p = w
            .pipeline(json!({ "transformation": transformation }))
            .await;
        let run = w.engine.start(&p, "manual").await.unwrap();
        // Long enough for the run to be inside a call, far shorter than one call's limit.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let cancelled = Instant::now();
        assert!(w.engine.cancel(&run.id), "the run is still going");
        let r = tokio::time::timeout(Duration::from_secs(30), w.engine.wait(&run.id, |_| {}))
            .await
            .expect("the cancelled run ends")
            .unwrap();
        let took = cancelled.elapsed();
        assert_eq!(r.status, RunStatus::Cancelled, "{:?}", r.message);
        assert!(took < Duration::from_secs(3), "the cancel took {took:?}");
        assert_eq!(
            r.counts.transform_failed, 0,
            "the page cut short is dropped"
        );
        assert_eq!(w.count().await, 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cancel_interrupts_a_javascript_loop() {
        cancel_ends_a_looping_script(json!({"javascript":
            "const columns = [\"id\", \"full_name\"];\nfunction transform(p) { while (true) {} }"}))
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn cancel_stops_waiting_for_python_workers() {
        cancel_ends_a_looping_script(json!({"python":
            "columns = [\"id\", \"full_name\"]\ndef transform(p):\n    while True:\n        pass\n"}))
        .await
    }

    /// The first 100 profiles are transformed, every later one runs past the 100 ms limit: the run fails
    /// after 20 of them, naming the limit and the count, with the 100 rows before written and counted.
    async fn stuck_script_fails_its_run(transformation: Value) {
        let w = with_engine(
            world(pg_db().await, tempfile::tempdir().unwrap(), 300).await,
            64,
            Duration::from_millis(100),
        );
        w.db.exec(ddl(w.db.kind())).await;
        let p = w
            .pipeline(json!({ "transformation": transformation }))
            .await;
        let started = Instant::now();
        let r = w.run(&p).await;
        let took = started.elapsed();
        assert_eq!(r.status, RunStatus::Failed, "{r:?}");
        let m = r.message.clone().unwrap();
        assert!(
            m.contains("time limit of 100 ms") && m.contains("20 profiles in a row"),
            "{m}"
        );
        assert_eq!(
            (r.counts.inserted, r.counts.transform_failed),
            (100, 20),
            "{:?}",
            r.errors
        );
        assert!(
            r.errors[0].message.contains("time limit of 100 ms"),
            "{:?}",
            r.errors
        );
        assert_eq!(w.ids().await.len(), 100);
        assert_eq!(w.ids().await.last().map(String::as_str), Some("p00099"));
        // 180 profiles at 100 ms each would take 18 s.
        assert!(took < Duration::from_secs(12), "the run took {took:?}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stuck_javascript_fails_its_run() {
        stuck_script_fails_its_run(json!({"javascript": r#"const columns = ["id", "full_name"];
function transform(p) {
    if (Number(p._id.slice(1)) < 100) return { id: p._id, full_name: p.last_name };
    while (true) {}
}"#}))
        .await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stuck_python_fails_its_run() {
        stuck_script_fails_its_run(json!({"python": r#"import time
columns = ["id", "full_name"]
def transform(p):
    if int(p["_id"][1:]) < 100:
        return {"id": p["_id"], "full_name": p["last_name"]}
    time.sleep(0.15)
"#}))
        .await
    }
}

/// Under the smallest budget for rows in flight (one byte: a page is read only once the one before is
/// written), a run reads page after page as the rows before it are written, to PostgreSQL: every row
/// lands, and a run that follows (the budget given back) writes its changes too. A budget that was
/// never given back would leave the second run's reader waiting forever: the timeout fails the test.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_under_the_smallest_memory_budget_writes_every_row() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let w = world(pg_db().await, dir, 500).await;
    let engine = Engine::new(
        w.engine.meta().clone(),
        w.engine.profiles().clone(),
        EngineConfig {
            batch_size: Some(64),
            rows_in_flight_bytes: 1,
            ..EngineConfig::default()
        },
    );
    let w = World { engine, ..w };
    w.db.exec(ddl(w.db.kind())).await;
    let p = w.pipeline(json!({})).await;
    let r = tokio::time::timeout(Duration::from_secs(60), w.run(&p))
        .await
        .expect("the run ends");
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.message);
    assert_eq!(r.counts.inserted, 500);
    assert_eq!(w.count().await, 500);
    // A country none of them had: every one of the 200 changes.
    w.upsert((0..200).map(|i| moved_to(i, "ES")).collect())
        .await;
    let r = tokio::time::timeout(Duration::from_secs(60), w.run(&p))
        .await
        .expect("the second run ends");
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.message);
    assert_eq!(r.counts.read, 200);
    assert_eq!(w.count().await, 500);
}
