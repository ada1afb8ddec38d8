//! `sluice profiles import FILE`: CSV (a header row of property paths such as `address.city`) or NDJSON,
//! sent in batches to `POST /v1/profiles`; rejected profiles are reported with their line number.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::client::Client;
use crate::ClientArgs;

mod text;

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

/// A batch ready to send: the body of `POST /v1/profiles`, the file line of each profile in it, and
/// the profiles' ids (to keep two batches that share an id from being loaded at the same time).
struct Batch {
    body: Vec<u8>,
    lines: Vec<u64>,
    ids: HashSet<String>,
}

impl Batch {
    fn new() -> Self {
        let mut body = Vec::with_capacity(1 << 20);
        body.extend_from_slice(b"{\"profiles\":[");
        Batch {
            body,
            lines: Vec::new(),
            ids: HashSet::new(),
        }
    }

    /// Adds a profile as the JSON text it was read as.
    fn push_text(&mut self, line: u64, text: &str, id: Option<String>) {
        if !self.lines.is_empty() {
            self.body.push(b',');
        }
        self.body.extend_from_slice(text.as_bytes());
        self.lines.push(line);
        self.ids.extend(id);
    }

    /// Adds a profile built or changed here.
    fn push_value(&mut self, line: u64, value: &Value) {
        let text = value.to_string();
        self.push_text(line, &text, id_of(&value["_id"]));
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    fn finish(mut self) -> Self {
        self.body.extend_from_slice(b"]}");
        self
    }
}

/// What reading the file found besides the batches.
#[derive(Default)]
struct Reading {
    /// Lines not sent, with why.
    problems: Vec<(u64, String)>,
    /// Paths left out (with --ignore-unknown) or that rejected profiles (without).
    unknown_paths: BTreeSet<String>,
    /// Lines rejected for those paths.
    unknown_lines: Vec<u64>,
}

/// Batches the server loads while the next are read: two in flight let the server parse and validate
/// one while it writes the other, and the file is read and parsed on a thread of its own meanwhile.
const IN_FLIGHT: usize = 3;

type Sent = tokio::task::JoinHandle<Result<(u64, Vec<(u64, String)>)>>;

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
    if format != "csv" && format != "ndjson" {
        bail!("unknown format `{format}`: use csv or ndjson");
    }
    let client = Arc::new(Client::new(args)?);
    let schema = client.get("/v1/profile-schema").await?;
    let structured = structured_paths(&schema);
    let known = Known::from_schema(&schema["properties"]);
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

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(1);
    let producer = tokio::task::spawn_blocking(move || {
        let csv = format == "csv";
        read_batches(
            reader,
            csv,
            &known,
            &structured,
            ignore_unknown,
            batch_size,
            tx,
        )
    });

    let mut totals = (0u64, 0u64);
    let mut problems: Vec<(u64, String)> = Vec::new();
    let mut in_flight: VecDeque<(Sent, HashSet<String>)> = VecDeque::new();
    let mut settle = |answer: (u64, Vec<(u64, String)>)| {
        totals.0 += answer.0;
        totals.1 += answer.1.len() as u64;
        problems.extend(answer.1);
    };
    while let Some(batch) = rx.recv().await {
        // A batch waits for the ones sharing an id with it: the later line must be merged last.
        while in_flight.len() >= IN_FLIGHT
            || in_flight
                .iter()
                .any(|(_, ids)| !ids.is_disjoint(&batch.ids))
        {
            let (sent, _) = in_flight.pop_front().expect("a batch in flight");
            settle(sent.await.context("sending a batch failed")??);
        }
        let client = client.clone();
        let Batch { body, lines, ids } = batch;
        let sent = tokio::spawn(async move { send(&client, body, lines).await });
        in_flight.push_back((sent, ids));
    }
    while let Some((sent, _)) = in_flight.pop_front() {
        settle(sent.await.context("sending a batch failed")??);
    }
    let reading = producer.await.context("reading the file failed")??;
    bar.finish_and_clear();
    let Reading {
        problems: mut unsent,
        unknown_paths,
        unknown_lines,
    } = reading;
    problems.append(&mut unsent);
    problems.sort_by_key(|(line, _)| *line);
    if ignore_unknown && !unknown_paths.is_empty() {
        eprintln!(
            "warning: left out what is not in the Customer Model: {}",
            backticked(&unknown_paths.iter().cloned().collect::<Vec<_>>())
        );
    }
    let unknown_rejected = unknown_lines.len();
    for (_, p) in problems.iter().take(100) {
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

/// Posts one batch; the number stored, and each rejected profile as its line with why.
async fn send(
    client: &Client,
    body: Vec<u8>,
    lines: Vec<u64>,
) -> Result<(u64, Vec<(u64, String)>)> {
    let answer = client.post_json_text("/v1/profiles", body).await?;
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
        out.push((line, format!("line {line}{id}: {}", errs.join("; "))));
    }
    Ok((upserted, out))
}

/// Reads the file (on a thread of its own) into batches for `tx`; what it could not send, and why.
fn read_batches<R: Read>(
    reader: R,
    csv: bool,
    known: &Known,
    structured: &[String],
    ignore_unknown: bool,
    batch_size: usize,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> Result<Reading> {
    let mut out = Reading::default();
    let mut batch = Batch::new();
    // The receiver is gone only when sending failed, whose error the import reports.
    let flush = |batch: &mut Batch| -> bool {
        let full = std::mem::replace(batch, Batch::new()).finish();
        tx.blocking_send(full).is_ok()
    };
    if csv {
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
        out.unknown_paths.extend(unknown);
        let layout = text::CsvLayout::new(&headers, &keep, structured);
        let mut written = Vec::new();
        let mut record = csv::StringRecord::new();
        loop {
            match rdr.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    match e.position() {
                        Some(p) => out
                            .problems
                            .push((p.line(), format!("line {}: {e}", p.line()))),
                        None => out.problems.push((0, format!("{e}"))),
                    }
                    continue;
                }
            }
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            let sent = match &layout {
                Some(layout) => layout.write(&record, &mut written).map(|id| {
                    let text = std::str::from_utf8(&written).expect("JSON text is UTF-8");
                    batch.push_text(line, text, id);
                }),
                None => csv_profile(&headers, &keep, &record, structured)
                    .map(|p| batch.push_value(line, &p)),
            };
            if let Err(e) = sent {
                out.problems.push((line, format!("line {line}: {e}")));
            }
            if batch.len() >= batch_size && !flush(&mut batch) {
                return Ok(out);
            }
        }
    } else {
        // Lines are read as bytes so that one line of invalid UTF-8 is rejected on its own, as a CSV row
        // is, instead of ending the whole import.
        let mut reader = BufReader::with_capacity(1 << 16, reader);
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
            // Most lines hold only properties of the model: checked without building their values, they
            // go as they were read.
            let text = std::str::from_utf8(&buf).map(str::trim).unwrap_or_default();
            if let Some(id) = text::plain_line(known, text) {
                batch.push_text(line_no, text, id);
            } else {
                match ndjson_profile(&buf) {
                    Ok(Some(mut v)) => {
                        let mut dropped = BTreeSet::new();
                        if let Value::Object(m) = &mut v {
                            known.strip(m, "", &mut dropped);
                        }
                        if dropped.is_empty() || ignore_unknown {
                            batch.push_value(line_no, &v);
                        } else {
                            out.unknown_lines.push(line_no);
                        }
                        out.unknown_paths.extend(dropped);
                    }
                    Ok(None) => {}
                    Err(e) => out.problems.push((line_no, format!("line {line_no}: {e}"))),
                }
            }
            if batch.len() >= batch_size && !flush(&mut batch) {
                return Ok(out);
            }
        }
    }
    if batch.len() > 0 {
        flush(&mut batch);
    }
    Ok(out)
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

