//! Runs: start one now, follow it, list a pipeline's history, cancel.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use sluice_engine::StartError;
use sluice_store::RunRecord;

use crate::error::{ApiError, ApiResult};
use crate::json::OptionalBody;
use crate::AppState;

/// A run as API.md shapes it, plus its duration and rate.
pub(crate) fn to_json(r: &RunRecord) -> Json_ {
    let end = r.finished_at.unwrap_or_else(chrono::Utc::now);
    let duration_ms = r.started_at.map(|s| (end - s).num_milliseconds().max(0));
    let written = r.counts.inserted + r.counts.updated + r.counts.deleted;
    let rate = duration_ms
        .filter(|d| *d > 0)
        .map(|d| (r.counts.read as f64) * 1000.0 / d as f64);
    json!({
        "id": r.id,
        "pipeline": r.pipeline,
        "trigger": r.trigger,
        "status": r.status.as_str(),
        "queued_at": r.queued_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "duration_ms": duration_ms,
        "rows_per_second": rate.map(|x| x.round()),
        "written": written,
        "progress": r.progress,
        "counts": r.counts,
        "errors": r.errors,
        "message": r.message,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// `manual` (UI, CLI) or `api` (the default).
    trigger: Option<String>,
}

pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<StartBody>,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    let trigger = body.trigger.unwrap_or_else(|| "api".into());
    if !matches!(trigger.as_str(), "manual" | "api") {
        return Err(ApiError::invalid_field(
            "trigger",
            "trigger must be `manual` or `api`",
        ));
    }
    match state.engine.start(&id, &trigger).await {
        Ok(run) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": run.id, "status": run.status.as_str()})),
        )),
        Err(StartError::NotFound(_)) => Err(ApiError::not_found("pipeline", &id)),
        Err(e @ StartError::Disabled(_)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "PipelineDisabled",
            e.to_string(),
        )),
        Err(e @ StartError::AlreadyRunning { .. }) => {
            Err(ApiError::conflict("PipelineAlreadyRunning", e.to_string()))
        }
        Err(StartError::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    before: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Json_>> {
    if state.meta.get_pipeline(&id).await?.is_none() {
        return Err(ApiError::not_found("pipeline", &id));
    }
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let runs = state
        .meta
        .list_runs(&id, limit + 1, q.before.as_deref())
        .await?;
    let more = runs.len() > limit;
    let runs = &runs[..runs.len().min(limit)];
    let next = if more {
        runs.last().map(|r| r.id.clone())
    } else {
        None
    };
    let out: Vec<Json_> = runs
        .iter()
        .map(|r| to_json(&state.engine.live(&r.id).unwrap_or_else(|| r.clone())))
        .collect();
    Ok(Json(json!({"runs": out, "next": next})))
}

pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Json_>> {
    if let Some(live) = state.engine.live(&id) {
        return Ok(Json(to_json(&live)));
    }
    match state.meta.get_run(&id).await? {
        Some(r) => Ok(Json(to_json(&r))),
        None => Err(ApiError::not_found("run", &id)),
    }
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Json_>)> {
    if state.engine.request_cancel(&id).await? {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "cancelling": true})),
        ));
    }
    match state.meta.get_run(&id).await? {
        None => Err(ApiError::not_found("run", &id)),
        Some(r) => Err(ApiError::conflict(
            "RunNotActive",
            format!(
                "run `{id}` is {} and cannot be cancelled",
                r.status.as_str()
            ),
        )),
    }
}
