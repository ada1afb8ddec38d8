//! API tokens and the audit log in SQLite (see `crate::access`).

use async_trait::async_trait;
use rusqlite::params;

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::SqliteMetadata;
use crate::access::{Access, AuditEntry, Role, TokenHash, TokenRecord};
use crate::{codec, Result, StoreError};

const TOKEN_COLUMNS: &str = "id, name, role, created_at";

fn token_from_row(r: &rusqlite::Row<'_>) -> Result<TokenRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let role: String = r.get(2).map_err(sql_error)?;
    Ok(TokenRecord {
        role: Role::parse(&role)
            .ok_or_else(|| codec::corrupt(format!("token `{id}` has an unknown role `{role}`")))?,
        id,
        name: r.get(1).map_err(sql_error)?,
        created_at: time(r.get(3).map_err(sql_error)?)?,
    })
}

const AUDIT_COLUMNS: &str =
    "seq, at, actor_id, actor_name, method, route, resource, status, before, after";

fn json_column(seq: i64, text: Option<String>) -> Result<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| codec::corrupt(format!("audit entry {seq} holds invalid JSON: {e}")))
    })
    .transpose()
}

fn audit_from_row(r: &rusqlite::Row<'_>) -> Result<AuditEntry> {
    let seq: i64 = r.get(0).map_err(sql_error)?;
    Ok(AuditEntry {
        at: time(r.get(1).map_err(sql_error)?)?,
        actor_id: r.get(2).map_err(sql_error)?,
        actor_name: r.get(3).map_err(sql_error)?,
        method: r.get(4).map_err(sql_error)?,
        route: r.get(5).map_err(sql_error)?,
        resource: r.get(6).map_err(sql_error)?,
        status: r.get(7).map_err(sql_error)?,
        before: json_column(seq, r.get(8).map_err(sql_error)?)?,
        after: json_column(seq, r.get(9).map_err(sql_error)?)?,
        seq,
    })
}

#[async_trait]
impl Access for SqliteMetadata {
    async fn insert_token(&self, rec: &TokenRecord, hash: &TokenHash) -> Result<()> {
        let (rec, hash) = (rec.clone(), *hash);
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![rec.id, rec.name, rec.role.as_str(), &hash[..], micros(&rec.created_at)],
                )
                .map_err(|e| match violation(&e) {
                    Some(Violation::Unique(m)) if m.contains("api_tokens.name") => {
                        StoreError::Conflict(format!("a token named `{}` already exists", rec.name))
                    }
                    Some(Violation::Unique(_)) => {
                        StoreError::Conflict(format!("token `{}` already exists", rec.id))
                    }
                    _ => sql_error(e),
                })?;
                Ok(())
            })
            .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.db
            .read(|c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], token_from_row)
            })
            .await
    }

    async fn token_by_hash(&self, hash: &TokenHash) -> Result<Option<TokenRecord>> {
        let hash = *hash;
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&hash[..]], token_from_row)?.pop())
            })
            .await
    }

    async fn delete_token(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let n = c
                    .execute("DELETE FROM api_tokens WHERE id = ?1", [&id])
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<i64> {
        let e = entry.clone();
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO audit_log (at, actor_id, actor_name, method, route, resource, status, before, after)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        micros(&e.at),
                        e.actor_id,
                        e.actor_name,
                        e.method,
                        e.route,
                        e.resource,
                        e.status,
                        e.before.as_ref().map(|v| v.to_string()),
                        e.after.as_ref().map(|v| v.to_string()),
                    ],
                )
                .map_err(sql_error)?;
                Ok(c.last_insert_rowid())
            })
            .await
    }

    async fn list_audit(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let before = before.unwrap_or(i64::MAX);
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, params![before, limit], audit_from_row)
            })
            .await
    }
}
