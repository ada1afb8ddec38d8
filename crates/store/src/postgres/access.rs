//! API tokens and the audit log in PostgreSQL (see `crate::access`).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::pool::{get, limit_param, pg_error, rows_to, violation, Violation};
use super::PgMetadata;
use crate::access::{Access, AuditEntry, Role, TokenHash, TokenRecord};
use crate::{codec, Result, StoreError};

const TOKEN_COLUMNS: &str = "id, name, role, created_at";

fn token_from_row(r: &Row) -> Result<TokenRecord> {
    let id: String = get(r, 0)?;
    let role: String = get(r, 2)?;
    Ok(TokenRecord {
        role: Role::parse(&role)
            .ok_or_else(|| codec::corrupt(format!("token `{id}` has an unknown role `{role}`")))?,
        id,
        name: get(r, 1)?,
        created_at: get(r, 3)?,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, at, actor_id, actor_name, method, route, resource, status, before::text, after::text";

fn json_column(seq: i64, text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| codec::corrupt(format!("audit entry {seq} holds invalid JSON: {e}")))
    })
    .transpose()
}

fn audit_from_row(r: &Row) -> Result<AuditEntry> {
    let seq: i64 = get(r, 0)?;
    let status: i32 = get(r, 7)?;
    Ok(AuditEntry {
        at: get(r, 1)?,
        actor_id: get(r, 2)?,
        actor_name: get(r, 3)?,
        method: get(r, 4)?,
        route: get(r, 5)?,
        resource: get(r, 6)?,
        status: u16::try_from(status)
            .map_err(|_| codec::corrupt(format!("audit entry {seq} has status {status}")))?,
        before: json_column(seq, get(r, 8)?)?,
        after: json_column(seq, get(r, 9)?)?,
        seq,
    })
}

#[async_trait]
impl Access for PgMetadata {
    async fn insert_token(&self, rec: &TokenRecord, hash: &TokenHash) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_api_tokens (id, name, role, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&rec.id, &rec.name, &rec.role.as_str(), &&hash[..], &rec.created_at],
        )
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::Unique("sluice_api_tokens_name_key")) => {
                StoreError::Conflict(format!("a token named `{}` already exists", rec.name))
            }
            Some(Violation::Unique(_)) => {
                StoreError::Conflict(format!("token `{}` already exists", rec.id))
            }
            _ => pg_error(e),
        })?;
        Ok(())
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!("SELECT {TOKEN_COLUMNS} FROM sluice_api_tokens ORDER BY created_at, seq"),
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, token_from_row)
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {TOKEN_COLUMNS} FROM sluice_api_tokens WHERE hash = $1"),
                &[&&hash[..]],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn delete_token(&self, id: &str) -> Result<bool> {
        let conn = self.pool.get().await?;
        let n = conn
            .execute("DELETE FROM sluice_api_tokens WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<i64> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "INSERT INTO sluice_audit_log (at, actor_id, actor_name, method, route, resource, status, before, after)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::json, $9::text::json) RETURNING seq",
                &[
                    &e.at,
                    &e.actor_id,
                    &e.actor_name,
                    &e.method,
                    &e.route,
                    &e.resource,
                    &i32::from(e.status),
                    &e.before.as_ref().map(|v| v.to_string()),
                    &e.after.as_ref().map(|v| v.to_string()),
                ],
            )
            .await
            .map_err(pg_error)?;
        get(&row, 0)
    }

    async fn list_audit(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM sluice_audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2"
                ),
                &[&before.unwrap_or(i64::MAX), &limit_param(limit)],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, audit_from_row)
    }
}
