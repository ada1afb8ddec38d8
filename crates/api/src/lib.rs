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
use axum::routing::{get, post};
use axum::{Json, Router};
use sluice_engine::Engine;
use sluice_store::{MetadataStore, ProfileStore};

mod destinations;
pub mod error;
pub mod json;
mod metrics;
mod openapi;
mod pipelines;
mod profiles;
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
    let v1 = Router::new()
        .route(
            "/profile-schema",
            get(schema::get_schema).put(schema::put_schema),
        )
        .route("/profiles", get(profiles::list).post(profiles::upsert))
        .route(
            "/profiles/{id}",
            get(profiles::get_one).delete(profiles::delete),
        )
        .route("/connectors", get(destinations::connectors))
        .route("/functions", get(pipelines::functions))
        .route(
            "/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route("/destinations/test", post(destinations::test_unsaved))
        .route(
            "/destinations/{id}",
            get(destinations::get_one)
                .put(destinations::update)
                .delete(destinations::delete),
        )
        .route("/destinations/{id}/test", post(destinations::test_saved))
        .route(
            "/destinations/{id}/tables/{table}",
            get(destinations::describe_table),
        )
        .route("/pipelines", get(pipelines::list).post(pipelines::create))
        .route("/pipelines/validate", post(pipelines::validate))
        .route("/pipelines/preview", post(pipelines::preview_unsaved))
        .route(
            "/pipelines/{id}",
            get(pipelines::get_one)
                .put(pipelines::replace)
                .patch(pipelines::patch)
                .delete(pipelines::delete),
        )
        .route("/pipelines/{id}/preview", post(pipelines::preview_saved))
        .route("/pipelines/{id}/runs", get(runs::list).post(runs::start))
        .route("/runs/{id}", get(runs::get_one))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/openapi.json", get(openapi::document))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route("/health", get(health))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such route") });
    Router::new()
        .nest("/v1", v1)
        .route("/metrics", get(metrics::render))
        .fallback(ui::serve)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
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
