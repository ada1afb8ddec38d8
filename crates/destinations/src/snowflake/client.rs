//! Talking to Snowflake over its connector protocol (JSON over HTTPS): logging in with a password or a
//! key-pair JWT, running statements with bound values, retrying throttled and failed HTTP requests,
//! renewing the session token when it expires (or logging in again when the session is gone), polling
//! statements that are still running (and aborting them past the statement timeout), and fetching the
//! result chunks of large answers. On top of that: the connection test, table description and the
//! staged MERGE of a batch (see [`super`]).
//!
//! Every statement sent is counted ([`super::statements_sent`]): on Snowflake, statements are what costs.
//! Errors keep Snowflake's message and get a kind from its code ([`dialect::error_kind`]); passwords, keys
//! and tokens never reach a message or a log.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sluice_core::{Column, ColumnType, TableDescription, TableRules, Value};

use super::auth;
use super::config::{Credentials, SnowflakeSettings};
use super::dialect::{self, Binding};
use crate::{DestinationError, ErrorKind, Result, Row, TestReport, UpsertCounts, WriteTarget};

mod drift;
mod source;
mod upload;

/// Duplicate keys named when a table already holds some.
const DUPLICATE_SAMPLES: usize = 5;

/// Keys per `DELETE … IN (…)`.
const KEYS_PER_DELETE: usize = 10_000;

/// The bound values of one `INSERT` stay under this many bytes of request body (Snowflake's statement
/// text limit is 1 MB; binds travel apart from it but large requests are slow to parse).
const BIND_BYTES_PER_STATEMENT: usize = 8 << 20;

/// At most this many bound values per statement: the official drivers' default
/// `CLIENT_STAGE_ARRAY_BINDING_THRESHOLD`, above which they move binds to a stage file instead; requests
/// with more binds than that are not what Snowflake's front end is used to.
const BINDS_PER_STATEMENT: usize = 65_280;

/// Batches of at least this many rows (or more binds than [`BINDS_PER_STATEMENT`]) load through a stage
/// file where the server allows it; smaller ones with inserts (a PUT and a COPY cost more than one INSERT).
const FILE_LOAD_MIN_ROWS: usize = 2_000;

/// How long one HTTP request may take before the statement is polled or given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a statement may run: sent to Snowflake as the session's `STATEMENT_TIMEOUT_IN_SECONDS` (so the
/// server cancels it), and the client stops polling a little later and aborts it itself.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(3600);

/// How much longer than the statement timeout the client polls before aborting the statement itself.
const POLL_GRACE: Duration = Duration::from_secs(30);

/// Attempts of one HTTP request that meets a 408/429/5xx answer or a transport failure, with exponential
/// backoff between them (0.25 s, 0.5 s, … about 16 s in all), before the error is given up on.
const HTTP_ATTEMPTS: u32 = 7;

/// The longest a `Retry-After` header is honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The HTTP side: one client (connection pool, TLS with ring) and the settings.
pub struct Connection {
    http: reqwest::Client,
    settings: SnowflakeSettings,
    base: String,
    statements: Arc<AtomicU64>,
    sequence: AtomicU64,
    /// Whether large batches may load through a stage file (PUT + COPY) where the server allows it.
    pub load_from_file: bool,
    statement_timeout: Duration,
    retry_base: Duration,
}

/// A logged-in session and the staging tables created in it.
pub struct Session {
    token: String,
    master_token: Option<String>,
    pub server_version: String,
    stages: HashMap<StageKey, Stage>,
    next_stage: u32,
    /// Set once the server turned out not to offer an upload Sluice can use: batches load with inserts.
    no_file_stage: bool,
}

impl crate::session::Connection for Session {
    /// A session is a token over HTTP, with nothing to close: an expired one is renewed by the next
    /// request, and one the server has forgotten answers with an error that drops it (unavailable).
    fn is_closed(&mut self, _idle: std::time::Duration) -> bool {
        false
    }
}

struct Stage {
    name: String,
    /// Whether rows of an earlier batch may still be in it.
    dirty: bool,
    /// The run whose first batch checked the target for duplicate keys (see [`Session::check_duplicates`]).
    checked_run: Option<u64>,
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
            native_types: natives(target),
        }
    }
}

fn natives(target: &WriteTarget) -> Vec<String> {
    target
        .columns
        .iter()
        .map(|c| {
            target
                .table
                .column(c)
                .map(|col| col.native_type.clone())
                .unwrap_or_default()
        })
        .collect()
}

/// The answer to a statement: column names and rows of text (`None` for NULL).
#[derive(Debug, Default)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The answer's description of each column (`name`, `type`, `precision`, `scale`, `length`,
    /// `nullable`), as Snowflake sends it.
    pub rowtype: Vec<Json>,
}

impl QueryResult {
    /// The index of the column named `name` (case-insensitive).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }
    /// The number in the first row under column `name` (DML answers: `number of rows inserted`, …).
    pub fn count(&self, name: &str) -> u64 {
        self.index(name)
            .and_then(|i| self.rows.first().and_then(|r| r[i].as_deref()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

fn http_client() -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| DestinationError::new(ErrorKind::Internal, format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(Duration::from_secs(15))
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("Sluice/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            DestinationError::new(
                ErrorKind::Internal,
                format!("HTTP client setup failed: {e}"),
            )
        })
}

fn transport_error(e: &reqwest::Error, what: &str) -> DestinationError {
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    // reqwest's message names the URL (host only, never credentials: they travel in bodies and headers).
    DestinationError::new(kind, format!("{what} failed: {e}"))
}

/// A failed answer: Snowflake's code and message, with a kind.
fn answer_error(doc: &Json) -> (String, DestinationError) {
    let code = doc["code"]
        .as_str()
        .map(str::to_string)
        .or_else(|| doc["data"]["errorCode"].as_str().map(str::to_string))
        .unwrap_or_default();
    let message = doc["message"]
        .as_str()
        .unwrap_or("Snowflake refused the request")
        .to_string();
    let mut kind = dialect::error_kind(&code);
    // A column that is gone: Snowflake says `invalid identifier` (000904); some servers answer with a
    // generic "does not exist" code naming the column.
    let lower = message.to_ascii_lowercase();
    if kind == ErrorKind::NotFound && lower.contains("column") {
        kind = ErrorKind::SchemaMismatch;
    }
    let message = if code.is_empty() {
        message
    } else {
        format!("{message} (Snowflake error {code})")
    };
    (code, DestinationError::new(kind, message))
}

/// Whether a batch of `rows` rows of `columns` values loads through a stage file (where the server allows
/// it): from 2,000 rows, or when its binds would pass the drivers' threshold (they stage such binds too).
fn through_stage(rows: usize, columns: usize) -> bool {
    rows >= FILE_LOAD_MIN_ROWS || rows * columns > BINDS_PER_STATEMENT
}

/// HTTP statuses after which a request is sent again: Snowflake's front end answers 429 when it throttles
/// and 5xx when a node is busy or restarting. A statement is sent again with the same requestId, which
/// Snowflake uses to run it once.
fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502..=599)
}

