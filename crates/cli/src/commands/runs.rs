//! `sluice runs …`: a pipeline's runs, one run with its counts, its errors, and cancelling it.

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;
use sluice_store::Counts;

use super::{cell, fields, print_json, Remote};
use crate::client::{encode, CliError, Client, ErrorKind};
use crate::output;

#[derive(Subcommand)]
pub enum Command {
    /// List a pipeline's runs (by pipeline name or id), newest first.
    #[command(after_help = "Examples:
  sluice runs list Subscribed
  sluice runs list Subscribed --limit 100 --json")]
    List {
        pipeline: String,
        /// Runs to show, 1 to 500.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Runs older than this one (the `next` of a `--json` page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a run: status, times, counts and errors.
    #[command(after_help = "Example:\n  sluice runs show run_01j9zq3k5m")]
    Show {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a run's errors, grouped by step and message, with sample profiles.
    #[command(after_help = "Example:\n  sluice runs errors run_01j9zq3k5m")]
    Errors {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop a queued or running run at its next batch boundary; exits 4 when it has already ended.
    #[command(after_help = "Example:\n  sluice runs cancel run_01j9zq3k5m")]
    Cancel {
        run: String,
        #[command(flatten)]
        remote: Remote,
    },
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::List {
                pipeline,
                limit,
                before,
                remote,
            } => {
                let c = remote.connect()?;
                let found = super::pipelines::find(&c, &pipeline).await?;
                let runs = format!(
                    "/v1/pipelines/{}/runs",
                    encode(found["id"].as_str().unwrap_or_default())
                );
                list(&c, &runs, limit, before.as_deref(), &remote, counts).await
            }
            Command::Show { run, remote } => {
                let c = remote.connect()?;
                let v = get(&c, &run).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", summary(&v));
                    print!("{}", errors_text(&v));
                }
                Ok(())
            }
            Command::Errors { run, remote } => {
                let c = remote.connect()?;
                let v = get(&c, &run).await?;
                if remote.json {
                    print_json(&v["errors"]);
                } else {
                    print!("{}", errors_text(&v));
                }
                Ok(())
            }
            Command::Cancel { run, remote } => {
                let c = remote.connect()?;
                cancel(&c, &run, &remote).await
            }
        }
    }
}

/// Prints a page of the runs at `runs` (a pipeline's or a source's), their counts in `counts`'s words.
pub(super) async fn list(
    c: &Client,
    runs: &str,
    limit: usize,
    before: Option<&str>,
    remote: &Remote,
    counts: fn(&Value) -> String,
) -> Result<()> {
    let mut path = format!("{runs}?limit={limit}");
    if let Some(b) = before {
        path += &format!("&before={}", encode(b));
    }
    let v = c.get(&path).await?;
    if remote.json {
        print_json(&v);
    } else {
        print!("{}", list_text(&v, counts));
    }
    Ok(())
}

async fn get(c: &Client, run: &str) -> Result<Value> {
    c.get(&format!("/v1/runs/{}", encode(run))).await
}

/// Cancels the run queued or running (on any instance) of the pipeline or source at `record` (its
/// `/v1/…/{id}` path), named `name` in the error when there is none.
pub(super) async fn cancel_running(
    c: &Client,
    record: &str,
    name: &Value,
    remote: &Remote,
) -> Result<()> {
    let v = c.get(record).await?;
    let Some(run) = v["running"].as_str() else {
        return Err(CliError::new(
            ErrorKind::Conflict,
            format!("no run of `{}` is queued or running", cell(name)),
        )
        .into());
    };
    cancel(c, run, remote).await
}

/// Asks a run to stop and prints the answer.
pub async fn cancel(c: &Client, run: &str, remote: &Remote) -> Result<()> {
    let v = c
        .call(
            reqwest::Method::POST,
            &format!("/v1/runs/{}/cancel", encode(run)),
            None,
        )
        .await?;
    if remote.json {
        print_json(&v);
    } else {
        println!("Run {run} stops at its next batch boundary");
    }
    Ok(())
}

