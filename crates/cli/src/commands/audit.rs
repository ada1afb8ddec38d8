//! `sluice audit`: the changes made through the API, newest first (admin only), and `sluice status`: is
//! the server up, which version, and who the token is.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use super::{cell, print_json, Remote};
use crate::client::encode;
use crate::output;

/// `sluice audit`.
#[derive(Args)]
pub struct Audit {
    /// Entries to show, 1 to 500.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Entries older than this one (the `next` of a `--json` page).
    #[arg(long)]
    before: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

impl Audit {
    pub async fn run(self) -> Result<()> {
        let mut path = format!("/v1/audit?limit={}", self.limit);
        if let Some(b) = &self.before {
            path += &format!("&before={}", encode(b));
        }
        let v = self.remote.connect()?.get(&path).await?;
        if self.remote.json {
            print_json(&v);
        } else {
            print!("{}", audit_text(&v));
        }
        Ok(())
    }
}

fn audit_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                cell(&e["at"]),
                cell(&e["token_name"]),
                format!("{} {}", cell(&e["method"]), cell(&e["route"])),
                cell(&e["resource"]),
                cell(&e["status"]),
            ]
        })
        .collect();
    let mut out = output::table(&["AT", "WHO", "CHANGE", "RESOURCE", "STATUS"], &rows);
    if let Some(next) = v["next"].as_str() {
        out += &format!("(older entries: --before {next})\n");
    }
    out
}

/// `sluice status`.
#[derive(Args)]
pub struct Status {
    #[command(flatten)]
    remote: Remote,
}

impl Status {
    pub async fn run(self) -> Result<()> {
        let c = self.remote.connect()?;
        let health = c.get("/v1/health").await?;
        let me = c.get("/v1/me").await?;
        if self.remote.json {
            print_json(&json!({"health": health, "me": me}));
        } else {
            println!(
                "Sluice {} at {}: {}; signed in as {} (role {})",
                cell(&health["version"]),
                self.remote.client.url,
                cell(&health["status"]),
                cell(&me["name"]),
                cell(&me["role"])
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_entries_say_when_who_and_what() {
        let v = json!({"entries": [{"seq": 3, "at": "2026-12-06T10:00:00Z", "token_name": "ci",
                                    "method": "PATCH", "route": "/v1/pipelines/{id}",
                                    "resource": "pl_1", "status": 200}], "next": "3"});
        let text = audit_text(&v);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .ends_with("ci   PATCH /v1/pipelines/{id}  pl_1      200"),
            "{text}"
        );
        assert!(text.ends_with("(older entries: --before 3)\n"), "{text}");
    }
}
