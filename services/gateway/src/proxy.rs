//! The request path of the proxied endpoints: authenticate → namespace →
//! body → model → limits → pick an instance → forward (with failover before
//! the first byte reached the client) → answer, whole or streamed.

use crate::accounting::{AuthFailure, RequestGuard, RetryReason};
use crate::balance;
use crate::error::{echo, GatewayError};
use crate::health::{now_ms, AttemptGuard};
use crate::limits::Limiter;
use crate::routing::{Endpoint, KeyEntry, ModelRoute, Routing};
use crate::startup::AppState;
use crate::stream::{self as sse, Ended, ProxyStream};
use crate::upstream::{UpstreamBody, UpstreamClient, UpstreamError};
use crate::usage;
use actix_web::http::header as ah;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;
use tokio::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// What a request asks for.
pub enum Input {
    /// A proxied endpoint's JSON body.
    Body(web::Payload),
    /// `GET /v1/models`.
    ModelList,
    /// `GET /v1/models/{model}`.
    Model(String),
}

/// Handles one API request: a proxied endpoint or the models list.
pub async fn handle(
    state: &AppState,
    upstream: &UpstreamClient,
    endpoint: Endpoint,
    req: &HttpRequest,
    input: Input,
) -> HttpResponse {
    let mut guard = state.accounting.start(endpoint);
    let request_id = client_request_id(req).unwrap_or_else(|| guard.record_id.clone());
    let outcome = run(
        state,
        upstream,
        endpoint,
        req,
        input,
        &mut guard,
        &request_id,
    )
    .await;
    let mut resp = match outcome {
        Ok(Reply::Json(body)) => {
            guard.finish(200, None);
            HttpResponse::Ok()
                .insert_header((ah::CONTENT_TYPE, "application/json"))
                .body(body)
        }
        Ok(Reply::Full {
            status,
            headers,
            body,
            kind,
        }) => {
            guard.finish(status, kind);
            let mut b = HttpResponse::build(status_code(status));
            copy_response_headers(&headers, &mut b);
            b.body(body)
        }
        Ok(Reply::Stream {
            status,
            headers,
            upstream,
            first,
            ended,
            attempt,
            hide_usage,
            deadline,
        }) => {
            let mut b = HttpResponse::build(status_code(status));
            copy_response_headers(&headers, &mut b);
            b.streaming(ProxyStream::new(
                upstream, first, ended, guard, attempt, status, hide_usage, deadline,
            ))
        }
        Err(e) => {
            guard.finish(e.status_code().as_u16(), Some(e.kind()));
            e.error_response()
        }
    };
    if let Ok(v) = ah::HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(ah::HeaderName::from_static(REQUEST_ID), v);
    }
    resp
}

enum Reply {
    /// The gateway's own JSON answer.
    Json(Bytes),
    /// An upstream answer relayed whole.
    Full {
        status: u16,
        headers: http::HeaderMap,
        body: Bytes,
        kind: Option<&'static str>,
    },
    /// An upstream stream, its first chunk already read.
    Stream {
        status: u16,
        headers: http::HeaderMap,
        upstream: UpstreamBody,
        first: Bytes,
        ended: Option<Ended>,
        attempt: AttemptGuard,
        hide_usage: bool,
        deadline: Instant,
    },
}

