//! Talking to ClickHouse over its native protocol ([`super::native`], with TLS by rustls and ring):
//! connecting, the connection test, describing tables, and writing native blocks (see [`super`]).
//!
//! Errors keep the server's message (without its stack trace) and get a kind from the exception code
//! ([`dialect::error_kind`]); passwords never reach a message or a log.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use sluice_core::{Column, TableDescription, TableRules, Value};
use tokio::net::TcpStream;

use super::config::{ClickHouseSettings, TlsMode};
use super::dialect::{self, ChType, EngineInfo, ServerVersion};
use super::encode::{self, Cell, ColumnBuilder, Wire};
use super::native::{self, Connection, Datum, Header, NativeError};
use crate::{DestinationError, ErrorKind, Result, Row, TestReport, WriteTarget};

mod drift;
mod source;

/// Rows per native block: large blocks are what ClickHouse is fast with.
pub const ROWS_PER_BLOCK: usize = 65_536;

/// A live connection.
pub struct Session {
    conn: Connection,
    pub version: ServerVersion,
    version_text: String,
    /// Tables as described for writing, by name; forgotten when a write finds them changed.
    tables: HashMap<String, Arc<TableInfo>>,
    next_stage: u32,
    /// An insert failed after its data started going out: the connection's state is unknown.
    pub poisoned: bool,
    /// The SQL of the insert [`Session::upsert_unconfirmed`] left open, whose rows the server has not
    /// stored yet.
    open: Option<String>,
    /// Sent with every insert ([`dialect::insert_settings`]).
    insert_settings: Vec<native::Setting>,
}

/// What writing needs to know of a table.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub engine: EngineInfo,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone)]
pub struct ColumnInfo {
    pub name: String,
    pub type_text: String,
    /// `None` when the type does not parse.
    pub ty: Option<ChType>,
    /// `DEFAULT`, `MATERIALIZED`, `ALIAS`, `EPHEMERAL` or empty.
    pub default_kind: String,
}

impl ColumnInfo {
    /// Whether an INSERT may name the column.
    fn insertable(&self) -> bool {
        !matches!(
            self.default_kind.as_str(),
            "MATERIALIZED" | "ALIAS" | "EPHEMERAL"
        )
    }
}

impl TableInfo {
    fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> DestinationError {
    DestinationError::new(kind, message)
}

/// Maps a protocol error to a destination error: the server's message and a kind from its code.
pub fn map_error(e: &NativeError) -> DestinationError {
    match e {
        NativeError::Server { code, message } => {
            let message = message
                .trim()
                .trim_start_matches("DB::Exception: ")
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            error(dialect::error_kind(*code, &message), message)
        }
        NativeError::Io(io) => error(
            ErrorKind::Unavailable,
            format!("the connection to the server failed: {io}"),
        ),
        NativeError::Refused(why) => error(ErrorKind::SchemaMismatch, why.clone()),
        NativeError::Protocol(p) => error(ErrorKind::Internal, format!("ClickHouse {p}")),
    }
}

/// Opens a connection within the configured timeout.
pub async fn connect(settings: &ClickHouseSettings) -> Result<Session> {
    let where_ = format!("{}:{}", settings.host, settings.port);
    let timeout = settings.connect_timeout();
    let attempt = async {
        let tcp = TcpStream::connect((settings.host.as_str(), settings.port))
            .await
            .map_err(|e| {
                error(
                    ErrorKind::Unavailable,
                    format!("could not connect to {where_}: {e}"),
                )
            })?;
        tcp.set_nodelay(true).ok();
        let io: Box<dyn native::Io> = if settings.tls.mode == TlsMode::Disable {
            Box::new(tcp)
        } else {
            let config = crate::postgres::client::rustls_config(&settings.tls)?;
            let name = ServerName::try_from(settings.server_name().to_string()).map_err(|e| {
                error(
                    ErrorKind::Config,
                    format!("`{}` is not a TLS server name: {e}", settings.server_name()),
                )
            })?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    error(
                        ErrorKind::Auth,
                        format!("the TLS handshake with {where_} failed: {e}"),
                    )
                })?;
            Box::new(tls)
        };
        Connection::handshake(
            io,
            &settings.database,
            &settings.username,
            &settings.password,
        )
        .await
        .map_err(|e| login_error(&e, &where_, settings))
    };
    let conn = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return Err(error(
                ErrorKind::Unavailable,
                format!(
                    "could not connect to {where_} within {} s",
                    timeout.as_secs()
                ),
            ))
        }
        Ok(r) => r?,
    };
    let mut session = Session {
        conn,
        version: ServerVersion { major: 0, minor: 0 },
        version_text: String::new(),
        tables: HashMap::new(),
        next_stage: 0,
        poisoned: false,
        open: None,
        insert_settings: Vec::new(),
    };
    let rows = session.query(dialect::VERSION_QUERY).await?;
    session.version_text = rows
        .first()
        .and_then(|r| r.first())
        .map(Datum::text)
        .unwrap_or_default();
    session.version =
        ServerVersion::parse(&session.version_text).unwrap_or(ServerVersion { major: 0, minor: 0 });
    session.insert_settings = dialect::insert_settings(session.version);
    if !session.version.has_low_cardinality() {
        // Before 19.0 LowCardinality columns were experimental: staging tables shaped like such a table
        // need the setting.
        session
            .execute("SET allow_experimental_low_cardinality_type = 1")
            .await?;
    }
    tracing::debug!(host = %settings.host, port = settings.port, database = %settings.database,
        version = %session.version_text, "connected to ClickHouse");
    Ok(session)
}

