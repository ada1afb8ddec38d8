//! Snowflake destination settings: the connection form's fields (account identifier, user name, password
//! or key pair, role, database, schema, warehouse) validated into a [`SnowflakeSettings`], every bad field
//! reported by name.
//!
//! The account identifier `<orgname>-<account>` gives the host `<orgname>-<account>.snowflakecomputing.com`.
//! For tests only, `base_url` (or the `SLUICE_SNOWFLAKE_BASE_URL` environment variable) points the client
//! at another server, such as the local Snowflake-protocol server of the test suite.

use std::fmt;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use super::dialect::validate_identifier;
use crate::settings::{Field, SettingsReader};

/// The settings of a Snowflake destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[
    Field::text(
        "account",
        "Account Identifier",
        "the account identifier",
        "Account ID of the Snowflake warehouse in the form <orgname>-<account>.",
    )
    .required(),
    Field::text(
        "username",
        "User Name",
        "the user name",
        "Username used to authenticate with Snowflake.",
    )
    .required(),
    Field::password(
        "password",
        "Password",
        "the password",
        "Password associated with the provided user name. Give either a password or a private key.",
    ),
    Field::long_text(
        "private_key",
        "Private key",
        "the private key",
        "PEM private key for key-pair authentication, instead of a password (PKCS#8, encrypted PKCS#8 \
         or PKCS#1 RSA key; its public key is set on the user with ALTER USER … SET RSA_PUBLIC_KEY).",
    )
    .secret(),
    Field::password(
        "private_key_passphrase",
        "Private key passphrase",
        "the private key passphrase",
        "Passphrase of an encrypted private key.",
    ),
    Field::text(
        "role",
        "Role",
        "the role",
        "Role that will be used for accessing the data in Snowflake.",
    ),
    Field::text(
        "database",
        "Database",
        "the database name",
        "Name of the database.",
    )
    .required(),
    Field::text(
        "schema",
        "Schema",
        "the schema name",
        "Name of the schema within the database.",
    )
    .default_text("PUBLIC"),
    Field::text(
        "warehouse",
        "Warehouse",
        "the warehouse",
        "Name of the virtual warehouse to execute the query.",
    )
    .required(),
    Field::text(
        "base_url",
        "Server URL (testing only)",
        "the base URL",
        "Connect here instead of https://<account>.snowflakecomputing.com — for tests against a local \
         Snowflake-protocol server. Also settable for all destinations with SLUICE_SNOWFLAKE_BASE_URL.",
    )
    .advanced(),
];

/// The settings that decide where the password or private key goes: the account names the server
/// (`<account>.snowflakecomputing.com`) unless the base URL replaces it. Changing any of them needs the
/// secrets again (see [`crate::check_secret_reuse`]); role, database, schema and warehouse are chosen
/// after login, on the same server.
pub(crate) const SECRET_BINDING: &[&str] = &["account", "username", "base_url"];

/// The environment variable that overrides the server URL of every Snowflake destination (tests only).
pub const BASE_URL_ENV: &str = "SLUICE_SNOWFLAKE_BASE_URL";

/// How the user proves who they are.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Password(String),
    /// Key-pair authentication: a PEM private key (PKCS#8, encrypted PKCS#8 or PKCS#1) and the passphrase of
    /// an encrypted one.
    KeyPair {
        private_key_pem: String,
        passphrase: Option<String>,
    },
}

/// Secrets never appear in logs or panics.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credentials::Password(_) => "Password(********)",
            Credentials::KeyPair { .. } => "KeyPair(********)",
        })
    }
}

/// Validated connection settings of a Snowflake destination.
#[derive(Clone, PartialEq, Eq)]
pub struct SnowflakeSettings {
    /// `<orgname>-<account>`, as typed (upper/lower case kept).
    pub account: String,
    pub username: String,
    pub credentials: Credentials,
    pub role: Option<String>,
    pub database: String,
    pub schema: String,
    pub warehouse: String,
    /// Where to connect instead of `https://<account>.snowflakecomputing.com` (tests only).
    pub base_url: Option<String>,
}

