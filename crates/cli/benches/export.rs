//! The export benchmark of `BENCHMARKS.md`: N profiles of ~20 properties (1,000,000 by default) from the
//! embedded profile store into a PostgreSQL table, measured as
//!
//! - the first run (every row inserted),
//! - a re-run with nothing changed,
//! - a re-run after 1% of the profiles changed and 0.1% were added,
//! - a reconcile of the table then (every row read back by key, hashed and compared with the sync state;
//!   nothing to rewrite), against the first run's time,
//! - and, as the reference, a plain binary `COPY` of the same rows into an empty table, in the same run.
//!
//! Profiles are loaded by a child process, so the peak resident memory reported is that of the runs alone
//! (sampled every 20 ms during each run).
//!
//!     SLUICE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p sluice --bench export
//!
//! That builds with the `bench` profile, fat LTO as the `dist` binaries; add `--profile release` to measure
//! the lighter build `cargo run --release` makes.
//!
//! With `SLUICE_BENCH_SNOWFLAKE_URL` (a Snowflake-protocol server, such as the local fakesnow of
//! `scripts/services.sh start snowflake`) the runs write to Snowflake instead, and the number of statements
//! sent per run is reported (what costs on Snowflake); there is no COPY reference then.
//!
//! `SLUICE_BENCH_PROFILES` changes N; `SLUICE_LOG=sluice_engine=info` shows where each run spent its time.
//! `SLUICE_BENCH_MYSQL_URL` benchmarks MySQL / MariaDB instead (see [`mysql`]).
//!
//! With `SLUICE_BENCH_CLICKHOUSE_URL=clickhouse://user:password@host:port/database` the destination is
//! ClickHouse instead, and the reference a plain native-protocol insert (see `export/clickhouse.rs`).

#[path = "export/clickhouse.rs"]
mod clickhouse;
#[path = "export/mysql.rs"]
mod mysql;
#[path = "export/workload.rs"]
mod workload;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice::sample;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{DestinationRecord, PipelineRecord, RunRecord, SecretBox};
use workload::{mapping, TABLE};

fn model() -> Schema {
    let wire: SchemaWire = serde_json::from_value(sample::schema()).unwrap();
    Schema::from_wire(&wire).unwrap()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Loads sample profiles `from..to` by `step` (seed 43 gives changed versions of existing ids).
async fn load_profiles(dir: &Path, from: usize, to: usize, step: usize, seed: u64) {
    let profiles = sluice_store::open_profiles(None, dir).await.unwrap();
    let model = model();
    let ids: Vec<usize> = (from..to).step_by(step).collect();
    for chunk in ids.chunks(10_000) {
        let batch = chunk
            .iter()
            .map(|&k| {
                let mut p = sample::profile(seed, k);
                p["_id"] = json!(format!("c{k:07}"));
                model.validate_profile(p.as_object().unwrap()).unwrap()
            })
            .collect();
        profiles.upsert(batch).await.unwrap();
    }
}

fn load_in_child(dir: &Path, from: usize, to: usize, step: usize, seed: u64) {
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .env("SLUICE_BENCH_LOAD", format!("{from},{to},{step},{seed}"))
        .env("SLUICE_BENCH_DIR", dir)
        .status()
        .unwrap();
    assert!(status.success(), "loading profiles failed");
}

/// CPU time (user + system) of this process so far, in seconds.
fn cpu_secs() -> f64 {
    workload::cpu_secs_of("self")
}

struct Measured {
    secs: f64,
    cpu_secs: f64,
    run: RunRecord,
    peak_mib: f64,
    /// Statements sent to Snowflake during the run (what costs there); 0 for other destinations.
    statements: u64,
}

async fn timed_run(engine: &Engine, pipeline: &str) -> Measured {
    timed_run_in(engine, pipeline, sluice_engine::RunMode::Normal).await
}

async fn timed_run_in(engine: &Engine, pipeline: &str, mode: sluice_engine::RunMode) -> Measured {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_kib()));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t = Instant::now();
    let cpu = cpu_secs();
    let sent = sluice_destinations::snowflake::statements_sent();
    let started = engine
        .start_with(pipeline, "manual", mode)
        .await
        .expect("start");
    let run = engine.wait(&started.id, |_| {}).await.expect("run");
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(
        run.status,
        sluice_store::RunStatus::Succeeded,
        "{:?} {:?}",
        run.message,
        run.errors
    );
    Measured {
        secs,
        cpu_secs: cpu_secs() - cpu,
        run,
        peak_mib: peak.load(Ordering::Relaxed) as f64 / 1024.0,
        statements: sluice_destinations::snowflake::statements_sent() - sent,
    }
}

