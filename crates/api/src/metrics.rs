//! `/metrics` in the Prometheus text format.
//!
//! Counters (runs and rows by pipeline and outcome, the run-duration summary) are this instance's: the
//! engine adds each run it finishes to its totals ([`sluice_engine::totals`]), so they only go up, as
//! `rate()` needs, and cost nothing to read. Instances sharing a metadata store each count their own
//! runs; sum them across instances. Gauges describe the workspace as the store has it: runs queued or
//! running, each pipeline's last run duration and time since its last success, read from a few recent
//! runs per pipeline, so a scrape costs the same however many runs are stored.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use sluice_engine::totals::OUTCOMES;
use sluice_store::{RunRecord, RunStatus};

use crate::AppState;

/// Runs read per pipeline and scrape, newest first, for the gauges.
const RECENT: usize = 20;
/// How far back a pipeline's last success is looked for when the recent runs have none; done once per
/// pipeline, then remembered.
const DEEP: usize = 1000;

/// What the scrapes remember between them.
#[derive(Default)]
pub(crate) struct Memory {
    /// Each pipeline's last success as last found (`None`: none in its last [`DEEP`] runs), so that a
    /// pipeline failing many times in a row keeps its "seconds since last success" without a deep read
    /// at every scrape.
    last_success: Mutex<HashMap<String, Option<DateTime<Utc>>>>,
}

/// One metric family: its help, type and sample lines.
struct Family {
    help: &'static str,
    kind: &'static str,
    lines: String,
}

impl Family {
    fn new(help: &'static str, kind: &'static str) -> Self {
        Self {
            help,
            kind,
            lines: String::new(),
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = if labels.is_empty() {
            writeln!(self.lines, "{name} {value}")
        } else {
            writeln!(self.lines, "{name}{{{}}} {value}", labels.join(","))
        };
    }

    fn write(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} {}", self.kind);
        out.push_str(&self.lines);
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "metrics",
    summary = "Prometheus metrics (a token of any role when the server requires one: SLUICE_METRICS_TOKEN_REQUIRED)",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        crate::openapi::Unauthorized,
    ),
)]
pub async fn render(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.metrics_token_required {
        if let Err(e) = crate::access::authenticate(&state, &headers).await {
            return e.into_response();
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sluice_up Whether Sluice is serving.\n# TYPE sluice_up gauge\nsluice_up 1"
    );
    let mut runs = Family::new(
        "Runs this instance finished, by pipeline and outcome.",
        "counter",
    );
    let mut rows = Family::new(
        "Rows of the runs this instance finished, by pipeline and outcome.",
        "counter",
    );
    let mut duration = Family::new(
        "Duration of the runs this instance finished, by pipeline.",
        "summary",
    );
    let mut last_duration = Family::new("Duration of each pipeline's last finished run.", "gauge");
    let mut since_success = Family::new(
        "Seconds since each pipeline's last successful run ended (absent before the first).",
        "gauge",
    );
    let mut progress = Family::new("Runs queued or running, by pipeline and status.", "gauge");
    let mut in_progress = [0u64; 2];
    let now = Utc::now();
    let mut live: HashMap<String, [u64; 2]> = HashMap::new();
    if let Ok(unfinished) = state.meta.unfinished_runs().await {
        for r in unfinished {
            let i = usize::from(r.status == RunStatus::Running);
            live.entry(r.pipeline).or_default()[i] += 1;
        }
    }
    if let Ok(pipelines) = state.meta.list_pipelines(None).await {
        state
            .metrics
            .last_success
            .lock()
            .unwrap()
            .retain(|id, _| pipelines.iter().any(|p| &p.id == id));
        for p in pipelines {
            let pid = p.id.as_str();
            let totals = state.engine.totals().pipeline(pid);
            for status in OUTCOMES {
                runs.sample(
                    "sluice_runs_total",
                    &[("pipeline", pid), ("outcome", status.as_str())],
                    totals.runs_with(status),
                );
            }
            for (outcome, n) in totals.rows() {
                rows.sample(
                    "sluice_rows_total",
                    &[("pipeline", pid), ("outcome", outcome)],
                    n,
                );
            }
            duration.sample(
                "sluice_run_duration_seconds_sum",
                &[("pipeline", pid)],
                totals.seconds,
            );
            duration.sample(
                "sluice_run_duration_seconds_count",
                &[("pipeline", pid)],
                totals.timed_runs,
            );
            let recent = state
                .meta
                .list_runs(pid, RECENT, None)
                .await
                .unwrap_or_default();
            // Runs come newest first.
            let last_finished = recent
                .iter()
                .find_map(|r| match (r.started_at, r.finished_at) {
                    (Some(s), Some(f)) => Some((f - s).num_milliseconds().max(0) as f64 / 1000.0),
                    _ => None,
                });
            if let Some(secs) = last_finished {
                last_duration.sample(
                    "sluice_last_run_duration_seconds",
                    &[("pipeline", pid)],
                    secs,
                );
            }
            if let Some(t) = last_success(&state, pid, &recent).await {
                let secs = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
                since_success.sample(
                    "sluice_seconds_since_last_success",
                    &[("pipeline", pid)],
                    secs,
                );
            }
            let live = live.get(pid).copied().unwrap_or_default();
            for (i, status) in ["queued", "running"].into_iter().enumerate() {
                progress.sample(
                    "sluice_pipeline_runs_in_progress",
                    &[("pipeline", pid), ("status", status)],
                    live[i],
                );
                in_progress[i] += live[i];
            }
        }
    }
    runs.write("sluice_runs_total", &mut out);
    rows.write("sluice_rows_total", &mut out);
    duration.write("sluice_run_duration_seconds", &mut out);
    last_duration.write("sluice_last_run_duration_seconds", &mut out);
    since_success.write("sluice_seconds_since_last_success", &mut out);
    progress.write("sluice_pipeline_runs_in_progress", &mut out);
    let _ = writeln!(
        out,
        "# HELP sluice_runs_in_progress Runs queued or running.\n# TYPE sluice_runs_in_progress gauge"
    );
    let _ = writeln!(
        out,
        "sluice_runs_in_progress {}",
        in_progress[0] + in_progress[1]
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// When the pipeline's last successful run ended: from its recent runs, else as remembered, else found
/// by reading further back once.
async fn last_success(
    state: &AppState,
    pipeline: &str,
    recent: &[RunRecord],
) -> Option<DateTime<Utc>> {
    let succeeded = |r: &RunRecord| {
        (r.status == RunStatus::Succeeded)
            .then_some(r.finished_at)
            .flatten()
    };
    let memory = &state.metrics.last_success;
    if let Some(t) = recent.iter().find_map(succeeded) {
        let mut known = memory.lock().unwrap();
        let entry = known.entry(pipeline.to_string()).or_default();
        *entry = (*entry).max(Some(t));
        return *entry;
    }
    if let Some(known) = memory.lock().unwrap().get(pipeline) {
        return *known;
    }
    let mut found = None;
    let mut read = recent.len();
    let mut before = recent.last().map(|r| r.id.clone());
    while found.is_none() && (RECENT..DEEP).contains(&read) {
        let Some(b) = before.as_deref() else { break };
        let Ok(page) = state.meta.list_runs(pipeline, 200, Some(b)).await else {
            // Not remembered, so that the next scrape tries again.
            return None;
        };
        found = page.iter().find_map(succeeded);
        before = page.last().map(|r| r.id.clone());
        read = if page.len() < 200 {
            DEEP
        } else {
            read + page.len()
        };
    }
    memory.lock().unwrap().insert(pipeline.to_string(), found);
    found
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
