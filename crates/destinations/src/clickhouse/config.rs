//! ClickHouse destination settings: the connection form's fields (host, native port, username, password,
//! database, TLS) validated into a [`ClickHouseSettings`], every bad field reported by name. Also parses
//! `clickhouse://user:password@host:port/db?tls=verify` URLs for tests, benchmarks and the command line.
//!
//! ClickHouse's native TLS is not negotiated on the plain port: it listens on a port of its own (9440 by
//! convention). So the TLS modes are `disable` (port 9000 by default), `require` (encrypted, certificate
//! not checked) and `verify` (the default as soon as TLS is asked for: the chain is checked against
//! `ca_cert` or the public web CAs, and the certificate must name the host — or `tls_server_name`, for a
//! server reached by an address its certificate does not carry). `prefer` is refused: there is nothing
//! to fall back from.

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use super::dialect::validate_identifier;
use crate::settings::{self, percent_decode, validate_host, Field, SettingsReader, UrlParts};
pub use crate::settings::{TlsMode, TlsSettings};

/// The settings of a ClickHouse destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[
    settings::host(),
    settings::port(
        9000,
        "Port of the native ClickHouse protocol (9000 by default; 9440 with TLS).",
    )
    .tls_default(9440),
    Field::text(
        "username",
        "Username",
        "the username",
        "Username for authentication.",
    )
    // ClickHouse's own default account.
    .default_text("default"),
    settings::password(),
    settings::database(),
    settings::tls("disable", settings::TLS_MODES_OWN_PORT),
    Field::text(
        "tls_server_name",
        "TLS server name",
        "the TLS server name",
        "The name the server's certificate must carry, when it is not the host (for example when \
         connecting by IP address). With TLS, the certificate and this name are verified unless the \
         mode is require.",
    )
    .advanced(),
    settings::connect_timeout(),
];

/// The settings that decide where the password goes: changing any of them needs the password again (see
/// [`crate::check_secret_reuse`]). The TLS server name is among them because it decides which certificate
/// is accepted as the server's.
pub(crate) const SECRET_BINDING: &[&str] = &["host", "port", "username", "tls", "tls_server_name"];

/// Validated connection settings of a ClickHouse destination.
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseSettings {
    pub host: String,
    /// The native protocol's port.
    pub port: u16,
    pub username: String,
    /// Empty when the account has no password.
    pub password: String,
    /// The database where tables are looked up and written.
    pub database: String,
    pub tls: TlsSettings,
    /// The name the server's certificate must carry, when it is not `host`.
    pub tls_server_name: Option<String>,
    pub connect_timeout_secs: u64,
}

/// The password never appears in logs or panics.
impl fmt::Debug for ClickHouseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"********")
            .field("database", &self.database)
            .field("tls", &self.tls.mode)
            .field("tls_server_name", &self.tls_server_name)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

impl ClickHouseSettings {
    /// Reads and validates settings given as JSON; every problem is reported under its field name.
    pub fn from_json(json: &Json) -> Result<Self, FieldErrors> {
        let mut r = SettingsReader::new(json, FIELDS);
        let host = r.string("host");
        let choice = r.tls("tls");
        let mut tls = choice.settings;
        // Asking for TLS without saying how means the safe way: verify the certificate.
        if choice.given && !choice.mode_given {
            tls.mode = TlsMode::Verify;
        }
        let username = r.string("username");
        let password = r.secret("password").unwrap_or_default();
        let database = r.string("database");
        let server_name = r.string("tls_server_name");
        let timeout = r.integer("connect_timeout_secs");
        let port = r.integer_for("port", tls.mode != TlsMode::Disable);
        let mut errors = r.finish();
        if tls.mode == TlsMode::Prefer {
            errors.add(
                "tls.mode",
                "ClickHouse serves TLS on a port of its own (9440 by default), so there is \
                 nothing to prefer: choose disable, require or verify",
            );
        }
        if let Some(h) = &host {
            if let Err(e) = validate_host(h) {
                errors.add("host", e);
            }
        }
        if let Some(n) = &server_name {
            if let Err(e) = validate_host(n) {
                errors.add("tls_server_name", e);
            }
            if tls.mode == TlsMode::Disable {
                errors.add(
                    "tls_server_name",
                    "a TLS server name only matters with TLS: set the TLS mode to verify",
                );
            }
        }
        if let Some(d) = &database {
            if let Err(e) = validate_identifier(d, "the database name") {
                errors.add("database", e);
            }
        }
        match (host, port, username, database, timeout) {
            (Some(host), Some(port), Some(username), Some(database), Some(timeout))
                if errors.is_empty() =>
            {
                Ok(ClickHouseSettings {
                    host,
                    port: port as u16,
                    username,
                    password,
                    database,
                    tls,
                    tls_server_name: server_name,
                    connect_timeout_secs: timeout as u64,
                })
            }
            _ => Err(errors),
        }
    }

