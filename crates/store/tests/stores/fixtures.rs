//! Records and result checks the metadata cases share.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sluice_core::pipeline::PipelineSpec;
use sluice_store::{
    Counts, DestinationRecord, MetadataStore, PipelineRecord, Progress, RunRecord, RunStatus,
    SecretBox, StoreError, SyncEntry, SyncKey,
};

use crate::harness::Env;

pub const PASSWORD: &str = "s3cr3t-pässwörd-🔑";

pub const PRIVATE_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";

pub fn at(minute: i64) -> DateTime<Utc> {
    "2026-11-29T10:00:00.123456Z"
        .parse::<DateTime<Utc>>()
        .unwrap()
        + Duration::minutes(minute)
}

pub fn destination(id: &str, name: &str, minute: i64) -> DestinationRecord {
    DestinationRecord {
        id: id.into(),
        name: name.into(),
        kind: "postgresql".into(),
        settings: json!({
            "host": "db.example.com", "port": 5432, "username": "sluice", "password": PASSWORD,
            "database": "crm", "schema": "public", "tls": {"mode": "require"}
        }),
        created_at: at(minute),
        updated_at: at(minute),
    }
}

/// A metadata store of `env` (under a new key) holding the destination `d` and, writing to it, a pipeline
/// for each `(id, name, minute)`.
pub async fn with_pipelines(env: &Env, pipelines: &[(&str, &str, i64)]) -> Arc<dyn MetadataStore> {
    let store = env.metadata(SecretBox::generate()).await;
    store
        .insert_destination(&destination("d", "Warehouse", 0))
        .await
        .unwrap();
    for &(id, name, minute) in pipelines {
        store
            .insert_pipeline(&pipeline(id, "d", name, minute))
            .await
            .unwrap();
    }
    store
}

pub fn pipeline(id: &str, destination: &str, name: &str, minute: i64) -> PipelineRecord {
    let spec: PipelineSpec = serde_json::from_value(json!({
        "destination": destination, "name": name, "description": "Customers who said yes",
        "filter": {"logical": "and", "conditions": [{"property": "country", "operator": "is one of", "values": ["IT", "FR"]}]},
        "table": "customers", "key": "customer_id",
        // Deliberately not alphabetical: the mapping keeps the order the user wrote.
        "transformation": {"mapping": {"customer_id": "_id", "zip": "address.zip", "email": "lower(email)"}},
        "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Rome"}, "on_leave": "delete"
    }))
    .unwrap();
    PipelineRecord {
        id: id.into(),
        spec,
        created_at: at(minute),
        updated_at: at(minute),
    }
}

pub fn run(id: &str, pipeline: &str, minute: i64, status: RunStatus) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        trigger: "manual".into(),
        changes: None,
        status,
        queued_at: at(minute),
        started_at: None,
        finished_at: None,
        progress: Progress::default(),
        counts: Counts::default(),
        errors: Vec::new(),
        message: None,
    }
}

pub fn entry(profile: &str, key: &str, hash: u128) -> SyncEntry {
    SyncEntry::written(profile, SyncKey::from_stored(key), hash)
}

pub fn conflict(r: sluice_store::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(StoreError::Conflict(m)) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

pub fn not_found(r: sluice_store::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(StoreError::NotFound(m)) => m,
        other => panic!("expected not found, got {other:?}"),
    }
}
