//! The Customer Model, destinations and pipelines.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sluice_core::Schema;

use super::db::{collect, micros, sql_error, time, violation, Violation};
use super::SqliteMetadata;
use crate::codec;
use crate::{
    Catalog, CatalogChanges, DestinationRecord, DestinationTest, PipelineRecord, Result, SecretBox,
    StoreError,
};

const DESTINATION_COLUMNS: &str = "id, name, kind, settings, created_at, updated_at";

fn destination_from_row(secrets: &SecretBox, r: &rusqlite::Row<'_>) -> Result<DestinationRecord> {
    let name: String = r.get(1).map_err(sql_error)?;
    let settings: String = r.get(3).map_err(sql_error)?;
    Ok(DestinationRecord {
        id: r.get(0).map_err(sql_error)?,
        settings: codec::open_settings(secrets, &name, &settings)?,
        name,
        kind: r.get(2).map_err(sql_error)?,
        created_at: time(r.get(4).map_err(sql_error)?)?,
        updated_at: time(r.get(5).map_err(sql_error)?)?,
    })
}

fn destination_conflict(e: rusqlite::Error, rec: &DestinationRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique(m)) if m.contains("destinations.name") => {
            StoreError::Conflict(format!("a destination named `{}` already exists", rec.name))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a destination with id `{}` already exists", rec.id))
        }
        _ => sql_error(e),
    }
}

const PIPELINE_COLUMNS: &str = "id, spec, created_at, updated_at";

fn pipeline_from_row(r: &rusqlite::Row<'_>) -> Result<PipelineRecord> {
    let id: String = r.get(0).map_err(sql_error)?;
    let spec: String = r.get(1).map_err(sql_error)?;
    Ok(PipelineRecord {
        spec: codec::spec_from_json(&id, &spec)?,
        id,
        created_at: time(r.get(2).map_err(sql_error)?)?,
        updated_at: time(r.get(3).map_err(sql_error)?)?,
    })
}

fn pipeline_conflict(e: rusqlite::Error, rec: &PipelineRecord) -> StoreError {
    match violation(&e) {
        Some(Violation::Unique(m)) if m.contains("pipelines.name") => {
            StoreError::Conflict(format!(
                "the destination already has a pipeline named `{}`",
                rec.spec.name
            ))
        }
        Some(Violation::Unique(_)) => {
            StoreError::Conflict(format!("a pipeline with id `{}` already exists", rec.id))
        }
        Some(Violation::ForeignKey) => StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.spec.destination
        )),
        None => sql_error(e),
    }
}

// Each write below is one statement on a connection, so that the single-change methods and
// `apply_changes` (many in one transaction) share it.

fn put_schema_on(c: &Connection, model: &str) -> Result<()> {
    c.execute(
        "INSERT INTO customer_model (id, model, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET model = excluded.model, updated_at = excluded.updated_at",
        params![model, codec::now().timestamp_micros()],
    )
    .map_err(sql_error)?;
    Ok(())
}

fn insert_destination_on(c: &Connection, rec: &DestinationRecord, sealed: &str) -> Result<()> {
    c.execute(
        "INSERT INTO destinations (id, name, kind, settings, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            rec.id,
            rec.name,
            rec.kind,
            sealed,
            micros(&rec.created_at),
            micros(&rec.updated_at)
        ],
    )
    .map_err(|e| destination_conflict(e, rec))?;
    Ok(())
}

fn update_destination_on(c: &Connection, rec: &DestinationRecord, sealed: &str) -> Result<()> {
    let n = c
        .execute(
            "UPDATE destinations SET name = ?2, kind = ?3, settings = ?4, updated_at = ?5 WHERE id = ?1",
            params![rec.id, rec.name, rec.kind, sealed, micros(&rec.updated_at)],
        )
        .map_err(|e| destination_conflict(e, rec))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "destination `{}` does not exist",
            rec.id
        )));
    }
    Ok(())
}

/// Deletes a destination no pipeline uses; call inside a transaction (the check and the delete go
/// together).
fn delete_destination_on(c: &Connection, id: &str) -> Result<bool> {
    let users = {
        let mut stmt = c
            .prepare_cached(
                "SELECT name FROM pipelines WHERE destination = ?1 ORDER BY created_at, seq",
            )
            .map_err(sql_error)?;
        collect(&mut stmt, [id], |r| {
            r.get::<_, String>(0).map_err(sql_error)
        })?
    };
    if !users.is_empty() {
        return Err(codec::in_use(&users));
    }
    let readers = {
        let mut stmt = c
            .prepare_cached(
                "SELECT name FROM sources WHERE connection = ?1 ORDER BY created_at, seq",
            )
            .map_err(sql_error)?;
        collect(&mut stmt, [id], |r| {
            r.get::<_, String>(0).map_err(sql_error)
        })?
    };
    if !readers.is_empty() {
        return Err(codec::read_by(&readers));
    }
    let n = c
        .execute("DELETE FROM destinations WHERE id = ?1", [id])
        .map_err(sql_error)?;
    Ok(n > 0)
}

