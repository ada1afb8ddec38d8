//! Typed values: what mapping expressions compute and what destinations bind.
//!
//! A [`Value`] is produced from a normalized profile document (see [`crate::schema`]) by
//! [`Value::from_json`], computed on by mapping expressions, converted to a destination column's type by
//! [`crate::convert`], and finally bound as a parameter by a destination — never pasted into SQL.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::schema::{self, PropertyType};

/// The text of a [`Value::String`]: up to 24 bytes are kept inline, without an allocation. A run makes a
/// dozen text values per row and most are short (names, codes, cities), so allocating and freeing each
/// was a tenth of a run's CPU.
pub type Text = compact_str::CompactString;

/// A typed value.
///
/// `repr(C, u8)` fixes the layout that [`Value::nulls`] and the in-place readers rely on: the first byte
/// is the tag, numbered in the order the variants are declared, and every payload starts on a word. So
/// `Null` must stay the first variant (a zeroed `Value` is `Null`); the order of the others may change.
#[derive(Debug, Clone, PartialEq)]
#[repr(C, u8)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    String(Text),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(DateTime<Utc>),
    Uuid(uuid::Uuid),
    /// Any JSON value: `json` properties, whole objects, arrays bound to JSON columns. Boxed: a JSON value
    /// is 72 bytes, and every other value of a row would pay for that room.
    Json(Box<Json>),
    Array(Vec<Value>),
    Bytes(Vec<u8>),
}

impl Value {
    /// A JSON value.
    pub fn json(j: Json) -> Value {
        Value::Json(Box::new(j))
    }

    /// The value with a JSON null or string taken out of its box (as `Null` or `String`), so that one
    /// pattern matches both forms; other values are unchanged.
    pub fn unbox_json(self) -> Value {
        match self {
            Value::Json(j) => match *j {
                Json::Null => Value::Null,
                Json::String(s) => Value::String(s.into()),
                other => Value::Json(Box::new(other)),
            },
            other => other,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Name of the value's kind, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Decimal(_) => "decimal",
            Value::String(_) => "string",
            Value::Date(_) => "date",
            Value::Time(_) => "time",
            Value::DateTime(_) => "datetime",
            Value::Uuid(_) => "uuid",
            Value::Json(_) => "json",
            Value::Array(_) => "array",
            Value::Bytes(_) => "bytes",
        }
    }

    /// Reads a normalized JSON value of Customer Model type `ty`. Values that do not parse (which
    /// validation prevents) become their JSON form rather than a panic.
    pub fn from_json(json: &Json, ty: &PropertyType) -> Value {
        if json.is_null() {
            return Value::Null;
        }
        let parsed = match ty {
            PropertyType::String => json.as_str().map(|s| Value::String(s.into())),
            PropertyType::Boolean => json.as_bool().map(Value::Bool),
            PropertyType::Int => json.as_i64().map(Value::Int),
            PropertyType::Float => json.as_f64().map(Value::Float),
            PropertyType::Decimal { .. } => match json {
                Json::String(s) => s.parse().ok().map(Value::Decimal),
                Json::Number(n) => n.to_string().parse().ok().map(Value::Decimal),
                _ => None,
            },
            PropertyType::DateTime => json
                .as_str()
                .and_then(|s| schema::parse_datetime(s).ok())
                .map(Value::DateTime),
            PropertyType::Date => json.as_str().and_then(schema::parse_date).map(Value::Date),
            PropertyType::Time => json
                .as_str()
                .and_then(|s| schema::parse_time(s).ok())
                .map(Value::Time),
            PropertyType::Uuid => json
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .map(Value::Uuid),
            PropertyType::Json | PropertyType::Object(_) => Some(Value::json(json.clone())),
            PropertyType::Array(inner) => json.as_array().map(|items| {
                Value::Array(items.iter().map(|i| Value::from_json(i, inner)).collect())
            }),
        };
        parsed.unwrap_or_else(|| Value::json(json.clone()))
    }