/// Secrets never appear in logs or panics.
impl fmt::Debug for SnowflakeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.credentials {
            Credentials::Password(_) => "password",
            Credentials::KeyPair { .. } => "key pair",
        };
        f.debug_struct("SnowflakeSettings")
            .field("account", &self.account)
            .field("username", &self.username)
            .field("auth", &auth)
            .field("role", &self.role)
            .field("database", &self.database)
            .field("schema", &self.schema)
            .field("warehouse", &self.warehouse)
            .field("base_url", &self.base_url)
            .finish()
    }
}

/// Checks an account identifier: `<orgname>-<account>` in letters, digits and `_`; the legacy locator
/// forms with dots (`xy12345.eu-west-1`) are accepted too, since they also name a host.
pub fn validate_account(account: &str) -> Result<(), String> {
    if account.contains("snowflakecomputing") || account.contains("://") {
        return Err(
            "the account identifier is `<orgname>-<account>` (as in <orgname>-<account>.snowflakecomputing.com), \
             not a URL"
                .into(),
        );
    }
    if !account
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(
            "the account identifier may only hold letters, digits, `-`, `_` and `.`".into(),
        );
    }
    if !account.contains('-') && !account.contains('.') {
        return Err(format!(
            "the account identifier must be `<orgname>-<account>` (find it under Admin › Accounts); `{account}` has no `-`"
        ));
    }
    Ok(())
}

impl SnowflakeSettings {
    /// Reads and validates settings given as JSON; every problem is reported under its field name.
    pub fn from_json(json: &Json) -> Result<Self, FieldErrors> {
        Self::from_json_with_env(json, std::env::var(BASE_URL_ENV).ok())
    }

    /// [`Self::from_json`] with the value of the base-URL environment variable given.
    pub fn from_json_with_env(
        json: &Json,
        env_base_url: Option<String>,
    ) -> Result<Self, FieldErrors> {
        let mut r = SettingsReader::new(json, FIELDS);
        let account = r.string("account");
        let username = r.string("username");
        let password = r.secret("password").filter(|p| !p.is_empty());
        let private_key = r.secret("private_key").filter(|p| !p.trim().is_empty());
        let passphrase = r.secret("private_key_passphrase").filter(|p| !p.is_empty());
        let role = r.string("role");
        let database = r.string("database");
        let schema = r.string("schema");
        let warehouse = r.string("warehouse");
        let base_url = r
            .string("base_url")
            .or(env_base_url.filter(|u| !u.trim().is_empty()));
        let mut errors = r.finish();
        if let Some(a) = &account {
            if let Err(e) = validate_account(a) {
                errors.add("account", e);
            }
        }
        for (field, value, what) in [
            ("role", role.as_deref(), "the role"),
            ("database", database.as_deref(), "the database name"),
            ("schema", schema.as_deref(), "the schema name"),
            ("warehouse", warehouse.as_deref(), "the warehouse"),
        ] {
            if let Some(v) = value {
                if let Err(e) = validate_identifier(v, what) {
                    errors.add(field, e);
                }
            }
        }
        if let Some(u) = &base_url {
            let u = u.trim_end_matches('/');
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() < 10 {
                errors.add(
                    "base_url",
                    "the base URL must start with http:// or https://",
                );
            }
        }
        let credentials = match (password, private_key) {
            (Some(_), Some(_)) => {
                errors.add(
                    "private_key",
                    "give either a password or a private key, not both",
                );
                None
            }
            (Some(p), None) => Some(Credentials::Password(p)),
            (None, Some(pem)) => {
                if !pem.contains("-----BEGIN") || !pem.contains("PRIVATE KEY-----") {
                    errors.add(
                        "private_key",
                        "the private key must be in PEM form (-----BEGIN PRIVATE KEY----- …)",
                    );
                    None
                } else if let Err(e) = super::auth::private_key_der(&pem, passphrase.as_deref()) {
                    errors.add(
                        if e.contains("passphrase") {
                            "private_key_passphrase"
                        } else {
                            "private_key"
                        },
                        e,
                    );
                    None
                } else {
                    Some(Credentials::KeyPair {
                        private_key_pem: pem,
                        passphrase,
                    })
                }
            }
            (None, None) => {
                errors.add(
                    "password",
                    "give a password, or a private key for key-pair authentication",
                );
                None
            }
        };
        match (account, username, database, schema, warehouse, credentials) {
            (
                Some(account),
                Some(username),
                Some(database),
                Some(schema),
                Some(warehouse),
                Some(credentials),
            ) if errors.is_empty() => Ok(SnowflakeSettings {
                account,
                username,
                credentials,
                role,
                database,
                schema,
                warehouse,
                base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
            }),
            _ => Err(errors),
        }
    }