/// A login refused by the server carries its reason; a connection closed without one is most often the
/// wrong port or TLS setting.
fn login_error(e: &NativeError, where_: &str, settings: &ClickHouseSettings) -> DestinationError {
    match e {
        NativeError::Server { .. } => map_error(e),
        NativeError::Io(io) if io.kind() != std::io::ErrorKind::UnexpectedEof => error(
            ErrorKind::Unavailable,
            format!("could not connect to {where_}: {io}"),
        ),
        _ => error(
            ErrorKind::Auth,
            format!(
                "ClickHouse at {where_} closed the connection at login: check the username \"{}\", the password, \
                 that the user may connect from this address and that database \"{}\" exists{}",
                settings.username,
                settings.database,
                if settings.tls.mode == TlsMode::Disable {
                    " (and that this is the plain native port, not the TLS one)"
                } else {
                    ""
                }
            ),
        ),
    }
}

fn count(rows: &[Vec<Datum>]) -> u64 {
    match rows.first().and_then(|r| r.first()) {
        Some(Datum::UInt(n)) => *n,
        Some(other) => other.text().parse().unwrap_or(0),
        None => 0,
    }
}

impl crate::session::Connection for Session {
    /// Whether the connection cannot be used any more (closed, or left mid-exchange). An insert left
    /// open on purpose is not a broken exchange.
    fn is_closed(&mut self, _idle: std::time::Duration) -> bool {
        if self.open.is_some() {
            return self.poisoned;
        }
        !self.conn.is_usable()
    }
}

impl Session {
    /// Whether an insert of [`Session::upsert_unconfirmed`] is open.
    pub fn has_open_insert(&self) -> bool {
        self.open.is_some()
    }

    /// Ends the open insert, if any, once the server has stored its rows.
    pub async fn finish_open(&mut self) -> Result<()> {
        if self.open.take().is_none() {
            return Ok(());
        }
        let result = self.conn.finish_insert().await.map_err(|e| map_error(&e));
        self.poisoned |= result.is_err() && !self.conn.is_usable();
        result
    }

    /// Writes new versions of `rows` as [`Session::upsert`] does, but when the pipeline writes whole rows
    /// the insert is left open: the next batches go into the same insert, and the server stores them all
    /// when [`Session::finish_open`] ends it. A `BadData` error is found before anything is sent and
    /// leaves the open insert as it was.
    pub async fn upsert_unconfirmed(
        &mut self,
        database: &str,
        target: &WriteTarget,
        rows: &[Row],
    ) -> Result<()> {
        let table = &target.table.name;
        // Describing a table takes a query, which an open insert does not allow.
        if !self.tables.contains_key(table) {
            self.finish_open().await?;
        }
        let info = self.writable(database, table).await?;
        let plan = plan_write(&info, target, self.version)?;
        if !plan.kept.is_empty() {
            self.finish_open().await?;
            return self.upsert(database, target, rows).await;
        }
        let blocks = build_blocks(&plan, rows, target.run_version)?;
        let sql = plan.insert_sql(&dialect::qualified(database, table));
        if self.open.as_deref() != Some(sql.as_str()) {
            self.finish_open().await?;
            let opened = self
                .conn
                .open_insert(&sql, &self.insert_settings, |header| {
                    check_header(&plan, header)
                })
                .await
                .map_err(|e| map_error(&e));
            self.poisoned |= opened.is_err() && !self.conn.is_usable();
            opened?;
            self.open = Some(sql);
        }
        let sent = self
            .conn
            .send_blocks(blocks)
            .await
            .map_err(|e| map_error(&e));
        if sent.is_err() {
            self.open = None;
            self.poisoned = true;
        }
        sent
    }

