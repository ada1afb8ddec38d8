//! The Customer Model, destinations and pipelines.

use async_trait::async_trait;
use sluice_core::Schema;
use tokio_postgres::{GenericClient, Row};

use super::pool::{get, pg_error, rows_to, violation, Violation};
use super::PgMetadata;
use crate::codec;
use crate::{
    Catalog, CatalogChanges, DestinationRecord, DestinationTest, PipelineRecord, Result, SecretBox,
    StoreError,
};

const DESTINATION_COLUMNS: &str = "id, name, kind, settings::text, created_at, updated_at";

fn destination_from_row(secrets: &SecretBox, r: &Row) -> Result<DestinationRecord> {
    let name: String = get(r, 1)?;
    Ok(DestinationRecord {
        id: get(r, 0)?,
        settings: codec::open_settings(secrets, &name, get(r, 3)?)?,
        name,
        kind: get(r, 2)?,
        created_at: get(r, 4)?,
        updated_at: get(r, 5)?,
    })
}

fn destination_conflict(e: tokio_postgres::Error, rec: &DestinationRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique("sluice_destinations_name_key")) => {
            StoreError::Conflict(format!("a destination named `{}` already exists", rec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a destination with id `{}` already exists", rec.id))
        }
        _ => pg_error(e),
    }
}

const PIPELINE_COLUMNS: &str = "id, spec::text, created_at, updated_at";

fn pipeline_from_row(r: &Row) -> Result<PipelineRecord> {
    let id: String = get(r, 0)?;
    Ok(PipelineRecord {
        spec: codec::spec_from_json(&id, get(r, 1)?)?,
        id,
        created_at: get(r, 2)?,
        updated_at: get(r, 3)?,
    })
}

fn pipeline_conflict(e: tokio_postgres::Error, rec: &PipelineRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique("sluice_pipelines_name_key")) => StoreError::Conflict(format!(
            "the destination already has a pipeline named `{}`",
            rec.spec.name
        )),
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a pipeline with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.spec.destination
        )),
        None => pg_error(e),
    }
}

// Each write below is one statement on a client or a transaction, so that the single-change methods and
// `apply_changes` (many in one transaction) share it.

async fn put_schema_on(c: &impl GenericClient, model: &str) -> Result<()> {
    c.execute(
        "INSERT INTO sluice_customer_model (id, model, updated_at) VALUES (1, $1::text::json, $2)
         ON CONFLICT (id) DO UPDATE SET model = EXCLUDED.model, updated_at = EXCLUDED.updated_at",
        &[&model, &codec::now()],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

async fn insert_destination_on(
    c: &impl GenericClient,
    rec: &DestinationRecord,
    sealed: &str,
) -> Result<()> {
    c.execute(
        "INSERT INTO sluice_destinations (id, name, kind, settings, created_at, updated_at)
         VALUES ($1, $2, $3, $4::text::json, $5, $6)",
        &[
            &rec.id,
            &rec.name,
            &rec.kind,
            &sealed,
            &rec.created_at,
            &rec.updated_at,
        ],
    )
    .await
    .map_err(|e| destination_conflict(e, rec))?;
    Ok(())
}

async fn update_destination_on(
    c: &impl GenericClient,
    rec: &DestinationRecord,
    sealed: &str,
) -> Result<()> {
    let n = c
        .execute(
            "UPDATE sluice_destinations SET name = $2, kind = $3, settings = $4::text::json, updated_at = $5
             WHERE id = $1",
            &[&rec.id, &rec.name, &rec.kind, &sealed, &rec.updated_at],
        )
        .await
        .map_err(|e| destination_conflict(e, rec))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.id
        )));
    }
    Ok(())
}

