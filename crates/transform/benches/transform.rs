//! The transformation benchmark of `BENCHMARKS.md`: profiles transformed per second by one evaluator for a
//! realistic function — combine names, format a date, compute a tier from an amount — written as a visual
//! mapping, in JavaScript and in Python (one worker process), in batches of 10,000 as a run does. Every
//! language must produce the same rows, which the benchmark checks before measuring.
//!
//!     cargo bench -p sluice-transform --bench transform
//!
//! `SLUICE_BENCH_PROFILES` changes the number of profiles (200,000 by default). Besides wall-clock
//! throughput it reports CPU time: for Python, that of this process (which encodes profiles and converts
//! results) and that of the worker, so that "per core" can be read off honestly.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use serde_json::json;
use sluice_core::pipeline::indexmap_like::OrderedMap;
use sluice_core::pipeline::Transformation;
use sluice_core::schema::SchemaWire;
use sluice_core::{Column, ColumnType, Profile, Schema, TableDescription};
use sluice_transform::{Limits, Output, Transform};

const BATCH: usize = 10_000;

const MAPPING: &[(&str, &str)] = &[
    ("id", "_id"),
    ("full_name", "concat(first_name, \" \", last_name)"),
    ("email", "lower(email)"),
    ("signup_day", "format_datetime(signed_up_at, \"%d %b %Y\")"),
    (
        "tier",
        "if(ge(amount, 1000), \"gold\", if(ge(amount, 100), \"silver\", \"bronze\"))",
    ),
    ("amount", "amount"),
    ("city", "address.city"),
];

