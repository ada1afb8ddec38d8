//! Source pipelines, their marks and the rows each one wrote (see `crate::sources`), written
//! set-based (`unnest` of arrays).

use async_trait::async_trait;
use sluice_core::schedule::TickState;
use sluice_core::source::CursorValue;
use tokio_postgres::Row;

use super::pool::{get, limit_param, pg_error, rows_to, violation, Violation};
use super::PgMetadata;
use crate::codec;
use crate::sources::{SourceRecord, SourceRow, Sources};
use crate::{Result, StoreError};

const SOURCE_COLUMNS: &str = "id, spec::text, created_at, updated_at";

fn source_from_row(r: &Row) -> Result<SourceRecord> {
    let id: String = get(r, 0)?;
    Ok(SourceRecord {
        spec: codec::source_spec_from_json(&id, get(r, 1)?)?,
        id,
        created_at: get(r, 2)?,
        updated_at: get(r, 3)?,
    })
}

fn source_conflict(e: tokio_postgres::Error, rec: &SourceRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique("sluice_sources_name_key")) => {
            StoreError::Conflict(format!("a source named `{}` already exists", rec.spec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a source with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "connection `{}` does not exist",
            rec.spec.connection
        )),
        None => pg_error(e),
    }
}

fn owned(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[async_trait]
impl Sources for PgMetadata {
    async fn list_sources(&self) -> Result<Vec<SourceRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                &format!("SELECT {SOURCE_COLUMNS} FROM sluice_sources ORDER BY created_at, seq"),
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, source_from_row)
    }

    async fn get_source(&self, id: &str) -> Result<Option<SourceRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {SOURCE_COLUMNS} FROM sluice_sources WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.as_ref().map(source_from_row).transpose()
    }

    async fn insert_source(&self, rec: &SourceRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        let spec = codec::source_spec_to_json(&rec.spec);
        conn.execute(
            "INSERT INTO sluice_sources (id, connection, name, spec, created_at, updated_at)
             VALUES ($1, $2, $3, $4::text::json, $5, $6)",
            &[
                &rec.id,
                &rec.spec.connection,
                &rec.spec.name,
                &spec,
                &rec.created_at,
                &rec.updated_at,
            ],
        )
        .await
        .map_err(|e| source_conflict(e, rec))?;
        Ok(())
    }

    async fn update_source(&self, rec: &SourceRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        let spec = codec::source_spec_to_json(&rec.spec);
        let n = conn
            .execute(
                "UPDATE sluice_sources SET connection = $2, name = $3, spec = $4::text::json, updated_at = $5
                 WHERE id = $1",
                &[&rec.id, &rec.spec.connection, &rec.spec.name, &spec, &rec.updated_at],
            )
            .await
            .map_err(|e| source_conflict(e, rec))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "source `{}` does not exist",
                rec.id
            )));
        }
        Ok(())
    }

    async fn delete_source(&self, id: &str) -> Result<bool> {
        let conn = self.pool.get().await?;
        // Runs go by trigger, the mark and rows by ON DELETE CASCADE.
        let n = conn
            .execute("DELETE FROM sluice_sources WHERE id = $1", &[&id])
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }

    async fn source_mark(&self, source: &str) -> Result<Option<CursorValue>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT mark FROM sluice_source_marks WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| codec::mark_from_json(source, get(&r, 0)?))
            .transpose()
    }

    async fn set_source_mark(&self, source: &str, mark: Option<&CursorValue>) -> Result<()> {
        let conn = self.pool.get().await?;
        match mark {
            None => conn
                .execute(
                    "DELETE FROM sluice_source_marks WHERE source = $1",
                    &[&source],
                )
                .await
                .map_err(pg_error)?,
            Some(m) => conn
                .execute(
                    "INSERT INTO sluice_source_marks (source, mark)
                     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM sluice_sources WHERE id = $1)
                     ON CONFLICT (source) DO UPDATE SET mark = excluded.mark",
                    &[&source, &codec::mark_to_json(m)],
                )
                .await
                .map_err(pg_error)?,
        };
        Ok(())
    }

    async fn source_hashes(
        &self,
        source: &str,
        profile_ids: &[&str],
    ) -> Result<Vec<(String, u128)>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT profile_id, hash FROM sluice_source_rows
                 WHERE source = $1 AND profile_id = ANY($2::text[])",
                &[&source, &owned(profile_ids)],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| {
            let id: String = get(r, 0)?;
            let hash = codec::hash_from_bytes(&id, get(r, 1)?)?;
            Ok((id, hash))
        })
    }

    async fn record_source_rows(
        &self,
        source: &str,
        rows: &[SourceRow<'_>],
        seen: i64,
    ) -> Result<()> {
        let ids: Vec<&str> = rows.iter().map(|r| r.profile_id).collect();
        let hashes: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| codec::hash_to_bytes(r.hash).to_vec())
            .collect();
        let conn = self.pool.get().await?;
        // A source deleted meanwhile: the join finds no source and nothing is written.
        conn.execute(
            "INSERT INTO sluice_source_rows (source, profile_id, hash, seen)
             SELECT s.id, u.profile_id, u.hash, $4
             FROM sluice_sources s, unnest($2::text[], $3::bytea[]) AS u(profile_id, hash)
             WHERE s.id = $1
             ON CONFLICT (source, profile_id) DO UPDATE SET hash = excluded.hash, seen = excluded.seen",
            &[&source, &ids, &hashes, &seen],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn unseen_source_rows(
        &self,
        source: &str,
        seen: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT profile_id FROM sluice_source_rows
                 WHERE source = $1 AND seen < $2 AND profile_id > $3
                 ORDER BY profile_id LIMIT $4",
                &[
                    &source,
                    &seen,
                    &after.unwrap_or_default(),
                    &limit_param(limit),
                ],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| get(r, 0))
    }

    async fn forget_source_rows(&self, source: &str, profile_ids: &[&str]) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            "DELETE FROM sluice_source_rows WHERE source = $1 AND profile_id = ANY($2::text[])",
            &[&source, &owned(profile_ids)],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn fed_by_other_sources(
        &self,
        source: &str,
        profile_ids: &[&str],
    ) -> Result<Vec<String>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT DISTINCT profile_id FROM sluice_source_rows
                 WHERE source <> $1 AND profile_id = ANY($2::text[])",
                &[&source, &owned(profile_ids)],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| get(r, 0))
    }
    async fn source_tick_states(&self) -> Result<Vec<(String, TickState)>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT source, last_tick, pending FROM sluice_source_schedules",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| {
            Ok((
                get(r, 0)?,
                TickState {
                    last_tick: get(r, 1)?,
                    pending: get(r, 2)?,
                },
            ))
        })
    }

    async fn advance_source_tick(
        &self,
        source: &str,
        expected: TickState,
        next: TickState,
    ) -> Result<bool> {
        let conn = self.pool.get().await?;
        // One statement decides: the row is written only where the stored state (or its absence, the
        // default state) is the expected one.
        let n = if expected == TickState::default() {
            conn.execute(
                "INSERT INTO sluice_source_schedules (source, last_tick, pending)
                 SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM sluice_sources WHERE id = $1)
                 ON CONFLICT (source) DO UPDATE SET last_tick = excluded.last_tick, pending = excluded.pending
                 WHERE sluice_source_schedules.last_tick IS NULL AND NOT sluice_source_schedules.pending",
                &[&source, &next.last_tick, &next.pending],
            )
            .await
        } else {
            conn.execute(
                "UPDATE sluice_source_schedules SET last_tick = $2, pending = $3
                 WHERE source = $1 AND last_tick IS NOT DISTINCT FROM $4 AND pending = $5",
                &[
                    &source,
                    &next.last_tick,
                    &next.pending,
                    &expected.last_tick,
                    &expected.pending,
                ],
            )
            .await
        };
        match n {
            Ok(n) => Ok(n > 0),
            // The source was deleted between the check and the insert.
            Err(e) if matches!(violation(&e), Some(Violation::ForeignKey)) => Ok(false),
            Err(e) => Err(pg_error(e)),
        }
    }
}