fn insert_pipeline_on(c: &Connection, rec: &PipelineRecord) -> Result<()> {
    c.execute(
        "INSERT INTO pipelines (id, destination, name, spec, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            rec.id,
            rec.spec.destination,
            rec.spec.name,
            codec::spec_to_json(&rec.spec),
            micros(&rec.created_at),
            micros(&rec.updated_at)
        ],
    )
    .map_err(|e| pipeline_conflict(e, rec))?;
    Ok(())
}

fn update_pipeline_on(c: &Connection, rec: &PipelineRecord) -> Result<()> {
    let n = c
        .execute(
            "UPDATE pipelines SET destination = ?2, name = ?3, spec = ?4, updated_at = ?5 WHERE id = ?1",
            params![
                rec.id,
                rec.spec.destination,
                rec.spec.name,
                codec::spec_to_json(&rec.spec),
                micros(&rec.updated_at)
            ],
        )
        .map_err(|e| pipeline_conflict(e, rec))?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "pipeline `{}` does not exist",
            rec.id
        )));
    }
    Ok(())
}

fn delete_pipeline_on(c: &Connection, id: &str) -> Result<bool> {
    // Runs and sync state go with it through ON DELETE CASCADE.
    let n = c
        .execute("DELETE FROM pipelines WHERE id = ?1", [id])
        .map_err(sql_error)?;
    Ok(n > 0)
}

