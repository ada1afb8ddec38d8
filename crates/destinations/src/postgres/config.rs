//! PostgreSQL destination settings: what the connection form, the API and the YAML file give, validated
//! into a [`PostgresSettings`] that cannot be wrong, with every bad field reported by its name.
//!
//! Also parses `postgres://user:password@host:port/db?sslmode=…` URLs (tests and command-line use), so
//! one type describes a connection whichever way it was given.

use std::fmt;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use super::dialect::validate_identifier;
use crate::settings::{self, Field, SettingsReader, UrlParts};
pub use crate::settings::{parse_pem_certificates, TlsMode, TlsSettings};
pub(crate) use crate::settings::{percent_decode, validate_host};

/// The settings of a PostgreSQL destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[
    settings::host(),
    settings::port(5432, "Port used to connect (default is 5432)."),
    settings::username(),
    settings::password(),
    settings::database(),
    Field::text(
        "schema",
        "Schema",
        "the schema",
        "Name of the schema within the database.",
    )
    .default_text("public"),
    settings::tls("require", settings::TLS_MODES),
    settings::connect_timeout(),
];

/// The settings that decide where the password goes: changing any of them needs the password again (see
/// [`crate::check_secret_reuse`]). The database and schema are not among them: the same server and user
/// receive it whichever database is named.
pub(crate) const SECRET_BINDING: &[&str] = &["host", "port", "username", "tls"];

/// Validated connection settings of a PostgreSQL destination.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub host: String,
    pub port: u16,
    pub username: String,
    /// Empty when the server does not ask for one (trust or certificate authentication).
    pub password: Option<String>,
    pub database: String,
    /// Where tables are looked up and written.
    pub schema: String,
    pub tls: TlsSettings,
    pub connect_timeout_secs: u64,
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
        let mut r = SettingsReader::new(json, FIELDS);
        let host = r.string("host");
        let port = r.integer("port");
        let username = r.string("username");
        let password = r.secret("password").filter(|p| !p.is_empty());
        let database = r.string("database");
        let schema = r.string("schema");
        let tls = r.tls("tls").settings;
        let timeout = r.integer("connect_timeout_secs");
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
        if let Some(s) = &schema {
            if let Err(e) = validate_identifier(s, "the schema name") {
                errors.add("schema", e);
            }
        }
        let settings = match (host, port, username, database, schema, timeout) {
            (
                Some(host),
                Some(port),
                Some(username),
                Some(database),
                Some(schema),
                Some(timeout),
            ) => Some(PostgresSettings {
                host,
                port: port as u16,
                username,
                password,
                database,
                schema,
                tls,
                connect_timeout_secs: timeout as u64,
            }),
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
        assert_eq!(s.tls.mode, TlsMode::Require);
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
