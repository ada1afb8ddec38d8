//! Cases for `SyncState`: sync entries, key ownership, left entries and checkpoints.

use std::time::Instant;

use sluice_store::{SecretBox, SyncCheckpoint, SyncEntry, SyncKey};

use crate::fixtures::{at, entry, not_found, with_pipelines};
use crate::harness::{Backend, Env};

/// An entry of a profile that left while its row is kept.
fn left(profile: &str, key: &str, hash: u128) -> SyncEntry {
    SyncEntry {
        left: true,
        ..entry(profile, key, hash)
    }
}

fn keys(keys: &[&str]) -> Vec<SyncKey> {
    keys.iter().map(|k| SyncKey::from_stored(*k)).collect()
}

/// Entries as `(key, profile id)`: who holds each key.
fn holders(entries: Vec<SyncEntry>) -> Vec<(String, String)> {
    entries
        .into_iter()
        .map(|e| (e.key.into_string(), e.profile_id))
        .collect()
}

fn ids(entries: &[SyncEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.profile_id.as_str()).collect()
}

pub async fn sync_apply_range_and_owners(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0), ("q", "two", 1)]).await;
    assert_eq!(store.sync_count("p").await.unwrap(), 0);

    let profiles = ["b", "a", "Z", "é", "日本", "😀", "z", "A-10", "A-9", "ß"];
    let entries: Vec<SyncEntry> = profiles
        .iter()
        .enumerate()
        .map(|(i, p)| entry(p, &format!("key-{p}"), u128::MAX - i as u128))
        .collect();
    store
        .sync_apply("p", entries.clone(), vec![])
        .await
        .unwrap();
    assert_eq!(store.sync_count("p").await.unwrap(), profiles.len() as u64);

    let mut byte_order: Vec<&str> = profiles.to_vec();
    byte_order.sort();
    let all = store.sync_range("p", None, None, 100).await.unwrap();
    assert_eq!(ids(&all), byte_order, "profile ids in byte order");
    let b = all.iter().find(|e| e.profile_id == "b").unwrap();
    assert_eq!((b.key.as_str(), b.hash), ("key-b", u128::MAX));

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .sync_range("p", after.as_deref(), None, 3)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().profile_id.clone());
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(
        ids(&store
            .sync_range("p", Some("a"), Some("z"), 100)
            .await
            .unwrap()),
        ["b", "z"]
    );
    assert_eq!(
        ids(&store.sync_range("p", None, Some("Z"), 100).await.unwrap()),
        ["A-10", "A-9", "Z"]
    );
    assert_eq!(
        ids(&store.sync_range("p", Some("z"), None, 2).await.unwrap()),
        ["ß", "é"]
    );
    assert!(store
        .sync_range("p", None, None, 0)
        .await
        .unwrap()
        .is_empty());
    assert!(
        store
            .sync_range("q", None, None, 10)
            .await
            .unwrap()
            .is_empty(),
        "pipelines are separate"
    );

    let mut owners = holders(
        store
            .sync_owners("p", &keys(&["key-a", "key-😀", "nobody", "key-a"]))
            .await
            .unwrap(),
    );
    owners.sort();
    owners.dedup();
    assert_eq!(
        owners,
        [
            ("key-a".to_string(), "a".to_string()),
            ("key-😀".to_string(), "😀".to_string())
        ]
    );
    assert!(store.sync_owners("p", &[]).await.unwrap().is_empty());
    assert!(store
        .sync_owners("q", &keys(&["key-a"]))
        .await
        .unwrap()
        .is_empty());

    // The same key in another pipeline belongs to that pipeline only.
    store
        .sync_apply("q", vec![entry("other", "key-a", 7)], vec![])
        .await
        .unwrap();
    assert_eq!(
        holders(store.sync_owners("p", &keys(&["key-a"])).await.unwrap()),
        [("key-a".into(), "a".into())]
    );

    // Deletes, then upserts, in one call; a profile both deleted and upserted ends upserted.
    store
        .sync_apply(
            "p",
            vec![entry("b", "key-b2", 5), entry("new", "key-new", 6)],
            vec!["a".into(), "b".into(), "ghost".into()],
        )
        .await
        .unwrap();
    let after_apply = store.sync_range("p", None, Some("c"), 100).await.unwrap();
    assert_eq!(
        after_apply
            .iter()
            .map(|e| (e.profile_id.as_str(), e.key.as_str(), e.hash))
            .collect::<Vec<_>>(),
        [
            ("A-10", "key-A-10", u128::MAX - 7),
            ("A-9", "key-A-9", u128::MAX - 8),
            ("Z", "key-Z", u128::MAX - 2),
            ("b", "key-b2", 5),
        ]
    );
    assert_eq!(store.sync_count("p").await.unwrap(), profiles.len() as u64);
    store.sync_apply("p", vec![], vec![]).await.unwrap();

    store.sync_clear("p").await.unwrap();
    assert_eq!(store.sync_count("p").await.unwrap(), 0);
    assert_eq!(store.sync_count("q").await.unwrap(), 1);
    assert!(not_found(
        store
            .sync_apply("p-none", vec![entry("a", "k", 1)], vec![])
            .await
    )
    .contains("p-none"));
}

