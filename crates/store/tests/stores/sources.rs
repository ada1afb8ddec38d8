//! Source pipelines: definitions with unique names, their runs in the shared history, marks and rows.

use std::time::Duration;

use serde_json::json;
use sluice_core::source::{CursorValue, SourceSpec};
use sluice_store::{RunStatus, SourceRecord, SourceRow};

use crate::fixtures::{at, conflict, destination, not_found, run, with_pipelines};
use crate::harness::Env;

fn source(id: &str, name: &str, minute: i64) -> SourceRecord {
    let spec: SourceSpec = serde_json::from_value(json!({
        "connection": "d", "name": name, "table": "src_customers", "id_column": "customer_id",
        "transformation": {"mapping": {"email": "lower(email)", "address.city": "city"}},
        "changes": {"mode": "cursor", "column": "updated_at"}, "schedule": "5m"
    }))
    .unwrap();
    SourceRecord {
        id: id.into(),
        spec,
        created_at: at(minute),
        updated_at: at(minute),
    }
}

pub async fn sources_crud_and_conflicts(env: &Env) {
    let store = with_pipelines(env, &[("p1", "Export", 0)]).await;
    let s1 = source("src_1", "CRM customers", 1);
    store.insert_source(&s1).await.unwrap();
    store
        .insert_source(&source("src_2", "Shop", 2))
        .await
        .unwrap();
    assert!(conflict(
        store
            .insert_source(&source("src_3", "CRM customers", 3))
            .await
    )
    .contains("CRM customers"));
    assert!(conflict(store.insert_source(&source("src_1", "Other", 3)).await).contains("src_1"));
    let mut orphan = source("src_4", "Orphan", 4);
    orphan.spec.connection = "nowhere".into();
    assert!(not_found(store.insert_source(&orphan).await).contains("nowhere"));

    assert_eq!(store.get_source("src_1").await.unwrap(), Some(s1.clone()));
    let names: Vec<String> = store
        .list_sources()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.spec.name)
        .collect();
    assert_eq!(names, ["CRM customers", "Shop"]);

    let mut renamed = s1.clone();
    renamed.spec.name = "Shop".into();
    assert!(conflict(store.update_source(&renamed).await).contains("Shop"));
    renamed.spec.name = "CRM".into();
    renamed.updated_at = at(9);
    store.update_source(&renamed).await.unwrap();
    assert_eq!(store.get_source("src_1").await.unwrap(), Some(renamed));
    assert!(not_found(store.update_source(&source("src_9", "Nine", 9)).await).contains("src_9"));

    // A connection read by a source is not deleted from under it.
    store.delete_pipeline("p1").await.unwrap();
    let refused = conflict(store.delete_destination("d").await);
    assert!(
        refused.contains("CRM") && refused.contains("Shop"),
        "{refused}"
    );

    assert!(store.delete_source("src_2").await.unwrap());
    assert!(!store.delete_source("src_2").await.unwrap());
    assert_eq!(store.get_source("src_2").await.unwrap(), None);
}

pub async fn source_runs_share_the_history(env: &Env) {
    let store = with_pipelines(env, &[("p1", "Export", 0)]).await;
    store
        .insert_source(&source("src_1", "CRM", 1))
        .await
        .unwrap();
    let lease = Duration::from_secs(600);
    assert_eq!(
        store
            .claim_run(&run("r1", "src_1", 2, RunStatus::Running), "a", lease)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .claim_run(&run("r2", "src_1", 3, RunStatus::Queued), "b", lease)
            .await
            .unwrap(),
        Some("r1".to_string()),
        "one unfinished run per source, as per pipeline"
    );
    // Export runs keep their rules beside source runs.
    assert_eq!(
        store
            .claim_run(&run("r3", "p1", 3, RunStatus::Running), "a", lease)
            .await
            .unwrap(),
        None
    );
    assert!(not_found(
        store
            .insert_run(&run("r4", "nobody", 4, RunStatus::Running))
            .await
    )
    .contains("nobody"));
    let mut r1 = store.get_run("r1").await.unwrap().unwrap();
    assert_eq!(r1.pipeline, "src_1");
    r1.status = RunStatus::Succeeded;
    r1.counts.read = 12;
    r1.counts.inserted = 10;
    store.update_run(&r1).await.unwrap();
    let listed = store.list_runs("src_1", 10, None).await.unwrap();
    assert_eq!(listed, vec![r1]);
    assert!(store.request_cancel("r3").await.unwrap());

    // Runs go with their source, and with their pipeline.
    assert!(store.delete_source("src_1").await.unwrap());
    assert_eq!(store.get_run("r1").await.unwrap(), None);
    assert!(store.delete_pipeline("p1").await.unwrap());
    assert_eq!(store.get_run("r3").await.unwrap(), None);
}

