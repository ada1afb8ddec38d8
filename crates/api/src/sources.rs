//! `/v1/sources`: source pipelines — a connection's table or query read into the profile store — with
//! every problem reported at once (422 with field paths), their runs, and a preview without saving.
//!
//! A source is checked against its live table or query whenever it is saved, as export pipelines are
//! against their table: the connection must exist, the id and cursor columns must be among the source's
//! columns with types that can serve, and the transformation must compile from those columns to the
//! Customer Model (`sluice_engine::source::check_source`, which every run also goes through).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_};
use sluice_core::source::SourceSpec;
use sluice_engine::source::{check_source, preview_source};
use sluice_engine::StartError;
use sluice_store::{SourceRecord, StoreError};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{self, Body, OptionalBody};
use crate::openapi::{
    DestinationFailed, Internal, Invalid, Malformed, NotFound, NotJson, SourceSchedule, TooLarge,
    Transformation, Unauthorized,
};
use crate::query::Query;
use crate::runs::{Run, RunList, RunListQuery, RunStarted};
use crate::AppState;

// Mirrors `sluice_core::source::Changes`.
/// How a source finds what changed.
#[derive(Serialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ChangesDoc {
    /// Each run reads the rows whose `column` is at or past the mark the previous successful run left
    /// (its greatest value minus `lookback`), in `(column, id)` order.
    Cursor {
        /// A column that grows with every change: a timestamp, an integer or text.
        column: String,
        /// How far behind the greatest value seen the next run starts, so that a row whose transaction
        /// took its value before the greatest one read but committed after the read is not missed:
        /// `30s`, `5m`, `1h`, `1d` for a timestamp (10 seconds when left out; longer if writers hold
        /// their transactions open longer after taking the timestamp), a number for an integer (10000
        /// when left out). The rows inside it are read again by every run, and written nowhere.
        #[serde(default)]
        lookback: Option<LookbackDoc>,
    },
    /// Each run reads everything and writes only the profiles whose mapped properties changed.
    Full {
        /// What happens to a profile whose source row disappeared: `keep` (the default) or `delete`
        /// (the profile is deleted, unless another source also feeds it).
        #[serde(default)]
        on_missing: OnMissingDoc,
    },
}

/// A duration (`30s`, `5m`, `1h`, `1d`) for a timestamp cursor, a number for an integer one.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum LookbackDoc {
    Duration(String),
    Units(u64),
}

#[derive(Serialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OnMissingDoc {
    #[default]
    Keep,
    Delete,
}

// Mirrors `sluice_core::source::SourceSpec`.
/// A source pipeline as it is sent.
#[derive(Serialize, ToSchema)]
#[schema(as = SourceInput)]
#[allow(dead_code)]
pub struct SourceInputDoc {
    /// The id of the connection (a destination record) read from.
    connection: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    #[schema(default = true)]
    enabled: bool,
    /// A table of the connection's schema (or database). Exactly one of `table` and `query`.
    #[serde(default)]
    table: Option<String>,
    /// One `SELECT` (or `WITH … SELECT`), read as a subquery.
    #[serde(default)]
    query: Option<String>,
    /// The column whose value becomes the profile's `_id`: a string, an integer or a UUID.
    id_column: String,
    /// Customer Model property path (`address.city`) → expression over the source's columns; or a
    /// script whose `transform(row)` returns an object keyed by property path.
    transformation: Transformation,
    changes: ChangesDoc,
    /// `null` (the default) runs the source only on demand. An interval as short as `5s`: a run never
    /// overlaps the source's previous one (a tick during a run makes one follow-up run when it ends).
    #[serde(default)]
    schedule: Option<SourceSchedule>,
}

/// Any subset of a source's fields; those left out keep their value.
#[derive(Serialize, ToSchema)]
#[schema(as = SourcePatch)]
#[allow(dead_code)]
pub struct SourcePatchDoc {
    #[serde(default)]
    connection: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    id_column: String,
    #[serde(default)]
    transformation: Transformation,
    #[serde(default)]
    changes: Option<ChangesDoc>,
    #[serde(default)]
    schedule: Option<SourceSchedule>,
}

