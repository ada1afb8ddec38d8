//! The ClickHouse destination, over the native protocol (a client of its own; TLS by rustls with ring),
//! from ClickHouse 18.16 to current releases.
//!
//! - [`config`]: settings and their validation, URL parsing;
//! - [`dialect`]: SQL text, type parsing and mapping, engines, version gates, error codes (pure, unit-tested);
//! - [`encode`]: Sluice values laid out as native-block columns (pure, unit-tested);
//! - [`native`]: the native TCP protocol — handshake, queries, inserts of encoded blocks;
//! - [`client`]: the session, describing tables and writing blocks.
//!
//! Upserts are real: the key column must be the sorting key (`ORDER BY`) of a `ReplacingMergeTree` table
//! (plain, replicated or shared), which keeps one row per key — the one with the highest version, or the
//! last written. Each batch writes new versions of its rows in large native blocks, with the engine's
//! version column filled with the run's version (a value that grows with every run) unless the mapping
//! sets it. Reads that must not see the older versions use `FINAL`. A table with any other engine, or
//! keyed by another column, is refused with what to change.
//!
//! When the pipeline writes every column of the table, a batch is native blocks of one `INSERT`. A run
//! writes its batches with [`crate::Destination::upsert_unconfirmed`]: they go into one long `INSERT`,
//! which the server stores as a few parts instead of a part per batch (each merged later), and which
//! [`crate::Destination::confirm`] ends. Rows of an insert that fails before it is confirmed are lost
//! together, and the confirmation reports it even when another call ended the insert. When it
//! writes only some, the other columns must keep their values (the [`crate::Destination`] contract): the
//! batch is staged in a session's temporary table, the current values of the other columns of the keys
//! already present are read with `FINAL`, and two `INSERT … SELECT`s write the updated rows whole and
//! the new rows with their defaults.
//!
//! ClickHouse cannot tell an insert from an update, so [`crate::Destination::reports_upsert_counts`] is
//! false and the engine counts from its sync state. `on_leave: delete` writes tombstones through the
//! engine's `is_deleted` column: a copy of the current row with a higher version and `is_deleted = 1`
//! ([`dialect::insert_tombstones`]), from ClickHouse 23.12 on ([`dialect::ServerVersion::has_safe_deletes`]
//! says why); tables or servers that cannot refuse the setting when the pipeline is saved
//! ([`sluice_core::TableRules::delete`]). No mutation (`ALTER … DELETE`) is ever issued. Every insert
//! carries the settings of [`dialect::insert_settings`].
//!
//! One connection is kept per [`ClickHouse`] instance under the rules every destination shares (see
//! `session`), and also reopened after any failed write but a refusal of the data found before sending
//! (the native protocol cannot always be resumed after a server exception in the middle of an insert).

pub mod client;
pub mod config;
pub mod dialect;
pub mod encode;
pub mod native;

use std::time::Duration;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};

pub use config::{ClickHouseSettings, TlsMode, TlsSettings};

use crate::session::{Connection as _, SessionGuard, Sessions};
use crate::{
    Capabilities, Destination, DestinationError, ErrorKind, Result, Row, TableRef, TestReport,
    UpsertCounts, WriteTarget,
};

pub struct ClickHouse {
    settings: ClickHouseSettings,
    sessions: Sessions<client::Session>,
    /// Why rows of an insert left open by [`Destination::upsert_unconfirmed`] were lost before
    /// [`Destination::confirm`] (which then reports it).
    lost: std::sync::Mutex<Option<String>>,
    /// How a table read as a source is read, once its columns were asked for
    /// (see `client/source.rs`): only a table whose rows replace each other differs from its name.
    source_tables: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl ClickHouse {
    /// Builds the destination; nothing is connected until the first call.
    pub fn new(settings: ClickHouseSettings) -> Self {
        Self {
            settings,
            sessions: Sessions::new(),
            lost: std::sync::Mutex::new(None),
            source_tables: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn settings(&self) -> &ClickHouseSettings {
        &self.settings
    }

    /// The session, free for any query: an insert left open is ended first (its rows confirmed early,
    /// or, should that fail, remembered as lost).
    async fn session(&self) -> Result<SessionGuard<'_, client::Session>> {
        let mut guard = self.sessions.lock().await;
        if let Some(s) = guard.get() {
            if let Err(e) = s.finish_open().await {
                self.lose(&e.message);
                guard.take();
            }
        }
        self.connected(guard).await
    }

    /// The session as it is, an open insert included.
    async fn connected<'a>(
        &'a self,
        mut guard: SessionGuard<'a, client::Session>,
    ) -> Result<SessionGuard<'a, client::Session>> {
        // The shared rules replace a closed session; the rows of an insert it left open are lost, which
        // is noted first.
        if guard.is_closed() {
            self.drop_session(&mut guard);
        }
        guard.connect(|| client::connect(&self.settings)).await?;
        Ok(guard)
    }

