//! OpenAI's error envelope, `{"error":{"message","type","param","code"}}`:
//! what the gateway and the token-service answer on every error, and what
//! OpenAI SDKs parse. Built here once; a service may add fields of its own
//! next to the four (the token-service lists known model names).

use serde::{Deserialize, Serialize};

/// `type` of client errors.
pub const INVALID_REQUEST_ERROR: &str = "invalid_request_error";
/// `type` of errors on the server's side.
pub const SERVER_ERROR: &str = "server_error";

/// OpenAI's `type` for a status: `server_error` for 5xx, else
/// `invalid_request_error` (services with finer types pass their own).
pub fn type_for_status(status: u16) -> &'static str {
    if status >= 500 {
        SERVER_ERROR
    } else {
        INVALID_REQUEST_ERROR
    }
}

/// The whole error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope<X = NoDetail> {
    pub error: ErrorObject<X>,
}

/// The error object. `detail`'s fields are written beside the four
/// standard ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorObject<X = NoDetail> {
    pub message: String,
    /// `invalid_request_error`, `server_error`, `permission_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A stable machine-readable name of the error.
    pub code: Option<String>,
    #[serde(flatten)]
    pub detail: X,
}

/// No fields beyond the standard four.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoDetail {}

impl ErrorEnvelope<NoDetail> {
    /// An error of `kind` with `code` and no `param`.
    pub fn new(kind: &str, code: &str, message: impl Into<String>) -> Self {
        ErrorEnvelope::with_detail(kind, code, message, NoDetail {})
    }
}

impl<X> ErrorEnvelope<X> {
    pub fn with_detail(kind: &str, code: &str, message: impl Into<String>, detail: X) -> Self {
        ErrorEnvelope {
            error: ErrorObject {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: Some(code.to_string()),
                detail,
            },
        }
    }

    /// Names the request field at fault.
    pub fn param(mut self, param: Option<&str>) -> Self {
        self.error.param = param.map(str::to_string);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openai_shape() {
        let e = ErrorEnvelope::new(INVALID_REQUEST_ERROR, "unknown_model", "no such model")
            .param(Some("model"));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"error": {"message": "no such model",
                "type": "invalid_request_error", "param": "model", "code": "unknown_model"}})
        );
        let back: ErrorEnvelope =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(type_for_status(503), SERVER_ERROR);
        assert_eq!(type_for_status(408), INVALID_REQUEST_ERROR);
    }

    #[test]
    fn extra_fields_sit_beside_the_standard_ones() {
        #[derive(Debug, Serialize)]
        struct Known {
            #[serde(skip_serializing_if = "Option::is_none")]
            known: Option<Vec<&'static str>>,
        }
        let e = ErrorEnvelope::with_detail(
            SERVER_ERROR,
            "x",
            "m",
            Known {
                known: Some(vec!["a"]),
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["error"]["known"], serde_json::json!(["a"]));
        assert_eq!(v["error"]["param"], serde_json::Value::Null);
        let none = ErrorEnvelope::with_detail(SERVER_ERROR, "x", "m", Known { known: None });
        let v = serde_json::to_value(&none).unwrap();
        assert_eq!(v["error"].as_object().unwrap().len(), 4);
    }
}
