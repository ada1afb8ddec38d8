//! Cases for `ProfileStore`.

use std::time::Instant;

use serde_json::{json, Map, Value as Json};
use sluice_core::filter::Filter;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_store::{Properties, StoreError, UpsertOutcome};

use crate::harness::Env;

fn doc(v: Json) -> Map<String, Json> {
    v.as_object().expect("an object").clone()
}

/// What a batch counted as inserted and as updated (merged, changed or not).
fn outcome(inserted: u64, updated: u64) -> (u64, u64) {
    (inserted, updated)
}

fn counted(o: UpsertOutcome) -> (u64, u64) {
    (o.inserted, o.updated)
}

pub async fn upsert_merges_into_stored_profiles(env: &Env) {
    let store = env.profiles().await;
    let first = store
        .upsert(vec![
            (
                "c1".into(),
                doc(
                    json!({"name": "Zoë", "email": "zoe@example.com", "tags": ["a", "b"],
                "address": {"city": "Zürich", "zip": "8001", "geo": {"lat": 47.37, "lon": 8.54}}}),
                ),
            ),
            ("c2".into(), doc(json!({"name": "Ana"}))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(first), outcome(2, 0));
    let before = store.get("c1").await.unwrap().unwrap();

    let second = store
        .upsert(vec![
            (
                "c1".into(),
                doc(
                    json!({"address": {"city": "Genève", "geo": {"lat": 46.2}}, "vip": true,
                "tags": ["c"], "email": null}),
                ),
            ),
            ("c3".into(), doc(json!({"name": "Ola"}))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(second), outcome(1, 1));
    let c1 = store.get("c1").await.unwrap().unwrap();
    assert_eq!(
        Json::Object(c1.doc.clone()),
        json!({"name": "Zoë", "email": null, "tags": ["c"], "vip": true,
            "address": {"city": "Genève", "zip": "8001", "geo": {"lat": 46.2, "lon": 8.54}}}),
        "nested objects merge key by key, arrays and scalars are replaced, unsent keys are kept"
    );
    assert!(c1.updated_at >= before.updated_at);
    assert!((chrono::Utc::now() - c1.updated_at).num_seconds().abs() < 60);
    assert_eq!(
        store.get("c2").await.unwrap().unwrap().doc,
        doc(json!({"name": "Ana"}))
    );

    // An object replaced by a scalar, and back.
    store
        .upsert(vec![("c2".into(), doc(json!({"name": {"first": "Ana"}})))])
        .await
        .unwrap();
    store
        .upsert(vec![("c2".into(), doc(json!({"name": {"last": "Lima"}})))])
        .await
        .unwrap();
    assert_eq!(
        store.get("c2").await.unwrap().unwrap().doc,
        doc(json!({"name": {"first": "Ana", "last": "Lima"}}))
    );
    store
        .upsert(vec![("c2".into(), doc(json!({"name": "Ana Lima"})))])
        .await
        .unwrap();
    assert_eq!(
        store.get("c2").await.unwrap().unwrap().doc,
        doc(json!({"name": "Ana Lima"}))
    );
    assert_eq!(counted(store.upsert(vec![]).await.unwrap()), outcome(0, 0));
}

/// Properties given as a map or as their JSON text store alike: a new profile as the text, an
/// existing one merged either way; text that is not a JSON object fails the batch, which writes nothing.
pub async fn upsert_properties_as_maps_or_text(env: &Env) {
    let store = env.profiles().await;
    let text = |v: Json| Properties::Text(v.to_string());
    let first = store
        .upsert_properties(vec![
            (
                "t1".into(),
                text(json!({"name": "Zoë", "address": {"city": "Zürich"}})),
            ),
            ("t2".into(), Properties::Map(doc(json!({"name": "Ana"})))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(first), outcome(2, 0));
    let second = store
        .upsert_properties(vec![
            (
                "t1".into(),
                Properties::Map(doc(json!({"address": {"zip": "8001"}}))),
            ),
            ("t2".into(), text(json!({"email": "ana@example.com"}))),
            ("t3".into(), text(json!({"name": "Ola"}))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(second), outcome(1, 2));
    let get = |id: &'static str| {
        let store = &store;
        async move { Json::Object(store.get(id).await.unwrap().unwrap().doc) }
    };
    assert_eq!(
        get("t1").await,
        json!({"name": "Zoë", "address": {"city": "Zürich", "zip": "8001"}})
    );
    assert_eq!(
        get("t2").await,
        json!({"name": "Ana", "email": "ana@example.com"})
    );
    // The same properties again change nothing.
    let again = store
        .upsert_properties(vec![("t3".into(), text(json!({"name": "Ola"})))])
        .await
        .unwrap();
    assert_eq!((again.updated, again.unchanged), (1, 1));
    // Text that is not an object is refused, and the batch writes nothing.
    for bad in ["[1, 2]", "{\"name\": "] {
        let e = store
            .upsert_properties(vec![
                ("t4".into(), text(json!({"name": "Kim"}))),
                ("t2".into(), Properties::Text(bad.into())),
            ])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("t2"), "{e}");
        assert!(store.get("t4").await.unwrap().is_none());
    }
    assert_eq!(
        get("t2").await,
        json!({"name": "Ana", "email": "ana@example.com"})
    );
}

pub async fn same_id_twice_in_a_batch(env: &Env) {
    let store = env.profiles().await;
    let out = store
        .upsert(vec![
            ("c1".into(), doc(json!({"a": 1, "o": {"x": 1}}))),
            ("c2".into(), doc(json!({"a": 2}))),
            ("c1".into(), doc(json!({"b": 2, "o": {"y": 2}, "a": 3}))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(out), outcome(2, 0), "each id counts once");
    assert_eq!(
        store.get("c1").await.unwrap().unwrap().doc,
        doc(json!({"a": 3, "b": 2, "o": {"x": 1, "y": 2}}))
    );

    let out = store
        .upsert(vec![
            ("c1".into(), doc(json!({"c": 1}))),
            ("c1".into(), doc(json!({"o": {"x": 9}}))),
        ])
        .await
        .unwrap();
    assert_eq!(counted(out), outcome(0, 1));
    assert_eq!(
        store.get("c1").await.unwrap().unwrap().doc,
        doc(json!({"a": 3, "b": 2, "c": 1, "o": {"x": 9, "y": 2}}))
    );
}

pub async fn get_delete_and_count(env: &Env) {
    let store = env.profiles().await;
    assert_eq!(store.get("c1").await.unwrap(), None);
    assert_eq!(store.count(None).await.unwrap(), 0);
    store
        .upsert(
            (0..25)
                .map(|i| (format!("c{i}"), doc(json!({"n": i}))))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(store.count(None).await.unwrap(), 25);
    let c7 = store.get("c7").await.unwrap().unwrap();
    assert_eq!((c7.id.as_str(), c7.doc["n"].clone()), ("c7", json!(7)));
    assert_eq!(c7.get("_id").unwrap().as_ref(), &json!("c7"));
    assert!(store.delete("c7").await.unwrap());
    assert!(!store.delete("c7").await.unwrap());
    assert_eq!(store.get("c7").await.unwrap(), None);
    assert_eq!(store.count(None).await.unwrap(), 24);
    // A deleted profile comes back as new.
    assert_eq!(
        counted(
            store
                .upsert(vec![("c7".into(), doc(json!({"m": 1})))])
                .await
                .unwrap()
        ),
        outcome(1, 0)
    );
    assert_eq!(
        store.get("c7").await.unwrap().unwrap().doc,
        doc(json!({"m": 1}))
    );
}

pub async fn pages_follow_byte_order(env: &Env) {
    let store = env.profiles().await;
    let ids = [
        "b", "a", "Z", "é", "e", "日本", "😀", "z", "A-10", "A-9", "ß", "Ärger", "0", "a b", "a-b",
        "a_b", "Ω",
    ];
    store
        .upsert(
            ids.iter()
                .map(|id| (id.to_string(), doc(json!({"id": id}))))
                .collect(),
        )
        .await
        .unwrap();
    let mut byte_order: Vec<&str> = ids.to_vec();
    byte_order.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

    let all = store.page(None, None, 1000).await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        byte_order
    );
    assert!(all.iter().all(|p| p.doc["id"] == json!(p.id)));

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.page(None, after.as_deref(), 4).await.unwrap();
        assert!(page.len() <= 4);
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().id.clone());
        paged.extend(page.into_iter().map(|p| p.id));
    }
    assert_eq!(paged, byte_order);
    assert!(store.page(None, Some("😀"), 10).await.unwrap().is_empty());
    assert!(store.page(None, None, 0).await.unwrap().is_empty());
    let tail: Vec<String> = store
        .page(None, Some("z"), 3)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(tail, ["Ärger", "ß", "é"]);
}

fn customer_model() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "country", "type": "string"},
        {"name": "age", "type": "int"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "seen", "type": "datetime"},
        {"name": "vip", "type": "boolean"},
        {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
    ]}))
    .unwrap();
    Schema::from_wire(&wire).unwrap()
}

/// Profiles whose properties exercise each kind of comparison a filter pushes down.
async fn load_audience(store: &dyn sluice_store::ProfileStore) {
    let schema = customer_model();
    let inputs = [
        json!({"_id": "c1", "country": "IT", "age": 34, "ltv": "1200.50", "seen": "2024-05-13T15:30:00Z", "vip": true, "address": {"city": "Milano"}}),
        json!({"_id": "c2", "country": "FR", "age": 17, "ltv": "99.99", "seen": "2023-01-01T00:00:00Z", "vip": false, "address": {"city": "Paris"}}),
        json!({"_id": "c3", "country": "DE", "age": 51, "ltv": "10000.00", "seen": "2024-12-31T23:59:59Z", "vip": true}),
        json!({"_id": "c4", "country": "IT", "age": 22, "ltv": "9.90", "vip": false, "address": {"city": "Roma"}}),
        json!({"_id": "c5", "country": null, "age": 40}),
        json!({"_id": "c6", "country": "ES", "ltv": "1200.5", "seen": "2024-05-13T17:30:00+02:00", "address": {"city": null}}),
    ];
    let profiles = inputs
        .iter()
        .map(|p| {
            schema
                .validate_profile(p.as_object().unwrap())
                .expect("a valid test profile")
        })
        .collect();
    store.upsert(profiles).await.unwrap();
}

pub async fn page_with_a_filter(env: &Env) {
    let store = env.profiles().await;
    load_audience(store.as_ref()).await;
    let schema = customer_model();
    let everyone: Vec<sluice_core::Profile> = store.page(None, None, 100).await.unwrap();
    assert_eq!(everyone.len(), 6);
    let unknown = json!({"logical": "and", "conditions": [{"property": "nope", "operator": "is", "values": ["x"]}]});
    assert!(
        Filter::parse(&unknown, &schema).is_err(),
        "filters are type-checked"
    );

    let cond = |property: &str, operator: &str, values: Json| json!({"logical": "and", "conditions": [{"property": property, "operator": operator, "values": values}]});
    let cases: Vec<(Json, Vec<&str>)> = vec![
        (
            cond("country", "is one of", json!(["IT", "FR"])),
            vec!["c1", "c2", "c4"],
        ),
        (
            json!({"logical": "and", "conditions": [
                {"property": "country", "operator": "is", "values": ["IT"]},
                {"logical": "or", "conditions": [
                    {"property": "age", "operator": "is greater than", "values": [30]},
                    {"property": "address.city", "operator": "is", "values": ["Roma"]}]}]}),
            vec!["c1", "c4"],
        ),
        // Decimals compare as numbers, not as text ("99.99" > "1000" as text).
        (
            cond("ltv", "is greater than", json!(["1000"])),
            vec!["c1", "c3", "c6"],
        ),
        (cond("ltv", "is", json!(["1200.5"])), vec!["c1", "c6"]),
        // Datetimes compare as instants (c6 was given with a +02:00 offset).
        (
            cond("seen", "is after", json!(["2024-05-13T15:00:00Z"])),
            vec!["c1", "c3", "c6"],
        ),
        (
            cond(
                "seen",
                "is on or before",
                json!(["2024-05-13T17:30:00+02:00"]),
            ),
            vec!["c1", "c2", "c6"],
        ),
        (cond("vip", "is true", json!([])), vec!["c1", "c3"]),
        (cond("age", "is between", json!([20, 39])), vec!["c1", "c4"]),
        (
            cond("address.city", "starts with", json!(["M"])),
            vec!["c1"],
        ),
        (
            cond("_id", "is one of", json!(["c2", "c5", "c9"])),
            vec!["c2", "c5"],
        ),
        // A negation is the exact complement, null values included.
        (
            cond("country", "is not", json!(["IT"])),
            vec!["c2", "c3", "c5", "c6"],
        ),
    ];
    for (wire, expected) in cases {
        let filter = Filter::parse(&wire, &schema).unwrap_or_else(|e| panic!("{wire}: {e}"));
        // Whatever the filter selects in SQL, it selects in memory too, page after page.
        let in_memory: Vec<&str> = everyone
            .iter()
            .filter(|p| filter.matches(p))
            .map(|p| p.id.as_str())
            .collect();
        let mut in_sql = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .page(Some(&filter), after.as_deref(), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().id.clone());
            in_sql.extend(page.into_iter().map(|p| p.id));
        }
        assert_eq!(in_sql, in_memory, "{wire}");
        assert_eq!(in_sql, expected, "{wire}");
        assert_eq!(
            store.count(Some(&filter)).await.unwrap(),
            expected.len() as u64,
            "{wire}"
        );
    }
}

