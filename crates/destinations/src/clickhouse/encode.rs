//! Sluice values laid out as the columns of a native block, for a column's wire type ([`Wire`]) — pure,
//! unit-tested here. Values go from a row straight to the bytes the server reads: no value per cell is
//! built in between, which is where a general-purpose client spends most of an insert.
//!
//! The checks a database would otherwise make happen here, each with a message naming the problem: a
//! value out of the integer type's range, a NULL for a column that is not `Nullable`, text longer than a
//! `FixedString`, a date or instant the type cannot hold, a decimal with more digits than the column. They
//! fail the batch with [`crate::ErrorKind::BadData`], so the isolating writer finds the row. (Native blocks
//! carry typed data: the server never sees a value it would have to parse.)
//!
//! The layout, per column: `LowCardinality` columns start with their serialization version (even inside
//! an `Array`); an `Array` is its rows' end offsets (`UInt64`) followed by all its items; a `Nullable` is
//! one byte per row (1 for NULL) followed by the values, a default in place of each NULL; a
//! `LowCardinality` block is its index width, its dictionary (with the NULL first when nullable) and one
//! index per row; scalars are little-endian, strings length-prefixed.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use sluice_core::Value;

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
                    "Bool" => return Ok(Wire::Scalar(int(1, false), "UInt8".into())),
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
                    Cell::Json(j) => {
                        return Err(format!("{j} cannot be written to an array column"))
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
            Scalar::Enum8(_) => 1,
            Scalar::String => return None,
        })
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
        Scalar::Enum8(values) => out.push(values.first().map_or(0, |(_, n)| *n as u8)),
        Scalar::Enum16(values) => {
            out.extend_from_slice(&values.first().map_or(0, |(_, n)| *n).to_le_bytes())
        }
    }
}

fn encode_scalar(scalar: &Scalar, text: &str, cell: Cell, out: &mut Vec<u8>) -> Result<(), String> {
    let v = match cell {
        Cell::Default => {
            default(scalar, out);
            return Ok(());
        }
        Cell::Json(j) => {
            let owned = json_value(j);
            return encode_scalar(scalar, text, Cell::Value(&owned), out);
        }
        Cell::Value(Value::Null) => return Err(NOT_NULLABLE.to_string()),
        Cell::Value(v) => v,
    };
    let mismatch = || format!("a {} value cannot be written to a {text} column", v.kind());
    match scalar {
        Scalar::Int { bytes, signed } => {
            let i = int(v, *bytes, *signed, text)?;
            out.extend_from_slice(&i.to_le_bytes()[..*bytes]);
        }
        Scalar::Float32 => out.extend_from_slice(&(float(v)? as f32).to_le_bytes()),
        Scalar::Float64 => out.extend_from_slice(&float(v)?.to_le_bytes()),
        Scalar::Decimal {
            bytes,
            precision,
            scale,
        } => {
            let m = decimal(v, *scale, *precision)?;
            out.extend_from_slice(&m.to_le_bytes()[..*bytes]);
        }
        Scalar::String => match v {
            Value::String(s) => put_bytes(out, s.as_bytes()),
            // A Date32 travels as its text (see the dialect).
            Value::Date(d) => put_bytes(out, sluice_core::schema::format_date(d).as_bytes()),
            other => put_bytes(out, text_of(other).as_bytes()),
        },
        Scalar::FixedString(n) => {
            let owned;
            let bytes = match v {
                Value::String(s) => s.as_bytes(),
                other => {
                    owned = text_of(other);
                    owned.as_bytes()
                }
            };
            if bytes.len() > *n {
                return Err(format!(
                    "the value is {} bytes long, more than the column's FixedString({n})",
                    bytes.len()
                ));
            }
            out.extend_from_slice(bytes);
            out.resize(out.len() + n - bytes.len(), 0);
        }
        Scalar::Uuid => {
            let u = match v {
                Value::Uuid(u) => *u,
                Value::String(s) => {
                    uuid::Uuid::parse_str(s.trim()).map_err(|_| format!("`{s}` is not a UUID"))?
                }
                _ => return Err(mismatch()),
            };
            // Two little-endian halves, the high one first.
            let (high, low) = u.as_u64_pair();
            out.extend_from_slice(&high.to_le_bytes());
            out.extend_from_slice(&low.to_le_bytes());
        }
        Scalar::Date => {
            let d = match v {
                Value::Date(d) => *d,
                Value::DateTime(dt) => dt.date_naive(),
                _ => return Err(mismatch()),
            };
            out.extend_from_slice(&date(d)?.to_le_bytes());
        }
        Scalar::DateTime => {
            let dt = instant(v).ok_or_else(mismatch)?;
            let secs = u32::try_from(dt.timestamp()).map_err(|_| {
                format!("{dt} is outside the range of DateTime (1970-01-01 to 2106-02-07 UTC)")
            })?;
            out.extend_from_slice(&secs.to_le_bytes());
        }
        Scalar::DateTime64(precision) => {
            let dt = instant(v).ok_or_else(mismatch)?;
            out.extend_from_slice(&datetime64_ticks(&dt, *precision)?.to_le_bytes());
        }
        Scalar::Ipv4 => {
            let Value::String(s) = v else {
                return Err(mismatch());
            };
            let a: std::net::Ipv4Addr = s
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not an IPv4 address"))?;
            out.extend_from_slice(&u32::from(a).to_le_bytes());
        }
        Scalar::Ipv6 => {
            let Value::String(s) = v else {
                return Err(mismatch());
            };
            let t = s.trim();
            let a = t
                .parse::<std::net::Ipv6Addr>()
                .or_else(|_| t.parse::<std::net::Ipv4Addr>().map(|a| a.to_ipv6_mapped()))
                .map_err(|_| format!("`{s}` is not an IP address"))?;
            out.extend_from_slice(&a.octets());
        }
        Scalar::Enum8(values) | Scalar::Enum16(values) => {
            let Value::String(s) = v else {
                return Err(mismatch());
            };
            let n = values
                .iter()
                .find(|(l, _)| l == s)
                .map(|(_, n)| *n)
                .ok_or_else(|| enum_message(s, values.iter().map(|(l, _)| l)))?;
            if matches!(scalar, Scalar::Enum8(_)) {
                out.push(n as u8);
            } else {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    Ok(())
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::DateTime(dt) => Some(*dt),
        Value::Date(d) => Some(d.and_hms_opt(0, 0, 0)?.and_utc()),
        _ => None,
    }
}

fn enum_message<'a>(given: &str, labels: impl Iterator<Item = &'a String>) -> String {
    let labels: Vec<&str> = labels.map(String::as_str).collect();
    format!(
        "`{given}` is not one of the Enum's values ({})",
        labels.join(", ")
    )
}

fn json_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::String(s.as_str().into()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_value).collect()),
        other => Value::json(other.clone()),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Json(j) => j.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.to_string(),
    }
}

