//! Real `sluice serve` processes against real PostgreSQL: two instances sharing one metadata store share the
//! scheduled work, never run one pipeline twice at once, and take over from an instance killed with
//! SIGKILL mid-run; a single instance killed mid-run and started again marks the run failed and converges.
//!
//! Needs `SLUICE_TEST_POSTGRES_URL` (scripts/services.sh starts a server); each test works in its own
//! randomly named schemas and drops them at the end.

use std::io::{BufReader, Lines};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

use support::BIN;
const TOKEN: &str = "instances-test-token";
const LEASE_SECONDS: u64 = 3;

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)")
}

/// The PostgreSQL URL with `schema` first on the search path.
fn url_in(schema: &str) -> String {
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-csearch_path%3D{schema}")
}

async fn pg() -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c
}

struct Server {
    served: support::Server,
    /// Kept open: the server logs to it.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// SIGKILL: no shutdown path runs.
    fn kill(mut self) {
        self.served.child.kill().unwrap();
        self.served.child.wait().unwrap();
    }
}

/// Starts `sluice serve` on a free port. `meta`: the PostgreSQL metadata (and profile) store, or `None`
/// for the embedded stores in `dir`.
fn serve(dir: &Path, name: &str, meta: Option<&str>, extra: &[(&str, &str)]) -> Server {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = support::serve_command();
    cmd.env("SLUICE_DATA_DIR", &data)
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .env(
            "SLUICE_SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .env("SLUICE_LOG", "info,tower_http=warn")
        .env("SLUICE_RUN_LEASE_SECONDS", LEASE_SECONDS.to_string())
        .env("SLUICE_SCHEDULER_INTERVAL_SECONDS", "1")
        .env("SLUICE_BATCH_SIZE", "100")
        .env_remove("SLUICE_METADATA_URL")
        .env_remove("SLUICE_PROFILES_URL")
        .stderr(Stdio::from(log));
    if let Some(url) = meta {
        cmd.env("SLUICE_METADATA_URL", url)
            .env("SLUICE_PROFILES_URL", url);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let (served, stdout) = support::try_start(&mut cmd).unwrap_or_else(|first| {
        let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
        panic!("`sluice serve` did not start: {first}\n{log}");
    });
    Server {
        served,
        _stdout: stdout,
    }
}

async fn call(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", s.served.url))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn ok(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let (status, v) = call(s, method, path, body).await;
    assert!((200..300).contains(&status), "{path}: {status} {v}");
    v
}

fn profiles(n: usize, version: u32) -> Value {
    let list: Vec<Value> = (0..n)
        .map(
            |i| json!({"_id": format!("c{i:05}"), "email": format!("V{version}.U{i}@Example.com")}),
        )
        .collect();
    json!({"profiles": list})
}

/// Model, profiles and a PostgreSQL destination whose tables are slowed by a trigger (`delay` seconds per
/// statement), so runs last long enough to overlap and to be killed. A first run (ten batches) lasts more
/// than a scheduler interval, so an instance busy with one due pipeline leaves the others to its peer.
async fn setup(s: &Server, dest_schema: &str, tables: &[&str], n: usize) -> String {
    let c = pg().await;
    let mut ddl = format!(
        "CREATE SCHEMA {dest_schema};
         CREATE TABLE {dest_schema}.delay (s float8 NOT NULL); INSERT INTO {dest_schema}.delay VALUES (0.15);
         CREATE FUNCTION {dest_schema}.slow() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep((SELECT s FROM {dest_schema}.delay)); RETURN NULL; END $$;"
    );
    for t in tables {
        ddl.push_str(&format!(
            "CREATE TABLE {dest_schema}.{t} (id text PRIMARY KEY, email text NOT NULL);
             CREATE TRIGGER slow AFTER INSERT OR UPDATE ON {dest_schema}.{t}
               FOR EACH STATEMENT EXECUTE FUNCTION {dest_schema}.slow();"
        ));
    }
    c.batch_execute(&ddl).await.unwrap();
    ok(
        s,
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(json!({"properties": [{"name": "email", "type": "string"}]})),
    )
    .await;
    ok(
        s,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(profiles(n, 1)),
    )
    .await;
    let mut settings =
        sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    settings["schema"] = json!(dest_schema);
    settings["tls"] = json!({"mode": "disable"});
    let d = ok(
        s,
        reqwest::Method::POST,
        "/v1/destinations",
        Some(json!({"name": "pg", "type": "postgresql", "settings": settings})),
    )
    .await;
    d["id"].as_str().unwrap().to_string()
}

async fn add_pipeline(s: &Server, dest: &str, table: &str, schedule: Value) -> String {
    let p = ok(
        s,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(
            json!({"destination": dest, "name": table, "table": table, "key": "id",
            "transformation": {"mapping": {"id": "_id", "email": "lower(email)"}},
            "schedule": schedule}),
        ),
    )
    .await;
    p["id"].as_str().unwrap().to_string()
}

/// Run now, waiting out a run that may still be going.
async fn start_when_free(s: &Server, pipeline: &str) -> String {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v) = call(
            s,
            reqwest::Method::POST,
            &format!("/v1/pipelines/{pipeline}/runs"),
            None,
        )
        .await;
        if status == 202 {
            return v["id"].as_str().unwrap().to_string();
        }
        assert_eq!(status, 409, "{v}");
        assert!(Instant::now() < end, "{pipeline} stayed busy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_of(s: &Server, id: &str) -> Value {
    ok(s, reqwest::Method::GET, &format!("/v1/runs/{id}"), None).await
}

async fn wait_finished(s: &Server, id: &str, within: Duration) -> Value {
    let end = Instant::now() + within;
    loop {
        let r = run_of(s, id).await;
        if matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return r;
        }
        assert!(Instant::now() < end, "run {id} did not finish: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_processing(s: &Server, id: &str) {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let r = run_of(s, id).await;
        assert!(
            matches!(r["status"].as_str(), Some("queued" | "running")),
            "{r}"
        );
        if r["progress"]["processed"].as_u64().unwrap_or(0) > 0 {
            return;
        }
        assert!(Instant::now() < end, "run {id} wrote nothing: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn table_emails(schema: &str, table: &str) -> (i64, i64) {
    let c = pg().await;
    let row = c
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE email LIKE 'v2.%') FROM {schema}.{table}"
            ),
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn drop_schemas(schemas: &[&str]) {
    let c = pg().await;
    for s in schemas {
        let _ = c
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE"))
            .await;
    }
}

fn suffix() -> String {
    format!(
        "{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

/// What one test works in: a destination schema, a metadata schema (created) when the instances share a
/// PostgreSQL metadata store, and a data directory.
struct Fixture {
    dest_schema: String,
    meta_schema: Option<String>,
    meta: Option<String>,
    dir: tempfile::TempDir,
}

async fn fixture(name: &str, shared_meta: bool) -> Fixture {
    let sfx = suffix();
    let meta_schema = shared_meta.then(|| format!("sluice_{name}_meta_{sfx}"));
    if let Some(m) = &meta_schema {
        pg().await
            .batch_execute(&format!("CREATE SCHEMA {m}"))
            .await
            .unwrap();
    }
    Fixture {
        dest_schema: format!("sluice_{name}_dest_{sfx}"),
        meta: meta_schema.as_deref().map(url_in),
        meta_schema,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    fn serve(&self, name: &str, extra: &[(&str, &str)]) -> Server {
        serve(self.dir.path(), name, self.meta.as_deref(), extra)
    }

    /// How long each write to the destination tables sleeps (a statement trigger), in seconds.
    async fn set_delay(&self, seconds: f64) {
        pg().await
            .batch_execute(&format!(
                "UPDATE {}.delay SET s = {seconds}",
                self.dest_schema
            ))
            .await
            .unwrap();
    }

    async fn drop_schemas(&self) {
        let mut schemas = vec![self.dest_schema.as_str()];
        schemas.extend(self.meta_schema.as_deref());
        drop_schemas(&schemas).await;
    }
}

/// Starts a run of `pipeline` now; its id.
async fn run_now(s: &Server, pipeline: &str) -> String {
    let r = ok(
        s,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pipeline}/runs"),
        None,
    )
    .await;
    r["id"].as_str().unwrap().to_string()
}

/// The counts a killed run left (read after the restart's repair) against the rows it wrote: not zero,
/// never more than the table holds, and behind it by at most the batches written but not yet recorded
/// (three waiting to be recorded and one the server committed as the process died, of 100 rows each).
fn assert_counts_match(run: &Value, written: i64) {
    let counts = &run["counts"];
    let updated = counts["updated"].as_u64().unwrap();
    assert!(updated > 0, "the killed run's counts were kept: {run}");
    assert!(
        updated <= written as u64 && written as u64 - updated <= 400,
        "the killed run counts {updated} updated rows; the table holds {written}: {run}"
    );
    assert!(counts["read"].as_u64().unwrap() >= updated, "{run}");
    assert_eq!(counts["inserted"], 0, "{run}");
}

/// After a restart: the run the killed process left is failed as needing repair, and a new run of the
/// pipeline succeeds.
async fn restart_repairs(s: &Server, doomed: &str, pipeline: &str) {
    let r = run_of(s, doomed).await;
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["message"].as_str().unwrap().contains("repair"), "{r}");
    let next = run_now(s, pipeline).await;
    let r = wait_finished(s, &next, Duration::from_secs(60)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_and_take_over_from_a_killed_one() {
    let f = fixture("inst", true).await;
    let (dest_schema, meta_schema) = (&f.dest_schema, f.meta_schema.as_deref().unwrap());
    let one = [("SLUICE_MAX_CONCURRENT_RUNS", "1")];
    let a = f.serve("a", &one);
    let b = f.serve("b", &one);
    let tables = ["t1", "t2", "t3"];
    let dest = setup(&a, dest_schema, &tables, 1000).await;

    // Run now on one instance; Run now on the other while it goes answers 409.
    let p1 = add_pipeline(&a, &dest, "t1", Value::Null).await;
    let (status, first) = call(
        &a,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{p1}/runs"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{first}");
    let (status, v) = call(
        &b,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{p1}/runs"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "PipelineAlreadyRunning");
    let p = ok(
        &b,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{p1}"),
        None,
    )
    .await;
    assert_eq!(p["running"], first["id"], "the other instance sees the run");
    let r = wait_finished(&a, first["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "succeeded", "{r}");

    // Three pipelines due every minute, one slot per instance: both instances take scheduled runs.
    let mut ids = vec![p1.clone()];
    ok(
        &a,
        reqwest::Method::PATCH,
        &format!("/v1/pipelines/{p1}"),
        Some(json!({"schedule": {"cron": "* * * * *", "timezone": "UTC"}})),
    )
    .await;
    for t in &tables[1..] {
        ids.push(
            add_pipeline(
                &b,
                &dest,
                t,
                json!({"cron": "* * * * *", "timezone": "Europe/Rome"}),
            )
            .await,
        );
    }
    let next = ok(
        &a,
        reqwest::Method::GET,
        &format!("/v1/pipelines/{}", ids[2]),
        None,
    )
    .await;
    assert!(next["next_run_at"].is_string(), "{next}");
    let c = pg().await;
    let scheduled = format!(
        "SELECT pipeline, owner, status, started_at, finished_at FROM {meta_schema}.sluice_runs WHERE trigger = 'schedule'"
    );
    let end = Instant::now() + Duration::from_secs(150);
    loop {
        let rows = c.query(&scheduled, &[]).await.unwrap();
        let done: std::collections::HashSet<String> = rows
            .iter()
            .filter(|r| r.get::<_, String>(2) == "succeeded")
            .map(|r| r.get(0))
            .collect();
        if done.len() == ids.len() {
            break;
        }
        assert!(
            Instant::now() < end,
            "not every pipeline ran on schedule: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rows = c.query(&scheduled, &[]).await.unwrap();
    let owners: std::collections::HashSet<String> = rows.iter().map(|r| r.get(1)).collect();
    assert_eq!(
        owners.len(),
        2,
        "both instances ran scheduled runs: {rows:?}"
    );
    // No pipeline ever had two runs at once.
    let all = c
        .query(
            &format!("SELECT pipeline, started_at, finished_at FROM {meta_schema}.sluice_runs WHERE started_at IS NOT NULL ORDER BY pipeline, started_at"),
            &[],
        )
        .await
        .unwrap();
    for w in all.windows(2) {
        let (p0, p1_): (String, String) = (w[0].get(0), w[1].get(0));
        if p0 == p1_ {
            let end0: Option<chrono::DateTime<chrono::Utc>> = w[0].get(2);
            let start1: chrono::DateTime<chrono::Utc> = w[1].get(1);
            assert!(
                end0.is_some_and(|e| e <= start1),
                "overlapping runs of {p0}"
            );
        }
    }
    for t in tables {
        assert_eq!(table_emails(dest_schema, t).await.0, 1000, "{t}");
    }

    // Kill B in the middle of a run: A marks the run failed within the lease and runs the pipeline again.
    for t in &ids {
        ok(
            &a,
            reqwest::Method::PATCH,
            &format!("/v1/pipelines/{t}"),
            Some(json!({"schedule": null})),
        )
        .await;
    }
    f.set_delay(0.3).await;
    ok(
        &a,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(profiles(1000, 2)),
    )
    .await;
    // Cancel through A a run going on B: B stops it at its next heartbeat and batch boundary.
    let p3 = ids[2].clone();
    let cancelled = start_when_free(&b, &p3).await;
    wait_processing(&b, &cancelled).await;
    let (status, v) = call(
        &a,
        reqwest::Method::POST,
        &format!("/v1/runs/{cancelled}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let r = wait_finished(&a, &cancelled, Duration::from_secs(LEASE_SECONDS * 5)).await;
    assert_eq!(r["status"], "cancelled", "{r}");

    let p2 = ids[1].clone();
    let doomed = start_when_free(&b, &p2).await;
    wait_processing(&b, &doomed).await;
    let killed = Instant::now();
    b.kill();
    let r = wait_finished(&a, &doomed, Duration::from_secs(LEASE_SECONDS * 5)).await;
    let took = killed.elapsed();
    assert_eq!(r["status"], "failed", "{r}");
    assert!(r["message"].as_str().unwrap().contains("stopped"), "{r}");
    assert!(
        took <= Duration::from_secs(LEASE_SECONDS + 3),
        "the dead instance's run was failed after {took:?}"
    );
    eprintln!("a killed instance's run was marked failed after {took:?} (lease {LEASE_SECONDS} s)");
    f.set_delay(0.0).await;
    let (status, v) = call(
        &a,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{p2}/runs"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let r = wait_finished(&a, v["id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(
        table_emails(dest_schema, "t2").await,
        (1000, 1000),
        "converged"
    );

    drop(a);
    f.drop_schemas().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_instance_killed_mid_run_recovers_and_converges() {
    let f = fixture("kill", false).await;
    let s = f.serve("solo", &[]);
    let dest = setup(&s, &f.dest_schema, &["t"], 1000).await;
    let p = add_pipeline(&s, &dest, "t", Value::Null).await;
    let first = run_now(&s, &p).await;
    assert_eq!(
        wait_finished(&s, &first, Duration::from_secs(60)).await["status"],
        "succeeded"
    );

    // A second process on the same data directory is refused while the first lives.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SLUICE_DATA_DIR", f.dir.path().join("solo"))
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .env_remove("SLUICE_METADATA_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another Sluice process") && err.contains("SLUICE_METADATA_URL"),
        "{err}"
    );

    f.set_delay(0.3).await;
    ok(
        &s,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(profiles(1000, 2)),
    )
    .await;
    let doomed = run_now(&s, &p).await;
    wait_processing(&s, &doomed).await;
    // Long enough for the chain to record the first batches (milliseconds), shorter than the second
    // the stored record used to wait for between refreshes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.kill();
    let partial = table_emails(&f.dest_schema, "t").await;
    assert!(partial.1 < 1000, "killed before the end: {partial:?}");

    f.set_delay(0.0).await;
    let s = f.serve("solo", &[]);
    assert_counts_match(&run_of(&s, &doomed).await, partial.1);
    restart_repairs(&s, &doomed, &p).await;
    assert_eq!(
        table_emails(&f.dest_schema, "t").await,
        (1000, 1000),
        "converged"
    );
    drop(s);
    f.drop_schemas().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_instance_fails_its_own_runs_without_waiting_for_the_lease() {
    let f = fixture("restart", true).await;
    // A lease far longer than the test: only the instance's own name can explain a quick failure.
    let long = [("SLUICE_RUN_LEASE_SECONDS", "600")];
    let s = f.serve("pg", &long);
    let dest = setup(&s, &f.dest_schema, &["t"], 1000).await;
    f.set_delay(0.3).await;
    let p = add_pipeline(&s, &dest, "t", Value::Null).await;
    let doomed = run_now(&s, &p).await;
    wait_processing(&s, &doomed).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.kill();
    let written = table_emails(&f.dest_schema, "t").await.0;
    f.set_delay(0.0).await;

    let s = f.serve("pg", &long);
    let r = run_of(&s, &doomed).await;
    assert_eq!(r["status"], "failed", "{r}");
    let inserted = r["counts"]["inserted"].as_u64().unwrap();
    assert!(
        inserted > 0 && inserted <= written as u64 && written as u64 - inserted <= 400,
        "the killed run's counts ({}) match the {written} rows it wrote",
        r["counts"]
    );
    restart_repairs(&s, &doomed, &p).await;
    assert_eq!(table_emails(&f.dest_schema, "t").await.0, 1000, "converged");
    drop(s);
    f.drop_schemas().await;
}

/// The runs of a pipeline, newest first, once none is going.
async fn settled_runs(s: &Server, pipeline: &str, at_least: usize) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok(
            s,
            reqwest::Method::GET,
            &format!("/v1/pipelines/{pipeline}/runs"),
            None,
        )
        .await;
        let runs = v["runs"].as_array().cloned().unwrap_or_default();
        let going = runs
            .iter()
            .any(|r| matches!(r["status"].as_str(), Some("queued" | "running")));
        if runs.len() >= at_least && !going {
            return runs;
        }
        assert!(
            Instant::now() < end,
            "expected {at_least} finished runs: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two `sluice serve` processes on one PostgreSQL store and an `on_change` pipeline: profiles posted to
/// either instance in a burst make exactly one run (started by one of them), which writes them; changes
/// made while that run goes make exactly one run after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_start_one_on_change_run_per_burst() {
    let f = fixture("onchg", true).await;
    let quick = [
        ("SLUICE_ON_CHANGE_QUIET_SECONDS", "2"),
        ("SLUICE_ON_CHANGE_MAX_WAIT_SECONDS", "20"),
    ];
    let a = f.serve("a", &quick);
    let b = f.serve("b", &quick);
    let dest = setup(&a, &f.dest_schema, &["t"], 50).await;
    let p = add_pipeline(&b, &dest, "t", json!("on_change")).await;

    // The first run catches up: the 50 profiles already stored.
    let runs = settled_runs(&a, &p, 1).await;
    assert_eq!(runs[0]["trigger"], "on_change", "{runs:?}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(table_emails(&f.dest_schema, "t").await, (50, 0));

    // 50 requests, one profile each, half to each instance.
    let posts = (0..50).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let one = json!({"profiles": [{"_id": format!("c{i:05}"), "email": format!("V2.U{i}@Example.com")}]});
        ok(s, reqwest::Method::POST, "/v1/profiles", Some(one))
    });
    futures::future::join_all(posts).await;
    let runs = settled_runs(&b, &p, 2).await;
    assert_eq!(runs[0]["trigger"], "on_change", "{runs:?}");
    assert_eq!(runs[0]["changes"], json!({"changed": 50, "deleted": 0}));
    assert_eq!(runs[0]["counts"]["updated"], 50, "{}", runs[0]);
    assert_eq!(table_emails(&f.dest_schema, "t").await, (50, 50));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        settled_runs(&a, &p, 2).await.len(),
        2,
        "one run for the burst, over both instances"
    );

    // A change while a (slowed) run goes: one run after it.
    f.set_delay(3.0).await;
    ok(
        &a,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(json!({"profiles": [{"_id": "c00060", "email": "V2.new@example.com"}]})),
    )
    .await;
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let p = ok(
            &a,
            reqwest::Method::GET,
            &format!("/v1/pipelines/{p}"),
            None,
        )
        .await;
        if !p["running"].is_null() {
            break;
        }
        assert!(Instant::now() < end, "no run started: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok(
        &b,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(json!({"profiles": [{"_id": "c00061", "email": "V2.newer@example.com"}]})),
    )
    .await;
    f.set_delay(0.0).await;
    let runs = settled_runs(&b, &p, 4).await;
    assert_eq!(
        runs[0]["changes"],
        json!({"changed": 1, "deleted": 0}),
        "{runs:?}"
    );
    assert_eq!(
        runs[1]["changes"],
        json!({"changed": 1, "deleted": 0}),
        "{runs:?}"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(settled_runs(&a, &p, 4).await.len(), 4);
    assert_eq!(table_emails(&f.dest_schema, "t").await, (52, 52));
    f.drop_schemas().await;
}
