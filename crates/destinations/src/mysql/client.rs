//! Talking to MySQL / MariaDB: connecting (TLS, timeout, session settings), the connection test,
//! describing tables, and the staged bulk upsert (see [`super`]).
//!
//! Errors keep the server's message and get a kind from its error code ([`dialect::error_kind`]);
//! passwords never reach a message or a log.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{Datelike, Timelike};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, DriverError, OptsBuilder, Params, SslOpts, Value as My};
use sluice_core::{Column, ColumnType, TableDescription, TableRules, Value};

use super::config::{MysqlSettings, TlsMode};
use super::dialect;
use crate::{DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts, WriteTarget};

mod drift;
mod source;

/// At most this many placeholders per statement, with room under MySQL's limit.
const PLACEHOLDERS_PER_STATEMENT: usize = 60_000;
const _: () = assert!(matches!(
    dialect::CAPABILITIES.max_bind_parameters,
    Some(limit) if PLACEHOLDERS_PER_STATEMENT <= limit
));

/// Keys per `DELETE … IN (…)`.
const KEYS_PER_DELETE: usize = 10_000;

/// Server errors that mean `LOAD DATA LOCAL` is refused: "command not allowed with this version" (the
/// server's `local_infile` is off) and MySQL 8's "loading local data is disabled".
const LOCAL_INFILE_REFUSED: [u16; 2] = [1148, 3948];

/// How rows reach a table in bulk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BulkLoad {
    /// `LOAD DATA LOCAL INFILE` from an in-memory stream when the server allows it (`local_infile`),
    /// multi-row inserts otherwise.
    #[default]
    Auto,
    /// Always multi-row `INSERT`s of bound values.
    Inserts,
}

/// A live connection and the staging tables created on it.
pub struct Session {
    conn: Conn,
    /// The server's `max_allowed_packet`: no statement may be larger.
    max_packet: usize,
    /// Whether rows are loaded with `LOAD DATA LOCAL INFILE` (asked for, and allowed by the server).
    load_data: bool,
    stages: HashMap<StageKey, Stage>,
    next_stage: u32,
    /// How long the server keeps an idle connection (`wait_timeout`), when it says.
    idle_limit: Option<Duration>,
}

impl crate::session::Connection for Session {
    /// The driver cannot tell whether the server has ended the connection until it is used: a connection
    /// idle for as long as the server keeps idle ones (less a second, as the server counts from a little
    /// earlier) is taken as closed.
    fn is_closed(&mut self, idle: Duration) -> bool {
        self.idle_limit
            .is_some_and(|limit| idle + Duration::from_secs(1) >= limit)
    }
}

struct Stage {
    name: String,
    /// Whether the last batch for this target held only new keys. Batches come in streaks (a first run
    /// is all inserts), so the next one then goes straight into the table without asking first; if it
    /// does hold a taken key, the refused insert costs one retry through the staged path and ends the
    /// streak.
    new_streak: bool,
}

/// Why rows could not be loaded.
enum LoadError {
    /// A unique index refused a row (only possible when loading into the target itself).
    Taken,
    /// The server does not allow `LOAD DATA LOCAL` (its message).
    LocalRefused(String),
    /// `LOAD DATA` loaded rows with warnings (a value it truncated or zeroed): the first one.
    Warned(String),
    Failed(DestinationError),
}

impl From<DestinationError> for LoadError {
    fn from(e: DestinationError) -> Self {
        LoadError::Failed(e)
    }
}

impl LoadError {
    fn into_error(self) -> DestinationError {
        match self {
            LoadError::Failed(e) => e,
            LoadError::Taken => DestinationError::new(ErrorKind::Internal, "a key is taken"),
            LoadError::LocalRefused(m) => DestinationError::new(ErrorKind::Internal, m),
            LoadError::Warned(m) => DestinationError::new(ErrorKind::BadData, m),
        }
    }
}

/// What identifies a staging table: the target, the written columns in order and their described types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StageKey {
    table: String,
    columns: Vec<String>,
    native_types: Vec<String>,
}

