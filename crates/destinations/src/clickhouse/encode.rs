//! Sluice values laid out as the columns of a native block, for a column's wire type ([`Wire`]) — pure,
//! unit-tested here. Values go from a row straight to the bytes the server reads: no value per cell is
//! built in between, which is where a general-purpose client spends most of an insert.
//!
//! The checks a database would otherwise make happen here, each with a message naming the problem: a
//! value out of the integer type's range, a NULL for a column that is not `Nullable`, text longer than a
//! `FixedString`, a date or instant the type cannot hold, a decimal with more digits than the column. They
//! fail the batch with [`crate::ErrorKind::BadData`], so the isolating writer finds the row. (Native blocks
//! carry typed data: the server never sees a value it would have to parse.) Messages never quote the
//! value, so that a run's errors group by reason.
//!
//! Values arrive converted to the column's type by [`sluice_core::convert`]; any other value (an item of a
//! JSON array, a key recorded as text) is converted by those same rules first, so that a value the
//! pipeline accepts is never refused here.
//!
//! The layout, per column: `LowCardinality` columns start with their serialization version (even inside
//! an `Array`); an `Array` is its rows' end offsets (`UInt64`) followed by all its items; a `Nullable` is
//! one byte per row (1 for NULL) followed by the values, a default in place of each NULL; a
//! `LowCardinality` block is its index width, its dictionary (with the NULL first when nullable) and one
//! index per row; scalars are little-endian, strings length-prefixed.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sluice_core::{convert, ColumnType, Value};

use super::dialect::{decimal_spec, enum_values, ChType};
use super::native::put_bytes;

/// The type a column's values are encoded with in a native block.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    Nullable(Box<Wire>),
    Array(Box<Wire>),
    LowCardinality(Box<Wire>),
    /// A scalar, with its type as the block names it.
    Scalar(Scalar, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Int {
        bytes: usize,
        signed: bool,
    },
    /// A `Bool` column's value, carried as a `UInt8`.
    Bool,
    Float32,
    Float64,
    Decimal {
        bytes: usize,
        precision: u32,
        scale: u32,
    },
    String,
    FixedString(usize),
    Uuid,
    Date,
    DateTime,
    DateTime64(u32),
    Ipv4,
    Ipv6,
    Enum8(Vec<(String, i16)>),
    Enum16(Vec<(String, i16)>),
}

impl Wire {
    /// The wire type of a column type: the same type, except `Bool` (a `UInt8`) and `Date32` (its
    /// `YYYY-MM-DD` text), which the insert casts (see [`super::dialect::insert_sql`]).
    pub fn of(ty: &ChType) -> Result<Wire, String> {
        Ok(match ty {
            ChType::Nullable(t) => Wire::Nullable(Box::new(Wire::of(t)?)),
            // A low-cardinality column accepts its plain type; cast-carried types stay plain.
            ChType::LowCardinality(t) if t.needs_cast() => Wire::of(t)?,
            ChType::LowCardinality(t) => Wire::LowCardinality(Box::new(Wire::of(t)?)),
            ChType::Array(t) => Wire::Array(Box::new(Wire::of(t)?)),
            ChType::Scalar { name, args } => {
                let int = |bytes, signed| Scalar::Int { bytes, signed };
                let scalar = match name.as_str() {
                    "Int8" => int(1, true),
                    "Int16" => int(2, true),
                    "Int32" => int(4, true),
                    "Int64" => int(8, true),
                    "UInt8" => int(1, false),
                    "UInt16" => int(2, false),
                    "UInt32" => int(4, false),
                    "UInt64" => int(8, false),
                    "Bool" => return Ok(Wire::Scalar(Scalar::Bool, "UInt8".into())),
                    "Date32" => return Ok(Wire::Scalar(Scalar::String, "String".into())),
                    "Float32" => Scalar::Float32,
                    "Float64" => Scalar::Float64,
                    "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" => {
                        let (p, s) = decimal_spec(name, args)
                            .ok_or_else(|| format!("type `{ty}` is not a decimal type"))?;
                        let bytes = match p {
                            0..=9 => 4,
                            10..=18 => 8,
                            19..=38 => 16,
                            _ => return Err(format!("type `{ty}` is not supported")),
                        };
                        Scalar::Decimal {
                            bytes,
                            precision: p.into(),
                            scale: s.into(),
                        }
                    }
                    "String" => Scalar::String,
                    "FixedString" => Scalar::FixedString(
                        args.first()
                            .and_then(|n| n.parse().ok())
                            .ok_or_else(|| format!("type `{ty}` has no length"))?,
                    ),
                    "UUID" => Scalar::Uuid,
                    "Date" => Scalar::Date,
                    "DateTime" => Scalar::DateTime,
                    "DateTime64" => Scalar::DateTime64(
                        args.first()
                            .and_then(|p| p.trim().parse().ok())
                            .filter(|p| *p <= 9)
                            .ok_or_else(|| format!("type `{ty}` has no precision"))?,
                    ),
                    "IPv4" => Scalar::Ipv4,
                    "IPv6" => Scalar::Ipv6,
                    "Enum8" | "Enum16" => {
                        let values = enum_values(args)
                            .ok_or_else(|| format!("type `{ty}` has unreadable values"))?;
                        if name == "Enum8" {
                            Scalar::Enum8(values)
                        } else {
                            Scalar::Enum16(values)
                        }
                    }
                    _ => return Err(format!("type `{ty}` is not supported")),
                };
                Wire::Scalar(scalar, ty.to_string())
            }
        })
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wire::Nullable(t) => write!(f, "Nullable({t})"),
            Wire::Array(t) => write!(f, "Array({t})"),
            Wire::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            Wire::Scalar(_, text) => f.write_str(text),
        }
    }
}

