//! Runs: start one now, follow it, list a pipeline's history, cancel.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_engine::{RunMode, StartError};
use sluice_store::{Counts, Progress, RunErrorGroup, RunRecord};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::OptionalBody;
use crate::openapi::{
    DryRunSamplesDoc, Internal, Invalid, Malformed, NotFound, RunChangesDoc, RunCountsDoc,
    RunErrorGroupDoc, RunProgressDoc, RunStatus, RunTrigger, Unauthorized,
};
use crate::query::Query;
use crate::AppState;

/// A run as API.md shapes it, plus its duration and rate.
#[derive(Serialize, ToSchema)]
pub struct Run {
    id: String,
    pipeline: String,
    #[schema(value_type = RunTrigger)]
    trigger: String,
    /// On a run set off by profile changes (`trigger: on_change`): how many changed since the
    /// pipeline's previous run started. Left out on other runs, and on an `on_change` pipeline's first
    /// run (which brings the table in step without knowing what changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<RunChangesDoc>)]
    changes: Option<sluice_store::ChangeCounts>,
    #[schema(value_type = RunStatus)]
    status: &'static str,
    queued_at: DateTime<Utc>,
    #[schema(required = true)]
    started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    finished_at: Option<DateTime<Utc>>,
    /// From start to end, or to now while running.
    #[schema(required = true)]
    duration_ms: Option<i64>,
    /// Profiles read per second.
    #[schema(required = true)]
    rows_per_second: Option<f64>,
    /// Rows inserted, updated and deleted.
    written: u64,
    #[schema(value_type = RunProgressDoc)]
    progress: Progress,
    #[schema(value_type = RunCountsDoc)]
    counts: Counts,
    #[schema(value_type = Vec<RunErrorGroupDoc>)]
    errors: Vec<RunErrorGroup>,
    /// Why the run failed or was cancelled; for a run that found its table changed (recreated, rows
    /// missing, a reconcile), what it found and repaired.
    #[schema(required = true)]
    message: Option<String>,
    /// `true` on a dry run (left out on the others): it wrote nothing, and its counts are what a real
    /// run would have done.
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<bool>,
    /// The source pipeline the run belongs to, on a source's run (left out on the others; `pipeline`
    /// then holds the same id).
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    /// A dry run's sample rows of each kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DryRunSamplesDoc>)]
    samples: Option<sluice_engine::DryReport>,
}

/// A dry run as a run: its record and its samples.
pub(crate) fn dry_to_json(d: sluice_engine::DryRunRecord) -> Run {
    let mut run = to_json(&d.run);
    run.dry_run = Some(true);
    run.samples = Some(d.samples);
    run
}

pub(crate) fn to_json(r: &RunRecord) -> Run {
    let end = r.finished_at.unwrap_or_else(chrono::Utc::now);
    let duration_ms = r.started_at.map(|s| (end - s).num_milliseconds().max(0));
    let written = r.counts.inserted + r.counts.updated + r.counts.deleted;
    let rate = duration_ms
        .filter(|d| *d > 0)
        .map(|d| (r.counts.read as f64) * 1000.0 / d as f64);
    Run {
        id: r.id.clone(),
        pipeline: r.pipeline.clone(),
        trigger: r.trigger.clone(),
        changes: r.changes,
        status: r.status.as_str(),
        queued_at: r.queued_at,
        started_at: r.started_at,
        finished_at: r.finished_at,
        duration_ms,
        rows_per_second: rate.map(|x| x.round()),
        written,
        progress: r.progress,
        counts: r.counts,
        errors: r.errors.clone(),
        message: r.message.clone(),
        dry_run: None,
        source: r.pipeline.starts_with("src_").then(|| r.pipeline.clone()),
        samples: None,
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// `manual` (UI, CLI) or `api` (the default).
    #[schema(value_type = Option<StartTrigger>)]
    trigger: Option<String>,
    /// `normal` (the default) or `reconcile`: read back every row Sluice wrote, compare it with what
    /// Sluice believes it wrote, and rewrite what is missing or changed. Its counts say what it rewrote.
    #[schema(value_type = Option<StartMode>)]
    mode: Option<String>,
    /// Decide everything a run would and write nothing: no row, no sync state, no history entry. The
    /// run (read at `GET /runs/{id}`) ends with the counts a real run would have and sample rows of each
    /// kind. Allowed on a disabled pipeline and beside a running one.
    dry_run: Option<bool>,
}

/// How a run treats the table before writing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StartMode {
    Normal,
    Reconcile,
}

/// What may start a run through the API.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum StartTrigger {
    Manual,
    Api,
}

/// The run started (`running`) or waiting for a slot (`queued`).
#[derive(Serialize, ToSchema)]
pub struct RunStarted {
    pub(crate) id: String,
    #[schema(value_type = RunStatus)]
    pub(crate) status: &'static str,
}

