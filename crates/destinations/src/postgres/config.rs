//! PostgreSQL destination settings: what the connection form, the API and the YAML file give, validated
//! into a [`PostgresSettings`] that cannot be wrong, with every bad field reported by its name.
//!
//! Also parses `postgres://user:password@host:port/db?sslmode=…` URLs (tests and command-line use), so
//! one type describes a connection whichever way it was given.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;
use sluice_core::FieldErrors;

use super::dialect::validate_identifier;
use crate::settings::{SettingsReader, UrlParts};

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_SCHEMA: &str = "public";
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;

/// How the connection is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it (without verifying the certificate), plain TCP otherwise — what
    /// `libpq` does by default, so a connection that works in `psql` works here.
    #[default]
    Prefer,
    /// Always TLS, certificate not verified.
    Require,
    /// Always TLS; the certificate chain is checked against `ca_cert` (or the public web CAs) and must name
    /// the host.
    Verify,
}

impl TlsMode {
    fn parse(text: &str) -> Option<TlsMode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "disable" | "disabled" | "off" => TlsMode::Disable,
            "prefer" | "allow" => TlsMode::Prefer,
            "require" | "required" => TlsMode::Require,
            "verify" | "verify-full" | "verify_full" | "verify-ca" => TlsMode::Verify,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    #[serde(default)]
    pub mode: TlsMode,
    /// PEM certificate(s) of the CA that signed the server's certificate (verify mode).
    #[serde(default)]
    pub ca_cert: Option<String>,
}

/// Validated connection settings of a PostgreSQL destination.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub username: String,
    /// Empty when the server does not ask for one (trust or certificate authentication).
    #[serde(default)]
    pub password: Option<String>,
    pub database: String,
    /// Where tables are looked up and written.
    #[serde(default = "default_schema")]
    pub schema: String,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u64,
}

fn default_port() -> u16 {
    DEFAULT_PORT
}
fn default_schema() -> String {
    DEFAULT_SCHEMA.to_string()
}
fn default_timeout() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

/// The password never appears in logs or panics.
impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("tls", &self.tls.mode)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

impl PostgresSettings {
    /// Reads and validates settings given as JSON; every problem is reported under its field name
    /// (`port`, `tls.ca_cert`, …), unknown fields included.
    pub fn from_json(json: &Json) -> Result<Self, FieldErrors> {
        let mut r = SettingsReader::new(json);
        let host = r.string("host", "the host", true);
        let port = r.integer("port", "the port", 1, 65535, DEFAULT_PORT as i64);
        let username = r.string("username", "the username", true);
        let password = r
            .secret("password", "the password")
            .filter(|p| !p.is_empty());
        let database = r.string("database", "the database name", true);
        let schema = r
            .string("schema", "the schema", false)
            .unwrap_or_else(default_schema);
        let tls = r.raw("tls");
        let timeout = r.integer(
            "connect_timeout_secs",
            "the connect timeout",
            1,
            300,
            DEFAULT_CONNECT_TIMEOUT_SECS as i64,
        );
        let mut errors = r.finish();

        if let Some(h) = &host {
            if let Err(e) = validate_host(h) {
                errors.add("host", e);
            }
        }
        if let Some(u) = &username {
            if u.len() > 63 {
                errors.add("username", "the username is longer than 63 bytes");
            }
        }
        if let Some(d) = &database {
            if let Err(e) = validate_identifier(d, "the database name") {
                errors.add("database", e);
            }
        }
        if let Err(e) = validate_identifier(&schema, "the schema name") {
            errors.add("schema", e);
        }
        let tls = match tls {
            None => TlsSettings::default(),
            Some(json) => read_tls(json, &mut errors),
        };

        let settings = match (host, port, username, database, timeout) {
            (Some(host), Some(port), Some(username), Some(database), Some(timeout)) => {
                Some(PostgresSettings {
                    host,
                    port: port as u16,
                    username,
                    password,
                    database,
                    schema,
                    tls,
                    connect_timeout_secs: timeout as u64,
                })
            }
            _ => None,
        };
        match settings {
            Some(s) if errors.is_empty() => Ok(s),
            _ => Err(errors),
        }
    }

    /// Parses `postgres[ql]://user[:password]@host[:port]/database[?sslmode=…&schema=…&connect_timeout=…]`
    /// (user and password percent-decoded; `[::1]` for IPv6 hosts).
    pub fn from_url(url: &str) -> Result<Self, String> {
        Self::from_json(&Self::json_from_url(url)?).map_err(|e| e.to_string())
    }

    /// The settings JSON (as the API takes it) of a `postgres://` URL, unvalidated; see [`Self::from_url`].
    pub fn json_from_url(url: &str) -> Result<Json, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or("the URL must start with postgres:// or postgresql://")?;
        let UrlParts {
            user,
            password,
            host,
            port,
            database,
            query,
        } = UrlParts::split(rest)?;
        let mut json = serde_json::Map::new();
        json.insert(
            "host".into(),
            Json::from(if host.is_empty() {
                "localhost".to_string()
            } else {
                host
            }),
        );
        if let Some(p) = port {
            json.insert("port".into(), Json::from(p));
        }
        json.insert(
            "username".into(),
            Json::from(if user.is_empty() {
                "postgres".to_string()
            } else {
                user
            }),
        );
        if let Some(pw) = password {
            json.insert("password".into(), Json::from(pw));
        }
        json.insert("database".into(), Json::from(percent_decode(database)?));
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "sslmode" => {
                    json.insert("tls".into(), serde_json::json!({ "mode": v }));
                }
                "schema" | "currentSchema" => {
                    json.insert("schema".into(), Json::from(v));
                }
                "connect_timeout" => {
                    json.insert("connect_timeout_secs".into(), Json::from(v));
                }
                // Other libpq parameters (application_name, …) have no meaning for a destination.
                _ => {}
            }
        }
        Ok(Json::Object(json))
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