    /// The server's URL, without a trailing slash.
    pub fn url(&self) -> String {
        match &self.base_url {
            Some(u) => u.clone(),
            None => format!(
                "https://{}.snowflakecomputing.com",
                self.account.to_ascii_lowercase()
            ),
        }
    }

    /// The account name as it appears in key-pair JWTs: the identifier upper-cased, with the legacy
    /// region/cloud suffix (after the first `.`) removed.
    pub fn jwt_account(&self) -> String {
        self.account
            .split('.')
            .next()
            .unwrap_or(&self.account)
            .to_ascii_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Json) -> Result<SnowflakeSettings, FieldErrors> {
        SnowflakeSettings::from_json_with_env(&v, None)
    }

    #[test]
    fn reads_the_form_fields_with_defaults() {
        let s = read(json!({
            "account": "myorg-acct1", "username": "LOADER", "password": "pw", "database": "CRM",
            "warehouse": "LOAD_WH", "role": "SLUICE"
        }))
        .unwrap();
        assert_eq!(s.schema, "PUBLIC");
        assert_eq!(s.url(), "https://myorg-acct1.snowflakecomputing.com");
        assert_eq!(s.jwt_account(), "MYORG-ACCT1");
        assert_eq!(s.credentials, Credentials::Password("pw".into()));
        let debug = format!("{s:?}");
        assert!(!debug.contains("pw\""), "{debug}");
    }

    #[test]
    fn reports_every_bad_field() {
        let e =
            read(json!({"account": "https://x.snowflakecomputing.com", "schema": "", "extra": 1}))
                .unwrap_err()
                .to_string();
        for field in [
            "account",
            "username",
            "database",
            "warehouse",
            "password",
            "extra",
        ] {
            assert!(e.contains(field), "{field} missing from {e}");
        }
        let e = read(json!({
            "account": "org-a", "username": "u", "password": "p", "private_key": "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----",
            "database": "d", "warehouse": "w"
        }))
        .unwrap_err();
        assert!(e.get("private_key").unwrap()[0].contains("not both"));
        let e = read(json!({
            "account": "orgacct", "username": "u", "private_key": "not a key", "database": "d", "warehouse": "w"
        }))
        .unwrap_err();
        assert!(e.get("account").unwrap()[0].contains("<orgname>-<account>"));
        assert!(e.get("private_key").unwrap()[0].contains("PEM"));
    }

    #[test]
    fn base_url_override() {
        let base = json!({
            "account": "org-a", "username": "u", "password": "p", "database": "d", "warehouse": "w"
        });
        let s =
            SnowflakeSettings::from_json_with_env(&base, Some("http://127.0.0.1:58085/".into()))
                .unwrap();
        assert_eq!(s.url(), "http://127.0.0.1:58085");
        let mut with_field = base.clone();
        with_field["base_url"] = json!("http://localhost:1234");
        let s = SnowflakeSettings::from_json_with_env(&with_field, Some("http://other:1".into()))
            .unwrap();
        assert_eq!(s.url(), "http://localhost:1234");
        with_field["base_url"] = json!("ftp://x");
        assert!(read(with_field).unwrap_err().get("base_url").is_some());
    }
}