pub async fn concurrent_upserts_merge(env: &Env) {
    let store = env.profiles().await;
    let ids: Vec<String> = (0..200).map(|i| format!("c{i:04}")).collect();
    let batch = |key: &str| -> Vec<(String, Map<String, Json>)> {
        ids.iter()
            .map(|id| (id.clone(), doc(json!({key: id, "nested": {key: 1}}))))
            .collect()
    };
    let writers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|key| {
            let (store, batch) = (store.clone(), batch(key));
            tokio::spawn(async move { store.upsert(batch).await })
        })
        .collect();
    let mut total = UpsertOutcome::default();
    for w in writers {
        let out = w.await.unwrap().unwrap();
        total.inserted += out.inserted;
        total.updated += out.updated;
    }
    assert_eq!(
        counted(total),
        outcome(200, 400),
        "each profile inserted once, then merged twice"
    );
    for p in store.page(None, None, 1000).await.unwrap() {
        assert_eq!(
            Json::Object(p.doc),
            json!({"a": p.id, "b": p.id, "c": p.id, "nested": {"a": 1, "b": 1, "c": 1}}),
            "no writer's properties were lost"
        );
    }
}

fn realistic(i: usize) -> (String, Map<String, Json>) {
    let countries = ["IT", "FR", "DE", "ES", "NL", "PT"];
    let cities = [
        "Zürich",
        "São Paulo",
        "Kraków",
        "Malmö",
        "Đà Nẵng",
        "Rennes",
    ];
    (
        format!("customer-{i:07}"),
        doc(json!({
            "email": format!("user{i}@example.com"), "first_name": "Zoë", "last_name": format!("Müller-{i}"),
            "country": countries[i % countries.len()], "age": 18 + i % 60, "ltv": format!("{}.{:02}", i % 5000, i % 100),
            "vip": i % 7 == 1, "score": (i % 1000) as f64 / 10.0, "signed_up": "2024-05-13T15:30:00Z",
            "birthday": "1990-01-02", "tags": ["newsletter", "beta"],
            "address": {"city": cities[i % cities.len()], "zip": format!("{:05}", i % 99999), "street": "Via Roma 1"},
            "phone": format!("+39 02 {i:07}"), "language": "it", "source": "import", "consent": true,
        })),
    )
}

