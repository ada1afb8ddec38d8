//! The mapping of the export benchmarks, shared by `export` (every destination) and `rows` (the row
//! computation alone) and `server` (the real server), so that all measure the same work; and how they
//! read a process's CPU time.

// Each benchmark uses the part of this it needs.
#![allow(dead_code)]

use serde_json::json;

/// The PostgreSQL table the benchmarks export to.
pub const TABLE: &str = "CREATE TABLE customers (
    customer_id text PRIMARY KEY, email text, first_name text, last_name text, full_name text, country text,
    birth_date date, signed_up_at timestamptz, ltv numeric(12,2), orders integer, newsletter boolean,
    score double precision, tags jsonb, phone text, language text, segment text, loyalty_points bigint,
    last_order_at timestamptz, street text, city text, postal_code text)";

/// The sample profiles onto the 21 columns of the benchmark's `customers` table.
pub fn mapping() -> serde_json::Value {
    json!({
        "customer_id": "_id", "email": "lower(email)", "first_name": "first_name", "last_name": "last_name",
        "full_name": "first_name \" \" last_name", "country": "country", "birth_date": "birth_date",
        "signed_up_at": "signed_up_at", "ltv": "ltv", "orders": "orders", "newsletter": "newsletter",
        "score": "score", "tags": "tags", "phone": "phone", "language": "language", "segment": "segment",
        "loyalty_points": "loyalty_points", "last_order_at": "last_order_at", "street": "address.street",
        "city": "address.city", "postal_code": "address.postal_code"
    })
}

/// [`mapping`] for ClickHouse 18.16, which has no Bool: the flag goes to a UInt8.
pub fn clickhouse_mapping() -> serde_json::Value {
    let mut m = mapping();
    m["newsletter"] = json!("if(newsletter, 1, 0)");
    m
}

/// User + system CPU seconds of a process so far (`"self"` or a pid), from `/proc/<process>/stat`.
pub fn cpu_secs_of(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