impl StageKey {
    fn of(target: &WriteTarget) -> Self {
        Self {
            table: target.table.name.clone(),
            columns: target.columns.clone(),
            native_types: target
                .columns
                .iter()
                .map(|c| {
                    target
                        .table
                        .column(c)
                        .map(|col| col.native_type.clone())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}

fn opts(settings: &MysqlSettings, tls: bool) -> Result<OptsBuilder> {
    let mut builder = OptsBuilder::default()
        .ip_or_hostname(settings.host.clone())
        .tcp_port(settings.port)
        .user(Some(settings.username.clone()))
        .pass(settings.password.clone())
        .db_name(Some(settings.database.clone()))
        .tcp_nodelay(true)
        .tcp_keepalive(Some(30_000u32))
        .prefer_socket(false);
    if tls {
        let mut ssl = SslOpts::default();
        match settings.tls.mode {
            TlsMode::Verify => {
                if let Some(pem) = &settings.tls.ca_cert {
                    ssl = ssl
                        .with_root_certs(vec![pem.as_bytes().to_vec().into()])
                        .with_disable_built_in_roots(true);
                }
            }
            // Encrypted but the server is not authenticated (MySQL's `--ssl-mode=REQUIRED`).
            _ => ssl = ssl.with_danger_accept_invalid_certs(true),
        }
        builder = builder.ssl_opts(Some(ssl));
    }
    Ok(builder)
}

/// Opens a connection within the configured timeout and prepares the session.
pub async fn connect(
    settings: &MysqlSettings,
    sql_mode: Option<&str>,
    bulk: BulkLoad,
) -> Result<Session> {
    let where_ = format!("{}:{}", settings.host, settings.port);
    let tls = settings.tls.mode != TlsMode::Disable;
    let mut conn = match open(settings, tls, &where_).await {
        // `prefer`: plain TCP when the server offers no TLS.
        Err(Attempt::NoTls) if settings.tls.mode == TlsMode::Prefer => {
            match open(settings, false, &where_).await {
                Ok(c) => c,
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::NoTls) => unreachable!("TLS was not asked for"),
            }
        }
        Err(Attempt::NoTls) => {
            return Err(DestinationError::new(
                ErrorKind::Config,
                format!("the server at {where_} does not support TLS: set the TLS mode to disable or prefer"),
            ))
        }
        Err(Attempt::Failed(e)) => return Err(e),
        Ok(c) => c,
    };
    if let Some(mode) = sql_mode {
        conn.exec_drop("SET SESSION sql_mode = ?", (mode,))
            .await
            .map_err(|e| map_error(&e))?;
    }
    // UTC for TIMESTAMP conversion; strict mode so that bad values fail instead of being mangled; utf8mb4
    // for any text.
    conn.query_drop(
        "SET NAMES utf8mb4, time_zone = '+00:00', \
         sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')",
    )
    .await
    .map_err(|e| map_error(&e))?;
    let (max_packet, wait_timeout) = conn
        .query_first::<(Option<u64>, Option<u64>), _>(
            "SELECT @@max_allowed_packet, @@SESSION.wait_timeout",
        )
        .await
        .map_err(|e| map_error(&e))?
        .unwrap_or_default();
    let local_infile = match bulk {
        BulkLoad::Inserts => false,
        // A server without the variable (or refusing to say) gets inserts.
        BulkLoad::Auto => {
            conn.query_first::<Option<u64>, _>("SELECT @@local_infile")
                .await
                .ok()
                .flatten()
                .flatten()
                == Some(1)
        }
    };
    tracing::debug!(host = %settings.host, port = settings.port, database = %settings.database, local_infile, "connected to MySQL");
    Ok(Session {
        conn,
        max_packet: max_packet.unwrap_or(4 << 20) as usize,
        load_data: local_infile,
        stages: HashMap::new(),
        next_stage: 0,
        idle_limit: wait_timeout
            .filter(|secs| *secs > 0)
            .map(Duration::from_secs),
    })
}

enum Attempt {
    NoTls,
    Failed(DestinationError),
}

async fn open(settings: &MysqlSettings, tls: bool, where_: &str) -> Result<Conn, Attempt> {
    let opts = opts(settings, tls).map_err(Attempt::Failed)?;
    let timeout = settings.connect_timeout();
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Err(_) => Err(Attempt::Failed(DestinationError::new(
            ErrorKind::Unavailable,
            format!(
                "could not connect to {where_} within {} s",
                timeout.as_secs()
            ),
        ))),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))) => {
            Err(Attempt::NoTls)
        }
        Ok(Err(e)) => Err(Attempt::Failed(connect_error(&e, where_, settings))),
    }
}

