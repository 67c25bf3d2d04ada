//! Reading a request: the client's key checked against the routing table,
//! the body read within its size limit, and the few JSON fields the gateway
//! needs (`model`, `stream`, `stream_options`) located without parsing the
//! rest, so the body can be rewritten for an instance byte for byte.

use crate::error::GatewayError;
use crate::namespace::AuthFailure;
use crate::routing::{Endpoint, KeyEntry, Routing};
use actix_web::http::header as ah;
use actix_web::{web, HttpRequest};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

/// What a request asks for.
pub enum Input {
    /// A proxied endpoint's JSON body.
    Body(web::Payload),
    /// `GET /v1/models`.
    ModelList,
    /// `GET /v1/models/{model}`.
    Model(String),
}

/// The caller's key: `Authorization: Bearer`, or (Anthropic's Messages API
/// in front) `x-api-key`.
pub fn authenticate<'r>(
    routing: &'r Routing,
    req: &HttpRequest,
    endpoint: Endpoint,
) -> Result<&'r KeyEntry, (AuthFailure, GatewayError)> {
    let missing = || (AuthFailure::MissingKey, GatewayError::MissingKey);
    let invalid = || (AuthFailure::InvalidKey, GatewayError::InvalidKey);
    let token = match req.headers().get(ah::AUTHORIZATION) {
        None if endpoint == Endpoint::Messages => req
            .headers()
            .get("x-api-key")
            .ok_or_else(missing)?
            .to_str()
            .map_err(|_| invalid())?
            .trim(),
        None => return Err(missing()),
        Some(header) => header
            .to_str()
            .map_err(|_| invalid())?
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or_else(missing)?,
    };
    if token.is_empty() {
        return Err(missing());
    }
    let key = routing
        .key(&aigw_types::hash_api_key(token))
        .ok_or((AuthFailure::InvalidKey, GatewayError::InvalidKey))?;
    if key.revoked {
        return Err((AuthFailure::RevokedKey, GatewayError::RevokedKey));
    }
    if key
        .expires_at_ms
        .is_some_and(|t| aigw_service::clock::now_ms() >= t)
    {
        return Err((AuthFailure::ExpiredKey, GatewayError::ExpiredKey));
    }
    Ok(key)
}

pub async fn read_body(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = req
        .headers()
        .get(ah::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    // One chunk is the common case: keep it without copying.
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| GatewayError::BodyRead(e.to_string()))?;
        total += chunk.len();
        if total > limit {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        match (&mut first, &mut buf) {
            (None, None) => first = Some(chunk),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(declared.unwrap_or(total * 2).min(limit));
                b.extend_from_slice(f);
                b.extend_from_slice(&chunk);
                buf = Some(b);
            }
            (_, Some(b)) => b.extend_from_slice(&chunk),
        }
    }
    Ok(match buf {
        Some(b) => b.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// The few request fields the gateway reads; the body is otherwise opaque.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    /// `null` is kept as `Some("null")`, so the rewrite replaces it rather
    /// than appending a second `stream_options` key.
    #[serde(borrow, default, deserialize_with = "raw_keep_null")]
    stream_options: Option<&'a RawValue>,
}

fn raw_keep_null<'de, D>(d: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&'de RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

/// A validated request body and how to rewrite it for an instance.
pub struct ParsedBody<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client did not ask for the usage chunk; we did.
    pub hide_usage: bool,
    model_span: Range<usize>,
    stream_options: Option<(Range<usize>, String)>,
}

