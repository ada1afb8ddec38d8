//! `sluice inspect` against a live `sluice serve`: a SQLite connection's table and query seen with the
//! proposed Customer Model, in the person's view and with `--json`, and each failure with its exit code
//! (invalid input 2, not found 3, refused 5).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

mod support;

use support::BIN;

struct Cli {
    dir: PathBuf,
    url: String,
    _server: support::Server,
    _tmp: tempfile::TempDir,
}

struct Out {
    code: i32,
    out: String,
    err: String,
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

    fn run(&self, args: &[&str]) -> Out {
        let out = Command::new(BIN)
            .args(args)
            .args(["--url", &self.url])
            .current_dir(&self.dir)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env_remove("SLUICE_URL")
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into(),
            err: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

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
}

#[test]
fn inspect_a_table_and_a_query() {
    let cli = Cli::start();
    let folder = cli.dir.join("sluice-data/destinations");
    std::fs::create_dir_all(&folder).unwrap();
    rusqlite::Connection::open(folder.join("insp_crm.db"))
        .unwrap()
        .execute_batch(
            r#"CREATE TABLE insp_people (id INTEGER PRIMARY KEY, "firstName" TEXT, doc JSON);
               INSERT INTO insp_people VALUES (1, 'Ada', '{"plan": "pro", "seats": 3}');
               INSERT INTO insp_people VALUES (2, 'Bo', '{"plan": "free"}');"#,
        )
        .unwrap();
    cli.expect(
        0,
        &[
            "connections",
            "add",
            "--name",
            "CRM",
            "--type",
            "sqlite",
            "--path",
            "insp_crm.db",
        ],
    );

    let o = cli.expect(0, &["inspect", "crm", "--table", "insp_people"]);
    assert!(o.out.starts_with("COLUMN"), "{}", o.out);
    assert!(o.out.contains("Sample (2 rows):"), "{}", o.out);
    assert!(o.out.contains("Profile id (_id) from: id"), "{}", o.out);
    assert!(
        o.out
            .contains("Proposed new properties of the Customer Model: first_name, doc"),
        "{}",
        o.out
    );
    assert!(o.out.contains("← doc.seats"), "{}", o.out);
    assert!(o.out.contains("Nothing was saved."), "{}", o.out);

    let v: Value = serde_json::from_str(
        &cli.expect(
            0,
            &[
                "inspect",
                "crm",
                "--query",
                "SELECT id, \"firstName\" FROM insp_people",
                "--rows",
                "1",
                "--json",
            ],
        )
        .out,
    )
    .unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["model"]["properties"][0]["name"], "first_name", "{v}");
    assert_eq!(v["mapping"]["first_name"], "firstName", "{v}");
    // Nothing was written: the Customer Model is still empty.
    let model: Value =
        serde_json::from_str(&cli.expect(0, &["model", "show", "--json"]).out).unwrap();
    assert_eq!(model["properties"], serde_json::json!([]), "{model}");

    // Failures, each with its exit code and the thing at fault named.
    let o = cli.expect(2, &["inspect", "crm", "--query", "DELETE FROM insp_people"]);
    assert!(o.err.contains("SELECT"), "{}", o.err);
    let o = cli.expect(3, &["inspect", "crm", "--table", "insp_nope"]);
    assert!(o.err.contains("insp_nope"), "{}", o.err);
    cli.expect(
        3,
        &["inspect", "no-such-connection", "--table", "insp_people"],
    );
    cli.expect(2, &["inspect", "crm"]);
    cli.expect(
        2,
        &["inspect", "crm", "--table", "insp_people", "--rows", "0"],
    );
    let made: Value = serde_json::from_str(
        &cli.expect(
            0,
            &[
                "tokens",
                "create",
                "--name",
                "insp-viewer",
                "--role",
                "viewer",
                "--json",
            ],
        )
        .out,
    )
    .unwrap();
    let token = made["token"].as_str().unwrap();
    let o = cli.expect(
        5,
        &["inspect", "crm", "--table", "insp_people", "--token", token],
    );
    assert!(o.err.contains("editor"), "{}", o.err);
}
