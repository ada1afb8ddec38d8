//! `/v1/connectors` and `/v1/destinations`: connection settings (secrets write-only), connection tests and
//! table descriptions.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::DateTime;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_};
use sluice_core::FieldErrors;
use sluice_destinations::{DestinationError, ErrorKind};
use sluice_store::{DestinationRecord, DestinationTest, Role, SECRET_FIELDS};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{Body, OptionalBody};
use crate::openapi::{
    ConnectorDoc, DestinationFailed, False, Internal, Invalid, Malformed, NotFound, NotJson,
    TooLarge, True, Unauthorized,
};
use crate::AppState;

/// What answers show in place of a stored secret; sending it back keeps the stored value.
pub const MASK: &str = "********";
/// Longest a connection test may take, whatever the destination's own timeouts.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

#[utoipa::path(
    get,
    path = "/connectors",
    operation_id = "listConnectors",
    tag = "destinations",
    summary = "Destination kinds and their settings fields",
    responses((status = 200, description = "OK", body = Vec<ConnectorDoc>), Unauthorized),
)]
pub async fn connectors() -> Json<Json_> {
    Json(serde_json::to_value(sluice_destinations::connectors::connectors()).unwrap_or_default())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    name: String,
    /// The `kind` of a connector (`GET /v1/connectors`): `postgresql`, `mysql`, `clickhouse`,
    /// `snowflake` or `sqlite`.
    #[serde(rename = "type")]
    kind: String,
    /// The settings fields of the kind (`GET /v1/connectors`); secrets left out of an update, or sent
    /// back masked, keep their stored value while the settings that decide where they are sent (host,
    /// port, user, TLS, account, base URL) stay the same; otherwise 422 at `settings.<secret>`.
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Json_>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    /// The `kind` of a connector (`GET /v1/connectors`).
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    settings: Map<String, Json_>,
}

/// A destination as answers show it: secrets masked.
#[derive(Serialize, ToSchema)]
pub struct Destination {
    id: String,
    name: String,
    /// The `kind` of a connector (`GET /v1/connectors`).
    #[serde(rename = "type")]
    kind: String,
    /// Secrets show as `********`.
    #[schema(value_type = Object)]
    settings: serde_json::Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// In the list: the last test of the saved settings (`POST /v1/destinations/{id}/test` without
    /// edited settings); absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_test: Option<LastTest>,
}

/// A destination's last connection test: its health.
#[derive(Serialize, ToSchema)]
pub struct LastTest {
    at: DateTime<Utc>,
    ok: bool,
    /// The failure's code, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    /// The database's message, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DestinationList {
    pub(crate) destinations: Vec<Destination>,
}

pub(crate) fn to_json(rec: &DestinationRecord) -> Destination {
    Destination {
        id: rec.id.clone(),
        name: rec.name.clone(),
        kind: rec.kind.clone(),
        settings: masked(&rec.settings),
        created_at: rec.created_at,
        updated_at: rec.updated_at,
        last_test: None,
    }
}

fn masked(settings: &Json_) -> Json_ {
    let mut out = settings.clone();
    if let Some(obj) = out.as_object_mut() {
        for f in SECRET_FIELDS {
            if let Some(v) = obj.get_mut(f) {
                if !v.is_null() && v.as_str() != Some("") {
                    *v = Json_::String(MASK.into());
                }
            }
        }
    }
    out
}

fn check_name(name: &str, errors: &mut FieldErrors) {
    if name.trim().is_empty() {
        errors.add("name", "give the destination a name");
    } else if name.chars().count() > 200 {
        errors.add("name", "the name is longer than 200 characters");
    }
}

