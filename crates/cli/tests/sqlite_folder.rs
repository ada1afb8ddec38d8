//! SQLite destination files live under the server's folder for them (by default the data directory's
//! `destinations/`): paths leading out of it and Sluice's own files are refused with 422 naming the field.

use serde_json::{json, Value};

mod support;

const TOKEN: &str = "sqlite-folder-token";

fn serve(data: &std::path::Path) -> support::Server {
    let (server, lines) = support::start(
        support::serve_command()
            .env("SLUICE_DATA_DIR", data)
            .env("SLUICE_ADMIN_TOKEN", TOKEN)
            .env("SLUICE_LOG", "warn")
            .env_remove("SLUICE_SQLITE_DIR"),
    );
    support::drain(lines);
    server
}

fn post(rt: &tokio::runtime::Runtime, url: &str, body: Value) -> (u16, Value) {
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn sqlite_paths_out_of_the_folder_and_sluices_own_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = serve(&data);
    let base = &server.url;
    let folder = data.join("destinations");
    assert!(folder.is_dir(), "the folder is made at start");
    #[cfg(unix)]
    std::os::unix::fs::symlink(data.join("metadata.db"), folder.join("link.db")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // What a destination writing there would change: the tables. Not the file's length, which grows
    // whenever the store's own writes are checkpointed into it.
    let tables = || {
        let c = rusqlite::Connection::open_with_flags(
            data.join("metadata.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut stmt = c
            .prepare("SELECT name FROM sqlite_schema ORDER BY name")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names
    };
    let metadata_before = tables();
    let mut bad = vec![
        "../metadata.db".to_string(),
        "../profiles.db".to_string(),
        "../secret.key".to_string(),
        "metadata.db".to_string(),
        data.join("elsewhere.db").display().to_string(),
        "/tmp/sluice-outside.db".to_string(),
        "a/../../escape.db".to_string(),
    ];
    if cfg!(unix) {
        bad.push("link.db".to_string());
    }
    for path in &bad {
        for route in ["/v1/destinations/test", "/v1/destinations"] {
            let mut body = json!({"type": "sqlite", "settings": {"path": path}});
            if route == "/v1/destinations" {
                body["name"] = json!("local");
            }
            let (status, v) = post(&rt, &format!("{base}{route}"), body);
            assert_eq!(status, 422, "{route} {path}: {v}");
            assert!(
                v["error"]["fields"]["settings.path"][0].is_string(),
                "{route} {path}: {v}"
            );
        }
    }
    assert!(!data.join("elsewhere.db").exists());
    assert_eq!(
        tables(),
        metadata_before,
        "Sluice's store was not written through a destination"
    );

    // A relative path lands in the folder.
    let (status, v) = post(
        &rt,
        &format!("{base}/v1/destinations/test"),
        json!({"type": "sqlite", "settings": {"path": "team/local.db"}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(folder.join("team/local.db").exists());
    let (status, v) = post(
        &rt,
        &format!("{base}/v1/destinations"),
        json!({"name": "local", "type": "sqlite", "settings": {"path": "team/local.db"}}),
    );
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["settings"]["path"], "team/local.db", "stored as given");
}
