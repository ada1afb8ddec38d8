//! Sluice values into the values of a native block, for a column's wire type ([`super::dialect::wire_type`])
//! — pure, unit-tested here.
//!
//! The checks a database would otherwise make happen here, each with a message naming the problem: a
//! value out of the integer type's range, a NULL for a column that is not `Nullable`, text longer than a
//! `FixedString`, a date or instant the type cannot hold, a decimal with more digits than the column. They
//! fail the batch with [`crate::ErrorKind::BadData`], so the isolating writer finds the row. (Native blocks
//! carry typed data: the server never sees a value it would have to parse.)

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use klickhouse::{Type, Value as Ch};
use rust_decimal::Decimal;
use sluice_core::Value;

/// `value` as a value of type `ty`; the message says what does not fit.
pub fn encode(value: &Value, ty: &Type) -> Result<Ch, String> {
    match (ty, value) {
        (Type::Nullable(_), Value::Null) => Ok(Ch::Null),
        (Type::Nullable(inner), v) => encode(v, inner),
        (Type::LowCardinality(inner), v) => encode(v, inner),
        (_, Value::Null) => Err("NULL is not allowed: the column is not Nullable".to_string()),
        (Type::Array(inner), Value::Array(items)) => Ok(Ch::Array(
            items
                .iter()
                .map(|i| encode(i, inner))
                .collect::<Result<_, _>>()?,
        )),
        (Type::Array(inner), Value::Json(serde_json::Value::Array(items))) => Ok(Ch::Array(
            items
                .iter()
                .map(|j| encode(&json_value(j), inner))
                .collect::<Result<_, _>>()?,
        )),
        (Type::Int8, v) => int(v, ty).map(|i| Ch::Int8(i as i8)),
        (Type::Int16, v) => int(v, ty).map(|i| Ch::Int16(i as i16)),
        (Type::Int32, v) => int(v, ty).map(|i| Ch::Int32(i as i32)),
        (Type::Int64, v) => int(v, ty).map(|i| Ch::Int64(i as i64)),
        (Type::UInt8, v) => int(v, ty).map(|i| Ch::UInt8(i as u8)),
        (Type::UInt16, v) => int(v, ty).map(|i| Ch::UInt16(i as u16)),
        (Type::UInt32, v) => int(v, ty).map(|i| Ch::UInt32(i as u32)),
        (Type::UInt64, v) => int(v, ty).map(|i| Ch::UInt64(i as u64)),
        (Type::Float32, v) => float(v).map(|f| Ch::Float32(f as f32)),
        (Type::Float64, v) => float(v).map(Ch::Float64),
        (Type::Decimal32(s), v) => decimal(v, *s, 9).map(|m| Ch::Decimal32(*s, m as i32)),
        (Type::Decimal64(s), v) => decimal(v, *s, 18).map(|m| Ch::Decimal64(*s, m as i64)),
        (Type::Decimal128(s), v) => decimal(v, *s, 38).map(|m| Ch::Decimal128(*s, m)),
        // A Date32 travels as its text (see the dialect).
        (Type::String, Value::Date(d)) => {
            Ok(Ch::String(d.format("%Y-%m-%d").to_string().into_bytes()))
        }
        (Type::String, v) => Ok(Ch::String(text(v).into_bytes())),
        (Type::FixedString(n), v) => {
            let bytes = text(v).into_bytes();
            if bytes.len() > *n {
                return Err(format!(
                    "the value is {} bytes long, more than the column's FixedString({n})",
                    bytes.len()
                ));
            }
            Ok(Ch::String(bytes))
        }
        (Type::Uuid, Value::Uuid(u)) => Ok(Ch::Uuid(*u)),
        (Type::Uuid, Value::String(s)) => uuid::Uuid::parse_str(s.trim())
            .map(Ch::Uuid)
            .map_err(|_| format!("`{s}` is not a UUID")),
        (Type::Date, Value::Date(d)) => date(*d),
        (Type::Date, Value::DateTime(dt)) => date(dt.date_naive()),
        (Type::DateTime(tz), Value::DateTime(dt)) => {
            let secs = dt.timestamp();
            u32::try_from(secs)
                .map(|s| Ch::DateTime(klickhouse::DateTime(*tz, s)))
                .map_err(|_| {
                    format!("{dt} is outside the range of DateTime (1970-01-01 to 2106-02-07 UTC)")
                })
        }
        (Type::DateTime(_) | Type::DateTime64(..), Value::Date(d)) => encode(
            &Value::DateTime(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc()),
            ty,
        ),
        (Type::DateTime64(precision, tz), Value::DateTime(dt)) => datetime64_ticks(dt, *precision)
            .map(|t| Ch::DateTime64(klickhouse::DynDateTime64(*tz, t, *precision))),
        (Type::Ipv4, Value::String(s)) => s
            .trim()
            .parse()
            .map(|a| Ch::Ipv4(klickhouse::Ipv4(a)))
            .map_err(|_| format!("`{s}` is not an IPv4 address")),
        (Type::Ipv6, Value::String(s)) => {
            let t = s.trim();
            t.parse::<std::net::Ipv6Addr>()
                .or_else(|_| t.parse::<std::net::Ipv4Addr>().map(|a| a.to_ipv6_mapped()))
                .map(|a| Ch::Ipv6(klickhouse::Ipv6(a)))
                .map_err(|_| format!("`{s}` is not an IP address"))
        }
        (Type::Enum8(entries), Value::String(s)) => entries
            .iter()
            .find(|(l, _)| l == s)
            .map(|(_, n)| Ch::Enum8(*n))
            .ok_or_else(|| enum_message(s, entries.iter().map(|(l, _)| l))),
        (Type::Enum16(entries), Value::String(s)) => entries
            .iter()
            .find(|(l, _)| l == s)
            .map(|(_, n)| Ch::Enum16(*n))
            .ok_or_else(|| enum_message(s, entries.iter().map(|(l, _)| l))),
        (ty, v) => Err(format!(
            "a {} value cannot be written to a {ty} column",
            v.kind()
        )),
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
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_value).collect()),
        other => Value::Json(other.clone()),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Uuid(u) => u.hyphenated().to_string(),
        Value::Json(j) => j.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.to_string(),
    }
}

