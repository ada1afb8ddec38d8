//! The destination kinds Sluice knows, described for `GET /v1/connectors`: what each is called and which
//! settings fields its connection form has (name, label, type, default, whether required or secret, help).
//!
//! The descriptions are data, so the UI renders every form from them and the API, the CLI and the docs
//! stay in step with what each `config` module accepts. Kinds not built yet are listed (the UI shows
//! their cards) with `available: false`; [`crate::open`] refuses them with a clear message.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::{json, Value as Json};

/// One destination kind.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectorInfo {
    /// The `type` of a destination of this kind (`postgresql`, …).
    pub kind: &'static str,
    /// Display name (`PostgreSQL`, …).
    pub label: &'static str,
    pub description: &'static str,
    /// Whether this build can connect to it.
    pub available: bool,
    pub fields: Vec<FieldInfo>,
}

/// The kind of input a settings field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Integer,
    /// A secret typed on one line: write-only, answered as `********`.
    Password,
    /// Multi-line text, such as a PEM certificate or private key.
    Text,
    /// The TLS object: `{"mode": one of `options`, "ca_cert": "<PEM>"}`.
    Tls,
}

/// A choice offered by a field (the TLS modes).
#[derive(Debug, Clone, Serialize)]
pub struct FieldOption {
    pub value: &'static str,
    pub label: &'static str,
    pub help: &'static str,
}

/// One settings field of a connection form.
#[derive(Debug, Clone, Serialize)]
pub struct FieldInfo {
    pub name: &'static str,
    pub label: &'static str,
    #[serde(rename = "type")]
    pub ty: FieldType,
    /// The value used when the field is left out.
    #[serde(skip_serializing_if = "Json::is_null")]
    pub default: Json,
    /// The default when TLS is on, where it differs (ClickHouse serves native TLS on its own port).
    #[serde(skip_serializing_if = "Json::is_null")]
    pub tls_default: Json,
    pub required: bool,
    /// Accepted but never returned by the API.
    pub secret: bool,
    /// Rarely changed; the UI may fold it away.
    pub advanced: bool,
    pub help: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<FieldOption>,
}

impl FieldInfo {
    fn new(name: &'static str, label: &'static str, ty: FieldType, help: &'static str) -> Self {
        Self {
            name,
            label,
            ty,
            default: Json::Null,
            tls_default: Json::Null,
            required: false,
            secret: ty == FieldType::Password,
            advanced: false,
            help,
            options: Vec::new(),
        }
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn default(mut self, value: Json) -> Self {
        self.default = value;
        self
    }
    fn secret(mut self) -> Self {
        self.secret = true;
        self
    }
    fn advanced(mut self) -> Self {
        self.advanced = true;
        self
    }
}

/// Every destination kind, in the order the UI shows their cards.
pub fn connectors() -> &'static [ConnectorInfo] {
    static ALL: OnceLock<Vec<ConnectorInfo>> = OnceLock::new();
    ALL.get_or_init(build)
}

/// The description of one kind.
pub fn connector(kind: &str) -> Option<&'static ConnectorInfo> {
    connectors().iter().find(|c| c.kind == kind)
}

fn tls_field(default_mode: &'static str, modes: &[&'static str]) -> FieldInfo {
    let all = [
        FieldOption {
            value: "disable",
            label: "Disabled",
            help: "Plain TCP; use only on a trusted network.",
        },
        FieldOption {
            value: "prefer",
            label: "Preferred",
            help: "Encrypt when the server offers TLS, otherwise connect in plain TCP; the certificate is not verified.",
        },
        FieldOption {
            value: "require",
            label: "Required",
            help: "Always encrypt, without verifying the server's certificate.",
        },
        FieldOption {
            value: "verify",
            label: "Verify certificate",
            help: "Always encrypt, and check the server's certificate against the CA certificate given (or the public \
                   web CAs) and its host name.",
        },
    ];
    let mut field = FieldInfo::new(
        "tls",
        "TLS",
        FieldType::Tls,
        "Encryption of the connection: `mode`, and `ca_cert` (a PEM certificate of the CA that signed the server's \
         certificate) for the verify mode.",
    )
    .default(json!({ "mode": default_mode }));
    field.options = all
        .into_iter()
        .filter(|o| modes.contains(&o.value))
        .collect();
    field
}

fn host(help: &'static str) -> FieldInfo {
    FieldInfo::new("host", "Host", FieldType::String, help).required()
}

fn port(default: u16, help: &'static str) -> FieldInfo {
    FieldInfo::new("port", "Port", FieldType::Integer, help).default(json!(default))
}

