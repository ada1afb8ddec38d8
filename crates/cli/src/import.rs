//! `sluice profiles import FILE`: CSV (a header row of property paths such as `address.city`) or NDJSON,
//! sent in batches to `POST /v1/profiles`; rejected profiles are reported with their line number.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use crate::client::Client;
use crate::ClientArgs;

/// Counts the bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

pub async fn import(
    args: &ClientArgs,
    file: &Path,
    format: Option<&str>,
    batch_size: usize,
    ignore_unknown: bool,
    json: bool,
) -> Result<()> {
    let format = match format {
        Some(f) => f.to_ascii_lowercase(),
        None => match file
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => "csv".into(),
            Some("ndjson" | "jsonl") => "ndjson".into(),
            _ => bail!(
                "cannot tell the format of {}: pass --format csv or --format ndjson",
                file.display()
            ),
        },
    };
    let client = Client::new(args)?;
    let schema = client.get("/v1/profile-schema").await?;
    let structured = structured_paths(&schema);
    let known = Known::from_schema(&schema["properties"]);
    // Paths left out (with --ignore-unknown) or that rejected profiles (without), and those lines.
    let mut unknown_paths: BTreeSet<String> = BTreeSet::new();
    let mut unknown_lines: Vec<u64> = Vec::new();
    let f = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = f.metadata()?.len();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "Importing [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}",
        )?
        .progress_chars("=> "),
    );
    let reader = Counting {
        inner: f,
        bar: bar.clone(),
    };
    let batch_size = batch_size.clamp(1, 50_000);

    let mut totals = (0u64, 0u64);
    let mut batch: Vec<(u64, Value)> = Vec::with_capacity(batch_size);
    let mut problems: Vec<String> = Vec::new();
    let send = |batch: &mut Vec<(u64, Value)>| {
        let items: Vec<(u64, Value)> = std::mem::take(batch);
        let client = &client;
        async move {
            let lines: Vec<u64> = items.iter().map(|(l, _)| *l).collect();
            let profiles: Vec<Value> = items.into_iter().map(|(_, p)| p).collect();
            let answer = client
                .post("/v1/profiles", &json!({ "profiles": profiles }))
                .await?;
            let upserted = answer["upserted"].as_u64().unwrap_or(0);
            let mut out = Vec::new();
            for r in answer["rejected"].as_array().into_iter().flatten() {
                let idx = r["index"].as_u64().unwrap_or(0) as usize;
                let line = lines.get(idx).copied().unwrap_or(0);
                let errs: Vec<&str> = r["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str())
                    .collect();
                let id = r["_id"]
                    .as_str()
                    .map(|i| format!(" (_id {i})"))
                    .unwrap_or_default();
                out.push(format!("line {line}{id}: {}", errs.join("; ")));
            }
            anyhow::Ok((upserted, out))
        }
    };

    if format == "csv" {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(reader);
        let headers: Vec<String> = rdr
            .headers()
            .context("cannot read the CSV header row")?
            .iter()
            .map(str::to_string)
            .collect();
        let unknown: Vec<String> = headers
            .iter()
            .filter(|h| !known.has_path(h))
            .cloned()
            .collect();
        if !unknown.is_empty() && !ignore_unknown {
            bail!(
                "{} not in the Customer Model: {}. Add {} to the model, or pass --ignore-unknown to import \
                 the other columns",
                if unknown.len() == 1 { "this column is" } else { "these columns are" },
                backticked(&unknown),
                if unknown.len() == 1 { "it" } else { "them" },
            );
        }
        let keep: Vec<bool> = headers.iter().map(|h| known.has_path(h)).collect();
        unknown_paths.extend(unknown);
        for record in rdr.records() {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    match e.position() {
                        Some(p) => problems.push(format!("line {}: {e}", p.line())),
                        None => problems.push(format!("{e}")),
                    }
                    continue;
                }
            };
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            match csv_profile(&headers, &keep, &record, &structured) {
                Ok(p) => batch.push((line, p)),
                Err(e) => problems.push(format!("line {line}: {e}")),
            }
            if batch.len() >= batch_size {
                let (n, mut rej) = send(&mut batch).await?;
                totals.0 += n;
                totals.1 += rej.len() as u64;
                problems.append(&mut rej);
            }
        }
    } else if format == "ndjson" {
        // Lines are read as bytes so that one line of invalid UTF-8 is rejected on its own, as a CSV row
        // is, instead of ending the whole import.
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("cannot read line {}", line_no + 1))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            match ndjson_profile(&buf) {
                Ok(Some(mut v)) => {
                    let mut dropped = BTreeSet::new();
                    if let Value::Object(m) = &mut v {
                        known.strip(m, "", &mut dropped);
                    }
                    if dropped.is_empty() || ignore_unknown {
                        batch.push((line_no, v));
                    } else {
                        unknown_lines.push(line_no);
                    }
                    unknown_paths.extend(dropped);
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("line {line_no}: {e}")),
            }
            if batch.len() >= batch_size {
                let (n, mut rej) = send(&mut batch).await?;
                totals.0 += n;
                totals.1 += rej.len() as u64;
                problems.append(&mut rej);
            }
        }
    } else {
        bail!("unknown format `{format}`: use csv or ndjson");
    }
    if !batch.is_empty() {
        let (n, mut rej) = send(&mut batch).await?;
        totals.0 += n;
        totals.1 += rej.len() as u64;
        problems.append(&mut rej);
    }
    bar.finish_and_clear();
    if ignore_unknown && !unknown_paths.is_empty() {
        eprintln!(
            "warning: left out what is not in the Customer Model: {}",
            backticked(&unknown_paths.iter().cloned().collect::<Vec<_>>())
        );
    }
    let unknown_rejected = unknown_lines.len();
    for p in problems.iter().take(100) {
        eprintln!("rejected {p}");
    }
    if problems.len() > 100 {
        eprintln!("… and {} more", problems.len() - 100);
    }
    if unknown_rejected > 0 {
        let shown: Vec<String> = unknown_lines.iter().take(10).map(u64::to_string).collect();
        eprintln!(
            "rejected {} {} with properties not in the Customer Model ({}), at line{} {}{}; pass \
             --ignore-unknown to import them without those",
            unknown_rejected,
            if unknown_rejected == 1 {
                "profile"
            } else {
                "profiles"
            },
            backticked(&unknown_paths.iter().cloned().collect::<Vec<_>>()),
            if unknown_rejected == 1 { "" } else { "s" },
            shown.join(", "),
            if unknown_rejected > shown.len() {
                ", …"
            } else {
                ""
            },
        );
    }
    let rejected = problems.len() + unknown_rejected;
    if json {
        // The batches' answers summed, in their words.
        crate::commands::print_json(
            &serde_json::json!({"upserted": totals.0, "rejected": rejected}),
        );
    } else {
        println!("Imported {} profiles; {} rejected", totals.0, rejected);
    }
    if rejected > 0 && totals.0 == 0 {
        bail!("no profile was imported");
    }
    Ok(())
}

