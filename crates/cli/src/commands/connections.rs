//! `sluice connections …` (also `sluice destinations …`): the database connections pipelines write to.
//! A connection is the API's destination record; secrets are read from the environment, a file or a
//! prompt, never from the command line, and are never printed (the API masks them).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{cell, fields, key_value, print_json, read_doc, set, Remote, SecretArgs};
use crate::client::{encode, CliError, Client, ErrorKind};
use crate::output::{self, CONNECTION};

#[derive(Subcommand)]
pub enum Command {
    /// Add a connection, from a file and/or flags.
    #[command(after_help = "Examples:
  sluice connections add --name Warehouse --type postgresql --host db.internal --username sluice \\
      --database crm --password-env WAREHOUSE_PASSWORD
  sluice connections add --file warehouse.yaml --password-file /run/secrets/warehouse")]
    Add {
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the connections.
    #[command(after_help = "Example:\n  sluice connections list --json")]
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one connection (by name or id), its secrets masked.
    #[command(after_help = "Example:\n  sluice connections show Warehouse")]
    Show {
        connection: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Test a saved connection (by name or id), or one described by a file and/or flags; exits 1 when
    /// the database cannot be reached or refuses.
    #[command(after_help = "Examples:
  sluice connections test Warehouse
  sluice connections test --type mysql --host db.internal --username app --database shop --password-env DB_PASSWORD")]
    Test {
        /// The saved connection; leave it out to test the settings given instead.
        connection: Option<String>,
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a connection (by name or id): only the settings given change; the stored password is kept
    /// unless a new one is given.
    #[command(
        after_help = "Example:\n  sluice connections edit Warehouse --host db2.internal --password-env WAREHOUSE_PASSWORD"
    )]
    Edit {
        connection: String,
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a connection (by name or id); refused (exit 4) while pipelines use it.
    #[command(after_help = "Example:\n  sluice connections delete \"Old warehouse\"")]
    Delete {
        connection: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tables of a connection, or describe one of them (its columns and keys).
    #[command(after_help = "Examples:
  sluice connections tables Warehouse
  sluice connections tables Warehouse customers")]
    Tables {
        connection: String,
        /// Describe this table instead.
        table: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the kinds of connection and their settings.
    #[command(after_help = "Example:\n  sluice connections types")]
    Types {
        #[command(flatten)]
        remote: Remote,
    },
}

/// A connection as flags and/or a file give it.
#[derive(Args, Clone, Debug, Default)]
pub struct Spec {
    /// A JSON or YAML file with `name`, `type` and `settings` (`-` for standard input); flags override it.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// The connection's name (unique).
    #[arg(long)]
    pub name: Option<String>,
    /// postgresql, mysql, clickhouse, snowflake or sqlite.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// The database server's host name or address.
    #[arg(long)]
    pub host: Option<String>,
    /// Its port (default: the kind's usual one).
    #[arg(long)]
    pub port: Option<u16>,
    /// The user to connect as.
    #[arg(long)]
    pub username: Option<String>,
    /// The database to use.
    #[arg(long)]
    pub database: Option<String>,
    /// The schema tables are in (PostgreSQL, Snowflake).
    #[arg(long)]
    pub schema: Option<String>,
    /// A SQLite file, under the server's SQLite folder.
    #[arg(long)]
    pub path: Option<String>,
    /// Any other setting, as KEY=VALUE (the value as JSON when it reads as JSON); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

impl Spec {
    /// The body the API takes (`name`, `type`, `settings`), from the file then the flags. With
    /// `prompt`, a kind that takes a password and has none is asked for one on a terminal.
    fn body(&self, prompt: bool) -> Result<Map<String, Value>> {
        let mut doc = match &self.file {
            Some(f) => read_doc(f)?.as_object().cloned().unwrap_or_default(),
            None => Map::new(),
        };
        set(&mut doc, "name", self.name.clone());
        set(&mut doc, "type", self.kind.clone());
        let mut settings = match doc.remove("settings") {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(CliError::invalid("`settings` must be an object").into()),
        };
        set(&mut settings, "host", self.host.clone());
        set(&mut settings, "port", self.port);
        set(&mut settings, "username", self.username.clone());
        set(&mut settings, "database", self.database.clone());
        set(&mut settings, "schema", self.schema.clone());
        set(&mut settings, "path", self.path.clone());
        for pair in &self.settings {
            let (k, v) = key_value(pair)?;
            settings.insert(k, v);
        }
        let wants_password = prompt
            && !settings.contains_key("password")
            && !settings.contains_key("private_key")
            && doc
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t != "sqlite");
        if let Some(p) = self.secret.read(wants_password)? {
            settings.insert("password".into(), p.into());
        }
        doc.insert("settings".into(), Value::Object(settings));
        Ok(doc)
    }

    /// Whether anything describes a connection (as opposed to naming a saved one).
    fn is_given(&self) -> bool {
        self.file.is_some()
            || self.kind.is_some()
            || self.host.is_some()
            || self.port.is_some()
            || self.username.is_some()
            || self.database.is_some()
            || self.schema.is_some()
            || self.path.is_some()
            || !self.settings.is_empty()
            || self.secret.password_env.is_some()
            || self.secret.password_file.is_some()
    }
}

/// The connection a user names, by id or name (in any case when unambiguous).
pub async fn find(c: &Client, query: &str) -> Result<Value> {
    c.find(&CONNECTION, query).await
}

fn id(v: &Value) -> String {
    encode(v["id"].as_str().unwrap_or_default())
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Add { spec, remote } => {
                let c = remote.connect()?;
                let body = Value::Object(spec.body(true)?);
                let made = c.post("/v1/destinations", &body).await?;
                if remote.json {
                    print_json(&made);
                } else {
                    println!(
                        "Added the connection `{}` ({})",
                        cell(&made["name"]),
                        cell(&made["id"])
                    );
                }
                Ok(())
            }
            Command::List { remote } => {
                let c = remote.connect()?;
                let v = c.get("/v1/destinations").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", list_text(&v));
                }
                Ok(())
            }
            Command::Show { connection, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &connection).await?;
                let v = c.get(&format!("/v1/destinations/{}", id(&found))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", show_text(&v));
                }
                Ok(())
            }
            Command::Test {
                connection,
                spec,
                remote,
            } => {
                let c = remote.connect()?;
                let answer = match connection {
                    Some(name) => {
                        let found = find(&c, &name).await?;
                        let path = format!("/v1/destinations/{}/test", id(&found));
                        if spec.is_given() {
                            let edited = merged(&found, &spec.body(false)?)?;
                            c.post(&path, &json!({"settings": edited["settings"]}))
                                .await?
                        } else {
                            c.call(reqwest::Method::POST, &path, None).await?
                        }
                    }
                    None => {
                        if !spec.is_given() {
                            return Err(CliError::invalid(
                                "name a saved connection, or describe one with --file or --type and its settings",
                            )
                            .into());
                        }
                        let mut body = spec.body(true)?;
                        body.remove("name");
                        c.post("/v1/destinations/test", &Value::Object(body))
                            .await?
                    }
                };
                if remote.json {
                    print_json(&answer);
                }
                if answer["ok"] == true {
                    if !remote.json {
                        println!(
                            "Connected: {}",
                            answer["server_version"].as_str().unwrap_or("ok")
                        );
                    }
                    Ok(())
                } else {
                    Err(CliError::new(
                        ErrorKind::Failed,
                        format!(
                            "cannot connect ({}): {}",
                            cell(&answer["error"]["code"]),
                            cell(&answer["error"]["message"])
                        ),
                    )
                    .into())
                }
            }
            Command::Edit {
                connection,
                spec,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &connection).await?;
                let change = spec.body(false)?;
                let body = merged(&found, &change)?;
                let v = c
                    .put(&format!("/v1/destinations/{}", id(&found)), &body)
                    .await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Changed the connection `{}`", cell(&v["name"]));
                }
                Ok(())
            }
            Command::Delete { connection, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &connection).await?;
                let v = c
                    .delete(&format!("/v1/destinations/{}", id(&found)))
                    .await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Deleted the connection `{}`", cell(&found["name"]));
                }
                Ok(())
            }
            Command::Tables {
                connection,
                table,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &connection).await?;
                let path = match &table {
                    Some(t) => format!("/v1/destinations/{}/tables/{}", id(&found), encode(t)),
                    None => format!("/v1/destinations/{}/tables", id(&found)),
                };
                let v = c.get(&path).await?;
                if remote.json {
                    print_json(&v);
                } else if table.is_some() {
                    print!("{}", table_text(&v));
                } else {
                    let rows: Vec<Vec<String>> = v["tables"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| vec![cell(&t["name"]), cell(&t["schema"])])
                        .collect();
                    print!("{}", output::table(&["TABLE", "SCHEMA"], &rows));
                }
                Ok(())
            }
            Command::Types { remote } => {
                let c = remote.connect()?;
                let v = c.get("/v1/connectors").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", types_text(&v));
                }
                Ok(())
            }
        }
    }
}

