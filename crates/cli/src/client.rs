//! The CLI's client of a running server's REST API, and the one mapping from an error answer to the
//! kind of failure (and so to the exit code) every command shares.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use sluice_store::Counts;

use crate::output;
use crate::serve::TOKEN_FILE;
use crate::ClientArgs;

/// What kind of failure ended a command; each has its own exit code (see `sluice --help`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server, a destination or a run failed (and anything not told apart below): exit 1.
    Failed,
    /// The input is wrong: a usage error, an unreadable file, an API 400, 413 or 422: exit 2.
    Invalid,
    /// What was named does not exist (API 404): exit 3.
    NotFound,
    /// The request conflicts with the current state (API 409: name taken, already running): exit 4.
    Conflict,
    /// No token, a bad one, or one whose role does not allow the request (API 401, 403): exit 5.
    Denied,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failed => 1,
            ErrorKind::Invalid => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Denied => 5,
        }
    }

    /// The kind of an API error answer's status.
    pub fn of_status(status: reqwest::StatusCode) -> Self {
        match status.as_u16() {
            400 | 413 | 415 | 422 => ErrorKind::Invalid,
            401 | 403 => ErrorKind::Denied,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            _ => ErrorKind::Failed,
        }
    }
}

/// A failure of a known kind, with the message shown to the user.
#[derive(Debug)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CliError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// An API error answer: its message and status, then every offending field on a line of its own.
    pub fn from_answer(status: reqwest::StatusCode, answer: &Value) -> Self {
        let err = &answer["error"];
        let mut msg = format!(
            "{} ({status})",
            err["message"]
                .as_str()
                .or(answer.as_str())
                .unwrap_or("request failed")
        );
        if let Some(fields) = err["fields"].as_object() {
            for (path, ms) in fields {
                for m in ms.as_array().into_iter().flatten() {
                    msg.push_str(&format!("\n  {path}: {}", m.as_str().unwrap_or_default()));
                }
            }
        }
        Self::new(ErrorKind::of_status(status), msg)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// The exit code of a command that failed with `e`: that of the first typed failure in its chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<CliError>())
        .map_or(1, |c| c.kind.exit_code())
}

/// `s` as one path segment or query value of a URL: everything but unreserved characters escaped, so
/// that ids and names with `/`, `?` or spaces reach the route as they are.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn new(args: &ClientArgs) -> Result<Self> {
        let token = match &args.token {
            Some(t) => t.clone(),
            None => {
                let path = args.data_dir.join(TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .map_err(|_| CliError::new(ErrorKind::Denied, format!("no admin token: pass --token, set SLUICE_ADMIN_TOKEN, or run from the directory holding {}", path.display())))?
            }
        };
        let mut http = reqwest::Client::builder();
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::invalid(format!("--ca-cert: cannot read {}: {e}", path.display()))
            })?;
            let no_pem = || {
                CliError::invalid(format!(
                    "--ca-cert: {} holds no PEM certificate",
                    path.display()
                ))
            };
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| no_pem())?;
            if certs.is_empty() {
                return Err(no_pem().into());
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        Ok(Self {
            http: http.build().context("cannot set up the HTTP client")?,
            base: args.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let (status, value) = self.raw(method, path, body).await?;
        checked(status, value)
    }

    /// The resource of `kind` a user names by `query`, by id or name (see [`output::find_named`]).
    pub async fn find(&self, kind: &output::Kind, query: &str) -> Result<Value> {
        let all = self.get(kind.route).await?;
        let list = all[kind.field]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(output::find_named(list, query, kind)?.clone())
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// `POST path` with a body already written as JSON text (the import builds large bodies on its own
    /// thread, without a `Value` tree of them).
    pub async fn post_json_text(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let (status, value) = self.exchange(req).await?;
        checked(status, value)
    }

    /// `method path`, answering the status and the JSON answer whatever the status: for callers that
    /// read an error's fields themselves.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(reqwest::StatusCode, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.exchange(req).await
    }

    /// Sends the request; the status and the JSON answer whatever the status.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, Value)> {
        let resp = req.send().await.with_context(|| {
            format!(
                "cannot reach Sluice at {}: is `sluice serve` running?",
                self.base
            )
        })?;
        let status = resp.status();
        let text = resp.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }
}

/// The answer's JSON when the status is a success; otherwise the error its status and body say
/// ([`CliError::from_answer`]).
fn checked(status: reqwest::StatusCode, value: Value) -> Result<Value> {
    if status.is_success() {
        return Ok(value);
    }
    Err(CliError::from_answer(status, &value).into())
}

