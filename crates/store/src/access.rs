//! Who may use the API and what they changed: API tokens (kept only as hashes) and the audit log.
//!
//! The store never sees a token: callers hand it the token's SHA-256 and look tokens up by that hash, so
//! a copy of the metadata store gives no usable credential. Revoking deletes the row; every request
//! looks its token up afresh, so a revoked token stops working at once on every instance sharing the
//! store.
//!
//! The audit log only grows. Entries are numbered in the order they were written (`seq`), which is what
//! paging newest-first follows; times may tie or, across instances, disagree a little.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Result;

/// What a token may do; each role includes everything of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Editor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An API token as stored, without its value or hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// The SHA-256 of a token's text.
pub type TokenHash = [u8; 32];

/// One change made through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Order of writing; 0 before the entry is stored.
    pub seq: i64,
    pub at: DateTime<Utc>,
    /// The token that made the change (`admin` for the configured admin token).
    pub actor_id: String,
    pub actor_name: String,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// The route as declared (`/v1/pipelines/{id}`).
    pub route: String,
    /// The id of the resource changed, when there is one.
    pub resource: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// The resource before and after the change, as the API shows it (no secrets).
    pub before: Option<Json>,
    pub after: Option<Json>,
}

#[async_trait]
pub trait Access: Send + Sync {
    /// `Conflict` when the name (or id, or hash) is taken.
    async fn insert_token(&self, rec: &TokenRecord, hash: &TokenHash) -> Result<()>;
    /// All tokens, oldest first.
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
    /// The token whose text hashes to `hash`, if it exists and was not revoked.
    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>>;
    /// Revokes (deletes) a token; `Ok(false)` when absent.
    async fn delete_token(&self, id: &str) -> Result<bool>;

    /// Appends an entry (its `seq` is ignored); returns the `seq` given to it.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<i64>;
    /// Up to `limit` entries, newest first, older than `before` (a `seq`) when given.
    async fn list_audit(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>>;
}