#[utoipa::path(
    post,
    path = "/pipelines/{id}/runs",
    operation_id = "startRun",
    tag = "runs",
    summary = "Run now",
    params(("id" = String, Path, description = "The pipeline's id")),
    request_body(content = Option<StartBody>, description = "May be left out"),
    responses(
        (status = 202, description = "started, or queued for a slot", body = RunStarted),
        Malformed,
        Unauthorized,
        NotFound,
        (status = 409, body = ErrorBody, description = "the pipeline is already running (`PipelineAlreadyRunning`)"),
        (status = 422, body = ErrorBody, description = "the pipeline is disabled (`PipelineDisabled`), or the body is invalid"),
        crate::openapi::TooManyDryRuns,
        Internal,
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<StartBody>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let trigger = body.trigger.unwrap_or_else(|| "api".into());
    if !matches!(trigger.as_str(), "manual" | "api") {
        return Err(ApiError::invalid_field(
            "trigger",
            "trigger must be `manual` or `api`",
        ));
    }
    let mode = match body.mode.as_deref() {
        None | Some("normal") => RunMode::Normal,
        Some("reconcile") => RunMode::Reconcile,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "mode",
                "mode must be `normal` or `reconcile`",
            ))
        }
    };
    if body.dry_run == Some(true) {
        if mode != RunMode::Normal {
            return Err(ApiError::invalid_field(
                "mode",
                "a dry run cannot reconcile: leave `mode` out",
            ));
        }
        let Some(rec) = state.meta.get_pipeline(&id).await? else {
            return Err(ApiError::not_found("pipeline", &id));
        };
        let run = state.engine.start_dry_run(rec, true, &trigger).await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(RunStarted {
                id: run.id,
                status: run.status.as_str(),
            }),
        ));
    }
    match state.engine.start_with(&id, &trigger, mode).await {
        Ok(run) => Ok((
            StatusCode::ACCEPTED,
            Json(RunStarted {
                id: run.id,
                status: run.status.as_str(),
            }),
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Runs per page, 1 to 500 (20 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    before: Option<String>,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
pub struct RunList {
    runs: Vec<Run>,
    /// The `before` of the next page; `null` on the last one.
    #[schema(required = true)]
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/pipelines/{id}/runs",
    operation_id = "listRuns",
    tag = "runs",
    summary = "A pipeline's runs, newest first",
    params(("id" = String, Path, description = "The pipeline's id"), ListQuery),
    responses(
        (status = 200, description = "OK", body = RunList),
        Unauthorized,
        (status = 404, body = ErrorBody, description = "no such pipeline, or `before` is not one of its runs"),
        Invalid,
        Internal,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<RunList>> {
    if state.meta.get_pipeline(&id).await?.is_none() {
        return Err(ApiError::not_found("pipeline", &id));
    }
    page(&state, &id, q).await
}

/// The query of a run list (pipelines' and sources').
pub type RunListQuery = ListQuery;

/// A page of the runs of `id` (a pipeline or a source), newest first.
pub(crate) async fn page(state: &AppState, id: &str, q: ListQuery) -> ApiResult<Json<RunList>> {
    let id = id.to_string();
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
    let runs = runs
        .iter()
        .map(|r| to_json(&state.engine.live(&r.id).unwrap_or_else(|| r.clone())))
        .collect();
    Ok(Json(RunList { runs, next }))
}

#[utoipa::path(
    get,
    path = "/runs/{id}",
    operation_id = "getRun",
    tag = "runs",
    summary = "One run, live while running",
    params(("id" = String, Path, description = "The run's id")),
    responses((status = 200, description = "OK", body = Run), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    if let Some(live) = state.engine.live(&id) {
        return Ok(Json(to_json(&live)));
    }
    if let Some(r) = state.meta.get_run(&id).await? {
        return Ok(Json(to_json(&r)));
    }
    match state.engine.get_dry_run(&id).await? {
        Some(d) => Ok(Json(dry_to_json(d))),
        None => Err(ApiError::not_found("run", &id)),
    }
}

/// The run stops at its next batch boundary (at once while queued).
#[derive(Serialize, ToSchema)]
pub struct Cancelling {
    id: String,
    #[schema(inline)]
    cancelling: crate::openapi::True,
}

#[utoipa::path(
    post,
    path = "/runs/{id}/cancel",
    operation_id = "cancelRun",
    tag = "runs",
    summary = "Stop a run at the next batch boundary",
    params(("id" = String, Path, description = "The run's id")),
    responses(
        (status = 202, description = "the run stops at its next batch boundary", body = Cancelling),
        Unauthorized,
        NotFound,
        (status = 409, body = ErrorBody, description = "the run has finished (`RunNotActive`)"),
        Internal,
    ),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Cancelling>)> {
    if state.engine.request_cancel(&id).await? {
        return Ok((
            StatusCode::ACCEPTED,
            Json(Cancelling {
                id,
                cancelling: crate::openapi::True,
            }),
        ));
    }
    let status = match state.meta.get_run(&id).await? {
        Some(r) => Some(r.status),
        None => state.engine.get_dry_run(&id).await?.map(|d| d.run.status),
    };
    match status {
        None => Err(ApiError::not_found("run", &id)),
        Some(status) => Err(ApiError::conflict(
            "RunNotActive",
            format!("run `{id}` is {} and cannot be cancelled", status.as_str()),
        )),
    }
}
