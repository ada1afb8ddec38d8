//! What protects stored secrets, through the `sluice` binary: the data directory's modes, key
//! rotation on both metadata stores, and debug logs without profile values or passwords.
//!
//! Needs `SLUICE_TEST_POSTGRES_URL` (scripts/services.sh starts a server).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sluice_store::SecretBox;

mod support;

use support::BIN;
const TOKEN: &str = "secrets-test-token";

fn pg_url() -> String {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .expect("SLUICE_TEST_POSTGRES_URL must name a PostgreSQL server for these tests (scripts/services.sh starts one)")
}

/// `sluice serve` on a free port, in `dir`, with `env`; standard error goes to `stderr` when given.
fn serve(dir: &Path, env: &[(&str, &str)], stderr: Option<&Path>) -> support::Server {
    let mut cmd = support::serve_command();
    cmd.current_dir(dir)
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .env("SLUICE_LOG", "warn")
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("SLUICE_METADATA_URL")
        .stderr(match stderr {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    support::start(&mut cmd).0
}

fn call(s: &support::Server, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    support::call(s, TOKEN, method, path, body)
}

fn sluice(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .env("SLUICE_LOG", "warn")
        .env_remove("SLUICE_SECRET_KEY")
        .env_remove("SLUICE_METADATA_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn pg() -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to SLUICE_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    c
}

fn pg_settings(schema: &str, password: &str) -> Value {
    let mut s = sluice_destinations::postgres::PostgresSettings::json_from_url(&pg_url()).unwrap();
    s["schema"] = json!(schema);
    s["tls"] = json!({"mode": "disable"});
    // The test server trusts local connections, so the password is stored but never asked for.
    s["password"] = json!(password);
    s
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
#[test]
fn the_data_directory_is_private_even_when_an_older_sluice_made_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sluice-data");
    // What an older Sluice left: a world-readable directory and files.
    let server = serve(dir.path(), &[], None);
    drop(server);
    std::fs::create_dir_all(data.join("old-sub")).unwrap();
    std::fs::write(data.join("old-sub/leftover"), "x").unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        let m = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        data.join("old-sub/leftover"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();

    let server = serve(dir.path(), &[], None);
    call(
        &server,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(json!({"profiles": [{"_id": "p1"}]})),
    );
    assert_eq!(mode(&data), 0o700);
    let mut seen = Vec::new();
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                seen.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    for name in [
        "secret.key",
        "metadata.db",
        "profiles.db",
        "profiles.db-wal",
        "profiles.db-shm",
        "instance.lock",
        "leftover",
    ] {
        assert!(seen.iter().any(|s| s == name), "{name} not among {seen:?}");
    }
    drop(server);
}

/// Creates a destination holding `password` through a server on `dir`, then stops the server.
fn destination_with_password(dir: &Path, env: &[(&str, &str)], password: &str) -> String {
    let server = serve(dir, env, None);
    let d = call(
        &server,
        reqwest::Method::POST,
        "/v1/destinations",
        Some(
            json!({"name": "pg", "type": "postgresql", "settings": pg_settings("public", password)}),
        ),
    );
    d["id"].as_str().unwrap().to_string()
}

/// The destination's password as the metadata store opens it with `key`.
async fn stored_password(
    data: &Path,
    meta: Option<&str>,
    key: SecretBox,
    id: &str,
) -> Result<Value, String> {
    let store = sluice_store::open_metadata(meta, data, key)
        .await
        .map_err(|e| e.to_string())?;
    match store.get_destination(id).await {
        Ok(rec) => Ok(rec.unwrap().settings["password"].clone()),
        Err(e) => Err(e.to_string()),
    }
}

fn rotate_and_check(dir: &Path, meta: Option<&str>) {
    let env: Vec<(&str, &str)> = meta
        .map(|m| ("SLUICE_METADATA_URL", m))
        .into_iter()
        .collect();
    let data = dir.join("sluice-data");
    let id = destination_with_password(dir, &env, "rotate-me-5b2e");
    let old = SecretBox::load_current_key(&data).unwrap();
    let old_text = std::fs::read_to_string(data.join("secret.key")).unwrap();

    let (ok, out) = sluice(dir, &["secrets", "rotate-key"], &env);
    assert!(ok, "{out}");
    assert!(
        out.contains("Re-encrypted the secrets of 1 destination"),
        "{out}"
    );
    let new_text = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert_ne!(old_text, new_text);
    assert!(!data.join("secret.key.next").exists());
    #[cfg(unix)]
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    let new = SecretBox::from_base64(&new_text).unwrap();
    block_on(async {
        assert_eq!(
            stored_password(&data, meta, new, &id).await.unwrap(),
            "rotate-me-5b2e"
        );
        let err = stored_password(&data, meta, old, &id).await.unwrap_err();
        assert!(
            err.contains("cannot be decrypted with this secret key"),
            "{err}"
        );
    });
    // The server starts with the new key and uses the secret.
    let server = serve(dir, &env, None);
    let v = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/destinations/{id}/test"),
        None,
    );
    assert_eq!(v["ok"], true, "{v}");
    drop(server);

    // An interrupted rotation (its key written, the store not yet re-sealed) stops serve, and the next
    // rotate-key discards it and rotates from the key in use.
    SecretBox::write_next_key(&data, &SecretBox::generate_key_base64()).unwrap();
    let (ok, out) = sluice(dir, &["serve", "--listen", "127.0.0.1:0"], &env);
    assert!(!ok && out.contains("key rotation was interrupted"), "{out}");
    let (ok, out) = sluice(dir, &["secrets", "rotate-key"], &env);
    assert!(ok, "{out}");
    let newest = SecretBox::load_current_key(&data).unwrap();
    block_on(async {
        assert_eq!(
            stored_password(&data, meta, newest, &id).await.unwrap(),
            "rotate-me-5b2e"
        );
    });
}

#[test]
fn rotate_key_on_sqlite_metadata() {
    let dir = tempfile::tempdir().unwrap();
    rotate_and_check(dir.path(), None);
}

#[test]
fn rotate_key_on_postgres_metadata() {
    let schema = format!("rotate_{}", uuid::Uuid::new_v4().simple());
    block_on(async {
        pg().await
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap()
    });
    let base = pg_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let meta = format!("{base}{sep}options=-csearch_path%3D{schema}&sslmode=disable");
    let dir = tempfile::tempdir().unwrap();
    rotate_and_check(dir.path(), Some(&meta));
    block_on(async {
        pg().await
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap()
    });
}

#[test]
fn debug_logs_hold_no_profile_value_or_password() {
    let dir = tempfile::tempdir().unwrap();
    let schema = format!("logs_{}", std::process::id());
    block_on(async {
        pg().await
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.people (id text PRIMARY KEY, email text, city text)"
            ))
            .await
            .unwrap()
    });
    let log = dir.path().join("stderr.log");
    let password = "log-never-3d9f";
    let server = serve(dir.path(), &[("SLUICE_LOG", "debug")], Some(&log));
    call(
        &server,
        reqwest::Method::PUT,
        "/v1/profile-schema",
        Some(
            json!({"properties": [{"name": "email", "type": "string"}, {"name": "city", "type": "string"}]}),
        ),
    );
    let profiles: Vec<Value> = (0..20)
        .map(|i| {
            json!({"_id": format!("person-{i}"), "email": format!("secret.mail.{i}@example.org"),
                        "city": format!("Hiddenville{i}")})
        })
        .collect();
    call(
        &server,
        reqwest::Method::POST,
        "/v1/profiles",
        Some(json!({"profiles": profiles})),
    );
    let d = call(
        &server,
        reqwest::Method::POST,
        "/v1/destinations",
        Some(
            json!({"name": "pg", "type": "postgresql", "settings": pg_settings(&schema, password)}),
        ),
    );
    let p = call(
        &server,
        reqwest::Method::POST,
        "/v1/pipelines",
        Some(
            json!({"destination": d["id"], "name": "People", "table": "people", "key": "id",
                             "transformation": {"mapping": {"id": "_id", "email": "email", "city": "city"}}}),
        ),
    );
    let pid = p["id"].as_str().unwrap();
    let run = call(
        &server,
        reqwest::Method::POST,
        &format!("/v1/pipelines/{pid}/runs"),
        None,
    );
    let run_id = run["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = call(
            &server,
            reqwest::Method::GET,
            &format!("/v1/runs/{run_id}"),
            None,
        );
        if r["status"] == "succeeded" {
            break;
        }
        assert!(
            r["status"] != "failed" && std::time::Instant::now() < deadline,
            "{r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let written: i64 = block_on(async {
        pg().await
            .query_one(
                &format!("SELECT count(*) FROM {schema}.people WHERE email LIKE 'secret.mail.%'"),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(written, 20);
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("DEBUG"),
        "debug logging was not captured: {text}"
    );
    for needle in ["secret.mail.", "Hiddenville", password] {
        assert!(
            !text.contains(needle),
            "`{needle}` is in the debug log:\n{text}"
        );
    }
    block_on(async {
        pg().await
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap()
    });
}