/// The wait before attempt `attempt + 1`: `base` doubled per attempt, with up to a quarter of it added at
/// random so that clients throttled together do not come back together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let wait = base.saturating_mul(1 << attempt.min(10));
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1024) as u32;
    wait + wait / 4 * jitter / 1024
}

/// The wait a `Retry-After` header asks for (seconds; an HTTP date is not worth parsing here).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// The body of the login request (without credentials): the session parameters Sluice relies on.
fn login_data(s: &SnowflakeSettings, statement_timeout: Duration) -> Json {
    json!({
        "CLIENT_APP_ID": "Sluice",
        "CLIENT_APP_VERSION": env!("CARGO_PKG_VERSION"),
        "ACCOUNT_NAME": s.jwt_account(),
        "LOGIN_NAME": s.username,
        "SESSION_PARAMETERS": {
            // UTC, so TIMESTAMP_LTZ values and CURRENT_TIMESTAMP mean the same wherever Sluice runs.
            "TIMEZONE": "UTC",
            "CLIENT_SESSION_KEEP_ALIVE": false,
            // The server cancels a statement running longer (the account default is two days).
            "STATEMENT_TIMEOUT_IN_SECONDS": statement_timeout.as_secs().max(1),
        },
        "CLIENT_ENVIRONMENT": {"APPLICATION": "Sluice", "OS": std::env::consts::OS},
    })
}

fn bindings_json(bindings: &[Binding]) -> Json {
    let mut map = serde_json::Map::with_capacity(bindings.len());
    for (i, b) in bindings.iter().enumerate() {
        map.insert((i + 1).to_string(), json!({"type": b.ty, "value": b.value}));
    }
    Json::Object(map)
}

