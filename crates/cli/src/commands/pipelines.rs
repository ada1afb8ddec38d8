//! `sluice pipelines …`: create, list, show, edit, enable, disable, delete, preview, validate, run (also
//! as a dry run or a reconcile) and cancel export pipelines. A pipeline is named by id or name anywhere,
//! and its connection too.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{cell, fields, key_value, print_json, read_doc, set, Remote};
use crate::client::{self, encode, CliError, Client};
use crate::output;

#[derive(Subcommand)]
pub enum Command {
    /// Create a pipeline, from a file (JSON or YAML, as the API takes it) and/or flags.
    #[command(after_help = "Examples:
  sluice pipelines create --file subscribed.yaml
  sluice pipelines create --name Subscribed --connection Warehouse --table customers --key customer_id \\
      --map customer_id=_id --map email='lower(email)' --schedule 15m \\
      --filter '{\"logical\": \"and\", \"conditions\": [{\"property\": \"email\", \"operator\": \"is not empty\"}]}'")]
    Create {
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// List pipelines.
    #[command(after_help = "Example:\n  sluice pipelines list")]
    List {
        /// Only the pipelines writing to this connection (name or id).
        #[arg(long)]
        connection: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one pipeline (by name or id): its definition, schedule and last run.
    #[command(after_help = "Example:\n  sluice pipelines show \"Subscribed customers\" --json")]
    Show {
        pipeline: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a pipeline (by name or id): only what the file and flags give changes.
    #[command(after_help = "Examples:
  sluice pipelines edit Subscribed --schedule 1h
  sluice pipelines edit Subscribed --file changes.yaml")]
    Edit {
        pipeline: String,
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// Enable a pipeline: its schedule runs it again, and it can be run.
    #[command(after_help = "Example:\n  sluice pipelines enable Subscribed")]
    Enable {
        pipeline: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a pipeline: no run starts until it is enabled again.
    #[command(after_help = "Example:\n  sluice pipelines disable Subscribed")]
    Disable {
        pipeline: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a pipeline (its table and rows stay as they are).
    #[command(after_help = "Example:\n  sluice pipelines delete Subscribed")]
    Delete {
        pipeline: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a pipeline makes of some sample profiles, and what writing them would do; writes
    /// nothing. Previews a saved pipeline, or with --file one that is not saved.
    #[command(after_help = "Examples:
  sluice pipelines preview Subscribed --limit 5
  sluice pipelines preview Subscribed --profile c17 --profile c42
  sluice pipelines preview --file draft.yaml --connection Warehouse")]
    Preview {
        /// The saved pipeline; leave it out to preview the one --file and the flags describe.
        pipeline: Option<String>,
        #[command(flatten)]
        spec: Spec,
        /// How many sample profiles (1 to 100; 10 by default).
        #[arg(long, conflicts_with = "profile")]
        limit: Option<usize>,
        /// These profiles instead (repeatable).
        #[arg(long)]
        profile: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check a pipeline definition (against the Customer Model and its live table) without saving it.
    #[command(after_help = "Example:\n  sluice pipelines validate --file draft.yaml")]
    Validate {
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// Dry-run a pipeline that is not saved (a draft, or a change to a saved one with --replaces): what
    /// its next run would insert, update and delete, writing nothing.
    #[command(after_help = "Examples:
  sluice pipelines dry-run --file draft.yaml --connection Warehouse
  sluice pipelines dry-run --file changed.yaml --replaces Subscribed")]
    DryRun {
        #[command(flatten)]
        spec: Spec,
        /// The saved pipeline the definition would replace: its sync state and table are compared.
        #[arg(long)]
        replaces: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the functions mapping expressions may use.
    #[command(after_help = "Example:\n  sluice pipelines functions")]
    Functions {
        #[command(flatten)]
        remote: Remote,
    },
    /// List the filter operators each kind of property takes.
    #[command(after_help = "Example:\n  sluice pipelines operators --json")]
    Operators {
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a pipeline now (by name or id) and follow it with a progress bar; exits 1 when the run fails.
    #[command(after_help = "Examples:
  sluice pipelines run Subscribed
  sluice pipelines run Subscribed --dry-run
  sluice pipelines run Subscribed --no-follow --json")]
    Run {
        pipeline: String,
        /// Start the run and return without following it.
        #[arg(long)]
        no_follow: bool,
        /// Read the table back first and rewrite the rows that are missing or were changed by someone
        /// else (as `sluice pipelines reconcile`).
        #[arg(long)]
        reconcile: bool,
        /// Decide everything a run would and write nothing: print the counts a run would have and
        /// sample rows of each kind (new, updated with the columns that change, removed).
        #[arg(long, conflicts_with_all = ["reconcile", "no_follow"])]
        dry_run: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Reconcile a pipeline's table now (by name or id): read back every row Sluice wrote, rewrite the
    /// rows that are missing or were changed by someone else, and follow the run.
    #[command(after_help = "Example:\n  sluice pipelines reconcile Subscribed")]
    Reconcile {
        pipeline: String,
        /// Start the run and return without following it.
        #[arg(long)]
        no_follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop the run of a pipeline (by name or id) that is queued or running; exits 4 when none is.
    #[command(after_help = "Example:\n  sluice pipelines cancel Subscribed")]
    Cancel {
        pipeline: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A pipeline as a file and/or flags give it.
#[derive(Args, Clone, Debug, Default)]
pub struct Spec {
    /// A JSON or YAML file with the pipeline's fields, as the API takes them (`-` for standard input);
    /// flags override it.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// The pipeline's name (unique).
    #[arg(long)]
    pub name: Option<String>,
    /// What it is for.
    #[arg(long)]
    pub description: Option<String>,
    /// The connection written to (name or id).
    #[arg(long)]
    pub connection: Option<String>,
    /// The table written to.
    #[arg(long)]
    pub table: Option<String>,
    /// The table's key column(s).
    #[arg(long)]
    pub key: Option<String>,
    /// A column and the expression that fills it, as COLUMN=EXPRESSION (repeatable): the mapping
    /// transformation.
    #[arg(long = "map", value_name = "COLUMN=EXPRESSION")]
    pub mapping: Vec<String>,
    /// The filter as JSON (`null` for every profile).
    #[arg(long)]
    pub filter: Option<String>,
    /// `off`, `on_change`, or one of 5m 15m 30m 1h 2h 3h 6h 8h 12h 24h.
    #[arg(long)]
    pub schedule: Option<String>,
    /// What happens to a row whose profile leaves the audience: keep or delete.
    #[arg(long)]
    pub on_leave: Option<String>,
    /// Create it disabled.
    #[arg(long, conflicts_with = "enabled")]
    pub disabled: bool,
    /// Create it enabled (the default).
    #[arg(long)]
    pub enabled: bool,
}

impl Spec {
    /// The fields the file and the flags give, the connection resolved to its id.
    async fn doc(&self, c: &Client) -> Result<Map<String, Value>> {
        let mut doc = match &self.file {
            Some(f) => read_doc(f)?.as_object().cloned().unwrap_or_default(),
            None => Map::new(),
        };
        set(&mut doc, "name", self.name.clone());
        set(&mut doc, "description", self.description.clone());
        set(&mut doc, "table", self.table.clone());
        set(&mut doc, "key", self.key.clone());
        set(&mut doc, "on_leave", self.on_leave.clone());
        if let Some(conn) = &self.connection {
            let found = super::connections::find(c, conn).await?;
            doc.insert("destination".into(), found["id"].clone());
        }
        if !self.mapping.is_empty() {
            let mut mapping = Map::new();
            for pair in &self.mapping {
                let (column, expr) = key_value(pair)?;
                // An expression is text even when it reads as JSON (`1`, `true`).
                let expr = match expr {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                mapping.insert(column, Value::String(expr));
            }
            doc.insert("transformation".into(), json!({ "mapping": mapping }));
        }
        if let Some(f) = &self.filter {
            let filter: Value = serde_json::from_str(f)
                .map_err(|e| CliError::invalid(format!("--filter is not valid JSON: {e}")))?;
            doc.insert("filter".into(), filter);
        }
        if let Some(s) = &self.schedule {
            let v = match s.as_str() {
                "off" | "none" | "null" => Value::Null,
                other => Value::String(other.into()),
            };
            doc.insert("schedule".into(), v);
        }
        if self.disabled {
            doc.insert("enabled".into(), false.into());
        } else if self.enabled {
            doc.insert("enabled".into(), true.into());
        }
        Ok(doc)
    }
}

/// The fields of a pipeline's definition, as opposed to what answers add (id, last run, times).
const SPEC_FIELDS: &[&str] = &[
    "destination",
    "name",
    "description",
    "enabled",
    "filter",
    "table",
    "key",
    "transformation",
    "schedule",
    "on_leave",
    "alert_webhook",
    "reconcile_every",
];

/// The pipeline a user names, by id or name (in any case when unambiguous).
pub async fn find(c: &Client, query: &str) -> Result<Value> {
    c.find(&output::PIPELINE, query).await
}

fn id(v: &Value) -> String {
    encode(v["id"].as_str().unwrap_or_default())
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Create { spec, remote } => {
                let c = remote.connect()?;
                let doc = spec.doc(&c).await?;
                let made = c.post("/v1/pipelines", &Value::Object(doc)).await?;
                done(&remote, &made, "Created")
            }
            Command::List { connection, remote } => {
                let c = remote.connect()?;
                let destinations = c.get("/v1/destinations").await?;
                let path = match &connection {
                    Some(conn) => {
                        let found = super::connections::find(&c, conn).await?;
                        format!("/v1/pipelines?destination={}", id(&found))
                    }
                    None => "/v1/pipelines".into(),
                };
                let pipelines = c.get(&path).await?;
                if remote.json {
                    print_json(&pipelines);
                    return Ok(());
                }
                let rows = output::pipeline_rows(
                    pipelines["pipelines"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    destinations["destinations"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    chrono::Utc::now(),
                );
                print!(
                    "{}",
                    output::table(
                        &[
                            "NAME",
                            "ENABLED",
                            "DESTINATION",
                            "TABLE",
                            "SCHEDULE",
                            "LAST RUN"
                        ],
                        &rows
                    )
                );
                Ok(())
            }
            Command::Show { pipeline, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &pipeline).await?;
                let v = c.get(&format!("/v1/pipelines/{}", id(&found))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", show_text(&v));
                }
                Ok(())
            }
            Command::Edit {
                pipeline,
                spec,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &pipeline).await?;
                let doc = spec.doc(&c).await?;
                if doc.is_empty() {
                    return Err(CliError::invalid(
                        "nothing to change: give --file or a field's flag (see `sluice pipelines edit --help`)",
                    )
                    .into());
                }
                let v = c
                    .patch(
                        &format!("/v1/pipelines/{}", id(&found)),
                        &Value::Object(doc),
                    )
                    .await?;
                done(&remote, &v, "Changed")
            }
            Command::Enable { pipeline, remote } => switch(&remote, &pipeline, true).await,
            Command::Disable { pipeline, remote } => switch(&remote, &pipeline, false).await,
            Command::Delete { pipeline, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &pipeline).await?;
                let v = c.delete(&format!("/v1/pipelines/{}", id(&found))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Deleted the pipeline `{}`", cell(&found["name"]));
                }
                Ok(())
            }
            Command::Preview {
                pipeline,
                spec,
                limit,
                profile,
                remote,
            } => {
                let c = remote.connect()?;
                let mut body = Map::new();
                set(&mut body, "limit", limit);
                if !profile.is_empty() {
                    body.insert("profiles".into(), json!(profile));
                }
                let v = match pipeline {
                    Some(p) => {
                        let found = find(&c, &p).await?;
                        c.post(
                            &format!("/v1/pipelines/{}/preview", id(&found)),
                            &Value::Object(body),
                        )
                        .await?
                    }
                    None => {
                        let doc = spec.doc(&c).await?;
                        if doc.is_empty() {
                            return Err(CliError::invalid(
                                "name a saved pipeline, or describe an unsaved one with --file and/or flags",
                            )
                            .into());
                        }
                        body.insert("pipeline".into(), Value::Object(doc));
                        c.post("/v1/pipelines/preview", &Value::Object(body))
                            .await?
                    }
                };
                if remote.json {
                    print_json(&v);
                } else {
                    print!("{}", preview_text(&v));
                }
                Ok(())
            }
            Command::Validate { spec, remote } => {
                let c = remote.connect()?;
                let doc = spec.doc(&c).await?;
                let v = c
                    .post("/v1/pipelines/validate", &Value::Object(doc))
                    .await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("The pipeline is valid.");
                }
                Ok(())
            }
            Command::DryRun {
                spec,
                replaces,
                remote,
            } => {
                let c = remote.connect()?;
                let mut body = Map::new();
                let mut doc = spec.doc(&c).await?;
                if let Some(r) = &replaces {
                    let found = find(&c, r).await?;
                    // What the file leaves out is the saved pipeline's.
                    for (k, v) in found.as_object().into_iter().flatten() {
                        if SPEC_FIELDS.contains(&k.as_str()) && !doc.contains_key(k) {
                            doc.insert(k.clone(), v.clone());
                        }
                    }
                    body.insert("replaces".into(), found["id"].clone());
                }
                let name = cell(&doc.get("name").cloned().unwrap_or_default());
                body.insert("pipeline".into(), Value::Object(doc));
                let started = c.post("/v1/dry-runs", &Value::Object(body)).await?;
                let run =
                    crate::dry_run::wait(&c, started["id"].as_str().unwrap_or_default()).await?;
                if remote.json {
                    print_json(&run);
                } else {
                    print!("{}", crate::dry_run::describe(&name, &run));
                }
                client::ended_well(&run)
            }
            Command::Functions { remote } => {
                let v = remote.connect()?.get("/v1/functions").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| vec![cell(&f["signature"]), cell(&f["description"])])
                        .collect();
                    print!("{}", output::table(&["FUNCTION", "DESCRIPTION"], &rows));
                }
                Ok(())
            }
            Command::Operators { remote } => {
                let v = remote.connect()?.get("/v1/filters/operators").await?;
                if remote.json {
                    print_json(&v);
                } else {
                    let rows: Vec<Vec<String>> = v["types"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| {
                            let ops: Vec<String> = t["operators"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(cell)
                                .collect();
                            vec![cell(&t["kind"]), ops.join(", ")]
                        })
                        .collect();
                    print!("{}", output::table(&["TYPE", "OPERATORS"], &rows));
                }
                Ok(())
            }
            Command::Run {
                pipeline,
                no_follow,
                reconcile,
                dry_run,
                remote,
            } => {
                let c = remote.connect()?;
                if dry_run {
                    crate::dry_run::dry_run_pipeline(&c, &pipeline, remote.json).await
                } else {
                    client::run_pipeline(&c, &pipeline, !no_follow, reconcile, remote.json).await
                }
            }
            Command::Reconcile {
                pipeline,
                no_follow,
                remote,
            } => {
                let c = remote.connect()?;
                client::run_pipeline(&c, &pipeline, !no_follow, true, remote.json).await
            }
            Command::Cancel { pipeline, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &pipeline).await?;
                let record = format!("/v1/pipelines/{}", id(&found));
                super::runs::cancel_running(&c, &record, &found["name"], &remote).await
            }
        }
    }
}

/// Enables or disables a pipeline.
async fn switch(remote: &Remote, pipeline: &str, enabled: bool) -> Result<()> {
    let c = remote.connect()?;
    let found = find(&c, pipeline).await?;
    let v = c
        .patch(
            &format!("/v1/pipelines/{}", id(&found)),
            &json!({ "enabled": enabled }),
        )
        .await?;
    done(remote, &v, if enabled { "Enabled" } else { "Disabled" })
}

/// Prints a saved pipeline: the API's answer, or one line saying what was done to it.
fn done(remote: &Remote, v: &Value, verb: &str) -> Result<()> {
    super::saved(remote, v, verb, "pipeline")
}

fn show_text(v: &Value) -> String {
    let mut shown = v.clone();
    let obj = shown.as_object_mut().expect("a pipeline is an object");
    obj.insert(
        "enabled".into(),
        Value::String(if v["enabled"] == true { "yes" } else { "no" }.into()),
    );
    if !v["filter"].is_null() {
        obj.insert("filter".into(), v["filter_summary"].clone());
    }
    obj.insert(
        "schedule".into(),
        match &v["schedule"] {
            Value::Null => "off".into(),
            Value::String(s) => s.clone().into(),
            other => format!("cron {}", cell(&other["cron"])).into(),
        },
    );
    let mut out = fields(
        &shown,
        &[
            ("name", "Name:"),
            ("id", "Id:"),
            ("description", "Description:"),
            ("enabled", "Enabled:"),
            ("destination", "Connection:"),
            ("table", "Table:"),
            ("key", "Key:"),
            ("filter", "Filter:"),
            ("schedule", "Schedule:"),
            ("on_leave", "On leave:"),
            ("running", "Running:"),
            ("next_run_at", "Next run:"),
        ],
    );
    let t = &v["transformation"];
    if let Some(m) = t["mapping"].as_object() {
        out += "Mapping:\n";
        let rows: Vec<Vec<String>> = m
            .iter()
            .map(|(col, e)| vec![format!("  {col}"), cell(e)])
            .collect();
        out += &output::table(&["  COLUMN", "EXPRESSION"], &rows);
    } else if t.get("javascript").is_some() {
        out += "Transformation: JavaScript\n";
    } else if t.get("python").is_some() {
        out += "Transformation: Python\n";
    }
    if !v["last_run"].is_null() {
        out += &format!("Last run:\n{}", super::runs::summary(&v["last_run"]));
    }
    out
}

fn preview_text(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["samples"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let detail = if let Some(e) = s["error"].as_str() {
                format!("error: {e}")
            } else if let Some(r) = s["reason"].as_str() {
                r.to_string()
            } else {
                s["row"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(c, x)| format!("{c}={}", cell(x)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            vec![cell(&s["profile"]["_id"]), cell(&s["action"]), detail]
        })
        .collect();
    output::table(&["PROFILE", "ACTION", "ROW"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preview_shows_each_profile_with_its_action_and_row() {
        let v = json!({"columns": ["id", "email"], "samples": [
            {"profile": {"_id": "c1"}, "row": {"id": "c1", "email": "a@b.c"}, "action": "insert", "error": null},
            {"profile": {"_id": "c2"}, "row": null, "action": "skip", "error": null, "reason": "not in the audience"},
            {"profile": {"_id": "c3"}, "row": null, "action": "skip", "error": "no email"}
        ]});
        let text = preview_text(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "PROFILE  ACTION  ROW");
        assert_eq!(lines[1], "c1       insert  id=c1 email=a@b.c");
        assert_eq!(lines[2], "c2       skip    not in the audience");
        assert_eq!(lines[3], "c3       skip    error: no email");
    }
}
