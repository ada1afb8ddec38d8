//! Conversion of values to destination column types.
//!
//! The same rules serve visual mapping, JavaScript and Python, so a value converts the same way whatever
//! produced it. A visual mapping also checks them *statically* when the pipeline is saved ([`compat`]): a
//! conversion that can never succeed is refused then, one that depends on the data (parsing text, range
//! checks) is left to run time, where a failure makes that one row fail with the reason.
//!
//! `null` always converts to `null`; whether the column accepts it is the caller's check. A JSON value
//! (`Value::Json`) holding a scalar converts like that scalar: a JSON string like text, a JSON number like a
//! number, `true`/`false` like a boolean, JSON `null` like `null`.
//!
//! | column type | accepted values (✓ always, ◐ checked when the row is written, anything else is refused) | written as |
//! |---|---|---|
//! | `Text { max_len }` | ✓ every scalar, in its normalized text form (`true`, `42`, `12.50`, `2024-05-13`, `15:30:00`, `2024-05-13T15:30:00Z`, lower-case UUID); ✓ arrays, objects and JSON as compact JSON text (a JSON string as its content); ◐ binary when it is UTF-8. ◐ With a `max_len`, at most that many *characters* (not bytes): longer text is refused, never cut | `Value::String` |
//! | `Int { bits, unsigned }` | ✓ int; ◐ float and decimal with no fractional part; ◐ text holding an integer (`" 42 "`, `"1e3"`, `"42.0"`); ◐ everything within the column's range (`Int{16,false}`: -32768…32767, `Int{8,true}`: 0…255; 64-bit unsigned columns reach only 9223372036854775807). Booleans are refused | `Value::Int` |
//! | `Float { bits }` | ✓ int, float, decimal; ◐ text holding a number; ◐ finite, and within ±3.4e38 for 32-bit columns | `Value::Float` |
//! | `Decimal { precision, scale }` | ✓ int, decimal; ◐ float (its shortest decimal text: `0.1` is `0.1`); ◐ text holding a number (`"12.5"`, `"1.5e3"`). ◐ At most `scale` digits after the point and `precision - scale` before it: a value that would need rounding is **refused, never rounded** (round it explicitly, e.g. `round(x, 2)`), as silently changing money is worse than a failed row. The value is rescaled to the column's scale (`12.5` → `12.50`). An unconstrained column takes the value as it is; a column with a precision but no scale has scale 0 | `Value::Decimal` |
//! | `Bool` | ✓ boolean; ◐ int `0`/`1`; ◐ text `true`/`false`, `t`/`f`, `yes`/`no`, `y`/`n`, `1`/`0` (any case, surrounding spaces ignored) | `Value::Bool` |
//! | `Date` | ✓ date; ✓ datetime (its UTC date); ◐ text `YYYY-MM-DD` or an RFC 3339 datetime (its UTC date) | `Value::Date` |
//! | `Time` | ✓ time; ✓ datetime (its UTC time of day); ◐ text `hh:mm[:ss[.ffffff]]` | `Value::Time` |
//! | `Timestamp { with_tz }` | ✓ datetime; ✓ date (midnight UTC); ◐ text: RFC 3339 (`2024-05-13T17:30:00+02:00` is 15:30 UTC), `YYYY-MM-DD hh:mm:ss` (UTC) or `YYYY-MM-DD` (midnight UTC). Values are instants in UTC; a column without time zone receives the UTC wall-clock time | `Value::DateTime` |
//! | `Uuid` | ✓ uuid; ◐ text in any usual UUID form (hyphenated, simple, braced, `urn:uuid:`); ◐ 16 bytes of binary | `Value::Uuid` |
//! | `Json` | ✓ anything: text becomes a JSON *string* (use `json_parse` to read JSON text), arrays and objects their JSON form. ◐ Floats must be finite | `Value::Json` |
//! | `Binary` | ✓ binary; ✓ text (its UTF-8 bytes); ✓ uuid (its 16 bytes) | `Value::Bytes` |
//! | `Enum { values }` | ◐ text (or a JSON string) that is exactly one of the values (case-sensitive) | `Value::String` |
//! | `Array { element }` | ◐ arrays and JSON arrays whose every element converts to `element` (null elements stay null) | `Value::Array` |
//!
//! Error messages describe the problem without quoting the value, so that a run's error log groups the
//! failing rows by reason rather than listing one group per distinct bad value.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::mapping::Type;
use crate::schema;
use crate::table::ColumnType;
use crate::value::{Text, Value};
use compact_str::ToCompactString;

/// Whether a value of a static type can be written to a column type (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    /// Every value of the type converts.
    Always,
    /// Some values convert: the check happens for each row.
    Checked,
    /// No value of the type converts: refused when the pipeline is saved.
    Never,
}

/// The static side of [`to_column`]: whether values of type `from` can be written to a column of type `to`.
pub fn compat(from: &Type, to: &ColumnType) -> Compat {
    use Compat::*;
    use Type as T;
    // Null and the unknown type say nothing about the values, and JSON is only known when the row is read.
    match from {
        T::Null => return Always,
        T::Any => return Checked,
        T::Json if !matches!(to, ColumnType::Json) => return Checked,
        _ => {}
    }
    match to {
        ColumnType::Json => Always,
        ColumnType::Text { max_len } => match (from, max_len) {
            (_, Some(_)) => Checked,
            _ => Always,
        },
        ColumnType::Int { bits, unsigned } => match from {
            T::Int if *bits >= 64 && !unsigned => Always,
            T::Int | T::Float | T::Decimal | T::String => Checked,
            _ => Never,
        },
        ColumnType::Float { bits } => match from {
            T::Int | T::Decimal => Always,
            T::Float if *bits >= 64 => Always,
            T::Float | T::String => Checked,
            _ => Never,
        },
        ColumnType::Decimal { precision, scale } => match from {
            T::Int | T::Decimal if precision.is_none() && scale.is_none() => Always,
            T::Int | T::Decimal | T::Float | T::String => Checked,
            _ => Never,
        },
        ColumnType::Bool => match from {
            T::Boolean => Always,
            T::Int | T::String => Checked,
            _ => Never,
        },
        ColumnType::Date => match from {
            T::Date | T::DateTime => Always,
            T::String => Checked,
            _ => Never,
        },
        ColumnType::Time => match from {
            T::Time | T::DateTime => Always,
            T::String => Checked,
            _ => Never,
        },
        ColumnType::Timestamp { .. } => match from {
            T::DateTime | T::Date => Always,
            T::String => Checked,
            _ => Never,
        },
        ColumnType::Uuid => match from {
            T::Uuid => Always,
            T::String => Checked,
            _ => Never,
        },
        ColumnType::Binary => match from {
            T::String | T::Uuid => Always,
            _ => Never,
        },
        ColumnType::Enum { .. } => match from {
            T::String => Checked,
            _ => Never,
        },
        ColumnType::Array { element } => match from {
            T::Array(inner) => match compat(inner, element) {
                Never => Never,
                _ => Checked,
            },
            _ => Never,
        },
    }
}

