//! The `sluice` binary as a user runs it: quickstart twice, serve with a generated token, import CSV and
//! NDJSON with rejected lines reported, and run a pipeline into real PostgreSQL from the command line.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod support;

use support::BIN;

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)")
}

fn sluice(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env("SLUICE_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn quickstart_then_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // As a new user runs it: no SLUICE_LOG, so the log goes to a file and the summary stands alone.
    let out = Command::new(BIN)
        .args(["quickstart", "--no-serve"])
        .current_dir(dir.path())
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env_remove("SLUICE_LOG")
        .output()
        .unwrap();
    let (ok, out, err) = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Created 10000 sample profiles"), "{out}");
    // SQLite takes its process-wide settings only before its first use (the data directory's lock).
    const UNSET: &str = "SQLite was in use before its settings were made";
    assert!(!err.contains(UNSET), "{err}");
    assert!(
        !out.contains("INFO") && !err.contains("INFO"),
        "log lines among the summary:\n{out}\n{err}"
    );
    let log = std::fs::read_to_string(dir.path().join("sluice-data/sluice.log")).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(out.contains("sluice-data/sluice.log"), "{out}");
    let line = out.lines().find(|l| l.starts_with("Run ")).unwrap();
    // 5% of the samples have no email and are filtered out; every other profile is written.
    assert!(
        line.contains("succeeded")
            && line.contains(" in audience; ")
            && line.contains(" not in audience; ")
            && line.contains(" written (")
            && !line.contains(" 0 written")
            && !line.contains("read"),
        "{line}"
    );
    let (ok, out, err) = sluice(dir.path(), &["quickstart", "--no-serve"]);
    assert!(ok, "{out}\n{err}");
    assert!(!err.contains(UNSET), "{err}");
    let line = out.lines().find(|l| l.starts_with("Run ")).unwrap();
    assert!(
        line.contains("; 0 written; ")
            && line.contains(" skipped, unchanged")
            && line.contains("(no profile changed since the last run)")
            && !line.contains("/s"),
        "the second run changes nothing and reads nothing: {line}"
    );
    let db =
        rusqlite::Connection::open(dir.path().join("sluice-data/destinations/demo.db")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM customers WHERE full_name LIKE '% %'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(n > 9000, "{n}");
    // Accented first letters are transliterated, not dropped (`Élodie` gave `lodie.…`).
    let dropped: i64 = db
        .query_row(
            "SELECT count(*) FROM customers WHERE full_name LIKE 'Élodie %' AND email NOT LIKE 'elodie.%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(dropped, 0);
}

#[test]
fn help_shows_environment_variables_without_a_value() {
    let out = Command::new(BIN)
        .args(["pipelines", "run", "--help"])
        .env_remove("SLUICE_URL")
        .env_remove("SLUICE_DATA_DIR")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(
        help.contains("[env: SLUICE_URL]") && help.contains("[default: http://127.0.0.1:7878]"),
        "{help}"
    );
    assert!(!help.contains("=]"), "{help}");
}

struct Server {
    served: support::Server,
    token: String,
}

/// Starts `sluice serve` on a free port; returns it with the token printed on first start (or read back).
fn serve(dir: &Path) -> (Server, bool) {
    let (served, mut lines) = support::start(
        support::serve_command()
            .current_dir(dir)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env("SLUICE_LOG", "warn")
            .stderr(Stdio::null()),
    );
    let second = lines.next().unwrap().unwrap();
    let printed = second.starts_with("Admin token (shown once");
    let token = std::fs::read_to_string(dir.join("sluice-data/admin.token"))
        .unwrap()
        .trim()
        .to_string();
    if printed {
        assert!(second.ends_with(&token), "{second}");
    }
    (Server { served, token }, printed)
}

fn call(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    support::call(&s.served, &s.token, method, path, body)
}

#[test]
fn serve_import_and_run_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (server, printed) = serve(dir.path());
    assert!(printed, "the first start prints the generated token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("sluice-data/admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    call(
        &server,
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "ltv", "type": "decimal(10,2)"},
            {"name": "tags", "type": "array(string)"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]})),
    );

    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "_id,email,ltv,address.city,tags\n\
         a1,Ana@Example.com,10.50,São Paulo,\"[\"\"vip\"\"]\"\n\
         a2,bo@example.com,not-a-number,Zürich,\n\
         a3,cy@example.com,3,\"Nîmes, FR\",[]\n",
    )
    .unwrap();
    let url = server.served.url.clone();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", csv.to_str().unwrap(), "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Imported 2 profiles; 1 rejected"), "{out}");
    assert!(
        err.contains("line 3 (_id a2)") && err.contains("ltv"),
        "{err}"
    );

    let nd = dir.path().join("more.ndjson");
    std::fs::write(&nd, "{\"_id\": \"b1\", \"email\": \"x@y.z\"}\n{not json}\n{\"_id\": \"b2\", \"nope\": 1}\n{\"_id\": \"b3\"}\n").unwrap();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", nd.to_str().unwrap(), "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Imported 2 profiles; 2 rejected"), "{out}");
    assert!(
        err.contains("line 2: invalid JSON")
            && err.contains(
                "rejected 1 profile with properties not in the Customer Model (`nope`), at line 3;"
            ),
        "{err}"
    );
    let p = call(&server, reqwest::Method::GET, "/v1/profiles/a1", None);
    assert_eq!(p["address"]["city"], "São Paulo");
    assert_eq!(p["tags"], json!(["vip"]));

    // A PostgreSQL destination and a pipeline, run from the CLI.
    let schema = format!("cli_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
             CREATE TABLE {schema}.people (id text PRIMARY KEY, email text, ltv numeric(10,2), city text)"
        ))
        .await
        .unwrap();
    });
    let mut settings =
        sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    settings["schema"] = json!(schema);
    settings["tls"] = json!({"mode": "disable"});
    let d = call(
        &server,
        reqwest::Method::POST,
        "/v1/destinations",
        Some(json!({"name": "pg", "type": "postgresql", "settings": settings})),
    );
    call(
        &server,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(json!({"destination": d["id"], "name": "People",
        "table": "people", "key": "id",
        "transformation": {"mapping": {"id": "_id", "email": "lower(email)", "ltv": "ltv", "city": "address.city"}}})),
    );
    let (ok, out, err) = sluice(dir.path(), &["pipelines", "run", "People", "--url", &url]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("succeeded") && out.contains("4 in audience; 4 written (4 new, 0 updated)"),
        "{out}"
    );
    // Names match in any case when only one pipeline has the name; a run with nothing to read shows
    // no rate.
    let (ok, out, _) = sluice(dir.path(), &["pipelines", "run", "people", "--url", &url]);
    assert!(
        ok && out.contains("4 in audience; 0 written; 4 skipped, unchanged") && !out.contains("/s"),
        "{out}"
    );
    // A row edited behind Sluice's back: a reconcile rewrites it, and only it.
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("UPDATE {schema}.people SET city = 'Elsewhere' WHERE id IN (SELECT min(id) FROM {schema}.people)"))
            .await
            .unwrap();
    });
    let (ok, out, err) = sluice(
        dir.path(),
        &["pipelines", "reconcile", "People", "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("1 written (0 new, 1 updated); 3 skipped, unchanged")
            && out.contains("0 rows missing and 1 rows changed"),
        "{out}"
    );
    let (ok, out, _) = sluice(
        dir.path(),
        &["pipelines", "run", "People", "--reconcile", "--url", &url],
    );
    assert!(
        ok && out.contains("0 written; 4 skipped, unchanged"),
        "{out}"
    );
    // A dry run says what a run would write, with the columns that change, and writes nothing.
    call(
        &server,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(json!({"profiles": [{"_id": "a1", "address": {"city": "Recife"}}]})),
    );
    let (ok, out, err) = sluice(
        dir.path(),
        &["pipelines", "run", "People", "--dry-run", "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(
            "a run would do: 4 in audience; 1 written (0 new, 1 updated); 3 skipped, unchanged"
        ) && out.contains(r#""a1"  city: "São Paulo" → "Recife""#),
        "{out}"
    );
    let (ok, out, _) = sluice(dir.path(), &["pipelines", "run", "People", "--url", &url]);
    assert!(
        ok && out.contains("1 written (0 new, 1 updated); 3 skipped, unchanged"),
        "{out}"
    );
    let (ok, out, err) = sluice(dir.path(), &["pipelines", "run", "Nobody", "--url", &url]);
    assert!(!ok && err.contains("no pipeline"), "{out}{err}");
    let (ok, out, err) = sluice(dir.path(), &["pipelines", "run", "Peple", "--url", &url]);
    assert!(!ok && err.contains("did you mean `People`?"), "{out}{err}");
    let (ok, out, _) = sluice(dir.path(), &["pipelines", "list", "--url", &url]);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("DESTINATION"),
        "{out}"
    );
    let row: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(row[..5], ["People", "yes", "pg", "people", "off"], "{out}");
    assert!(
        row[5].starts_with("succeeded just now: 4 in audience, 1 written"),
        "{out}"
    );
    let (ok, out, _) = sluice(dir.path(), &["destinations", "list", "--url", &url]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(ok && lines[0].starts_with("NAME  TYPE"), "{out}");
    assert!(lines[1].starts_with("pg    postgresql  dst_"), "{out}");
    drop(server);

    // A second start reuses the token and prints it no more.
    let (_server, printed) = serve(dir.path());
    assert!(!printed);
}

/// Status of a GET, for profiles that must not exist.
fn status_of(s: &Server, path: &str) -> reqwest::StatusCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{}{path}", s.served.url))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap()
            .status()
    })
}

