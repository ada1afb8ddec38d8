//! TLS for the PostgreSQL stores, with libpq's meaning of the URL's `sslmode`, since the URL is a libpq one:
//!
//! - `disable`: plain TCP;
//! - `prefer` (the default): TLS when the server offers it, plain otherwise;
//! - `require`: TLS or no connection.
//!
//! As in libpq, the server certificate is verified only when a root certificate is given — here through
//! libpq's own `PGSSLROOTCERT` variable (a PEM file) — and otherwise the channel is encrypted without
//! authenticating the server. Handshake signatures are checked either way.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use tokio_postgres::config::SslMode;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{Result, StoreError};

/// libpq's variable naming the PEM file of the root certificates that verify the server.
pub const ROOT_CERT_VAR: &str = "PGSSLROOTCERT";

/// The TLS connector for `config`, or `None` for plain connections; `root_cert` is the PEM file that
/// verifies the server (the value of [`ROOT_CERT_VAR`]).
pub(crate) fn connector(
    config: &Config,
    root_cert: Option<&std::ffi::OsStr>,
) -> Result<Option<MakeRustlsConnect>> {
    if config.get_ssl_mode() == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS setup failed: {e}")))?;
    let client = match root_cert.filter(|v| !v.is_empty()) {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Backend(format!(
                    "cannot read {ROOT_CERT_VAR} ({}): {e}",
                    path.to_string_lossy()
                ))
            })?;
            let mut roots = RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    StoreError::Backend(format!("{ROOT_CERT_VAR} is not valid PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Backend(format!(
                        "a certificate in {ROOT_CERT_VAR} is not usable: {e}"
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(StoreError::Backend(format!(
                    "{ROOT_CERT_VAR} holds no certificate"
                )));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(sluice_tls::EncryptOnly::new(provider))
            .with_no_client_auth(),
    };
    Ok(Some(MakeRustlsConnect::new(client)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> Config {
        url.parse().unwrap()
    }

    #[test]
    fn sslmode_chooses_the_connector() {
        assert!(
            connector(&config("postgres://u@h/db?sslmode=disable"), None)
                .unwrap()
                .is_none()
        );
        assert!(
            connector(&config("postgres://u@h/db"), None)
                .unwrap()
                .is_some(),
            "prefer tries TLS"
        );
        assert!(
            connector(&config("postgres://u@h/db?sslmode=require"), None)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_bad_root_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let require = config("postgres://u@h/db?sslmode=require");
        let missing = dir.path().join("missing.pem");
        let err = connector(&require, Some(missing.as_os_str()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(ROOT_CERT_VAR) && err.contains("missing.pem"),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here").unwrap();
        let err = connector(&require, Some(empty.as_os_str()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
