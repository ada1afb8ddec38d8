//! What Sluice knows of a destination table: its columns in portable types, its keys and its issues.
//!
//! Each destination maps its native types onto [`ColumnType`]; a native type with no mapping is kept as
//! `None` and listed among the table's issues, so a pipeline cannot map a column it could not write.
//!
//! Columns keep the names the database stores. A pipeline names them as its user writes them, which
//! means the same only where identifiers match exactly: [`TableDescription::resolve_column`] applies the
//! table's [`IdentifierCase`], so that every place where a pipeline's names meet a table (mapping
//! columns, script columns and output keys, the key) finds the same column, and rows are written under
//! the stored name.

use serde::Serialize;

use crate::capabilities::{IdentifierCase, Resolution};

/// A destination column's type, in the terms that mapping type checks and value conversion use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnType {
    /// `text`, `varchar(n)`, `char(n)`: `max_len` in characters when bounded.
    Text {
        max_len: Option<u32>,
    },
    /// Integers of `bits` (8, 16, 32, 64) bits.
    Int {
        bits: u8,
        unsigned: bool,
    },
    Float {
        bits: u8,
    },
    /// `numeric(p,s)`; `None` when unconstrained.
    Decimal {
        precision: Option<u8>,
        scale: Option<u8>,
    },
    Bool,
    Date,
    Time,
    /// `with_tz`: the column stores an instant (`timestamptz`), otherwise a wall-clock time written in UTC.
    Timestamp {
        with_tz: bool,
    },
    Uuid,
    Json,
    Binary,
    /// A text column that accepts only these values (MySQL `ENUM`, a PostgreSQL enum type).
    Enum {
        values: Vec<String>,
    },
    Array {
        element: Box<ColumnType>,
    },
}

impl ColumnType {
    /// Whether the column may serve as a pipeline's key (string, integer or UUID).
    pub fn is_key_capable(&self) -> bool {
        matches!(
            self,
            ColumnType::Text { .. } | ColumnType::Int { .. } | ColumnType::Uuid
        )
    }
}

/// One column of a destination table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// The type as the database names it (`character varying(20)`, `Nullable(String)`).
    #[serde(rename = "type")]
    pub native_type: String,
    pub nullable: bool,
    /// The portable type, or `None` when Sluice cannot write this column.
    #[serde(skip)]
    pub ty: Option<ColumnType>,
    pub has_default: bool,
}

/// A destination table as Sluice sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDescription {
    pub name: String,
    pub columns: Vec<Column>,
    /// The primary key first (when there is one), then each unique constraint or index.
    pub keys: Vec<Vec<String>>,
    /// Whether `keys[0]` is the primary key.
    pub has_primary_key: bool,
    /// Things that limit what Sluice can do with the table (unsupported column types …).
    pub issues: Vec<String>,
    /// How the destination matches and deletes rows, when it is not by unique keys alone.
    #[serde(skip_serializing_if = "TableRules::is_empty")]
    pub rules: TableRules,
}

/// Rules of destinations whose tables match and delete rows otherwise than relational tables do
/// (ClickHouse), said when a pipeline asks for what the table cannot do. Empty for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableRules {
    /// Why only `keys` can identify rows, and what to change to key by another column; replaces the
    /// generic advice (add a unique constraint).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why rows cannot be deleted from the table (`on_leave: delete`), when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete: Option<String>,
    /// How a name written in a pipeline finds its column (the database's
    /// [`crate::capabilities::Identifiers::case`]).
    #[serde(skip_serializing_if = "IdentifierCase::is_exact")]
    pub identifiers: IdentifierCase,
}

impl TableRules {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.delete.is_none() && self.identifiers.is_exact()
    }
}

