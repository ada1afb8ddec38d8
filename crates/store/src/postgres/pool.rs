//! Connections — a small pool of our own — and the runner of migrations, with the error conversions
//! every module of the store shares.

use std::error::Error as StdError;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::codec::corrupt;
use crate::{Result, StoreError};

/// Connections per store; enough for an export run, the API and the scheduler side by side.
const POOL_SIZE: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) struct Pool {
    config: Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: std::sync::Mutex<Vec<Client>>,
    gate: Semaphore,
    /// `metadata` or `profiles`, for messages and logs.
    what: &'static str,
}

/// A pooled client, returned to the pool when dropped unless its connection has closed.
pub(super) struct Conn<'a> {
    client: Option<Client>,
    pool: &'a Pool,
    _permit: SemaphorePermit<'a>,
}

impl Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled client is present until drop")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a pooled client is present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(client);
            }
        }
    }
}

impl Pool {
    pub(super) fn new(url: &str, what: &'static str) -> Result<Pool> {
        // The parse error names the offending option, never its value, so it is safe to show.
        let mut config: Config = url.parse().map_err(|e| {
            StoreError::Backend(format!(
                "the {what} store URL is not a valid PostgreSQL URL: {}",
                chain(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sluice");
        }
        let tls = crate::tls::connector(
            &config,
            std::env::var_os(crate::tls::ROOT_CERT_VAR).as_deref(),
        )?;
        Ok(Pool {
            config,
            tls,
            idle: std::sync::Mutex::new(Vec::new()),
            gate: Semaphore::new(POOL_SIZE),
            what,
        })
    }

    pub(super) async fn get(&self) -> Result<Conn<'_>> {
        let permit = self
            .gate
            .acquire()
            .await
            .expect("the pool gate is never closed");
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            match idle {
                Some(client) if !client.is_closed() => {
                    return Ok(Conn {
                        client: Some(client),
                        pool: self,
                        _permit: permit,
                    })
                }
                Some(_) => continue,
                None => break,
            }
        }
        let failed = |e: tokio_postgres::Error| {
            StoreError::Backend(format!(
                "cannot connect to the PostgreSQL {} store: {}",
                self.what,
                chain(&e)
            ))
        };
        let client = match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await.map_err(failed)?;
                tokio::spawn(watch(connection, self.what));
                client
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(failed)?;
                tokio::spawn(watch(connection, self.what));
                client
            }
        };
        Ok(Conn {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }
}

/// Drives a connection until it closes; its client then reports `is_closed` and leaves the pool.
pub(super) async fn watch(
    connection: impl std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>,
    what: &'static str,
) {
    if let Err(e) = connection.await {
        tracing::warn!(store = what, error = %chain(&e), "PostgreSQL connection ended with an error");
    }
}

/// An error with its causes, which tokio-postgres keeps out of its `Display`.
pub(super) fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) fn pg_error(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Backend(db.to_string()),
        None => StoreError::Backend(chain(&e)),
    }
}

pub(super) enum Violation<'e> {
    Unique(&'e str),
    ForeignKey,
}

pub(super) fn violation(e: &tokio_postgres::Error) -> Option<Violation<'_>> {
    let db = e.as_db_error()?;
    if *db.code() == SqlState::UNIQUE_VIOLATION {
        Some(Violation::Unique(db.constraint().unwrap_or_default()))
    } else if *db.code() == SqlState::FOREIGN_KEY_VIOLATION {
        Some(Violation::ForeignKey)
    } else {
        None
    }
}

/// Applies the migrations not yet recorded in `sluice_schema_version`, in one transaction holding an
/// advisory lock scoped to the schema. Refuses a schema written by a newer Sluice.
pub(super) async fn migrate(pool: &Pool, component: &str, migrations: &[&str]) -> Result<()> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(pg_error)?;
    let schema: Option<String> = tx
        .query_one("SELECT current_schema()", &[])
        .await
        .map_err(pg_error)?
        .get(0);
    let Some(schema) = schema else {
        return Err(StoreError::Backend(format!(
            "the search_path of the PostgreSQL {} store names no existing schema to keep Sluice's tables in; \
             create the schema first",
            pool.what
        )));
    };
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('sluice.migrations.' || $1::text, 0))",
        &[&schema],
    )
    .await
    .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sluice_schema_version (
             component text PRIMARY KEY,
             version integer NOT NULL,
             migrated_at timestamptz NOT NULL
         )",
    )
    .await
    .map_err(pg_error)?;
    let current: i32 = tx
        .query_opt(
            "SELECT version FROM sluice_schema_version WHERE component = $1",
            &[&component],
        )
        .await
        .map_err(pg_error)?
        .map_or(0, |r| r.get(0));
    let latest = migrations.len() as i32;
    if current > latest {
        return Err(corrupt(format!(
            "the {component} tables in PostgreSQL schema `{schema}` have schema version {current}, but this Sluice \
             knows versions up to {latest}: they were written by a newer Sluice; upgrade Sluice to open them"
        )));
    }
    if current == latest {
        return Ok(());
    }
    for (i, sql) in migrations.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} of the {component} store failed: {}",
                i + 1,
                pg_error(e)
            ))
        })?;
    }
    tx.execute(
        "INSERT INTO sluice_schema_version (component, version, migrated_at) VALUES ($1, $2, now())
         ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, migrated_at = EXCLUDED.migrated_at",
        &[&component, &latest],
    )
    .await
    .map_err(pg_error)?;
    tx.commit().await.map_err(pg_error)?;
    tracing::info!(
        component,
        from = current,
        to = latest,
        schema,
        "migrated the PostgreSQL store"
    );
    Ok(())
}

pub(super) fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(pg_error)
}

pub(super) fn rows_to<T>(rows: Vec<Row>, f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

#[cfg(test)]
pub(super) fn server_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("SLUICE_TEST_POSTGRES_URL is not set: these tests need a PostgreSQL server")
    })
}

#[cfg(test)]
mod tests {
    use crate::postgres::{PgMetadata, PgProfiles};
    use crate::SecretBox;

    use super::server_url;

    #[tokio::test]
    async fn connection_errors_do_not_show_the_password() {
        let url = "postgres://sluice:hunter2-secret@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2";
        let err = PgMetadata::connect(url, SecretBox::generate())
            .await
            .err()
            .expect("nothing listens on port 1");
        let text = err.to_string();
        assert!(
            text.contains("cannot connect to the PostgreSQL metadata store"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let err = PgProfiles::connect("postgres://u:hunter2@h/db?sslmode=sometimes")
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("not a valid PostgreSQL URL") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_missing_schema_is_explained() {
        let base = server_url();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3Dsluice_no_such_schema");
        let err = PgProfiles::connect(&url)
            .await
            .err()
            .expect("no schema to create tables in")
            .to_string();
        assert!(err.contains("create the schema first"), "{err}");
    }
}
