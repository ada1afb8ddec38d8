//! The REST API of Sluice under `/v1` (see `shared/API.md` for the contract), `/metrics`, and the embedded
//! admin UI at `/`.
//!
//! [`router`] builds the whole HTTP surface from an [`AppState`], so tests drive it without a socket. Every
//! failure becomes an [`error::ApiError`]: JSON with a machine-readable code and, for invalid input, every
//! offending field. Handlers are thin: validation lives in `sluice_core`/`sluice_engine`, I/O in the stores
//! and destinations.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use sluice_engine::Engine;
use sluice_store::{MetadataStore, ProfileStore};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod access;
mod audit;
mod connections;
mod destinations;
mod dry_runs;
pub mod error;
mod filters;
mod inspect;
pub mod json;
mod lineage;
mod metrics;
mod openapi;
mod pipelines;
mod profiles;
pub mod query;
mod runs;
mod schema;
mod security;
mod sources;
mod tokens;
mod ui;
pub mod workspace;

pub use error::{ApiError, ApiResult};

/// How many bytes a request body may have. A body over its route's limit is answered 413 before it is
/// read past the limit: a `Content-Length` over it is refused before anything is read, and a body
/// streamed without one is counted as it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// Every route but the one below: specs, settings and scripts are small.
    pub default: usize,
    /// `POST /v1/profiles`: a batch of up to 50,000 profiles.
    pub profiles: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            default: 1 << 20,
            profiles: 64 << 20,
        }
    }
}

/// The limit that applied to a request, for the 413's message (set by [`limit_body`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub usize);

#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetadataStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub engine: Engine,
    /// The configured admin token; API tokens (`/v1/tokens`) are in the metadata store.
    pub token: Arc<str>,
    pub(crate) metrics: Arc<metrics::Memory>,
    /// Whether `/metrics` asks for a token (any role); off by default.
    pub metrics_token_required: bool,
    /// Whether requests must name a loopback host (`localhost`, `127.0.0.1`, `[::1]`): on when listening
    /// on a loopback address, against DNS rebinding.
    pub loopback_hosts_only: bool,
    /// Request body limits per route.
    pub body_limits: BodyLimits,
}

impl AppState {
    pub fn new(engine: Engine, token: impl Into<Arc<str>>) -> Self {
        Self {
            meta: engine.meta().clone(),
            profiles: engine.profiles().clone(),
            engine,
            token: token.into(),
            metrics: Arc::default(),
            metrics_token_required: false,
            loopback_hosts_only: false,
            body_limits: BodyLimits::default(),
        }
    }

    /// Makes `/metrics` ask for a token (any role).
    pub fn with_metrics_token_required(mut self, required: bool) -> Self {
        self.metrics_token_required = required;
        self
    }

    /// Refuses requests naming a host other than a loopback one; for servers listening on loopback.
    pub fn with_loopback_hosts_only(mut self, only: bool) -> Self {
        self.loopback_hosts_only = only;
        self
    }

    /// The state with other body limits than the defaults.
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        self.body_limits = limits;
        self
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected = protected_routes().layer(middleware::from_fn_with_state(
        state.clone(),
        access::require_token,
    ));
    let (router, _) = assemble(protected).split_for_parts();
    router
        .fallback(ui::serve)
        // `limit_body` bounds every body itself, per route; axum's single limit would only get in the way.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn(error::json_refusals))
        .layer(middleware::from_fn_with_state(
            state.body_limits,
            limit_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::check_host,
        ))
        .layer(middleware::from_fn(security::headers))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Every route with its description, as the OpenAPI document shows them.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    assemble(protected_routes())
}

