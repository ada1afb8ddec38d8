//! Workspace files against a live server, as a user runs them: `validate` names every problem at its
//! file, line, column and path; `export` → `apply` → `plan` is empty on a workspace using every feature;
//! `apply` that fails half-way changes nothing; `--prune`; and `serve --workspace`.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod support;

use support::BIN;

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)")
}

/// Runs `sluice` in `dir` with `envs`; answers the exit code, standard output and standard error.
fn sluice(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env("SLUICE_LOG", "warn")
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

struct Server {
    served: support::Server,
    token: String,
    url: String,
}

fn serve(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Server {
    let (served, lines) = support::start(
        support::serve_command()
            .args(extra)
            .current_dir(dir)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env("SLUICE_LOG", "warn")
            .envs(envs.iter().copied())
            .stderr(Stdio::null()),
    );
    support::drain(lines);
    let token = std::fs::read_to_string(dir.join("sluice-data/admin.token"))
        .unwrap()
        .trim()
        .to_string();
    let url = served.url.clone();
    Server { served, token, url }
}

fn get(s: &Server, path: &str) -> Value {
    support::call(&s.served, &s.token, reqwest::Method::GET, path, None)
}

fn pg_exec(sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(sql).await.unwrap();
    });
}

/// The PostgreSQL settings of the test server as YAML lines (password left out: the files name it).
fn pg_settings_yaml(schema: &str) -> String {
    let s = sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    let mut out = String::new();
    for key in ["host", "port", "username", "database"] {
        if let Some(v) = s.get(key).filter(|v| !v.is_null()) {
            out.push_str(&format!("      {key}: {v}\n"));
        }
    }
    out.push_str(&format!(
        "      schema: {schema}\n      tls: {{mode: disable}}\n"
    ));
    out.push_str("      password: {env: WS_PG_PASSWORD}\n");
    out
}

/// The test server trusts local connections, so the password is stored but never asked for; when the
/// URL carries one, it is the one the files must give.
fn pg_password() -> String {
    let s = sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    s["password"].as_str().unwrap_or("not-asked").to_string()
}

/// A workspace using every feature: a nested Customer Model, two kinds of connection with a secret from
/// the environment and one from a file, mapping and JavaScript pipelines, filters, cron and interval
/// schedules, `on_leave`, a webhook read like a secret, `reconcile_every`, a disabled pipeline.
fn full_workspace(dir: &Path, schema: &str) -> std::path::PathBuf {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("webhook.txt"),
        "https://hooks.example.com/from-file\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("1-model.yaml"),
        "version: 1\ncustomer_model:\n  properties:\n    - {name: email, type: string}\n    - {name: country, type: string}\n    - {name: ltv, type: \"decimal(12,2)\", nullable: true}\n    - name: address\n      type: object\n      properties:\n        - {name: city, type: string}\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("2-connections.yaml"),
        format!(
            "version: 1\nconnections:\n  Warehouse:\n    type: postgresql\n    settings:\n{}  Local:\n    type: sqlite\n    settings:\n      path: local.db\n",
            pg_settings_yaml(schema)
        ),
    )
    .unwrap();
    std::fs::write(
        ws.join("3-pipelines.yaml"),
        r#"version: 1
pipelines:
  Italians:
    connection: Warehouse
    description: Customers in Italy
    filter:
      logical: and
      conditions:
        - {property: country, operator: is one of, values: [IT]}
        - logical: or
          conditions:
            - {property: email, operator: is not empty}
    table: people
    key: id
    transformation:
      mapping:
        id: _id
        email: lower(email)
        city: address.city
    schedule: 15m
    on_leave: delete
    alert_webhook: {env: WS_WEBHOOK}
    reconcile_every: 1d
  Everyone nightly:
    connection: Warehouse
    enabled: false
    alert_webhook: {file: webhook.txt}
    table: everyone
    key: id
    transformation:
      javascript: |
        function transform(p) {
          return {id: p._id, ltv: p.ltv};
        }
    schedule:
      cron: 0 3 * * *
      timezone: Europe/Rome
  Local copy:
    connection: Local
    table: copy
    key: id
    transformation:
      mapping:
        id: _id
        email: email
"#,
    )
    .unwrap();
    ws
}