pub async fn source_marks_and_rows(env: &Env) {
    let store = with_pipelines(env, &[]).await;
    for (id, name) in [("src_1", "CRM"), ("src_2", "Shop")] {
        store.insert_source(&source(id, name, 1)).await.unwrap();
    }
    assert_eq!(store.source_mark("src_1").await.unwrap(), None);
    let mark = CursorValue::Time(at(5));
    store.set_source_mark("src_1", Some(&mark)).await.unwrap();
    assert_eq!(store.source_mark("src_1").await.unwrap(), Some(mark));
    store
        .set_source_mark("src_1", Some(&CursorValue::Int(42)))
        .await
        .unwrap();
    assert_eq!(
        store.source_mark("src_1").await.unwrap(),
        Some(CursorValue::Int(42))
    );
    store.set_source_mark("src_1", None).await.unwrap();
    assert_eq!(store.source_mark("src_1").await.unwrap(), None);
    store
        .set_source_mark("gone", Some(&CursorValue::Int(1)))
        .await
        .unwrap();

    let row = |id, hash| SourceRow {
        profile_id: id,
        hash,
    };
    store
        .record_source_rows("src_1", &[row("c1", 1), row("c2", 2), row("c3", 3)], 100)
        .await
        .unwrap();
    store
        .record_source_rows("src_2", &[row("c2", 20)], 100)
        .await
        .unwrap();
    // A later run sees c1 (changed) and c3, not c2.
    store
        .record_source_rows("src_1", &[row("c1", 11), row("c3", 3)], 200)
        .await
        .unwrap();
    let mut hashes = store
        .source_hashes("src_1", &["c1", "c2", "c9"])
        .await
        .unwrap();
    hashes.sort();
    assert_eq!(hashes, vec![("c1".to_string(), 11), ("c2".to_string(), 2)]);
    assert_eq!(
        store
            .unseen_source_rows("src_1", 200, None, 10)
            .await
            .unwrap(),
        ["c2"]
    );
    assert!(store
        .unseen_source_rows("src_1", 200, Some("c2"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .fed_by_other_sources("src_1", &["c1", "c2", "c3"])
            .await
            .unwrap(),
        ["c2"]
    );
    store.forget_source_rows("src_1", &["c2"]).await.unwrap();
    assert!(store
        .unseen_source_rows("src_1", 200, None, 10)
        .await
        .unwrap()
        .is_empty());
    // Many ids at once (more than one statement's worth in SQLite).
    let ids: Vec<String> = (0..1_200).map(|i| format!("m{i:05}")).collect();
    let rows: Vec<SourceRow> = ids.iter().map(|id| row(id, 7)).collect();
    store.record_source_rows("src_2", &rows, 300).await.unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(
        store.source_hashes("src_2", &refs).await.unwrap().len(),
        1_200
    );
    // A few ids spread over the many (a range far larger than what is asked for), in order and not,
    // and a run of ids in order with some never recorded among them.
    let spread = ["m00000", "m00600", "m01199", "zz"];
    let mut got = store.source_hashes("src_2", &spread).await.unwrap();
    got.sort();
    let want =
        |ids: &[&str]| -> Vec<(String, u128)> { ids.iter().map(|i| (i.to_string(), 7)).collect() };
    assert_eq!(got, want(&["m00000", "m00600", "m01199"]));
    let mut got = store
        .source_hashes("src_2", &["m01199", "m00000", "m00600"])
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, want(&["m00000", "m00600", "m01199"]));
    let mut got = store
        .source_hashes("src_2", &["m00010", "m00010x", "m00011", "m00012"])
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, want(&["m00010", "m00011", "m00012"]));
    store.forget_source_rows("src_2", &refs).await.unwrap();
    assert!(store
        .source_hashes("src_2", &refs)
        .await
        .unwrap()
        .is_empty());
    // Rows and marks go with their source.
    store
        .set_source_mark("src_1", Some(&CursorValue::Int(1)))
        .await
        .unwrap();
    store.delete_source("src_1").await.unwrap();
    assert!(store
        .source_hashes("src_1", &["c1"])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.source_mark("src_1").await.unwrap(), None);
}

