//! The HTTP error boundary: every failure a client can see, mapped to a
//! status and the JSON body `{"error":{"code","message","field"}}` in one
//! place. Database error text never reaches a client.

use crate::domain::ValidationError;
use crate::storage::StoreError;
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A value failed validation (400).
    #[error("{message}")]
    Validation {
        field: Option<String>,
        message: String,
    },
    /// The body is not the JSON the route expects: malformed, wrong types,
    /// missing or unknown fields (400).
    #[error("{message}")]
    InvalidBody {
        field: Option<String>,
        message: String,
    },
    /// The query string could not be read (400).
    #[error("{message}")]
    InvalidQuery { message: String },
    #[error("missing or invalid admin token")]
    Unauthorized,
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed; allowed: {allowed}")]
    MethodNotAllowed { allowed: String },
    /// Duplicate, or still referenced (409).
    #[error("{message}")]
    Conflict {
        code: &'static str,
        field: Option<&'static str>,
        message: String,
    },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// A dependency (Redis) is unreachable for a read that needs it (503).
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: Some(field.to_string()),
            message: format!("{field}: {}", message.into()),
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::NotFound { what: what.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_error",
            ApiError::InvalidBody { .. } => "invalid_body",
            ApiError::InvalidQuery { .. } => "invalid_query",
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound { .. } => "not_found",
            ApiError::RouteNotFound => "route_not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Conflict { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Unexpected(_) => "internal_error",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Validation { field, .. } | ApiError::InvalidBody { field, .. } => {
                field.as_deref()
            }
            ApiError::Conflict { field, .. } => *field,
            _ => None,
        }
    }
}

/// The error body, also used in the OpenAPI document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_error`, `already_exists`.
    pub code: String,
    pub message: String,
    /// The offending request field, when there is one.
    pub field: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. }
            | ApiError::InvalidBody { .. }
            | ApiError::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } | ApiError::RouteNotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Unexpected(e) = self {
            // The cause goes to the log only; the client gets a fixed text.
            tracing::error!(error = format!("{e:#}"), "request failed unexpectedly");
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::MethodNotAllowed { allowed } => {
                res.insert_header((header::ALLOW, allowed.as_str()));
            }
            _ => {}
        }
        res.json(ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                field: self.field().map(str::to_string),
            },
        })
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::validation(&e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { entity, field, id } => ApiError::Conflict {
                code: "already_exists",
                field: Some(field),
                message: format!("{entity} '{id}' already exists"),
            },
            StoreError::InUse { entity, id, by } => ApiError::Conflict {
                code: "in_use",
                field: None,
                message: format!("{entity} '{id}' is still referenced by {by}"),
            },
            StoreError::Database(e) => {
                ApiError::Unexpected(anyhow::Error::new(e).context("database"))
            }
            StoreError::Corrupt(e) => ApiError::Unexpected(e.context("stored data")),
        }
    }
}

/// JSON extractor failures → 400, 413 or 415 with the JSON error body.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) => describe_json_error(&e),
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit: 0 },
        other => ApiError::InvalidBody {
            field: None,
            message: format!("could not read the request body: {other}"),
        },
    };
    api.into()
}

/// Query string failures → 400.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = match err {
        QueryPayloadError::Deserialize(e) => format!("invalid query string: {e}"),
        other => format!("invalid query string: {other}"),
    };
    ApiError::InvalidQuery { message }.into()
}

/// A client-facing description of a serde_json error. String values the
/// client sent are cut out of the message: they may be secrets (an
/// instance's `api_key` of the wrong type) and responses never echo them.
fn describe_json_error(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::InvalidBody {
            field: None,
            message: format!("malformed JSON at line {line} column {column}"),
        },
        Category::Data => {
            let raw = e.to_string();
            // serde names fields in backticks: "missing field `name`",
            // "unknown field `x`, expected one of …".
            let field = ["missing field `", "unknown field `"]
                .iter()
                .find_map(|p| raw.find(p).map(|i| &raw[i + p.len()..]))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            ApiError::InvalidBody {
                field,
                message: redact_quoted(&raw),
            }
        }
    }
}

/// Replaces every `"…"` span with `"…"` so no client string is echoed.
fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut inside = false;
    for c in s.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…\"");
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        name: String,
        n: u32,
    }

    fn err(json: &str) -> ApiError {
        describe_json_error(&serde_json::from_str::<T>(json).unwrap_err())
    }

    #[test]
    fn json_errors_name_fields_and_hide_values() {
        match err(r#"{"n":1}"#) {
            ApiError::InvalidBody { field, .. } => assert_eq!(field.as_deref(), Some("name")),
            e => panic!("{e:?}"),
        }
        match err(r#"{"name":"a","n":1,"zz":2}"#) {
            ApiError::InvalidBody { field, .. } => assert_eq!(field.as_deref(), Some("zz")),
            e => panic!("{e:?}"),
        }
        let e = err(r#"{"name":"a","n":"sk-secret-value"}"#);
        assert!(!e.to_string().contains("sk-secret-value"), "{e}");
        assert!(matches!(err("{"), ApiError::InvalidBody { .. }));
    }
}
