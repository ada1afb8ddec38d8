//! The REST API driven through the router (no socket), with embedded stores and a real PostgreSQL
//! destination: every route's happy path and the bad inputs a user can send.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sluice_engine::Engine;
use tower::ServiceExt;

mod support;

// The fake servers of the destinations' password tests.
#[path = "../../destinations/tests/recording/mod.rs"]
mod recording;

const TOKEN: &str = "test-token";

struct Api {
    app: Router,
    /// The engine behind the router, for what a test must set up below the API.
    engine: Engine,
    pg_url: String,
    schema: String,
    _dir: tempfile::TempDir,
}

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)")
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let engine = support::engine(dir.path()).await;
        let app = sluice_api::router(sluice_api::AppState::new(engine.clone(), TOKEN));
        let schema = format!("api_{}", uuid_like());
        let api = Api {
            app,
            engine,
            pg_url: pg_url(),
            schema,
            _dir: dir,
        };
        api.sql(&format!("CREATE SCHEMA {}", api.schema)).await;
        api
    }

    async fn sql(&self, sql: &str) {
        let (c, conn) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO {}; {sql}", self.schema))
            .await
            .unwrap();
    }

    async fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let (c, conn) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("SET search_path TO {}", self.schema))
            .await
            .unwrap();
        c.simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                }
                _ => None,
            })
            .collect()
    }

    fn pg_settings(&self) -> Value {
        let mut s =
            sluice_destinations::postgres::PostgresSettings::json_from_url(&self.pg_url).unwrap();
        s["schema"] = json!(self.schema);
        s["tls"] = json!({"mode": "disable"});
        s
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_vec()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let b = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, Some(TOKEN), b.as_deref()).await
    }

    async fn setup_model_and_profiles(&self, n: usize) {
        let (s, v) = self.call("PUT", "/v1/profile-schema", Some(model())).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let profiles: Vec<Value> = (0..n).map(profile).collect();
        let (s, v) = self
            .call("POST", "/v1/profiles", Some(json!({"profiles": profiles})))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["upserted"], n);
    }

    async fn add_destination(&self) -> String {
        let (s, v) = self
            .call("POST", "/v1/destinations", Some(json!({"name": "Warehouse", "type": "postgresql", "settings": self.pg_settings()})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:x}{:x}", n, std::process::id())
}

fn model() -> Value {
    json!({"properties": [
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "vip", "type": "boolean"},
        {"name": "tags", "type": "array(string)"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]})
}

fn profile(i: usize) -> Value {
    let country = ["IT", "FR"][i % 2];
    json!({"_id": format!("c{i:04}"), "first_name": "Zoë", "last_name": format!("L{i}"),
           "email": format!("Z{i}@Example.com"), "country": country, "ltv": format!("{i}.50"),
           "vip": i.is_multiple_of(3), "tags": ["a"], "address": {"city": "Besançon"}})
}

const TABLE: &str = "CREATE TABLE customers (customer_id text PRIMARY KEY, email text, full_name text, ltv numeric(12,2),
    city text, score int, blob bytea, tag macaddr)";

