//! Sluice values in PostgreSQL's binary format, for `COPY … (FORMAT binary)` and bound parameters.
//!
//! An [`Encoder`] is chosen once per column from the type the server reports (enums, domains and arrays
//! resolved), so writing a row is a tight loop of appends into one buffer with no per-row SQL or
//! allocation. Values normally arrive already converted to the column's type by
//! [`sluice_core::convert`]; any other value (a key recorded as text, an item of a JSON array) is
//! converted by those same rules first, so that a value the pipeline accepts is never refused here.
//! Errors say what is wrong without quoting the value, so that they group well.

use std::error::Error;

use bytes::{BufMut, BytesMut};
use postgres_types::{to_sql_checked, IsNull, Kind, ToSql, Type};
use sluice_core::{convert, ColumnType, Value};

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
        if let Some(written) = self.write_own(value, buf) {
            return written;
        }
        let converted = convert::to_column(value.clone(), &self.column_type()?)?;
        if converted.is_null() {
            return Err("a JSON null is not a value of the column".into());
        }
        self.write_own(&converted, buf).unwrap_or_else(|| {
            Err(format!(
                "a {} value cannot be written to this column",
                value.kind()
            ))
        })
    }

    /// The portable type whose conversion rules give this encoder's values.
    fn column_type(&self) -> Result<ColumnType, String> {
        let int = |bits| ColumnType::Int {
            bits,
            unsigned: false,
        };
        Ok(match self {
            Encoder::Bool => ColumnType::Bool,
            Encoder::Int2 => int(16),
            Encoder::Int4 => int(32),
            Encoder::Int8 => int(64),
            Encoder::Float4 => ColumnType::Float { bits: 32 },
            Encoder::Float8 => ColumnType::Float { bits: 64 },
            Encoder::Numeric => ColumnType::Decimal {
                precision: None,
                scale: None,
            },
            Encoder::Text => ColumnType::Text { max_len: None },
            Encoder::Date => ColumnType::Date,
            Encoder::Time => ColumnType::Time,
            Encoder::Timestamp => ColumnType::Timestamp { with_tz: false },
            Encoder::TimestampTz => ColumnType::Timestamp { with_tz: true },
            Encoder::Uuid => ColumnType::Uuid,
            Encoder::Json | Encoder::Jsonb => ColumnType::Json,
            Encoder::Bytea => ColumnType::Binary,
            Encoder::Array { element, .. } => ColumnType::Array {
                element: Box::new(element.column_type()?),
            },
            Encoder::Unsupported(name) => {
                return Err(format!("Sluice cannot write values of type `{name}`"))
            }
        })
    }

    /// Appends a value of the column's own kind; `None` (and nothing written) for a value of another.
    fn write_own(&self, value: &Value, buf: &mut BytesMut) -> Option<Result<(), String>> {
        let written = match (self, value) {
            (Encoder::Bool, Value::Bool(b)) => {
                buf.put_u8(*b as u8);
                Ok(())
            }
            (Encoder::Int2, Value::Int(i)) => i16::try_from(*i)
                .map(|i| buf.put_i16(i))
                .map_err(|_| "integer out of range for smallint".to_string()),
            (Encoder::Int4, Value::Int(i)) => i32::try_from(*i)
                .map(|i| buf.put_i32(i))
                .map_err(|_| "integer out of range for integer".to_string()),
            (Encoder::Int8, Value::Int(i)) => {
                buf.put_i64(*i);
                Ok(())
            }
            (Encoder::Float4, Value::Float(f)) => {
                buf.put_f32(*f as f32);
                Ok(())
            }
            (Encoder::Float8, Value::Float(f)) => {
                buf.put_f64(*f);
                Ok(())
            }
            (Encoder::Numeric, Value::Decimal(d)) => put(d, &Type::NUMERIC, buf),
            (Encoder::Text, Value::String(s)) => {
                buf.put_slice(s.as_bytes());
                Ok(())
            }
            (Encoder::Date, Value::Date(d)) => put(d, &Type::DATE, buf),
            (Encoder::Time, Value::Time(t)) => put(t, &Type::TIME, buf),
            (Encoder::Timestamp, Value::DateTime(dt)) => {
                put(&dt.naive_utc(), &Type::TIMESTAMP, buf)
            }
            (Encoder::TimestampTz, Value::DateTime(dt)) => put(dt, &Type::TIMESTAMPTZ, buf),
            (Encoder::Uuid, Value::Uuid(u)) => {
                buf.put_slice(u.as_bytes());
                Ok(())
            }
            (Encoder::Json | Encoder::Jsonb, Value::Json(j)) => {
                if *self == Encoder::Jsonb {
                    buf.put_u8(1); // jsonb binary format version
                }
                serde_json::to_writer(buf.writer(), &**j).map_err(|e| e.to_string())
            }
            (Encoder::Bytea, Value::Bytes(b)) => {
                buf.put_slice(b);
                Ok(())
            }
            (
                Encoder::Array {
                    element,
                    element_oid,
                },
                Value::Array(items),
            ) => element.write_array(items.iter(), items.len(), *element_oid, buf),
            _ => return None,
        };
        Some(written)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

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

    /// Values of another kind than the column's convert by the rules mappings and scripts use, so the
    /// two never disagree on what a column accepts.
    #[test]
    fn other_values_convert_as_pipelines_convert_them() {
        for (text, expected) in [
            ("y", true),
            ("N", false),
            (" yes ", true),
            ("t", true),
            ("0", false),
        ] {
            assert_eq!(
                field(&Encoder::Bool, Value::String(text.into())),
                [0, 0, 0, 1, expected as u8],
                "{text}"
            );
            assert_eq!(
                convert::to_column(Value::String(text.into()), &ColumnType::Bool),
                Ok(Value::Bool(expected))
            );
        }
        assert_eq!(field(&Encoder::Bool, Value::Int(1)), [0, 0, 0, 1, 1]);
        assert_eq!(
            field(&Encoder::Int4, Value::String("1e3".into())),
            [0, 0, 0, 4, 0, 0, 3, 232]
        );
        let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        let braced = Value::String("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}".into());
        assert_eq!(field(&Encoder::Uuid, braced)[4..], *u.as_bytes());
        // A JSON array given for an array column converts item by item.
        let enc = Encoder::Array {
            element: Box::new(Encoder::Int4),
            element_oid: 23,
        };
        assert_eq!(
            field(&enc, Value::json(serde_json::json!([1, 2]))),
            field(&enc, Value::Array(vec![Value::Int(1), Value::Int(2)]))
        );
        // Refusals carry the pipeline's message, which never quotes the value.
        let mut buf = BytesMut::new();
        let e = Encoder::Bool
            .write_field(&Value::String("maybe".into()), &mut buf)
            .unwrap_err();
        assert_eq!(e, "the text is not a boolean (true/false, yes/no, 1/0)");
        let e = Encoder::Int4
            .write_field(&Value::String("12x".into()), &mut buf)
            .unwrap_err();
        assert!(!e.contains("12x"), "{e}");
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
