//! `sluice pipelines run NAME --dry-run`: what a run would do, written nowhere.

use std::time::Duration;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use sluice_store::Counts;

use crate::client::{self, Client};

/// Dry-runs a saved pipeline (by id or name), waits for it and prints what a run would do (with `json`,
/// the run as the API answers it).
pub async fn dry_run_pipeline(c: &Client, name_or_id: &str, json: bool) -> Result<()> {
    let (pipeline, started) = client::start_run(
        c,
        name_or_id,
        &json!({"trigger": "manual", "dry_run": true}),
    )
    .await?;
    let run = wait(c, started["id"].as_str().unwrap_or_default()).await?;
    if json {
        crate::commands::print_json(&run);
        return client::ended_well(&run);
    }
    print!(
        "{}",
        describe(pipeline["name"].as_str().unwrap_or_default(), &run)
    );
    if run["status"] != "succeeded" {
        bail!(
            "the dry run {}",
            run["status"].as_str().unwrap_or("did not succeed")
        );
    }
    Ok(())
}

/// Waits for a run (a dry one included) to end and returns it.
pub async fn wait(c: &Client, run_id: &str) -> Result<Value> {
    loop {
        let r = c.get(&format!("/v1/runs/{run_id}")).await?;
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return Ok(r);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a dry run found, for a person: the counts in the run words, then the sample rows.
pub fn describe(name: &str, run: &Value) -> String {
    let counts: Counts = serde_json::from_value(run["counts"].clone()).unwrap_or_default();
    let mut out = format!("Dry run of `{name}` (nothing was written):\n");
    out += &format!("  a run would do: {}\n", counts.summary());
    if let Some(m) = run["message"].as_str() {
        out += &format!("  {m}\n");
    }
    for e in run["errors"].as_array().into_iter().flatten() {
        out += &format!(
            "  [{}] {} × {}\n",
            e["step"].as_str().unwrap_or_default(),
            e["count"],
            e["message"].as_str().unwrap_or_default()
        );
    }
    let samples = &run["samples"];
    let list = |k: &str| samples[k].as_array().cloned().unwrap_or_default();
    let inserts = list("inserts");
    if !inserts.is_empty() {
        out += "  New rows, first of them:\n";
        for s in &inserts {
            let row: Vec<String> = s["row"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(c, v)| format!("{c}={}", text(v)))
                .collect();
            out += &format!("    {}  {}\n", text(&s["key"]), row.join(" "));
        }
    }
    let updates = list("updates");
    if !updates.is_empty() {
        out += "  Updated rows, first of them:\n";
        for s in &updates {
            let changes: Vec<String> = s["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{}: {} → {}",
                        c["column"].as_str().unwrap_or_default(),
                        text(&c["before"]),
                        text(&c["after"])
                    )
                })
                .collect();
            let changes = if changes.is_empty() {
                "(row missing from the table: written again)".to_string()
            } else {
                changes.join(", ")
            };
            out += &format!("    {}  {changes}\n", text(&s["key"]));
        }
    }
    let deletes = list("deletes");
    if !deletes.is_empty() {
        out += "  Removed rows, first of them:\n";
        for s in &deletes {
            out += &format!("    {}\n", text(&s["key"]));
        }
    }
    out
}

/// A value as a person reads it: strings as they are, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_reads_in_run_words_with_its_samples() {
        let run = json!({
            "status": "succeeded", "message": null, "errors": [],
            "counts": {"read": 3, "filtered_out": 4, "transform_failed": 1, "inserted": 2, "updated": 1,
                       "unchanged": 7, "deleted": 1, "failed": 0},
            "samples": {
                "inserts": [{"profile": "p1", "key": "k1", "row": {"id": "k1", "n": 3}}],
                "updates": [{"profile": "p2", "key": 2, "changes": [{"column": "city", "before": "Rome", "after": "ROME"}]},
                            {"profile": "p3", "key": 3, "changes": []}],
                "deletes": [{"key": "k9"}]
            }
        });
        let text = describe("People", &run);
        assert!(
            text.contains(
                "a run would do: 11 in audience; 4 not in audience; 3 written (2 new, 1 updated); \
                 7 skipped, unchanged; 1 removed; 1 failed"
            ),
            "{text}"
        );
        assert!(text.contains(r#""k1"  id="k1" n=3"#), "{text}");
        assert!(text.contains(r#"2  city: "Rome" → "ROME""#), "{text}");
        assert!(
            text.contains("3  (row missing from the table: written again)"),
            "{text}"
        );
        assert!(text.contains(r#"    "k9""#), "{text}");
    }
}
