//! Errors the mock answers with, in the shape of the provider whose API was
//! called: OpenAI's `{"error":{message,type,param,code}}`, Anthropic's
//! `{"type":"error","error":{type,message},"request_id"}`, Azure OpenAI's
//! `{"error":{code,message}}` (OpenAI's shape for model-level errors such as
//! content filtering) and Google's `{"error":{code,message,status}}`.

use actix_web::{http::StatusCode, HttpResponse, HttpResponseBuilder, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};

/// The API dialects the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    #[serde(rename = "azure_openai")]
    AzureOpenAi,
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::AzureOpenAi,
        Provider::Gemini,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::AzureOpenAi => "azure_openai",
            Provider::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == s)
    }

    /// The error kinds `"mock": {"error": KIND}` accepts, with their status.
    fn kinds(self) -> &'static [(&'static str, u16)] {
        match self {
            Provider::OpenAi => &[
                ("invalid_request_error", 400),
                ("context_length_exceeded", 400),
                ("authentication_error", 401),
                ("permission_error", 403),
                ("not_found_error", 404),
                ("rate_limit_error", 429),
                ("insufficient_quota", 429),
                ("server_error", 500),
                ("service_unavailable", 503),
            ],
            Provider::AzureOpenAi => &[
                ("content_filter", 400),
                ("context_length_exceeded", 400),
                ("401", 401),
                ("DeploymentNotFound", 404),
                ("429", 429),
                ("500", 500),
                ("503", 503),
            ],
            Provider::Anthropic => &[
                ("invalid_request_error", 400),
                ("authentication_error", 401),
                ("billing_error", 402),
                ("permission_error", 403),
                ("not_found_error", 404),
                ("request_too_large", 413),
                ("rate_limit_error", 429),
                ("api_error", 500),
                ("timeout_error", 504),
                ("overloaded_error", 529),
            ],
            Provider::Gemini => &[
                ("INVALID_ARGUMENT", 400),
                ("FAILED_PRECONDITION", 400),
                ("UNAUTHENTICATED", 401),
                ("PERMISSION_DENIED", 403),
                ("NOT_FOUND", 404),
                ("RESOURCE_EXHAUSTED", 429),
                ("CANCELLED", 499),
                ("INTERNAL", 500),
                ("UNAVAILABLE", 503),
                ("DEADLINE_EXCEEDED", 504),
            ],
        }
    }

    /// A known error kind and its status, or the list of known ones.
    pub fn error_kind(self, kind: &str) -> Result<(&'static str, u16), String> {
        self.kinds()
            .iter()
            .find(|(k, _)| *k == kind)
            .copied()
            .ok_or_else(|| {
                let known: Vec<&str> = self.kinds().iter().map(|(k, _)| *k).collect();
                format!(
                    "mock.error {kind:?} is not a {} error kind; known: {}",
                    self.name(),
                    known.join(", ")
                )
            })
    }

    /// The kind a provider uses for an injected status when none is named.
    pub fn kind_for_status(self, status: u16) -> &'static str {
        match self {
            Provider::OpenAi => match status {
                401 => "authentication_error",
                429 => "rate_limit_error",
                s if s >= 500 => "server_error",
                _ => "invalid_request_error",
            },
            // Azure's platform errors carry the status itself as the code.
            Provider::AzureOpenAi => self
                .kinds()
                .iter()
                .find(|(k, s)| *s == status && k.parse::<u16>().is_ok())
                .map(|(k, _)| *k)
                .unwrap_or("error"),
            Provider::Anthropic => match status {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                504 => "timeout_error",
                529 => "overloaded_error",
                s if s >= 500 => "api_error",
                _ => "invalid_request_error",
            },
            Provider::Gemini => match status {
                401 => "UNAUTHENTICATED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                499 => "CANCELLED",
                503 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                s if s >= 500 => "INTERNAL",
                _ => "INVALID_ARGUMENT",
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The body is not a request this endpoint understands.
    #[error("invalid request body: {0}")]
    InvalidRequest(String),
    /// A failure asked for by `MOCK_ERROR_RATE`, `"mock": {"status": ..}` or
    /// `"mock": {"error": ..}`; `kind` is one of the provider's kinds.
    #[error("mock upstream injected a {status} error")]
    Injected { status: u16, kind: &'static str },
    /// `MOCK_API_KEY` is set and the request carried no key (`missing`) or
    /// another one.
    #[error("unauthorized")]
    Unauthorized { missing: bool },
    #[error("unknown route")]
    NotFound,
}

impl MockError {
    /// An injected failure with the provider's kind for that status.
    pub fn injected(provider: Provider, status: u16) -> MockError {
        MockError::Injected {
            status,
            kind: provider.kind_for_status(status),
        }
    }

    /// This error as `provider` answers it.
    pub fn answered_by(self, provider: Provider) -> Failure {
        Failure {
            provider,
            error: self,
        }
    }

    fn status(&self, provider: Provider) -> u16 {
        match self {
            MockError::InvalidRequest(_) => 400,
            MockError::Injected { status, .. } => *status,
            MockError::Unauthorized { missing } => match provider {
                // Google refuses an unknown key as a bad argument and a
                // missing one as an unidentified caller.
                Provider::Gemini if *missing => 403,
                Provider::Gemini => 400,
                _ => 401,
            },
            MockError::NotFound => 404,
        }
    }

    /// The JSON body `provider` sends for this error, also used for errors
    /// sent inside a stream.
    pub fn body(&self, provider: Provider) -> Value {
        let status = self.status(provider);
        let message = self.message(provider);
        match provider {
            Provider::OpenAi => openai_body(self, &message),
            Provider::AzureOpenAi => match self {
                MockError::Injected {
                    kind: "content_filter",
                    ..
                } => azure_content_filter_body(&message),
                MockError::InvalidRequest(_)
                | MockError::Injected {
                    kind: "context_length_exceeded",
                    ..
                } => openai_body(self, &message),
                MockError::Injected { kind, .. } => {
                    json!({"error": {"code": kind, "message": message}})
                }
                MockError::Unauthorized { .. } => {
                    json!({"error": {"code": "401", "message": message}})
                }
                MockError::NotFound => {
                    json!({"error": {"code": "404", "message": message}})
                }
            },
            Provider::Anthropic => {
                let kind = match self {
                    MockError::InvalidRequest(_) => "invalid_request_error",
                    MockError::Injected { kind, .. } => kind,
                    MockError::Unauthorized { .. } => "authentication_error",
                    MockError::NotFound => "not_found_error",
                };
                json!({
                    "type": "error",
                    "error": {"type": kind, "message": message},
                    "request_id": anthropic_request_id(),
                })
            }
            Provider::Gemini => {
                let kind = match self {
                    MockError::Unauthorized { missing: true } => "PERMISSION_DENIED",
                    MockError::Unauthorized { missing: false } => "INVALID_ARGUMENT",
                    MockError::InvalidRequest(_) => "INVALID_ARGUMENT",
                    MockError::Injected { kind, .. } => kind,
                    MockError::NotFound => "NOT_FOUND",
                };
                let mut error = json!({"code": status, "message": message, "status": kind});
                match self {
                    MockError::Unauthorized { missing: false } => {
                        error["details"] = json!([{
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                            "metadata": {"service": "generativelanguage.googleapis.com"}
                        }]);
                    }
                    MockError::Injected { status: 429, .. } => {
                        error["details"] = json!([{
                            "@type": "type.googleapis.com/google.rpc.RetryInfo",
                            "retryDelay": "1s"
                        }]);
                    }
                    _ => {}
                }
                json!({ "error": error })
            }
        }
    }

    fn message(&self, provider: Provider) -> String {
        match (self, provider) {
            (MockError::Unauthorized { missing: true }, Provider::OpenAi) => {
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".into()
            }
            (MockError::Unauthorized { missing: false }, Provider::OpenAi) => {
                "Incorrect API key provided.".into()
            }
            (MockError::Unauthorized { missing: true }, Provider::Anthropic) => {
                "x-api-key header is required".into()
            }
            (MockError::Unauthorized { missing: false }, Provider::Anthropic) => {
                "invalid x-api-key".into()
            }
            (MockError::Unauthorized { missing: true }, Provider::AzureOpenAi) => {
                "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.".into()
            }
            (MockError::Unauthorized { missing: false }, Provider::AzureOpenAi) => {
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.".into()
            }
            (MockError::Unauthorized { missing: true }, Provider::Gemini) => {
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into()
            }
            (MockError::Unauthorized { missing: false }, Provider::Gemini) => {
                "API key not valid. Please pass a valid API key.".into()
            }
            (MockError::Injected { kind: "content_filter", .. }, _) => {
                "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.".into()
            }
            (MockError::Injected { kind: "overloaded_error", .. }, _) => "Overloaded".into(),
            (MockError::NotFound, Provider::AzureOpenAi) => "Resource not found".into(),
            // OpenAI's wording keeps its prefix, as before the other providers.
            (MockError::InvalidRequest(m), p) if p != Provider::OpenAi => m.clone(),
            _ => self.to_string(),
        }
    }
}

fn openai_body(e: &MockError, message: &str) -> Value {
    let (kind, code) = match e {
        MockError::InvalidRequest(_) => ("invalid_request_error", Some("invalid_request")),
        MockError::Injected {
            kind: "insufficient_quota",
            ..
        } => ("insufficient_quota", Some("insufficient_quota")),
        MockError::Injected {
            kind: "context_length_exceeded",
            ..
        } => ("invalid_request_error", Some("context_length_exceeded")),
        MockError::Injected {
            kind: "rate_limit_error",
            ..
        } => ("rate_limit_error", Some("rate_limit_exceeded")),
        MockError::Injected {
            kind: "authentication_error",
            ..
        } => ("authentication_error", Some("invalid_api_key")),
        MockError::Injected { kind, .. } => (*kind, Some("mock_injected")),
        MockError::Unauthorized { missing: true } => ("invalid_request_error", None),
        MockError::Unauthorized { missing: false } => {
            ("invalid_request_error", Some("invalid_api_key"))
        }
        MockError::NotFound => ("invalid_request_error", Some("unknown_url")),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// Azure's answer to a prompt its content filter refused: OpenAI's shape
/// with the filter's verdict per category in `innererror`.
fn azure_content_filter_body(message: &str) -> Value {
    json!({"error": {
        "message": message,
        "type": null,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": false, "severity": "safe"},
                "jailbreak": {"filtered": false, "detected": false},
                "self_harm": {"filtered": false, "severity": "safe"},
                "sexual": {"filtered": false, "severity": "safe"},
                "violence": {"filtered": true, "severity": "high"}
            }
        }
    }})
}

fn anthropic_request_id() -> String {
    format!("req_mock{:016x}", rand::random::<u64>())
}

/// A [`MockError`] in the shape of the provider that was called.
#[derive(Debug)]
pub struct Failure {
    pub provider: Provider,
    pub error: MockError,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.provider.name())
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.error.status(self.provider))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let body = self.error.body(self.provider);
        let mut res = HttpResponseBuilder::new(self.status_code());
        if matches!(self.error, MockError::Injected { status: 429, .. })
            && self.provider != Provider::Gemini
        {
            res.insert_header(("retry-after", "1"));
        }
        if self.provider == Provider::Anthropic {
            if let Some(id) = body["request_id"].as_str() {
                res.insert_header(("request-id", id.to_string()));
            }
        }
        res.json(body)
    }
}

