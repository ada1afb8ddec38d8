//! Request body limits per route, and the profile batch cap, through the router with embedded stores.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_api::BodyLimits;
use tower::ServiceExt;

mod support;

const TOKEN: &str = "test-token";

async fn app(limits: Option<BodyLimits>) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = support::engine(dir.path()).await;
    let mut state = sluice_api::AppState::new(engine, TOKEN);
    if let Some(l) = limits {
        state = state.with_body_limits(l);
    }
    let app = sluice_api::router(state);
    let model = json!({"properties": [{"name": "pad", "type": "string"}]});
    let (s, v) = send(
        &app,
        "PUT",
        "/v1/profile-schema",
        model.to_string().into_bytes(),
        Send::Declared,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (app, dir)
}

/// How a body is sent: with its length declared, or streamed in chunks without one.
#[derive(Clone, Copy, Debug)]
enum Send {
    Declared,
    Streamed,
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    body: Vec<u8>,
    how: Send,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json");
    let req = match how {
        Send::Declared => req
            .header("content-length", body.len())
            .body(Body::from(body))
            .unwrap(),
        Send::Streamed => {
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .chunks(1000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            req.body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        }
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A JSON body of exactly `n` bytes: an object padded with a string.
fn json_of_len(n: usize) -> Vec<u8> {
    let shell = r#"{"name": ""}"#.len();
    format!(r#"{{"name": "{}"}}"#, "x".repeat(n - shell)).into_bytes()
}

/// A profile batch of exactly `n` bytes.
fn batch_of_len(n: usize) -> Vec<u8> {
    let shell = r#"{"profiles": [{"_id": "p1", "pad": ""}]}"#.len();
    format!(
        r#"{{"profiles": [{{"_id": "p1", "pad": "{}"}}]}}"#,
        "x".repeat(n - shell)
    )
    .into_bytes()
}

fn assert_too_large(status: StatusCode, v: &Value, limit: usize, what: &str) {
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{what}: {v}");
    assert_eq!(v["error"]["code"], "PayloadTooLarge", "{what}: {v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(&limit.to_string()), "{what}: {message}");
}

#[tokio::test]
async fn a_body_one_byte_over_its_routes_limit_is_413_and_one_at_it_is_read() {
    let limits = BodyLimits {
        default: 2_000,
        profiles: 10_000,
    };
    let (app, _dir) = app(Some(limits)).await;
    for how in [Send::Declared, Send::Streamed] {
        // Most routes: the small limit.
        let (s, v) = send(&app, "POST", "/v1/destinations", json_of_len(2_001), how).await;
        assert_too_large(s, &v, 2_000, &format!("destination {how:?}"));
        let (s, v) = send(&app, "POST", "/v1/destinations", json_of_len(2_000), how).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "read and judged: {v}");
        let (s, v) = send(
            &app,
            "POST",
            "/v1/pipelines/preview",
            json_of_len(2_001),
            how,
        )
        .await;
        assert_too_large(s, &v, 2_000, &format!("preview {how:?}"));
        // Profile batches: the larger one.
        let (s, v) = send(&app, "POST", "/v1/profiles", batch_of_len(10_001), how).await;
        assert_too_large(s, &v, 10_000, &format!("profiles {how:?}"));
        let (s, v) = send(&app, "POST", "/v1/profiles", batch_of_len(10_000), how).await;
        assert_eq!(s, StatusCode::OK, "{how:?}: {v}");
        assert_eq!(v["upserted"], 1, "{v}");
    }
}

#[tokio::test]
async fn the_default_limits_are_1_mib_and_64_mib_for_profile_batches() {
    let (app, _dir) = app(None).await;
    let defaults = BodyLimits::default();
    assert_eq!(defaults.default, 1 << 20);
    assert_eq!(defaults.profiles, 64 << 20);
    let (s, v) = send(
        &app,
        "PUT",
        "/v1/profile-schema",
        json_of_len((1 << 20) + 1),
        Send::Declared,
    )
    .await;
    assert_too_large(s, &v, 1 << 20, "schema");
    // A profile batch of 2 MiB is over the small limit but well under its own.
    let (s, v) = send(
        &app,
        "POST",
        "/v1/profiles",
        batch_of_len(2 << 20),
        Send::Streamed,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_endless_streamed_body_is_cut_at_the_limit() {
    let (app, _dir) = app(Some(BodyLimits {
        default: 4_096,
        profiles: 65_536,
    }))
    .await;
    // Reading all of it would never end: the answer comes once the limit is passed.
    let endless =
        futures::stream::repeat_with(|| Ok::<_, std::io::Error>(Bytes::from_static(&[b' '; 1024])));
    let req = Request::builder()
        .method("POST")
        .uri("/v1/profiles")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from_stream(endless))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), app.oneshot(req))
        .await
        .expect("answered without reading the whole body")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_batch_of_50001_profiles_is_refused_at_the_cap_and_nothing_is_stored() {
    let (app, _dir) = app(None).await;
    let over: Vec<Value> = (0..50_001)
        .map(|i| json!({"_id": format!("p{i}")}))
        .collect();
    let body = json!({"profiles": over}).to_string().into_bytes();
    let (s, v) = send(&app, "POST", "/v1/profiles", body, Send::Declared).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["fields"]["profiles"][0]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("at most 50000 profiles"), "{v}");
    let req = Request::builder()
        .uri("/v1/profiles?limit=1")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let page: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(page["profiles"], json!([]), "nothing was stored: {page}");

    // The parse stops at the profile past the cap: what follows it, however broken, is never read.
    let mut text = json!({"profiles": (0..50_001).map(|i| json!({"_id": format!("p{i}")})).collect::<Vec<_>>()})
        .to_string();
    text.truncate(text.len() - 2);
    text.push_str(", {\"_id\": ");
    let (s, v) = send(
        &app,
        "POST",
        "/v1/profiles",
        text.into_bytes(),
        Send::Declared,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a syntax error past the cap: {v}"
    );
}