const JAVASCRIPT: &str = r#"
const columns = ["id", "full_name", "email", "signup_day", "tier", "amount", "city"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function transform(p) {
  const d = new Date(p.signed_up_at);
  const amount = Number(p.amount);
  return {
    id: p._id,
    full_name: p.first_name + " " + p.last_name,
    email: p.email.toLowerCase(),
    signup_day: String(d.getUTCDate()).padStart(2, "0") + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear(),
    tier: amount >= 1000 ? "gold" : amount >= 100 ? "silver" : "bronze",
    amount: p.amount,
    city: p.address.city,
  };
}
"#;

const PYTHON: &str = r#"
from datetime import datetime
from decimal import Decimal
columns = ["id", "full_name", "email", "signup_day", "tier", "amount", "city"]
def transform(p):
    amount = Decimal(p["amount"])
    return {
        "id": p["_id"],
        "full_name": p["first_name"] + " " + p["last_name"],
        "email": p["email"].lower(),
        "signup_day": datetime.fromisoformat(p["signed_up_at"]).strftime("%d %b %Y"),
        "tier": "gold" if amount >= 1000 else "silver" if amount >= 100 else "bronze",
        "amount": p["amount"],
        "city": p["address"]["city"],
    }
"#;

fn schema() -> Schema {
    let wire: SchemaWire = serde_json::from_value(json!({"properties": [
        {"name": "first_name", "type": "string"},
        {"name": "last_name", "type": "string"},
        {"name": "email", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "amount", "type": "decimal(12,2)"},
        {"name": "orders", "type": "int"},
        {"name": "newsletter", "type": "boolean"},
        {"name": "score", "type": "float"},
        {"name": "signed_up_at", "type": "datetime"},
        {"name": "birth_date", "type": "date"},
        {"name": "tags", "type": "array(string)"},
        {"name": "address", "type": "object", "properties": [
            {"name": "street", "type": "string"}, {"name": "city", "type": "string"},
            {"name": "postal_code", "type": "string"}
        ]}
    ]}))
    .expect("schema");
    Schema::from_wire(&wire).expect("schema")
}

fn table() -> TableDescription {
    let text = |name: &str| Column {
        name: name.into(),
        native_type: "text".into(),
        nullable: name != "id",
        ty: Some(ColumnType::Text { max_len: None }),
        has_default: false,
    };
    let mut columns: Vec<Column> = ["id", "full_name", "email", "signup_day", "tier", "city"]
        .into_iter()
        .map(text)
        .collect();
    columns.push(Column {
        name: "amount".into(),
        native_type: "numeric(12,2)".into(),
        nullable: true,
        ty: Some(ColumnType::Decimal {
            precision: Some(12),
            scale: Some(2),
        }),
        has_default: false,
    });
    TableDescription {
        name: "customers".into(),
        columns,
        keys: vec![vec!["id".into()]],
        has_primary_key: true,
        issues: vec![],
    }
}

fn profiles(n: usize) -> Vec<Profile> {
    let first = ["Zoë", "José", "Ada", "Ōtsuka", "Grace", "Linus"];
    let last = ["Lovelace", "Hopper", "Müller", "Nakamura", "O'Brien"];
    let cities = ["Turin", "Zürich", "Lyon", "Osaka"];
    (0..n)
        .map(|i| {
            let country = ["IT", "CH", "FR", "JP"][i % 4];
            let doc = json!({
                "first_name": first[i % first.len()],
                "last_name": last[i % last.len()],
                "email": format!("User.{i}@Example.COM"),
                "country": country,
                "amount": format!("{}.{:02}", (i * 37) % 5000, i % 100),
                "orders": i % 90,
                "newsletter": i % 3 == 0,
                "score": (i % 1000) as f64 / 7.0,
                "signed_up_at": format!("2024-{:02}-{:02}T{:02}:15:00Z", i % 12 + 1, i % 28 + 1, i % 24),
                "birth_date": format!("19{:02}-{:02}-{:02}", 50 + i % 50, i % 12 + 1, i % 28 + 1),
                "tags": ["a", "vip"],
                "address": {"street": format!("Via Roma {i}"), "city": cities[i % 4], "postal_code": "10121"}
            });
            Profile {
                id: format!("c{i:07}"),
                updated_at: Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap(),
                doc: doc.as_object().expect("object").clone(),
            }
        })
        .collect()
}

/// CPU time of the calling thread and of reaped children.
fn cpu() -> (Duration, Duration) {
    fn get(who: libc::c_int) -> Duration {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(who, &mut usage) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
    (get(libc::RUSAGE_THREAD), get(libc::RUSAGE_CHILDREN))
}

struct Measured {
    seconds: f64,
    own_cpu: f64,
    worker_cpu: f64,
}

fn measure(t: &Transform, profiles: &[Profile]) -> Measured {
    let now = Utc::now();
    let mut ev = t.evaluator().expect("evaluator");
    // Warm up (QuickJS's shapes, Python's caches).
    let _ = ev.eval_batch(&profiles[..BATCH.min(profiles.len())], now);
    let (own0, children0) = cpu();
    let start = Instant::now();
    let mut rows = 0;
    for batch in profiles.chunks(BATCH) {
        for out in ev.eval_batch(batch, now) {
            match out {
                Ok(Output::Row(_)) => rows += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (own1, _) = cpu();
    // The worker's CPU time is counted once it has been reaped.
    drop(ev);
    let (_, children1) = cpu();
    assert_eq!(rows, profiles.len());
    Measured {
        seconds,
        own_cpu: (own1 - own0).as_secs_f64(),
        worker_cpu: (children1 - children0).as_secs_f64(),
    }
}

fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let schema = schema();
    let table = table();
    let limits = Limits {
        python_workers: 1,
        ..Limits::default()
    };
    let compile = |t: Transformation| {
        Transform::compile(&t, "id", &schema, &table, limits).unwrap_or_else(|e| panic!("{e}"))
    };
    let mapping = compile(Transformation::Mapping(OrderedMap(
        MAPPING
            .iter()
            .map(|(c, e)| (c.to_string(), e.to_string()))
            .collect(),
    )));
    let kinds = [
        ("visual mapping", mapping),
        (
            "JavaScript",
            compile(Transformation::Javascript(JAVASCRIPT.into())),
        ),
        (
            "Python (1 worker)",
            compile(Transformation::Python(PYTHON.into())),
        ),
    ];
    let profiles = profiles(n);

    // The three give the same rows.
    let sample = &profiles[..1000.min(n)];
    let rows: Vec<Vec<_>> = kinds
        .iter()
        .map(|(_, t)| {
            t.evaluator()
                .expect("evaluator")
                .eval_batch(sample, Utc::now())
                .into_iter()
                .map(|o| o.expect("a row"))
                .collect()
        })
        .collect();
    assert_eq!(rows[0], rows[1], "mapping and JavaScript differ");
    assert_eq!(rows[0], rows[2], "mapping and Python differ");
    println!("first row: {:?}", rows[0][0]);

    println!("\n{n} profiles, batches of {BATCH}\n");
    println!("| transformation | wall time | profiles/s | CPU (this process) | CPU (worker) | profiles per CPU-second |");
    println!("|---|---|---|---|---|---|");
    for (name, t) in &kinds {
        let m = measure(t, &profiles);
        let cpu = m.own_cpu + m.worker_cpu;
        println!(
            "| {name} | {:.2} s | {:.0} | {:.2} s | {} | {:.0} |",
            m.seconds,
            n as f64 / m.seconds,
            m.own_cpu,
            if m.worker_cpu > 0.0 {
                format!("{:.2} s", m.worker_cpu)
            } else {
                "—".into()
            },
            n as f64 / cpu,
        );
    }
}
