//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, generated from the route table below
//! (kept next to the router's so that a new route is described where it is added).

use axum::Json;
use serde_json::{json, Map, Value};

/// `(method, path, summary, request schema, response schema, status codes)`.
type RouteDoc = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static [u16],
);

const ROUTES: &[RouteDoc] = &[
    (
        "get",
        "/health",
        "Liveness and version (no token needed)",
        None,
        "Health",
        &[200],
    ),
    (
        "get",
        "/profile-schema",
        "The Customer Model",
        None,
        "ProfileSchema",
        &[200, 401],
    ),
    (
        "put",
        "/profile-schema",
        "Replace the Customer Model; changes that break a pipeline or stored data are refused",
        Some("ProfileSchema"),
        "ProfileSchema",
        &[200, 400, 401, 409, 422],
    ),
    (
        "post",
        "/profiles",
        "Load profiles (merged into stored ones); invalid ones are rejected one by one",
        Some("ProfileBatch"),
        "ProfileBatchResult",
        &[200, 400, 401, 422],
    ),
    (
        "get",
        "/profiles",
        "Browse profiles: ?filter=<filter JSON>&limit=&after=",
        None,
        "ProfilePage",
        &[200, 401, 422],
    ),
    (
        "get",
        "/profiles/{id}",
        "One profile",
        None,
        "Profile",
        &[200, 401, 404],
    ),
    (
        "delete",
        "/profiles/{id}",
        "Delete a profile",
        None,
        "Empty",
        &[204, 401, 404],
    ),
    (
        "get",
        "/connectors",
        "Destination kinds and their settings fields",
        None,
        "Connectors",
        &[200, 401],
    ),
    (
        "get",
        "/functions",
        "Functions of visual-mapping expressions",
        None,
        "Functions",
        &[200, 401],
    ),
    (
        "get",
        "/destinations",
        "List destinations (secrets masked)",
        None,
        "DestinationList",
        &[200, 401],
    ),
    (
        "post",
        "/destinations",
        "Add a destination",
        Some("DestinationInput"),
        "Destination",
        &[201, 400, 401, 409, 422],
    ),
    (
        "post",
        "/destinations/test",
        "Test unsaved connection settings",
        Some("DestinationTest"),
        "TestResult",
        &[200, 401, 422],
    ),
    (
        "get",
        "/destinations/{id}",
        "One destination",
        None,
        "Destination",
        &[200, 401, 404],
    ),
    (
        "put",
        "/destinations/{id}",
        "Change a destination (secrets left out are kept)",
        Some("DestinationInput"),
        "Destination",
        &[200, 401, 404, 409, 422],
    ),
    (
        "delete",
        "/destinations/{id}",
        "Delete a destination that no pipeline uses",
        None,
        "Empty",
        &[204, 401, 404, 409],
    ),
    (
        "post",
        "/destinations/{id}/test",
        "Test a saved destination, or edited settings for it (secrets left out are the stored ones)",
        Some("DestinationTestSaved"),
        "TestResult",
        &[200, 401, 404],
    ),
    (
        "get",
        "/destinations/{id}/tables/{table}",
        "A table's columns, keys and issues",
        None,
        "Table",
        &[200, 401, 404, 502, 504],
    ),
    (
        "get",
        "/pipelines",
        "List pipelines (?destination=<id>)",
        None,
        "PipelineList",
        &[200, 401],
    ),
    (
        "post",
        "/pipelines",
        "Add a pipeline; every problem is reported at once",
        Some("PipelineInput"),
        "Pipeline",
        &[201, 400, 401, 409, 422, 502, 504],
    ),
    (
        "post",
        "/pipelines/validate",
        "Check a pipeline without saving it",
        Some("PipelineInput"),
        "Ok",
        &[200, 401, 422, 502],
    ),
    (
        "post",
        "/pipelines/preview",
        "Preview an unsaved pipeline on sample profiles",
        Some("PreviewUnsaved"),
        "Preview",
        &[200, 401, 422],
    ),
    (
        "get",
        "/pipelines/{id}",
        "One pipeline",
        None,
        "Pipeline",
        &[200, 401, 404],
    ),
    (
        "put",
        "/pipelines/{id}",
        "Replace a pipeline",
        Some("PipelineInput"),
        "Pipeline",
        &[200, 401, 404, 409, 422],
    ),
    (
        "patch",
        "/pipelines/{id}",
        "Change some fields of a pipeline",
        Some("PipelinePatch"),
        "Pipeline",
        &[200, 401, 404, 409, 422],
    ),
    (
        "delete",
        "/pipelines/{id}",
        "Delete a pipeline (cancels its run)",
        None,
        "Empty",
        &[204, 401, 404],
    ),
    (
        "post",
        "/pipelines/{id}/preview",
        "Preview a saved pipeline",
        Some("PreviewSaved"),
        "Preview",
        &[200, 401, 404, 422],
    ),
    (
        "post",
        "/pipelines/{id}/runs",
        "Run now",
        Some("RunStart"),
        "RunStarted",
        &[202, 401, 404, 409, 422],
    ),
    (
        "get",
        "/pipelines/{id}/runs",
        "A pipeline's runs, newest first (?limit=&before=)",
        None,
        "RunList",
        &[200, 401, 404],
    ),
    (
        "get",
        "/runs/{id}",
        "One run, live while running",
        None,
        "Run",
        &[200, 401, 404],
    ),
    (
        "post",
        "/runs/{id}/cancel",
        "Stop a run at the next batch boundary",
        None,
        "Ok",
        &[202, 401, 404, 409],
    ),
];

