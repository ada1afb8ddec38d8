//! Talking to PostgreSQL: connecting (TLS, timeout), the connection test, describing tables, and the bulk
//! write paths (binary COPY straight into the target for new keys; otherwise into a session-private
//! staging table followed by one set-based upsert — see [`super`]).
//!
//! One [`Session`] — a connection plus what was prepared on it — is reused across calls. Everything
//! prepared is tied to the connection, so a broken connection simply drops the session and the next call
//! starts a new one. Errors are mapped to [`ErrorKind`]s from SQLSTATE codes (see [`dialect::error_kind`])
//! and keep the server's own message; connection strings and passwords never reach a message or a log.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures::SinkExt;
use rustls::{ClientConfig, RootCertStore};
use sluice_core::{Column, TableDescription, TableRules, Value};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{parse_pem_certificates, PostgresSettings, TlsMode};
use super::dialect::{self, NativeType, StagedColumn};
use super::encode::{Encoded, Encoder};
use super::plain_auth::Guarded;
use crate::{DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts, WriteTarget};

mod drift;
mod source;

/// COPY data is sent in chunks of about this size: large enough to keep the socket busy, small enough
/// to keep memory flat whatever the batch size.
const COPY_CHUNK_BYTES: usize = 256 * 1024;

const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// A live connection and the statements prepared on it.
pub struct Session {
    client: Client,
    server_version_num: i32,
    stages: HashMap<StageKey, Stage>,
    next_stage: u32,
    deletes: HashMap<(String, String), (Statement, Encoder)>,
}

/// What identifies a staging table: the target, the written columns in order, the key, and the column
/// types seen when the run described the table (a re-described, altered table gets a fresh stage).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StageKey {
    table: String,
    columns: Vec<String>,
    key: String,
    native_types: Vec<String>,
}

impl StageKey {
    fn of(target: &WriteTarget) -> Self {
        let native_types = target
            .columns
            .iter()
            .map(|c| {
                target
                    .table
                    .column(c)
                    .map(|col| col.native_type.clone())
                    .unwrap_or_default()
            })
            .collect();
        Self {
            table: target.table.name.clone(),
            columns: target.columns.clone(),
            key: target.key.clone(),
            native_types,
        }
    }
}

/// Everything prepared on the connection for writing one target with one set of columns.
struct Stage {
    /// The staging table (in `pg_temp`).
    name: String,
    /// `COPY` into the staging table, and the encoders of its columns.
    copy: Statement,
    encoders: Vec<Encoder>,
    /// The set-based upsert from the staging table.
    upsert: Statement,
    /// `COPY` straight into the target, and the encoders of the target's own column types.
    direct_copy: Statement,
    direct_encoders: Vec<Encoder>,
    /// Whether any of the keys in `$1` (an array) is already in the target.
    any_key_exists: Statement,
    key_array: Encoder,
    /// Whether the last batch through this stage held only new keys. Batches come in streaks (a first
    /// run is all inserts), so the next one is then copied straight in without asking first; if it does
    /// hold a taken key, the failed copy costs one retry through the staged path and ends the streak.
    new_streak: std::sync::atomic::AtomicBool,
}

impl crate::session::Connection for Session {
    /// The client's connection task notices as soon as the server ends the connection.
    fn is_closed(&mut self, _idle: std::time::Duration) -> bool {
        self.client.is_closed()
    }
}

