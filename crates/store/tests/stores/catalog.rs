//! Cases for `Catalog`: the Customer Model, destinations and pipelines.

use serde_json::json;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_store::{DestinationTest, RunStatus, SecretBox, StoreError};

use crate::fixtures::{
    at, conflict, destination, entry, not_found, pipeline, run, with_pipelines, PASSWORD,
    PRIVATE_KEY,
};
use crate::harness::Env;

pub async fn customer_model_round_trip(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    assert_eq!(store.get_schema().await.unwrap(), Schema::default());
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "email", "type": "string", "nullable": true, "description": "Where we write"},
        {"name": "ltv", "type": "decimal(12,2)"},
        {"name": "tags", "type": "array(string)"},
        {"name": "address", "type": "object", "properties": [
            {"name": "city", "type": "string"},
            {"name": "geo", "type": "object", "properties": [{"name": "lat", "type": "float", "nullable": false}]}
        ]},
        {"name": "orders", "type": "array(object)", "properties": [{"name": "total", "type": "decimal(10,2)"}]}
    ]}))
    .unwrap();
    let schema = Schema::from_wire(&wire).unwrap();
    store.put_schema(&schema).await.unwrap();
    assert_eq!(store.get_schema().await.unwrap(), schema);

    let mut smaller = schema.clone();
    smaller.properties.truncate(1);
    store.put_schema(&smaller).await.unwrap();
    assert_eq!(store.get_schema().await.unwrap(), smaller);
}