/// The script contract, as the description of the `Transformation` schema (the crate documentation of
/// `sluice-transform` is the reference).
const SCRIPT_CONTRACT: &str = "Exactly one of a visual mapping, a JavaScript source or a Python source. \
A script defines transform(profile). `profile` holds _id, _updated_at and the Customer Model properties: strings, \
booleans and floats as such; ints as numbers (JavaScript: a BigInt beyond ±(2^53−1); Python: int, exact); decimals \
as strings with their exact digits; datetimes as ISO 8601 strings in UTC (\"2024-05-13T15:30:00Z\"); dates and \
times as ISO strings; objects and arrays as such; a missing property is absent. transform returns an object (a \
Python dict) keyed by destination column, or null (None) to skip the profile, which counts as filtered out; \
anything else fails the row. The columns written are those of a top-level `columns` list in the source, else \
every column of the table Sluice can write; a column the object leaves out is written as NULL. Returned values \
are converted to the column types with the same rules as visual mapping (a JavaScript Date, or a Python \
datetime, date, time, Decimal or UUID, keeps its type). A key that is not a column, a value that does not \
convert, an exception, or a call over the time or memory limit fails only that profile's row, with a message \
naming the column or the line. JavaScript runs in an embedded engine with no file, network or process \
access; Python runs in isolated python3 worker processes (no environment, no file or network access, \
resource limits). A syntax error is a 422 at transformation.javascript or transformation.python with line \
and column; saving a Python transformation where python3 is missing is a 422 that says so.";

fn obj(props: &[(&str, Value)]) -> Value {
    let map: Map<String, Value> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    json!({"type": "object", "properties": map})
}