    /// Remembers why unconfirmed rows were lost; the first reason is the one reported.
    fn lose(&self, why: &str) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(|| why.to_string());
    }

    /// Drops the session; rows of an insert it left open are lost.
    fn drop_session(&self, guard: &mut SessionGuard<'_, client::Session>) {
        if guard.take().is_some_and(|s| s.has_open_insert()) {
            self.lose("the connection failed before the server stored them");
        }
    }

    /// Ends a write: after a failure the connection may be mid-insert, so it starts afresh (unless only
    /// the data was refused, before anything was sent), and the table is described again when it changed.
    fn after_write<T>(
        &self,
        guard: &mut SessionGuard<'_, client::Session>,
        table: &str,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &result {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::NotFound) {
                if let Some(s) = guard.get() {
                    s.forget(table);
                }
            }
            if e.kind != ErrorKind::BadData
                || guard.get().is_some_and(|s| s.poisoned)
                || guard.is_closed()
            {
                self.drop_session(guard);
            }
        }
        guard.settle(result)
    }
}

#[async_trait]
impl Destination for ClickHouse {
    fn capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    async fn test(&self) -> Result<TestReport> {
        let mut s = self.session().await?;
        let result = s.session().test(&self.settings).await;
        s.settle(result)
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        let mut s = self.session().await?;
        let result = s
            .session()
            .describe_table(&self.settings.database, name)
            .await;
        s.settle(result)
    }

    async fn list_tables(&self) -> Result<Vec<TableRef>> {
        let mut s = self.session().await?;
        let result = s.session().list_tables(&self.settings.database).await;
        let names = s.settle(result)?;
        Ok(names
            .into_iter()
            .map(|name| TableRef { schema: None, name })
            .collect())
    }

    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s
            .session()
            .upsert(&self.settings.database, target, rows)
            .await;
        self.after_write(&mut s, &target.table.name, result)?;
        // Every row is a new version; which of them replaced a row, the engine knows from its sync state.
        Ok(UpsertCounts {
            inserted: rows.len() as u64,
            updated: 0,
        })
    }

    async fn delete(&self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s
            .session()
            .delete(&self.settings.database, target, keys)
            .await;
        self.after_write(&mut s, &target.table.name, result)
    }

    async fn table_identity(&self, name: &str) -> Result<Option<String>> {
        let mut s = self.session().await?;
        let result = s
            .session()
            .table_identity(&self.settings.database, name)
            .await;
        s.settle(result)
    }

    async fn count_rows(&self, target: &WriteTarget) -> Result<u64> {
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s
            .session()
            .count_rows(&self.settings.database, target)
            .await;
        s.settle(result)
    }

    async fn read_rows(&self, target: &WriteTarget, keys: &[Value]) -> Result<Vec<Vec<Value>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut s = self.session().await?;
        let result = s
            .session()
            .read_rows(&self.settings.database, target, keys)
            .await;
        s.settle(result)
    }

    async fn upsert_unconfirmed(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let guard = self.sessions.lock().await;
        let mut s = self.connected(guard).await?;
        let had_open = s.session().has_open_insert();
        let result = s
            .session()
            .upsert_unconfirmed(&self.settings.database, target, rows)
            .await;
        if let Err(e) = &result {
            // Ending the earlier insert, or sending into it, failed: its rows are not stored.
            if had_open && !s.session().has_open_insert() {
                self.lose(&e.message);
            }
        }
        self.after_write(&mut s, &target.table.name, result)?;
        Ok(UpsertCounts {
            inserted: rows.len() as u64,
            updated: 0,
        })
    }

    /// The session with the open insert leaves the slot while the server stores the insert, so that
    /// writes asked for meanwhile go on over another connection.
    async fn confirm(&self) -> Result<()> {
        let open = {
            let mut guard = self.sessions.lock().await;
            if guard.get().is_some_and(|s| s.has_open_insert()) {
                guard.take()
            } else {
                None
            }
        };
        if let Some(mut session) = open {
            match session.finish_open().await {
                Ok(()) => {
                    // Kept for reuse, unless another took the slot meanwhile.
                    let mut guard = self.sessions.lock().await;
                    if guard.get().is_none() && !session.is_closed(Duration::ZERO) {
                        guard.put(session);
                    }
                }
                Err(e) => self.lose(&e.message),
            }
        }
        let lost = self.lost.lock().unwrap_or_else(|p| p.into_inner()).take();
        match lost {
            None => Ok(()),
            Some(why) => Err(DestinationError::new(
                ErrorKind::Unavailable,
                format!(
                    "rows sent in one insert with others were not confirmed by the server: {why}"
                ),
            )),
        }
    }
}