pub async fn destinations_crud_and_conflicts(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    let a = destination("d-a", "Warehouse replica", 0);
    let b = destination("d-b", "Marketing", 1);
    store.insert_destination(&b).await.unwrap();
    store.insert_destination(&a).await.unwrap();
    assert_eq!(
        store.list_destinations().await.unwrap(),
        vec![a.clone(), b.clone()],
        "ordered by creation"
    );
    assert_eq!(store.get_destination("d-a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_destination("nope").await.unwrap(), None);

    let taken = conflict(
        store
            .insert_destination(&destination("d-c", "Warehouse replica", 2))
            .await,
    );
    assert_eq!(
        taken,
        "a destination named `Warehouse replica` already exists"
    );
    let same_id = conflict(
        store
            .insert_destination(&destination("d-a", "Other", 2))
            .await,
    );
    assert!(same_id.contains("d-a"), "{same_id}");

    let mut renamed = a.clone();
    renamed.name = "Replica (EU)".into();
    renamed.settings["host"] = json!("eu.db.example.com");
    renamed.settings["password"] = json!("new password");
    renamed.updated_at = at(5);
    store.update_destination(&renamed).await.unwrap();
    assert_eq!(
        store.get_destination("d-a").await.unwrap(),
        Some(renamed.clone())
    );

    let mut clash = renamed.clone();
    clash.name = "Marketing".into();
    assert_eq!(
        conflict(store.update_destination(&clash).await),
        "a destination named `Marketing` already exists"
    );
    let missing = not_found(
        store
            .update_destination(&destination("d-zz", "Ghost", 0))
            .await,
    );
    assert!(missing.contains("d-zz"), "{missing}");

    assert!(store.delete_destination("d-b").await.unwrap());
    assert!(!store.delete_destination("d-b").await.unwrap());
    assert_eq!(store.list_destinations().await.unwrap(), vec![renamed]);
    // The freed name can be taken again.
    store
        .insert_destination(&destination("d-d", "Marketing", 9))
        .await
        .unwrap();
}

pub async fn secrets_are_encrypted_at_rest(env: &Env) {
    let key = SecretBox::generate_key_base64();
    let store = env.metadata(SecretBox::from_base64(&key).unwrap()).await;
    let mut snowflake = destination("d-s", "Snowflake", 0);
    snowflake.kind = "snowflake".into();
    snowflake.settings = json!({"account": "org-acct", "username": "u", "password": null,
        "private_key": PRIVATE_KEY, "private_key_passphrase": "pass phrase"});
    store.insert_destination(&snowflake).await.unwrap();
    store
        .insert_destination(&destination("d-p", "Postgres", 1))
        .await
        .unwrap();

    let raw = env.raw_settings("d-p").await;
    assert!(
        !raw.contains(PASSWORD) && !raw.contains("s3cr3t"),
        "password stored in clear: {raw}"
    );
    assert!(
        raw.contains("db.example.com"),
        "other settings stay readable: {raw}"
    );
    assert!(raw.contains("\"v1:"), "{raw}");
    let raw = env.raw_settings("d-s").await;
    assert!(
        !raw.contains("BEGIN PRIVATE KEY") && !raw.contains("pass phrase"),
        "{raw}"
    );

    // Another store instance with the same key reads them back.
    let again = env.metadata(SecretBox::from_base64(&key).unwrap()).await;
    let read = again.get_destination("d-p").await.unwrap().unwrap();
    assert_eq!(read.settings["password"], json!(PASSWORD));
    assert_eq!(
        again.get_destination("d-s").await.unwrap().unwrap(),
        snowflake
    );
}

pub async fn wrong_secret_key_is_reported(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    store
        .insert_destination(&destination("d-p", "Postgres", 0))
        .await
        .unwrap();
    let mut plain = destination("d-q", "No secrets", 1);
    plain.settings = json!({"path": "/tmp/x.db"});
    store.insert_destination(&plain).await.unwrap();

    let wrong = env.metadata(SecretBox::generate()).await;
    for result in [
        wrong.get_destination("d-p").await.map(|_| ()),
        wrong.list_destinations().await.map(|_| ()),
    ] {
        match result {
            Err(StoreError::Corrupt(m)) => {
                assert!(
                    m.contains("secret key") && m.contains("Postgres") && m.contains("password"),
                    "{m}"
                );
                assert!(!m.contains(PASSWORD), "{m}");
            }
            other => panic!("expected a corrupt-secret error, got {other:?}"),
        }
    }
    // A destination without secrets is still readable.
    assert_eq!(wrong.get_destination("d-q").await.unwrap(), Some(plain));
}

pub async fn reseal_secrets_moves_every_secret_to_the_new_key(env: &Env) {
    let old = SecretBox::generate_key_base64();
    let new = SecretBox::generate_key_base64();
    let store = env.metadata(SecretBox::from_base64(&old).unwrap()).await;
    store
        .insert_destination(&destination("d-p", "Postgres", 0))
        .await
        .unwrap();
    let mut snowflake = destination("d-s", "Snowflake", 1);
    snowflake.kind = "snowflake".into();
    snowflake.settings = json!({"account": "org-acct", "username": "u",
        "private_key": PRIVATE_KEY, "private_key_passphrase": "pass phrase"});
    store.insert_destination(&snowflake).await.unwrap();
    let mut plain = destination("d-q", "No secrets", 2);
    plain.settings = json!({"path": "/tmp/x.db"});
    store.insert_destination(&plain).await.unwrap();
    let before = store.list_destinations().await.unwrap();
    let raw_before = env.raw_settings("d-p").await;

    assert_eq!(
        store
            .reseal_secrets(&SecretBox::from_base64(&new).unwrap())
            .await
            .unwrap(),
        3
    );
    let raw_after = env.raw_settings("d-p").await;
    assert_ne!(raw_before, raw_after);
    assert!(!raw_after.contains(PASSWORD), "{raw_after}");
    let rotated = env.metadata(SecretBox::from_base64(&new).unwrap()).await;
    assert_eq!(rotated.list_destinations().await.unwrap(), before);
    let stale = env.metadata(SecretBox::from_base64(&old).unwrap()).await;
    assert!(matches!(
        stale.get_destination("d-p").await,
        Err(StoreError::Corrupt(_))
    ));

    // A secret the store's key cannot open stops the rotation, and nothing changes.
    let other = env.metadata(SecretBox::generate()).await;
    other
        .insert_destination(&destination("d-x", "Sealed elsewhere", 3))
        .await
        .unwrap();
    let raw_p = env.raw_settings("d-p").await;
    let err = rotated
        .reseal_secrets(&SecretBox::generate())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("Sealed elsewhere")),
        "{err}"
    );
    assert_eq!(env.raw_settings("d-p").await, raw_p);
    assert_eq!(
        rotated.get_destination("d-s").await.unwrap().unwrap(),
        snowflake
    );
}