/// The OpenAI endpoints return `MockError` directly: OpenAI's shape.
impl ResponseError for MockError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status(Provider::OpenAi))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponseBuilder::new(self.status_code());
        if matches!(self, MockError::Injected { status: 429, .. }) {
            res.insert_header(("retry-after", "1"));
        }
        res.json(self.body(Provider::OpenAi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_back_to_its_status_and_statuses_have_a_kind() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.name()), Some(p));
            for (kind, status) in p.kinds() {
                assert_eq!(p.error_kind(kind), Ok((*kind, *status)));
            }
            assert!(p.error_kind("nope").unwrap_err().contains("known:"));
            for status in [400, 401, 403, 404, 429, 500, 503, 529] {
                let kind = p.kind_for_status(status);
                assert!(!kind.is_empty(), "{p:?} {status}");
            }
        }
        assert_eq!(Provider::Anthropic.kind_for_status(529), "overloaded_error");
        assert_eq!(Provider::Gemini.kind_for_status(429), "RESOURCE_EXHAUSTED");
        assert_eq!(Provider::AzureOpenAi.kind_for_status(429), "429");
        assert_eq!(Provider::OpenAi.kind_for_status(502), "server_error");
    }

    #[test]
    fn unauthorized_statuses_follow_each_provider() {
        let missing = MockError::Unauthorized { missing: true };
        let wrong = MockError::Unauthorized { missing: false };
        assert_eq!(missing.status(Provider::OpenAi), 401);
        assert_eq!(missing.status(Provider::Anthropic), 401);
        assert_eq!(missing.status(Provider::AzureOpenAi), 401);
        assert_eq!(missing.status(Provider::Gemini), 403);
        assert_eq!(wrong.status(Provider::Gemini), 400);
        assert_eq!(
            wrong.body(Provider::Gemini)["error"]["details"][0]["reason"],
            "API_KEY_INVALID"
        );
        assert_eq!(
            wrong.body(Provider::Anthropic)["error"]["type"],
            "authentication_error"
        );
        assert_eq!(wrong.body(Provider::AzureOpenAi)["error"]["code"], "401");
        assert_eq!(
            wrong.body(Provider::OpenAi)["error"]["code"],
            "invalid_api_key"
        );
    }
}
