//! The side-by-side table of `BENCHMARKS.md`: Sluice against `psql \copy`, COPY into a temporary table
//! with one `INSERT … ON CONFLICT`, and Sling with and without an `updated_at` cursor, on the same rows, on
//! one PostgreSQL server. Run it with `scripts/side-by-side.sh`, which installs Sling and builds Sluice.
//!
//! For each N (`SLUICE_SBS_PROFILES`, `100000,1000000` by default):
//! 1. N sample profiles are imported into a `sluice serve` (embedded stores) and exported by a pipeline to
//!    a 21-column table: Sluice's first export. Its table is the reference state the other tools are
//!    checked against, and the source table of the others is a copy of it with an `updated_at` column.
//! 2. Each tool loads the source's rows into an empty table of its own with the same columns.
//! 3. Everything runs again with nothing changed.
//! 4. 1% of the profiles change and 0.1% are added (imported into Sluice; the same rows put into the
//!    source table with a new `updated_at`), and everything runs again; the reference writes only those
//!    rows (COPY + upsert), the floor of a change.
//!
//! Every phase is checked: the row count and an md5 over all 21 columns of every row (in id order) equal
//! the reference's. Sluice's own rows are checked by count, and after the change by the number of rows
//! that differ from before (exactly the changed and new profiles). Each phase reports its wall time, the
//! CPU seconds of the tool (the server for Sluice; `psql` or `sling` otherwise) and of PostgreSQL (every
//! process of the server, when it runs on this machine and its data directory is readable), and the WAL
//! it wrote: what limits the figure follows from those.
//!
//! `SLUICE_BENCH_POSTGRES_URL` (a superuser: the phases run `CHECKPOINT`), `SLUICE_BIN`, `SLUICE_SLING`
//! (the Sling binary, `sling` on the `PATH` by default).

#[path = "export/serve.rs"]
mod serve;
#[path = "export/workload.rs"]
mod workload;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use serve::{binary, children_cpu_secs, cpu_secs, run_secs, Server};
use sluice::sample;

/// The 21 columns of the benchmark's table, in order.
const COLS: &str = "customer_id, email, first_name, last_name, full_name, country, birth_date, \
                    signed_up_at, ltv, orders, newsletter, score, tags, phone, language, segment, \
                    loyalty_points, last_order_at, street, city, postal_code";

struct Ctx {
    pg: tokio_postgres::Client,
    url: String,
    sling: PathBuf,
    /// The PostgreSQL server's postmaster, when its processes can be read here.
    postmaster: Option<u32>,
    dir: PathBuf,
}

/// One measured figure.
struct Figure {
    n: usize,
    tool: &'static str,
    phase: &'static str,
    secs: f64,
    tool_cpu: f64,
    db_cpu: Option<f64>,
    wal_mib: f64,
    rows: u64,
    note: String,
}

impl Figure {
    /// Which resource the figure spent its time on; the machine has two cores.
    fn limit(&self) -> String {
        let share = |cpu: f64| cpu / self.secs.max(1e-9);
        let tool = share(self.tool_cpu);
        let db = self.db_cpu.map(share).unwrap_or(0.0);
        if self.secs < 0.2 {
            "round trips and fixed costs".into()
        } else if tool >= 0.7 && tool >= db {
            format!("the tool's CPU ({:.0}% of a core)", tool * 100.0)
        } else if db >= 0.7 {
            format!("the database's CPU ({:.0}% of a core)", db * 100.0)
        } else {
            format!(
                "waiting (disk, WAL flushes, round trips): tool {:.0}%, database {:.0}% of a core",
                tool * 100.0,
                db * 100.0
            )
        }
    }
}

/// User + system CPU seconds of every process of the PostgreSQL server: the postmaster and the children
/// it reaped (its `cutime`/`cstime`), and its children alive now.
fn db_cpu(postmaster: Option<u32>) -> Option<f64> {
    let pm = postmaster?;
    let stat = |pid: &str| -> Option<(u32, [f64; 4])> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
        let f = |i: usize| {
            rest.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let ppid = rest.get(1)?.parse().ok()?;
        Some((ppid, [f(11), f(12), f(13), f(14)]))
    };
    let (_, own) = stat(&pm.to_string())?;
    let mut ticks = own.iter().sum::<f64>();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some((ppid, t)) = stat(&name) {
            if ppid == pm {
                ticks += t[0] + t[1];
            }
        }
    }
    Some(ticks / 100.0)
}

