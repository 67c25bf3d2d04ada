//! Errors of the HTTP API, mapped to status codes and JSON bodies in one
//! place. Bodies follow the OpenAI error shape
//! `{"error":{"message","type","param","code"}}`, plus the lists of known
//! names where that helps the caller fix the request.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but a field is missing, of the wrong type or out of range.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("unknown model `{model}`: give a configured or known OpenAI model, or an `encoding`")]
    UnknownModel {
        model: String,
        known_models: Vec<String>,
        known_prefixes: Vec<String>,
    },
    #[error("unknown encoding `{encoding}`")]
    UnknownEncoding {
        encoding: String,
        known_encodings: Vec<&'static str>,
    },
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("internal error")]
    Unexpected(#[from] anyhow::Error),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError::InvalidRequest {
            message: message.into(),
            param,
        }
    }

    /// Low-cardinality name, used as `code` in the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::UnknownModel { .. } => "unknown_model",
            ApiError::UnknownEncoding { .. } => "unknown_encoding",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unexpected(_) => "internal_error",
        }
    }
}

/// The JSON error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error` for 4xx, `server_error` for 5xx.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
    /// `invalid_json`, `invalid_request`, `unknown_model`, `unknown_encoding`,
    /// `payload_too_large`, `not_found`, `method_not_allowed`, `internal_error`.
    pub code: &'static str,
    /// With `unknown_model`: configured and built-in model names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_models: Option<Vec<String>>,
    /// With `unknown_model`: built-in name prefixes (e.g. `gpt-4o`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_prefixes: Option<Vec<String>>,
    /// With `unknown_encoding`: accepted encoding names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_encodings: Option<Vec<&'static str>>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::InvalidRequest { .. }
            | ApiError::UnknownModel { .. }
            | ApiError::UnknownEncoding { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let ApiError::Unexpected(e) = self {
            // The cause goes to the log only; the client gets a generic message.
            tracing::error!(error = format!("{e:#}"), "unexpected error");
        }
        let mut detail = ErrorDetail {
            message: self.to_string(),
            kind: if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            param: None,
            code: self.code(),
            known_models: None,
            known_prefixes: None,
            known_encodings: None,
        };
        match self {
            ApiError::InvalidRequest { param, .. } => detail.param = *param,
            ApiError::UnknownModel {
                known_models,
                known_prefixes,
                ..
            } => {
                detail.param = Some("model");
                detail.known_models = Some(known_models.clone());
                detail.known_prefixes = Some(known_prefixes.clone());
            }
            ApiError::UnknownEncoding {
                known_encodings, ..
            } => {
                detail.param = Some("encoding");
                detail.known_encodings = Some(known_encodings.clone());
            }
            ApiError::InvalidJson(_)
            | ApiError::PayloadTooLarge { .. }
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::Unexpected(_) => {}
        }
        HttpResponse::build(status).json(ErrorBody { error: detail })
    }
}
