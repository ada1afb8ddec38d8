//! A fresh store per test: a temporary data directory for SQLite, a uniquely named schema for PostgreSQL.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_store::{MetadataStore, ProfileStore, SecretBox};

pub const POSTGRES_URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub backend: Backend,
    dir: tempfile::TempDir,
    pg: Option<Pg>,
}

struct Pg {
    admin: tokio_postgres::Client,
    schema: String,
    url: String,
}

/// The server every PostgreSQL test needs; failing (never skipping) when it is not configured.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{POSTGRES_URL_VAR} is not set: the PostgreSQL store tests need a server, e.g. \
             {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

pub async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to the server named by {POSTGRES_URL_VAR}: {e}")
        });
    tokio::spawn(connection);
    client
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let base = postgres_url();
                let admin = admin_client(&base).await;
                let schema = format!("sluice_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .expect("create the test schema");
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-csearch_path%3D{schema}");
                Some(Pg { admin, schema, url })
            }
        };
        Env { backend, dir, pg }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> Option<&str> {
        self.pg.as_ref().map(|pg| pg.url.as_str())
    }

    /// The PostgreSQL URL of this test's stores (its schema in the search path); `None` for SQLite.
    pub fn store_url(&self) -> Option<&str> {
        self.url()
    }

    pub async fn try_metadata(
        &self,
        secrets: SecretBox,
    ) -> sluice_store::Result<Arc<dyn MetadataStore>> {
        sluice_store::open_metadata(self.url(), &self.data_dir(), secrets).await
    }

    pub async fn metadata(&self, secrets: SecretBox) -> Arc<dyn MetadataStore> {
        self.try_metadata(secrets)
            .await
            .expect("open the metadata store")
    }

    pub async fn try_profiles(&self) -> sluice_store::Result<Arc<dyn ProfileStore>> {
        sluice_store::open_profiles(self.url(), &self.data_dir()).await
    }

    pub async fn profiles(&self) -> Arc<dyn ProfileStore> {
        self.try_profiles().await.expect("open the profile store")
    }

    /// The settings of a destination exactly as stored, bypassing the store.
    pub async fn raw_settings(&self, id: &str) -> String {
        match &self.pg {
            None => {
                let conn = rusqlite::Connection::open(self.data_dir().join("metadata.db")).unwrap();
                conn.query_row(
                    "SELECT settings FROM destinations WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap()
            }
            Some(pg) => pg
                .admin
                .query_one(
                    &format!(
                        "SELECT settings::text FROM {}.sluice_destinations WHERE id = $1",
                        pg.schema
                    ),
                    &[&id],
                )
                .await
                .unwrap()
                .get(0),
        }
    }

    /// Creates the metadata tables as the Sluice of schema `version` left them.
    pub async fn metadata_at_version(&self, version: usize) {
        sluice_store::migrate_metadata_to(self.url(), &self.data_dir(), version)
            .await
            .expect("migrate the metadata store to an older version");
    }

    /// Runs `sql` on the metadata store, bypassing it (PostgreSQL: in the test's schema).
    pub async fn metadata_sql(&self, sql: &str) {
        match &self.pg {
            None => rusqlite::Connection::open(self.data_dir().join("metadata.db"))
                .unwrap()
                .execute_batch(sql)
                .unwrap(),
            Some(pg) => pg
                .admin
                .batch_execute(&format!(
                    "BEGIN; SET LOCAL search_path TO {};\n{sql};\nCOMMIT",
                    pg.schema
                ))
                .await
                .unwrap(),
        }
    }

    /// Pretends a newer Sluice migrated the store.
    pub async fn set_schema_version(&self, component: &str, version: i32) {
        match &self.pg {
            None => {
                let file = if component == "metadata" {
                    "metadata.db"
                } else {
                    "profiles.db"
                };
                let conn = rusqlite::Connection::open(self.data_dir().join(file)).unwrap();
                conn.execute(
                    "UPDATE schema_version SET version = ?1 WHERE component = ?2",
                    rusqlite::params![version, component],
                )
                .unwrap();
            }
            Some(pg) => {
                pg.admin
                    .execute(
                        &format!(
                            "UPDATE {}.sluice_schema_version SET version = $1 WHERE component = $2",
                            pg.schema
                        ),
                        &[&version, &component],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    pub async fn cleanup(self) {
        if let Some(pg) = self.pg {
            pg.admin
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", pg.schema))
                .await
                .expect("drop the test schema");
        }
    }
}