pub async fn sync_apply_transfers_keys(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0)]).await;
    store
        .sync_apply(
            "p",
            vec![
                entry("c1", "alice@x", 1),
                entry("c2", "bob@x", 2),
                entry("c3", "carol@x", 3),
            ],
            vec![],
        )
        .await
        .unwrap();

    let state = |v: Vec<SyncEntry>| -> Vec<(String, String, u128)> {
        v.into_iter()
            .map(|e| (e.profile_id, e.key.into_string(), e.hash))
            .collect()
    };
    let t = |p: &str, k: &str, h: u128| (p.to_string(), k.to_string(), h);

    // c4 takes alice@x from c1, which loses its entry.
    store
        .sync_apply("p", vec![entry("c4", "alice@x", 4)], vec![])
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("p", None, None, 10).await.unwrap()),
        [
            t("c2", "bob@x", 2),
            t("c3", "carol@x", 3),
            t("c4", "alice@x", 4)
        ]
    );
    assert_eq!(
        holders(store.sync_owners("p", &keys(&["alice@x"])).await.unwrap()),
        [("alice@x".into(), "c4".into())]
    );

    // Keys swap between two profiles in one batch.
    store
        .sync_apply(
            "p",
            vec![entry("c2", "carol@x", 22), entry("c3", "bob@x", 33)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("p", None, None, 10).await.unwrap()),
        [
            t("c2", "carol@x", 22),
            t("c3", "bob@x", 33),
            t("c4", "alice@x", 4)
        ]
    );

    // Within one batch, later entries win: c5 twice keeps its last; c6 then c7 on one key leaves it to c7
    // and c6 with nothing; c4 moves to a new key, freeing alice@x which c2 takes.
    store
        .sync_apply(
            "p",
            vec![
                entry("c5", "e1", 50),
                entry("c5", "e2", 51),
                entry("c6", "dup", 60),
                entry("c7", "dup", 70),
                entry("c4", "alice@new", 40),
                entry("c2", "alice@x", 23),
            ],
            vec!["c3".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("p", None, None, 10).await.unwrap()),
        [
            t("c2", "alice@x", 23),
            t("c4", "alice@new", 40),
            t("c5", "e2", 51),
            t("c7", "dup", 70)
        ]
    );
    let mut owners = holders(
        store
            .sync_owners("p", &keys(&["e1", "carol@x", "dup"]))
            .await
            .unwrap(),
    );
    owners.sort();
    assert_eq!(owners, [("dup".into(), "c7".into())]);
}