fn rows_of(rowset: &Json) -> Vec<Vec<Option<String>>> {
    rowset
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|cells| {
                            cells
                                .iter()
                                .map(|c| match c {
                                    Json::Null => None,
                                    Json::String(s) => Some(s.clone()),
                                    other => Some(other.to_string()),
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A result chunk's body: JSON rows separated by commas, without the enclosing brackets; gzip-compressed
/// when the storage did not say so in its headers.
pub fn parse_chunk(body: &[u8]) -> Result<Vec<Vec<Option<String>>>> {
    let text = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .map_err(|e| {
                DestinationError::new(
                    ErrorKind::Internal,
                    format!("a result chunk is corrupt: {e}"),
                )
            })?;
        out
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let doc: Json = serde_json::from_str(&format!("[{text}]")).map_err(|e| {
        DestinationError::new(
            ErrorKind::Internal,
            format!("a result chunk is not JSON: {e}"),
        )
    })?;
    Ok(rows_of(&doc))
}

impl Connection {
    pub fn new(settings: SnowflakeSettings, statements: Arc<AtomicU64>) -> Result<Self> {
        Ok(Self {
            http: http_client()?,
            base: settings.url(),
            settings,
            statements,
            sequence: AtomicU64::new(1),
            load_from_file: true,
            statement_timeout: STATEMENT_TIMEOUT,
            retry_base: Duration::from_millis(250),
        })
    }

    /// A statement timeout other than the default hour (tests use seconds).
    #[doc(hidden)]
    pub fn with_statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// Sends a request built by `make` (given the attempt number, from 0), again after a 408/429/5xx answer
    /// — and, with `transport`, after a failure that got no answer at all — with backoff; answers the JSON
    /// of the last answer.
    async fn send_retrying(
        &self,
        what: &str,
        transport: bool,
        make: impl Fn(u32) -> reqwest::RequestBuilder,
    ) -> Result<Json> {
        let mut attempt = 0;
        loop {
            let last = attempt + 1 >= HTTP_ATTEMPTS;
            match make(attempt).send().await {
                Ok(response) if !last && is_retryable_status(response.status().as_u16()) => {
                    let status = response.status();
                    let wait = retry_after(response.headers())
                        .unwrap_or_else(|| backoff(self.retry_base, attempt));
                    tracing::info!(%status, attempt, ?wait, "{what}: Snowflake is busy; trying again");
                    tokio::time::sleep(wait).await;
                }
                Ok(response) => return self.answer(response).await,
                Err(e)
                    if transport
                        && !last
                        && (e.is_connect() || e.is_timeout() || e.is_request()) =>
                {
                    let wait = backoff(self.retry_base, attempt);
                    tracing::info!(error = %e, attempt, ?wait, "{what} failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(transport_error(&e, what)),
            }
            attempt += 1;
        }
    }

    /// Ends the session on the server, so that a transaction it left open is rolled back and its locks
    /// released now rather than when Snowflake notices the session is idle. Best effort: the session is
    /// being dropped either way.
    pub async fn logout(&self, session: &Session) {
        match self
            .post_once(session, "/session?delete=true", &json!({}))
            .await
        {
            Ok(()) => tracing::debug!("logged out of the dropped Snowflake session"),
            Err(e) => {
                tracing::debug!(error = %e, "logging out of a dropped Snowflake session failed")
            }
        }
    }

    /// A `POST` whose answer does not matter (ending a session, aborting a statement): sent once, with a
    /// request id of its own; all it answers is whether it was delivered.
    async fn post_once(
        &self,
        session: &Session,
        path: &str,
        body: &Json,
    ) -> std::result::Result<(), reqwest::Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}{path}{sep}requestId={}", self.base, uuid::Uuid::new_v4());
        self.http
            .post(url)
            .header(
                "Authorization",
                format!("Snowflake Token=\"{}\"", session.token),
            )
            .header("Accept", "application/json")
            .json(body)
            .send()
            .await
            .map(|_| ())
    }

    pub fn settings(&self) -> &SnowflakeSettings {
        &self.settings
    }

    /// Logs in. With `use_context`, the session starts in the configured role, warehouse, database and
    /// schema (no statement needed); the connection test logs in without them and checks each one.
    pub async fn login(&self, use_context: bool) -> Result<Session> {
        let s = &self.settings;
        let mut url = reqwest::Url::parse(&format!("{}/session/v1/login-request", self.base))
            .map_err(|e| {
                DestinationError::new(ErrorKind::Config, format!("bad Snowflake URL: {e}"))
            })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("request_id", &uuid::Uuid::new_v4().to_string());
            if use_context {
                let plain = |n: &str| {
                    if dialect::is_plain(n) {
                        n.to_ascii_uppercase()
                    } else {
                        dialect::quote(n)
                    }
                };
                q.append_pair("databaseName", &plain(&s.database));
                q.append_pair("schemaName", &plain(&s.schema));
                q.append_pair("warehouse", &plain(&s.warehouse));
                if let Some(r) = &s.role {
                    q.append_pair("roleName", &plain(r));
                }
            }
        }
        let mut data = login_data(s, self.statement_timeout);
        match &s.credentials {
            Credentials::Password(p) => data["PASSWORD"] = json!(p),
            Credentials::KeyPair {
                private_key_pem,
                passphrase,
            } => {
                let key = auth::private_key_der(private_key_pem, passphrase.as_deref())
                    .map_err(|e| DestinationError::new(ErrorKind::Config, e))?;
                let now = chrono::Utc::now().timestamp();
                let token = auth::jwt(&s.jwt_account(), &s.username, &key, now)
                    .map_err(|e| DestinationError::new(ErrorKind::Auth, e))?;
                data["AUTHENTICATOR"] = json!("SNOWFLAKE_JWT");
                data["TOKEN"] = json!(token);
            }
        }
        let body = json!({ "data": data });
        let doc = self
            // A server that cannot be reached at login is more likely a wrong account name than a blip:
            // the connection test says so at once rather than after every retry.
            .send_retrying(
                &format!("logging in to Snowflake at {}", self.base),
                false,
                |_| {
                    self.http
                        .post(url.clone())
                        .header("Accept", "application/json")
                        .json(&body)
                },
            )
            .await?;
        if doc["success"].as_bool() != Some(true) {
            let (_, mut err) = answer_error(&doc);
            if err.kind == ErrorKind::Internal {
                err.kind = ErrorKind::Auth;
            }
            err.message = format!(
                "logging in as user \"{}\" failed: {}",
                s.username, err.message
            );
            return Err(err);
        }
        let d = &doc["data"];
        let token = d["token"].as_str().unwrap_or_default().to_string();
        if token.is_empty() {
            return Err(DestinationError::new(
                ErrorKind::Internal,
                "Snowflake's login answer has no session token",
            ));
        }
        tracing::debug!(account = %s.account, user = %s.username, "logged in to Snowflake");
        Ok(Session {
            token,
            master_token: d["masterToken"].as_str().map(str::to_string),
            server_version: d["serverVersion"].as_str().unwrap_or("").to_string(),
            stages: HashMap::new(),
            next_stage: 0,
            no_file_stage: false,
        })
    }

    /// The JSON of an answer, or an error for HTTP failures that carry no Snowflake answer.
    async fn answer(&self, response: reqwest::Response) -> Result<Json> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(&e, "reading Snowflake's answer"))?;
        match serde_json::from_slice::<Json>(&body) {
            Ok(doc) if doc.get("success").is_some() => Ok(doc),
            _ => {
                let kind = match status.as_u16() {
                    401 | 403 => ErrorKind::Auth,
                    404 => ErrorKind::Config,
                    408 | 504 => ErrorKind::Timeout,
                    429 | 500..=599 => ErrorKind::Unavailable,
                    _ => ErrorKind::Internal,
                };
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(300).collect();
                Err(DestinationError::new(
                    kind,
                    format!("Snowflake answered HTTP {status}: {text}"),
                ))
            }
        }
    }

    /// Renews the session token with the master token; `false` when that is not possible.
    async fn renew(&self, session: &mut Session) -> bool {
        let Some(master) = session.master_token.clone() else {
            return false;
        };
        let url = format!(
            "{}/session/token-request?requestId={}",
            self.base,
            uuid::Uuid::new_v4()
        );
        let Ok(response) = self
            .http
            .post(url)
            .header("Authorization", format!("Snowflake Token=\"{master}\""))
            .header("Accept", "application/json")
            .json(&json!({"oldSessionToken": session.token, "requestType": "RENEW"}))
            .send()
            .await
        else {
            return false;
        };
        match self.answer(response).await {
            Ok(doc) if doc["success"].as_bool() == Some(true) => {
                match doc["data"]["sessionToken"].as_str() {
                    Some(t) => {
                        session.token = t.to_string();
                        if let Some(m) = doc["data"]["masterToken"].as_str() {
                            session.master_token = Some(m.to_string());
                        }
                        tracing::debug!("renewed the Snowflake session token");
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// Sends a statement; answers its requestId (which identifies it for an abort) and the answer. A
    /// request that meets a 429/5xx is sent again with the same requestId, so Snowflake runs it once.
    async fn post_query(
        &self,
        session: &Session,
        sql: &str,
        bindings: &[Binding],
    ) -> Result<(String, Json)> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut body = json!({
            "sqlText": sql,
            "asyncExec": false,
            "sequenceId": self.sequence.fetch_add(1, Ordering::Relaxed),
            "querySubmissionTime": chrono::Utc::now().timestamp_millis(),
        });
        if !bindings.is_empty() {
            body["bindings"] = bindings_json(bindings);
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        super::count_statement(&self.settings.database, sql);
        let doc = self
            .send_retrying("sending a statement to Snowflake", true, |attempt| {
                let mut url = format!(
                    "{}/queries/v1/query-request?requestId={request_id}",
                    self.base
                );
                if attempt > 0 {
                    url.push_str(&format!("&retryCount={attempt}"));
                }
                self.http
                    .post(url)
                    .header(
                        "Authorization",
                        format!("Snowflake Token=\"{}\"", session.token),
                    )
                    .header("Accept", "application/json")
                    .json(&body)
            })
            .await?;
        Ok((request_id, doc))
    }

    /// Asks Snowflake to abort the statement sent with `request_id` (best effort: it is given up on
    /// either way).
    async fn abort(&self, session: &Session, sql: &str, request_id: &str) {
        let body = json!({"sqlText": sql, "requestId": request_id});
        if let Err(e) = self
            .post_once(session, "/queries/v1/abort-request", &body)
            .await
        {
            tracing::warn!(error = %e, "aborting a Snowflake statement past its timeout failed");
        }
    }

    /// Polls a statement that is still running until it finishes. An expired session token met while
    /// polling is renewed and polling goes on: the statement is never sent again (it is running, or has
    /// run). Past the statement timeout the statement is aborted.
    async fn poll(
        &self,
        session: &mut Session,
        sql: &str,
        request_id: &str,
        mut doc: Json,
    ) -> Result<Json> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(250);
        let limit = self.statement_timeout + POLL_GRACE.min(self.statement_timeout);
        let mut path = None;
        loop {
            let code = doc["code"].as_str().unwrap_or("").to_string();
            if doc["success"].as_bool() == Some(true) {
                return Ok(doc);
            }
            if dialect::is_in_progress(&code) {
                path = doc["data"]["getResultUrl"].as_str().map(str::to_string);
            } else if path.is_some() && dialect::is_session_expired(&code) {
                // Met while polling: renew and poll the same statement again.
                if !self.renew(session).await {
                    return Err(DestinationError::new(
                        ErrorKind::Unavailable,
                        "the Snowflake session expired while a statement was running and could not be \
                         renewed; the statement may have run: retry the batch",
                    ));
                }
            } else {
                return Ok(doc);
            }
            let Some(url) = path.clone() else {
                return Err(DestinationError::new(
                    ErrorKind::Internal,
                    "Snowflake says the statement is running but gives no result URL",
                ));
            };
            if started.elapsed() > limit {
                self.abort(session, sql, request_id).await;
                return Err(DestinationError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the statement was still running after {} s (the statement timeout): aborted it",
                        limit.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(
                wait.min(limit.saturating_sub(started.elapsed()) + Duration::from_millis(10)),
            )
            .await;
            wait = (wait * 2).min(Duration::from_secs(5));
            let token = session.token.clone();
            doc = self
                .send_retrying("polling a running Snowflake statement", true, |_| {
                    self.http
                        .get(format!("{}{url}", self.base))
                        .header("Authorization", format!("Snowflake Token=\"{token}\""))
                        .header("Accept", "application/json")
                })
                .await?;
        }
    }

    /// The rows of a successful answer, fetching its result chunks when there are any.
    async fn result(&self, data: &Json) -> Result<QueryResult> {
        // Snowflake answers JSON rowsets to clients that do not ask for Arrow, which Sluice never does.
        if data["queryResultFormat"].as_str() == Some("arrow")
            && data["rowsetBase64"].as_str().is_some_and(|r| !r.is_empty())
        {
            return Err(DestinationError::new(
                ErrorKind::Internal,
                "Snowflake answered in the Arrow format, which Sluice does not read",
            ));
        }
        let rowtype: Vec<Json> = data["rowtype"].as_array().cloned().unwrap_or_default();
        let columns = rowtype
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect();
        let mut rows = rows_of(&data["rowset"]);
        if let Some(chunks) = data["chunks"].as_array() {
            let mut headers = reqwest::header::HeaderMap::new();
            if let Some(h) = data["chunkHeaders"].as_object() {
                for (k, v) in h {
                    if let (Ok(name), Some(Ok(value))) = (
                        reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                        v.as_str().map(reqwest::header::HeaderValue::from_str),
                    ) {
                        headers.insert(name, value);
                    }
                }
            } else if let Some(qrmk) = data["qrmk"].as_str() {
                // Chunks on S3 are encrypted with this key.
                headers.insert(
                    "x-amz-server-side-encryption-customer-algorithm",
                    reqwest::header::HeaderValue::from_static("AES256"),
                );
                if let Ok(v) = reqwest::header::HeaderValue::from_str(qrmk) {
                    headers.insert("x-amz-server-side-encryption-customer-key", v);
                }
            }
            for chunk in chunks {
                let Some(url) = chunk["url"].as_str() else {
                    continue;
                };
                let response = self
                    .http
                    .get(url)
                    .headers(headers.clone())
                    .send()
                    .await
                    .map_err(|e| transport_error(&e, "fetching a result chunk"))?;
                if !response.status().is_success() {
                    return Err(DestinationError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "fetching a result chunk answered HTTP {}",
                            response.status()
                        ),
                    ));
                }
                let body = response
                    .bytes()
                    .await
                    .map_err(|e| transport_error(&e, "fetching a result chunk"))?;
                rows.extend(parse_chunk(&body)?);
            }
        }
        Ok(QueryResult {
            columns,
            rows,
            rowtype,
        })
    }

    /// Runs one statement. An expired session token is renewed and the statement sent again; when the
    /// session itself is gone, this logs in again — and, with `stateless`, sends the statement again
    /// (otherwise the error says so: staging tables and open transactions died with the old session).
    pub async fn run(
        &self,
        session: &mut Session,
        sql: &str,
        bindings: &[Binding],
        stateless: bool,
    ) -> Result<QueryResult> {
        let data = self.run_data(session, sql, bindings, stateless).await?;
        self.result(&data).await
    }

    /// [`Self::run`], answering the `data` of the answer as it is (a PUT's upload instructions).
    async fn run_data(
        &self,
        session: &mut Session,
        sql: &str,
        bindings: &[Binding],
        stateless: bool,
    ) -> Result<Json> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (request_id, doc) = self.post_query(session, sql, bindings).await?;
            let mut doc = self.poll(session, sql, &request_id, doc).await?;
            if doc["success"].as_bool() == Some(true) {
                return Ok(doc["data"].take());
            }
            let (code, err) = answer_error(&doc);
            if attempts < 3 && dialect::is_session_expired(&code) && self.renew(session).await {
                continue;
            }
            if attempts < 3
                && (dialect::is_session_expired(&code) || dialect::is_session_gone(&code))
            {
                let fresh = self.login(true).await?;
                *session = fresh;
                tracing::info!("the Snowflake session had expired; logged in again");
                if stateless {
                    continue;
                }
                return Err(DestinationError::new(
                    ErrorKind::Unavailable,
                    "the Snowflake session expired during the batch; logged in again, retry the batch",
                ));
            }
            return Err(err);
        }
    }
}

impl Session {
    /// Makes the session token invalid, as if the session had ended on the server (for tests of logging in
    /// again).
    #[doc(hidden)]
    pub fn invalidate_token(&mut self) {
        self.token = "expired".into();
        self.master_token = None;
    }

    /// Connection test: logs in (without context), then uses the role, warehouse, database and schema one
    /// by one, so that the one that fails is named with Snowflake's reason; then creates a temporary table
    /// (staging needs it).
    pub async fn test(&mut self, conn: &Connection) -> Result<TestReport> {
        let s = conn.settings();
        let mut checks = vec![format!(
            "logged in to account {} as user {}",
            s.account, s.username
        )];
        let step = |what: String, hint: &'static str| {
            move |e: DestinationError| {
                let kind = match e.kind {
                    ErrorKind::Internal | ErrorKind::NotFound => ErrorKind::Permission,
                    k => k,
                };
                DestinationError::new(kind, format!("{what}: {} ({hint})", e.message))
            }
        };
        if let Some(role) = &s.role {
            conn.run(self, &dialect::use_role(role), &[], true)
                .await
                .map_err(step(
                    format!("cannot use role {role}"),
                    "check the role's name and that it is granted to the user",
                ))?;
            checks.push(format!("can use role {role}"));
        }
        conn.run(self, &dialect::use_warehouse(&s.warehouse), &[], true)
            .await
            .map_err(step(
                format!("cannot use warehouse {}", s.warehouse),
                "check its name and GRANT USAGE ON WAREHOUSE to the role",
            ))?;
        checks.push(format!("can use warehouse {}", s.warehouse));
        conn.run(self, &dialect::use_database(&s.database), &[], true)
            .await
            .map_err(step(
                format!("cannot use database {}", s.database),
                "check its name and GRANT USAGE ON DATABASE to the role",
            ))?;
        checks.push(format!("can use database {}", s.database));
        conn.run(
            self,
            &dialect::use_schema(&s.database, &s.schema),
            &[],
            true,
        )
        .await
        .map_err(step(
            format!("cannot use schema {}", s.schema),
            "check its name and GRANT USAGE ON SCHEMA to the role",
        ))?;
        checks.push(format!("can use schema {}.{}", s.database, s.schema));
        let stage = "sluice_connection_test";
        conn.run(
            self,
            &dialect::create_stage(stage, &[("id".into(), "NUMBER(38,0)".into())]),
            &[],
            true,
        )
        .await
        .map_err(step(
            format!("cannot create a temporary table in schema {}", s.schema),
            "Sluice stages rows in one: GRANT CREATE TABLE ON SCHEMA to the role",
        ))?;
        let _ = conn.run(self, &dialect::drop_stage(stage), &[], true).await;
        checks.push(format!(
            "can create temporary tables in schema {}.{}",
            s.database, s.schema
        ));
        checks.push(
            "Snowflake does not enforce primary keys: Sluice keeps the key column unique itself"
                .into(),
        );
        let server_version = if self.server_version.is_empty() {
            "Snowflake".to_string()
        } else {
            format!("Snowflake {}", self.server_version)
        };
        Ok(TestReport {
            server_version,
            checks,
        })
    }

    /// The tables of the settings' schema, by name. A missing database or schema is the server's
    /// `NotFound` ("Database 'X' does not exist or not authorized").
    pub async fn list_tables(&mut self, conn: &Connection) -> Result<Vec<String>> {
        let s = conn.settings();
        let has = |r: &QueryResult, wanted: &str| {
            r.index("name").is_some_and(|i| {
                r.rows
                    .iter()
                    .any(|row| row.get(i).cloned().flatten().as_deref() == Some(wanted))
            })
        };
        // SHOW TABLES (and SHOW SCHEMAS) in what is not there may answer no rows rather than fail:
        // ask for the database and the schema first.
        let databases = conn.run(self, dialect::SHOW_DATABASES, &[], true).await?;
        if !has(&databases, &dialect::stored_setting_name(&s.database)) {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!(
                    "database {} does not exist or the role may not use it",
                    s.database
                ),
            ));
        }
        let schemas = conn
            .run(self, &dialect::show_schemas(&s.database), &[], true)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::NotFound | ErrorKind::Permission => DestinationError::new(
                    ErrorKind::NotFound,
                    format!(
                        "database {} does not exist or the role may not use it: {}",
                        s.database, e.message
                    ),
                ),
                _ => e,
            })?;
        if !has(&schemas, &dialect::stored_setting_name(&s.schema)) {
            return Err(DestinationError::new(
                ErrorKind::NotFound,
                format!(
                    "schema {} does not exist in database {}",
                    s.schema, s.database
                ),
            ));
        }
        let r = conn
            .run(
                self,
                &dialect::show_tables(&s.database, &s.schema),
                &[],
                true,
            )
            .await?;
        let Some(i) = r.index("name") else {
            return Err(DestinationError::new(
                ErrorKind::Internal,
                "SHOW TABLES answered without a `name` column",
            ));
        };
        let mut names: Vec<String> = r
            .rows
            .iter()
            .filter_map(|row| row.get(i).cloned().flatten())
            .collect();
        names.sort();
        Ok(names)
    }

    pub async fn describe_table(
        &mut self,
        conn: &Connection,
        name: &str,
    ) -> Result<Option<TableDescription>> {
        let s = conn.settings();
        let mut found = None;
        let mut candidates = vec![name.to_string()];
        // A plain name may have been created unquoted, which Snowflake stores upper-cased.
        if dialect::is_plain(name) && name.to_ascii_uppercase() != name {
            candidates.push(name.to_ascii_uppercase());
        }
        for candidate in candidates {
            let q = dialect::qualified(&s.database, &s.schema, &candidate);
            match conn
                .run(self, &dialect::describe_table(&q), &[], true)
                .await
            {
                // A table without columns cannot exist: some servers answer an unknown name so.
                Ok(r) if r.rows.is_empty() => continue,
                Ok(r) => {
                    found = Some((candidate, q, r));
                    break;
                }
                Err(e) if e.kind == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        let Some((table, q, described)) = found else {
            return Ok(None);
        };
        let at = |n: &str| described.index(n);
        let (i_name, i_type) = (at("name").unwrap_or(0), at("type").unwrap_or(1));
        let (i_kind, i_null, i_default) = (at("kind"), at("null?"), at("default"));
        let (i_pk, i_uk) = (at("primary key"), at("unique key"));
        let cell = |row: &Vec<Option<String>>, i: Option<usize>| -> Option<String> {
            i.and_then(|i| row.get(i).cloned().flatten())
        };
        let mut columns = Vec::new();
        let mut issues = Vec::new();
        let mut flagged_pk = Vec::new();
        let mut flagged_uk = Vec::new();
        for row in &described.rows {
            let name = cell(row, Some(i_name)).unwrap_or_default();
            let native = cell(row, Some(i_type)).unwrap_or_default();
            let virtual_ = cell(row, i_kind).is_some_and(|k| k.eq_ignore_ascii_case("VIRTUAL"));
            let nullable = cell(row, i_null).is_none_or(|n| n == "Y");
            let default = cell(row, i_default);
            if cell(row, i_pk).as_deref() == Some("Y") {
                flagged_pk.push(name.clone());
            }
            if cell(row, i_uk).as_deref() == Some("Y") {
                flagged_uk.push(name.clone());
            }
            let ty = dialect::column_type(&native);
            if virtual_ {
                issues.push(format!("column `{name}` is virtual and cannot be written"));
            } else if ty.is_none() {
                issues.push(format!("column `{name}` has unsupported type `{native}`"));
            }
            columns.push(Column {
                name,
                native_type: native,
                nullable,
                ty: if virtual_ { None } else { ty },
                has_default: default.is_some() || virtual_,
            });
        }
        // Declared keys, in constraint order; Snowflake keeps them as metadata only.
        let mut keys: Vec<Vec<String>> = Vec::new();
        let mut has_primary_key = false;
        for kind in ["PRIMARY", "UNIQUE"] {
            let shown = conn
                .run(self, &dialect::show_keys(kind, &q), &[], true)
                .await;
            let grouped = match shown {
                Ok(r) => group_keys(&r),
                // Servers without SHOW … KEYS: the DESCRIBE flags (single-column keys only).
                Err(_) => {
                    let flagged = if kind == "PRIMARY" {
                        &flagged_pk
                    } else {
                        &flagged_uk
                    };
                    if kind == "PRIMARY" && !flagged.is_empty() {
                        vec![flagged.clone()]
                    } else {
                        flagged.iter().map(|c| vec![c.clone()]).collect()
                    }
                }
            };
            for k in grouped {
                if !keys.contains(&k) {
                    has_primary_key |= kind == "PRIMARY" && keys.is_empty();
                    keys.push(k);
                }
            }
        }
        if keys.is_empty() {
            issues.push(
                "the table has no primary key or unique constraint: declare one on the column that identifies a \
                 row (Snowflake does not enforce it; Sluice keeps the key unique when it writes)"
                    .to_string(),
            );
        }
        Ok(Some(TableDescription {
            name: table,
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

    /// Writes one batch; see [`super`].
    pub async fn upsert(
        &mut self,
        conn: &Connection,
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
        let key_column = target.table.column(&target.key);
        let rows = dialect::dedup_by_key(
            rows,
            target.key_index(),
            key_column.and_then(|c| c.ty.as_ref()),
            key_column.map_or("", |c| c.native_type.as_str()),
        );
        let key = StageKey::of(target);
        if !self.stages.contains_key(&key) {
            let name = self.create_stage(conn, target).await?;
            self.stages.insert(
                key.clone(),
                Stage {
                    name,
                    dirty: false,
                    checked_run: None,
                },
            );
        }
        let result = match self.check_duplicates(conn, &key, target).await {
            Ok(()) => self.write_batch(conn, &key, target, &rows).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            if matches!(e.kind, ErrorKind::SchemaMismatch | ErrorKind::NotFound) {
                // The table changed under us: stage against its new shape next time.
                if let Some(stage) = self.stages.remove(&key) {
                    let _ = conn
                        .run(self, &dialect::drop_stage(&stage.name), &[], true)
                        .await;
                }
            }
        }
        result
    }

    /// Once per run and target: whether the table already holds a key more than once. Snowflake does not
    /// enforce the declared key, so another writer may have stored duplicates, which a MERGE would then
    /// update together (and a run would count wrongly). Sluice refuses to write rather than repair: which
    /// of two rows with one key is right is the table owner's call, and deleting rows of a customer's
    /// table is not a side effect to have. The message names a few of the keys and how to find them all.
    async fn check_duplicates(
        &mut self,
        conn: &Connection,
        key: &StageKey,
        target: &WriteTarget,
    ) -> Result<()> {
        if self.stages[key].checked_run == Some(target.run_version) {
            return Ok(());
        }
        let s = conn.settings();
        let q = dialect::qualified(&s.database, &s.schema, &target.table.name);
        let found = conn
            .run(
                self,
                &dialect::duplicate_keys(&q, &target.key, DUPLICATE_SAMPLES),
                &[],
                true,
            )
            .await?;
        if let Some(message) =
            dialect::duplicates_message(&target.table.name, &target.key, &found.rows)
        {
            return Err(DestinationError::new(ErrorKind::SchemaMismatch, message));
        }
        if let Some(stage) = self.stages.get_mut(key) {
            stage.checked_run = Some(target.run_version);
        }
        Ok(())
    }

    async fn create_stage(&mut self, conn: &Connection, target: &WriteTarget) -> Result<String> {
        let table = &target.table.name;
        let Some(current) = self.describe_table(conn, table).await? else {
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
                    "column `{}` of table `{table}` is neither its primary key nor declared unique, so it cannot \
                     identify rows: declare it (ALTER TABLE … ADD UNIQUE; Snowflake does not enforce it, Sluice \
                     keeps it unique), or choose another key column",
                    target.key
                ),
            ));
        }
        self.next_stage += 1;
        // Upper case, so that its table stage can be named unquoted (`@%SLUICE_STAGE_1`).
        let name = format!("SLUICE_STAGE_{}", self.next_stage);
        let columns: Vec<(String, String)> = target
            .columns
            .iter()
            .map(|c| {
                let col = current.column(c).expect("checked above");
                (
                    c.clone(),
                    dialect::stage_type(&col.native_type, col.ty.as_ref()),
                )
            })
            .collect();
        conn.run(self, &dialect::create_stage(&name, &columns), &[], false)
            .await?;
        tracing::debug!(table = %table, stage = %name, "created the staging table");
        Ok(name)
    }

    async fn write_batch(
        &mut self,
        conn: &Connection,
        key: &StageKey,
        target: &WriteTarget,
        rows: &[&Row],
    ) -> Result<UpsertCounts> {
        let s = conn.settings();
        let (stage, dirty) = {
            let st = &self.stages[key];
            (st.name.clone(), st.dirty)
        };
        let types: Vec<Option<ColumnType>> = target
            .columns
            .iter()
            .map(|c| target.table.column(c).and_then(|col| col.ty.clone()))
            .collect();
        let natives = natives(target);
        if dirty {
            conn.run(self, &dialect::clear_stage(&stage), &[], false)
                .await?;
        }
        if let Some(st) = self.stages.get_mut(key) {
            st.dirty = true;
        }
        let loaded_from_file = through_stage(rows.len(), target.columns.len())
            && conn.load_from_file
            && !self.no_file_stage
            && self
                .load_file(conn, &stage, &target.columns, rows, &types, &natives)
                .await?;
        if !loaded_from_file {
            self.load_inserts(conn, &stage, target, rows, &types, &natives)
                .await?;
        }
        let q = dialect::qualified(&s.database, &s.schema, &target.table.name);
        let merge = dialect::merge(&q, &stage, &target.columns, &target.key, &types);
        // The explicit transaction keeps the batch whole on servers that run a MERGE as several steps;
        // BEGIN and COMMIT need no warehouse.
        conn.run(self, "BEGIN", &[], false).await?;
        let merged = conn.run(self, &merge, &[], false).await;
        let merged = match merged {
            Ok(r) => r,
            Err(e) => {
                let _ = conn.run(self, "ROLLBACK", &[], false).await;
                return Err(e);
            }
        };
        conn.run(self, "COMMIT", &[], false).await?;
        let total = rows.len() as u64;
        let inserted = merged.count("number of rows inserted").min(total);
        Ok(UpsertCounts {
            inserted,
            updated: total - inserted,
        })
    }

    /// The stage path: the rows as a gzip-compressed CSV file, PUT into the staging table's stage and
    /// loaded with COPY. The upload is what the PUT answer asks for (see [`upload`]): encrypted on the
    /// client for S3, GCS and Azure internal stages, or plain to a presigned URL. `false` (and never again
    /// in this session) when the PUT fails, the upload fails, or the answer asks for something else: the
    /// batch then loads with inserts.
    async fn load_file(
        &mut self,
        conn: &Connection,
        stage: &str,
        columns: &[String],
        rows: &[&Row],
        types: &[Option<ColumnType>],
        natives: &[String],
    ) -> Result<bool> {
        let csv = dialect::csv_rows(rows.iter().copied(), types, natives);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let body = std::io::Write::write_all(&mut gz, csv.as_bytes())
            .and_then(|_| gz.finish())
            .map_err(|e| {
                DestinationError::new(ErrorKind::Internal, format!("compressing rows: {e}"))
            })?;
        let folder = format!("b{}", uuid::Uuid::new_v4().simple());
        let put = conn
            .run_data(
                self,
                &dialect::put_file("rows.csv.gz", stage, &folder),
                &[],
                false,
            )
            .await;
        let data = match put {
            Ok(data) => data,
            // The session itself is gone: inserts would fail the same way.
            Err(e) if e.kind == ErrorKind::Unavailable && e.message.contains("logged in again") => {
                return Err(e)
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the PUT of a stage file failed; this session loads with inserts from now on"
                );
                self.no_file_stage = true;
                return Ok(false);
            }
        };
        let info = &data["stageInfo"];
        let encrypted = data.get("encryptionMaterial").is_some_and(|m| !m.is_null());
        let presigned = info["presignedUrl"].as_str().filter(|u| !u.is_empty());
        let request = if encrypted {
            let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
            match upload::plan(&data, "rows.csv.gz", &body, &now) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(self.no_upload(info, encrypted)),
                Err(e) => {
                    tracing::warn!(error = %e, "the PUT answer cannot be used; loading with inserts");
                    return Ok(self.no_upload(info, encrypted));
                }
            }
        } else if let Some(url) = presigned {
            upload::Request {
                url: url.to_string(),
                headers: Vec::new(),
                body,
            }
        } else {
            return Ok(self.no_upload(info, encrypted));
        };
        let mut put = conn.http.put(&request.url).body(request.body);
        for (k, v) in &request.headers {
            put = put.header(k, v);
        }
        let uploaded = put.send().await;
        let failure = match &uploaded {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(failure) = failure {
            // Nothing was loaded yet: the same rows go in with inserts.
            tracing::warn!(%failure, "uploading a stage file failed; this session loads with inserts from now on");
            self.no_file_stage = true;
            return Ok(false);
        }
        conn.run(
            self,
            &dialect::copy_into_stage(stage, columns, &folder),
            &[],
            false,
        )
        .await?;
        Ok(true)
    }

    /// Notes that the account's stages take no upload Sluice makes: the session loads with inserts.
    fn no_upload(&mut self, info: &Json, encrypted: bool) -> bool {
        tracing::info!(
            location = info["locationType"].as_str().unwrap_or(""),
            encrypted,
            "the account's stages need an upload Sluice does not implement; loading with inserts"
        );
        self.no_file_stage = true;
        false
    }

    /// The insert path: large multi-row `INSERT`s of bound values.
    async fn load_inserts(
        &mut self,
        conn: &Connection,
        stage: &str,
        target: &WriteTarget,
        rows: &[&Row],
        types: &[Option<ColumnType>],
        natives: &[String],
    ) -> Result<()> {
        // Bind every row once, then cut into statements under the row, bind and byte limits.
        let bound: Vec<Vec<Binding>> = rows
            .iter()
            .map(|r| {
                r.values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| dialect::stage_binding(v, types[i].as_ref(), &natives[i]))
                    .collect()
            })
            .collect();
        let sizes: Vec<usize> = bound
            .iter()
            .map(|b| b.iter().map(Binding::size).sum())
            .collect();
        let max_rows = (BINDS_PER_STATEMENT / target.columns.len().max(1))
            .clamp(1, dialect::MAX_ROWS_PER_INSERT);
        // Even chunks (10,000 rows as 5,000 + 5,000, not 9,523 + 477): fewer tiny statements.
        let max_rows = rows
            .len()
            .div_ceil(rows.len().div_ceil(max_rows).max(1))
            .max(1);
        for range in dialect::plan_chunks(&sizes, max_rows, BIND_BYTES_PER_STATEMENT) {
            let sql = dialect::insert_values(stage, &target.columns, range.len());
            let binds: Vec<Binding> = bound[range].iter().flatten().cloned().collect();
            conn.run(self, &sql, &binds, false).await?;
        }
        Ok(())
    }

    pub async fn delete(
        &mut self,
        conn: &Connection,
        target: &WriteTarget,
        keys: &[Value],
    ) -> Result<u64> {
        let s = conn.settings();
        let column = target.table.column(&target.key);
        let ty = column.and_then(|c| c.ty.clone());
        let native = column.map(|c| c.native_type.clone()).unwrap_or_default();
        let q = dialect::qualified(&s.database, &s.schema, &target.table.name);
        let mut deleted = 0;
        for chunk in keys.chunks(KEYS_PER_DELETE) {
            let binds: Vec<Binding> = chunk
                .iter()
                .map(|k| dialect::binding(k, ty.as_ref(), &native))
                .collect();
            let sql = dialect::delete_by_keys(&q, &target.key, chunk.len());
            let r = conn.run(self, &sql, &binds, true).await?;
            deleted += r.count("number of rows deleted");
        }
        Ok(deleted)
    }
}

