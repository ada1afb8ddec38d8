//! The load benchmark of `BENCHMARKS.md`: many concurrent clients against the API on a real socket, with
//! the embedded stores, reporting requests per second and the p50/p99 latency of each kind of request:
//!
//! - **read**: a page of 100 profiles from a random place (`GET /v1/profiles?limit=100&after=…`), and a
//!   pipeline (`GET /v1/pipelines/{id}`), in turn;
//! - **write**: `POST /v1/profiles` with 10 profiles, half new and half updates;
//! - **run**: run-now on one of several pipelines (`POST /v1/pipelines/{id}/runs`): 202 when it starts,
//!   409 while that pipeline's run still goes — both are answers, counted apart;
//! - **mixed**: every client picks one of the above per request (70% reads, 25% writes, 5% runs).
//!
//! Each phase lasts `SLUICE_LOAD_SECONDS` (10) with `SLUICE_LOAD_CLIENTS` (32) clients over
//! `SLUICE_LOAD_PROFILES` (20,000) profiles and 8 pipelines writing to SQLite tables. The server and the
//! clients share the machine (and its cores), as they would on a small host:
//!
//!     cargo bench -p sluice --bench load

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

// The API tests' set-up: embedded stores in a temporary folder, the router on a socket.
#[path = "../../api/tests/support/mod.rs"]
mod support;

const TOKEN: &str = "load-bench";
const PIPELINES: usize = 8;
const COUNTRIES: [&str; 3] = ["IT", "FR", "DE"];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Read,
    Write,
    Run,
}

/// What one phase measured: latencies of answered requests by kind, answers that were refusals by design
/// (409 on a run-now), and failures (any other non-2xx, or no answer).
#[derive(Default)]
struct Tally {
    latencies: Vec<(Kind, Duration)>,
    busy: u64,
    failures: Vec<String>,
}

struct Target {
    url: String,
    client: reqwest::Client,
    pipelines: Vec<String>,
    profiles: usize,
    next_id: AtomicU64,
}

impl Target {
    async fn send(&self, kind: Kind, n: u64, tally: &mut Tally) {
        // The generator is not `Send`: it lives only while the request is built.
        let req = {
            let mut rng = rand::thread_rng();
            match kind {
                Kind::Read if n.is_multiple_of(2) => {
                    let after = format!("c{:07}", rng.gen_range(0..self.profiles));
                    self.client
                        .get(format!("{}/v1/profiles?limit=100&after={after}", self.url))
                }
                Kind::Read => {
                    let p = &self.pipelines[rng.gen_range(0..self.pipelines.len())];
                    self.client.get(format!("{}/v1/pipelines/{p}", self.url))
                }
                Kind::Write => {
                    let fresh = self.next_id.fetch_add(5, Ordering::Relaxed);
                    let batch: Vec<Value> = (0..10)
                    .map(|i| {
                        let id = if i < 5 {
                            fresh + i
                        } else {
                            rng.gen_range(0..self.profiles as u64)
                        };
                        json!({"_id": format!("c{id:07}"), "email": format!("U{id}.{n}@Example.com"),
                               "country": COUNTRIES[(id % 3) as usize], "ltv": format!("{}.25", id % 1000)})
                    })
                    .collect();
                    self.client
                        .post(format!("{}/v1/profiles", self.url))
                        .json(&json!({ "profiles": batch }))
                }
                Kind::Run => {
                    let p = &self.pipelines[rng.gen_range(0..self.pipelines.len())];
                    self.client
                        .post(format!("{}/v1/pipelines/{p}/runs", self.url))
                }
            }
        };
        let t = Instant::now();
        let answer = req.bearer_auth(TOKEN).send().await;
        let elapsed = t.elapsed();
        match answer {
            Ok(resp) => {
                let status = resp.status();
                // The whole answer is part of the request's time.
                let body = resp.bytes().await;
                let elapsed = t.elapsed().max(elapsed);
                if status.is_success() && body.is_ok() {
                    tally.latencies.push((kind, elapsed));
                } else if kind == Kind::Run && status.as_u16() == 409 {
                    tally.latencies.push((kind, elapsed));
                    tally.busy += 1;
                } else {
                    tally.failures.push(format!("{kind:?}: {status}"));
                }
            }
            Err(e) => tally.failures.push(format!("{kind:?}: {e}")),
        }
    }
}

async fn ok(target: &Target, method: reqwest::Method, path: &str, body: Value) -> Value {
    let resp = target
        .client
        .request(method, format!("{}{path}", target.url))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {v}");
    v
}