#[test]
fn ndjson_import_rejects_only_the_bad_lines_as_csv_does() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = serve(dir.path());
    call(
        &server,
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "ltv", "type": "decimal(10,2)"}
        ]})),
    );
    let url = server.served.url.clone();

    // Line 2 is invalid UTF-8, line 4 invalid JSON, line 5 not an object, line 6 an invalid profile,
    // line 7 blank; the rest are good, including those after each bad line.
    let mut nd: Vec<u8> = Vec::new();
    nd.extend_from_slice(b"{\"_id\": \"n1\", \"email\": \"a@x.example\"}\n");
    nd.extend_from_slice(b"{\"_id\": \"n2\", \"email\": \"caf\xe9@x.example\"}\n");
    nd.extend_from_slice(b"{\"_id\": \"n3\", \"ltv\": \"2.50\"}\r\n");
    nd.extend_from_slice(b"{\"_id\": \"n4\", \n");
    nd.extend_from_slice(b"[\"n5\"]\n");
    nd.extend_from_slice(b"{\"_id\": \"n6\", \"ltv\": \"lots\"}\n");
    nd.extend_from_slice(b"\n");
    nd.extend_from_slice(b"{\"_id\": \"n8\", \"email\": \"\xc3\xa9@x.example\"}");
    let file = dir.path().join("mixed.ndjson");
    std::fs::write(&file, &nd).unwrap();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", file.to_str().unwrap(), "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Imported 3 profiles; 4 rejected"),
        "{out}\n{err}"
    );
    for expected in [
        "line 2: not valid UTF-8",
        "line 4: invalid JSON",
        "line 5: not a JSON object",
        "line 6 (_id n6)",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from:\n{err}");
    }
    for id in ["n1", "n3", "n8"] {
        let p = call(
            &server,
            reqwest::Method::GET,
            &format!("/v1/profiles/{id}"),
            None,
        );
        assert_eq!(p["_id"], id);
    }
    assert_eq!(
        call(&server, reqwest::Method::GET, "/v1/profiles/n8", None)["email"],
        "é@x.example"
    );
    for id in ["n2", "n6"] {
        assert_eq!(
            status_of(&server, &format!("/v1/profiles/{id}")),
            reqwest::StatusCode::NOT_FOUND
        );
    }

    // The same bad byte in a CSV row: that row alone is rejected, with its line.
    let mut csv: Vec<u8> = b"_id,email\nc1,a@x.example\n".to_vec();
    csv.extend_from_slice(b"c2,caf\xe9@x.example\nc3,c@x.example\n");
    let file = dir.path().join("mixed.csv");
    std::fs::write(&file, &csv).unwrap();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", file.to_str().unwrap(), "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("Imported 2 profiles; 1 rejected"),
        "{out}\n{err}"
    );
    assert!(err.contains("line 3:"), "{err}");
}