    /// Runs a query and returns its rows.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Datum>>> {
        self.conn.query(sql).await.map_err(|e| map_error(&e))
    }

    pub async fn execute(&mut self, sql: &str) -> Result<()> {
        self.query(sql).await.map(|_| ())
    }

    /// Runs an `INSERT … SELECT` with the settings of every insert.
    async fn execute_insert(&mut self, sql: &str) -> Result<()> {
        self.conn
            .query_with(sql, &self.insert_settings)
            .await
            .map(|_| ())
            .map_err(|e| map_error(&e))
    }

    /// The settings sent with every insert of this session.
    pub fn insert_settings(&self) -> &[native::Setting] {
        &self.insert_settings
    }

    /// Runs a query with settings and returns its rows.
    pub async fn query_with(
        &mut self,
        sql: &str,
        settings: &[native::Setting],
    ) -> Result<Vec<Vec<Datum>>> {
        self.conn
            .query_with(sql, settings)
            .await
            .map_err(|e| map_error(&e))
    }

    /// A query on `system.tables`. Old servers open every table of the database to answer it and fail
    /// when one of them is dropped meanwhile (by anyone) — "doesn't exist", or its metadata file gone:
    /// asking again gets past it.
    pub async fn query_system_tables(&mut self, sql: &str) -> Result<Vec<Vec<Datum>>> {
        let mut attempt = 0;
        loop {
            match self.query(sql).await {
                Err(e) if attempt < 5 && dropped_meanwhile(&e) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Connection test: server version, the database, and the right to create temporary tables (staging).
    pub async fn test(&mut self, settings: &ClickHouseSettings) -> Result<TestReport> {
        let db = &settings.database;
        let mut checks = vec![format!(
            "connected to {}:{} as user {}{}",
            settings.host,
            settings.port,
            settings.username,
            match settings.tls.mode {
                TlsMode::Verify => ", over TLS with a verified certificate",
                TlsMode::Require => ", over TLS (certificate not verified)",
                _ => "",
            }
        )];
        let rows = self.query(&dialect::database_query(db)).await?;
        if count(&rows) == 0 {
            return Err(error(
                ErrorKind::NotFound,
                format!("database \"{db}\" does not exist"),
            ));
        }
        let rows = self
            .query_system_tables(&dialect::replacing_tables_query(db))
            .await?;
        checks.push(format!(
            "database {db} has {} ReplacingMergeTree table(s), which Sluice can upsert into",
            count(&rows)
        ));
        let stage = "sluice_connection_test";
        self.execute(&dialect::create_stage(
            stage,
            &[("id".to_string(), "UInt8".to_string())],
        ))
        .await
        .map_err(|e| {
            if e.kind == ErrorKind::Permission {
                error(
                    ErrorKind::Permission,
                    format!(
                        "user \"{}\" cannot create temporary tables, which Sluice stages partial updates in \
                         (the user may be readonly): {}",
                        settings.username, e.message
                    ),
                )
            } else {
                e
            }
        })?;
        let _ = self.execute(&dialect::drop_stage(stage)).await;
        checks.push("can create temporary tables".to_string());
        if !self.version.has_safe_deletes() {
            checks.push(format!(
                "ClickHouse {} cannot delete rows safely (23.12 or later can, into tables created with \
                 ReplacingMergeTree(<version>, <is_deleted>)): pipelines must use `on_leave: keep`",
                self.version_text
            ));
        }
        Ok(TestReport {
            server_version: format!("ClickHouse {}", self.version_text),
            checks,
        })
    }

    /// Engine and columns of `name` in the settings' database; `None` when there is no such table.
    pub async fn table_info(&mut self, database: &str, name: &str) -> Result<Option<TableInfo>> {
        let rows = self
            .query_system_tables(&dialect::table_query(database, name))
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let table_row: Vec<String> = row.iter().map(Datum::text).collect();
        let described = match self.query(&dialect::columns_query(database, name)).await {
            // Dropped in between.
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            other => other?,
        };
        let described: Vec<Vec<String>> = described
            .iter()
            .map(|r| r.iter().map(Datum::text).collect())
            .collect();
        Ok(Some(table_info_from(&table_row, &described)))
    }

    /// The tables of `database`; a database that does not exist is `NotFound`, not an empty list.
    pub async fn list_tables(&mut self, database: &str) -> Result<Vec<String>> {
        if count(&self.query(&dialect::database_query(database)).await?) == 0 {
            return Err(error(
                ErrorKind::NotFound,
                format!("database `{database}` does not exist"),
            ));
        }
        let rows = self
            .query_system_tables(&dialect::list_tables_query(database))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().map(Datum::text))
            .collect())
    }

    pub async fn describe_table(
        &mut self,
        database: &str,
        name: &str,
    ) -> Result<Option<TableDescription>> {
        let Some(info) = self.table_info(database, name).await? else {
            return Ok(None);
        };
        Ok(Some(describe(name, &info, self.version)))
    }

    /// The table as last described for writing, described afresh on first use.
    async fn writable(&mut self, database: &str, table: &str) -> Result<Arc<TableInfo>> {
        if let Some(info) = self.tables.get(table) {
            return Ok(info.clone());
        }
        let info = self.table_info(database, table).await?.ok_or_else(|| {
            error(
                ErrorKind::NotFound,
                format!("table `{table}` does not exist in database `{database}`"),
            )
        })?;
        let info = Arc::new(info);
        self.tables.insert(table.to_string(), info.clone());
        Ok(info)
    }

    /// Forgets what was described of `table` (after a write found it changed).
    pub fn forget(&mut self, table: &str) {
        self.tables.remove(table);
    }

    /// Writes new versions of `rows`; see [`super`].
    pub async fn upsert(
        &mut self,
        database: &str,
        target: &WriteTarget,
        rows: &[Row],
    ) -> Result<()> {
        let table = &target.table.name;
        let info = self.writable(database, table).await?;
        let plan = plan_write(&info, target, self.version)?;
        let started = std::time::Instant::now();
        let blocks = build_blocks(&plan, rows, target.run_version)?;
        let encoded = started.elapsed();
        if plan.kept.is_empty() {
            let sql = plan.insert_sql(&dialect::qualified(database, table));
            let result = self.insert_blocks(&sql, &plan, blocks).await;
            tracing::debug!(table = %table, rows = rows.len(), encode_s = encoded.as_secs_f64(),
                insert_s = (started.elapsed() - encoded).as_secs_f64(), "inserted a batch");
            return result;
        }
        // Columns the pipeline does not write keep their values: the batch is staged, and the rows already
        // in the table are written with their other columns read back (FINAL), the new ones without them.
        self.next_stage += 1;
        let staged = StagedUpsert::new(&plan, database, table, &target.key, self.next_stage);
        let result = async {
            for sql in &staged.prepare {
                self.execute(sql).await?;
            }
            self.insert_blocks(&staged.stage_insert, &plan, blocks)
                .await?;
            // The first reads the current rows into a temporary table; the others insert.
            for sql in &staged.write {
                self.execute_insert(sql).await?;
            }
            Ok(())
        }
        .await;
        for sql in &staged.cleanup {
            let _ = self.execute(sql).await;
        }
        result
    }

    /// Writes tombstones (`is_deleted = 1`, this run's version) for the `keys` that are in the table;
    /// returns how many.
    pub async fn delete(
        &mut self,
        database: &str,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<u64> {
        let info = self.writable(database, &target.table.name).await?;
        self.next_stage += 1;
        let plan = Tombstones::new(&info, database, target, self.version, self.next_stage)?;
        let rows: Vec<Row> = keys
            .iter()
            .map(|k| Row {
                values: vec![k.clone()],
            })
            .collect();
        let blocks = build_blocks(&plan.stage_plan, &rows, target.run_version).map_err(|e| {
            error(
                e.kind,
                format!("{} (writing tombstones of {} keys)", e.message, keys.len()),
            )
        })?;
        let result = async {
            for sql in &plan.prepare {
                self.execute(sql).await?;
            }
            self.insert_blocks(&plan.stage_insert, &plan.stage_plan, blocks)
                .await?;
            let n = count(&self.query(&plan.count).await?);
            self.execute_insert(&plan.insert).await?;
            Ok(n)
        }
        .await;
        let _ = self.execute(&plan.cleanup).await;
        result
    }

    /// Sends one insert with its blocks and waits for the server's answer. The server's header must name
    /// the planned columns with their wire types: otherwise the table changed since it was described, and
    /// no row is sent.
    pub async fn insert_blocks(
        &mut self,
        sql: &str,
        plan: &WritePlan,
        blocks: Vec<Vec<u8>>,
    ) -> Result<()> {
        let result = self
            .conn
            .insert(sql, &self.insert_settings, blocks, |header| {
                check_header(plan, header)
            })
            .await
            .map_err(|e| map_error(&e));
        self.poisoned |= result.is_err() && !self.conn.is_usable();
        result
    }
}

/// A table's description from the answers of [`dialect::table_query`] (one row: engine, engine_full,
/// sorting_key) and [`dialect::columns_query`] (name, type, default kind, …), as text.
pub fn table_info_from(table_row: &[String], described: &[Vec<String>]) -> TableInfo {
    let field = |r: &[String], i: usize| r.get(i).cloned().unwrap_or_default();
    let engine = dialect::engine_info(
        &field(table_row, 0),
        &field(table_row, 1),
        &field(table_row, 2),
    );
    let columns = described
        .iter()
        .map(|r| {
            let type_text = field(r, 1);
            ColumnInfo {
                name: field(r, 0),
                ty: ChType::parse(&type_text),
                type_text,
                default_kind: field(r, 2),
            }
        })
        .collect();
    TableInfo { engine, columns }
}

/// The statements of an upsert that keeps the columns the pipeline does not write: the batch goes into a
/// stage, the rows already in the table are read back with their other columns (`FINAL`), and both kinds
/// of rows are written from there.
#[derive(Debug, Clone)]
pub struct StagedUpsert {
    /// Run before the batch is staged.
    pub prepare: Vec<String>,
    /// The insert the batch's blocks go with (laid out by the same plan).
    pub stage_insert: String,
    /// Run after: the current rows, then the updates and the new rows.
    pub write: Vec<String>,
    /// Run whatever happened.
    pub cleanup: Vec<String>,
}

impl StagedUpsert {
    /// `n` makes the session's temporary table names unique.
    pub fn new(plan: &WritePlan, database: &str, table: &str, key: &str, n: u32) -> Self {
        let stage = format!("sluice_stage_{n}");
        let existing = format!("sluice_existing_{n}");
        let stage_columns: Vec<(String, String)> = plan
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.type_text.clone()))
            .collect();
        let written: Vec<String> = plan.columns.iter().map(|c| c.name.clone()).collect();
        StagedUpsert {
            prepare: vec![
                dialect::drop_stage(&stage),
                dialect::drop_stage(&existing),
                dialect::create_stage(&stage, &stage_columns),
            ],
            stage_insert: plan.insert_sql(&dialect::quote(&stage)),
            write: vec![
                dialect::create_existing(&existing, database, table, &stage, key, &plan.kept),
                dialect::insert_updates(
                    database, table, &stage, &existing, key, &written, &plan.kept,
                ),
                dialect::insert_new(database, table, &stage, &existing, key, &written),
            ],
            cleanup: vec![dialect::drop_stage(&stage), dialect::drop_stage(&existing)],
        }
    }
}