/// Loads N profiles, exports them to the destination `kind` with `settings` and `mapping`, and measures
/// the first run, an unchanged re-run, a re-run after 1% changed (another seed gives other values to
/// the same ids) and 0.1% were added, and a reconcile of the table as that run left it.
async fn engine_runs(
    n: usize,
    kind: &str,
    settings: serde_json::Value,
    mapping: serde_json::Value,
) -> [Measured; 4] {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    load_in_child(dir.path(), 0, n, 1, 42);
    eprintln!("loaded {n} profiles in {:.1} s", t.elapsed().as_secs_f64());
    let meta = sluice_store::open_metadata(
        None,
        dir.path(),
        SecretBox::load_or_create(dir.path()).unwrap(),
    )
    .await
    .unwrap();
    let profiles = sluice_store::open_profiles(None, dir.path()).await.unwrap();
    meta.put_schema(&model()).await.unwrap();
    let now = chrono::Utc::now();
    let dest = DestinationRecord {
        id: "dst_bench".into(),
        name: "bench".into(),
        kind: kind.into(),
        settings,
        created_at: now,
        updated_at: now,
    };
    meta.insert_destination(&dest).await.unwrap();
    let spec: PipelineSpec = serde_json::from_value(json!({
        "destination": dest.id, "name": "bench", "table": "customers", "key": "customer_id",
        "transformation": {"mapping": mapping}
    }))
    .unwrap();
    let rec = PipelineRecord {
        id: "pl_bench".into(),
        spec,
        created_at: now,
        updated_at: now,
    };
    meta.insert_pipeline(&rec).await.unwrap();
    // The same variable as `sluice serve` reads, for trying other batch sizes.
    let mut config = EngineConfig::default();
    if let Ok(size) = std::env::var("SLUICE_BATCH_SIZE") {
        config.batch_size = Some(size.parse().expect("SLUICE_BATCH_SIZE is a number of rows"));
    }
    // For tuning how many rows a destination deferring confirmation (ClickHouse) holds unconfirmed.
    if let Ok(rows) = std::env::var("SLUICE_BENCH_UNCONFIRMED_ROWS") {
        config.unconfirmed_rows = rows.parse().expect("a number of rows");
    }
    let engine = Engine::new(meta, profiles, config);
    let first = timed_run(&engine, &rec.id).await;
    let unchanged = timed_run(&engine, &rec.id).await;
    load_in_child(dir.path(), 0, n, 100, 43);
    load_in_child(dir.path(), n, n + n / 1000, 1, 42);
    let changed = timed_run(&engine, &rec.id).await;
    let reconcile = timed_run_in(&engine, &rec.id, sluice_engine::RunMode::Reconcile).await;
    assert_eq!(
        reconcile.run.counts.inserted + reconcile.run.counts.updated,
        0,
        "a table in step has nothing to rewrite: {:?}",
        reconcile.run.message
    );
    [first, unchanged, changed, reconcile]
}

/// The table in Snowflake's types; quoted names keep them lower-case (Snowflake upper-cases unquoted ones).
const SNOWFLAKE_TABLE: &str = "CREATE OR REPLACE TABLE customers (
    \"customer_id\" VARCHAR PRIMARY KEY, \"email\" VARCHAR, \"first_name\" VARCHAR, \"last_name\" VARCHAR, \"full_name\" VARCHAR,
    \"country\" VARCHAR, \"birth_date\" DATE, \"signed_up_at\" TIMESTAMP_TZ, \"ltv\" NUMBER(12,2), \"orders\" NUMBER(38,0),
    \"newsletter\" BOOLEAN, \"score\" FLOAT, \"tags\" VARIANT, \"phone\" VARCHAR, \"language\" VARCHAR, \"segment\" VARCHAR,
    \"loyalty_points\" NUMBER(38,0), \"last_order_at\" TIMESTAMP_TZ, \"street\" VARCHAR, \"city\" VARCHAR, \"postal_code\" VARCHAR)";