/// Entries keyed by their own profile id (a pipeline keyed by `_id`) and entries with other keys, in
/// one pipeline, in every order: keys stay unique and move between profiles as they do among keys of one
/// form (SQLite stores the first form without its key).
pub async fn sync_keys_of_both_forms_stay_unique(env: &Env) {
    let store = with_pipelines(env, &[("p", "p", 0), ("q", "q", 0)]).await;
    let state = |v: Vec<SyncEntry>| -> Vec<(String, String, u128)> {
        v.into_iter()
            .map(|e| (e.profile_id, e.key.into_string(), e.hash))
            .collect()
    };
    let t = |p: &str, k: &str, h: u128| (p.to_string(), k.to_string(), h);
    let owners = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<Vec<_>>();

    // Keyed by id, then by another column: c9 takes c1's key, c2 writes its own id out.
    store
        .sync_apply(
            "p",
            vec![
                entry("c1", "c1", 1),
                entry("c2", "c2", 2),
                entry("c3", "c3", 3),
            ],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        holders(store.sync_owners("p", &keys(&["c2", "x"])).await.unwrap()),
        [("c2".into(), "c2".into())]
    );
    assert_eq!(
        state(store.sync_get("p", &owners(&["c3", "c4"])).await.unwrap()),
        [t("c3", "c3", 3)]
    );
    store
        .sync_apply(
            "p",
            vec![entry("c9", "c1", 9), entry("c2", "c2", 22)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("p", None, None, 10).await.unwrap()),
        [t("c2", "c2", 22), t("c3", "c3", 3), t("c9", "c1", 9)]
    );
    let mut got = holders(
        store
            .sync_owners("p", &keys(&["c1", "c2", "c3", "c9"]))
            .await
            .unwrap(),
    );
    got.sort();
    assert_eq!(
        got,
        [
            ("c1".into(), "c9".into()),
            ("c2".into(), "c2".into()),
            ("c3".into(), "c3".into())
        ]
    );
    // Back to keys by id: c1 takes its id back from c9, c3 moves to another key and frees its id.
    store
        .sync_apply(
            "p",
            vec![entry("c1", "c1", 11), entry("c3", "k3", 33)],
            vec![],
        )
        .await
        .unwrap();
    store
        .sync_apply("p", vec![entry("c4", "c3", 4)], vec![])
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("p", None, None, 10).await.unwrap()),
        [
            t("c1", "c1", 11),
            t("c2", "c2", 22),
            t("c3", "k3", 33),
            t("c4", "c3", 4)
        ]
    );
    assert_eq!(store.sync_count("p").await.unwrap(), 4);

    // Another pipeline keyed by id throughout, then a key of another kind that is some profile's id.
    store
        .sync_apply("q", vec![entry("a", "a", 1), entry("b", "b", 2)], vec![])
        .await
        .unwrap();
    store
        .sync_apply("q", vec![entry("c", "c", 3)], vec!["b".into()])
        .await
        .unwrap();
    store
        .sync_apply("q", vec![entry("z", "a", 26)], vec![])
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("q", None, None, 10).await.unwrap()),
        [t("c", "c", 3), t("z", "a", 26)]
    );
    assert_eq!(
        holders(store.sync_owners("q", &keys(&["a"])).await.unwrap()),
        [("a".into(), "z".into())]
    );
    store.sync_clear("q").await.unwrap();
    assert_eq!(store.sync_count("q").await.unwrap(), 0);
    store
        .sync_apply("q", vec![entry("a", "a", 5)], vec![])
        .await
        .unwrap();
    assert_eq!(
        state(store.sync_range("q", None, None, 10).await.unwrap()),
        [t("a", "a", 5)]
    );
}

pub async fn sync_apply_large_batches(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0)]).await;
    const N: usize = 10_000;
    let first: Vec<SyncEntry> = (0..N)
        .map(|i| entry(&format!("c{i:06}"), &format!("k{i}"), i as u128))
        .collect();
    let started = Instant::now();
    store.sync_apply("p", first.clone(), vec![]).await.unwrap();
    let insert_time = started.elapsed();

    // Every profile changes hash, each key moves one profile down, and a few profiles leave.
    let second: Vec<SyncEntry> = (1..N)
        .map(|i| {
            entry(
                &format!("c{i:06}"),
                &format!("k{}", i - 1),
                (i as u128) << 64,
            )
        })
        .collect();
    let deletes: Vec<String> = (0..N).step_by(1000).map(|i| format!("c{i:06}")).collect();
    let started = Instant::now();
    store
        .sync_apply("p", second.clone(), deletes.clone())
        .await
        .unwrap();
    let update_time = started.elapsed();
    eprintln!(
        "{:?}: sync_apply of {N} new entries {insert_time:?}, of {N} moved keys {update_time:?}",
        env.backend
    );

    // c000000 was deleted and its key taken; the deleted ones came back through the upserts except c000000.
    assert_eq!(store.sync_count("p").await.unwrap(), (N - 1) as u64);
    let some = store
        .sync_range("p", Some("c004999"), None, 2)
        .await
        .unwrap();
    assert_eq!(
        some,
        [
            entry("c005000", "k4999", 5000u128 << 64),
            entry("c005001", "k5000", 5001u128 << 64)
        ]
    );
    assert!(
        insert_time.as_secs() < 10 && update_time.as_secs() < 10,
        "sync_apply is too slow"
    );
}

