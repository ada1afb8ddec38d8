//! `/v1/tokens` (create, list, revoke API tokens; admin only) and `/v1/me` (who the caller is).
//!
//! A token is 32 random bytes from the operating system, shown once in the answer to its creation and
//! stored only as its SHA-256 (see [`crate::access::token_hash`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sluice_core::FieldErrors;
use sluice_store::{Role, StoreError, TokenRecord};
use utoipa::ToSchema;

use crate::access::{token_hash, Principal, RoleDoc};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::Body;
use crate::openapi::{Internal, Invalid, Malformed, NotFound, NotJson, Unauthorized};
use crate::AppState;

/// Prefix of API tokens, so that a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "slt_";
const MAX_NAME_CHARS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// What the token is for (`ci`, `dashboards`); unique.
    name: String,
    /// `admin`, `editor` or `viewer`.
    #[schema(value_type = RoleDoc)]
    role: String,
}

/// An API token without its value.
#[derive(Serialize, ToSchema)]
pub struct Token {
    id: String,
    name: String,
    #[schema(value_type = RoleDoc)]
    role: Role,
    created_at: DateTime<Utc>,
}

pub(crate) fn to_json(t: TokenRecord) -> Token {
    Token {
        id: t.id,
        name: t.name,
        role: t.role,
        created_at: t.created_at,
    }
}

/// A new token, with its value: shown this once, never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    token: Token,
    /// Send as `Authorization: Bearer <token>`.
    #[serde(rename = "token")]
    value: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<Token>,
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn validate(body: &TokenBody) -> ApiResult<(String, Role)> {
    let mut errors = FieldErrors::new();
    let name = body.name.trim();
    if name.is_empty() {
        errors.add("name", "give the token a name");
    } else if name.chars().count() > MAX_NAME_CHARS {
        errors.add(
            "name",
            format!("the name is longer than {MAX_NAME_CHARS} characters"),
        );
    } else if name.chars().any(char::is_control) {
        errors.add("name", "the name contains a control character");
    }
    let role = Role::parse(&body.role);
    if role.is_none() {
        errors.add(
            "role",
            format!(
                "`{}` is not a role: use admin, editor or viewer",
                body.role.chars().take(40).collect::<String>()
            ),
        );
    }
    errors
        .into_result(())
        .map_err(ApiError::invalid)
        .map(|()| (name.to_string(), role.unwrap_or(Role::Viewer)))
}

#[utoipa::path(
    post,
    path = "/tokens",
    operation_id = "createToken",
    tag = "access",
    summary = "Create an API token (admin only); its value is shown once",
    request_body = TokenBody,
    responses(
        (status = 201, description = "created", body = CreatedToken),
        Malformed,
        Unauthorized,
        (status = 409, body = ErrorBody, description = "the name is taken (`NameTaken`)"),
        NotJson,
        Invalid,
        Internal,
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    Body(body): Body<TokenBody>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let (name, role) = validate(&body)?;
    let value = new_token();
    let rec = TokenRecord {
        id: crate::new_id("tok"),
        name,
        role,
        created_at: Utc::now(),
    };
    state
        .meta
        .insert_token(&rec, &token_hash(&value))
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::conflict("NameTaken", m),
            other => other.into(),
        })?;
    tracing::info!(token = %rec.id, role = rec.role.as_str(), "API token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: to_json(rec),
            value,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/tokens",
    operation_id = "listTokens",
    tag = "access",
    summary = "API tokens, oldest first, without their values (admin only)",
    responses(
        (status = 200, description = "OK", body = TokenList),
        Unauthorized,
        Internal,
    ),
)]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<TokenList>> {
    let tokens = state.meta.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(to_json).collect(),
    }))
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    operation_id = "revokeToken",
    tag = "access",
    summary = "Revoke an API token: it stops working at once, on every instance (admin only)",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "revoked"),
        Unauthorized,
        NotFound,
        Internal,
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.meta.delete_token(&id).await? {
        tracing::info!(token = %id, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("token", &id))
    }
}

#[utoipa::path(
    get,
    path = "/me",
    operation_id = "getMe",
    tag = "access",
    summary = "The token this request was signed with: its id, name and role",
    responses((status = 200, description = "OK", body = Principal), Unauthorized),
)]
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Principal> {
    Json(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 64, "{a}");
    }

    #[test]
    fn names_and_roles_are_checked_together() {
        let e = validate(&TokenBody {
            name: " ".into(),
            role: "root".into(),
        })
        .unwrap_err();
        let fields = e.fields.unwrap();
        assert!(fields.get("name").is_some() && fields.get("role").is_some());
        assert_eq!(
            validate(&TokenBody {
                name: " ci ".into(),
                role: "editor".into()
            })
            .unwrap(),
            ("ci".to_string(), Role::Editor)
        );
    }
}
