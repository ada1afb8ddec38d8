//! Sluice values in PostgreSQL's binary format, for `COPY … (FORMAT binary)` and bound parameters.
//!
//! An [`Encoder`] is chosen once per column from the type the server reports (enums, domains and arrays
//! resolved), so writing a row is a tight loop of appends into one buffer with no per-row SQL or
//! allocation. Values normally arrive already converted to the column's type; a few unambiguous
//! conversions (an integer into a float column, text into a UUID column …) are accepted as well, and
//! anything else is a data error naming what was expected — without the value, so that errors group well.

use std::borrow::Cow;
use std::error::Error;
use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Utc};
use postgres_types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use rust_decimal::Decimal;
use serde_json::Value as Json;
use sluice_core::Value;

/// How the values of one column are written.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoder {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, char, name, citext and enum labels all travel as UTF-8 text.
    Text,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Jsonb,
    Bytea,
    Array {
        element: Box<Encoder>,
        element_oid: u32,
    },
    Unsupported(String),
}

impl Encoder {
    pub fn for_type(ty: &Type) -> Encoder {
        match ty.kind() {
            Kind::Enum(_) => return Encoder::Text,
            Kind::Domain(base) => return Encoder::for_type(base),
            Kind::Array(member) => {
                return Encoder::Array {
                    element: Box::new(Encoder::for_type(member)),
                    element_oid: member.oid(),
                }
            }
            _ => {}
        }
        match *ty {
            Type::BOOL => Encoder::Bool,
            Type::INT2 => Encoder::Int2,
            Type::INT4 => Encoder::Int4,
            Type::INT8 => Encoder::Int8,
            Type::FLOAT4 => Encoder::Float4,
            Type::FLOAT8 => Encoder::Float8,
            Type::NUMERIC => Encoder::Numeric,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Encoder::Text,
            Type::DATE => Encoder::Date,
            Type::TIME => Encoder::Time,
            Type::TIMESTAMP => Encoder::Timestamp,
            Type::TIMESTAMPTZ => Encoder::TimestampTz,
            Type::UUID => Encoder::Uuid,
            Type::JSON => Encoder::Json,
            Type::JSONB => Encoder::Jsonb,
            Type::BYTEA => Encoder::Bytea,
            _ if ty.name() == "citext" => Encoder::Text,
            _ => Encoder::Unsupported(ty.name().to_string()),
        }
    }

    /// Appends one COPY/array field: its length and bytes, or −1 for NULL.
    pub fn write_field(&self, value: &Value, buf: &mut BytesMut) -> Result<(), String> {
        if value.is_null() {
            buf.put_i32(-1);
            return Ok(());
        }
        let at = buf.len();
        buf.put_i32(0);
        self.write_value(value, buf)?;
        let len =
            i32::try_from(buf.len() - at - 4).map_err(|_| "value larger than 2 GB".to_string())?;
        buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Appends the bytes of a non-null value.
    pub fn write_value(&self, value: &Value, buf: &mut BytesMut) -> Result<(), String> {
        match self {
            Encoder::Bool => buf.put_u8(as_bool(value)? as u8),
            Encoder::Int2 => buf.put_i16(
                i16::try_from(as_i64(value)?)
                    .map_err(|_| "integer out of range for smallint".to_string())?,
            ),
            Encoder::Int4 => buf.put_i32(
                i32::try_from(as_i64(value)?)
                    .map_err(|_| "integer out of range for integer".to_string())?,
            ),
            Encoder::Int8 => buf.put_i64(as_i64(value)?),
            Encoder::Float4 => buf.put_f32(as_f64(value)? as f32),
            Encoder::Float8 => buf.put_f64(as_f64(value)?),
            Encoder::Numeric => put(&as_decimal(value)?, &Type::NUMERIC, buf)?,
            Encoder::Text => match value {
                Value::String(s) => buf.put_slice(s.as_bytes()),
                Value::Json(j) => {
                    serde_json::to_writer(buf.writer(), j).map_err(|e| e.to_string())?
                }
                Value::Bytes(_) | Value::Array(_) => return Err(mismatch(value, "text")),
                other => {
                    let mut text = String::new();
                    let _ = write!(text, "{other}");
                    buf.put_slice(text.as_bytes());
                }
            },
            Encoder::Date => put(&as_date(value)?, &Type::DATE, buf)?,
            Encoder::Time => put(&as_time(value)?, &Type::TIME, buf)?,
            Encoder::Timestamp => put(&as_datetime(value)?.naive_utc(), &Type::TIMESTAMP, buf)?,
            Encoder::TimestampTz => put(&as_datetime(value)?, &Type::TIMESTAMPTZ, buf)?,
            Encoder::Uuid => buf.put_slice(as_uuid(value)?.as_bytes()),
            Encoder::Json | Encoder::Jsonb => {
                if *self == Encoder::Jsonb {
                    buf.put_u8(1); // jsonb binary format version
                }
                let json = match value {
                    Value::Json(j) => Cow::Borrowed(&**j),
                    other => Cow::Owned(other.to_json()),
                };
                serde_json::to_writer(buf.writer(), &*json).map_err(|e| e.to_string())?;
            }
            Encoder::Bytea => match value {
                Value::Bytes(b) => buf.put_slice(b),
                Value::String(s) => buf.put_slice(s.as_bytes()),
                other => return Err(mismatch(other, "binary")),
            },
            Encoder::Array {
                element,
                element_oid,
            } => {
                let items: Cow<'_, [Value]> = match value {
                    Value::Array(items) => Cow::Borrowed(items),
                    Value::Json(j) if j.is_array() => Cow::Owned(
                        j.as_array()
                            .expect("an array")
                            .iter()
                            .map(json_to_value)
                            .collect(),
                    ),
                    other => return Err(mismatch(other, "array")),
                };
                element.write_array(items.iter(), items.len(), *element_oid, buf)?;
            }
            Encoder::Unsupported(name) => {
                return Err(format!("Sluice cannot write values of type `{name}`"))
            }
        }
        Ok(())
    }
}