async fn run(
    state: &AppState,
    upstream: &UpstreamClient,
    endpoint: Endpoint,
    req: &HttpRequest,
    input: Input,
    guard: &mut RequestGuard,
    request_id: &str,
) -> Result<Reply, GatewayError> {
    let routing = state.store.load().ok_or(GatewayError::NotReady)?;
    let key = authenticate(&routing, req).inspect_err(|(reason, _)| {
        state.accounting.count_auth_failure(*reason);
    });
    let key = key.map_err(|(_, e)| e)?;
    let ns = key.namespace.clone();
    guard.set_namespace(ns.runtime.clone());
    guard.set_api_key(key.id.clone());
    if !ns.enabled {
        return Err(GatewayError::NamespaceDisabled(ns.code.clone()));
    }
    let payload = match input {
        Input::Body(p) => p,
        Input::ModelList => {
            guard.enter_in_flight();
            return Ok(Reply::Json(ns.models_json_for(key)));
        }
        Input::Model(name) => {
            guard.enter_in_flight();
            return match ns.models.get(&name) {
                Some(m) if key.allows(&m.name) => Ok(Reply::Json(ns.model_json(&m.name))),
                _ => Err(GatewayError::ModelNotFound(echo(&name))),
            };
        }
    };
    let body = read_body(payload, req, state.max_body_bytes).await?;
    guard.enter_in_flight();
    let parsed = ParsedBody::parse(&body, endpoint)?;
    let Some(route) = ns.models.get(parsed.model.as_ref()) else {
        return Err(GatewayError::ModelNotFound(echo(&parsed.model)));
    };
    guard.set_model(
        route.name.clone(),
        parsed.stream,
        body.clone(),
        ns.limits.tpm.is_some(),
    );
    if !key.allows(&route.name) {
        return Err(GatewayError::ModelNotAllowed(route.name.clone()));
    }
    if let Some(slot) = Limiter::check_local(&ns)? {
        guard.set_slot(slot);
    }
    state.limiter.check_rate(&ns).await?;
    forward(
        state, upstream, endpoint, req, route, &parsed, &body, guard, request_id,
    )
    .await
}

fn authenticate<'r>(
    routing: &'r Routing,
    req: &HttpRequest,
) -> Result<&'r KeyEntry, (AuthFailure, GatewayError)> {
    let missing = || (AuthFailure::MissingKey, GatewayError::MissingKey);
    let header = req
        .headers()
        .get(ah::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| (AuthFailure::InvalidKey, GatewayError::InvalidKey))?;
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(missing)?;
    let key = routing
        .key(&aigw_types::hash_api_key(token))
        .ok_or((AuthFailure::InvalidKey, GatewayError::InvalidKey))?;
    if key.revoked {
        return Err((AuthFailure::RevokedKey, GatewayError::RevokedKey));
    }
    if key
        .expires_at_ms
        .is_some_and(|t| crate::accounting::unix_ms() >= t)
    {
        return Err((AuthFailure::ExpiredKey, GatewayError::ExpiredKey));
    }
    Ok(key)
}

