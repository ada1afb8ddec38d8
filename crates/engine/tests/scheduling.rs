//! The scheduler driven by an explicit clock, concurrency limits, queued-run cancel, the failed-rows
//! threshold and webhook alerts — with the embedded stores, a real SQLite destination and a real (local)
//! HTTP listener for the webhooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_engine::scheduler;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{
    Counts, DestinationRecord, PipelineRecord, Progress, RunRecord, RunStatus, SecretBox,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    engine: Engine,
    dest: String,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn world(config: EngineConfig, profiles: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let meta = sluice_store::open_metadata(None, dir.path(), SecretBox::generate())
        .await
        .unwrap();
    let store = sluice_store::open_profiles(None, dir.path()).await.unwrap();
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string"}]}))
    .unwrap();
    let schema = Schema::from_wire(&wire).unwrap();
    meta.put_schema(&schema).await.unwrap();
    let batch: Vec<_> = (0..profiles)
        .map(|i| {
            let p = json!({"_id": format!("c{i:05}"), "email": format!("U{i}@Example.com")});
            schema.validate_profile(p.as_object().unwrap()).unwrap()
        })
        .collect();
    store.upsert(batch).await.unwrap();
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
    World {
        engine: Engine::new(meta, store, config),
        dest: dest.id,
        db,
        _dir: dir,
    }
}