impl Encoder {
    /// Appends a one-dimensional array of `len` items encoded with `self`: number of dimensions, whether
    /// any item is NULL, the element type's OID, then (length, lower bound 1) and the items.
    pub fn write_array<'v>(
        &self,
        items: impl Iterator<Item = &'v Value> + Clone,
        len: usize,
        element_oid: u32,
        buf: &mut BytesMut,
    ) -> Result<(), String> {
        let len = i32::try_from(len).map_err(|_| "array too long".to_string())?;
        buf.put_i32(if len == 0 { 0 } else { 1 });
        buf.put_i32(items.clone().any(Value::is_null) as i32);
        buf.put_u32(element_oid);
        if len > 0 {
            buf.put_i32(len);
            buf.put_i32(1);
        }
        for item in items {
            self.write_field(item, buf)
                .map_err(|e| format!("array element: {e}"))?;
        }
        Ok(())
    }
}

/// A value bound as a query parameter through its column's [`Encoder`].
#[derive(Debug)]
pub struct Encoded<'a> {
    pub encoder: &'a Encoder,
    pub value: &'a Value,
}

impl ToSql for Encoded<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if self.value.is_null() {
            return Ok(IsNull::Yes);
        }
        self.encoder.write_value(self.value, out)?;
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // The encoder was chosen from the parameter's own type.
        true
    }

    to_sql_checked!();
}

fn put<T: ToSql>(value: &T, ty: &Type, buf: &mut BytesMut) -> Result<(), String> {
    value.to_sql(ty, buf).map(|_| ()).map_err(|e| e.to_string())
}

fn mismatch(value: &Value, expected: &str) -> String {
    format!("expected a {expected} value, got {}", value.kind())
}

fn as_bool(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Ok(true),
            "false" | "f" | "no" | "0" => Ok(false),
            _ => Err("text is not a boolean".into()),
        },
        other => Err(mismatch(other, "boolean")),
    }
}

fn as_i64(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(i) => Ok(*i),
        Value::Decimal(d) if d.fract().is_zero() => {
            i64::try_from(*d).map_err(|_| "integer out of range".into())
        }
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(*f as i64),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "text is not an integer".into()),
        other => Err(mismatch(other, "integer")),
    }
}

fn as_f64(value: &Value) -> Result<f64, String> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Decimal(d) => {
            f64::try_from(*d).map_err(|_| "decimal out of range for a float".into())
        }
        Value::String(s) => s.trim().parse().map_err(|_| "text is not a number".into()),
        other => Err(mismatch(other, "float")),
    }
}

fn as_decimal(value: &Value) -> Result<Decimal, String> {
    match value {
        Value::Decimal(d) => Ok(*d),
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Float(f) => {
            Decimal::try_from(*f).map_err(|_| "float cannot be written as a decimal".into())
        }
        Value::String(s) => {
            let s = s.trim();
            s.parse::<Decimal>()
                .or_else(|_| Decimal::from_scientific(s))
                .map_err(|_| "text is not a decimal number".into())
        }
        other => Err(mismatch(other, "decimal")),
    }
}

