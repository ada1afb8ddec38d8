//! `sluice sources …`: create, list, show, edit, enable, disable, delete, run and preview source
//! pipelines — a connection's table or query read into the profile store. A source is named by id or
//! name anywhere, and its connection too.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{cell, key_value, print_json, read_doc, set, Remote};
use crate::client::{self, encode, CliError, Client};
use crate::output;

const SOURCE: output::Kind = output::Kind {
    one: "source",
    many: "sources",
    list: "sluice sources list",
    route: "/v1/sources",
    field: "sources",
};

#[derive(Subcommand)]
pub enum Command {
    /// Create a source, from a file (JSON or YAML, as the API takes it) and/or flags. It is checked
    /// against its live table or query before it is saved.
    #[command(after_help = "Examples:
  sluice sources create --file crm.yaml
  sluice sources create --name 'CRM customers' --connection CRM --table customers --id-column customer_id \\
      --map email='lower(email)' --map address.city=city --cursor updated_at --schedule 5s
  sluice sources create --name Orders --connection Shop --query 'SELECT customer, count(*) AS n FROM orders GROUP BY customer' \\
      --id-column customer --map orders=n --full --on-missing delete")]
    Create {
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// List sources.
    #[command(after_help = "Example:\n  sluice sources list")]
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one source (by name or id): its definition, mark and last run.
    #[command(after_help = "Example:\n  sluice sources show 'CRM customers' --json")]
    Show {
        source: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a source (by name or id): only what the file and flags give changes.
    #[command(after_help = "Examples:
  sluice sources edit 'CRM customers' --schedule 1h
  sluice sources edit 'CRM customers' --file changes.yaml")]
    Edit {
        source: String,
        #[command(flatten)]
        spec: Spec,
        #[command(flatten)]
        remote: Remote,
    },
    /// Enable a source: its schedule runs it again, and it can be run.
    #[command(after_help = "Example:\n  sluice sources enable 'CRM customers'")]
    Enable {
        source: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a source: no run starts until it is enabled again.
    #[command(after_help = "Example:\n  sluice sources disable 'CRM customers'")]
    Disable {
        source: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a source (the profiles it wrote stay).
    #[command(after_help = "Example:\n  sluice sources delete 'CRM customers'")]
    Delete {
        source: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a source now (by name or id) and follow it; exits 1 when the run fails.
    #[command(after_help = "Examples:
  sluice sources run 'CRM customers'
  sluice sources run 'CRM customers' --no-follow --json")]
    Run {
        source: String,
        /// Start the run and return without following it.
        #[arg(long)]
        no_follow: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a source's runs (by name or id), newest first, with what each read and wrote.
    #[command(after_help = "Examples:
  sluice sources runs 'CRM customers'
  sluice sources runs 'CRM customers' --limit 100 --json")]
    Runs {
        source: String,
        /// Runs to show, 1 to 500.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Runs older than this one (the `next` of a `--json` page).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop the run of a source (by name or id) that is queued or running; exits 4 when none is. The
    /// pages it wrote stay; its mark does not move, so the next run reads them again.
    #[command(after_help = "Example:\n  sluice sources cancel 'CRM customers'")]
    Cancel {
        source: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a source makes of its first rows: the properties each would write and why it would
    /// fail. Previews a saved source, or with --file and/or flags one that is not saved; writes nothing.
    #[command(after_help = "Examples:
  sluice sources preview 'CRM customers' --limit 5
  sluice sources preview --file draft.yaml")]
    Preview {
        /// The saved source; leave it out to preview the one --file and the flags describe.
        source: Option<String>,
        #[command(flatten)]
        spec: Spec,
        /// How many source rows (1 to 100; 10 by default).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A source as a file and/or flags give it.
#[derive(Args, Clone, Debug, Default)]
pub struct Spec {
    /// A JSON or YAML file with the source's fields, as the API takes them (`-` for standard input);
    /// flags override it.
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    /// The source's name (unique).
    #[arg(long)]
    pub name: Option<String>,
    /// What it is for.
    #[arg(long)]
    pub description: Option<String>,
    /// The connection read from (name or id).
    #[arg(long)]
    pub connection: Option<String>,
    /// The table read.
    #[arg(long, conflicts_with = "query")]
    pub table: Option<String>,
    /// A SELECT read instead of a table.
    #[arg(long)]
    pub query: Option<String>,
    /// The column whose value becomes the profile's `_id`.
    #[arg(long)]
    pub id_column: Option<String>,
    /// A Customer Model property and the expression over source columns that fills it, as
    /// PROPERTY=EXPRESSION (repeatable): the mapping transformation.
    #[arg(long = "map", value_name = "PROPERTY=EXPRESSION")]
    pub mapping: Vec<String>,
    /// Read changes by this column, which grows with every change (`updated_at`, an id).
    #[arg(long, conflicts_with = "full")]
    pub cursor: Option<String>,
    /// Read everything at each run, writing only what changed.
    #[arg(long)]
    pub full: bool,
    /// With --full: what happens to a profile whose source row disappeared, keep or delete.
    #[arg(long, requires = "full")]
    pub on_missing: Option<String>,
    /// `off`, or one of 5s 10s 15s 30s 1m 2m 5m 15m 30m 1h 2h 3h 6h 8h 12h 24h.
    #[arg(long)]
    pub schedule: Option<String>,
    /// With --cursor: how far behind the greatest cursor seen the next run starts (`10s`, `5m` for a
    /// timestamp, a number for an integer); the server's default (10s, or 10000) when left out.
    #[arg(long, requires = "cursor")]
    pub lookback: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
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
        set(&mut doc, "id_column", self.id_column.clone());
        if let Some(t) = &self.table {
            doc.insert("table".into(), json!(t));
            doc.insert("query".into(), Value::Null);
        }
        if let Some(q) = &self.query {
            doc.insert("query".into(), json!(q));
            doc.insert("table".into(), Value::Null);
        }
        if let Some(conn) = &self.connection {
            let found = super::connections::find(c, conn).await?;
            doc.insert("connection".into(), found["id"].clone());
        }
        if !self.mapping.is_empty() {
            let mut mapping = Map::new();
            for pair in &self.mapping {
                let (property, expr) = key_value(pair)?;
                let expr = match expr {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                mapping.insert(property, Value::String(expr));
            }
            doc.insert("transformation".into(), json!({ "mapping": mapping }));
        }
        if let Some(column) = &self.cursor {
            let mut changes = json!({"mode": "cursor", "column": column});
            if let Some(l) = &self.lookback {
                // A number is an integer cursor's lookback; anything else a duration.
                changes["lookback"] = l
                    .trim()
                    .parse::<i64>()
                    .map_or_else(|_| json!(l), |n| json!(n));
            }
            doc.insert("changes".into(), changes);
        }
        if self.full {
            let on_missing = self.on_missing.clone().unwrap_or_else(|| "keep".into());
            doc.insert(
                "changes".into(),
                json!({"mode": "full", "on_missing": on_missing}),
            );
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
        }
        Ok(doc)
    }
}

/// The source a user names, by id or name (in any case when unambiguous).
pub async fn find(c: &Client, query: &str) -> Result<Value> {
    c.find(&SOURCE, query).await
}

fn id(v: &Value) -> String {
    encode(v["id"].as_str().unwrap_or_default())
}

/// What a source reads, in a few words.
fn reads(v: &Value) -> String {
    match (v["table"].as_str(), v["query"].as_str()) {
        (Some(t), _) => t.to_string(),
        (_, Some(q)) if q.chars().count() > 40 => {
            format!("{}…", q.chars().take(39).collect::<String>())
        }
        (_, Some(q)) => q.to_string(),
        _ => String::new(),
    }
}

fn changes(v: &Value) -> String {
    match v["changes"]["mode"].as_str() {
        Some("cursor") => format!("cursor {}", cell(&v["changes"]["column"])),
        Some("full") => format!(
            "full, on missing {}",
            v["changes"]["on_missing"].as_str().unwrap_or("keep")
        ),
        _ => String::new(),
    }
}

fn last_run(v: &Value) -> String {
    let r = &v["last_run"];
    if r.is_null() {
        return "never".into();
    }
    format!("{} {}", cell(&r["status"]), cell(&r["queued_at"]))
}

/// A run's counts in the words of a source: what it read and what became of the profiles.
fn counts_line(c: &Value) -> String {
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    let mut parts = vec![
        format!("{} read", sluice_store::thousands(n("read"))),
        format!(
            "{} written ({} new, {} updated)",
            sluice_store::thousands(n("inserted") + n("updated")),
            sluice_store::thousands(n("inserted")),
            sluice_store::thousands(n("updated"))
        ),
    ];
    for (k, word) in [
        ("unchanged", "unchanged"),
        ("deleted", "deleted"),
        ("filtered_out", "skipped by the script"),
    ] {
        if n(k) > 0 {
            parts.push(format!("{} {word}", sluice_store::thousands(n(k))));
        }
    }
    let failed = n("failed") + n("transform_failed");
    if failed > 0 {
        parts.push(format!("{} failed", sluice_store::thousands(failed)));
    }
    parts.join("; ")
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Create { spec, remote } => {
                let c = remote.connect()?;
                let doc = spec.doc(&c).await?;
                let made = c.post("/v1/sources", &Value::Object(doc)).await?;
                done(&remote, &made, "Created")
            }
            Command::List { remote } => {
                let c = remote.connect()?;
                let sources = c.get("/v1/sources").await?;
                if remote.json {
                    print_json(&sources);
                    return Ok(());
                }
                let destinations = c.get("/v1/destinations").await?;
                let connection_name = |id: &Value| {
                    destinations["destinations"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|d| d["id"] == *id)
                        .map(|d| cell(&d["name"]))
                        .unwrap_or_else(|| cell(id))
                };
                let rows: Vec<Vec<String>> = sources["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        vec![
                            cell(&s["name"]),
                            if s["enabled"] == true { "yes" } else { "no" }.into(),
                            connection_name(&s["connection"]),
                            reads(s),
                            changes(s),
                            if s["schedule"].is_null() {
                                "off".into()
                            } else {
                                cell(&s["schedule"])
                            },
                            last_run(s),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    output::table(
                        &[
                            "NAME",
                            "ENABLED",
                            "CONNECTION",
                            "READS",
                            "CHANGES",
                            "SCHEDULE",
                            "LAST RUN"
                        ],
                        &rows
                    )
                );
                Ok(())
            }
            Command::Show { source, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let v = c.get(&format!("/v1/sources/{}", id(&found))).await?;
                if remote.json {
                    print_json(&v);
                    return Ok(());
                }
                let mut rows = vec![
                    vec!["name".to_string(), cell(&v["name"])],
                    vec!["id".into(), cell(&v["id"])],
                    vec![
                        "enabled".into(),
                        if v["enabled"] == true { "yes" } else { "no" }.into(),
                    ],
                    vec!["connection".into(), cell(&v["connection"])],
                    vec!["reads".into(), reads(&v)],
                    vec!["id column".into(), cell(&v["id_column"])],
                    vec!["changes".into(), changes(&v)],
                    vec!["schedule".into(), cell(&v["schedule"])],
                    vec!["transformation".into(), v["transformation"].to_string()],
                    vec!["mark".into(), cell(&v["mark"]["value"])],
                    vec!["last run".into(), last_run(&v)],
                ];
                if !v["last_run"].is_null() {
                    rows.push(vec![
                        "last counts".into(),
                        counts_line(&v["last_run"]["counts"]),
                    ]);
                }
                print!("{}", output::table(&["FIELD", "VALUE"], &rows));
                Ok(())
            }
            Command::Edit {
                source,
                spec,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let doc = spec.doc(&c).await?;
                if doc.is_empty() {
                    return Err(CliError::invalid(
                        "nothing to change: give --file or a field's flag (see `sluice sources edit --help`)",
                    )
                    .into());
                }
                let v = c
                    .patch(&format!("/v1/sources/{}", id(&found)), &Value::Object(doc))
                    .await?;
                done(&remote, &v, "Changed")
            }
            Command::Enable { source, remote } => switch(&remote, &source, true).await,
            Command::Disable { source, remote } => switch(&remote, &source, false).await,
            Command::Delete { source, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let v = c.delete(&format!("/v1/sources/{}", id(&found))).await?;
                if remote.json {
                    print_json(&v);
                } else {
                    println!("Deleted the source `{}`", cell(&found["name"]));
                }
                Ok(())
            }
            Command::Run {
                source,
                no_follow,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let started = c
                    .post(
                        &format!("/v1/sources/{}/runs", id(&found)),
                        &json!({"trigger": "manual"}),
                    )
                    .await?;
                let run_id = started["id"].as_str().unwrap_or_default().to_string();
                if no_follow {
                    if remote.json {
                        print_json(&started);
                    } else {
                        println!("Started run {run_id} of `{}`", cell(&found["name"]));
                    }
                    return Ok(());
                }
                let run = loop {
                    let r = c.get(&format!("/v1/runs/{}", encode(&run_id))).await?;
                    if matches!(
                        r["status"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    ) {
                        break r;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                };
                if remote.json {
                    print_json(&run);
                } else {
                    println!(
                        "Run {run_id} of `{}` {}: {}",
                        cell(&found["name"]),
                        cell(&run["status"]),
                        counts_line(&run["counts"])
                    );
                    for e in run["errors"].as_array().into_iter().flatten() {
                        println!(
                            "  [{}] {} × {}",
                            cell(&e["step"]),
                            e["count"],
                            cell(&e["message"])
                        );
                    }
                    if let Some(m) = run["message"].as_str() {
                        println!("  {m}");
                    }
                }
                client::ended_well(&run)
            }
            Command::Runs {
                source,
                limit,
                before,
                remote,
            } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let runs = format!("/v1/sources/{}/runs", id(&found));
                let counts = |r: &Value| counts_line(&r["counts"]);
                super::runs::list(&c, &runs, limit, before.as_deref(), &remote, counts).await
            }
            Command::Cancel { source, remote } => {
                let c = remote.connect()?;
                let found = find(&c, &source).await?;
                let record = format!("/v1/sources/{}", id(&found));
                super::runs::cancel_running(&c, &record, &found["name"], &remote).await
            }
            Command::Preview {
                source,
                spec,
                limit,
                remote,
            } => {
                let c = remote.connect()?;
                let mut doc = match &source {
                    Some(s) => {
                        let found = find(&c, s).await?;
                        let mut d = Map::new();
                        for k in [
                            "connection",
                            "name",
                            "description",
                            "enabled",
                            "table",
                            "query",
                            "id_column",
                            "transformation",
                            "changes",
                            "schedule",
                        ] {
                            if let Some(v) = found.get(k) {
                                d.insert(k.into(), v.clone());
                            }
                        }
                        d
                    }
                    None => Map::new(),
                };
                doc.extend(spec.doc(&c).await?);
                if doc.is_empty() {
                    return Err(CliError::invalid(
                        "name a saved source, or describe an unsaved one with --file and/or flags",
                    )
                    .into());
                }
                let mut body = json!({ "source": doc });
                if let Some(l) = limit {
                    body["limit"] = json!(l);
                }
                let v = c.post("/v1/sources/preview", &body).await?;
                if remote.json {
                    print_json(&v);
                    return Ok(());
                }
                let rows: Vec<Vec<String>> = v["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        let errors: Vec<String> = r["errors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(cell)
                            .collect();
                        vec![
                            cell(&r["id"]),
                            if r["skipped"] == true {
                                "(skipped)".into()
                            } else if r["properties"].is_null() {
                                String::new()
                            } else {
                                r["properties"].to_string()
                            },
                            errors.join("; "),
                        ]
                    })
                    .collect();
                print!("{}", output::table(&["ID", "PROPERTIES", "ERRORS"], &rows));
                Ok(())
            }
        }
    }
}

/// Enables or disables a source.
async fn switch(remote: &Remote, source: &str, enabled: bool) -> Result<()> {
    let c = remote.connect()?;
    let found = find(&c, source).await?;
    let v = c
        .patch(
            &format!("/v1/sources/{}", id(&found)),
            &json!({ "enabled": enabled }),
        )
        .await?;
    done(remote, &v, if enabled { "Enabled" } else { "Disabled" })
}

fn done(remote: &Remote, v: &Value, verb: &str) -> Result<()> {
    super::saved(remote, v, verb, "source")
}
