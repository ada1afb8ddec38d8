//! The hostile-input corpus: each file under `tests/hostile/` is one request and the class of answer it
//! must get, sent to the API on a real socket over a workspace with a model, profiles, a SQLite
//! destination and a pipeline. Every answer must be a 4xx in the JSON error shape, a failed row, or the
//! success the file names — never a 5xx or a dropped connection — and afterwards the workspace, the
//! profiles and the destination table must be exactly as they were.
//!
//! A case file is JSON:
//!
//! ```json
//! {"about": "why", "method": "POST", "path": "/v1/profiles",
//!  "json": {…} | "text": "…" | "hex": "7b22ff…",       (the body, optional)
//!  "content_type": "…", "token": false,                 (optional: default JSON, and the admin token)
//!  "expect": "4xx" | "failed_row" | "2xx", "status": 422, (the class, and optionally the exact status)
//!  "equals": {"/profiles": []}}                          (optional JSON pointers into the answer)
//! ```
//!
//! In the path and the body text, `{{pipeline}}` and `{{destination}}` name the workspace's, and
//! `{{repeat N}}TEXT{{/repeat}}` stands for TEXT written N times (deep nesting, 10,000-character names). Adding a
//! case is adding a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

mod support;

const TOKEN: &str = "hostile-corpus-token";

struct Served {
    url: String,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

/// The router on a real socket, so that requests go through the HTTP layer as a client's would.
async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    // As `sluice serve` does: SQLite destinations live in the data directory's `destinations/`.
    sluice_destinations::sqlite::config::confine_to(&dir.path().join("destinations")).unwrap();
    let engine = support::engine(dir.path()).await;
    let addr = support::serve(sluice_api::router(sluice_api::AppState::new(engine, TOKEN))).await;
    Served {
        url: format!("http://{addr}"),
        dir,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    }
}

impl Served {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    fn table_path(&self) -> PathBuf {
        self.dir.path().join("destinations").join("destination.db")
    }
}

/// The workspace every case is sent to; returns (destination id, pipeline id).
async fn workspace(s: &Served) -> (String, String) {
    s.ok(
        "PUT",
        "/v1/profile-schema",
        Some(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "ltv", "type": "decimal(12,2)"},
            {"name": "age", "type": "integer"},
            {"name": "tags", "type": "array(string)"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]})),
    )
    .await;
    let profiles: Vec<Value> = (0..20)
        .map(|i| {
            json!({"_id": format!("c{i:02}"), "email": format!("P{i}@Example.com"), "ltv": format!("{i}.50"),
                   "age": 20 + i, "tags": ["a"], "address": {"city": "Roma"}})
        })
        .collect();
    let v = s
        .ok(
            "POST",
            "/v1/profiles",
            Some(json!({ "profiles": profiles })),
        )
        .await;
    assert_eq!(v["upserted"], 20, "{v}");
    rusqlite::Connection::open(s.table_path())
        .unwrap()
        .execute_batch(
            "CREATE TABLE customers (customer_id TEXT PRIMARY KEY, email TEXT, ltv NUMERIC, age INTEGER);
             INSERT INTO customers VALUES ('kept', 'kept@example.com', 1.5, 3);",
        )
        .unwrap();
    let d = s
        .ok(
            "POST",
            "/v1/destinations",
            Some(json!({"name": "local", "type": "sqlite", "settings": {"path": s.table_path()}})),
        )
        .await;
    let dest = d["id"].as_str().unwrap().to_string();
    let p = s
        .ok(
            "POST",
            "/v1/pipelines",
            Some(json!({"destination": dest, "name": "customers", "table": "customers",
                "key": "customer_id",
                "transformation": {"mapping": {"customer_id": "_id", "email": "lower(email)", "ltv": "ltv", "age": "age"}}})),
        )
        .await;
    (dest, p["id"].as_str().unwrap().to_string())
}

/// Everything a case must leave as it was: the model, destinations, pipelines, every profile and the
/// destination table (with the list of its tables).
async fn snapshot(s: &Served) -> Value {
    let mut profiles = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/profiles?limit=1000&after={a}"),
            None => "/v1/profiles?limit=1000".into(),
        };
        let page = s.ok("GET", &path, None).await;
        profiles.extend(page["profiles"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    let db = rusqlite::Connection::open(s.table_path()).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name || ':' || ifnull(sql, '') FROM sqlite_master ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let rows: Vec<String> = db
        .prepare("SELECT quote(customer_id) || quote(email) || quote(ltv) || quote(age) FROM customers ORDER BY customer_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    json!({
        "schema": s.ok("GET", "/v1/profile-schema", None).await,
        "destinations": s.ok("GET", "/v1/destinations", None).await,
        "pipelines": s.ok("GET", "/v1/pipelines", None).await,
        "profiles": profiles,
        "tables": tables,
        "rows": rows,
    })
}

