//! The source pipelines benchmark of `BENCHMARKS.md` ("Source pipelines (issue 18)"): the real
//! `sluice serve` process, measured from outside, reading a 21-column PostgreSQL table of N sample
//! profiles (the export benchmark's, `sluice::sample`, laid out as the columns of its `customers` table
//! plus `updated_at`).
//!
//! 1. a `cursor` source imports the N rows into the embedded profile store (first import), then runs again
//!    with nothing changed;
//! 2. Sluice's first export of the same profiles to PostgreSQL (the export benchmark's pipeline), the rate
//!    to compare the import with;
//! 3. freshness: the export is put on `on_change`, the source on the `5s` schedule, and 1,000 source rows
//!    are updated per second for 60 s (fewer when N is too small for that: N / seconds); each second's rows carry a mark, and the latency of a second's rows is
//!    from its commit to the moment all of them are in the destination table;
//! 4. on a second server (a fresh profile store), a `full` source imports the N rows, then runs again with
//!    nothing changed.
//!
//! For each phase: wall time, the server's CPU seconds, its peak resident memory (VmHWM, reset before the
//! phase through `/proc/PID/clear_refs`) and its resident memory a second after.
//!
//!     cargo build --release -p sluice --bin sluice
//!     SLUICE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench --profile release -p sluice --bench sources
//!
//! `SLUICE_BIN` names the binary (by default `release/sluice` under `CARGO_TARGET_DIR` or `target/`),
//! `SLUICE_BENCH_PROFILES` changes N (1,000,000 by default), `SLUICE_BENCH_FRESHNESS_SECONDS` the length of
//! the freshness phase (60), and `SLUICE_BENCH_PHASES` (a comma-separated subset of
//! `cursor,export,freshness,full`) leaves phases out (`export` and `freshness` need `cursor`);
//! `SLUICE_BENCH_LOOKBACK` sets the cursor source's `lookback` (by default the product's, 10 seconds).
//!
//! Nobody starts a run during the freshness phase: the source's runs are the scheduler's, on its `5s`
//! ticks, and the export's too, through `on_change`. The source's runs of the phase are summed up after
//! it (how many, and the rows each read: new ones plus the lookback's re-read ones).

#[path = "export/serve.rs"]
mod serve;
#[path = "export/workload.rs"]
mod workload;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::SinkExt;
use serde_json::{json, Value};
use serve::{binary, phase, run_secs, Server};
use sluice::sample;

/// The source table: the export benchmark's 21 columns, `full_name` left out for `updated_at`.
const SOURCE_TABLE: &str = "CREATE TABLE sb_source (
    customer_id text PRIMARY KEY, email text, first_name text, last_name text, country text,
    birth_date date, signed_up_at timestamptz, ltv numeric(12,2), orders integer, newsletter boolean,
    score double precision, tags jsonb, phone text, language text, segment text, loyalty_points bigint,
    last_order_at timestamptz, street text, city text, postal_code text, updated_at timestamptz NOT NULL);
    CREATE INDEX sb_source_by_update ON sb_source (updated_at)";

/// Source columns onto the sample model's properties.
fn source_mapping() -> Value {
    let mut m = serde_json::Map::new();
    for c in [
        "email",
        "first_name",
        "last_name",
        "country",
        "birth_date",
        "signed_up_at",
        "ltv",
        "orders",
        "newsletter",
        "score",
        "tags",
        "phone",
        "language",
        "segment",
        "loyalty_points",
        "last_order_at",
    ] {
        m.insert(c.into(), json!(c));
    }
    for (p, c) in [
        ("address.street", "street"),
        ("address.city", "city"),
        ("address.postal_code", "postal_code"),
        ("address.country", "country"),
    ] {
        m.insert(p.into(), json!(c));
    }
    Value::Object(m)
}

/// A server of its own data directory (kept as long as the answer), with the sample Customer Model.
async fn start(bin: &Path) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = format!("bench-{}", std::process::id());
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_DATA_DIR", dir.path().join("data"))
        .env("SLUICE_ADMIN_TOKEN", &token)
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null());
    let s = Server::spawn(&mut cmd, format!("http://127.0.0.1:{port}"), token).await;
    s.call(
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(sample::schema()),
    )
    .await;
    (s, dir)
}

