//! The resource commands of `sluice` (connections, pipelines, runs, profiles, the Customer Model, tokens):
//! each a thin layer over the REST API, printing a person's view by default and the API's JSON answer
//! unchanged with `--json`. What they share lives here: how they reach the server, how a spec is read from
//! a file or standard input, how a secret is read without it ever being on the command line.

pub mod audit;
pub mod connections;
pub mod inspect;
pub mod model;
pub mod pipelines;
pub mod profiles;
pub mod runs;
pub mod sources;
pub mod tokens;

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Map, Value};

use crate::client::{CliError, Client};
use crate::ClientArgs;

/// How a resource command reaches the server, and how it prints.
#[derive(Args, Clone, Debug)]
pub struct Remote {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the API's JSON answer unchanged (for scripts) instead of the human view.
    #[arg(long)]
    pub json: bool,
}

impl Remote {
    pub fn connect(&self) -> Result<Client> {
        Client::new(&self.client)
    }
}

/// Prints an API answer as JSON, the same for every command.
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// A JSON or YAML document from a file, or from standard input for `-`: the object a create or an edit
/// sends. A file that cannot be read or parsed is invalid input naming the file.
pub fn read_doc(path: &Path) -> Result<Value> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        ("standard input".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::invalid(format!("cannot read {}: {e}", path.display())))?;
        (path.display().to_string(), text)
    };
    let value = match serde_json::from_str::<Value>(&text) {
        Ok(v) => v,
        Err(_) => crate::workspace::load::parse(path, &text)
            .map(|(v, _)| v)
            .map_err(|p| CliError::invalid(format!("{name} is neither JSON nor YAML: {p}")))?,
    };
    if !value.is_object() {
        return Err(CliError::invalid(format!(
            "{name} must hold one object (fields and their values)"
        ))
        .into());
    }
    Ok(value)
}

/// `KEY=VALUE` from the command line: the value as JSON when it reads as JSON (`5432`, `true`,
/// `{"mode": "require"}`), else as text.
pub fn key_value(pair: &str) -> Result<(String, Value), CliError> {
    let (k, v) = pair
        .split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .ok_or_else(|| CliError::invalid(format!("`{pair}` is not KEY=VALUE")))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}

/// Sets `key` in `doc` when `value` is given.
pub fn set(doc: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        doc.insert(key.to_string(), v.into());
    }
}

/// Where a secret comes from: never the command line itself, where other users and the shell history
/// would see it.
#[derive(Args, Clone, Debug, Default)]
pub struct SecretArgs {
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
}

impl SecretArgs {
    /// The password given by `--password-env` or `--password-file`; else, with `prompt` and a terminal on
    /// standard input, the one typed at a prompt without echo; else none.
    pub fn read(&self, prompt: bool) -> Result<Option<String>> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => Err(CliError::invalid(format!(
                    "--password-env: the environment variable {var} is not set"
                ))
                .into()),
            };
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::invalid(format!(
                    "--password-file: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let line = text.lines().next().unwrap_or_default();
            if line.is_empty() {
                return Err(CliError::invalid(format!(
                    "--password-file: {} is empty",
                    path.display()
                ))
                .into());
            }
            return Ok(Some(line.to_string()));
        }
        if prompt && std::io::stdin().is_terminal() {
            return prompt_hidden("Password: ").map(Some);
        }
        Ok(None)
    }
}

/// Reads a line from the terminal with echo off, restoring the terminal whatever happens.
fn prompt_hidden(prompt: &str) -> Result<String> {
    // Echo goes off before the prompt shows: what is typed (or pasted) as soon as it shows must not
    // reach the screen.
    // SAFETY: termios is plain data filled by tcgetattr on standard input, a terminal (checked by the
    // caller); the same settings are put back before returning.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            None
        } else {
            let mut quiet = t;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &quiet);
            Some(t)
        }
    };
    eprint!("{prompt}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    let read = std::io::stdin().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: as above.
        unsafe {
            libc::tcsetattr(0, libc::TCSANOW, &t);
        }
    }
    eprintln!();
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Prints a saved record: the API's answer with `--json`, else one line saying what was done to which
/// `kind` (`the pipeline `Daily` (pl_…)`).
pub fn saved(remote: &Remote, v: &Value, verb: &str, kind: &str) -> Result<()> {
    if remote.json {
        print_json(v);
    } else {
        println!(
            "{verb} the {kind} `{}` ({})",
            cell(&v["name"]),
            cell(&v["id"])
        );
    }
    Ok(())
}

/// A value as a person reads it in a listing: text as it is, nothing as `-`, the rest as JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `name: value` lines for the given fields of an object, names aligned; absent fields are left out.
pub fn fields(v: &Value, names: &[(&str, &str)]) -> String {
    let width = names.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, label) in names {
        if let Some(x) = v.get(*key) {
            out += &format!("{label:width$}  {}\n", cell(x));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_read_json_or_text() {
        assert_eq!(
            key_value("port=5432").unwrap(),
            ("port".into(), 5432.into())
        );
        assert_eq!(
            key_value("host=db.example.com").unwrap().1,
            Value::String("db.example.com".into())
        );
        assert_eq!(key_value("a==b").unwrap().1, Value::String("=b".into()));
        assert!(key_value("nothing").is_err());
        assert!(key_value("=x").is_err());
    }

    #[test]
    fn field_lines_align_and_skip_what_is_absent() {
        let v = serde_json::json!({"id": "pl_1", "name": "People", "schedule": null});
        let text = fields(
            &v,
            &[
                ("name", "Name:"),
                ("id", "Id:"),
                ("table", "Table:"),
                ("schedule", "Schedule:"),
            ],
        );
        assert_eq!(text, "Name:      People\nId:        pl_1\nSchedule:  -\n");
    }
}