fn span(body: &[u8], raw: &RawValue) -> Range<usize> {
    // A borrowed RawValue is a slice of `body`: its offset is the distance
    // between the two pointers.
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

impl<'a> ParsedBody<'a> {
    pub fn parse(body: &'a [u8], endpoint: Endpoint) -> Result<Self, GatewayError> {
        let probe: Probe<'a> = serde_json::from_slice(body).map_err(|e| {
            GatewayError::InvalidJson(if e.is_data() {
                format!("expected a JSON object ({e})")
            } else {
                e.to_string()
            })
        })?;
        let raw_model = probe.model.ok_or(GatewayError::MissingModel)?;
        let model: Cow<'a, str> =
            match serde_json::from_str::<Option<Cow<'a, str>>>(raw_model.get()) {
                Ok(Some(m)) if !m.is_empty() => m,
                Ok(_) => return Err(GatewayError::MissingModel),
                Err(_) => {
                    return Err(GatewayError::InvalidJson(
                        "`model` must be a string".to_string(),
                    ))
                }
            };
        let model_span = span(body, raw_model);
        // A JSON boolean (or null), as OpenAI requires: a string such as
        // "true" would be read as non-streaming here and as streaming by a
        // lenient upstream, and its usage would go unrecorded.
        let stream = match probe.stream.map(RawValue::get) {
            None | Some("null") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(GatewayError::InvalidField {
                    param: "stream",
                    expected: "a boolean",
                })
            }
        };
        let mut hide_usage = false;
        let mut stream_options = None;
        if stream && endpoint.streams_usage() {
            match probe.stream_options {
                None => {
                    hide_usage = true;
                    stream_options = Some((
                        model_span.end..model_span.end,
                        r#","stream_options":{"include_usage":true}"#.to_string(),
                    ));
                }
                Some(raw) => {
                    let parsed: Result<Option<serde_json::Map<String, serde_json::Value>>, _> =
                        serde_json::from_str(raw.get());
                    if let Ok(opts) = parsed {
                        let mut opts = opts.unwrap_or_default();
                        if opts.get("include_usage") != Some(&serde_json::Value::Bool(true)) {
                            hide_usage = true;
                            opts.insert("include_usage".into(), serde_json::Value::Bool(true));
                            stream_options = Some((
                                span(body, raw),
                                serde_json::Value::Object(opts).to_string(),
                            ));
                        }
                    }
                }
            }
        }
        Ok(ParsedBody {
            model,
            stream,
            hide_usage,
            model_span,
            stream_options,
        })
    }

    /// The body for one instance: `model` replaced by the instance's
    /// upstream model, `stream_options.include_usage` set when needed, every
    /// other byte unchanged.
    pub fn rewrite(&self, body: &[u8], upstream_model_json: &str) -> Bytes {
        let mut edits: [(Range<usize>, &str); 2] = [
            (self.model_span.clone(), upstream_model_json),
            (usize::MAX..usize::MAX, ""),
        ];
        if let Some((r, t)) = &self.stream_options {
            edits[1] = (r.clone(), t.as_str());
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut pos = 0;
        for (r, text) in &edits {
            if r.start == usize::MAX {
                continue;
            }
            out.extend_from_slice(&body[pos..r.start]);
            out.extend_from_slice(text.as_bytes());
            pos = r.end;
        }
        out.extend_from_slice(&body[pos..]);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(body: &str, ep: Endpoint) -> (String, bool) {
        let p = ParsedBody::parse(body.as_bytes(), ep).unwrap();
        let out = p.rewrite(body.as_bytes(), "\"up-model\"");
        (String::from_utf8(out.to_vec()).unwrap(), p.hide_usage)
    }

    #[test]
    fn model_is_replaced_and_everything_else_kept() {
        let body = r#"{ "messages":[{"role":"user","content":"hi \"model\""}], "model" : "gpt-x", "temperature":0.7,"z":{"model":"inner"}}"#;
        let (out, hide) = rewrite(body, Endpoint::Chat);
        assert_eq!(
            out,
            r#"{ "messages":[{"role":"user","content":"hi \"model\""}], "model" : "up-model", "temperature":0.7,"z":{"model":"inner"}}"#
        );
        assert!(!hide);
    }

    #[test]
    fn stream_usage_is_requested_when_missing() {
        let (out, hide) = rewrite(r#"{"model":"m","stream":true}"#, Endpoint::Chat);
        assert_eq!(
            out,
            r#"{"model":"up-model","stream_options":{"include_usage":true},"stream":true}"#
        );
        assert!(hide);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);

        let (out, hide) = rewrite(
            r#"{"stream":true,"stream_options":{"include_usage":false,"x":1},"model":"m"}"#,
            Endpoint::Completions,
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["x"], 1);
        assert_eq!(v["model"], "up-model");
        assert!(hide);

        let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let (out, hide) = rewrite(body, Endpoint::Chat);
        assert_eq!(out, body.replace("\"m\"", "\"up-model\""));
        assert!(!hide);

        // Embeddings never get stream options.
        let (out, _) = rewrite(r#"{"model":"m","stream":true}"#, Endpoint::Embeddings);
        assert_eq!(out, r#"{"model":"up-model","stream":true}"#);
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let p = ParsedBody::parse(br#"{"model":"gpt\u002d4"}"#, Endpoint::Chat).unwrap();
        assert_eq!(p.model, "gpt-4");
    }

    #[test]
    fn invalid_bodies() {
        let err = |b: &str| {
            ParsedBody::parse(b.as_bytes(), Endpoint::Chat)
                .err()
                .unwrap()
                .kind()
        };
        assert_eq!(err("{"), "invalid_json");
        assert_eq!(err("[1,2]"), "invalid_json");
        assert_eq!(err(""), "invalid_json");
        assert_eq!(err(r#"{"messages":[]}"#), "missing_model");
        assert_eq!(err(r#"{"model":null}"#), "missing_model");
        assert_eq!(err(r#"{"model":""}"#), "missing_model");
        assert_eq!(err(r#"{"model":42}"#), "invalid_json");
        assert_eq!(err(r#"{"model":"a","model":"b"}"#), "invalid_json");
        for stream in [r#""true""#, "1", r#""yes""#, "{}", "[]", "0"] {
            let body = format!(r#"{{"model":"m","stream":{stream}}}"#);
            assert_eq!(err(&body), "invalid_body", "{body}");
        }
        for (stream, expected) in [("true", true), ("false", false), ("null", false)] {
            let body = format!(r#"{{"model":"m","stream":{stream}}}"#);
            let p = ParsedBody::parse(body.as_bytes(), Endpoint::Chat).unwrap();
            assert_eq!(p.stream, expected, "{body}");
        }
    }
}
