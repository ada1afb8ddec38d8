//! `GET /v1/destinations/{id}/lineage`: for each export pipeline writing to a destination, the source
//! pipelines that feed the profile properties it reads; `GET /v1/profile-schema/sources`: which source
//! pipelines write each property of the Customer Model (`sluice_core::lineage` decides, from the specs
//! alone: nothing is read from any database).

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use sluice_core::lineage::{feeds, pipeline_reads, property_writers, source_writes};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::openapi::{Internal, NotFound, Unauthorized};
use crate::AppState;

/// A source feeding a pipeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineageSource {
    id: String,
    name: String,
    enabled: bool,
    /// The properties the source writes that the pipeline reads; `null` when a script (the source's or
    /// the pipeline's) makes that unknowable, so the source is listed because it may feed the pipeline.
    #[schema(required = true)]
    properties: Option<Vec<String>>,
}

/// One export pipeline of the destination and what feeds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineagePipeline {
    id: String,
    name: String,
    table: String,
    /// The Customer Model properties its filter and mapping read (system fields such as `_id` left
    /// out); `null` when its transformation is a script, which may read any property: then every
    /// source is listed.
    #[schema(required = true)]
    reads: Option<Vec<String>>,
    /// The sources that write what it reads, in the order they were created.
    sources: Vec<LineageSource>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Lineage {
    /// The destination's export pipelines, in the order they were created.
    pipelines: Vec<LineagePipeline>,
}

#[utoipa::path(
    get,
    path = "/destinations/{id}/lineage",
    operation_id = "getDestinationLineage",
    tag = "destinations",
    summary = "Which source pipelines feed the profiles each export pipeline of the destination reads",
    description = "For each export pipeline of the destination, the source pipelines writing a Customer Model \
        property its filter or mapping reads (or an object holding it, or a property inside it). A script \
        transformation may read or write any property: a pipeline with one lists every source (`reads` is \
        null), and a source with one is listed for every pipeline (its `properties` is null).",
    params(("id" = String, Path, description = "The destination's id")),
    responses((status = 200, description = "OK", body = Lineage), Unauthorized, NotFound, Internal),
)]
pub async fn lineage(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Lineage>> {
    if state.meta.get_destination(&id).await?.is_none() {
        return Err(ApiError::not_found("destination", &id));
    }
    let model = state.meta.get_schema().await?;
    let sources: Vec<_> = state
        .meta
        .list_sources()
        .await?
        .into_iter()
        .map(|s| {
            let writes = source_writes(&s.spec);
            (s, writes)
        })
        .collect();
    let pipelines = state
        .meta
        .list_pipelines(Some(&id))
        .await?
        .into_iter()
        .map(|p| {
            let reads = pipeline_reads(&p.spec, &model);
            let fed = sources
                .iter()
                .filter_map(|(s, writes)| {
                    feeds(writes, &reads).map(|properties| LineageSource {
                        id: s.id.clone(),
                        name: s.spec.name.clone(),
                        enabled: s.spec.enabled,
                        properties,
                    })
                })
                .collect();
            LineagePipeline {
                id: p.id,
                name: p.spec.name,
                table: p.spec.table,
                reads,
                sources: fed,
            }
        })
        .collect();
    Ok(Json(Lineage { pipelines }))
}

/// A source pipeline, as named in a lineage answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceRef {
    id: String,
    name: String,
    enabled: bool,
}

/// One property of the Customer Model and the sources whose mapping writes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PropertyWriters {
    /// The property's dotted path (`address.city`).
    path: String,
    /// The sources whose mapping writes it, an object holding it, or (for an object) a property
    /// inside it, in the order they were created; empty when only the API and imports write it.
    sources: Vec<SourceRef>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelLineage {
    /// Every property of the Customer Model (objects before their properties), built-in fields left out.
    properties: Vec<PropertyWriters>,
    /// Sources with a JavaScript or Python transformation: they may write any property, so they are
    /// listed here rather than under properties.
    scripted: Vec<SourceRef>,
}

#[utoipa::path(
    get,
    path = "/profile-schema/sources",
    operation_id = "getSchemaLineage",
    tag = "profiles",
    summary = "Which source pipelines write each property of the Customer Model",
    description = "For every property of the Customer Model, the source pipelines whose mapping writes it \
        (or an object holding it, or a property inside it). Several sources may write one property: each \
        run writes the values it read, so the source that last changed a profile sets it. Sources with a \
        script transformation may write any property and are listed apart under `scripted`.",
    responses((status = 200, description = "OK", body = ModelLineage), Unauthorized, Internal),
)]
pub async fn model_lineage(State(state): State<AppState>) -> ApiResult<Json<ModelLineage>> {
    let model = state.meta.get_schema().await?;
    let sources = state.meta.list_sources().await?;
    let refs: Vec<SourceRef> = sources
        .iter()
        .map(|s| SourceRef {
            id: s.id.clone(),
            name: s.spec.name.clone(),
            enabled: s.spec.enabled,
        })
        .collect();
    let writes: Vec<_> = sources.iter().map(|s| source_writes(&s.spec)).collect();
    let properties = property_writers(&model, &writes)
        .into_iter()
        .map(|(path, by)| PropertyWriters {
            path,
            sources: by.into_iter().map(|i| refs[i].clone()).collect(),
        })
        .collect();
    let scripted = refs
        .into_iter()
        .zip(&writes)
        .filter(|(_, w)| w.is_none())
        .map(|(r, _)| r)
        .collect();
    Ok(Json(ModelLineage {
        properties,
        scripted,
    }))
}
