//! A query-string extractor whose errors are the JSON error shape of every other failure: a 422 naming
//! each offending parameter in `fields` (unknown, given twice, or not of its type), where axum's own
//! extractor answered a line of plain text.
//!
//! Unknown parameters are found by comparing the names sent with the struct's own field list (read from
//! its `Deserialize` implementation), so every unknown name is reported by name, not only the first one
//! serde stops at.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, Visitor};
use sluice_core::FieldErrors;

use crate::error::ApiError;

/// The parameters of a route's query string, as `T` (a struct with named, optional fields).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Reads a query string (without its `?`) into `T`, or says what is wrong with each parameter.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let mut errors = FieldErrors::new();
    let known = parameters::<T>();
    let mut seen: Vec<String> = Vec::new();
    for (name, _) in form_urlencoded::parse(query.as_bytes()) {
        if let Some(known) = known {
            if !known.contains(&name.as_ref()) {
                errors.add(name.to_string(), unknown_message(known));
                continue;
            }
        }
        if seen.iter().any(|s| *s == name) {
            errors.add(name.to_string(), "the parameter is given more than once");
        } else {
            seen.push(name.into_owned());
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let value = form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| *k == path)
            .map(|(_, v)| v.into_owned());
        let inner = e.into_inner();
        let message = match value {
            Some(v) => format!("`{}` is not accepted: {inner}", shorten(&v)),
            None => inner.to_string(),
        };
        ApiError::invalid_field(&path, message)
    })
}

fn unknown_message(known: &[&str]) -> String {
    if known.is_empty() {
        "unknown query parameter: this route takes none".into()
    } else {
        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
        format!("unknown query parameter; expected {}", list.join(", "))
    }
}

/// A value as messages quote it: long ones are cut, so that an error never echoes a huge query.
fn shorten(v: &str) -> String {
    const MAX: usize = 100;
    match v.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &v[..i]),
        None => v.to_string(),
    }
}

/// The field names of a struct `T` deserializes as, or `None` when `T` is not such a struct.
fn parameters<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    match T::deserialize(FieldNames) {
        Err(Captured(fields)) => fields,
        Ok(_) => None,
    }
}

/// A deserializer that answers nothing and only notes the fields a struct asks for.
struct FieldNames;

#[derive(Debug)]
struct Captured(Option<&'static [&'static str]>);

impl fmt::Display for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names captured")
    }
}

impl std::error::Error for Captured {}

impl serde::de::Error for Captured {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Captured(None)
    }
}

impl<'de> serde::Deserializer<'de> for FieldNames {
    type Error = Captured;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
        Err(Captured(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Captured> {
        Err(Captured(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Order {
        Newest,
        Oldest,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Params {
        limit: Option<usize>,
        order: Option<Order>,
        after: Option<String>,
    }

    fn fields(query: &str) -> Vec<(String, Vec<String>)> {
        let e = parse::<Params>(query).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.code, "ValidationFailed");
        e.fields.unwrap().into_map().into_iter().collect()
    }

    #[test]
    fn good_queries_are_read() {
        assert_eq!(
            parse::<Params>("limit=5&order=oldest&after=c%201").unwrap(),
            Params {
                limit: Some(5),
                order: Some(Order::Oldest),
                after: Some("c 1".into())
            }
        );
        assert_eq!(
            parse::<Params>("").unwrap(),
            Params {
                limit: None,
                order: None,
                after: None
            }
        );
    }

    #[test]
    fn each_bad_parameter_is_named() {
        let f = fields("limit=abc");
        assert_eq!(f[0].0, "limit");
        assert!(f[0].1[0].contains("`abc`"), "{f:?}");
        assert_eq!(fields("limit=-1")[0].0, "limit");
        assert_eq!(fields("limit=99999999999999999999999")[0].0, "limit");
        let f = fields("order=sideways");
        assert_eq!(f[0].0, "order");
        assert!(f[0].1[0].contains("newest"), "{f:?}");
        let f = fields("nope=1&limit=2&limit=3&x%00%60y=1");
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"nope") && names.contains(&"limit"), "{f:?}");
        assert!(names.contains(&"x\0`y"), "{f:?}");
        assert!(
            f.iter().find(|(k, _)| k == "nope").unwrap().1[0].contains("`limit`, `order`, `after`")
        );
    }

    #[test]
    fn a_long_value_is_cut_in_the_message() {
        let long = "9".repeat(10_000);
        let f = fields(&format!("limit={long}"));
        assert!(f[0].1[0].len() < 400, "{f:?}");
    }

    #[test]
    fn field_names_come_from_the_type() {
        assert_eq!(
            parameters::<Params>(),
            Some(&["limit", "order", "after"][..])
        );
        assert_eq!(parameters::<String>(), None);
    }
}
