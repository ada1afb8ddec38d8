//! Alerts: a JSON `POST` to the pipeline's webhook and to the workspace's when a run fails, when it
//! fails because too many of its rows failed, and when a pipeline whose last run failed succeeds again.
//! Source pipelines' runs alert the same way, to the workspace's webhook (a source has no webhook of its
//! own); their message names the source under `source` instead of `pipeline`.
//!
//! Alerts go out in the background after the run is recorded and never change its outcome. A webhook that
//! does not answer with a 2xx is tried three times with growing pauses, then given up with a warning.
//! Webhook URLs often carry a token, so logs name the webhook by whose it is, never by its URL.
//!
//! With `deny_private_webhooks`, the webhook's host is resolved first and every address it has is checked
//! ([`sluice_core::address`]); the alert then goes to the addresses checked, not to a second lookup that
//! could answer otherwise, and redirects are not followed (they could lead inside).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value as Json};
use sluice_store::{RunRecord, RunStatus};

use crate::{over_threshold, Engine};

/// What happened, as the `event` field of the message says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    RunFailed,
    FailedRowsOverThreshold,
    Recovered,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::RunFailed => "run_failed",
            Event::FailedRowsOverThreshold => "failed_rows_over_threshold",
            Event::Recovered => "pipeline_recovered",
        }
    }
}

const ATTEMPTS: u32 = 3;
const TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// A client that can reach only `url`'s host at its public addresses, or why the host is refused.
pub async fn public_client(url: &str) -> Result<reqwest::Client, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("the URL is not valid ({e})"))?;
    let host = parsed
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed
        .port_or_known_default()
        .ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("the webhook's host cannot be resolved ({e})"))?
        .collect();
    if addrs.is_empty() {
        return Err("the webhook's host resolves to no address".into());
    }
    for a in &addrs {
        if let Some(kind) = sluice_core::address::internal_kind(a.ip()) {
            return Err(format!(
                "the webhook's host is or resolves to a {kind} address ({}), which \
                 SLUICE_DENY_PRIVATE_WEBHOOKS refuses",
                a.ip()
            ));
        }
    }
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .resolve_to_addrs(&host, &addrs)
        .build()
        .map_err(|e| format!("cannot make the HTTP client ({e})"))
}

/// Sends the alerts a finished run calls for, in the background.
pub fn after_run(engine: &Engine, run: &RunRecord) {
    if !matches!(run.status, RunStatus::Failed | RunStatus::Succeeded) {
        return;
    }
    let engine = engine.clone();
    let run = run.clone();
    tokio::spawn(async move {
        if let Err(e) = send_for(&engine, &run).await {
            tracing::warn!(run = %run.id, error = %e, "could not prepare the run's alerts");
        }
    });
}

async fn send_for(engine: &Engine, run: &RunRecord) -> Result<(), sluice_store::StoreError> {
    let event = match run.status {
        RunStatus::Failed
            if over_threshold(&run.counts, engine.config().failed_rows_threshold).is_some() =>
        {
            Event::FailedRowsOverThreshold
        }
        RunStatus::Failed => Event::RunFailed,
        RunStatus::Succeeded if previous_failed(engine, run).await? => Event::Recovered,
        _ => return Ok(()),
    };
    // A run's `pipeline` is an export pipeline's id or a source's.
    let mut targets: Vec<(&str, String)> = Vec::new();
    let what = if let Some(pipeline) = engine.meta().get_pipeline(&run.pipeline).await? {
        if let Some(url) = pipeline.spec.alert_webhook.clone() {
            targets.push(("pipeline", url));
        }
        Of::Pipeline {
            id: pipeline.id,
            name: pipeline.spec.name,
        }
    } else if let Some(source) = engine.meta().get_source(&run.pipeline).await? {
        Of::Source {
            id: source.id,
            name: source.spec.name,
        }
    } else {
        return Ok(());
    };
    if let Some(url) = engine.config().alert_webhook.clone() {
        targets.push(("workspace", url));
    }
    if targets.is_empty() {
        return Ok(());
    }
    let body = message_of(event, &what, run);
    let deny_private = engine.config().deny_private_webhooks;
    for (whose, url) in targets {
        let body = body.clone();
        let run_id = run.id.clone();
        tokio::spawn(async move { post(whose, &url, &body, &run_id, event, deny_private).await });
    }
    Ok(())
}

