//! The listener of `sluice serve`, through real sockets against the binary: the header-read timeout, the
//! idle timeout, the connection limit, TLS with a certificate made here, and a shutdown that still ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use support::BIN;

fn serve(dir: &Path, extra: &[&str]) -> support::Server {
    let (server, lines) = support::start(
        support::serve_command()
            .args(extra)
            .env("SLUICE_DATA_DIR", dir.join("data"))
            .env("SLUICE_ADMIN_TOKEN", "listener-test-token")
            .env("SLUICE_LOG", "warn")
            .stderr(Stdio::inherit()),
    );
    support::drain(lines);
    server
}

const HEALTH: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Reads until the connection is closed, or `within` passes; whether it closed, and when.
fn wait_closed(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// The head and body of one answer read from `s`, waiting at most `within`.
fn read_answer(s: &mut TcpStream, within: Duration) -> Option<String> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                    return Some(text.into_owned());
                }
            }
            Err(_) => {}
        }
    }
    (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn partial_headers_are_cut_off_and_connections_over_the_limit_wait_while_health_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(
        dir.path(),
        &[
            "--header-read-timeout-seconds",
            "1",
            "--idle-timeout-seconds",
            "30",
            "--max-connections",
            "4",
        ],
    );
    // Four clients take every slot and never finish their headers.
    let mut slow: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr()).unwrap();
            s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: loc")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let mut waiting = TcpStream::connect(server.addr()).unwrap();
    waiting.write_all(HEALTH).unwrap();
    // Over the limit, it is not served while the slow ones hold their slots...
    waiting
        .set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        waiting.read(&mut buf).is_err(),
        "a fifth connection was served while four held every slot"
    );
    // ...and is once the timeout has closed them.
    let answer = read_answer(&mut waiting, Duration::from_secs(10)).expect("health answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"ok""#), "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "answered after {waited:?}"
    );
    for s in &mut slow {
        let closed = wait_closed(s, Duration::from_secs(5));
        assert!(
            closed.is_some(),
            "a connection with partial headers is still open"
        );
    }
    // The server goes on answering, on new connections too.
    let mut again = TcpStream::connect(server.addr()).unwrap();
    again.write_all(HEALTH).unwrap();
    let answer = read_answer(&mut again, Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout_and_shutdown_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &[
            "--header-read-timeout-seconds",
            "5",
            "--idle-timeout-seconds",
            "2",
        ],
    );
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.write_all(HEALTH).unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Kept alive: a second request on the same connection is answered.
    s.write_all(HEALTH).unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(5)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let closed = wait_closed(&mut s, Duration::from_secs(10)).expect("closed when idle");
    assert!(
        closed >= Duration::from_millis(1500),
        "closed after {closed:?}, before the idle timeout"
    );

    // SIGTERM with a connection open ends the process, and cleanly.
    let mut open = TcpStream::connect(server.addr()).unwrap();
    open.write_all(b"GET /v1/health HTTP/1.1\r\n").unwrap();
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the server did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made with the openssl command.
fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        // A server certificate, not a CA: webpki refuses a CA as the end of the chain.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command makes the test certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn tls_on_the_listener_with_a_certificate_and_key_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let server = serve(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(server.scheme(), "https");

    // A client that trusts exactly this certificate gets its answer over TLS.
    let pem = std::fs::read(&cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
        tls.write_all(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"ok""#), "{answer}");

    // The CLI's own client reaches it over `https` once told to trust the certificate, and refuses it
    // otherwise (the certificate is self-signed).
    let port = server.addr().rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}");
    let cli = |extra: &[&str]| {
        Command::new(BIN)
            .args([
                "destinations",
                "list",
                "--url",
                &url,
                "--token",
                "listener-test-token",
            ])
            .args(extra)
            .env_remove("SLUICE_CA_CERT")
            .output()
            .unwrap()
    };
    let trusted = cli(&["--ca-cert", cert.to_str().unwrap()]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = cli(&[]);
    assert!(!untrusted.status.success());
    let not_pem = cli(&["--ca-cert", key.to_str().unwrap()]);
    assert!(!not_pem.status.success());
    assert!(
        String::from_utf8_lossy(&not_pem.stderr).contains("--ca-cert"),
        "{}",
        String::from_utf8_lossy(&not_pem.stderr)
    );

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(server.addr()).unwrap();
    plain.write_all(HEALTH).unwrap();
    let got = read_answer(&mut plain, Duration::from_secs(3)).unwrap_or_default();
    assert!(!got.starts_with("HTTP/1.1 200"), "{got}");
}

#[test]
fn tls_settings_are_checked_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _key) = self_signed(dir.path());
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("SLUICE_DATA_DIR", dir.path().join("data"))
            .env("SLUICE_ADMIN_TOKEN", "listener-test-token")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&["--tls-cert", cert.to_str().unwrap()]);
    assert!(err.contains("SLUICE_TLS_KEY"), "{err}");
    let err = run(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        cert.to_str().unwrap(),
    ]);
    assert!(err.contains("SLUICE_TLS_KEY (--tls-key)"), "{err}");
    let err = run(&["--max-connections", "0"]);
    assert!(err.contains("SLUICE_MAX_CONNECTIONS"), "{err}");
}