pub async fn sync_get_and_checkpoints(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0), ("q", "two", 0)]).await;
    let entries: Vec<SyncEntry> = (0..20)
        .map(|i| entry(&format!("c{i:02}"), &format!("k{i}"), i as u128))
        .collect();
    store
        .sync_apply("p", entries.clone(), vec![])
        .await
        .unwrap();
    store
        .sync_apply("q", vec![entry("c03", "other", 99)], vec![])
        .await
        .unwrap();
    let ids: Vec<String> = ["c15", "ghost", "c03", "c15", "c00"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        store.sync_get("p", &ids).await.unwrap(),
        [
            entry("c00", "k0", 0),
            entry("c03", "k3", 3),
            entry("c15", "k15", 15)
        ]
    );
    assert_eq!(
        store.sync_get("q", &ids).await.unwrap(),
        [entry("c03", "other", 99)]
    );
    assert!(store.sync_get("p", &[]).await.unwrap().is_empty());

    assert_eq!(store.sync_checkpoint("p").await.unwrap(), None);
    let cp = SyncCheckpoint {
        mark: 42,
        fingerprint: "abc".into(),
        taken_at: at(3),
    };
    store.set_sync_checkpoint("p", Some(&cp)).await.unwrap();
    assert_eq!(store.sync_checkpoint("p").await.unwrap(), Some(cp.clone()));
    let newer = SyncCheckpoint {
        mark: i64::MAX - 1,
        fingerprint: "def".into(),
        taken_at: at(4),
    };
    store.set_sync_checkpoint("p", Some(&newer)).await.unwrap();
    store.set_sync_checkpoint("q", Some(&cp)).await.unwrap();
    assert_eq!(store.sync_checkpoint("p").await.unwrap(), Some(newer));
    store.set_sync_checkpoint("q", None).await.unwrap();
    assert_eq!(store.sync_checkpoint("q").await.unwrap(), None);
    assert!(not_found(store.set_sync_checkpoint("none", Some(&cp)).await).contains("none"));

    // Clearing the sync state forgets the checkpoint too; deleting the pipeline removes both.
    store.set_sync_checkpoint("q", Some(&cp)).await.unwrap();
    store.sync_clear("p").await.unwrap();
    assert_eq!(store.sync_checkpoint("p").await.unwrap(), None);
    assert!(store.delete_pipeline("q").await.unwrap());
    assert_eq!(store.sync_checkpoint("q").await.unwrap(), None);
}

