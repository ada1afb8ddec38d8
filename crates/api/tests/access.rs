//! Access through the router (no socket): API tokens and their roles on every route, the audit log,
//! `/metrics` behind a token, security headers and the Host check. Metadata is embedded SQLite, or
//! PostgreSQL (`SLUICE_TEST_POSTGRES_URL`) where two instances share it.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_api::AppState;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{MetadataStore, SecretBox};
use tower::ServiceExt;

mod support;

const ADMIN: &str = "the-admin-token";
const PASSWORD: &str = "pa55-w0rd-never-in-the-log";

struct Server {
    app: Router,
    /// The data directory of the server's embedded stores.
    dir: tempfile::TempDir,
}

async fn server_with(
    meta: Option<Arc<dyn MetadataStore>>,
    configure: impl FnOnce(AppState) -> AppState,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let engine = match meta {
        // Metadata shared with another instance; the profiles stay this one's own.
        Some(meta) => {
            let profiles = sluice_store::open_profiles(None, dir.path()).await.unwrap();
            Engine::new(meta, profiles, EngineConfig::default())
        }
        None => support::engine(dir.path()).await,
    };
    let app = sluice_api::router(configure(AppState::new(engine, ADMIN)));
    Server { app, dir }
}

async fn server() -> Server {
    server_with(None, |s| s).await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    send(app, req).await
}

