//! What Sluice knows of a destination table: its columns in portable types, its keys and its issues.
//!
//! Each destination maps its native types onto [`ColumnType`]; a native type with no mapping is kept as
//! `None` and listed among the table's issues, so a pipeline cannot map a column it could not write.

use serde::Serialize;

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
}

impl TableRules {
    pub fn is_empty(&self) -> bool {
        self.key.is_none() && self.delete.is_none()
    }
}

impl TableDescription {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `column` alone is a primary key or has a unique constraint.
    pub fn is_unique_key(&self, column: &str) -> bool {
        self.keys.iter().any(|k| k.len() == 1 && k[0] == column)
    }
}
