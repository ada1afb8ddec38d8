//! `on_change` export pipelines: the scheduler follows the profile store's changes, debounced, never two
//! runs at once, one start per burst across instances — on the embedded stores and on PostgreSQL (two
//! engines sharing one store), writing into a real SQLite destination.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_engine::scheduler;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{
    ChangeCounts, DestinationRecord, MetadataStore, PipelineRecord, ProfileStore, RunRecord,
    RunStatus, SecretBox,
};

#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Postgres,
}

struct World {
    /// One engine per instance, each with its own connections to the stores.
    engines: Vec<Engine>,
    schema: Schema,
    dest: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A PostgreSQL schema of its own for a test's stores, named in the URL's search path.
async fn pg_store_url() -> String {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
    let schema = format!("onchange_{}", uuid::Uuid::new_v4().simple());
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

async fn world(backend: Backend, instances: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(pg_store_url().await),
    };
    let secrets = SecretBox::generate();
    let mut stores: Vec<(Arc<dyn MetadataStore>, Arc<dyn ProfileStore>)> = Vec::new();
    for _ in 0..instances {
        let meta = sluice_store::open_metadata(url.as_deref(), dir.path(), secrets.clone())
            .await
            .unwrap();
        let profiles = sluice_store::open_profiles(url.as_deref(), dir.path())
            .await
            .unwrap();
        stores.push((meta, profiles));
    }
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"}]}))
    .unwrap();
    let schema = Schema::from_wire(&wire).unwrap();
    let meta = &stores[0].0;
    meta.put_schema(&schema).await.unwrap();
    let db = dir.path().join("dest.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT NOT NULL)")
        .unwrap();
    let now = Utc::now();
    let dest = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "dest".into(),
        kind: "sqlite".into(),
        settings: json!({"path": db.to_string_lossy()}),
        created_at: now,
        updated_at: now,
    };
    meta.insert_destination(&dest).await.unwrap();
    let engines = stores
        .into_iter()
        .enumerate()
        .map(|(i, (meta, profiles))| {
            let config = EngineConfig {
                instance: Some(format!("onchange-instance-{i}")),
                ..EngineConfig::default()
            };
            Engine::new(meta, profiles, config)
        })
        .collect();
    let w = World {
        engines,
        schema,
        dest: dest.id,
        db,
        _dir: dir,
    };
    w.write((0..20).collect()).await;
    w
}

impl World {
    fn engine(&self) -> &Engine {
        &self.engines[0]
    }