/// Opens a connection within the configured timeout (TCP, TLS and authentication included).
pub async fn connect(settings: &PostgresSettings) -> Result<Session> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&settings.host)
        .port(settings.port)
        .user(&settings.username)
        .dbname(&settings.database)
        .application_name("sluice")
        .connect_timeout(settings.connect_timeout())
        .keepalives(true)
        .ssl_mode(match settings.tls.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::Verify => SslMode::Require,
        });
    if let Some(password) = &settings.password {
        config.password(password);
    }
    let tls = MakeRustlsConnect::new(tls_config(settings)?);
    let timeout = settings.connect_timeout();
    let where_ = format!("{}:{}", settings.host, settings.port);
    let refused = Arc::new(AtomicBool::new(false));
    let failed = |e: tokio_postgres::Error| {
        if refused.load(Ordering::SeqCst) {
            DestinationError::new(
                ErrorKind::Auth,
                format!(
                    "the server at {where_} refused TLS and asked for the password in cleartext or MD5; \
                     Sluice does not send a password unencrypted: enable TLS on the server, or set the TLS \
                     mode to disable if the network is trusted"
                ),
            )
        } else {
            connect_error(&e, &where_, settings)
        }
    };
    let opened = async {
        if settings.tls.mode != TlsMode::Prefer {
            let (client, connection) = config.connect(tls).await.map_err(failed)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                }
            });
            return Ok::<_, DestinationError>(client);
        }
        // `prefer` may end on plain TCP: the socket is opened here so that the guard watches it.
        let tcp = tokio::net::TcpStream::connect((settings.host.as_str(), settings.port))
            .await
            .map_err(|e| {
                DestinationError::new(
                    ErrorKind::Unavailable,
                    format!("could not connect to {where_}: {e}"),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp).set_keepalive(true);
        let stream = Guarded::new(tcp, true, refused.clone());
        let tls = <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
            Guarded<tokio::net::TcpStream>,
        >>::make_tls_connect(&mut tls.clone(), &settings.host)
        .map_err(|e| DestinationError::new(ErrorKind::Config, format!("TLS set-up failed: {e}")))?;
        let (client, connection) = config.connect_raw(stream, tls).await.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    };
    let client = match tokio::time::timeout(timeout, opened).await {
        Err(_) => {
            return Err(DestinationError::new(
                ErrorKind::Unavailable,
                format!(
                    "could not connect to {where_} within {} s",
                    timeout.as_secs()
                ),
            ))
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(client)) => client,
    };
    let version: String = client
        .query_one("SELECT current_setting('server_version_num')", &[])
        .await
        .map_err(|e| map_error(&e))?
        .get(0);
    // Staging tables live in temporary buffers; the 8 MB default spills large batches to disk. Only
    // settable before the session first touches a temporary table, hence here.
    client
        .batch_execute("SET temp_buffers = '64MB'")
        .await
        .map_err(|e| map_error(&e))?;
    // A source's query names its tables as a user of the connection would: unqualified names are
    // looked up in the connection's schema first (then `public`). Sluice's own statements qualify
    // every name, so this changes nothing for them.
    client
        .execute(
            "SELECT set_config('search_path', quote_ident($1) || ', public', false)",
            &[&settings.schema],
        )
        .await
        .map_err(|e| map_error(&e))?;
    tracing::debug!(host = %settings.host, port = settings.port, database = %settings.database, "connected to PostgreSQL");
    Ok(Session {
        client,
        server_version_num: version.parse().unwrap_or(0),
        stages: HashMap::new(),
        next_stage: 0,
        deletes: HashMap::new(),
    })
}

fn tls_config(settings: &PostgresSettings) -> Result<ClientConfig> {
    rustls_config(&settings.tls)
}

