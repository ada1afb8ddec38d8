//! `/v1/connections`: every connection, whichever way it is used. A connection is one record — the
//! destination record of `/v1/destinations`, with the same id, settings and masked secrets — which a
//! source pipeline reads as its `connection` and an export pipeline writes to; adding, changing and
//! testing one stays under `/v1/destinations`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::destinations::{self, Destination};
use crate::error::ApiResult;
use crate::openapi::{Internal, NotFound, Unauthorized};
use crate::AppState;

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    /// The same records as `GET /v1/destinations` answers.
    connections: Vec<Destination>,
}

#[utoipa::path(
    get,
    path = "/connections",
    operation_id = "listConnections",
    tag = "destinations",
    summary = "List connections, for sources and destinations alike (secrets masked)",
    responses((status = 200, description = "OK", body = ConnectionList), Unauthorized, Internal),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ConnectionList>> {
    let Json(all) = destinations::list(State(state)).await?;
    Ok(Json(ConnectionList {
        connections: all.destinations,
    }))
}

#[utoipa::path(
    get,
    path = "/connections/{id}",
    operation_id = "getConnection",
    tag = "destinations",
    summary = "One connection (the destination record of the same id)",
    params(("id" = String, Path, description = "The connection's id")),
    responses((status = 200, description = "OK", body = Destination), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Destination>> {
    let rec = state
        .meta
        .get_destination(&id)
        .await?
        .ok_or_else(|| crate::ApiError::not_found("connection", &id))?;
    Ok(Json(destinations::to_json(&rec)))
}
