//! One error type for every route: JSON `{"error": {"code", "message", "fields"?}}` with the right status.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_core::FieldErrors;
use sluice_destinations::{DestinationError, ErrorKind};
use sluice_engine::EngineError;
use sluice_store::StoreError;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub fields: Option<FieldErrors>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{what} `{id}` does not exist"),
        )
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MalformedRequest", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 422 with every offending field.
    pub fn invalid(fields: FieldErrors) -> Self {
        let n = fields.len();
        let message = if n == 1 {
            format!("the request is invalid: {fields}")
        } else {
            format!("the request has {n} problems: {fields}")
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "ValidationFailed",
            message,
            fields: Some(fields),
        }
    }

    pub fn invalid_field(path: &str, message: impl Into<String>) -> Self {
        let mut f = FieldErrors::new();
        f.add(path, message);
        Self::invalid(f)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal", message)
    }
}

/// 413: the request body is over its route's limit.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("the request body is larger than {limit} bytes, the limit for this route"),
    )
}

/// The body of every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable (`ValidationFailed`, `NotFound`, `PipelineAlreadyRunning`, …).
    pub code: &'static str,
    pub message: String,
    /// Each offending field's path (`filter.conditions[1].values`) and what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<String>>>)]
    pub fields: Option<FieldErrors>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = ErrorDetail {
            code: self.code,
            message: self.message,
            fields: self.fields,
        };
        (self.status, axum::Json(ErrorBody { error })).into_response()
    }
}

/// axum's own refusals (a path segment that is not UTF-8, a method a route does not take, a body over the
/// limit read by axum's extractors) answer a line of text or nothing. Under `/v1` those become the JSON
/// error shape with the same status and headers (`Allow` on a 405), so a client reads every error alike.
pub async fn json_refusals(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/v1/");
    let resp = next.run(req).await;
    if !api || !resp.status().is_client_error() {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // These texts are a line long; anything longer is cut rather than held.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let code = match parts.status {
        StatusCode::BAD_REQUEST => "MalformedRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        _ => "Refused",
    };
    let message = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("refused")
            .to_string()
    } else {
        text
    };
    let mut out = ApiError::new(parts.status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::conflict("Conflict", m),
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "NotFound", m),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::internal(other.to_string())
            }
        }
    }
}

impl From<DestinationError> for ApiError {
    /// The destination's own message, with a status saying whose fault it is.
    fn from(e: DestinationError) -> Self {
        let status = match e.kind {
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::Config => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.kind.code(), e.message)
    }
}

impl From<sluice_engine::DryRunStartError> for ApiError {
    fn from(e: sluice_engine::DryRunStartError) -> Self {
        match e {
            sluice_engine::DryRunStartError::TooMany(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyDryRuns",
                e.to_string(),
            ),
            sluice_engine::DryRunStartError::Store(e) => e.into(),
        }
    }
}

impl From<EngineError> for ApiError {
    /// A status by the kind of failure: the pipeline's fault (422 with every field), the destination's
    /// (502/504, as for its own errors), a table that changed under it (409), or Sluice's own (500).
    fn from(e: EngineError) -> Self {
        use sluice_engine::ErrorKind as K;
        match e.kind {
            K::Invalid => match e.fields {
                Some(fields) => ApiError::invalid(fields),
                None => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ValidationFailed",
                    e.message,
                ),
            },
            K::NotFound => ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.message),
            K::TableChanged => ApiError::conflict("TableChanged", e.message),
            K::Destination(kind) => DestinationError::new(kind, e.message).into(),
            K::Store | K::Internal => {
                tracing::error!(error = %e.message, kind = ?e.kind, "engine failure");
                ApiError::internal(e.message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::ErrorKind as K;

    #[test]
    fn engine_failures_answer_by_their_kind() {
        let status = |kind| ApiError::from(EngineError::new(kind, "m")).status;
        assert_eq!(
            status(K::Destination(ErrorKind::Unavailable)),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            status(K::Destination(ErrorKind::Timeout)),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(status(K::TableChanged), StatusCode::CONFLICT);
        assert_eq!(status(K::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status(K::Store), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(status(K::Internal), StatusCode::INTERNAL_SERVER_ERROR);
        let mut fields = FieldErrors::new();
        fields.add("key", "column `k` does not exist in table `t`");
        let e = ApiError::from(EngineError::invalid("", fields));
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e.fields.unwrap().get("key").is_some());
    }
}
