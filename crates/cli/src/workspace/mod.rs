//! The workspace as code: `sluice validate`, `plan`, `apply`, `export` and `serve --workspace`.
//!
//! The files are read here (YAML with positions, secrets read from the environment or from files on
//! this machine) into the document `POST /v1/workspace/apply` takes; every check is the server's own
//! (`sluice_api::workspace`), run in-process for offline validation and by the server otherwise, and each
//! problem the checks name by field path is printed at its file, line and column.

pub mod emit;
pub mod load;
pub mod schema;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sluice_api::workspace::{Action, ApplyAnswer, Change, Kind};

use crate::client::{CliError, Client};
use crate::ClientArgs;
use load::{Loaded, Problem, Secrets};

/// The workspace commands (flattened into the top level of `sluice`).
#[derive(clap::Subcommand)]
pub enum Command {
    /// Check workspace files (a YAML file or a folder of them) and print every problem at once, with
    /// file, line, column and field path.
    #[command(after_help = "Example:\n  sluice validate workspace/ --online")]
    Validate {
        path: std::path::PathBuf,
        /// Also ask the running server to connect to each connection and check every pipeline's table,
        /// key and column types (secrets are read from where the files point).
        #[arg(long)]
        online: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show, field by field, what `apply` would create, change and delete, and how many rows the next
    /// run of each changed pipeline would write; prints `No changes.` when there is nothing to do.
    #[command(after_help = "Example:\n  sluice plan workspace/")]
    Plan {
        path: std::path::PathBuf,
        /// Also show what `apply --prune` would delete.
        #[arg(long)]
        prune: bool,
        /// Print the API's JSON answer unchanged instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make the workspace match the files, all at once or not at all, and print what changed.
    #[command(after_help = "Example:\n  sluice apply workspace/ --prune")]
    Apply {
        path: std::path::PathBuf,
        /// Delete the connections and pipelines the files do not name (without it they are kept).
        #[arg(long)]
        prune: bool,
        /// Print the API's JSON answer unchanged instead.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write the current workspace as YAML (secrets named by environment variable, never written).
    #[command(after_help = "Example:\n  sluice export > workspace.yaml")]
    Export {
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        /// Write the JSON Schema of workspace files instead (as published in docs/workspace.schema.json).
        #[arg(long)]
        json_schema: bool,
        /// Print the API's JSON answer (`GET /v1/workspace`) unchanged instead of YAML.
        #[arg(long, conflicts_with = "json_schema")]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Command::Validate {
                path,
                online,
                client,
            } => validate(&path, online.then_some(&client)).await,
            Command::Plan {
                path,
                prune,
                json,
                client,
            } => plan(&client, &path, prune, json).await,
            Command::Apply {
                path,
                prune,
                json,
                client,
            } => apply(&client, &path, prune, json).await,
            Command::Export {
                json_schema: true,
                output,
                ..
            } => write_out(
                output.as_deref(),
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&schema::json_schema())?
                ),
            ),
            Command::Export {
                output,
                json,
                client,
                ..
            } => export(&client, output.as_deref(), json).await,
        }
    }
}

/// Exit status when the files are invalid (as opposed to a failure to reach or use the server).
pub const EXIT_INVALID: i32 = 2;

/// Reads the files, with secrets read or only checked; problems are printed and end the process.
fn read(path: &Path, secrets: Secrets) -> Loaded {
    let mut loaded = load::load(path).unwrap_or_else(|p| fail_invalid(&p));
    if let Err(p) = load::resolve_secrets(&mut loaded, secrets) {
        fail_invalid(&p);
    }
    loaded
}

fn fail_invalid(problems: &[Problem]) -> ! {
    for p in problems {
        eprintln!("{p}");
    }
    eprintln!(
        "{} problem{} found",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    std::process::exit(EXIT_INVALID)
}

/// The problems of an API error, each at its place in the files.
fn problems_of(loaded: &Loaded, error: &Value) -> Vec<Problem> {
    let err = &error["error"];
    let mut out = Vec::new();
    for (path, messages) in err["fields"].as_object().into_iter().flatten() {
        for m in messages.as_array().into_iter().flatten() {
            out.push(loaded.problem(path, m.as_str().unwrap_or_default()));
        }
    }
    if out.is_empty() {
        out.push(Problem {
            pos: None,
            path: String::new(),
            message: err["message"]
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string),
        });
    }
    out
}