    /// Parses `clickhouse://user[:password]@host[:port]/database[?tls=…&tls_server_name=…&ca_cert_file=…]`
    /// (user and password percent-decoded; `[::1]` for IPv6 hosts; `ca_cert_file` is read from disk).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("clickhouse://")
            .ok_or("the URL must start with clickhouse://")?;
        let parts = UrlParts::split(rest)?;
        let mut json = parts.host_and_port()?;
        let UrlParts {
            user,
            password,
            database,
            query,
            ..
        } = parts;
        if !user.is_empty() {
            json.insert("username".into(), Json::from(user));
        }
        if let Some(pw) = password {
            json.insert("password".into(), Json::from(pw));
        }
        let database = percent_decode(database)?;
        let database = if database.is_empty() {
            "default".to_string()
        } else {
            database
        };
        json.insert("database".into(), Json::from(database));
        let mut tls = serde_json::Map::new();
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "tls" | "ssl-mode" | "sslmode" => {
                    tls.insert("mode".into(), Json::from(v));
                }
                "ca_cert_file" => {
                    let pem = std::fs::read_to_string(&v)
                        .map_err(|e| format!("cannot read the CA certificate {v}: {e}"))?;
                    tls.insert("ca_cert".into(), Json::from(pem));
                }
                "tls_server_name" => {
                    json.insert("tls_server_name".into(), Json::from(v));
                }
                "connect_timeout" => {
                    let secs: u64 = v
                        .parse()
                        .map_err(|_| format!("bad connect_timeout `{v}`"))?;
                    json.insert("connect_timeout_secs".into(), Json::from(secs));
                }
                _ => {}
            }
        }
        if !tls.is_empty() {
            json.insert("tls".into(), Json::Object(tls));
        }
        Self::from_json(&Json::Object(json)).map_err(|e| e.to_string())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The name the server's certificate is checked against.
    pub fn server_name(&self) -> &str {
        self.tls_server_name.as_deref().unwrap_or(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_form_fields_with_defaults() {
        let s = ClickHouseSettings::from_json(&json!({
            "host": "ch.example.com", "username": "app", "password": "pw", "database": "crm"
        }))
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.tls.mode, TlsMode::Disable);
        assert_eq!(s.password, "pw");
        assert!(!format!("{s:?}").contains("pw\""));
        let s = ClickHouseSettings::from_json(&json!({"host": "h", "database": "d"})).unwrap();
        assert_eq!(s.username, "default");
        assert_eq!(s.password, "");
    }

    #[test]
    fn tls_verifies_by_default_on_its_own_port() {
        let s = ClickHouseSettings::from_json(&json!({"host": "h", "database": "d", "tls": {}}))
            .unwrap();
        assert_eq!(s.tls.mode, TlsMode::Verify);
        assert_eq!(s.port, 9440);
        assert_eq!(s.server_name(), "h");
        let s = ClickHouseSettings::from_json(&json!({
            "host": "10.0.0.5", "database": "d", "tls": {"mode": "require"}, "port": 19440
        }))
        .unwrap();
        assert_eq!((s.tls.mode, s.port), (TlsMode::Require, 19440));
        let s = ClickHouseSettings::from_json(&json!({
            "host": "10.0.0.5", "database": "d", "tls": {"mode": "verify"}, "tls_server_name": "ch.internal"
        }))
        .unwrap();
        assert_eq!(s.server_name(), "ch.internal");
    }

    #[test]
    fn reports_every_bad_field() {
        let e = ClickHouseSettings::from_json(&json!({
            "port": 0, "tls": {"mode": "prefer"}, "database": "a`b\u{0}", "extra": 1
        }))
        .unwrap_err()
        .to_string();
        for field in ["host", "port", "tls.mode", "database", "extra"] {
            assert!(e.contains(field), "{field} missing from {e}");
        }
        let e = ClickHouseSettings::from_json(&json!({
            "host": "h", "database": "d", "tls_server_name": "x"
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("tls_server_name"), "{e}");
    }

    #[test]
    fn parses_urls() {
        let s = ClickHouseSettings::from_url("clickhouse://test:te%40st@127.0.0.1:59000/sluice")
            .unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.username.as_str(),
                s.password.as_str(),
                s.database.as_str()
            ),
            ("127.0.0.1", 59000, "test", "te@st", "sluice")
        );
        let s = ClickHouseSettings::from_url("clickhouse://[::1]?tls=require").unwrap();
        assert_eq!(
            (s.port, s.tls.mode, s.database.as_str()),
            (9440, TlsMode::Require, "default")
        );
        assert!(ClickHouseSettings::from_url("mysql://x@y/z").is_err());
    }
}
