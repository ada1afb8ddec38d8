//! The row computation of the ClickHouse export benchmark on one thread, without a database: the same
//! sample profiles (as stored JSON text) and the same mapping, into the column types of the benchmark's
//! ClickHouse table. For each profile it does what a run's transform thread does: find the mapped
//! properties in the text, evaluate the mapping, convert to column types and hash the row. It reports
//! the CPU time per profile, which is what bounds a first run when both cores are busy.
//!
//!     cargo bench -p sluice --bench rows
//!
//! `SLUICE_BENCH_PROFILES` changes the number of profiles (200,000 by default); each measurement is taken
//! five times and the fastest is reported.

use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use sluice::sample;
use sluice_core::hash::{hash_row, shape_seed};
use sluice_core::pipeline::Transformation;
use sluice_core::profile::RawProfile;
use sluice_core::schema::SchemaWire;
use sluice_core::{Column, ColumnType, Schema, TableDescription};
use sluice_transform::{Limits, Output, Transform};

#[path = "export/workload.rs"]
mod workload;

/// The column types Sluice reads off the benchmark's ClickHouse table, one per mapped column.
fn table(columns: &[String]) -> TableDescription {
    let text = ColumnType::Text { max_len: None };
    let column = |name: &str| {
        let ty = match name {
            "signed_up_at" | "last_order_at" => ColumnType::Timestamp { with_tz: true },
            "ltv" => ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            "orders" => ColumnType::Int {
                bits: 32,
                unsigned: false,
            },
            "loyalty_points" => ColumnType::Int {
                bits: 64,
                unsigned: false,
            },
            "newsletter" => ColumnType::Int {
                bits: 8,
                unsigned: true,
            },
            "score" => ColumnType::Float { bits: 64 },
            "tags" => ColumnType::Array {
                element: Box::new(text.clone()),
            },
            _ => text.clone(),
        };
        Column {
            name: name.into(),
            native_type: String::new(),
            nullable: !matches!(name, "customer_id" | "tags"),
            ty: Some(ty),
            has_default: false,
        }
    };
    TableDescription {
        name: "customers".into(),
        columns: columns.iter().map(|c| column(c)).collect(),
        keys: vec![vec!["customer_id".into()]],
        has_primary_key: true,
        issues: vec![],
        rules: Default::default(),
    }
}

fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let wire: SchemaWire = serde_json::from_value(sample::schema()).expect("schema");
    let schema = Schema::from_wire(&wire).expect("schema");
    let mapping = workload::clickhouse_mapping();
    let columns: Vec<String> = mapping
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    let mapping: Transformation =
        serde_json::from_value(json!({ "mapping": mapping })).expect("a mapping");
    let transform = Transform::compile(
        &mapping,
        "customer_id",
        &schema,
        &table(&columns),
        Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let now = Utc::now();
    // Stored as the profile store stores them: validated, without `_id`, as JSON text.
    let profiles: Vec<RawProfile> = (0..n)
        .map(|i| {
            let mut p = sample::profile(42, i);
            p["_id"] = json!(format!("c{i:07}"));
            let profile = schema.validate_profile(p.as_object().unwrap()).unwrap();
            let mut doc = profile.1;
            doc.remove("_id");
            RawProfile {
                id: profile.0,
                updated_at: now,
                doc: serde_json::to_string(&doc).unwrap(),
            }
        })
        .collect();
    let seed = shape_seed(&["customers"]);
    let mut evaluator = transform.evaluator().expect("evaluator");
    let mut best = f64::INFINITY;
    let mut digest = 0u128;
    for _ in 0..5 {
        let started = Instant::now();
        for page in profiles.chunks(10_000) {
            for out in evaluator.eval_raw_batch(page, now) {
                match out {
                    Ok(Output::Row(values)) => digest ^= hash_row(seed, &values),
                    other => panic!("{other:?}"),
                }
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "{n} profiles: {:.0} ns per profile (fastest of 5), {:.0} profiles/s on one thread; digest {:08x}",
        best * 1e9 / n as f64,
        n as f64 / best,
        digest as u32
    );
}