impl TableDescription {
    /// The column stored under exactly `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column a name written in a pipeline means, by the table's identifier rule
    /// ([`TableRules::identifiers`]). An unknown name is an error naming the table; see
    /// [`Self::lookup_column`] to word that case yourself.
    pub fn resolve_column(&self, written: &str) -> Result<&Column, String> {
        self.lookup_column(written)?
            .ok_or_else(|| format!("column `{written}` does not exist in table `{}`", self.name))
    }

    /// [`Self::resolve_column`], with `Ok(None)` for a name that matches no column; the error is a name
    /// that matches two, naming both.
    pub fn lookup_column(&self, written: &str) -> Result<Option<&Column>, String> {
        let names = self.columns.iter().map(|c| c.name.as_str());
        match self.rules.identifiers.resolve(written, names) {
            Resolution::Found(i) => Ok(Some(&self.columns[i])),
            Resolution::Missing => Ok(None),
            Resolution::Ambiguous(a, b) => {
                let (a, b) = (&self.columns[a].name, &self.columns[b].name);
                Err(format!(
                    "`{written}` matches two columns of table `{}`, `{a}` and `{b}`, whose names differ only in \
                     case: write the name in double quotes exactly as stored (\"{a}\" or \"{b}\") to choose one",
                    self.name
                ))
            }
        }
    }

    /// The stored name of the column `written` means, or `written` itself when it means none (or more
    /// than one): the name to compare with other stored names.
    pub fn stored_name<'a>(&'a self, written: &'a str) -> &'a str {
        match self.lookup_column(written) {
            Ok(Some(c)) => &c.name,
            _ => written,
        }
    }

    /// Whether `column` alone is a primary key or has a unique constraint.
    pub fn is_unique_key(&self, column: &str) -> bool {
        self.keys.iter().any(|k| k.len() == 1 && k[0] == column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(case: IdentifierCase, names: &[&str]) -> TableDescription {
        TableDescription {
            name: "people".into(),
            columns: names
                .iter()
                .map(|n| Column {
                    name: n.to_string(),
                    native_type: "VARCHAR".into(),
                    nullable: true,
                    ty: Some(ColumnType::Text { max_len: None }),
                    has_default: false,
                })
                .collect(),
            keys: vec![],
            has_primary_key: false,
            issues: vec![],
            rules: TableRules {
                identifiers: case,
                ..TableRules::default()
            },
        }
    }

    #[test]
    fn names_resolve_by_the_tables_rule() {
        let exact = table(IdentifierCase::Exact, &["CUSTOMER_ID", "email"]);
        assert_eq!(exact.resolve_column("email").unwrap().name, "email");
        assert_eq!(
            exact.resolve_column("customer_id").unwrap_err(),
            "column `customer_id` does not exist in table `people`"
        );
        assert_eq!(exact.lookup_column("EMAIL"), Ok(None));
        assert_eq!(exact.stored_name("customer_id"), "customer_id");

        let snowflake = table(
            IdentifierCase::UnquotedInsensitive,
            &["CUSTOMER_ID", "MixedCase", "EMAIL", "Email"],
        );
        assert_eq!(
            snowflake.resolve_column("customer_id").unwrap().name,
            "CUSTOMER_ID"
        );
        assert_eq!(snowflake.stored_name("customer_id"), "CUSTOMER_ID");
        assert_eq!(
            snowflake.resolve_column("\"MixedCase\"").unwrap().name,
            "MixedCase"
        );
        assert!(snowflake.resolve_column("\"mixedcase\"").is_err());
        let e = snowflake.resolve_column("email").unwrap_err();
        assert!(
            e.contains("`EMAIL` and `Email`") && e.contains("table `people`"),
            "{e}"
        );
        assert_eq!(snowflake.stored_name("email"), "email");
        assert_eq!(snowflake.resolve_column("\"Email\"").unwrap().name, "Email");
        assert!(!snowflake.rules.is_empty());
        assert_eq!(
            serde_json::to_value(&snowflake.rules).unwrap(),
            serde_json::json!({"identifiers": "unquoted_insensitive"})
        );
        assert!(exact.rules.is_empty());
    }
}