/// Deletes a destination no pipeline uses; call inside a transaction.
async fn delete_destination_on(c: &impl GenericClient, id: &str) -> Result<bool> {
    // Locking the destination row makes a concurrent insert_pipeline (whose foreign key check takes a
    // share lock on it) wait, so no pipeline can appear between the check and the delete.
    let exists = c
        .query_opt(
            "SELECT 1 FROM sluice_destinations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(pg_error)?
        .is_some();
    if !exists {
        return Ok(false);
    }
    let users: Vec<String> = c
        .query(
            "SELECT name FROM sluice_pipelines WHERE destination = $1 ORDER BY created_at, seq",
            &[&id],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_>>()?;
    if !users.is_empty() {
        return Err(codec::in_use(&users));
    }
    let readers: Vec<String> = c
        .query(
            "SELECT name FROM sluice_sources WHERE connection = $1 ORDER BY created_at, seq",
            &[&id],
        )
        .await
        .map_err(pg_error)?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<_>>()?;
    if !readers.is_empty() {
        return Err(codec::read_by(&readers));
    }
    c.execute("DELETE FROM sluice_destinations WHERE id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    Ok(true)
}

async fn insert_pipeline_on(c: &impl GenericClient, rec: &PipelineRecord) -> Result<()> {
    let spec = codec::spec_to_json(&rec.spec);
    c.execute(
        "INSERT INTO sluice_pipelines (id, destination, name, spec, created_at, updated_at)
         VALUES ($1, $2, $3, $4::text::json, $5, $6)",
        &[
            &rec.id,
            &rec.spec.destination,
            &rec.spec.name,
            &spec,
            &rec.created_at,
            &rec.updated_at,
        ],
    )
    .await
    .map_err(|e| pipeline_conflict(e, rec))?;
    Ok(())
}

async fn update_pipeline_on(c: &impl GenericClient, rec: &PipelineRecord) -> Result<()> {
    let spec = codec::spec_to_json(&rec.spec);
    let n = c
        .execute(
            "UPDATE sluice_pipelines SET destination = $2, name = $3, spec = $4::text::json, updated_at = $5
             WHERE id = $1",
            &[&rec.id, &rec.spec.destination, &rec.spec.name, &spec, &rec.updated_at],
        )
        .await
        .map_err(|e| pipeline_conflict(e, rec))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "pipeline `{}` does not exist",
            rec.id
        )));
    }
    Ok(())
}

async fn delete_pipeline_on(c: &impl GenericClient, id: &str) -> Result<bool> {
    // Runs and sync state go with it through ON DELETE CASCADE.
    let n = c
        .execute("DELETE FROM sluice_pipelines WHERE id = $1", &[&id])
        .await
        .map_err(pg_error)?;
    Ok(n > 0)
}