/// A value to encode: one of a row, an item of a JSON array, or the default that stands in for a NULL
/// under `Nullable`.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Value(&'a Value),
    Json(&'a serde_json::Value),
    Default,
}

impl Cell<'_> {
    fn is_null(&self) -> bool {
        matches!(
            self,
            Cell::Value(Value::Null) | Cell::Json(serde_json::Value::Null)
        )
    }
}

/// The values of one column of a block, taken a row at a time and kept apart by stream (null map,
/// array offsets, values, dictionary) until [`ColumnBuilder::finish`] lays them out. Rows arrive whole,
/// so a block is built in one pass over them: going column by column instead reads every row's values
/// once per column, from memory far too large for the caches.
#[derive(Debug)]
pub enum ColumnBuilder {
    Scalar {
        scalar: Scalar,
        text: String,
        data: Vec<u8>,
    },
    Nullable {
        nulls: Vec<u8>,
        inner: Box<ColumnBuilder>,
    },
    Array {
        offsets: Vec<u8>,
        items: u64,
        inner: Box<ColumnBuilder>,
    },
    LowCardinality {
        nullable: bool,
        /// The dictionary's keys, encoded, in index order.
        keys: Box<ColumnBuilder>,
        size: u64,
        positions: HashMap<Vec<u8>, u64>,
        indexes: Vec<u64>,
        /// A value being looked up: as a column of one, and encoded.
        scratch: Box<ColumnBuilder>,
        key: Vec<u8>,
    },
}

impl ColumnBuilder {
    /// An empty column of `wire`, with room for `rows` values.
    pub fn new(wire: &Wire, rows: usize) -> Self {
        match wire {
            Wire::Scalar(scalar, text) => ColumnBuilder::Scalar {
                scalar: scalar.clone(),
                text: text.clone(),
                data: Vec::with_capacity(rows * scalar.width().unwrap_or(16)),
            },
            Wire::Nullable(inner) => ColumnBuilder::Nullable {
                nulls: Vec::with_capacity(rows),
                inner: Box::new(ColumnBuilder::new(inner, rows)),
            },
            Wire::Array(inner) => ColumnBuilder::Array {
                offsets: Vec::with_capacity(rows * 8),
                items: 0,
                inner: Box::new(ColumnBuilder::new(inner, rows)),
            },
            Wire::LowCardinality(inner) => {
                let (nullable, base) = match &**inner {
                    Wire::Nullable(base) => (true, &**base),
                    base => (false, base),
                };
                let mut column = ColumnBuilder::LowCardinality {
                    nullable,
                    keys: Box::new(ColumnBuilder::new(base, 0)),
                    size: 0,
                    positions: HashMap::new(),
                    indexes: Vec::with_capacity(rows),
                    scratch: Box::new(ColumnBuilder::new(base, 1)),
                    key: Vec::new(),
                };
                // Starts the dictionary (with its NULL entry when nullable).
                column.clear();
                column
            }
        }
    }

    /// Adds a row's value; the message says why it does not fit.
    pub fn push(&mut self, cell: Cell) -> Result<(), String> {
        match self {
            ColumnBuilder::Scalar { scalar, text, data } => encode_scalar(scalar, text, cell, data),
            ColumnBuilder::Nullable { nulls, inner } => {
                let null = cell.is_null();
                nulls.push(u8::from(null));
                inner.push(if null { Cell::Default } else { cell })
            }
            ColumnBuilder::Array {
                offsets,
                items,
                inner,
            } => {
                let pushed = match cell {
                    Cell::Default => 0,
                    Cell::Value(Value::Array(values)) => {
                        values.iter().try_for_each(|v| inner.push(Cell::Value(v)))?;
                        values.len()
                    }
                    Cell::Value(Value::Json(j)) if j.is_array() => {
                        let values = j.as_array().expect("an array");
                        values.iter().try_for_each(|v| inner.push(Cell::Json(v)))?;
                        values.len()
                    }
                    Cell::Json(serde_json::Value::Array(values)) => {
                        values.iter().try_for_each(|v| inner.push(Cell::Json(v)))?;
                        values.len()
                    }
                    c if c.is_null() => return Err(NOT_NULLABLE.to_string()),
                    Cell::Value(v) => {
                        return Err(format!(
                            "a {} value cannot be written to an array column",
                            v.kind()
                        ))
                    }
                    Cell::Json(_) => {
                        return Err(
                            "a JSON value other than an array cannot be written to an array \
                                    column"
                                .to_string(),
                        )
                    }
                };
                *items += pushed as u64;
                offsets.extend_from_slice(&items.to_le_bytes());
                Ok(())
            }
            ColumnBuilder::LowCardinality {
                nullable,
                keys,
                size,
                positions,
                indexes,
                scratch,
                key,
            } => {
                if *nullable && cell.is_null() {
                    indexes.push(0);
                    return Ok(());
                }
                scratch.clear();
                scratch.push(cell)?;
                key.clear();
                scratch.data(key);
                let index = match positions.get(key.as_slice()) {
                    Some(i) => *i,
                    None => {
                        keys.push(cell)?;
                        positions.insert(key.to_vec(), *size);
                        *size += 1;
                        *size - 1
                    }
                };
                indexes.push(index);
                Ok(())
            }
        }
    }

