//! `/v1/workspace`: the whole configuration at once, as the workspace files (`sluice apply`, `plan`,
//! `export`) describe it.
//!
//! `POST /v1/workspace/apply` takes a workspace — the files merged, with every secret already read from
//! where the files point (the CLI does that, on the operator's machine) — and makes the catalog match it
//! all at once or not at all: every object is checked first, each pipeline against the live table through
//! the engine's one check (run against the connections and the Customer Model about to be saved, so a
//! pipeline may name a connection created by the same workspace), and only when everything passes is the
//! catalog written, in one metadata-store transaction ([`sluice_store::Catalog::apply_changes`]). With
//! `dry_run` it answers what it would do and writes nothing: that is `sluice plan`.
//!
//! The same document is the request body and the file format (connections and pipelines keyed by name,
//! pipelines naming their connection), so an error's field path here (`pipelines.Subscribed.filter…`) is
//! the path in the files, and [`check_offline`] — what `sluice validate` runs without a server — is the
//! first step of every apply: the two can never disagree.
//!
//! `GET /v1/workspace` answers the current workspace in that form, each secret replaced by the
//! environment variable `sluice export` names for it.
//!
//! Source pipelines are part of it (`sources`, keyed by name, naming their connection like pipelines
//! do): each new or re-reading source is checked against its live table or query with the connection
//! and the model about to be saved, and a source that reads something else than before forgets its
//! mark in the same transaction, as saving it through `/v1/sources` does.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::{Extension, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json_};
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::source::SourceSpec;
use sluice_core::{FieldErrors, Schema};
use sluice_store::{
    AuditEntry, CatalogChanges, DestinationRecord, PipelineRecord, SourceRecord, StoreError,
    SECRET_FIELDS,
};
use utoipa::ToSchema;

use crate::access::Principal;
use crate::destinations::MASK;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::Body;
use crate::openapi::{
    DestinationFailed, Internal, Invalid, Malformed, NotJson, TooLarge, Unauthorized,
};
use crate::AppState;

/// The only version of the format so far.
pub const VERSION: i64 = 1;

/// Top-level keys of a workspace.
pub const SECTIONS: [&str; 5] = [
    "version",
    "customer_model",
    "connections",
    "pipelines",
    "sources",
];

/// A connection as the workspace describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionDef {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    settings: Map<String, Json_>,
}

/// A workspace that passed every check needing neither the store nor a database.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// `None`: the files do not describe the Customer Model, which stays as it is.
    pub model: Option<Schema>,
    /// Name → (kind, settings), in the order written.
    pub connections: Vec<(String, String, Json_)>,
    /// Each pipeline's spec, its `destination` holding the connection's name.
    pub pipelines: Vec<PipelineSpec>,
    /// Each source's spec, its `connection` holding the connection's name.
    pub sources: Vec<SourceSpec>,
}

/// The errors of an [`ApiError`] as field errors; one without fields lands at `at`.
fn fields_of(e: ApiError, at: &str) -> FieldErrors {
    match e.fields {
        Some(f) => f,
        None => {
            let mut f = FieldErrors::new();
            f.add(at, e.message);
            f
        }
    }
}

/// Checks a workspace document with the API's own rules for each object, reporting every problem at
/// once by its path in the document.
pub fn check_offline(doc: &Json_) -> Result<Desired, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(top) = doc.as_object() else {
        errors.add(
            "",
            "a workspace is a mapping of `version`, `customer_model`, `connections`, `pipelines`, `sources`",
        );
        return Err(errors);
    };
    for key in top.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            errors.add(
                key.as_str(),
                format!(
                    "unknown section `{key}`; a workspace has {}",
                    SECTIONS.map(|s| format!("`{s}`")).join(", ")
                ),
            );
        }
    }
    match top.get("version") {
        Some(v) if v.as_i64() == Some(VERSION) => {}
        Some(v) => errors.add(
            "version",
            format!("version {v} is not known; this Sluice reads version {VERSION}"),
        ),
        None => errors.add(
            "version",
            format!("say which format this is: `version: {VERSION}`"),
        ),
    }
    let model = match top.get("customer_model") {
        None | Some(Json_::Null) => None,
        Some(wire) => match crate::json::parse::<SchemaWire>(wire.to_string().as_bytes()) {
            Ok(wire) => match Schema::from_wire(&wire) {
                Ok(s) => Some(s),
                Err(e) => {
                    errors.merge_prefixed("customer_model", e);
                    None
                }
            },
            Err(e) => {
                errors.merge_prefixed("customer_model", fields_of(e, ""));
                None
            }
        },
    };

    let mut connections = Vec::new();
    for (name, value) in section(top, "connections", &mut errors) {
        let at = format!("connections.{name}");
        match crate::json::parse::<ConnectionDef>(value.to_string().as_bytes()) {
            Ok(def) => {
                let settings = Json_::Object(def.settings);
                match crate::destinations::validate(&def.kind, name, &settings) {
                    Ok(()) => connections.push((name.clone(), def.kind, settings)),
                    Err(e) => errors.merge_prefixed(&at, fields_of(e, "")),
                }
            }
            Err(e) => errors.merge_prefixed(&at, fields_of(e, "")),
        }
    }
    let names: HashSet<&str> = section(top, "connections", &mut FieldErrors::new())
        .map(|(n, _)| n.as_str())
        .collect();

    let mut pipelines = Vec::new();
    for (name, value) in section(top, "pipelines", &mut errors) {
        let at = format!("pipelines.{name}");
        match pipeline_spec(name, value, &names, model.as_ref()) {
            Ok(spec) => pipelines.push(spec),
            Err(e) => errors.merge_prefixed(&at, e),
        }
    }
    let mut sources = Vec::new();
    for (name, value) in section(top, "sources", &mut errors) {
        match source_spec(name, value, &names) {
            Ok(spec) => sources.push(spec),
            Err(e) => errors.merge_prefixed(&format!("sources.{name}"), e),
        }
    }
    errors.into_result(Desired {
        model,
        connections,
        pipelines,
        sources,
    })
}