/// PostgreSQL and MySQL destinations saved before TLS `require` became the default keep `prefer`.
pub async fn destinations_without_a_tls_mode_keep_prefer(env: &Env) {
    let (version, table, now) = match env.backend {
        crate::harness::Backend::Sqlite => (6, "destinations", "0"),
        crate::harness::Backend::Postgres => (4, "sluice_destinations", "now()"),
    };
    env.metadata_at_version(version).await;
    let rows = [
        (
            "a",
            "postgresql",
            r#"{"host": "h", "username": "u", "database": "d"}"#,
        ),
        (
            "b",
            "mysql",
            r#"{"host": "h", "username": "u", "database": "d", "tls": null}"#,
        ),
        (
            "c",
            "postgresql",
            r#"{"host": "h", "username": "u", "database": "d", "tls": {"ca_cert": ""}}"#,
        ),
        (
            "d",
            "postgresql",
            r#"{"host": "h", "username": "u", "database": "d", "tls": {"mode": "disable"}}"#,
        ),
        (
            "e",
            "mysql",
            r#"{"host": "h", "username": "u", "database": "d", "tls": "verify"}"#,
        ),
        ("f", "clickhouse", r#"{"host": "h", "database": "d"}"#),
    ];
    let values: Vec<String> = rows
        .iter()
        .map(|(id, kind, settings)| {
            format!("('{id}', '{id}', '{kind}', '{settings}', {now}, {now})")
        })
        .collect();
    env.metadata_sql(&format!(
        "INSERT INTO {table} (id, name, kind, settings, created_at, updated_at) VALUES {}",
        values.join(", ")
    ))
    .await;
    let store = env.metadata(SecretBox::generate()).await;
    let tls = |id: &'static str| {
        let store = store.clone();
        async move { store.get_destination(id).await.unwrap().unwrap().settings["tls"].clone() }
    };
    assert_eq!(tls("a").await, json!({"mode": "prefer"}));
    assert_eq!(tls("b").await, json!({"mode": "prefer"}));
    assert_eq!(tls("c").await["mode"], "prefer");
    assert_eq!(tls("d").await, json!({"mode": "disable"}));
    assert_eq!(tls("e").await, json!("verify"));
    assert_eq!(tls("f").await, json!(null));
}

pub async fn destination_in_use_is_not_deleted(env: &Env) {
    let store = with_pipelines(env, &[("p-a", "a", 0), ("p-b", "b", 1)]).await;
    assert_eq!(
        conflict(store.delete_destination("d").await),
        "destination is used by pipelines `a`, `b`; delete them first"
    );
    assert!(store.delete_pipeline("p-a").await.unwrap());
    assert_eq!(
        conflict(store.delete_destination("d").await),
        "destination is used by pipeline `b`; delete it first"
    );
    assert!(store.get_destination("d").await.unwrap().is_some());
    assert!(store.delete_pipeline("p-b").await.unwrap());
    assert!(store.delete_destination("d").await.unwrap());
}

/// The last connection test of each destination is kept (the newest replacing the one before), and goes
/// with its destination.
pub async fn last_connection_test_is_kept(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    store
        .insert_destination(&destination("d-a", "A", 0))
        .await
        .unwrap();
    store
        .insert_destination(&destination("d-b", "B", 1))
        .await
        .unwrap();
    assert_eq!(store.destination_tests().await.unwrap(), vec![]);
    let passed = DestinationTest {
        at: at(1),
        ok: true,
        code: None,
        message: None,
    };
    let failed = DestinationTest {
        at: at(2),
        ok: false,
        code: Some("NotFound".into()),
        message: Some("database \"nope\" does not exist".into()),
    };
    store.record_destination_test("d-a", &passed).await.unwrap();
    store.record_destination_test("d-b", &passed).await.unwrap();
    store.record_destination_test("d-a", &failed).await.unwrap();
    // A destination that is gone records nothing.
    store
        .record_destination_test("d-gone", &passed)
        .await
        .unwrap();
    assert_eq!(
        store.destination_tests().await.unwrap(),
        vec![
            ("d-a".to_string(), failed),
            ("d-b".to_string(), passed.clone())
        ]
    );
    assert!(store.delete_destination("d-a").await.unwrap());
    assert_eq!(
        store.destination_tests().await.unwrap(),
        vec![("d-b".to_string(), passed)]
    );
}