/// An integer within the range of `ty` (as i128, so every UInt64 fits).
fn int(v: &Value, ty: &Type) -> Result<i128, String> {
    let (min, max): (i128, i128) = match ty {
        Type::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Type::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Type::Int32 => (i32::MIN.into(), i32::MAX.into()),
        Type::Int64 => (i64::MIN.into(), i64::MAX.into()),
        Type::UInt8 => (0, u8::MAX.into()),
        Type::UInt16 => (0, u16::MAX.into()),
        Type::UInt32 => (0, u32::MAX.into()),
        _ => (0, u64::MAX.into()),
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
fn decimal(v: &Value, scale: usize, precision: u32) -> Result<i128, String> {
    let d = match v {
        Value::Decimal(d) => *d,
        Value::Int(i) => Decimal::from(*i),
        Value::Float(f) => {
            Decimal::try_from(*f).map_err(|_| format!("{f} is not a decimal number"))?
        }
        other => return Err(format!("a {} value is not a decimal number", other.kind())),
    };
    let scale = scale as u32;
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
            "{d} has more digits than the column's precision allows"
        ));
    }
    Ok(m)
}

fn date(d: NaiveDate) -> Result<Ch, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let days = (d - epoch).num_days();
    u16::try_from(days)
        .map(|n| Ch::Date(klickhouse::Date(n)))
        .map_err(|_| {
            format!(
                "{d} is outside the range of Date (1970-01-01 to 2149-06-06); a Date32 column holds it (year {})",
                d.year()
            )
        })
}

/// Ticks of 10^-precision seconds since the epoch.
pub fn datetime64_ticks(dt: &DateTime<Utc>, precision: usize) -> Result<u64, String> {
    let p = precision.min(9) as u32;
    let ticks = i128::from(dt.timestamp()) * 10i128.pow(p)
        + i128::from(dt.timestamp_subsec_nanos()) / 10i128.pow(9 - p);
    u64::try_from(ticks)
        .map_err(|_| format!("{dt} is before 1970, which Sluice cannot write to DateTime64"))
}

