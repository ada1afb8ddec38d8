//! `GET`/`PUT /v1/profile-schema`: the Customer Model, and refusing changes that would break a pipeline or
//! stored profiles.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use sluice_core::mapping::CompiledMapping;
use sluice_core::pipeline::{PipelineSpec, Transformation};
use sluice_core::schema::{normalize_value, SchemaChange, SchemaWire};
use sluice_core::{Column, ColumnType, FieldErrors, Schema, TableDescription};

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::Body;
use crate::openapi::{
    Internal, Invalid, Malformed, NotJson, ProfileSchemaDoc, TooLarge, Unauthorized,
};
use crate::AppState;

#[utoipa::path(
    get,
    path = "/profile-schema",
    operation_id = "getProfileSchema",
    tag = "profiles",
    summary = "The Customer Model",
    responses(
        (status = 200, description = "OK", body = ProfileSchemaDoc),
        Unauthorized,
        Internal,
    ),
)]
pub async fn get_schema(State(state): State<AppState>) -> ApiResult<Json<SchemaWire>> {
    Ok(Json(state.meta.get_schema().await?.to_wire()))
}

#[utoipa::path(
    put,
    path = "/profile-schema",
    operation_id = "putProfileSchema",
    tag = "profiles",
    summary = "Replace the Customer Model; changes that break a pipeline or stored data are refused",
    request_body = ProfileSchemaDoc,
    responses(
        (status = 200, description = "OK", body = ProfileSchemaDoc),
        Malformed,
        Unauthorized,
        (status = 409, body = ErrorBody, description = "the change would break a pipeline \
            (`SchemaChangeBreaksPipeline`) or values of stored profiles (`SchemaChangeBreaksData`); \
            `fields` names each property"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
    ),
)]
pub async fn put_schema(
    State(state): State<AppState>,
    Body(wire): Body<SchemaWire>,
) -> ApiResult<Json<SchemaWire>> {
    let new = Schema::from_wire(&wire).map_err(ApiError::invalid)?;
    let old = state.meta.get_schema().await?;
    let pipelines = state.meta.list_pipelines(None).await?;
    let changes = check_model_change(&state, &old, &new, &pipelines).await?;
    state.meta.put_schema(&new).await?;
    tracing::info!(changes = changes.len(), "Customer Model updated");
    Ok(Json(new.to_wire()))
}

/// Refuses a change of the Customer Model from `old` to `new` that would break one of `pipelines` (409
/// `SchemaChangeBreaksPipeline`) or leave stored values invalid under a new or changed type (409
/// `SchemaChangeBreaksData`), each problem at its property's field; answers the changes. Saving the model
/// and applying a workspace both ask it.
pub(crate) async fn check_model_change(
    state: &AppState,
    old: &Schema,
    new: &Schema,
    pipelines: &[sluice_store::PipelineRecord],
) -> ApiResult<Vec<SchemaChange>> {
    let changes = old.changes_to(new);
    let touched: Vec<&SchemaChange> = changes
        .iter()
        .filter(|c| !matches!(c, SchemaChange::Added { .. }))
        .collect();

    // Pipelines reading a removed or retyped property would break: name them.
    let mut conflicts = FieldErrors::new();
    if !touched.is_empty() {
        for p in pipelines {
            let used = pipeline_paths(&p.spec, old);
            for change in &touched {
                let path = change.path();
                let hit = used
                    .iter()
                    .any(|u| u == path || u.starts_with(&format!("{path}.")));
                if hit {
                    let what = match change {
                        SchemaChange::Removed { .. } => "removing".to_string(),
                        SchemaChange::TypeChanged { from, to, .. } => {
                            format!("changing the type ({from} → {to}) of")
                        }
                        SchemaChange::Added { .. } => unreachable!(),
                    };
                    conflicts.add(
                        path_field(new, path),
                        format!(
                            "{what} `{path}` would break pipeline `{}` ({}), which uses it",
                            p.spec.name, p.id
                        ),
                    );
                }
            }
        }
    }
    if !conflicts.is_empty() {
        let mut e = ApiError::invalid(conflicts);
        e.status = axum::http::StatusCode::CONFLICT;
        e.code = "SchemaChangeBreaksPipeline";
        return Err(e);
    }

    // Stored values must already be valid under a new or changed type, so that nothing is half-converted.
    let to_check: Vec<(String, sluice_core::PropertyType)> = changes
        .iter()
        .filter_map(|c| match c {
            SchemaChange::TypeChanged { path, to, .. } => Some((path.clone(), to.clone())),
            SchemaChange::Added { path, ty } => Some((path.clone(), ty.clone())),
            SchemaChange::Removed { .. } => None,
        })
        .collect();
    if !to_check.is_empty() {
        let bad = check_stored_values(state, &to_check).await?;
        if !bad.is_empty() {
            let mut fields = FieldErrors::new();
            for (path, (count, samples)) in bad {
                fields.add(
                    path_field(new, &path),
                    format!(
                        "{count} stored profile(s) have values at `{path}` that are not valid for the new type \
                         (for example {}); fix or remove those values first",
                        samples.join("; ")
                    ),
                );
            }
            let mut e = ApiError::invalid(fields);
            e.status = axum::http::StatusCode::CONFLICT;
            e.code = "SchemaChangeBreaksData";
            return Err(e);
        }
    }
    Ok(changes)
}