/// Keys from `SHOW PRIMARY KEYS` / `SHOW UNIQUE KEYS`: columns grouped by constraint, in key order.
fn group_keys(shown: &QueryResult) -> Vec<Vec<String>> {
    let (Some(col), Some(seq), Some(name)) = (
        shown.index("column_name"),
        shown.index("key_sequence"),
        shown.index("constraint_name"),
    ) else {
        return Vec::new();
    };
    let mut groups: Vec<(String, Vec<(u32, String)>)> = Vec::new();
    for row in &shown.rows {
        let constraint = row[name].clone().unwrap_or_default();
        let position: u32 = row[seq]
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let column = row[col].clone().unwrap_or_default();
        match groups.iter_mut().find(|(n, _)| *n == constraint) {
            Some((_, cols)) => cols.push((position, column)),
            None => groups.push((constraint, vec![(position, column)])),
        }
    }
    groups
        .into_iter()
        .map(|(_, mut cols)| {
            cols.sort();
            cols.into_iter().map(|(_, c)| c).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_chunks_plain_and_gzipped() {
        let body = br#"["1","a"],[null,"b\"c"]"#;
        let rows = parse_chunk(body).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a".into())],
                vec![None, Some("b\"c".into())]
            ]
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, body).unwrap();
        assert_eq!(parse_chunk(&gz.finish().unwrap()).unwrap(), rows);
        assert!(parse_chunk(b"[1,").is_err());
    }

    #[test]
    fn reads_error_answers() {
        let (code, e) = answer_error(&json!({
            "success": false, "code": "390100", "message": "Incorrect username or password was specified."
        }));
        assert_eq!(code, "390100");
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("Incorrect username"));
        let (_, e) = answer_error(&json!({
            "success": false, "code": "002043", "message": "Binder Error: Referenced column \"age\" not found"
        }));
        assert_eq!(e.kind, ErrorKind::SchemaMismatch);
        let (_, e) = answer_error(
            &json!({"success": false, "data": {"errorCode": "100072"}, "message": "NULL result"}),
        );
        assert_eq!(e.kind, ErrorKind::BadData);
    }

    #[test]
    fn groups_shown_keys_by_constraint() {
        let shown = QueryResult {
            columns: [
                "created_on",
                "column_name",
                "key_sequence",
                "constraint_name",
            ]
            .map(String::from)
            .to_vec(),
            rowtype: Vec::new(),
            rows: vec![
                vec![None, Some("b".into()), Some("2".into()), Some("pk".into())],
                vec![None, Some("a".into()), Some("1".into()), Some("pk".into())],
                vec![
                    None,
                    Some("email".into()),
                    Some("1".into()),
                    Some("uq".into()),
                ],
            ],
        };
        assert_eq!(
            group_keys(&shown),
            vec![
                vec!["a".to_string(), "b".to_string()],
                vec!["email".to_string()]
            ]
        );
    }

    #[test]
    fn retries_throttling_and_server_errors_with_growing_waits() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
        let base = Duration::from_millis(100);
        for attempt in 0..5 {
            let w = backoff(base, attempt);
            let floor = base * (1 << attempt);
            assert!(w >= floor && w <= floor + floor / 4, "{attempt}: {w:?}");
        }
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn binds_past_the_drivers_threshold_go_through_the_stage() {
        assert!(!through_stage(1_999, 32));
        assert!(through_stage(2_000, 1));
        // 1,500 rows of 44 columns are 66,000 binds, past 65,280.
        assert!(through_stage(1_500, 44));
        assert!(!through_stage(1_500, 43));
    }

    #[test]
    fn login_sets_the_statement_timeout() {
        let settings = SnowflakeSettings::from_json(&json!({
            "account": "myorg-acct1", "username": "loader", "password": "x", "database": "DB",
            "schema": "PUBLIC", "warehouse": "WH"
        }))
        .unwrap();
        let data = login_data(&settings, Duration::from_secs(900));
        assert_eq!(
            data["SESSION_PARAMETERS"]["STATEMENT_TIMEOUT_IN_SECONDS"],
            900
        );
        assert_eq!(data["SESSION_PARAMETERS"]["TIMEZONE"], "UTC");
        assert_eq!(data["LOGIN_NAME"], "loader");
        assert!(data.get("PASSWORD").is_none());
    }

    #[test]
    fn binds_in_the_protocol_shape() {
        let b = bindings_json(&[
            Binding {
                ty: "FIXED",
                value: Some("1".into()),
            },
            Binding {
                ty: "TEXT",
                value: None,
            },
        ]);
        assert_eq!(
            b,
            json!({"1": {"type": "FIXED", "value": "1"}, "2": {"type": "TEXT", "value": null}})
        );
    }
}
