//! Cases for `Coordination`: exclusive claims, leases, reaping and the scheduler's compare-and-set.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schedule::TickState;
use sluice_store::{
    Counts, DestinationRecord, MetadataStore, PipelineRecord, Progress, RunRecord, RunStatus,
    SecretBox,
};

use crate::harness::Env;

async fn store_with_pipelines(env: &Env, ids: &[&str]) -> std::sync::Arc<dyn MetadataStore> {
    let store = env.metadata(SecretBox::generate()).await;
    let now = Utc::now();
    store
        .insert_destination(&DestinationRecord {
            id: "d1".into(),
            name: "Warehouse".into(),
            kind: "sqlite".into(),
            settings: json!({"path": "x.db"}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    for id in ids {
        let spec: PipelineSpec = serde_json::from_value(json!({
            "destination": "d1", "name": id, "table": "t", "key": "k",
            "transformation": {"mapping": {"k": "_id"}}, "schedule": "5m"
        }))
        .unwrap();
        store
            .insert_pipeline(&PipelineRecord {
                id: id.to_string(),
                spec,
                created_at: now,
                updated_at: now,
            })
            .await
            .unwrap();
    }
    store
}

fn run(id: &str, pipeline: &str, status: RunStatus) -> RunRecord {
    RunRecord {
        id: id.into(),
        pipeline: pipeline.into(),
        trigger: "schedule".into(),
        changes: None,
        status,
        queued_at: Utc::now(),
        started_at: None,
        finished_at: None,
        progress: Progress::default(),
        counts: Counts::default(),
        errors: Vec::new(),
        message: None,
    }
}

const LONG: Duration = Duration::from_secs(60);

pub async fn one_unfinished_run_per_pipeline(env: &Env) {
    let store = store_with_pipelines(env, &["p1", "p2"]).await;
    assert_eq!(
        store
            .claim_run(&run("r1", "p1", RunStatus::Queued), "a", LONG)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_run(&run("r2", "p1", RunStatus::Running), "b", LONG)
            .await
            .unwrap(),
        Some("r1".to_string()),
        "a second claim names the run that holds the pipeline"
    );
    assert_eq!(store.get_run("r2").await.unwrap(), None);
    assert_eq!(
        store
            .claim_run(&run("r3", "p2", RunStatus::Running), "b", LONG)
            .await
            .unwrap(),
        None,
        "other pipelines are free"
    );
    // Claims racing from many tasks: exactly one wins.
    let mut r1 = store.get_run("r1").await.unwrap().unwrap();
    r1.status = RunStatus::Succeeded;
    r1.finished_at = Some(Utc::now());
    store.update_run(&r1).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .claim_run(
                        &run(&format!("c{i}"), "p1", RunStatus::Running),
                        &format!("i{i}"),
                        LONG,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap().is_none() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    assert!(store
        .claim_run(&run("r9", "p-none", RunStatus::Running), "a", LONG)
        .await
        .is_err());
}

pub async fn expired_leases_are_reaped(env: &Env) {
    let store = store_with_pipelines(env, &["p1", "p2"]).await;
    store
        .claim_run(
            &run("r1", "p1", RunStatus::Running),
            "dead",
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    store
        .claim_run(
            &run("r2", "p2", RunStatus::Running),
            "alive",
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    assert!(store.reap_expired().await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(150)).await;
    let held = store.heartbeat("alive", LONG).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (held[0].run.as_str(), held[0].cancel_requested),
        ("r2", false)
    );
    assert!(store.request_cancel("r2").await.unwrap());
    let held = store.heartbeat("alive", LONG).await.unwrap();
    assert!(held[0].cancel_requested, "the owner learns of the cancel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reaped = store.reap_expired().await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].id, "r1");
    assert_eq!(reaped[0].status, RunStatus::Failed);
    assert!(reaped[0].finished_at.is_some());
    assert!(reaped[0].message.as_deref().unwrap().contains("stopped"));
    assert_eq!(
        store.get_run("r1").await.unwrap().unwrap().status,
        RunStatus::Failed
    );
    assert_eq!(
        store.get_run("r2").await.unwrap().unwrap().status,
        RunStatus::Running
    );
    assert!(
        store.heartbeat("dead", LONG).await.unwrap().is_empty(),
        "the dead owner holds nothing"
    );
    assert!(
        !store.request_cancel("r1").await.unwrap(),
        "finished runs cannot be cancelled"
    );
    assert!(!store.request_cancel("r-none").await.unwrap());
    assert!(
        !store.request_cancel("r1").await.unwrap(),
        "finished runs cannot be cancelled"
    );
    assert!(!store.request_cancel("r-none").await.unwrap());
    // The pipeline is free again.
    assert_eq!(
        store
            .claim_run(&run("r3", "p1", RunStatus::Running), "alive", LONG)
            .await
            .unwrap(),
        None
    );
}

pub async fn tick_state_compare_and_set(env: &Env) {
    let store = store_with_pipelines(env, &["p1"]).await;
    assert!(store.tick_states().await.unwrap().is_empty());
    let t1 = TickState {
        last_tick: Some("2026-11-29T10:05:00Z".parse().unwrap()),
        pending: false,
    };
    let t2 = TickState {
        last_tick: Some("2026-11-29T10:10:00Z".parse().unwrap()),
        pending: true,
    };
    assert!(store
        .advance_tick("p1", TickState::default(), t1)
        .await
        .unwrap());
    assert!(
        !store
            .advance_tick("p1", TickState::default(), t2)
            .await
            .unwrap(),
        "a second instance that saw no state loses"
    );
    assert_eq!(
        store.tick_states().await.unwrap(),
        vec![("p1".to_string(), t1)]
    );
    assert!(store.advance_tick("p1", t1, t2).await.unwrap());
    assert!(
        !store.advance_tick("p1", t1, t2).await.unwrap(),
        "stale expectation"
    );
    assert_eq!(
        store.tick_states().await.unwrap(),
        vec![("p1".to_string(), t2)]
    );
    assert!(!store
        .advance_tick("p-none", TickState::default(), t1)
        .await
        .unwrap());
    store.delete_pipeline("p1").await.unwrap();
    assert!(
        store.tick_states().await.unwrap().is_empty(),
        "deleted with its pipeline"
    );
}

pub async fn last_reconcile_is_kept_per_pipeline(env: &Env) {
    let store = store_with_pipelines(env, &["p1", "p2"]).await;
    assert_eq!(store.last_reconcile("p1").await.unwrap(), None);
    let t1: chrono::DateTime<Utc> = "2026-11-29T10:05:00Z".parse().unwrap();
    let t2: chrono::DateTime<Utc> = "2026-11-30T10:05:00.123456Z".parse().unwrap();
    store.record_reconcile("p1", t1).await.unwrap();
    assert_eq!(store.last_reconcile("p1").await.unwrap(), Some(t1));
    assert_eq!(store.last_reconcile("p2").await.unwrap(), None);
    store.record_reconcile("p1", t2).await.unwrap();
    assert_eq!(store.last_reconcile("p1").await.unwrap(), Some(t2));
    // A pipeline deleted meanwhile is not brought back, and its record goes with it.
    store.record_reconcile("p-none", t1).await.unwrap();
    assert_eq!(store.last_reconcile("p-none").await.unwrap(), None);
    store.delete_pipeline("p1").await.unwrap();
    assert_eq!(store.last_reconcile("p1").await.unwrap(), None);
}

pub async fn change_cursor_compare_and_set(env: &Env) {
    let store = store_with_pipelines(env, &["p1"]).await;
    assert!(store.change_cursors().await.unwrap().is_empty());
    assert!(store
        .advance_change_cursor("p1", None, Some("a"))
        .await
        .unwrap());
    assert!(
        !store
            .advance_change_cursor("p1", None, Some("b"))
            .await
            .unwrap(),
        "a second instance that saw no cursor loses"
    );
    assert_eq!(
        store.change_cursors().await.unwrap(),
        vec![("p1".to_string(), "a".to_string())]
    );
    assert!(
        !store
            .advance_change_cursor("p1", Some("b"), Some("c"))
            .await
            .unwrap(),
        "stale expectation"
    );
    assert!(store
        .advance_change_cursor("p1", Some("a"), Some("c"))
        .await
        .unwrap());
    assert!(store
        .advance_change_cursor("p1", Some("c"), None)
        .await
        .unwrap());
    assert!(store.change_cursors().await.unwrap().is_empty());
    assert!(!store
        .advance_change_cursor("p-none", None, Some("x"))
        .await
        .unwrap());
    assert!(store
        .advance_change_cursor("p1", None, Some("d"))
        .await
        .unwrap());
    store.delete_pipeline("p1").await.unwrap();
    assert!(
        store.change_cursors().await.unwrap().is_empty(),
        "deleted with its pipeline"
    );
}