/// Whether `value` already has the column type `ty`, as [`to_column`] would give it.
fn fits_as_is(value: &Value, ty: &ColumnType) -> bool {
    match (value, ty) {
        (Value::Null, _)
        | (Value::String(_), ColumnType::Text { max_len: None })
        | (Value::Bool(_), ColumnType::Bool)
        | (Value::Date(_), ColumnType::Date)
        | (Value::DateTime(_), ColumnType::Timestamp { .. }) => true,
        (Value::Float(f), ColumnType::Float { bits }) => *bits > 32 && f.is_finite(),
        _ => false,
    }
}

/// [`to_column`] in place: a value that already has its column's type is not moved at all, and
/// integers, decimals and arrays of the column's kind are checked or adjusted where they are (moving a
/// value out and back costs a stall, see [`Value::set_text`]).
pub fn to_column_in_place(value: &mut Value, ty: &ColumnType) -> Result<(), String> {
    if fits_as_is(value, ty) {
        return Ok(());
    }
    match (&mut *value, ty) {
        (Value::Int(i), ColumnType::Int { bits, unsigned }) => {
            let (min, max) = int_range(*bits, *unsigned);
            if (min..=max).contains(i) {
                return Ok(());
            }
        }
        (Value::Decimal(d), ColumnType::Decimal { precision, scale }) => {
            *d = fit(*d, *precision, *scale)?;
            return Ok(());
        }
        (Value::Array(items), ColumnType::Array { element }) => {
            for (i, item) in items.iter_mut().enumerate() {
                to_column_in_place(item, element).map_err(|e| format!("element {}: {e}", i + 1))?;
            }
            return Ok(());
        }
        _ => {}
    }
    *value = to_column(std::mem::replace(value, Value::Null), ty)?;
    Ok(())
}