fn connect_error(
    e: &mysql_async::Error,
    where_: &str,
    settings: &MysqlSettings,
) -> DestinationError {
    match e {
        mysql_async::Error::Server(s) => {
            let kind = dialect::error_kind(s.code);
            let message = match kind {
                ErrorKind::NotFound => format!("{} (on {where_})", s.message),
                _ => s.message.clone(),
            };
            DestinationError::new(kind, message)
        }
        mysql_async::Error::Driver(DriverError::UnknownAuthPlugin { name }) => DestinationError::new(
            ErrorKind::Auth,
            format!(
                "the server asks for the authentication plugin `{name}`, which Sluice does not support \
                 (mysql_native_password and caching_sha2_password are)"
            ),
        ),
        mysql_async::Error::Driver(DriverError::CleartextPluginDisabled) => DestinationError::new(
            ErrorKind::Auth,
            format!(
                "user \"{}\" authenticates with the cleartext plugin, which Sluice does not use",
                settings.username
            ),
        ),
        mysql_async::Error::Io(io) => {
            let text = io.to_string();
            let kind = if text.to_ascii_lowercase().contains("tls")
                || text.to_ascii_lowercase().contains("certificate")
            {
                ErrorKind::Auth
            } else {
                ErrorKind::Unavailable
            };
            DestinationError::new(kind, format!("could not connect to {where_}: {text}"))
        }
        other => DestinationError::new(
            ErrorKind::Unavailable,
            format!("could not connect to {where_}: {other}"),
        ),
    }
}

/// Maps a driver error to a destination error: the server's message and a kind from its code.
pub fn map_error(e: &mysql_async::Error) -> DestinationError {
    match e {
        mysql_async::Error::Server(s) => {
            let kind = dialect::error_kind(s.code);
            let message = match s.code {
                // MySQL says which index, not that it is a unique one.
                1062 => format!("{} (a unique index)", s.message),
                // MariaDB's "CONSTRAINT `t.c` failed for `db`.`t`" does not say what kind of constraint.
                4025 => format!("CHECK {}", s.message),
                _ => s.message.clone(),
            };
            DestinationError::new(kind, message)
        }
        mysql_async::Error::Io(io) => DestinationError::new(
            ErrorKind::Unavailable,
            format!("the connection to the server failed: {io}"),
        ),
        mysql_async::Error::Driver(DriverError::ConnectionClosed) => DestinationError::new(
            ErrorKind::Unavailable,
            "the connection to the server was lost",
        ),
        mysql_async::Error::Driver(DriverError::PacketTooLarge) => DestinationError::new(
            ErrorKind::BadData,
            "a row is larger than the server's max_allowed_packet",
        ),
        other => DestinationError::new(ErrorKind::Internal, other.to_string()),
    }
}

/// A value as bound for a column of type `ty`. Instants are bound as their UTC wall-clock time, which
/// the session's `+00:00` time zone makes the right instant for TIMESTAMP columns.
pub fn bind(value: &Value, ty: Option<&ColumnType>) -> My {
    match value {
        Value::Null => My::NULL,
        Value::Bool(b) => My::Int(*b as i64),
        Value::Int(i) => My::Int(*i),
        Value::Float(f) => My::Double(*f),
        Value::Decimal(d) => My::Bytes(d.to_string().into_bytes()),
        Value::String(s) => My::Bytes(s.as_bytes().to_vec()),
        Value::Date(d) => My::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0),
        Value::Time(t) => My::Time(
            false,
            0,
            t.hour() as u8,
            t.minute() as u8,
            t.second() as u8,
            t.nanosecond() / 1000,
        ),
        Value::DateTime(dt) => {
            let n = dt.naive_utc();
            My::Date(
                n.year() as u16,
                n.month() as u8,
                n.day() as u8,
                n.hour() as u8,
                n.minute() as u8,
                n.second() as u8,
                n.nanosecond() / 1000,
            )
        }
        Value::Uuid(u) => match ty {
            Some(ColumnType::Binary) => My::Bytes(u.as_bytes().to_vec()),
            _ => My::Bytes(u.hyphenated().to_string().into_bytes()),
        },
        Value::Json(j) => My::Bytes(j.to_string().into_bytes()),
        Value::Array(_) => My::Bytes(value.to_json().to_string().into_bytes()),
        Value::Bytes(b) => My::Bytes(b.clone()),
    }
}