impl Ctx {
    async fn wal_lsn(&self) -> f64 {
        let row = self
            .pg
            .query_one(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8",
                &[],
            )
            .await
            .unwrap();
        row.get(0)
    }

    /// Runs `f` after a checkpoint (so that every figure pays its own first writes of pages), measuring
    /// it; `tool_cpu` says where the tool's CPU is read (the server's pid, or the children waited for).
    async fn measure<F: std::future::Future<Output = (u64, String)>>(
        &self,
        n: usize,
        tool: &'static str,
        phase: &'static str,
        server: Option<u32>,
        f: F,
    ) -> Figure {
        self.pg.batch_execute("CHECKPOINT").await.unwrap();
        let tool_cpu = || server.map_or_else(children_cpu_secs, cpu_secs);
        let (c0, d0, w0, t) = (
            tool_cpu(),
            db_cpu(self.postmaster),
            self.wal_lsn().await,
            Instant::now(),
        );
        let (rows, note) = f.await;
        let secs = t.elapsed().as_secs_f64();
        let fig = Figure {
            n,
            tool,
            phase,
            secs,
            tool_cpu: tool_cpu() - c0,
            db_cpu: db_cpu(self.postmaster).zip(d0).map(|(b, a)| b - a),
            wal_mib: (self.wal_lsn().await - w0) / 1048576.0,
            rows,
            note,
        };
        eprintln!(
            "N={n} {tool}, {phase}: {:.2} s, tool CPU {:.2} s, database CPU {}, WAL {:.0} MiB; {}; {}",
            fig.secs,
            fig.tool_cpu,
            fig.db_cpu.map_or("?".into(), |c| format!("{c:.2} s")),
            fig.wal_mib,
            fig.limit(),
            fig.note
        );
        fig
    }

    /// Row count and md5 over all 21 columns of every row, in id order.
    async fn check(&self, table: &str) -> (i64, String) {
        let row = self
            .pg
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(md5(ROW({COLS})::text), '' \
                     ORDER BY customer_id)), '') FROM {table}"
                ),
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// `psql` with `script` on standard input, stopping at the first error.
    fn psql(&self, script: &str) {
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("run psql");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "psql failed on: {script}");
    }

    /// One phase of both Sling replications: by primary key with an `updated_at` cursor into
    /// `cursor_t`, and by primary key only into `pk_t`.
    async fn slings(
        &self,
        n: usize,
        phase: &'static str,
        src_t: &str,
        cursor_t: &str,
        pk_t: &str,
    ) -> [Figure; 2] {
        let tool = "Sling 1.4.11, primary key + `updated_at` cursor";
        let cursor = self
            .measure(n, tool, phase, None, async {
                self.sling(src_t, cursor_t, Some("updated_at"))
            })
            .await;
        let tool = "Sling 1.4.11, primary key only";
        let pk = self
            .measure(n, tool, phase, None, async {
                self.sling(src_t, pk_t, None)
            })
            .await;
        [cursor, pk]
    }

    /// Sling from the source table into `target`, incremental on the primary key, with `update_key` as
    /// the cursor if given; the rows it reports written.
    fn sling(&self, source: &str, target: &str, update_key: Option<&str>) -> (u64, String) {
        let mut cmd = Command::new(&self.sling);
        cmd.args(["run", "--src-conn", "SBS_PG", "--src-stream", source])
            .args(["--tgt-conn", "SBS_PG", "--tgt-object", target])
            .args(["--mode", "incremental", "--primary-key", "customer_id"])
            .env("SBS_PG", sling_url(&self.url))
            .env("SLING_DISABLE_TELEMETRY", "true")
            .env("HOME", &self.dir)
            .current_dir(&self.dir);
        if let Some(k) = update_key {
            cmd.args(["--update-key", k]);
        }
        let out = cmd.output().expect("run sling");
        let log = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "sling failed:\n{log}");
        // "inserted 1000 rows into …" (or "no data … found in stream").
        let rows = log
            .lines()
            .filter_map(|l| l.split_once("inserted ").map(|(_, r)| r))
            .filter_map(|r| r.split_whitespace().next()?.replace(',', "").parse().ok())
            .next_back()
            .unwrap_or(0);
        (rows, format!("sling wrote {rows} rows"))
    }
}

