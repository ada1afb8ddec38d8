//! Reading PostgreSQL as a source: a query's columns from its prepared statement, pages read with
//! parameters encoded as the statement's parameter types ask.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sluice_core::{Column, ColumnType, Value};
use tokio_postgres::types::{FromSql, Kind, ToSql, Type};

use super::drift::text_expr;
use super::{map_error, Session};
use crate::drift::decode;
use crate::postgres::dialect::{self, NativeType};
use crate::postgres::encode::{Encoded, Encoder};
use crate::postgres::Postgres;
use crate::source::{reads_source, Reads, SourceColumn};
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
        // Timestamps come in binary (see `Reads::text_expr` below); every other column as text.
        let binary: Vec<bool> = statement
            .columns()
            .iter()
            .map(|c| matches!(*c.type_(), Type::TIMESTAMP | Type::TIMESTAMPTZ))
            .collect();
        rows.iter()
            .map(|row| {
                types
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| match binary.get(i) {
                        Some(true) => row
                            .try_get::<_, Option<Micros>>(i)
                            .map(|m| m.and_then(|m| m.0).map_or(Value::Null, Value::DateTime)),
                        _ => row
                            .try_get::<_, Option<String>>(i)
                            .map(|text| decode(text, ty.as_ref())),
                    })
                    .collect::<std::result::Result<Vec<Value>, _>>()
                    .map_err(|e| map_error(&e))
            })
            .collect()
    }
}

/// A `timestamp` or `timestamptz` as PostgreSQL sends it in binary: microseconds from 2000-01-01 UTC.
/// `infinity` and `-infinity`, and instants past what a datetime holds, are NULL, as their text was.
struct Micros(Option<DateTime<Utc>>);

/// 2000-01-01T00:00:00Z in microseconds from the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl<'a> FromSql<'a> for Micros {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw.try_into()?;
        let micros = i64::from_be_bytes(bytes);
        if micros == i64::MAX || micros == i64::MIN {
            return Ok(Micros(None));
        }
        Ok(Micros(
            micros
                .checked_add(PG_EPOCH_MICROS)
                .and_then(DateTime::from_timestamp_micros),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
}

#[async_trait::async_trait]
impl Reads for Postgres {
    fn source_capabilities(&self) -> &'static Capabilities {
        &dialect::CAPABILITIES
    }

    fn relation(&self, table: &str) -> String {
        dialect::qualified(&self.settings.schema, table)
    }

    /// Timestamps are read in binary, cast to their base type (a domain's values arrive as it):
    /// `to_char` cost the server more than the rest of a row, and the text's parse cost Sluice as much.
    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String {
        match ty {
            Some(ColumnType::Timestamp { with_tz: true }) => {
                format!("{}::timestamptz", dialect::quote(column))
            }
            Some(ColumnType::Timestamp { with_tz: false }) => {
                format!("{}::timestamp", dialect::quote(column))
            }
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