/// Converts `value` to a value the destination can bind for a column of type `ty`; the error says why not
/// (without naming the column: the caller adds it).
pub fn to_column(value: Value, ty: &ColumnType) -> Result<Value, String> {
    // Most values already have their column's type and pass unchanged: the general path below moves each
    // through two conversions, a tenth of a transformation's time.
    if fits_as_is(&value, ty) {
        return Ok(value);
    }
    if let ColumnType::Json = ty {
        return json(value).map(|j| {
            if j.is_null() {
                Value::Null
            } else {
                Value::json(j)
            }
        });
    }
    let value = lift(value);
    if value.is_null() {
        return Ok(Value::Null);
    }
    match ty {
        ColumnType::Json => unreachable!("handled above"),
        ColumnType::Text { max_len } => {
            let s = text(value)?;
            if let Some(max) = max_len {
                check_len(&s, *max as usize)?;
            }
            Ok(Value::String(s))
        }
        ColumnType::Int { bits, unsigned } => {
            let i = int(value)?;
            let (min, max) = int_range(*bits, *unsigned);
            if i < min || i > max {
                let kind = if *unsigned {
                    "unsigned integer"
                } else {
                    "integer"
                };
                return Err(format!(
                    "out of range for a {}-bit {kind} column ({min} to {max})",
                    bits_or_64(*bits)
                ));
            }
            Ok(Value::Int(i))
        }
        ColumnType::Float { bits } => {
            let f = float(value)?;
            if *bits <= 32 && f.abs() > f32::MAX as f64 {
                return Err("out of range for a 32-bit float column".into());
            }
            Ok(Value::Float(f))
        }
        ColumnType::Decimal { precision, scale } => {
            let d = decimal(value)?;
            fit(d, *precision, *scale).map(Value::Decimal)
        }
        ColumnType::Bool => boolean(value).map(Value::Bool),
        ColumnType::Date => date(value).map(Value::Date),
        ColumnType::Time => time(value).map(Value::Time),
        ColumnType::Timestamp { .. } => datetime(value).map(Value::DateTime),
        ColumnType::Uuid => uuid(value).map(Value::Uuid),
        ColumnType::Binary => match value {
            Value::Bytes(b) => Ok(Value::Bytes(b)),
            Value::String(s) => Ok(Value::Bytes(s.into_string().into_bytes())),
            Value::Uuid(u) => Ok(Value::Bytes(u.as_bytes().to_vec())),
            other => Err(cannot(&other, "binary data")),
        },
        ColumnType::Enum { values } => {
            let s = match value {
                Value::String(s) => s,
                other => return Err(cannot(&other, "an enum value")),
            };
            if values.iter().any(|v| v.as_str() == s.as_str()) {
                Ok(Value::String(s))
            } else {
                Err(format!(
                    "the text is not one of the column's values ({})",
                    list_values(values)
                ))
            }
        }
        ColumnType::Array { element } => {
            let items: Vec<Value> = match value {
                Value::Array(items) => items,
                Value::Json(j) if j.is_array() => match *j {
                    Json::Array(items) => items.into_iter().map(Value::json).collect(),
                    _ => unreachable!("an array"),
                },
                other => return Err(cannot(&other, "an array")),
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    to_column(item, element).map_err(|e| format!("element {}: {e}", i + 1))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
    }
}

/// A JSON scalar as the typed value it holds; arrays and objects stay JSON.
pub fn lift(value: Value) -> Value {
    match value {
        Value::Json(j) => match *j {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(b),
            Json::String(s) => Value::String(s.into()),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Decimal(Decimal::from(u))
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            other => Value::json(other),
        },
        other => other,
    }
}

/// "cannot convert a boolean to an integer"
fn cannot(value: &Value, target: &str) -> String {
    let kind = match value {
        Value::Json(j) if j.is_array() => "array",
        Value::Json(j) if j.is_object() => "object",
        other => other.kind(),
    };
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("cannot convert {article} {kind} to {target}")
}

fn bits_or_64(bits: u8) -> u8 {
    if bits == 0 || bits > 64 {
        64
    } else {
        bits
    }
}

/// The inclusive range of an integer column, clamped to what `Value::Int` holds.
pub fn int_range(bits: u8, unsigned: bool) -> (i64, i64) {
    let bits = bits_or_64(bits) as u32;
    let (min, max): (i128, i128) = if unsigned {
        (0, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    };
    (
        min.max(i64::MIN as i128) as i64,
        max.min(i64::MAX as i128) as i64,
    )
}

fn check_len(s: &str, max: usize) -> Result<(), String> {
    // The byte length bounds the character count, so short text never pays for counting.
    if s.len() > max && s.chars().count() > max {
        return Err(format!(
            "the text is longer than the column's limit of {max} characters; shorten it, e.g. with left(…, {max})"
        ));
    }
    Ok(())
}

fn list_values(values: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut out = values
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        out.push_str(&format!(", … {} more", values.len() - SHOWN));
    }
    out
}

/// The text form of a non-null value (see the module's table); `null` gives empty text.
pub fn text(value: Value) -> Result<Text, String> {
    Ok(match value {
        Value::Null => Text::default(),
        Value::String(s) => s,
        Value::Bool(b) => b.to_compact_string(),
        Value::Int(i) => i.to_compact_string(),
        // Not `to_compact_string`, which writes 2.0 where Display writes 2.
        Value::Float(f) if f.is_finite() => compact_str::format_compact!("{f}"),
        Value::Float(_) => return Err("the number is not finite".into()),
        Value::Decimal(d) => d.to_compact_string(),
        Value::Date(d) => schema::format_date(&d).into(),
        Value::Time(t) => schema::format_time(&t).into(),
        Value::DateTime(dt) => schema::format_datetime(&dt).into(),
        Value::Uuid(u) => u.hyphenated().to_compact_string(),
        Value::Json(j) => match *j {
            Json::String(s) => s.into(),
            j => j.to_string().into(),
        },
        Value::Array(_) => json(value)?.to_string().into(),
        Value::Bytes(b) => {
            Text::from_utf8(b).map_err(|_| "the binary data is not valid UTF-8 text".to_string())?
        }
    })
}

/// A 64-bit integer from a non-null value.
pub fn int(value: Value) -> Result<i64, String> {
    match lift(value) {
        Value::Int(i) => Ok(i),
        Value::Float(f) => {
            if !f.is_finite() || f.fract() != 0.0 {
                Err("the number is not a whole number".into())
            } else if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) {
                Err("the number is out of the range of 64-bit integers".into())
            } else {
                Ok(f as i64)
            }
        }
        Value::Decimal(d) => decimal_to_int(d),
        Value::String(s) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return Ok(i);
            }
            match parse_decimal(t) {
                Some(d) => decimal_to_int(d),
                None => Err("the text is not an integer".into()),
            }
        }
        other => Err(cannot(&other, "an integer")),
    }
}

fn decimal_to_int(d: Decimal) -> Result<i64, String> {
    if !d.fract().is_zero() {
        return Err("the number is not a whole number".into());
    }
    d.to_i64()
        .ok_or_else(|| "the number is out of the range of 64-bit integers".into())
}

/// A finite float from a non-null value.
pub fn float(value: Value) -> Result<f64, String> {
    let f = match lift(value) {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
        Value::Decimal(d) => d.to_f64().unwrap_or(f64::NAN),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| "the text is not a number".to_string())?,
        other => return Err(cannot(&other, "a float")),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err("the number is not finite".into())
    }
}

fn parse_decimal(t: &str) -> Option<Decimal> {
    Decimal::from_str(t).ok().or_else(|| {
        if t.contains(['e', 'E']) {
            Decimal::from_scientific(t).ok()
        } else {
            None
        }
    })
}

/// An exact decimal from a non-null value (floats through their shortest decimal text, so `0.1` is `0.1`).
pub fn decimal(value: Value) -> Result<Decimal, String> {
    match lift(value) {
        Value::Int(i) => Ok(Decimal::from(i)),
        Value::Decimal(d) => Ok(d),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err("the number is not finite".into());
            }
            parse_decimal(&f.to_string())
                .ok_or_else(|| "the number is out of the range of exact decimals".into())
        }
        Value::String(s) => {
            parse_decimal(s.trim()).ok_or_else(|| "the text is not a decimal number".into())
        }
        other => Err(cannot(&other, "a decimal")),
    }
}