fn prepare_tables(dir: &Path, schema: &str) {
    pg_exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.people (id text PRIMARY KEY, email text, city text);
         CREATE TABLE {schema}.everyone (id text PRIMARY KEY, ltv numeric(12,2));"
    ));
    let sqlite = dir.join("sluice-data/destinations");
    std::fs::create_dir_all(&sqlite).unwrap();
    let db = rusqlite::Connection::open(sqlite.join("local.db")).unwrap();
    db.execute_batch("CREATE TABLE IF NOT EXISTS copy (id TEXT PRIMARY KEY, email TEXT)")
        .unwrap();
}

#[test]
fn validate_names_every_problem_at_its_file_line_column_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("bad");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("a.yaml"),
        "version: 1\ncustomer_model:\n  properties:\n    - {name: country, type: string}\nconnections:\n  Warehouse:\n    type: postgresql\n    settings:\n      host: localhost\n      username: u\n      database: d\n      password: hunter2\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("b.yaml"),
        "version: 1\npipelines:\n  P:\n    connection: Nowhere\n    table: t\n    key: id\n    transformation: {mapping: {id: _id}}\n    schedule: 7m\n    filter:\n      logical: and\n      conditions:\n        - {property: colour, operator: is, values: [red]}\n  Q:\n    connection: Warehouse\n    table: t\n    key: id\n    transformation: {mapping: {id: _id}}\n    bogus: 1\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("c.yaml"),
        "version: 1\npipelines:\n  P:\n    connection: Warehouse\n    table: t\n    key: id\n    transformation: {mapping: {id: _id}}\n",
    )
    .unwrap();
    let (code, out, err) = sluice(dir.path(), &["validate", "bad"], &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    // The duplicate is found while reading, before anything else is checked.
    assert!(
        err.contains(
            "bad/c.yaml:3:3: pipelines.P: `P` is described twice (first at bad/b.yaml:3:3)"
        ),
        "{err}"
    );
    std::fs::remove_file(ws.join("c.yaml")).unwrap();

    let (code, out, err) = sluice(dir.path(), &["validate", "bad"], &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("bad/a.yaml:12:7: connections.Warehouse.settings.password: `password` is a secret and is never written in the files"),
        "{err}"
    );
    std::fs::write(
        ws.join("a.yaml"),
        std::fs::read_to_string(ws.join("a.yaml"))
            .unwrap()
            .replace("password: hunter2", "password: {env: SOME_VAR}"),
    )
    .unwrap();
    let (code, out, err) = sluice(dir.path(), &["validate", "bad"], &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    for expected in [
        "bad/b.yaml:4:5: pipelines.P.connection: connection `Nowhere` is not described under `connections`",
        "bad/b.yaml:8:5: pipelines.P.schedule: ",
        "bad/b.yaml:12:12: pipelines.P.filter.conditions[0].property: ",
        "bad/b.yaml:18:5: pipelines.Q.bogus: unknown field `bogus`, expected one of `connection`, `description`",
    ] {
        assert!(err.contains(expected), "{expected}\nnot in:\n{err}");
    }
    assert!(err.contains("4 problems found"), "{err}");

    // The messages are the API's own for the same mistake.
    let (_, _, api_err) = (0, 0, {
        let spec: Value = json!({"destination": "d", "name": "P", "table": "t", "key": "id",
            "transformation": {"mapping": {"id": "_id"}}, "schedule": "7m"});
        let spec: sluice_core::pipeline::PipelineSpec = serde_json::from_value(spec).unwrap();
        spec.check_shape().get("schedule").unwrap()[0].clone()
    });
    assert!(
        err.contains(&format!("pipelines.P.schedule: {api_err}")),
        "{api_err}\n{err}"
    );

    // The examples in the repository are valid.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let (code, out, err) = sluice(dir.path(), &["validate", examples.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("The workspace is valid: 2 connections, 2 pipelines, 1 source."),
        "{out}"
    );
}

/// A server, its tables in a PostgreSQL schema of their own (named from `prefix`) and the full workspace
/// in files, with the environment the files name.
struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    ws: std::path::PathBuf,
    schema: String,
    password: String,
}

impl Setup {
    fn new(prefix: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let schema = format!("{prefix}_{}", std::process::id());
        prepare_tables(dir.path(), &schema);
        let server = serve(dir.path(), &[], &[]);
        let ws = full_workspace(dir.path(), &schema);
        Setup {
            dir,
            server,
            ws,
            schema,
            password: pg_password(),
        }
    }

