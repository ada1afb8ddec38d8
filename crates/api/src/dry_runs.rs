//! Dry runs of pipeline definitions that are not saved (a change under review, a pipeline to be): what
//! the next run would insert, update, delete and leave, before anything is saved. A saved pipeline's
//! dry run starts at `POST /pipelines/{id}/runs` with `dry_run`; both are read at `GET /runs/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::FieldErrors;
use sluice_store::PipelineRecord;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::Body;
use crate::openapi::{
    DestinationFailed, DryRunInputDoc, Internal, Malformed, NotJson, TooLarge, TooManyDryRuns,
    Unauthorized,
};
use crate::runs::RunStarted;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunBody {
    pipeline: PipelineSpec,
    #[serde(default)]
    replaces: Option<String>,
}

#[utoipa::path(
    post,
    path = "/dry-runs",
    operation_id = "startDryRun",
    tag = "runs",
    summary = "Dry-run a pipeline definition that is not saved",
    request_body = DryRunInputDoc,
    responses(
        (status = 202, description = "started, or queued for a slot; read it at `GET /runs/{id}`", body = RunStarted),
        Malformed,
        Unauthorized,
        (status = 404, body = ErrorBody, description = "`replaces` names no pipeline"),
        NotJson,
        TooLarge,
        (status = 422, body = ErrorBody, description = "the definition is invalid (field paths under `pipeline`)"),
        TooManyDryRuns,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn start(
    State(state): State<AppState>,
    Body(body): Body<DryRunBody>,
) -> ApiResult<(StatusCode, Json<RunStarted>)> {
    let spec = body.pipeline;
    if let Err(mut e) = crate::pipelines::check_spec(&state, &spec).await {
        if let Some(fields) = e.fields.take() {
            let mut nested = FieldErrors::new();
            nested.merge_prefixed("pipeline", fields);
            e.fields = Some(nested);
        }
        return Err(e);
    }
    let now = Utc::now();
    let (rec, saved) = match body.replaces {
        Some(id) => {
            let Some(old) = state.meta.get_pipeline(&id).await? else {
                return Err(ApiError::not_found("pipeline", &id));
            };
            let rec = PipelineRecord {
                spec,
                updated_at: now,
                ..old
            };
            (rec, true)
        }
        None => {
            let rec = PipelineRecord {
                id: crate::new_id("pl"),
                spec,
                created_at: now,
                updated_at: now,
            };
            (rec, false)
        }
    };
    let run = state.engine.start_dry_run(rec, saved, "api").await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunStarted {
            id: run.id,
            status: run.status.as_str(),
        }),
    ))
}