pub async fn bulk_upsert_and_scan(env: &Env) {
    let store = env.profiles().await;
    const BATCH: usize = 10_000;
    const BATCHES: usize = 3;
    let mut insert_times = Vec::new();
    for b in 0..BATCHES {
        let batch: Vec<_> = (b * BATCH..(b + 1) * BATCH).map(realistic).collect();
        let started = Instant::now();
        assert_eq!(
            counted(store.upsert(batch).await.unwrap()),
            outcome(BATCH as u64, 0)
        );
        insert_times.push(started.elapsed());
    }
    let update: Vec<_> = (0..BATCH)
        .map(|i| {
            (
                format!("customer-{i:07}"),
                doc(json!({"vip": true, "address": {"city": "Bergen"}})),
            )
        })
        .collect();
    let started = Instant::now();
    assert_eq!(
        counted(store.upsert(update).await.unwrap()),
        outcome(0, BATCH as u64)
    );
    let update_time = started.elapsed();

    let started = Instant::now();
    let mut after: Option<String> = None;
    let mut seen = 0;
    loop {
        let page = store.page(None, after.as_deref(), 5_000).await.unwrap();
        let Some(last) = page.last() else { break };
        if seen == 0 {
            assert_eq!(
                page[0].doc["address"],
                json!({"city": "Bergen", "zip": "00000", "street": "Via Roma 1"})
            );
        }
        after = Some(last.id.clone());
        seen += page.len();
    }
    let scan_time = started.elapsed();
    assert_eq!(seen, BATCH * BATCHES);
    eprintln!(
        "{:?}: upsert of {BATCH} new profiles {insert_times:?}, merge of {BATCH} {update_time:?}, \
         paging {seen} in pages of 5000 {scan_time:?}",
        env.backend
    );
    // Generous bounds that still catch a per-row round trip or an O(n²) page.
    assert!(
        insert_times.iter().all(|t| t.as_secs() < 10) && update_time.as_secs() < 10,
        "upsert is too slow"
    );
    assert!(scan_time.as_secs() < 20, "paging is too slow");
}