/// One source of the document as the API's source spec, with the API's checks that need no database;
/// `connection` holds the connection's name.
fn source_spec(
    name: &str,
    value: &Json_,
    connections: &HashSet<&str>,
) -> Result<SourceSpec, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(obj) = value.as_object() else {
        errors.add("", "a source is a mapping of its settings");
        return Err(errors);
    };
    let mut obj = obj.clone();
    if obj.shift_remove("name").is_some() {
        errors.add(
            "name",
            "a source's name is its key under `sources`; remove this field",
        );
    }
    match obj.get("connection") {
        Some(Json_::String(c)) if connections.contains(c.as_str()) => {}
        Some(Json_::String(c)) => errors.add(
            "connection",
            format!("connection `{c}` is not described under `connections`"),
        ),
        Some(_) => errors.add("connection", "the name of a connection under `connections`"),
        None => errors.add("connection", "say which connection the source reads"),
    }
    obj.insert("name".into(), Json_::String(name.to_string()));
    let spec = match crate::json::parse::<SourceSpec>(Json_::Object(obj).to_string().as_bytes()) {
        Ok(spec) => spec,
        Err(e) => {
            for (path, message) in fields_of(e, "").iter() {
                // serde lists the spec's fields, `name` among them; a workspace source has none.
                errors.add(path, message.replace("`name`, ", ""));
            }
            return Err(errors);
        }
    };
    if let Err(e) = spec.check() {
        for (path, message) in e.iter() {
            // The connection was reported above, by name.
            if path != "connection" || errors.get("connection").is_none() {
                errors.add(path, message);
            }
        }
    }
    if let Some(Err((field, message))) = spec
        .schedule
        .as_ref()
        .map(|s| s.compile_for(sluice_core::pipeline::Scheduled::Source))
    {
        if errors.get(field).is_none() {
            errors.add(field, message);
        }
    }
    errors.into_result(spec)
}

/// The entries of a section that is a mapping of names (an absent or empty one has none).
fn section<'a>(
    top: &'a Map<String, Json_>,
    key: &str,
    errors: &mut FieldErrors,
) -> impl Iterator<Item = (&'a String, &'a Json_)> {
    let entries = match top.get(key) {
        None | Some(Json_::Null) => None,
        Some(Json_::Object(m)) => Some(m),
        Some(_) => {
            errors.add(
                key,
                format!("`{key}` is a mapping of names to their settings"),
            );
            None
        }
    };
    entries.into_iter().flatten()
}

/// One pipeline of the document as the API's pipeline spec, with the API's checks of its shape and
/// filter; `destination` holds the connection's name.
fn pipeline_spec(
    name: &str,
    value: &Json_,
    connections: &HashSet<&str>,
    model: Option<&Schema>,
) -> Result<PipelineSpec, FieldErrors> {
    let mut errors = FieldErrors::new();
    let Some(obj) = value.as_object() else {
        errors.add("", "a pipeline is a mapping of its settings");
        return Err(errors);
    };
    let mut obj = obj.clone();
    if obj.shift_remove("name").is_some() {
        errors.add(
            "name",
            "a pipeline's name is its key under `pipelines`; remove this field",
        );
    }
    if obj.shift_remove("destination").is_some() {
        errors.add(
            "destination",
            "name the pipeline's connection with `connection`",
        );
    }
    let connection = match obj.shift_remove("connection") {
        Some(Json_::String(c)) if connections.contains(c.as_str()) => c,
        Some(Json_::String(c)) => {
            errors.add(
                "connection",
                format!("connection `{c}` is not described under `connections`"),
            );
            c
        }
        Some(_) => {
            errors.add("connection", "the name of a connection under `connections`");
            String::new()
        }
        None => {
            errors.add("connection", "say which connection the pipeline writes to");
            String::new()
        }
    };
    obj.insert("name".into(), Json_::String(name.to_string()));
    obj.insert("destination".into(), Json_::String(connection));
    let spec = match crate::json::parse::<PipelineSpec>(Json_::Object(obj).to_string().as_bytes()) {
        Ok(spec) => spec,
        Err(e) => {
            for (path, message) in fields_of(e, "").iter() {
                // serde lists the spec's fields; a workspace pipeline has `connection` in place of
                // `destination` and `name`.
                errors.add(
                    path,
                    message.replace("`destination`, `name`, ", "`connection`, "),
                );
            }
            return Err(errors);
        }
    };
    for (path, message) in spec.check_shape().iter() {
        // The spec's `destination` is the workspace's `connection`.
        let path = if path == "destination" {
            "connection"
        } else {
            path
        };
        errors.add(path, message);
    }
    if let Some(model) = model {
        if let Err(e) = sluice_engine::validate::check_filter(spec.filter.as_ref(), model) {
            errors.merge(e);
        }
    }
    errors.into_result(spec)
}