/// The saved connection with what an edit gives laid over it: name and type kept unless given, settings
/// merged key by key (the masked password is sent back as it was, which the API reads as "keep it").
fn merged(saved: &Value, change: &Map<String, Value>) -> Result<Value> {
    let mut settings = saved["settings"].as_object().cloned().unwrap_or_default();
    for (k, v) in change["settings"].as_object().into_iter().flatten() {
        settings.insert(k.clone(), v.clone());
    }
    let has_change = change.len() > 1
        || change["settings"]
            .as_object()
            .is_some_and(|s| !s.is_empty());
    if !has_change {
        return Err(CliError::invalid(
            "nothing to change: give --file, --name or a setting (see `sluice connections edit --help`)",
        )
        .into());
    }
    Ok(json!({
        "name": change.get("name").unwrap_or(&saved["name"]),
        "type": change.get("type").unwrap_or(&saved["type"]),
        "settings": settings,
    }))
}

fn list_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let test = match d["last_test"]["ok"].as_bool() {
                Some(true) => "ok".to_string(),
                Some(false) => format!("failed: {}", cell(&d["last_test"]["code"])),
                None => "-".into(),
            };
            vec![cell(&d["name"]), cell(&d["type"]), cell(&d["id"]), test]
        })
        .collect();
    output::table(&["NAME", "TYPE", "ID", "LAST TEST"], &rows)
}