#[test]
fn unknown_columns_are_named_once_or_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _) = serve(dir.path());
    call(
        &server,
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(json!({"properties": [
            {"name": "email", "type": "string"},
            {"name": "address", "type": "object", "properties": [{"name": "city", "type": "string"}]}
        ]})),
    );
    let url = server.served.url.clone();
    let nd = dir.path().join("more.ndjson");
    std::fs::write(
        &nd,
        "{\"_id\": \"b1\", \"email\": \"x@y.z\"}\n{\"_id\": \"b2\", \"nope\": 1, \"address\": {\"zip\": \"1\"}}\n",
    )
    .unwrap();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", nd.to_str().unwrap(), "--url", &url],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Imported 1 profiles; 1 rejected"), "{out}");
    assert!(err.contains("(`address.zip`, `nope`), at line 2;"), "{err}");
    // With --ignore-unknown the same line is imported without the property, with one warning.
    let (ok, out, err) = sluice(
        dir.path(),
        &[
            "profiles",
            "import",
            nd.to_str().unwrap(),
            "--ignore-unknown",
            "--url",
            &url,
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Imported 2 profiles; 0 rejected"), "{out}");
    assert!(
        err.contains("warning: left out what is not in the Customer Model: `address.zip`, `nope`"),
        "{err}"
    );
    assert_eq!(
        call(&server, reqwest::Method::GET, "/v1/profiles/b2", None)["_id"],
        "b2"
    );

    // One unknown CSV column: without the option, one error naming it and nothing imported; with it,
    // every row imported without that column.
    let extra = dir.path().join("extra.csv");
    std::fs::write(
        &extra,
        "_id,email,nickname,address.town\nd1,d1@x.example,Dee,Lviv\nd2,d2@x.example,Dot,Odesa\n",
    )
    .unwrap();
    let (ok, out, err) = sluice(
        dir.path(),
        &["profiles", "import", extra.to_str().unwrap(), "--url", &url],
    );
    assert!(!ok, "{out}\n{err}");
    assert_eq!(err.matches("`nickname`").count(), 1, "{err}");
    assert!(
        err.contains("these columns are not in the Customer Model: `nickname`, `address.town`")
            && err.contains("--ignore-unknown"),
        "{err}"
    );
    assert_eq!(
        status_of(&server, "/v1/profiles/d1"),
        reqwest::StatusCode::NOT_FOUND
    );
    let (ok, out, err) = sluice(
        dir.path(),
        &[
            "profiles",
            "import",
            extra.to_str().unwrap(),
            "--ignore-unknown",
            "--url",
            &url,
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Imported 2 profiles; 0 rejected"), "{out}");
    assert_eq!(
        err.matches("`nickname`").count(),
        1,
        "one warning names the columns: {err}"
    );
    assert_eq!(
        call(&server, reqwest::Method::GET, "/v1/profiles/d2", None)["email"],
        "d2@x.example"
    );
}
