//! `sluice inspect CONNECTION --table T | --query Q`: a connection's table or query seen before a source
//! is saved (`POST /v1/sources/inspect`) — its columns, a sample of rows, and the Customer Model and
//! mapping Sluice proposes for it. Nothing is written; the proposed model is applied with
//! `sluice model edit` after any edits (`--json` prints it under `model`).

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use super::{cell, print_json, Remote};
use crate::output;

/// Longest value shown in a cell of the sample; the rest is cut with `…` (`--json` shows all).
const CELL_CHARS: usize = 40;

/// `sluice inspect`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["table", "query"])))]
pub struct Inspect {
    /// The connection, by id or name.
    connection: String,
    /// A table of the connection's schema (or database).
    #[arg(long)]
    table: Option<String>,
    /// One SELECT (or WITH … SELECT), run read-only where the database allows it.
    #[arg(long)]
    query: Option<String>,
    /// Rows to sample, 1 to 100.
    #[arg(long, default_value_t = 20)]
    rows: u32,
    /// The column that identifies a profile (becomes `_id`); guessed from the names when left out.
    #[arg(long)]
    id_column: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

impl Inspect {
    pub async fn run(self) -> Result<()> {
        let c = self.remote.connect()?;
        let connection = super::connections::find(&c, &self.connection).await?;
        let mut body = json!({"connection": connection["id"], "rows": self.rows});
        if let Some(t) = &self.table {
            body["table"] = json!(t);
        }
        if let Some(q) = &self.query {
            body["query"] = json!(q);
        }
        if let Some(id) = &self.id_column {
            body["id_column"] = json!(id);
        }
        let v = c.post("/v1/sources/inspect", &body).await?;
        if self.remote.json {
            print_json(&v);
        } else {
            print!("{}", inspection_text(&v));
        }
        Ok(())
    }
}

fn cut(s: String) -> String {
    if s.chars().count() <= CELL_CHARS {
        return s;
    }
    let mut out: String = s.chars().take(CELL_CHARS - 1).collect();
    out.push('…');
    out
}

/// The person's view of an inspection: columns, sample rows, then the proposal.
fn inspection_text(v: &Value) -> String {
    let columns = v["columns"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = columns
        .iter()
        .map(|c| {
            vec![
                cell(&c["name"]),
                cell(&c["type"]),
                if c["nullable"] == json!(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                cell(&c["property_type"]),
                if c["json"] == json!(true) { "yes" } else { "" }.into(),
            ]
        })
        .collect();
    let mut out = output::table(&["COLUMN", "TYPE", "NULLABLE", "MODEL TYPE", "JSON"], &rows);

    let names: Vec<String> = columns.iter().map(|c| cell(&c["name"])).collect();
    let header: Vec<&str> = names.iter().map(String::as_str).collect();
    let sample: Vec<Vec<String>> = v["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| names.iter().map(|n| cut(cell(&r[n.as_str()]))).collect())
        .collect();
    out += &format!("\nSample ({} rows):\n", sample.len());
    out += &output::table(&header, &sample);

    out += &format!(
        "\nProfile id (_id) from: {}\n",
        v["id_column"]
            .as_str()
            .unwrap_or("no column found: give --id-column")
    );
    let added: Vec<String> = v["added"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    if added.is_empty() {
        out += "The Customer Model already has a property for every column.\n";
    } else {
        out += &format!(
            "Proposed new properties of the Customer Model: {}\n",
            added.join(", ")
        );
    }
    out += "Proposed mapping (property ← source expression):\n";
    let mapping: Vec<Vec<String>> = v["mapping"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, e)| vec![format!("  {k}"), format!("← {}", cell(e))])
        .collect();
    if mapping.is_empty() {
        out += "  (nothing maps)\n";
    } else {
        // Aligned like a table, without a header line.
        let table = output::table(&["", ""], &mapping);
        out += &table
            .lines()
            .skip(1)
            .map(|l| format!("{l}\n"))
            .collect::<String>();
    }
    let issues = v["issues"].as_array().cloned().unwrap_or_default();
    if !issues.is_empty() {
        out += "To look at:\n";
        for i in &issues {
            out += &format!("  {}: {}\n", cell(&i["column"]), cell(&i["message"]));
        }
    }
    out += "Nothing was saved. To apply the model: `--json`, keep its `model`, then `sluice model edit FILE`.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inspection_reads_as_columns_sample_and_proposal() {
        let v = json!({
            "columns": [
                {"name": "id", "type": "bigint", "nullable": false, "property_type": "int", "json": false},
                {"name": "attrs", "type": "jsonb", "nullable": true, "property_type": "json", "json": true},
            ],
            "rows": [{"id": 1, "attrs": {"note": "x".repeat(60)}}],
            "model": {"properties": []},
            "mapping": {"attrs.note": "attrs.note"},
            "id_column": "id",
            "added": ["attrs"],
            "issues": [{"column": "attrs.big", "message": "an object with more than 64 keys is proposed as `json`"}],
        });
        let text = inspection_text(&v);
        assert!(text.starts_with("COLUMN"), "{text}");
        assert!(
            text.contains("attrs   jsonb   yes       json        yes"),
            "{text}"
        );
        assert!(text.contains("Sample (1 rows):"), "{text}");
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("Profile id (_id) from: id"), "{text}");
        assert!(
            text.contains("new properties of the Customer Model: attrs"),
            "{text}"
        );
        assert!(text.contains("attrs.note  ← attrs.note"), "{text}");
        assert!(text.contains("  attrs.big: an object"), "{text}");
    }
}