/// A source as answers show it: what was sent, with its id, times, its run going now, its last run and
/// where its next cursor read starts.
#[derive(Serialize, ToSchema)]
pub struct Source {
    #[serde(flatten)]
    #[schema(value_type = SourceInputDoc)]
    spec: SourceSpec,
    id: String,
    /// The id of the run queued or running, on any instance.
    #[schema(required = true)]
    running: Option<String>,
    #[schema(required = true)]
    last_run: Option<Run>,
    /// Where the next `cursor` read starts (`{"type": "time" | "int" | "text", "value": …}`); `null`
    /// before the first successful run and in `full` mode.
    #[schema(required = true, value_type = Option<Object>)]
    mark: Option<Json_>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SourceList {
    sources: Vec<Source>,
}

async fn to_json(state: &AppState, rec: &SourceRecord) -> Source {
    let last_run = state
        .meta
        .list_runs(&rec.id, 1, None)
        .await
        .ok()
        .and_then(|r| r.into_iter().next());
    let mark = state
        .meta
        .source_mark(&rec.id)
        .await
        .ok()
        .flatten()
        .and_then(|m| serde_json::to_value(m).ok());
    Source {
        spec: rec.spec.clone(),
        id: rec.id.clone(),
        running: state.engine.current_run(&rec.id).await,
        last_run: last_run.map(|r| crate::runs::to_json(&r)),
        mark,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    }
}

async fn check(state: &AppState, spec: &SourceSpec) -> ApiResult<()> {
    check_source(
        state.meta.as_ref(),
        spec,
        state.engine.config().script_limits,
    )
    .await?;
    Ok(())
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::conflict("NameTaken", m),
        other => other.into(),
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<SourceRecord> {
    state
        .meta
        .get_source(id)
        .await?
        .ok_or_else(|| ApiError::not_found("source", id))
}

#[utoipa::path(
    get,
    path = "/sources",
    operation_id = "listSources",
    tag = "sources",
    summary = "List source pipelines",
    responses((status = 200, description = "OK", body = SourceList), Unauthorized, Internal),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<SourceList>> {
    let all = state.meta.list_sources().await?;
    let mut sources = Vec::with_capacity(all.len());
    for s in &all {
        sources.push(to_json(&state, s).await);
    }
    Ok(Json(SourceList { sources }))
}

#[utoipa::path(
    post,
    path = "/sources",
    operation_id = "createSource",
    tag = "sources",
    summary = "Add a source pipeline, checked against its live table or query",
    request_body = SourceInputDoc,
    responses(
        (status = 201, description = "created", body = Source),
        Malformed,
        Unauthorized,
        (status = 409, body = ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Body(spec): Body<SourceSpec>,
) -> ApiResult<(StatusCode, Json<Source>)> {
    check(&state, &spec).await?;
    let now = Utc::now();
    let rec = SourceRecord {
        id: crate::new_id("src"),
        spec,
        created_at: now,
        updated_at: now,
    };
    state.meta.insert_source(&rec).await.map_err(name_taken)?;
    tracing::info!(source = %rec.id, "source added");
    // The scheduler takes in the new schedule now, not at the end of its longest wait.
    state.engine.wake_sources();
    Ok((StatusCode::CREATED, Json(to_json(&state, &rec).await)))
}

#[utoipa::path(
    get,
    path = "/sources/{id}",
    operation_id = "getSource",
    tag = "sources",
    summary = "One source pipeline",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 200, description = "OK", body = Source), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Source>> {
    let rec = load(&state, &id).await?;
    Ok(Json(to_json(&state, &rec).await))
}

#[utoipa::path(
    put,
    path = "/sources/{id}",
    operation_id = "replaceSource",
    tag = "sources",
    summary = "Replace a source pipeline",
    params(("id" = String, Path, description = "The source's id")),
    request_body = SourceInputDoc,
    responses(
        (status = 200, description = "OK", body = Source),
        Malformed,
        Unauthorized,
        NotFound,
        (status = 409, body = ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(spec): Body<SourceSpec>,
) -> ApiResult<Json<Source>> {
    let rec = load(&state, &id).await?;
    save(&state, rec, spec).await
}

#[utoipa::path(
    patch,
    path = "/sources/{id}",
    operation_id = "patchSource",
    tag = "sources",
    summary = "Change some fields of a source pipeline",
    params(("id" = String, Path, description = "The source's id")),
    request_body = SourcePatchDoc,
    responses(
        (status = 200, description = "OK", body = Source),
        Malformed,
        Unauthorized,
        NotFound,
        (status = 409, body = ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(changes): Body<Map<String, Json_>>,
) -> ApiResult<Json<Source>> {
    let rec = load(&state, &id).await?;
    let spec = json::patched(&rec.spec, changes)?;
    save(&state, rec, spec).await
}

/// Stores a changed spec, checked against the live source. Reading something else (another connection,
/// table, query, id or cursor column, or mode) forgets the mark, so the next run reads everything.
async fn save(
    state: &AppState,
    mut rec: SourceRecord,
    spec: SourceSpec,
) -> ApiResult<Json<Source>> {
    let old = &rec.spec;
    // Name, description, `enabled` and schedule can change while the source is down (disabling a
    // source whose database is gone must work); anything else is checked against the live source.
    let same_reading = SourceSpec {
        name: old.name.clone(),
        description: old.description.clone(),
        enabled: old.enabled,
        schedule: old.schedule.clone(),
        ..spec.clone()
    } == *old;
    if same_reading {
        let mut errors = spec.check().err().unwrap_or_default();
        if let Some(Err((field, message))) = spec
            .schedule
            .as_ref()
            .map(|s| s.compile_for(sluice_core::pipeline::Scheduled::Source))
        {
            errors.add(field, message);
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(errors));
        }
    } else {
        check(state, &spec).await?;
    }
    let elsewhere = old.connection != spec.connection
        || old.table != spec.table
        || old.query != spec.query
        || old.id_column != spec.id_column
        || old.changes != spec.changes;
    let disabled = old.enabled && !spec.enabled;
    rec.spec = spec;
    rec.updated_at = Utc::now();
    state.meta.update_source(&rec).await.map_err(name_taken)?;
    if elsewhere {
        state.meta.set_source_mark(&rec.id, None).await?;
    }
    if disabled {
        // Other instances see the source disabled at their next heartbeat and stop its run there.
        state.engine.stop_pipeline(&rec.id).await;
    }
    state.engine.wake_sources();
    Ok(Json(to_json(state, &rec).await))
}

#[utoipa::path(
    delete,
    path = "/sources/{id}",
    operation_id = "deleteSource",
    tag = "sources",
    summary = "Delete a source pipeline (cancels its run; the profiles it wrote stay)",
    params(("id" = String, Path, description = "The source's id")),
    responses((status = 204, description = "deleted"), Unauthorized, NotFound, Internal),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine.stop_pipeline(&id).await;
    if state.meta.delete_source(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("source", &id))
    }
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceStartBody {
    /// `manual` (UI, CLI) or `api` (the default).
    #[schema(value_type = Option<crate::runs::StartTrigger>)]
    trigger: Option<String>,
}

#[utoipa::path(
    post,
    path = "/sources/{id}/runs",
    operation_id = "startSourceRun",
    tag = "sources",
    summary = "Run a source now",
    params(("id" = String, Path, description = "The source's id")),
    request_body(content = Option<SourceStartBody>, description = "May be left out"),
    responses(
        (status = 202, description = "started, or queued for a slot", body = RunStarted),
        Malformed,
        Unauthorized,
        NotFound,
        (status = 409, body = ErrorBody, description = "the source is already running (`SourceAlreadyRunning`)"),
        (status = 422, body = ErrorBody, description = "the source is disabled (`SourceDisabled`), or the body is invalid"),
        Internal,
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<SourceStartBody>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let trigger = body.trigger.unwrap_or_else(|| "api".into());
    if !matches!(trigger.as_str(), "manual" | "api") {
        return Err(ApiError::invalid_field(
            "trigger",
            "trigger must be `manual` or `api`",
        ));
    }
    match state.engine.start_source(&id, &trigger).await {
        Ok(run) => Ok((
            StatusCode::ACCEPTED,
            Json(RunStarted {
                id: run.id,
                status: run.status.as_str(),
            }),
        )),
        Err(StartError::NotFound(_)) => Err(ApiError::not_found("source", &id)),
        Err(StartError::Disabled(name)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "SourceDisabled",
            format!("source `{name}` is disabled: enable it to run it"),
        )),
        Err(StartError::AlreadyRunning { name, run }) => Err(ApiError::conflict(
            "SourceAlreadyRunning",
            format!("source `{name}` is already running (run {run})"),
        )),
        Err(StartError::Store(e)) => Err(e.into()),
    }
}

#[utoipa::path(
    get,
    path = "/sources/{id}/runs",
    operation_id = "listSourceRuns",
    tag = "sources",
    summary = "A source's runs, newest first",
    params(("id" = String, Path, description = "The source's id"), RunListQuery),
    responses(
        (status = 200, description = "OK", body = RunList),
        Unauthorized,
        (status = 404, body = ErrorBody, description = "no such source, or `before` is not one of its runs"),
        Invalid,
        Internal,
    ),
)]
pub async fn runs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RunListQuery>,
) -> ApiResult<Json<RunList>> {
    load(&state, &id).await?;
    crate::runs::page(&state, &id, q).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePreviewInput {
    #[schema(value_type = SourceInputDoc)]
    source: SourceSpec,
    /// How many source rows (1 to 100, 10 by default).
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
}

/// One sample row: the source row, the properties it would write and why it would fail.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SourcePreviewRowDoc {
    /// The profile id; `null` when the id column is NULL.
    #[schema(required = true)]
    id: Option<String>,
    /// The source row, column by column.
    #[schema(value_type = Object)]
    row: Map<String, Json_>,
    /// The properties the row would write, nested by path; `null` when it fails or is skipped.
    #[schema(required = true, value_type = Option<Object>)]
    properties: Option<Map<String, Json_>>,
    errors: Vec<String>,
    /// A script returned null: the row writes nothing.
    skipped: bool,
}

/// What a run would make of the first rows of the source; nothing is written.
#[derive(Serialize, ToSchema)]
pub struct SourcePreview {
    #[schema(value_type = Vec<SourcePreviewRowDoc>)]
    rows: Vec<sluice_engine::source::SourcePreviewRow>,
}

#[utoipa::path(
    post,
    path = "/sources/preview",
    operation_id = "previewSource",
    tag = "sources",
    summary = "Preview an unsaved source on its first rows",
    request_body = SourcePreviewInput,
    responses(
        (status = 200, description = "OK", body = SourcePreview),
        Malformed,
        Unauthorized,
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn preview(
    State(state): State<AppState>,
    Body(input): Body<SourcePreviewInput>,
) -> ApiResult<Json<SourcePreview>> {
    let limit = input.limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let rows = preview_source(&state.engine, &input.source, limit)
        .await
        .map_err(|e| match e.fields {
            // The source is the body's `source`: its problems are named under it.
            Some(fields) => {
                let mut under = sluice_core::FieldErrors::new();
                under.merge_prefixed("source", fields);
                ApiError::invalid(under)
            }
            None => e.into(),
        })?;
    Ok(Json(SourcePreview { rows }))
}