    /// Appends the column as a block carries it: its serialization prefix, then its data.
    /// About how many bytes [`ColumnBuilder::finish`] writes (exactly, but for a dictionary's prefix).
    pub fn size_hint(&self) -> usize {
        match self {
            ColumnBuilder::Scalar { data, .. } => data.len(),
            ColumnBuilder::Nullable { nulls, inner } => nulls.len() + inner.size_hint(),
            ColumnBuilder::Array { offsets, inner, .. } => offsets.len() + inner.size_hint(),
            ColumnBuilder::LowCardinality { keys, indexes, .. } => {
                keys.size_hint() + indexes.len() * 8 + 64
            }
        }
    }

    pub fn finish(&self, out: &mut Vec<u8>) {
        self.prefix(out);
        self.data(out);
    }

    /// Empties the column for the next block, keeping its memory.
    pub fn clear(&mut self) {
        match self {
            ColumnBuilder::Scalar { data, .. } => data.clear(),
            ColumnBuilder::Nullable { nulls, inner } => {
                nulls.clear();
                inner.clear();
            }
            ColumnBuilder::Array {
                offsets,
                items,
                inner,
            } => {
                offsets.clear();
                *items = 0;
                inner.clear();
            }
            ColumnBuilder::LowCardinality {
                nullable,
                keys,
                size,
                positions,
                indexes,
                ..
            } => {
                keys.clear();
                if *nullable {
                    // Index 0 is NULL; its dictionary entry is the default.
                    keys.push(Cell::Default).expect("a default always encodes");
                }
                *size = u64::from(*nullable);
                positions.clear();
                indexes.clear();
            }
        }
    }

    /// The state a column's data starts with (the version of `LowCardinality` serialization).
    fn prefix(&self, out: &mut Vec<u8>) {
        match self {
            ColumnBuilder::LowCardinality { .. } => {
                out.extend_from_slice(&LOW_CARDINALITY_VERSION.to_le_bytes())
            }
            ColumnBuilder::Nullable { inner, .. } | ColumnBuilder::Array { inner, .. } => {
                inner.prefix(out)
            }
            ColumnBuilder::Scalar { .. } => {}
        }
    }

    fn data(&self, out: &mut Vec<u8>) {
        match self {
            ColumnBuilder::Scalar { data, .. } => out.extend_from_slice(data),
            ColumnBuilder::Nullable { nulls, inner } => {
                out.extend_from_slice(nulls);
                inner.data(out);
            }
            ColumnBuilder::Array {
                offsets,
                items,
                inner,
            } => {
                out.extend_from_slice(offsets);
                // No items: nothing follows the offsets, not even a LowCardinality's dictionary.
                if *items > 0 {
                    inner.data(out);
                }
            }
            ColumnBuilder::LowCardinality {
                keys,
                size,
                indexes,
                ..
            } => {
                if indexes.is_empty() {
                    return;
                }
                let (code, width) = match size.saturating_sub(1) {
                    0..=0xff => (0u64, 1usize),
                    0x100..=0xffff => (1, 2),
                    0x1_0000..=0xffff_ffff => (2, 4),
                    _ => (3, 8),
                };
                out.extend_from_slice(&(code | HAS_ADDITIONAL_KEYS).to_le_bytes());
                out.extend_from_slice(&size.to_le_bytes());
                keys.data(out);
                out.extend_from_slice(&(indexes.len() as u64).to_le_bytes());
                for i in indexes {
                    out.extend_from_slice(&i.to_le_bytes()[..width]);
                }
            }
        }
    }
}

/// Keys with the dictionary of each block (`SharedDictionariesWithAdditionalKeys`).
const LOW_CARDINALITY_VERSION: u64 = 1;
const HAS_ADDITIONAL_KEYS: u64 = 1 << 9;

