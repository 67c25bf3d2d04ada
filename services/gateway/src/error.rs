//! Every error a client can see, mapped in one place to the HTTP status and
//! the OpenAI error shape `{"error":{"message","type","param","code"}}`, each
//! with a low-cardinality name for metrics and usage records.

use actix_web::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use aigw_types::ErrorEnvelope;
use std::sync::Arc;

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    Concurrency,
    Rpm,
    Tpm,
    Budget,
}

impl LimitReason {
    pub const ALL: [LimitReason; 4] = [
        LimitReason::Concurrency,
        LimitReason::Rpm,
        LimitReason::Tpm,
        LimitReason::Budget,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitReason::Concurrency => "concurrency",
            LimitReason::Rpm => "rpm",
            LimitReason::Tpm => "tpm",
            LimitReason::Budget => "budget",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// How a relayed stream ended before its upstream finished it. The client
/// has its answer's head already: it gets an SSE error event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    #[error("The upstream stream ended unexpectedly.")]
    StreamBroken,
    #[error("The upstream stream exceeded the gateway's total time limit.")]
    TotalTimeout,
    #[error("The upstream stream sent nothing for longer than the gateway's idle limit.")]
    IdleTimeout,
    #[error("The upstream stream sent an event larger than the gateway's limit.")]
    EventTooLarge,
    /// The client did not take the stream's output in time.
    #[error("The client stopped reading the stream.")]
    ClientStalled,
}

impl RelayError {
    /// Whether the instance is to blame for passive health: a slow stream
    /// is not (one caller's long generations must not mark instances
    /// unhealthy), a broken or malformed one is.
    pub fn counts_against_health(self) -> bool {
        matches!(self, RelayError::StreamBroken | RelayError::EventTooLarge)
    }
}

/// An upstream's own error answer, relayed as it is (its kind is recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relayed {
    /// 429 after the last attempt.
    RateLimited,
    /// 5xx after the last attempt.
    ServerError,
    /// Any other non-2xx answer (not retried).
    ClientError,
}

impl Relayed {
    pub fn of_status(status: u16) -> Option<Relayed> {
        match status {
            200..=299 => None,
            429 => Some(Relayed::RateLimited),
            500.. => Some(Relayed::ServerError),
            _ => Some(Relayed::ClientError),
        }
    }

    /// Low-cardinality name, as `error_kind` in usage records.
    pub fn kind(self) -> &'static str {
        match self {
            Relayed::RateLimited => "upstream_rate_limited",
            Relayed::ServerError => "upstream_error",
            Relayed::ClientError => "upstream_client_error",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("The gateway has not loaded its routing configuration yet; retry shortly.")]
    NotReady,
    #[error("You didn't provide an API key. Send it as `Authorization: Bearer <key>`.")]
    MissingKey,
    #[error("Incorrect API key provided.")]
    InvalidKey,
    #[error("This API key has been revoked.")]
    RevokedKey,
    #[error("This API key has expired.")]
    ExpiredKey,
    #[error("The namespace `{0}` is disabled.")]
    NamespaceDisabled(Arc<str>),
    #[error("This API key is not allowed to use the model `{0}`.")]
    ModelNotAllowed(Arc<str>),
    /// Carries the client's model name, echoed (truncated) in the message
    /// only; it never becomes a metric label.
    #[error("The model `{0}` does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("We could not parse the JSON body of your request: {0}")]
    InvalidJson(String),
    #[error("You must provide a model parameter.")]
    MissingModel,
    /// A known field of the body has the wrong JSON type.
    #[error("Invalid type for '{param}': expected {expected}.")]
    InvalidField {
        param: &'static str,
        expected: &'static str,
    },
    #[error("The request body could not be read: {0}")]
    BodyRead(String),
    /// The model's upstream cannot honour a parameter of the request.
    #[error(
        "The parameter `{param}` is not supported by this model's upstream ({provider}): {reason}"
    )]
    UnsupportedParam {
        provider: &'static str,
        param: String,
        reason: String,
    },
    /// The model's upstream has no such endpoint.
    #[error("This model's upstream ({provider}) has no {endpoint} endpoint.")]
    UnsupportedEndpoint {
        provider: &'static str,
        endpoint: &'static str,
    },
    #[error("The request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("{}", limit_message(*reason))]
    RateLimited {
        reason: LimitReason,
        retry_after_s: u64,
    },
    #[error("No healthy instance of the model `{0}` is available right now.")]
    NoHealthyInstance(Arc<str>),
    #[error("The upstream instance could not be reached.")]
    UpstreamUnreachable,
    #[error("The upstream instance did not answer in time.")]
    UpstreamTimeout,
    /// The request reached the upstream whole, then the connection was
    /// lost before the answer: it may have been processed, so it was not
    /// sent again.
    #[error("The upstream instance closed the connection before answering; the request may have been processed and was not sent again.")]
    UpstreamConnectionLost,
    #[error("The upstream answer is larger than the gateway's limit of {limit} bytes.")]
    UpstreamResponseTooLarge { limit: usize },
    /// A translated provider's answer could not be read.
    #[error("The upstream instance ({0}) sent an answer the gateway could not read.")]
    UpstreamInvalidAnswer(&'static str),
    #[error("{0}")]
    Relay(RelayError),
    #[error("Unknown request URL: {method} {path}.")]
    RouteNotFound { method: String, path: String },
    #[error("Method {method} is not allowed for {path}.")]
    MethodNotAllowed { method: String, path: String },
    #[error("An unexpected error occurred in the gateway.")]
    Unexpected(#[source] anyhow::Error),
}

fn limit_message(reason: LimitReason) -> &'static str {
    match reason {
        LimitReason::Concurrency => {
            "Too many concurrent requests for this namespace. Retry after the indicated time."
        }
        LimitReason::Rpm => {
            "Rate limit reached for requests per minute in this namespace. Retry after the indicated time."
        }
        LimitReason::Tpm => {
            "Rate limit reached for tokens per minute in this namespace. Retry after the indicated time."
        }
        LimitReason::Budget => {
            "You exceeded the monthly budget of this namespace. Retry next month or raise the budget."
        }
    }
}

