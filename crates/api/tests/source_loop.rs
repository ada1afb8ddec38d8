//! The loop end to end, through the API with the scheduler running and nobody starting a run: a
//! PostgreSQL table read by a `cursor` source on a schedule feeds the profiles, and an export pipeline on
//! `on_change` writes them to a MariaDB/MySQL table. A row inserted, then updated, in the PostgreSQL table
//! appears, then changes, in the MariaDB table.
//!
//! The source is on `5s` with the system's clock, and the scheduler's `scheduler_interval` is 30 s: a
//! source run within a second of each 5 s tick, and a row in the profile store within a tick and a run
//! of its insert, come from the scheduler sleeping until the source's next tick, not from its polling.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeDelta, Timelike, Utc};
use http_body_util::BodyExt;
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};
use sluice_core::on_change::Debounce;
use sluice_engine::scheduler::{self, SystemClock};
use sluice_engine::{Engine, EngineConfig};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "test-token";
struct Loop {
    app: Router,
    pg_url: String,
    my_url: String,
    schema: String,
    database: String,
    _scheduler: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Loop {
    async fn new() -> Loop {
        let pg_url = std::env::var("SLUICE_TEST_POSTGRES_URL")
            .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
        let my_url = std::env::var("SLUICE_TEST_MYSQL_URL")
            .expect("SLUICE_TEST_MYSQL_URL must name a MySQL or MariaDB server for these tests (scripts/services.sh starts one)");
        let dir = tempfile::tempdir().unwrap();
        let (meta, profiles) = support::stores(dir.path()).await;
        let config = EngineConfig {
            // Longer than the whole test's waits: only the sleep until a source's tick can start its
            // runs on time.
            scheduler_interval: Duration::from_secs(30),
            on_change_interval: Duration::from_millis(200),
            on_change_debounce: Debounce {
                quiet: TimeDelta::milliseconds(300),
                max_wait: TimeDelta::seconds(2),
            },
            ..EngineConfig::default()
        };
        let engine = Engine::new(meta, profiles, config);
        let scheduler = scheduler::spawn(engine.clone(), Arc::new(SystemClock));
        let app = sluice_api::router(sluice_api::AppState::new(engine, TOKEN));
        let id = uuid::Uuid::new_v4().simple().to_string();
        let l = Loop {
            app,
            pg_url,
            my_url,
            schema: format!("sb_loop_{id}"),
            database: format!("sb_loop_{}", &id[..16]),
            _scheduler: scheduler,
            _dir: dir,
        };
        l.pg(&format!("CREATE SCHEMA {}", l.schema)).await;
        l.my(
            None,
            &format!("CREATE DATABASE `{}` DEFAULT CHARSET utf8mb4", l.database),
        )
        .await;
        l
    }

    async fn pg(&self, sql: &str) {
        let (c, conn) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO {}; {sql}", self.schema))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn my_conn(&self, database: Option<&str>) -> mysql_async::Conn {
        let mut opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&self.my_url).expect("SLUICE_TEST_MYSQL_URL"),
        );
        if let Some(db) = database {
            opts = opts.db_name(Some(db));
        }
        mysql_async::Conn::new(opts).await.unwrap()
    }

    async fn my(&self, database: Option<&str>, sql: &str) {
        let mut c = self.my_conn(database).await;
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        c.disconnect().await.ok();
    }

    /// The rows of the MariaDB table, by id.
    async fn destination(&self) -> Vec<(String, String, String)> {
        let mut c = self.my_conn(Some(&self.database)).await;
        let rows: Vec<(String, String, String)> = c
            .query("SELECT id, email, city FROM sb_people_out ORDER BY id")
            .await
            .unwrap();
        c.disconnect().await.ok();
        rows
    }

    /// Waits (up to 60 s) until the MariaDB table holds `want`.
    async fn wait_for(&self, want: &[(&str, &str, &str)]) -> Duration {
        let start = Instant::now();
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        loop {
            let rows = self.destination().await;
            if rows == want {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the destination table holds {rows:?}, not {want:?}, after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {TOKEN}"));
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Waits until the profile store has profile `id` with `email`; answers how long that took.
    async fn wait_for_profile(&self, id: &str, email: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let (s, v) = self.call("GET", &format!("/v1/profiles/{id}"), None).await;
            if s == StatusCode::OK && v["email"] == email {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "profile {id} is {s} {v} after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create(&self, path: &str, body: Value) -> String {
        let (s, v) = self.call("POST", path, Some(body)).await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn runs(&self, path: &str) -> Vec<Value> {
        let (s, v) = self.call("GET", path, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v.get("runs")
            .unwrap_or(&v)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn cleanup(&self) {
        self.pg(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await;
        self.my(None, &format!("DROP DATABASE `{}`", self.database))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_postgresql_reaches_mariadb_with_nobody_starting_a_run() {
    let l = Loop::new().await;
    let (s, v) = l
        .call(
            "PUT",
            "/v1/profile-schema",
            Some(json!({"properties": [
                {"name": "email", "type": "string"},
                {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    l.pg(
        "CREATE TABLE sb_people (customer_id text PRIMARY KEY, email text NOT NULL, city text, \
          updated_at timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    .await;
    l.my(
        Some(&l.database),
        "CREATE TABLE sb_people_out (id varchar(64) PRIMARY KEY, email varchar(200) NOT NULL, \
         city varchar(100) NOT NULL)",
    )
    .await;

    let mut pg = sluice_destinations::postgres::PostgresSettings::json_from_url(&l.pg_url).unwrap();
    pg["schema"] = json!(l.schema);
    pg["tls"] = json!({"mode": "disable"});
    let crm = l
        .create(
            "/v1/destinations",
            json!({"name": "CRM", "type": "postgresql", "settings": pg}),
        )
        .await;
    let opts = mysql_async::Opts::from_url(&l.my_url).unwrap();
    let my = json!({"host": opts.ip_or_hostname(), "port": opts.tcp_port(),
                    "username": opts.user().unwrap_or("root"), "password": opts.pass().unwrap_or(""),
                    "database": l.database, "tls": {"mode": "disable"}});
    let shop = l
        .create(
            "/v1/destinations",
            json!({"name": "Shop", "type": "mysql", "settings": my}),
        )
        .await;
    let people = json!({
        "connection": crm, "name": "CRM people", "table": "sb_people", "id_column": "customer_id",
        "transformation": {"mapping": {"email": "lower(email)", "address.city": "city"}},
        "changes": {"mode": "cursor", "column": "updated_at"},
        "schedule": "7s"
    });
    let (s, v) = l.call("POST", "/v1/sources", Some(people)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let m = v["error"]["fields"]["schedule"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        m.contains("`7s`") && m.contains("5s, 10s, 15s, 30s, 1m, 2m, 5m"),
        "{v}"
    );
    let source = l
        .create(
            "/v1/sources",
            json!({
                "connection": crm, "name": "CRM people", "table": "sb_people", "id_column": "customer_id",
                "transformation": {"mapping": {"email": "lower(email)", "address.city": "city"}},
                "changes": {"mode": "cursor", "column": "updated_at"},
                "schedule": "5s"
            }),
        )
        .await;
    let pipeline = l
        .create(
            "/v1/pipelines",
            json!({
                "destination": shop, "name": "Shop people", "table": "sb_people_out", "key": "id",
                "transformation": {"mapping": {"id": "_id", "email": "email", "city": "address.city"}},
                "schedule": "on_change"
            }),
        )
        .await;

    // Inserted in PostgreSQL, it is in the profile store by the next 5 s tick and a run, then in MariaDB.
    l.pg(
        "INSERT INTO sb_people (customer_id, email, city) VALUES ('p1', 'Ann@Example.com', 'Rome')",
    )
    .await;
    let took = l
        .wait_for_profile("p1", "ann@example.com", Duration::from_secs(10))
        .await;
    eprintln!("insert reached the profile store in {took:?}");
    let took = l.wait_for(&[("p1", "ann@example.com", "Rome")]).await;
    eprintln!("insert reached MariaDB in {took:?}");

    // Updated in PostgreSQL (with a newer cursor value), it changes in MariaDB; a second row comes along.
    l.pg("UPDATE sb_people SET email = 'Ann.B@Example.com', city = 'Milan', updated_at = clock_timestamp() \
          WHERE customer_id = 'p1'; \
          INSERT INTO sb_people (customer_id, email, city) VALUES ('p2', 'Bo@Example.com', 'Lyon')")
        .await;
    let took = l
        .wait_for(&[
            ("p1", "ann.b@example.com", "Milan"),
            ("p2", "bo@example.com", "Lyon"),
        ])
        .await;
    eprintln!("update reached MariaDB in {took:?}");

    // Nobody started a run: the source's came from its schedule, the export's from the changes.
    let source_runs = l.runs(&format!("/v1/sources/{source}/runs")).await;
    assert!(source_runs.len() >= 2, "{source_runs:?}");
    assert!(
        source_runs.iter().all(|r| r["trigger"] == "schedule"),
        "{source_runs:?}"
    );
    // Each was queued within a second of a 5 s tick, or, a follow-up for ticks that fell during the
    // run before it, within a second of that run's end; none overlaps the one before.
    let at = |r: &Value, field: &str| -> Option<DateTime<Utc>> { r[field].as_str()?.parse().ok() };
    let mut runs = source_runs.clone();
    runs.sort_by_key(|r| at(r, "queued_at"));
    for (i, r) in runs.iter().enumerate() {
        let queued = at(r, "queued_at").unwrap();
        let past_tick = TimeDelta::seconds(i64::from(queued.second() % 5))
            + TimeDelta::nanoseconds(i64::from(queued.nanosecond()));
        let previous_end = i.checked_sub(1).and_then(|p| at(&runs[p], "finished_at"));
        if let Some(end) = previous_end {
            assert!(queued >= end, "two source runs at once: {runs:?}");
        }
        let follow_up = previous_end.is_some_and(|end| queued - end < TimeDelta::seconds(1));
        assert!(
            past_tick < TimeDelta::seconds(1) || follow_up,
            "a source run queued {past_tick} after its tick: {r}"
        );
    }
    let export_runs = l.runs(&format!("/v1/pipelines/{pipeline}/runs")).await;
    assert!(export_runs.len() >= 2, "{export_runs:?}");
    assert!(
        export_runs.iter().all(|r| r["trigger"] == "on_change"),
        "{export_runs:?}"
    );
    assert!(
        export_runs
            .iter()
            .any(|r| r["changes"]["changed"].as_u64().unwrap_or(0) >= 1),
        "an on_change run names the changes that set it off: {export_runs:?}"
    );
    l.cleanup().await;
}
