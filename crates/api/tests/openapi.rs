//! The OpenAPI document served at `/v1/openapi.json` against the router and the answers it describes:
//! every route is described and every described route is served; every answer of a tour of the API
//! (successes and failures) has a documented status and fits its schema, every field of it declared; and
//! the copy of the document the admin UI's types are generated from (`web/src/generated/`) is current.

use std::collections::BTreeSet;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "t";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Status, content type and body (JSON, or the text as a JSON string when it is not JSON).
async fn send(
    app: &Router,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut req = Request::builder()
        .method(method.to_uppercase().as_str())
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
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, content_type, value)
}

async fn document(app: &Router) -> Value {
    let (status, _, doc) = send(app, "get", "/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn the_router_serves_exactly_the_described_routes() {
    let (app, _dir) = support::app(TOKEN).await;
    let doc = document(&app).await;
    let described: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "probe" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let (status, _, body) = send(&app, method, &concrete, None).await;
            let unrouted = status == StatusCode::METHOD_NOT_ALLOWED
                || body["error"]["message"] == "no such route";
            if described.contains(&(path.clone(), method.to_string())) {
                assert!(
                    !unrouted,
                    "{method} {path} is described but not served: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not described: {body}"
                );
            }
        }
    }
    // The routes of docs/API.md, as a floor.
    for (method, path) in [
        ("get", "/v1/health"),
        ("put", "/v1/profile-schema"),
        ("get", "/v1/profiles"),
        ("delete", "/v1/profiles/{id}"),
        ("get", "/v1/connectors"),
        ("post", "/v1/destinations/test"),
        ("post", "/v1/destinations/{id}/test"),
        ("get", "/v1/destinations/{id}/tables/{table}"),
        ("get", "/v1/destinations/{id}/tables"),
        ("patch", "/v1/pipelines/{id}"),
        ("post", "/v1/pipelines/preview"),
        ("post", "/v1/pipelines/{id}/preview"),
        ("post", "/v1/pipelines/{id}/runs"),
        ("get", "/v1/runs/{id}"),
        ("post", "/v1/runs/{id}/cancel"),
        ("get", "/v1/filters/operators"),
        ("get", "/metrics"),
    ] {
        assert!(
            described.contains(&(path.to_string(), method.to_string())),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_document_is_complete_and_consistent() {
    let (app, _dir) = support::app(TOKEN).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let what = format!("{method} {path}");
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_string()),
            "{what}: operationId `{id}` is not unique"
        );
        assert!(op["summary"].is_string(), "{what} has no summary");
        // Every path parameter is declared.
        for seg in path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(['{', '}']);
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
            assert!(declared, "{what}: path parameter `{name}` is not declared");
        }
        let responses = op["responses"].as_object().unwrap();
        let public = op["security"] == json!([{}]);
        assert_eq!(
            responses.contains_key("401"),
            !public,
            "{what}: 401 is declared exactly where a token is needed"
        );
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{what} {status} has no description"
            );
            let json = &response["content"]["application/json"]["schema"];
            if status.starts_with('4') || status.starts_with('5') {
                if !json.is_null() {
                    assert_eq!(
                        json["$ref"], "#/components/schemas/ErrorBody",
                        "{what} {status}"
                    );
                }
            } else if status != "204" && path != "/metrics" {
                assert!(json.is_object(), "{what} {status} describes no body");
            }
        }
    }
    // The query parameters of the listing routes.
    let query = |path: &str| -> BTreeSet<String> {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(query("/v1/profiles"), set(&["filter", "limit", "after"]));
    assert_eq!(query("/v1/pipelines/{id}/runs"), set(&["limit", "before"]));
    assert_eq!(query("/v1/pipelines"), set(&["destination"]));
    // Every reference resolves.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The admin UI generates its API types from `web/src/generated/openapi.json` and offers the filter
/// operators of `web/src/generated/filter-operators.json`; both must be what the API serves. Run with
/// `SLUICE_UPDATE_GENERATED=1` to rewrite them, then `npm run generate` in `web/`.
#[tokio::test(flavor = "multi_thread")]
async fn the_ui_copies_are_current() {
    let (app, _dir) = support::app(TOKEN).await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/src/generated");
    let (_, _, operators) = send(&app, "get", "/v1/filters/operators", None).await;
    let mut stale = Vec::new();
    let mut doc = document(&app).await;
    // The version changes with every release and means nothing to the UI's types.
    doc["info"]["version"] = json!("");
    for (file, value) in [("openapi.json", doc), ("filter-operators.json", operators)] {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = dir.join(file);
        if std::env::var_os("SLUICE_UPDATE_GENERATED").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the API serves: run `SLUICE_UPDATE_GENERATED=1 cargo test -p \
         sluice-api --test openapi`, then `npm run generate` in web/, and commit the result"
    );
}

// ---------------------------------------------------------------------------------------------------
// Answers against their schemas.

/// Checks a value against a schema of the document. Objects are strict: a field the schema does not
/// declare is an error unless the schema allows additional properties.
struct Checker<'a> {
    doc: &'a Value,
}