/// Expands `{{pipeline}}`, `{{destination}}` and `{{repeat N}}TEXT{{/repeat}}`.
fn expand(text: &str, dest: &str, pipeline: &str) -> String {
    let text = text
        .replace("{{pipeline}}", pipeline)
        .replace("{{destination}}", dest);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{repeat ") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{{repeat ".len()..];
        let (n, after) = after.split_once("}}").expect("{{repeat N}}");
        let (what, after) = after
            .split_once("{{/repeat}}")
            .expect("{{repeat N}} without {{/repeat}}");
        out.push_str(&what.repeat(n.parse().expect("{{repeat N}}: N")));
        rest = after;
    }
    out.push_str(rest);
    out
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).expect("hex body"))
        .collect()
}

/// Sends one case; returns what is wrong with its answer, if anything.
async fn check(s: &Served, file: &Path, dest: &str, pipeline: &str) -> Option<String> {
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
        .unwrap_or_else(|e| panic!("{name}: not a case file: {e}"));
    let method = case["method"].as_str().expect("method");
    let path = expand(case["path"].as_str().expect("path"), dest, pipeline);
    let body: Option<Vec<u8>> = if let Some(j) = case.get("json") {
        Some(expand(&j.to_string(), dest, pipeline).into_bytes())
    } else if let Some(t) = case["text"].as_str() {
        Some(expand(t, dest, pipeline).into_bytes())
    } else {
        case["hex"].as_str().map(hex)
    };
    let mut req = s
        .client
        .request(method.parse().unwrap(), format!("{}{path}", s.url));
    if case["token"] != false {
        req = req.bearer_auth(TOKEN);
    }
    if let Some(b) = body {
        let ct = case["content_type"].as_str().unwrap_or("application/json");
        req = req.header("content-type", ct).body(b);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return Some(format!(
                "{name}: no answer (a panic or a dropped connection?): {e}"
            ))
        }
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let short: String = text.chars().take(300).collect();
    eprintln!(
        "{name}: {status} {}",
        text.chars().take(140).collect::<String>()
    );
    if status >= 500 {
        return Some(format!("{name}: {status} {short}"));
    }
    if let Some(exact) = case["status"].as_u64() {
        if status as u64 != exact {
            return Some(format!("{name}: expected {exact}, got {status} {short}"));
        }
    }
    let class = case["expect"].as_str().expect("expect");
    let fits = match class {
        "4xx" => (400..500).contains(&status) && answer["error"]["code"].is_string(),
        "2xx" => (200..300).contains(&status),
        "failed_row" => {
            (200..300).contains(&status)
                && (answer["upserted"] == 0
                    && answer["rejected"].as_array().is_some_and(|r| !r.is_empty())
                    || answer["samples"]
                        .as_array()
                        .is_some_and(|s| !s.is_empty() && s.iter().all(|x| x["error"].is_string())))
        }
        other => panic!("{name}: unknown class `{other}`"),
    };
    if !fits {
        return Some(format!("{name}: expected {class}, got {status} {short}"));
    }
    for (pointer, expected) in case["equals"].as_object().into_iter().flatten() {
        if answer.pointer(pointer) != Some(expected) {
            return Some(format!(
                "{name}: {pointer} should be {expected}, answer {short}"
            ));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_a_4xx_or_a_failed_row_and_change_nothing() {
    let s = serve().await;
    let (dest, pipeline) = workspace(&s).await;
    let before = snapshot(&s).await;

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus lost files: {}", files.len());
    let mut problems = Vec::new();
    for file in &files {
        if let Some(p) = check(&s, file, &dest, &pipeline).await {
            problems.push(p);
        }
    }
    // The server still answers, and nothing stored moved.
    let after = snapshot(&s).await;
    assert!(
        problems.is_empty(),
        "{} of {} cases:\n{}",
        problems.len(),
        files.len(),
        problems.join("\n")
    );
    assert_eq!(before, after, "a hostile request changed what is stored");
    eprintln!("{} hostile cases answered as expected", files.len());
}

#[test]
fn repeat_expands() {
    assert_eq!(
        expand(
            "a{{repeat 3}}[{{/repeat}}b{{repeat 2}}]}{{/repeat}}",
            "d",
            "p"
        ),
        "a[[[b]}]}"
    );
    assert_eq!(
        expand("/v1/pipelines/{{pipeline}}", "d", "p"),
        "/v1/pipelines/p"
    );
}
