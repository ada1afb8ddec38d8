//! `/v1/pipelines`: create, list, change and delete export pipelines, with every problem reported at once
//! (422 with field paths), plus validation and preview without saving.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json_};
use sluice_core::hash::hash_row;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::sync::{decide, Outcome, SyncKey, Verdict};
use sluice_core::FieldErrors;
use sluice_store::{PipelineRecord, Role, StoreError};
use sluice_transform::Output;
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{self, Body, OptionalBody};
use crate::openapi::{
    DestinationFailed, FunctionInfoDoc, Internal, Invalid, Malformed, NotFound, NotJson,
    PipelineInputDoc, PipelinePatchDoc, PipelineSpecDoc, PreviewSample, TooLarge, True,
    Unauthorized,
};
use crate::query::Query;
use crate::runs::Run;
use crate::AppState;

#[utoipa::path(
    get,
    path = "/functions",
    operation_id = "listFunctions",
    tag = "pipelines",
    summary = "Functions of visual-mapping expressions",
    responses((status = 200, description = "OK", body = Vec<FunctionInfoDoc>), Unauthorized),
)]
pub async fn functions() -> Json<Json_> {
    Json(serde_json::to_value(sluice_core::mapping::functions()).unwrap_or_default())
}

/// A pipeline as answers show it: what was sent, with its id and times, a readable filter summary and
/// what is running now.
#[derive(Serialize, ToSchema)]
pub struct Pipeline {
    #[serde(flatten)]
    #[schema(value_type = PipelineSpecDoc)]
    spec: PipelineSpec,
    id: String,
    /// The filter in words (`country is one of IT, FR`); empty without a filter.
    filter_summary: String,
    /// The id of the run queued or running, on any instance.
    #[schema(required = true)]
    running: Option<String>,
    #[schema(required = true)]
    last_run: Option<Run>,
    /// When the schedule runs the pipeline next; `null` when off or disabled.
    #[schema(required = true)]
    next_run_at: Option<chrono::DateTime<Utc>>,
    created_at: chrono::DateTime<Utc>,
    updated_at: chrono::DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct PipelineList {
    pipelines: Vec<Pipeline>,
}

/// A pipeline as answers show it.
impl Pipeline {
    /// The pipeline as `role` may see it: a webhook URL usually carries its own credential (Slack's and
    /// Teams' do), so a viewer learns only that one is set.
    fn shown_to(mut self, role: Role) -> Pipeline {
        if role < Role::Editor && self.spec.alert_webhook.is_some() {
            self.spec.alert_webhook = Some(crate::destinations::MASK.into());
        }
        self
    }
}

pub(crate) async fn to_json(state: &AppState, rec: &PipelineRecord) -> Pipeline {
    let schema = state.meta.get_schema().await.unwrap_or_default();
    let summary = sluice_engine::validate::check_filter(rec.spec.filter.as_ref(), &schema)
        .ok()
        .flatten()
        .map(|f| f.summary())
        .unwrap_or_default();
    let last_run = state
        .meta
        .list_runs(&rec.id, 1, None)
        .await
        .ok()
        .and_then(|r| r.into_iter().next());
    Pipeline {
        spec: rec.spec.clone(),
        id: rec.id.clone(),
        filter_summary: summary,
        running: state.engine.current_run(&rec.id).await,
        last_run: last_run.map(|r| crate::runs::to_json(&r)),
        next_run_at: sluice_engine::scheduler::next_run(&state.engine, rec, chrono::Utc::now())
            .await,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
    }
}

/// Every check of a spec: shape, destination, Customer Model and the live table (the engine's one check).
/// Destination failures (unreachable, auth) answer 502/504 with the database's message.
pub(crate) async fn check_spec(
    state: &AppState,
    spec: &PipelineSpec,
) -> ApiResult<sluice_engine::Fitted> {
    Ok(sluice_engine::check_pipeline(
        state.meta.as_ref(),
        spec,
        state.engine.config().script_limits,
    )
    .await?)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only the pipelines of this destination.
    destination: Option<String>,
}

#[utoipa::path(
    get,
    path = "/pipelines",
    operation_id = "listPipelines",
    tag = "pipelines",
    summary = "List pipelines",
    params(ListQuery),
    responses((status = 200, description = "OK", body = PipelineList), Unauthorized, Invalid, Internal),
)]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PipelineList>> {
    let all = state.meta.list_pipelines(q.destination.as_deref()).await?;
    let mut pipelines = Vec::with_capacity(all.len());
    for p in &all {
        pipelines.push(to_json(&state, p).await.shown_to(principal.role));
    }
    Ok(Json(PipelineList { pipelines }))
}