/// Whether the pipeline's last finished run before `run` failed.
async fn previous_failed(
    engine: &Engine,
    run: &RunRecord,
) -> Result<bool, sluice_store::StoreError> {
    let recent = engine.meta().list_runs(&run.pipeline, 10, None).await?;
    Ok(recent
        .iter()
        .filter(|r| r.id != run.id && r.status.is_finished() && r.queued_at <= run.queued_at)
        .find(|r| r.status != RunStatus::Cancelled)
        .is_some_and(|r| r.status == RunStatus::Failed))
}

/// Whose run an alert is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Of {
    Pipeline { id: String, name: String },
    Source { id: String, name: String },
}

/// The JSON an alert about a pipeline's run carries.
pub fn message(event: Event, pipeline_id: &str, pipeline_name: &str, run: &RunRecord) -> Json {
    message_of(
        event,
        &Of::Pipeline {
            id: pipeline_id.to_string(),
            name: pipeline_name.to_string(),
        },
        run,
    )
}

/// The JSON an alert carries.
pub fn message_of(event: Event, of: &Of, run: &RunRecord) -> Json {
    let (noun, key, id, name) = match of {
        Of::Pipeline { id, name } => ("Pipeline", "pipeline", id, name),
        Of::Source { id, name } => ("Source", "source", id, name),
    };
    let text = match event {
        Event::RunFailed => format!(
            "{noun} `{name}` failed: {}",
            run.message.as_deref().unwrap_or("no reason recorded")
        ),
        Event::FailedRowsOverThreshold => format!(
            "{noun} `{name}` failed: {}",
            run.message.as_deref().unwrap_or("too many rows failed")
        ),
        Event::Recovered => format!("{noun} `{name}` succeeded again after failing"),
    };
    json!({
        "event": event.as_str(),
        "text": text,
        key: {"id": id, "name": name},
        "run": {
            "id": run.id,
            "status": run.status.as_str(),
            "trigger": run.trigger,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "counts": run.counts,
            "message": run.message,
        },
        "sent_at": Utc::now(),
    })
}

async fn post(whose: &str, url: &str, body: &Json, run: &str, event: Event, deny_private: bool) {
    for attempt in 0..ATTEMPTS {
        let checked;
        let client = if deny_private {
            match public_client(url).await {
                Ok(c) => {
                    checked = c;
                    &checked
                }
                Err(problem) => {
                    tracing::warn!(run, webhook = whose, problem, "the alert was not sent");
                    return;
                }
            }
        } else {
            client()
        };
        let outcome = client.post(url).json(body).send().await;
        let problem = match outcome {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(run, webhook = whose, event = event.as_str(), "alert sent");
                return;
            }
            Ok(resp) => format!("answered {}", resp.status()),
            // Without the URL: it may hold a token.
            Err(e) => format!("{}", e.without_url()),
        };
        tracing::warn!(
            run,
            webhook = whose,
            attempt,
            problem,
            "the alert webhook did not take the alert"
        );
        tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_hosts_are_refused_by_address_after_resolving() {
        for (url, kind) in [
            ("http://127.0.0.1:8080/hook", "loopback"),
            ("http://localhost:9/hook", "loopback"),
            ("http://[::1]/hook", "loopback"),
            ("https://10.1.2.3/hook", "private"),
            ("http://192.168.0.10/hook", "private"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://[::ffff:169.254.169.254]/", "link-local"),
        ] {
            let e = public_client(url).await.unwrap_err();
            assert!(e.contains(kind), "{url}: {e}");
            assert!(
                !e.contains("/hook"),
                "the message does not carry the URL: {e}"
            );
        }
        // A public address passes (a literal: no lookup needed).
        assert!(public_client("https://93.184.216.34/hook").await.is_ok());
    }
}