impl GatewayError {
    /// Low-cardinality name, used as `error_kind` in usage records.
    pub fn kind(&self) -> &'static str {
        match self {
            GatewayError::NotReady => "not_ready",
            GatewayError::MissingKey => "missing_key",
            GatewayError::InvalidKey => "invalid_key",
            GatewayError::RevokedKey => "revoked_key",
            GatewayError::ExpiredKey => "expired_key",
            GatewayError::NamespaceDisabled(_) => "namespace_disabled",
            GatewayError::ModelNotAllowed(_) => "model_not_allowed",
            GatewayError::ModelNotFound(_) => "model_not_found",
            GatewayError::InvalidJson(_) => "invalid_json",
            GatewayError::MissingModel => "missing_model",
            GatewayError::InvalidField { .. } => "invalid_body",
            GatewayError::BodyRead(_) => "body_read_error",
            GatewayError::UnsupportedParam { .. } => "unsupported_parameter",
            GatewayError::UnsupportedEndpoint { .. } => "unsupported_endpoint",
            GatewayError::PayloadTooLarge { .. } => "payload_too_large",
            GatewayError::RateLimited { reason, .. } => match reason {
                LimitReason::Concurrency => "concurrency_limited",
                LimitReason::Rpm => "rpm_limited",
                LimitReason::Tpm => "tpm_limited",
                LimitReason::Budget => "budget_exceeded",
            },
            GatewayError::NoHealthyInstance(_) => "no_healthy_instance",
            GatewayError::UpstreamUnreachable => "upstream_unreachable",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::UpstreamConnectionLost => "upstream_connection_lost",
            GatewayError::UpstreamResponseTooLarge { .. } => "upstream_response_too_large",
            GatewayError::UpstreamInvalidAnswer(_) => "upstream_invalid_answer",
            GatewayError::Relay(e) => match e {
                RelayError::StreamBroken => "upstream_stream_error",
                RelayError::TotalTimeout => "upstream_timeout",
                RelayError::IdleTimeout => "upstream_idle_timeout",
                RelayError::EventTooLarge => "upstream_event_too_large",
                RelayError::ClientStalled => "client_write_timeout",
            },
            GatewayError::RouteNotFound { .. } => "route_not_found",
            GatewayError::MethodNotAllowed { .. } => "method_not_allowed",
            GatewayError::Unexpected(_) => "internal_error",
        }
    }

    /// OpenAI's `type` and `code`, and the offending `param`.
    fn shape(&self) -> (&'static str, &'static str, Option<&str>) {
        match self {
            GatewayError::NotReady => ("server_error", "not_ready", None),
            GatewayError::MissingKey
            | GatewayError::InvalidKey
            | GatewayError::RevokedKey
            | GatewayError::ExpiredKey => ("invalid_request_error", "invalid_api_key", None),
            GatewayError::NamespaceDisabled(_) => ("permission_error", "namespace_disabled", None),
            GatewayError::ModelNotAllowed(_) => {
                ("permission_error", "model_not_allowed", Some("model"))
            }
            GatewayError::ModelNotFound(_) => {
                ("invalid_request_error", "model_not_found", Some("model"))
            }
            GatewayError::InvalidJson(_) => ("invalid_request_error", "invalid_json", None),
            GatewayError::MissingModel => ("invalid_request_error", "missing_model", Some("model")),
            GatewayError::BodyRead(_) => ("invalid_request_error", "invalid_body", None),
            GatewayError::UnsupportedParam { param, .. } => (
                "invalid_request_error",
                "unsupported_parameter",
                Some(param.as_str()),
            ),
            GatewayError::UnsupportedEndpoint { .. } => {
                ("invalid_request_error", "unsupported_endpoint", None)
            }
            GatewayError::InvalidField { param, .. } => {
                ("invalid_request_error", "invalid_body", Some(param))
            }
            GatewayError::PayloadTooLarge { .. } => {
                ("invalid_request_error", "request_too_large", None)
            }
            GatewayError::RateLimited { reason, .. } => match reason {
                LimitReason::Concurrency => ("requests", "concurrency_limit_exceeded", None),
                LimitReason::Rpm => ("requests", "rate_limit_exceeded", None),
                LimitReason::Tpm => ("tokens", "rate_limit_exceeded", None),
                LimitReason::Budget => ("insufficient_quota", "insufficient_quota", None),
            },
            GatewayError::NoHealthyInstance(_) => ("server_error", "no_healthy_instance", None),
            GatewayError::UpstreamUnreachable => ("server_error", "upstream_unreachable", None),
            GatewayError::UpstreamTimeout => ("server_error", "upstream_timeout", None),
            GatewayError::UpstreamConnectionLost => {
                ("server_error", "upstream_connection_lost", None)
            }
            GatewayError::UpstreamResponseTooLarge { .. } => {
                ("server_error", "upstream_response_too_large", None)
            }
            GatewayError::UpstreamInvalidAnswer(_) => {
                ("server_error", "upstream_invalid_answer", None)
            }
            GatewayError::Relay(_) => ("server_error", self.kind(), None),
            GatewayError::RouteNotFound { .. } => ("invalid_request_error", "unknown_url", None),
            GatewayError::MethodNotAllowed { .. } => {
                ("invalid_request_error", "method_not_allowed", None)
            }
            GatewayError::Unexpected(_) => ("server_error", "internal_error", None),
        }
    }

    /// What a client gets: OpenAI's error envelope.
    pub fn envelope(&self) -> ErrorEnvelope {
        let (kind, code, param) = self.shape();
        ErrorEnvelope::new(kind, code, self.to_string()).param(param)
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        match self {
            GatewayError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::MissingKey
            | GatewayError::InvalidKey
            | GatewayError::RevokedKey
            | GatewayError::ExpiredKey => StatusCode::UNAUTHORIZED,
            GatewayError::NamespaceDisabled(_) | GatewayError::ModelNotAllowed(_) => {
                StatusCode::FORBIDDEN
            }
            GatewayError::ModelNotFound(_) | GatewayError::RouteNotFound { .. } => {
                StatusCode::NOT_FOUND
            }
            GatewayError::InvalidJson(_)
            | GatewayError::MissingModel
            | GatewayError::InvalidField { .. }
            | GatewayError::UnsupportedParam { .. }
            | GatewayError::UnsupportedEndpoint { .. }
            | GatewayError::BodyRead(_) => StatusCode::BAD_REQUEST,
            GatewayError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::NoHealthyInstance(_) => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::UpstreamUnreachable => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::UpstreamConnectionLost
            | GatewayError::UpstreamInvalidAnswer(_)
            | GatewayError::UpstreamResponseTooLarge { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Relay(e) => match e {
                RelayError::StreamBroken | RelayError::EventTooLarge => StatusCode::BAD_GATEWAY,
                RelayError::TotalTimeout | RelayError::IdleTimeout => StatusCode::GATEWAY_TIMEOUT,
                RelayError::ClientStalled => StatusCode::REQUEST_TIMEOUT,
            },
            GatewayError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = serde_json::to_string(&self.envelope()).unwrap_or_default();
        self.response_with(body)
    }
}

impl GatewayError {
    /// The error in Anthropic's shape, `{"type": "error", "error": {"type",
    /// "message"}}`, for clients of the Messages API.
    pub fn anthropic_response(&self) -> HttpResponse {
        let status = self.status_code().as_u16();
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": anthropic_error_type(status), "message": self.to_string()},
        });
        self.response_with(body.to_string())
    }

    fn response_with(&self, body: String) -> HttpResponse {
        if let GatewayError::Unexpected(e) = self {
            tracing::error!(error = ?e, "unexpected gateway error");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if let GatewayError::RateLimited { retry_after_s, .. } = self {
            resp.insert_header((RETRY_AFTER, (*retry_after_s).max(1).to_string()));
        }
        resp.body(body)
    }
}

