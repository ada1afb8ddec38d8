//! Cases for the metadata store as a whole: opening and migrating it.

use sluice_store::{SecretBox, StoreError};

use crate::fixtures::destination;
use crate::harness::Env;

pub async fn metadata_migrations_are_idempotent(env: &Env) {
    let secrets = SecretBox::generate();
    let first = env.metadata(secrets.clone()).await;
    first
        .insert_destination(&destination("d", "Warehouse", 0))
        .await
        .unwrap();
    drop(first);
    // Opening again (and twice at once, as several instances starting together would) migrates nothing
    // and keeps the data.
    let (a, b) = tokio::join!(
        env.try_metadata(secrets.clone()),
        env.try_metadata(secrets.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        a.get_destination("d").await.unwrap().unwrap().name,
        "Warehouse"
    );
    assert_eq!(b.list_destinations().await.unwrap().len(), 1);
    drop((a, b));

    env.set_schema_version("metadata", 999).await;
    match env.try_metadata(secrets).await {
        Err(StoreError::Corrupt(m)) => {
            assert!(m.contains("999") && m.contains("newer Sluice"), "{m}")
        }
        Err(other) => panic!("expected a clear version error, got {other:?}"),
        Ok(_) => panic!("a store from a newer version must not open"),
    }
}