/// The property paths a pipeline reads, found by compiling its mapping against a stand-in table whose
/// columns accept any value (the real table is not needed to know what is read).
pub(crate) fn pipeline_paths(spec: &PipelineSpec, schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(Some(f)) = sluice_engine::validate::check_filter(spec.filter.as_ref(), schema) {
        out.extend(f.properties());
    }
    if let Transformation::Mapping(m) = &spec.transformation {
        let table = TableDescription {
            name: spec.table.clone(),
            columns: m
                .iter()
                .map(|(c, _)| Column {
                    name: c.to_string(),
                    native_type: "any".into(),
                    nullable: true,
                    ty: Some(ColumnType::Json),
                    has_default: false,
                })
                .collect(),
            keys: vec![],
            has_primary_key: false,
            issues: vec![],
            rules: Default::default(),
        };
        if let Ok(c) = CompiledMapping::compile(m, schema, &table) {
            out.extend(c.properties());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The field path of a property in the request (`properties[2].properties[0]`), or the dotted path when
/// it is no longer in the new model.
fn path_field(schema: &Schema, path: &str) -> String {
    let mut props = &schema.properties;
    let mut out = String::from("properties");
    for (depth, seg) in path.split('.').enumerate() {
        match props.iter().position(|p| p.name == seg) {
            Some(i) => {
                if depth > 0 {
                    out.push_str(".properties");
                }
                out.push_str(&format!("[{i}]"));
                if let sluice_core::PropertyType::Object(inner) = &props[i].ty {
                    props = inner;
                }
            }
            None => return format!("properties.{path}"),
        }
    }
    out
}

/// Scans every profile; for each path, counts values that are not already in the new type's normal form.
async fn check_stored_values(
    state: &AppState,
    paths: &[(String, sluice_core::PropertyType)],
) -> ApiResult<BTreeMap<String, (u64, Vec<String>)>> {
    let mut bad: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = state.profiles.page(None, after.as_deref(), 5_000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for p in &page {
            for (path, ty) in paths {
                let Some(v) = sluice_core::schema::get_path(&p.doc, path) else {
                    continue;
                };
                if v.is_null() {
                    continue;
                }
                let ok = matches!(normalize_value(ty, v, path), Ok(ref n) if n == v);
                if !ok {
                    let entry = bad.entry(path.clone()).or_default();
                    entry.0 += 1;
                    if entry.1.len() < 3 {
                        entry.1.push(format!("profile `{}` has {}", p.id, v));
                    }
                }
            }
        }
    }
    Ok(bad)
}
