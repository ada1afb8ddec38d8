//! The server benchmark of `BENCHMARKS.md` ("Ten million profiles"): the real `sluice serve` process,
//! measured from outside, as a user runs it.
//!
//! 1. N new profiles are imported with `sluice profiles import` (NDJSON), through `POST /v1/profiles`;
//! 2. a pipeline exports them to PostgreSQL (the first run), then runs again with nothing changed;
//! 3. 1% of the profiles are changed and 0.1% added (imported the same way), and the pipeline runs again,
//!    against the floor of writing only those rows: COPY into a temporary table and one
//!    `INSERT … ON CONFLICT` into a copy of the table as it was before the re-run (a checkpoint before
//!    each, so both pay the same first writes), then the same rows in the run's pages (a transaction each)
//!    into another such copy, and, as measured before, into the table just written;
//! 4. every profile is imported again with other values (merges into stored profiles);
//! 5. N more new profiles are imported from CSV.
//!
//! For each phase it reports the wall time, the CPU seconds of the server and of the importing client, and
//! the server's peak resident memory (VmHWM, reset before each phase through `/proc/PID/clear_refs`) and its
//! resident memory when the phase is over.
//!
//!     cargo build --release -p sluice --bin sluice
//!     SLUICE_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!         cargo bench --profile release -p sluice --bench server
//!
//! `SLUICE_BIN` names the binary (by default `release/sluice` under `CARGO_TARGET_DIR` or `target/`),
//! `SLUICE_BENCH_PROFILES` changes N (1,000,000 by default), `SLUICE_BENCH_PROFILES_URL` puts the profile
//! store in PostgreSQL instead of the embedded SQLite one, and `SLUICE_BENCH_PHASES` (a comma-separated
//! subset of `import,export,change,merge,csv`) leaves phases out. `SLUICE_BENCH_METADATA_URL` puts the
//! metadata store (and with it the sync state) in PostgreSQL; the first export reports the sync state's
//! size on disk either way. `SLUICE_BENCH_MERGE_ORDER=shuffled` imports the merges in an order unrelated
//! to the ids (a file sorted by something else), instead of in id order. `SLUICE_BENCH_CHANGE_ROUNDS=K`
//! repeats step 3 K times (other profiles each time, each round against floors of its own) and prints
//! the median ratio: on a noisy machine one round says little.

#[path = "export/serve.rs"]
mod serve;
#[path = "export/workload.rs"]
mod workload;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Map, Value};
use serve::{binary, phase, run_secs, status_kib, Phase, Server};
use sluice::sample;

/// Sample profiles `from..to` by `step` with `seed`, as NDJSON or CSV (dotted headers, arrays as JSON).
fn write_profiles(path: &Path, from: usize, to: usize, step: usize, seed: u64, csv: bool) {
    write_profiles_of(path, (from..to).step_by(step), seed, csv)
}

/// Profiles `0..n`, each once, in an order unrelated to their ids: `k ↦ (k·a + n/3) mod n` with `a`
/// prime to `n`.
fn scrambled(n: usize) -> impl Iterator<Item = usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let a = (n / 2 + 7_919..).find(|&a| gcd(a, n.max(1)) == 1).unwrap();
    (0..n).map(move |k| ((k as u128 * a as u128 + (n / 3) as u128) % n.max(1) as u128) as usize)
}

fn write_profiles_of(path: &Path, ids: impl Iterator<Item = usize>, seed: u64, csv: bool) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut header: Option<Vec<String>> = None;
    for k in ids {
        let mut p = sample::profile(seed, k);
        p["_id"] = json!(format!("c{k:07}"));
        if !csv {
            serde_json::to_writer(&mut out, &p).unwrap();
            out.write_all(b"\n").unwrap();
            continue;
        }
        let mut flat = Vec::new();
        flatten(p.as_object().unwrap(), "", &mut flat);
        let names: Vec<String> = flat.iter().map(|(k, _)| k.clone()).collect();
        let header = header.get_or_insert_with(|| {
            writeln!(out, "{}", names.join(",")).unwrap();
            names.clone()
        });
        assert_eq!(*header, names, "every sample profile has the same paths");
        let cells: Vec<String> = flat.into_iter().map(|(_, v)| csv_cell(&v)).collect();
        writeln!(out, "{}", cells.join(",")).unwrap();
    }
    out.flush().unwrap();
}