/// Entries of profiles that left while their rows are kept: recorded and read back flagged by every
/// method, with keys of both forms (SQLite stores a key that is its profile's id without it).
pub async fn sync_left_entries_round_trip(env: &Env) {
    let store = with_pipelines(env, &[("p", "p", 0), ("q", "q", 0)]).await;
    // `p` keyed by another column, `q` by the profile id.
    for (p, prefix) in [("p", "key-"), ("q", "")] {
        let k = |id: &str| format!("{prefix}{id}");
        store
            .sync_apply(
                p,
                vec![
                    entry("a", &k("a"), 1),
                    left("b", &k("b"), 2),
                    entry("c", &k("c"), 3),
                    left("d", &k("d"), u128::MAX),
                ],
                vec![],
            )
            .await
            .unwrap();
        let all = vec![
            entry("a", &k("a"), 1),
            left("b", &k("b"), 2),
            entry("c", &k("c"), 3),
            left("d", &k("d"), u128::MAX),
        ];
        assert_eq!(store.sync_range(p, None, None, 10).await.unwrap(), all);
        assert_eq!(
            store.sync_range(p, Some("a"), Some("b"), 10).await.unwrap(),
            all[1..2]
        );
        let ids: Vec<String> = ["d", "a", "b", "x"].map(String::from).to_vec();
        assert_eq!(
            store.sync_get(p, &ids).await.unwrap(),
            [all[0].clone(), all[1].clone(), all[3].clone()]
        );
        let mut owners = store
            .sync_owners(p, &keys(&[&k("b"), &k("c"), &k("x")]))
            .await
            .unwrap();
        owners.sort_by(|x, y| x.profile_id.cmp(&y.profile_id));
        assert_eq!(owners, [all[1].clone(), all[2].clone()]);
        assert_eq!(store.sync_count(p).await.unwrap(), 2, "{p}");
        assert_eq!(store.sync_count_left(p).await.unwrap(), 2, "{p}");

        // A left profile comes back (its entry is written again), another one leaves, a left one is
        // forgotten (its row deleted).
        store
            .sync_apply(
                p,
                vec![entry("b", &k("b"), 22), left("c", &k("c"), 3)],
                vec!["d".into()],
            )
            .await
            .unwrap();
        assert_eq!(
            store.sync_range(p, None, None, 10).await.unwrap(),
            [
                entry("a", &k("a"), 1),
                entry("b", &k("b"), 22),
                left("c", &k("c"), 3)
            ]
        );
        assert_eq!(store.sync_count(p).await.unwrap(), 2);
        assert_eq!(store.sync_count_left(p).await.unwrap(), 1);
    }
    assert_eq!(store.sync_count("none").await.unwrap(), 0);
    assert_eq!(store.sync_count_left("none").await.unwrap(), 0);
    store.sync_clear("p").await.unwrap();
    assert_eq!(store.sync_count_left("p").await.unwrap(), 0);
    assert_eq!(store.sync_count_left("q").await.unwrap(), 1);

    // A batch larger than one statement (SQLite writes a few thousand entries per statement), with
    // left entries in some of its parts only.
    let many: Vec<SyncEntry> = (0..5000)
        .map(|i| {
            let id = format!("m{i:05}");
            match i {
                10 | 4990..=4994 => left(&id, &id, i),
                _ => entry(&id, &id, i),
            }
        })
        .collect();
    store.sync_apply("p", many.clone(), vec![]).await.unwrap();
    assert_eq!(
        store.sync_range("p", None, None, 10_000).await.unwrap(),
        many
    );
    assert_eq!(store.sync_count("p").await.unwrap(), 4994);
    assert_eq!(store.sync_count_left("p").await.unwrap(), 6);
}

