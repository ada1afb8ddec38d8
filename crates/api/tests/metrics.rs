//! `/metrics`: counters only go up, whatever happens to the stored runs, so that Prometheus `rate()` is
//! right; they count the runs this instance finished.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{Counts, MetadataStore, Progress, RunRecord, RunStatus};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "t";

async fn call(app: &Router, method: &str, path: &str, body: Option<Value>) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"));
    let req = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            req.body(Body::from(b.to_string())).unwrap()
        }
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn json_call(app: &Router, method: &str, path: &str, body: Option<Value>) -> Value {
    let (status, text) = call(app, method, path, body).await;
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The counter series of a scrape: every sample of a `counter` family, and the `_sum` and `_count` of
/// every `summary` family.
fn counters(text: &str) -> BTreeMap<String, f64> {
    let mut monotonic: Vec<String> = Vec::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            match kind {
                "counter" => monotonic.push(name.to_string()),
                "summary" => {
                    monotonic.push(format!("{name}_sum"));
                    monotonic.push(format!("{name}_count"));
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        if monotonic.iter().any(|m| m == name) {
            out.insert(series.to_string(), value.parse().unwrap());
        }
    }
    out
}

fn assert_monotonic(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) {
    for (series, old) in before {
        let new = after
            .get(series)
            .unwrap_or_else(|| panic!("{series} disappeared"));
        assert!(new >= old, "{series} went down from {old} to {new}");
    }
}

async fn run_and_wait(app: &Router, pipeline: &str) -> Value {
    let started = json_call(app, "POST", &format!("/v1/pipelines/{pipeline}/runs"), None).await;
    let id = started["id"].as_str().unwrap();
    for _ in 0..600 {
        let run = json_call(app, "GET", &format!("/v1/runs/{id}"), None).await;
        if run["status"] != "queued" && run["status"] != "running" {
            return run;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn counters_only_go_up() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, profiles) = support::stores(dir.path()).await;
    let engine = Engine::new(meta.clone(), profiles, EngineConfig::default());
    let app = sluice_api::router(sluice_api::AppState::new(engine, TOKEN));

    let table = dir.path().join("dest.db");
    rusqlite::Connection::open(&table)
        .unwrap()
        .execute_batch("CREATE TABLE customers (customer_id TEXT PRIMARY KEY, email TEXT)")
        .unwrap();
    json_call(
        &app,
        "PUT",
        "/v1/profile-schema",
        Some(json!({"properties": [{"name": "email", "type": "string"}]})),
    )
    .await;
    let load = |n: usize, domain: &str| {
        let profiles: Vec<Value> = (0..n)
            .map(|i| json!({"_id": format!("c{i}"), "email": format!("u{i}@{domain}")}))
            .collect();
        json!({ "profiles": profiles })
    };
    json_call(&app, "POST", "/v1/profiles", Some(load(3, "a.example"))).await;
    let dest = json_call(
        &app,
        "POST",
        "/v1/destinations",
        Some(json!({"name": "local", "type": "sqlite", "settings": {"path": table}})),
    )
    .await;
    let pipeline = json_call(
        &app,
        "POST",
        "/v1/pipelines",
        Some(json!({"destination": dest["id"], "name": "all", "table": "customers",
            "key": "customer_id", "transformation": {"mapping": {"customer_id": "_id", "email": "email"}}})),
    )
    .await;
    let id = pipeline["id"].as_str().unwrap().to_string();
    let scrape = || async {
        let (status, text) = call(&app, "GET", "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        text
    };
    let series = |outcome: &str, family: &str| {
        format!("{family}{{pipeline=\"{id}\",outcome=\"{outcome}\"}}")
    };

    // Every series exists from the start, at zero.
    let first = counters(&scrape().await);
    assert_eq!(first[&series("succeeded", "sluice_runs_total")], 0.0);
    assert_eq!(first[&series("inserted", "sluice_rows_total")], 0.0);

    let run = run_and_wait(&app, &id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let second = counters(&scrape().await);
    assert_monotonic(&first, &second);
    assert_eq!(second[&series("succeeded", "sluice_runs_total")], 1.0);
    assert_eq!(second[&series("inserted", "sluice_rows_total")], 3.0);
    assert_eq!(
        second[&format!("sluice_run_duration_seconds_count{{pipeline=\"{id}\"}}")],
        1.0
    );

    // A thousand newer runs in the store (another instance's, say) push this one out of any window of
    // recent runs: the counters, which are this instance's, do not move.
    store_finished_runs(&meta, &id, 1000).await;
    let text = scrape().await;
    let third = counters(&text);
    assert_eq!(third, second);
    assert!(
        text.contains(&format!(
            "sluice_seconds_since_last_success{{pipeline=\"{id}\"}} "
        )),
        "the last success is remembered beyond the recent runs: {text}"
    );

    json_call(&app, "POST", "/v1/profiles", Some(load(4, "b.example"))).await;
    let run = run_and_wait(&app, &id).await;
    assert_eq!(run["counts"]["updated"], 3, "{run}");
    let fourth = counters(&scrape().await);
    assert_monotonic(&third, &fourth);
    assert_eq!(fourth[&series("succeeded", "sluice_runs_total")], 2.0);
    assert_eq!(fourth[&series("inserted", "sluice_rows_total")], 4.0);
    assert_eq!(fourth[&series("updated", "sluice_rows_total")], 3.0);

    // The gauges read only recent runs: the last duration is there, and so is the last success.
    let text = scrape().await;
    assert!(
        text.contains(&format!(
            "sluice_seconds_since_last_success{{pipeline=\"{id}\"}} "
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sluice_pipeline_runs_in_progress{{pipeline=\"{id}\",status=\"running\"}} 0"
        )),
        "{text}"
    );
}

async fn store_finished_runs(meta: &Arc<dyn MetadataStore>, pipeline: &str, n: usize) {
    let now = chrono::Utc::now();
    for i in 0..n {
        let run = RunRecord {
            id: format!("run_elsewhere_{i}"),
            pipeline: pipeline.to_string(),
            trigger: "schedule".into(),
            changes: None,
            status: RunStatus::Failed,
            queued_at: now,
            started_at: Some(now),
            finished_at: Some(now),
            progress: Progress::default(),
            counts: Counts::default(),
            errors: vec![],
            message: Some("elsewhere".into()),
        };
        meta.insert_run(&run).await.unwrap();
    }
}
