//! A running `sluice serve` measured from outside, shared by the `server` and `sources` benchmarks: its
//! API, its runs, and what a phase of work costs it (CPU, peak and after resident memory).

// Each benchmark uses the part of this it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A field of `/proc/PID/status` in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process so far.
pub fn cpu_secs(pid: u32) -> f64 {
    super::workload::cpu_secs_of(&pid.to_string())
}

/// CPU seconds of the children this process has waited for.
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The `sluice` binary to measure: `SLUICE_BIN`, or the release build of this checkout.
pub fn binary() -> PathBuf {
    if let Ok(b) = std::env::var("SLUICE_BIN") {
        return b.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target")
            .display()
            .to_string()
    });
    Path::new(&target).join("release/sluice")
}

/// The run's own duration, from its record.
pub fn run_secs(run: &Value) -> String {
    let parse = |k: &str| {
        run[k]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    match (parse("started_at"), parse("finished_at")) {
        (Some(a), Some(b)) => format!(
            "{:.3} s",
            (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6
        ),
        _ => "?".into(),
    }
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts `cmd` (a `sluice serve` listening on `url`, admin token `token`) and waits until it answers.
    pub async fn spawn(cmd: &mut Command, url: String, token: String) -> Server {
        let s = Server {
            child: cmd.spawn().expect("start sluice serve"),
            url,
            token,
            http: reqwest::Client::new(),
        };
        for _ in 0..600 {
            if s.http
                .get(format!("{}/v1/health", s.url))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("the server answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.send(method, path, body).await;
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Saves a PostgreSQL connection to `schema` of the server at `pg_url`; its id.
    pub async fn postgres_connection(&self, pg_url: &str, schema: &str, name: &str) -> String {
        let mut settings = sluice_destinations::postgres::PostgresSettings::json_from_url(pg_url)
            .expect("a postgres:// URL");
        settings["schema"] = serde_json::json!(schema);
        settings["tls"] = serde_json::json!({"mode": "disable"});
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/destinations",
                Some(serde_json::json!({"name": name, "type": "postgresql", "settings": settings})),
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    /// Saves the benchmarks' export pipeline: every profile to the `customers` table of `destination`,
    /// keyed by `customer_id`, through `mapping`; its id.
    pub async fn customers_pipeline(
        &self,
        destination: &str,
        name: &str,
        mapping: Value,
    ) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/v1/pipelines",
                Some(serde_json::json!({
                    "destination": destination, "name": name, "table": "customers",
                    "key": "customer_id", "transformation": {"mapping": mapping}
                })),
            )
            .await;
        v["id"].as_str().unwrap().to_string()
    }

    /// Waits for the run `id` to end; its record (a run that does not succeed ends the benchmark).
    pub async fn wait(&self, id: &str) -> Value {
        loop {
            let run = self
                .call(reqwest::Method::GET, &format!("/v1/runs/{id}"), None)
                .await;
            match run["status"].as_str() {
                Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(10)).await,
                Some("succeeded") => return run,
                _ => panic!("the run did not succeed: {run}"),
            }
        }
    }

    /// Starts a run of `what` (`pipelines` or `sources`) `id` and waits for it to end; its record.
    pub async fn run(&self, what: &str, id: &str) -> Value {
        let started = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/{what}/{id}/runs"),
                None,
            )
            .await;
        self.wait(started["id"].as_str().expect("a run id")).await
    }

    /// A clean stop (SIGTERM), waited for.
    pub fn stop(mut self) {
        // SAFETY: a signal to the child this benchmark started.
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
        self.child.wait().ok();
    }
}

/// A benchmark that stops half-way (a failed assertion) takes its server down with it.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one phase cost.
pub struct Phase {
    pub name: String,
    pub rows: u64,
    pub secs: f64,
    pub server_cpu: f64,
    pub client_cpu: f64,
    /// VmHWM of the server during the phase, MiB.
    pub peak_mib: f64,
    /// VmRSS of the server a second after the phase, MiB.
    pub after_mib: f64,
    pub note: String,
}

/// Measures `f` as a phase of the server `pid`.
pub async fn phase<F: std::future::Future<Output = (u64, String)>>(
    name: &str,
    pid: u32,
    f: F,
) -> Phase {
    // Writing 5 to clear_refs resets the peak resident set to the current one.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset VmHWM");
    let (cpu, client, t) = (cpu_secs(pid), children_cpu_secs(), Instant::now());
    let (rows, note) = f.await;
    let secs = t.elapsed().as_secs_f64();
    let server_cpu = cpu_secs(pid) - cpu;
    let client_cpu = children_cpu_secs() - client;
    let peak_mib = status_kib(pid, "VmHWM:") as f64 / 1024.0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let p = Phase {
        name: name.into(),
        rows,
        secs,
        server_cpu,
        client_cpu,
        peak_mib,
        after_mib,
        note,
    };
    eprintln!(
        "{}: {:.2} s, {:.0} rows/s, server CPU {:.2} s, client CPU {:.2} s, peak {:.0} MiB, after {:.0} MiB; {}",
        p.name,
        p.secs,
        p.rows as f64 / p.secs,
        p.server_cpu,
        p.client_cpu,
        p.peak_mib,
        p.after_mib,
        p.note
    );
    p
}
