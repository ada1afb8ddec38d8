//! Every resource command of the `sluice` binary against one live `sluice serve` (embedded stores, a
//! SQLite destination, the test PostgreSQL server for connection tests): each with its exit code, on
//! success and on each kind of failure (invalid input 2, not found 3, conflict 4, refused 5, failure 1),
//! `--json` answers parsed, and the shell completions.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

mod support;

use support::BIN;

struct Cli {
    dir: PathBuf,
    url: String,
    // Dropped in this order: the server stops before its folder is removed.
    _server: support::Server,
    _tmp: tempfile::TempDir,
}

/// What a command did: its exit code, standard output and standard error.
struct Out {
    code: i32,
    out: String,
    err: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.out, self.err))
    }
}

impl Cli {
    fn start() -> Cli {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let (server, lines) = support::start(
            support::serve_command()
                .current_dir(&dir)
                .env_remove("SLUICE_ADMIN_TOKEN")
                .env("SLUICE_LOG", "warn")
                .stderr(Stdio::null()),
        );
        support::drain(lines);
        Cli {
            url: server.url.clone(),
            dir,
            _server: server,
            _tmp: tmp,
        }
    }

    /// `sluice ARGS --url …` from the server's folder (where the admin token is), with `env` set.
    fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        self.run_with(args, env, None)
    }

    /// [`Cli::run_env`] with `stdin` as standard input (none: empty, and not a terminal).
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
        use std::io::Write;
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .args(["--url", &self.url])
            .current_dir(&self.dir)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env_remove("SLUICE_URL")
            .env("SLUICE_LOG", "warn")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into(),
            err: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// Runs `args` and asserts its exit code; answers what it printed.
    fn expect(&self, code: i32, args: &[&str]) -> Out {
        let o = self.run(args);
        assert_eq!(
            o.code,
            code,
            "`sluice {}` exited {} instead of {code}:\n{}\n{}",
            args.join(" "),
            o.code,
            o.out,
            o.err
        );
        o
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }
}

fn pg_settings() -> Value {
    let url = std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests");
    sluice_destinations::postgres::PostgresSettings::json_from_url(&url).unwrap()
}

