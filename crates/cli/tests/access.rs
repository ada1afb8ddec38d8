//! `sluice serve` over a real socket: the settings of access reach the server. `/metrics` behind a token
//! when `SLUICE_METRICS_TOKEN_REQUIRED=true`, the Host check of a server on loopback, and the admin token
//! still an admin beside API tokens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

mod support;

const ADMIN: &str = "cli-access-admin-token";

fn serve(dir: &std::path::Path) -> support::Server {
    support::start(
        support::serve_command()
            .current_dir(dir)
            .env("SLUICE_ADMIN_TOKEN", ADMIN)
            .env("SLUICE_METRICS_TOKEN_REQUIRED", "true")
            .env("SLUICE_LOG", "warn")
            .stderr(Stdio::null()),
    )
    .0
}

/// One HTTP/1.1 request with the given Host and token; the status and body.
fn request(
    s: &support::Server,
    method: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(s.addr()).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn serve_applies_the_access_settings() {
    let dir = tempfile::tempdir().unwrap();
    let s = serve(dir.path());
    let here = s.addr().to_string();

    let (status, body) = request(&s, "GET", "/metrics", &here, None, "");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Unauthorized"), "{body}");
    let (status, body) = request(&s, "GET", "/metrics", &here, Some(ADMIN), "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sluice_up"), "{body}");

    // Listening on loopback: only loopback names are answered.
    let (status, body) = request(&s, "GET", "/v1/health", "evil.example:7878", None, "");
    assert_eq!(status, 421, "{body}");
    assert!(body.contains("HostNotAllowed"), "{body}");
    let (status, _) = request(&s, "GET", "/", "rebound.example", None, "");
    assert_eq!(status, 421);
    let (status, _) = request(&s, "GET", "/v1/health", "localhost:1234", None, "");
    assert_eq!(status, 200);

    // The admin token stays an admin; a viewer token made with it reads but does not change.
    let (status, body) = request(
        &s,
        "POST",
        "/v1/tokens",
        &here,
        Some(ADMIN),
        r#"{"name": "look", "role": "viewer"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let token = body
        .split("\"token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (status, body) = request(&s, "GET", "/v1/me", &here, Some(&token), "");
    assert_eq!(status, 200);
    assert!(body.contains("\"role\":\"viewer\""), "{body}");
    let (status, body) = request(
        &s,
        "PUT",
        "/v1/profile-schema",
        &here,
        Some(&token),
        r#"{"properties": []}"#,
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = request(&s, "GET", "/metrics", &here, Some(&token), "");
    assert_eq!(status, 200);
}