#[utoipa::path(
    post,
    path = "/pipelines",
    operation_id = "createPipeline",
    tag = "pipelines",
    summary = "Add a pipeline; every problem is reported at once",
    request_body = PipelineInputDoc,
    responses(
        (status = 201, description = "created", body = Pipeline),
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
    Body(spec): Body<PipelineSpec>,
) -> ApiResult<(StatusCode, Json<Pipeline>)> {
    check_spec(&state, &spec).await?;
    let now = Utc::now();
    let rec = PipelineRecord {
        id: crate::new_id("pl"),
        spec,
        created_at: now,
        updated_at: now,
    };
    state.meta.insert_pipeline(&rec).await.map_err(name_taken)?;
    state.engine.follow_changes_now();
    tracing::info!(pipeline = %rec.id, "pipeline added");
    Ok((StatusCode::CREATED, Json(to_json(&state, &rec).await)))
}

fn name_taken(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => ApiError::conflict("NameTaken", m),
        other => other.into(),
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<PipelineRecord> {
    state
        .meta
        .get_pipeline(id)
        .await?
        .ok_or_else(|| ApiError::not_found("pipeline", id))
}

#[utoipa::path(
    get,
    path = "/pipelines/{id}",
    operation_id = "getPipeline",
    tag = "pipelines",
    summary = "One pipeline",
    params(("id" = String, Path, description = "The pipeline's id")),
    responses((status = 200, description = "OK", body = Pipeline), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Json<Pipeline>> {
    let rec = load(&state, &id).await?;
    Ok(Json(to_json(&state, &rec).await.shown_to(principal.role)))
}

#[utoipa::path(
    put,
    path = "/pipelines/{id}",
    operation_id = "replacePipeline",
    tag = "pipelines",
    summary = "Replace a pipeline",
    params(("id" = String, Path, description = "The pipeline's id")),
    request_body = PipelineInputDoc,
    responses(
        (status = 200, description = "OK", body = Pipeline),
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
    Body(spec): Body<PipelineSpec>,
) -> ApiResult<Json<Pipeline>> {
    let rec = load(&state, &id).await?;
    save(&state, rec, spec).await
}

#[utoipa::path(
    patch,
    path = "/pipelines/{id}",
    operation_id = "patchPipeline",
    tag = "pipelines",
    summary = "Change some fields of a pipeline",
    params(("id" = String, Path, description = "The pipeline's id")),
    request_body = PipelinePatchDoc,
    responses(
        (status = 200, description = "OK", body = Pipeline),
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
) -> ApiResult<Json<Pipeline>> {
    let rec = load(&state, &id).await?;
    let spec = json::patched(&rec.spec, changes)?;
    save(&state, rec, spec).await
}

/// Stores a changed spec, checked as the engine checks every change: against the live table unless only
/// the name, description, `enabled`, schedule or alerting changed. A new destination, table or key resets
/// the sync state.
async fn save(
    state: &AppState,
    mut rec: PipelineRecord,
    spec: PipelineSpec,
) -> ApiResult<Json<Pipeline>> {
    let old = &rec.spec;
    sluice_engine::check_change(
        state.meta.as_ref(),
        old,
        &spec,
        state.engine.config().script_limits,
    )
    .await?;
    let moved =
        old.destination != spec.destination || old.table != spec.table || old.key != spec.key;
    let disabled = old.enabled && !spec.enabled;
    rec.spec = spec;
    rec.updated_at = Utc::now();
    state.meta.update_pipeline(&rec).await.map_err(name_taken)?;
    state.engine.follow_changes_now();
    if moved {
        // The recorded keys point into the old table or column: forget them so the next run starts afresh.
        state.meta.sync_clear(&rec.id).await?;
    }
    if disabled {
        // Other instances see the pipeline disabled at their next heartbeat and stop its run there.
        state.engine.stop_pipeline(&rec.id).await;
    }
    Ok(Json(to_json(state, &rec).await))
}

#[utoipa::path(
    delete,
    path = "/pipelines/{id}",
    operation_id = "deletePipeline",
    tag = "pipelines",
    summary = "Delete a pipeline (cancels its run)",
    params(("id" = String, Path, description = "The pipeline's id")),
    responses(
        (status = 204, description = "deleted"),
        Unauthorized,
        NotFound,
        Internal,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.engine.stop_pipeline(&id).await;
    if state.meta.delete_pipeline(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("pipeline", &id))
    }
}

/// The pipeline passed every check.
#[derive(Serialize, ToSchema)]
pub struct Valid {
    #[schema(inline)]
    ok: True,
}

#[utoipa::path(
    post,
    path = "/pipelines/validate",
    operation_id = "validatePipeline",
    tag = "pipelines",
    summary = "Check a pipeline without saving it",
    request_body = PipelineInputDoc,
    responses(
        (status = 200, description = "OK", body = Valid),
        Malformed,
        Unauthorized,
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn validate(
    State(state): State<AppState>,
    Body(spec): Body<PipelineSpec>,
) -> ApiResult<Json<Valid>> {
    check_spec(&state, &spec).await?;
    Ok(Json(Valid { ok: True }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewUnsaved {
    #[schema(value_type = PipelineInputDoc)]
    pipeline: PipelineSpec,
    /// How many sample profiles (1 to 100, 10 by default), read from the start of the audience.
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// These profiles instead (at most 100).
    profiles: Option<Vec<String>>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewSaved {
    /// How many sample profiles (1 to 100, 10 by default), read from the start of the audience.
    #[schema(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// These profiles instead (at most 100).
    profiles: Option<Vec<String>>,
}

/// What a run would do with some sample profiles; nothing is written.
#[derive(Serialize, ToSchema)]
pub struct PreviewAnswer {
    /// The columns a row has, in order.
    columns: Vec<String>,
    #[schema(value_type = Vec<PreviewSample>)]
    samples: Vec<Json_>,
}

#[utoipa::path(
    post,
    path = "/pipelines/preview",
    operation_id = "previewPipeline",
    tag = "pipelines",
    summary = "Preview an unsaved pipeline on sample profiles",
    request_body = PreviewUnsaved,
    responses(
        (status = 200, description = "OK", body = PreviewAnswer),
        Malformed,
        Unauthorized,
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn preview_unsaved(
    State(state): State<AppState>,
    Body(body): Body<PreviewUnsaved>,
) -> ApiResult<Json<PreviewAnswer>> {
    let rec = PipelineRecord {
        id: String::new(),
        spec: body.pipeline,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    preview(&state, rec, body.limit, body.profiles, false).await
}

#[utoipa::path(
    post,
    path = "/pipelines/{id}/preview",
    operation_id = "previewSavedPipeline",
    tag = "pipelines",
    summary = "Preview a saved pipeline on sample profiles",
    params(("id" = String, Path, description = "The pipeline's id")),
    request_body(content = Option<PreviewSaved>, description = "May be left out"),
    responses(
        (status = 200, description = "OK", body = PreviewAnswer),
        Malformed,
        Unauthorized,
        NotFound,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn preview_saved(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<PreviewSaved>,
) -> ApiResult<Json<PreviewAnswer>> {
    let rec = load(&state, &id).await?;
    preview(&state, rec, body.limit, body.profiles, true).await
}

/// Runs filter and transformation on sample profiles and says what a run would do, writing nothing: the
/// same check, the same rows and the same sync decision as a run, against exactly the sync entries (and
/// key holders) of the sample.
async fn preview(
    state: &AppState,
    rec: PipelineRecord,
    limit: Option<usize>,
    ids: Option<Vec<String>>,
    saved: bool,
) -> ApiResult<Json<PreviewAnswer>> {
    let limit = limit.unwrap_or(10);
    if limit == 0 || limit > 100 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let fitted = check_spec(state, &rec.spec).await?;
    let prepared = sluice_engine::Prepared::new(rec.clone(), fitted);
    let samples: Vec<sluice_core::Profile> = match &ids {
        Some(ids) => {
            let mut out = Vec::new();
            let mut missing = FieldErrors::new();
            for (i, id) in ids.iter().take(100).enumerate() {
                match state.profiles.get(id).await? {
                    Some(p) => out.push(p),
                    None => missing.add(
                        format!("profiles[{i}]"),
                        format!("profile `{id}` does not exist"),
                    ),
                }
            }
            if !missing.is_empty() {
                return Err(ApiError::invalid(missing));
            }
            out
        }
        None => {
            state
                .profiles
                .page(prepared.filter.as_ref(), None, limit)
                .await?
        }
    };
    let now = Utc::now();
    let key_idx = prepared.target.key_index();
    let matching: Vec<bool> = samples
        .iter()
        .map(|p| prepared.filter.as_ref().is_none_or(|f| f.matches(p)))
        .collect();
    let inputs: Vec<sluice_core::Profile> = samples
        .iter()
        .zip(&matching)
        .filter(|(_, m)| **m)
        .map(|(p, _)| p.clone())
        .collect();
    let mut outputs = sluice_engine::transform_profiles(&prepared, inputs, now)
        .await?
        .into_iter();
    let outputs: Vec<Option<Result<Output, sluice_transform::RowError>>> = matching
        .iter()
        .map(|m| if *m { outputs.next() } else { None })
        .collect();

    // The sync decision over the sample, in id order (a sample may name a profile twice).
    let mut order: Vec<usize> = (0..samples.len()).collect();
    order.sort_by(|a, b| samples[*a].id.cmp(&samples[*b].id));
    order.dedup_by(|a, b| samples[*a].id == samples[*b].id);
    let page = order.iter().map(|&i| {
        let outcome = match &outputs[i] {
            None | Some(Ok(Output::Skip)) => Outcome::Skipped,
            Some(Err(_)) => Outcome::Failed,
            Some(Ok(Output::Row(values))) => Outcome::Row {
                key: SyncKey::from_value(&values[key_idx]),
                hash: hash_row(prepared.seed, values),
            },
        };
        (samples[i].id.as_str(), outcome)
    });
    let entries = if saved {
        let sample_ids: Vec<String> = order.iter().map(|&i| samples[i].id.clone()).collect();
        state.meta.sync_get(&rec.id, &sample_ids).await?
    } else {
        Vec::new()
    };
    let mut decision = decide(page, entries, prepared.key_is_profile_id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let keys = decision.keys_to_check();
    if saved && !keys.is_empty() {
        let owners = state.meta.sync_owners(&rec.id, &keys).await?;
        decision.arbitrate(&owners);
    }
    let verdicts: HashMap<&str, &Verdict> = order
        .iter()
        .enumerate()
        .map(|(n, &i)| (samples[i].id.as_str(), &decision.verdicts[n]))
        .collect();

    let columns = prepared.transform.columns();
    let mut out = Vec::with_capacity(samples.len());
    for (p, output) in samples.iter().zip(outputs) {
        let mut sample =
            json!({"profile": p.to_json(), "row": null, "action": "skip", "error": null});
        match output {
            None => {
                sample["reason"] = json!("the profile does not match the filter");
            }
            Some(Err(e)) => {
                sample["error"] = json!(e.to_string());
            }
            Some(Ok(Output::Skip)) => {
                sample["reason"] = json!("the transformation returned null for this profile");
            }
            Some(Ok(Output::Row(values))) => {
                let row: Map<String, Json_> = columns
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| (c.clone(), v.to_json()))
                    .collect();
                sample["row"] = Json_::Object(row);
                let verdict = verdicts.get(p.id.as_str()).copied();
                match verdict {
                    Some(Verdict::Unchanged) => sample["action"] = json!("unchanged"),
                    Some(Verdict::Write { update: true, .. }) => sample["action"] = json!("update"),
                    Some(Verdict::Write { update: false, .. }) => {
                        sample["action"] = json!("insert")
                    }
                    Some(v) => {
                        sample["error"] = json!(v.failure(prepared.target.key_column()));
                    }
                    None => {}
                }
            }
        }
        out.push(sample);
    }
    Ok(Json(PreviewAnswer {
        columns: columns.to_vec(),
        samples: out,
    }))
}