/// A rustls client configuration (ring provider) for `tls`: the chain and host name checked against
/// `ca_cert` (or the public web CAs) in the verify mode, nothing checked otherwise. Shared by the
/// destinations that speak TLS themselves.
pub(crate) fn rustls_config(tls: &super::config::TlsSettings) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            DestinationError::new(ErrorKind::Internal, format!("TLS setup failed: {e}"))
        })?;
    let config = match tls.mode {
        TlsMode::Verify => {
            let mut roots = RootCertStore::empty();
            match &tls.ca_cert {
                Some(pem) => {
                    for cert in parse_pem_certificates(pem)
                        .map_err(|e| DestinationError::new(ErrorKind::Config, e))?
                    {
                        roots.add(cert).map_err(|e| {
                            DestinationError::new(
                                ErrorKind::Config,
                                format!("the CA certificate is not usable: {e}"),
                            )
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(sluice_tls::EncryptOnly::new(provider))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// The error of a failed connection attempt, in plain words.
fn connect_error(
    e: &tokio_postgres::Error,
    where_: &str,
    settings: &PostgresSettings,
) -> DestinationError {
    if e.as_db_error().is_some() {
        let mut err = map_error(e);
        if err.kind == ErrorKind::NotFound {
            // 3D000: the database itself is missing.
            err.message = format!("{} (on {where_})", err.message);
        }
        return err;
    }
    let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        if cause.contains("does not support TLS") {
            return DestinationError::new(
                ErrorKind::Config,
                format!("the server at {where_} does not support TLS: set the TLS mode to disable or prefer"),
            );
        }
        return DestinationError::new(
            ErrorKind::Auth,
            format!("TLS handshake with {where_} failed: {cause}"),
        );
    }
    if text.starts_with("authentication error") {
        return DestinationError::new(
            ErrorKind::Auth,
            format!(
                "authentication as user \"{}\" failed: {cause}",
                settings.username
            ),
        );
    }
    let detail = if cause.is_empty() { text } else { cause };
    DestinationError::new(
        ErrorKind::Unavailable,
        format!("could not connect to {where_}: {detail}"),
    )
}

/// Maps a driver error to a destination error: the server's message and a kind from its SQLSTATE.
pub fn map_error(e: &tokio_postgres::Error) -> DestinationError {
    if let Some(db) = e.as_db_error() {
        return DestinationError::new(
            dialect::error_kind(db.code().code()),
            db.message().to_string(),
        );
    }
    if e.is_closed() {
        return DestinationError::new(
            ErrorKind::Unavailable,
            "the connection to the server was lost",
        );
    }
    let text = e.to_string();
    let message = match e.source() {
        Some(cause) => format!("{text}: {cause}"),
        None => text.clone(),
    };
    let kind = if text.starts_with("error communicating") || text.starts_with("error connecting") {
        ErrorKind::Unavailable
    } else if text.starts_with("timeout") {
        ErrorKind::Timeout
    } else if text.starts_with("error serializing") {
        ErrorKind::BadData
    } else {
        ErrorKind::Internal
    };
    DestinationError::new(kind, message)
}

impl Session {
    /// Connection test: server version, schema existence and privileges, temporary tables (staging).
    pub async fn test(&mut self, settings: &PostgresSettings) -> Result<TestReport> {
        let schema = &settings.schema;
        let user = &settings.username;
        let mut checks = vec![format!(
            "connected to {}:{} as user {user}, database {}",
            settings.host, settings.port, settings.database
        )];
        let version: String = self
            .client
            .query_one("SELECT current_setting('server_version')", &[])
            .await
            .map_err(|e| map_error(&e))?
            .get(0);
        // Distribution suffixes ("15.20 (Debian 15.20-0+deb12u1)") add nothing.
        let short = version
            .split_whitespace()
            .next()
            .unwrap_or(&version)
            .to_string();
        let row = self
            .client
            .query_opt(
                "SELECT n.oid, has_schema_privilege(n.oid, 'USAGE'), has_schema_privilege(n.oid, 'CREATE') \
                 FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
                &[schema],
            )
            .await
            .map_err(|e| map_error(&e))?;
        let Some(row) = row else {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!(
                    "schema \"{schema}\" does not exist in database \"{}\"",
                    settings.database
                ),
            ));
        };
        let (oid, usage, create): (u32, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if !usage {
            return Err(DestinationError::new(
                ErrorKind::Permission,
                format!("user \"{user}\" has no USAGE privilege on schema \"{schema}\""),
            ));
        }
        if create {
            checks.push(format!("can use and create tables in schema {schema}"));
        } else {
            let writable: i64 = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace = $1 \
                     AND c.relkind IN ('r', 'p') AND has_table_privilege(c.oid, 'INSERT') \
                     AND has_table_privilege(c.oid, 'UPDATE')",
                    &[&oid],
                )
                .await
                .map_err(|e| map_error(&e))?
                .get(0);
            if writable == 0 {
                return Err(DestinationError::new(
                    ErrorKind::Permission,
                    format!("user \"{user}\" can neither create tables in schema \"{schema}\" nor write to any table in it"),
                ));
            }
            checks.push(format!("can write {writable} table(s) in schema {schema}"));
        }
        // Upserts stage rows in a temporary table, which needs the TEMPORARY privilege on the database.
        let tx = self.client.transaction().await.map_err(|e| map_error(&e))?;
        tx.batch_execute(
            "CREATE TEMPORARY TABLE sluice_connection_test (id integer) ON COMMIT DROP",
        )
        .await
        .map_err(|e| {
            let mut err = map_error(&e);
            err.message = format!(
                "cannot create a temporary table (needed for staging rows): {}",
                err.message
            );
            err
        })?;
        tx.rollback().await.map_err(|e| map_error(&e))?;
        checks.push("can create temporary tables".to_string());
        Ok(TestReport {
            server_version: format!("PostgreSQL {short}"),
            checks,
        })
    }

    pub async fn describe_table(
        &mut self,
        schema: &str,
        name: &str,
    ) -> Result<Option<TableDescription>> {
        dialect::validate_identifier(name, "the table name")
            .map_err(|e| DestinationError::new(ErrorKind::Config, e))?;
        let mut found = self.find_table(schema, name).await?;
        // Unquoted names fold to lower case in PostgreSQL, so `Customers` typed in a form most likely
        // means the table created as `CREATE TABLE Customers`, i.e. `customers`.
        let lower = name.to_lowercase();
        if found.is_none() && lower != name {
            found = self.find_table(schema, &lower).await?;
        }
        let Some((oid, real_name)) = found else {
            return Ok(None);
        };

        let rows = self
            .client
            .query(&dialect::columns_query(self.server_version_num), &[&oid])
            .await
            .map_err(|e| map_error(&e))?;
        let mut columns = Vec::with_capacity(rows.len());
        let mut issues = Vec::new();
        for row in &rows {
            let name: String = row.get(0);
            let native_type: String = row.get(1);
            let not_null: bool = row.get(2);
            let has_default: bool = row.get(3);
            let generated: bool = row.get(4);
            let typname: String = row.get(5);
            let typtype: String = row.get(6);
            let typmod: i32 = row.get(7);
            let elem_name: Option<String> = row.get(8);
            let elem_typtype: Option<String> = row.get(9);
            let labels: Vec<String> = row.get(10);
            let native = NativeType {
                name: &typname,
                typtype: &typtype,
                typmod,
                element: elem_name.as_deref().zip(elem_typtype.as_deref()),
                labels: &labels,
            };
            let mut ty = dialect::column_type(&native);
            if generated {
                ty = None;
                issues.push(format!(
                    "column `{name}` is generated by the database and cannot be written"
                ));
            } else if ty.is_none() {
                issues.push(format!(
                    "column `{name}` has unsupported type `{native_type}`"
                ));
            }
            columns.push(Column {
                name,
                native_type,
                nullable: !not_null,
                ty,
                has_default: has_default || generated,
            });
        }

        let key_rows = self
            .client
            .query(dialect::KEYS_QUERY, &[&oid])
            .await
            .map_err(|e| map_error(&e))?;
        let mut keys: Vec<Vec<String>> = Vec::new();
        let mut has_primary_key = false;
        for row in &key_rows {
            let primary: bool = row.get(0);
            let cols: Vec<String> = row.get(1);
            if cols.is_empty() || keys.contains(&cols) {
                continue;
            }
            has_primary_key |= primary && keys.is_empty();
            keys.push(cols);
        }
        if keys.is_empty() {
            issues.push(
                "the table has no primary key or unique constraint: add one on the column that identifies a row"
                    .to_string(),
            );
        }
        Ok(Some(TableDescription {
            name: real_name,
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

    /// The tables of `schema`; a schema that does not exist is `NotFound`, not an empty list.
    pub async fn list_tables(&mut self, schema: &str) -> Result<Vec<String>> {
        let exists = self
            .client
            .query_opt(dialect::SCHEMA_EXISTS, &[&schema])
            .await
            .map_err(|e| map_error(&e))?;
        if exists.is_none() {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!("schema `{schema}` does not exist"),
            ));
        }
        let rows = self
            .client
            .query(dialect::LIST_TABLES, &[&schema])
            .await
            .map_err(|e| map_error(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn find_table(&self, schema: &str, name: &str) -> Result<Option<(u32, String)>> {
        let row = self
            .client
            .query_opt(dialect::FIND_TABLE, &[&schema, &name])
            .await
            .map_err(|e| map_error(&e))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    /// Stages `rows` with binary COPY and upserts them with one statement, in one transaction.
    /// Writes one batch atomically; see [`super`] for the two paths.
    pub async fn upsert(
        &mut self,
        schema: &str,
        target: &WriteTarget,
        rows: &[Row],
    ) -> Result<UpsertCounts> {
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
        let key = self.stage_for(schema, target).await?;
        let stage = &self.stages[&key];
        let result = write_batch(&mut self.client, stage, target, rows).await;
        if let Err(e) = &result {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::NotFound) {
                // The table changed under us: let the next call stage against its new shape.
                let stale = self.stages.remove(&key).expect("stage present");
                let _ = self
                    .client
                    .batch_execute(&format!(
                        "DROP TABLE IF EXISTS pg_temp.{}",
                        dialect::quote(&stale.name)
                    ))
                    .await;
            }
        }
        result
    }

    /// Creates the staging table and statements for `target` unless this session has them.
    pub async fn prepare_write(&mut self, schema: &str, target: &WriteTarget) -> Result<()> {
        self.stage_for(schema, target).await.map(|_| ())
    }

    async fn stage_for(&mut self, schema: &str, target: &WriteTarget) -> Result<StageKey> {
        let key = StageKey::of(target);
        if !self.stages.contains_key(&key) {
            let stage = self.create_stage(schema, target).await?;
            self.stages.insert(key.clone(), stage);
        }
        Ok(key)
    }

    async fn create_stage(&mut self, schema: &str, target: &WriteTarget) -> Result<Stage> {
        let table = &target.table.name;
        // The table as it is now, not as the run described it: a batch of new keys is copied straight in,
        // and without a unique constraint on the key that would quietly duplicate rows.
        let Some(current) = self.describe_table(schema, table).await? else {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!("table \"{table}\" does not exist in schema \"{schema}\""),
            ));
        };
        if let Some(missing) = target.columns.iter().find(|c| current.column(c).is_none()) {
            return Err(DestinationError::new(
                ErrorKind::SchemaMismatch,
                format!("column \"{missing}\" of table \"{table}\" does not exist"),
            ));
        }
        if !current.is_unique_key(&target.key) {
            return Err(DestinationError::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "column \"{}\" of table \"{table}\" is not a primary key and has no unique constraint, \
                     so it cannot identify rows: add one, or choose another key column",
                    target.key
                ),
            ));
        }
        self.next_stage += 1;
        let name = format!("sluice_stage_{}", self.next_stage);
        // The target's column types as the server resolves them (enum labels, domains, arrays).
        let probe = self
            .client
            .prepare(&dialect::probe_columns(schema, table, &target.columns))
            .await
            .map_err(|e| map_error(&e))?;
        let types: Vec<Type> = probe.columns().iter().map(|c| c.type_().clone()).collect();
        let staged: Vec<StagedColumn<'_>> = target
            .columns
            .iter()
            .zip(&types)
            .map(|(column, ty)| StagedColumn {
                name: column,
                user_type: user_type(ty),
            })
            .collect();
        let encoders = staged
            .iter()
            .zip(&types)
            .map(|(c, ty)| match c.user_type {
                Some((_, _, false)) => Encoder::Text,
                Some((_, _, true)) => Encoder::Array {
                    element: Box::new(Encoder::Text),
                    element_oid: Type::TEXT.oid(),
                },
                None => Encoder::for_type(ty),
            })
            .collect();
        self.client
            .batch_execute(&dialect::create_stage(&name, schema, table, &staged))
            .await
            .map_err(|e| map_error(&e))?;
        let copy = self
            .client
            .prepare(&dialect::copy_into_stage(&name, &target.columns))
            .await
            .map_err(|e| map_error(&e))?;
        let upsert = self
            .client
            .prepare(&dialect::upsert_from_stage(
                schema,
                table,
                &name,
                &staged,
                &target.key,
            ))
            .await
            .map_err(|e| map_error(&e))?;
        let direct_copy = self
            .client
            .prepare(&dialect::copy_into_target(schema, table, &target.columns))
            .await
            .map_err(|e| map_error(&e))?;
        let direct_encoders = types.iter().map(Encoder::for_type).collect();
        let any_key_exists = self
            .client
            .prepare(&dialect::any_key_exists(schema, table, &target.key))
            .await
            .map_err(|e| map_error(&e))?;
        let key_array = Encoder::for_type(&any_key_exists.params()[0]);
        tracing::debug!(table = %table, stage = %name, "prepared the write statements");
        Ok(Stage {
            name,
            copy,
            encoders,
            upsert,
            direct_copy,
            direct_encoders,
            any_key_exists,
            key_array,
            new_streak: false.into(),
        })
    }

    pub async fn delete(
        &mut self,
        schema: &str,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<u64> {
        let cache_key = (target.table.name.clone(), target.key.clone());
        if !self.deletes.contains_key(&cache_key) {
            let statement = self
                .client
                .prepare(&dialect::delete_by_keys(
                    schema,
                    &target.table.name,
                    &target.key,
                ))
                .await
                .map_err(|e| map_error(&e))?;
            let encoder = Encoder::for_type(&statement.params()[0]);
            self.deletes.insert(cache_key.clone(), (statement, encoder));
        }
        let (statement, encoder) = &self.deletes[&cache_key];
        let array = Value::Array(keys.to_vec());
        let result = self
            .client
            .execute(
                statement,
                &[&Encoded {
                    encoder,
                    value: &array,
                }],
            )
            .await;
        result.map_err(|e| {
            self.deletes.remove(&cache_key);
            let err = map_error(&e);
            match e.source().filter(|_| err.kind == ErrorKind::BadData) {
                Some(cause) => DestinationError::new(
                    ErrorKind::BadData,
                    format!("key `{}`: {cause}", target.key),
                ),
                None => err,
            }
        })
    }
}

/// `(schema, name, is_array)` of a type that is not built in (or an array of one).
fn user_type(ty: &Type) -> Option<(&str, &str, bool)> {
    let (element, array) = match ty.kind() {
        Kind::Array(member) => (member, true),
        _ => (ty, false),
    };
    (element.schema() != "pg_catalog").then(|| (ty.schema(), ty.name(), array))
}

/// Why a write failed: the server said no, or a value could not be encoded (already a bad-data error).
enum WriteError {
    Db(tokio_postgres::Error),
    Encode(DestinationError),
}

impl WriteError {
    fn into_destination_error(self) -> DestinationError {
        match self {
            WriteError::Db(e) => map_error(&e),
            WriteError::Encode(e) => e,
        }
    }
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        WriteError::Db(e)
    }
}

async fn write_batch(
    client: &mut Client,
    stage: &Stage,
    target: &WriteTarget,
    rows: &[Row],
) -> Result<UpsertCounts> {
    use std::sync::atomic::Ordering::Relaxed;
    if stage.new_streak.load(Relaxed) {
        match write_direct(client, stage, target, rows).await {
            Ok(counts) => return Ok(counts),
            Err(WriteError::Db(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                stage.new_streak.store(false, Relaxed);
            }
            Err(e) => return Err(e.into_destination_error()),
        }
    }
    let keys = KeyArray {
        rows,
        index: target.key_index(),
        encoder: &stage.key_array,
    };
    let any_exists: bool = match client.query_one(&stage.any_key_exists, &[&keys]).await {
        Ok(row) => row.get(0),
        Err(e) => {
            let err = map_error(&e);
            // A key that cannot be encoded is the row's fault: say which column.
            return Err(
                match e.source().filter(|_| err.kind == ErrorKind::BadData) {
                    Some(cause) => DestinationError::new(
                        ErrorKind::BadData,
                        format!("column `{}`: {cause}", target.key),
                    ),
                    None => err,
                },
            );
        }
    };
    if !any_exists {
        match write_direct(client, stage, target, rows).await {
            Ok(counts) => {
                stage.new_streak.store(true, Relaxed);
                return Ok(counts);
            }
            // Another writer inserted one of these keys since the check, or the batch breaks another
            // unique constraint: the staged upsert settles which (and reports a real violation).
            Err(WriteError::Db(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            Err(e) => return Err(e.into_destination_error()),
        }
    }
    write_staged(client, stage, target, rows)
        .await
        .map_err(WriteError::into_destination_error)
}

/// Only new keys: COPY straight into the target — as fast as a plain load.
async fn write_direct(
    client: &mut Client,
    stage: &Stage,
    target: &WriteTarget,
    rows: &[Row],
) -> Result<UpsertCounts, WriteError> {
    let tx = client.transaction().await?;
    if let Err(e) = copy_rows(
        &tx,
        &stage.direct_copy,
        &stage.direct_encoders,
        target,
        rows,
    )
    .await
    {
        // The aborted COPY already failed the transaction; the rollback only makes it explicit.
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await?;
    Ok(UpsertCounts {
        inserted: rows.len() as u64,
        updated: 0,
    })
}

/// Some keys exist: stage the rows, then one set-based upsert.
async fn write_staged(
    client: &mut Client,
    stage: &Stage,
    target: &WriteTarget,
    rows: &[Row],
) -> Result<UpsertCounts, WriteError> {
    let tx = client.transaction().await?;
    if let Err(e) = copy_rows(&tx, &stage.copy, &stage.encoders, target, rows).await {
        let _ = tx.rollback().await;
        return Err(e);
    }
    let row = match tx.query_one(&stage.upsert, &[]).await {
        Ok(row) => row,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e.into());
        }
    };
    let (inserted, total): (i64, i64) = (row.get(0), row.get(1));
    tx.commit().await?;
    Ok(UpsertCounts {
        inserted: inserted as u64,
        updated: (total - inserted) as u64,
    })
}

/// Streams the rows with `copy` in PostgreSQL's binary COPY format, each value through its column's
/// encoder. A value that cannot be encoded aborts the COPY (dropping the sink sends CopyFail) and fails
/// the batch as bad data naming the column.
async fn copy_rows(
    tx: &tokio_postgres::Transaction<'_>,
    copy: &Statement,
    encoders: &[Encoder],
    target: &WriteTarget,
    rows: &[Row],
) -> Result<(), WriteError> {
    let sink = tx.copy_in::<_, Bytes>(copy).await?;
    futures::pin_mut!(sink);
    let mut buf = BytesMut::with_capacity(COPY_CHUNK_BYTES + COPY_CHUNK_BYTES / 4);
    buf.put_slice(COPY_HEADER);
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for row in rows {
        buf.put_i16(encoders.len() as i16);
        for ((encoder, value), column) in encoders.iter().zip(&row.values).zip(&target.columns) {
            encoder.write_field(value, &mut buf).map_err(|e| {
                WriteError::Encode(DestinationError::new(
                    ErrorKind::BadData,
                    format!("column `{column}`: {e}"),
                ))
            })?;
        }
        if buf.len() >= COPY_CHUNK_BYTES {
            sink.send(buf.split().freeze()).await?;
        }
    }
    buf.put_i16(-1); // trailer
    sink.send(buf.split().freeze()).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// The key column of a batch, bound as one array parameter without copying the values.
#[derive(Debug)]
struct KeyArray<'a> {
    rows: &'a [Row],
    index: usize,
    encoder: &'a Encoder,
}

impl ToSql for KeyArray<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let Encoder::Array {
            element,
            element_oid,
        } = self.encoder
        else {
            return Err(format!("the key parameter is not an array ({:?})", self.encoder).into());
        };
        let keys = self.rows.iter().map(|r| &r.values[self.index]);
        element.write_array(keys, self.rows.len(), *element_oid, out)?;
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}