fn username(help: &'static str) -> FieldInfo {
    FieldInfo::new("username", "Username", FieldType::String, help).required()
}

fn password(help: &'static str) -> FieldInfo {
    FieldInfo::new("password", "Password", FieldType::Password, help)
}

fn build() -> Vec<ConnectorInfo> {
    vec![
        ConnectorInfo {
            kind: "postgresql",
            label: "PostgreSQL",
            description: "PostgreSQL 11 or later: rows are loaded with COPY and upserted with INSERT … ON CONFLICT.",
            available: true,
            fields: vec![
                host("Hostname or IP address of the database."),
                port(5432, "Port used to connect (default is 5432)."),
                username("Username for authentication."),
                password("Password associated with the username."),
                FieldInfo::new("database", "Database name", FieldType::String, "Name of the database.").required(),
                FieldInfo::new("schema", "Schema", FieldType::String, "Name of the schema within the database.")
                    .default(json!("public")),
                tls_field("prefer", &["disable", "prefer", "require", "verify"]),
                FieldInfo::new(
                    "connect_timeout_secs",
                    "Connect timeout (seconds)",
                    FieldType::Integer,
                    "How long to wait for the server to accept a connection.",
                )
                .default(json!(10))
                .advanced(),
            ],
        },
        ConnectorInfo {
            kind: "mysql",
            label: "MySQL",
            description: "MySQL 5.7 or later, and MariaDB: rows are staged in a temporary table and upserted with INSERT … ON DUPLICATE KEY UPDATE.",
            available: true,
            fields: vec![
                host("Hostname or IP address of the database."),
                port(3306, "Port used to connect (default is 3306)."),
                username("Username for authentication."),
                password("Password associated with the username."),
                FieldInfo::new("database", "Database name", FieldType::String, "Name of the database.").required(),
                tls_field("prefer", &["disable", "prefer", "require", "verify"]),
            ],
        },
        ConnectorInfo {
            kind: "clickhouse",
            label: "ClickHouse",
            description: "ClickHouse 18.16 or later over its native protocol: rows are upserted as new versions \
                          into a ReplacingMergeTree table keyed (ORDER BY) by the key column, in large native blocks.",
            available: true,
            fields: vec![
                host("Hostname or IP address of the database."),
                FieldInfo {
                    tls_default: json!(9440),
                    ..port(9000, "Port of the native ClickHouse protocol (9000 by default; 9440 with TLS).")
                },
                FieldInfo::new("username", "Username", FieldType::String, "Username for authentication.")
                    .default(json!("default")),
                password("Password associated with the username."),
                FieldInfo::new("database", "Database name", FieldType::String, "Name of the database.").required(),
                tls_field("disable", &["disable", "require", "verify"]),
                FieldInfo::new(
                    "tls_server_name",
                    "TLS server name",
                    FieldType::String,
                    "The name the server's certificate must carry, when it is not the host (for example when \
                     connecting by IP address). With TLS, the certificate and this name are verified unless the \
                     mode is require.",
                )
                .advanced(),
                FieldInfo::new(
                    "connect_timeout_secs",
                    "Connect timeout (seconds)",
                    FieldType::Integer,
                    "How long to wait for the server to accept a connection.",
                )
                .default(json!(10))
                .advanced(),
            ],
        },
        ConnectorInfo {
            kind: "snowflake",
            label: "Snowflake",
            description: "Snowflake, with password or key-pair authentication: each batch is staged in a temporary \
                          table and written with one MERGE that updates only changed rows. Snowflake does not enforce \
                          primary keys, so Sluice keeps the key column unique itself (duplicates in a batch are \
                          merged, the last one wins).",
            available: true,
            fields: vec![
                FieldInfo::new(
                    "account",
                    "Account Identifier",
                    FieldType::String,
                    "Account ID of the Snowflake warehouse in the form <orgname>-<account>.",
                )
                .required(),
                FieldInfo::new(
                    "username",
                    "User Name",
                    FieldType::String,
                    "Username used to authenticate with Snowflake.",
                )
                .required(),
                FieldInfo::new(
                    "password",
                    "Password",
                    FieldType::Password,
                    "Password associated with the provided user name. Give either a password or a private key.",
                ),
                FieldInfo::new(
                    "private_key",
                    "Private key",
                    FieldType::Text,
                    "PEM private key for key-pair authentication, instead of a password (PKCS#8, encrypted PKCS#8 \
                     or PKCS#1 RSA key; its public key is set on the user with ALTER USER … SET RSA_PUBLIC_KEY).",
                )
                .secret(),
                FieldInfo::new(
                    "private_key_passphrase",
                    "Private key passphrase",
                    FieldType::Password,
                    "Passphrase of an encrypted private key.",
                ),
                FieldInfo::new("role", "Role", FieldType::String, "Role that will be used for accessing the data in Snowflake."),
                FieldInfo::new("database", "Database", FieldType::String, "Name of the database.").required(),
                FieldInfo::new("schema", "Schema", FieldType::String, "Name of the schema within the database.")
                    .default(json!("PUBLIC")),
                FieldInfo::new(
                    "warehouse",
                    "Warehouse",
                    FieldType::String,
                    "Name of the virtual warehouse to execute the query.",
                )
                .required(),
                FieldInfo::new(
                    "base_url",
                    "Server URL (testing only)",
                    FieldType::String,
                    "Connect here instead of https://<account>.snowflakecomputing.com — for tests against a local \
                     Snowflake-protocol server. Also settable for all destinations with SLUICE_SNOWFLAKE_BASE_URL.",
                )
                .advanced(),
            ],
        },
        ConnectorInfo {
            kind: "sqlite",
            label: "SQLite",
            description: "An embedded SQLite database file, for trying Sluice out and for local work.",
            available: true,
            fields: vec![FieldInfo::new(
                "path",
                "Database file",
                FieldType::String,
                "Path of the SQLite file on the machine running Sluice. A relative path is resolved from Sluice's \
                 working directory; the file and its folder are created when missing.",
            )
            .required()],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_described() {
        let kinds: Vec<_> = connectors().iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            ["postgresql", "mysql", "clickhouse", "snowflake", "sqlite"]
        );
        let pg = connector("postgresql").unwrap();
        assert_eq!(pg.label, "PostgreSQL");
        let names: Vec<_> = pg.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "host",
                "port",
                "username",
                "password",
                "database",
                "schema",
                "tls",
                "connect_timeout_secs"
            ]
        );
        let port = pg.fields.iter().find(|f| f.name == "port").unwrap();
        assert_eq!(port.default, json!(5432));
        assert!(
            pg.fields
                .iter()
                .find(|f| f.name == "password")
                .unwrap()
                .secret
        );
        assert_eq!(connector("mysql").unwrap().fields[1].default, json!(3306));
        let ch = connector("clickhouse").unwrap();
        assert!(ch.available);
        assert_eq!(ch.fields[1].default, json!(9000));
        assert_eq!(ch.fields[1].tls_default, json!(9440));
        let names: Vec<_> = ch.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "host",
                "port",
                "username",
                "password",
                "database",
                "tls",
                "tls_server_name",
                "connect_timeout_secs"
            ]
        );
        let tls = ch.fields.iter().find(|f| f.name == "tls").unwrap();
        let modes: Vec<_> = tls.options.iter().map(|o| o.value).collect();
        assert_eq!(modes, ["disable", "require", "verify"]);
        let sf = connector("snowflake").unwrap();
        assert!(
            sf.fields
                .iter()
                .find(|f| f.name == "private_key")
                .unwrap()
                .secret
        );
        assert_eq!(connector("sqlite").unwrap().fields[0].name, "path");
    }

    #[test]
    fn snowflake_is_available_with_its_fields() {
        let sf = connector("snowflake").unwrap();
        assert!(sf.available);
        assert!(sf.description.contains("does not enforce primary keys"));
        let names: Vec<_> = sf.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "account",
                "username",
                "password",
                "private_key",
                "private_key_passphrase",
                "role",
                "database",
                "schema",
                "warehouse",
                "base_url"
            ]
        );
        let secret: Vec<_> = sf
            .fields
            .iter()
            .filter(|f| f.secret)
            .map(|f| f.name)
            .collect();
        assert_eq!(
            secret,
            ["password", "private_key", "private_key_passphrase"]
        );
        // Every field is one the settings accept.
        let mut all = serde_json::Map::new();
        for f in &sf.fields {
            all.insert(f.name.into(), json!(null));
        }
        let errors =
            crate::snowflake::SnowflakeSettings::from_json(&Json::Object(all)).unwrap_err();
        assert!(!errors.to_string().contains("unknown setting"), "{errors}");
    }

    #[test]
    fn serializes_for_the_api() {
        let json = serde_json::to_value(connector("postgresql").unwrap()).unwrap();
        assert_eq!(json["fields"][1]["type"], "integer");
        assert_eq!(json["fields"][3]["type"], "password");
        assert_eq!(json["fields"][3]["secret"], true);
        assert_eq!(json["fields"][5]["default"], "public");
        assert_eq!(json["fields"][6]["type"], "tls");
        assert_eq!(json["fields"][6]["options"][3]["value"], "verify");
        assert!(json["fields"][0].get("default").is_none());
    }
}
