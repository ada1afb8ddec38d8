//! `/metrics` in the Prometheus text format, computed from the stored runs (the last 1000 of each pipeline),
//! so every instance sharing a metadata store reports the same workspace-wide figures: runs and rows by
//! pipeline and outcome, run durations, time since each pipeline's last success, and runs in progress.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::Utc;
use sluice_store::{Counts, RunStatus};

use crate::AppState;

/// Runs per pipeline the figures are computed from.
const WINDOW: usize = 1000;

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

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sluice_up Whether Sluice is serving.\n# TYPE sluice_up gauge\nsluice_up 1"
    );
    let mut runs = Family::new(
        "Runs by pipeline and outcome (last 1000 per pipeline).",
        "counter",
    );
    let mut rows = Family::new(
        "Rows by pipeline and outcome (last 1000 runs per pipeline).",
        "counter",
    );
    let mut duration = Family::new(
        "Duration of finished runs by pipeline (last 1000 per pipeline).",
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
    if let Ok(pipelines) = state.meta.list_pipelines(None).await {
        for p in pipelines {
            let Ok(list) = state.meta.list_runs(&p.id, WINDOW, None).await else {
                continue;
            };
            let pid = p.id.as_str();
            let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
            let mut totals = Counts::default();
            let (mut secs_sum, mut secs_n) = (0.0f64, 0u64);
            let mut last_finished: Option<f64> = None;
            let mut last_success = None;
            let mut live = [0u64; 2];
            for r in &list {
                *by_status.entry(r.status.as_str()).or_default() += 1;
                match r.status {
                    RunStatus::Queued => live[0] += 1,
                    RunStatus::Running => live[1] += 1,
                    _ => {}
                }
                totals.inserted += r.counts.inserted;
                totals.updated += r.counts.updated;
                totals.unchanged += r.counts.unchanged;
                totals.deleted += r.counts.deleted;
                totals.failed += r.counts.failed + r.counts.transform_failed;
                if let (Some(s), Some(f)) = (r.started_at, r.finished_at) {
                    let secs = (f - s).num_milliseconds().max(0) as f64 / 1000.0;
                    secs_sum += secs;
                    secs_n += 1;
                    // Runs come newest first.
                    last_finished.get_or_insert(secs);
                }
                if r.status == RunStatus::Succeeded && last_success.is_none() {
                    last_success = r.finished_at;
                }
            }
            for (status, n) in by_status {
                runs.sample(
                    "sluice_runs_total",
                    &[("pipeline", pid), ("outcome", status)],
                    n,
                );
            }
            for (outcome, n) in [
                ("inserted", totals.inserted),
                ("updated", totals.updated),
                ("unchanged", totals.unchanged),
                ("deleted", totals.deleted),
                ("failed", totals.failed),
            ] {
                rows.sample(
                    "sluice_rows_total",
                    &[("pipeline", pid), ("outcome", outcome)],
                    n,
                );
            }
            duration.sample(
                "sluice_run_duration_seconds_sum",
                &[("pipeline", pid)],
                secs_sum,
            );
            duration.sample(
                "sluice_run_duration_seconds_count",
                &[("pipeline", pid)],
                secs_n,
            );
            if let Some(secs) = last_finished {
                last_duration.sample(
                    "sluice_last_run_duration_seconds",
                    &[("pipeline", pid)],
                    secs,
                );
            }
            if let Some(t) = last_success {
                let secs = (now - t).num_milliseconds().max(0) as f64 / 1000.0;
                since_success.sample(
                    "sluice_seconds_since_last_success",
                    &[("pipeline", pid)],
                    secs,
                );
            }
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