/// The counts of a run in the run words (`9,520 in audience; 0 written; …`).
fn counts(run: &Value) -> String {
    serde_json::from_value::<Counts>(run["counts"].clone())
        .map(|c| c.summary())
        .unwrap_or_else(|_| "-".into())
}

/// What started a run, with the profile changes that set off an `on_change` run
/// (`on_change (50 changed, 1 deleted)`).
fn trigger_text(run: &Value) -> String {
    let trigger = cell(&run["trigger"]);
    match (
        run["changes"]["changed"].as_u64(),
        run["changes"]["deleted"].as_u64(),
    ) {
        (Some(changed), Some(deleted)) => {
            format!("{trigger} ({changed} changed, {deleted} deleted)")
        }
        _ => trigger,
    }
}

/// A run's status, times and counts, one per line.
pub fn summary(run: &Value) -> String {
    let mut shown = run.clone();
    if shown.get("trigger").is_some() {
        shown["trigger"] = Value::String(trigger_text(run));
    }
    let mut out = fields(
        &shown,
        &[
            ("id", "  Run:"),
            ("status", "  Status:"),
            ("trigger", "  Trigger:"),
            ("started_at", "  Started:"),
            ("finished_at", "  Finished:"),
        ],
    );
    if let Some(ms) = run["duration_ms"].as_f64() {
        out += &format!("  Duration:  {:.2} s\n", ms / 1000.0);
    }
    out += &format!("  Counts:    {}\n", counts(run));
    if let Some(m) = run["message"].as_str() {
        out += &format!("  Message:   {m}\n");
    }
    out
}

fn errors_text(run: &Value) -> String {
    let rows: Vec<Vec<String>> = run["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let samples: Vec<String> = e["sample_profiles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect();
            vec![
                cell(&e["step"]),
                cell(&e["count"]),
                cell(&e["message"]),
                samples.join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "No errors.\n".into();
    }
    output::table(&["STEP", "COUNT", "MESSAGE", "SAMPLE PROFILES"], &rows)
}

fn list_text(v: &Value, counts: fn(&Value) -> String) -> String {
    let rows: Vec<Vec<String>> = v["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let secs = r["duration_ms"]
                .as_f64()
                .map(|ms| format!("{:.1} s", ms / 1000.0))
                .unwrap_or_else(|| "-".into());
            vec![
                cell(&r["id"]),
                cell(&r["status"]),
                trigger_text(r),
                cell(&r["queued_at"]),
                secs,
                counts(r),
            ]
        })
        .collect();
    let mut out = output::table(
        &["RUN", "STATUS", "TRIGGER", "QUEUED", "DURATION", "COUNTS"],
        &rows,
    );
    if let Some(next) = v["next"].as_str() {
        out += &format!("(older runs: --before {next})\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_change_run_names_its_changes() {
        let run = serde_json::json!({"id": "run_1", "status": "succeeded", "trigger": "on_change",
            "changes": {"changed": 50, "deleted": 1}, "counts": {}});
        assert!(
            summary(&run).contains("Trigger:   on_change (50 changed, 1 deleted)\n"),
            "{}",
            summary(&run)
        );
        let plain = serde_json::json!({"trigger": "manual"});
        assert_eq!(trigger_text(&plain), "manual");
        let list = list_text(&serde_json::json!({"runs": [run]}), counts);
        assert!(list.contains("on_change (50 changed, 1 deleted)"), "{list}");
    }
    use serde_json::json;

    #[test]
    fn errors_list_step_count_message_and_samples() {
        let run = json!({"errors": [{"step": "write", "message": "value too long", "count": 3,
                                    "sample_profiles": ["c17", "c42"]}]});
        let text = errors_text(&run);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "write  3      value too long  c17, c42"
        );
        assert_eq!(errors_text(&json!({"errors": []})), "No errors.\n");
    }
}