impl Scalar {
    /// Bytes per value, for the fixed-width types.
    fn width(&self) -> Option<usize> {
        Some(match self {
            Scalar::Int { bytes, .. } | Scalar::Decimal { bytes, .. } => *bytes,
            Scalar::Float32 | Scalar::DateTime | Scalar::Ipv4 => 4,
            Scalar::Float64 | Scalar::DateTime64(_) => 8,
            Scalar::FixedString(n) => *n,
            Scalar::Uuid | Scalar::Ipv6 => 16,
            Scalar::Date | Scalar::Enum16(_) => 2,
            Scalar::Enum8(_) | Scalar::Bool => 1,
            Scalar::String => return None,
        })
    }

    /// The portable type whose conversion rules give this scalar's values.
    fn column_type(&self) -> ColumnType {
        match self {
            Scalar::Int { bytes, signed } => ColumnType::Int {
                bits: (8 * bytes) as u8,
                unsigned: !signed,
            },
            Scalar::Bool => ColumnType::Bool,
            Scalar::Float32 => ColumnType::Float { bits: 32 },
            Scalar::Float64 => ColumnType::Float { bits: 64 },
            Scalar::Decimal {
                precision, scale, ..
            } => ColumnType::Decimal {
                precision: u8::try_from(*precision).ok(),
                scale: u8::try_from(*scale).ok(),
            },
            Scalar::String
            | Scalar::FixedString(_)
            | Scalar::Ipv4
            | Scalar::Ipv6
            | Scalar::Enum8(_)
            | Scalar::Enum16(_) => ColumnType::Text { max_len: None },
            Scalar::Uuid => ColumnType::Uuid,
            Scalar::Date => ColumnType::Date,
            Scalar::DateTime | Scalar::DateTime64(_) => ColumnType::Timestamp { with_tz: true },
        }
    }
}

const NOT_NULLABLE: &str = "NULL is not allowed: the column is not Nullable";

/// The default of a scalar, which stands in for a NULL.
fn default(scalar: &Scalar, out: &mut Vec<u8>) {
    let zeros = |out: &mut Vec<u8>, n: usize| out.resize(out.len() + n, 0);
    match scalar {
        Scalar::Int { bytes, .. } | Scalar::Decimal { bytes, .. } => zeros(out, *bytes),
        Scalar::Float32 | Scalar::DateTime | Scalar::Ipv4 => zeros(out, 4),
        Scalar::Float64 | Scalar::DateTime64(_) => zeros(out, 8),
        Scalar::String => out.push(0),
        Scalar::FixedString(n) => zeros(out, *n),
        Scalar::Uuid | Scalar::Ipv6 => zeros(out, 16),
        Scalar::Date => zeros(out, 2),
        // The first value of an enum is its default.
        Scalar::Bool => out.push(0),
        Scalar::Enum8(values) => out.push(values.first().map_or(0, |(_, n)| *n as u8)),
        Scalar::Enum16(values) => {
            out.extend_from_slice(&values.first().map_or(0, |(_, n)| *n).to_le_bytes())
        }
    }
}

fn encode_scalar(scalar: &Scalar, text: &str, cell: Cell, out: &mut Vec<u8>) -> Result<(), String> {
    let owned;
    let v = match cell {
        Cell::Default => {
            default(scalar, out);
            return Ok(());
        }
        Cell::Value(Value::Null) | Cell::Json(serde_json::Value::Null) => {
            return Err(NOT_NULLABLE.to_string())
        }
        Cell::Value(v) => v,
        Cell::Json(j) => {
            owned = Value::json(j.clone());
            &owned
        }
    };
    if let Some(written) = encode_own(scalar, text, v, out) {
        return written;
    }
    let converted = convert::to_column(v.clone(), &scalar.column_type())?;
    if converted.is_null() {
        return Err(NOT_NULLABLE.to_string());
    }
    encode_own(scalar, text, &converted, out).unwrap_or_else(|| {
        Err(format!(
            "a {} value cannot be written to a {text} column",
            v.kind()
        ))
    })
}

