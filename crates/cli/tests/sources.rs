//! `sluice sources …` against one live `sluice serve` (embedded stores), reading a SQLite file as the
//! source: each command with its exit code, on success and on each kind of failure.

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

    fn expect(&self, code: i32, args: &[&str]) -> Out {
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
        let o = Out {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into(),
            err: String::from_utf8_lossy(&out.stderr).into(),
        };
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

#[test]
fn source_commands_with_their_exit_codes() {
    let cli = Cli::start();
    let model = cli.write(
        "model.yaml",
        "properties:\n  - {name: email, type: string}\n  - name: address\n    type: object\n    properties:\n      - {name: city, type: string}\n",
    );
    cli.expect(0, &["model", "edit", &model]);
    let db = cli.dir.join("sluice-data/destinations");
    std::fs::create_dir_all(&db).unwrap();
    let file = rusqlite::Connection::open(db.join("crm.db")).unwrap();
    file.execute_batch(
        "CREATE TABLE src_people (id TEXT PRIMARY KEY, email TEXT, city TEXT, seq INTEGER NOT NULL);
         INSERT INTO src_people VALUES ('c1', 'Ann@Example.com', 'Rome', 1), ('c2', 'Bo@Example.com', 'Lyon', 2);",
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
            "crm.db",
        ],
    );

    let create = [
        "sources",
        "create",
        "--name",
        "People",
        "--connection",
        "CRM",
        "--table",
        "src_people",
        "--id-column",
        "id",
        "--map",
        "email=lower(email)",
        "--map",
        "address.city=city",
        "--cursor",
        "seq",
    ];
    let o = cli.expect(0, &create);
    assert!(
        o.out.starts_with("Created the source `People`"),
        "{}",
        o.out
    );
    // The same name again is a conflict; a column the table lacks is invalid input.
    cli.expect(4, &create);
    let o = cli.expect(
        2,
        &[
            "sources",
            "create",
            "--name",
            "Bad",
            "--connection",
            "CRM",
            "--table",
            "src_people",
            "--id-column",
            "nope",
            "--map",
            "email=email",
            "--full",
        ],
    );
    assert!(
        o.err.contains("id_column") && o.err.contains("nope"),
        "{}",
        o.err
    );
    cli.expect(3, &["sources", "show", "Nobody"]);

    let o = cli.expect(0, &["sources", "list"]);
    assert!(
        o.out.starts_with("NAME ") && o.out.contains("People") && o.out.contains("cursor seq"),
        "{}",
        o.out
    );
    let o = cli.expect(0, &["sources", "preview", "People", "--limit", "1"]);
    assert!(
        o.out.contains("ann@example.com") || o.out.contains("bo@example.com"),
        "{}",
        o.out
    );

    let o = cli.expect(0, &["sources", "run", "People"]);
    assert!(
        o.out.contains("succeeded") && o.out.contains("2 read") && o.out.contains("2 new"),
        "{}",
        o.out
    );
    let o = cli.expect(0, &["profiles", "get", "c1", "--json"]);
    assert_eq!(o.json()["address"]["city"], "Rome");
    let run = cli
        .expect(0, &["sources", "run", "People", "--json"])
        .json();
    assert_eq!(run["counts"]["unchanged"], 2, "{run}");
    let shown = cli
        .expect(0, &["sources", "show", "people", "--json"])
        .json();
    assert_eq!(shown["mark"]["value"], -9998, "{shown}");
    // A lookback of one: the next mark trails the greatest cursor (2) by one.
    cli.expect(
        0,
        &[
            "sources",
            "edit",
            "People",
            "--cursor",
            "seq",
            "--lookback",
            "1",
        ],
    );
    cli.expect(0, &["sources", "run", "People"]);
    let shown = cli
        .expect(0, &["sources", "show", "people", "--json"])
        .json();
    assert_eq!(shown["changes"]["lookback"], 1, "{shown}");
    assert_eq!(shown["mark"]["value"], 1, "{shown}");

    // The source's runs, newest first, in the source's own words.
    let o = cli.expect(0, &["sources", "runs", "People"]);
    assert_eq!(o.out.matches("succeeded").count(), 3, "{}", o.out);
    assert!(
        o.out.contains("2 unchanged") && o.out.contains("2 new"),
        "{}",
        o.out
    );
    let page = cli
        .expect(0, &["sources", "runs", "People", "--limit", "1", "--json"])
        .json();
    assert_eq!(page["runs"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["runs"][0]["id"], shown["last_run"]["id"], "{page}");
    assert_ne!(page["runs"][0]["id"], run["id"], "{page}");
    let older = cli
        .expect(
            0,
            &[
                "sources",
                "runs",
                "People",
                "--limit",
                "1",
                "--before",
                page["runs"][0]["id"].as_str().unwrap(),
                "--json",
            ],
        )
        .json();
    assert_eq!(older["runs"][0]["id"], run["id"], "{older}");
    // Nothing to cancel once the runs ended: exit 4, naming the source.
    let o = cli.expect(4, &["sources", "cancel", "People"]);
    assert!(o.err.contains("no run of `People`"), "{}", o.err);
    cli.expect(3, &["sources", "runs", "Nobody"]);

    cli.expect(0, &["sources", "disable", "People"]);
    let o = cli.expect(2, &["sources", "run", "People"]);
    assert!(o.err.contains("disabled"), "{}", o.err);
    cli.expect(0, &["sources", "edit", "People", "--schedule", "5m"]);
    let o = cli.expect(0, &["sources", "show", "People"]);
    assert!(o.out.contains("5m") && o.out.contains("no"), "{}", o.out);
    // Sources take intervals of seconds; a wrong one is named with those allowed.
    cli.expect(0, &["sources", "edit", "People", "--schedule", "5s"]);
    let shown = cli
        .expect(0, &["sources", "show", "People", "--json"])
        .json();
    assert_eq!(shown["schedule"], "5s", "{shown}");
    let o = cli.expect(2, &["sources", "edit", "People", "--schedule", "7s"]);
    assert!(
        o.err.contains("`7s`") && o.err.contains("5s, 10s, 15s, 30s, 1m, 2m"),
        "{}",
        o.err
    );
    cli.expect(2, &["sources", "edit", "People"]);
    cli.expect(0, &["sources", "delete", "People"]);
    cli.expect(3, &["sources", "delete", "People"]);
}