/// Creates a token with the admin token; returns its id and value.
async fn token(app: &Router, name: &str, role: &str) -> (String, String) {
    let a = call(
        app,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        Some(json!({"name": name, "role": role})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    (
        a.body["id"].as_str().unwrap().to_string(),
        a.body["token"].as_str().unwrap().to_string(),
    )
}

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "editor" => 1,
        "admin" => 2,
        other => panic!("unknown role {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_each_role_as_declared() {
    let s = server().await;
    let (_, viewer) = token(&s.app, "viewer", "viewer").await;
    let (_, editor) = token(&s.app, "editor", "editor").await;
    let tokens = [
        ("viewer", viewer.as_str()),
        ("editor", editor.as_str()),
        ("admin", ADMIN),
    ];

    let doc = call(&s.app, "GET", "/v1/openapi.json", Some(&viewer), None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
    let mut declared = Vec::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let role = op.get("x-sluice-role").and_then(Value::as_str);
            match (path.as_str(), role) {
                ("/v1/health" | "/metrics", None) => continue,
                (_, None) => panic!("{method} {path} declares no role"),
                (_, Some(role)) => {
                    declared.push((method.to_uppercase(), path.clone(), role.to_string()));
                    if role != "viewer" {
                        assert!(
                            op["responses"]["403"].is_object(),
                            "{method} {path} must describe its 403"
                        );
                    }
                }
            }
        }
    }
    assert!(declared.len() >= 30, "only {} routes", declared.len());

    // What the issue asks of each role, checked against the declarations.
    let role_of = |m: &str, p: &str| {
        declared
            .iter()
            .find(|(dm, dp, _)| dm == m && dp == p)
            .unwrap_or_else(|| panic!("{m} {p} is not a route"))
            .2
            .clone()
    };
    for (m, p, want) in [
        ("GET", "/v1/tokens", "admin"),
        ("POST", "/v1/tokens", "admin"),
        ("DELETE", "/v1/tokens/{id}", "admin"),
        ("GET", "/v1/audit", "admin"),
        ("POST", "/v1/destinations", "admin"),
        ("PUT", "/v1/destinations/{id}", "admin"),
        ("DELETE", "/v1/destinations/{id}", "admin"),
        ("POST", "/v1/destinations/test", "admin"),
        ("GET", "/v1/destinations", "viewer"),
        ("GET", "/v1/sources", "viewer"),
        ("GET", "/v1/sources/{id}", "viewer"),
        ("GET", "/v1/sources/{id}/runs", "viewer"),
        ("POST", "/v1/sources", "editor"),
        ("PATCH", "/v1/sources/{id}", "editor"),
        ("DELETE", "/v1/sources/{id}", "editor"),
        ("POST", "/v1/sources/{id}/runs", "editor"),
        ("POST", "/v1/sources/preview", "editor"),
        ("POST", "/v1/pipelines", "editor"),
        ("PATCH", "/v1/pipelines/{id}", "editor"),
        ("POST", "/v1/pipelines/{id}/runs", "editor"),
        ("POST", "/v1/runs/{id}/cancel", "editor"),
        ("POST", "/v1/profiles", "editor"),
        ("GET", "/v1/profiles", "viewer"),
        ("GET", "/v1/me", "viewer"),
        // The workspace holds connections (secrets go there) and replaces everything at once.
        ("GET", "/v1/workspace", "admin"),
        ("POST", "/v1/workspace/apply", "admin"),
    ] {
        assert_eq!(role_of(m, p), want, "{m} {p}");
    }

    // Every route × role: refused with 403 `Forbidden` below its role, never refused for the role at
    // or above it. Ids do not exist and bodies are empty objects, so nothing is changed.
    for (method, path, role) in &declared {
        let path = path
            .replace("{id}", "does-not-exist")
            .replace("{table}", "no_table");
        for (name, tok) in tokens {
            let body = (method != "GET" && method != "DELETE").then(|| json!({}));
            let a = call(&s.app, method, &path, Some(tok), body).await;
            if rank(name) < rank(role) {
                assert_eq!(
                    a.status,
                    StatusCode::FORBIDDEN,
                    "{name} {method} {path}: {}",
                    a.text
                );
                assert_eq!(
                    a.body["error"]["code"], "Forbidden",
                    "{name} {method} {path}"
                );
            } else {
                assert!(
                    a.status != StatusCode::FORBIDDEN && a.status != StatusCode::UNAUTHORIZED,
                    "{name} {method} {path}: {} {}",
                    a.status,
                    a.text
                );
            }
        }
    }

    // HEAD is served by GET handlers, so it needs GET's role.
    let head = call(&s.app, "HEAD", "/v1/tokens", Some(&editor), None).await;
    assert_eq!(head.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_shown_once_and_checked() {
    let s = server().await;
    let (id, value) = token(&s.app, "ci", "editor").await;
    assert!(value.starts_with("slt_") && value.len() >= 68, "{value}");

    let me = call(&s.app, "GET", "/v1/me", Some(&value), None).await;
    assert_eq!(me.body, json!({"id": id, "name": "ci", "role": "editor"}));
    // The store holds the token's SHA-256, never its text.
    let stored: Vec<Vec<u8>> = {
        let db = rusqlite::Connection::open(s.dir.path().join("metadata.db")).unwrap();
        let mut stmt = db.prepare("SELECT * FROM api_tokens").unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .flat_map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        t.to_vec()
                    }
                    _ => Vec::new(),
                })
                .collect())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    assert_eq!(stored.len(), 1);
    let digest = sluice_api::access::token_hash(&value);
    assert!(
        stored[0].windows(32).any(|w| w == digest),
        "the hash is stored"
    );
    assert!(
        !stored[0]
            .windows(value.len())
            .any(|w| w == value.as_bytes()),
        "the token text is not"
    );
    assert!(
        !stored[0].windows(64).any(|w| w == &value.as_bytes()[4..]),
        "nor its random part"
    );
    let me = call(&s.app, "GET", "/v1/me", Some(ADMIN), None).await;
    assert_eq!(me.body["role"], "admin");

    let list = call(&s.app, "GET", "/v1/tokens", Some(ADMIN), None).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["tokens"][0]["name"], "ci");
    assert!(
        !list.text.contains(&value) && !list.text.contains("hash"),
        "{}",
        list.text
    );
    assert!(list.body["tokens"][0].get("token").is_none());

    // Bad names and roles are refused, each naming its field; a taken name is a conflict.
    let refused: [(Value, &[&str]); 3] = [
        (json!({"name": "  ", "role": "root"}), &["name", "role"]),
        (
            json!({"name": "x".repeat(101), "role": "viewer"}),
            &["name"],
        ),
        (json!({"name": "x", "role": 3}), &["role"]),
    ];
    for (body, fields) in refused {
        let bad = call(&s.app, "POST", "/v1/tokens", Some(ADMIN), Some(body)).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
        for field in fields {
            assert!(
                bad.body["error"]["fields"][field].is_array(),
                "{}",
                bad.text
            );
        }
    }
    let taken = call(
        &s.app,
        "POST",
        "/v1/tokens",
        Some(ADMIN),
        Some(json!({"name": "ci", "role": "viewer"})),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.body["error"]["code"], "NameTaken");

    // An editor cannot make itself an admin.
    let escalate = call(
        &s.app,
        "POST",
        "/v1/tokens",
        Some(&value),
        Some(json!({"name": "me2", "role": "admin"})),
    )
    .await;
    assert_eq!(escalate.status, StatusCode::FORBIDDEN);

    let revoked = call(
        &s.app,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let after = call(&s.app, "GET", "/v1/me", Some(&value), None).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.body["error"]["code"], "Unauthorized");
    let again = call(
        &s.app,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_stops_working_on_every_instance() {
    let base = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for this test");
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = format!("access_{}", uuid::Uuid::new_v4().simple());
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
    let secrets = SecretBox::generate();
    let open = || {
        sluice_store::open_metadata(
            Some(&url),
            std::path::Path::new("/nonexistent"),
            secrets.clone(),
        )
    };
    let a = server_with(Some(open().await.unwrap()), |s| s).await;
    let b = server_with(Some(open().await.unwrap()), |s| s).await;

    let (id, value) = token(&a.app, "shared", "viewer").await;
    let seen = call(&b.app, "GET", "/v1/pipelines", Some(&value), None).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
    let gone = call(
        &a.app,
        "DELETE",
        &format!("/v1/tokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let refused = call(&b.app, "GET", "/v1/pipelines", Some(&value), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // The revocation is in the log, by the admin token, seen from the other instance.
    let log = call(&b.app, "GET", "/v1/audit", Some(ADMIN), None).await;
    let entry = &log.body["entries"][0];
    assert_eq!(entry["method"], "DELETE");
    assert_eq!(entry["route"], "/v1/tokens/{id}");
    assert_eq!(entry["resource"], id.as_str());
    assert_eq!(entry["token_id"], "admin");
    assert_eq!(entry["before"]["name"], "shared");
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

fn pg_destination() -> Value {
    json!({"name": "Warehouse", "type": "postgresql", "settings": {
        "host": "db.example.com", "port": 5432, "username": "sluice", "password": PASSWORD,
        "database": "crm", "schema": "public", "tls": {"mode": "require"}
    }})
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_are_audited_with_before_and_after_and_no_secret() {
    let s = server().await;
    let (editor_id, editor) = token(&s.app, "ci", "editor").await;
    let (_, viewer) = token(&s.app, "look", "viewer").await;

    let model = |extra: &str| {
        let mut props = vec![json!({"name": "email", "type": "string", "nullable": true})];
        if !extra.is_empty() {
            props.push(json!({"name": extra, "type": "string", "nullable": true}));
        }
        json!({"properties": props})
    };
    for extra in ["", "country"] {
        let put = call(
            &s.app,
            "PUT",
            "/v1/profile-schema",
            Some(&editor),
            Some(model(extra)),
        )
        .await;
        assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    }
    // A refused change is not a change.
    let refused = call(
        &s.app,
        "POST",
        "/v1/destinations",
        Some(&editor),
        Some(pg_destination()),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let invalid = call(
        &s.app,
        "PUT",
        "/v1/profile-schema",
        Some(&editor),
        Some(json!({"properties": 5})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);

    let created = call(
        &s.app,
        "POST",
        "/v1/destinations",
        Some(ADMIN),
        Some(pg_destination()),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let dest = created.body["id"].as_str().unwrap().to_string();
    let mut changed = pg_destination();
    changed["settings"]["password"] = json!(format!("{PASSWORD}-2"));
    changed["settings"]["host"] = json!("db2.example.com");
    let updated = call(
        &s.app,
        "PUT",
        &format!("/v1/destinations/{dest}"),
        Some(ADMIN),
        Some(changed),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    let (_, new_token) = token(&s.app, "later", "viewer").await;

    assert_eq!(
        call(&s.app, "GET", "/v1/audit", Some(&viewer), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&s.app, "GET", "/v1/audit", Some(&editor), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let log = call(&s.app, "GET", "/v1/audit?limit=500", Some(ADMIN), None).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert!(
        !log.text.contains(PASSWORD),
        "a password reached the audit log: {}",
        log.text
    );
    assert!(
        !log.text.contains(&new_token),
        "a token value reached the audit log"
    );
    assert!(
        !log.text.contains(&editor),
        "a token value reached the audit log"
    );
    let entries = log.body["entries"].as_array().unwrap();
    // Newest first: the token, the destination's update and creation, two model changes, and the
    // two tokens created first; no entry for the refused or invalid requests.
    let routes: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["method"].as_str().unwrap(), e["route"].as_str().unwrap()))
        .collect();
    assert_eq!(
        routes,
        [
            ("POST", "/v1/tokens"),
            ("PUT", "/v1/destinations/{id}"),
            ("POST", "/v1/destinations"),
            ("PUT", "/v1/profile-schema"),
            ("PUT", "/v1/profile-schema"),
            ("POST", "/v1/tokens"),
            ("POST", "/v1/tokens"),
        ]
    );
    let schema_change = &entries[3];
    assert_eq!(schema_change["token_id"], editor_id.as_str());
    assert_eq!(schema_change["token_name"], "ci");
    assert_eq!(schema_change["status"], 200);
    assert_eq!(schema_change["before"], model(""));
    assert_eq!(schema_change["after"], model("country"));
    assert!(schema_change["at"].is_string());
    let first = &entries[4];
    assert_eq!(first["before"], json!({"properties": []}));

    let update = &entries[1];
    assert_eq!(update["resource"], dest.as_str());
    assert_eq!(update["before"]["settings"]["host"], "db.example.com");
    assert_eq!(update["after"]["settings"]["host"], "db2.example.com");
    assert_eq!(update["after"]["settings"]["password"], "********");
    assert_eq!(entries[0]["after"]["name"], "later");
    assert!(entries[0]["after"].get("token").is_none());

    // Paging: newest first, `next` leads on.
    let page = call(&s.app, "GET", "/v1/audit?limit=3", Some(ADMIN), None).await;
    assert_eq!(page.body["entries"].as_array().unwrap().len(), 3);
    let next = page.body["next"].as_str().unwrap();
    let rest = call(
        &s.app,
        "GET",
        &format!("/v1/audit?limit=100&before={next}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(rest.body["entries"].as_array().unwrap().len(), 4);
    assert_eq!(rest.body["entries"][0]["seq"], entries[3]["seq"]);
    assert!(rest.body["next"].is_null());
    let bad = call(&s.app, "GET", "/v1/audit?before=abc", Some(ADMIN), None).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body["error"]["fields"]["before"].is_array());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editors_pipeline_changes_are_audited_without_the_webhook_url() {
    let s = server().await;
    let (editor_id, editor) = token(&s.app, "ci", "editor").await;
    // A SQLite destination in the data directory, with a table to write to.
    let folder = s.dir.path().join("destinations");
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join("local.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE customers (customer_id TEXT PRIMARY KEY, email TEXT)")
        .unwrap();
    let model = json!({"properties": [{"name": "email", "type": "string"}]});
    assert_eq!(
        call(
            &s.app,
            "PUT",
            "/v1/profile-schema",
            Some(&editor),
            Some(model)
        )
        .await
        .status,
        StatusCode::OK
    );
    let dest = call(&s.app, "POST", "/v1/destinations", Some(ADMIN),
        Some(json!({"name": "local", "type": "sqlite", "settings": {"path": path.to_str().unwrap()}}))).await;
    assert_eq!(dest.status, StatusCode::CREATED, "{}", dest.text);
    let hook = "https://hooks.example.com/services/T0/B0/webhook-credential";
    let created = call(&s.app, "POST", "/v1/pipelines", Some(&editor), Some(json!({
        "destination": dest.body["id"], "name": "Everyone", "table": "customers", "key": "customer_id",
        "transformation": {"mapping": {"customer_id": "_id", "email": "email"}}, "alert_webhook": hook
    }))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_string();
    let patched = call(
        &s.app,
        "PATCH",
        &format!("/v1/pipelines/{id}"),
        Some(&editor),
        Some(json!({"name": "Everyone (EU)", "enabled": false})),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    // A refused change is not an entry.
    let (_, viewer) = token(&s.app, "look", "viewer").await;
    assert_eq!(
        call(
            &s.app,
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(&viewer),
            Some(json!({"enabled": true}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );

    // A viewer reads the pipeline but only learns that a webhook is set; an editor, who may change it,
    // sees it.
    for path in [format!("/v1/pipelines/{id}"), "/v1/pipelines".to_string()] {
        let seen = call(&s.app, "GET", &path, Some(&viewer), None).await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.text);
        assert!(!seen.text.contains("webhook-credential"), "{}", seen.text);
        assert!(
            seen.text.contains(r#""alert_webhook":"********""#),
            "{}",
            seen.text
        );
        let edited = call(&s.app, "GET", &path, Some(&editor), None).await;
        assert!(
            edited.text.contains("webhook-credential"),
            "{}",
            edited.text
        );
    }

    let log = call(&s.app, "GET", "/v1/audit", Some(ADMIN), None).await;
    assert!(!log.text.contains("webhook-credential"), "{}", log.text);
    let entries = log.body["entries"].as_array().unwrap();
    let patch = &entries[1];
    assert_eq!(
        (patch["method"].as_str(), patch["route"].as_str()),
        (Some("PATCH"), Some("/v1/pipelines/{id}"))
    );
    assert_eq!(patch["token_id"], editor_id.as_str());
    assert_eq!(patch["resource"], id.as_str());
    assert_eq!(patch["before"]["name"], "Everyone");
    assert_eq!(patch["before"]["enabled"], true);
    assert_eq!(patch["after"]["name"], "Everyone (EU)");
    assert_eq!(patch["after"]["enabled"], false);
    assert_eq!(patch["after"]["alert_webhook"], "********");
    let create = &entries[2];
    assert_eq!(create["route"], "/v1/pipelines");
    assert_eq!(create["resource"], id.as_str());
    assert!(create["before"].is_null());
    assert_eq!(create["after"]["table"], "customers");
}

#[tokio::test(flavor = "multi_thread")]
async fn editors_test_stored_settings_only() {
    let s = server().await;
    let (_, editor) = token(&s.app, "ci", "editor").await;
    let created = call(
        &s.app,
        "POST",
        "/v1/destinations",
        Some(ADMIN),
        Some(pg_destination()),
    )
    .await;
    let dest = created.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/destinations/{dest}/test");
    let elsewhere = json!({"settings": {"host": "attacker.example", "port": 5432, "username": "sluice",
        "database": "crm", "schema": "public", "tls": {"mode": "disable"}}});
    let a = call(&s.app, "POST", &path, Some(&editor), Some(elsewhere)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "Forbidden");
    let viewer_change = call(
        &s.app,
        "PUT",
        &format!("/v1/destinations/{dest}"),
        Some(&editor),
        Some(pg_destination()),
    )
    .await;
    assert_eq!(viewer_change.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_can_require_a_token() {
    let open = server().await;
    assert_eq!(
        call(&open.app, "GET", "/metrics", None, None).await.status,
        StatusCode::OK
    );

    let closed = server_with(None, |s| s.with_metrics_token_required(true)).await;
    let refused = call(&closed.app, "GET", "/metrics", None, None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"]["code"], "Unauthorized");
    assert_eq!(
        call(&closed.app, "GET", "/metrics", Some("wrong"), None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let (_, viewer) = token(&closed.app, "prometheus", "viewer").await;
    let scraped = call(&closed.app, "GET", "/metrics", Some(&viewer), None).await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.text.contains("sluice_up 1"), "{}", scraped.text);
    assert_eq!(
        call(&closed.app, "GET", "/metrics", Some(ADMIN), None)
            .await
            .status,
        StatusCode::OK
    );
}

fn with_host(path: &str, host: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", host)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_carry_security_headers() {
    let s = server().await;
    for (path, token) in [
        ("/", None),
        ("/v1/health", None),
        ("/v1/pipelines", Some(ADMIN)),
        ("/v1/pipelines", None),
        ("/metrics", None),
    ] {
        let a = call(&s.app, "GET", path, token, None).await;
        let h = |n: &str| {
            a.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(h("x-frame-options"), "DENY", "{path}");
        assert_eq!(h("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(h("referrer-policy"), "no-referrer", "{path}");
        let csp = h("content-security-policy");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
    }
}

/// The UI must work under the policy: no inline script, no inline event handler, no inline style sheet
/// in the built page.
#[test]
fn the_built_ui_needs_no_inline_script() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    let index = std::fs::read_to_string(dist.join("index.html")).unwrap_or_else(|e| {
        panic!("web/dist/index.html is missing ({e}): build the UI first (cd web && npm run build)")
    });
    let lower = index.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut scripts = 0;
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').unwrap() + i;
        let tag = &rest[i..tag_end];
        assert!(
            tag.contains(" src="),
            "an inline script in index.html: {tag}"
        );
        let close = rest[tag_end..].find("</script>").unwrap() + tag_end;
        assert!(
            rest[tag_end + 1..close].trim().is_empty(),
            "a script with a body in index.html"
        );
        scripts += 1;
        rest = &rest[close..];
    }
    assert!(scripts >= 1, "index.html loads no script");
    assert!(
        !lower.contains("<style"),
        "an inline style sheet in index.html"
    );
    for handler in [" onload=", " onclick=", " onerror=", "javascript:"] {
        assert!(
            !lower.contains(handler),
            "an inline handler in index.html: {handler}"
        );
    }
    for entry in std::fs::read_dir(dist.join("assets")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "js") {
            let js = std::fs::read_to_string(&path).unwrap();
            assert!(
                !js.contains("new Function(") && !js.contains("eval("),
                "{} evaluates code",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_server_answers_only_loopback_hosts() {
    let s = server_with(None, |s| s.with_loopback_hosts_only(true)).await;
    for host in [
        "localhost:7878",
        "127.0.0.1:7878",
        "[::1]:7878",
        "localhost",
    ] {
        let a = send(&s.app, with_host("/v1/health", host)).await;
        assert_eq!(a.status, StatusCode::OK, "{host}");
    }
    for host in [
        "evil.example",
        "evil.example:7878",
        "localhost.evil.example",
        "127.0.0.1.nip.io:7878",
    ] {
        for path in ["/v1/health", "/", "/v1/pipelines"] {
            let a = send(&s.app, with_host(path, host)).await;
            assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host} {path}");
            assert_eq!(a.body["error"]["code"], "HostNotAllowed", "{host} {path}");
            assert_eq!(a.headers.get("x-frame-options").unwrap(), "DENY");
        }
    }
    // A server listening elsewhere is reached by its own names.
    let public = server().await;
    let a = send(&public.app, with_host("/v1/health", "sluice.example.com")).await;
    assert_eq!(a.status, StatusCode::OK);
}