/// The statements that delete keys: they are staged with the run's version, counted where present, and
/// each present row is copied as a tombstone ([`dialect::insert_tombstones`]).
#[derive(Debug, Clone)]
pub struct Tombstones {
    /// How the staged keys' blocks are laid out: the key (each row's only value) and the run's version.
    pub stage_plan: WritePlan,
    pub prepare: Vec<String>,
    pub stage_insert: String,
    /// How many of the keys have a live row.
    pub count: String,
    pub insert: String,
    pub cleanup: String,
}

impl Tombstones {
    /// Refuses tables and servers that cannot take tombstones (see [`EngineInfo::delete_refusal`]).
    pub fn new(
        info: &TableInfo,
        database: &str,
        target: &WriteTarget,
        version: ServerVersion,
        n: u32,
    ) -> Result<Self> {
        let table = &target.table.name;
        if let Some(why) = info.engine.delete_refusal(table, version) {
            return Err(error(ErrorKind::Config, why));
        }
        let (Some(version_name), Some(is_deleted)) =
            (&info.engine.version, &info.engine.is_deleted)
        else {
            unreachable!("delete_refusal checks both");
        };
        let key_col = info.column(&target.key).ok_or_else(|| {
            error(
                ErrorKind::SchemaMismatch,
                format!("column `{}` of table `{table}` does not exist", target.key),
            )
        })?;
        let version_col = info.column(version_name).ok_or_else(|| {
            error(
                ErrorKind::SchemaMismatch,
                format!("the version column `{version_name}` of table `{table}` does not exist"),
            )
        })?;
        let stage_plan = WritePlan {
            columns: vec![
                planned(key_col, Source::Target(0), version)?,
                planned(version_col, Source::RunVersion, version)?,
            ],
            kept: Vec::new(),
        };
        let stage = format!("sluice_tombstones_{n}");
        let copied: Vec<String> = info
            .columns
            .iter()
            .filter(|c| c.insertable())
            .map(|c| c.name.clone())
            .collect();
        let source = if target.columns.contains(version_name) {
            dialect::TombstoneVersion::CurrentPlusOne
        } else {
            dialect::TombstoneVersion::Run
        };
        Ok(Tombstones {
            prepare: vec![
                dialect::drop_stage(&stage),
                dialect::create_stage(
                    &stage,
                    &[
                        (target.key.clone(), key_col.type_text.clone()),
                        (version_name.clone(), version_col.type_text.clone()),
                    ],
                ),
            ],
            stage_insert: stage_plan.insert_sql(&dialect::quote(&stage)),
            count: dialect::count_present(database, table, &stage, &target.key, Some(is_deleted)),
            insert: dialect::insert_tombstones(
                &dialect::qualified(database, table),
                &stage,
                &target.key,
                &copied,
                version_name,
                is_deleted,
                source,
            ),
            cleanup: dialect::drop_stage(&stage),
            stage_plan,
        })
    }
}