/// The routes under `/v1` that need a token, each with the least role each of its methods needs and
/// whether it changes something (changes are audited; see `access`). The router and the OpenAPI
/// document are both built from this list (each handler's `#[utoipa::path]` gives its method and path),
/// so a route cannot be served without being described, nor without a role.
///
/// Editors change pipelines, runs, profiles and the Customer Model (profiles cannot be imported without
/// it, and it holds no secret); destinations (where secrets go) and tokens are the admin's. Testing a
/// saved destination with its stored settings is an editor's read; testing it with edited settings is
/// refused to non-admins by the handler, since those may send the stored secret elsewhere.
fn protected_routes() -> OpenApiRouter<AppState> {
    use access::{change, guard, read, Verb::*};
    use sluice_store::Role::{Admin, Editor, Viewer};
    OpenApiRouter::new()
        .routes(guard(
            &[read(Get, Viewer), change(Put, Editor)],
            routes!(schema::get_schema, schema::put_schema),
        ))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Editor)],
            routes!(profiles::list, profiles::upsert),
        ))
        .routes(guard(
            &[read(Get, Viewer), change(Delete, Editor)],
            routes!(profiles::get_one, profiles::delete),
        ))
        .routes(guard(
            &[read(Get, Viewer)],
            routes!(destinations::connectors),
        ))
        .routes(guard(&[read(Get, Viewer)], routes!(pipelines::functions)))
        .routes(guard(&[read(Get, Viewer)], routes!(filters::operators)))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Admin)],
            routes!(destinations::list, destinations::create),
        ))
        .routes(guard(
            &[read(Post, Admin)],
            routes!(destinations::test_unsaved),
        ))
        .routes(guard(
            &[read(Get, Viewer), change(Put, Admin), change(Delete, Admin)],
            routes!(
                destinations::get_one,
                destinations::update,
                destinations::delete
            ),
        ))
        .routes(guard(
            &[read(Post, Editor)],
            routes!(destinations::test_saved),
        ))
        .routes(guard(
            &[read(Get, Viewer)],
            routes!(destinations::describe_table),
        ))
        .routes(guard(
            &[read(Get, Viewer)],
            routes!(destinations::list_tables),
        ))
        .routes(guard(&[read(Get, Viewer)], routes!(lineage::lineage)))
        .routes(guard(&[read(Get, Viewer)], routes!(lineage::model_lineage)))
        .routes(guard(&[read(Get, Viewer)], routes!(connections::list)))
        .routes(guard(&[read(Get, Viewer)], routes!(connections::get_one)))
        // A query typed in runs with the connection's rights: an editor's, like a pipeline's preview.
        .routes(guard(&[read(Post, Editor)], routes!(inspect::inspect)))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Editor)],
            routes!(pipelines::list, pipelines::create),
        ))
        .routes(guard(&[read(Post, Editor)], routes!(pipelines::validate)))
        .routes(guard(
            &[read(Post, Editor)],
            routes!(pipelines::preview_unsaved),
        ))
        .routes(guard(
            &[
                read(Get, Viewer),
                change(Put, Editor),
                change(Patch, Editor),
                change(Delete, Editor),
            ],
            routes!(
                pipelines::get_one,
                pipelines::replace,
                pipelines::patch,
                pipelines::delete
            ),
        ))
        .routes(guard(
            &[read(Post, Editor)],
            routes!(pipelines::preview_saved),
        ))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Editor)],
            routes!(runs::list, runs::start),
        ))
        .routes(guard(&[read(Get, Viewer)], routes!(runs::get_one)))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Editor)],
            routes!(sources::list, sources::create),
        ))
        .routes(guard(&[read(Post, Editor)], routes!(sources::preview)))
        .routes(guard(
            &[
                read(Get, Viewer),
                change(Put, Editor),
                change(Patch, Editor),
                change(Delete, Editor),
            ],
            routes!(
                sources::get_one,
                sources::replace,
                sources::patch,
                sources::delete
            ),
        ))
        .routes(guard(
            &[read(Get, Viewer), change(Post, Editor)],
            routes!(sources::runs, sources::start),
        ))
        .routes(guard(&[read(Post, Editor)], routes!(dry_runs::start)))
        .routes(guard(&[change(Post, Editor)], routes!(runs::cancel)))
        .routes(guard(
            &[read(Get, Admin), change(Post, Admin)],
            routes!(tokens::list, tokens::create),
        ))
        .routes(guard(&[change(Delete, Admin)], routes!(tokens::revoke)))
        .routes(guard(&[read(Get, Viewer)], routes!(tokens::me)))
        .routes(guard(&[read(Get, Admin)], routes!(audit::list)))
        // Applying writes its own audit entry, and only when something changed: applying unchanged
        // files is a no-op, also in the log.
        .routes(guard(&[read(Get, Admin)], routes!(workspace::export)))
        .routes(guard(&[read(Post, Admin)], routes!(workspace::apply)))
        .routes(guard(&[read(Get, Viewer)], routes!(openapi::document)))
}

/// Adds to the `/v1` routes that need the token those that do not, and `/metrics`.
fn assemble(protected: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let v1 = protected
        .routes(routes!(health))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") });
    OpenApiRouter::new()
        .nest("/v1", v1)
        .routes(routes!(metrics::render))
}

/// Liveness and version.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    pub version: &'static str,
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "getHealth",
    tag = "meta",
    summary = "Liveness and version (no token needed)",
    security(()),
    responses((status = 200, description = "OK", body = Health)),
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Refuses a body whose `Content-Length` is over its route's limit, and bounds one sent without it.
async fn limit_body(State(limits): State<BodyLimits>, mut req: Request, next: Next) -> Response {
    let limit = if req.method() == axum::http::Method::POST && req.uri().path() == "/v1/profiles" {
        limits.profiles
    } else {
        limits.default
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return error::too_large(limit).into_response();
    }
    req.extensions_mut().insert(BodyLimit(limit));
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// The OpenAPI document `/v1/openapi.json` serves; its schemas also describe the workspace files.
pub fn openapi_document() -> serde_json::Value {
    openapi::build()
}

/// Generates an id with a readable prefix.
pub(crate) fn new_id(prefix: &str) -> String {
    sluice_engine::new_id(prefix)
}
