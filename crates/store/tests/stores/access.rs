//! Cases for `Access`: API tokens kept as hashes, and the audit log.

use serde_json::json;
use sluice_store::{AuditEntry, Role, SecretBox, TokenRecord};

use crate::fixtures::{at, conflict};
use crate::harness::Env;

fn token(id: &str, name: &str, role: Role, minute: i64) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        name: name.into(),
        role,
        created_at: at(minute),
    }
}

fn hash(n: u8) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = n;
    h[31] = 0xff - n;
    h
}

pub async fn tokens_are_found_by_hash_and_revoked(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    assert!(store.list_tokens().await.unwrap().is_empty());
    let ci = token("tok-ci", "ci", Role::Editor, 1);
    let looker = token("tok-look", "dashboards", Role::Viewer, 0);
    store.insert_token(&ci, &hash(1)).await.unwrap();
    store.insert_token(&looker, &hash(2)).await.unwrap();
    assert_eq!(
        store.list_tokens().await.unwrap(),
        vec![looker.clone(), ci.clone()],
        "oldest first"
    );
    assert_eq!(
        store.token_by_hash(&hash(1)).await.unwrap(),
        Some(ci.clone())
    );
    assert_eq!(store.token_by_hash(&hash(3)).await.unwrap(), None);

    let taken = conflict(
        store
            .insert_token(&token("tok-other", "ci", Role::Admin, 2), &hash(4))
            .await,
    );
    assert_eq!(taken, "a token named `ci` already exists");
    assert!(store.token_by_hash(&hash(4)).await.unwrap().is_none());
    conflict(
        store
            .insert_token(&token("tok-other", "other", Role::Admin, 2), &hash(1))
            .await,
    );

    // A second handle on the same store (another instance) sees a revocation at once.
    let other = env.metadata(SecretBox::generate()).await;
    assert_eq!(other.token_by_hash(&hash(1)).await.unwrap(), Some(ci));
    assert!(store.delete_token("tok-ci").await.unwrap());
    assert!(!store.delete_token("tok-ci").await.unwrap());
    assert_eq!(other.token_by_hash(&hash(1)).await.unwrap(), None);
    assert_eq!(other.list_tokens().await.unwrap(), vec![looker]);
}

pub async fn audit_log_pages_newest_first(env: &Env) {
    let store = env.metadata(SecretBox::generate()).await;
    assert!(store.list_audit(10, None).await.unwrap().is_empty());
    let mut written = Vec::new();
    for i in 0..5i64 {
        let mut e = AuditEntry {
            seq: 0,
            // Equal times must not confuse the order: it is the order of writing.
            at: at(i / 2),
            actor_id: "tok-ci".into(),
            actor_name: "ci".into(),
            method: "PUT".into(),
            route: "/v1/pipelines/{id}".into(),
            resource: (i != 3).then(|| format!("pl-{i}")),
            status: 200,
            before: (i > 0)
                .then(|| json!({"name": format!("v{}", i - 1), "nested": {"ü": [1, null]}})),
            after: (i != 4).then(|| json!({"name": format!("v{i}")})),
        };
        e.seq = store.append_audit(&e).await.unwrap();
        written.push(e);
    }
    assert!(written.windows(2).all(|w| w[0].seq < w[1].seq));
    written.reverse();
    let first = store.list_audit(2, None).await.unwrap();
    assert_eq!(first, written[..2]);
    let rest = store.list_audit(10, Some(first[1].seq)).await.unwrap();
    assert_eq!(rest, written[2..]);
    assert!(store
        .list_audit(10, Some(written[4].seq))
        .await
        .unwrap()
        .is_empty());
}
