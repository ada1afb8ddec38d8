//! The CLI's client of a running server's REST API.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use sluice_store::Counts;

use crate::output;
use crate::serve::TOKEN_FILE;
use crate::ClientArgs;

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
                    .with_context(|| format!("no admin token: pass --token, set SLUICE_ADMIN_TOKEN, or run from the directory holding {}", path.display()))?
            }
        };
        let mut http = reqwest::Client::builder();
        if let Some(path) = &args.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(|| {
                format!("--ca-cert: {} holds no PEM certificate", path.display())
            })?;
            if certs.is_empty() {
                bail!("--ca-cert: {} holds no PEM certificate", path.display());
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

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
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

/// The answer's JSON when the status is a success; otherwise an error with the server's message and
/// the fields it names.
fn checked(status: reqwest::StatusCode, value: Value) -> Result<Value> {
    if status.is_success() {
        return Ok(value);
    }
    let err = &value["error"];
    let mut msg = format!(
        "{} ({status})",
        err["message"].as_str().unwrap_or("request failed")
    );
    if let Some(fields) = err["fields"].as_object() {
        for (path, ms) in fields {
            for m in ms.as_array().into_iter().flatten() {
                msg.push_str(&format!("\n  {path}: {}", m.as_str().unwrap_or_default()));
            }
        }
    }
    Err(anyhow!(msg))
}

pub async fn list_pipelines(args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let pipelines = c.get("/v1/pipelines").await?;
    let destinations = c.get("/v1/destinations").await?;
    let rows = output::pipeline_rows(
        pipelines["pipelines"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
        destinations["destinations"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
        chrono::Utc::now(),
    );
    print!(
        "{}",
        output::table(
            &[
                "NAME",
                "ENABLED",
                "DESTINATION",
                "TABLE",
                "SCHEDULE",
                "LAST RUN"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn list_destinations(args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let v = c.get("/v1/destinations").await?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let rows: Vec<Vec<String>> = v["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| vec![text(&d["name"]), text(&d["type"]), text(&d["id"])])
        .collect();
    print!("{}", output::table(&["NAME", "TYPE", "ID"], &rows));
    Ok(())
}

/// Finds a pipeline by id or name and starts a run of it with `body`: the pipeline and the start's answer.
pub async fn start_run(c: &Client, name_or_id: &str, body: &Value) -> Result<(Value, Value)> {
    let all = c.get("/v1/pipelines").await?;
    let list = all["pipelines"].as_array().cloned().unwrap_or_default();
    let pipeline = output::find_pipeline(&list, name_or_id)
        .map_err(|e| anyhow!(e))?
        .clone();
    let id = pipeline["id"].as_str().unwrap_or_default();
    let started = c.post(&format!("/v1/pipelines/{id}/runs"), body).await?;
    Ok((pipeline, started))
}

/// Runs a pipeline (by id or name): a reconcile with `reconcile`; with `follow`, shows its progress and
/// outcome until it ends.
pub async fn run_pipeline(
    args: &ClientArgs,
    name_or_id: &str,
    follow: bool,
    reconcile: bool,
) -> Result<()> {
    let c = Client::new(args)?;
    let body = if reconcile {
        json!({"trigger": "manual", "mode": "reconcile"})
    } else {
        json!({"trigger": "manual"})
    };
    let (pipeline, started) = start_run(&c, name_or_id, &body).await?;
    let run_id = started["id"].as_str().unwrap_or_default().to_string();
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
    if run["status"] != "succeeded" {
        bail!(
            "the run {}",
            run["status"].as_str().unwrap_or("did not succeed")
        );
    }
    Ok(())
}