fn pipeline(dest: &str) -> Value {
    json!({
        "destination": dest, "name": "Subscribed customers", "description": "Italians", "enabled": true,
        "filter": {"logical": "and", "conditions": [
            {"property": "country", "operator": "is one of", "values": ["IT"]},
            {"logical": "or", "conditions": [{"property": "email", "operator": "is not empty"}]}]},
        "table": "customers", "key": "customer_id",
        "transformation": {"mapping": {"customer_id": "_id", "email": "lower(email)",
            "full_name": "first_name \" \" last_name", "ltv": "ltv", "city": "address.city"}},
        "schedule": "15m", "on_leave": "keep"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_is_required_except_health() {
    let api = Api::new().await;
    let (s, v) = api.raw("GET", "/v1/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "ok");
    for path in [
        "/v1/profile-schema",
        "/v1/destinations",
        "/v1/pipelines",
        "/v1/openapi.json",
        "/v1/profiles",
    ] {
        let (s, v) = api.raw("GET", path, None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(v["error"]["code"], "Unauthorized");
        let (s, _) = api.raw("GET", path, Some("wrong"), None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (s, v) = api.call("GET", "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["paths"]["/v1/pipelines/{id}/runs"]["post"].is_object());
    // The script contract is part of the document.
    let contract = v["components"]["schemas"]["Transformation"]["description"]
        .as_str()
        .unwrap();
    assert!(
        contract.contains("transform(profile)") && contract.contains("Decimal"),
        "{contract}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_model_and_profiles() {
    let api = Api::new().await;
    let (s, v) = api
        .call(
            "PUT",
            "/v1/profile-schema",
            Some(json!({"properties": [{"name": "x", "type": "strin"}]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["error"]["fields"]["properties[0].type"].is_array(), "{v}");
    api.setup_model_and_profiles(20).await;
    let (_, v) = api.call("GET", "/v1/profile-schema", None).await;
    assert_eq!(v["properties"][7]["properties"][0]["name"], "city");

    // Invalid profiles are rejected one by one, with their index; the valid ones are stored.
    let (s, v) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [
                {"_id": "ok1", "email": "a@b.c"},
                {"_id": "bad", "ltv": "12.345", "nope": 1},
                {"email": "no id"},
                "not an object"
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["upserted"], 1);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 3);
    assert_eq!(rejected[0]["index"], 1);
    assert_eq!(rejected[0]["_id"], "bad");
    assert_eq!(rejected[0]["errors"].as_array().unwrap().len(), 2);
    assert_eq!(rejected[1]["index"], 2);

    // Merge: properties not sent are kept.
    api.call(
        "POST",
        "/v1/profiles",
        Some(json!({"profiles": [{"_id": "c0001", "vip": true}]})),
    )
    .await;
    let (_, p) = api.call("GET", "/v1/profiles/c0001", None).await;
    assert_eq!(p["vip"], true);
    assert_eq!(p["last_name"], "L1");
    assert!(p["_updated_at"].is_string());

    // Browse with a filter, paginated.
    let filter = json!({"logical": "and", "conditions": [{"property": "country", "operator": "is", "values": ["IT"]}]});
    let enc = url_encode(&filter.to_string());
    let (s, v) = api
        .call("GET", &format!("/v1/profiles?filter={enc}&limit=4"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["profiles"].as_array().unwrap().len(), 4);
    assert_eq!(v["next"], "c0006");
    // The totals: every profile, and those the filter matches (not just this page's).
    let (_, all) = api.call("GET", "/v1/profiles?limit=1", None).await;
    let total = all["total"].as_u64().unwrap();
    assert_eq!(v["total"].as_u64(), Some(total), "{v}");
    assert_eq!(v["matching"], 10, "{v}");
    assert!(total > 10, "{all}");
    assert!(
        all.get("matching").is_none(),
        "no filter, no matching: {all}"
    );
    let (_, v2) = api
        .call(
            "GET",
            &format!("/v1/profiles?filter={enc}&limit=100&after=c0006"),
            None,
        )
        .await;
    assert_eq!(v2["profiles"].as_array().unwrap().len(), 6);
    assert!(v2["next"].is_null());
    let bad = url_encode(
        r#"{"logical":"and","conditions":[{"property":"nope","operator":"is","values":[1]}]}"#,
    );
    let (s, v) = api
        .call("GET", &format!("/v1/profiles?filter={bad}"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["filter.conditions[0].property"].is_array(),
        "{v}"
    );

    let (s, _) = api.call("DELETE", "/v1/profiles/c0001", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api.call("GET", "/v1/profiles/c0001", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "NotFound");
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_invalid_requests() {
    let api = Api::new().await;
    let (s, v) = api
        .raw(
            "POST",
            "/v1/destinations",
            Some(TOKEN),
            Some(b"{\"name\": "),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["code"], "MalformedRequest");
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "x", "type": "postgresql", "bogus": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("bogus"),
        "{v}"
    );
    let (s, v) = api
        .call("POST", "/v1/destinations", Some(json!({"name": "x", "type": "postgresql", "settings": {"host": "h", "port": "many"}})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["settings.port"].is_array(), "{v}");
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "x", "type": "oracle", "settings": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["error"]["fields"]["type"].is_array(), "{v}");
    let (s, v) = api
        .call("POST", "/v1/pipelines", Some(json!({"name": 5})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["name"].is_array(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_password_never_leaves_for_a_new_address() {
    let api = Api::new().await;
    let password = "stored-only-9c1e";
    let mut settings = api.pg_settings();
    settings["password"] = json!(password);
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "W", "type": "postgresql", "settings": settings.clone()})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (port, received) = recording::postgres_asking_cleartext().await;

    // The stored password, left out or sent back masked, for another port, host, user or TLS mode.
    let mut elsewhere = Vec::new();
    for (field, value) in [
        ("port", json!(port)),
        ("host", json!("localhost")),
        ("username", json!("someone_else")),
        ("tls", json!({"mode": "prefer"})),
    ] {
        let mut edited = settings.clone();
        edited[field] = value;
        edited.as_object_mut().unwrap().remove("password");
        elsewhere.push(edited.clone());
        edited["password"] = json!("********");
        elsewhere.push(edited);
    }
    for edited in &elsewhere {
        let (s, v) = api
            .call(
                "POST",
                &format!("/v1/destinations/{id}/test"),
                Some(json!({"settings": edited})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{edited}: {v}");
        let message = v["error"]["fields"]["settings.password"][0]
            .as_str()
            .unwrap();
        assert!(message.starts_with("give the password again"), "{v}");
        let (s, v) = api
            .call(
                "PUT",
                &format!("/v1/destinations/{id}"),
                Some(json!({"name": "W", "type": "postgresql", "settings": edited})),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{edited}: {v}");
        assert!(v["error"]["fields"]["settings.password"].is_array(), "{v}");
    }
    // Nothing reached the listener, and nothing stored changed.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        received.lock().unwrap().is_empty(),
        "the listener was contacted"
    );
    let stored = api
        .engine
        .meta()
        .get_destination(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.settings["password"], password);
    assert_eq!(stored.settings["port"], settings["port"]);

    // Given again, the password goes where the user said (here with TLS disabled, to show that the
    // listener does receive what is sent to it).
    let mut retyped = settings.clone();
    retyped["port"] = json!(port);
    let (s, v) = api
        .call(
            "POST",
            &format!("/v1/destinations/{id}/test"),
            Some(json!({"settings": retyped})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(String::from_utf8_lossy(&received.lock().unwrap()).contains(password));
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_keep_secrets_write_only() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    let mut settings = api.pg_settings();
    settings["password"] = json!("s3cret-Value");
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations/test",
            Some(json!({"type": "postgresql", "settings": settings.clone()})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["server_version"].as_str().unwrap().contains('.'), "{v}");
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "W", "type": "postgresql", "settings": settings})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["settings"]["password"], "********");
    assert!(!v.to_string().contains("s3cret"));
    let id = v["id"].as_str().unwrap();
    // An update without the password keeps it.
    let mut changed = v["settings"].clone();
    changed.as_object_mut().unwrap().remove("password");
    let (s, v) = api
        .call(
            "PUT",
            &format!("/v1/destinations/{id}"),
            Some(json!({"name": "W2", "type": "postgresql", "settings": changed})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["settings"]["password"], "********");
    // Edited settings can be tested without sending the password again.
    let mut edited = api.pg_settings();
    edited.as_object_mut().unwrap().remove("password");
    edited["database"] = json!("no_such_db_for_edit");
    let (_, v) = api
        .call(
            "POST",
            &format!("/v1/destinations/{id}/test"),
            Some(json!({"settings": edited})),
        )
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_db_for_edit"),
        "{v}"
    );
    let (s, v) = api
        .call("POST", &format!("/v1/destinations/{id}/test"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["ok"], true, "{v}");
    // A test of the saved settings is the destination's health, shown in the list.
    let (_, list) = api.call("GET", "/v1/destinations", None).await;
    let listed = list["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == json!(id))
        .unwrap()
        .clone();
    assert_eq!(listed["last_test"]["ok"], true, "{listed}");
    assert!(listed["last_test"]["at"].is_string(), "{listed}");
    // Name taken.
    let (s, v) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "W2", "type": "postgresql", "settings": api.pg_settings()})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // The table: columns, keys, unsupported types as issues; 404 when missing.
    let (s, t) = api
        .call(
            "GET",
            &format!("/v1/destinations/{id}/tables/customers"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    assert_eq!(t["keys"], json!([["customer_id"]]));
    assert!(t["issues"].to_string().contains("macaddr"), "{t}");
    let (s, v) = api
        .call("GET", &format!("/v1/destinations/{id}/tables/nope"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "TableNotFound");
    // A failing test answers ok=false with the database's message.
    let mut wrong = api.pg_settings();
    wrong["database"] = json!("no_such_database_here");
    let (_, v) = api
        .call(
            "POST",
            "/v1/destinations/test",
            Some(json!({"type": "postgresql", "settings": wrong})),
        )
        .await;
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_database_here"),
        "{v}"
    );
    // A wrong database is no missing table.
    assert_eq!(v["error"]["code"], "NotFound", "{v}");
    // The tables to pick from: `customers` of the destination's schema, by name.
    let (s, v) = api
        .call("GET", &format!("/v1/destinations/{id}/tables"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tables = v["tables"].as_array().unwrap();
    assert!(
        tables.contains(&json!({"schema": api.schema, "name": "customers"})),
        "{v}"
    );
    let (s, _) = api
        .call("GET", "/v1/destinations/dst_nope/tables", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, c) = api.call("GET", "/v1/connectors", None).await;
    assert!(c.to_string().contains("5432"));
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelines_are_checked_and_run() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(40).await;
    let dest = api.add_destination().await;

    // Every problem at once, each with its field path.
    let mut bad = pipeline(&dest);
    bad["key"] = json!("score");
    bad["filter"]["conditions"][0]["operator"] = json!("starts with nothing");
    bad["transformation"]["mapping"]["nope"] = json!("email");
    bad["transformation"]["mapping"]["email"] = json!("lower(email");
    bad["transformation"]["mapping"]["blob"] = json!("vip");
    bad["schedule"] = json!("7m");
    let (s, v) = api.call("POST", "/v1/pipelines", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields = v["error"]["fields"].as_object().unwrap();
    for f in [
        "key",
        "filter.conditions[0].operator",
        "transformation.mapping.nope",
        "transformation.mapping.email",
        "schedule",
    ] {
        assert!(fields.contains_key(f), "missing {f} in {v}");
    }
    // The short intervals are sources'; an export pipeline is told of `on_change`.
    let mut short = pipeline(&dest);
    short["schedule"] = json!("5s");
    let (s, v) = api.call("POST", "/v1/pipelines", Some(short)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let m = v["error"]["fields"]["schedule"][0]
        .as_str()
        .unwrap_or_default();
    assert!(
        m.contains("`5s` is for source pipelines") && m.contains("on_change"),
        "{v}"
    );
    let mut missing_table = pipeline(&dest);
    missing_table["table"] = json!("nope");
    let (s, v) = api.call("POST", "/v1/pipelines", Some(missing_table)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v["error"]["fields"]["table"].is_array(), "{v}");

    let (s, p) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["schedule"], "15m");
    assert!(
        p["filter_summary"].as_str().unwrap().contains("country"),
        "{p}"
    );
    let (s, _) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "names are unique per destination");

    // Preview writes nothing.
    let (s, pv) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{id}/preview"),
            Some(json!({"limit": 3})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    assert_eq!(pv["samples"][0]["row"]["email"], "z0@example.com");
    assert_eq!(pv["samples"][0]["action"], "insert");
    assert_eq!(
        api.query("SELECT count(*) FROM customers").await[0][0].as_deref(),
        Some("0")
    );

    // Run now, then follow the run.
    let (s, r) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let run_id = r["id"].as_str().unwrap().to_string();
    let run = wait_run(&api, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"], "api");
    assert_eq!(run["counts"]["inserted"], 20);
    assert_eq!(run["counts"]["filtered_out"], 20);
    assert_eq!(run["progress"]["processed"], 20);
    let rows = api
        .query("SELECT full_name, city, ltv FROM customers WHERE customer_id = 'c0002'")
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("Zoë L2".into()),
            Some("Besançon".into()),
            Some("2.50".into())
        ]
    );
    let (_, runs) = api
        .call("GET", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(runs["runs"][0]["id"], run_id);

    // Disabled pipelines do not run.
    let (s, p) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["enabled"], false);
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "PipelineDisabled");

    // Destinations with pipelines cannot be deleted; the Customer Model cannot lose a used property.
    let (s, v) = api
        .call("DELETE", &format!("/v1/destinations/{dest}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Subscribed customers"),
        "{v}"
    );
    let mut smaller = model();
    smaller["properties"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "email");
    let (s, v) = api.call("PUT", "/v1/profile-schema", Some(smaller)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Subscribed customers"),
        "{v}"
    );
    let mut retyped = model();
    retyped["properties"][3]["type"] = json!("int");
    let (s, v) = api.call("PUT", "/v1/profile-schema", Some(retyped)).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // An unused property may go.
    let mut unused = model();
    unused["properties"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["name"] != "tags");
    let (s, v) = api.call("PUT", "/v1/profile-schema", Some(unused)).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // JavaScript pipelines are compiled when saved (syntax errors with line and column), preview and run.
    let mut js = pipeline(&dest);
    js["name"] = json!("Scripted");
    js["transformation"] =
        json!({"javascript": "function transform(p) {\n  return {customer_id: p._id,,};\n}"});
    let (s, v) = api.call("POST", "/v1/pipelines", Some(js.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["fields"]["transformation.javascript"][0]
        .as_str()
        .unwrap();
    assert!(
        message.contains("SyntaxError") && message.contains("line 2, column"),
        "{v}"
    );
    js["transformation"] = json!({"javascript": r#"
        const columns = ["customer_id", "email", "full_name"];
        function transform(p) {
          if (p.vip) return null;
          return {customer_id: p._id, email: p.email.toUpperCase(), full_name: `${p.first_name} ${p.last_name}!`};
        }"#});
    js["schedule"] = json!({"cron": "0 3 * * *", "timezone": "Europe/Rome"});
    js["on_leave"] = json!("delete");
    let (s, v) = api.call("POST", "/v1/pipelines", Some(js)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["schedule"]["timezone"], "Europe/Rome");
    assert_eq!(v["on_leave"], "delete");
    assert!(v["transformation"]["javascript"]
        .as_str()
        .unwrap()
        .contains("transform"));
    let js_id = v["id"].as_str().unwrap().to_string();
    let (s, pv) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{js_id}/preview"),
            Some(json!({"profiles": ["c0000", "c0002", "c0001"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    assert_eq!(pv["columns"], json!(["customer_id", "email", "full_name"]));
    assert_eq!(pv["samples"][0]["action"], "skip", "{pv}");
    assert_eq!(pv["samples"][1]["row"]["email"], "Z2@EXAMPLE.COM", "{pv}");
    assert_eq!(pv["samples"][1]["row"]["full_name"], "Zoë L2!", "{pv}");
    assert_eq!(pv["samples"][1]["action"], "insert", "{pv}");
    assert_eq!(pv["samples"][2]["action"], "skip", "{pv}");
    // An unsaved script previews too; an exception shows as that sample's error, with its line.
    let mut unsaved = pipeline(&dest);
    unsaved["transformation"] = json!({"javascript": "const columns = ['customer_id', 'email'];\nfunction transform(p) {\n  if (p._id === 'c0002') throw new RangeError('no two');\n  return {customer_id: p._id, email: p.email};\n}"});
    let (s, pv) = api
        .call(
            "POST",
            "/v1/pipelines/preview",
            Some(json!({"pipeline": unsaved, "profiles": ["c0002", "c0004"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    assert!(
        pv["samples"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("RangeError: no two (line 3, column "),
        "{pv}"
    );
    assert_eq!(pv["samples"][0]["action"], "skip", "{pv}");
    assert_eq!(pv["samples"][1]["row"]["email"], "Z4@Example.com", "{pv}");
    assert_eq!(pv["samples"][1]["action"], "insert", "{pv}");
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{js_id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_run(&api, v["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // 20 profiles outside the filter, and 7 VIPs among the 20 Italians that the script skips.
    assert_eq!(run["counts"]["filtered_out"], 27, "{run}");
    assert_eq!(
        run["counts"]["inserted"].as_u64().unwrap() + run["counts"]["updated"].as_u64().unwrap(),
        13,
        "{run}"
    );
    let rows = api
        .query("SELECT email, full_name, city FROM customers WHERE customer_id = 'c0002'")
        .await;
    assert_eq!(
        rows[0],
        vec![
            Some("Z2@EXAMPLE.COM".into()),
            Some("Zoë L2!".into()),
            Some("Besançon".into())
        ]
    );
    // Python is checked when saved (with the machine's python3), previews and runs.
    let mut py = pipeline(&dest);
    py["name"] = json!("Python");
    py["transformation"] =
        json!({"python": "def transform(p):\n    return {'customer_id': p['_id'],,}\n"});
    let (s, v) = api.call("POST", "/v1/pipelines", Some(py.clone())).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["fields"]["transformation.python"][0]
        .as_str()
        .unwrap();
    assert!(
        message.contains("SyntaxError") && message.contains("line 2"),
        "{v}"
    );
    py["transformation"] = json!({"python": "columns = ['customer_id']\ndef transform(p):\n    if p['_id'] == 'c0004':\n        raise KeyError('four')\n    return {'customer_id': p['_id']}\n"});
    let (s, v) = api.call("POST", "/v1/pipelines", Some(py)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let py_id = v["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{py_id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_run(&api, v["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["counts"]["transform_failed"], 1, "{run}");
    let (s, pv) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{py_id}/preview"),
            Some(json!({"profiles": ["c0002", "c0004"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    assert_eq!(
        pv["samples"][0]["row"],
        json!({"customer_id": "c0002"}),
        "{pv}"
    );
    assert_eq!(pv["samples"][0]["action"], "unchanged", "{pv}");
    assert_eq!(
        pv["samples"][1]["error"], "KeyError: 'four' (line 4)",
        "{pv}"
    );
    let (s, _) = api
        .call("DELETE", &format!("/v1/pipelines/{py_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, list) = api
        .call("GET", &format!("/v1/pipelines?destination={dest}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["pipelines"].as_array().unwrap().len(), 2);
    let (s, _) = api
        .call("DELETE", &format!("/v1/pipelines/{js_id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    let (s, _) = api
        .call("DELETE", &format!("/v1/pipelines/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .call("DELETE", &format!("/v1/destinations/{dest}"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_never_runs_twice_at_once() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    // Every statement on the table waits a second, so the first run is still going when the second asks.
    api.sql(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
         CREATE TRIGGER slow AFTER INSERT ON customers FOR EACH STATEMENT EXECUTE FUNCTION slow();",
    )
    .await;
    api.setup_model_and_profiles(10).await;
    let dest = api.add_destination().await;
    let (_, p) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    let (s, first) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "PipelineAlreadyRunning");
    let (_, p) = api.call("GET", &format!("/v1/pipelines/{id}"), None).await;
    assert_eq!(p["running"], first["id"]);
    let run = wait_run(&api, first["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}

/// `{"mode": "reconcile"}` reads the rows back and rewrites those someone else changed; its counts say
/// what it rewrote. An unknown mode is refused with its field named.
#[tokio::test(flavor = "multi_thread")]
async fn reconcile_runs_rewrite_what_someone_else_changed() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(40).await;
    let dest = api.add_destination().await;
    let (_, p) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    let id = p["id"].as_str().unwrap().to_string();
    let (s, r) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let run = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(run["counts"]["inserted"], 20, "{run}");

    api.sql("UPDATE customers SET city = 'Elsewhere' WHERE customer_id IN ('c0002', 'c0004')")
        .await;
    let (s, v) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{id}/runs"),
            Some(json!({"mode": "sideways"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["mode"].is_array(), "{v}");

    let (s, r) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{id}/runs"),
            Some(json!({"mode": "reconcile", "trigger": "manual"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let run = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (&run["counts"]["updated"], &run["counts"]["unchanged"]),
        (&json!(2), &json!(18)),
        "{run}"
    );
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("0 rows missing and 2 rows changed"),
        "{run}"
    );
    assert_eq!(
        api.query("SELECT count(*) FROM customers WHERE city = 'Besançon'")
            .await[0][0]
            .as_deref(),
        Some("20")
    );
}

/// `{"dry_run": true}` answers with a run that ends with the counts the next real run has and sample
/// rows, writing nothing and staying out of the history; it runs on a disabled pipeline. `POST
/// /v1/dry-runs` does the same for a definition not saved, its mistakes named under `pipeline`.
#[tokio::test(flavor = "multi_thread")]
async fn dry_runs_say_what_the_next_run_does_and_write_nothing() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(40).await;
    let dest = api.add_destination().await;
    let mut spec = pipeline(&dest);
    spec["enabled"] = json!(false);
    let (_, p) = api.call("POST", "/v1/pipelines", Some(spec.clone())).await;
    let id = p["id"].as_str().unwrap().to_string();
    let runs = format!("/v1/pipelines/{id}/runs");

    let (s, r) = api
        .call(
            "POST",
            &runs,
            Some(json!({"dry_run": true, "trigger": "manual"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let dry = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(dry["status"], "succeeded", "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["counts"]["inserted"], 20, "{dry}");
    assert_eq!(
        dry["samples"]["inserts"].as_array().unwrap().len(),
        5,
        "{dry}"
    );
    assert_eq!(
        dry["samples"]["inserts"][0]["row"]["email"], "z0@example.com",
        "{dry}"
    );
    assert_eq!(
        api.query("SELECT count(*) FROM customers").await[0][0].as_deref(),
        Some("0"),
        "a dry run writes nothing"
    );
    let (_, history) = api.call("GET", &runs, None).await;
    assert_eq!(history["runs"], json!([]), "{history}");
    let (s, v) = api
        .call(
            "POST",
            &runs,
            Some(json!({"dry_run": true, "mode": "reconcile"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["mode"].is_array(), "{v}");

    // The real run does what the dry run said.
    let (_, _) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    let (_, r) = api.call("POST", &runs, None).await;
    let real = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(real["counts"], dry["counts"], "{real}");
    assert!(real.get("dry_run").is_none(), "{real}");

    // A change under review: the French too, and cities in capitals.
    let mut change = spec.clone();
    change["enabled"] = json!(true);
    change["filter"] = json!(null);
    change["transformation"]["mapping"]["city"] = json!("upper(address.city)");
    let (s, r) = api
        .call(
            "POST",
            "/v1/dry-runs",
            Some(json!({"pipeline": change, "replaces": id})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let dry = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(dry["status"], "succeeded", "{dry}");
    assert_eq!(
        (&dry["counts"]["inserted"], &dry["counts"]["updated"]),
        (&json!(20), &json!(20)),
        "{dry}"
    );
    let update = &dry["samples"]["updates"][0];
    assert_eq!(
        update["changes"],
        json!([{"column": "city", "before": "Besançon", "after": "BESANÇON"}]),
        "{dry}"
    );
    // As a new pipeline, nothing is known of its rows: the table says which keys it holds.
    let (_, r) = api
        .call("POST", "/v1/dry-runs", Some(json!({"pipeline": change})))
        .await;
    let dry = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(
        (&dry["counts"]["inserted"], &dry["counts"]["updated"]),
        (&json!(20), &json!(20)),
        "{dry}"
    );
    assert_eq!(
        api.query("SELECT count(*) FROM customers WHERE city = 'Besançon'")
            .await[0][0]
            .as_deref(),
        Some("20"),
        "still as the real run wrote it"
    );

    let mut bad = change.clone();
    bad["key"] = json!("no_such_column");
    let (s, v) = api
        .call("POST", "/v1/dry-runs", Some(json!({"pipeline": bad})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["pipeline.key"].is_array(), "{v}");
    let (s, v) = api
        .call(
            "POST",
            "/v1/dry-runs",
            Some(json!({"pipeline": change, "replaces": "pl_nope"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

/// A dry run is cancelled like a run: `POST /v1/runs/{id}/cancel` stops it (it spends about 50 ms on each
/// of its 20 profiles, so it is still going), it ends `cancelled` having written nothing, and a second
/// cancel of the finished dry run is a conflict, not an unknown run. Past the cap of dry runs going and
/// waiting, another is refused with 429.
#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_can_be_cancelled() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(40).await;
    let dest = api.add_destination().await;
    let mut spec = pipeline(&dest);
    spec["transformation"] = json!({"javascript": "const columns = [\"customer_id\", \"email\"];\n\
        function transform(p) { const t = Date.now(); while (Date.now() - t < 50) {}\n\
        return {customer_id: p._id, email: p.email}; }"});
    let (s, p) = api.call("POST", "/v1/pipelines", Some(spec)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap();
    let (s, r) = start_dry_run(&api, id).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let run = r["id"].as_str().unwrap();
    let cancel = format!("/v1/runs/{run}/cancel");
    let (s, v) = api.call("POST", &cancel, None).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let dry = wait_run(&api, run).await;
    assert_eq!(dry["status"], "cancelled", "{dry}");
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(dry["counts"]["inserted"].as_u64().unwrap() < 20, "{dry}");
    assert_eq!(
        api.query("SELECT count(*) FROM customers").await[0][0].as_deref(),
        Some("0"),
        "a dry run writes nothing"
    );
    let (s, v) = api.call("POST", &cancel, None).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "RunNotActive", "{v}");

    // Two going and eight waiting (the defaults) is the cap: the eleventh is 429, then all are
    // cancelled.
    let mut started = Vec::new();
    for _ in 0..10 {
        let (s, r) = start_dry_run(&api, id).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{r}");
        started.push(r["id"].as_str().unwrap().to_string());
    }
    let (s, v) = start_dry_run(&api, id).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["code"], "TooManyDryRuns", "{v}");
    for run in &started {
        let (s, v) = api
            .call("POST", &format!("/v1/runs/{run}/cancel"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    }
    for run in &started {
        assert_eq!(wait_run(&api, run).await["status"], "cancelled");
    }
}

/// Starts a dry run of the pipeline `id`: the status and the answer.
async fn start_dry_run(api: &Api, id: &str) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/v1/pipelines/{id}/runs"),
        Some(json!({"dry_run": true})),
    )
    .await
}

async fn wait_run(api: &Api, id: &str) -> Value {
    for _ in 0..600 {
        let (s, r) = api.call("GET", &format!("/v1/runs/{id}"), None).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("run {id} did not finish");
}

#[tokio::test(flavor = "multi_thread")]
async fn schedules_alerts_and_metrics() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(4).await;
    let dest = api.add_destination().await;

    // Bad schedules and webhooks are refused, each naming its field.
    let mut bad = pipeline(&dest);
    bad["schedule"] = json!({"cron": "0 3 * *", "timezone": "Mars/Olympus"});
    bad["alert_webhook"] = json!("hooks.example.com/x");
    bad["reconcile_every"] = json!("every day");
    let (s, v) = api.call("POST", "/v1/pipelines", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields = &v["error"]["fields"];
    assert!(
        fields["reconcile_every"][0]
            .as_str()
            .unwrap()
            .contains("`every day` is not an interval"),
        "{v}"
    );
    assert!(
        fields["schedule.timezone"][0]
            .as_str()
            .unwrap()
            .contains("Mars/Olympus"),
        "{v}"
    );
    assert!(
        fields["alert_webhook"][0]
            .as_str()
            .unwrap()
            .contains("https://"),
        "{v}"
    );
    let mut bad = pipeline(&dest);
    bad["schedule"] = json!({"cron": "61 * * * *", "timezone": "UTC"});
    let (s, v) = api.call("POST", "/v1/pipelines", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["schedule.cron"][0]
            .as_str()
            .unwrap()
            .contains("61 * * * *"),
        "{v}"
    );

    // A 15m schedule: the next run is the next quarter hour; off or disabled: none.
    let mut spec = pipeline(&dest);
    spec["alert_webhook"] = json!("https://hooks.example.com/sluice");
    spec["reconcile_every"] = json!("1d");
    let (s, p) = api.call("POST", "/v1/pipelines", Some(spec)).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["alert_webhook"], "https://hooks.example.com/sluice");
    assert_eq!(p["reconcile_every"], "1d");
    let id = p["id"].as_str().unwrap().to_string();
    // Too short an interval is refused on a change too, and the stored one is kept.
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"reconcile_every": "1m"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["reconcile_every"][0]
            .as_str()
            .unwrap()
            .contains("out of range"),
        "{v}"
    );
    let (_, v) = api.call("GET", &format!("/v1/pipelines/{id}"), None).await;
    assert_eq!(v["reconcile_every"], "1d", "{v}");
    let next: chrono::DateTime<chrono::Utc> = p["next_run_at"]
        .as_str()
        .expect("next_run_at is set")
        .parse()
        .unwrap();
    let now = chrono::Utc::now();
    assert!(
        next > now && next <= now + chrono::Duration::minutes(15),
        "{next}"
    );
    assert_eq!(next.timestamp() % 900, 0, "on the quarter hour: {next}");
    let (_, p) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"schedule": {"cron": "30 4 * * *", "timezone": "Asia/Tokyo"}})),
        )
        .await;
    let next: chrono::DateTime<chrono::Utc> = p["next_run_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        next.format("%H:%M").to_string(),
        "19:30",
        "04:30 in Tokyo is 19:30 UTC"
    );
    let (_, p) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(p["next_run_at"], Value::Null);
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["code"], "PipelineDisabled");
    let (_, p) = api
        .call(
            "PATCH",
            &format!("/v1/pipelines/{id}"),
            Some(json!({"enabled": true, "schedule": null})),
        )
        .await;
    assert_eq!(p["next_run_at"], Value::Null);
    assert_eq!(
        p["alert_webhook"], "https://hooks.example.com/sluice",
        "PATCH keeps other fields"
    );

    // Metrics after one run.
    let (s, r) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{r}");
    let run = wait_run(&api, r["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let resp = api
        .app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for needle in [
        format!("sluice_runs_total{{pipeline=\"{id}\",outcome=\"succeeded\"}} 1"),
        format!("sluice_rows_total{{pipeline=\"{id}\",outcome=\"inserted\"}} 2"),
        format!("sluice_run_duration_seconds_count{{pipeline=\"{id}\"}} 1"),
        format!("sluice_seconds_since_last_success{{pipeline=\"{id}\"}} "),
        format!("sluice_pipeline_runs_in_progress{{pipeline=\"{id}\",status=\"running\"}} 0"),
        "# TYPE sluice_run_duration_seconds summary".to_string(),
        "sluice_runs_in_progress 0".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle} in\n{text}");
    }
}

/// Sends one statement to the test ClickHouse server over its HTTP interface.
async fn clickhouse_sql(sql: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = std::env::var("SLUICE_TEST_CLICKHOUSE_HTTP").expect(
        "SLUICE_TEST_CLICKHOUSE_HTTP must name a ClickHouse HTTP endpoint (scripts/services.sh starts one)",
    );
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let user = std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into());
    let password = std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /?user={user}&password={password} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sql}",
        sql.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{sql}: {answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_any_field_to_an_invalid_value_is_refused_with_its_path() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    api.setup_model_and_profiles(4).await;
    let dest = api.add_destination().await;
    let (s, p) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    let path = format!("/v1/pipelines/{id}");
    let (_, before) = api.call("GET", &path, None).await;

    // Every field of the spec, each set to something wrong, and where the answer must say so.
    let cases = [
        ("destination", json!("dst_missing"), "destination"),
        ("name", json!("  "), "name"),
        ("description", json!(42), "description"),
        ("enabled", json!("yes"), "enabled"),
        (
            "filter",
            json!({"logical": "and", "conditions": [{"property": "nope", "operator": "is", "values": ["x"]}]}),
            "filter.conditions[0]",
        ),
        ("table", json!("no_such_table"), "table"),
        ("key", json!("no_such_column"), "key"),
        (
            "transformation",
            json!({"mapping": {"customer_id": "_id", "ghost": "email"}}),
            "transformation.mapping.ghost",
        ),
        ("schedule", json!("7m"), "schedule"),
        ("on_leave", json!("sometimes"), "on_leave"),
        ("alert_webhook", json!("ftp://example.com"), "alert_webhook"),
    ];
    let spec_fields: Vec<String> =
        serde_json::from_value::<sluice_core::pipeline::PipelineSpec>(pipeline(&dest))
            .map(|s| serde_json::to_value(s).unwrap())
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
    for f in &spec_fields {
        assert!(
            cases.iter().any(|(name, _, _)| name == f),
            "no invalid case for the field `{f}`"
        );
    }
    for (field, value, expected) in cases {
        let (s, v) = api
            .call("PATCH", &path, Some(json!({ field: value })))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {v}");
        let fields = v["error"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().any(|k| k.starts_with(expected)),
            "{field}: expected a problem at {expected} in {v}"
        );
    }
    let (_, after) = api.call("GET", &path, None).await;
    assert_eq!(
        before["updated_at"], after["updated_at"],
        "nothing was saved"
    );
    assert_eq!(before["table"], after["table"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_on_leave_to_delete_is_checked_against_the_table() {
    // The test ClickHouse server (18.16) cannot delete rows: a pipeline on it must keep leavers' rows.
    let api = Api::new().await;
    api.setup_model_and_profiles(2).await;
    let table = format!("api_leave_{}", uuid_like());
    clickhouse_sql(&format!(
        "CREATE TABLE {table} (customer_id String, email Nullable(String)) ENGINE = ReplacingMergeTree() ORDER BY customer_id"
    ))
    .await;
    let native = std::env::var("SLUICE_TEST_CLICKHOUSE_NATIVE").unwrap();
    let (host, port) = native.rsplit_once(':').unwrap();
    let settings = json!({
        "host": host, "port": port.parse::<u16>().unwrap(), "database": "default",
        "username": std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        "password": std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
    });
    let (s, d) = api
        .call(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "Events", "type": "clickhouse", "settings": settings})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let spec = json!({"destination": d["id"], "name": "to ClickHouse", "table": table, "key": "customer_id",
        "transformation": {"mapping": {"customer_id": "_id", "email": "email"}}});
    let (s, p) = api.call("POST", "/v1/pipelines", Some(spec.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let path = format!("/v1/pipelines/{}", p["id"].as_str().unwrap());
    for (method, body) in [
        ("PATCH", json!({"on_leave": "delete"})),
        ("PUT", {
            let mut s = spec.clone();
            s["on_leave"] = json!("delete");
            s
        }),
    ] {
        let (s, v) = api.call(method, &path, Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{method}: {v}");
        assert!(v["error"]["fields"]["on_leave"].is_array(), "{method}: {v}");
    }
    let (_, v) = api.call("GET", &path, None).await;
    assert_eq!(v["on_leave"], "keep");
    // Changes that do not touch what is written need no table: they pass.
    let (s, v) = api
        .call(
            "PATCH",
            &path,
            Some(json!({"enabled": false, "schedule": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    clickhouse_sql(&format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_labels_hold_for_a_pipeline_with_a_million_synced_rows() {
    let api = Api::new().await;
    api.sql(TABLE).await;
    let (s, v) = api.call("PUT", "/v1/profile-schema", Some(model())).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Three profiles whose ids sort after every other synced profile.
    let sample: Vec<Value> = (0..3)
        .map(|i| {
            let mut p = profile(i);
            p["_id"] = json!(format!("z{i}"));
            p["country"] = json!("IT");
            p
        })
        .collect();
    let (s, v) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": sample[..2]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let dest = api.add_destination().await;
    let (s, p) = api
        .call("POST", "/v1/pipelines", Some(pipeline(&dest)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    let (s, v) = api
        .call("POST", &format!("/v1/pipelines/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let run = wait_run(&api, v["id"].as_str().unwrap()).await;
    assert_eq!(run["counts"]["inserted"], 2, "{run}");
    // A million more synced rows, all ordered before the sample.
    let meta = api.engine.meta();
    for chunk in 0..100 {
        let entries = (0..10_000)
            .map(|i| {
                sluice_store::SyncEntry::written(
                    format!("a{:07}", chunk * 10_000 + i),
                    sluice_store::SyncKey::from_stored(format!("a{:07}", chunk * 10_000 + i)),
                    7,
                )
            })
            .collect();
        meta.sync_apply(&id, entries, Vec::new()).await.unwrap();
    }
    assert_eq!(meta.sync_count(&id).await.unwrap(), 1_000_002);
    // z1 changes, z2 is new.
    let mut changed = sample[1].clone();
    changed["email"] = json!("changed@example.com");
    let (s, v) = api
        .call(
            "POST",
            "/v1/profiles",
            Some(json!({"profiles": [changed, sample[2]]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, pv) = api
        .call(
            "POST",
            &format!("/v1/pipelines/{id}/preview"),
            Some(json!({"profiles": ["z2", "z0", "z1"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{pv}");
    let actions: Vec<&str> = pv["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["insert", "unchanged", "update"], "{pv}");
}