async fn read_body(
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
        let stream = probe.stream.is_some_and(|s| s.get() == "true");
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

enum Failure {
    Connect,
    Timeout,
    Status(u16),
}

impl Failure {
    fn retry_reason(&self) -> RetryReason {
        match self {
            Failure::Connect => RetryReason::Connect,
            Failure::Timeout => RetryReason::Timeout,
            Failure::Status(429) => RetryReason::Status429,
            Failure::Status(_) => RetryReason::Status5xx,
        }
    }
}

fn classify(e: &UpstreamError) -> Failure {
    if e.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connect
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &AppState,
    upstream: &UpstreamClient,
    endpoint: Endpoint,
    req: &HttpRequest,
    route: &Arc<ModelRoute>,
    parsed: &ParsedBody<'_>,
    body: &Bytes,
    guard: &mut RequestGuard,
    request_id: &str,
) -> Result<Reply, GatewayError> {
    let candidates = &route.instances;
    let ns = guard.namespace().cloned();
    let mut tried: Vec<usize> = Vec::with_capacity(2);
    let mut last: Option<Failure> = None;
    for attempt in 0..state.max_attempts {
        let Some(pick) = balance::pick(candidates, &tried, now_ms()) else {
            break;
        };
        if let (Some(prev), Some(ns)) = (&last, &ns) {
            ns.count_retry(prev.retry_reason());
        }
        tried.push(pick.index);
        let inst = &candidates[pick.index];
        guard.set_instance(inst.id.clone());
        let mut att = AttemptGuard::new(inst.state.clone(), pick.trial);
        let started = Instant::now();
        let first_byte_by = started + inst.timeout;
        let headers = Forward {
            client: req.headers(),
            request_id,
            auth: inst.auth.as_ref(),
        };
        let send = upstream.send(
            inst,
            endpoint,
            &headers,
            parsed.rewrite(body, &inst.upstream_model_json),
        );
        let resp = match tokio::time::timeout_at(first_byte_by, send).await {
            Err(_) => {
                att.failure();
                tracing::warn!(instance = %inst.id, "upstream did not answer in time");
                last = Some(Failure::Timeout);
                continue;
            }
            Ok(Err(e)) => {
                att.failure();
                tracing::warn!(instance = %inst.id, error = %e, "upstream request failed");
                last = Some(classify(&e));
                continue;
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status;
        let total_by = started + state.total_timeout;
        if status == 429 || status >= 500 {
            if status == 429 {
                // Busy, not broken: it answered.
                att.success();
            } else {
                att.failure();
            }
            tracing::warn!(instance = %inst.id, status, "upstream answered with an error status");
            let more = attempt + 1 < state.max_attempts
                && balance::has_candidate(candidates, &tried, now_ms());
            if more {
                last = Some(Failure::Status(status));
                continue;
            }
            // Out of attempts: the client sees the upstream's own answer.
            guard.mark_first_byte();
            let body = read_whole(resp.body, total_by).await.unwrap_or_default();
            let headers = resp.headers;
            return Ok(Reply::Full {
                status,
                headers,
                body,
                kind: Some(if status == 429 {
                    "upstream_rate_limited"
                } else {
                    "upstream_error"
                }),
            });
        }
        let ok = (200..300).contains(&status);
        if parsed.stream && ok {
            let headers = resp.headers;
            let mut upstream = resp.body;
            // Commit to this instance only once its first chunk is here, so
            // a stream that dies before its first byte still fails over.
            let first = match tokio::time::timeout_at(first_byte_by, upstream.chunk()).await {
                Err(_) => {
                    att.failure();
                    last = Some(Failure::Timeout);
                    continue;
                }
                Ok(Some(Err(e))) => {
                    att.failure();
                    last = Some(classify(&e));
                    continue;
                }
                Ok(Some(Ok(chunk))) => chunk,
                Ok(None) => Bytes::new(),
            };
            att.success();
            guard.mark_first_byte();
            guard.set_upstream_answered();
            let (first, ended) = sse::gather_burst(first, &mut upstream).await;
            return Ok(Reply::Stream {
                status,
                headers,
                upstream,
                first,
                ended,
                attempt: att,
                hide_usage: parsed.hide_usage,
                deadline: total_by,
            });
        }
        // The answer's first byte came with its headers; counted only once
        // the whole answer arrived (a broken body still fails over).
        let headers_at = std::time::Instant::now();
        let headers = resp.headers;
        let body = match read_whole(resp.body, total_by).await {
            Ok(b) => b,
            Err(f) => {
                att.failure();
                last = Some(f);
                continue;
            }
        };
        att.success();
        guard.mark_first_byte_at(headers_at);
        if ok {
            guard.set_upstream_answered();
            match usage::usage_of_body(&body) {
                Some(u) => guard.set_usage(u),
                None => guard.set_completion_body(body.clone()),
            }
        }
        return Ok(Reply::Full {
            status,
            headers,
            body,
            kind: (!ok).then_some("upstream_client_error"),
        });
    }
    Err(match last {
        None => GatewayError::NoHealthyInstance(route.name.clone()),
        Some(Failure::Timeout) => GatewayError::UpstreamTimeout,
        Some(Failure::Connect) | Some(Failure::Status(_)) => GatewayError::UpstreamUnreachable,
    })
}

async fn read_whole(body: UpstreamBody, by: Instant) -> Result<Bytes, Failure> {
    match tokio::time::timeout_at(by, body.collect()).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(classify(&e)),
        Ok(Ok(b)) => Ok(b),
    }
}

/// A client-supplied request id, if it is short and plain enough to echo.
fn client_request_id(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.to_string())
}

/// Client headers that must not reach an upstream: credentials, hop-by-hop
/// headers, and those the gateway sets itself.
fn strip_request_header(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "cookie"
            | "x-api-key"
            | "api-key"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "proxy-connection"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "content-type"
            | "expect"
            // The gateway reads the answer (usage), so it must be plain.
            | "accept-encoding"
            | REQUEST_ID
    )
}

/// Upstream headers that must not reach the client.
fn strip_response_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "set-cookie"
            | "openai-organization"
            | "openai-project"
            | REQUEST_ID
    )
}

