//! `/metrics` in the Prometheus text format: runs and rows by pipeline and outcome, from the stored runs.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::AppState;

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP sluice_up Whether Sluice is serving.\n# TYPE sluice_up gauge\nsluice_up 1"
    );
    let mut runs = String::new();
    let mut rows = String::new();
    let mut running = 0u64;
    if let Ok(pipelines) = state.meta.list_pipelines(None).await {
        for p in pipelines {
            let Ok(list) = state.meta.list_runs(&p.id, 1000, None).await else {
                continue;
            };
            let label = escape(&p.id);
            let mut by_status: std::collections::BTreeMap<&str, u64> = Default::default();
            let mut totals = sluice_store::Counts::default();
            for r in &list {
                *by_status.entry(r.status.as_str()).or_default() += 1;
                if !r.status.is_finished() {
                    running += 1;
                }
                totals.inserted += r.counts.inserted;
                totals.updated += r.counts.updated;
                totals.unchanged += r.counts.unchanged;
                totals.deleted += r.counts.deleted;
                totals.failed += r.counts.failed;
            }
            for (status, n) in by_status {
                let _ = writeln!(
                    runs,
                    "sluice_runs_total{{pipeline=\"{label}\",outcome=\"{status}\"}} {n}"
                );
            }
            for (outcome, n) in [
                ("inserted", totals.inserted),
                ("updated", totals.updated),
                ("unchanged", totals.unchanged),
                ("deleted", totals.deleted),
                ("failed", totals.failed),
            ] {
                let _ = writeln!(
                    rows,
                    "sluice_rows_total{{pipeline=\"{label}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP sluice_runs_total Runs by pipeline and outcome (last 1000 per pipeline)."
    );
    let _ = writeln!(out, "# TYPE sluice_runs_total counter\n{runs}");
    let _ = writeln!(
        out,
        "# HELP sluice_rows_total Rows by pipeline and outcome (last 1000 runs per pipeline)."
    );
    let _ = writeln!(out, "# TYPE sluice_rows_total counter\n{rows}");
    let _ = writeln!(out, "# HELP sluice_runs_in_progress Runs queued or running.\n# TYPE sluice_runs_in_progress gauge");
    let _ = writeln!(out, "sluice_runs_in_progress {running}");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