/// Whether the server expects the block `plan` lays out.
fn check_header(plan: &WritePlan, header: &Header) -> std::result::Result<(), String> {
    let expected: Vec<(&str, &str)> = plan
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.wire_text.as_str()))
        .collect();
    let got: Vec<(&str, &str)> = header
        .columns
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    // Servers spell types alike, but spacing is not part of a type.
    let same = |a: &[(&str, &str)], b: &[(&str, &str)]| {
        let squeeze = |t: &str| t.split_whitespace().collect::<String>();
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((n1, t1), (n2, t2))| n1 == n2 && squeeze(t1) == squeeze(t2))
    };
    if same(&expected, &got) {
        return Ok(());
    }
    Err(format!(
        "the table changed since Sluice described it: the server expects the columns {}, not {}",
        describe_columns(&got),
        describe_columns(&expected)
    ))
}

fn describe_columns(columns: &[(&str, &str)]) -> String {
    let parts: Vec<String> = columns.iter().map(|(n, t)| format!("`{n}` {t}")).collect();
    parts.join(", ")
}

/// The description Sluice shows and checks pipelines against.
pub fn describe(name: &str, info: &TableInfo, version: ServerVersion) -> TableDescription {
    let mut columns = Vec::new();
    let mut issues = Vec::new();
    for c in &info.columns {
        let mut ty = c.ty.as_ref().and_then(dialect::column_type);
        if !c.insertable() {
            issues.push(format!(
                "column `{}` is {} and cannot be written",
                c.name,
                c.default_kind.to_ascii_lowercase()
            ));
            ty = None;
        } else if let Some(missing) = c.ty.as_ref().and_then(|t| t.missing_feature(version)) {
            issues.push(format!(
                "column `{}` has type `{}`, which needs {missing}",
                c.name, c.type_text
            ));
            ty = None;
        } else if ty.is_none() {
            issues.push(format!(
                "column `{}` has unsupported type `{}`",
                c.name, c.type_text
            ));
        }
        columns.push(Column {
            name: c.name.clone(),
            native_type: c.type_text.clone(),
            nullable: c.ty.as_ref().is_some_and(ChType::is_nullable),
            ty,
            has_default: !c.default_kind.is_empty(),
        });
    }
    let e = &info.engine;
    let mut keys = Vec::new();
    let key_advice = match e.table_refusal(name) {
        Some(why) => {
            issues.push(why.clone());
            why
        }
        None => {
            let k = &e.sorting_key[0];
            keys.push(vec![k.clone()]);
            format!(
                "only `{k}`, the sorting key of this ReplacingMergeTree table, identifies its rows: choose it as \
                 the key column, or recreate the table with ORDER BY the column you want"
            )
        }
    };
    TableDescription {
        name: name.to_string(),
        columns,
        has_primary_key: !keys.is_empty(),
        keys,
        issues,
        rules: TableRules {
            key: Some(key_advice),
            delete: e.delete_refusal(name, version),
            identifiers: dialect::CAPABILITIES.identifiers.case,
        },
    }
}