/// Fits a decimal to `numeric(precision, scale)`, refusing values that would need rounding.
///
/// The same rules as [`schema::fit_decimal`], with messages that do not quote the value and without
/// assuming `scale <= precision` (PostgreSQL accepts `numeric(2,5)`).
pub fn fit(d: Decimal, precision: Option<u8>, scale: Option<u8>) -> Result<Decimal, String> {
    if precision.is_none() && scale.is_none() {
        return Ok(d);
    }
    let scale = scale.unwrap_or(0) as u32;
    let mut d = d.normalize();
    if d.scale() > scale {
        return Err(format!(
            "the number has more than {scale} digits after the decimal point (the column's scale); round it \
             explicitly, e.g. with round(…, {scale})"
        ));
    }
    // rust_decimal holds at most 28 fractional digits; the database pads a larger scale itself.
    d.rescale(scale.min(Decimal::MAX_SCALE));
    if let Some(p) = precision {
        let allowed = (p as u32).saturating_sub(scale);
        // More than `allowed` integer digits means |d| ≥ 10^allowed; no Decimal reaches 10^29, and comparing
        // avoids formatting every value to count its digits.
        if allowed <= Decimal::MAX_SCALE
            && d.abs() >= Decimal::from_i128_with_scale(10i128.pow(allowed), 0)
        {
            return Err(format!(
                "the number does not fit the column's decimal({p},{scale}): at most {allowed} digits before the \
                 decimal point"
            ));
        }
    }
    Ok(d)
}

/// A boolean from a non-null value.
pub fn boolean(value: Value) -> Result<bool, String> {
    match lift(value) {
        Value::Bool(b) => Ok(b),
        Value::Int(0) => Ok(false),
        Value::Int(1) => Ok(true),
        Value::Int(_) => Err("only the integers 0 and 1 convert to a boolean".into()),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "0" => Ok(false),
            _ => Err("the text is not a boolean (true/false, yes/no, 1/0)".into()),
        },
        other => Err(cannot(&other, "a boolean")),
    }
}

/// A date from a non-null value.
pub fn date(value: Value) -> Result<NaiveDate, String> {
    match lift(value) {
        Value::Date(d) => Ok(d),
        Value::DateTime(dt) => Ok(dt.date_naive()),
        Value::String(s) => {
            let t = s.trim();
            schema::parse_date(t)
                .or_else(|| schema::parse_datetime(t).ok().map(|dt| dt.date_naive()))
                .ok_or_else(|| "the text is not a date (YYYY-MM-DD)".into())
        }
        other => Err(cannot(&other, "a date")),
    }
}

/// A time of day from a non-null value.
pub fn time(value: Value) -> Result<NaiveTime, String> {
    match lift(value) {
        Value::Time(t) => Ok(t),
        Value::DateTime(dt) => Ok(dt.time()),
        Value::String(s) => {
            schema::parse_time(&s).map_err(|_| "the text is not a time (hh:mm:ss)".into())
        }
        other => Err(cannot(&other, "a time")),
    }
}

/// An instant from a non-null value.
pub fn datetime(value: Value) -> Result<chrono::DateTime<chrono::Utc>, String> {
    match lift(value) {
        Value::DateTime(dt) => Ok(dt),
        Value::Date(d) => Ok(d.and_time(NaiveTime::MIN).and_utc()),
        Value::String(s) => {
            let t = s.trim();
            schema::parse_datetime(t)
                .ok()
                .or_else(|| schema::parse_date(t).map(|d| d.and_time(NaiveTime::MIN).and_utc()))
                .ok_or_else(|| {
                    "the text is not an RFC 3339 datetime (such as 2024-05-13T15:30:00Z)".into()
                })
        }
        other => Err(cannot(&other, "a datetime")),
    }
}

/// A UUID from a non-null value.
pub fn uuid(value: Value) -> Result<uuid::Uuid, String> {
    match lift(value) {
        Value::Uuid(u) => Ok(u),
        Value::String(s) => {
            uuid::Uuid::parse_str(s.trim()).map_err(|_| "the text is not a UUID".into())
        }
        Value::Bytes(b) => uuid::Uuid::from_slice(&b)
            .map_err(|_| "binary data of other than 16 bytes is not a UUID".into()),
        other => Err(cannot(&other, "a UUID")),
    }
}

