//! Errors of the HTTP API, mapped to status codes and JSON bodies in one
//! place. Bodies follow the OpenAI error shape
//! `{"error":{"message","type","param","code"}}`, plus the lists of known
//! names where that helps the caller fix the request.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use aigw_types::openai_error::{type_for_status, ErrorEnvelope};
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

/// The JSON error body: OpenAI's envelope, with lists of known names.
pub type ErrorBody = ErrorEnvelope<KnownNames>;

/// What the caller may use instead of an unknown name.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct KnownNames {
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
        let mut known = KnownNames::default();
        let param = match self {
            ApiError::InvalidRequest { param, .. } => *param,
            ApiError::UnknownModel {
                known_models,
                known_prefixes,
                ..
            } => {
                known.known_models = Some(known_models.clone());
                known.known_prefixes = Some(known_prefixes.clone());
                Some("model")
            }
            ApiError::UnknownEncoding {
                known_encodings, ..
            } => {
                known.known_encodings = Some(known_encodings.clone());
                Some("encoding")
            }
            ApiError::InvalidJson(_)
            | ApiError::PayloadTooLarge { .. }
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::Unexpected(_) => None,
        };
        let body = ErrorEnvelope::with_detail(
            type_for_status(status.as_u16()),
            self.code(),
            self.to_string(),
            known,
        )
        .param(param);
        HttpResponse::build(status).json(body)
    }
}