#[test]
fn every_command_with_its_exit_codes() {
    let cli = Cli::start();

    // The Customer Model, from YAML; bad files are invalid input.
    let model = cli.write(
        "model.yaml",
        "properties:\n  - {name: email, type: string}\n  - {name: vip, type: boolean, nullable: false}\n  - name: address\n    type: object\n    properties:\n      - {name: city, type: string}\n",
    );
    let o = cli.expect(0, &["model", "edit", &model]);
    assert!(o.out.contains("Saved the Customer Model"), "{}", o.out);
    let o = cli.expect(0, &["model", "show"]);
    assert!(
        o.out
            .contains("email  string\nvip  boolean (not null)\naddress  object\n  city  string\n"),
        "{}",
        o.out
    );
    assert_eq!(
        cli.expect(0, &["model", "show", "--json"]).json()["properties"][2]["name"],
        "address"
    );
    let bad = cli.write(
        "bad-model.json",
        r#"{"properties": [{"name": "x", "type": "colour"}]}"#,
    );
    cli.expect(2, &["model", "edit", &bad]);
    let o = cli.expect(2, &["model", "edit", "no-such-file.yaml"]);
    assert!(o.err.contains("no-such-file.yaml"), "{}", o.err);

    // Profiles.
    let nd = cli.write(
        "people.ndjson",
        "{\"_id\": \"c1\", \"email\": \"Ann@Example.com\", \"address\": {\"city\": \"Rome\"}}\n{\"_id\": \"c2\", \"email\": \"bo@example.com\"}\n{\"_id\": \"c3\"}\n{\"_id\": \"c4\"}\n",
    );
    let o = cli.expect(0, &["profiles", "import", &nd]);
    assert!(o.out.contains("Imported 4 profiles"), "{}", o.out);
    let o = cli.expect(2, &["profiles", "import", "missing.csv"]);
    assert!(o.err.contains("cannot open"), "{}", o.err);
    let rejected = cli.write("rejected.ndjson", "{\"_id\": \"r1\", \"vip\": \"maybe\"}\n");
    let o = cli.expect(2, &["profiles", "import", &rejected]);
    assert!(o.err.contains("no profile was imported"), "{}", o.err);
    let o = cli.expect(0, &["profiles", "get", "c1"]);
    assert!(o.out.contains("Rome"), "{}", o.out);
    assert_eq!(
        cli.expect(0, &["profiles", "get", "c1", "--json"]).json()["_id"],
        "c1"
    );
    cli.expect(3, &["profiles", "get", "nobody"]);
    let has_email =
        r#"{"logical": "and", "conditions": [{"property": "email", "operator": "is not empty"}]}"#;
    let no_email =
        r#"{"logical": "and", "conditions": [{"property": "email", "operator": "is empty"}]}"#;
    let page = cli
        .expect(0, &["profiles", "list", "--filter", has_email, "--json"])
        .json();
    assert_eq!(page["matching"], 2);
    assert_eq!(page["total"], 4);
    let o = cli.expect(0, &["profiles", "list", "--limit", "1"]);
    assert!(
        o.out.starts_with("c1  ")
            && o.out.contains("1 shown of 4 profiles")
            && o.out.contains("--after c1"),
        "{}",
        o.out
    );
    cli.expect(2, &["profiles", "list", "--filter", "{not json"]);
    cli.expect(
        2,
        &[
            "profiles",
            "list",
            "--filter",
            r#"{"logical": "and", "conditions": [{"property": "nope", "operator": "is empty"}]}"#,
        ],
    );
    cli.expect(0, &["profiles", "delete", "c4"]);
    cli.expect(3, &["profiles", "delete", "c4"]);
    // Without --yes (and without a terminal) nothing is deleted and the command fails.
    let o = cli.expect(2, &["profiles", "delete-many", "--filter", no_email]);
    assert!(o.err.contains("1 profile match"), "{}", o.err);
    let o = cli.expect(
        0,
        &[
            "profiles",
            "delete-many",
            "--filter",
            no_email,
            "--yes",
            "--json",
        ],
    );
    assert_eq!(o.json()["deleted"], 1);
    assert_eq!(
        cli.expect(0, &["profiles", "list", "--json"]).json()["total"],
        2
    );

    // Connections: a SQLite file under the server's SQLite folder.
    let db = cli.dir.join("sluice-data/destinations");
    std::fs::create_dir_all(&db).unwrap();
    rusqlite::Connection::open(db.join("cli.db"))
        .unwrap()
        .execute_batch("CREATE TABLE people (id TEXT PRIMARY KEY, email TEXT, city TEXT)")
        .unwrap();
    let o = cli.expect(
        0,
        &[
            "connections",
            "add",
            "--name",
            "Local",
            "--type",
            "sqlite",
            "--path",
            "cli.db",
        ],
    );
    assert!(
        o.out.starts_with("Added the connection `Local`"),
        "{}",
        o.out
    );
    cli.expect(
        4,
        &[
            "connections",
            "add",
            "--name",
            "Local",
            "--type",
            "sqlite",
            "--path",
            "cli.db",
        ],
    );
    let o = cli.expect(
        2,
        &["connections", "add", "--name", "X", "--type", "oracle"],
    );
    assert!(o.err.contains("type"), "{}", o.err);
    let o = cli.expect(0, &["connections", "list"]);
    assert!(
        o.out.starts_with("NAME ") && o.out.contains("Local  sqlite"),
        "{}",
        o.out
    );
    let o = cli.expect(0, &["destinations", "list"]);
    assert!(o.out.contains("Local"), "{}", o.out);
    assert_eq!(
        cli.expect(0, &["connections", "list", "--json"]).json()["destinations"][0]["name"],
        "Local"
    );
    let o = cli.expect(0, &["connections", "show", "local"]);
    assert!(o.out.contains("path: cli.db"), "{}", o.out);
    let o = cli.expect(3, &["connections", "show", "Locl"]);
    assert!(o.err.contains("did you mean `Local`?"), "{}", o.err);
    let o = cli.expect(0, &["connections", "test", "Local"]);
    assert!(o.out.starts_with("Connected"), "{}", o.out);
    let o = cli.expect(0, &["connections", "tables", "Local"]);
    assert!(o.out.contains("people"), "{}", o.out);
    let t = cli
        .expect(0, &["connections", "tables", "Local", "people", "--json"])
        .json();
    assert_eq!(t["columns"].as_array().unwrap().len(), 3);
    let o = cli.expect(0, &["connections", "tables", "Local", "people"]);
    assert!(
        o.out.contains("COLUMN") && o.out.contains("email"),
        "{}",
        o.out
    );
    cli.expect(3, &["connections", "tables", "Local", "no_such_table"]);
    let o = cli.expect(0, &["connections", "types"]);
    assert!(
        o.out.contains("postgresql: ") && o.out.contains("sqlite: path*"),
        "{}",
        o.out
    );

    // PostgreSQL: the password from the environment or a file, never the command line; never shown.
    let pg = pg_settings();
    let password = pg["password"].as_str().unwrap_or("not-asked").to_string();
    let port = match &pg["port"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let pg_flags = |name: &str| -> Vec<String> {
        [
            "--name",
            name,
            "--type",
            "postgresql",
            "--host",
            pg["host"].as_str().unwrap(),
            "--port",
            &port,
            "--username",
            pg["username"].as_str().unwrap(),
            "--database",
            pg["database"].as_str().unwrap(),
            "--set",
            r#"tls={"mode": "disable"}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut add: Vec<String> = vec!["connections".into(), "add".into()];
    add.extend(pg_flags("Warehouse"));
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    let missing = [add.as_slice(), &["--password-env", "CLI_TEST_NO_SUCH_VAR"]].concat();
    let o = cli.run_env(&missing, &[]);
    assert_eq!(o.code, 2, "{}", o.err);
    assert!(o.err.contains("CLI_TEST_NO_SUCH_VAR"), "{}", o.err);
    let with_env = [add.as_slice(), &["--password-env", "CLI_TEST_PG_PASSWORD"]].concat();
    let o = cli.run_env(&with_env, &[("CLI_TEST_PG_PASSWORD", &password)]);
    assert_eq!(o.code, 0, "{}\n{}", o.out, o.err);
    let shown = cli.expect(0, &["connections", "show", "Warehouse", "--json"]);
    assert_eq!(shown.json()["settings"]["password"], "********");
    assert!(!shown.out.contains(&password) || password == "not-asked");
    let o = cli.expect(0, &["connections", "test", "warehouse"]);
    assert!(o.out.starts_with("Connected: "), "{}", o.out);
    // Unsaved settings, the password from a file.
    let pw_file = cli.write("pg-password", &format!("{password}\n"));
    let mut test: Vec<String> = vec!["connections".into(), "test".into()];
    test.extend(pg_flags("unused").into_iter().skip(2));
    test.extend(["--password-file".to_string(), pw_file.clone()]);
    let test: Vec<&str> = test.iter().map(String::as_str).collect();
    let o = cli.expect(0, &test);
    assert!(o.out.starts_with("Connected: "), "{}", o.out);
    // A database that does not answer is a failure (1), with the reason.
    let o = cli.expect(
        1,
        &[
            "connections",
            "test",
            "--type",
            "postgresql",
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--username",
            "u",
            "--database",
            "d",
            "--password-file",
            &pw_file,
        ],
    );
    assert!(o.err.contains("cannot connect"), "{}", o.err);
    // An edit changing where the stored password would go must give it again (422: invalid input).
    let o = cli.expect(
        2,
        &[
            "connections",
            "edit",
            "Warehouse",
            "--host",
            "localhost.localdomain",
        ],
    );
    assert!(o.err.contains("settings.password"), "{}", o.err);
    cli.expect(
        0,
        &["connections", "edit", "Warehouse", "--name", "Warehouse 2"],
    );
    cli.expect(2, &["connections", "edit", "Warehouse 2"]);
    cli.expect(3, &["connections", "edit", "Warehouse", "--name", "W"]);
    cli.expect(
        4,
        &["connections", "edit", "Warehouse 2", "--name", "Local"],
    );
    cli.expect(0, &["connections", "delete", "Warehouse 2"]);

    // No password given: asked for on a terminal (without echo), never asked without one.
    let add_pg = |name: &str| {
        format!(
            "{BIN} connections add --name {name} --type postgresql --host {} --port {port} --username {} --database {} --url {}",
            pg["host"].as_str().unwrap(),
            pg["username"].as_str().unwrap(),
            pg["database"].as_str().unwrap(),
            cli.url
        )
    };
    let mut typed = Command::new("script")
        .args(["-qec", &add_pg("Prompted"), "/dev/null"])
        .current_dir(&cli.dir)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("`script` (util-linux) runs the command on a terminal");
    // The password is typed once the prompt shows (echo is off by then), as a person would.
    let mut screen_out = typed.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = screen_out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("Password: ") {
        match rx.recv_timeout(std::time::Duration::from_secs(30)) {
            Ok(bytes) => seen.extend(bytes),
            Err(e) => panic!("no prompt ({e}): {}", String::from_utf8_lossy(&seen)),
        }
    }
    {
        use std::io::Write;
        let mut stdin = typed.stdin.take().unwrap();
        stdin.write_all(b"typed-secret\n").unwrap();
    }
    let status = typed.wait().unwrap();
    reader.join().unwrap();
    seen.extend(rx.try_iter().flatten());
    let screen = String::from_utf8_lossy(&seen);
    assert!(status.success(), "{screen}");
    assert!(screen.contains("Password: "), "{screen}");
    assert!(
        !screen.contains("typed-secret"),
        "the password was echoed: {screen}"
    );
    let shown = cli
        .expect(0, &["connections", "show", "Prompted", "--json"])
        .json();
    assert_eq!(shown["settings"]["password"], "********");
    let o = cli.run(&[
        "connections",
        "add",
        "--name",
        "Unprompted",
        "--type",
        "postgresql",
        "--host",
        "localhost",
        "--username",
        "u",
        "--database",
        "d",
    ]);
    assert!(
        !o.out.contains("Password") && !o.err.contains("Password"),
        "{}{}",
        o.out,
        o.err
    );
    cli.expect(0, &["connections", "delete", "Prompted"]);
    cli.expect(3, &["connections", "delete", "Warehouse 2"]);

    // Pipelines.
    let create = [
        "pipelines",
        "create",
        "--name",
        "People",
        "--connection",
        "local",
        "--table",
        "people",
        "--key",
        "id",
        "--map",
        "id=_id",
        "--map",
        "email=lower(email)",
        "--map",
        "city=address.city",
        "--filter",
        has_email,
    ];
    let o = cli.expect(0, &create);
    assert!(
        o.out.starts_with("Created the pipeline `People`"),
        "{}",
        o.out
    );
    cli.expect(4, &create);
    let bad_key = cli.write(
        "bad.yaml",
        "name: Broken\ntable: people\nkey: nope\ntransformation:\n  mapping:\n    id: _id\n",
    );
    let o = cli.expect(
        2,
        &[
            "pipelines",
            "create",
            "--file",
            &bad_key,
            "--connection",
            "Local",
        ],
    );
    assert!(o.err.contains("key"), "{}", o.err);
    cli.expect(
        2,
        &[
            "pipelines",
            "validate",
            "--file",
            &bad_key,
            "--connection",
            "Local",
        ],
    );
    cli.expect(
        3,
        &[
            "pipelines",
            "create",
            "--file",
            &bad_key,
            "--connection",
            "Nowhere",
        ],
    );
    let good = cli.write(
        "good.json",
        r#"{"name": "Draft", "table": "people", "key": "id", "transformation": {"mapping": {"id": "_id"}}}"#,
    );
    let o = cli.expect(
        0,
        &[
            "pipelines",
            "validate",
            "--file",
            &good,
            "--connection",
            "Local",
        ],
    );
    assert!(o.out.contains("valid"), "{}", o.out);
    let o = cli.expect(0, &["pipelines", "list"]);
    assert!(
        o.out.contains("People") && o.out.contains("Local"),
        "{}",
        o.out
    );
    assert_eq!(
        cli.expect(0, &["pipelines", "list", "--connection", "Local", "--json"])
            .json()["pipelines"][0]["name"],
        "People"
    );
    let o = cli.expect(0, &["pipelines", "show", "people"]);
    assert!(
        o.out.contains("Mapping:") && o.out.contains("lower(email)"),
        "{}",
        o.out
    );
    cli.expect(3, &["pipelines", "show", "nobody"]);
    let v = cli
        .expect(
            0,
            &["pipelines", "edit", "People", "--schedule", "1h", "--json"],
        )
        .json();
    assert_eq!(v["schedule"], "1h");
    assert_eq!(v["key"], "id", "an edit keeps what it does not give");
    // An edit read from standard input (YAML).
    let o = cli.run_with(
        &["pipelines", "edit", "People", "--file", "-", "--json"],
        &[],
        Some("description: from standard input\n"),
    );
    assert_eq!(o.code, 0, "{}", o.err);
    assert_eq!(o.json()["description"], "from standard input");
    assert_eq!(o.json()["schedule"], "1h");
    let o = cli.run_with(
        &["pipelines", "edit", "People", "--file", "-"],
        &[],
        Some("[1, 2]"),
    );
    assert_eq!(o.code, 2, "{}", o.err);
    cli.expect(2, &["pipelines", "edit", "People"]);
    cli.expect(2, &["pipelines", "edit", "People", "--schedule", "7m"]);
    let o = cli.expect(0, &["pipelines", "preview", "People", "--limit", "5"]);
    assert!(
        o.out.contains("c1") && o.out.contains("insert") && o.out.contains("email=ann@example.com"),
        "{}",
        o.out
    );
    let p = cli
        .expect(
            0,
            &[
                "pipelines",
                "preview",
                "People",
                "--profile",
                "c2",
                "--json",
            ],
        )
        .json();
    assert_eq!(p["samples"][0]["profile"]["_id"], "c2");
    let o = cli.expect(
        0,
        &[
            "pipelines",
            "preview",
            "--file",
            &good,
            "--connection",
            "Local",
        ],
    );
    assert!(
        o.out.contains("c1 ") && o.out.contains("id=c1"),
        "{}",
        o.out
    );
    cli.expect(2, &["pipelines", "preview"]);
    cli.expect(0, &["pipelines", "disable", "People"]);
    cli.expect(2, &["pipelines", "run", "People"]);
    cli.expect(0, &["pipelines", "enable", "People"]);
    let o = cli.expect(0, &["pipelines", "run", "People", "--dry-run", "--json"]);
    assert_eq!(o.json()["counts"]["inserted"], 2);
    let o = cli.expect(0, &["pipelines", "run", "People"]);
    assert!(o.out.contains("succeeded"), "{}", o.out);
    let n: i64 = rusqlite::Connection::open(db.join("cli.db"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM people WHERE email = 'ann@example.com' AND city = 'Rome'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let run = cli
        .expect(0, &["pipelines", "run", "People", "--json"])
        .json();
    assert_eq!(run["status"], "succeeded");
    let o = cli.expect(4, &["pipelines", "cancel", "People"]);
    assert!(o.err.contains("no run of `People`"), "{}", o.err);
    let o = cli.expect(0, &["runs", "list", "people"]);
    assert!(
        o.out.starts_with("RUN ") && o.out.matches("succeeded").count() == 2,
        "{}",
        o.out
    );
    let runs = cli
        .expect(0, &["runs", "list", "People", "--json", "--limit", "1"])
        .json();
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(id, run["id"]);
    let o = cli.expect(0, &["runs", "show", &id]);
    assert!(
        o.out.contains("succeeded") && o.out.contains("No errors."),
        "{}",
        o.out
    );
    assert_eq!(
        cli.expect(0, &["runs", "show", &id, "--json"]).json()["id"],
        id.as_str()
    );
    assert!(cli
        .expect(0, &["runs", "errors", &id, "--json"])
        .json()
        .is_array());
    cli.expect(0, &["runs", "errors", &id]);
    cli.expect(3, &["runs", "show", "run_nope"]);
    cli.expect(3, &["runs", "list", "nobody"]);
    cli.expect(4, &["runs", "cancel", &id]);
    // Dry runs of unsaved definitions: a draft, and a change to People (what it leaves out is kept).
    let dry = cli
        .expect(
            0,
            &[
                "pipelines",
                "dry-run",
                "--file",
                &good,
                "--connection",
                "Local",
                "--json",
            ],
        )
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["status"], "succeeded");
    let o = cli.expect(
        0,
        &[
            "pipelines",
            "dry-run",
            "--replaces",
            "People",
            "--map",
            "id=_id",
        ],
    );
    assert!(
        o.out
            .starts_with("Dry run of `People` (nothing was written)"),
        "{}",
        o.out
    );
    cli.expect(
        2,
        &[
            "pipelines",
            "dry-run",
            "--file",
            &bad_key,
            "--connection",
            "Local",
        ],
    );
    cli.expect(
        3,
        &[
            "pipelines",
            "dry-run",
            "--replaces",
            "Nobody",
            "--map",
            "id=_id",
        ],
    );
    let o = cli.expect(0, &["pipelines", "functions"]);
    assert!(
        o.out.starts_with("FUNCTION") && o.out.contains("lower("),
        "{}",
        o.out
    );
    let ops = cli.expect(0, &["pipelines", "operators", "--json"]).json();
    assert!(!ops["types"].as_array().unwrap().is_empty());
    cli.expect(0, &["pipelines", "operators"]);
    cli.expect(0, &["pipelines", "reconcile", "People"]);
    // A run that is going: a second start is a conflict, and a cancel stops it. Its script never returns
    // (each call is interrupted at its time limit), so it runs until cancelled or failed.
    let many: String = (0..40)
        .map(|i| format!("{{\"_id\": \"s{i:02}\", \"email\": \"s{i}@example.com\"}}\n"))
        .collect();
    let many = cli.write("many.ndjson", &many);
    let imported = cli
        .expect(0, &["profiles", "import", &many, "--json"])
        .json();
    assert_eq!(imported, serde_json::json!({"upserted": 40, "rejected": 0}));
    let stuck = cli.write(
        "stuck.json",
        r#"{"name": "Stuck", "table": "people", "key": "id",
            "transformation": {"javascript": "const columns = [\"id\", \"email\"];\nfunction transform(p) { while (true) {} }"}}"#,
    );
    cli.expect(
        0,
        &[
            "pipelines",
            "create",
            "--file",
            &stuck,
            "--connection",
            "Local",
        ],
    );
    let started = cli
        .expect(0, &["pipelines", "run", "Stuck", "--no-follow", "--json"])
        .json();
    let run_id = started["id"].as_str().unwrap().to_string();
    cli.expect(4, &["pipelines", "run", "Stuck"]);
    let o = cli.expect(0, &["pipelines", "cancel", "Stuck"]);
    assert!(o.out.contains(&run_id), "{}", o.out);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let r = cli.expect(0, &["runs", "show", &run_id, "--json"]).json();
        if r["status"] == "cancelled" {
            break;
        }
        assert!(
            r["status"] == "running" || r["status"] == "queued",
            "the run ended otherwise: {r}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not stop: {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    cli.expect(0, &["pipelines", "delete", "Stuck"]);
    cli.expect(4, &["connections", "delete", "Local"]);
    cli.expect(0, &["pipelines", "delete", "People"]);
    cli.expect(3, &["pipelines", "delete", "People"]);
    cli.expect(0, &["connections", "delete", "Local"]);
    // A connection from a YAML file.
    let conn = cli.write(
        "conn.yaml",
        "name: From file\ntype: sqlite\nsettings:\n  path: cli.db\n",
    );
    cli.expect(0, &["connections", "add", "--file", &conn]);
    let o = cli.expect(0, &["connections", "show", "from file"]);
    assert!(o.out.contains("path: cli.db"), "{}", o.out);

    // Tokens, and what a token may not do.
    let made = cli
        .expect(
            0,
            &[
                "tokens", "create", "--name", "ci", "--role", "viewer", "--json",
            ],
        )
        .json();
    let token = made["token"].as_str().unwrap().to_string();
    cli.expect(4, &["tokens", "create", "--name", "ci", "--role", "viewer"]);
    cli.expect(2, &["tokens", "create", "--name", "x", "--role", "boss"]);
    let o = cli.expect(0, &["tokens", "list"]);
    assert!(
        o.out.contains("ci") && o.out.contains("viewer") && !o.out.contains(&token),
        "{}",
        o.out
    );
    cli.expect(0, &["model", "show", "--token", &token]);
    cli.expect(5, &["model", "edit", &model, "--token", &token]);
    cli.expect(5, &["model", "show", "--token", "wrong"]);
    let o = cli.expect(0, &["tokens", "whoami", "--token", &token]);
    assert!(
        o.out.starts_with("ci (") && o.out.contains("role viewer"),
        "{}",
        o.out
    );
    let o = cli.expect(0, &["status"]);
    assert!(
        o.out.starts_with("Sluice ")
            && o.out.contains(": ok; signed in as ")
            && o.out.contains("role admin"),
        "{}",
        o.out
    );
    assert_eq!(
        cli.expect(0, &["status", "--json"]).json()["health"]["status"],
        "ok"
    );
    let audit = cli.expect(0, &["audit", "--json", "--limit", "5"]).json();
    assert_eq!(audit["entries"].as_array().unwrap().len(), 5);
    assert!(audit["next"].is_string());
    let o = cli.expect(0, &["audit", "--limit", "2"]);
    assert!(
        o.out.starts_with("AT ") && o.out.contains("POST /v1/tokens"),
        "{}",
        o.out
    );
    cli.expect(2, &["audit", "--limit", "0"]);
    cli.expect(5, &["audit", "--token", &token]);
    cli.expect(0, &["tokens", "revoke", "CI"]);
    cli.expect(3, &["tokens", "revoke", "ci"]);
    cli.expect(5, &["model", "show", "--token", &token]);

    // Workspace files: plan and apply answer the API's JSON with --json, export too.
    let ws = cli.write(
        "ws.yaml",
        "version: 1\nconnections:\n  Files:\n    type: sqlite\n    settings:\n      path: ws.db\n",
    );
    let plan = cli.expect(0, &["plan", &ws, "--json"]).json();
    assert_eq!(plan["changes"].as_array().unwrap().len(), 1, "{plan}");
    let applied = cli.expect(0, &["apply", &ws, "--json"]).json();
    // Ids are given when applied; the rest is what the plan said.
    assert_eq!(
        applied["changes"][0]["fields"],
        plan["changes"][0]["fields"]
    );
    let o = cli.expect(0, &["plan", &ws]);
    assert!(o.out.starts_with("No changes."), "{}", o.out);
    let exported = cli.expect(0, &["export", "--json"]).json();
    assert!(
        exported["workspace"]["connections"]["Files"].is_object(),
        "{exported}"
    );
    cli.expect(5, &["apply", &ws, "--token", &token]);

    // Usage errors are invalid input; a server that does not answer is a failure.
    cli.expect(2, &["pipelines", "show"]);
    cli.expect(2, &["connections", "add", "--port", "seventy"]);
    // No token anywhere is a refusal; an unreadable --ca-cert is invalid input.
    let o = Command::new(BIN)
        .args([
            "pipelines",
            "list",
            "--url",
            &cli.url,
            "--data-dir",
            "/nonexistent",
        ])
        .env_remove("SLUICE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    cli.expect(2, &["pipelines", "list", "--ca-cert", "/nonexistent.pem"]);
    let o = Command::new(BIN)
        .args([
            "pipelines",
            "list",
            "--url",
            "http://127.0.0.1:1",
            "--token",
            "t",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn completions_for_three_shells() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef sluice"),
        ("fish", "complete -c sluice"),
    ] {
        let o = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{shell}");
        assert!(text.contains(marker), "{shell}: {text}");
        for word in ["connections", "pipelines", "delete-many", "completions"] {
            assert!(text.contains(word), "{shell} completes no `{word}`");
        }
    }
    let o = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_documents_exit_codes_and_examples() {
    let o = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for line in [
        "0  success",
        "2  invalid input",
        "3  not found",
        "4  conflict",
        "5  refused",
    ] {
        assert!(help.contains(line), "{help}");
    }
    let o = Command::new(BIN)
        .args(["pipelines", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Examples:\n  sluice pipelines create --file"),
        "{help}"
    );
}
