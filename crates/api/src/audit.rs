//! The audit log: every change made through the API that succeeded — who (token id and name), what
//! (method, route, resource id), when, and the resource before and after — and `GET /v1/audit` to read it.
//!
//! Before and after are the resource as the API shows it (a destination with its secrets masked), read
//! through the same handlers a GET uses, then passed through [`redact`], which drops any field that
//! could hold a secret (the value of a new token, a password) in case an answer ever carries one. The
//! entry is written after the change, not in its transaction: should the store fail between the two, the
//! change stands and the failure is logged.

use axum::extract::{MatchedPath, OriginalUri, Path, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use sluice_store::{AuditEntry, SECRET_FIELDS};
use utoipa::{IntoParams, ToSchema};

use crate::access::Principal;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{Internal, Invalid, Unauthorized};
use crate::query::Query;
use crate::AppState;

/// Largest answer kept as an audit entry's `after`; changes answer far less.
const MAX_AFTER_BYTES: usize = 4 * 1024 * 1024;

/// Fields never written to the audit log, whatever answer carries them.
const NEVER_LOGGED: [&str; 2] = ["token", "authorization"];
/// Fields written only as whether they are set: a webhook URL often carries its own credential (as the
/// logs, which never show it, already assume).
const MASKED: [&str; 1] = ["alert_webhook"];

/// Runs a change and, when it succeeds, appends its entry.
pub(crate) async fn record(
    state: &AppState,
    principal: &Principal,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let method = req.method().clone();
    // Inside `/v1`, the URI has lost its prefix; the matched route has it.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_string(), |u| u.path().to_string());
    let id = path_param(&route, &path, "id");
    let before = match &id {
        Some(id) if method != Method::POST || route.ends_with("/cancel") => {
            snapshot(state, &route, id).await
        }
        None if route == "/v1/profile-schema" => snapshot(state, &route, "").await,
        _ => None,
    };
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_AFTER_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, route = %route, "could not read an answer for the audit log");
            return ApiError::internal("the change was made but its answer could not be read")
                .into_response();
        }
    };
    let after = if method == Method::DELETE {
        None
    } else {
        serde_json::from_slice::<Json_>(&bytes).ok()
    };
    let resource = id.or_else(|| {
        after
            .as_ref()
            .and_then(|a| a.get("id"))
            .and_then(Json_::as_str)
            .map(str::to_string)
    });
    let entry = AuditEntry {
        seq: 0,
        at: Utc::now(),
        actor_id: principal.id.clone(),
        actor_name: principal.name.clone(),
        method: method.as_str().to_string(),
        route: route.clone(),
        resource,
        status: status.as_u16(),
        before: before.map(redact),
        after: after.map(redact),
    };
    if let Err(e) = state.meta.append_audit(&entry).await {
        tracing::error!(error = %e, route = %route, "could not write an audit entry");
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// The resource a change is about, as a GET of it would answer.
async fn snapshot(state: &AppState, route: &str, id: &str) -> Option<Json_> {
    fn value<T: Serialize>(r: ApiResult<Json<T>>) -> Option<Json_> {
        r.ok().and_then(|Json(v)| serde_json::to_value(v).ok())
    }
    let (s, id) = (State(state.clone()), Path(id.to_string()));
    match route {
        "/v1/profile-schema" => value(crate::schema::get_schema(s).await),
        "/v1/destinations/{id}" => value(crate::destinations::get_one(s, id).await),
        // Read as an admin would: the audit log masks what it must itself (`redact`).
        "/v1/pipelines/{id}" => value(
            crate::pipelines::get_one(s, axum::Extension(crate::access::Principal::admin()), id)
                .await,
        ),
        "/v1/profiles/{id}" => value(crate::profiles::get_one(s, id).await),
        "/v1/sources/{id}" => value(crate::sources::get_one(s, id).await),
        "/v1/runs/{id}/cancel" => value(crate::runs::get_one(s, id).await),
        "/v1/tokens/{id}" => state
            .meta
            .list_tokens()
            .await
            .ok()?
            .into_iter()
            .find(|t| t.id == id.0)
            .and_then(|t| serde_json::to_value(crate::tokens::to_json(t)).ok()),
        _ => None,
    }
}

/// The value of the `{name}` segment of `path` matched by `route`.
pub(crate) fn path_param(route: &str, path: &str, name: &str) -> Option<String> {
    let wanted = format!("{{{name}}}");
    let mut segments = path.split('/');
    for pattern in route.split('/') {
        let segment = segments.next()?;
        if pattern == wanted {
            return Some(percent_decode(segment));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Drops every field that names a secret, at any depth; a stored secret's mask stays (it says one is
/// set, not what it is), and a webhook URL becomes one.
pub(crate) fn redact(mut v: Json_) -> Json_ {
    fn walk(v: &mut Json_) {
        match v {
            Json_::Object(map) => {
                map.retain(|k, v| {
                    let k = k.to_ascii_lowercase();
                    if NEVER_LOGGED.contains(&k.as_str()) {
                        return false;
                    }
                    if SECRET_FIELDS.contains(&k.as_str()) {
                        return v.as_str() == Some(crate::destinations::MASK);
                    }
                    if MASKED.contains(&k.as_str()) && !v.is_null() {
                        *v = Json_::String(crate::destinations::MASK.into());
                    }
                    true
                });
                map.values_mut().for_each(walk);
            }
            Json_::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries per page, 1 to 500 (50 by default).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    before: Option<String>,
}

/// One change made through the API.
#[derive(Serialize, ToSchema)]
pub struct AuditItem {
    /// Entries are numbered in the order they were written.
    seq: i64,
    at: DateTime<Utc>,
    /// Who made the change: `admin` for the configured admin token, else an API token's id.
    token_id: String,
    token_name: String,
    method: String,
    /// The route as declared (`/v1/pipelines/{id}`).
    route: String,
    /// The id of the resource changed.
    #[schema(required = true)]
    resource: Option<String>,
    status: u16,
    /// The resource before the change, as the API shows it (no secrets); `null` when it did not exist.
    #[schema(required = true, value_type = Option<Object>)]
    before: Option<Json_>,
    /// The answer to the change (no secrets); `null` for a deletion.
    #[schema(required = true, value_type = Option<Object>)]
    after: Option<Json_>,
}

/// A page of the audit log, newest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditItem>,
    /// The `before` of the next page; `null` on the last one.
    #[schema(required = true)]
    next: Option<String>,
}

#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "listAudit",
    tag = "access",
    summary = "Changes made through the API, newest first (admin only)",
    params(AuditQuery),
    responses(
        (status = 200, description = "OK", body = AuditPage),
        Unauthorized,
        Invalid,
        Internal,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 500",
        ));
    }
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| {
            ApiError::invalid_field("before", "before must be the `next` of a previous page")
        })?),
    };
    let mut entries = state.meta.list_audit(limit + 1, before).await?;
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next = if more {
        entries.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    let entries = entries
        .into_iter()
        .map(|e| AuditItem {
            seq: e.seq,
            at: e.at,
            token_id: e.actor_id,
            token_name: e.actor_name,
            method: e.method,
            route: e.route,
            resource: e.resource,
            status: e.status,
            before: e.before,
            after: e.after,
        })
        .collect();
    Ok(Json(AuditPage { entries, next }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_params_are_read_by_the_route() {
        assert_eq!(
            path_param("/v1/pipelines/{id}", "/v1/pipelines/pl_1", "id").as_deref(),
            Some("pl_1")
        );
        assert_eq!(
            path_param("/v1/profiles/{id}", "/v1/profiles/a%20b%2Fc", "id").as_deref(),
            Some("a b/c")
        );
        assert_eq!(path_param("/v1/pipelines", "/v1/pipelines", "id"), None);
        assert_eq!(
            path_param("/v1/runs/{id}/cancel", "/v1/runs/r9/cancel", "id").as_deref(),
            Some("r9")
        );
    }

    #[test]
    fn secrets_never_reach_the_log() {
        let v = redact(json!({
            "id": "tok_1", "token": "slt_abc",
            "settings": {"host": "h", "password": "hunter2", "private_key": "********",
                         "nested": [{"Password": "x", "Authorization": "Bearer y"}]},
            "alert_webhook": "https://hooks.example.com/T0/B0/s3cr3t", "other": {"alert_webhook": null}
        }));
        assert_eq!(
            v,
            json!({"id": "tok_1", "settings": {"host": "h", "private_key": "********", "nested": [{}]},
                   "alert_webhook": "********", "other": {"alert_webhook": null}})
        );
    }
}