pub(crate) fn read_tls(json: &Json, errors: &mut FieldErrors) -> TlsSettings {
    // A bare mode string is accepted as a shorthand for `{"mode": …}`.
    if let Json::String(mode) = json {
        return match TlsMode::parse(mode) {
            Some(mode) => TlsSettings {
                mode,
                ca_cert: None,
            },
            None => {
                errors.add("tls.mode", tls_mode_message(mode));
                TlsSettings::default()
            }
        };
    }
    let mut r = SettingsReader::new(json);
    let mode = r.string("mode", "the TLS mode", false);
    let ca_cert = r
        .secret("ca_cert", "the CA certificate")
        .filter(|c| !c.trim().is_empty());
    let mut tls = TlsSettings {
        mode: TlsMode::default(),
        ca_cert,
    };
    let nested = r.finish();
    errors.merge_prefixed("tls", nested);
    if let Some(m) = mode {
        match TlsMode::parse(&m) {
            Some(mode) => tls.mode = mode,
            None => errors.add("tls.mode", tls_mode_message(&m)),
        }
    }
    if let Some(pem) = &tls.ca_cert {
        if let Err(e) = parse_pem_certificates(pem) {
            errors.add("tls.ca_cert", e);
        }
    }
    tls
}

fn tls_mode_message(given: &str) -> String {
    format!("unknown TLS mode `{given}`: expected disable, prefer, require or verify")
}

/// The DER certificates of a PEM text; an error when it holds none or a block does not parse.
pub fn parse_pem_certificates(
    pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    let mut reader = std::io::BufReader::new(pem.as_bytes());
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the CA certificate is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the CA certificate holds no `-----BEGIN CERTIFICATE-----` block".into());
    }
    Ok(certs)
}

pub(crate) fn validate_host(host: &str) -> Result<(), String> {
    if host.len() > 253 {
        return Err("the host is longer than 253 characters".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@' || c.is_control())
    {
        return Err("the host must be a host name or an IP address".into());
    }
    Ok(())
}

pub(crate) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or("truncated %-escape in the URL")?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("bad %-escape `%{hex}` in the URL"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URL does not decode to UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_settings_take_defaults() {
        let s = PostgresSettings::from_json(&json!({
            "host": "db.example.com", "username": "sluice", "password": "pw", "database": "crm"
        }))
        .unwrap();
        assert_eq!(s.port, 5432);
        assert_eq!(s.schema, "public");
        assert_eq!(s.tls.mode, TlsMode::Prefer);
        assert_eq!(s.connect_timeout_secs, 10);
        assert!(
            !format!("{s:?}").contains("pw\""),
            "the password must not be in Debug output"
        );
    }

    #[test]
    fn every_bad_field_is_reported() {
        let e = PostgresSettings::from_json(&json!({
            "host": "", "port": 99999, "username": 5, "database": "crm", "schema": "x".repeat(80),
            "tls": {"mode": "sometimes", "ca_cert": "not a pem", "foo": 1}, "colour": "red"
        }))
        .unwrap_err();
        for field in [
            "host",
            "port",
            "username",
            "schema",
            "tls.mode",
            "tls.ca_cert",
            "tls.foo",
            "colour",
        ] {
            assert!(e.get(field).is_some(), "no error for {field}: {e}");
        }
    }

    #[test]
    fn tls_forms() {
        let base = json!({"host": "h", "username": "u", "database": "d"});
        let mut with = base.clone();
        with["tls"] = json!("require");
        assert_eq!(
            PostgresSettings::from_json(&with).unwrap().tls.mode,
            TlsMode::Require
        );
        with["tls"] = json!({"mode": "verify"});
        assert_eq!(
            PostgresSettings::from_json(&with).unwrap().tls.mode,
            TlsMode::Verify
        );
        with["tls"] = json!({"mode": "disable"});
        assert_eq!(
            PostgresSettings::from_json(&with).unwrap().tls.mode,
            TlsMode::Disable
        );
    }

    #[test]
    fn urls() {
        let s = PostgresSettings::from_url("postgres://postgres@127.0.0.1:5432/test").unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.username.as_str(),
                s.database.as_str()
            ),
            ("127.0.0.1", 5432, "postgres", "test")
        );
        assert_eq!(s.password, None);
        let s = PostgresSettings::from_url(
            "postgresql://u%40x:p%3Aw@[::1]/db?sslmode=disable&schema=crm",
        )
        .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.username.as_str()),
            ("::1", 5432, "u@x")
        );
        assert_eq!(s.password.as_deref(), Some("p:w"));
        assert_eq!(s.schema, "crm");
        assert_eq!(s.tls.mode, TlsMode::Disable);
        assert!(PostgresSettings::from_url("mysql://x").is_err());
    }
}