    fn envs(&self) -> [(&'static str, &str); 2] {
        [
            ("WS_PG_PASSWORD", self.password.as_str()),
            ("WS_WEBHOOK", "https://hooks.example.com/T0/B0/abc"),
        ]
    }
}

#[test]
fn export_apply_plan_round_trip_and_prune() {
    let s = Setup::new("ws_round");
    let schema = &s.schema;
    let (dir, server, url, password) = (&s.dir, &s.server, s.server.url.clone(), &s.password);
    let envs = s.envs();
    let ws = &s.ws;
    let ws_arg = ws.to_str().unwrap();

    let (code, out, err) = sluice(
        dir.path(),
        &["validate", ws_arg, "--online", "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");

    let (code, out, err) = sluice(dir.path(), &["plan", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("+ create pipeline `Italians`"), "{out}");
    assert!(out.contains("    table: people"), "{out}");
    assert!(out.contains("settings.password: ********"), "{out}");
    assert!(
        !out.contains(&format!("settings.password: {password}")),
        "{out}"
    );
    assert!(
        get(server, "/v1/pipelines")["pipelines"]
            .as_array()
            .unwrap()
            .is_empty(),
        "plan writes nothing"
    );

    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("Applied: 5 created, 1 changed, 0 deleted."),
        "{out}"
    );
    let pipelines = get(server, "/v1/pipelines")["pipelines"].clone();
    assert_eq!(pipelines.as_array().unwrap().len(), 3);
    let italians = pipelines
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Italians")
        .unwrap()
        .clone();
    assert_eq!(
        italians["alert_webhook"],
        "https://hooks.example.com/T0/B0/abc"
    );
    assert_eq!(italians["reconcile_every"], "1d");
    let nightly = pipelines
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Everyone nightly")
        .unwrap();
    assert_eq!(
        nightly["alert_webhook"],
        "https://hooks.example.com/from-file"
    );

    // Unchanged files: nothing to do, no timestamp moved, no audit entry.
    let stamps = |v: &Value| -> Vec<(Value, Value)> {
        v["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].clone(), p["updated_at"].clone()))
            .collect()
    };
    let audit_before = get(server, "/v1/audit");
    let (code, out, err) = sluice(dir.path(), &["plan", ws_arg, "--url", &url], &envs);
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");
    assert_eq!(
        stamps(&get(server, "/v1/pipelines")),
        stamps(&json!({"pipelines": pipelines}))
    );
    assert_eq!(get(server, "/v1/audit"), audit_before);

    // Export, then apply what was exported: a no-op, secrets named by variable, never written.
    let exported = dir.path().join("exported.yaml");
    let (code, out, err) = sluice(
        dir.path(),
        &[
            "export",
            "--url",
            &url,
            "--output",
            exported.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("password: {env: SLUICE_WAREHOUSE_PASSWORD}")
            || text.contains("env: SLUICE_WAREHOUSE_PASSWORD"),
        "{text}"
    );
    assert!(!text.contains("hooks.example.com"), "{text}");
    assert!(text.contains("SLUICE_ITALIANS_ALERT_WEBHOOK"), "{text}");
    let export_envs = [
        ("SLUICE_WAREHOUSE_PASSWORD", password.as_str()),
        (
            "SLUICE_ITALIANS_ALERT_WEBHOOK",
            "https://hooks.example.com/T0/B0/abc",
        ),
        (
            "SLUICE_EVERYONE_NIGHTLY_ALERT_WEBHOOK",
            "https://hooks.example.com/from-file",
        ),
    ];
    let (code, out, err) = sluice(dir.path(), &["validate", exported.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", exported.to_str().unwrap(), "--url", &url],
        &export_envs,
    );
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");
    let (code, out, err) = sluice(
        dir.path(),
        &["plan", exported.to_str().unwrap(), "--url", &url],
        &export_envs,
    );
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");

    // A change is shown field by field, then applied.
    let file = ws.join("3-pipelines.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    // A change of the rows a pipeline writes gets a dry run's counts under the pipeline (checked against
    // the real runs in `plan_counts_the_rows_the_next_run_writes`).
    std::fs::write(&file, original.replace("values: [IT]", "values: [IT, FR]")).unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(
            "~ change pipeline `Italians`\n    filter.conditions[0].values: [\"IT\"] → [\"IT\",\"FR\"]\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n    rows of `Italians` on the next run: "),
        "{out}"
    );
    std::fs::write(&file, original.replace("schedule: 15m", "schedule: 1h")).unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("~ change pipeline `Italians`\n    schedule: 15m → 1h\n"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 0 to create, 1 to change, 0 to delete."),
        "{out}"
    );
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    let italians = get(
        server,
        &format!("/v1/pipelines/{}", italians["id"].as_str().unwrap()),
    );
    assert_eq!(italians["schedule"], "1h");

    // A pipeline the files no longer name is kept, unless --prune.
    let without = original
        .replace("schedule: 15m", "schedule: 1h")
        .split("  Local copy:")
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&file, without).unwrap();
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("No changes.") && out.contains("pipeline `Local copy`"),
        "{out}"
    );
    assert_eq!(
        get(server, "/v1/pipelines")["pipelines"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (code, out, err) = sluice(
        dir.path(),
        &["plan", ws_arg, "--prune", "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("- delete pipeline `Local copy`"), "{out}");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", ws_arg, "--prune", "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("- deleted pipeline `Local copy`"), "{out}");
    let names: Vec<Value> = get(server, "/v1/pipelines")["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("Italians"), json!("Everyone nightly")]);

    // A model change that would break a pipeline the files no longer name (so it is kept) is refused,
    // as `PUT /v1/profile-schema` refuses it, at the model's place in the files.
    let pipelines_text = std::fs::read_to_string(&file).unwrap();
    let only_nightly = format!(
        "version: 1\npipelines:\n  Everyone nightly:{}",
        pipelines_text.split("  Everyone nightly:").nth(1).unwrap()
    );
    std::fs::write(&file, only_nightly).unwrap();
    let model = ws.join("1-model.yaml");
    let model_text = std::fs::read_to_string(&model).unwrap();
    std::fs::write(
        &model,
        model_text.replace("    - {name: country, type: string}\n", ""),
    )
    .unwrap();
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("1-model.yaml:")
            && err.contains("customer_model.properties")
            && err.contains("removing `country` would break pipeline `Italians`"),
        "{err}"
    );
    assert_eq!(
        get(server, "/v1/pipelines")["pipelines"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

#[test]
fn an_apply_that_fails_half_way_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("ws_fail_{}", std::process::id());
    pg_exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t1 (id text PRIMARY KEY); CREATE TABLE {schema}.t2 (id text PRIMARY KEY);
         CREATE TABLE {schema}.t4 (id text PRIMARY KEY); CREATE TABLE {schema}.t5 (id text PRIMARY KEY);"
    ));
    let server = serve(dir.path(), &[], &[]);
    let url = server.url.clone();
    let password = pg_password();
    let envs = [("WS_PG_PASSWORD", password.as_str())];
    let ws = dir.path().join("five.yaml");
    let write = |tables: [&str; 5], description: &str| {
        let mut text = format!(
            "version: 1\nconnections:\n  Warehouse:\n    type: postgresql\n    settings:\n{}pipelines:\n",
            pg_settings_yaml(&schema)
        );
        for (i, t) in tables.iter().enumerate() {
            text.push_str(&format!(
                "  P{}:\n    connection: Warehouse\n    description: {description}\n    table: {t}\n    key: id\n    transformation: {{mapping: {{id: _id}}}}\n",
                i + 1
            ));
        }
        std::fs::write(&ws, text).unwrap();
    };

    // On an empty server: the third of five pipelines names a missing table.
    write(["t1", "t2", "t3", "t4", "t5"], "first");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", ws.to_str().unwrap(), "--url", &url],
        &envs,
    );
    assert_eq!(code, 2, "{out}\n{err}");
    let text = std::fs::read_to_string(&ws).unwrap();
    let line = text.lines().position(|l| l == "    table: t3").unwrap() + 1;
    assert!(
        err.contains(&format!(
            "five.yaml:{line}:5: pipelines.P3.table: table `t3` does not exist in the destination"
        )),
        "{err}"
    );
    assert!(get(&server, "/v1/destinations")["destinations"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(get(&server, "/v1/pipelines")["pipelines"]
        .as_array()
        .unwrap()
        .is_empty());

    // On a server that has the workspace: a failing change leaves every object as it was.
    write(["t1", "t2", "t4", "t4", "t5"], "first");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", ws.to_str().unwrap(), "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let before = (
        get(&server, "/v1/destinations"),
        get(&server, "/v1/pipelines"),
    );
    write(["t1", "t2", "t3", "t4", "t5"], "second");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", ws.to_str().unwrap(), "--url", &url],
        &envs,
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert_eq!(
        (
            get(&server, "/v1/destinations"),
            get(&server, "/v1/pipelines")
        ),
        before
    );

    // A server that cannot be reached is a failure (1), told apart from invalid files (2).
    let (code, out, err) = sluice(
        dir.path(),
        &["plan", ws.to_str().unwrap(), "--url", "http://127.0.0.1:9"],
        &envs,
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("cannot reach Sluice at http://127.0.0.1:9"),
        "{err}"
    );
    pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

#[test]
fn serve_applies_a_workspace_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("ws_start_{}", std::process::id());
    prepare_tables(dir.path(), &schema);
    let ws = full_workspace(dir.path(), &schema);
    let password = pg_password();
    let envs = [
        ("WS_PG_PASSWORD", password.as_str()),
        ("WS_WEBHOOK", "https://hooks.example.com/x"),
    ];
    let server = serve(dir.path(), &["--workspace", ws.to_str().unwrap()], &envs);
    let names: Vec<Value> = get(&server, "/v1/pipelines")["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    drop(server);

    // Files that do not apply stop the start.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workspace",
            ws.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env_remove("SLUICE_ADMIN_TOKEN")
        .env("SLUICE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable `WS_PG_PASSWORD` is not set"),
        "{err}"
    );
    pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

fn post(s: &Server, path: &str, body: Value) -> Value {
    support::call(&s.served, &s.token, reqwest::Method::POST, path, Some(body))
}

/// Runs the pipeline named `name` now and answers its counts once it ends.
fn run(s: &Server, name: &str) -> Value {
    let pipelines = get(s, "/v1/pipelines");
    let id = pipelines["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = post(s, &format!("/v1/pipelines/{id}/runs"), json!({}));
    let run_id = started["id"].as_str().unwrap();
    for _ in 0..600 {
        let r = get(s, &format!("/v1/runs/{run_id}"));
        if r["status"] == "succeeded" {
            return r["counts"].clone();
        }
        assert!(r["status"] == "running" || r["status"] == "queued", "{r}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("run of {name} did not end");
}

/// The counts `plan` prints under a changed pipeline: insert, update, delete, unchanged.
fn planned(out: &str, name: &str) -> [u64; 4] {
    let prefix = format!("    rows of `{name}` on the next run: ");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no counts for {name} in:\n{out}"));
    let n: Vec<u64> = line
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse().unwrap())
        .collect();
    [n[0], n[1], n[2], n[3]]
}

/// `plan` says how many rows the next run of each changed pipeline would insert, update, delete and
/// leave — from a dry run of the new definition — and after `apply` the real runs do exactly that, on
/// PostgreSQL and on SQLite. The plan writes nothing.
#[test]
fn plan_counts_the_rows_the_next_run_writes() {
    let s = Setup::new("ws_counts");
    let (dir, server, url) = (&s.dir, &s.server, s.server.url.clone());
    let envs = s.envs();
    let ws = &s.ws;
    let ws_arg = ws.to_str().unwrap();
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    let profiles: Vec<Value> = (0..30)
        .map(|i| {
            let country = ["IT", "FR", "DE"][i % 3];
            json!({"_id": format!("c{i:03}"), "email": format!("Person{i}@Example.com"),
                   "country": country, "address": {"city": "Lyon"}})
        })
        .collect();
    post(server, "/v1/profiles", json!({"profiles": profiles}));
    assert_eq!(run(server, "Italians")["inserted"], 10);
    assert_eq!(run(server, "Local copy")["inserted"], 30);

    // The French join the Italians (one of them moves to Germany), and the local copy keeps e-mails in
    // lower case.
    post(
        server,
        "/v1/profiles",
        json!({"profiles": [{"_id": "c000", "country": "DE"}]}),
    );
    let file = ws.join("3-pipelines.yaml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        original
            .replace("values: [IT]", "values: [IT, FR]")
            .replace("        email: email\n", "        email: lower(email)\n"),
    )
    .unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    let italians = planned(&out, "Italians");
    let local = planned(&out, "Local copy");
    assert_eq!(italians, [10, 0, 1, 9], "{out}");
    assert_eq!(local, [0, 30, 0, 0], "{out}");
    // Nothing was written by the plan: the next runs of the saved pipelines find nothing to do but
    // the one profile that left.
    let (code, out, err) = sluice(dir.path(), &["apply", ws_arg, "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    let counts = |c: Value| -> [u64; 4] {
        ["inserted", "updated", "deleted", "unchanged"].map(|k| c[k].as_u64().unwrap())
    };
    assert_eq!(counts(run(server, "Italians")), italians);
    assert_eq!(counts(run(server, "Local copy")), local);
}

/// Source pipelines in the files: `validate` names a source's mistakes at their line and column,
/// `--online` checks it against the live table, `plan` and `apply` create it, say when a change resets
/// its mark, `export` writes it so that applying the export changes nothing, and `--prune` deletes it.
#[test]
fn sources_are_validated_planned_applied_exported_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("srcws_cli_{}", std::process::id());
    pg_exec(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
         CREATE TABLE {schema}.crm (customer_id text PRIMARY KEY, email text, country text,
             updated_at timestamptz NOT NULL);
         INSERT INTO {schema}.crm VALUES ('c1', 'Ann@Example.com', 'IT', '2026-12-01 10:00:00+00');"
    ));
    let server = serve(dir.path(), &[], &[]);
    let url = server.url.clone();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("1-model.yaml"),
        "version: 1\ncustomer_model:\n  properties:\n    - {name: email, type: string}\n    - {name: country, type: string}\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("2-connections.yaml"),
        format!(
            "version: 1\nconnections:\n  Warehouse:\n    type: postgresql\n    settings:\n{}",
            pg_settings_yaml(&schema)
        ),
    )
    .unwrap();
    let sources = |schedule: &str, changes: &str| {
        format!(
            "version: 1\nsources:\n  CRM:\n    connection: Warehouse\n    table: crm\n    id_column: customer_id\n    transformation:\n      mapping:\n        email: lower(email)\n        country: country\n    changes: {changes}\n    schedule: {schedule}\n"
        )
    };
    let cursor = "{mode: cursor, column: updated_at}";
    std::fs::write(ws.join("3-sources.yaml"), sources("on_change", cursor)).unwrap();
    let password = pg_password();
    let envs = [("WS_PG_PASSWORD", password.as_str())];

    let (code, out, err) = sluice(dir.path(), &["validate", "ws"], &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains(
            "ws/3-sources.yaml:12:5: sources.CRM.schedule: `on_change` is for export pipelines"
        ),
        "{err}"
    );

    std::fs::write(ws.join("3-sources.yaml"), sources("1h", cursor)).unwrap();
    let (code, out, err) = sluice(
        dir.path(),
        &["validate", "ws", "--online", "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("1 connection, 0 pipelines, 1 source, checked against the live databases"),
        "{out}"
    );

    let (code, out, err) = sluice(dir.path(), &["plan", "ws", "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("+ create source `CRM`"), "{out}");
    assert!(out.contains("    table: crm"), "{out}");
    assert_eq!(get(&server, "/v1/sources")["sources"], json!([]));

    let (code, out, err) = sluice(dir.path(), &["apply", "ws", "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("+ created source `CRM`"), "{out}");
    let listed = get(&server, "/v1/sources")["sources"].clone();
    assert_eq!(listed[0]["name"], "CRM", "{listed}");
    assert_eq!(listed[0]["schedule"], "1h", "{listed}");
    let (code, out, err) = sluice(dir.path(), &["plan", "ws", "--url", &url], &envs);
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");

    // The export writes the source with its connection by name; applied back, nothing changes.
    let exported = dir.path().join("exported.yaml");
    let (code, out, err) = sluice(
        dir.path(),
        &[
            "export",
            "--url",
            &url,
            "--output",
            exported.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("sources:\n  CRM:\n    connection: Warehouse\n"),
        "{text}"
    );
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", exported.to_str().unwrap(), "--url", &url],
        &[("SLUICE_WAREHOUSE_PASSWORD", password.as_str())],
    );
    assert_eq!((code, out.trim()), (0, "No changes."), "{err}");

    // Reading changes another way resets the mark, and the plan says so; a new schedule does not.
    std::fs::write(ws.join("3-sources.yaml"), sources("2h", cursor)).unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", "ws", "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("~ change source `CRM`\n    schedule: 1h → 2h\n"),
        "{out}"
    );
    assert!(!out.contains("resets its mark"), "{out}");
    std::fs::write(ws.join("3-sources.yaml"), sources("2h", "{mode: full}")).unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", "ws", "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("resets its mark: the next run reads everything again"),
        "{out}"
    );

    // Without the source in the files it is kept, and deleted with --prune.
    std::fs::remove_file(ws.join("3-sources.yaml")).unwrap();
    let (code, out, err) = sluice(dir.path(), &["plan", "ws", "--url", &url], &envs);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("  source `CRM` ("), "{out}");
    let (code, out, err) = sluice(
        dir.path(),
        &["apply", "ws", "--prune", "--url", &url],
        &envs,
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("- deleted source `CRM`"), "{out}");
    assert_eq!(get(&server, "/v1/sources")["sources"], json!([]));
    pg_exec(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}