pub async fn source_ticks_compare_and_set(env: &Env) {
    use sluice_core::schedule::TickState;
    let store = with_pipelines(env, &[]).await;
    store
        .insert_source(&source("src_1", "CRM", 1))
        .await
        .unwrap();
    assert!(store.source_tick_states().await.unwrap().is_empty());
    let first = TickState {
        last_tick: Some(at(5)),
        pending: false,
    };
    assert!(store
        .advance_source_tick("src_1", TickState::default(), first)
        .await
        .unwrap());
    // A second instance that saw the same default state loses.
    assert!(!store
        .advance_source_tick("src_1", TickState::default(), first)
        .await
        .unwrap());
    let next = TickState {
        last_tick: Some(at(10)),
        pending: true,
    };
    assert!(store
        .advance_source_tick("src_1", first, next)
        .await
        .unwrap());
    assert_eq!(
        store.source_tick_states().await.unwrap(),
        vec![("src_1".to_string(), next)]
    );
    assert!(!store
        .advance_source_tick("gone", TickState::default(), first)
        .await
        .unwrap());
    store.delete_source("src_1").await.unwrap();
    assert!(store.source_tick_states().await.unwrap().is_empty());
}

/// A workspace's changes to sources go in the one transaction of `apply_changes`: deleted before
/// another takes the name, updated, inserted, marks forgotten — or, on any error, none of it.
pub async fn apply_changes_covers_sources(env: &Env) {
    use sluice_store::CatalogChanges;
    let store = with_pipelines(env, &[]).await;
    let old = source("src_old", "Old", 1);
    let kept = source("src_kept", "Kept", 2);
    store.insert_source(&old).await.unwrap();
    store.insert_source(&kept).await.unwrap();
    let mark = CursorValue::Int(5);
    store
        .set_source_mark("src_kept", Some(&mark))
        .await
        .unwrap();
    let snapshot = store.list_sources().await.unwrap();

    let other = destination("d2", "Other", 3);
    let mut moved = kept.clone();
    moved.spec.connection = "d2".into();
    moved.spec.name = "Kept elsewhere".into();
    moved.updated_at = at(4);
    // The deleted source's name is free for a new one in the same change.
    let reuse = source("src_reuse", "Old", 5);
    let mut orphan = source("src_orphan", "Orphan", 6);
    orphan.spec.connection = "nowhere".into();
    let mut changes = CatalogChanges {
        insert_destinations: vec![other.clone()],
        delete_sources: vec!["src_old".into()],
        update_sources: vec![moved.clone()],
        insert_sources: vec![reuse.clone(), orphan],
        forget_source_marks: vec!["src_kept".into()],
        ..CatalogChanges::default()
    };
    assert!(not_found(store.apply_changes(&changes).await).contains("nowhere"));
    assert_eq!(store.list_sources().await.unwrap(), snapshot);
    assert_eq!(store.source_mark("src_kept").await.unwrap(), Some(mark));
    assert_eq!(store.list_destinations().await.unwrap().len(), 1);

    // A connection a source the change keeps still reads cannot go.
    changes.insert_sources.pop();
    changes.delete_destinations = vec!["d".into()];
    changes.insert_sources.push(source("src_stays", "Stays", 7));
    assert!(conflict(store.apply_changes(&changes).await).contains("Stays"));
    assert_eq!(store.list_sources().await.unwrap(), snapshot);

    changes.insert_sources = vec![reuse.clone()];
    changes.delete_destinations.clear();
    store.apply_changes(&changes).await.unwrap();
    assert_eq!(store.list_sources().await.unwrap(), vec![moved, reuse]);
    assert_eq!(store.source_mark("src_kept").await.unwrap(), None);
    assert_eq!(store.get_source("src_old").await.unwrap(), None);

    // Its last source gone in the same change, the connection goes too.
    let last = CatalogChanges {
        delete_sources: vec!["src_reuse".into()],
        delete_destinations: vec!["d".into()],
        ..CatalogChanges::default()
    };
    store.apply_changes(&last).await.unwrap();
    assert_eq!(store.list_destinations().await.unwrap(), vec![other]);
}