/// Sling reads `sslmode` from the URL and otherwise asks for TLS.
fn sling_url(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// Sample profiles `from..to` by `step` with `seed`, as NDJSON (the same as the `server` benchmark's).
fn write_profiles(path: &Path, from: usize, to: usize, step: usize, seed: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    for k in (from..to).step_by(step) {
        let mut p = sample::profile(seed, k);
        p["_id"] = json!(format!("c{k:07}"));
        serde_json::to_writer(&mut out, &p).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
}

fn import(bin: &Path, server: &Server, file: &Path) {
    let out = Command::new(bin)
        .args(["profiles", "import"])
        .arg(file)
        .env("SLUICE_URL", &server.url)
        .env("SLUICE_ADMIN_TOKEN", &server.token)
        .output()
        .expect("run sluice profiles import");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("; 0 rejected"),
        "the import failed: {text}"
    );
}

/// The upsert of the reference: `file`'s rows COPYed into a temporary table and merged into `table`
/// with one `INSERT … ON CONFLICT`, in one transaction.
fn upsert_script(table: &str, file: &Path) -> String {
    let set: Vec<String> = COLS
        .split(", ")
        .skip(1)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "BEGIN;\nCREATE TEMP TABLE delta (LIKE {table}) ON COMMIT DROP;\n\\copy delta FROM '{}'\n\
         INSERT INTO {table} SELECT * FROM delta ON CONFLICT (customer_id) DO UPDATE SET {};\nCOMMIT;\n",
        file.display(),
        set.join(", ")
    )
}

/// Checks that each of the tools' tables holds `state` (count and md5).
async fn same(
    ctx: &Ctx,
    tables: &dyn Fn(&str) -> String,
    which: &[&str],
    state: &(i64, String),
    phase: &str,
) {
    for s in which {
        let got = ctx.check(&tables(s)).await;
        assert_eq!(
            &got, state,
            "{s}, {phase}: the row count and md5 differ from the reference"
        );
        eprintln!(
            "{s}, {phase}: {} rows, md5 {} as the reference",
            got.0, got.1
        );
    }
}