/// The headers of one upstream request: the client's, filtered, with the
/// request id, the JSON content type and the instance's credentials.
pub struct Forward<'a> {
    pub client: &'a ah::HeaderMap,
    pub request_id: &'a str,
    /// `Bearer {instance key}`, when the instance has one.
    pub auth: Option<&'a http::HeaderValue>,
}

impl Forward<'_> {
    /// The client headers that may travel on, as `(name, value)`.
    fn client_headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Headers named in `Connection` are hop-by-hop too.
        let listed: Vec<String> = self
            .client
            .get_all(ah::CONNECTION)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        self.client.iter().filter_map(move |(name, value)| {
            let n = name.as_str();
            (!strip_request_header(n) && !listed.iter().any(|l| l == n))
                .then(|| (n, value.as_bytes()))
        })
    }

    /// As a header map (the general client).
    pub fn header_map(&self) -> http::HeaderMap {
        use http::header::{HeaderName, HeaderValue};
        let mut out = http::HeaderMap::with_capacity(self.client.len() + 4);
        for (n, v) in self.client_headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(v),
            ) {
                out.append(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(self.request_id) {
            out.insert(HeaderName::from_static(REQUEST_ID), v);
        }
        out.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(auth) = self.auth {
            out.insert(http::header::AUTHORIZATION, auth.clone());
        }
        out
    }

    /// As HTTP/1.1 header lines (the direct client), with `Accept: */*`
    /// when the client sent none (what reqwest sends by default).
    pub fn header_lines(&self) -> Vec<u8> {
        use crate::h1::write_header;
        let mut out = Vec::with_capacity(256);
        let mut accept = false;
        for (n, v) in self.client_headers() {
            accept |= n == "accept";
            write_header(&mut out, n.as_bytes(), v);
        }
        if !accept {
            write_header(&mut out, b"accept", b"*/*");
        }
        if http::HeaderValue::from_str(self.request_id).is_ok() {
            write_header(&mut out, REQUEST_ID.as_bytes(), self.request_id.as_bytes());
        }
        write_header(&mut out, b"content-type", b"application/json");
        if let Some(auth) = self.auth {
            write_header(&mut out, b"authorization", auth.as_bytes());
        }
        out
    }
}

fn copy_response_headers(src: &http::HeaderMap, dst: &mut actix_web::HttpResponseBuilder) {
    for (name, value) in src.iter() {
        let n = name.as_str();
        if strip_response_header(n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            ah::HeaderName::from_bytes(n.as_bytes()),
            ah::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            dst.append_header((n, v));
        }
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
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
    }

    #[test]
    fn credential_and_hop_headers_are_not_forwarded() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("authorization", "Bearer sk-client"))
            .insert_header(("cookie", "a=b"))
            .insert_header(("x-api-key", "k"))
            .insert_header(("connection", "keep-alive, x-hop"))
            .insert_header(("x-hop", "1"))
            .insert_header(("x-custom", "kept"))
            .insert_header(("openai-beta", "assistants=v2"))
            .to_http_request();
        let auth = http::HeaderValue::from_static("Bearer sk-instance");
        let fwd = Forward {
            client: req.headers(),
            request_id: "rid-1",
            auth: Some(&auth),
        };
        // The direct client's header lines say the same as the general
        // client's header map.
        let lines = fwd.header_lines();
        let mut parsed = http::HeaderMap::new();
        for line in String::from_utf8(lines).unwrap().split_terminator("\r\n") {
            let (n, v) = line.split_once(": ").unwrap();
            parsed.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut map = fwd.header_map();
        assert!(map.get("accept").is_none());
        map.insert("accept", http::HeaderValue::from_static("*/*"));
        assert_eq!(parsed, map);
        for h in [&parsed, &map] {
            assert_eq!(h.get("x-custom").unwrap(), "kept");
            assert_eq!(h.get("openai-beta").unwrap(), "assistants=v2");
            assert_eq!(h.get("x-request-id").unwrap(), "rid-1");
            assert_eq!(h.get("authorization").unwrap(), "Bearer sk-instance");
            assert_eq!(h.get("content-type").unwrap(), "application/json");
            for gone in ["cookie", "x-api-key", "connection", "x-hop"] {
                assert!(h.get(gone).is_none(), "{gone} was forwarded");
            }
        }
    }
}