/// The wire type of a column; an error when its type cannot be written.
fn wire(c: &ColumnInfo) -> Result<Wire> {
    let ty = c.ty.as_ref().ok_or_else(|| {
        error(
            ErrorKind::SchemaMismatch,
            format!(
                "column `{}` has type `{}`, which Sluice cannot parse",
                c.name, c.type_text
            ),
        )
    })?;
    Wire::of(ty).map_err(|e| {
        error(
            ErrorKind::SchemaMismatch,
            format!("column `{}` cannot be written: {e}", c.name),
        )
    })
}

/// One column of a native block.
#[derive(Debug, Clone)]
pub struct PlannedColumn {
    pub name: String,
    pub type_text: String,
    pub wire: Wire,
    /// The wire type as the block names it.
    pub wire_text: String,
    /// `Some(type)` when the block carries another type and the insert casts.
    pub cast: Option<String>,
    /// Where the values come from: the target's column at this index, or the run's version.
    pub source: Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Target(usize),
    RunVersion,
}

/// How a batch is written to a table.
#[derive(Debug, Clone)]
pub struct WritePlan {
    pub columns: Vec<PlannedColumn>,
    /// The table's other insertable columns, which an update must carry over.
    pub kept: Vec<String>,
}

impl WritePlan {
    pub fn insert_sql(&self, target_sql: &str) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| c.name.clone()).collect();
        let wire: Vec<String> = self.columns.iter().map(|c| c.wire_text.clone()).collect();
        let casts: Vec<Option<String>> = self.columns.iter().map(|c| c.cast.clone()).collect();
        dialect::insert_sql(target_sql, &names, &wire, &casts)
    }
}