#[async_trait]
impl Catalog for PgMetadata {
    async fn get_schema(&self) -> Result<Schema> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT model::text FROM sluice_customer_model WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg_error)?;
        match row {
            Some(row) => codec::schema_from_json(get(&row, 0)?),
            None => Ok(Schema::default()),
        }
    }

    async fn put_schema(&self, schema: &Schema) -> Result<()> {
        let model = codec::schema_to_json(schema);
        let conn = self.pool.get().await?;
        put_schema_on(&*conn, &model).await
    }

    async fn list_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(&format!("SELECT {DESTINATION_COLUMNS} FROM sluice_destinations ORDER BY created_at, seq"), &[])
            .await
            .map_err(pg_error)?;
        rows_to(rows, |r| destination_from_row(&self.secrets, r))
    }

    async fn get_destination(&self, id: &str) -> Result<Option<DestinationRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {DESTINATION_COLUMNS} FROM sluice_destinations WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| destination_from_row(&self.secrets, &r))
            .transpose()
    }

    async fn insert_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let sealed = codec::seal_settings(&self.secrets, &rec.settings)?;
        let conn = self.pool.get().await?;
        insert_destination_on(&*conn, rec, &sealed).await
    }

    async fn update_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let sealed = codec::seal_settings(&self.secrets, &rec.settings)?;
        let conn = self.pool.get().await?;
        update_destination_on(&*conn, rec, &sealed).await
    }

    async fn reseal_secrets(&self, new: &SecretBox) -> Result<usize> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        // Locked, so an update made meanwhile (sealed with the old key) waits and cannot be lost or left
        // under the old key.
        let rows = tx
            .query(
                "SELECT id, name, settings::text FROM sluice_destinations ORDER BY seq FOR UPDATE",
                &[],
            )
            .await
            .map_err(pg_error)?;
        for row in &rows {
            let (id, name, sealed): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            let settings = codec::open_settings(&self.secrets, &name, &sealed)?;
            let resealed = codec::seal_settings(new, &settings)?;
            tx.execute(
                "UPDATE sluice_destinations SET settings = $2::text::json WHERE id = $1",
                &[&id, &resealed],
            )
            .await
            .map_err(pg_error)?;
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(rows.len())
    }

    async fn record_destination_test(&self, id: &str, test: &DestinationTest) -> Result<()> {
        let conn = self.pool.get().await?;
        conn.execute(
            "INSERT INTO sluice_destination_tests (destination, tested_at, ok, code, message)
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM sluice_destinations WHERE id = $1)
             ON CONFLICT (destination) DO UPDATE SET tested_at = EXCLUDED.tested_at,
               ok = EXCLUDED.ok, code = EXCLUDED.code, message = EXCLUDED.message",
            &[&id, &test.at, &test.ok, &test.code, &test.message],
        )
        .await
        .map_err(pg_error)?;
        Ok(())
    }

    async fn destination_tests(&self) -> Result<Vec<(String, DestinationTest)>> {
        let conn = self.pool.get().await?;
        let rows = conn
            .query(
                "SELECT destination, tested_at, ok, code, message FROM sluice_destination_tests ORDER BY destination",
                &[],
            )
            .await
            .map_err(pg_error)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    DestinationTest {
                        at: r.get(1),
                        ok: r.get(2),
                        code: r.get(3),
                        message: r.get(4),
                    },
                )
            })
            .collect())
    }

    async fn delete_destination(&self, id: &str) -> Result<bool> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(pg_error)?;
        let deleted = delete_destination_on(&tx, id).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(deleted)
    }

    async fn list_pipelines(&self, destination: Option<&str>) -> Result<Vec<PipelineRecord>> {
        let conn = self.pool.get().await?;
        let rows = match destination {
            Some(d) => {
                let sql = format!(
                    "SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines WHERE destination = $1 ORDER BY created_at, seq"
                );
                conn.query(&sql, &[&d]).await
            }
            None => {
                let sql = format!("SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines ORDER BY created_at, seq");
                conn.query(&sql, &[]).await
            }
        }
        .map_err(pg_error)?;
        rows_to(rows, pipeline_from_row)
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {PIPELINE_COLUMNS} FROM sluice_pipelines WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| pipeline_from_row(&r)).transpose()
    }

    async fn insert_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        insert_pipeline_on(&*conn, rec).await
    }

    async fn update_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let conn = self.pool.get().await?;
        update_pipeline_on(&*conn, rec).await
    }

    async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let conn = self.pool.get().await?;
        delete_pipeline_on(&*conn, id).await
    }

    async fn apply_changes(&self, changes: &CatalogChanges) -> Result<()> {
        let seal = |recs: &[DestinationRecord]| -> Result<Vec<String>> {
            recs.iter()
                .map(|r| codec::seal_settings(&self.secrets, &r.settings))
                .collect()
        };
        let inserts = seal(&changes.insert_destinations)?;
        let updates = seal(&changes.update_destinations)?;
        let mut conn = self.pool.get().await?;
        // Dropped without a commit on any error: PostgreSQL rolls the whole of it back.
        let tx = conn.transaction().await.map_err(pg_error)?;
        if let Some(schema) = &changes.schema {
            put_schema_on(&tx, &codec::schema_to_json(schema)).await?;
        }
        for (rec, sealed) in changes.insert_destinations.iter().zip(&inserts) {
            insert_destination_on(&tx, rec, sealed).await?;
        }
        for (rec, sealed) in changes.update_destinations.iter().zip(&updates) {
            update_destination_on(&tx, rec, sealed).await?;
        }
        for id in &changes.delete_pipelines {
            if !delete_pipeline_on(&tx, id).await? {
                return Err(StoreError::NotFound(format!(
                    "pipeline `{id}` does not exist"
                )));
            }
        }
        for rec in &changes.update_pipelines {
            update_pipeline_on(&tx, rec).await?;
        }
        for rec in &changes.insert_pipelines {
            insert_pipeline_on(&tx, rec).await?;
        }
        for id in &changes.delete_destinations {
            if !delete_destination_on(&tx, id).await? {
                return Err(StoreError::NotFound(format!(
                    "destination `{id}` does not exist"
                )));
            }
        }
        tx.commit().await.map_err(pg_error)
    }
}