/// A left entry holds its key until another profile's upsert takes it, which leaves the left profile
/// with no entry (its row now is the other profile's).
pub async fn sync_left_holder_gives_its_key_up(env: &Env) {
    let store = with_pipelines(env, &[("p", "p", 0), ("q", "q", 0)]).await;
    store
        .sync_apply(
            "p",
            vec![left("c1", "alice@x", 1), entry("c2", "bob@x", 2)],
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        store.sync_owners("p", &keys(&["alice@x"])).await.unwrap(),
        [left("c1", "alice@x", 1)]
    );
    store
        .sync_apply("p", vec![entry("c9", "alice@x", 9)], vec![])
        .await
        .unwrap();
    assert_eq!(
        store.sync_range("p", None, None, 10).await.unwrap(),
        [entry("c2", "bob@x", 2), entry("c9", "alice@x", 9)]
    );
    assert_eq!(
        store.sync_owners("p", &keys(&["alice@x"])).await.unwrap(),
        [entry("c9", "alice@x", 9)]
    );
    assert_eq!(store.sync_count_left("p").await.unwrap(), 0);
    // A left entry may take a key too (the row stays, under the key it was written with).
    store
        .sync_apply("p", vec![left("c3", "bob@x", 3)], vec![])
        .await
        .unwrap();
    assert_eq!(
        store.sync_range("p", None, None, 10).await.unwrap(),
        [left("c3", "bob@x", 3), entry("c9", "alice@x", 9)]
    );

    // Keys that are profile ids: the left holder's key is implied, and a written key takes it.
    store
        .sync_apply("q", vec![left("a", "a", 1), entry("b", "b", 2)], vec![])
        .await
        .unwrap();
    assert_eq!(
        store
            .sync_owners("q", &keys(&["a", "b"]))
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .sync_apply("q", vec![entry("z", "a", 26)], vec![])
        .await
        .unwrap();
    assert_eq!(
        store.sync_range("q", None, None, 10).await.unwrap(),
        [entry("b", "b", 2), entry("z", "a", 26)]
    );
    assert_eq!(
        store.sync_owners("q", &keys(&["a"])).await.unwrap(),
        [entry("z", "a", 26)]
    );
    assert_eq!(
        (
            store.sync_count("q").await.unwrap(),
            store.sync_count_left("q").await.unwrap()
        ),
        (2, 0)
    );
}

/// Entries recorded before entries could be left read back as not left, and count as such.
pub async fn sync_entries_survive_the_left_flag_migration(env: &Env) {
    // The schema version before the left flag, and the entries as that version stored them (SQLite: a
    // key that is its profile's id stored as NULL).
    let (version, sql) = match env.backend {
        Backend::Sqlite => (
            5,
            "INSERT INTO destinations (id, name, kind, settings, created_at, updated_at)
                 VALUES ('d', 'D', 'postgresql', '{}', 0, 0);
             INSERT INTO pipelines (id, destination, name, spec, created_at, updated_at)
                 VALUES ('p', 'd', 'one', '{}', 0, 0);
             INSERT INTO sync_pipelines (pipeline, written_keys, implied_keys) VALUES ('p', 1, 1);
             INSERT INTO sync_entries (pipeline, profile_id, key, hash) VALUES
                 (1, 'a', NULL, x'00000000000000000000000000000001'),
                 (1, 'b', 'kb', x'00000000000000000000000000000002');",
        ),
        Backend::Postgres => (
            3,
            "INSERT INTO sluice_destinations (id, name, kind, settings, created_at, updated_at)
                 VALUES ('d', 'D', 'postgresql', '{}', now(), now());
             INSERT INTO sluice_pipelines (id, destination, name, spec, created_at, updated_at)
                 VALUES ('p', 'd', 'one', '{}', now(), now());
             INSERT INTO sluice_sync_state (pipeline, profile_id, key, hash) VALUES
                 ('p', 'a', 'a', '\\x00000000000000000000000000000001'),
                 ('p', 'b', 'kb', '\\x00000000000000000000000000000002');",
        ),
    };
    env.metadata_at_version(version).await;
    env.metadata_sql(sql).await;
    let store = env.metadata(SecretBox::generate()).await;
    let before = [entry("a", "a", 1), entry("b", "kb", 2)];
    assert_eq!(store.sync_range("p", None, None, 10).await.unwrap(), before);
    // Entries stored before the counts were kept are counted by the migration that keeps them.
    assert_eq!(store.sync_count("p").await.unwrap(), 2);
    assert_eq!(
        store
            .sync_get("p", &["a".to_string(), "b".to_string()])
            .await
            .unwrap(),
        before
    );
    let mut owners = store.sync_owners("p", &keys(&["a", "kb"])).await.unwrap();
    owners.sort_by(|x, y| x.profile_id.cmp(&y.profile_id));
    assert_eq!(owners, before);
    assert_eq!(store.sync_count("p").await.unwrap(), 2);
    assert_eq!(store.sync_count_left("p").await.unwrap(), 0);
    // Old and new entries side by side.
    store
        .sync_apply("p", vec![left("c", "kc", 3)], vec![])
        .await
        .unwrap();
    assert_eq!(
        store.sync_range("p", None, None, 10).await.unwrap(),
        [entry("a", "a", 1), entry("b", "kb", 2), left("c", "kc", 3)]
    );
    assert_eq!(store.sync_count("p").await.unwrap(), 2);
}

/// The identity of the table a pipeline writes: recorded, replaced, forgotten, refused for an unknown
/// pipeline, and gone with the pipeline.
pub async fn sync_table_identity_round_trip(env: &Env) {
    let store = with_pipelines(env, &[("p", "p", 0), ("q", "q", 0)]).await;
    assert_eq!(store.sync_table_identity("p").await.unwrap(), None);
    store
        .set_sync_table_identity("p", Some("oid:16384"))
        .await
        .unwrap();
    store
        .set_sync_table_identity("q", Some("oid:1"))
        .await
        .unwrap();
    assert_eq!(
        store.sync_table_identity("p").await.unwrap().as_deref(),
        Some("oid:16384")
    );
    store
        .set_sync_table_identity("p", Some("oid:16999"))
        .await
        .unwrap();
    assert_eq!(
        store.sync_table_identity("p").await.unwrap().as_deref(),
        Some("oid:16999")
    );
    assert_eq!(
        store.sync_table_identity("q").await.unwrap().as_deref(),
        Some("oid:1")
    );
    store.set_sync_table_identity("p", None).await.unwrap();
    assert_eq!(store.sync_table_identity("p").await.unwrap(), None);
    assert!(not_found(store.set_sync_table_identity("none", Some("x")).await).contains("none"));
    assert!(store.delete_pipeline("q").await.unwrap());
    assert_eq!(store.sync_table_identity("q").await.unwrap(), None);
}

/// The counts (`sync_count`, `sync_count_left`) equal the entries actually held after every kind of
/// write: new entries, replaced ones, left flags set and cleared, keys taken from other holders, repeated
/// ids in one batch, deletes of entries that exist and that do not, and a clear.
pub async fn sync_counts_follow_the_entries(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0), ("q", "two", 1)]).await;
    let check = |step: &'static str| {
        let store = store.clone();
        async move {
            for pipeline in ["p", "q"] {
                let all = store
                    .sync_range(pipeline, None, None, 10_000)
                    .await
                    .unwrap();
                let left = all.iter().filter(|e| e.left).count() as u64;
                let live = all.len() as u64 - left;
                assert_eq!(
                    (
                        store.sync_count(pipeline).await.unwrap(),
                        store.sync_count_left(pipeline).await.unwrap()
                    ),
                    (live, left),
                    "{step}: counts of `{pipeline}` (live, left)"
                );
            }
        }
    };
    check("nothing recorded").await;
    let first: Vec<SyncEntry> = (0..300)
        .map(|i| entry(&format!("id-{i:04}"), &format!("k-{i}"), i))
        .collect();
    store.sync_apply("p", first, vec![]).await.unwrap();
    store
        .sync_apply("q", vec![entry("id-0001", "k-1", 1)], vec![])
        .await
        .unwrap();
    check("first batch").await;
    // Replaced entries (same id), some now left; new ones, one left.
    let second: Vec<SyncEntry> = (0..50)
        .map(|i| left(&format!("id-{i:04}"), &format!("k-{i}"), 7))
        .chain((50..100).map(|i| entry(&format!("id-{i:04}"), &format!("k-{i}"), 8)))
        .chain([left("new-1", "k-new-1", 9), entry("new-2", "k-new-2", 9)])
        .collect();
    store.sync_apply("p", second, vec![]).await.unwrap();
    check("replaced and left").await;
    // Left entries come back; keys taken from other holders (live and left); a repeated id in one batch.
    let third = vec![
        entry("id-0000", "k-0", 1),
        entry("taker-1", "k-1", 2),
        entry("taker-2", "k-200", 3),
        entry("id-0003", "k-3", 4),
        left("id-0003", "k-3", 5),
        entry("id-0004", "k-new-2", 6),
    ];
    store
        .sync_apply(
            "p",
            third,
            vec!["id-0250".into(), "missing".into(), "id-0040".into()],
        )
        .await
        .unwrap();
    check("keys taken, deletes").await;
    // Deletes only, one of an id also upserted in the same call.
    store
        .sync_apply(
            "p",
            vec![entry("id-0100", "k-100", 1)],
            vec!["id-0100".into(), "id-0101".into(), "new-1".into()],
        )
        .await
        .unwrap();
    store
        .sync_apply("p", vec![], vec!["id-0102".into(), "id-0010".into()])
        .await
        .unwrap();
    check("deletes").await;
    store.sync_clear("p").await.unwrap();
    check("cleared").await;
    store
        .sync_apply("p", vec![entry("again", "k-1", 1)], vec![])
        .await
        .unwrap();
    check("recorded after the clear").await;
}

