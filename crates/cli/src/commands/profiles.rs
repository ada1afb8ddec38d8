//! `sluice profiles …`: import a file, read one profile, list them with a filter, delete one, or delete
//! every profile a filter matches.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

use super::{print_json, Remote};
use crate::client::{encode, CliError, Client};
use crate::ClientArgs;

#[derive(Subcommand)]
pub enum Command {
    /// Import profiles from a CSV (header row of property paths) or NDJSON file, with a progress bar.
    #[command(after_help = "Examples:
  sluice profiles import customers.csv
  sluice profiles import events.ndjson --ignore-unknown")]
    Import {
        file: PathBuf,
        /// `csv` or `ndjson` (default: from the file extension).
        #[arg(long)]
        format: Option<String>,
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
        /// Leave out columns (CSV) and properties (NDJSON) the Customer Model does not have, with one
        /// warning naming them, instead of rejecting the profiles that have them.
        #[arg(long)]
        ignore_unknown: bool,
        /// Print `{"upserted": N, "rejected": M}` (the batches' answers summed) instead of the summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show one profile by its `_id`.
    #[command(after_help = "Example:\n  sluice profiles get c17")]
    Get {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List profiles in `_id` order, those a filter matches with --filter.
    #[command(after_help = r#"Examples:
  sluice profiles list --limit 20
  sluice profiles list --filter '{"logical": "and", "conditions": [{"property": "country", "operator": "is one of", "values": ["IT", "FR"]}]}'"#)]
    List {
        /// A filter as JSON, as pipelines take it.
        #[arg(long)]
        filter: Option<String>,
        /// Profiles per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Start after this `_id` (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete one profile by its `_id`.
    #[command(after_help = "Example:\n  sluice profiles delete c17")]
    Delete {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete every profile a filter matches; without --yes, only says how many it would delete.
    #[command(after_help = r#"Example:
  sluice profiles delete-many --filter '{"logical": "and", "conditions": [{"property": "email", "operator": "is empty"}]}' --yes"#)]
    DeleteMany {
        /// A filter as JSON, as pipelines take it.
        #[arg(long)]
        filter: String,
        /// Delete them (otherwise only count them).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Import {
                file,
                format,
                batch_size,
                ignore_unknown,
                json,
                client,
            } => crate::import::import(
                &client,
                &file,
                format.as_deref(),
                batch_size,
                ignore_unknown,
                json,
            )
            .await
            .map_err(file_fault),
            Command::Get { id, remote } => {
                let c = remote.connect()?;
                let v = c.get(&format!("/v1/profiles/{}", encode(&id))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                }
                Ok(())
            }
            Command::List {
                filter,
                limit,
                after,
                remote,
            } => {
                let c = remote.connect()?;
                let v = page(&c, filter.as_deref(), limit, after.as_deref()).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", list_text(&v));
                }
                Ok(())
            }
            Command::Delete { id, remote } => {
                let c = remote.connect()?;
                let v = c.delete(&format!("/v1/profiles/{}", encode(&id))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Deleted the profile `{id}`");
                }
                Ok(())
            }
            Command::DeleteMany {
                filter,
                yes,
                remote,
            } => {
                let c = remote.connect()?;
                // Every matching id first, then the deletes: deleting while paging would skip profiles.
                let mut ids = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let v = page(&c, Some(&filter), 1000, after.as_deref()).await?;
                    for p in v["profiles"].as_array().into_iter().flatten() {
                        if let Some(id) = p["_id"].as_str() {
                            ids.push(id.to_string());
                        }
                    }
                    match v["next"].as_str() {
                        Some(n) => after = Some(n.to_string()),
                        None => break,
                    }
                }
                if !yes {
                    let message = format!(
                        "{} profile{} match the filter; pass --yes to delete them",
                        ids.len(),
                        if ids.len() == 1 { "" } else { "s" }
                    );
                    if remote.json {
                        print_json(&json!({"matching": ids.len(), "deleted": 0}));
                    }
                    // Without a terminal nobody reads the count: a script that forgot --yes fails.
                    return if std::io::stdout().is_terminal() && !remote.json {
                        println!("{message}");
                        Ok(())
                    } else {
                        Err(CliError::invalid(message).into())
                    };
                }
                let mut deleted = 0u64;
                for id in &ids {
                    let (status, answer) = c
                        .raw(
                            reqwest::Method::DELETE,
                            &format!("/v1/profiles/{}", encode(id)),
                            None,
                        )
                        .await?;
                    // A profile deleted meanwhile by someone else is gone all the same.
                    if status.is_success() {
                        deleted += 1;
                    } else if status != reqwest::StatusCode::NOT_FOUND {
                        return Err(CliError::from_answer(status, &answer).into());
                    }
                }
                if remote.json {
                    print_json(&json!({"matching": ids.len(), "deleted": deleted}));
                } else {
                    println!(
                        "Deleted {} profile{}",
                        sluice_store::thousands(deleted),
                        if deleted == 1 { "" } else { "s" }
                    );
                }
                Ok(())
            }
        }
    }
}

/// An import's failure by its kind: the server's answers are typed already and a server out of reach
/// is a failure; anything else is the file's fault (unreadable, an unknown format, a bad header, not one
/// profile accepted), which is invalid input.
fn file_fault(e: anyhow::Error) -> anyhow::Error {
    let typed = e
        .chain()
        .any(|c| c.is::<CliError>() || c.is::<reqwest::Error>());
    if typed {
        e
    } else {
        CliError::invalid(format!("{e:#}")).into()
    }
}

/// One page of `GET /v1/profiles`.
async fn page(
    c: &Client,
    filter: Option<&str>,
    limit: usize,
    after: Option<&str>,
) -> Result<Value> {
    let mut path = format!("/v1/profiles?limit={limit}");
    if let Some(f) = filter {
        path += &format!("&filter={}", encode(f));
    }
    if let Some(a) = after {
        path += &format!("&after={}", encode(a));
    }
    c.get(&path).await
}

fn list_text(v: &Value) -> String {
    let mut out = String::new();
    for p in v["profiles"].as_array().into_iter().flatten() {
        let mut rest = p.clone();
        let id = rest
            .as_object_mut()
            .and_then(|o| o.remove("_id"))
            .unwrap_or_default();
        out += &format!("{}  {}\n", super::cell(&id), rest);
    }
    let shown = v["profiles"].as_array().map_or(0, Vec::len) as u64;
    let total = v["total"].as_u64().unwrap_or(0);
    out += &match v["matching"].as_u64() {
        Some(m) => format!(
            "{} shown; {} of {} profiles match\n",
            sluice_store::thousands(shown),
            sluice_store::thousands(m),
            sluice_store::thousands(total)
        ),
        None => format!(
            "{} shown of {} profiles\n",
            sluice_store::thousands(shown),
            sluice_store::thousands(total)
        ),
    };
    if let Some(next) = v["next"].as_str() {
        out += &format!("(next page: --after {next})\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_lists_ids_then_says_how_many_match() {
        let v = json!({"profiles": [{"_id": "c1", "email": "a@b.c"}], "next": "c1",
                       "total": 12000, "matching": 3});
        assert_eq!(
            list_text(&v),
            "c1  {\"email\":\"a@b.c\"}\n1 shown; 3 of 12,000 profiles match\n(next page: --after c1)\n"
        );
    }
}
