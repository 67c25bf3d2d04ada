//! Errors the mock answers with, in the OpenAI error shape.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The body is not a request this endpoint understands.
    #[error("invalid request body: {0}")]
    InvalidRequest(String),
    /// A failure asked for by `MOCK_ERROR_RATE` or `"mock": {"status": ..}`.
    #[error("mock upstream injected a {0} error")]
    Injected(u16),
    #[error("unknown route")]
    NotFound,
}

impl MockError {
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            MockError::InvalidRequest(_) => ("invalid_request_error", "invalid_request"),
            MockError::Injected(429) => ("rate_limit_error", "rate_limit_exceeded"),
            MockError::Injected(401) => ("authentication_error", "invalid_api_key"),
            MockError::Injected(s) if *s >= 500 => ("server_error", "mock_injected"),
            MockError::Injected(_) => ("invalid_request_error", "mock_injected"),
            MockError::NotFound => ("invalid_request_error", "unknown_url"),
        }
    }
}

impl ResponseError for MockError {
    fn status_code(&self) -> StatusCode {
        match self {
            MockError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            MockError::Injected(s) => {
                StatusCode::from_u16(*s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            MockError::NotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (kind, code) = self.kind();
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, MockError::Injected(429)) {
            res.insert_header(("retry-after", "1"));
        }
        res.json(serde_json::json!({
            "error": {"message": self.to_string(), "type": kind, "param": null, "code": code}
        }))
    }
}
