//! `/v1/sources` through the router (no socket), with embedded stores and a real PostgreSQL source:
//! checks at save naming each field, runs read at `/v1/runs/{id}`, the preview, roles and the audit log.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;

const TOKEN: &str = "test-token";

struct Api {
    app: Router,
    pg_url: String,
    schema: String,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let engine = support::engine(dir.path()).await;
        let app = sluice_api::router(sluice_api::AppState::new(engine, TOKEN));
        let pg_url = std::env::var("SLUICE_TEST_POSTGRES_URL").expect(
            "SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)",
        );
        let schema = format!("src_api_{}", uuid::Uuid::new_v4().simple());
        let api = Api {
            app,
            pg_url,
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

    async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
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
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, v)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    async fn connection(&self) -> String {
        let mut settings =
            sluice_destinations::postgres::PostgresSettings::json_from_url(&self.pg_url).unwrap();
        settings["schema"] = json!(self.schema);
        settings["tls"] = json!({"mode": "disable"});
        let (s, v) = self
            .call(
                "POST",
                "/v1/destinations",
                Some(json!({"name": "CRM", "type": "postgresql", "settings": settings})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }

    async fn wait_run(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (s, r) = self.call("GET", &format!("/v1/runs/{id}"), None).await;
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
}

fn source(connection: &str) -> Value {
    json!({
        "connection": connection, "name": "CRM customers", "table": "src_customers",
        "id_column": "customer_id",
        "transformation": {"mapping": {"email": "lower(email)", "country": "country",
                                       "address.city": "city"}},
        "changes": {"mode": "cursor", "column": "updated_at"},
        "schedule": "5m"
    })
}

async fn setup() -> (Api, String) {
    let api = Api::new().await;
    let (s, v) = api
        .call(
            "PUT",
            "/v1/profile-schema",
            Some(json!({"properties": [
                {"name": "email", "type": "string"},
                {"name": "country", "type": "string"},
                {"name": "ltv", "type": "decimal(12,2)"},
                {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    api.sql(
        "CREATE TABLE src_customers (customer_id text PRIMARY KEY, email text, country text, city text,
            ltv text, picture bytea, updated_at timestamptz NOT NULL);
         INSERT INTO src_customers VALUES
            ('c1', 'Ann@Example.com', 'IT', 'Rome', '1.50', NULL, '2026-12-01 10:00:00+00'),
            ('c2', 'Bob@Example.com', 'FR', 'Lyon', 'many', NULL, '2026-12-01 10:00:01+00'),
            ('c3', NULL, 'DE', NULL, '3', NULL, '2026-12-01 10:00:02+00')",
    )
    .await;
    let connection = api.connection().await;
    (api, connection)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_is_checked_against_its_live_table_when_saved() {
    let (api, connection) = setup().await;
    let mut bad = source(&connection);
    bad["id_column"] = json!("nope");
    bad["changes"] = json!({"mode": "cursor", "column": "picture"});
    bad["transformation"] = json!({"mapping": {"email": "lower(mail)", "nickname": "email"}});
    let (s, v) = api.call("POST", "/v1/sources", Some(bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let fields = v["error"]["fields"].as_object().unwrap();
    for f in [
        "id_column",
        "transformation.mapping.email",
        "transformation.mapping.nickname",
    ] {
        assert!(fields.contains_key(f), "{f} in {v}");
    }
    assert!(
        fields["id_column"][0].as_str().unwrap().contains("nope"),
        "{v}"
    );

    let mut cursor = source(&connection);
    cursor["changes"] = json!({"mode": "cursor", "column": "picture"});
    let (s, v) = api.call("POST", "/v1/sources", Some(cursor)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["changes.column"][0]
            .as_str()
            .unwrap()
            .contains("picture"),
        "{v}"
    );

    let mut missing = source(&connection);
    missing["table"] = json!("src_nowhere");
    let (s, v) = api.call("POST", "/v1/sources", Some(missing)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["table"][0]
            .as_str()
            .unwrap()
            .contains("src_nowhere"),
        "{v}"
    );

    let mut elsewhere = source("dst_missing");
    elsewhere["query"] = json!("DELETE FROM src_customers");
    elsewhere["table"] = json!(null);
    let (s, v) = api.call("POST", "/v1/sources", Some(elsewhere)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["query"].is_array(), "{v}");

    let mut unknown = source("dst_missing");
    unknown["name"] = json!("x");
    let (s, v) = api.call("POST", "/v1/sources", Some(unknown)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["connection"][0]
            .as_str()
            .unwrap()
            .contains("dst_missing"),
        "{v}"
    );

    let (s, v) = api
        .call("POST", "/v1/sources", Some(json!({"name": "x"})))
        .await;
    assert!(s.is_client_error(), "{s} {v}");
    assert_eq!(
        api.call("GET", "/v1/sources", None).await.1["sources"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_is_saved_run_listed_and_deleted() {
    let (api, connection) = setup().await;
    let (s, created) = api
        .call("POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["name"], "CRM customers");
    assert_eq!(
        created["changes"],
        json!({"mode": "cursor", "column": "updated_at"})
    );
    assert_eq!(created["running"], Value::Null);
    assert_eq!(created["mark"], Value::Null);
    let (s, v) = api
        .call("POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "NameTaken");

    // Disabled sources do not run.
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!((s, &v["enabled"]), (StatusCode::OK, &json!(false)), "{v}");
    let (s, v) = api
        .call("POST", &format!("/v1/sources/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "SourceDisabled");
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"id_column": "gone"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["id_column"].is_array(), "{v}");

    let (s, started) = api
        .call(
            "POST",
            &format!("/v1/sources/{id}/runs"),
            Some(json!({"trigger": "manual"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let run = api.wait_run(started["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["source"], json!(id));
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["counts"]["read"], 3);
    assert_eq!(run["counts"]["inserted"], 3);
    let (s, p) = api.call("GET", "/v1/profiles/c1", None).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["email"], "ann@example.com");
    assert_eq!(p["address"], json!({"city": "Rome"}));

    // Again: nothing changed, nothing written.
    let (_, again) = api
        .call("POST", &format!("/v1/sources/{id}/runs"), None)
        .await;
    let again = api.wait_run(again["id"].as_str().unwrap()).await;
    assert_eq!(again["counts"]["unchanged"], 3, "{again}");
    assert_eq!(again["trigger"], "api");

    let (s, runs) = api
        .call("GET", &format!("/v1/sources/{id}/runs?limit=1"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{runs}");
    assert_eq!(runs["runs"][0]["id"], again["id"]);
    assert_eq!(runs["next"], again["id"]);
    let (_, shown) = api.call("GET", &format!("/v1/sources/{id}"), None).await;
    assert_eq!(shown["last_run"]["id"], again["id"]);
    assert_eq!(shown["mark"]["type"], "time", "{shown}");
    // A finished run cannot be cancelled.
    let (s, v) = api
        .call(
            "POST",
            &format!("/v1/runs/{}/cancel", again["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // The connection a source reads is not deleted from under it.
    let (s, v) = api
        .call("DELETE", &format!("/v1/destinations/{connection}"), None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CRM customers"),
        "{v}"
    );

    // With the table gone, a source can still be renamed and disabled, but not pointed elsewhere.
    api.sql("ALTER TABLE src_customers RENAME TO src_customers_old")
        .await;
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"enabled": false, "name": "Old CRM", "schedule": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"schedule": "7m"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["schedule"].is_array(), "{v}");
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"id_column": "email"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["table"].is_array(), "{v}");

    let (s, _) = api.call("DELETE", &format!("/v1/sources/{id}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call("GET", &format!("/v1/sources/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .call(
            "GET",
            &format!("/v1/runs/{}", again["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "runs go with their source");
    let (s, v) = api.call("POST", "/v1/sources/src_none/runs", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preview_shows_each_rows_properties_and_errors() {
    let (api, connection) = setup().await;
    let mut spec = source(&connection);
    spec["transformation"]["mapping"]["ltv"] = json!("ltv");
    let (s, v) = api
        .call(
            "POST",
            "/v1/sources/preview",
            Some(json!({"source": spec, "limit": 5})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{v}");
    let by_id = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let c1 = by_id("c1");
    assert_eq!(
        c1["properties"],
        json!({"email": "ann@example.com", "country": "IT", "address": {"city": "Rome"}, "ltv": "1.50"})
    );
    assert_eq!(c1["row"]["email"], "Ann@Example.com");
    let c2 = by_id("c2");
    assert_eq!(c2["properties"], Value::Null);
    assert!(c2["errors"][0].as_str().unwrap().contains("ltv"), "{c2}");
    // Nothing was saved or written.
    assert_eq!(
        api.call("GET", "/v1/sources", None).await.1["sources"],
        json!([])
    );
    assert_eq!(
        api.call("GET", "/v1/profiles/c1", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = api
        .call(
            "POST",
            "/v1/sources/preview",
            Some(json!({"source": spec, "limit": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let mut bad = spec.clone();
    bad["id_column"] = json!("nope");
    let (s, v) = api
        .call("POST", "/v1/sources/preview", Some(json!({"source": bad})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["source.id_column"].is_array(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn viewers_read_sources_editors_change_them_and_changes_are_audited() {
    let (api, connection) = setup().await;
    let mut tokens = Vec::new();
    for role in ["viewer", "editor"] {
        let (s, v) = api
            .call(
                "POST",
                "/v1/tokens",
                Some(json!({"name": role, "role": role})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        tokens.push(v["token"].as_str().unwrap().to_string());
    }
    let (viewer, editor) = (&tokens[0], &tokens[1]);
    let (s, v) = api
        .call_as(viewer, "POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, created) = api
        .call_as(editor, "POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, _) = api
        .call_as(viewer, "GET", &format!("/v1/sources/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = api
        .call_as(viewer, "POST", &format!("/v1/sources/{id}/runs"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = api
        .call_as(
            editor,
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"name": "CRM"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, log) = api.call("GET", "/v1/audit", None).await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let patch = entries
        .iter()
        .find(|e| e["method"] == "PATCH" && e["route"] == "/v1/sources/{id}")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(patch["resource"], json!(id));
    assert_eq!(patch["before"]["name"], "CRM customers");
    assert_eq!(patch["after"]["name"], "CRM");
    assert!(entries
        .iter()
        .any(|e| e["method"] == "POST" && e["route"] == "/v1/sources"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_cannot_be_scheduled_on_change() {
    let (api, connection) = setup().await;
    let mut on = source(&connection);
    on["schedule"] = json!("on_change");
    let (s, v) = api.call("POST", "/v1/sources", Some(on)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["schedule"][0]
            .as_str()
            .unwrap()
            .contains("export pipelines"),
        "{v}"
    );
    // Changing only the schedule is not checked against the live table, but is checked.
    let (s, v) = api
        .call("POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["id"].as_str().unwrap();
    let (s, v) = api
        .call(
            "PATCH",
            &format!("/v1/sources/{id}"),
            Some(json!({"schedule": "on_change"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"]["fields"]["schedule"].is_array(), "{v}");
    let (_, v) = api.call("GET", &format!("/v1/sources/{id}"), None).await;
    assert_eq!(v["schedule"], "5m");
    api.sql(&format!("DROP SCHEMA {} CASCADE", api.schema))
        .await;
}

impl Api {
    fn pg_settings(&self) -> Value {
        let mut settings =
            sluice_destinations::postgres::PostgresSettings::json_from_url(&self.pg_url).unwrap();
        settings["schema"] = json!(self.schema);
        settings["tls"] = json!({"mode": "disable"});
        settings
    }

    async fn mark(&self, id: &str) -> Value {
        self.call("GET", &format!("/v1/sources/{id}"), None).await.1["mark"].clone()
    }

    async fn apply(&self, doc: &Value, prune: bool, dry_run: bool) -> (StatusCode, Value) {
        self.call(
            "POST",
            "/v1/workspace/apply",
            Some(json!({"workspace": doc, "prune": prune, "dry_run": dry_run})),
        )
        .await
    }
}

/// A workspace document with the connection and a source reading `src_customers`.
fn workspace(api: &Api) -> Value {
    json!({
        "version": 1,
        "customer_model": {"properties": [
            {"name": "email", "type": "string"},
            {"name": "country", "type": "string"},
            {"name": "ltv", "type": "decimal(12,2)"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]},
        "connections": {"Warehouse": {"type": "postgresql", "settings": api.pg_settings()}},
        "sources": {"CRM customers": {
            "connection": "Warehouse", "table": "src_customers", "id_column": "customer_id",
            "transformation": {"mapping": {"email": "lower(email)", "country": "country",
                                           "address.city": "city"}},
            "changes": {"mode": "cursor", "column": "updated_at"},
            "schedule": "5m"
        }}
    })
}

fn change<'a>(answer: &'a Value, kind: &str, name: &str) -> &'a Value {
    answer["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind && c["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} `{name}` in {answer}"))
}

/// Sources in a workspace document: planned field by field, created, left alone when unchanged,
/// exported in the same form, changed (saying when the mark is reset, and resetting it), checked
/// against the live table all at once or not at all, and pruned with their connection.
#[tokio::test(flavor = "multi_thread")]
async fn the_workspace_creates_changes_exports_and_prunes_sources() {
    let (api, _) = setup().await;
    let mut doc = workspace(&api);

    let (s, plan) = api.apply(&doc, false, true).await;
    assert_eq!(s, StatusCode::OK, "{plan}");
    let created = change(&plan, "source", "CRM customers");
    assert_eq!(created["action"], "create");
    assert!(
        created["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "connection" && f["after"] == "Warehouse"),
        "{created}"
    );
    assert_eq!(
        api.call("GET", "/v1/sources", None).await.1["sources"],
        json!([]),
        "a dry run writes nothing"
    );

    let (s, v) = api.apply(&doc, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["applied"], true);
    let (_, list) = api.call("GET", "/v1/sources", None).await;
    let src = list["sources"][0].clone();
    let warehouse = change(&v, "connection", "Warehouse")["id"].clone();
    assert_eq!(src["connection"], warehouse);
    assert_eq!(src["table"], "src_customers");
    let id = src["id"].as_str().unwrap().to_string();

    let (s, v) = api.apply(&doc, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changes"], json!([]), "{v}");
    assert_eq!(v["applied"], false);

    // The export names the source's connection by name; applied back, it changes nothing.
    let (s, exported) = api.call("GET", "/v1/workspace", None).await;
    assert_eq!(s, StatusCode::OK, "{exported}");
    let mut exported = exported["workspace"].clone();
    assert_eq!(
        exported["sources"]["CRM customers"]["connection"],
        "Warehouse"
    );
    if exported["connections"]["Warehouse"]["settings"]["password"].is_object() {
        exported["connections"]["Warehouse"]["settings"]["password"] =
            api.pg_settings()["password"].clone();
    }
    let (s, v) = api.apply(&exported, false, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changes"], json!([]), "{v}");

    // A run leaves a mark; a new schedule keeps it, reading changes another way resets it.
    let (s, run) = api
        .call("POST", &format!("/v1/sources/{id}/runs"), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{run}");
    let run = api.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    assert!(!api.mark(&id).await.is_null());

    doc["sources"]["CRM customers"]["schedule"] = json!("1h");
    let (s, v) = api.apply(&doc, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let changed = change(&v, "source", "CRM customers");
    assert_eq!(changed["resets_mark"], false, "{changed}");
    assert_eq!(changed["fields"][0]["path"], "schedule", "{changed}");
    assert!(
        !api.mark(&id).await.is_null(),
        "a new schedule keeps the mark"
    );

    doc["sources"]["CRM customers"]["changes"] = json!({"mode": "full", "on_missing": "keep"});
    let (s, v) = api.apply(&doc, false, true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        change(&v, "source", "CRM customers")["resets_mark"],
        true,
        "{v}"
    );
    assert!(!api.mark(&id).await.is_null(), "a dry run keeps the mark");
    let (s, v) = api.apply(&doc, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        api.mark(&id).await.is_null(),
        "reading another way resets it"
    );

    // One source that does not check leaves everything as it was, the other source's change too.
    let mut broken = doc.clone();
    broken["sources"]["CRM customers"]["schedule"] = json!("2h");
    broken["sources"]["Missing"] = json!({
        "connection": "Warehouse", "table": "src_nowhere", "id_column": "customer_id",
        "transformation": {"mapping": {"email": "email"}}, "changes": {"mode": "full"}});
    let (s, v) = api.apply(&broken, false, false).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["sources.Missing.table"][0]
            .as_str()
            .unwrap()
            .contains("src_nowhere"),
        "{v}"
    );
    let (_, list) = api.call("GET", "/v1/sources", None).await;
    assert_eq!(list["sources"].as_array().unwrap().len(), 1);
    assert_eq!(list["sources"][0]["schedule"], "1h");

    // `on_change` is refused at the source's place in the document.
    let mut on = doc.clone();
    on["sources"]["CRM customers"]["schedule"] = json!("on_change");
    let (s, v) = api.apply(&on, false, true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["sources.CRM customers.schedule"].is_array(),
        "{v}"
    );

    // A source needs its connection in the files; without `prune` the source is kept.
    let mut orphan = doc.clone();
    orphan["connections"] = json!({});
    let (s, v) = api.apply(&orphan, true, true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]["sources.CRM customers.connection"].is_array(),
        "{v}"
    );
    let mut without = doc.clone();
    without["sources"] = json!({});
    let (s, v) = api.apply(&without, false, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["changes"], json!([]), "{v}");
    assert_eq!(v["kept"][0]["kind"], "source", "{v}");
    // A model that drops a property a kept source writes is refused, naming the source.
    let mut narrower = without.clone();
    narrower["customer_model"]["properties"] = json!([
        {"name": "email", "type": "string"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]);
    let (s, v) = api.apply(&narrower, false, true).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("sources.CRM customers.transformation")),
        "{v}"
    );

    // Pruned, the source goes with its connection, in one transaction.
    let empty = json!({"version": 1, "connections": {}, "sources": {}});
    let (s, v) = api.apply(&empty, true, false).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(change(&v, "source", "CRM customers")["action"], "delete");
    assert_eq!(change(&v, "connection", "Warehouse")["action"], "delete");
    assert_eq!(
        api.call("GET", "/v1/sources", None).await.1["sources"],
        json!([])
    );
    assert_eq!(
        api.call("GET", "/v1/destinations", None).await.1["destinations"],
        json!([])
    );
    api.sql(&format!("DROP SCHEMA {} CASCADE", api.schema))
        .await;
}

/// A destination's lineage: per export pipeline, the sources writing what it reads, and every source
/// when a script makes that unknowable.
#[tokio::test(flavor = "multi_thread")]
async fn a_destinations_lineage_names_the_sources_feeding_its_pipelines() {
    let (api, connection) = setup().await;
    api.sql("CREATE TABLE dst_people (id text PRIMARY KEY, email text, city text)")
        .await;
    let (s, crm) = api
        .call("POST", "/v1/sources", Some(source(&connection)))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{crm}");
    let mut countries = source(&connection);
    countries["name"] = json!("Countries");
    countries["transformation"] = json!({"mapping": {"country": "country"}});
    let (s, countries) = api.call("POST", "/v1/sources", Some(countries)).await;
    assert_eq!(s, StatusCode::CREATED, "{countries}");
    let mut scripted = source(&connection);
    scripted["name"] = json!("Scripted");
    scripted["transformation"] =
        json!({"javascript": "function transform(row) { return {email: row.email}; }"});
    let (s, scripted) = api.call("POST", "/v1/sources", Some(scripted)).await;
    assert_eq!(s, StatusCode::CREATED, "{scripted}");

    let (s, v) = api
        .call(
            "POST",
            "/v1/pipelines",
            Some(
                json!({"destination": connection, "name": "People", "table": "dst_people",
                "key": "id", "transformation": {"mapping": {"id": "_id", "email": "email"}},
                "filter": {"logical": "and", "conditions": [
                    {"property": "address.city", "operator": "is not empty"}]}}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .call(
            "POST",
            "/v1/pipelines",
            Some(json!({"destination": connection, "name": "Scripted people",
                "table": "dst_people", "key": "id",
                "transformation": {"javascript": "function transform(p) { return {id: p._id}; }"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let (s, v) = api
        .call(
            "GET",
            &format!("/v1/destinations/{connection}/lineage"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let people = &v["pipelines"][0];
    assert_eq!(people["name"], "People");
    assert_eq!(people["reads"], json!(["address.city", "email"]));
    let fed: Vec<(Value, Value)> = people["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].clone(), s["properties"].clone()))
        .collect();
    assert_eq!(
        fed,
        vec![
            (json!("CRM customers"), json!(["email", "address.city"])),
            (json!("Scripted"), Value::Null),
        ],
        "{v}"
    );
    let scripted_people = &v["pipelines"][1];
    assert_eq!(scripted_people["reads"], Value::Null);
    assert_eq!(scripted_people["sources"].as_array().unwrap().len(), 3);
    assert_eq!(scripted_people["sources"][1]["id"], countries["id"], "{v}");

    let (s, _) = api
        .call("GET", "/v1/destinations/dst_nowhere/lineage", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // The Customer Model's side: who writes each property.
    let (s, v) = api.call("GET", "/v1/profile-schema/sources", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let writers = |path: &str| -> Vec<Value> {
        let p = v["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == path)
            .unwrap_or_else(|| panic!("no `{path}` in {v}"));
        p["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].clone())
            .collect()
    };
    assert_eq!(writers("email"), vec![json!("CRM customers")], "{v}");
    assert_eq!(
        writers("country"),
        vec![json!("CRM customers"), json!("Countries")],
        "{v}"
    );
    assert_eq!(writers("address"), vec![json!("CRM customers")], "{v}");
    assert!(
        v["properties"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| !p["path"].as_str().unwrap().starts_with('_')),
        "{v}"
    );
    assert_eq!(
        v["scripted"],
        json!([{"id": scripted["id"], "name": "Scripted", "enabled": true}])
    );
    api.sql(&format!("DROP SCHEMA {} CASCADE", api.schema))
        .await;
}
