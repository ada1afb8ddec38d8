//! Binding the parameters of pushed-down filters.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use serde_json::Value as Json;
use sluice_core::filter::SqlParam;
use tokio_postgres::types::{IsNull, ToSql, Type};

/// A filter parameter bound to whatever type PostgreSQL inferred for its placeholder.
///
/// The filter SQL decides the context of each `$n` (`(doc->>'ltv')::numeric > $3`, `$4::timestamptz`,
/// `doc->>'email' = $5`), so a text value may have to arrive as `numeric`, `timestamptz`, `date`, `uuid` or
/// `jsonb`, and an integer as `int4` or `numeric`. Binding by the inferred type, with the conversion
/// PostgreSQL itself would apply to a literal, keeps the pushdown free to write natural SQL.
#[derive(Debug)]
pub(super) struct PgParam(pub(super) SqlParam);

type BindResult = std::result::Result<IsNull, Box<dyn StdError + Sync + Send>>;

fn bind<T: ToSql>(value: T, ty: &Type, out: &mut BytesMut) -> BindResult {
    if !T::accepts(ty) {
        return Err(format!("a filter value cannot be bound to a parameter of type {ty}").into());
    }
    value.to_sql(ty, out)
}

fn parse_as<T: std::str::FromStr>(
    text: &str,
    ty: &Type,
) -> std::result::Result<T, Box<dyn StdError + Sync + Send>> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a valid {ty}").into())
}