    /// What [`Value::from_json`] gives for `v`'s JSON form ([`Value::to_json`]): a value already of the
    /// type is copied as it is where its JSON form reads back to the very same value; anything else goes
    /// through the JSON form, so both readings agree.
    pub fn from_row_value(v: &Value, ty: &PropertyType) -> Value {
        use chrono::{Datelike, Timelike};
        let plain_year = |y: i32| (1..=9999).contains(&y);
        match (v, ty) {
            (Value::String(s), PropertyType::String) => Value::String(s.clone()),
            (Value::Bool(b), PropertyType::Boolean) => Value::Bool(*b),
            (Value::Int(i), PropertyType::Int) => Value::Int(*i),
            (Value::Float(f), PropertyType::Float) if f.is_finite() => Value::Float(*f),
            (Value::Uuid(u), PropertyType::Uuid) => Value::Uuid(*u),
            (Value::Date(d), PropertyType::Date) if plain_year(d.year()) => Value::Date(*d),
            (Value::DateTime(t), PropertyType::DateTime)
                if plain_year(t.year()) && t.nanosecond() < 1_000_000_000 =>
            {
                Value::DateTime(*t)
            }
            _ => Value::from_json(&v.to_json(), ty),
        }
    }

    /// What [`Value::from_json`] gives for the JSON text `raw` (a value found by [`crate::raw`]), without
    /// building the JSON value when it is a plain scalar; anything else goes through the parsed form, so
    /// both readings agree.
    pub fn from_raw(raw: &str, ty: &PropertyType) -> Value {
        let mut out = Value::Null;
        Value::from_raw_into(raw, ty, &mut out);
        out
    }

    /// [`Value::from_raw`] written into `out`, where the value stays: see [`Value::set_text`] for why.
    pub fn from_raw_into(raw: &str, ty: &PropertyType, out: &mut Value) {
        if raw == "null" {
            out.clear();
            return;
        }
        let text = || crate::raw::string(raw);
        let done = match ty {
            PropertyType::String => text().map(|s| out.set_text(&s)).is_some(),
            PropertyType::Boolean => match raw {
                "true" => {
                    *out = Value::Bool(true);
                    true
                }
                "false" => {
                    *out = Value::Bool(false);
                    true
                }
                _ => false,
            },
            // Only plain integers: the parsed form has its own rules for `1.0`, `1e3` and out-of-range ones.
            PropertyType::Int => {
                let digits = raw.strip_prefix('-').unwrap_or(raw);
                let parsed = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| raw.parse().ok())
                    .flatten();
                parsed.map(|i| *out = Value::Int(i)).is_some()
            }
            PropertyType::Float => serde_json::from_str::<f64>(raw)
                .map(|f| *out = Value::Float(f))
                .is_ok(),
            PropertyType::Decimal { .. } => text()
                .and_then(|s| s.parse().ok())
                .map(|d| *out = Value::Decimal(d))
                .is_some(),
            PropertyType::DateTime => text()
                .and_then(|s| schema::parse_datetime(&s).ok())
                .map(|t| *out = Value::DateTime(t))
                .is_some(),
            PropertyType::Date => text()
                .and_then(|s| schema::parse_date(&s))
                .map(|d| *out = Value::Date(d))
                .is_some(),
            PropertyType::Time => text()
                .and_then(|s| schema::parse_time(&s).ok())
                .map(|t| *out = Value::Time(t))
                .is_some(),
            PropertyType::Uuid => text()
                .and_then(|s| uuid::Uuid::parse_str(&s).ok())
                .map(|u| *out = Value::Uuid(u))
                .is_some(),
            PropertyType::Array(inner) => {
                let mut items = Vec::new();
                let read = crate::raw::each_item(raw, |item| {
                    items.push(Value::Null);
                    let slot = items.last_mut().expect("just pushed");
                    Value::from_raw_into(item, inner, slot);
                });
                read.map(|()| *out = Value::Array(items)).is_some()
            }
            PropertyType::Json | PropertyType::Object(_) => false,
        };
        if !done {
            *out = match serde_json::from_str::<Json>(raw) {
                Ok(json) => Value::from_json(&json, ty),
                // The locator only hands out text the parser accepted.
                Err(_) => Value::Null,
            };
        }
    }

    /// Makes this value null; a null is left untouched (nothing is written).
    pub fn clear(&mut self) {
        if !self.is_null() {
            *self = Value::Null;
        }
    }

    /// `n` nulls, written as zero bytes. Cloning `Null` into each place stores its one tag byte, and
    /// the copy that follows reads whole words across it, which the processor must wait for (see
    /// [`Value::set_text`]).
    pub fn nulls(n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        // SAFETY: `Value` is `repr(C, u8)`: its first byte is the tag, and tag 0 is `Null` (the first
        // variant), which has no fields, so `n` zeroed values are `n` valid nulls (a test checks this); the
        // capacity is at least `n`.
        unsafe {
            std::ptr::write_bytes(out.as_mut_ptr(), 0, n);
            out.set_len(n);
        }
        out
    }

    /// Makes this value the text `s`, writing the text where it stays. Building a text value apart and
    /// moving it into place had the processor wait on its own stores (a load spanning several
    /// just-written stores cannot be served from them): about a tenth of a mapping's time, paid per move.
    pub fn set_text(&mut self, s: &str) {
        // Copied from memory that was not just written: building the empty text in place made the
        // compiler zero a temporary and copy it over, which stalled in the same way.
        static EMPTY: Value = Value::String(Text::const_new(""));
        drop(std::mem::replace(self, Value::Null));
        // SAFETY: `self` is a null (nothing to drop), and an empty text is stored inline: a copy of its
        // bytes is a value of its own, sharing nothing with the original.
        unsafe { std::ptr::copy_nonoverlapping(&EMPTY, self, 1) };
        if let Value::String(t) = self {
            t.push_str(s);
        }
    }

    /// The JSON form of the value, in the normalized formats of [`crate::schema`].
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Value::Decimal(d) => Json::String(d.to_string()),
            Value::String(s) => Json::String(s.to_string()),
            Value::Date(d) => Json::String(schema::format_date(d)),
            Value::Time(t) => Json::String(schema::format_time(t)),
            Value::DateTime(dt) => Json::String(schema::format_datetime(dt)),
            Value::Uuid(u) => Json::String(u.hyphenated().to_string()),
            Value::Json(j) => (**j).clone(),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        }
    }
}