fn show_text(v: &Value) -> String {
    let mut out = fields(
        v,
        &[
            ("name", "Name:"),
            ("id", "Id:"),
            ("type", "Type:"),
            ("updated_at", "Changed:"),
        ],
    );
    out += "Settings:\n";
    for (k, x) in v["settings"].as_object().into_iter().flatten() {
        out += &format!("  {k}: {}\n", cell(x));
    }
    out
}

fn table_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                cell(&c["name"]),
                cell(&c["type"]),
                if c["nullable"] == true { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let mut out = format!("Table {}\n", cell(&v["name"]));
    out += &output::table(&["COLUMN", "TYPE", "NULLABLE"], &rows);
    let keys: Vec<String> = v["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            k.as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    if !keys.is_empty() {
        out += &format!("Keys: {}\n", keys.join("; "));
    }
    for issue in v["issues"].as_array().into_iter().flatten() {
        out += &format!("Issue: {}\n", cell(issue));
    }
    out
}

fn types_text(v: &Value) -> String {
    let mut out = String::new();
    for k in v.as_array().into_iter().flatten() {
        let settings: Vec<String> = k["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                let mut s = cell(&f["name"]);
                if f["required"] == true {
                    s.push('*');
                }
                s
            })
            .collect();
        out += &format!("{}: {}\n", cell(&k["kind"]), settings.join(", "));
    }
    out += "(* required)\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_changes_only_what_is_given() {
        let saved = json!({"id": "dst_1", "name": "W", "type": "postgresql",
                           "settings": {"host": "a", "port": 5432, "password": "********"}});
        let mut change = Map::new();
        change.insert("settings".into(), json!({"host": "b"}));
        let body = merged(&saved, &change).unwrap();
        assert_eq!(
            body,
            json!({"name": "W", "type": "postgresql",
                   "settings": {"host": "b", "port": 5432, "password": "********"}})
        );
        let mut nothing = Map::new();
        nothing.insert("settings".into(), json!({}));
        let e = merged(&saved, &nothing).unwrap_err();
        assert_eq!(
            e.downcast_ref::<CliError>().unwrap().kind,
            ErrorKind::Invalid
        );
    }
}