/// What applying would do, or did, to one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CustomerModel,
    Connection,
    Pipeline,
    Source,
}

/// One field that differs; `null` on a side where the field is absent. Secrets and webhook URLs are
/// shown as `********`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    pub path: String,
    pub before: Json_,
    pub after: Json_,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub action: Action,
    pub kind: Kind,
    /// The object's name (`Customer Model` for the model).
    pub name: String,
    /// The object's id: the existing one, or the one it is created with.
    pub id: Option<String>,
    /// For an update, every field that differs; for a create or a delete, every field it has.
    pub fields: Vec<FieldChange>,
    /// For a pipeline: whether the rows it writes change (a new pipeline, or a new connection, table,
    /// key, filter, transformation or rule for leavers), which a dry run can count.
    pub rewrites_rows: bool,
    /// For a source: whether it forgets its mark (it reads another connection, table, query, id
    /// column, or finds changes another way), so that its next run reads everything.
    #[serde(default)]
    pub resets_mark: bool,
}

/// An object on the server that the files do not name: deleted with `prune`, else kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Kept {
    pub kind: Kind,
    pub name: String,
    pub id: String,
}

/// What an apply did, or (with `dry_run`) would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplyAnswer {
    /// Whether the catalog was written (false for a dry run and when nothing changes).
    pub applied: bool,
    pub changes: Vec<Change>,
    /// Objects the files do not name, left in place (without `prune`).
    pub kept: Vec<Kept>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// The workspace document (the format of `docs/WORKSPACE.md`), secrets given as values.
    #[schema(value_type = Object)]
    workspace: Json_,
    /// Delete the connections, pipelines and sources the workspace does not name.
    #[serde(default)]
    prune: bool,
    /// Check everything and answer what would change, writing nothing.
    #[serde(default)]
    dry_run: bool,
}

#[utoipa::path(
    post,
    path = "/workspace/apply",
    operation_id = "applyWorkspace",
    tag = "workspace",
    summary = "Make the workspace match a workspace document, all at once or not at all (or, with dry_run, say what that would change)",
    request_body = ApplyBody,
    responses(
        (status = 200, description = "OK", body = ApplyAnswer),
        Malformed,
        Unauthorized,
        (status = 409, body = ErrorBody, description = "two existing pipelines share a name the workspace uses (`NameAmbiguous`), or the catalog changed meanwhile"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn apply(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Body(body): Body<ApplyBody>,
) -> ApiResult<Json<ApplyAnswer>> {
    apply_document(
        &state,
        &principal,
        &body.workspace,
        body.prune,
        body.dry_run,
    )
    .await
    .map(Json)
}

/// Applies a workspace document (see the module documentation) as `principal`; `sluice serve
/// --workspace` calls it in-process at start.
pub async fn apply_document(
    state: &AppState,
    principal: &Principal,
    doc: &Json_,
    prune: bool,
    dry_run: bool,
) -> ApiResult<ApplyAnswer> {
    let desired = check_offline(doc).map_err(ApiError::invalid)?;
    let current = Current::load(state).await?;
    let plan = plan(&current, &desired, prune)?;
    check_live(state, &current, &desired, &plan).await?;
    let mut answer = ApplyAnswer {
        applied: false,
        changes: plan.changes,
        kept: plan.kept,
    };
    if dry_run || plan.catalog.is_empty() {
        return Ok(answer);
    }
    state
        .meta
        .apply_changes(&plan.catalog)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) | StoreError::NotFound(m) => ApiError::conflict(
                "Conflict",
                format!("the workspace changed while it was applied, nothing was changed: {m}"),
            ),
            other => other.into(),
        })?;
    answer.applied = true;
    for id in &plan.moved {
        // The recorded keys point into the old table or column, as when a pipeline is saved.
        state.meta.sync_clear(id).await?;
    }
    for id in &plan.stopped {
        state.engine.stop_pipeline(id).await;
    }
    // Sources created or rescheduled, and pipelines now on `on_change`, are seen by the scheduler now.
    state.engine.wake_sources();
    state.engine.follow_changes_now();
    let entry = AuditEntry {
        seq: 0,
        at: Utc::now(),
        actor_id: principal.id.clone(),
        actor_name: principal.name.clone(),
        method: "POST".into(),
        route: "/v1/workspace/apply".into(),
        resource: None,
        status: 200,
        before: None,
        after: serde_json::to_value(&answer).ok().map(crate::audit::redact),
    };
    if let Err(e) = state.meta.append_audit(&entry).await {
        tracing::error!(error = %e, "could not write an audit entry");
    }
    tracing::info!(changes = answer.changes.len(), "workspace applied");
    Ok(answer)
}

/// The catalog as stored.
struct Current {
    model: Schema,
    destinations: Vec<DestinationRecord>,
    pipelines: Vec<PipelineRecord>,
    sources: Vec<SourceRecord>,
}

impl Current {
    async fn load(state: &AppState) -> ApiResult<Current> {
        Ok(Current {
            model: state.meta.get_schema().await?,
            destinations: state.meta.list_destinations().await?,
            pipelines: state.meta.list_pipelines(None).await?,
            sources: state.meta.list_sources().await?,
        })
    }

