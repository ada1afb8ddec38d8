//! `sluice profiles import FILE`: CSV (a header row of property paths such as `address.city`) or NDJSON,
//! sent in batches to `POST /v1/profiles`; rejected profiles are reported with their line number.

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
            match csv_profile(&headers, &record, &structured) {
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
                Ok(Some(v)) => batch.push((line_no, v)),
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
    for p in problems.iter().take(100) {
        eprintln!("rejected {p}");
    }
    if problems.len() > 100 {
        eprintln!("… and {} more", problems.len() - 100);
    }
    println!(
        "Imported {} profiles; {} rejected",
        totals.0,
        problems.len()
    );
    if !problems.is_empty() && totals.0 == 0 {
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
    record: &csv::StringRecord,
    structured: &[String],
) -> Result<Value> {
    let mut root = Map::new();
    for (h, cell) in headers.iter().zip(record.iter()) {
        if cell.is_empty() {
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
}