fn schemas() -> Value {
    let s = || json!({"type": "string"});
    let i = || json!({"type": "integer"});
    let b = || json!({"type": "boolean"});
    let any = || json!({});
    let r = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let arr = |v: Value| json!({"type": "array", "items": v});
    json!({
        "Error": obj(&[("error", obj(&[("code", s()), ("message", s()),
            ("fields", json!({"type": "object", "additionalProperties": arr(s())}))]))]),
        "Health": obj(&[("status", s()), ("version", s())]),
        "Empty": json!({}),
        "Ok": obj(&[("ok", b())]),
        "Property": obj(&[("name", s()), ("type", json!({"type": "string", "description":
            "string, boolean, int, float, decimal(p,s), datetime, date, time, uuid, json, array(T), object"})),
            ("nullable", b()), ("description", s()), ("properties", arr(r("Property")))]),
        "ProfileSchema": obj(&[("properties", arr(r("Property")))]),
        "Profile": json!({"type": "object", "properties": {"_id": s(), "_updated_at": s()}, "additionalProperties": true}),
        "ProfileBatch": obj(&[("profiles", arr(r("Profile")))]),
        "ProfileBatchResult": obj(&[("upserted", i()), ("rejected", arr(obj(&[("index", i()), ("_id", s()), ("errors", arr(s()))])))]),
        "ProfilePage": obj(&[("profiles", arr(r("Profile"))), ("next", s())]),
        "Connectors": arr(any()),
        "Functions": arr(obj(&[("name", s()), ("signature", s()), ("description", s())])),
        "DestinationInput": obj(&[("name", s()), ("type", json!({"enum": ["postgresql", "mysql", "clickhouse", "snowflake", "sqlite"]})), ("settings", any())]),
        "DestinationTest": obj(&[("type", s()), ("settings", any())]),
        "DestinationTestSaved": obj(&[("settings", any())]),
        "Destination": obj(&[("id", s()), ("name", s()), ("type", s()), ("settings", any()), ("created_at", s()), ("updated_at", s())]),
        "DestinationList": obj(&[("destinations", arr(r("Destination")))]),
        "TestResult": obj(&[("ok", b()), ("server_version", s()), ("checks", arr(s())), ("error", obj(&[("code", s()), ("message", s())]))]),
        "Table": obj(&[("name", s()), ("columns", arr(obj(&[("name", s()), ("type", s()), ("nullable", b()), ("key_capable", b())]))),
            ("keys", arr(arr(s()))), ("issues", arr(s()))]),
        "Filter": json!({"description": "{\"logical\": \"and\"|\"or\", \"conditions\": [condition or group]}; a condition is {\"property\", \"operator\", \"values\"}"}),
        "PipelineInput": obj(&[("destination", s()), ("name", s()), ("description", s()), ("enabled", b()),
            ("filter", r("Filter")), ("table", s()), ("key", s()),
            ("transformation", r("Transformation")),
            ("schedule", json!({"description": "null, 5m 15m 30m 1h 2h 3h 6h 8h 12h 24h, or {\"cron\", \"timezone\"}"})),
            ("on_leave", json!({"enum": ["keep", "delete"]})),
            ("alert_webhook", json!({"type": "string", "description": "http(s) URL posted a JSON message when a run fails, fails too many rows, or succeeds after failing"}))]),
        "Transformation": json!({
            "description": SCRIPT_CONTRACT,
            "oneOf": [
                {"type": "object", "required": ["mapping"], "additionalProperties": false, "properties": {"mapping": {
                    "type": "object", "additionalProperties": {"type": "string"},
                    "description": "destination column → mapping expression (functions: GET /v1/functions)"}}},
                {"type": "object", "required": ["javascript"], "additionalProperties": false, "properties": {"javascript": {
                    "type": "string", "description": "JavaScript source defining transform(profile)"}}},
                {"type": "object", "required": ["python"], "additionalProperties": false, "properties": {"python": {
                    "type": "string", "description": "Python 3 source defining transform(profile)"}}},
            ],
        }),
        "PipelinePatch": json!({"description": "any subset of the pipeline's fields"}),
        "Pipeline": json!({"allOf": [r("PipelineInput"), obj(&[("id", s()), ("filter_summary", s()), ("running", s()), ("last_run", r("Run")),
            ("next_run_at", json!({"type": "string", "format": "date-time", "description": "when the schedule runs the pipeline next; null when off or disabled"}))])]}),
        "PipelineList": obj(&[("pipelines", arr(r("Pipeline")))]),
        "PreviewUnsaved": obj(&[("pipeline", r("PipelineInput")), ("limit", i()), ("profiles", arr(s()))]),
        "PreviewSaved": obj(&[("limit", i()), ("profiles", arr(s()))]),
        "Preview": obj(&[("columns", arr(s())), ("samples", arr(obj(&[("profile", r("Profile")), ("row", any()),
            ("action", json!({"enum": ["insert", "update", "unchanged", "skip"]})), ("error", s())])))]),
        "RunStart": obj(&[("trigger", json!({"enum": ["manual", "api"]}))]),
        "RunStarted": obj(&[("id", s()), ("status", s())]),
        "Run": obj(&[("id", s()), ("pipeline", s()), ("trigger", s()),
            ("status", json!({"enum": ["queued", "running", "succeeded", "failed", "cancelled"]})),
            ("started_at", s()), ("finished_at", s()), ("progress", obj(&[("processed", i()), ("total", i())])),
            ("counts", obj(&[("read", i()), ("filtered_out", i()), ("transform_failed", i()), ("inserted", i()),
                ("updated", i()), ("unchanged", i()), ("deleted", i()), ("failed", i())])),
            ("errors", arr(obj(&[("step", s()), ("message", s()), ("count", i()), ("sample_profiles", arr(s())), ("last_seen", s())]))),
            ("message", s())]),
        "RunList": obj(&[("runs", arr(r("Run"))), ("next", s())]),
    })
}

pub fn build() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, body, answer, codes) in ROUTES {
        let mut responses = Map::new();
        for code in *codes {
            let schema = if *code < 300 { *answer } else { "Error" };
            let content = if schema == "Empty" {
                json!({"description": "no content"})
            } else {
                json!({"description": status_text(*code),
                       "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}})
            };
            responses.insert(code.to_string(), content);
        }
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({"summary": summary, "parameters": params, "responses": responses});
        if let Some(b) = body {
            op["requestBody"] = json!({"required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
        }
        if *path == "/health" {
            op["security"] = json!([]);
        }
        let entry = paths
            .entry(format!("/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Sluice API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Keep tables in your databases in step with your customer profiles."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": schemas(),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    })
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "created",
        202 => "accepted",
        204 => "no content",
        400 => "malformed request",
        401 => "missing or invalid token",
        404 => "not found",
        409 => "conflict",
        422 => "invalid: every offending field is named",
        502 => "the destination database failed",
        504 => "the destination database timed out",
        _ => "",
    }
}

pub async fn document() -> Json<Value> {
    Json(build())
}