/// `sluice validate PATH [--online]`.
pub async fn validate(path: &Path, online: Option<&ClientArgs>) -> Result<()> {
    let mode = if online.is_some() {
        Secrets::Read
    } else {
        Secrets::CheckOnly
    };
    let loaded = read(path, mode);
    if let Err(errors) = sluice_api::workspace::check_offline(&loaded.doc) {
        let problems: Vec<Problem> = errors.iter().map(|(p, m)| loaded.problem(p, m)).collect();
        fail_invalid(&problems);
    }
    if let Some(args) = online {
        let client = Client::new(args)?;
        let mut problems = Vec::new();
        // Each connection is tried, also those no pipeline uses yet.
        for (name, conn) in loaded.doc["connections"].as_object().into_iter().flatten() {
            let (status, answer) = client
                .raw(reqwest::Method::POST, "/v1/destinations/test", Some(conn))
                .await?;
            if !status.is_success() {
                problems.extend(problems_of(&loaded, &answer).into_iter().map(|mut p| {
                    p.path =
                        sluice_core::errors::join_path(&format!("connections.{name}"), &p.path);
                    p.pos = loaded.position(&p.path);
                    p
                }));
            } else if answer["ok"] != json!(true) {
                problems.push(loaded.problem(
                    &format!("connections.{name}"),
                    format!(
                        "cannot connect: {}",
                        answer["error"]["message"].as_str().unwrap_or("the test failed")
                    ),
                ));
            }
        }
        // The server checks every pipeline against its live table (tables, keys, column types) and
        // every source against its live table or query, as saving them does.
        let (status, answer) = client
            .raw(
                reqwest::Method::POST,
                "/v1/workspace/apply",
                Some(&json!({"workspace": loaded.doc, "dry_run": true})),
            )
            .await?;
        if !status.is_success() {
            problems.extend(problems_of(&loaded, &answer));
        }
        if !problems.is_empty() {
            fail_invalid(&problems);
        }
    }
    let count = |s: &str| loaded.doc[s].as_object().map_or(0, |m| m.len());
    println!(
        "The workspace is valid: {} connection{}, {} pipeline{}, {} source{}{}.",
        count("connections"),
        if count("connections") == 1 { "" } else { "s" },
        count("pipelines"),
        if count("pipelines") == 1 { "" } else { "s" },
        count("sources"),
        if count("sources") == 1 { "" } else { "s" },
        if online.is_some() {
            ", checked against the live databases"
        } else {
            ""
        }
    );
    Ok(())
}

/// Sends the files to the server to plan or apply; invalid files end the process with their problems.
/// With `json`, prints the answer as it came.
async fn send(
    client: &Client,
    loaded: &Loaded,
    prune: bool,
    dry_run: bool,
    json: bool,
) -> Result<ApplyAnswer> {
    let body = json!({"workspace": loaded.doc, "prune": prune, "dry_run": dry_run});
    let (status, answer) = client
        .raw(reqwest::Method::POST, "/v1/workspace/apply", Some(&body))
        .await?;
    if status == reqwest::StatusCode::UNPROCESSABLE_ENTITY {
        fail_invalid(&problems_of(loaded, &answer));
    }
    if !status.is_success() {
        return Err(CliError::from_answer(status, &answer).into());
    }
    if json {
        crate::commands::print_json(&answer);
    }
    serde_json::from_value(answer).context("the server's answer is not a workspace plan")
}