/// Finds a pipeline by id or name and starts a run of it with `body`: the pipeline and the start's answer.
pub async fn start_run(c: &Client, name_or_id: &str, body: &Value) -> Result<(Value, Value)> {
    let pipeline = c.find(&output::PIPELINE, name_or_id).await?;
    let id = encode(pipeline["id"].as_str().unwrap_or_default());
    let started = c.post(&format!("/v1/pipelines/{id}/runs"), body).await?;
    Ok((pipeline, started))
}

/// Runs a pipeline (by id or name): a reconcile with `reconcile`; with `follow`, shows its progress and
/// outcome until it ends. With `json`, prints the API's answer instead: the run as it ended when
/// following, else the start's answer.
pub async fn run_pipeline(
    c: &Client,
    name_or_id: &str,
    follow: bool,
    reconcile: bool,
    json: bool,
) -> Result<()> {
    let body = if reconcile {
        json!({"trigger": "manual", "mode": "reconcile"})
    } else {
        json!({"trigger": "manual"})
    };
    let (pipeline, started) = start_run(c, name_or_id, &body).await?;
    let run_id = started["id"].as_str().unwrap_or_default().to_string();
    if json {
        let answer = if follow {
            crate::dry_run::wait(c, &run_id).await?
        } else {
            started
        };
        crate::commands::print_json(&answer);
        return ended_well(&answer);
    }
    println!(
        "Started {}run {run_id} of `{}`",
        if reconcile { "a reconcile " } else { "" },
        pipeline["name"].as_str().unwrap_or_default()
    );
    if !follow {
        return Ok(());
    }
    let bar =
        ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg}")?);
    let started = std::time::Instant::now();
    let run = loop {
        let r = c.get(&format!("/v1/runs/{run_id}")).await?;
        bar.set_message(output::progress_line(
            r["progress"]["processed"].as_u64().unwrap_or(0),
            r["progress"]["total"].as_u64(),
            started.elapsed().as_secs_f64(),
        ));
        bar.tick();
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    bar.finish_and_clear();
    let counts: Counts = serde_json::from_value(run["counts"].clone())
        .context("the server answered a run without its counts")?;
    let secs = run["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    let rate = output::rate(counts.read, secs)
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    println!(
        "Run {} {} in {:.2} s: {}{rate}",
        run_id,
        run["status"].as_str().unwrap_or_default(),
        secs,
        counts.summary()
    );
    for e in run["errors"].as_array().into_iter().flatten() {
        println!(
            "  [{}] {} × {}",
            e["step"].as_str().unwrap_or_default(),
            e["count"],
            e["message"].as_str().unwrap_or_default()
        );
    }
    if let Some(m) = run["message"].as_str() {
        println!("  {m}");
    }
    ended_well(&run)
}

/// A failure (exit 1) for a run that ended other than `succeeded`; a run still going is no failure.
pub fn ended_well(run: &Value) -> Result<()> {
    match run["status"].as_str() {
        Some("failed" | "cancelled") => bail!(
            "the run {}",
            run["status"].as_str().unwrap_or("did not succeed")
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn an_error_answer_exits_by_its_status_and_names_every_field() {
        let answer = json!({"error": {"code": "ValidationFailed", "message": "the request has 2 problems",
                                      "fields": {"key": ["column `k` does not exist"], "name": ["give it a name"]}}});
        let e = CliError::from_answer(StatusCode::UNPROCESSABLE_ENTITY, &answer);
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(
            e.message,
            "the request has 2 problems (422 Unprocessable Entity)\n  key: column `k` does not exist\n  name: give it a name"
        );
        let code = |s: u16| ErrorKind::of_status(StatusCode::from_u16(s).unwrap()).exit_code();
        assert_eq!(
            [400, 401, 403, 404, 409, 413, 422, 500, 502, 504].map(code),
            [2, 5, 5, 3, 4, 2, 2, 1, 1, 1]
        );
    }

    #[test]
    fn the_exit_code_is_the_first_typed_failure_in_the_chain() {
        let typed: anyhow::Error = CliError::new(ErrorKind::Conflict, "taken").into();
        assert_eq!(exit_code(&typed.context("while creating")), 4);
        assert_eq!(exit_code(&anyhow::anyhow!("something else")), 1);
    }

    #[test]
    fn ids_and_names_are_escaped_in_urls() {
        assert_eq!(encode("pl_1-a.b~c"), "pl_1-a.b~c");
        assert_eq!(encode("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