pub async fn pipelines_crud_and_conflicts(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    store
        .insert_destination(&destination("d1", "One", 0))
        .await
        .unwrap();
    store
        .insert_destination(&destination("d2", "Two", 1))
        .await
        .unwrap();
    let p1 = pipeline("p1", "d1", "Subscribed customers", 0);
    let p2 = pipeline("p2", "d1", "Churned", 1);
    let p3 = pipeline("p3", "d2", "Subscribed customers", 2);
    for p in [&p2, &p1, &p3] {
        store.insert_pipeline(p).await.unwrap();
    }
    assert_eq!(
        store.list_pipelines(None).await.unwrap(),
        vec![p1.clone(), p2.clone(), p3.clone()]
    );
    assert_eq!(
        store.list_pipelines(Some("d1")).await.unwrap(),
        vec![p1.clone(), p2.clone()]
    );
    assert_eq!(store.list_pipelines(Some("d-none")).await.unwrap(), vec![]);
    assert_eq!(store.get_pipeline("p1").await.unwrap(), Some(p1.clone()));
    assert_eq!(store.get_pipeline("nope").await.unwrap(), None);
    let sluice_core::pipeline::Transformation::Mapping(m) = &store
        .get_pipeline("p1")
        .await
        .unwrap()
        .unwrap()
        .spec
        .transformation
    else {
        panic!("mapping expected")
    };
    assert_eq!(
        m.0.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        ["customer_id", "zip", "email"]
    );

    assert_eq!(
        conflict(
            store
                .insert_pipeline(&pipeline("p4", "d1", "Churned", 3))
                .await
        ),
        "the destination already has a pipeline named `Churned`"
    );
    assert!(conflict(
        store
            .insert_pipeline(&pipeline("p1", "d2", "Fresh", 3))
            .await
    )
    .contains("p1"));
    let missing = not_found(
        store
            .insert_pipeline(&pipeline("p5", "d-gone", "x", 3))
            .await,
    );
    assert!(missing.contains("d-gone"), "{missing}");

    let mut changed = p2.clone();
    changed.spec.name = "Subscribed customers".into();
    assert_eq!(
        conflict(store.update_pipeline(&changed).await),
        "the destination already has a pipeline named `Subscribed customers`"
    );
    changed.spec.name = "Churned (EU)".into();
    changed.spec.enabled = false;
    changed.spec.filter = None;
    changed.spec.schedule = None;
    changed.updated_at = at(7);
    store.update_pipeline(&changed).await.unwrap();
    assert_eq!(
        store.get_pipeline("p2").await.unwrap(),
        Some(changed.clone())
    );

    let mut moved = changed.clone();
    moved.spec.destination = "d2".into();
    store.update_pipeline(&moved).await.unwrap();
    assert_eq!(
        store.list_pipelines(Some("d2")).await.unwrap(),
        vec![moved.clone(), p3.clone()]
    );
    let mut nowhere = moved.clone();
    nowhere.spec.destination = "d-gone".into();
    assert!(not_found(store.update_pipeline(&nowhere).await).contains("d-gone"));
    assert!(not_found(
        store
            .update_pipeline(&pipeline("p-none", "d1", "z", 0))
            .await
    )
    .contains("p-none"));
}

pub async fn deleting_a_pipeline_cascades(env: &Env) {
    let store = with_pipelines(env, &[("p1", "one", 0), ("p2", "two", 1)]).await;
    for (p, r) in [("p1", "r1"), ("p1", "r2"), ("p2", "r3")] {
        store
            .insert_run(&run(r, p, 0, RunStatus::Succeeded))
            .await
            .unwrap();
    }
    store
        .sync_apply(
            "p1",
            vec![entry("c1", "k1", 1), entry("c2", "k2", 2)],
            vec![],
        )
        .await
        .unwrap();
    store
        .sync_apply("p2", vec![entry("c1", "k1", 1)], vec![])
        .await
        .unwrap();

    assert!(store.delete_pipeline("p1").await.unwrap());
    assert!(!store.delete_pipeline("p1").await.unwrap());
    assert_eq!(store.get_pipeline("p1").await.unwrap(), None);
    assert_eq!(store.get_run("r1").await.unwrap(), None);
    assert_eq!(store.get_run("r2").await.unwrap(), None);
    assert_eq!(store.sync_count("p1").await.unwrap(), 0);
    assert!(store
        .sync_range("p1", None, None, 10)
        .await
        .unwrap()
        .is_empty());
    // The other pipeline keeps its runs and state.
    assert!(store.get_run("r3").await.unwrap().is_some());
    assert_eq!(store.sync_count("p2").await.unwrap(), 1);
}

