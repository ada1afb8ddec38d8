//! `/v1/connectors` and `/v1/destinations`: connection settings (secrets write-only), connection tests and
//! table descriptions.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};
use sluice_core::FieldErrors;
use sluice_destinations::{DestinationError, ErrorKind};
use sluice_store::{DestinationRecord, SECRET_FIELDS};

use crate::error::{ApiError, ApiResult};
use crate::json::{Body, OptionalBody};
use crate::AppState;

/// What answers show in place of a stored secret; sending it back keeps the stored value.
pub const MASK: &str = "********";
/// Longest a connection test may take, whatever the destination's own timeouts.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn connectors() -> Json<Json_> {
    Json(serde_json::to_value(sluice_destinations::connectors::connectors()).unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Map<String, Json_>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Map<String, Json_>,
}

pub(crate) fn to_json(rec: &DestinationRecord) -> Json_ {
    json!({
        "id": rec.id,
        "name": rec.name,
        "type": rec.kind,
        "settings": masked(&rec.settings),
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
    })
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

fn validate(kind: &str, name: &str, settings: &Json_) -> ApiResult<()> {
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

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Json_>> {
    let all = state.meta.list_destinations().await?;
    Ok(Json(
        json!({"destinations": all.iter().map(to_json).collect::<Vec<_>>()}),
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Body(body): Body<DestinationBody>,
) -> ApiResult<(StatusCode, Json<Json_>)> {
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

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Json_>> {
    Ok(Json(to_json(&load(&state, &id).await?)))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<DestinationBody>,
) -> ApiResult<Json<Json_>> {
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
    let settings = keep_secrets(body.settings, &rec.settings);
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

/// Secrets left out of an update, or sent back masked, keep their stored value.
fn keep_secrets(mut new: Map<String, Json_>, stored: &Json_) -> Json_ {
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
                }
                None => {
                    new.remove(f);
                }
            }
        }
    }
    Json_::Object(new)
}

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

pub async fn test_unsaved(
    State(_s): State<AppState>,
    Body(body): Body<TestBody>,
) -> ApiResult<Json<Json_>> {
    let settings = Json_::Object(body.settings);
    run_test(&body.kind, &settings).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TestSavedBody {
    /// Edited settings to test instead of the stored ones; secrets left out (or masked) are the stored ones.
    settings: Option<Map<String, Json_>>,
}

pub async fn test_saved(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<TestSavedBody>,
) -> ApiResult<Json<Json_>> {
    let rec = load(&state, &id).await?;
    let settings = match body.settings {
        Some(edited) => keep_secrets(edited, &rec.settings),
        None => rec.settings,
    };
    run_test(&rec.kind, &settings).await
}

async fn run_test(kind: &str, settings: &Json_) -> ApiResult<Json<Json_>> {
    let dest = sluice_destinations::open(kind, settings).map_err(|e| {
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
        ApiError::invalid(out)
    })?;
    let outcome = match tokio::time::timeout(TEST_TIMEOUT, dest.test()).await {
        Ok(r) => r,
        Err(_) => Err(DestinationError::new(
            ErrorKind::Timeout,
            "the connection test took longer than 30 seconds",
        )),
    };
    Ok(Json(match outcome {
        Ok(report) => {
            json!({"ok": true, "server_version": report.server_version, "checks": report.checks})
        }
        Err(e) => json!({"ok": false, "error": {"code": e.kind.code(), "message": e.message}}),
    }))
}

pub async fn describe_table(
    State(state): State<AppState>,
    Path((id, table)): Path<(String, String)>,
) -> ApiResult<Json<Json_>> {
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

pub(crate) fn table_json(t: &sluice_core::TableDescription) -> Json_ {
    let columns: Vec<Json_> = t
        .columns
        .iter()
        .map(|c| {
            let unique = t.is_unique_key(&c.name);
            json!({
                "name": c.name,
                "type": c.native_type,
                "nullable": c.nullable,
                "has_default": c.has_default,
                "supported": c.ty.is_some(),
                "key_capable": unique && c.ty.as_ref().is_some_and(|t| t.is_key_capable()),
            })
        })
        .collect();
    json!({
        "name": t.name,
        "columns": columns,
        "keys": t.keys,
        "primary_key": if t.has_primary_key { t.keys.first().cloned() } else { None },
        "issues": t.issues,
    })
}