pub async fn profile_migrations_are_idempotent(env: &Env) {
    // Several instances starting together on a fresh store: each migration step runs once.
    let (x, y, z) = tokio::join!(env.try_profiles(), env.try_profiles(), env.try_profiles());
    drop((x.unwrap(), y.unwrap(), z.unwrap()));
    let first = env.profiles().await;
    first
        .upsert(vec![("c1".into(), doc(json!({"a": 1})))])
        .await
        .unwrap();
    drop(first);
    let (a, b) = tokio::join!(env.try_profiles(), env.try_profiles());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.get("c1").await.unwrap().unwrap().doc,
        doc(json!({"a": 1}))
    );
    assert_eq!(b.count(None).await.unwrap(), 1);
    drop((a, b));

    env.set_schema_version("profiles", 42).await;
    match env.try_profiles().await {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains("42") && m.contains("newer Sluice"), "{m}")
        }
        Err(other) => panic!("expected a clear version error, got {other:?}"),
        Ok(_) => panic!("a store from a newer version must not open"),
    }
}

/// Change marks see exactly the changes made after them: inserts, real updates and deletes, not a profile
/// sent again as it was; a deleted profile stored again is changed, not deleted.
pub async fn changes_since_a_mark(env: &Env) {
    let store = env.profiles().await;
    let ids = |ps: Vec<sluice_core::Profile>| ps.into_iter().map(|p| p.id).collect::<Vec<_>>();
    store
        .upsert(
            (0..30)
                .map(|i| (format!("p{i:02}"), doc(json!({"n": i}))))
                .collect(),
        )
        .await
        .unwrap();
    // On PostgreSQL a mark stays below any transaction still running anywhere on the server (other tests
    // share it), so it may count earlier writes as changes — the safe side. Once no older transaction is
    // running, a fresh mark sees none.
    let started = std::time::Instant::now();
    let mark = loop {
        let mark = store.change_mark().await.unwrap();
        let counts = store.count_changes(mark).await.unwrap();
        if counts == sluice_store::ChangeCounts::default() {
            break mark;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "a mark taken after the writes still counts {counts:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(store.changed_page(mark, None, 10).await.unwrap().is_empty());

    // Sent again unchanged: still "updated" for the caller, but no change and the same `_updated_at`.
    let before = store.get("p01").await.unwrap().unwrap();
    assert_eq!(
        store
            .upsert(vec![("p01".into(), doc(json!({"n": 1})))])
            .await
            .unwrap(),
        UpsertOutcome {
            inserted: 0,
            updated: 1,
            unchanged: 1
        },
        "merged, and left as it was"
    );
    assert_eq!(store.get("p01").await.unwrap().unwrap(), before);
    assert_eq!(store.count_changes(mark).await.unwrap().changed, 0);

    store
        .upsert(vec![
            ("p05".into(), doc(json!({"n": 50}))),
            ("p02".into(), doc(json!({"m": true}))),
            ("new".into(), doc(json!({"n": 99}))),
        ])
        .await
        .unwrap();
    assert!(store.delete("p07").await.unwrap());
    assert!(store.delete("p09").await.unwrap());
    assert!(!store.delete("ghost").await.unwrap());
    store
        .upsert(vec![("p09".into(), doc(json!({"n": 9})))])
        .await
        .unwrap();

    assert_eq!(
        store.count_changes(mark).await.unwrap(),
        sluice_store::ChangeCounts {
            changed: 4,
            deleted: 2
        }
    );
    assert_eq!(
        ids(store.changed_page(mark, None, 100).await.unwrap()),
        ["new", "p02", "p05", "p09"]
    );
    assert_eq!(
        ids(store.changed_page(mark, None, 2).await.unwrap()),
        ["new", "p02"]
    );
    assert_eq!(
        ids(store.changed_page(mark, Some("p02"), 2).await.unwrap()),
        ["p05", "p09"]
    );
    let p05 = store.changed_page(mark, Some("p02"), 1).await.unwrap();
    assert_eq!(p05[0].doc, doc(json!({"n": 50})));
    assert_eq!(store.deleted_since(mark).await.unwrap(), ["p07"]);

    // A later mark sees only what comes after it.
    let later = store.change_mark().await.unwrap();
    assert!(later > mark);
    assert_eq!(
        store.count_changes(later).await.unwrap(),
        sluice_store::ChangeCounts::default()
    );
    assert!(store.deleted_since(later).await.unwrap().is_empty());
    store
        .upsert(vec![("p00".into(), doc(json!({"n": -1})))])
        .await
        .unwrap();
    assert_eq!(
        ids(store.changed_page(later, None, 10).await.unwrap()),
        ["p00"]
    );
}

/// The mark's promise under concurrent writes: whatever a read made after taking the mark did not see is
/// listed as changed since the mark.
pub async fn marks_hold_under_concurrent_writes(env: &Env) {
    let store = env.profiles().await;
    let all = |s: std::sync::Arc<dyn sluice_store::ProfileStore>| async move {
        s.page(None, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.doc))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..60 {
                store
                    .upsert(
                        (0..150)
                            .map(|i| (format!("w{i:03}"), doc(json!({"round": round}))))
                            .collect(),
                    )
                    .await
                    .unwrap();
            }
        })
    };
    let mut observed = Vec::new();
    while !writer.is_finished() {
        let mark = store.change_mark().await.unwrap();
        observed.push((mark, all(store.clone()).await));
    }
    writer.await.unwrap();
    assert!(
        observed.len() > 1,
        "the writer ended before any mark was taken"
    );
    let last = all(store.clone()).await;
    for (mark, seen) in observed {
        let changed: std::collections::HashSet<String> = store
            .changed_page(mark, None, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        for (id, doc) in &last {
            if seen.get(id) != Some(doc) {
                assert!(
                    changed.contains(id),
                    "`{id}` changed after mark {mark} but is not listed"
                );
            }
        }
    }
}

