//! A source polled every 5 s by two instances: two engines sharing one PostgreSQL metadata store and
//! profile store, each with its scheduler on the system's clock and a `scheduler_interval` (30 s) longer
//! than the test, run the source once per tick between them, each run within a second of its tick and
//! none overlapping the one before; a row inserted into the PostgreSQL source table is in the profile
//! store within a tick and a run.
//!
//! Needs `SLUICE_TEST_POSTGRES_URL`; the test works in schemas of its own and drops them at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde_json::json;
use sluice_core::schema::SchemaWire;
use sluice_core::source::SourceSpec;
use sluice_core::Schema;
use sluice_engine::scheduler::{self, SystemClock};
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{DestinationRecord, RunStatus, SecretBox, SourceRecord};

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL").expect(
        "SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)",
    )
}

/// The PostgreSQL URL with `schema` first on the search path.
fn url_in(schema: &str) -> String {
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

async fn pg(sql: &str) {
    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn instance(name: &str, dir: &std::path::Path, meta: &str, profiles: &str) -> Engine {
    let secrets = SecretBox::load_or_create(dir).unwrap();
    let meta = sluice_store::open_metadata(Some(&url_in(meta)), dir, secrets)
        .await
        .unwrap();
    let profiles = sluice_store::open_profiles(Some(&url_in(profiles)), dir)
        .await
        .unwrap();
    Engine::new(
        meta,
        profiles,
        EngineConfig {
            scheduler_interval: Duration::from_secs(30),
            instance: Some(name.into()),
            ..EngineConfig::default()
        },
    )
}

/// How long after the latest 5 s tick `t` is.
fn past_tick(t: DateTime<Utc>) -> TimeDelta {
    TimeDelta::seconds(i64::from(t.second() % 5))
        + TimeDelta::nanoseconds(i64::from(t.nanosecond()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_run_a_five_second_source_once_per_tick() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (meta_schema, profiles_schema, src_schema) = (
        format!("st_meta_{id}"),
        format!("st_prof_{id}"),
        format!("st_src_{id}"),
    );
    pg(&format!(
        "CREATE SCHEMA {meta_schema}; CREATE SCHEMA {profiles_schema}; CREATE SCHEMA {src_schema}; \
         CREATE TABLE {src_schema}.people (id text PRIMARY KEY, email text NOT NULL, \
           updated_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
         INSERT INTO {src_schema}.people (id, email) VALUES ('p1', 'One@Example.com')"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    // One after the other: the first creates the stores' tables.
    let a = instance("inst-a", dir.path(), &meta_schema, &profiles_schema).await;
    let b = instance("inst-b", dir.path(), &meta_schema, &profiles_schema).await;
    let wire: SchemaWire =
        serde_json::from_value(json!({"properties": [{"name": "email", "type": "string"}]}))
            .unwrap();
    a.meta()
        .put_schema(&Schema::from_wire(&wire).unwrap())
        .await
        .unwrap();
    let now = Utc::now();
    let mut settings =
        sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    settings["schema"] = json!(src_schema);
    settings["tls"] = json!({"mode": "disable"});
    let connection = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "crm".into(),
        kind: "postgresql".into(),
        settings,
        created_at: now,
        updated_at: now,
    };
    a.meta().insert_destination(&connection).await.unwrap();
    let spec: SourceSpec = serde_json::from_value(json!({
        "connection": connection.id, "name": "people", "table": "people", "id_column": "id",
        "transformation": {"mapping": {"email": "lower(email)"}},
        "changes": {"mode": "cursor", "column": "updated_at"},
        "schedule": "5s"
    }))
    .unwrap();
    let source = SourceRecord {
        id: sluice_engine::new_id("src"),
        spec,
        created_at: now,
        updated_at: now,
    };
    a.meta().insert_source(&source).await.unwrap();

    let started = Instant::now();
    let schedulers = [
        scheduler::spawn(a.clone(), Arc::new(SystemClock)),
        scheduler::spawn(b.clone(), Arc::new(SystemClock)),
    ];
    // The first tick runs the source (first seen at the scheduler's first pass): p1 lands.
    let profiles = a.profiles().clone();
    let wait_for = |id: &'static str, email: &'static str, limit: Duration| {
        let profiles = profiles.clone();
        async move {
            let from = Instant::now();
            loop {
                let got = profiles.get(id).await.unwrap();
                if got.as_ref().map(|p| p.to_json()["email"].clone()) == Some(json!(email)) {
                    return from.elapsed();
                }
                assert!(
                    from.elapsed() < limit,
                    "{id} not in the profiles after {limit:?}: {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_for("p1", "one@example.com", Duration::from_secs(12)).await;
    // A row inserted now is read by the next tick's run.
    pg(&format!(
        "INSERT INTO {src_schema}.people (id, email) VALUES ('p2', 'Two@Example.com')"
    ))
    .await;
    let took = wait_for("p2", "two@example.com", Duration::from_secs(10)).await;
    eprintln!("the insert reached the profile store in {took:?}");
    // Let a few more ticks pass, then stop both schedulers and let the last run end.
    tokio::time::sleep(Duration::from_secs(21).saturating_sub(started.elapsed())).await;
    for s in &schedulers {
        s.abort();
    }
    for e in [&a, &b] {
        while e.active_run(&source.id).is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut runs = a.meta().list_runs(&source.id, 100, None).await.unwrap();
    runs.sort_by_key(|r| r.queued_at);
    // 21 s hold four ticks at least after the first sight; each tick one run, from either instance.
    assert!(runs.len() >= 3, "{runs:?}");
    let mut ticks = std::collections::HashSet::new();
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r.trigger, "schedule");
        assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.message);
        let previous_end = i.checked_sub(1).and_then(|p| runs[p].finished_at);
        if let Some(end) = previous_end {
            assert!(
                r.queued_at >= end,
                "two runs of the source at once: {runs:?}"
            );
        }
        // A follow-up (a tick fell during the run before) starts when that run ends, not on a tick.
        let follow_up = previous_end.is_some_and(|end| r.queued_at - end < TimeDelta::seconds(1));
        assert!(
            past_tick(r.queued_at) < TimeDelta::seconds(1) || follow_up,
            "a run queued {} after its tick: {runs:?}",
            past_tick(r.queued_at)
        );
        if !follow_up {
            let tick = r.queued_at.timestamp().div_euclid(5);
            assert!(ticks.insert(tick), "two runs for one tick: {runs:?}");
        }
    }
    pg(&format!(
        "DROP SCHEMA {meta_schema} CASCADE; DROP SCHEMA {profiles_schema} CASCADE; DROP SCHEMA {src_schema} CASCADE"
    ))
    .await;
}
