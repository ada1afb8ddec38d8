//! Visual-mapping expressions. (Skeleton: the public API the rest of Sluice relies on; being built.)

use chrono::{DateTime, Utc};

use crate::errors::FieldErrors;
use crate::pipeline::indexmap_like::OrderedMap;
use crate::schema::Schema;
use crate::table::TableDescription;
use crate::value::Value;
use crate::Profile;

/// A column that failed to compute for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnError {
    pub column: String,
    pub message: String,
}

/// A mapping compiled against the Customer Model and a table.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    /// Destination columns in the order their values are produced.
    pub columns: Vec<String>,
}

impl CompiledMapping {
    /// Parses every expression and type-checks it against its column; errors are keyed by column name.
    pub fn compile(mapping: &OrderedMap, schema: &Schema, table: &TableDescription) -> Result<Self, FieldErrors> {
        let _ = (schema, table);
        Ok(Self { columns: mapping.iter().map(|(c, _)| c.to_string()).collect() })
    }

    /// Computes the row for a profile: values in [`Self::columns`] order, converted to the column types.
    pub fn eval(&self, profile: &Profile, now: DateTime<Utc>) -> Result<Vec<Value>, ColumnError> {
        let _ = (profile, now);
        Ok(Vec::new())
    }

    /// The property paths the expressions read.
    pub fn properties(&self) -> Vec<String> {
        Vec::new()
    }
}