/// The value of a version column for a run: it grows from run to run at the column type's resolution.
/// `run_version` is the run's start in microseconds since the epoch.
pub fn version_value(ty: &Type, run_version: u64) -> Result<Ch, String> {
    let secs = run_version / 1_000_000;
    let at = DateTime::<Utc>::from_timestamp_micros(run_version as i64)
        .ok_or("the run's version is not a time")?;
    Ok(match ty {
        Type::UInt64 => Ch::UInt64(run_version),
        Type::Int64 => Ch::Int64(run_version as i64),
        Type::UInt32 => Ch::UInt32(secs as u32),
        Type::Int32 => Ch::Int32(secs as i32),
        Type::DateTime(tz) => Ch::DateTime(klickhouse::DateTime(*tz, secs as u32)),
        Type::DateTime64(p, tz) => Ch::DateTime64(klickhouse::DynDateTime64(
            *tz,
            datetime64_ticks(&at, *p)?,
            *p,
        )),
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
    use klickhouse::Tz;
    use std::str::FromStr;

    fn t(s: &str) -> Type {
        Type::from_str(s).unwrap()
    }

    #[test]
    fn integers_in_range() {
        assert_eq!(
            encode(&Value::Int(-128), &t("Int8")).unwrap(),
            Ch::Int8(-128)
        );
        assert!(encode(&Value::Int(128), &t("Int8"))
            .unwrap_err()
            .contains("out of range"));
        assert!(encode(&Value::Int(-1), &t("UInt64")).is_err());
        assert_eq!(
            encode(&Value::Int(i64::MAX), &t("UInt64")).unwrap(),
            Ch::UInt64(i64::MAX as u64)
        );
        assert_eq!(
            encode(&Value::Bool(true), &Type::UInt8).unwrap(),
            Ch::UInt8(1)
        );
    }

    #[test]
    fn nulls_and_wrappers() {
        let ty = t("Nullable(String)");
        assert_eq!(encode(&Value::Null, &ty).unwrap(), Ch::Null);
        assert!(encode(&Value::Null, &t("String"))
            .unwrap_err()
            .contains("not Nullable"));
        let ty = t("Array(Nullable(Int32))");
        assert_eq!(
            encode(&Value::Array(vec![Value::Int(1), Value::Null]), &ty).unwrap(),
            Ch::Array(vec![Ch::Int32(1), Ch::Null])
        );
        let ty = t("LowCardinality(Nullable(String))");
        assert_eq!(
            encode(&Value::String("a".into()), &ty).unwrap(),
            Ch::String(b"a".to_vec())
        );
        assert_eq!(encode(&Value::Null, &ty).unwrap(), Ch::Null);
    }

    #[test]
    fn text_types() {
        assert!(encode(&Value::String("abc".into()), &t("FixedString(2)"))
            .unwrap_err()
            .contains("FixedString(2)"));
        assert_eq!(
            encode(&Value::String("10.1.2.3".into()), &t("IPv4")).unwrap(),
            Ch::Ipv4(klickhouse::Ipv4("10.1.2.3".parse().unwrap()))
        );
        assert!(encode(&Value::String("::1".into()), &t("IPv6")).is_ok());
        assert!(encode(&Value::String("nope".into()), &t("IPv6")).is_err());
        let e = t("Enum8('free' = 1, 'pro' = 2)");
        assert_eq!(
            encode(&Value::String("pro".into()), &e).unwrap(),
            Ch::Enum8(2)
        );
        assert!(encode(&Value::String("gold".into()), &e)
            .unwrap_err()
            .contains("free, pro"));
        let d = NaiveDate::from_ymd_opt(1900, 1, 2).unwrap();
        assert_eq!(
            encode(&Value::Date(d), &Type::String).unwrap(),
            Ch::String(b"1900-01-02".to_vec())
        );
    }

    #[test]
    fn decimals_exact() {
        let ty = t("Decimal(38, 10)");
        let d = Decimal::from_str("123456789012345678.0123456789").unwrap();
        assert_eq!(
            encode(&Value::Decimal(d), &ty).unwrap(),
            Ch::Decimal128(10, 1234567890123456780123456789)
        );
        let ty = t("Decimal(5, 2)");
        assert_eq!(
            encode(&Value::Decimal(Decimal::from_str("-123.4").unwrap()), &ty).unwrap(),
            Ch::Decimal32(2, -12340)
        );
        assert!(encode(&Value::Decimal(Decimal::from_str("1.234").unwrap()), &ty).is_err());
        // The block carries Decimal32 (nine digits); a narrower column's precision is the server's to check.
        assert!(encode(
            &Value::Decimal(Decimal::from_str("12345678.5").unwrap()),
            &ty
        )
        .is_err());
    }

    #[test]
    fn dates_and_instants() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            encode(&Value::Date(d), &Type::Date).unwrap(),
            Ch::Date(klickhouse::Date(19782))
        );
        assert!(encode(
            &Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
            &Type::Date
        )
        .is_err());
        let dt = DateTime::parse_from_rfc3339("2024-03-31T01:30:00.5+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            encode(&Value::DateTime(dt), &t("DateTime('UTC')")).unwrap(),
            Ch::DateTime(klickhouse::DateTime(Tz::UTC, 1711841400))
        );
        assert_eq!(
            encode(&Value::DateTime(dt), &t("DateTime64(3, 'UTC')")).unwrap(),
            Ch::DateTime64(klickhouse::DynDateTime64(Tz::UTC, 1711841400500, 3))
        );
        let before = DateTime::parse_from_rfc3339("1969-07-20T20:17:40Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(encode(&Value::DateTime(before), &t("DateTime('UTC')")).is_err());
    }

    #[test]
    fn version_values_grow() {
        let run = 1_700_000_000_123_456u64;
        assert_eq!(version_value(&Type::UInt64, run).unwrap(), Ch::UInt64(run));
        assert_eq!(
            version_value(&Type::UInt32, run).unwrap(),
            Ch::UInt32(1_700_000_000)
        );
        assert_eq!(
            version_value(&t("DateTime('UTC')"), run).unwrap(),
            Ch::DateTime(klickhouse::DateTime(Tz::UTC, 1_700_000_000))
        );
        assert_eq!(
            version_value(&t("DateTime64(6, 'UTC')"), run).unwrap(),
            Ch::DateTime64(klickhouse::DynDateTime64(Tz::UTC, run, 6))
        );
        assert!(version_value(&Type::UInt8, run)
            .unwrap_err()
            .contains("too small"));
    }
}
