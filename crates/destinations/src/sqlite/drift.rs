//! Reading a table back for drift checks: its root page and `CREATE` text as its identity, a count,
//! rows by key.
//!
//! SQLite keeps no creation time or table number; a dropped table's pages are freed, so a table created
//! again usually gets another root page. When it gets the same one (the same `CREATE` text in the same
//! freed page), the row count at the start of a run notices the rows that went with it.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use sluice_core::convert::to_column;
use sluice_core::{ColumnType, Value};

use super::client::Bind;
use super::dialect::{map_error, quote};
use crate::drift::{column_types, decode};
use crate::{Result, WriteTarget};

pub fn table_identity(conn: &Connection, name: &str) -> Result<Option<String>> {
    conn.query_row(
        "SELECT rootpage, sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| {
            let root: i64 = r.get(0)?;
            let sql: Option<String> = r.get(1)?;
            Ok(format!(
                "root:{root};sql:{:032x}",
                xxhash(sql.unwrap_or_default().as_bytes())
            ))
        },
    )
    .optional()
    .map_err(map_error)
}

/// A digest of the `CREATE` text, to keep the identity short.
fn xxhash(bytes: &[u8]) -> u128 {
    sluice_core::hash::hash_row(0, &[Value::Bytes(bytes.to_vec())])
}

pub fn count_rows(conn: &Connection, target: &WriteTarget) -> Result<u64> {
    let sql = format!("SELECT count(*) FROM {}", quote(&target.table.name));
    let n: i64 = conn.query_row(&sql, [], |r| r.get(0)).map_err(map_error)?;
    Ok(n.max(0) as u64)
}

/// A stored value as the value Sluice writes for the column type: numbers stored by affinity convert
/// by the same rules as text.
pub(crate) fn value(v: ValueRef<'_>, ty: Option<&ColumnType>) -> Value {
    let raw = match v {
        ValueRef::Null => return Value::Null,
        ValueRef::Text(t) => return decode(Some(String::from_utf8_lossy(t).into_owned()), ty),
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    };
    match ty {
        Some(ty) => to_column(raw.clone(), ty).unwrap_or(raw),
        None => raw,
    }
}

pub fn read_rows(
    conn: &Connection,
    target: &WriteTarget,
    keys: &[Value],
) -> Result<Vec<Vec<Value>>> {
    let types = column_types(target);
    let key_ty = target.table.column(&target.key).and_then(|c| c.ty.as_ref());
    let columns: Vec<String> = target.columns.iter().map(|c| quote(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE {} = ?1",
        columns.join(", "),
        quote(&target.table.name),
        quote(&target.key)
    );
    // One lookup per key through the key's index: SQLite runs in process, so a statement costs about
    // what a row of a larger one would.
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let mut rows = stmt
            .query([&Bind {
                value: key,
                ty: key_ty,
            }])
            .map_err(map_error)?;
        while let Some(row) = rows.next().map_err(map_error)? {
            let mut values = Vec::with_capacity(types.len());
            for (i, ty) in types.iter().enumerate() {
                values.push(value(row.get_ref(i).map_err(map_error)?, ty.as_ref()));
            }
            out.push(values);
        }
    }
    Ok(out)
}