#[async_trait]
impl Catalog for SqliteMetadata {
    async fn get_schema(&self) -> Result<Schema> {
        self.db
            .read(|c| {
                let model: Option<String> = c
                    .query_row("SELECT model FROM customer_model WHERE id = 1", [], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(sql_error)?;
                model.map_or_else(|| Ok(Schema::default()), |m| codec::schema_from_json(&m))
            })
            .await
    }

    async fn put_schema(&self, schema: &Schema) -> Result<()> {
        let model = codec::schema_to_json(schema);
        self.db.write(move |c| put_schema_on(c, &model)).await
    }

    async fn list_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let secrets = self.secrets.clone();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {DESTINATION_COLUMNS} FROM destinations ORDER BY created_at, seq"
                    ))
                    .map_err(sql_error)?;
                collect(&mut stmt, [], |r| destination_from_row(&secrets, r))
            })
            .await
    }

    async fn get_destination(&self, id: &str) -> Result<Option<DestinationRecord>> {
        let (secrets, id) = (self.secrets.clone(), id.to_owned());
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], |r| destination_from_row(&secrets, r))?.pop())
            })
            .await
    }

    async fn insert_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let sealed = codec::seal_settings(&self.secrets, &rec.settings)?;
        let rec = rec.clone();
        self.db
            .write(move |c| insert_destination_on(c, &rec, &sealed))
            .await
    }

    async fn update_destination(&self, rec: &DestinationRecord) -> Result<()> {
        let sealed = codec::seal_settings(&self.secrets, &rec.settings)?;
        let rec = rec.clone();
        self.db
            .write(move |c| update_destination_on(c, &rec, &sealed))
            .await
    }

    async fn reseal_secrets(&self, new: &SecretBox) -> Result<usize> {
        let (old, new) = (self.secrets.clone(), new.clone());
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let stored: Vec<(String, String, String)> = {
                    let mut stmt = tx
                        .prepare("SELECT id, name, settings FROM destinations ORDER BY seq")
                        .map_err(sql_error)?;
                    collect(&mut stmt, [], |r| {
                        Ok((
                            r.get(0).map_err(sql_error)?,
                            r.get(1).map_err(sql_error)?,
                            r.get(2).map_err(sql_error)?,
                        ))
                    })?
                };
                for (id, name, sealed) in &stored {
                    let settings = codec::open_settings(&old, name, sealed)?;
                    let resealed = codec::seal_settings(&new, &settings)?;
                    tx.execute(
                        "UPDATE destinations SET settings = ?2 WHERE id = ?1",
                        params![id, resealed],
                    )
                    .map_err(sql_error)?;
                }
                tx.commit().map_err(sql_error)?;
                Ok(stored.len())
            })
            .await
    }

    async fn record_destination_test(&self, id: &str, test: &DestinationTest) -> Result<()> {
        let id = id.to_owned();
        let t = test.clone();
        self.db
            .write(move |c| {
                c.execute(
                    "INSERT INTO destination_tests (destination, tested_at, ok, code, message)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM destinations WHERE id = ?1)
                     ON CONFLICT (destination) DO UPDATE SET tested_at = excluded.tested_at,
                       ok = excluded.ok, code = excluded.code, message = excluded.message",
                    params![id, micros(&t.at), t.ok, t.code, t.message],
                )
                .map_err(sql_error)?;
                Ok(())
            })
            .await
    }

    async fn destination_tests(&self) -> Result<Vec<(String, DestinationTest)>> {
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached("SELECT destination, tested_at, ok, code, message FROM destination_tests ORDER BY destination")
                    .map_err(sql_error)?;
                collect(&mut stmt, [], |r| {
                    let id: String = r.get(0).map_err(sql_error)?;
                    let at: i64 = r.get(1).map_err(sql_error)?;
                    Ok((
                        id,
                        DestinationTest {
                            at: time(at)?,
                            ok: r.get(2).map_err(sql_error)?,
                            code: r.get(3).map_err(sql_error)?,
                            message: r.get(4).map_err(sql_error)?,
                        },
                    ))
                })
            })
            .await
    }

    async fn delete_destination(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                let deleted = delete_destination_on(&tx, &id)?;
                tx.commit().map_err(sql_error)?;
                Ok(deleted)
            })
            .await
    }

    async fn list_pipelines(&self, destination: Option<&str>) -> Result<Vec<PipelineRecord>> {
        let destination = destination.map(str::to_owned);
        self.db
            .read(move |c| match destination {
                Some(d) => {
                    let mut stmt = c
                        .prepare_cached(&format!(
                            "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE destination = ?1 ORDER BY created_at, seq"
                        ))
                        .map_err(sql_error)?;
                    collect(&mut stmt, [&d], pipeline_from_row)
                }
                None => {
                    let mut stmt = c
                        .prepare_cached(&format!("SELECT {PIPELINE_COLUMNS} FROM pipelines ORDER BY created_at, seq"))
                        .map_err(sql_error)?;
                    collect(&mut stmt, [], pipeline_from_row)
                }
            })
            .await
    }

    async fn get_pipeline(&self, id: &str) -> Result<Option<PipelineRecord>> {
        let id = id.to_owned();
        self.db
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(&format!(
                        "SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE id = ?1"
                    ))
                    .map_err(sql_error)?;
                Ok(collect(&mut stmt, [&id], pipeline_from_row)?.pop())
            })
            .await
    }

    async fn insert_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let rec = rec.clone();
        self.db.write(move |c| insert_pipeline_on(c, &rec)).await
    }

    async fn update_pipeline(&self, rec: &PipelineRecord) -> Result<()> {
        let rec = rec.clone();
        self.db.write(move |c| update_pipeline_on(c, &rec)).await
    }

    async fn delete_pipeline(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.db.write(move |c| delete_pipeline_on(c, &id)).await
    }

    async fn apply_changes(&self, changes: &CatalogChanges) -> Result<()> {
        // Secrets are sealed before the transaction, so nothing slow or fallible runs inside it but SQL.
        let seal = |recs: &[DestinationRecord]| -> Result<Vec<(DestinationRecord, String)>> {
            recs.iter()
                .map(|r| Ok((r.clone(), codec::seal_settings(&self.secrets, &r.settings)?)))
                .collect()
        };
        let inserts = seal(&changes.insert_destinations)?;
        let updates = seal(&changes.update_destinations)?;
        let model = changes.schema.as_ref().map(codec::schema_to_json);
        let changes = changes.clone();
        self.db
            .write(move |c| {
                let tx = c
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(sql_error)?;
                if let Some(model) = &model {
                    put_schema_on(&tx, model)?;
                }
                for (rec, sealed) in &inserts {
                    insert_destination_on(&tx, rec, sealed)?;
                }
                for (rec, sealed) in &updates {
                    update_destination_on(&tx, rec, sealed)?;
                }
                for id in &changes.delete_pipelines {
                    if !delete_pipeline_on(&tx, id)? {
                        return Err(StoreError::NotFound(format!(
                            "pipeline `{id}` does not exist"
                        )));
                    }
                }
                for rec in &changes.update_pipelines {
                    update_pipeline_on(&tx, rec)?;
                }
                for rec in &changes.insert_pipelines {
                    insert_pipeline_on(&tx, rec)?;
                }
                for id in &changes.delete_destinations {
                    if !delete_destination_on(&tx, id)? {
                        return Err(StoreError::NotFound(format!(
                            "destination `{id}` does not exist"
                        )));
                    }
                }
                tx.commit().map_err(sql_error)
            })
            .await
    }
}
