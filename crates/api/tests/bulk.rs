//! `POST /v1/profiles` takes batches of at least 10,000 profiles in one request, rejecting only the bad ones.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_engine::{Engine, EngineConfig};
use tower::ServiceExt;

mod support;

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_profiles_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, profiles) = support::stores(dir.path()).await;
    let app = sluice_api::router(sluice_api::AppState::new(
        Engine::new(meta, profiles.clone(), EngineConfig::default()),
        "t",
    ));
    let schema = json!({"properties": [
        {"name": "email", "type": "string"},
        {"name": "score", "type": "int"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]});
    assert_eq!(
        call(&app, "PUT", "/v1/profile-schema", schema).await.0,
        StatusCode::OK
    );

    let batch: Vec<Value> = (0..12_000)
        .map(|i| {
            // Every thousandth profile is invalid and must be rejected alone, with its index.
            let score = if i % 1000 == 999 {
                json!("many")
            } else {
                json!(i)
            };
            json!({"_id": format!("p{i:05}"), "email": format!("u{i}@example.com"), "score": score,
                   "address": {"city": "Kraków"}})
        })
        .collect();
    let (status, answer) = call(&app, "POST", "/v1/profiles", json!({ "profiles": batch })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["upserted"], 11_988);
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 12);
    assert_eq!(rejected[0]["index"], 999);
    assert_eq!(rejected[0]["_id"], "p00999");
    assert!(
        rejected[0]["errors"][0].as_str().unwrap().contains("score"),
        "{answer}"
    );
    assert_eq!(profiles.count(None).await.unwrap(), 11_988);
}