pub async fn apply_changes_is_all_or_nothing(env: &Env) {
    use sluice_store::CatalogChanges;
    let store = env.metadata(SecretBox::generate()).await;
    let kept = destination("d-kept", "Kept", 0);
    let gone = destination("d-gone", "Gone", 1);
    store.insert_destination(&kept).await.unwrap();
    store.insert_destination(&gone).await.unwrap();
    let old = pipeline("p-old", "d-gone", "Old", 2);
    let moved = pipeline("p-moved", "d-kept", "Moved", 3);
    store.insert_pipeline(&old).await.unwrap();
    store.insert_pipeline(&moved).await.unwrap();
    let snapshot = (
        store.get_schema().await.unwrap(),
        store.list_destinations().await.unwrap(),
        store.list_pipelines(None).await.unwrap(),
    );

    let new_dest = destination("d-new", "New", 4);
    let mut changed = kept.clone();
    changed.settings["password"] = json!("changed secret");
    changed.updated_at = at(5);
    let mut moved_to_new = moved.clone();
    moved_to_new.spec.destination = "d-new".into();
    moved_to_new.updated_at = at(5);
    // The old pipeline's name is free once it is deleted in the same change.
    let reuse = pipeline("p-reuse", "d-new", "Old", 6);
    let schema: SchemaWire =
        serde_json::from_value(json!({"properties": [{"name": "email", "type": "string"}]}))
            .unwrap();
    let mut changes = CatalogChanges {
        schema: Some(Schema::from_wire(&schema).unwrap()),
        insert_destinations: vec![new_dest.clone()],
        update_destinations: vec![changed.clone()],
        delete_pipelines: vec!["p-old".into()],
        update_pipelines: vec![moved_to_new.clone()],
        insert_pipelines: vec![reuse.clone(), pipeline("p-bad", "d-missing", "Bad", 7)],
        delete_destinations: vec!["d-gone".into()],
        ..CatalogChanges::default()
    };

    // The last pipeline names a destination that does not exist: nothing happened, the earlier
    // changes of the same call included.
    not_found(store.apply_changes(&changes).await);
    let now = (
        store.get_schema().await.unwrap(),
        store.list_destinations().await.unwrap(),
        store.list_pipelines(None).await.unwrap(),
    );
    assert_eq!(now, snapshot);

    // A destination still in use (by a pipeline the change keeps) refuses the whole change too.
    changes.insert_pipelines.pop();
    changes.delete_destinations = vec!["d-kept".into()];
    changes.update_pipelines.clear();
    changes
        .insert_pipelines
        .push(pipeline("p-stays", "d-kept", "Stays", 8));
    conflict(store.apply_changes(&changes).await);
    assert_eq!(store.list_destinations().await.unwrap(), snapshot.1);
    assert_eq!(store.list_pipelines(None).await.unwrap(), snapshot.2);

    // All of it together.
    changes.insert_pipelines = vec![reuse.clone()];
    changes.update_pipelines = vec![moved_to_new.clone()];
    changes.delete_destinations = vec!["d-gone".into()];
    store.apply_changes(&changes).await.unwrap();
    assert_eq!(
        store.get_schema().await.unwrap(),
        changes.schema.clone().unwrap()
    );
    assert_eq!(
        store.list_destinations().await.unwrap(),
        vec![changed, new_dest]
    );
    assert_eq!(
        store.list_pipelines(None).await.unwrap(),
        vec![moved_to_new, reuse]
    );
    assert!(CatalogChanges::default().is_empty() && !changes.is_empty());
}