impl fmt::Display for Value {
    /// Plain text of the value: strings unquoted, everything else as its JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::String(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(x) => write!(f, "{x}"),
            other => match other.to_json() {
                Json::String(s) => f.write_str(&s),
                j => write!(f, "{j}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_values_are_nulls() {
        let row = Value::nulls(5);
        assert_eq!(row, vec![Value::Null; 5]);
        assert_eq!(Value::nulls(0), Vec::<Value>::new());
    }

    #[test]
    fn reading_into_a_place_replaces_what_it_held() {
        let cases = [
            ("null", PropertyType::String, Value::Null),
            (r#""x""#, PropertyType::String, Value::String("x".into())),
            ("12", PropertyType::Int, Value::Int(12)),
            (
                r#"["a"]"#,
                PropertyType::Array(Box::new(PropertyType::String)),
                Value::Array(vec![Value::String("a".into())]),
            ),
        ];
        for (raw, ty, want) in cases {
            for before in [
                Value::Null,
                Value::Int(1),
                Value::String("old".repeat(20).into()),
            ] {
                let mut v = before;
                Value::from_raw_into(raw, &ty, &mut v);
                assert_eq!(v, want, "{raw}");
                assert_eq!(Value::from_raw(raw, &ty), want, "{raw}");
            }
        }
    }

    #[test]
    fn text_set_in_place_is_the_text_whatever_its_length() {
        for s in ["", "short", "exactly twenty-four byte", &"long ".repeat(20)] {
            let mut v = Value::Int(1);
            v.set_text(s);
            assert_eq!(v, Value::String(Text::from(s)));
        }
    }
}
