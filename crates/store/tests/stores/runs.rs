//! Cases for `RunLog`.

use sluice_store::{Counts, Progress, RunErrorGroup, RunStatus};

use crate::fixtures::{at, conflict, not_found, run, with_pipelines};
use crate::harness::Env;

pub async fn runs_lifecycle_and_pagination(env: &Env) {
    let store = with_pipelines(env, &[("p1", "one", 0), ("p2", "two", 1)]).await;

    // r3 and r4 are queued in the same microsecond: insertion order breaks the tie.
    let minutes = [
        ("r0", 0),
        ("r1", 1),
        ("r2", 2),
        ("r3", 3),
        ("r4", 3),
        ("r5", 5),
        ("r6", 6),
    ];
    for (id, minute) in minutes {
        store
            .insert_run(&run(id, "p1", minute, RunStatus::Succeeded))
            .await
            .unwrap();
    }
    store
        .insert_run(&run("q1", "p2", 4, RunStatus::Queued))
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store.list_runs("p1", 3, before.as_deref()).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = Some(page.last().unwrap().id.clone());
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, ["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert!(store.list_runs("p1", 0, None).await.unwrap().is_empty());
    assert!(store
        .list_runs("p-none", 10, None)
        .await
        .unwrap()
        .is_empty());
    assert!(
        not_found(store.list_runs("p1", 10, Some("q1")).await).contains("q1"),
        "a cursor from another pipeline"
    );

    let mut running = run("r7", "p1", 7, RunStatus::Queued);
    store.insert_run(&running).await.unwrap();
    assert_eq!(store.get_run("r7").await.unwrap(), Some(running.clone()));
    running.status = RunStatus::Running;
    running.trigger = "schedule".into();
    running.started_at = Some(at(8));
    running.progress = Progress {
        processed: 420_000,
        total: Some(1_000_000),
    };
    running.counts = Counts {
        read: 420_000,
        filtered_out: 12,
        transform_failed: 1,
        inserted: 400_000,
        updated: 7,
        unchanged: 19_980,
        deleted: 3,
        failed: 2,
    };
    running.errors = vec![RunErrorGroup {
        step: "write".into(),
        message: "value too long for type character varying(10)".into(),
        count: 2,
        sample_profiles: vec!["c17".into(), "c42".into()],
        last_seen: at(9),
    }];
    store.update_run(&running).await.unwrap();
    assert_eq!(store.get_run("r7").await.unwrap(), Some(running.clone()));

    let unfinished: Vec<String> = store
        .unfinished_runs()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        unfinished,
        ["q1", "r7"],
        "queued and running runs of every pipeline, oldest first"
    );

    running.status = RunStatus::Failed;
    running.finished_at = Some(at(10));
    running.message = Some("the destination refused the connection".into());
    store.update_run(&running).await.unwrap();
    assert_eq!(store.get_run("r7").await.unwrap(), Some(running.clone()));
    assert_eq!(store.unfinished_runs().await.unwrap().len(), 1);
    assert_eq!(
        store.list_runs("p1", 1, None).await.unwrap(),
        vec![running.clone()]
    );

    assert!(conflict(
        store
            .insert_run(&run("r7", "p1", 11, RunStatus::Queued))
            .await
    )
    .contains("r7"));
    assert!(not_found(
        store
            .insert_run(&run("r8", "p-none", 11, RunStatus::Queued))
            .await
    )
    .contains("p-none"));
    assert!(not_found(
        store
            .update_run(&run("r-none", "p1", 11, RunStatus::Queued))
            .await
    )
    .contains("r-none"));
    assert_eq!(store.get_run("r-none").await.unwrap(), None);
}

/// A running run's progress is stored alone (status, times and message untouched), and never over a
/// finished run: the task recording it may outlive the run.
pub async fn run_progress_never_overwrites_a_finished_run(env: &Env) {
    let store = with_pipelines(env, &[("p1", "one", 0)]).await;
    let mut stored = run("r1", "p1", 1, RunStatus::Running);
    store.insert_run(&stored).await.unwrap();

    let mut snapshot = stored.clone();
    snapshot.status = RunStatus::Succeeded;
    snapshot.message = Some("not stored by a progress update".into());
    snapshot.progress = Progress {
        processed: 20_000,
        total: Some(160_000),
    };
    snapshot.counts.read = 20_000;
    snapshot.counts.inserted = 19_999;
    snapshot.counts.failed = 1;
    assert!(store.update_run_progress(&snapshot).await.unwrap());
    stored.progress = snapshot.progress;
    stored.counts = snapshot.counts;
    assert_eq!(store.get_run("r1").await.unwrap(), Some(stored.clone()));

    stored.status = RunStatus::Failed;
    stored.finished_at = Some(at(2));
    stored.message = Some("stopped".into());
    store.update_run(&stored).await.unwrap();
    snapshot.counts.inserted = 40_000;
    assert!(!store.update_run_progress(&snapshot).await.unwrap());
    assert_eq!(store.get_run("r1").await.unwrap(), Some(stored));
    assert!(!store
        .update_run_progress(&run("r-none", "p1", 3, RunStatus::Running))
        .await
        .unwrap());
}

pub async fn dry_runs_are_kept_apart_and_expire(env: &Env) {
    let store = with_pipelines(env, &[("p1", "one", 0)]).await;
    store
        .put_dry_run("dry1", Some("p1"), at(0), r#"{"n":1}"#)
        .await
        .unwrap();
    // A definition not saved yet has no pipeline.
    store
        .put_dry_run("dry2", None, at(1), r#"{"n":2}"#)
        .await
        .unwrap();
    assert_eq!(
        store.get_dry_run("dry1").await.unwrap().as_deref(),
        Some(r#"{"n":1}"#)
    );
    // Written again as it progresses: the same id is replaced.
    store
        .put_dry_run("dry1", Some("p1"), at(2), r#"{"n":3}"#)
        .await
        .unwrap();
    assert_eq!(
        store.get_dry_run("dry1").await.unwrap().as_deref(),
        Some(r#"{"n":3}"#)
    );
    assert_eq!(store.get_dry_run("nope").await.unwrap(), None);
    // Not in the history, not a run.
    assert!(store.list_runs("p1", 10, None).await.unwrap().is_empty());
    assert_eq!(store.get_run("dry1").await.unwrap(), None);
    // Writing one a retention later drops the old ones.
    let later = at(2) + sluice_store::DRY_RUN_RETENTION + chrono::Duration::minutes(1);
    store
        .put_dry_run("dry3", Some("p1"), later, "{}")
        .await
        .unwrap();
    assert_eq!(store.get_dry_run("dry1").await.unwrap(), None);
    assert_eq!(store.get_dry_run("dry2").await.unwrap(), None);
    assert!(store.get_dry_run("dry3").await.unwrap().is_some());
}