async fn one_size(ctx: &Ctx, bin: &Path, n: usize, figures: &mut Vec<Figure>) {
    let tag = format!("sbs{}_{n}", std::process::id());
    let schema = |s: &str| format!("{tag}_{s}");
    let files = ctx.dir.join(format!("n{n}"));
    std::fs::create_dir_all(&files).unwrap();
    let new = files.join("new.ndjson");
    write_profiles(&new, 0, n, 1, 42);
    let changed = files.join("changed.ndjson");
    write_profiles(&changed, 0, n, 100, 43);
    let added = files.join("added.ndjson");
    write_profiles(&added, n, n + n / 1000, 1, 42);

    for s in [
        "sluice",
        "src",
        "copy",
        "upsert",
        "sling_cursor",
        "sling_pk",
    ] {
        ctx.pg
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path TO {0}; {1}",
                schema(s),
                workload::TABLE
            ))
            .await
            .unwrap();
    }
    for s in ["src", "sling_cursor", "sling_pk"] {
        ctx.pg
            .batch_execute(&format!(
                "ALTER TABLE {}.customers ADD COLUMN updated_at timestamptz",
                schema(s)
            ))
            .await
            .unwrap();
    }

    // Sluice, embedded stores.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = format!("bench-{}", std::process::id());
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"))
        .env("SLUICE_DATA_DIR", files.join("data"))
        .env("SLUICE_ADMIN_TOKEN", &token)
        .env("SLUICE_SCHEDULER_INTERVAL_SECONDS", "3600")
        .stdout(Stdio::null());
    let server = Server::spawn(&mut cmd, format!("http://127.0.0.1:{port}"), token).await;
    let pid = server.pid();
    server
        .call(
            reqwest::Method::PUT,
            "/v1/profile-schema",
            Some(sample::schema()),
        )
        .await;
    let dest = server
        .postgres_connection(&ctx.url, &schema("sluice"), "sbs")
        .await;
    let pipeline = server
        .customers_pipeline(&dest, "sbs", workload::mapping())
        .await;
    import(bin, &server, &new);
    let sluice_run = |phase: &'static str| {
        let (server, pipeline) = (&server, &pipeline);
        ctx.measure(n, "Sluice (`sluice serve`)", phase, Some(pid), async move {
            let run = server.run("pipelines", pipeline).await;
            let c = &run["counts"];
            let rows = ["inserted", "updated"]
                .iter()
                .map(|k| c[k].as_u64().unwrap_or(0))
                .sum();
            (
                rows,
                format!(
                    "{} ins, {} upd, {} unchanged; {} in the server",
                    c["inserted"],
                    c["updated"],
                    c["unchanged"],
                    run_secs(&run)
                ),
            )
        })
    };

    let tables = |s: &str| format!("{}.customers", schema(s));
    let (sluice_t, src_t) = (tables("sluice"), tables("src"));
    // 1. First load.
    figures.push(sluice_run("first load").await);
    let first = ctx.check(&sluice_t).await;
    assert_eq!(
        first.0, n as i64,
        "Sluice's first export wrote every profile"
    );
    ctx.pg
        .batch_execute(&format!(
            "INSERT INTO {src_t} SELECT {COLS}, now() FROM {sluice_t} ORDER BY customer_id"
        ))
        .await
        .unwrap();
    ctx.pg
        .batch_execute(&format!("VACUUM ANALYZE {src_t}"))
        .await
        .unwrap();
    let rows0 = files.join("rows0.tsv");
    ctx.psql(&format!(
        "\\copy (SELECT {COLS} FROM {src_t} ORDER BY customer_id) TO '{}'\n",
        rows0.display()
    ));
    let copy_t = tables("copy");
    figures.push(
        ctx.measure(n, "`psql \\copy`", "first load", None, async {
            ctx.psql(&format!("\\copy {copy_t} FROM '{}'\n", rows0.display()));
            (n as u64, String::new())
        })
        .await,
    );
    let upsert_t = tables("upsert");
    figures.push(
        ctx.measure(
            n,
            "COPY into a temp table + `INSERT … ON CONFLICT`",
            "first load",
            None,
            async {
                ctx.psql(&upsert_script(&upsert_t, &rows0));
                (n as u64, String::new())
            },
        )
        .await,
    );
    let (cursor_t, pk_t) = (tables("sling_cursor"), tables("sling_pk"));
    figures.extend(ctx.slings(n, "first load", &src_t, &cursor_t, &pk_t).await);
    same(
        ctx,
        &tables,
        &["copy", "upsert", "sling_cursor", "sling_pk"],
        &first,
        "first load",
    )
    .await;

    // 2. Nothing changed.
    figures.push(sluice_run("re-run, nothing changed").await);
    assert_eq!(ctx.check(&sluice_t).await, first, "Sluice, nothing changed");
    figures.push(
        ctx.measure(
            n,
            "COPY into a temp table + `INSERT … ON CONFLICT`",
            "re-run, nothing changed (every row sent again)",
            None,
            async {
                ctx.psql(&upsert_script(&upsert_t, &rows0));
                (n as u64, String::new())
            },
        )
        .await,
    );
    figures.extend(
        ctx.slings(n, "re-run, nothing changed", &src_t, &cursor_t, &pk_t)
            .await,
    );
    same(
        ctx,
        &tables,
        &["upsert", "sling_cursor", "sling_pk"],
        &first,
        "nothing changed",
    )
    .await;

    // 3. 1% changed + 0.1% new.
    import(bin, &server, &changed);
    import(bin, &server, &added);
    figures.push(sluice_run("re-run, 1% changed + 0.1% new").await);
    let after = ctx.check(&sluice_t).await;
    assert_eq!(
        after.0,
        (n + n / 1000) as i64,
        "Sluice wrote the new profiles"
    );
    // The rows that differ from before: exactly the changed and new profiles.
    let delta = files.join("delta.tsv");
    ctx.psql(&format!(
        "\\copy (SELECT s.* FROM {sluice_t} s LEFT JOIN {src_t} o USING (customer_id) \
         WHERE o.customer_id IS NULL OR ROW(s.*) IS DISTINCT FROM ROW({}) ORDER BY customer_id) TO '{}'\n",
        COLS.split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        delta.display()
    ));
    let delta_rows = std::fs::read(&delta)
        .unwrap()
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    assert_eq!(
        delta_rows,
        n.div_ceil(100) + n / 1000,
        "Sluice changed exactly the changed and new profiles' rows"
    );
    let set: Vec<String> = COLS
        .split(", ")
        .skip(1)
        .chain(["updated_at"])
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    ctx.psql(&format!(
        "BEGIN;\nCREATE TEMP TABLE d (LIKE {sluice_t}) ON COMMIT DROP;\n\\copy d FROM '{}'\n\
         INSERT INTO {src_t} SELECT d.*, clock_timestamp() FROM d \
         ON CONFLICT (customer_id) DO UPDATE SET {};\nCOMMIT;\n",
        delta.display(),
        set.join(", ")
    ));
    figures.push(
        ctx.measure(
            n,
            "COPY into a temp table + `INSERT … ON CONFLICT`",
            "re-run, 1% changed + 0.1% new (only those rows: the floor)",
            None,
            async {
                ctx.psql(&upsert_script(&upsert_t, &delta));
                (delta_rows as u64, String::new())
            },
        )
        .await,
    );
    figures.extend(
        ctx.slings(n, "re-run, 1% changed + 0.1% new", &src_t, &cursor_t, &pk_t)
            .await,
    );
    same(
        ctx,
        &tables,
        &["upsert", "sling_cursor", "sling_pk"],
        &after,
        "1% changed",
    )
    .await;

    server.stop();
    for s in [
        "sluice",
        "src",
        "copy",
        "upsert",
        "sling_cursor",
        "sling_pk",
    ] {
        ctx.pg
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", schema(s)))
            .await
            .unwrap();
    }
    std::fs::remove_dir_all(&files).ok();
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SLUICE_SBS_PROFILES")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SLUICE_SBS_PROFILES: numbers"))
        .collect();
    let url = std::env::var("SLUICE_BENCH_POSTGRES_URL")
        .expect("set SLUICE_BENCH_POSTGRES_URL to a PostgreSQL server (a superuser)");
    let bin = binary();
    assert!(
        bin.exists(),
        "no binary at {} (set SLUICE_BIN)",
        bin.display()
    );
    let sling: PathBuf = std::env::var("SLUICE_SLING")
        .unwrap_or_else(|_| "sling".into())
        .into();
    let (pg, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let data_dir: String = pg
        .query_one("SHOW data_directory", &[])
        .await
        .unwrap()
        .get(0);
    let postmaster = std::fs::read_to_string(Path::new(&data_dir).join("postmaster.pid"))
        .ok()
        .and_then(|s| s.lines().next()?.trim().parse().ok());
    if postmaster.is_none() {
        eprintln!("PostgreSQL's processes cannot be read here: its CPU is not reported");
    }
    let version: String = pg
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    let dir = tempfile::tempdir().unwrap();
    let ctx = Ctx {
        pg,
        url,
        sling,
        postmaster,
        dir: dir.path().to_path_buf(),
    };
    let mut figures = Vec::new();
    for &n in &sizes {
        one_size(&ctx, &bin, n, &mut figures).await;
    }

    println!(
        "\nPostgreSQL {version}; every figure checked by row count and md5 over all columns\n"
    );
    println!("| N | tool | phase | time | tool CPU | PostgreSQL CPU | WAL | limited by | |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {} | {:.2} s | {:.2} s | {} | {:.0} MiB | {} | {} rows; {} |",
            f.n,
            f.tool,
            f.phase,
            f.secs,
            f.tool_cpu,
            f.db_cpu.map_or("—".into(), |c| format!("{c:.2} s")),
            f.wal_mib,
            f.limit(),
            f.rows,
            f.note
        );
    }
}
