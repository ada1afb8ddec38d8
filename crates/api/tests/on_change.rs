//! End to end through the API: an export pipeline with `"schedule": "on_change"` writes profiles posted
//! to the API (and removes deleted ones) into a real PostgreSQL table, with the scheduler running on
//! the system clock and nobody starting a run; a burst of 50 requests makes one run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use chrono::TimeDelta;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_core::on_change::Debounce;
use sluice_engine::scheduler::{self, SystemClock};
use sluice_engine::{Engine, EngineConfig};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "test-token";

struct Api {
    app: Router,
    pg_url: String,
    schema: String,
    _scheduler: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        Api::with_passes_every(EngineConfig::default().scheduler_interval).await
    }

    /// An API whose scheduler makes a full pass (pipelines' schedules) every `interval`.
    async fn with_passes_every(interval: Duration) -> Api {
        let pg_url = std::env::var("SLUICE_TEST_POSTGRES_URL")
            .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
        let dir = tempfile::tempdir().unwrap();
        let (meta, profiles) = support::stores(dir.path()).await;
        let config = EngineConfig {
            scheduler_interval: interval,
            on_change_interval: Duration::from_millis(200),
            on_change_debounce: Debounce {
                quiet: TimeDelta::seconds(2),
                max_wait: TimeDelta::seconds(20),
            },
            ..EngineConfig::default()
        };
        let engine = Engine::new(meta, profiles, config);
        let scheduler = scheduler::spawn(engine.clone(), Arc::new(SystemClock));
        let app = sluice_api::router(sluice_api::AppState::new(engine, TOKEN));
        let schema = format!("onchange_{}", uuid::Uuid::new_v4().simple());
        let api = Api {
            app,
            pg_url,
            schema,
            _scheduler: scheduler,
            _dir: dir,
        };
        api.sql(&format!("CREATE SCHEMA {}", api.schema)).await;
        api
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .unwrap();
        c
    }

    async fn sql(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }

    async fn emails(&self) -> Vec<(String, String)> {
        self.client()
            .await
            .query("SELECT id, email FROM people ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
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
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    async fn runs(&self, pipeline: &str) -> Vec<Value> {
        let (s, v) = self
            .call("GET", &format!("/v1/pipelines/{pipeline}/runs"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let list = v.get("runs").unwrap_or(&v);
        list.as_array().cloned().unwrap_or_default()
    }

    /// Waits until the pipeline has `n` runs, all finished.
    async fn wait_runs(&self, pipeline: &str, n: usize) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let runs = self.runs(pipeline).await;
            let finished = runs
                .iter()
                .all(|r| !matches!(r["status"].as_str(), Some("queued" | "running")));
            if runs.len() >= n && finished {
                return runs;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "expected {n} finished runs, have {runs:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Customer Model, a `people` table and a destination for it; the destination's id.
    async fn warehouse(&self) -> String {
        let (s, v) = self
            .call(
                "PUT",
                "/v1/profile-schema",
                Some(json!({"properties": [{"name": "email", "type": "string"}]})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        self.sql("CREATE TABLE people (id text PRIMARY KEY, email text NOT NULL)")
            .await;
        let mut settings =
            sluice_destinations::postgres::PostgresSettings::json_from_url(&self.pg_url).unwrap();
        settings["schema"] = json!(self.schema);
        settings["tls"] = json!({"mode": "disable"});
        let (s, v) = self
            .call(
                "POST",
                "/v1/destinations",
                Some(json!({"name": "Warehouse", "type": "postgresql", "settings": settings})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

/// A pipeline switched to `on_change` follows changes from the scheduler's next look, not from its next
/// full pass (a minute away here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_switched_to_on_change_follows_changes_at_once() {
    let api = Api::with_passes_every(Duration::from_secs(60)).await;
    let dest = api.warehouse().await;
    let (s, v) = api
        .call(
            "POST",
            "/v1/pipelines",
            Some(json!({
                "destination": dest, "name": "Later", "table": "people", "key": "id",
                "transformation": {"mapping": {"id": "_id", "email": "email"}}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let pipeline = v["id"].as_str().unwrap().to_string();
    // The scheduler's first pass has found nothing to follow by now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, _) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [{"_id": "c1", "email": "a@example.com"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let switched = Instant::now();
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{pipeline}"),
            Some(json!({"schedule": "on_change"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let runs = api.wait_runs(&pipeline, 1).await;
    assert!(
        switched.elapsed() < Duration::from_secs(10),
        "the first run came {:?} after the switch",
        switched.elapsed()
    );
    assert_eq!(runs[0]["trigger"], "on_change", "{}", runs[0]);
    assert_eq!(
        api.emails().await,
        vec![("c1".to_string(), "a@example.com".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_posted_reach_the_table_through_on_change() {
    let api = Api::new().await;
    let dest = api.warehouse().await;
    let (s, v) = api
        .call(
            "POST",
            "/v1/pipelines",
            Some(json!({
                "destination": dest, "name": "Follow", "table": "people", "key": "id",
                "transformation": {"mapping": {"id": "_id", "email": "lower(email)"}},
                "schedule": "on_change", "on_leave": "delete"
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["schedule"], "on_change");
    let pipeline = v["id"].as_str().unwrap().to_string();

    // Its first run catches up at once (nothing to write yet).
    let runs = api.wait_runs(&pipeline, 1).await;
    assert_eq!(runs[0]["trigger"], "on_change");
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    assert!(runs[0].get("changes").is_none(), "{}", runs[0]);

    // A burst of 50 requests, one profile each, sent together.
    let posts = (0..50).map(|i| {
        api.call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [{"_id": format!("c{i:02}"), "email": format!("U{i}@Example.com")}]})),
        )
    });
    let burst = chrono::Utc::now();
    for (s, v) in futures::future::join_all(posts).await {
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let burst_end = chrono::Utc::now();
    let runs = api.wait_runs(&pipeline, 2).await;
    let at = |f: &str| {
        chrono::DateTime::parse_from_rfc3339(runs[0][f].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // For BENCHMARKS.md: the delay is the quiet time (2 s here) plus up to one look (0.2 s) and the run.
    eprintln!(
        "burst of 50 requests took {} ms; its run started {} ms and finished {} ms after the last",
        (burst_end - burst).num_milliseconds(),
        (at("started_at") - burst_end).num_milliseconds(),
        (at("finished_at") - burst_end).num_milliseconds()
    );
    assert_eq!(runs[0]["trigger"], "on_change");
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["changes"], json!({"changed": 50, "deleted": 0}));
    assert_eq!(runs[0]["counts"]["inserted"], 50);
    let rows = api.emails().await;
    assert_eq!(rows.len(), 50);
    assert_eq!(rows[7], ("c07".to_string(), "u7@example.com".to_string()));
    // Quiet since: no more runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(api.runs(&pipeline).await.len(), 2, "one run for the burst");

    // A change and a delete: one more run, which updates one row and deletes another.
    let (s, v) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [{"_id": "c03", "email": "NEW@Example.com"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api.call("DELETE", "/v1/profiles/c04", None).await;
    assert!(s.is_success(), "{s}");
    let runs = api.wait_runs(&pipeline, 3).await;
    assert_eq!(runs[0]["changes"], json!({"changed": 1, "deleted": 1}));
    assert_eq!(runs[0]["counts"]["updated"], 1, "{}", runs[0]);
    assert_eq!(runs[0]["counts"]["deleted"], 1, "{}", runs[0]);
    let rows = api.emails().await;
    assert_eq!(rows.len(), 49);
    assert!(rows.contains(&("c03".to_string(), "new@example.com".to_string())));
    assert!(!rows.iter().any(|(id, _)| id == "c04"));

    // A disabled pipeline does not follow changes.
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{pipeline}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [{"_id": "c99", "email": "late@example.com"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(api.runs(&pipeline).await.len(), 3);
    assert_eq!(api.emails().await.len(), 49);
}