/// Appends a value of the scalar's own kind; `None` (and nothing written) for a value of another.
fn encode_own(
    scalar: &Scalar,
    text: &str,
    v: &Value,
    out: &mut Vec<u8>,
) -> Option<Result<(), String>> {
    let written = match (scalar, v) {
        (Scalar::Int { bytes, signed }, Value::Int(_) | Value::Bool(_)) => {
            int(v, *bytes, *signed, text).map(|i| out.extend_from_slice(&i.to_le_bytes()[..*bytes]))
        }
        (Scalar::Bool, Value::Bool(b)) => {
            out.push(u8::from(*b));
            Ok(())
        }
        (Scalar::Float32, Value::Float(f)) => {
            out.extend_from_slice(&(*f as f32).to_le_bytes());
            Ok(())
        }
        (Scalar::Float64, Value::Float(f)) => {
            out.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        (
            Scalar::Decimal {
                bytes,
                precision,
                scale,
            },
            Value::Decimal(d),
        ) => decimal(*d, *scale, *precision)
            .map(|m| out.extend_from_slice(&m.to_le_bytes()[..*bytes])),
        (Scalar::String, Value::String(s)) => {
            put_bytes(out, s.as_bytes());
            Ok(())
        }
        // A Date32 travels as its text (see the dialect).
        (Scalar::String, Value::Date(d)) => {
            put_bytes(out, sluice_core::schema::format_date(d).as_bytes());
            Ok(())
        }
        (Scalar::FixedString(n), Value::String(s)) => {
            let bytes = s.as_bytes();
            if bytes.len() > *n {
                Err(format!(
                    "the value is {} bytes long, more than the column's FixedString({n})",
                    bytes.len()
                ))
            } else {
                out.extend_from_slice(bytes);
                out.resize(out.len() + n - bytes.len(), 0);
                Ok(())
            }
        }
        (Scalar::Uuid, Value::Uuid(u)) => {
            // Two little-endian halves, the high one first.
            let (high, low) = u.as_u64_pair();
            out.extend_from_slice(&high.to_le_bytes());
            out.extend_from_slice(&low.to_le_bytes());
            Ok(())
        }
        (Scalar::Date, Value::Date(d)) => {
            date(*d).map(|days| out.extend_from_slice(&days.to_le_bytes()))
        }
        (Scalar::DateTime, Value::DateTime(dt)) => u32::try_from(dt.timestamp())
            .map(|secs| out.extend_from_slice(&secs.to_le_bytes()))
            .map_err(|_| {
                "the instant is outside the range of DateTime (1970-01-01 to 2106-02-07 UTC)"
                    .to_string()
            }),
        (Scalar::DateTime64(precision), Value::DateTime(dt)) => {
            datetime64_ticks(dt, *precision).map(|t| out.extend_from_slice(&t.to_le_bytes()))
        }
        (Scalar::Ipv4, Value::String(s)) => s
            .trim()
            .parse::<std::net::Ipv4Addr>()
            .map(|a| out.extend_from_slice(&u32::from(a).to_le_bytes()))
            .map_err(|_| "the text is not an IPv4 address".to_string()),
        (Scalar::Ipv6, Value::String(s)) => {
            let t = s.trim();
            t.parse::<std::net::Ipv6Addr>()
                .or_else(|_| t.parse::<std::net::Ipv4Addr>().map(|a| a.to_ipv6_mapped()))
                .map(|a| out.extend_from_slice(&a.octets()))
                .map_err(|_| "the text is not an IP address".to_string())
        }
        (Scalar::Enum8(values) | Scalar::Enum16(values), Value::String(s)) => {
            match values.iter().find(|(l, _)| l == s.as_str()) {
                None => Err(enum_message(values.iter().map(|(l, _)| l))),
                Some((_, n)) if matches!(scalar, Scalar::Enum8(_)) => {
                    out.push(*n as u8);
                    Ok(())
                }
                Some((_, n)) => {
                    out.extend_from_slice(&n.to_le_bytes());
                    Ok(())
                }
            }
        }
        _ => return None,
    };
    Some(written)
}

fn enum_message<'a>(labels: impl Iterator<Item = &'a String>) -> String {
    let labels: Vec<&str> = labels.map(String::as_str).collect();
    format!(
        "the text is not one of the Enum's values ({})",
        labels.join(", ")
    )
}

/// An integer (or a boolean, as a `UInt8` carries it) within the range of a `bytes`-wide type (as i128,
/// so every UInt64 fits).
fn int(v: &Value, bytes: usize, signed: bool, ty: &str) -> Result<i128, String> {
    let bits = 8 * bytes as u32;
    let (min, max): (i128, i128) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    let i: i128 = match v {
        Value::Int(i) => (*i).into(),
        Value::Bool(b) => (*b).into(),
        other => return Err(format!("a {} value is not a whole number", other.kind())),
    };
    if i < min || i > max {
        return Err(format!(
            "the number is out of range for {ty} ({min} to {max})"
        ));
    }
    Ok(i)
}

/// The mantissa of `d` at `scale`, with at most `precision` digits; digits past the scale are refused
/// rather than rounded away.
fn decimal(d: Decimal, scale: u32, precision: u32) -> Result<i128, String> {
    let mut rescaled = d.normalize();
    if rescaled.scale() > scale {
        return Err(format!(
            "the number has more than {scale} digits after the decimal point"
        ));
    }
    rescaled.rescale(scale);
    if rescaled.scale() != scale {
        return Err(format!(
            "the number does not fit the column's Decimal({precision}, {scale})"
        ));
    }
    let m = rescaled.mantissa();
    if m.unsigned_abs() >= 10u128.pow(precision) {
        return Err(format!(
            "the number has more digits than the column's Decimal({precision}, {scale}) allows"
        ));
    }
    Ok(m)
}

/// Days since the epoch, as a `Date` holds them.
fn date(d: NaiveDate) -> Result<u16, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    u16::try_from((d - epoch).num_days()).map_err(|_| {
        "the date is outside the range of Date (1970-01-01 to 2149-06-06); a Date32 column holds it"
            .to_string()
    })
}

