//! MySQL / MariaDB destination settings: the connection form's fields (host, port, username, password,
//! database, TLS) validated into a [`MysqlSettings`] that cannot be wrong, every bad field reported by
//! name. Also parses `mysql://user:password@host:port/db?ssl-mode=…` URLs for tests and the command line.
//!
//! Authentication needs no setting: the driver answers whichever plugin the server asks for —
//! `mysql_native_password` (MariaDB's default) or `caching_sha2_password` (MySQL 8's default; its full
//! authentication goes over TLS, or RSA-encrypts the password with the server's key on plain TCP).

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use super::dialect::validate_identifier;
use crate::settings::{self, percent_decode, validate_host, Field, SettingsReader, UrlParts};
pub use crate::settings::{TlsMode, TlsSettings};

/// The settings of a MySQL or MariaDB destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[
    settings::host(),
    settings::port(3306, "Port used to connect (default is 3306)."),
    settings::username(),
    settings::password(),
    settings::database(),
    settings::tls("require", settings::TLS_MODES),
    settings::connect_timeout(),
];

/// The settings that decide where the password goes: changing any of them needs the password again (see
/// [`crate::check_secret_reuse`]). The database is not among them: the same server and user receive it
/// whichever database is named.
pub(crate) const SECRET_BINDING: &[&str] = &["host", "port", "username", "tls"];

/// Validated connection settings of a MySQL or MariaDB destination.
#[derive(Clone, PartialEq, Eq)]
pub struct MysqlSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    /// `None` when the account has no password.
    pub password: Option<String>,
    /// The database (schema) where tables are looked up and written.
    pub database: String,
    pub tls: TlsSettings,
    pub connect_timeout_secs: u64,
}

/// The password never appears in logs or panics.
impl fmt::Debug for MysqlSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MysqlSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("database", &self.database)
            .field("tls", &self.tls.mode)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .finish()
    }
}

impl MysqlSettings {
    /// Reads and validates settings given as JSON; every problem is reported under its field name.
    pub fn from_json(json: &Json) -> Result<Self, FieldErrors> {
        let mut r = SettingsReader::new(json, FIELDS);
        let host = r.string("host");
        let port = r.integer("port");
        let username = r.string("username");
        let password = r.secret("password").filter(|p| !p.is_empty());
        let database = r.string("database");
        let tls = r.tls("tls").settings;
        let timeout = r.integer("connect_timeout_secs");
        let mut errors = r.finish();
        if let Some(h) = &host {
            if let Err(e) = validate_host(h) {
                errors.add("host", e);
            }
        }
        if let Some(u) = &username {
            // MySQL 8 allows 32 characters, MariaDB 80.
            if u.chars().count() > 80 {
                errors.add("username", "the username is longer than 80 characters");
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
                Ok(MysqlSettings {
                    host,
                    port: port as u16,
                    username,
                    password,
                    database,
                    tls,
                    connect_timeout_secs: timeout as u64,
                })
            }
            _ => Err(errors),
        }
    }

    /// Parses `mysql://user[:password]@host[:port]/database[?ssl-mode=…&connect_timeout=…]` (user and
    /// password percent-decoded; `[::1]` for IPv6 hosts).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .ok_or("the URL must start with mysql:// or mariadb://")?;
        let parts = UrlParts::split(rest)?;
        let mut json = parts.host_and_port()?;
        let UrlParts {
            user,
            password,
            database,
            query,
            ..
        } = parts;
        let user = if user.is_empty() {
            "root".to_string()
        } else {
            user
        };
        json.insert("username".into(), Json::from(user));
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
                "ssl-mode" | "ssl_mode" | "sslmode" | "tls" => {
                    json.insert("tls".into(), serde_json::json!({ "mode": v }));
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
        Self::from_json(&Json::Object(json)).map_err(|e| e.to_string())
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_form_fields_with_defaults() {
        let s = MysqlSettings::from_json(&json!({
            "host": "db.example.com", "username": "app", "password": "pw", "database": "crm"
        }))
        .unwrap();
        assert_eq!(s.port, 3306);
        assert_eq!(s.tls.mode, TlsMode::Require);
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert!(!format!("{s:?}").contains("pw\""));
    }

    #[test]
    fn reports_every_bad_field() {
        let e = MysqlSettings::from_json(&json!({"port": 0, "tls": {"mode": "sometimes"}}))
            .unwrap_err()
            .to_string();
        for field in ["host", "username", "database", "port", "tls.mode"] {
            assert!(e.contains(field), "{field} missing from {e}");
        }
    }

    #[test]
    fn parses_urls() {
        let s = MysqlSettings::from_url("mysql://root@127.0.0.1:53306/test").unwrap();
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.username.as_str(),
                s.database.as_str()
            ),
            ("127.0.0.1", 53306, "root", "test")
        );
        assert_eq!(s.password, None);
        let s = MysqlSettings::from_url("mysql://u:p%40ss@[::1]/d?ssl-mode=require").unwrap();
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.host, "::1");
        assert_eq!(s.tls.mode, TlsMode::Require);
        assert!(MysqlSettings::from_url("postgres://x@y/z").is_err());
    }
}
