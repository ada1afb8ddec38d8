//! Retries of destination operations that failed for a transient reason (connection lost, deadlock,
//! timeout), with exponential backoff and jitter; lasting failures (auth, bad data) come back at once.

use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};
use sluice_destinations::{Destination, Row, TestReport, UpsertCounts, WriteTarget};

/// Waits before attempt `attempt + 1`: exponential backoff with jitter.
async fn backoff(attempt: u32) {
    let base = 100u64 << attempt.min(6);
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base + jitter)).await;
}

/// Retries operations that failed for a transient reason, with exponential backoff and jitter.
pub(crate) struct Retrying<'a> {
    pub inner: &'a dyn Destination,
    pub attempts: u32,
}

impl Retrying<'_> {
    /// Runs `op` until it succeeds, fails for a lasting reason, or has been tried `attempts` times.
    pub(crate) async fn retried<T, F, Fut>(&self, mut op: F) -> sluice_destinations::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = sluice_destinations::Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.kind.is_transient() && attempt + 1 < self.attempts => {
                    tracing::warn!(kind = ?e.kind, attempt, "transient destination failure; retrying");
                    backoff(attempt).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Destination for Retrying<'_> {
    async fn test(&self) -> sluice_destinations::Result<TestReport> {
        self.inner.test().await
    }

    async fn describe_table(
        &self,
        name: &str,
    ) -> sluice_destinations::Result<Option<TableDescription>> {
        self.inner.describe_table(name).await
    }

    async fn list_tables(&self) -> sluice_destinations::Result<Vec<sluice_destinations::TableRef>> {
        self.inner.list_tables().await
    }

    async fn upsert(
        &self,
        target: &WriteTarget,
        rows: &[Row],
    ) -> sluice_destinations::Result<UpsertCounts> {
        self.retried(|| self.inner.upsert(target, rows)).await
    }

    async fn upsert_unconfirmed(
        &self,
        target: &WriteTarget,
        rows: &[Row],
    ) -> sluice_destinations::Result<UpsertCounts> {
        self.retried(|| self.inner.upsert_unconfirmed(target, rows))
            .await
    }

    /// Not retried: the first write sets up again what this could not.
    async fn prepare_write(&self, target: &WriteTarget) -> sluice_destinations::Result<()> {
        self.inner.prepare_write(target).await
    }

    /// Not retried: a failure means rows are lost, which trying again would not bring back.
    async fn confirm(&self) -> sluice_destinations::Result<()> {
        self.inner.confirm().await
    }

    fn capabilities(&self) -> &'static sluice_destinations::Capabilities {
        self.inner.capabilities()
    }

    async fn delete(
        &self,
        target: &WriteTarget,
        keys: &[Value],
    ) -> sluice_destinations::Result<u64> {
        self.retried(|| self.inner.delete(target, keys)).await
    }

    async fn table_identity(&self, name: &str) -> sluice_destinations::Result<Option<String>> {
        self.retried(|| self.inner.table_identity(name)).await
    }

    async fn count_rows(&self, target: &WriteTarget) -> sluice_destinations::Result<u64> {
        self.retried(|| self.inner.count_rows(target)).await
    }

    async fn change_marker(
        &self,
        target: &WriteTarget,
    ) -> sluice_destinations::Result<Option<String>> {
        self.retried(|| self.inner.change_marker(target)).await
    }

    async fn read_rows(
        &self,
        target: &WriteTarget,
        keys: &[Value],
    ) -> sluice_destinations::Result<Vec<Vec<Value>>> {
        self.retried(|| self.inner.read_rows(target, keys)).await
    }
}