impl ToSql for PgParam {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> BindResult {
        match &self.0 {
            SqlParam::Null => Ok(IsNull::Yes),
            SqlParam::Bool(b) => match *ty {
                Type::JSON | Type::JSONB => bind(Json::Bool(*b), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(b.to_string().as_str(), ty, out),
                _ => bind(*b, ty, out),
            },
            SqlParam::Int(i) => match *ty {
                Type::INT2 => bind(i16::try_from(*i)?, ty, out),
                Type::INT4 => bind(i32::try_from(*i)?, ty, out),
                Type::FLOAT4 => bind(*i as f32, ty, out),
                Type::FLOAT8 => bind(*i as f64, ty, out),
                Type::NUMERIC => numeric(&i.to_string(), out),
                Type::JSON | Type::JSONB => bind(Json::from(*i), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(i.to_string().as_str(), ty, out),
                _ => bind(*i, ty, out),
            },
            SqlParam::Float(f) => match *ty {
                Type::FLOAT4 => bind(*f as f32, ty, out),
                Type::NUMERIC if f.is_finite() => numeric(&f.to_string(), out),
                Type::JSON | Type::JSONB => bind(Json::from(*f), ty, out),
                _ if <&str as ToSql>::accepts(ty) => bind(f.to_string().as_str(), ty, out),
                _ => bind(*f, ty, out),
            },
            SqlParam::Text(s) => match *ty {
                Type::NUMERIC => numeric(s, out),
                Type::INT2 => bind(parse_as::<i16>(s, ty)?, ty, out),
                Type::INT4 => bind(parse_as::<i32>(s, ty)?, ty, out),
                Type::INT8 => bind(parse_as::<i64>(s, ty)?, ty, out),
                Type::FLOAT4 => bind(parse_as::<f32>(s, ty)?, ty, out),
                Type::FLOAT8 => bind(parse_as::<f64>(s, ty)?, ty, out),
                Type::BOOL => bind(parse_as::<bool>(s, ty)?, ty, out),
                Type::TIMESTAMPTZ => bind(sluice_core::schema::parse_datetime(s)?, ty, out),
                Type::TIMESTAMP => {
                    bind(sluice_core::schema::parse_datetime(s)?.naive_utc(), ty, out)
                }
                Type::DATE => bind(parse_as::<chrono::NaiveDate>(s, ty)?, ty, out),
                Type::TIME => bind(sluice_core::schema::parse_time(s)?, ty, out),
                Type::UUID => bind(parse_as::<uuid::Uuid>(s, ty)?, ty, out),
                // As for a literal: text given for JSON is JSON text.
                Type::JSON | Type::JSONB => bind(serde_json::from_str::<Json>(s)?, ty, out),
                _ => bind(s.as_str(), ty, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows what it holds.
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Writes a decimal number in the binary form of `numeric`: base-10000 digit groups around the point.
fn numeric(text: &str, out: &mut BytesMut) -> BindResult {
    let t = text.trim();
    let (negative, unsigned) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !digits_only(int)
        || !digits_only(frac)
        || unsigned.len() > 1000
    {
        return Err(format!("`{text}` is not a decimal number").into());
    }
    let int = int.trim_start_matches('0');
    let mut padded = "0".repeat((4 - int.len() % 4) % 4);
    padded.push_str(int);
    let int_groups = padded.len() / 4;
    padded.push_str(frac);
    padded.push_str(&"0".repeat((4 - frac.len() % 4) % 4));
    let mut groups: Vec<i16> = padded
        .as_bytes()
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + i16::from(d - b'0')))
        .collect();
    let mut weight = int_groups as i16 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    });
    out.put_u16(frac.len() as u16);
    for g in groups {
        out.put_i16(g);
    }
    Ok(IsNull::No)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::pool::{chain, server_url, Pool};

    /// Each value through the placeholder type PostgreSQL infers, read back as text.
    #[tokio::test]
    async fn filter_parameters_bind_to_the_inferred_type() {
        let pool = Pool::new(&server_url(), "profiles").unwrap();
        let conn = pool.get().await.unwrap();
        let cases: Vec<(&str, SqlParam, Option<&str>)> = vec![
            (
                "$1::numeric",
                SqlParam::Text("-1234.5600".into()),
                Some("-1234.5600"),
            ),
            (
                "$1::numeric",
                SqlParam::Text("0.00001".into()),
                Some("0.00001"),
            ),
            (
                "$1::numeric",
                SqlParam::Text("100000000".into()),
                Some("100000000"),
            ),
            ("$1::numeric", SqlParam::Text("0".into()), Some("0")),
            ("$1::numeric", SqlParam::Text("-0.0".into()), Some("0.0")),
            ("$1::numeric", SqlParam::Text(".5".into()), Some("0.5")),
            ("$1::numeric", SqlParam::Int(-42), Some("-42")),
            ("$1::numeric", SqlParam::Float(2.5), Some("2.5")),
            ("$1::int4", SqlParam::Int(7), Some("7")),
            (
                "$1::int8",
                SqlParam::Text("9000000000".into()),
                Some("9000000000"),
            ),
            ("$1::float8", SqlParam::Int(3), Some("3")),
            (
                "$1::timestamptz",
                SqlParam::Text("2024-05-13T17:30:00+02:00".into()),
                Some("2024-05-13 15:30:00+00"),
            ),
            (
                "$1::date",
                SqlParam::Text("2024-02-29".into()),
                Some("2024-02-29"),
            ),
            (
                "$1::time",
                SqlParam::Text("07:30:00.25".into()),
                Some("07:30:00.25"),
            ),
            (
                "$1::uuid",
                SqlParam::Text("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into()),
                Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ),
            (
                "$1::jsonb",
                SqlParam::Text(r#"{"a": [1]}"#.into()),
                Some(r#"{"a": [1]}"#),
            ),
            ("$1::jsonb", SqlParam::Int(5), Some("5")),
            ("$1::bool", SqlParam::Bool(true), Some("true")),
            ("$1::text", SqlParam::Bool(false), Some("false")),
            ("$1::text", SqlParam::Float(0.1), Some("0.1")),
            ("$1::text", SqlParam::Text("Zoë 😀".into()), Some("Zoë 😀")),
            ("$1::numeric", SqlParam::Null, None),
        ];
        conn.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        for (expr, value, expected) in cases {
            let sql = format!("SELECT ({expr})::text");
            let row = conn.query_one(&sql, &[&PgParam(value.clone())]).await;
            let got: Option<String> = row
                .unwrap_or_else(|e| panic!("{expr} with {value:?}: {}", chain(&e)))
                .get(0);
            assert_eq!(got.as_deref(), expected, "{expr} with {value:?}");
        }
        for (expr, value) in [
            ("$1::numeric", SqlParam::Text("12abc".into())),
            ("$1::int4", SqlParam::Int(i64::MAX)),
            ("$1::bool", SqlParam::Int(1)),
            ("$1::uuid", SqlParam::Text("nope".into())),
        ] {
            let sql = format!("SELECT ({expr})::text");
            assert!(
                conn.query_one(&sql, &[&PgParam(value.clone())])
                    .await
                    .is_err(),
                "{expr} with {value:?}"
            );
        }
    }
}