    async fn pipeline(&self, extra: serde_json::Value) -> String {
        let mut spec = json!({
            "destination": self.dest, "name": format!("p-{}", uuid::Uuid::new_v4()),
            "table": "people", "key": "id", "schedule": "on_change",
            "transformation": {"mapping": {"id": "_id", "email": "lower(email)"}},
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        let spec: PipelineSpec = serde_json::from_value(spec).unwrap();
        assert!(spec.check_shape().is_empty(), "{}", spec.check_shape());
        let now = Utc::now();
        let rec = PipelineRecord {
            id: sluice_engine::new_id("pl"),
            spec,
            created_at: now,
            updated_at: now,
        };
        self.engine().meta().insert_pipeline(&rec).await.unwrap();
        rec.id
    }

    /// Profiles `ids`, each written by a request of its own (as a burst of API calls would).
    async fn write(&self, ids: Vec<usize>) {
        for i in ids {
            let p = json!({"_id": format!("c{i:05}"), "email": format!("U{i}@Example.com")});
            let p = self
                .schema
                .validate_profile(p.as_object().unwrap())
                .unwrap();
            self.engine().profiles().upsert(vec![p]).await.unwrap();
        }
    }

    async fn runs(&self, pipeline: &str) -> Vec<RunRecord> {
        self.engine()
            .meta()
            .list_runs(pipeline, 100, None)
            .await
            .unwrap()
    }

    /// Waits until no instance has a run of the pipeline going.
    async fn settle(&self, pipeline: &str) {
        for _ in 0..500 {
            let going = self
                .engines
                .iter()
                .any(|e| e.active_run(pipeline).is_some());
            if !going {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the run of {pipeline} did not finish");
    }

    /// One look by every instance at once, at `now`; the pipelines started, over all instances.
    async fn look(&self, pipeline: &str, now: DateTime<Utc>) -> Vec<String> {
        // Polled together, so that the instances race for the cursor.
        let passes =
            futures::future::join_all(self.engines.iter().map(|e| scheduler::tick(e, now))).await;
        self.settle(pipeline).await;
        passes
            .into_iter()
            .flat_map(|p| p.unwrap().on_change)
            .collect()
    }

    fn rows(&self) -> i64 {
        rusqlite::Connection::open(&self.db)
            .unwrap()
            .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
            .unwrap()
    }
}

fn secs(t0: DateTime<Utc>, s: i64) -> DateTime<Utc> {
    t0 + TimeDelta::seconds(s)
}

/// The scenario every backend goes through: a catch-up run at first sight, nothing without changes, one
/// run for a burst of 50 writes after a quiet moment, naming the 50 changes, and changes during a run
/// making one run after it.
async fn follows_changes(backend: Backend, instances: usize) {
    let w = world(backend, instances).await;
    let p = w.pipeline(json!({})).await;
    let t0 = Utc::now();

    // First sight: what changed since the pipeline last ran is unknown, so it runs once at once.
    assert_eq!(w.look(&p, t0).await, vec![p.clone()]);
    let runs = w.runs(&p).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, "on_change");
    assert_eq!(runs[0].changes, None);
    assert_eq!(
        runs[0].status,
        RunStatus::Succeeded,
        "{:?}",
        runs[0].message
    );
    assert_eq!(w.rows(), 20);

    // Nothing changed: nothing starts, however long one waits.
    for s in [1, 5, 60] {
        assert!(w.look(&p, secs(t0, s)).await.is_empty());
    }

    // A burst of 50 writes (new profiles) with looks in between: one run, after the
    // count stopped growing for the quiet moment.
    let mut started = Vec::new();
    for (k, chunk) in (20..70).collect::<Vec<_>>().chunks(10).enumerate() {
        w.write(chunk.to_vec()).await;
        started.extend(w.look(&p, secs(t0, 100 + k as i64)).await);
    }
    assert!(
        started.is_empty(),
        "no run while the burst goes on: {started:?}"
    );
    assert!(w.look(&p, secs(t0, 105)).await.is_empty(), "quiet for 1s");
    assert_eq!(w.look(&p, secs(t0, 107)).await, vec![p.clone()]);
    assert!(w.look(&p, secs(t0, 110)).await.is_empty());
    assert!(w.look(&p, secs(t0, 130)).await.is_empty());
    let runs = w.runs(&p).await;
    assert_eq!(runs.len(), 2, "one run for the burst");
    let run = &runs[0];
    assert_eq!(run.trigger, "on_change");
    assert_eq!(
        run.changes,
        Some(ChangeCounts {
            changed: 50,
            deleted: 0
        }),
        "the run names the changes that set it off"
    );
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.message);
    assert_eq!(run.counts.inserted, 50);
    assert_eq!(w.rows(), 70);

    // A delete is a change too (the row stays: `on_leave` is `keep`).
    assert!(w.engine().profiles().delete("c00000").await.unwrap());
    assert!(w.look(&p, secs(t0, 200)).await.is_empty());
    assert_eq!(w.look(&p, secs(t0, 203)).await, vec![p.clone()]);
    assert_eq!(
        w.runs(&p).await[0].changes,
        Some(ChangeCounts {
            changed: 0,
            deleted: 1
        })
    );

    // Changes while a run of the pipeline is going (held by another instance): nothing starts until it
    // ends, then exactly one run.
    let held = held_elsewhere(&w, &p).await;
    w.write(vec![70, 71]).await;
    for s in [300, 303, 310, 330] {
        assert!(w.look(&p, secs(t0, s)).await.is_empty(), "busy at {s}");
    }
    w.write(vec![72]).await;
    assert!(w.look(&p, secs(t0, 331)).await.is_empty());
    let mut done = held.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(Utc::now());
    w.engine().meta().update_run(&done).await.unwrap();
    // Counted once the pipeline is free, then debounced like any other changes.
    assert!(w.look(&p, secs(t0, 332)).await.is_empty());
    assert_eq!(w.look(&p, secs(t0, 334)).await, vec![p.clone()]);
    assert!(w.look(&p, secs(t0, 340)).await.is_empty());
    let runs = w.runs(&p).await;
    assert_eq!(
        runs[0].changes,
        Some(ChangeCounts {
            changed: 3,
            deleted: 0
        })
    );
    assert_eq!(w.rows(), 73);
}

/// A run held by another (live) instance: the pipeline is busy for the scheduler.
async fn held_elsewhere(w: &World, pipeline: &str) -> RunRecord {
    let run = RunRecord {
        id: sluice_engine::new_id("run"),
        pipeline: pipeline.into(),
        trigger: "manual".into(),
        changes: None,
        status: RunStatus::Running,
        queued_at: Utc::now(),
        started_at: Some(Utc::now()),
        finished_at: None,
        progress: Default::default(),
        counts: Default::default(),
        errors: Vec::new(),
        message: None,
    };
    let claimed = w
        .engine()
        .meta()
        .claim_run(&run, "another-instance", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(claimed, None);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_follows_changes_with_the_embedded_stores() {
    follows_changes(Backend::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_change_follows_changes_with_postgresql_stores() {
    follows_changes(Backend::Postgres, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgresql_store_start_one_run_per_burst() {
    follows_changes(Backend::Postgres, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_many_times_never_both_start() {
    let w = world(Backend::Postgres, 2).await;
    let p = w.pipeline(json!({})).await;
    let t0 = Utc::now();
    assert_eq!(w.look(&p, t0).await.len(), 1);
    for round in 0..10i64 {
        w.write(vec![100 + round as usize]).await;
        let base = 10 * (round + 1);
        assert!(w.look(&p, secs(t0, base)).await.is_empty());
        let started = w.look(&p, secs(t0, base + 3)).await;
        assert_eq!(started, vec![p.clone()], "round {round}: exactly one start");
    }
    assert_eq!(w.runs(&p).await.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_pipelines_wait_and_run_once_enabled() {
    let w = world(Backend::Sqlite, 1).await;
    let p = w.pipeline(json!({})).await;
    let t0 = Utc::now();
    assert_eq!(w.look(&p, t0).await.len(), 1);
    let mut rec = w.engine().meta().get_pipeline(&p).await.unwrap().unwrap();
    rec.spec.enabled = false;
    w.engine().meta().update_pipeline(&rec).await.unwrap();
    w.write(vec![40, 41]).await;
    for s in [10, 13, 60] {
        assert!(w.look(&p, secs(t0, s)).await.is_empty(), "disabled at {s}");
    }
    rec.spec.enabled = true;
    w.engine().meta().update_pipeline(&rec).await.unwrap();
    assert!(w.look(&p, secs(t0, 100)).await.is_empty(), "debounced");
    assert_eq!(w.look(&p, secs(t0, 103)).await, vec![p.clone()]);
    assert_eq!(w.rows(), 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_interval_beside_on_change_reconciles_without_changes() {
    let w = world(Backend::Sqlite, 1).await;
    let p = w.pipeline(json!({"reconcile_every": "1h"})).await;
    let t0 = Utc::now();
    let pass = scheduler::tick(w.engine(), t0).await.unwrap();
    w.settle(&p).await;
    assert_eq!(pass.reconciles, vec![p.clone()], "the first run reconciles");
    assert!(w.look(&p, secs(t0, 60)).await.is_empty());
    // Someone empties the table; no profile changes, but an hour later the reconcile repairs it.
    rusqlite::Connection::open(&w.db)
        .unwrap()
        .execute_batch("DELETE FROM people")
        .unwrap();
    let pass = scheduler::tick(w.engine(), secs(t0, 3601)).await.unwrap();
    w.settle(&p).await;
    assert_eq!(pass.reconciles, vec![p.clone()]);
    let run = &w.runs(&p).await[0];
    assert_eq!(run.trigger, "schedule");
    assert_eq!(w.rows(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_another_store_counts_as_unknown() {
    let w = world(Backend::Sqlite, 1).await;
    let store = w.engine().profiles();
    assert_eq!(store.count_changes_after("pg:1:2:").await.unwrap(), None);
    assert_eq!(store.count_changes_after("garbage").await.unwrap(), None);
    let cursor = store.change_cursor().await.unwrap();
    assert_eq!(
        store.count_changes_after(&cursor).await.unwrap(),
        Some(ChangeCounts::default())
    );
}

/// The cost of a look for changes, which every instance makes every second while any pipeline is
/// `on_change`: printed for BENCHMARKS.md, with a generous bound so that a regression (a query per
/// pipeline beyond the one count per cursor) fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_look_for_changes_over_a_thousand_pipelines() {
    let w = world(Backend::Sqlite, 1).await;
    let meta = w.engine().meta();
    let now = Utc::now();
    for i in 0..1000 {
        let schedule = if i % 10 == 0 {
            json!("on_change")
        } else {
            json!("5m")
        };
        let spec: PipelineSpec = serde_json::from_value(json!({
            "destination": w.dest, "name": format!("p{i}"), "table": "people", "key": "id",
            "transformation": {"mapping": {"id": "_id"}}, "schedule": schedule,
        }))
        .unwrap();
        let id = format!("pl{i:04}");
        meta.insert_pipeline(&PipelineRecord {
            id: id.clone(),
            spec,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
        if i % 10 == 0 {
            // Each of the 100 followed as if its last run started at a different moment.
            w.write(vec![1000 + i]).await;
            let cursor = w.engine().profiles().change_cursor().await.unwrap();
            assert!(meta
                .advance_change_cursor(&id, None, Some(&cursor))
                .await
                .unwrap());
        }
    }
    let t = std::time::Instant::now();
    let pass = scheduler::follow_changes(w.engine(), now).await.unwrap();
    let pending = t.elapsed();
    assert!(pass.started.is_empty(), "debounced");
    let t = std::time::Instant::now();
    let pass = scheduler::follow_changes(w.engine(), now + TimeDelta::milliseconds(500))
        .await
        .unwrap();
    let steady = t.elapsed();
    assert!(pass.started.is_empty());
    eprintln!(
        "look for changes over 1000 pipelines (100 on_change, 100 cursors): {pending:?}, again {steady:?}"
    );
    assert!(steady < Duration::from_secs(5), "{steady:?}");
}