/// `sluice plan PATH [--prune]`.
pub async fn plan(args: &ClientArgs, path: &Path, prune: bool, json: bool) -> Result<()> {
    let loaded = read(path, Secrets::Read);
    let client = Client::new(args)?;
    let answer = send(&client, &loaded, prune, true, json).await?;
    if json {
        return Ok(());
    }
    if answer.changes.is_empty() {
        println!("No changes.");
    } else {
        for change in &answer.changes {
            print!("{}", render_change(change, false));
            if change.rewrites_rows {
                print_row_counts(&client, &loaded, change).await;
            }
        }
        print!("{}", render_summary(&answer, false));
    }
    print!("{}", render_kept(&answer, prune));
    Ok(())
}

/// `sluice apply PATH [--prune]`.
pub async fn apply(args: &ClientArgs, path: &Path, prune: bool, json: bool) -> Result<()> {
    let loaded = read(path, Secrets::Read);
    let client = Client::new(args)?;
    let answer = send(&client, &loaded, prune, false, json).await?;
    if json {
        return Ok(());
    }
    if answer.changes.is_empty() {
        println!("No changes.");
    } else {
        print!("{}", render(&answer, true));
    }
    print!("{}", render_kept(&answer, prune));
    Ok(())
}

/// Applies a workspace in-process when the server starts (`sluice serve --workspace`); a workspace that
/// does not apply stops the start, so a deployment never runs with half its configuration.
pub async fn apply_at_start(state: &sluice_api::AppState, path: &Path) -> Result<()> {
    let loaded = read(path, Secrets::Read);
    let principal = sluice_api::access::Principal::admin();
    match sluice_api::workspace::apply_document(state, &principal, &loaded.doc, false, false).await
    {
        Ok(answer) => {
            if answer.changes.is_empty() {
                eprintln!("Workspace {}: no changes.", path.display());
            } else {
                eprint!("Workspace {}:\n{}", path.display(), render(&answer, true));
            }
            Ok(())
        }
        Err(e) => {
            let problems: Vec<Problem> = match e.fields {
                Some(fields) => fields.iter().map(|(p, m)| loaded.problem(p, m)).collect(),
                None => vec![Problem {
                    pos: None,
                    path: String::new(),
                    message: e.message,
                }],
            };
            for p in &problems {
                eprintln!("{p}");
            }
            bail!("the workspace {} could not be applied", path.display())
        }
    }
}

/// `sluice export`: the current workspace as YAML.
pub async fn export(args: &ClientArgs, output: Option<&Path>, json: bool) -> Result<()> {
    let client = Client::new(args)?;
    let answer = client.get("/v1/workspace").await?;
    if json {
        return write_out(
            output,
            format!("{}\n", serde_json::to_string_pretty(&answer)?),
        );
    }
    let text = format!(
        "# A Sluice workspace (docs/WORKSPACE.md; JSON Schema: docs/workspace.schema.json).\n# Secrets are read from the environment variables named below; set them before `sluice apply`.\n{}",
        emit::to_yaml(&answer["workspace"])
    );
    write_out(output, text)
}

fn write_out(output: Option<&Path>, text: String) -> Result<()> {
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::CustomerModel => "customer model",
        Kind::Connection => "connection",
        Kind::Pipeline => "pipeline",
        Kind::Source => "source",
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) if !s.contains('\n') => s.clone(),
        Value::String(s) => format!("({} lines)", s.lines().count()),
        other => other.to_string(),
    }
}

/// The changes, one block per object with a line per field, and the summary.
pub fn render(answer: &ApplyAnswer, done: bool) -> String {
    let mut out: String = answer
        .changes
        .iter()
        .map(|c| render_change(c, done))
        .collect();
    out.push_str(&render_summary(answer, done));
    out
}

/// One object's change: a line saying what happens to it, then a line per field.
fn render_change(c: &Change, done: bool) -> String {
    let (sign, verb) = match (&c.action, done) {
        (Action::Create, false) => ("+", "create"),
        (Action::Update, false) => ("~", "change"),
        (Action::Delete, false) => ("-", "delete"),
        (Action::Create, true) => ("+", "created"),
        (Action::Update, true) => ("~", "changed"),
        (Action::Delete, true) => ("-", "deleted"),
    };
    let mut out = format!("{sign} {verb} {} `{}`\n", kind_word(c.kind), c.name);
    for f in &c.fields {
        out.push_str(&match c.action {
            Action::Create => format!("    {}: {}\n", f.path, short(&f.after)),
            Action::Delete => format!("    {}: {}\n", f.path, short(&f.before)),
            Action::Update => format!(
                "    {}: {} → {}\n",
                f.path,
                short(&f.before),
                short(&f.after)
            ),
        });
    }
    if c.resets_mark {
        out.push_str(if done {
            "    its mark was reset: the next run reads everything again
"
        } else {
            "    resets its mark: the next run reads everything again
"
        });
    }
    out
}