/// The counts of a pipeline keyed by its profile ids, whose entries are overwritten in place: entries
/// overwritten live and left, an id twice in one batch, deletes, and then a written key, after which
/// entries are replaced instead.
pub async fn sync_counts_follow_entries_keyed_by_id(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0)]).await;
    let by_id = |id: &str, hash: u128| entry(id, id, hash);
    let left_by_id = |id: &str, hash: u128| left(id, id, hash);
    let check = |step: &'static str, live: u64, gone: u64| {
        let store = store.clone();
        async move {
            let all = store.sync_range("p", None, None, 10_000).await.unwrap();
            let left = all.iter().filter(|e| e.left).count() as u64;
            assert_eq!(
                (all.len() as u64 - left, left),
                (live, gone),
                "{step}: entries (live, left)"
            );
            assert_eq!(
                (
                    store.sync_count("p").await.unwrap(),
                    store.sync_count_left("p").await.unwrap()
                ),
                (live, gone),
                "{step}: counts (live, left)"
            );
        }
    };
    let first: Vec<SyncEntry> = (0..300).map(|i| by_id(&format!("id-{i:04}"), i)).collect();
    store.sync_apply("p", first, vec![]).await.unwrap();
    check("first batch", 300, 0).await;
    // Overwritten: 50 now left, 50 with a new hash; two new, one of them left.
    let second: Vec<SyncEntry> = (0..50)
        .map(|i| left_by_id(&format!("id-{i:04}"), 7))
        .chain((50..100).map(|i| by_id(&format!("id-{i:04}"), 8)))
        .chain([left_by_id("new-1", 9), by_id("new-2", 9)])
        .collect();
    store.sync_apply("p", second, vec![]).await.unwrap();
    check("overwritten and left", 251, 51).await;
    let got = store
        .sync_get("p", &["id-0060".into(), "id-0010".into()])
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|e| (e.profile_id.as_str(), e.hash, e.left))
            .collect::<Vec<_>>(),
        [("id-0010", 7, true), ("id-0060", 8, false)],
        "overwritten entries hold their new hash and flag"
    );
    // Left entries come back, one id twice in a batch (the later one stands), deletes of a live, a
    // left and a missing entry.
    let third = vec![
        by_id("id-0000", 1),
        by_id("id-0003", 4),
        left_by_id("id-0003", 5),
        left_by_id("id-0200", 6),
        by_id("id-0200", 3),
    ];
    store
        .sync_apply(
            "p",
            third,
            vec!["id-0250".into(), "id-0040".into(), "missing".into()],
        )
        .await
        .unwrap();
    check("back, twice, deleted", 251, 49).await;
    let twice = store
        .sync_get("p", &["id-0003".into(), "id-0200".into()])
        .await
        .unwrap();
    assert_eq!(
        twice
            .iter()
            .map(|e| (e.profile_id.as_str(), e.hash, e.left))
            .collect::<Vec<_>>(),
        [("id-0003", 5, true), ("id-0200", 3, false)],
        "the later of two entries of one id stands"
    );
    // A written key taken from a profile whose key is implied: its entry gives the key up.
    store
        .sync_apply("p", vec![entry("taker", "id-0100", 1)], vec![])
        .await
        .unwrap();
    check("a written key", 251, 49).await;
    store
        .sync_apply(
            "p",
            vec![
                entry("id-0101", "id-0101", 2),
                left("id-0102", "id-0102", 2),
            ],
            vec![],
        )
        .await
        .unwrap();
    check("replaced once keys are written", 250, 50).await;
}