/// The JSON form of any value; non-finite floats, which JSON cannot spell, are refused.
pub fn json(value: Value) -> Result<Json, String> {
    fn check(v: &Value) -> Result<(), String> {
        match v {
            Value::Float(f) if !f.is_finite() => {
                Err("the number is not finite, which JSON cannot represent".into())
            }
            Value::Array(items) => items.iter().try_for_each(check),
            _ => Ok(()),
        }
    }
    match value {
        Value::Json(j) => Ok(*j),
        Value::String(s) => Ok(Json::String(s.into_string())),
        other => {
            check(&other)?;
            Ok(other.to_json())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn s(x: &str) -> Value {
        Value::String(x.into())
    }

    fn dec(x: &str) -> Decimal {
        Decimal::from_str(x).unwrap()
    }

    #[test]
    fn conversion_in_place_agrees_with_conversion() {
        let values = [
            Value::Null,
            Value::Int(7),
            Value::Int(300),
            Value::Int(-1),
            Value::Int(i64::MAX),
            Value::Decimal(dec("12.345")),
            Value::Decimal(dec("123456789012.5")),
            Value::Float(2.5),
            Value::Float(f64::NAN),
            s("42"),
            s("x"),
            Value::Bool(true),
            Value::Array(vec![s("a"), Value::Int(3)]),
            Value::Array(vec![Value::Int(1), Value::Int(1000)]),
            Value::json(json!([1, "b"])),
        ];
        let int = |bits, unsigned| ColumnType::Int { bits, unsigned };
        let types = [
            int(8, true),
            int(8, false),
            int(32, false),
            int(64, false),
            ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2),
            },
            ColumnType::Decimal {
                precision: None,
                scale: None,
            },
            ColumnType::Float { bits: 64 },
            ColumnType::Text { max_len: None },
            ColumnType::Text { max_len: Some(1) },
            ColumnType::Bool,
            ColumnType::Array {
                element: Box::new(ColumnType::Text { max_len: None }),
            },
            ColumnType::Array {
                element: Box::new(int(8, true)),
            },
            ColumnType::Json,
        ];
        for v in &values {
            for ty in &types {
                let mut here = v.clone();
                let in_place = to_column_in_place(&mut here, ty).map(|()| here);
                assert_eq!(in_place, to_column(v.clone(), ty), "{v:?} as {ty:?}");
            }
        }
    }

    fn text_col(max: Option<u32>) -> ColumnType {
        ColumnType::Text { max_len: max }
    }

    fn int_col(bits: u8, unsigned: bool) -> ColumnType {
        ColumnType::Int { bits, unsigned }
    }

    fn dec_col(p: Option<u8>, s: Option<u8>) -> ColumnType {
        ColumnType::Decimal {
            precision: p,
            scale: s,
        }
    }

    fn ok(v: Value, ty: &ColumnType) -> Value {
        to_column(v.clone(), ty).unwrap_or_else(|e| panic!("{v:?} into {ty:?}: {e}"))
    }

    fn err(v: Value, ty: &ColumnType) -> String {
        to_column(v.clone(), ty).expect_err(&format!("{v:?} into {ty:?} should fail"))
    }

    #[test]
    fn null_passes_through_every_type() {
        for ty in [
            text_col(Some(1)),
            int_col(8, true),
            ColumnType::Float { bits: 32 },
            dec_col(Some(1), Some(0)),
            ColumnType::Bool,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp { with_tz: true },
            ColumnType::Uuid,
            ColumnType::Json,
            ColumnType::Binary,
            ColumnType::Enum {
                values: vec!["a".into()],
            },
            ColumnType::Array {
                element: Box::new(ColumnType::Bool),
            },
        ] {
            assert_eq!(ok(Value::Null, &ty), Value::Null);
            assert_eq!(ok(Value::json(Json::Null), &ty), Value::Null);
        }
    }

    #[test]
    fn text_from_every_scalar() {
        let t = text_col(None);
        assert_eq!(ok(s("héllo"), &t), s("héllo"));
        assert_eq!(ok(Value::Bool(true), &t), s("true"));
        assert_eq!(ok(Value::Int(-42), &t), s("-42"));
        assert_eq!(ok(Value::Float(1.5), &t), s("1.5"));
        assert_eq!(ok(Value::Float(2.0), &t), s("2"));
        assert_eq!(ok(Value::Decimal(dec("12.50")), &t), s("12.50"));
        assert_eq!(
            ok(
                Value::Date(NaiveDate::from_ymd_opt(2024, 5, 13).unwrap()),
                &t
            ),
            s("2024-05-13")
        );
        assert_eq!(
            ok(Value::Time(NaiveTime::from_hms_opt(7, 5, 0).unwrap()), &t),
            s("07:05:00")
        );
        let dt = Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap();
        assert_eq!(ok(Value::DateTime(dt), &t), s("2024-05-13T15:30:00Z"));
        let u = uuid::Uuid::parse_str("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap();
        assert_eq!(
            ok(Value::Uuid(u), &t),
            s("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        );
        assert_eq!(
            ok(Value::json(json!({"a": [1, "x"]})), &t),
            s(r#"{"a":[1,"x"]}"#)
        );
        assert_eq!(ok(Value::json(json!("plain")), &t), s("plain"));
        assert_eq!(ok(Value::json(json!(3)), &t), s("3"));
        assert_eq!(
            ok(Value::Array(vec![s("a"), Value::Int(1), Value::Null]), &t),
            s(r#"["a",1,null]"#)
        );
        assert_eq!(ok(Value::Bytes(b"raw".to_vec()), &t), s("raw"));
        assert!(err(Value::Bytes(vec![0xff, 0xfe]), &t).contains("not valid UTF-8"));
        assert!(err(Value::Float(f64::NAN), &t).contains("not finite"));
    }

    #[test]
    fn text_length_counts_characters() {
        let t = text_col(Some(5));
        assert_eq!(ok(s("héllo"), &t), s("héllo")); // 6 bytes, 5 characters
        assert_eq!(ok(s("😀😀😀😀😀"), &t), s("😀😀😀😀😀")); // 20 bytes
        assert_eq!(ok(s(""), &t), s(""));
        let e = err(s("😀😀😀😀😀😀"), &t);
        assert_eq!(e, "the text is longer than the column's limit of 5 characters; shorten it, e.g. with left(…, 5)");
        assert!(err(s("abcdef"), &t).contains("limit of 5"));
        assert!(err(Value::Int(123456), &t).contains("limit of 5"));
        // A combining accent is its own character, as databases count it.
        assert!(err(s("he\u{301}llo"), &t).contains("limit of 5"));
    }

    #[test]
    fn integer_ranges() {
        let i16c = int_col(16, false);
        assert_eq!(ok(Value::Int(32767), &i16c), Value::Int(32767));
        assert_eq!(ok(Value::Int(-32768), &i16c), Value::Int(-32768));
        assert_eq!(
            err(Value::Int(32768), &i16c),
            "out of range for a 16-bit integer column (-32768 to 32767)"
        );
        assert!(err(Value::Int(-32769), &i16c).contains("out of range"));
        let u8c = int_col(8, true);
        assert_eq!(ok(Value::Int(0), &u8c), Value::Int(0));
        assert_eq!(ok(Value::Int(255), &u8c), Value::Int(255));
        assert_eq!(
            err(Value::Int(256), &u8c),
            "out of range for a 8-bit unsigned integer column (0 to 255)"
        );
        assert!(err(Value::Int(-1), &u8c).contains("0 to 255"));
        let i8c = int_col(8, false);
        assert!(err(Value::Int(128), &i8c).contains("-128 to 127"));
        let i32c = int_col(32, false);
        assert_eq!(
            ok(Value::Int(i32::MAX as i64), &i32c),
            Value::Int(2147483647)
        );
        assert!(err(Value::Int(i32::MAX as i64 + 1), &i32c).contains("out of range"));
        let u32c = int_col(32, true);
        assert_eq!(
            ok(Value::Int(u32::MAX as i64), &u32c),
            Value::Int(4294967295)
        );
        let i64c = int_col(64, false);
        assert_eq!(ok(Value::Int(i64::MIN), &i64c), Value::Int(i64::MIN));
        assert_eq!(int_range(64, true), (0, i64::MAX));
        assert_eq!(int_range(24, true), (0, 16_777_215));
    }

    #[test]
    fn integers_from_other_values() {
        let c = int_col(64, false);
        assert_eq!(ok(Value::Float(3.0), &c), Value::Int(3));
        assert_eq!(
            err(Value::Float(3.5), &c),
            "the number is not a whole number"
        );
        assert!(err(Value::Float(1e19), &c).contains("out of the range"));
        assert_eq!(ok(Value::Decimal(dec("12.000")), &c), Value::Int(12));
        assert!(err(Value::Decimal(dec("12.01")), &c).contains("whole number"));
        assert_eq!(ok(s(" 42 "), &c), Value::Int(42));
        assert_eq!(ok(s("-7"), &c), Value::Int(-7));
        assert_eq!(ok(s("42.0"), &c), Value::Int(42));
        assert_eq!(ok(s("1e3"), &c), Value::Int(1000));
        assert_eq!(err(s("forty"), &c), "the text is not an integer");
        assert_eq!(
            err(Value::Bool(true), &c),
            "cannot convert a boolean to an integer"
        );
        assert_eq!(ok(Value::json(json!(5)), &c), Value::Int(5));
        assert_eq!(ok(Value::json(json!("6")), &c), Value::Int(6));
        assert!(err(Value::json(json!([1])), &c).contains("cannot convert an array"));
        assert!(err(
            Value::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
            &c
        )
        .contains("a date"));
    }

    #[test]
    fn floats() {
        let c = ColumnType::Float { bits: 64 };
        assert_eq!(ok(Value::Int(2), &c), Value::Float(2.0));
        assert_eq!(ok(Value::Decimal(dec("0.1")), &c), Value::Float(0.1));
        assert_eq!(ok(s("1.5e2"), &c), Value::Float(150.0));
        assert_eq!(ok(Value::Float(1e300), &c), Value::Float(1e300));
        assert!(err(s("x"), &c).contains("not a number"));
        assert!(err(Value::Float(f64::INFINITY), &c).contains("not finite"));
        assert!(err(s("NaN"), &c).contains("not finite"));
        let c32 = ColumnType::Float { bits: 32 };
        assert!(err(Value::Float(1e300), &c32).contains("32-bit"));
        assert_eq!(ok(Value::Float(3.0e38), &c32), Value::Float(3.0e38));
        assert!(err(Value::Bool(true), &c).contains("boolean"));
    }

    #[test]
    fn decimals_are_exact_and_never_rounded() {
        let c = dec_col(Some(6), Some(2));
        assert_eq!(
            ok(Value::Decimal(dec("12.5")), &c),
            Value::Decimal(dec("12.50"))
        );
        let Value::Decimal(d) = ok(Value::Decimal(dec("12.5")), &c) else {
            panic!()
        };
        assert_eq!(d.to_string(), "12.50");
        assert_eq!(ok(Value::Int(9999), &c), Value::Decimal(dec("9999.00")));
        assert!(err(Value::Int(10000), &c).contains("decimal(6,2): at most 4 digits before"));
        assert_eq!(
            ok(Value::Decimal(dec("-9999.99")), &c),
            Value::Decimal(dec("-9999.99"))
        );
        let e = err(Value::Decimal(dec("1.005")), &c);
        assert!(
            e.contains("more than 2 digits after the decimal point") && e.contains("round(…, 2)"),
            "{e}"
        );
        assert_eq!(
            ok(Value::Decimal(dec("1.50000")), &c),
            Value::Decimal(dec("1.50"))
        );
        assert_eq!(ok(Value::Float(0.1), &c), Value::Decimal(dec("0.10")));
        assert!(err(Value::Float(0.1 + 0.2), &c).contains("more than 2 digits"));
        assert_eq!(ok(s(" 12.34 "), &c), Value::Decimal(dec("12.34")));
        assert_eq!(ok(s("1.5e2"), &c), Value::Decimal(dec("150.00")));
        assert!(err(s("12,34"), &c).contains("not a decimal"));
        assert!(err(Value::Bool(false), &c).contains("boolean"));
        // JSON numbers too large for i64 stay exact.
        assert_eq!(
            ok(
                Value::json(json!(18446744073709551615u64)),
                &dec_col(None, None)
            )
            .to_string(),
            "18446744073709551615"
        );
    }

    #[test]
    fn decimal_precision_without_scale_and_unconstrained() {
        assert_eq!(
            ok(Value::Decimal(dec("12.50")), &dec_col(None, None)),
            Value::Decimal(dec("12.50"))
        );
        assert_eq!(
            ok(Value::Decimal(dec("42")), &dec_col(Some(3), None)),
            Value::Decimal(dec("42"))
        );
        assert!(
            err(Value::Decimal(dec("4.2")), &dec_col(Some(3), None)).contains("more than 0 digits")
        );
        assert!(err(Value::Int(1000), &dec_col(Some(3), None)).contains("at most 3 digits"));
        // numeric(2,5): only values below 0.001 fit, and nothing panics on the odd declaration.
        assert_eq!(
            ok(Value::Decimal(dec("0.00012")), &dec_col(Some(2), Some(5))),
            Value::Decimal(dec("0.00012"))
        );
        // A scale beyond what rust_decimal holds is padded by the database.
        assert_eq!(
            ok(Value::Int(1), &dec_col(Some(38), Some(30)))
                .to_string()
                .len(),
            30
        );
        assert_eq!(
            ok(Value::Decimal(dec("0.5")), &dec_col(Some(1), Some(1))),
            Value::Decimal(dec("0.5"))
        );
        assert_eq!(
            ok(Value::Decimal(dec("0")), &dec_col(Some(1), Some(1))),
            Value::Decimal(dec("0.0"))
        );
    }

    #[test]
    fn fit_agrees_with_profile_normalization() {
        for (v, p, s) in [
            ("99999999999999.99", 16, 2),
            ("100", 4, 2),
            ("99.99", 4, 2),
            ("1.005", 4, 2),
            ("1.50000", 4, 2),
            ("-0.5", 1, 1),
            ("123", 3, 0),
            ("1234", 3, 0),
            ("0.001", 5, 3),
        ] {
            let d = dec(v);
            let ours = fit(d, Some(p), Some(s));
            let theirs = schema::fit_decimal(d, p, s);
            assert_eq!(ours.is_ok(), theirs.is_ok(), "{v} into decimal({p},{s})");
            if let (Ok(a), Ok(b)) = (ours, theirs) {
                assert_eq!(a.to_string(), b.to_string());
            }
        }
    }

    #[test]
    fn booleans() {
        let c = ColumnType::Bool;
        for t in ["true", "TRUE", " yes ", "Y", "1", "t"] {
            assert_eq!(ok(s(t), &c), Value::Bool(true), "{t}");
        }
        for f in ["false", "No", "0", "F", "n"] {
            assert_eq!(ok(s(f), &c), Value::Bool(false), "{f}");
        }
        assert!(err(s("maybe"), &c).contains("not a boolean"));
        assert_eq!(ok(Value::Int(1), &c), Value::Bool(true));
        assert_eq!(ok(Value::Int(0), &c), Value::Bool(false));
        assert!(err(Value::Int(2), &c).contains("0 and 1"));
        assert!(err(Value::Float(1.0), &c).contains("float"));
        assert_eq!(ok(Value::json(json!(true)), &c), Value::Bool(true));
    }

    #[test]
    fn dates_times_and_time_zones() {
        let d = NaiveDate::from_ymd_opt(2024, 5, 13).unwrap();
        let dt = Utc.with_ymd_and_hms(2024, 5, 13, 23, 30, 0).unwrap();
        assert_eq!(ok(Value::Date(d), &ColumnType::Date), Value::Date(d));
        assert_eq!(ok(Value::DateTime(dt), &ColumnType::Date), Value::Date(d));
        assert_eq!(ok(s("2024-05-13"), &ColumnType::Date), Value::Date(d));
        // 23:30 in New York is the next day in UTC.
        assert_eq!(
            ok(s("2024-05-13T23:30:00-04:00"), &ColumnType::Date),
            Value::Date(NaiveDate::from_ymd_opt(2024, 5, 14).unwrap())
        );
        assert!(err(s("13/05/2024"), &ColumnType::Date).contains("YYYY-MM-DD"));
        assert!(err(s("2024-02-30"), &ColumnType::Date).contains("not a date"));
        assert!(err(Value::Int(1), &ColumnType::Date).contains("cannot convert an int to a date"));

        assert_eq!(
            ok(Value::DateTime(dt), &ColumnType::Time),
            Value::Time(NaiveTime::from_hms_opt(23, 30, 0).unwrap())
        );
        assert_eq!(
            ok(s("07:30"), &ColumnType::Time),
            Value::Time(NaiveTime::from_hms_opt(7, 30, 0).unwrap())
        );
        assert_eq!(
            ok(s("07:30:01.250"), &ColumnType::Time),
            Value::Time(NaiveTime::from_hms_milli_opt(7, 30, 1, 250).unwrap())
        );
        assert!(err(s("25:00"), &ColumnType::Time).contains("not a time"));

        for with_tz in [true, false] {
            let c = ColumnType::Timestamp { with_tz };
            assert_eq!(ok(Value::DateTime(dt), &c), Value::DateTime(dt));
            assert_eq!(
                ok(s("2024-05-13T17:30:00+02:00"), &c),
                Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap())
            );
            assert_eq!(
                ok(s("2024-05-13 15:30:00"), &c),
                Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 15, 30, 0).unwrap())
            );
            assert_eq!(
                ok(Value::Date(d), &c),
                Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 0, 0, 0).unwrap())
            );
            assert_eq!(
                ok(s("2024-05-13"), &c),
                Value::DateTime(Utc.with_ymd_and_hms(2024, 5, 13, 0, 0, 0).unwrap())
            );
            assert!(err(s("yesterday"), &c).contains("RFC 3339"));
            assert!(err(Value::Int(1715614200), &c).contains("cannot convert an int"));
        }
    }

    #[test]
    fn uuids_binary_and_json() {
        let u = uuid::Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").unwrap();
        for form in [
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(ok(s(form), &ColumnType::Uuid), Value::Uuid(u), "{form}");
        }
        assert!(err(s("nope"), &ColumnType::Uuid).contains("not a UUID"));
        assert_eq!(
            ok(Value::Bytes(u.as_bytes().to_vec()), &ColumnType::Uuid),
            Value::Uuid(u)
        );

        assert_eq!(
            ok(s("é"), &ColumnType::Binary),
            Value::Bytes(vec![0xc3, 0xa9])
        );
        assert_eq!(
            ok(Value::Uuid(u), &ColumnType::Binary),
            Value::Bytes(u.as_bytes().to_vec())
        );
        assert!(err(Value::Int(1), &ColumnType::Binary).contains("binary"));

        let j = ColumnType::Json;
        assert_eq!(ok(s(r#"{"a":1}"#), &j), Value::json(json!(r#"{"a":1}"#)));
        assert_eq!(
            ok(Value::json(json!({"a": 1})), &j),
            Value::json(json!({"a": 1}))
        );
        assert_eq!(ok(Value::Int(3), &j), Value::json(json!(3)));
        assert_eq!(
            ok(Value::Decimal(dec("1.50")), &j),
            Value::json(json!("1.50"))
        );
        assert_eq!(
            ok(Value::Array(vec![Value::Bool(true), Value::Null]), &j),
            Value::json(json!([true, null]))
        );
        assert!(err(Value::Float(f64::NAN), &j).contains("not finite"));
        assert!(err(Value::Array(vec![Value::Float(f64::INFINITY)]), &j).contains("not finite"));
    }

    #[test]
    fn enums_and_arrays() {
        let e = ColumnType::Enum {
            values: vec!["gold".into(), "silver".into()],
        };
        assert_eq!(ok(s("gold"), &e), s("gold"));
        assert_eq!(
            err(s("Gold"), &e),
            "the text is not one of the column's values (gold, silver)"
        );
        assert_eq!(ok(Value::json(json!("silver")), &e), s("silver"));
        assert!(err(Value::Int(1), &e).contains("cannot convert an int"));
        let many = ColumnType::Enum {
            values: (0..15).map(|i| format!("v{i}")).collect(),
        };
        assert!(err(s("x"), &many).contains("… 5 more"));

        let a = ColumnType::Array {
            element: Box::new(int_col(16, false)),
        };
        assert_eq!(
            ok(Value::Array(vec![Value::Int(1), s("2"), Value::Null]), &a),
            Value::Array(vec![Value::Int(1), Value::Int(2), Value::Null])
        );
        assert_eq!(
            ok(Value::json(json!([1, "2"])), &a),
            Value::Array(vec![Value::Int(1), Value::Int(2)])
        );
        assert_eq!(
            err(Value::Array(vec![Value::Int(1), Value::Int(40000)]), &a),
            "element 2: out of range for a 16-bit integer column (-32768 to 32767)"
        );
        assert!(err(s("1,2"), &a).contains("cannot convert a string to an array"));
        let nested = ColumnType::Array {
            element: Box::new(text_col(Some(2))),
        };
        assert!(
            err(Value::Array(vec![s("abc")]), &nested).starts_with("element 1: the text is longer")
        );
    }

    #[test]
    fn static_rules_match_the_table() {
        use Compat::*;
        let i16c = int_col(16, false);
        assert_eq!(compat(&Type::Boolean, &i16c), Never);
        assert_eq!(compat(&Type::Int, &i16c), Checked);
        assert_eq!(compat(&Type::Int, &int_col(64, false)), Always);
        assert_eq!(compat(&Type::String, &i16c), Checked);
        assert_eq!(compat(&Type::Date, &i16c), Never);
        assert_eq!(compat(&Type::String, &ColumnType::Date), Checked);
        assert_eq!(compat(&Type::DateTime, &ColumnType::Date), Always);
        assert_eq!(compat(&Type::Time, &ColumnType::Date), Never);
        assert_eq!(
            compat(&Type::Date, &ColumnType::Timestamp { with_tz: true }),
            Always
        );
        assert_eq!(compat(&Type::Boolean, &text_col(None)), Always);
        assert_eq!(compat(&Type::Boolean, &text_col(Some(3))), Checked);
        assert_eq!(
            compat(&Type::Array(Box::new(Type::Int)), &text_col(None)),
            Always
        );
        assert_eq!(compat(&Type::Object, &ColumnType::Json), Always);
        assert_eq!(compat(&Type::Object, &ColumnType::Uuid), Never);
        assert_eq!(compat(&Type::Json, &ColumnType::Uuid), Checked);
        assert_eq!(compat(&Type::Null, &ColumnType::Uuid), Always);
        assert_eq!(compat(&Type::Any, &ColumnType::Bool), Checked);
        assert_eq!(compat(&Type::Int, &ColumnType::Bool), Checked);
        assert_eq!(compat(&Type::Float, &ColumnType::Bool), Never);
        assert_eq!(compat(&Type::Int, &dec_col(None, None)), Always);
        assert_eq!(compat(&Type::Int, &dec_col(Some(5), Some(2))), Checked);
        assert_eq!(compat(&Type::Uuid, &ColumnType::Binary), Always);
        assert_eq!(
            compat(&Type::Int, &ColumnType::Enum { values: vec![] }),
            Never
        );
        let arr = ColumnType::Array {
            element: Box::new(ColumnType::Bool),
        };
        assert_eq!(compat(&Type::Array(Box::new(Type::Boolean)), &arr), Checked);
        assert_eq!(compat(&Type::Array(Box::new(Type::Date)), &arr), Never);
        assert_eq!(compat(&Type::String, &arr), Never);
    }

    #[test]
    fn static_rules_agree_with_run_time() {
        // A sample value of each static type: where the static rule says Always, the conversion must succeed;
        // where it says Never, it must fail.
        let samples: Vec<(Type, Value)> = vec![
            (Type::String, s("x")),
            (Type::Boolean, Value::Bool(true)),
            (Type::Int, Value::Int(1)),
            (Type::Float, Value::Float(1.0)),
            (Type::Decimal, Value::Decimal(dec("1.5"))),
            (
                Type::DateTime,
                Value::DateTime(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()),
            ),
            (
                Type::Date,
                Value::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()),
            ),
            (
                Type::Time,
                Value::Time(NaiveTime::from_hms_opt(1, 0, 0).unwrap()),
            ),
            (Type::Uuid, Value::Uuid(uuid::Uuid::nil())),
            (Type::Object, Value::json(json!({"a": 1}))),
            (
                Type::Array(Box::new(Type::Int)),
                Value::Array(vec![Value::Int(1)]),
            ),
        ];
        let columns = [
            text_col(None),
            int_col(64, false),
            ColumnType::Float { bits: 64 },
            dec_col(None, None),
            ColumnType::Bool,
            ColumnType::Date,
            ColumnType::Time,
            ColumnType::Timestamp { with_tz: false },
            ColumnType::Uuid,
            ColumnType::Json,
            ColumnType::Binary,
            ColumnType::Enum {
                values: vec!["x".into()],
            },
            ColumnType::Array {
                element: Box::new(int_col(64, false)),
            },
        ];
        for (ty, v) in &samples {
            for col in &columns {
                let result = to_column(v.clone(), col);
                match compat(ty, col) {
                    Compat::Always => assert!(result.is_ok(), "{ty} into {col:?}: {result:?}"),
                    Compat::Never => {
                        assert!(result.is_err(), "{ty} into {col:?} converted to {result:?}")
                    }
                    Compat::Checked => {}
                }
            }
        }
    }
}