/// Anthropic's error `type` for a status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 408 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        _ => "api_error",
    }
}

/// Truncates client-provided text echoed in an error message.
pub fn echo(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &GatewayError) -> serde_json::Value {
        let resp = e.error_response();
        let bytes = resp.into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn openai_shape_and_statuses() {
        let cases: Vec<(GatewayError, u16, &str)> = vec![
            (GatewayError::MissingKey, 401, "invalid_api_key"),
            (GatewayError::InvalidKey, 401, "invalid_api_key"),
            (
                GatewayError::NamespaceDisabled("a".into()),
                403,
                "namespace_disabled",
            ),
            (
                GatewayError::ModelNotFound("x".into()),
                404,
                "model_not_found",
            ),
            (GatewayError::MissingModel, 400, "missing_model"),
            (
                GatewayError::PayloadTooLarge { limit: 1 },
                413,
                "request_too_large",
            ),
            (
                GatewayError::RateLimited {
                    reason: LimitReason::Rpm,
                    retry_after_s: 7,
                },
                429,
                "rate_limit_exceeded",
            ),
            (
                GatewayError::UpstreamUnreachable,
                502,
                "upstream_unreachable",
            ),
            (
                GatewayError::NoHealthyInstance("m".into()),
                503,
                "no_healthy_instance",
            ),
            (GatewayError::UpstreamTimeout, 504, "upstream_timeout"),
            (
                GatewayError::Relay(RelayError::StreamBroken),
                502,
                "upstream_stream_error",
            ),
            (
                GatewayError::Relay(RelayError::IdleTimeout),
                504,
                "upstream_idle_timeout",
            ),
            (
                GatewayError::Relay(RelayError::EventTooLarge),
                502,
                "upstream_event_too_large",
            ),
            (
                GatewayError::UpstreamConnectionLost,
                502,
                "upstream_connection_lost",
            ),
            (
                GatewayError::UpstreamResponseTooLarge { limit: 10 },
                502,
                "upstream_response_too_large",
            ),
            (
                GatewayError::InvalidField {
                    param: "stream",
                    expected: "a boolean",
                },
                400,
                "invalid_body",
            ),
        ];
        for (e, status, code) in cases {
            assert_eq!(e.status_code().as_u16(), status, "{e:?}");
            let b = body_of(&e);
            let err = &b["error"];
            assert_eq!(err["code"], code, "{b}");
            assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(err["type"].is_string());
            assert!(err.get("param").is_some());
        }
    }

    #[test]
    fn the_body_is_openais_envelope_byte_for_byte() {
        let resp = GatewayError::ModelNotFound("gpt-x".into()).error_response();
        assert_eq!(
            resp.headers().get(CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let bytes = resp.into_body().try_into_bytes().unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"error":{"message":"The model `gpt-x` does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#
        );
        let b = body_of(&GatewayError::InvalidKey);
        assert_eq!(
            b,
            serde_json::json!({"error": {"message": "Incorrect API key provided.",
                "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
        );
    }

    #[test]
    fn rate_limit_carries_retry_after() {
        let e = GatewayError::RateLimited {
            reason: LimitReason::Budget,
            retry_after_s: 42,
        };
        let resp = e.error_response();
        assert_eq!(resp.headers().get(RETRY_AFTER).unwrap(), "42");
        assert_eq!(body_of(&e)["error"]["type"], "insufficient_quota");
    }

    #[test]
    fn echo_truncates_on_char_boundary() {
        let s = "é".repeat(200);
        let e = echo(&s);
        assert!(e.len() <= 132);
        assert!(e.ends_with('…'));
    }
}