/// Checks the target against the table as it is now and plans the block: the written columns, the version
/// column when the mapping does not set it, and the columns an update keeps.
pub fn plan_write(
    info: &TableInfo,
    target: &WriteTarget,
    version: ServerVersion,
) -> Result<WritePlan> {
    let table = &target.table.name;
    if let Some(why) = info.engine.key_refusal(table, &target.key) {
        return Err(error(ErrorKind::SchemaMismatch, why));
    }
    let mut columns = Vec::new();
    for (i, name) in target.columns.iter().enumerate() {
        let c = info.column(name).ok_or_else(|| {
            error(
                ErrorKind::SchemaMismatch,
                format!("column `{name}` of table `{table}` does not exist"),
            )
        })?;
        columns.push(planned(c, Source::Target(i), version)?);
    }
    if let Some(v) = &info.engine.version {
        if !target.columns.contains(v) {
            let c = info.column(v).ok_or_else(|| {
                error(
                    ErrorKind::SchemaMismatch,
                    format!("the version column `{v}` of table `{table}` does not exist"),
                )
            })?;
            columns.push(planned(c, Source::RunVersion, version)?);
        }
    }
    let kept = info
        .columns
        .iter()
        .filter(|c| c.insertable() && !columns.iter().any(|p| p.name == c.name))
        // A row that is written is not deleted.
        .filter(|c| info.engine.is_deleted.as_deref() != Some(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect();
    Ok(WritePlan { columns, kept })
}

/// How column `c` is laid out when it takes the values at `index` of each row.
pub fn planned_column(
    c: &ColumnInfo,
    index: usize,
    version: ServerVersion,
) -> Result<PlannedColumn> {
    planned(c, Source::Target(index), version)
}

fn planned(c: &ColumnInfo, source: Source, version: ServerVersion) -> Result<PlannedColumn> {
    if !c.insertable() {
        return Err(error(
            ErrorKind::SchemaMismatch,
            format!(
                "column `{}` is {} and cannot be written",
                c.name, c.default_kind
            ),
        ));
    }
    let ty = c.ty.as_ref();
    if let Some(missing) = ty.and_then(|t| t.missing_feature(version)) {
        return Err(error(
            ErrorKind::SchemaMismatch,
            format!("column `{}` has a type that needs {missing}", c.name),
        ));
    }
    let cast = ty.filter(|t| t.needs_cast()).map(|_| c.type_text.clone());
    let wire = wire(c)?;
    Ok(PlannedColumn {
        name: c.name.clone(),
        type_text: c.type_text.clone(),
        wire_text: wire.to_string(),
        wire,
        cast,
        source,
    })
}

/// The data packets of `rows` for `plan`, a block each of at most [`ROWS_PER_BLOCK`] rows; a value that
/// does not fit its column fails the batch as bad data, naming the column.
pub fn build_blocks(plan: &WritePlan, rows: &[Row], run_version: u64) -> Result<Vec<Vec<u8>>> {
    let version = plan
        .columns
        .iter()
        .find(|c| c.source == Source::RunVersion)
        .map(|c| {
            encode::version_value(&c.wire, run_version).map_err(|e| {
                error(
                    ErrorKind::SchemaMismatch,
                    format!("column `{}`: {e}", c.name),
                )
            })
        })
        .transpose()?;
    let mut blocks = Vec::new();
    for chunk in rows.chunks(ROWS_PER_BLOCK) {
        let mut columns: Vec<ColumnBuilder> = plan
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(&c.wire, chunk.len()))
            .collect();
        for row in chunk {
            for (c, column) in plan.columns.iter().zip(&mut columns) {
                let value = match c.source {
                    Source::RunVersion => version.as_ref().expect("computed above"),
                    Source::Target(i) => row.values.get(i).ok_or_else(|| {
                        error(ErrorKind::Internal, "a row has fewer values than columns")
                    })?,
                };
                column
                    .push(Cell::Value(value))
                    .map_err(|e| error(ErrorKind::BadData, format!("column `{}`: {e}", c.name)))?;
            }
        }
        // Sized up front: growing a block of many megabytes copied it several times over.
        let size: usize = columns.iter().map(|c| c.size_hint()).sum();
        let mut out = Vec::with_capacity(size + plan.columns.len() * 64 + 64);
        native::start_block(&mut out, plan.columns.len(), chunk.len());
        for (c, column) in plan.columns.iter().zip(&columns) {
            native::put_str(&mut out, &c.name);
            native::put_str(&mut out, &c.wire_text);
            column.finish(&mut out);
        }
        blocks.push(out);
    }
    Ok(blocks)
}

/// Whether a `system.tables` query failed on a table dropped while the server listed it: "doesn't
/// exist", or any failure to read a table's metadata file (18.16 says "Cannot open file …/metadata/…"
/// or "File not found: …/metadata/…", depending on the moment).
fn dropped_meanwhile(e: &DestinationError) -> bool {
    e.kind == ErrorKind::NotFound || e.message.contains("/metadata/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, ty: &str) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            type_text: ty.into(),
            ty: ChType::parse(ty),
            default_kind: String::new(),
        }
    }

    #[test]
    fn the_header_must_be_the_plan() {
        let version = ServerVersion {
            major: 24,
            minor: 3,
        };
        let plan = WritePlan {
            columns: vec![
                planned(&column("id", "UInt64"), Source::Target(0), version).unwrap(),
                planned(
                    &column("at", "DateTime('UTC')"),
                    Source::RunVersion,
                    version,
                )
                .unwrap(),
            ],
            kept: Vec::new(),
        };
        let header = |cols: &[(&str, &str)]| Header {
            columns: cols
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        };
        assert!(check_header(
            &plan,
            &header(&[("id", "UInt64"), ("at", "DateTime( 'UTC' )")])
        )
        .is_ok());
        let why = check_header(
            &plan,
            &header(&[("id", "String"), ("at", "DateTime('UTC')")]),
        )
        .unwrap_err();
        assert!(why.contains("`id` String"), "{why}");
        assert!(check_header(&plan, &header(&[("id", "UInt64")])).is_err());
        // Bool travels as UInt8 and the insert casts.
        let plan = WritePlan {
            columns: vec![planned(&column("ok", "Bool"), Source::Target(0), version).unwrap()],
            kept: Vec::new(),
        };
        assert!(check_header(&plan, &header(&[("ok", "UInt8")])).is_ok());
    }
}