impl Checker<'_> {
    fn resolve(&self, schema: &Value) -> Value {
        let mut schema = schema.clone();
        while let Some(r) = schema["$ref"].as_str() {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            schema = self.doc["components"]["schemas"][name].clone();
        }
        schema
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        let s = self.resolve(schema);
        if let Some(parts) = s["allOf"].as_array() {
            // The parts describe one object together (a pipeline is its input plus what Sluice adds).
            let mut merged = json!({"type": "object", "properties": {}, "required": []});
            for part in parts {
                let part = self.resolve(part);
                for (k, p) in part["properties"].as_object().into_iter().flatten() {
                    merged["properties"][k] = p.clone();
                }
                for r in part["required"].as_array().into_iter().flatten() {
                    merged["required"].as_array_mut().unwrap().push(r.clone());
                }
            }
            return self.check(&merged, v, at, errors);
        }
        if let Some(alternatives) = s["oneOf"].as_array() {
            let mut first = None;
            for alt in alternatives {
                let mut e = Vec::new();
                self.check(alt, v, at, &mut e);
                if e.is_empty() {
                    return;
                }
                first.get_or_insert(e);
            }
            errors.push(format!("{at}: fits none of the alternatives: {first:?}"));
            return;
        }
        let types: Vec<&str> = match &s["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(|t| t.as_str()).collect(),
            _ => vec![],
        };
        let kind = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.is_empty()
            || types.contains(&kind)
            || (kind == "integer" && types.contains(&"number"));
        if !fits {
            errors.push(format!("{at}: is {kind}, the document says {types:?}"));
            return;
        }
        if let Some(values) = s["enum"].as_array() {
            if !values.contains(v) {
                errors.push(format!("{at}: {v} is not one of {values:?}"));
            }
        }
        match v {
            Value::Object(map) => {
                for r in s["required"].as_array().into_iter().flatten() {
                    let r = r.as_str().unwrap();
                    if !map.contains_key(r) {
                        errors.push(format!("{at}: required field `{r}` is missing"));
                    }
                }
                let props = s["properties"].as_object();
                for (k, value) in map {
                    let here = format!("{at}.{k}");
                    match (props.and_then(|p| p.get(k)), &s["additionalProperties"]) {
                        (Some(p), _) => self.check(p, value, &here, errors),
                        (None, Value::Bool(false)) => errors.push(format!("{here}: not declared")),
                        (None, Value::Null) if props.is_some() => {
                            errors.push(format!("{here}: not declared"))
                        }
                        (None, Value::Null) => {}
                        (None, extra) => self.check(extra, value, &here, errors),
                    }
                }
            }
            Value::Array(items) if !s["items"].is_null() => {
                for (i, item) in items.iter().enumerate() {
                    self.check(&s["items"], item, &format!("{at}[{i}]"), errors);
                }
            }
            _ => {}
        }
    }
}

struct Tour {
    app: Router,
    doc: Value,
    problems: Vec<String>,
    seen: BTreeSet<(String, String)>,
}

impl Tour {
    /// Calls the route and checks the answer against the document; returns the body.
    async fn call(
        &mut self,
        method: &str,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let text = body.map(|b| b.to_string());
        self.raw(method, template, path, text.as_deref()).await
    }