/// About how many bytes a bound value takes in the execute packet.
fn wire_size(v: &My) -> usize {
    match v {
        My::Bytes(b) => b.len() + 9,
        _ => 13,
    }
}

/// Makes `data` what the next `LOAD DATA LOCAL` on `conn` reads. The driver sends each item of the
/// handler's stream as one packet, which the server refuses above `max_allowed_packet`: items are slices
/// (no copy) of at most 1 MiB, and under half the packet limit.
pub fn set_infile(conn: &mut Conn, data: Vec<u8>, max_packet: usize) {
    let chunk = (max_packet / 2).clamp(1024, 1 << 20);
    let data = bytes::Bytes::from(data);
    let pieces: Vec<bytes::Bytes> = (0..data.len())
        .step_by(chunk)
        .map(|at| data.slice(at..(at + chunk).min(data.len())))
        .collect();
    conn.set_infile_handler(async move {
        Ok(Box::pin(futures::stream::iter(pieces.into_iter().map(Ok))) as mysql_async::InfileData)
    });
}

impl Session {
    async fn exec_rows(&mut self, sql: &str, params: Vec<My>) -> Result<Vec<mysql_async::Row>> {
        self.conn
            .exec(sql, Params::Positional(params))
            .await
            .map_err(|e| map_error(&e))
    }

    /// Connection test: server version, the right to create temporary tables (staging) and to insert,
    /// update and delete rows in the database.
    pub async fn test(&mut self, settings: &MysqlSettings) -> Result<TestReport> {
        let db = &settings.database;
        let mut checks = vec![format!(
            "connected to {}:{} as user {}, database {db}",
            settings.host, settings.port, settings.username
        )];
        let version: Option<String> = self
            .conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|e| map_error(&e))?;
        let version = version.unwrap_or_default();
        let flavour = if version.to_ascii_lowercase().contains("mariadb") {
            "MariaDB"
        } else {
            "MySQL"
        };
        let short = version.split('-').next().unwrap_or(&version);
        let server_version = format!("{flavour} {short}");

        let stage = "sluice_connection_test";
        let created = self
            .conn
            .query_drop(format!(
                "CREATE TEMPORARY TABLE {} (id INT)",
                dialect::quote(stage)
            ))
            .await;
        if let Err(e) = created {
            let err = map_error(&e);
            return Err(if err.kind == ErrorKind::Permission {
                DestinationError::new(
                    ErrorKind::Permission,
                    format!(
                        "user \"{}\" cannot create temporary tables in database \"{db}\", which Sluice \
                         stages rows in: GRANT CREATE TEMPORARY TABLES ON `{db}`.* ({})",
                        settings.username, err.message
                    ),
                )
            } else {
                err
            });
        }
        let _ = self.conn.query_drop(dialect::drop_stage(stage)).await;
        checks.push(format!("can create temporary tables in database {db}"));

