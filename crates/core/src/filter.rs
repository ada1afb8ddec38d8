//! Audience filters. (Skeleton: the public API that the rest of Sluice relies on; the body is being built.)

use serde_json::{Map, Value as Json};

use crate::errors::FieldErrors;
use crate::schema::Schema;
use crate::Profile;

/// SQL dialects of the profile stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlDialect {
    Sqlite,
    Postgres,
}

/// A bound parameter of pushed-down SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

/// Name of the SQLite scalar function `sluice_ts(text) -> integer` (microseconds since the epoch of an
/// RFC 3339 datetime, NULL when it does not parse) that SQLite profile stores register on each connection.
pub const SQLITE_FN_TS: &str = "sluice_ts";
/// Name of the SQLite scalar function `sluice_dec_cmp(a text, b text) -> integer` (-1, 0, 1 comparing two
/// decimal numbers exactly; NULL when either does not parse).
pub const SQLITE_FN_DEC_CMP: &str = "sluice_dec_cmp";

/// The pure implementation of [`SQLITE_FN_TS`].
pub fn sqlite_ts(text: &str) -> Option<i64> {
    crate::schema::parse_datetime(text).ok().map(|d| d.timestamp_micros())
}

/// The pure implementation of [`SQLITE_FN_DEC_CMP`].
pub fn sqlite_dec_cmp(a: &str, b: &str) -> Option<i32> {
    let a: rust_decimal::Decimal = a.trim().parse().ok()?;
    let b: rust_decimal::Decimal = b.trim().parse().ok()?;
    Some(a.cmp(&b) as i32)
}

/// A filter validated against the Customer Model.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    wire: Json,
}

impl Filter {
    /// Parses and type-checks the wire form; errors are keyed by paths relative to the filter
    /// (`conditions[1].values`, `conditions[0].conditions[2].operator`).
    pub fn parse(wire: &Json, schema: &Schema) -> Result<Filter, FieldErrors> {
        let _ = schema;
        Ok(Filter { wire: wire.clone() })
    }

    /// Whether the profile matches.
    pub fn matches(&self, profile: &Profile) -> bool {
        let _ = profile;
        true
    }

    /// Whether a document matches (for previews of unsaved profiles).
    pub fn matches_doc(&self, id: &str, doc: &Map<String, Json>) -> bool {
        let _ = (id, doc);
        true
    }

    /// A boolean SQL expression selecting the same profiles as [`Filter::matches`], over a table with
    /// columns `id` (text), `updated_at` (INTEGER microseconds in SQLite, `timestamptz` in PostgreSQL) and
    /// `doc` (JSON text in SQLite, `jsonb` in PostgreSQL). Parameters are numbered from `first_param`
    /// (`?N` in SQLite, `$N` in PostgreSQL).
    pub fn to_sql(&self, dialect: SqlDialect, first_param: usize) -> (String, Vec<SqlParam>) {
        let _ = (dialect, first_param);
        ("TRUE".into(), Vec::new())
    }

    /// The property paths the filter reads.
    pub fn properties(&self) -> Vec<String> {
        Vec::new()
    }

    /// A readable one-line summary (`country is one of IT, FR and (email is not empty)`).
    pub fn summary(&self) -> String {
        String::new()
    }

    /// The wire form.
    pub fn to_wire(&self) -> Json {
        self.wire.clone()
    }
}