/// A source of the benchmark's table.
async fn source(s: &Server, connection: &str, name: &str, changes: Value) -> String {
    let v = s
        .call(
            reqwest::Method::POST,
            "/v1/sources",
            Some(json!({
                "connection": connection, "name": name, "table": "sb_source",
                "id_column": "customer_id", "transformation": {"mapping": source_mapping()},
                "changes": changes
            })),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

/// What a run did, for the table, and the rows it wrote or read.
fn counts(run: &Value, rows: &[&str]) -> (u64, String) {
    let c = &run["counts"];
    let n = rows.iter().map(|k| c[k].as_u64().unwrap_or(0)).sum();
    (n, format!("counts {c}; in the server {}", run_secs(run)))
}

/// The first row's cursor value: 400 days ago.
static BASE: std::sync::LazyLock<chrono::DateTime<chrono::Utc>> =
    std::sync::LazyLock::new(|| chrono::Utc::now() - chrono::Duration::days(400));

/// One sample profile as a row of the source table, in COPY's text format.
fn copy_row(k: usize, out: &mut String) {
    use std::fmt::Write;
    let p = sample::profile(42, k);
    let text = |v: &Value| match v {
        Value::Null => "\\N".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let a = &p["address"];
    let cells = [
        text(&p["_id"]),
        text(&p["email"]),
        text(&p["first_name"]),
        text(&p["last_name"]),
        text(&p["country"]),
        text(&p["birth_date"]),
        text(&p["signed_up_at"]),
        text(&p["ltv"]),
        text(&p["orders"]),
        text(&p["newsletter"]),
        text(&p["score"]),
        text(&p["tags"]),
        text(&p["phone"]),
        text(&p["language"]),
        text(&p["segment"]),
        text(&p["loyalty_points"]),
        text(&p["last_order_at"]),
        text(&a["street"]),
        text(&a["city"]),
        text(&a["postal_code"]),
    ];
    // Distinct cursor values, 30 s apart (a million rows over most of a year), all in the past: the
    // freshness phase's updates (`clock_timestamp()`) must be past them.
    let at = *BASE + chrono::Duration::seconds(30 * k as i64);
    let _ = writeln!(out, "{}\t{}", cells.join("\t"), at.to_rfc3339());
}

async fn fill(pg: &tokio_postgres::Client, schema: &str, n: usize) {
    let sink = pg
        .copy_in(&format!("COPY {schema}.sb_source FROM STDIN"))
        .await
        .unwrap();
    futures::pin_mut!(sink);
    let mut buf = String::with_capacity(1 << 22);
    for k in 0..n {
        copy_row(k, &mut buf);
        if buf.len() > 4 << 20 {
            sink.send(bytes::Bytes::from(std::mem::take(&mut buf)))
                .await
                .unwrap();
        }
    }
    sink.send(bytes::Bytes::from(buf)).await.unwrap();
    sink.close().await.unwrap();
    pg.batch_execute(&format!("ANALYZE {schema}.sb_source"))
        .await
        .unwrap();
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    c
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

/// The freshness phase: `secs` seconds of `per_second` updated source rows a second (second `b` marks
/// its rows' `language` with `b{b}`), the source on its `5s` schedule, the export on `on_change`; the
/// latency of each second, from its commit to all its rows being in the destination table.
async fn freshness(
    pg_url: &str,
    schema: &str,
    n: usize,
    secs: usize,
    per_second: usize,
) -> Vec<f64> {
    assert!(
        per_second > 0 && secs * per_second <= n,
        "not enough source rows"
    );
    let commits: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; secs]));
    let arrived: Arc<std::sync::Mutex<Vec<Option<Instant>>>> =
        Arc::new(std::sync::Mutex::new(vec![None; secs]));

    // The writer: every second, one transaction updating the next `per_second` rows.
    let writer = {
        let (url, schema, commits) = (pg_url.to_string(), schema.to_string(), commits.clone());
        tokio::spawn(async move {
            let pg = connect(&url).await;
            let start = Instant::now();
            for b in 0..secs {
                let due = start + Duration::from_secs(b as u64);
                tokio::time::sleep_until(due.into()).await;
                let (from, to) = (b * per_second, (b + 1) * per_second);
                pg.batch_execute(&format!(
                    "UPDATE {schema}.sb_source SET language = 'b{b}', updated_at = clock_timestamp() \
                     WHERE customer_id >= 'c{from:07}' AND customer_id < 'c{to:07}'"
                ))
                .await
                .unwrap();
                commits.lock().unwrap()[b] = Some(Instant::now());
            }
        })
    };
    // The watcher: every 100 ms, how many rows of each second are in the destination.
    let pg = connect(pg_url).await;
    let deadline = Instant::now() + Duration::from_secs(secs as u64 + 120);
    loop {
        let rows = pg
            .query(
                &format!(
                    "SELECT language, count(*) FROM {schema}.customers WHERE language LIKE 'b%' GROUP BY 1"
                ),
                &[],
            )
            .await
            .unwrap();
        let now = Instant::now();
        {
            let mut arrived = arrived.lock().unwrap();
            for r in rows {
                let mark: String = r.get(0);
                let count: i64 = r.get(1);
                if let Ok(b) = mark[1..].parse::<usize>() {
                    if b < secs && count as usize == per_second && arrived[b].is_none() {
                        arrived[b] = Some(now);
                    }
                }
            }
            if arrived.iter().all(Option::is_some) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "not every second's rows reached the destination in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.await.unwrap();
    let commits = commits.lock().unwrap();
    let arrived = arrived.lock().unwrap();
    let mut lat: Vec<f64> = commits
        .iter()
        .zip(arrived.iter())
        .map(|(c, a)| {
            a.unwrap()
                .saturating_duration_since(c.expect("every second committed"))
                .as_secs_f64()
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    lat
}

/// The source's runs, newest first (as the API lists them).
async fn source_runs(server: &Server, source: &str) -> Vec<Value> {
    let runs = server
        .call(
            reqwest::Method::GET,
            &format!("/v1/sources/{source}/runs?limit=500"),
            None,
        )
        .await;
    runs.get("runs")
        .unwrap_or(&runs)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let fresh_secs: usize = std::env::var("SLUICE_BENCH_FRESHNESS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    // 1,000 rows a second, as the target says, when there are rows enough for it.
    let per_second = 1000.min(n / fresh_secs.max(1));
    let phases = std::env::var("SLUICE_BENCH_PHASES")
        .unwrap_or_else(|_| "cursor,export,freshness,full".into());
    let wants = |p: &str| phases.split(',').any(|x| x.trim() == p);
    let pg_url = std::env::var("SLUICE_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SLUICE_TEST_POSTGRES_URL"))
        .expect("set SLUICE_BENCH_POSTGRES_URL to a PostgreSQL server");
    let bin = binary();
    assert!(
        bin.exists(),
        "no binary at {} (set SLUICE_BIN)",
        bin.display()
    );

    let pg = connect(&pg_url).await;
    let schema = format!("sb_bench_{}", std::process::id());
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}; {SOURCE_TABLE}; {}",
        workload::TABLE
    ))
    .await
    .unwrap();
    let t = Instant::now();
    fill(&pg, &schema, n).await;
    eprintln!(
        "wrote {n} source rows by COPY in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut results = Vec::new();
    let mut latencies = Vec::new();
    if wants("cursor") {
        let (server, _dir) = start(&bin).await;
        let pid = server.pid();
        let crm = server.postgres_connection(&pg_url, &schema, "CRM").await;
        let mut changes = json!({"mode": "cursor", "column": "updated_at"});
        if let Ok(l) = std::env::var("SLUICE_BENCH_LOOKBACK") {
            changes["lookback"] = json!(l);
        }
        let source = source(&server, &crm, "cursor", changes).await;
        results.push(
            phase(&format!("first import, cursor ({n} rows)"), pid, async {
                counts(
                    &server.run("sources", &source).await,
                    &["inserted", "updated", "unchanged"],
                )
            })
            .await,
        );
        results.push(
            phase("re-import, cursor, nothing changed", pid, async {
                counts(
                    &server.run("sources", &source).await,
                    &["inserted", "updated", "unchanged"],
                )
            })
            .await,
        );
        if wants("export") {
            let pipeline = server
                .customers_pipeline(&crm, "bench", workload::mapping())
                .await;
            results.push(
                phase("first export to PostgreSQL", pid, async {
                    counts(
                        &server.run("pipelines", &pipeline).await,
                        &["inserted", "updated", "unchanged"],
                    )
                })
                .await,
            );
            if wants("freshness") {
                server
                    .call(
                        reqwest::Method::PATCH,
                        &format!("/v1/pipelines/{pipeline}"),
                        Some(json!({"schedule": "on_change"})),
                    )
                    .await;
                let before = source_runs(&server, &source).await.len();
                let set = server
                    .call(
                        reqwest::Method::PATCH,
                        &format!("/v1/sources/{source}"),
                        Some(json!({"schedule": "5s"})),
                    )
                    .await;
                assert_eq!(set["schedule"], "5s", "scheduling the source: {set}");
                let p = phase(
                    &format!(
                        "freshness: {per_second} rows/s for {fresh_secs} s, source on 5s, export on_change"
                    ),
                    pid,
                    async {
                        latencies = freshness(&pg_url, &schema, n, fresh_secs, per_second).await;
                        ((fresh_secs * per_second) as u64, String::new())
                    },
                )
                .await;
                results.push(p);
                server
                    .call(
                        reqwest::Method::PATCH,
                        &format!("/v1/sources/{source}"),
                        Some(json!({"schedule": null})),
                    )
                    .await;
                let runs = source_runs(&server, &source).await;
                let during = &runs[..runs.len().saturating_sub(before)];
                let mut read: Vec<f64> = during
                    .iter()
                    .map(|r| r["counts"]["read"].as_f64().unwrap_or(0.0))
                    .collect();
                read.sort_by(f64::total_cmp);
                let triggers: std::collections::BTreeSet<&str> = during
                    .iter()
                    .filter_map(|r| r["trigger"].as_str())
                    .collect();
                eprintln!(
                    "source runs during freshness: {} (triggers {triggers:?}), rows read per run: median {:.0}, max {:.0}",
                    during.len(),
                    if read.is_empty() { 0.0 } else { percentile(&read, 50.0) },
                    read.last().copied().unwrap_or(0.0)
                );
                let runs = server
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/pipelines/{pipeline}/runs"),
                        None,
                    )
                    .await;
                let runs = runs.get("runs").unwrap_or(&runs);
                let runs = runs.as_array().cloned().unwrap_or_default();
                eprintln!("export runs during freshness: {}", runs.len());
                for r in runs.iter().filter(|r| r["status"] != "succeeded") {
                    eprintln!(
                        "  {} run: {} {} {}",
                        r["status"], r["counts"], r["message"], r["errors"]
                    );
                }
            }
        }
        server.stop();
    }
    if wants("full") {
        let (server, _dir) = start(&bin).await;
        let pid = server.pid();
        let crm = server.postgres_connection(&pg_url, &schema, "CRM").await;
        let source = source(
            &server,
            &crm,
            "full",
            json!({"mode": "full", "on_missing": "keep"}),
        )
        .await;
        results.push(
            phase(&format!("first import, full ({n} rows)"), pid, async {
                counts(
                    &server.run("sources", &source).await,
                    &["inserted", "updated", "unchanged"],
                )
            })
            .await,
        );
        results.push(
            phase("re-import, full, nothing changed", pid, async {
                counts(
                    &server.run("sources", &source).await,
                    &["inserted", "updated", "unchanged"],
                )
            })
            .await,
        );
        server.stop();
    }
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();

    println!("\n| phase | time | rows/s | server CPU | server peak RSS | RSS 1 s after | |");
    println!("|---|---|---|---|---|---|---|");
    for p in &results {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.0} MiB | {:.0} MiB | {} |",
            p.name,
            p.secs,
            p.rows as f64 / p.secs,
            p.server_cpu,
            p.peak_mib,
            p.after_mib,
            p.note
        );
    }
    let find = |prefix: &str| results.iter().find(|p| p.name.starts_with(prefix));
    if let Some(export) = find("first export") {
        let rate = export.rows as f64 / export.secs;
        for prefix in ["first import, cursor", "first import, full"] {
            if let Some(p) = find(prefix) {
                println!(
                    "{prefix} / first export rate: {:.0}% (target ≥ 50%)",
                    100.0 * (p.rows as f64 / p.secs) / rate
                );
            }
        }
    }
    if let (Some(first), Some(again)) = (find("first import, full"), find("re-import, full")) {
        println!(
            "full re-import / first import: {:.0}% (target < 33%)",
            100.0 * again.secs / first.secs
        );
    }
    if !latencies.is_empty() {
        println!(
            "freshness, source commit → destination row, over {} seconds of {per_second} rows: p50 {:.2} s, p99 {:.2} s, max {:.2} s (target p99 < 10 s)",
            latencies.len(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            latencies.last().unwrap()
        );
    }
}
