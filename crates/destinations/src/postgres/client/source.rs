//! Reading PostgreSQL as a source: a query's columns from its prepared statement, pages read with
//! parameters encoded as the statement's parameter types ask.

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::{Column, ColumnType, Value};
use tokio_postgres::types::{FromSql, Kind, ToSql, Type};

use super::drift::text_expr;
use super::{map_error, Session};
use crate::drift::decode_str;
use crate::postgres::dialect::{self, NativeType};
use crate::postgres::encode::{Encoded, Encoder};
use crate::postgres::Postgres;
use crate::source::{reads_source, PageRows, Reads, SourceColumn};
use crate::{Capabilities, Destination, Result};

/// The catalog's view of a result column's type, for [`dialect::column_type`]: domains by their base
/// type, enums with their labels, arrays by their element.
fn native(ty: &Type) -> (String, Option<ColumnType>) {
    let base = match ty.kind() {
        Kind::Domain(base) => base,
        _ => ty,
    };
    let labels = |t: &Type| match t.kind() {
        Kind::Enum(labels) => labels.clone(),
        _ => Vec::new(),
    };
    let typtype = |t: &Type| match t.kind() {
        Kind::Enum(_) => "e",
        _ => "b",
    };
    let (element, labels) = match base.kind() {
        Kind::Array(member) => (Some((member.name(), typtype(member))), labels(member)),
        _ => (None, labels(base)),
    };
    let column = dialect::column_type(&NativeType {
        name: base.name(),
        typtype: typtype(base),
        typmod: -1,
        element,
        labels: &labels,
    });
    (ty.name().to_string(), column)
}

impl Session {
    /// [`Self::fetch`] without parameters in a read-only transaction whose statements stop after
    /// `timeout`; the transaction is rolled back whatever happened.
    pub async fn fetch_read_only(
        &mut self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
        self.client
            .batch_execute(&format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {ms}"
            ))
            .await
            .map_err(|e| map_error(&e))?;
        let result = self.fetch(sql, &[], types).await;
        let end = self
            .client
            .batch_execute("ROLLBACK")
            .await
            .map_err(|e| map_error(&e));
        let rows = result?;
        end?;
        Ok(rows)
    }

    pub async fn query_columns(&mut self, sql: &str) -> Result<Vec<Column>> {
        let statement = self.client.prepare(sql).await.map_err(|e| map_error(&e))?;
        Ok(statement
            .columns()
            .iter()
            .map(|c| {
                let (native_type, ty) = native(c.type_());
                Column {
                    name: c.name().to_string(),
                    native_type,
                    nullable: true,
                    ty,
                    has_default: false,
                }
            })
            .collect())
    }

    pub async fn fetch(
        &mut self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        Ok(self.fetch_rows(sql, params, types).await?.values())
    }

    /// The rows of `sql` as they came, decoded when asked for (see [`PgRows`]).
    pub(crate) async fn fetch_rows(
        &mut self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<PgRows> {
        let statement = self.client.prepare(sql).await.map_err(|e| map_error(&e))?;
        let encoders: Vec<Encoder> = statement.params().iter().map(Encoder::for_type).collect();
        let encoded: Vec<Encoded<'_>> = params
            .iter()
            .zip(&encoders)
            .map(|((value, _), encoder)| Encoded { encoder, value })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            encoded.iter().map(|e| e as &(dyn ToSql + Sync)).collect();
        let rows = self
            .client
            .query(&statement, &refs)
            .await
            .map_err(|e| map_error(&e))?;
        // Timestamps, integers, doubles and booleans come in binary (see `Reads::text_expr` below);
        // every other column as text.
        let columns = statement
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| ColumnRead {
                ty: types.get(i).cloned().flatten(),
                form: Form::of(c.type_()),
            })
            .collect();
        Ok(PgRows { rows, columns })
    }
}

/// Rows as PostgreSQL sent them. A value is decoded when it is asked for, and a row is hashed from its
/// bytes: a `full` read of rows that have not changed decodes nothing but their ids.
pub(crate) struct PgRows {
    rows: Vec<tokio_postgres::Row>,
    columns: Vec<ColumnRead>,
}

/// How a result column is read.
struct ColumnRead {
    /// The type its text decodes as.
    ty: Option<ColumnType>,
    form: Form,
}

/// The form a result column's values come in.
#[derive(Clone, Copy)]
enum Form {
    Text,
    /// `timestamp` or `timestamptz` in binary.
    Timestamp,
    /// An integer in binary, of 2, 4 or 8 bytes.
    Int,
    /// A `float8` in binary.
    Double,
    /// A `bool` in binary.
    Bool,
}

impl Form {
    fn of(ty: &Type) -> Form {
        match *ty {
            Type::TIMESTAMP | Type::TIMESTAMPTZ => Form::Timestamp,
            Type::INT2 | Type::INT4 | Type::INT8 => Form::Int,
            Type::FLOAT8 => Form::Double,
            Type::BOOL => Form::Bool,
            _ => Form::Text,
        }
    }
}

/// A column's bytes as they came, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

impl PgRows {
    fn raw(&self, row: usize, column: usize) -> Option<&[u8]> {
        match self.rows[row].try_get::<_, Option<Raw<'_>>>(column) {
            Ok(raw) => raw.map(|r| r.0),
            Err(_) => None,
        }
    }

    fn values(&self) -> Vec<Vec<Value>> {
        (0..self.rows.len())
            .map(|r| (0..self.columns.len()).map(|c| self.value(r, c)).collect())
            .collect()
    }
}