/// One NDJSON line (with its line ending) as a profile: `None` for a blank line, the reason otherwise.
fn ndjson_profile(line: &[u8]) -> std::result::Result<Option<Value>, String> {
    let text = std::str::from_utf8(line).map_err(|e| {
        format!(
            "not valid UTF-8 (at byte {} of the line)",
            e.valid_up_to() + 1
        )
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) if v.is_object() => Ok(Some(v)),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// Paths whose CSV cells hold JSON text (arrays, objects, json properties).
fn structured_paths(schema: &Value) -> Vec<String> {
    fn walk(props: &Value, prefix: &str, out: &mut Vec<String>) {
        for p in props.as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            let ty = p["type"].as_str().unwrap_or_default();
            if ty == "json" || ty.starts_with("array(") {
                out.push(path.clone());
            }
            if ty == "object" {
                walk(&p["properties"], &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&schema["properties"], "", &mut out);
    out
}

/// One CSV record as a profile: dotted headers become nested objects; empty cells are left out.
fn csv_profile(
    headers: &[String],
    keep: &[bool],
    record: &csv::StringRecord,
    structured: &[String],
) -> Result<Value> {
    let mut root = Map::new();
    for ((h, cell), keep) in headers.iter().zip(record.iter()).zip(keep) {
        if cell.is_empty() || !keep {
            continue;
        }
        let value = if structured.iter().any(|s| s == h) {
            serde_json::from_str(cell)
                .with_context(|| format!("column `{h}` must hold JSON text"))?
        } else {
            Value::String(cell.to_string())
        };
        let mut segments: Vec<&str> = h.split('.').collect();
        let last = segments.pop().unwrap_or_default();
        let mut obj = &mut root;
        for s in segments {
            let entry = obj
                .entry(s.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            obj = match entry {
                Value::Object(m) => m,
                _ => bail!("column `{h}` nests under a column that is not an object"),
            };
        }
        obj.insert(last.to_string(), value);
    }
    Ok(Value::Object(root))
}

/// `a`, `b` as "`a`, `b`" (at most 20 of them).
fn backticked(names: &[String]) -> String {
    let mut out: Vec<String> = names.iter().take(20).map(|n| format!("`{n}`")).collect();
    if names.len() > 20 {
        out.push(format!("and {} more", names.len() - 20));
    }
    out.join(", ")
}

/// The Customer Model's property names as a tree (objects have children), to tell an unknown column or
/// property before a profile is sent: the server would reject every profile that has one.
#[derive(Debug, Default)]
struct Known(BTreeMap<String, Option<Known>>);

impl Known {
    fn from_schema(props: &Value) -> Self {
        Known(
            props
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let children =
                        (p["type"] == "object").then(|| Self::from_schema(&p["properties"]));
                    (p["name"].as_str().unwrap_or_default().to_string(), children)
                })
                .collect(),
        )
    }

    /// Whether a dotted CSV header names a property (`_id` and `_updated_at` are every profile's).
    /// Below a property that is not an object (a `json` one), any path is the server's to judge.
    fn has_path(&self, path: &str) -> bool {
        if path == "_id" || path == "_updated_at" {
            return true;
        }
        let mut level = self;
        for seg in path.split('.') {
            match level.0.get(seg) {
                None => return false,
                Some(None) => return true,
                Some(Some(children)) => level = children,
            }
        }
        true
    }

    /// Removes the properties of `obj` (and of its objects) that the model does not have, adding their
    /// paths to `dropped`.
    fn strip(&self, obj: &mut Map<String, Value>, prefix: &str, dropped: &mut BTreeSet<String>) {
        obj.retain(|key, value| {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if prefix.is_empty() && (key == "_id" || key == "_updated_at") {
                return true;
            }
            match self.0.get(key) {
                None => {
                    dropped.insert(path);
                    false
                }
                Some(Some(children)) => {
                    if let Value::Object(inner) = value {
                        children.strip(inner, &path, dropped);
                    }
                    true
                }
                Some(None) => true,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ndjson_line_is_a_profile_a_blank_or_a_reason() {
        assert_eq!(
            ndjson_profile(b"{\"_id\": \"a\"}\r\n").unwrap(),
            Some(json!({"_id": "a"}))
        );
        assert_eq!(ndjson_profile(b"  \n").unwrap(), None);
        let e = ndjson_profile(b"{\"_id\": \"\xff\"}\n").unwrap_err();
        assert!(
            e.contains("not valid UTF-8") && e.contains("byte 10"),
            "{e}"
        );
        assert!(ndjson_profile(b"[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(ndjson_profile(b"{no")
            .unwrap_err()
            .starts_with("invalid JSON"));
    }

    #[test]
    fn unknown_columns_and_properties_are_told_from_the_model() {
        let known = Known::from_schema(&json!([
            {"name": "email", "type": "string"},
            {"name": "extra", "type": "json"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]));
        for ok in ["_id", "email", "address", "address.city", "extra.anything"] {
            assert!(known.has_path(ok), "{ok}");
        }
        for unknown in ["Email", "phone", "address.town", "_other"] {
            assert!(!known.has_path(unknown), "{unknown}");
        }
        let mut p = json!({"_id": "a", "email": "x@y.z", "phone": "1",
                           "address": {"city": "Kyiv", "zip": "01001"}, "extra": {"k": 1}});
        let mut dropped = BTreeSet::new();
        known.strip(p.as_object_mut().unwrap(), "", &mut dropped);
        assert_eq!(
            p,
            json!({"_id": "a", "email": "x@y.z", "address": {"city": "Kyiv"}, "extra": {"k": 1}})
        );
        assert_eq!(
            dropped.into_iter().collect::<Vec<_>>(),
            ["address.zip", "phone"]
        );
    }
}