    async fn raw(&mut self, method: &str, template: &str, path: &str, body: Option<&str>) -> Value {
        let (status, content_type, value) = send(&self.app, method, path, body).await;
        self.seen.insert((template.to_string(), method.to_string()));
        let what = format!("{method} {path} → {status}");
        let response = &self.doc["paths"][template][method]["responses"][status.as_str()];
        if response.is_null() {
            self.problems
                .push(format!("{what}: status not documented ({value})"));
            return value;
        }
        let content = response["content"].as_object();
        match content {
            None => {
                if !value.is_null() {
                    self.problems
                        .push(format!("{what}: the document says no body, got {value}"));
                }
            }
            Some(content) => {
                let declared = content.keys().any(|k| content_type.starts_with(k.as_str()));
                if !declared {
                    self.problems.push(format!(
                        "{what}: content type {content_type} is not one of {:?}",
                        content.keys().collect::<Vec<_>>()
                    ));
                } else if let Some(schema) = content.get("application/json").map(|c| &c["schema"]) {
                    let checker = Checker { doc: &self.doc };
                    let mut errors = Vec::new();
                    checker.check(schema, &value, "", &mut errors);
                    for e in errors {
                        self.problems.push(format!("{what}: {e}"));
                    }
                }
            }
        }
        value
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_fits_the_document() {
    let (app, dir) = support::app(TOKEN).await;
    let doc = document(&app).await;
    let mut t = Tour {
        app,
        doc,
        problems: Vec::new(),
        seen: BTreeSet::new(),
    };
    let table = dir.path().join("dest.db");
    rusqlite::Connection::open(&table)
        .unwrap()
        .execute_batch(
            "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, email TEXT, ltv NUMERIC, blob BLOB)",
        )
        .unwrap();

    t.call("get", "/v1/health", "/v1/health", None).await;
    t.call("get", "/metrics", "/metrics", None).await;
    t.call("get", "/v1/openapi.json", "/v1/openapi.json", None)
        .await;
    t.call("get", "/v1/connectors", "/v1/connectors", None)
        .await;
    t.call("get", "/v1/functions", "/v1/functions", None).await;
    t.call(
        "get",
        "/v1/filters/operators",
        "/v1/filters/operators",
        None,
    )
    .await;
    let model = json!({"properties": [
        {"name": "email", "type": "string", "description": "where to write"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "tags", "type": "array(string)"},
        {"name": "address", "type": "object", "nullable": false, "properties": [{"name": "city", "type": "string"}]}]});
    t.call(
        "put",
        "/v1/profile-schema",
        "/v1/profile-schema",
        Some(model),
    )
    .await;
    t.call("get", "/v1/profile-schema", "/v1/profile-schema", None)
        .await;
    t.call(
        "put",
        "/v1/profile-schema",
        "/v1/profile-schema",
        Some(json!({"properties": [{"name": "9", "type": "nope"}]})),
    )
    .await;
    let profiles: Vec<Value> = (0..4)
        .map(|i| {
            json!({"_id": format!("c{i}"), "email": format!("U{i}@x.example"), "ltv": "1.50",
            "tags": ["a"], "address": {"city": "Roma"}})
        })
        .chain([json!({"_id": "bad", "ltv": "x"}), json!(7)])
        .collect();
    t.call(
        "post",
        "/v1/profiles",
        "/v1/profiles",
        Some(json!({ "profiles": profiles })),
    )
    .await;
    t.raw("post", "/v1/profiles", "/v1/profiles", Some("{"))
        .await;
    t.call("get", "/v1/profiles", "/v1/profiles?limit=2", None)
        .await;
    t.call("get", "/v1/profiles", "/v1/profiles?filter=nope", None)
        .await;
    t.call("get", "/v1/profiles", "/v1/profiles?unknown=1", None)
        .await;
    t.call("get", "/v1/profiles/{id}", "/v1/profiles/c1", None)
        .await;
    t.call("get", "/v1/profiles/{id}", "/v1/profiles/nope", None)
        .await;
    t.call("delete", "/v1/profiles/{id}", "/v1/profiles/c3", None)
        .await;

    let settings = json!({"path": table});
    let dest = t
        .call(
            "post",
            "/v1/destinations",
            "/v1/destinations",
            Some(json!({"name": "local", "type": "sqlite", "settings": settings})),
        )
        .await;
    let d = dest["id"].as_str().unwrap().to_string();
    t.call(
        "post",
        "/v1/destinations",
        "/v1/destinations",
        Some(json!({"name": "local", "type": "sqlite", "settings": settings})),
    )
    .await;
    t.call("get", "/v1/destinations", "/v1/destinations", None)
        .await;
    t.call(
        "put",
        "/v1/destinations/{id}",
        &format!("/v1/destinations/{d}"),
        Some(json!({"name": "local db", "type": "sqlite", "settings": settings})),
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}",
        &format!("/v1/destinations/{d}"),
        None,
    )
    .await;
    t.call(
        "post",
        "/v1/destinations/test",
        "/v1/destinations/test",
        Some(json!({"type": "sqlite", "settings": settings})),
    )
    .await;
    t.call(
        "post",
        "/v1/destinations/test",
        "/v1/destinations/test",
        Some(
            json!({"type": "postgresql", "settings": {"host": "127.0.0.1", "port": 1,
            "username": "u", "database": "d", "tls": {"mode": "disable"}}}),
        ),
    )
    .await;
    t.call(
        "post",
        "/v1/destinations/{id}/test",
        &format!("/v1/destinations/{d}/test"),
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}/tables/{table}",
        &format!("/v1/destinations/{d}/tables/customers"),
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}/tables/{table}",
        &format!("/v1/destinations/{d}/tables/nope"),
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}/tables",
        &format!("/v1/destinations/{d}/tables"),
        None,
    )
    .await;
    t.call("get", "/v1/connections", "/v1/connections", None)
        .await;
    t.call(
        "get",
        "/v1/connections/{id}",
        &format!("/v1/connections/{d}"),
        None,
    )
    .await;
    t.call("get", "/v1/connections/{id}", "/v1/connections/nope", None)
        .await;
    for body in [
        json!({"connection": d, "table": "customers", "rows": 5}),
        json!({"connection": d, "query": "SELECT 1 AS one, json_object('a', 2) AS doc"}),
        json!({"connection": d, "table": "nope"}),
        json!({"connection": "nope", "table": "customers"}),
        json!({"connection": d, "query": "DELETE FROM customers"}),
    ] {
        t.call(
            "post",
            "/v1/sources/inspect",
            "/v1/sources/inspect",
            Some(body),
        )
        .await;
    }

    let spec = json!({"destination": d, "name": "P", "description": "all of them",
        "filter": {"logical": "and", "conditions": [
            {"property": "email", "operator": "is not empty"},
            {"logical": "or", "conditions": [{"property": "ltv", "operator": "is between", "values": ["0", "9"]}]}]},
        "table": "customers", "key": "customer_id",
        "transformation": {"mapping": {"customer_id": "_id", "email": "lower(email)", "ltv": "ltv"}},
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Rome"}, "on_leave": "delete",
        "alert_webhook": "https://hooks.example.com/x"});
    t.call(
        "post",
        "/v1/pipelines/validate",
        "/v1/pipelines/validate",
        Some(spec.clone()),
    )
    .await;
    t.call(
        "post",
        "/v1/pipelines/validate",
        "/v1/pipelines/validate",
        Some(json!({"name": ""})),
    )
    .await;
    t.call(
        "post",
        "/v1/pipelines/preview",
        "/v1/pipelines/preview",
        Some(json!({"pipeline": spec, "limit": 5})),
    )
    .await;
    let p = t
        .call("post", "/v1/pipelines", "/v1/pipelines", Some(spec.clone()))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    t.call("post", "/v1/pipelines", "/v1/pipelines", Some(spec.clone()))
        .await;
    let pipeline = format!("/v1/pipelines/{id}");
    t.call(
        "patch",
        "/v1/pipelines/{id}",
        &pipeline,
        Some(json!({"schedule": "1h"})),
    )
    .await;
    let mut script = spec.clone();
    script["transformation"] = json!({"javascript":
        "function transform(p) { if (p._id === 'c1') return null; if (p._id === 'c2') throw new Error('no'); return {customer_id: p._id, email: p.email}; }"});
    script["schedule"] = Value::Null;
    t.call("put", "/v1/pipelines/{id}", &pipeline, Some(script))
        .await;
    t.call("get", "/v1/pipelines/{id}", &pipeline, None).await;
    t.call("get", "/v1/pipelines", "/v1/pipelines", None).await;
    t.call(
        "get",
        "/v1/pipelines",
        &format!("/v1/pipelines?destination={d}"),
        None,
    )
    .await;
    t.call(
        "post",
        "/v1/pipelines/{id}/preview",
        &format!("{pipeline}/preview"),
        Some(json!({"limit": 3})),
    )
    .await;
    let run = t
        .call(
            "post",
            "/v1/pipelines/{id}/runs",
            &format!("{pipeline}/runs"),
            Some(json!({"trigger": "manual"})),
        )
        .await;
    let run_id = run["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        let r = t
            .call("get", "/v1/runs/{id}", &format!("/v1/runs/{run_id}"), None)
            .await;
        if r["status"] != "queued" && r["status"] != "running" {
            assert!(r["errors"].as_array().is_some_and(|e| !e.is_empty()), "{r}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Dry runs: of the saved pipeline, of a change to it, of a new one, and refused ones.
    let mut dry_ids = Vec::new();
    let r = t
        .call(
            "post",
            "/v1/pipelines/{id}/runs",
            &format!("{pipeline}/runs"),
            Some(json!({"dry_run": true})),
        )
        .await;
    dry_ids.push(r["id"].as_str().unwrap().to_string());
    for body in [
        json!({"pipeline": spec, "replaces": id}),
        json!({"pipeline": spec}),
    ] {
        let r = t
            .call("post", "/v1/dry-runs", "/v1/dry-runs", Some(body))
            .await;
        dry_ids.push(r["id"].as_str().unwrap().to_string());
    }
    for body in [
        json!({"pipeline": {"name": "x"}}),
        json!({"pipeline": spec, "replaces": "nope"}),
        json!({"pipeline": spec, "unknown": 1}),
    ] {
        t.call("post", "/v1/dry-runs", "/v1/dry-runs", Some(body))
            .await;
    }
    for dry in dry_ids {
        for _ in 0..600 {
            let r = t
                .call("get", "/v1/runs/{id}", &format!("/v1/runs/{dry}"), None)
                .await;
            if r["status"] != "queued" && r["status"] != "running" {
                assert_eq!(r["dry_run"], true, "{r}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    t.call(
        "get",
        "/v1/pipelines/{id}/runs",
        &format!("{pipeline}/runs?limit=1"),
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/pipelines/{id}/runs",
        &format!("{pipeline}/runs?limit=0"),
        None,
    )
    .await;
    t.call("get", "/v1/pipelines/{id}", &pipeline, None).await;
    t.call(
        "post",
        "/v1/pipelines/{id}/preview",
        &format!("{pipeline}/preview"),
        Some(json!({"profiles": ["c0", "c1", "c2"]})),
    )
    .await;
    // Source pipelines, reading the table the pipeline wrote.
    let src = json!({"connection": d, "name": "back in", "table": "customers", "id_column": "customer_id",
        "transformation": {"mapping": {"email": "email"}}, "changes": {"mode": "full", "on_missing": "keep"}});
    t.call(
        "post",
        "/v1/sources/preview",
        "/v1/sources/preview",
        Some(json!({"source": src, "limit": 2})),
    )
    .await;
    let created = t
        .call("post", "/v1/sources", "/v1/sources", Some(src.clone()))
        .await;
    t.call(
        "post",
        "/v1/sources",
        "/v1/sources",
        Some(json!({"name": "x"})),
    )
    .await;
    let source = format!("/v1/sources/{}", created["id"].as_str().unwrap());
    t.call("get", "/v1/sources", "/v1/sources", None).await;
    t.call("get", "/v1/sources/{id}", &source, None).await;
    t.call("put", "/v1/sources/{id}", &source, Some(src)).await;
    t.call(
        "patch",
        "/v1/sources/{id}",
        &source,
        Some(json!({"changes": {"mode": "cursor", "column": "customer_id"}})),
    )
    .await;
    let source_run = t
        .call(
            "post",
            "/v1/sources/{id}/runs",
            &format!("{source}/runs"),
            None,
        )
        .await;
    let source_run = source_run["id"].as_str().unwrap().to_string();
    for _ in 0..600 {
        let r = t
            .call(
                "get",
                "/v1/runs/{id}",
                &format!("/v1/runs/{source_run}"),
                None,
            )
            .await;
        if r["status"] != "queued" && r["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    t.call(
        "get",
        "/v1/sources/{id}/runs",
        &format!("{source}/runs"),
        None,
    )
    .await;
    t.call("delete", "/v1/sources/{id}", &source, None).await;
    t.call(
        "post",
        "/v1/runs/{id}/cancel",
        &format!("/v1/runs/{run_id}/cancel"),
        None,
    )
    .await;
    t.call(
        "post",
        "/v1/pipelines/{id}/runs",
        "/v1/pipelines/nope/runs",
        None,
    )
    .await;
    t.call(
        "patch",
        "/v1/pipelines/{id}",
        &pipeline,
        Some(json!({"enabled": false})),
    )
    .await;
    t.call(
        "post",
        "/v1/pipelines/{id}/runs",
        &format!("{pipeline}/runs"),
        None,
    )
    .await;
    t.raw(
        "post",
        "/v1/pipelines/{id}/runs",
        &format!("{pipeline}/runs"),
        Some(r#"{"trigger": "cron"}"#),
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}/lineage",
        &format!("/v1/destinations/{d}/lineage"),
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/destinations/{id}/lineage",
        "/v1/destinations/nope/lineage",
        None,
    )
    .await;
    t.call(
        "get",
        "/v1/profile-schema/sources",
        "/v1/profile-schema/sources",
        None,
    )
    .await;
    t.call(
        "delete",
        "/v1/destinations/{id}",
        &format!("/v1/destinations/{d}"),
        None,
    )
    .await;
    t.call("delete", "/v1/pipelines/{id}", &pipeline, None)
        .await;
    t.call(
        "delete",
        "/v1/destinations/{id}",
        &format!("/v1/destinations/{d}"),
        None,
    )
    .await;
    // The workspace: exported, then planned and applied from a document (and an invalid one refused).
    t.call("get", "/v1/workspace", "/v1/workspace", None).await;
    let workspace = json!({"version": 1,
        "connections": {"ws local": {"type": "sqlite", "settings": settings}},
        "pipelines": {"ws pipeline": {"connection": "ws local", "table": "customers",
            "key": "customer_id", "transformation": {"mapping": {"customer_id": "_id"}}}}});
    t.call(
        "post",
        "/v1/workspace/apply",
        "/v1/workspace/apply",
        Some(json!({"workspace": workspace, "dry_run": true})),
    )
    .await;
    t.call(
        "post",
        "/v1/workspace/apply",
        "/v1/workspace/apply",
        Some(json!({"workspace": workspace})),
    )
    .await;
    t.call(
        "post",
        "/v1/workspace/apply",
        "/v1/workspace/apply",
        Some(json!({"workspace": {"version": 2}})),
    )
    .await;
    // Access: who am I, tokens (shown once, then listed without values), the audit log of the changes
    // above.
    t.call("get", "/v1/me", "/v1/me", None).await;
    let created = t
        .call(
            "post",
            "/v1/tokens",
            "/v1/tokens",
            Some(json!({"name": "ci", "role": "editor"})),
        )
        .await;
    t.call(
        "post",
        "/v1/tokens",
        "/v1/tokens",
        Some(json!({"name": " ", "role": "root"})),
    )
    .await;
    t.call(
        "post",
        "/v1/tokens",
        "/v1/tokens",
        Some(json!({"name": "ci", "role": "viewer"})),
    )
    .await;
    t.call("get", "/v1/tokens", "/v1/tokens", None).await;
    t.call("get", "/v1/audit", "/v1/audit?limit=3", None).await;
    t.call("get", "/v1/audit", "/v1/audit?before=x", None).await;
    let token_id = created["id"].as_str().unwrap_or("missing");
    t.call(
        "delete",
        "/v1/tokens/{id}",
        &format!("/v1/tokens/{token_id}"),
        None,
    )
    .await;
    t.call("delete", "/v1/tokens/{id}", "/v1/tokens/nope", None)
        .await;
    // Unsupported media type.
    let (status, _, _) = send(&t.app, "post", "/v1/pipelines", None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    t.seen.insert(("/v1/pipelines".into(), "post".into()));

    assert!(
        t.problems.is_empty(),
        "answers that do not fit the document:\n{}",
        t.problems.join("\n")
    );
    let all: BTreeSet<(String, String)> = operations(&t.doc)
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    let missed: Vec<_> = all.difference(&t.seen).collect();
    assert!(missed.is_empty(), "routes the tour missed: {missed:?}");
}