/// A profile's `_id` as the server reads it (a string, or a number as its text).
fn id_of(v: &Value) -> Option<String> {
    match v {
        Value::String(id) => Some(id.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
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
        // Paths are spelled out only for what is dropped or descended into: most keys are neither.
        let path = |key: &str| {
            if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}.{key}")
            }
        };
        obj.retain(|key, value| {
            if prefix.is_empty() && (key == "_id" || key == "_updated_at") {
                return true;
            }
            match self.0.get(key) {
                None => {
                    dropped.insert(path(key));
                    false
                }
                Some(Some(children)) => {
                    if let Value::Object(inner) = value {
                        children.strip(inner, &path(key), dropped);
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
    use serde_json::json;

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
        // Lines whose properties are all known go as read; any other takes the full parse.
        assert_eq!(
            text::plain_line(
                &known,
                r#"{"_id": "a", "email": "x", "address": {"city": "K"}, "extra": {"z": 1}}"#
            ),
            Some(Some("a".to_string()))
        );
        assert_eq!(
            text::plain_line(&known, r#"{"_id": 7}"#),
            Some(Some("7".to_string()))
        );
        assert_eq!(text::plain_line(&known, r#"{"email": "x"}"#), Some(None));
        for full in [
            r#"{"_id": "a", "phone": "1"}"#,
            r#"{"_id": "a", "address": {"zip": "1"}}"#,
            r#"{"_id": "a", "em\u0061il": "x"}"#,
            r#"{"_id": "a""#,
            "[1]",
            "",
        ] {
            assert_eq!(text::plain_line(&known, full), None, "{full}");
        }
    }

    fn record(cells: &[&str]) -> csv::StringRecord {
        csv::StringRecord::from(cells.to_vec())
    }

    /// A CSV record written straight out is the profile the record makes as a value.
    #[test]
    fn a_csv_record_written_out_is_the_profile_it_makes() {
        let headers: Vec<String> = [
            "_id",
            "email",
            "address.city",
            "tags",
            "address.geo.lat",
            "phone",
            "address.zip",
        ]
        .map(String::from)
        .to_vec();
        let keep = [true, true, true, true, true, false, true];
        let structured = ["tags".to_string()];
        let layout = text::CsvLayout::new(&headers, &keep, &structured).expect("no collision");
        let mut out = Vec::new();
        for cells in [
            [
                "p1",
                "a@b.c",
                "Oslo",
                r#"["x", "y"]"#,
                "59.9",
                "123",
                "0150",
            ],
            ["p2", "", "", "", "", "", ""],
            ["", "q\"u\u{e9}", "", "[]", "", "", "7"],
            ["p4", "", "", "", "60", "", ""],
        ] {
            let r = record(&cells);
            let id = layout.write(&r, &mut out).unwrap();
            let by_value = csv_profile(&headers, &keep, &r, &structured).unwrap();
            // The same profile; an object comes where its first column is, not where its first
            // filled cell is.
            let written: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(written, by_value);
            assert_eq!(id, id_of(&by_value["_id"]));
        }
        let bad = record(&["p5", "", "", "[unclosed", "", "", ""]);
        let e = layout.write(&bad, &mut out).unwrap_err();
        assert!(
            format!("{e:#}").contains("column `tags` must hold JSON text"),
            "{e:#}"
        );
        // Colliding headers are settled record by record, as values.
        for colliding in [&["a", "a.b"][..], &["a.b", "a"], &["a", "a"]] {
            let headers: Vec<String> = colliding.iter().map(|h| h.to_string()).collect();
            assert!(text::CsvLayout::new(&headers, &[true, true], &[]).is_none());
        }
    }
}
