//! Conversion of values to destination column types. (Skeleton; being built.)
//!
//! The same rules serve visual mapping, JavaScript and Python, so a value converts the same way whatever
//! produced it.

use crate::table::ColumnType;
use crate::value::Value;

/// Converts `value` to a value the destination can bind for a column of type `ty`; the error says why not
/// (without naming the column: the caller adds it).
pub fn to_column(value: Value, ty: &ColumnType) -> Result<Value, String> {
    let _ = ty;
    Ok(value)
}