pub(crate) fn validate(kind: &str, name: &str, settings: &Json_) -> ApiResult<()> {
    let mut errors = FieldErrors::new();
    check_name(name, &mut errors);
    if let Err(e) = sluice_destinations::validate_settings(kind, settings) {
        for (path, message) in e.iter() {
            let field = if path == "type" {
                "type".to_string()
            } else {
                format!("settings.{path}")
            };
            errors.add(field, message);
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)
}

#[utoipa::path(
    get,
    path = "/destinations",
    operation_id = "listDestinations",
    tag = "destinations",
    summary = "List destinations (secrets masked)",
    responses((status = 200, description = "OK", body = DestinationList), Unauthorized, Internal),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<DestinationList>> {
    let all = state.meta.list_destinations().await?;
    let mut tests: std::collections::HashMap<String, DestinationTest> =
        state.meta.destination_tests().await?.into_iter().collect();
    Ok(Json(DestinationList {
        destinations: all
            .iter()
            .map(|rec| {
                let mut d = to_json(rec);
                d.last_test = tests.remove(&rec.id).map(|t| LastTest {
                    at: t.at,
                    ok: t.ok,
                    code: t.code,
                    message: t.message,
                });
                d
            })
            .collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/destinations",
    operation_id = "createDestination",
    tag = "destinations",
    summary = "Add a destination",
    request_body = DestinationBody,
    responses(
        (status = 201, description = "created", body = Destination),
        Malformed,
        Unauthorized,
        (status = 409, body = crate::error::ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Body(body): Body<DestinationBody>,
) -> ApiResult<(StatusCode, Json<Destination>)> {
    let settings = Json_::Object(body.settings);
    validate(&body.kind, &body.name, &settings)?;
    let now = Utc::now();
    let rec = DestinationRecord {
        id: crate::new_id("dst"),
        name: body.name.trim().to_string(),
        kind: body.kind,
        settings,
        created_at: now,
        updated_at: now,
    };
    state
        .meta
        .insert_destination(&rec)
        .await
        .map_err(name_taken)?;
    tracing::info!(destination = %rec.id, kind = %rec.kind, "destination added");
    Ok((StatusCode::CREATED, Json(to_json(&rec))))
}

fn name_taken(e: sluice_store::StoreError) -> ApiError {
    match e {
        sluice_store::StoreError::Conflict(m) => ApiError::conflict("NameTaken", m),
        other => other.into(),
    }
}

pub(crate) async fn load(state: &AppState, id: &str) -> ApiResult<DestinationRecord> {
    state
        .meta
        .get_destination(id)
        .await?
        .ok_or_else(|| ApiError::not_found("destination", id))
}

#[utoipa::path(
    get,
    path = "/destinations/{id}",
    operation_id = "getDestination",
    tag = "destinations",
    summary = "One destination",
    params(("id" = String, Path, description = "The destination's id")),
    responses((status = 200, description = "OK", body = Destination), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Destination>> {
    Ok(Json(to_json(&load(&state, &id).await?)))
}

#[utoipa::path(
    put,
    path = "/destinations/{id}",
    operation_id = "updateDestination",
    tag = "destinations",
    summary = "Change a destination (its type cannot change; secrets left out are kept while host, port, user, TLS, account or base URL stay the same)",
    params(("id" = String, Path, description = "The destination's id")),
    request_body = DestinationBody,
    responses(
        (status = 200, description = "OK", body = Destination),
        Malformed,
        Unauthorized,
        NotFound,
        (status = 409, body = crate::error::ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
    ),
)]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<DestinationBody>,
) -> ApiResult<Json<Destination>> {
    let mut rec = load(&state, &id).await?;
    if body.kind != rec.kind {
        return Err(ApiError::invalid_field(
            "type",
            format!(
                "a destination's type cannot change (it is {}); add a new destination instead",
                rec.kind
            ),
        ));
    }
    let settings = keep_secrets(&rec.kind, body.settings, &rec.settings)?;
    validate(&body.kind, &body.name, &settings)?;
    rec.name = body.name.trim().to_string();
    rec.settings = settings;
    rec.updated_at = Utc::now();
    state
        .meta
        .update_destination(&rec)
        .await
        .map_err(name_taken)?;
    Ok(Json(to_json(&rec)))
}

/// Secrets left out of an update, or sent back masked, keep their stored value — but only while they
/// would go where they were saved: when a setting that decides where a secret is sent changes (host,
/// port, user, TLS, account, base URL; each kind declares its own), the secret must be given again, and
/// the request is refused (422 at `settings.<secret>`) before anything is sent.
fn keep_secrets(kind: &str, mut new: Map<String, Json_>, stored: &Json_) -> ApiResult<Json_> {
    let mut reused = Vec::new();
    for f in SECRET_FIELDS {
        let resend = match new.get(f) {
            None => true,
            Some(Json_::String(s)) => s == MASK,
            Some(_) => false,
        };
        if resend {
            match stored.get(f) {
                Some(v) => {
                    new.insert(f.to_string(), v.clone());
                    reused.push(f);
                }
                None => {
                    new.remove(f);
                }
            }
        }
    }
    let new = Json_::Object(new);
    sluice_destinations::check_secret_reuse(kind, stored, &new, &reused)
        .map_err(|e| ApiError::invalid(settings_paths(e)))?;
    Ok(new)
}

/// Errors of a destination's settings at their paths in a request (`settings.port`; `type` stays).
fn settings_paths(e: FieldErrors) -> FieldErrors {
    let mut out = FieldErrors::new();
    for (path, message) in e.iter() {
        out.add(
            if path == "type" {
                "type".into()
            } else {
                format!("settings.{path}")
            },
            message,
        );
    }
    out
}

#[utoipa::path(
    delete,
    path = "/destinations/{id}",
    operation_id = "deleteDestination",
    tag = "destinations",
    summary = "Delete a destination that no pipeline uses",
    params(("id" = String, Path, description = "The destination's id")),
    responses(
        (status = 204, description = "deleted"),
        Unauthorized,
        NotFound,
        (status = 409, body = crate::error::ErrorBody, description = "pipelines still use it (`DestinationInUse`)"),
        Internal,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    match state.meta.delete_destination(&id).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found("destination", &id)),
        Err(sluice_store::StoreError::Conflict(m)) => {
            Err(ApiError::conflict("DestinationInUse", m))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    post,
    path = "/destinations/test",
    operation_id = "testConnection",
    tag = "destinations",
    summary = "Test unsaved connection settings",
    request_body = TestBody,
    responses(
        (status = 200, description = "OK", body = TestResult),
        Malformed,
        Unauthorized,
        NotJson,
        TooLarge,
        Invalid,
    ),
)]
pub async fn test_unsaved(
    State(_s): State<AppState>,
    Body(body): Body<TestBody>,
) -> ApiResult<Json<TestResult>> {
    let settings = Json_::Object(body.settings);
    run_test(&body.kind, &settings).await
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSavedBody {
    /// Edited settings to test instead of the stored ones; secrets left out (or masked) are the stored ones,
    /// unless a setting that decides where they are sent changed (then 422: give the secret again).
    #[schema(value_type = Option<Object>)]
    settings: Option<Map<String, Json_>>,
}

/// What a connection test found: `ok` with the server's version and what was checked, or the failure.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum TestResult {
    Passed {
        #[schema(inline)]
        ok: True,
        server_version: String,
        /// What was checked, in words.
        checks: Vec<String>,
    },
    Failed {
        #[schema(inline)]
        ok: False,
        error: TestFailure,
    },
}

#[derive(Serialize, ToSchema)]
pub struct TestFailure {
    /// The kind of failure (`DestinationUnavailable`, `AuthenticationFailed`, …).
    code: &'static str,
    /// The database's own message.
    message: String,
}

#[utoipa::path(
    post,
    path = "/destinations/{id}/test",
    operation_id = "testSavedDestination",
    tag = "destinations",
    summary = "Test a saved destination, or edited settings for it (edited settings need the admin role; secrets left out are the stored ones, only while they would go where they were saved)",
    params(("id" = String, Path, description = "The destination's id")),
    request_body(content = Option<TestSavedBody>, description = "May be left out"),
    responses(
        (status = 200, description = "OK", body = TestResult),
        Malformed,
        Unauthorized,
        NotFound,
        Invalid,
        Internal,
    ),
)]
pub async fn test_saved(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<TestSavedBody>,
) -> ApiResult<Json<TestResult>> {
    // Edited settings may send the stored secret to another server: that is changing the connection,
    // an admin's; an editor may only check the stored settings still work.
    if body.settings.is_some() && principal.role < Role::Admin {
        return Err(crate::access::forbidden(principal.role, Role::Admin));
    }
    let rec = load(&state, &id).await?;
    let (settings, saved) = match body.settings {
        Some(edited) => (keep_secrets(&rec.kind, edited, &rec.settings)?, false),
        None => (rec.settings, true),
    };
    let result = run_test(&rec.kind, &settings).await?;
    // Only a test of the saved settings says how the destination is doing.
    if saved {
        let test = match &result.0 {
            TestResult::Passed { .. } => DestinationTest {
                at: Utc::now(),
                ok: true,
                code: None,
                message: None,
            },
            TestResult::Failed { error, .. } => DestinationTest {
                at: Utc::now(),
                ok: false,
                code: Some(error.code.to_string()),
                message: Some(error.message.clone()),
            },
        };
        state.meta.record_destination_test(&rec.id, &test).await?;
    }
    Ok(result)
}

async fn run_test(kind: &str, settings: &Json_) -> ApiResult<Json<TestResult>> {
    let dest = sluice_destinations::open(kind, settings)
        .map_err(|e| ApiError::invalid(settings_paths(e)))?;
    let outcome = match tokio::time::timeout(TEST_TIMEOUT, dest.test()).await {
        Ok(r) => r,
        Err(_) => Err(DestinationError::new(
            ErrorKind::Timeout,
            "the connection test took longer than 30 seconds",
        )),
    };
    Ok(Json(match outcome {
        Ok(report) => TestResult::Passed {
            ok: True,
            server_version: report.server_version,
            checks: report.checks,
        },
        Err(e) => TestResult::Failed {
            ok: False,
            error: TestFailure {
                code: e.kind.code(),
                message: e.message,
            },
        },
    }))
}

#[utoipa::path(
    get,
    path = "/destinations/{id}/tables/{table}",
    operation_id = "describeTable",
    tag = "destinations",
    summary = "A table's columns, keys and issues",
    params(
        ("id" = String, Path, description = "The destination's id"),
        ("table" = String, Path, description = "The table's name, as the destination writes it"),
    ),
    responses(
        (status = 200, description = "OK", body = Table),
        Unauthorized,
        (status = 404, body = crate::error::ErrorBody, description = "no such destination, or no such table (`TableNotFound`)"),
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn describe_table(
    State(state): State<AppState>,
    Path((id, table)): Path<(String, String)>,
) -> ApiResult<Json<Table>> {
    let rec = load(&state, &id).await?;
    let dest = sluice_destinations::open(&rec.kind, &rec.settings).map_err(ApiError::invalid)?;
    let desc = dest.describe_table(&table).await?;
    let Some(t) = desc else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "TableNotFound",
            format!(
                "table `{table}` does not exist in destination `{}`",
                rec.name
            ),
        ));
    };
    Ok(Json(table_json(&t)))
}

