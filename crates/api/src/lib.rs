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

mod destinations;
pub mod error;
mod filters;
pub mod json;
mod metrics;
mod openapi;
mod pipelines;
mod profiles;
pub mod query;
mod runs;
mod schema;
mod ui;

pub use error::{ApiError, ApiResult};

/// Largest accepted request body: room for 10,000+ profiles in one `POST /v1/profiles`.
pub const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetadataStore>,
    pub profiles: Arc<dyn ProfileStore>,
    pub engine: Engine,
    /// The admin token every `/v1` route but health requires.
    pub token: Arc<str>,
    pub(crate) metrics: Arc<metrics::Memory>,
}

impl AppState {
    pub fn new(engine: Engine, token: impl Into<Arc<str>>) -> Self {
        Self {
            meta: engine.meta().clone(),
            profiles: engine.profiles().clone(),
            engine,
            token: token.into(),
            metrics: Arc::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let protected =
        protected_routes().layer(middleware::from_fn_with_state(state.clone(), require_token));
    let (router, _) = assemble(protected).split_for_parts();
    router
        .fallback(ui::serve)
        .layer(middleware::from_fn(error::json_refusals))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Every route with its description, as the OpenAPI document shows them.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    assemble(protected_routes())
}

/// The routes under `/v1` that need the admin token. The router and the OpenAPI document are both built
/// from this list (each handler's `#[utoipa::path]` gives its method and path), so a route cannot be
/// served without being described.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(schema::get_schema, schema::put_schema))
        .routes(routes!(profiles::list, profiles::upsert))
        .routes(routes!(profiles::get_one, profiles::delete))
        .routes(routes!(destinations::connectors))
        .routes(routes!(pipelines::functions))
        .routes(routes!(filters::operators))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(destinations::test_unsaved))
        .routes(routes!(
            destinations::get_one,
            destinations::update,
            destinations::delete
        ))
        .routes(routes!(destinations::test_saved))
        .routes(routes!(destinations::describe_table))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(pipelines::validate))
        .routes(routes!(pipelines::preview_unsaved))
        .routes(routes!(
            pipelines::get_one,
            pipelines::replace,
            pipelines::patch,
            pipelines::delete
        ))
        .routes(routes!(pipelines::preview_saved))
        .routes(routes!(runs::list, runs::start))
        .routes(routes!(runs::get_one))
        .routes(routes!(runs::cancel))
        .routes(routes!(openapi::document))
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

/// Checks `Authorization: Bearer <token>` in constant time.
async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    use subtle::ConstantTimeEq;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(t) if bool::from(t.as_bytes().ct_eq(state.token.as_bytes())) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not valid",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send the admin token as `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}

/// Generates an id with a readable prefix.
pub(crate) fn new_id(prefix: &str) -> String {
    sluice_engine::new_id(prefix)
}