fn render_summary(answer: &ApplyAnswer, done: bool) -> String {
    let count = |a: Action| answer.changes.iter().filter(|c| c.action == a).count();
    let (created, updated, deleted) = (
        count(Action::Create),
        count(Action::Update),
        count(Action::Delete),
    );
    if done {
        format!("Applied: {created} created, {updated} changed, {deleted} deleted.\n")
    } else {
        format!("Plan: {created} to create, {updated} to change, {deleted} to delete.\n")
    }
}

fn render_kept(answer: &ApplyAnswer, prune: bool) -> String {
    if answer.kept.is_empty() || prune {
        return String::new();
    }
    let mut out = String::from("Not in the files, kept (apply with --prune to delete):\n");
    for k in &answer.kept {
        out.push_str(&format!(
            "  {} `{}` ({})\n",
            kind_word(k.kind),
            k.name,
            k.id
        ));
    }
    out
}

/// How many rows of its table the next run of a changed pipeline would insert, update, delete and leave
/// unchanged, from a dry run of the new definition against the current profiles and sync state.
///
/// ROW COUNTS OF `sluice plan` — the place where each changed export pipeline's counts are filled in.
/// It asks `POST /v1/dry-runs` (`{"pipeline": <spec>, "replaces": <id or null>}`) and reads the run at
/// `GET /v1/runs/{id}`; a server without dry runs, or a pipeline whose connection does not exist yet,
/// gets a line saying the counts are not available.
async fn print_row_counts(client: &Client, loaded: &Loaded, change: &Change) {
    match row_counts(client, loaded, change).await {
        Ok(counts) => println!(
            "    rows of `{}` on the next run: {} to insert, {} to update, {} to delete, {} unchanged",
            change.name,
            counts["inserted"],
            counts["updated"],
            counts["deleted"],
            counts["unchanged"]
        ),
        Err(why) => println!("    rows of `{}`: not counted ({why})", change.name),
    }
}

async fn row_counts(client: &Client, loaded: &Loaded, change: &Change) -> Result<Value> {
    let mut spec = loaded.doc["pipelines"][change.name.as_str()].clone();
    let connection = spec["connection"].as_str().unwrap_or_default().to_string();
    let destinations = client.get("/v1/destinations").await?;
    let Some(id) = destinations["destinations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["name"] == connection.as_str())
        .and_then(|d| d["id"].as_str())
    else {
        bail!("its connection `{connection}` is created by this workspace; apply first");
    };
    if let Some(obj) = spec.as_object_mut() {
        obj.shift_remove("connection");
        obj.insert("destination".into(), json!(id));
        obj.insert("name".into(), json!(change.name));
    }
    let replaces = match change.action {
        Action::Update => change.id.clone(),
        _ => None,
    };
    let (status, run) = client
        .raw(
            reqwest::Method::POST,
            "/v1/dry-runs",
            Some(&json!({"pipeline": spec, "replaces": replaces})),
        )
        .await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        bail!("this server has no dry runs");
    }
    if !status.is_success() {
        bail!(
            "{}",
            run["error"]["message"]
                .as_str()
                .unwrap_or("the dry run was refused")
        );
    }
    let run_id = run["id"].as_str().unwrap_or_default().to_string();
    loop {
        let r = client.get(&format!("/v1/runs/{run_id}")).await?;
        match r["status"].as_str() {
            Some("succeeded") => return Ok(r["counts"].clone()),
            Some("failed") | Some("cancelled") => {
                bail!("the dry run {}", r["status"].as_str().unwrap_or("failed"))
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}