impl World {
    async fn pipeline(&self, extra: Value) -> String {
        let mut spec = json!({
            "destination": self.dest, "name": format!("p-{}", uuid::Uuid::new_v4()),
            "table": "people", "key": "id",
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
        self.engine.meta().insert_pipeline(&rec).await.unwrap();
        rec.id
    }

    async fn runs(&self, pipeline: &str) -> Vec<RunRecord> {
        self.engine
            .meta()
            .list_runs(pipeline, 100, None)
            .await
            .unwrap()
    }

    async fn settle(&self, pipeline: &str) {
        for _ in 0..200 {
            if self.engine.active_run(pipeline).is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the run of {pipeline} did not finish");
    }

    fn exec(&self, sql: &str) {
        rusqlite::Connection::open(&self.db)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    fn rows(&self) -> i64 {
        rusqlite::Connection::open(&self.db)
            .unwrap()
            .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
            .unwrap()
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// A run held by another (live) instance: the pipeline is busy for the scheduler.
async fn held_elsewhere(w: &World, pipeline: &str) -> RunRecord {
    let run = RunRecord {
        id: sluice_engine::new_id("run"),
        pipeline: pipeline.into(),
        trigger: "schedule".into(),
        changes: None,
        status: RunStatus::Running,
        queued_at: Utc::now(),
        started_at: Some(Utc::now()),
        finished_at: None,
        progress: Progress::default(),
        counts: Counts::default(),
        errors: Vec::new(),
        message: None,
    };
    let claimed = w
        .engine
        .meta()
        .claim_run(&run, "another-instance", Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(claimed, None);
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_drives_scheduled_runs() {
    let w = world(EngineConfig::default(), 20).await;
    let p = w.pipeline(json!({"schedule": "5m"})).await;
    let off = w.pipeline(json!({"schedule": null})).await;
    let disabled = w
        .pipeline(json!({"schedule": "5m", "enabled": false}))
        .await;

    // First sight: nothing runs before the first tick.
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:01:00Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty(), "{pass:?}");
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:04:59Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty(), "{pass:?}");

    // The tick at 10:05 starts one run of the scheduled, enabled pipeline.
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:05:01Z"))
        .await
        .unwrap();
    assert_eq!(pass.started, vec![p.clone()]);
    w.settle(&p).await;
    let runs = w.runs(&p).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger, "schedule");
    assert_eq!(
        runs[0].status,
        RunStatus::Succeeded,
        "{:?}",
        runs[0].message
    );
    assert_eq!(w.rows(), 20);
    assert!(w.runs(&off).await.is_empty());
    assert!(w.runs(&disabled).await.is_empty());

    // Seen again within the same tick: nothing more.
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:06:00Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty());

    // Three ticks fall while another instance runs the pipeline: one follow-up, not three.
    let held = held_elsewhere(&w, &p).await;
    for now in [
        "2026-11-29T10:10:01Z",
        "2026-11-29T10:15:01Z",
        "2026-11-29T10:20:01Z",
    ] {
        let pass = scheduler::tick(&w.engine, at(now)).await.unwrap();
        assert!(pass.started.is_empty(), "{now}: {pass:?}");
    }
    let rec = w.engine.meta().get_pipeline(&p).await.unwrap().unwrap();
    let now = at("2026-11-29T10:20:30Z");
    assert_eq!(
        scheduler::next_run(&w.engine, &rec, now)
            .await
            .map(|t| t <= now),
        Some(true),
        "a pending follow-up is due now"
    );
    let mut done = held.clone();
    done.status = RunStatus::Succeeded;
    done.finished_at = Some(Utc::now());
    w.engine.meta().update_run(&done).await.unwrap();
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:21:00Z"))
        .await
        .unwrap();
    assert_eq!(pass.started, vec![p.clone()], "the follow-up");
    w.settle(&p).await;
    let pass = scheduler::tick(&w.engine, at("2026-11-29T10:22:00Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty(), "only one follow-up");
    assert_eq!(w.runs(&p).await.len(), 3);

    // Down from 10:22 to 18:00: the missed ticks cause one run.
    let pass = scheduler::tick(&w.engine, at("2026-11-29T18:00:30Z"))
        .await
        .unwrap();
    assert_eq!(pass.started, vec![p.clone()]);
    w.settle(&p).await;
    let pass = scheduler::tick(&w.engine, at("2026-11-29T18:01:00Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty());
    assert_eq!(w.runs(&p).await.len(), 4);
    let rec = w.engine.meta().get_pipeline(&p).await.unwrap().unwrap();
    let next = scheduler::next_run(&w.engine, &rec, at("2026-11-29T18:01:00Z"))
        .await
        .unwrap();
    assert_eq!(next, at("2026-11-29T18:05:00Z"));

    // Disabled: ticks pass unused, and enabling later does not catch up.
    let mut rec = rec;
    rec.spec.enabled = false;
    w.engine.meta().update_pipeline(&rec).await.unwrap();
    assert_eq!(
        scheduler::next_run(&w.engine, &rec, at("2026-11-29T18:01:00Z")).await,
        None
    );
    let pass = scheduler::tick(&w.engine, at("2026-11-29T19:00:30Z"))
        .await
        .unwrap();
    assert!(pass.started.is_empty());
    rec.spec.enabled = true;
    w.engine.meta().update_pipeline(&rec).await.unwrap();
    let pass = scheduler::tick(&w.engine, at("2026-11-29T19:01:00Z"))
        .await
        .unwrap();
    assert!(
        pass.started.is_empty(),
        "no catch-up for ticks passed while disabled"
    );
    let pass = scheduler::tick(&w.engine, at("2026-11-29T19:05:01Z"))
        .await
        .unwrap();
    assert_eq!(pass.started, vec![p.clone()]);
    w.settle(&p).await;
}

/// One scheduler pass at `now`, waiting for the runs it started.
async fn pass_at(w: &World, pipelines: &[&str], now: &str) -> scheduler::Pass {
    let pass = scheduler::tick(&w.engine, at(now)).await.unwrap();
    for p in pipelines {
        w.settle(p).await;
    }
    pass
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_every_makes_a_scheduled_run_a_reconcile_when_due() {
    let w = world(EngineConfig::default(), 20).await;
    let p = w
        .pipeline(json!({"schedule": "5m", "reconcile_every": "1h"}))
        .await;
    let plain = w.pipeline(json!({"schedule": "5m"})).await;
    let ids = [p.as_str(), plain.as_str()];
    pass_at(&w, &ids, "2026-11-29T10:01:00Z").await;

    // Never reconciled: the first scheduled run is a reconcile; a pipeline without the setting is not.
    let pass = pass_at(&w, &ids, "2026-11-29T10:05:01Z").await;
    assert_eq!(pass.started.len(), 2, "{pass:?}");
    assert_eq!(pass.reconciles, vec![p.clone()]);
    let first = &w.runs(&p).await[0];
    assert_eq!(first.status, RunStatus::Succeeded, "{:?}", first.message);
    assert!(
        first
            .message
            .as_deref()
            .unwrap_or("")
            .contains("reconciled"),
        "{:?}",
        first.message
    );

    // Someone edits a row; the count still agrees, so normal runs leave it for the next reconcile.
    w.exec("UPDATE people SET email = 'edited' WHERE id = 'c00003'");
    for minute in (10..=55).step_by(5) {
        let now = format!("2026-11-29T10:{minute:02}:01Z");
        let pass = pass_at(&w, &ids, &now).await;
        assert!(pass.started.contains(&p), "{now}: {pass:?}");
        assert!(pass.reconciles.is_empty(), "{now}: {pass:?}");
    }
    // 11:00 is 55 minutes after the 10:05 tick the reconcile started on.
    let pass = pass_at(&w, &ids, "2026-11-29T11:00:01Z").await;
    assert!(
        pass.started.contains(&p) && pass.reconciles.is_empty(),
        "{pass:?}"
    );
    let edited: i64 = rusqlite::Connection::open(&w.db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM people WHERE email = 'edited'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(edited, 1, "normal runs do not read rows back");

    // An hour after the last reconcile's tick: a reconcile again, which rewrites the edited row.
    let pass = pass_at(&w, &ids, "2026-11-29T11:05:01Z").await;
    assert_eq!(pass.reconciles, vec![p.clone()], "{pass:?}");
    let last = &w.runs(&p).await[0];
    assert_eq!(last.status, RunStatus::Succeeded, "{:?}", last.message);
    assert!(
        last.message
            .as_deref()
            .unwrap_or("")
            .contains("1 rows changed"),
        "{:?}",
        last.message
    );
    let edited: i64 = rusqlite::Connection::open(&w.db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM people WHERE email = 'edited'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(edited, 0);
    assert_eq!(
        w.engine.meta().last_reconcile(&p).await.unwrap(),
        Some(at("2026-11-29T11:05:00Z"))
    );
    assert_eq!(w.engine.meta().last_reconcile(&plain).await.unwrap(), None);
    let pass = pass_at(&w, &ids, "2026-11-29T11:10:01Z").await;
    assert!(
        pass.started.contains(&p) && pass.reconciles.is_empty(),
        "{pass:?}"
    );
    assert_eq!(w.runs(&p).await.len(), 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_queue_runs_and_cancel_ends_a_queued_one() {
    let w = world(
        EngineConfig {
            max_concurrent_runs: 1,
            batch_size: Some(5),
            ..EngineConfig::default()
        },
        2000,
    )
    .await;
    let a = w.pipeline(json!({})).await;
    let b = w.pipeline(json!({})).await;
    let c = w.pipeline(json!({})).await;
    let ra = w.engine.start(&a, "manual").await.unwrap();
    let rb = w.engine.start(&b, "manual").await.unwrap();
    let rc = w.engine.start(&c, "manual").await.unwrap();
    assert_eq!(ra.status, RunStatus::Running);
    assert_eq!(rb.status, RunStatus::Queued, "one slot: the others wait");
    assert_eq!(rc.status, RunStatus::Queued);
    assert_eq!(
        w.engine
            .meta()
            .get_run(&rb.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Queued
    );
    // Run now on a pipeline whose run is queued: already running.
    assert!(matches!(
        w.engine.start(&b, "manual").await,
        Err(sluice_engine::StartError::AlreadyRunning { .. })
    ));
    assert!(w.engine.cancel(&rc.id));
    let done_c = w.engine.wait(&rc.id, |_| {}).await.unwrap();
    assert_eq!(done_c.status, RunStatus::Cancelled);
    assert_eq!(
        done_c.counts.read, 0,
        "a cancelled queued run never started"
    );
    let done_a = w.engine.wait(&ra.id, |_| {}).await.unwrap();
    let done_b = w.engine.wait(&rb.id, |_| {}).await.unwrap();
    assert_eq!(done_a.status, RunStatus::Succeeded, "{:?}", done_a.message);
    assert_eq!(done_b.status, RunStatus::Succeeded, "{:?}", done_b.message);
    assert!(
        done_b.started_at.unwrap() >= done_a.finished_at.unwrap(),
        "b started after a finished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_keeps_the_sync_state_true() {
    let w = world(
        EngineConfig {
            batch_size: Some(10),
            ..EngineConfig::default()
        },
        3000,
    )
    .await;
    let p = w.pipeline(json!({})).await;
    let run = w.engine.start(&p, "manual").await.unwrap();
    // Let a few batches land, then cancel.
    for _ in 0..500 {
        let live = w.engine.live(&run.id);
        if live.is_none_or(|r| r.progress.processed >= 50) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    w.engine.cancel(&run.id);
    let done = w.engine.wait(&run.id, |_| {}).await.unwrap();
    if done.status == RunStatus::Cancelled {
        assert!(w.rows() < 3000);
    }
    // The next run writes exactly what is missing: the sync state holds what was written.
    let written = w.rows() as u64;
    let next = w.engine.start(&p, "manual").await.unwrap();
    let next = w.engine.wait(&next.id, |_| {}).await.unwrap();
    assert_eq!(next.status, RunStatus::Succeeded, "{:?}", next.message);
    assert_eq!(next.counts.inserted, 3000 - written);
    assert_eq!(next.counts.unchanged, written);
    assert_eq!(w.rows(), 3000);
}

/// A dry run's record once it has finished.
async fn dry_run_end(w: &World, id: &str) -> RunRecord {
    for _ in 0..1500 {
        let d = w.engine.get_dry_run(id).await.unwrap().unwrap();
        if d.run.status.is_finished() {
            return d.run;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the dry run {id} did not finish");
}

/// Dry runs have slots of their own. With one run slot, one dry-run slot and two waiting places (a fourth
/// dry run is refused), three dry runs of a script
/// that never returns leave the run slot free: a real run starts at once and finishes beside them. A
/// cancel ends a queued dry run before it starts and a running one within moments (its script's time
/// limit is 60 s, so only an interrupted call ends in time); shutdown stops the last one. The limit is
/// also how long the real run has to finish before the first dry run times out and the queued ones
/// move up: 10 s once proved too short on a stalled CI machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_have_slots_of_their_own_and_can_be_cancelled() {
    let w = world(
        EngineConfig {
            max_concurrent_runs: 1,
            max_concurrent_dry_runs: 1,
            max_waiting_dry_runs: 2,
            script_limits: sluice_transform::Limits {
                time_per_profile: Duration::from_secs(60),
                ..sluice_transform::Limits::default()
            },
            ..EngineConfig::default()
        },
        200,
    )
    .await;
    let looping = w
        .pipeline(json!({"transformation": {"javascript":
            "const columns = [\"id\", \"email\"];\nfunction transform(p) { while (true) {} }"}}))
        .await;
    let plain = w.pipeline(json!({})).await;
    let rec = w
        .engine
        .meta()
        .get_pipeline(&looping)
        .await
        .unwrap()
        .unwrap();
    let mut dry = Vec::new();
    for _ in 0..3 {
        let d = w.engine.start_dry_run(rec.clone(), true, "manual").await;
        dry.push(d.unwrap().id);
    }
    // One going and two waiting is the cap: a fourth is refused.
    assert!(matches!(
        w.engine.start_dry_run(rec.clone(), true, "manual").await,
        Err(sluice_engine::DryRunStartError::TooMany(3))
    ));
    // Long enough for the first to be inside a call.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let real = w.engine.start(&plain, "manual").await.unwrap();
    assert_eq!(
        real.status,
        RunStatus::Running,
        "a real run never queues behind dry runs"
    );
    let real = w.engine.wait(&real.id, |_| {}).await.unwrap();
    assert_eq!(real.status, RunStatus::Succeeded, "{:?}", real.message);
    assert_eq!(w.rows(), 200);

    assert!(w.engine.cancel(&dry[2]), "a queued dry run is active");
    let third = dry_run_end(&w, &dry[2]).await;
    assert_eq!(third.status, RunStatus::Cancelled);
    assert_eq!(
        third.message.as_deref(),
        Some("cancelled before it started")
    );
    let cancelled = std::time::Instant::now();
    assert!(w.engine.cancel(&dry[0]), "the running dry run is active");
    let first = dry_run_end(&w, &dry[0]).await;
    let took = cancelled.elapsed();
    assert_eq!(first.status, RunStatus::Cancelled, "{:?}", first.message);
    assert!(took < Duration::from_secs(5), "the cancel took {took:?}");
    // The second, queued or just given the slot the first gave back: a clean stop ends it too.
    assert_eq!(w.engine.shutdown(Duration::from_secs(5)).await, 0);
    let second = dry_run_end(&w, &dry[1]).await;
    assert_eq!(second.status, RunStatus::Cancelled, "{:?}", second.message);
    assert!(
        !w.engine.cancel(&dry[0]),
        "a finished dry run is not active"
    );
    assert_eq!(w.rows(), 200, "dry runs wrote nothing");
}

/// A dry run left going by a process that ended shows as failed to the next one (an SQLite store is one
/// process's), instead of going on for the week its record is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_left_by_a_stopped_process_shows_as_failed() {
    let w = world(EngineConfig::default(), 10).await;
    let p = w.pipeline(json!({})).await;
    let now = Utc::now();
    let run = RunRecord {
        id: sluice_engine::new_id("dry"),
        pipeline: p.clone(),
        trigger: "manual".into(),
        changes: None,
        status: RunStatus::Running,
        queued_at: now,
        started_at: Some(now),
        finished_at: None,
        progress: Progress::default(),
        counts: Counts::default(),
        errors: Vec::new(),
        message: None,
    };
    let left = sluice_engine::DryRunRecord {
        run,
        samples: Default::default(),
    };
    let text = serde_json::to_string(&left).unwrap();
    w.engine
        .meta()
        .put_dry_run(&left.run.id, Some(&p), now, &text)
        .await
        .unwrap();
    let seen = w.engine.get_dry_run(&left.run.id).await.unwrap().unwrap();
    assert_eq!(seen.run.status, RunStatus::Failed);
    assert!(
        seen.run
            .message
            .as_deref()
            .unwrap()
            .contains("wrote nothing"),
        "{:?}",
        seen.run.message
    );
}

/// A dry run that is ending never shows as left by a stopped process: its record is read while its last
/// write and its leaving the active set happen (a poll between the two once showed it as failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_watched_while_it_ends_never_shows_as_failed() {
    let w = world(EngineConfig::default(), 5).await;
    let p = w.pipeline(json!({})).await;
    let rec = w.engine.meta().get_pipeline(&p).await.unwrap().unwrap();
    for _ in 0..40 {
        let started = w
            .engine
            .start_dry_run(rec.clone(), true, "manual")
            .await
            .unwrap();
        loop {
            let seen = w.engine.get_dry_run(&started.id).await.unwrap().unwrap();
            assert_ne!(seen.run.status, RunStatus::Failed, "{:?}", seen.run.message);
            if seen.run.status.is_finished() {
                assert_eq!(seen.run.status, RunStatus::Succeeded);
                break;
            }
        }
    }
}

/// A tiny HTTP server that records the JSON bodies posted to it.
async fn webhook_listener() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    let body: Value = serde_json::from_slice(&buf[end + 4..end + 4 + len]).unwrap();
                    seen.lock().unwrap().push(body);
                    let _ = sock
                        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
            });
        }
    });
    (url, out)
}

async fn wait_for(seen: &Arc<Mutex<Vec<Value>>>, n: usize) -> Vec<Value> {
    for _ in 0..250 {
        if seen.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_over_the_threshold_and_recoveries_are_posted() {
    let (workspace_url, workspace_seen) = webhook_listener().await;
    let (pipeline_url, pipeline_seen) = webhook_listener().await;
    let w = world(
        EngineConfig {
            failed_rows_threshold: 0.25,
            alert_webhook: Some(workspace_url),
            ..EngineConfig::default()
        },
        10,
    )
    .await;
    // Half the profiles break a CHECK rule of the table.
    w.exec("DROP TABLE people; CREATE TABLE people (id TEXT PRIMARY KEY CHECK (id < 'c00005'), email TEXT NOT NULL)");
    let p = w.pipeline(json!({"alert_webhook": pipeline_url})).await;
    let r = w.engine.start(&p, "manual").await.unwrap();
    let r = w.engine.wait(&r.id, |_| {}).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "5 of 10 rows fail: over 25%");
    assert_eq!(r.counts.failed, 5);
    assert_eq!(r.counts.inserted, 5);
    let m = r.message.clone().unwrap();
    assert!(
        m.contains("5 of 10 rows failed") && m.contains("25.0%"),
        "{m}"
    );
    assert_eq!(
        w.engine
            .meta()
            .get_run(&r.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Failed,
        "recorded as failed"
    );
    let got = wait_for(&pipeline_seen, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "failed_rows_over_threshold");
    assert_eq!(got[0]["pipeline"]["id"], p);
    assert_eq!(got[0]["run"]["id"], r.id);
    assert_eq!(got[0]["run"]["counts"]["failed"], 5);
    let got = wait_for(&workspace_seen, 1).await;
    assert_eq!(got[0]["event"], "failed_rows_over_threshold");

    // Fixed: the next run succeeds and says the pipeline recovered.
    w.exec("DROP TABLE people; CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT NOT NULL)");
    let r = w.engine.start(&p, "manual").await.unwrap();
    let r = w.engine.wait(&r.id, |_| {}).await.unwrap();
    assert_eq!(r.status, RunStatus::Succeeded, "{:?}", r.message);
    let got = wait_for(&pipeline_seen, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1]["event"], "pipeline_recovered");
    // A success after a success says nothing.
    let r = w.engine.start(&p, "manual").await.unwrap();
    w.engine.wait(&r.id, |_| {}).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pipeline_seen.lock().unwrap().len(), 2);

    // A run that fails outright.
    w.exec("DROP TABLE people");
    let r = w.engine.start(&p, "manual").await.unwrap();
    let r = w.engine.wait(&r.id, |_| {}).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    let got = wait_for(&pipeline_seen, 3).await;
    assert_eq!(got[2]["event"], "run_failed");
    assert!(
        got[2]["text"].as_str().unwrap().contains("people"),
        "{}",
        got[2]
    );
}

#[test]
fn the_threshold_counts_write_and_transform_failures() {
    let counts = Counts {
        inserted: 90,
        failed: 6,
        transform_failed: 4,
        ..Counts::default()
    };
    assert!(
        sluice_engine::over_threshold(&counts, 0.1).is_none(),
        "exactly 10% is allowed"
    );
    assert!(sluice_engine::over_threshold(&counts, 0.09).is_some());
    assert!(sluice_engine::over_threshold(&Counts::default(), 0.0).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_runs_and_waits_for_them() {
    let w = world(
        EngineConfig {
            batch_size: Some(5),
            max_concurrent_runs: 1,
            ..EngineConfig::default()
        },
        3000,
    )
    .await;
    let a = w.pipeline(json!({})).await;
    let b = w.pipeline(json!({})).await;
    let ra = w.engine.start(&a, "manual").await.unwrap();
    let rb = w.engine.start(&b, "manual").await.unwrap();
    assert_eq!(rb.status, RunStatus::Queued);
    assert_eq!(w.engine.shutdown(Duration::from_secs(10)).await, 0);
    for id in [&ra.id, &rb.id] {
        let r = w.engine.meta().get_run(id).await.unwrap().unwrap();
        assert!(
            matches!(r.status, RunStatus::Cancelled | RunStatus::Succeeded),
            "{:?}",
            r.status
        );
    }
    let rb = w.engine.meta().get_run(&rb.id).await.unwrap().unwrap();
    assert_eq!(rb.status, RunStatus::Cancelled);
    assert!(w.engine.meta().unfinished_runs().await.unwrap().is_empty());
}

/// The cost of a scheduler pass, which every instance makes every `scheduler_interval`: printed for
/// BENCHMARKS.md, with a generous bound so that a regression to one query per pipeline fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_pass_over_a_thousand_pipelines() {
    let w = world(EngineConfig::default(), 1).await;
    let now = Utc::now();
    for i in 0..1000 {
        let schedule = if i % 2 == 0 {
            json!("5m")
        } else {
            json!({"cron": "15 3 * * *", "timezone": "Europe/Rome"})
        };
        let spec: PipelineSpec = serde_json::from_value(json!({
            "destination": w.dest, "name": format!("p{i}"), "table": "people", "key": "id",
            "transformation": {"mapping": {"id": "_id"}}, "schedule": schedule,
        }))
        .unwrap();
        w.engine
            .meta()
            .insert_pipeline(&PipelineRecord {
                id: format!("pl{i:04}"),
                spec,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }
    let t = std::time::Instant::now();
    let pass = scheduler::tick(&w.engine, now).await.unwrap();
    let first = t.elapsed();
    assert!(pass.started.is_empty());
    let t = std::time::Instant::now();
    scheduler::tick(&w.engine, now + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let steady = t.elapsed();
    eprintln!("scheduler pass over 1000 pipelines: first sight {first:?}, steady {steady:?}");
    assert!(steady < Duration::from_secs(5), "{steady:?}");
}

/// A transient failure in the middle of a run (the destination's connection killed by the server) is
/// retried with backoff within the run, which then succeeds with every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_run_is_retried_within_the_run() {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)");
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let schema = format!("sched_retry_{}", uuid::Uuid::new_v4().simple());
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.people (id text PRIMARY KEY, email text NOT NULL);
         CREATE FUNCTION {schema}.slow() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$;
         CREATE TRIGGER slow AFTER INSERT OR UPDATE ON {schema}.people
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.slow();"
    ))
    .await
    .unwrap();
    let w = world(
        EngineConfig {
            batch_size: Some(50),
            ..EngineConfig::default()
        },
        1000,
    )
    .await;
    let mut settings =
        sluice_destinations::postgres::PostgresSettings::json_from_url(&url).unwrap();
    settings["schema"] = json!(schema);
    settings["tls"] = json!({"mode": "disable"});
    let now = Utc::now();
    let dest = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: "pg".into(),
        kind: "postgresql".into(),
        settings,
        created_at: now,
        updated_at: now,
    };
    w.engine.meta().insert_destination(&dest).await.unwrap();
    let p = w.pipeline(json!({"destination": dest.id})).await;
    let run = w.engine.start(&p, "manual").await.unwrap();
    let mut killed = 0i64;
    for _ in 0..400 {
        let Some(live) = w.engine.live(&run.id) else {
            break;
        };
        if live.progress.processed >= 100 {
            killed = c
                .query_one(
                    &format!(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE application_name = 'sluice' AND query LIKE '%{schema}%' AND pid <> pg_backend_pid()"
                    ),
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if killed > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        killed > 0,
        "the destination's connection was not found to kill"
    );
    let done = w.engine.wait(&run.id, |_| {}).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.message);
    assert_eq!(done.counts.inserted, 1000);
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM {schema}.people"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1000);
    c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_destination_limit_queues_runs_of_one_destination() {
    let w = world(
        EngineConfig {
            max_concurrent_runs: 4,
            max_runs_per_destination: 1,
            batch_size: Some(5),
            ..EngineConfig::default()
        },
        500,
    )
    .await;
    let a = w.pipeline(json!({})).await;
    let b = w.pipeline(json!({})).await;
    let ra = w.engine.start(&a, "manual").await.unwrap();
    let rb = w.engine.start(&b, "manual").await.unwrap();
    assert_eq!(ra.status, RunStatus::Running);
    assert_eq!(rb.status, RunStatus::Queued, "one run per destination");
    let done_a = w.engine.wait(&ra.id, |_| {}).await.unwrap();
    let done_b = w.engine.wait(&rb.id, |_| {}).await.unwrap();
    assert_eq!(done_b.status, RunStatus::Succeeded, "{:?}", done_b.message);
    assert!(done_b.started_at.unwrap() >= done_a.finished_at.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_private_webhooks_denied_an_alert_to_a_loopback_host_is_not_sent() {
    // Both webhooks listen on 127.0.0.1; `localhost` is checked by what it resolves to.
    let (workspace_url, workspace_seen) = webhook_listener().await;
    let (pipeline_url, pipeline_seen) = webhook_listener().await;
    let pipeline_url = pipeline_url.replace("127.0.0.1", "localhost");
    let w = world(
        EngineConfig {
            alert_webhook: Some(workspace_url),
            deny_private_webhooks: true,
            ..EngineConfig::default()
        },
        4,
    )
    .await;
    let p = w.pipeline(json!({"alert_webhook": pipeline_url})).await;
    w.exec("DROP TABLE people");
    let r = w.engine.start(&p, "manual").await.unwrap();
    let r = w.engine.wait(&r.id, |_| {}).await.unwrap();
    assert_eq!(r.status, RunStatus::Failed, "the table is gone");
    // The same failure is posted when the setting is off (the test above); here nothing arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pipeline_seen.lock().unwrap().is_empty());
    assert!(workspace_seen.lock().unwrap().is_empty());
}