/// Ticks of 10^-precision seconds since the epoch (negative before it).
pub fn datetime64_ticks(dt: &DateTime<Utc>, precision: u32) -> Result<i64, String> {
    let p = precision.min(9);
    let ticks = i128::from(dt.timestamp()) * 10i128.pow(p)
        + i128::from(dt.timestamp_subsec_nanos()) / 10i128.pow(9 - p);
    i64::try_from(ticks).map_err(|_| format!("the instant is outside the range of DateTime64({p})"))
}

/// The value of a version column for a run: it grows from run to run at the column type's resolution.
/// `run_version` is the run's start in microseconds since the epoch.
pub fn version_value(wire: &Wire, run_version: u64) -> Result<Value, String> {
    let at = DateTime::<Utc>::from_timestamp_micros(run_version as i64)
        .ok_or("the run's version is not a time")?;
    let secs = at.timestamp();
    Ok(match wire {
        Wire::Scalar(Scalar::Int { bytes: 8, .. }, _) => Value::Int(run_version as i64),
        Wire::Scalar(Scalar::Int { bytes: 4, .. }, _) => Value::Int(secs),
        Wire::Scalar(Scalar::DateTime | Scalar::DateTime64(_), _) => Value::DateTime(at),
        other => {
            return Err(format!(
            "the version column has type {other}, too small to grow with every run: use UInt64, \
                 DateTime or DateTime64"
        ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn w(s: &str) -> Wire {
        Wire::of(&ChType::parse(s).unwrap()).unwrap()
    }

    /// The data of a column of type `ty` holding `values`.
    fn bytes(ty: &str, values: &[Value]) -> Result<Vec<u8>, String> {
        let mut column = ColumnBuilder::new(&w(ty), values.len());
        for v in values {
            column.push(Cell::Value(v))?;
        }
        let mut out = Vec::new();
        column.finish(&mut out);
        // A cleared column starts afresh.
        column.clear();
        for v in values {
            column.push(Cell::Value(v))?;
        }
        let mut again = Vec::new();
        column.finish(&mut again);
        assert_eq!(out, again);
        Ok(out)
    }

    fn one(ty: &str, v: Value) -> Result<Vec<u8>, String> {
        bytes(ty, &[v])
    }

    #[test]
    fn wire_types_and_casts() {
        assert_eq!(w("Bool").to_string(), "UInt8");
        assert_eq!(
            w("Array(Nullable(Bool))").to_string(),
            "Array(Nullable(UInt8))"
        );
        assert_eq!(w("Date32").to_string(), "String");
        assert_eq!(w("LowCardinality(Date32)").to_string(), "String");
        assert_eq!(
            w("LowCardinality(String)"),
            Wire::LowCardinality(Box::new(Wire::Scalar(Scalar::String, "String".into())))
        );
        assert_eq!(
            w("DateTime64(3, 'UTC')"),
            Wire::Scalar(Scalar::DateTime64(3), "DateTime64(3, 'UTC')".into())
        );
        assert_eq!(
            w("Decimal(12, 2)"),
            Wire::Scalar(
                Scalar::Decimal {
                    bytes: 8,
                    precision: 12,
                    scale: 2
                },
                "Decimal(12, 2)".into()
            )
        );
        assert!(Wire::of(&ChType::parse("Map(String, UInt8)").unwrap())
            .unwrap_err()
            .contains("not supported"));
        assert!(Wire::of(&ChType::parse("Decimal(76, 2)").unwrap()).is_err());
    }

    #[test]
    fn integers_in_range() {
        assert_eq!(one("Int8", Value::Int(-128)).unwrap(), [0x80]);
        assert!(one("Int8", Value::Int(128))
            .unwrap_err()
            .contains("out of range for Int8"));
        assert!(one("UInt64", Value::Int(-1)).is_err());
        assert_eq!(
            one("UInt64", Value::Int(i64::MAX)).unwrap(),
            i64::MAX.to_le_bytes()
        );
        assert_eq!(one("UInt8", Value::Bool(true)).unwrap(), [1]);
        assert_eq!(one("Int16", Value::Int(-2)).unwrap(), [0xfe, 0xff]);
        assert_eq!(
            one("UInt32", Value::String(" 7 ".into())).unwrap(),
            [7, 0, 0, 0]
        );
        assert_eq!(one("Float32", Value::Int(1)).unwrap(), 1f32.to_le_bytes());
    }

    #[test]
    fn nulls_arrays_and_dictionaries() {
        assert_eq!(
            bytes(
                "Nullable(String)",
                &[Value::String("ab".into()), Value::Null]
            )
            .unwrap(),
            [0, 1, 2, b'a', b'b', 0]
        );
        assert!(one("String", Value::Null)
            .unwrap_err()
            .contains("not Nullable"));
        let mut expected = Vec::new();
        expected.extend_from_slice(&2u64.to_le_bytes());
        expected.extend_from_slice(&2u64.to_le_bytes()); // second row: no items
        expected.extend_from_slice(&[0, 1]);
        expected.extend_from_slice(&1i32.to_le_bytes());
        expected.extend_from_slice(&0i32.to_le_bytes());
        assert_eq!(
            bytes(
                "Array(Nullable(Int32))",
                &[
                    Value::Array(vec![Value::Int(1), Value::Null]),
                    Value::Array(vec![])
                ]
            )
            .unwrap(),
            expected
        );
        // A JSON array is written item by item.
        let json = Value::json(serde_json::json!(["x", "y"]));
        assert_eq!(
            one("Array(String)", json).unwrap(),
            [&2u64.to_le_bytes()[..], &[1, b'x', 1, b'y']].concat()
        );
        // Only empty arrays: the offsets and nothing else, not even a dictionary.
        assert_eq!(
            one("Array(LowCardinality(String))", Value::Array(vec![])).unwrap(),
            [&1u64.to_le_bytes()[..], &0u64.to_le_bytes()].concat()
        );
        // NULL is index 0; "" is a value of its own; a repeated value is one key.
        let values = [
            Value::String("a".into()),
            Value::Null,
            Value::String(Default::default()),
            Value::String("a".into()),
        ];
        let mut expected = Vec::new();
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&HAS_ADDITIONAL_KEYS.to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&[0, 1, b'a', 0]);
        expected.extend_from_slice(&4u64.to_le_bytes());
        expected.extend_from_slice(&[1, 0, 2, 1]);
        assert_eq!(
            bytes("LowCardinality(Nullable(String))", &values).unwrap(),
            expected
        );
        // 300 keys need two-byte indexes.
        let many: Vec<Value> = (0..300).map(Value::Int).collect();
        let out = bytes("LowCardinality(UInt16)", &many).unwrap();
        assert_eq!(&out[8..16], &(1 | HAS_ADDITIONAL_KEYS).to_le_bytes());
        assert_eq!(out.len(), 8 + 8 + 8 + 600 + 8 + 600);
    }

    #[test]
    fn text_types() {
        assert!(one("FixedString(2)", Value::String("abc".into()))
            .unwrap_err()
            .contains("FixedString(2)"));
        assert_eq!(
            one("FixedString(3)", Value::String("a".into())).unwrap(),
            [b'a', 0, 0]
        );
        assert_eq!(
            one("IPv4", Value::String("10.1.2.3".into())).unwrap(),
            [3, 2, 1, 10]
        );
        let v6 = one("IPv6", Value::String("::1".into())).unwrap();
        assert_eq!(v6.len(), 16);
        assert_eq!(v6[15], 1);
        assert!(one("IPv6", Value::String("nope".into())).is_err());
        let e = "Enum8('free' = 1, 'pro' = 2)";
        assert_eq!(one(e, Value::String("pro".into())).unwrap(), [2]);
        assert!(one(e, Value::String("gold".into()))
            .unwrap_err()
            .contains("free, pro"));
        assert_eq!(
            bytes(&format!("Nullable({e})"), &[Value::Null]).unwrap(),
            [1, 1]
        );
        let d = NaiveDate::from_ymd_opt(1900, 1, 2).unwrap();
        assert_eq!(one("Date32", Value::Date(d)).unwrap(), b"\x0a1900-01-02");
        let u = uuid::Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff").unwrap();
        assert_eq!(
            one("UUID", Value::Uuid(u)).unwrap(),
            [
                0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa,
                0x99, 0x88
            ]
        );
        assert!(one("UUID", Value::String("x".into())).is_err());
    }

    #[test]
    fn decimals_exact() {
        let d = Decimal::from_str("123456789012345678.0123456789").unwrap();
        assert_eq!(
            one("Decimal(38, 10)", Value::Decimal(d)).unwrap(),
            1234567890123456780123456789i128.to_le_bytes()
        );
        assert_eq!(
            one(
                "Decimal(5, 2)",
                Value::Decimal(Decimal::from_str("-123.4").unwrap())
            )
            .unwrap(),
            (-12340i32).to_le_bytes()
        );
        assert!(one(
            "Decimal(5, 2)",
            Value::Decimal(Decimal::from_str("1.234").unwrap())
        )
        .is_err());
        // The column's own precision is checked, not that of the 32-bit storage.
        assert!(one(
            "Decimal(5, 2)",
            Value::Decimal(Decimal::from_str("1234.5").unwrap())
        )
        .unwrap_err()
        .contains("Decimal(5, 2)"));
        assert_eq!(
            one("Decimal64(2)", Value::Int(3)).unwrap(),
            300i64.to_le_bytes()
        );
    }

    #[test]
    fn dates_and_instants() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(one("Date", Value::Date(d)).unwrap(), 19782u16.to_le_bytes());
        assert!(one(
            "Date",
            Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap())
        )
        .is_err());
        let dt = DateTime::parse_from_rfc3339("2024-03-31T01:30:00.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            one("DateTime('UTC')", Value::DateTime(dt)).unwrap(),
            1711841400u32.to_le_bytes()
        );
        assert_eq!(
            one("DateTime64(3, 'UTC')", Value::DateTime(dt)).unwrap(),
            1711841400500i64.to_le_bytes()
        );
        let before = DateTime::parse_from_rfc3339("1969-07-20T20:17:40Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(one("DateTime('UTC')", Value::DateTime(before)).is_err());
        // DateTime64 holds instants before 1970.
        assert_eq!(
            one("DateTime64(0)", Value::DateTime(before)).unwrap(),
            (-14182940i64).to_le_bytes()
        );
        assert_eq!(
            one("DateTime", Value::Date(d)).unwrap(),
            1709164800u32.to_le_bytes()
        );
    }

    /// Messages say what is wrong and never quote the value, so that a run's errors group by reason.
    #[test]
    fn errors_never_quote_the_value() {
        let dt = DateTime::parse_from_rfc3339("1969-07-20T20:17:40Z")
            .unwrap()
            .with_timezone(&Utc);
        let cases = [
            ("Int8", Value::Int(300), "300", "out of range for Int8"),
            (
                "UInt16",
                Value::String("12x".into()),
                "12x",
                "not an integer",
            ),
            (
                "UUID",
                Value::String("not-a-uuid".into()),
                "not-a-uuid",
                "not a UUID",
            ),
            (
                "IPv4",
                Value::String("10.1.2.300".into()),
                "10.1.2.300",
                "not an IPv4",
            ),
            (
                "IPv6",
                Value::String("nope::x".into()),
                "nope::x",
                "not an IP",
            ),
            (
                "Enum8('free' = 1, 'pro' = 2)",
                Value::String("gold".into()),
                "gold",
                "(free, pro)",
            ),
            (
                "Decimal(5, 2)",
                Value::Decimal("1.234".parse().unwrap()),
                "1.234",
                "after the decimal point",
            ),
            (
                "Decimal(5, 2)",
                Value::Decimal("1234.5".parse().unwrap()),
                "1234.5",
                "Decimal(5, 2)",
            ),
            (
                "Date",
                Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
                "1969",
                "outside the range of Date",
            ),
            (
                "DateTime('UTC')",
                Value::DateTime(dt),
                "1969",
                "outside the range",
            ),
            (
                "Bool",
                Value::String("maybe".into()),
                "maybe",
                "not a boolean",
            ),
        ];
        for (ty, value, quoted, reason) in cases {
            let e = one(ty, value).unwrap_err();
            assert!(e.contains(reason), "{ty}: {e}");
            assert!(!e.contains(quoted), "{ty} quotes the value: {e}");
        }
    }

    /// Values of another kind than the column's convert by the rules mappings and scripts use.
    #[test]
    fn other_values_convert_as_pipelines_convert_them() {
        for (text, expected) in [("y", 1u8), ("n", 0), (" Yes ", 1), ("f", 0)] {
            assert_eq!(one("Bool", Value::String(text.into())).unwrap(), [expected]);
        }
        assert_eq!(one("Bool", Value::Bool(true)).unwrap(), [1]);
        assert_eq!(one("Nullable(Bool)", Value::Bool(false)).unwrap(), [0, 0]);
        assert_eq!(
            one("Int32", Value::String("1e3".into())).unwrap(),
            1000i32.to_le_bytes()
        );
        assert_eq!(one("Int64", Value::Float(2.0)).unwrap(), 2i64.to_le_bytes());
        // Items of a JSON array convert like any other value.
        assert_eq!(
            one(
                "Array(Decimal(9, 2))",
                Value::json(serde_json::json!([1.5]))
            )
            .unwrap(),
            [&1u64.to_le_bytes()[..], &150i32.to_le_bytes()].concat()
        );
        // Text of a JSON string is its content.
        assert_eq!(
            one("String", Value::json(serde_json::json!("hé"))).unwrap(),
            [3, b'h', 0xc3, 0xa9]
        );
    }

    #[test]
    fn version_values_grow() {
        let run = 1_700_000_000_123_456u64;
        let at = DateTime::<Utc>::from_timestamp_micros(run as i64).unwrap();
        assert_eq!(
            version_value(&w("UInt64"), run).unwrap(),
            Value::Int(run as i64)
        );
        assert_eq!(
            version_value(&w("UInt32"), run).unwrap(),
            Value::Int(1_700_000_000)
        );
        assert_eq!(
            version_value(&w("DateTime('UTC')"), run).unwrap(),
            Value::DateTime(at)
        );
        assert_eq!(
            one(
                "DateTime64(6, 'UTC')",
                version_value(&w("DateTime64(6)"), run).unwrap()
            )
            .unwrap(),
            (run as i64).to_le_bytes()
        );
        assert!(version_value(&w("UInt8"), run)
            .unwrap_err()
            .contains("too small"));
    }
}
