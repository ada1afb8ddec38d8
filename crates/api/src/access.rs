//! Who is asking, and whether their role allows the route: authentication, roles and the guards that
//! the route list in `lib.rs` puts on every route.
//!
//! A request is signed by the configured admin token (compared in constant time) or by an API token
//! created through `/v1/tokens`, looked up by its SHA-256 in the metadata store on every request, so a
//! revoked token stops working at once, on every instance. Roles are ordered — a viewer reads, an
//! editor also changes pipelines, runs, profiles and the Customer Model, an admin does everything — and
//! each route declares the least role it needs next to the route list ([`guard`]); the router and the
//! OpenAPI document (`x-sluice-role`) are built from that one declaration, and a handler without one
//! stops the router from being built.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sluice_store::{Role, TokenHash};
use utoipa::ToSchema;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::ApiError;
use crate::AppState;

/// Who signed a request: a token's id, name and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Principal {
    /// `admin` for the configured admin token, else the API token's id.
    pub id: String,
    pub name: String,
    #[schema(value_type = RoleDoc)]
    pub role: Role,
}

/// What a token may do: `viewer` reads (no secrets, no tokens, no audit log), `editor` also changes
/// pipelines, runs, profiles and the Customer Model, `admin` does everything.
#[derive(Serialize, ToSchema)]
#[schema(as = Role)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RoleDoc {
    Viewer,
    Editor,
    Admin,
}

/// The id the configured admin token has in the audit log.
pub const ADMIN_ID: &str = "admin";

impl Principal {
    pub fn admin() -> Principal {
        Principal {
            id: ADMIN_ID.into(),
            name: "admin token".into(),
            role: Role::Admin,
        }
    }
}

/// API tokens are 256 random bits, so a plain SHA-256 is enough to store them: there is nothing to guess
/// that a slow, salted hash would protect, and a fast hash lets every request look its token up.
pub fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a route reads or changes something: changes are written to the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Read,
    Change,
}

/// One method of a route: the least role it needs and its effect.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: Verb,
    pub role: Role,
    pub effect: Effect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }
}

pub const fn read(method: Verb, role: Role) -> Rule {
    Rule {
        method,
        role,
        effect: Effect::Read,
    }
}

pub const fn change(method: Verb, role: Role) -> Rule {
    Rule {
        method,
        role,
        effect: Effect::Change,
    }
}

/// Puts `rules` on a group of handlers of one path: each handler's method must have exactly one rule
/// (a route without a role, or a rule without a route, panics when the router is built, which every
/// test does), the rules are written into the OpenAPI operations, and a layer enforces them.
pub fn guard(
    rules: &[Rule],
    (schemas, mut paths, router): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    for (path, item) in paths.paths.iter_mut() {
        let operations = [
            (Verb::Get, &mut item.get),
            (Verb::Post, &mut item.post),
            (Verb::Put, &mut item.put),
            (Verb::Patch, &mut item.patch),
            (Verb::Delete, &mut item.delete),
        ];
        for (verb, op) in operations {
            let declared: Vec<&Rule> = rules.iter().filter(|r| r.method == verb).collect();
            match (op, declared.as_slice()) {
                (Some(op), [rule]) => {
                    op.extensions
                        .get_or_insert_with(Default::default)
                        .insert("x-sluice-role".into(), rule.role.as_str().into());
                    if rule.role > Role::Viewer {
                        op.responses
                            .responses
                            .insert("403".into(), forbidden_response().into());
                    }
                }
                (None, []) => {}
                (Some(_), _) => panic!("{verb:?} {path} needs exactly one role in the route list"),
                (None, _) => panic!("a role is declared for {verb:?} {path}, which has no handler"),
            }
        }
        for other in [&item.head, &item.options, &item.trace] {
            assert!(
                other.is_none(),
                "{path}: only GET, POST, PUT, PATCH and DELETE have roles"
            );
        }
    }
    let rules: std::sync::Arc<[Rule]> = rules.into();
    let router = router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| enforce(rules.clone(), req, next),
    ));
    (schemas, paths, router)
}

/// Refuses a request its principal's role does not allow; records the changes that succeed.
async fn enforce(rules: std::sync::Arc<[Rule]>, req: Request, next: Next) -> Response {
    // HEAD is served by the GET handler, so it needs what GET needs.
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    let Some(rule) = rules.iter().find(|r| r.method.method() == method) else {
        // A method the route does not serve: the router answers 405.
        return next.run(req).await;
    };
    let (Some(principal), Some(state)) = (
        req.extensions().get::<Principal>().cloned(),
        req.extensions().get::<AppState>().cloned(),
    ) else {
        return ApiError::internal("the request was not authenticated").into_response();
    };
    if principal.role < rule.role {
        return forbidden(principal.role, rule.role).into_response();
    }
    match rule.effect {
        Effect::Read => next.run(req).await,
        Effect::Change => crate::audit::record(&state, &principal, req, next).await,
    }
}

fn forbidden_response() -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description("the token's role does not allow this (`Forbidden`)")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

pub fn forbidden(has: Role, needs: Role) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "this needs the {} role; the token used has the {} role",
            needs.as_str(),
            has.as_str()
        ),
    )
}

/// The bearer token of a request, if any.
fn bearer(req: &axum::http::HeaderMap) -> Option<&str> {
    req.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Who signed the request, or why it is refused (401, or 500 when the store cannot answer).
pub async fn authenticate(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Principal, ApiError> {
    use subtle::ConstantTimeEq;
    let Some(given) = bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "send a token as `Authorization: Bearer <token>`",
        ));
    };
    if bool::from(given.as_bytes().ct_eq(state.token.as_bytes())) {
        return Ok(Principal::admin());
    }
    // Looked up by hash: the time the lookup takes says something about the hash of what was sent,
    // which reveals nothing about any stored token.
    match state.meta.token_by_hash(&token_hash(given)).await? {
        Some(t) => Ok(Principal {
            id: t.id,
            name: t.name,
            role: t.role,
        }),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "the bearer token is not valid",
        )),
    }
}

/// The layer on every `/v1` route but health: authenticates and hands the principal (and the state, for
/// the guards) to the route.
pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    match authenticate(&state, req.headers()).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            req.extensions_mut().insert(state);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Admin);
        assert_eq!(
            forbidden(Role::Viewer, Role::Editor).message,
            "this needs the editor role; the token used has the viewer role"
        );
    }

    #[test]
    fn token_hash_is_sha256() {
        // The SHA-256 of "abc" (FIPS 180-2, appendix B.1).
        let h = token_hash("abc");
        assert_eq!(h[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(h[28..], [0xf2, 0x00, 0x15, 0xad]);
    }
}