/// A change cursor counts exactly the changes committed after it: a transaction left open elsewhere on
/// the server does not make earlier changes look new (as it does for a mark), and a change in flight
/// when the cursor was taken counts once it commits.
pub async fn change_cursors_count_exactly(env: &Env) {
    use sluice_store::ChangeCounts;
    let store = env.profiles().await;
    // PostgreSQL: a writing transaction opened before the writes and kept open throughout.
    let holder = match env.store_url() {
        Some(_) => {
            let c = crate::harness::admin_client(&crate::harness::postgres_url()).await;
            c.batch_execute("BEGIN; SELECT pg_current_xact_id();")
                .await
                .unwrap();
            Some(c)
        }
        None => None,
    };
    store
        .upsert(
            (0..5)
                .map(|i| (format!("p{i}"), doc(json!({"n": i}))))
                .collect(),
        )
        .await
        .unwrap();
    let cursor = store.change_cursor().await.unwrap();
    assert_eq!(
        store.count_changes_after(&cursor).await.unwrap(),
        Some(ChangeCounts::default())
    );
    if holder.is_some() {
        let mark = store.change_mark().await.unwrap();
        assert!(
            store.count_changes(mark).await.unwrap().changed >= 5,
            "a mark stays below the open transaction"
        );
    }
    store
        .upsert(vec![("p1".into(), doc(json!({"n": 10})))])
        .await
        .unwrap();
    for n in [20, 21] {
        store
            .upsert(vec![("p2".into(), doc(json!({"n": n})))])
            .await
            .unwrap();
    }
    assert!(store.delete("p3").await.unwrap());
    assert_eq!(
        store.count_changes_after(&cursor).await.unwrap(),
        Some(ChangeCounts {
            changed: 2,
            deleted: 1
        }),
        "each profile once, however often it changed"
    );
    if let Some(url) = env.store_url() {
        // A change in flight when the cursor is taken counts once it commits.
        let writer = crate::harness::admin_client(url).await;
        writer
            .batch_execute(
                "BEGIN; UPDATE sluice_profiles SET change_id = pg_current_xact_id()::text::bigint WHERE id = 'p4';",
            )
            .await
            .unwrap();
        let during = store.change_cursor().await.unwrap();
        assert_eq!(
            store.count_changes_after(&during).await.unwrap(),
            Some(ChangeCounts::default())
        );
        writer.batch_execute("COMMIT").await.unwrap();
        assert_eq!(
            store.count_changes_after(&during).await.unwrap(),
            Some(ChangeCounts {
                changed: 1,
                deleted: 0
            })
        );
    }
    if let Some(h) = holder {
        h.batch_execute("ROLLBACK").await.unwrap();
    }
    let other = match env.store_url() {
        Some(_) => "sqlite:1",
        None => "pg:1:2:",
    };
    for bad in [other, "", "garbage", "pg:x:y:z", "sqlite:"] {
        assert_eq!(store.count_changes_after(bad).await.unwrap(), None, "{bad}");
    }
}

