//! A JSON body extractor whose errors say what is wrong and where: malformed JSON is a 400; well-formed
//! JSON of the wrong shape (unknown field, wrong type) is a 422 naming the field path.

use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::BodyLimit;

pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBytes(bytes) = JsonBytes::from_request(req, state).await?;
        parse(&bytes).map(Body)
    }
}

/// A JSON body left as its bytes, for a handler that reads it its own way (and calls [`parse`] to name
/// what is wrong with it, with the same errors as [`Body`]).
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| ct.starts_with("application/json") || ct.contains("+json"))
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        read(req, state).await.map(JsonBytes)
    }
}

/// A body that may be left out entirely (an empty body means `T::default()`).
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        parse(&bytes).map(OptionalBody)
    }
}

/// The whole body; over the route's limit (see `crate::limit_body`), a 413.
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().copied();
    Bytes::from_request(req, state)
        .await
        .map_err(|e| match limit {
            Some(BodyLimit(limit)) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                crate::error::too_large(limit)
            }
            _ => ApiError::malformed(format!("could not read the request body: {e}")),
        })
}

/// Parses JSON text into `T` with the error rules above.
/// A stored spec with the top-level fields of a `PATCH` body put over it, read back as a whole spec: the
/// patched spec meets the same checks, with the same messages, as one sent whole.
pub fn patched<T: serde::Serialize + DeserializeOwned>(
    spec: &T,
    changes: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    let mut merged = serde_json::to_value(spec).map_err(|e| ApiError::internal(e.to_string()))?;
    let obj = merged
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("a spec serializes to an object"))?;
    obj.extend(changes);
    parse(merged.to_string().as_bytes())
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Tracking the path of every value costs a large body (a batch of profiles) a tenth of its parse;
    // the path is only needed to name what is wrong, so a body that fails is parsed again with it.
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(_) => parse_tracked(bytes),
    }
}

/// [`parse`] keeping track of where the parser is, for an error that names the field.
fn parse_tracked<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => {
            de.end()
                .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
            Ok(v)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                Err(ApiError::malformed(format!(
                    "the body is not valid JSON: {inner}"
                )))
            } else {
                let path = if path == "." { String::new() } else { path };
                let message = strip_position(&inner.to_string());
                Err(ApiError::invalid_field(&path, message))
            }
        }
    }
}

/// serde's data errors end with " at line 1 column 57", which says nothing useful once the path is known.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u16,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        b: String,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<T>(br#"{"a": 1, "inner": {"b": 5}}"#).unwrap_err();
        assert_eq!(e.status, 422);
        assert!(e.fields.unwrap().get("inner.b").is_some());
        let e = parse::<T>(br#"{"a": 1, "zzz": 2}"#).unwrap_err();
        assert!(e.message.contains("zzz"), "{}", e.message);
        let e = parse::<T>(br#"{"a": 1"#).unwrap_err();
        assert_eq!(e.status, 400);
        let e = parse::<T>(br#"{"a": 70000}"#).unwrap_err();
        assert!(e.fields.unwrap().get("a").is_some());
    }
}
