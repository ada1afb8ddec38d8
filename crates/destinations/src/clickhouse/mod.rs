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
//! engine's `is_deleted` column (ClickHouse 23.2+); tables or servers without one refuse the setting when
//! the pipeline is saved ([`sluice_core::TableRules::delete`]). No mutation (`ALTER … DELETE`) is ever
//! issued.
//!
//! One connection is kept per [`ClickHouse`] instance, opened on first use and reopened after a failed
//! write (the native protocol cannot always be resumed after a server exception in the middle of an
//! insert).

pub mod client;
pub mod config;
pub mod dialect;
pub mod encode;
pub mod native;

use async_trait::async_trait;
use sluice_core::{TableDescription, Value};
use tokio::sync::{Mutex, MutexGuard};

pub use config::{ClickHouseSettings, TlsMode, TlsSettings};

use crate::{
    Capabilities, Destination, DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts,
    WriteTarget,
};

pub struct ClickHouse {
    settings: ClickHouseSettings,
    session: Mutex<Option<client::Session>>,
    /// Why rows of an insert left open by [`Destination::upsert_unconfirmed`] were lost before
    /// [`Destination::confirm`] (which then reports it).
    lost: std::sync::Mutex<Option<String>>,
}

impl ClickHouse {
    /// Builds the destination; nothing is connected until the first call.
    pub fn new(settings: ClickHouseSettings) -> Self {
        Self {
            settings,
            session: Mutex::new(None),
            lost: std::sync::Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &ClickHouseSettings {
        &self.settings
    }

    /// The session, free for any query: an insert left open is ended first (its rows confirmed early,
    /// or, should that fail, remembered as lost).
    async fn session(&self) -> Result<MutexGuard<'_, Option<client::Session>>> {
        let mut guard = self.session.lock().await;
        if let Some(s) = guard.as_mut() {
            if let Err(e) = s.finish_open().await {
                self.lose(&e.message);
                *guard = None;
            }
        }
        self.connected(guard).await
    }

    /// The session as it is, an open insert included.
    async fn connected<'a>(
        &'a self,
        mut guard: MutexGuard<'a, Option<client::Session>>,
    ) -> Result<MutexGuard<'a, Option<client::Session>>> {
        if guard.as_mut().is_some_and(client::Session::is_closed) {
            self.drop_session(&mut guard);
        }
        if guard.is_none() {
            *guard = Some(client::connect(&self.settings).await?);
        }
        Ok(guard)
    }

    /// Remembers why unconfirmed rows were lost; the first reason is the one reported.
    fn lose(&self, why: &str) {
        let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert_with(|| why.to_string());
    }

    /// Drops the session; rows of an insert it left open are lost.
    fn drop_session(&self, session: &mut Option<client::Session>) {
        if session
            .as_ref()
            .is_some_and(client::Session::has_open_insert)
        {
            self.lose("the connection failed before the server stored them");
        }
        *session = None;
    }

    /// After a failed write the connection may be mid-insert: start afresh, and describe the table again
    /// when it changed.
    fn after_write<T>(
        &self,
        session: &mut Option<client::Session>,
        table: &str,
        result: &Result<T>,
    ) {
        if let Err(e) = result {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::NotFound) {
                if let Some(s) = session.as_mut() {
                    s.forget(table);
                }
            }
            if e.kind != ErrorKind::BadData
                || session
                    .as_mut()
                    .is_some_and(|s| s.poisoned || s.is_closed())
            {
                self.drop_session(session);
            }
        }
    }
}

#[async_trait]
impl Destination for ClickHouse {
    fn capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    async fn test(&self) -> Result<TestReport> {
        let mut guard = self.session().await?;
        guard
            .as_mut()
            .expect("connected")
            .test(&self.settings)
            .await
    }

    async fn describe_table(&self, name: &str) -> Result<Option<TableDescription>> {
        let mut guard = self.session().await?;
        let result = guard
            .as_mut()
            .expect("connected")
            .describe_table(&self.settings.database, name)
            .await;
        if result.is_err() && guard.as_mut().is_some_and(|s| s.is_closed()) {
            *guard = None;
        }
        result
    }

    async fn upsert(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let mut guard = self.session().await?;
        let result = guard
            .as_mut()
            .expect("connected")
            .upsert(&self.settings.database, target, rows)
            .await;
        self.after_write(&mut guard, &target.table.name, &result);
        result?;
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
        let mut guard = self.session().await?;
        let result = guard
            .as_mut()
            .expect("connected")
            .delete(&self.settings.database, target, keys)
            .await;
        self.after_write(&mut guard, &target.table.name, &result);
        result
    }

    async fn upsert_unconfirmed(&self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        if rows.is_empty() {
            return Ok(UpsertCounts::default());
        }
        let target = &*target.checked(&dialect::CAPABILITIES)?;
        let guard = self.session.lock().await;
        let mut guard = self.connected(guard).await?;
        let session = guard.as_mut().expect("connected");
        let had_open = session.has_open_insert();
        let result = session
            .upsert_unconfirmed(&self.settings.database, target, rows)
            .await;
        if let Err(e) = &result {
            // Ending the earlier insert, or sending into it, failed: its rows are not stored.
            if had_open && !session.has_open_insert() {
                self.lose(&e.message);
            }
        }
        self.after_write(&mut guard, &target.table.name, &result);
        result?;
        Ok(UpsertCounts {
            inserted: rows.len() as u64,
            updated: 0,
        })
    }

    /// The session with the open insert leaves the slot while the server stores the insert, so that
    /// writes asked for meanwhile go on over another connection.
    async fn confirm(&self) -> Result<()> {
        let open = {
            let mut guard = self.session.lock().await;
            match guard.as_ref() {
                Some(s) if s.has_open_insert() => guard.take(),
                _ => None,
            }
        };
        if let Some(mut session) = open {
            match session.finish_open().await {
                Ok(()) => {
                    // Kept for reuse, unless another took the slot meanwhile.
                    let mut guard = self.session.lock().await;
                    if guard.is_none() && !session.is_closed() {
                        *guard = Some(session);
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
