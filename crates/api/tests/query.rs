//! Query-string errors answer the JSON error shape, a 422 naming the parameter, on every route that takes
//! query parameters: the routes are found in the OpenAPI document (so a route added later is covered), and
//! each kind of mistake — unknown name, repeated name, a value not of its type, out of range, a bad
//! filter — is tried on the routes it applies to.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "t";

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
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
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    (
        status,
        ct,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Asserts a 422 in the JSON error shape whose `fields` name `param`; returns its messages.
async fn refused(app: &Router, uri: &str, param: &str) -> Vec<String> {
    let (status, ct, body) = send(app, "GET", uri, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
    assert!(ct.starts_with("application/json"), "{uri}: {ct} {body}");
    assert_eq!(body["error"]["code"], "ValidationFailed", "{uri}: {body}");
    assert!(body["error"]["message"].as_str().is_some(), "{uri}: {body}");
    let messages = body["error"]["fields"][param]
        .as_array()
        .unwrap_or_else(|| panic!("{uri}: `{param}` not named: {body}"));
    messages
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Every GET route with query parameters in the document: (path template, [(name, schema type)]).
async fn query_routes(app: &Router) -> Vec<(String, Vec<(String, String)>)> {
    let (_, _, doc) = send(app, "GET", "/v1/openapi.json", None).await;
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let params: Vec<(String, String)> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| {
                    let ty = p["schema"]["type"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| {
                            p["schema"]["type"][0]
                                .as_str()
                                .unwrap_or("string")
                                .to_string()
                        });
                    (p["name"].as_str().unwrap().to_string(), ty)
                })
                .collect();
            if !params.is_empty() {
                assert_eq!(method, "get", "{path}: query parameters on {method}");
                out.push((path.clone(), params));
            }
        }
    }
    out
}

fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "probe" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_with_query_parameters_answers_json_naming_the_parameter() {
    let (app, _dir) = support::app(TOKEN).await;
    let routes = query_routes(&app).await;
    let paths: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    for expected in ["/v1/profiles", "/v1/pipelines", "/v1/pipelines/{id}/runs"] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {paths:?}"
        );
    }
    for (path, params) in &routes {
        let base = concrete(path);
        // An unknown parameter, with every known one listed.
        let m = refused(
            &app,
            &format!("{base}?no_such_parameter=1"),
            "no_such_parameter",
        )
        .await;
        for (name, _) in params {
            assert!(m[0].contains(&format!("`{name}`")), "{path}: {m:?}");
        }
        // Hostile names are named as sent, never a 5xx or plain text.
        refused(&app, &format!("{base}?a%60b%00c%22=1"), "a`b\0c\"").await;
        for (name, ty) in params {
            let one = match ty.as_str() {
                "integer" => "5",
                _ => "x",
            };
            refused(&app, &format!("{base}?{name}={one}&{name}={one}"), name).await;
            if ty == "integer" {
                for bad in ["abc", "-1", "1.5", "99999999999999999999999", ""] {
                    let m = refused(&app, &format!("{base}?{name}={bad}"), name).await;
                    assert!(!m[0].is_empty(), "{path} {name}={bad}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_limit_and_filter_errors_name_their_parameter() {
    let (app, _dir) = support::app(TOKEN).await;
    let (status, _, _) = send(
        &app,
        "PUT",
        "/v1/profile-schema",
        Some(json!({"properties": [{"name": "email", "type": "string"}, {"name": "age", "type": "integer"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let m = refused(&app, "/v1/profiles?limit=abc", "limit").await;
    assert!(m[0].contains("`abc`"), "{m:?}");
    refused(&app, "/v1/profiles?limit=0", "limit").await;
    refused(&app, "/v1/profiles?limit=1001", "limit").await;
    refused(&app, "/v1/profiles?filter=nope", "filter").await;
    refused(&app, "/v1/profiles?filter=%7B%22logical%22%3A", "filter").await;
    // A well-formed filter with a bad property, operator or value: 422 naming each part under `filter`.
    for (filter, _what) in [
        (
            json!({"logical": "and", "conditions": [{"property": "nope", "operator": "is", "values": ["x"]}]}),
            "property",
        ),
        (
            json!({"logical": "and", "conditions": [{"property": "email", "operator": "sideways", "values": ["x"]}]}),
            "operator",
        ),
        (
            json!({"logical": "and", "conditions": [{"property": "age", "operator": "is", "values": ["old"]}]}),
            "values",
        ),
        (json!({"logical": "xor", "conditions": []}), "logical"),
        (json!([1, 2]), "filter"),
    ] {
        let enc: String = form_urlencoded::byte_serialize(filter.to_string().as_bytes()).collect();
        let (status, ct, body) =
            send(&app, "GET", &format!("/v1/profiles?filter={enc}"), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{filter}: {body}");
        assert!(ct.starts_with("application/json"), "{filter}: {ct}");
        let fields = body["error"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().all(|k| k.starts_with("filter")),
            "{filter}: every field is under `filter`: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_pipelines_query_errors_name_their_parameter() {
    let (app, _dir) = support::app(TOKEN).await;
    refused(&app, "/v1/pipelines/probe/runs?limit=many", "limit").await;
    refused(&app, "/v1/pipelines/probe/runs?limit=1&limit=2", "limit").await;
    refused(&app, "/v1/pipelines/probe/runs?after=x", "after").await;
    refused(
        &app,
        "/v1/pipelines?destination=a&destination=b",
        "destination",
    )
    .await;
    refused(&app, "/v1/pipelines?limit=5", "limit").await;
    // A route without query parameters still reads them as nothing: no error for them.
    let (status, _, _) = send(&app, "GET", "/v1/connectors?x=1", None).await;
    assert_eq!(status, StatusCode::OK);
}