        // Privileges granted globally or on the database; otherwise, on some tables of it.
        let grantee = "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                       SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";
        let broad: Vec<String> = self
            .conn
            .query(format!(
                "SELECT CAST(PRIVILEGE_TYPE AS CHAR) FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} \
                 UNION SELECT CAST(PRIVILEGE_TYPE AS CHAR) FROM information_schema.SCHEMA_PRIVILEGES \
                 WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = DATABASE()"
            ))
            .await
            .map_err(|e| map_error(&e))?;
        let has = |p: &str| broad.iter().any(|b| b.eq_ignore_ascii_case(p));
        let needed = ["SELECT", "INSERT", "UPDATE", "DELETE"];
        if needed.iter().all(|p| has(p)) {
            checks.push(format!(
                "can read, insert, update and delete rows in every table of database {db}"
            ));
        } else {
            let tables: Option<u64> = self
                .conn
                .query_first(format!(
                    "SELECT COUNT(*) FROM (SELECT TABLE_NAME FROM information_schema.TABLE_PRIVILEGES \
                     WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = DATABASE() \
                     AND PRIVILEGE_TYPE IN ('INSERT', 'UPDATE') GROUP BY TABLE_NAME \
                     HAVING COUNT(DISTINCT PRIVILEGE_TYPE) = 2) w"
                ))
                .await
                .map_err(|e| map_error(&e))?;
            let tables = tables.unwrap_or(0);
            if tables == 0 {
                let missing: Vec<&str> = needed.iter().copied().filter(|p| !has(p)).collect();
                return Err(DestinationError::new(
                    ErrorKind::Permission,
                    format!(
                        "user \"{}\" lacks {} on database \"{db}\" and cannot insert and update any of its \
                         tables: GRANT SELECT, INSERT, UPDATE, DELETE ON `{db}`.*",
                        settings.username,
                        missing.join(", ")
                    ),
                ));
            }
            checks.push(format!(
                "can insert and update {tables} table(s) in database {db}"
            ));
        }
        Ok(TestReport {
            server_version,
            checks,
        })
    }

    /// The tables of the connection's database (which the connection itself proves to exist).
    pub async fn list_tables(&mut self) -> Result<Vec<String>> {
        let rows = self.exec_rows(dialect::LIST_TABLES, Vec::new()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.get::<Option<String>, _>(0).flatten())
            .collect())
    }

    pub async fn describe_table(&mut self, name: &str) -> Result<Option<TableDescription>> {
        let rows = self
            .exec_rows(dialect::COLUMNS_QUERY, vec![My::from(name)])
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        // MariaDB's JSON columns are LONGTEXT with a json_valid() check.
        let checks: Vec<String> = match self
            .conn
            .exec::<Option<String>, _, _>(dialect::JSON_CHECKS_QUERY, (name,))
            .await
        {
            Ok(v) => v.into_iter().flatten().collect(),
            Err(_) => Vec::new(),
        };
        let mut columns = Vec::new();
        let mut issues = Vec::new();
        for row in rows {
            let text = |i: usize| -> Option<String> { row.get::<Option<String>, _>(i).flatten() };
            let number = |i: usize| -> Option<u64> { row.get::<Option<u64>, _>(i).flatten() };
            let name = text(0).unwrap_or_default();
            let data_type = text(1).unwrap_or_default();
            let column_type = text(2).unwrap_or_default();
            let nullable = text(3).as_deref() == Some("YES");
            // MariaDB reports the implicit default of a nullable column as the text `NULL`.
            let default = text(4).filter(|d| d != "NULL");
            let extra = text(5).unwrap_or_default().to_ascii_lowercase();
            let mut ty =
                dialect::column_type(&data_type, &column_type, number(6), number(7), number(8));
            if matches!(ty, Some(ColumnType::Text { max_len: None }))
                && checks.iter().any(|c| dialect::is_json_check(c, &name))
            {
                ty = Some(ColumnType::Json);
            }
            let generated = extra.contains("generated");
            if generated {
                issues.push(format!(
                    "column `{name}` is generated and cannot be written"
                ));
            } else if ty.is_none() {
                issues.push(format!(
                    "column `{name}` has unsupported type `{column_type}`"
                ));
            }
            columns.push(Column {
                name,
                native_type: column_type,
                nullable,
                ty: if generated { None } else { ty },
                has_default: default.is_some()
                    || extra.contains("auto_increment")
                    || generated
                    || extra.contains("default_generated"),
            });
        }
        let key_rows = self
            .exec_rows(dialect::KEYS_QUERY, vec![My::from(name)])
            .await?;
        let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
        for row in key_rows {
            let index: String = row
                .get::<Option<String>, _>(0)
                .flatten()
                .unwrap_or_default();
            let column: String = row
                .get::<Option<String>, _>(1)
                .flatten()
                .unwrap_or_default();
            let prefix = row.get::<Option<u64>, _>(2).flatten().is_some();
            match indexes.last_mut() {
                Some((i, cols, p)) if *i == index => {
                    cols.push(column);
                    *p |= prefix;
                }
                _ => indexes.push((index, vec![column], prefix)),
            }
        }
        let mut keys: Vec<Vec<String>> = Vec::new();
        let mut has_primary_key = false;
        for (index, cols, prefix) in indexes {
            // A unique prefix index only makes the prefix unique, not the value.
            if prefix || keys.contains(&cols) {
                continue;
            }
            has_primary_key |= index == "PRIMARY" && keys.is_empty();
            keys.push(cols);
        }
        if keys.is_empty() {
            issues.push(
                "the table has no primary key or unique index: add one on the column that identifies a row"
                    .to_string(),
            );
        }
        Ok(Some(TableDescription {
            name: name.to_string(),
            columns,
            keys,
            has_primary_key,
            issues,
            rules: TableRules {
                identifiers: dialect::CAPABILITIES.identifiers.case,
                ..TableRules::default()
            },
        }))
    }

    /// Writes one batch atomically; see [`super`].
    pub async fn upsert(&mut self, target: &WriteTarget, rows: &[Row]) -> Result<UpsertCounts> {
        let width = target.columns.len();
        if let Some((index, row)) = rows
            .iter()
            .enumerate()
            .find(|(_, r)| r.values.len() != width)
        {
            return Err(DestinationError::new(
                ErrorKind::Internal,
                format!(
                    "row {index} has {} values for {width} columns",
                    row.values.len()
                ),
            ));
        }
        let key = StageKey::of(target);
        if !self.stages.contains_key(&key) {
            let name = self.create_stage(target).await?;
            let stage = Stage {
                name,
                new_streak: false,
            };
            self.stages.insert(key.clone(), stage);
        }
        let stage = self.stages[&key].name.clone();
        let streak = self.stages[&key].new_streak;
        let result = self.write_batch(&stage, streak, target, rows).await;
        let result = match result {
            Ok((counts, streak)) => {
                if let Some(s) = self.stages.get_mut(&key) {
                    s.new_streak = streak;
                }
                Ok(counts)
            }
            Err(e) => {
                let _ = self.conn.query_drop("ROLLBACK").await;
                Err(e)
            }
        };
        if let Err(e) = &result {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::NotFound) {
                // The table changed under us: stage against its new shape next time.
                self.stages.remove(&key);
                let _ = self.conn.query_drop(dialect::drop_stage(&stage)).await;
            }
        }
        result
    }

    async fn create_stage(&mut self, target: &WriteTarget) -> Result<String> {
        let table = &target.table.name;
        let Some(current) = self.describe_table(table).await? else {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!("table `{table}` does not exist"),
            ));
        };
        if let Some(missing) = target.columns.iter().find(|c| current.column(c).is_none()) {
            return Err(DestinationError::new(
                ErrorKind::SchemaMismatch,
                format!("column `{missing}` of table `{table}` does not exist"),
            ));
        }
        if !current.is_unique_key(&target.key) {
            return Err(DestinationError::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "column `{}` of table `{table}` is not the primary key and has no unique index, so \
                     ON DUPLICATE KEY cannot identify rows by it: add one, or choose another key column",
                    target.key
                ),
            ));
        }
        self.next_stage += 1;
        let name = format!("sluice_stage_{}", self.next_stage);
        self.conn
            .query_drop(dialect::drop_stage(&name))
            .await
            .map_err(|e| map_error(&e))?;
        self.conn
            .query_drop(dialect::create_stage(&name, table, &target.columns))
            .await
            .map_err(|e| map_error(&e))?;
        tracing::debug!(table = %table, stage = %name, "created the staging table");
        Ok(name)
    }

    /// One batch in one transaction: straight into the table when every key is new (or the last batch's
    /// were), else staged and upserted. Returns the counts and whether the batch held only new keys.
    async fn write_batch(
        &mut self,
        stage: &str,
        streak: bool,
        target: &WriteTarget,
        rows: &[Row],
    ) -> Result<(UpsertCounts, bool)> {
        let table = &target.table.name;
        let types: Vec<Option<ColumnType>> = target
            .columns
            .iter()
            .map(|c| target.table.column(c).and_then(|col| col.ty.clone()))
            .collect();
        let all_inserted = UpsertCounts {
            inserted: rows.len() as u64,
            updated: 0,
        };
        if streak || !self.any_key_exists(target, &types, rows).await? {
            self.begin().await?;
            match self.load(table, target, &types, rows).await {
                Ok(()) => {
                    self.commit().await?;
                    return Ok((all_inserted, true));
                }
                // A key taken since the check (or before it, in a streak), or a clash in another unique
                // index: the staged upsert settles which, and reports a real violation.
                Err(LoadError::Taken) => {
                    self.conn
                        .query_drop("ROLLBACK")
                        .await
                        .map_err(|e| map_error(&e))?;
                }
                Err(e) => return Err(e.into_error()),
            }
        }
        self.begin().await?;
        self.conn
            .query_drop(dialect::clear_stage(stage))
            .await
            .map_err(|e| map_error(&e))?;
        self.load(stage, target, &types, rows)
            .await
            .map_err(LoadError::into_error)?;
        let existing: Option<u64> = self
            .conn
            .query_first(dialect::count_existing(table, stage, &target.key))
            .await
            .map_err(|e| map_error(&e))?;
        let existing = existing.unwrap_or(0);
        self.conn
            .query_drop(dialect::upsert_from_stage(
                table,
                stage,
                &target.columns,
                &target.key,
            ))
            .await
            .map_err(|e| map_error(&e))?;
        let missing: Option<String> = self
            .conn
            .query_first(dialect::missing_after_upsert(table, stage, &target.key))
            .await
            .map_err(|e| map_error(&e))?;
        if let Some(key) = missing {
            return Err(DestinationError::new(
                ErrorKind::BadData,
                format!(
                    "Duplicate entry: the row with key '{key}' has a value that another row already holds \
                     in a unique index other than `{}`'s",
                    target.key
                ),
            ));
        }
        self.commit().await?;
        let total = rows.len() as u64;
        Ok((
            UpsertCounts {
                inserted: total.saturating_sub(existing),
                updated: existing.min(total),
            },
            existing == 0,
        ))
    }

    async fn begin(&mut self) -> Result<()> {
        self.conn
            .query_drop("START TRANSACTION")
            .await
            .map_err(|e| map_error(&e))
    }

    async fn commit(&mut self) -> Result<()> {
        self.conn
            .query_drop("COMMIT")
            .await
            .map_err(|e| map_error(&e))
    }

    /// Whether any key of `rows` is in the target already.
    async fn any_key_exists(
        &mut self,
        target: &WriteTarget,
        types: &[Option<ColumnType>],
        rows: &[Row],
    ) -> Result<bool> {
        let index = target.key_index();
        let ty = types.get(index).and_then(|t| t.as_ref());
        for chunk in rows.chunks(KEYS_PER_DELETE) {
            let params: Vec<My> = chunk.iter().map(|r| bind(&r.values[index], ty)).collect();
            let sql = dialect::any_key_exists(&target.table.name, &target.key, chunk.len());
            let found: Option<u8> = self
                .conn
                .exec_first(sql, Params::Positional(params))
                .await
                .map_err(|e| map_error(&e))?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Loads `rows` into `table` (the target or its stage) inside the open transaction, with
    /// `LOAD DATA LOCAL` when the session uses it, multi-row inserts otherwise (and from then on, if the
    /// server refuses local loading).
    ///
    /// A `LOAD DATA` that warned is undone to a savepoint and the batch inserted again: the inserts fail
    /// with the strict-mode error and message the user would get from any client (`Data too long`,
    /// `Incorrect date value`), where `LOAD DATA` only says `Data truncated`.
    async fn load(
        &mut self,
        table: &str,
        target: &WriteTarget,
        types: &[Option<ColumnType>],
        rows: &[Row],
    ) -> Result<(), LoadError> {
        if self.load_data {
            self.conn
                .query_drop("SAVEPOINT sluice_load")
                .await
                .map_err(|e| map_error(&e))?;
            match self.load_data(table, target, types, rows).await {
                Err(LoadError::LocalRefused(reason)) => {
                    tracing::info!(%reason, "LOAD DATA LOCAL is refused: loading with inserts");
                    self.load_data = false;
                }
                Err(LoadError::Warned(warning)) => {
                    tracing::debug!(%warning, "LOAD DATA warned: inserting the batch for the exact error");
                    self.conn
                        .query_drop("ROLLBACK TO SAVEPOINT sluice_load")
                        .await
                        .map_err(|e| map_error(&e))?;
                }
                other => return other,
            }
        }
        self.insert_rows(table, target, types, rows).await
    }

    /// `LOAD DATA LOCAL INFILE` from the batch encoded in memory. With `LOCAL` the server cannot stop the
    /// client mid-stream, so a refused row is only a warning (duplicates are skipped, strict-mode errors
    /// are downgraded): any warning fails the load with the server's message, and the caller rolls back.
    async fn load_data(
        &mut self,
        table: &str,
        target: &WriteTarget,
        types: &[Option<ColumnType>],
        rows: &[Row],
    ) -> Result<(), LoadError> {
        let hex: Vec<bool> = types
            .iter()
            .map(|t| matches!(t, Some(ColumnType::Binary)))
            .collect();
        let mut data = Vec::with_capacity(rows.len() * 64 * types.len().max(1));
        for row in rows {
            for (i, (v, ty)) in row.values.iter().zip(types).enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                dialect::encode_field(&bind(v, ty.as_ref()), hex[i], &mut data);
            }
            data.push(b'\n');
        }
        set_infile(&mut self.conn, data, self.max_packet);
        let sql = dialect::load_data(table, &target.columns, &hex);
        match self.conn.query_drop(sql).await {
            Ok(()) => {}
            Err(mysql_async::Error::Server(s)) if LOCAL_INFILE_REFUSED.contains(&s.code) => {
                return Err(LoadError::LocalRefused(s.message));
            }
            Err(mysql_async::Error::Server(s)) if s.code == 1062 => return Err(LoadError::Taken),
            Err(e) => return Err(LoadError::Failed(map_error(&e))),
        }
        let loaded = self.conn.affected_rows();
        if self.conn.get_warnings() > 0 || loaded != rows.len() as u64 {
            let warnings: Vec<(String, u16, String)> = self
                .conn
                .query("SHOW WARNINGS")
                .await
                .map_err(|e| map_error(&e))?;
            let first = warnings
                .into_iter()
                .find(|(level, _, _)| !level.eq_ignore_ascii_case("note"));
            match first {
                Some((_, 1062, _)) => return Err(LoadError::Taken),
                Some((_, _, message)) => return Err(LoadError::Warned(message)),
                None if loaded != rows.len() as u64 => {
                    return Err(LoadError::Failed(DestinationError::new(
                        ErrorKind::Internal,
                        format!("LOAD DATA loaded {loaded} of {} rows", rows.len()),
                    )))
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Large multi-row inserts of bound values, sized under both the placeholder limit and
    /// `max_allowed_packet`.
    async fn insert_rows(
        &mut self,
        table: &str,
        target: &WriteTarget,
        types: &[Option<ColumnType>],
        rows: &[Row],
    ) -> Result<(), LoadError> {
        let width = target.columns.len();
        let rows_per_statement = (PLACEHOLDERS_PER_STATEMENT / width).max(1);
        // Half the packet limit leaves room for the statement and protocol overhead.
        let byte_budget = (self.max_packet / 2).max(64 * 1024);
        let mut params: Vec<My> = Vec::new();
        let mut in_chunk = 0usize;
        let mut bytes = 0usize;
        for row in rows {
            let bound: Vec<My> = row
                .values
                .iter()
                .zip(types)
                .map(|(v, ty)| bind(v, ty.as_ref()))
                .collect();
            let size: usize = bound.iter().map(wire_size).sum();
            if in_chunk > 0 && (in_chunk == rows_per_statement || bytes + size > byte_budget) {
                self.insert_chunk(table, target, in_chunk, std::mem::take(&mut params))
                    .await?;
                in_chunk = 0;
                bytes = 0;
            }
            params.extend(bound);
            in_chunk += 1;
            bytes += size;
        }
        if in_chunk > 0 {
            self.insert_chunk(table, target, in_chunk, params).await?;
        }
        Ok(())
    }

    async fn insert_chunk(
        &mut self,
        table: &str,
        target: &WriteTarget,
        rows: usize,
        params: Vec<My>,
    ) -> Result<(), LoadError> {
        let sql = dialect::insert_values(table, &target.columns, rows);
        match self.conn.exec_drop(sql, Params::Positional(params)).await {
            Ok(()) => Ok(()),
            Err(mysql_async::Error::Server(s)) if s.code == 1062 => Err(LoadError::Taken),
            Err(e) => Err(LoadError::Failed(map_error(&e))),
        }
    }

    pub async fn delete(&mut self, target: &WriteTarget, keys: &[Value]) -> Result<u64> {
        let ty = target.table.column(&target.key).and_then(|c| c.ty.clone());
        let mut deleted = 0;
        for chunk in keys.chunks(KEYS_PER_DELETE) {
            let params: Vec<My> = chunk.iter().map(|k| bind(k, ty.as_ref())).collect();
            let sql = dialect::delete_by_keys(&target.table.name, &target.key, chunk.len());
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .map_err(|e| map_error(&e))?;
            deleted += self.conn.affected_rows();
        }
        Ok(deleted)
    }
}