fn pick(mix: bool, rng: &mut impl Rng, only: Kind) -> Kind {
    if !mix {
        return only;
    }
    match rng.gen_range(0..100) {
        0..70 => Kind::Read,
        70..95 => Kind::Write,
        _ => Kind::Run,
    }
}

async fn phase(
    target: Arc<Target>,
    clients: usize,
    seconds: u64,
    only: Kind,
    mix: bool,
) -> (Tally, Duration) {
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut n = c as u64;
                while Instant::now() < end {
                    let kind = pick(mix, &mut rand::thread_rng(), only);
                    target.send(kind, n, &mut tally).await;
                    n += 1;
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        let t = t.await.unwrap();
        all.latencies.extend(t.latencies);
        all.busy += t.busy;
        all.failures.extend(t.failures);
    }
    (all, start.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn report(name: &str, tally: &Tally, elapsed: Duration) {
    for kind in [Kind::Read, Kind::Write, Kind::Run] {
        let mut l: Vec<Duration> = tally
            .latencies
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, d)| *d)
            .collect();
        if l.is_empty() {
            continue;
        }
        l.sort();
        let busy = if kind == Kind::Run {
            format!("{} answered 409 (already running)", tally.busy)
        } else {
            String::new()
        };
        println!(
            "| {name} | {kind:?} | {} | {:.0} | {:.1} | {:.1} | {busy} |",
            l.len(),
            l.len() as f64 / elapsed.as_secs_f64(),
            percentile(&l, 0.5).as_secs_f64() * 1000.0,
            percentile(&l, 0.99).as_secs_f64() * 1000.0,
        );
    }
    if !tally.failures.is_empty() {
        let mut shown = tally.failures.clone();
        shown.dedup();
        println!(
            "  {} failed requests in {name}, e.g. {:?}",
            tally.failures.len(),
            &shown[..shown.len().min(5)]
        );
    }
}

fn main() {
    let clients = env_or("SLUICE_LOAD_CLIENTS", 32);
    let seconds = env_or("SLUICE_LOAD_SECONDS", 10) as u64;
    let profiles = env_or("SLUICE_LOAD_PROFILES", 20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (app, dir) = support::app(TOKEN).await;
        let addr = support::serve(app).await;
        let mut target = Target {
            url: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(clients)
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            pipelines: Vec::new(),
            profiles,
            next_id: AtomicU64::new(profiles as u64),
        };

        ok(&target, reqwest::Method::PUT, "/v1/profile-schema", json!({"properties": [
            {"name": "email", "type": "string"}, {"name": "country", "type": "string"},
            {"name": "ltv", "type": "decimal(12,2)"}]}))
        .await;
        for chunk in (0..profiles).collect::<Vec<_>>().chunks(5000) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|i| json!({"_id": format!("c{i:07}"), "email": format!("U{i}@Example.com"),
                                "country": COUNTRIES[i % 3], "ltv": format!("{}.25", i % 1000)}))
                .collect();
            ok(&target, reqwest::Method::POST, "/v1/profiles", json!({ "profiles": batch })).await;
        }
        let db = dir.path().join("destination.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        for p in 0..PIPELINES {
            conn.execute_batch(&format!(
                "CREATE TABLE customers_{p} (id TEXT PRIMARY KEY, email TEXT, country TEXT, ltv NUMERIC)"
            ))
            .unwrap();
        }
        drop(conn);
        let d = ok(&target, reqwest::Method::POST, "/v1/destinations",
            json!({"name": "local", "type": "sqlite", "settings": {"path": db}})).await;
        for p in 0..PIPELINES {
            let v = ok(&target, reqwest::Method::POST, "/v1/pipelines", json!({
                "destination": d["id"], "name": format!("customers {p}"), "table": format!("customers_{p}"),
                "key": "id", "transformation": {"mapping": {"id": "_id", "email": "lower(email)",
                "country": "country", "ltv": "ltv"}}})).await;
            target.pipelines.push(v["id"].as_str().unwrap().to_string());
        }
        let target = Arc::new(target);

        println!(
            "{clients} clients, {seconds} s per phase, {profiles} profiles, {PIPELINES} pipelines ({} build)",
            if cfg!(debug_assertions) { "debug" } else { "release" }
        );
        println!("| phase | kind | requests | per second | p50 ms | p99 ms | note |");
        println!("|---|---|---|---|---|---|---|");
        for (name, kind, mix) in [
            ("reads", Kind::Read, false),
            ("profile writes", Kind::Write, false),
            ("run-now", Kind::Run, false),
            ("mixed", Kind::Read, true),
        ] {
            let (tally, elapsed) = phase(target.clone(), clients, seconds, kind, mix).await;
            report(name, &tally, elapsed);
        }
        drop(dir);
    });
}
