//! Starting `sluice serve` as the CLI tests do: on a free loopback port, waiting for the line that says
//! where it listens, and killing it when the test lets go of it. Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// `sluice serve --listen 127.0.0.1:0` with its standard output piped to [`start`]; the test adds its
/// settings.
pub fn serve_command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    cmd
}

/// A running server, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `scheme://host:port`, as the server printed it.
    pub url: String,
}

impl Server {
    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.url.split_once("://").unwrap().1
    }

    /// `http`, or `https` when the listener has TLS.
    pub fn scheme(&self) -> &str {
        self.url.split_once("://").unwrap().0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (from [`serve_command`]) and reads its first line, which names the address it listens
/// on; returns the server and the rest of its standard output. Dropping that output closes the pipe:
/// keep it, or [`drain`] it, when the server logs to standard output after starting.
pub fn start(cmd: &mut Command) -> (Server, Lines<BufReader<ChildStdout>>) {
    try_start(cmd)
        .unwrap_or_else(|first| panic!("`sluice serve` did not say where it listens: {first:?}"))
}

/// [`start`], answering the first line the server wrote (empty if none) when it names no address; the
/// server is then stopped.
pub fn try_start(cmd: &mut Command) -> Result<(Server, Lines<BufReader<ChildStdout>>), String> {
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    let Some((before, rest)) = first.split_once("://") else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(first);
    };
    let scheme = before.rsplit(' ').next().unwrap();
    let addr = rest.split_whitespace().next().unwrap();
    let url = format!("{scheme}://{addr}");
    Ok((Server { child, url }, lines))
}

/// Keeps reading the server's standard output so that it never blocks on a full pipe.
pub fn drain(lines: Lines<BufReader<ChildStdout>>) {
    std::thread::spawn(move || for _ in lines {});
}

/// `method path` with `token` and a JSON body; the answer's JSON (null when it has none), after
/// asserting a success.
pub fn call(
    s: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", s.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    })
}