fn as_date(value: &Value) -> Result<NaiveDate, String> {
    match value {
        Value::Date(d) => Ok(*d),
        Value::DateTime(dt) => Ok(dt.date_naive()),
        Value::String(s) => {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| "text is not a date".into())
        }
        other => Err(mismatch(other, "date")),
    }
}

fn as_time(value: &Value) -> Result<NaiveTime, String> {
    match value {
        Value::Time(t) => Ok(*t),
        Value::String(s) => NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
            .or_else(|_| NaiveTime::parse_from_str(s.trim(), "%H:%M"))
            .map_err(|_| "text is not a time".into()),
        other => Err(mismatch(other, "time")),
    }
}

fn as_datetime(value: &Value) -> Result<chrono::DateTime<Utc>, String> {
    match value {
        Value::DateTime(dt) => Ok(*dt),
        Value::Date(d) => Ok(NaiveDateTime::from(*d).and_utc()),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map(|dt| dt.with_timezone(&Utc))
            .map_err(|_| "text is not an RFC 3339 date-time".into()),
        other => Err(mismatch(other, "datetime")),
    }
}

fn as_uuid(value: &Value) -> Result<uuid::Uuid, String> {
    match value {
        Value::Uuid(u) => Ok(*u),
        Value::String(s) => {
            uuid::Uuid::parse_str(s.trim()).map_err(|_| "text is not a UUID".into())
        }
        other => Err(mismatch(other, "uuid")),
    }
}

/// Elements of a JSON array given for an array column, in the closest value kind.
fn json_to_value(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n
                .to_string()
                .parse::<Decimal>()
                .map(Value::Decimal)
                .unwrap_or_else(|_| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(s) => Value::String(s.as_str().into()),
        other => Value::json(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(enc: &Encoder, v: Value) -> Vec<u8> {
        let mut buf = BytesMut::new();
        enc.write_field(&v, &mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn scalars() {
        assert_eq!(
            field(&Encoder::Int4, Value::Int(7)),
            [0, 0, 0, 4, 0, 0, 0, 7]
        );
        assert_eq!(field(&Encoder::Int4, Value::Null), [255, 255, 255, 255]);
        assert_eq!(field(&Encoder::Bool, Value::Bool(true)), [0, 0, 0, 1, 1]);
        assert_eq!(
            field(&Encoder::Text, Value::String("hé".into())),
            [0, 0, 0, 3, b'h', 0xc3, 0xa9]
        );
        assert_eq!(
            field(&Encoder::Text, Value::Int(42)),
            [0, 0, 0, 2, b'4', b'2']
        );
        assert_eq!(
            field(&Encoder::Jsonb, Value::json(serde_json::json!(1))),
            [0, 0, 0, 2, 1, b'1']
        );
        // 2000-01-02 is day 1 of PostgreSQL's epoch.
        let d = NaiveDate::from_ymd_opt(2000, 1, 2).unwrap();
        assert_eq!(
            field(&Encoder::Date, Value::Date(d)),
            [0, 0, 0, 4, 0, 0, 0, 1]
        );
    }

    #[test]
    fn data_errors() {
        let mut buf = BytesMut::new();
        assert!(Encoder::Int2
            .write_field(&Value::Int(70000), &mut buf)
            .unwrap_err()
            .contains("smallint"));
        assert!(Encoder::Uuid
            .write_field(&Value::String("nope".into()), &mut buf)
            .is_err());
        assert!(Encoder::Unsupported("macaddr".into())
            .write_field(&Value::String("x".into()), &mut buf)
            .unwrap_err()
            .contains("macaddr"));
    }

    #[test]
    fn arrays() {
        let enc = Encoder::Array {
            element: Box::new(Encoder::Int4),
            element_oid: 23,
        };
        let bytes = field(&enc, Value::Array(vec![Value::Int(1), Value::Null]));
        let expected: Vec<u8> = [
            &32i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &23u32.to_be_bytes(),
            &2i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &4i32.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i32).to_be_bytes(),
        ]
        .concat();
        assert_eq!(bytes, expected);
        let empty = field(&enc, Value::Array(vec![]));
        assert_eq!(empty.len(), 4 + 12);
    }

    #[test]
    fn encoders_from_types() {
        assert_eq!(Encoder::for_type(&Type::VARCHAR), Encoder::Text);
        assert_eq!(
            Encoder::for_type(&Type::TEXT_ARRAY),
            Encoder::Array {
                element: Box::new(Encoder::Text),
                element_oid: Type::TEXT.oid()
            }
        );
        assert_eq!(
            Encoder::for_type(&Type::MACADDR),
            Encoder::Unsupported("macaddr".into())
        );
    }
}