/// A record whose statement changes more pages than SQLite keeps in a statement journal in memory
/// (2,000 entries scattered over 100,000, each on its own leaf: about 3 MB of journal), so that the
/// journal spills to a file, as a change run's records of a large pipeline do.
pub async fn sync_records_past_the_statement_journal_spill(env: &Env) {
    let store = with_pipelines(env, &[("p", "one", 0)]).await;
    let id = |k: u64| format!("c{k:07}");
    for start in (0..100_000u64).step_by(20_000) {
        let batch: Vec<SyncEntry> = (start..start + 20_000)
            .map(|k| entry(&id(k), &id(k), u128::from(k)))
            .collect();
        store.sync_apply("p", batch, vec![]).await.unwrap();
    }
    let scattered: Vec<SyncEntry> = (0..2_000u64)
        .map(|j| entry(&id(j * 50 + 7), &id(j * 50 + 7), 1))
        .collect();
    store.sync_apply("p", scattered, vec![]).await.unwrap();
    assert_eq!(store.sync_count("p").await.unwrap(), 100_000);
    let got = store
        .sync_get("p", &[id(7), id(99_957), id(8)])
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|e| (e.profile_id.as_str(), e.hash))
            .collect::<Vec<_>>(),
        [("c0000007", 1), ("c0000008", 8), ("c0099957", 1)]
    );
}