    fn destination_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.destinations
            .iter()
            .find(|d| d.id == id)
            .map_or(id, |d| d.name.as_str())
    }
}

/// The changes an apply makes, as the answer shows them and as the store writes them.
struct Plan {
    changes: Vec<Change>,
    kept: Vec<Kept>,
    catalog: CatalogChanges,
    /// Connection name → the record it will have.
    destinations: HashMap<String, DestinationRecord>,
    /// Pipelines whose rows must be checked against the live table: name → record as it will be.
    to_check: Vec<PipelineRecord>,
    /// Sources to check against their live table or query, as they will be.
    sources_to_check: Vec<SourceRecord>,
    /// Pipelines whose destination, table or key change: their sync state is cleared.
    moved: Vec<String>,
    /// Pipelines and sources deleted or disabled: their runs are stopped.
    stopped: Vec<String>,
}

/// Compares the stored catalog with the workspace. Pure: the plan is the same for the same inputs but
/// for the ids of new objects.
fn plan(current: &Current, desired: &Desired, prune: bool) -> ApiResult<Plan> {
    let now = Utc::now();
    let mut changes = Vec::new();
    let mut kept = Vec::new();
    let mut catalog = CatalogChanges::default();
    let mut errors = FieldErrors::new();

    let model_changed = match &desired.model {
        Some(model) if *model != current.model => {
            changes.push(Change {
                action: Action::Update,
                kind: Kind::CustomerModel,
                name: "Customer Model".into(),
                id: None,
                fields: diff(&model_view(&current.model), &model_view(model)),
                rewrites_rows: false,
                resets_mark: false,
            });
            catalog.schema = Some(model.clone());
            true
        }
        _ => false,
    };

    let mut destinations = HashMap::new();
    let mut changed_connections = HashSet::new();
    for (name, kind, settings) in &desired.connections {
        match current.destinations.iter().find(|d| d.name == *name) {
            Some(old) if old.kind != *kind => errors.add(
                format!("connections.{name}.type"),
                format!(
                    "a destination's type cannot change (it is {}); add a new destination instead",
                    old.kind
                ),
            ),
            Some(old) => {
                let mut rec = old.clone();
                if rec.settings != *settings {
                    rec.settings = settings.clone();
                    rec.updated_at = now;
                    changes.push(Change {
                        action: Action::Update,
                        kind: Kind::Connection,
                        name: name.clone(),
                        id: Some(rec.id.clone()),
                        fields: diff(&connection_view(old), &connection_view(&rec)),
                        rewrites_rows: false,
                        resets_mark: false,
                    });
                    changed_connections.insert(name.clone());
                    catalog.update_destinations.push(rec.clone());
                }
                destinations.insert(name.clone(), rec);
            }
            None => {
                let rec = DestinationRecord {
                    id: crate::new_id("dst"),
                    name: name.clone(),
                    kind: kind.clone(),
                    settings: settings.clone(),
                    created_at: now,
                    updated_at: now,
                };
                changes.push(Change {
                    action: Action::Create,
                    kind: Kind::Connection,
                    name: name.clone(),
                    id: Some(rec.id.clone()),
                    fields: diff(&Json_::Null, &connection_view(&rec)),
                    rewrites_rows: false,
                    resets_mark: false,
                });
                changed_connections.insert(name.clone());
                catalog.insert_destinations.push(rec.clone());
                destinations.insert(name.clone(), rec);
            }
        }
    }

    let mut to_check = Vec::new();
    let mut moved = Vec::new();
    let mut stopped = Vec::new();
    let mut named = HashSet::new();
    for wanted in &desired.pipelines {
        let Some(dest) = destinations.get(&wanted.destination) else {
            // Its connection failed a check above, which is reported.
            continue;
        };
        let mut spec = wanted.clone();
        spec.destination = dest.id.clone();
        let same_name: Vec<&PipelineRecord> = current
            .pipelines
            .iter()
            .filter(|p| p.spec.name == spec.name)
            .collect();
        match same_name.as_slice() {
            [] => {
                let rec = PipelineRecord {
                    id: crate::new_id("pl"),
                    spec,
                    created_at: now,
                    updated_at: now,
                };
                changes.push(Change {
                    action: Action::Create,
                    kind: Kind::Pipeline,
                    name: rec.spec.name.clone(),
                    id: Some(rec.id.clone()),
                    fields: diff(&Json_::Null, &pipeline_view(&rec.spec, &dest.name)),
                    rewrites_rows: true,
                    resets_mark: false,
                });
                to_check.push(rec.clone());
                catalog.insert_pipelines.push(rec);
            }
            [old] => {
                named.insert(old.id.clone());
                let writes_alike = old.spec.writes_like(&spec);
                if !writes_alike || model_changed || changed_connections.contains(&dest.name) {
                    let mut rec = (*old).clone();
                    rec.spec = spec.clone();
                    to_check.push(rec);
                }
                if old.spec != spec {
                    let before =
                        pipeline_view(&old.spec, current.destination_name(&old.spec.destination));
                    changes.push(Change {
                        action: Action::Update,
                        kind: Kind::Pipeline,
                        name: spec.name.clone(),
                        id: Some(old.id.clone()),
                        fields: diff(&before, &pipeline_view(&spec, &dest.name)),
                        rewrites_rows: !writes_alike,
                        resets_mark: false,
                    });
                    if old.spec.destination != spec.destination
                        || old.spec.table != spec.table
                        || old.spec.key != spec.key
                    {
                        moved.push(old.id.clone());
                    }
                    if old.spec.enabled && !spec.enabled {
                        stopped.push(old.id.clone());
                    }
                    let mut rec = (*old).clone();
                    rec.spec = spec;
                    rec.updated_at = now;
                    catalog.update_pipelines.push(rec);
                }
            }
            several => {
                return Err(ApiError::conflict(
                    "NameAmbiguous",
                    format!(
                        "{} pipelines are named `{}` ({}); rename all but one before applying a workspace, which names pipelines uniquely",
                        several.len(),
                        wanted.name,
                        several.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    let mut sources_to_check = Vec::new();
    let mut named_sources = HashSet::new();
    for wanted in &desired.sources {
        let Some(dest) = destinations.get(&wanted.connection) else {
            continue;
        };
        let mut spec = wanted.clone();
        spec.connection = dest.id.clone();
        match current.sources.iter().find(|s| s.spec.name == spec.name) {
            None => {
                let rec = SourceRecord {
                    id: crate::new_id("src"),
                    spec,
                    created_at: now,
                    updated_at: now,
                };
                changes.push(Change {
                    action: Action::Create,
                    kind: Kind::Source,
                    name: rec.spec.name.clone(),
                    id: Some(rec.id.clone()),
                    fields: diff(&Json_::Null, &source_view(&rec.spec, &dest.name)),
                    rewrites_rows: false,
                    resets_mark: false,
                });
                sources_to_check.push(rec.clone());
                catalog.insert_sources.push(rec);
            }
            Some(old) => {
                named_sources.insert(old.id.clone());
                let mut rec = old.clone();
                rec.spec = spec.clone();
                rec.updated_at = now;
                // Name, description, `enabled` and schedule change without reading anything; the
                // rest is checked live, as `PUT /v1/sources/{id}` does.
                let same_reading = SourceSpec {
                    name: old.spec.name.clone(),
                    description: old.spec.description.clone(),
                    enabled: old.spec.enabled,
                    schedule: old.spec.schedule.clone(),
                    ..spec.clone()
                } == old.spec;
                if !same_reading || model_changed || changed_connections.contains(&dest.name) {
                    sources_to_check.push(rec.clone());
                }
                if old.spec != spec {
                    let elsewhere = old.spec.connection != spec.connection
                        || old.spec.table != spec.table
                        || old.spec.query != spec.query
                        || old.spec.id_column != spec.id_column
                        || old.spec.changes != spec.changes;
                    changes.push(Change {
                        action: Action::Update,
                        kind: Kind::Source,
                        name: spec.name.clone(),
                        id: Some(old.id.clone()),
                        fields: diff(
                            &source_view(&old.spec, current.destination_name(&old.spec.connection)),
                            &source_view(&spec, &dest.name),
                        ),
                        rewrites_rows: false,
                        resets_mark: elsewhere,
                    });
                    if elsewhere {
                        catalog.forget_source_marks.push(old.id.clone());
                    }
                    if old.spec.enabled && !spec.enabled {
                        stopped.push(old.id.clone());
                    }
                    catalog.update_sources.push(rec);
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    for old in &current.sources {
        if named_sources.contains(&old.id) {
            continue;
        }
        if prune {
            changes.push(Change {
                action: Action::Delete,
                kind: Kind::Source,
                name: old.spec.name.clone(),
                id: Some(old.id.clone()),
                fields: diff(
                    &source_view(&old.spec, current.destination_name(&old.spec.connection)),
                    &Json_::Null,
                ),
                rewrites_rows: false,
                resets_mark: false,
            });
            catalog.delete_sources.push(old.id.clone());
            stopped.push(old.id.clone());
        } else {
            // A source the files keep without naming still writes into the new model: it must
            // still compile against it, as those the files name are checked.
            if model_changed {
                sources_to_check.push(old.clone());
            }
            kept.push(Kept {
                kind: Kind::Source,
                name: old.spec.name.clone(),
                id: old.id.clone(),
            });
        }
    }

    for old in &current.pipelines {
        if named.contains(&old.id) {
            continue;
        }
        if prune {
            changes.push(Change {
                action: Action::Delete,
                kind: Kind::Pipeline,
                name: old.spec.name.clone(),
                id: Some(old.id.clone()),
                fields: diff(
                    &pipeline_view(&old.spec, current.destination_name(&old.spec.destination)),
                    &Json_::Null,
                ),
                rewrites_rows: false,
                resets_mark: false,
            });
            catalog.delete_pipelines.push(old.id.clone());
            stopped.push(old.id.clone());
        } else {
            kept.push(Kept {
                kind: Kind::Pipeline,
                name: old.spec.name.clone(),
                id: old.id.clone(),
            });
        }
    }
    for old in &current.destinations {
        if desired.connections.iter().any(|(n, _, _)| *n == old.name) {
            continue;
        }
        if prune {
            // Without `prune` nothing is deleted; with it, a source the files do not name goes too,
            // so only a source named in the files could still read the connection, and the files
            // must describe the connection it names. Checked anyway: deleting the connection of a
            // source that stays would fail in the store, after the plan said it would work.
            let readers: Vec<&str> = current
                .sources
                .iter()
                .filter(|s| s.spec.connection == old.id && named_sources.contains(&s.id))
                .map(|s| s.spec.name.as_str())
                .collect();
            if !readers.is_empty() {
                return Err(ApiError::conflict(
                    "InUse",
                    format!(
                        "connection `{}` is read by source(s) {} that the workspace keeps; it cannot be deleted",
                        old.name,
                        readers.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            changes.push(Change {
                action: Action::Delete,
                kind: Kind::Connection,
                name: old.name.clone(),
                id: Some(old.id.clone()),
                fields: diff(&connection_view(old), &Json_::Null),
                rewrites_rows: false,
                resets_mark: false,
            });
            catalog.delete_destinations.push(old.id.clone());
        } else {
            kept.push(Kept {
                kind: Kind::Connection,
                name: old.name.clone(),
                id: old.id.clone(),
            });
        }
    }
    Ok(Plan {
        changes,
        kept,
        catalog,
        destinations,
        to_check,
        sources_to_check,
        moved,
        stopped,
    })
}

/// Checks every new or changed pipeline against its live table, with the connections and the model as
/// they will be: all pipelines' problems at once, by their path in the workspace. A pipeline kept by a
/// connection that is going away, or a destination that fails, stops the apply before anything is
/// written.
async fn check_live(
    state: &AppState,
    current: &Current,
    desired: &Desired,
    plan: &Plan,
) -> ApiResult<()> {
    let model = desired
        .model
        .clone()
        .unwrap_or_else(|| current.model.clone());
    let limits = state.engine.config().script_limits;
    let mut errors = FieldErrors::new();
    for rec in &plan.to_check {
        let Some(dest) = plan
            .destinations
            .values()
            .find(|d| d.id == rec.spec.destination)
        else {
            continue;
        };
        let at = format!("pipelines.{}", rec.spec.name);
        match sluice_engine::check_pipeline_with(dest.clone(), model.clone(), &rec.spec, limits)
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind == sluice_engine::ErrorKind::Invalid => {
                let mut fields = FieldErrors::new();
                for (path, message) in e.fields.unwrap_or_default().iter() {
                    fields.add(
                        if path == "destination" {
                            "connection"
                        } else {
                            path
                        },
                        message,
                    );
                }
                if fields.is_empty() {
                    fields.add("", e.message);
                }
                errors.merge_prefixed(&at, fields);
            }
            Err(e) => {
                let mut e = ApiError::from(e);
                e.message = format!("pipeline `{}`: {}", rec.spec.name, e.message);
                return Err(e);
            }
        }
    }
    for rec in &plan.sources_to_check {
        let Some(dest) = plan
            .destinations
            .values()
            .find(|d| d.id == rec.spec.connection)
        else {
            continue;
        };
        let at = format!("sources.{}", rec.spec.name);
        match sluice_engine::source::check_source_with(
            dest.clone(),
            model.clone(),
            &rec.spec,
            limits,
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.kind == sluice_engine::ErrorKind::Invalid => {
                let mut fields = e.fields.unwrap_or_default();
                if fields.is_empty() {
                    fields.add("", e.message);
                }
                errors.merge_prefixed(&at, fields);
            }
            Err(e) => {
                let mut e = ApiError::from(e);
                e.message = format!("source `{}`: {}", rec.spec.name, e.message);
                return Err(e);
            }
        }
    }
    // A model change must not break the pipelines the workspace keeps without naming them (those it
    // names were checked above against the new model), nor leave stored values invalid: the checks of
    // `PUT /v1/profile-schema`, reported at the model's place in the files.
    if let Some(new_model) = desired.model.as_ref().filter(|m| **m != current.model) {
        let kept: Vec<PipelineRecord> = current
            .pipelines
            .iter()
            .filter(|p| {
                plan.kept
                    .iter()
                    .any(|k| k.kind == Kind::Pipeline && k.id == p.id)
            })
            .cloned()
            .collect();
        if let Err(e) =
            crate::schema::check_model_change(state, &current.model, new_model, &kept).await
        {
            match e.fields {
                Some(fields) => errors.merge_prefixed("customer_model", fields),
                None => return Err(e),
            }
        }
    }
    errors.into_result(()).map_err(ApiError::invalid)
}

/// The Customer Model with each level's properties keyed by name, so that a diff names the property.
fn model_view(model: &Schema) -> Json_ {
    fn level(props: &[sluice_core::schema::PropertyWire]) -> Json_ {
        let mut out = Map::new();
        for p in props {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.shift_remove("name");
                if let Some(nested) = &p.properties {
                    obj.insert("properties".into(), level(nested));
                }
            }
            out.insert(p.name.clone(), v);
        }
        Json_::Object(out)
    }
    json!({"properties": level(&model.to_wire().properties)})
}

fn connection_view(rec: &DestinationRecord) -> Json_ {
    let mut settings = rec.settings.clone();
    if let Some(obj) = settings.as_object_mut() {
        for f in SECRET_FIELDS {
            if let Some(v) = obj.get_mut(f) {
                *v = Json_::String(MASK.into());
            }
        }
    }
    json!({"type": rec.kind, "settings": settings})
}

/// A pipeline as the workspace writes it: named by its key, its connection by name.
fn pipeline_view(spec: &PipelineSpec, connection: &str) -> Json_ {
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.shift_remove("name");
        obj.shift_remove("destination");
        let mut out = Map::new();
        out.insert("connection".into(), Json_::String(connection.into()));
        out.extend(std::mem::take(obj));
        if let Some(w) = out.get_mut("alert_webhook") {
            if !w.is_null() {
                *w = Json_::String(MASK.into());
            }
        }
        return Json_::Object(out);
    }
    v
}

/// A source as the workspace writes it: named by its key, its connection by name.
fn source_view(spec: &SourceSpec, connection: &str) -> Json_ {
    let mut v = serde_json::to_value(spec).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.shift_remove("name");
        obj.shift_remove("connection");
        let mut out = Map::new();
        out.insert("connection".into(), Json_::String(connection.into()));
        out.extend(std::mem::take(obj));
        return Json_::Object(out);
    }
    v
}

/// Every leaf that differs between `before` and `after`, by path; objects are compared key by key, all
/// else whole. A secret compares by value but shows as `********` on both sides.
pub fn diff(before: &Json_, after: &Json_) -> Vec<FieldChange> {
    fn walk(path: &str, a: &Json_, b: &Json_, out: &mut Vec<FieldChange>) {
        match (a, b) {
            (Json_::Object(x), Json_::Object(y)) => {
                for (k, va) in x {
                    walk(
                        &sluice_core::errors::join_path(path, k),
                        va,
                        y.get(k).unwrap_or(&Json_::Null),
                        out,
                    );
                }
                for (k, vb) in y {
                    if !x.contains_key(k) {
                        walk(
                            &sluice_core::errors::join_path(path, k),
                            &Json_::Null,
                            vb,
                            out,
                        );
                    }
                }
            }
            (Json_::Object(x), Json_::Null) => {
                for (k, v) in x {
                    walk(
                        &sluice_core::errors::join_path(path, k),
                        v,
                        &Json_::Null,
                        out,
                    );
                }
            }
            (Json_::Null, Json_::Object(y)) => {
                for (k, v) in y {
                    walk(
                        &sluice_core::errors::join_path(path, k),
                        &Json_::Null,
                        v,
                        out,
                    );
                }
            }
            // A list that keeps its length is compared item by item (`filter.conditions[0].values`);
            // one that grows or shrinks, whole.
            (Json_::Array(x), Json_::Array(y)) if x.len() == y.len() => {
                for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), va, vb, out);
                }
            }
            _ if a != b => out.push(FieldChange {
                path: path.to_string(),
                before: a.clone(),
                after: b.clone(),
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

/// Where `sluice export` says a connection's secret is to be found: `SLUICE_<CONNECTION>_<FIELD>`, the
/// name upper-cased with every run of other characters made one `_`.
pub fn secret_variable(object: &str, field: &str) -> String {
    let mut out = String::from("SLUICE");
    for part in [object, field] {
        out.push('_');
        let mut gap = false;
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                if gap && !out.ends_with('_') {
                    out.push('_');
                }
                gap = false;
                out.push(c.to_ascii_uppercase());
            } else {
                gap = true;
            }
        }
    }
    out
}

/// The current workspace as a document, secrets and webhook URLs replaced by `{"env": VARIABLE}`.
#[derive(Serialize, ToSchema)]
pub struct WorkspaceDoc {
    #[schema(value_type = Object)]
    workspace: Json_,
}

#[utoipa::path(
    get,
    path = "/workspace",
    operation_id = "exportWorkspace",
    tag = "workspace",
    summary = "The current workspace as a workspace document (secrets named by environment variable, never given)",
    responses((status = 200, description = "OK", body = WorkspaceDoc), Unauthorized, Internal),
)]
pub async fn export(State(state): State<AppState>) -> ApiResult<Json<WorkspaceDoc>> {
    let current = Current::load(&state).await?;
    Ok(Json(WorkspaceDoc {
        workspace: export_doc(&current),
    }))
}

fn export_doc(current: &Current) -> Json_ {
    let mut connections = Map::new();
    for d in &current.destinations {
        let mut settings = d.settings.clone();
        if let Some(obj) = settings.as_object_mut() {
            for f in SECRET_FIELDS {
                if let Some(v) = obj.get_mut(f) {
                    if !v.is_null() {
                        *v = json!({"env": secret_variable(&d.name, f)});
                    }
                }
            }
        }
        connections.insert(
            d.name.clone(),
            json!({"type": d.kind, "settings": settings}),
        );
    }
    let mut pipelines = Map::new();
    for p in &current.pipelines {
        let mut v = pipeline_view(&p.spec, current.destination_name(&p.spec.destination));
        if p.spec.alert_webhook.is_some() {
            v["alert_webhook"] = json!({"env": secret_variable(&p.spec.name, "alert_webhook")});
        }
        pipelines.insert(p.spec.name.clone(), v);
    }
    let mut sources = Map::new();
    for s in &current.sources {
        sources.insert(
            s.spec.name.clone(),
            source_view(&s.spec, current.destination_name(&s.spec.connection)),
        );
    }
    let mut doc = Map::new();
    doc.insert("version".into(), json!(VERSION));
    doc.insert(
        "customer_model".into(),
        serde_json::to_value(current.model.to_wire()).unwrap_or_default(),
    );
    doc.insert("connections".into(), Json_::Object(connections));
    doc.insert("pipelines".into(), Json_::Object(pipelines));
    doc.insert("sources".into(), Json_::Object(sources));
    Json_::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Json_ {
        json!({
            "version": 1,
            "customer_model": {"properties": [{"name": "email", "type": "string"}, {"name": "country", "type": "string"}]},
            "connections": {"wh": {"type": "sqlite", "settings": {"path": "x.db"}}},
            "pipelines": {"P": {"connection": "wh", "table": "t", "key": "id",
                "transformation": {"mapping": {"id": "_id"}},
                "filter": {"logical": "and", "conditions": [{"property": "country", "operator": "is one of", "values": ["IT"]}]}}},
            "sources": {"CRM": {"connection": "wh", "table": "customers", "id_column": "id",
                "transformation": {"mapping": {"email": "email"}},
                "changes": {"mode": "cursor", "column": "updated_at"}, "schedule": "1h"}}
        })
    }

    #[test]
    fn a_good_document_passes() {
        let d = check_offline(&doc()).unwrap();
        assert_eq!(d.pipelines[0].name, "P");
        assert_eq!(d.pipelines[0].destination, "wh");
        assert_eq!(d.connections[0].0, "wh");
        assert_eq!(d.sources[0].name, "CRM");
        assert_eq!(d.sources[0].connection, "wh");
    }

    #[test]
    fn a_source_is_checked_by_its_path_in_the_document() {
        let mut d = doc();
        d["sources"]["CRM"]["schedule"] = json!("on_change");
        d["sources"]["CRM"]["query"] = json!("SELECT 1");
        d["sources"]["Gone"] = json!({"connection": "nowhere", "table": "t", "id_column": "id",
            "transformation": {"mapping": {"email": "email"}},
            "changes": {"mode": "full"}, "name": "x"});
        d["sources"]["Odd"] = json!({"connection": "wh", "table": "t", "id_column": "id",
            "transformation": {"mapping": {"email": "email"}},
            "changes": {"mode": "full"}, "bogus": 1});
        let e = check_offline(&d).unwrap_err();
        for path in [
            "sources.CRM.schedule",
            "sources.CRM.query",
            "sources.Gone.connection",
            "sources.Gone.name",
            "sources.Odd.bogus",
        ] {
            assert!(e.get(path).is_some(), "{path} missing from {e:?}");
        }
        assert!(e.get("sources.CRM.schedule").unwrap()[0].contains("export pipelines"));
    }

    #[test]
    fn short_intervals_are_for_sources_and_named_when_wrong() {
        let mut d = doc();
        d["sources"]["CRM"]["schedule"] = json!("5s");
        check_offline(&d).unwrap();
        d["sources"]["CRM"]["schedule"] = json!("7s");
        d["pipelines"]["P"]["schedule"] = json!("5s");
        let e = check_offline(&d).unwrap_err();
        let source = &e.get("sources.CRM.schedule").unwrap()[0];
        assert!(
            source.contains("`7s`") && source.contains("5s, 10s, 15s, 30s, 1m, 2m, 5m"),
            "{source}"
        );
        let pipeline = &e.get("pipelines.P.schedule").unwrap()[0];
        assert!(
            pipeline.contains("`5s` is for source pipelines") && pipeline.contains("on_change"),
            "{pipeline}"
        );
    }

    #[test]
    fn every_problem_is_named_by_its_path_in_the_document() {
        let mut d = doc();
        d["version"] = json!(2);
        d["extra"] = json!(1);
        d["connections"]["wh"]["type"] = json!("oracle");
        d["pipelines"]["P"]["connection"] = json!("nowhere");
        d["pipelines"]["P"]["schedule"] = json!("7m");
        d["pipelines"]["P"]["filter"]["conditions"][0]["property"] = json!("nope");
        d["pipelines"]["Q"] = json!({"connection": "wh", "table": "t", "key": "id",
            "transformation": {"mapping": {"id": "_id"}}, "bogus": true});
        let e = check_offline(&d).unwrap_err();
        for path in [
            "version",
            "extra",
            "connections.wh.type",
            "pipelines.P.connection",
            "pipelines.P.schedule",
            "pipelines.P.filter.conditions[0].property",
            "pipelines.Q.bogus",
        ] {
            assert!(e.get(path).is_some(), "{path} missing from {e:?}");
        }
    }

    #[test]
    fn diff_names_leaves_and_masks_nothing_itself() {
        let a = json!({"a": 1, "b": {"c": 2, "d": [1]}});
        let b = json!({"a": 1, "b": {"c": 3, "e": true}});
        let d = diff(&a, &b);
        let paths: Vec<&str> = d.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["b.c", "b.d", "b.e"]);
        let lists = diff(
            &json!({"l": [{"v": ["IT"]}, 2]}),
            &json!({"l": [{"v": ["IT", "FR"]}, 2]}),
        );
        assert_eq!(lists[0].path, "l[0].v");
        assert_eq!(lists.len(), 1);
        assert_eq!(d[1].after, Json_::Null);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn secret_variables_are_plain_names() {
        assert_eq!(
            secret_variable("Warehouse replica", "password"),
            "SLUICE_WAREHOUSE_REPLICA_PASSWORD"
        );
        assert_eq!(
            secret_variable("a--b", "private_key"),
            "SLUICE_A_B_PRIVATE_KEY"
        );
    }
}