/// PostgreSQL: a transaction held open in another database of the server cannot write this store's
/// profiles, and does not hold the change mark back; one in this database does.
pub async fn marks_pass_over_other_databases(env: &Env) {
    let store = env.profiles().await;
    let base: tokio_postgres::Config = crate::harness::postgres_url().parse().unwrap();
    let other = match base.get_dbname() {
        Some("postgres") => "template1",
        _ => "postgres",
    };
    let mut elsewhere = base.clone();
    elsewhere.dbname(other);
    let open = |config: tokio_postgres::Config| async move {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute("BEGIN").await.unwrap();
        let xid: i64 = client
            .query_one("SELECT pg_current_xact_id()::text::bigint", &[])
            .await
            .unwrap()
            .get(0);
        (client, xid)
    };
    let (held_elsewhere, xid_elsewhere) = open(elsewhere).await;
    store
        .upsert(vec![("p1".into(), doc(json!({"n": 1})))])
        .await
        .unwrap();
    // Transactions of other tests in this database end soon; the one held elsewhere does not, and
    // a mark at or below it would count the write above again on every run.
    let started = std::time::Instant::now();
    let mark = loop {
        let mark = store.change_mark().await.unwrap();
        if mark > xid_elsewhere
            && store.count_changes(mark).await.unwrap() == sluice_store::ChangeCounts::default()
        {
            break mark;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the mark {mark} stays held back by transaction {xid_elsewhere} of database {other}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    // A transaction of this database, which may yet write, holds the mark at or below its id.
    let (held_here, xid_here) = open(env.store_url().unwrap().parse().unwrap()).await;
    let held = store.change_mark().await.unwrap();
    assert!(held <= xid_here, "{held} > {xid_here}");
    assert!(held >= mark);
    held_here.batch_execute("COMMIT").await.unwrap();
    held_elsewhere.batch_execute("COMMIT").await.unwrap();
}

/// PostgreSQL: a profile table never analyzed (freshly loaded) is analyzed before its changes are
/// counted, so that the count and the pages of changes use the change index, not a walk of the table.
pub async fn changes_are_counted_with_statistics(env: &Env) {
    let store = env.profiles().await;
    let client = crate::harness::admin_client(env.store_url().expect("a PostgreSQL store")).await;
    let reltuples = || async {
        client
            .query_one(
                "SELECT reltuples::float8 FROM pg_class WHERE oid = 'sluice_profiles'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get::<_, f64>(0)
    };
    let batch: Vec<_> = (0..500)
        .map(|i| (format!("p{i:04}"), doc(json!({"n": i}))))
        .collect();
    store.upsert(batch).await.unwrap();
    assert!(reltuples().await < 0.0, "a new table has no statistics yet");
    let mark = store.change_mark().await.unwrap();
    store
        .upsert(vec![("p0007".into(), doc(json!({"n": -7})))])
        .await
        .unwrap();
    // Other tests' transactions in this database may hold the mark back below the first batch: the
    // count is at least the one change.
    assert!(store.count_changes(mark).await.unwrap().changed >= 1);
    assert_eq!(reltuples().await, 500.0, "analyzed before counting");
    let page = store.changed_page(mark, None, 1_000).await.unwrap();
    assert!(page.iter().any(|p| p.id == "p0007"));
}
