//! The destination kinds Sluice knows, described for `GET /v1/connectors`: what each is called and which
//! settings fields its connection form has (name, label, type, default, whether required or secret, help).
//!
//! The descriptions are data, so the UI renders every form from them. The fields are each kind's own
//! declaration of its settings (`FIELDS` in its `config` module), the same one its parsing reads, so the
//! API, the UI, the CLI and the docs stay in step with what each kind accepts. Kinds not built yet would
//! be listed (the UI shows their cards) with `available: false`; [`crate::open`] refuses them with a clear
//! message.

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value as Json;

use crate::settings::Field;

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
#[derive(Debug, Clone, Copy, Serialize)]
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

/// Every destination kind, in the order the UI shows their cards.
pub fn connectors() -> &'static [ConnectorInfo] {
    static ALL: OnceLock<Vec<ConnectorInfo>> = OnceLock::new();
    ALL.get_or_init(build)
}

/// The description of one kind.
pub fn connector(kind: &str) -> Option<&'static ConnectorInfo> {
    connectors().iter().find(|c| c.kind == kind)
}

fn build() -> Vec<ConnectorInfo> {
    let fields = |declared: &[Field]| declared.iter().map(Field::info).collect();
    vec![
        ConnectorInfo {
            kind: "postgresql",
            label: "PostgreSQL",
            description: "PostgreSQL 11 or later: rows are loaded with COPY and upserted with INSERT … ON CONFLICT.",
            available: true,
            fields: fields(crate::postgres::config::FIELDS),
        },
        ConnectorInfo {
            kind: "mysql",
            label: "MySQL",
            description: "MySQL 5.7 or later, and MariaDB: rows are staged in a temporary table and upserted with INSERT … ON DUPLICATE KEY UPDATE.",
            available: true,
            fields: fields(crate::mysql::config::FIELDS),
        },
        ConnectorInfo {
            kind: "clickhouse",
            label: "ClickHouse",
            description: "ClickHouse 18.16 or later over its native protocol: rows are upserted as new versions \
                          into a ReplacingMergeTree table keyed (ORDER BY) by the key column, in large native blocks.",
            available: true,
            fields: fields(crate::clickhouse::config::FIELDS),
        },
        ConnectorInfo {
            kind: "snowflake",
            label: "Snowflake",
            description: "Snowflake, with password or key-pair authentication: each batch is staged in a temporary \
                          table and written with one MERGE that updates only changed rows. Snowflake does not enforce \
                          primary keys, so Sluice keeps the key column unique itself (duplicates in a batch are \
                          merged, the last one wins).",
            available: true,
            fields: fields(crate::snowflake::config::FIELDS),
        },
        ConnectorInfo {
            kind: "sqlite",
            label: "SQLite",
            description: "An embedded SQLite database file, for trying Sluice out and for local work.",
            available: true,
            fields: fields(crate::sqlite::config::FIELDS),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    /// The catalogue and the parsing read one declaration: every field the form shows is accepted, and
    /// whatever it does not show is refused, naming the fields it does.
    #[test]
    fn every_kind_accepts_exactly_its_described_fields() {
        for c in connectors() {
            let mut all = serde_json::Map::new();
            for f in &c.fields {
                all.insert(f.name.into(), json!(null));
            }
            all.insert("colour".into(), json!("red"));
            let errors = match crate::validate_settings(c.kind, &Json::Object(all)) {
                Err(e) => e,
                Ok(()) => panic!("{}: settings without values were accepted", c.kind),
            };
            let names: Vec<_> = c.fields.iter().map(|f| f.name).collect();
            assert_eq!(
                errors.get("colour").unwrap(),
                [format!(
                    "unknown setting `colour`: expected one of {}",
                    names.join(", ")
                )],
                "{}",
                c.kind
            );
            assert!(
                errors
                    .iter()
                    .all(|(path, m)| path == "colour" || !m.contains("unknown")),
                "{}: {errors}",
                c.kind
            );
            for f in c.fields.iter().filter(|f| f.required) {
                assert!(errors.get(f.name).is_some(), "{}: {}", c.kind, f.name);
            }
        }
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
