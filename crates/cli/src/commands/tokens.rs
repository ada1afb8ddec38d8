//! `sluice tokens …`: API tokens for scripts and other tools (admin only). A token's value is printed once,
//! when it is created.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

use super::{cell, print_json, Remote};
use crate::client::encode;
use crate::output::{self, TOKEN};

#[derive(Subcommand)]
pub enum Command {
    /// Create a token; its value is printed this once.
    #[command(after_help = "Example:\n  sluice tokens create --name ci --role editor")]
    Create {
        /// What the token is for (unique).
        #[arg(long)]
        name: String,
        /// admin, editor or viewer.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tokens (never their values).
    #[command(after_help = "Example:\n  sluice tokens list")]
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show the token this command signs with: its id, name and role.
    #[command(after_help = "Example:\n  sluice tokens whoami --token \"$CI_TOKEN\"")]
    Whoami {
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a token (by name or id): requests with it are refused from now on.
    #[command(after_help = "Example:\n  sluice tokens revoke ci")]
    Revoke {
        /// The token's name or id.
        #[arg(value_name = "TOKEN")]
        which: String,
        #[command(flatten)]
        remote: Remote,
    },
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Create { name, role, remote } => {
                let c = remote.connect()?;
                let v = c
                    .post("/v1/tokens", &json!({"name": name, "role": role}))
                    .await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!(
                        "Created the {} token `{}` ({}). Its value, shown this once:",
                        cell(&v["role"]),
                        cell(&v["name"]),
                        cell(&v["id"])
                    );
                    println!("{}", cell(&v["token"]));
                }
                Ok(())
            }
            Command::List { remote } => {
                let v = remote.connect()?.get("/v1/tokens").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", list_text(&v));
                }
                Ok(())
            }
            Command::Whoami { remote } => {
                let v = remote.connect()?.get("/v1/me").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!(
                        "{} ({}, role {})",
                        cell(&v["name"]),
                        cell(&v["id"]),
                        cell(&v["role"])
                    );
                }
                Ok(())
            }
            Command::Revoke { which, remote } => {
                let c = remote.connect()?;
                let found = c.find(&TOKEN, &which).await?;
                let v = c
                    .delete(&format!(
                        "/v1/tokens/{}",
                        encode(found["id"].as_str().unwrap_or_default())
                    ))
                    .await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Revoked the token `{}`", cell(&found["name"]));
                }
                Ok(())
            }
        }
    }
}

fn list_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["tokens"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                cell(&t["name"]),
                cell(&t["role"]),
                cell(&t["id"]),
                cell(&t["created_at"]),
            ]
        })
        .collect();
    output::table(&["NAME", "ROLE", "ID", "CREATED"], &rows)
}