fn flatten(obj: &Map<String, Value>, prefix: &str, out: &mut Vec<(String, Value)>) {
    for (k, v) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) => flatten(inner, &path, out),
            other => out.push((path, other.clone())),
        }
    }
}

fn csv_cell(v: &Value) -> String {
    let text = match v {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `sluice profiles import FILE` against the server; the number of profiles it reports imported.
fn import(bin: &Path, server: &Server, file: &Path) -> (u64, String) {
    let out = Command::new(bin)
        .args(["profiles", "import"])
        .arg(file)
        .env("SLUICE_URL", &server.url)
        .env("SLUICE_ADMIN_TOKEN", &server.token)
        .stderr(Stdio::inherit())
        .output()
        .expect("run sluice profiles import");
    assert!(out.status.success(), "the import failed");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let n = text
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected import output: {text}"));
    assert!(text.contains("; 0 rejected"), "{text}");
    (n, String::new())
}

/// The floor of the change path: the changed and new rows alone, COPYed into a temporary table and
/// upserted into `table` with one `INSERT … ON CONFLICT`, in one transaction; seconds.
async fn floor(pg: &tokio_postgres::Client, schema: &str, table: &str, rows: &[Vec<u8>]) -> f64 {
    floor_in_pages(pg, schema, table, &[rows]).await
}

/// The floor written as a run writes changes: page by page, each page COPYed, upserted and committed
/// in a transaction of its own; seconds for all of them.
async fn floor_in_pages(
    pg: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    pages: &[&[Vec<u8>]],
) -> f64 {
    let t = Instant::now();
    for rows in pages {
        floor_page(pg, schema, table, rows).await;
    }
    t.elapsed().as_secs_f64()
}

/// The rows of `rows` split as a run pages this many changes for PostgreSQL.
fn change_pages(rows: &[Vec<u8>]) -> Vec<&[Vec<u8>]> {
    let batch = sluice_destinations::postgres::dialect::CAPABILITIES.batch_rows;
    let (first, page) = sluice_engine::change_page_plan(rows.len() as u64, batch);
    let (head, rest) = rows.split_at(first.min(rows.len()));
    std::iter::once(head).chain(rest.chunks(page)).collect()
}

async fn floor_page(pg: &tokio_postgres::Client, schema: &str, table: &str, rows: &[Vec<u8>]) {
    use futures::SinkExt;
    pg.batch_execute(&format!(
        "BEGIN; SET LOCAL search_path TO {schema}; \
         CREATE TEMP TABLE delta (LIKE customers) ON COMMIT DROP"
    ))
    .await
    .unwrap();
    {
        let sink = pg.copy_in("COPY delta FROM STDIN").await.unwrap();
        futures::pin_mut!(sink);
        let data: Vec<u8> = rows.concat();
        sink.send(bytes::Bytes::from(data)).await.unwrap();
        sink.close().await.unwrap();
    }
    let cols = "email, first_name, last_name, full_name, country, birth_date, signed_up_at, ltv, orders, \
                newsletter, score, tags, phone, language, segment, loyalty_points, last_order_at, street, city, \
                postal_code";
    let set: Vec<String> = cols
        .split(", ")
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    pg.batch_execute(&format!(
        "INSERT INTO {schema}.{table} SELECT * FROM delta ON CONFLICT (customer_id) DO UPDATE SET {}; COMMIT",
        set.join(", ")
    ))
    .await
    .unwrap();
}

/// The rows of `ids` as the export wrote them, in COPY's text format (read back from the table).
async fn rows_of(pg: &tokio_postgres::Client, schema: &str, ids: &[String]) -> Vec<Vec<u8>> {
    use futures::StreamExt;
    pg.batch_execute(&format!(
        "CREATE TABLE {schema}.delta_ids (id text PRIMARY KEY)"
    ))
    .await
    .unwrap();
    {
        use futures::SinkExt;
        let sink = pg
            .copy_in(&format!("COPY {schema}.delta_ids FROM STDIN"))
            .await
            .unwrap();
        futures::pin_mut!(sink);
        sink.send(bytes::Bytes::from(ids.join("\n") + "\n"))
            .await
            .unwrap();
        sink.close().await.unwrap();
    }
    let out = pg
        .copy_out(&format!(
            "COPY (SELECT c.* FROM {schema}.customers c JOIN {schema}.delta_ids d ON d.id = c.customer_id) TO STDOUT"
        ))
        .await
        .unwrap();
    futures::pin_mut!(out);
    let mut data = Vec::new();
    while let Some(chunk) = out.next().await {
        data.extend_from_slice(&chunk.unwrap());
    }
    pg.batch_execute(&format!("DROP TABLE {schema}.delta_ids"))
        .await
        .unwrap();
    data.split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_PROFILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let phases = std::env::var("SLUICE_BENCH_PHASES")
        .unwrap_or_else(|_| "import,export,change,merge,csv".into());
    let wants = |p: &str| phases.split(',').any(|x| x.trim() == p);
    let shuffled = std::env::var("SLUICE_BENCH_MERGE_ORDER").is_ok_and(|o| o == "shuffled");
    let pg_url = std::env::var("SLUICE_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("SLUICE_TEST_POSTGRES_URL"))
        .expect("set SLUICE_BENCH_POSTGRES_URL to a PostgreSQL server");
    let bin = binary();
    assert!(
        bin.exists(),
        "no binary at {} (set SLUICE_BIN)",
        bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();

    let t = Instant::now();
    let new_ndjson = files.join("new.ndjson");
    write_profiles(&new_ndjson, 0, n, 1, 42, false);
    eprintln!(
        "wrote {n} profiles as NDJSON in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (pg, conn) = tokio_postgres::connect(&pg_url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let schema = format!("bench_server_{}", std::process::id());
    pg.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}; {}",
        workload::TABLE
    ))
    .await
    .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = format!("bench-{}", std::process::id());
    let data = dir.path().join("data");
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_DATA_DIR", &data)
        .env("SLUICE_ADMIN_TOKEN", &token)
        .env("SLUICE_SCHEDULER_INTERVAL_SECONDS", "3600")
        .stdout(Stdio::null());
    if let Ok(url) = std::env::var("SLUICE_BENCH_PROFILES_URL") {
        cmd.env("SLUICE_PROFILES_URL", url);
    }
    let meta = match std::env::var("SLUICE_BENCH_METADATA_URL") {
        Ok(url) => {
            cmd.env("SLUICE_METADATA_URL", &url);
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect to the metadata store's PostgreSQL");
            tokio::spawn(conn);
            Some(client)
        }
        Err(_) => None,
    };
    let server = Server::spawn(&mut cmd, format!("http://127.0.0.1:{port}"), token).await;
    let pid = server.pid();
    let idle_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    server
        .call(
            reqwest::Method::PUT,
            "/v1/profile-schema",
            Some(sample::schema()),
        )
        .await;

    let dest = server.postgres_connection(&pg_url, &schema, "bench").await;
    let pipeline = server
        .customers_pipeline(&dest, "bench", workload::mapping())
        .await;

    let mut results = Vec::new();
    let mut sync_size: Option<String> = None;
    let run_phase = |run: Value| {
        let c = &run["counts"];
        let rows = ["inserted", "updated", "unchanged"]
            .iter()
            .map(|k| c[k].as_u64().unwrap_or(0))
            .sum::<u64>();
        let note = format!(
            "{} read; {} ins, {} upd, {} unchanged; in the server {}",
            c["read"],
            c["inserted"],
            c["updated"],
            c["unchanged"],
            run_secs(&run)
        );
        (rows, note)
    };
    if wants("import") {
        results.push(
            phase(&format!("import {n} new profiles (NDJSON)"), pid, async {
                import(&bin, &server, &new_ndjson)
            })
            .await,
        );
    }
    if wants("export") {
        let before = sync_state_bytes(&data, meta.as_ref()).await;
        results.push(
            phase("first export", pid, async {
                run_phase(server.run("pipelines", &pipeline).await)
            })
            .await,
        );
        let grown = sync_state_bytes(&data, meta.as_ref())
            .await
            .saturating_sub(before);
        let synced = results.last().map_or(0, |p| p.rows).max(1);
        sync_size = Some(format!(
            "sync state on disk ({}): {:.1} MiB for {synced} rows, {:.1} MiB per 1,000,000 rows",
            if meta.is_some() {
                "PostgreSQL metadata store, pg_total_relation_size of sluice_sync_state"
            } else {
                "SQLite metadata store, growth of metadata.db's pages, those in its WAL included"
            },
            grown as f64 / 1048576.0,
            grown as f64 / 1048576.0 * 1e6 / synced as f64
        ));
        eprintln!("{}", sync_size.as_deref().unwrap_or_default());
        results.push(
            phase("re-run, nothing changed", pid, async {
                run_phase(server.run("pipelines", &pipeline).await)
            })
            .await,
        );
    }
    // Rounds after the first change other profiles (the next id of each hundred, the next 0.1% new), each
    // against floors of its own: on a noisy machine one round's ratio says little, their median more.
    let rounds: usize = std::env::var("SLUICE_BENCH_CHANGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 100);
    let mut ratios: Vec<(f64, f64)> = Vec::new();
    for round in 0..if wants("change") { rounds } else { 0 } {
        let named = |name: &str| match round {
            0 => name.to_string(),
            r => format!("{name} (round {})", r + 1),
        };
        let added_n = n / 1000;
        let changed = files.join("changed.ndjson");
        write_profiles(&changed, round, n, 100, 43 + round as u64, false);
        let added = files.join("added.ndjson");
        write_profiles(
            &added,
            n + round * added_n,
            n + (round + 1) * added_n,
            1,
            42,
            false,
        );
        import(&bin, &server, &changed);
        import(&bin, &server, &added);
        // The floor's own table: the export's as it stands before the re-run, with the same physical
        // layout (rows in the order the export wrote them), so that the floor updates rows scattered
        // through the table as the re-run does. Both tables are vacuumed (hint bits set, as autovacuum
        // would) and a checkpoint precedes each measured write, so that each pays the same first-write
        // costs (full-page images in the WAL).
        // A second copy takes the same rows written in the run's pages (the paged floor below).
        for copy in ["customers_floor", "customers_paged"] {
            pg.batch_execute(&format!(
                "CREATE TABLE {schema}.{copy} (LIKE {schema}.customers INCLUDING ALL); \
                 INSERT INTO {schema}.{copy} SELECT * FROM {schema}.customers"
            ))
            .await
            .unwrap();
        }
        // One statement each: VACUUM cannot run in the transaction a batch of statements makes.
        for sql in [
            "VACUUM customers",
            "VACUUM customers_floor",
            "VACUUM customers_paged",
            "CHECKPOINT",
        ] {
            pg.batch_execute(&sql.replace("customers", &format!("{schema}.customers")))
                .await
                .unwrap();
        }
        let rerun = phase(&named("re-run, 1% changed + 0.1% new"), pid, async {
            run_phase(server.run("pipelines", &pipeline).await)
        })
        .await;
        let rerun_secs = rerun.secs;
        results.push(rerun);
        // The server may still be writing what the run left behind (its metadata checkpoint): the floors
        // must not pay for that disk traffic.
        settle_writes(pid).await;
        // The floor: the same rows, now in the table, written again by COPY + one upsert.
        let ids: Vec<String> = (round..n)
            .step_by(100)
            .chain(n + round * added_n..n + (round + 1) * added_n)
            .map(|k| format!("c{k:07}"))
            .collect();
        let rows = rows_of(&pg, &schema, &ids).await;
        assert_eq!(rows.len(), ids.len(), "every changed row is in the table");
        pg.batch_execute("CHECKPOINT").await.unwrap();
        let secs = floor(&pg, &schema, "customers_floor", &rows).await;
        eprintln!(
            "floor: COPY + INSERT … ON CONFLICT of the {} changed and new rows: {secs:.3} s",
            rows.len()
        );
        let floor_phase = |name: &str, secs: f64| Phase {
            name: name.into(),
            rows: rows.len() as u64,
            secs,
            server_cpu: 0.0,
            client_cpu: 0.0,
            peak_mib: 0.0,
            after_mib: 0.0,
            note: String::new(),
        };
        results.push(floor_phase(
            &named("floor: those rows by COPY into a temp table + INSERT … ON CONFLICT, into a copy of the table as it was before the re-run"),
            secs,
        ));
        // Not the floor but what a run cannot avoid once it writes in pages: how much of the
        // re-run's excess is the pages themselves, and how much is Sluice.
        pg.batch_execute("CHECKPOINT").await.unwrap();
        // In id order, as the run reads and writes them.
        let mut sorted = rows.clone();
        sorted.sort();
        let pages = change_pages(&sorted);
        let paged = floor_in_pages(&pg, &schema, "customers_paged", &pages).await;
        eprintln!(
            "paged floor: the same rows in the run's {} pages, a transaction each: {paged:.3} s",
            pages.len()
        );
        results.push(floor_phase(
            &named("paged floor: the same rows in the run's pages (COPY + upsert + commit each), into another copy"),
            paged,
        ));
        // How the floor was measured until 2026-12-06: into the export's own table right after the
        // re-run, which has just written the same rows (their pages cached, written since the last
        // checkpoint, and the rows' current versions packed together where the re-run put them).
        let warm = floor(&pg, &schema, "customers", &rows).await;
        eprintln!("floor into the table just written (warm): {warm:.3} s");
        results.push(floor_phase(
            &named("warm floor: the same into the export's table right after the re-run"),
            warm,
        ));
        ratios.push((rerun_secs / secs, rerun_secs / paged));
        pg.batch_execute(&format!(
            "DROP TABLE {schema}.customers_floor, {schema}.customers_paged"
        ))
        .await
        .unwrap();
    }
    if wants("merge") {
        let merged = files.join("merged.ndjson");
        if shuffled {
            write_profiles_of(&merged, scrambled(n), 44, false);
        } else {
            write_profiles(&merged, 0, n, 1, 44, false);
        }
        results.push(
            phase(
                &format!(
                    "import {n} existing profiles, every one changed (NDJSON{})",
                    if shuffled { ", shuffled" } else { "" }
                ),
                pid,
                async { import(&bin, &server, &merged) },
            )
            .await,
        );
        std::fs::remove_file(&merged).ok();
    }
    if wants("csv") {
        let csv = files.join("new.csv");
        write_profiles(&csv, 2 * n, 3 * n, 1, 42, true);
        results.push(
            phase(&format!("import {n} new profiles (CSV)"), pid, async {
                import(&bin, &server, &csv)
            })
            .await,
        );
    }

    server.stop();
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();

    println!("\n`sluice serve` idle after start: {idle_mib:.0} MiB resident\n");
    if let Some(s) = &sync_size {
        println!("{s}\n");
    }
    println!("| phase ({n} profiles) | time | rows/s | server CPU | client CPU | server peak RSS | RSS 1 s after | |");
    println!("|---|---|---|---|---|---|---|---|");
    for p in &results {
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.2} s | {:.0} MiB | {:.0} MiB | {} |",
            p.name,
            p.secs,
            p.rows as f64 / p.secs,
            p.server_cpu,
            p.client_cpu,
            p.peak_mib,
            p.after_mib,
            p.note
        );
    }
    let rate = |prefix: &str| {
        results
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .map(|p| p.rows as f64 / p.secs)
    };
    if let Some(export) = rate("first export") {
        for (what, prefix) in [
            ("NDJSON import", "import {n} new profiles (NDJSON)"),
            ("merge import", "import {n} existing"),
            ("CSV import", "import {n} new profiles (CSV)"),
        ] {
            let prefix = prefix.replace("{n}", &n.to_string());
            if let Some(r) = rate(&prefix) {
                println!("{what} / first export rate: {:.0}%", 100.0 * r / export);
            }
        }
    }
    let secs = |prefix: &str| {
        results
            .iter()
            .find(|p| p.name.starts_with(prefix))
            .map(|p| p.secs)
    };
    if let (Some(changed), Some(floor)) = (secs("re-run, 1%"), secs("floor")) {
        println!(
            "change re-run / floor: {:.2}× (wall time, measured from outside)",
            changed / floor
        );
    }
    if let (Some(changed), Some(paged)) = (secs("re-run, 1%"), secs("paged floor")) {
        println!("change re-run / paged floor: {:.2}×", changed / paged);
    }
    if let (Some(changed), Some(warm)) = (secs("re-run, 1%"), secs("warm floor")) {
        println!("change re-run / warm floor: {:.2}×", changed / warm);
    }
    if ratios.len() > 1 {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let m = v.len() / 2;
            if v.len() % 2 == 1 {
                v[m]
            } else {
                (v[m - 1] + v[m]) / 2.0
            }
        };
        let show = |v: Vec<f64>| {
            v.iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (to_floor, to_paged): (Vec<f64>, Vec<f64>) = ratios.iter().copied().unzip();
        println!(
            "change re-run / floor over {} rounds: median {:.2}× ({})",
            ratios.len(),
            median(to_floor.clone()),
            show(to_floor)
        );
        println!(
            "change re-run / paged floor over {} rounds: median {:.2}× ({})",
            ratios.len(),
            median(to_paged.clone()),
            show(to_paged)
        );
    }
}

/// Waits until process `pid` has written nothing to storage for 300 ms (at most 30 s).
async fn settle_writes(pid: u32) {
    let written = || {
        std::fs::read_to_string(format!("/proc/{pid}/io"))
            .ok()
            .and_then(|io| {
                io.lines()
                    .find_map(|l| l.strip_prefix("write_bytes:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
    };
    let started = Instant::now();
    let mut last = written();
    while started.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = written();
        if now == last {
            return;
        }
        last = now;
    }
}

/// What the sync state takes on disk: the sync-state table with its indexes in a PostgreSQL metadata
/// store, else the embedded metadata database's pages (the export adds little else).
async fn sync_state_bytes(data: &Path, meta: Option<&tokio_postgres::Client>) -> u64 {
    if let Some(pg) = meta {
        let row = pg
            .query_one(
                "SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::bigint FROM pg_class \
                 WHERE relname = 'sluice_sync_state' AND relkind = 'r'",
                &[],
            )
            .await
            .expect("the sync state's size");
        return row.get::<_, i64>(0) as u64;
    }
    // The database's pages as a reader sees them, the WAL's included: the files' lengths would count a
    // page twice while it is both in the WAL and copied into the database, and the WAL's length stays
    // after a checkpoint.
    let Ok(db) = rusqlite::Connection::open_with_flags(
        data.join("metadata.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return 0;
    };
    db.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map_or(0, |b| b as u64)
}