/// An integer within the range of a `bytes`-wide type (as i128, so every UInt64 fits).
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
        Value::Decimal(d) if d.fract().is_zero() => d
            .mantissa()
            .checked_div(10i128.pow(d.scale()))
            .unwrap_or_default(),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not a whole number"))?,
        other => return Err(format!("a {} value is not a whole number", other.kind())),
    };
    if i < min || i > max {
        return Err(format!("{i} is out of range for {ty} ({min} to {max})"));
    }
    Ok(i)
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Decimal(d) => d
            .to_string()
            .parse()
            .map_err(|_| format!("{d} is not a number")),
        other => Err(format!("a {} value is not a number", other.kind())),
    }
}

/// The mantissa of `v` at `scale`, with at most `precision` digits; digits past the scale are refused
/// rather than rounded away.
fn decimal(v: &Value, scale: u32, precision: u32) -> Result<i128, String> {
    let d = match v {
        Value::Decimal(d) => *d,
        Value::Int(i) => Decimal::from(*i),
        Value::Float(f) => {
            Decimal::try_from(*f).map_err(|_| format!("{f} is not a decimal number"))?
        }
        other => return Err(format!("a {} value is not a decimal number", other.kind())),
    };
    let mut rescaled = d.normalize();
    if rescaled.scale() > scale {
        return Err(format!(
            "{d} has more than {scale} digits after the decimal point"
        ));
    }
    rescaled.rescale(scale);
    if rescaled.scale() != scale {
        return Err(format!(
            "{d} does not fit the column's Decimal({precision}, {scale})"
        ));
    }
    let m = rescaled.mantissa();
    if m.unsigned_abs() >= 10u128.pow(precision) {
        return Err(format!(
            "{d} has more digits than the column's Decimal({precision}, {scale}) allows"
        ));
    }
    Ok(m)
}

/// Days since the epoch, as a `Date` holds them.
fn date(d: NaiveDate) -> Result<u16, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    u16::try_from((d - epoch).num_days()).map_err(|_| {
        format!(
            "{d} is outside the range of Date (1970-01-01 to 2149-06-06); a Date32 column holds it (year {})",
            d.year()
        )
    })
}

/// Ticks of 10^-precision seconds since the epoch (negative before it).
pub fn datetime64_ticks(dt: &DateTime<Utc>, precision: u32) -> Result<i64, String> {
    let p = precision.min(9);
    let ticks = i128::from(dt.timestamp()) * 10i128.pow(p)
        + i128::from(dt.timestamp_subsec_nanos()) / 10i128.pow(9 - p);
    i64::try_from(ticks).map_err(|_| format!("{dt} is outside the range of DateTime64({p})"))
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