fn snowflake_settings(url: &str, database: &str) -> serde_json::Value {
    json!({
        "account": "bench-local", "username": "bench", "password": "bench", "database": database,
        "schema": "PUBLIC", "warehouse": "BENCH_WH", "base_url": url
    })
}

/// Runs `sql` on the Snowflake server of the benchmark, through Sluice's own client.
async fn snowflake_exec(url: &str, database: Option<&str>, sql: &str) {
    use sluice_destinations::snowflake::{client::Connection, SnowflakeSettings};
    let settings =
        SnowflakeSettings::from_json(&snowflake_settings(url, database.unwrap_or("BENCH")))
            .expect("Snowflake settings");
    let conn = Connection::new(settings, Default::default()).expect("HTTP client");
    let mut session = conn.login(database.is_some()).await.expect("log in");
    conn.run(&mut session, sql, &[], true).await.expect(sql);
}

fn pg_settings(url: &str, schema: &str) -> serde_json::Value {
    let mut s = sluice_destinations::postgres::PostgresSettings::json_from_url(url)
        .expect("a postgres:// URL");
    s["schema"] = json!(schema);
    s["tls"] = json!({"mode": "disable"});
    s
}

#[tokio::main]
async fn main() {
    if let Ok(spec) = std::env::var("SLUICE_BENCH_LOAD") {
        let v: Vec<u64> = spec.split(',').map(|x| x.parse().unwrap()).collect();
        let dir = std::path::PathBuf::from(std::env::var("SLUICE_BENCH_DIR").unwrap());
        load_profiles(&dir, v[0] as usize, v[1] as usize, v[2] as usize, v[3]).await;
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let n: usize = std::env::var("SLUICE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(url) = std::env::var("SLUICE_BENCH_MYSQL_URL") {
        return mysql::main(&url, n).await;
    }
    let snowflake = std::env::var("SLUICE_BENCH_SNOWFLAKE_URL").ok();
    let ch = match std::env::var("SLUICE_BENCH_CLICKHOUSE_URL") {
        Ok(url) => Some(clickhouse::setup(&url).await),
        Err(_) => None,
    };
    let url = match (&snowflake, &ch) {
        (Some(u), _) => u.clone(),
        (None, Some(_)) => String::new(),
        (None, None) => std::env::var("SLUICE_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("SLUICE_TEST_POSTGRES_URL"))
            .expect("set SLUICE_BENCH_POSTGRES_URL to a PostgreSQL server"),
    };
    let schema_name = format!("bench_{}", std::process::id());
    let pg = if snowflake.is_some() {
        let db = schema_name.to_uppercase();
        snowflake_exec(&url, None, &format!("CREATE DATABASE {db}")).await;
        snowflake_exec(
            &url,
            None,
            &format!("CREATE SCHEMA IF NOT EXISTS {db}.PUBLIC"),
        )
        .await;
        snowflake_exec(&url, Some(&db), SNOWFLAKE_TABLE).await;
        None
    } else if ch.is_some() {
        None
    } else {
        let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        pg.batch_execute(&format!(
            "CREATE SCHEMA {schema_name}; SET search_path TO {schema_name}; {TABLE}"
        ))
        .await
        .unwrap();
        Some(pg)
    };

    let kind = match (&snowflake, &ch) {
        (Some(_), _) => "snowflake",
        (None, Some(_)) => "clickhouse",
        (None, None) => "postgresql",
    };
    let settings = match (&snowflake, &ch) {
        (Some(_), _) => snowflake_settings(&url, &schema_name.to_uppercase()),
        (None, Some(c)) => c.settings.clone(),
        (None, None) => pg_settings(&url, &schema_name),
    };
    let mapping = if ch.is_some() {
        workload::clickhouse_mapping()
    } else {
        mapping()
    };
    let [first, unchanged, changed, reconcile] = engine_runs(n, kind, settings, mapping).await;
    if snowflake.is_some() {
        let db = schema_name.to_uppercase();
        snowflake_exec(&url, Some(&db), "DROP TABLE customers").await;
        println!("\n| measurement ({n} profiles, Snowflake protocol) | time | rows/s | written | statements | peak RSS |");
        println!("|---|---|---|---|---|---|");
        for (name, m) in [
            ("first run", &first),
            ("re-run, nothing changed", &unchanged),
            ("re-run, 1% changed + 0.1% added", &changed),
            (
                "reconcile (every row read back, none to rewrite)",
                &reconcile,
            ),
        ] {
            let c = &m.run.counts;
            println!(
                "| {name} | {:.2} s | {:.0} | {} ins, {} upd, {} unchanged | {} | {:.0} MiB |",
                m.secs,
                m.run.counts.read as f64 / m.secs,
                c.inserted,
                c.updated,
                c.unchanged,
                m.statements,
                m.peak_mib
            );
        }
        return;
    };

    let rows = n + n / 1000;
    let (reference, copy_secs) = match (&ch, &pg) {
        (Some(c), _) => {
            let (read_back, secs) = c.reference().await;
            assert_eq!(read_back, rows, "one row per key after FINAL");
            c.drop().await;
            ("plain native insert (median of 3)", secs)
        }
        (None, Some(pg)) => ("plain binary COPY", copy_reference(pg, &schema_name).await),
        (None, None) => unreachable!(),
    };
    report(
        n,
        rows,
        reference,
        copy_secs,
        [&first, &unchanged, &changed, &reconcile],
    );
}

/// The reference: the same rows, exported by the database itself, COPYed into an empty twin table.
async fn copy_reference(pg: &tokio_postgres::Client, schema_name: &str) -> f64 {
    let mut data = Vec::new();
    {
        use futures::StreamExt;
        let out = pg
            .copy_out("COPY customers TO STDOUT (FORMAT binary)")
            .await
            .unwrap();
        futures::pin_mut!(out);
        while let Some(chunk) = out.next().await {
            data.extend_from_slice(&chunk.unwrap());
        }
    }
    pg.batch_execute("CREATE TABLE reference (LIKE customers INCLUDING ALL)")
        .await
        .unwrap();
    let t = Instant::now();
    {
        use futures::SinkExt;
        let sink = pg
            .copy_in("COPY reference FROM STDIN (FORMAT binary)")
            .await
            .unwrap();
        futures::pin_mut!(sink);
        for chunk in data.chunks(1 << 20) {
            sink.send(bytes::Bytes::copy_from_slice(chunk))
                .await
                .unwrap();
        }
        sink.close().await.unwrap();
    }
    let copy_secs = t.elapsed().as_secs_f64();
    pg.batch_execute(&format!("DROP SCHEMA {schema_name} CASCADE"))
        .await
        .unwrap();
    copy_secs
}

fn report(
    n: usize,
    rows: usize,
    reference: &str,
    copy_secs: f64,
    [first, unchanged, changed, reconcile]: [&Measured; 4],
) {
    // Profiles the run accounted for, read or known unchanged without reading.
    let rate = |m: &Measured| {
        let c = &m.run.counts;
        (c.inserted + c.updated + c.unchanged + c.failed) as f64 / m.secs
    };
    println!("\n| measurement ({n} profiles) | time | Sluice CPU | rows/s | written | peak RSS |");
    println!("|---|---|---|---|---|---|");
    for (name, m) in [
        ("first run", first),
        ("re-run, nothing changed", unchanged),
        ("re-run, 1% changed + 0.1% added", changed),
        (
            "reconcile (every row read back, none to rewrite)",
            reconcile,
        ),
    ] {
        let c = &m.run.counts;
        println!(
            "| {name} | {:.2} s | {:.2} s | {:.0} | {} read; {} ins, {} upd, {} unchanged | {:.0} MiB |",
            m.secs,
            m.cpu_secs,
            rate(m),
            c.read,
            c.inserted,
            c.updated,
            c.unchanged,
            m.peak_mib
        );
    }
    println!(
        "| {reference} of the same {rows} rows into an empty table | {copy_secs:.2} s | | {:.0} | {rows} | |",
        rows as f64 / copy_secs
    );
    println!(
        "\nfirst run / {reference} rate: {:.0}%   unchanged re-run / first run time: {:.1}%   reconcile / first run time: {:.0}%",
        100.0 * (first.run.counts.inserted as f64 / first.secs) / (rows as f64 / copy_secs),
        100.0 * unchanged.secs / first.secs,
        100.0 * reconcile.secs / first.secs
    );
}