impl PageRows for PgRows {
    fn len(&self) -> usize {
        self.rows.len()
    }

    fn width(&self) -> usize {
        self.columns.len()
    }

    fn value(&self, row: usize, column: usize) -> Value {
        let Some(raw) = self.raw(row, column) else {
            return Value::Null;
        };
        let read = &self.columns[column];
        let ty = read.ty.as_ref();
        match read.form {
            Form::Timestamp => timestamp(raw).map_or(Value::Null, Value::DateTime),
            Form::Int => match *raw {
                [a, b] => Value::Int(i16::from_be_bytes([a, b]).into()),
                [a, b, c, d] => Value::Int(i32::from_be_bytes([a, b, c, d]).into()),
                _ => match raw.try_into() {
                    Ok(bytes) => Value::Int(i64::from_be_bytes(bytes)),
                    Err(_) => Value::Null,
                },
            },
            Form::Double => match raw.try_into().map(f64::from_be_bytes) {
                Ok(f) if f.is_finite() => Value::Float(f),
                // As their text reads: not a number Sluice writes, so kept as the text.
                Ok(f) if f.is_nan() => decode_str("NaN", ty),
                Ok(f) if f > 0.0 => decode_str("Infinity", ty),
                Ok(_) => decode_str("-Infinity", ty),
                Err(_) => Value::Null,
            },
            Form::Bool => match raw {
                [b] => Value::Bool(*b != 0),
                _ => Value::Null,
            },
            // The session's encoding is UTF-8, so the text is too; were it not, its bytes would still
            // be read rather than the row lost.
            Form::Text => match std::str::from_utf8(raw) {
                Ok(text) => decode_str(text, ty),
                Err(_) => decode_str(&String::from_utf8_lossy(raw), ty),
            },
        }
    }

    fn row(&self, row: usize, wanted: &[bool]) -> Cow<'_, [Value]> {
        (0..self.columns.len())
            .map(|c| match wanted.get(c) {
                Some(false) => Value::Null,
                _ => self.value(row, c),
            })
            .collect::<Vec<_>>()
            .into()
    }

    fn hash(&self, row: usize, seed: u64, wanted: &[bool]) -> u128 {
        let columns = (0..self.columns.len())
            .filter(|c| wanted.get(*c).copied().unwrap_or(true))
            .map(|c| self.raw(row, c));
        sluice_core::hash::hash_raw_columns(seed, columns)
    }
}

/// A `timestamp` or `timestamptz` as PostgreSQL sends it in binary: microseconds from 2000-01-01 UTC.
/// `infinity` and `-infinity`, and instants past what a datetime holds, are `None`, as their text was.
fn timestamp(raw: &[u8]) -> Option<DateTime<Utc>> {
    let micros = i64::from_be_bytes(raw.try_into().ok()?);
    if micros == i64::MAX || micros == i64::MIN {
        return None;
    }
    micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
}

/// 2000-01-01T00:00:00Z in microseconds from the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

#[async_trait::async_trait]
impl Reads for Postgres {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    fn relation(&self, table: &str) -> String {
        dialect::qualified(&self.settings.schema, table)
    }

    /// Timestamps, integers, doubles and booleans are read in binary, cast to their base type (a
    /// domain's values arrive as it): `to_char` cost the server more than the rest of a row, and
    /// printing numbers the server, parsing them Sluice, a part of every read. A `float4` stays text:
    /// its shortest text is the value the column shows, which its binary widened to 64 bits is not.
    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String {
        let c = dialect::quote(column);
        match ty {
            Some(ColumnType::Timestamp { with_tz: true }) => format!("{c}::timestamptz"),
            Some(ColumnType::Timestamp { with_tz: false }) => format!("{c}::timestamp"),
            Some(ColumnType::Int { .. }) => format!("{c}::int8"),
            Some(ColumnType::Float { bits: 64 }) => format!("{c}::float8"),
            Some(ColumnType::Bool) => format!("{c}::bool"),
            _ => text_expr(column, ty),
        }
    }

    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>> {
        Ok(self.describe_table(table).await?.map(|d| d.columns))
    }

    async fn query_columns(&self, sql: &str) -> Result<Vec<Column>> {
        let mut s = self.session().await?;
        let result = s.session().query_columns(sql).await;
        s.settle(result)
    }

    async fn fetch(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>> {
        let mut s = self.session().await?;
        let result = s.session().fetch(sql, params, types).await;
        s.settle(result)
    }

    async fn fetch_page(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Box<dyn PageRows>> {
        let mut s = self.session().await?;
        let result = s.session().fetch_rows(sql, params, types).await;
        Ok(Box::new(s.settle(result)?))
    }

    fn placeholder(&self, n: usize, _: &Value, _: &SourceColumn) -> Result<String> {
        Ok(format!("${n}"))
    }

    async fn fetch_guarded(
        &self,
        sql: &str,
        types: &[Option<ColumnType>],
        timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        let mut s = self.session().await?;
        let result = s.session().fetch_read_only(sql, types, timeout).await;
        s.settle(result)
    }
}

reads_source!(Postgres);
