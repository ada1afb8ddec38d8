//! `sluice model …`: the Customer Model (the properties every profile may have), shown as a tree or
//! replaced from a JSON or YAML file.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;

use super::{print_json, read_doc, Remote};

#[derive(Subcommand)]
pub enum Command {
    /// Show the Customer Model: each property with its type.
    #[command(
        after_help = "Examples:\n  sluice model show\n  sluice model show --json > model.json"
    )]
    Show {
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace the Customer Model with the one in a file (JSON or YAML: `properties`, as `show --json`
    /// prints it; `-` for standard input).
    #[command(
        after_help = "Example:\n  sluice model show --json > model.json && $EDITOR model.json && sluice model edit model.json"
    )]
    Edit {
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Show { remote } => {
                let v = remote.connect()?.get("/v1/profile-schema").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", tree(&v["properties"], 0));
                }
                Ok(())
            }
            Command::Edit { file, remote } => {
                let doc = read_doc(&file)?;
                let v = remote.connect()?.put("/v1/profile-schema", &doc).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    let n = v["properties"].as_array().map_or(0, Vec::len);
                    println!(
                        "Saved the Customer Model: {n} top-level propert{}",
                        if n == 1 { "y" } else { "ies" }
                    );
                }
                Ok(())
            }
        }
    }
}

/// The properties indented by depth: `name  type`, `(not null)` when it may not be null (most may).
fn tree(properties: &Value, depth: usize) -> String {
    let mut out = String::new();
    for p in properties.as_array().into_iter().flatten() {
        out += &format!(
            "{}{}  {}{}\n",
            "  ".repeat(depth),
            p["name"].as_str().unwrap_or_default(),
            p["type"].as_str().unwrap_or_default(),
            if p["nullable"] == false {
                " (not null)"
            } else {
                ""
            }
        );
        if p.get("properties").is_some() {
            out += &tree(&p["properties"], depth + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_properties_are_indented() {
        let v = json!([{"name": "email", "type": "string", "nullable": false},
                       {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}]);
        assert_eq!(
            tree(&v, 0),
            "email  string (not null)\naddress  object\n  city  string\n"
        );
    }
}