/// The tables a pipeline of this destination can write to.
#[derive(Serialize, ToSchema)]
pub struct TableList {
    tables: Vec<TableEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct TableEntry {
    /// The schema the destination writes in (PostgreSQL, Snowflake); `null` where the database is the
    /// only namespace (MySQL, ClickHouse, SQLite).
    #[schema(required = true)]
    schema: Option<String>,
    /// The name to use as a pipeline's `table`.
    name: String,
}

#[utoipa::path(
    get,
    path = "/destinations/{id}/tables",
    operation_id = "listTables",
    tag = "destinations",
    summary = "The tables where the destination writes",
    description = "Ordinary tables of the destination's schema (PostgreSQL, Snowflake) or database, sorted by \
        name; views and system tables are left out. A database or schema that does not exist answers 404 \
        `NotFound` with a message naming it.",
    params(("id" = String, Path, description = "The destination's id")),
    responses(
        (status = 200, description = "OK", body = TableList),
        Unauthorized,
        NotFound,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn list_tables(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TableList>> {
    let rec = load(&state, &id).await?;
    let dest = sluice_destinations::open(&rec.kind, &rec.settings).map_err(ApiError::invalid)?;
    let tables = match tokio::time::timeout(TEST_TIMEOUT, dest.list_tables()).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(DestinationError::new(
                ErrorKind::Timeout,
                "listing the tables took longer than 30 seconds",
            )
            .into())
        }
    };
    Ok(Json(TableList {
        tables: tables
            .into_iter()
            .map(|t| TableEntry {
                schema: t.schema,
                name: t.name,
            })
            .collect(),
    }))
}

/// A destination table as Sluice sees it.
#[derive(Serialize, ToSchema)]
pub struct Table {
    name: String,
    columns: Vec<TableColumn>,
    /// The primary key first (when there is one), then each unique constraint or index.
    keys: Vec<Vec<String>>,
    #[schema(required = true)]
    primary_key: Option<Vec<String>>,
    /// What limits what Sluice can do with the table (`column `x` has unsupported type `macaddr``).
    issues: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TableColumn {
    name: String,
    /// The column's type as the database names it.
    #[serde(rename = "type")]
    native_type: String,
    nullable: bool,
    has_default: bool,
    /// False when Sluice cannot write the column's type.
    supported: bool,
    /// A string, integer or UUID column that is (alone) a primary or unique key.
    key_capable: bool,
}

pub(crate) fn table_json(t: &sluice_core::TableDescription) -> Table {
    let columns = t
        .columns
        .iter()
        .map(|c| TableColumn {
            name: c.name.clone(),
            native_type: c.native_type.clone(),
            nullable: c.nullable,
            has_default: c.has_default,
            supported: c.ty.is_some(),
            key_capable: t.is_unique_key(&c.name)
                && c.ty.as_ref().is_some_and(|t| t.is_key_capable()),
        })
        .collect();
    Table {
        name: t.name.clone(),
        columns,
        keys: t.keys.clone(),
        primary_key: if t.has_primary_key {
            t.keys.first().cloned()
        } else {
            None
        },
        issues: t.issues.clone(),
    }
}
