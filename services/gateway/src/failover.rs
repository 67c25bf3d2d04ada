//! One request's attempts: pick an instance, send, and judge the outcome —
//! answered, provably not processed (sent again, to the same or another
//! instance), or unknown (sent again only where the instance opted in or
//! the client sent an `Idempotency-Key`). See `docs/RELIABILITY.md`.

use crate::accounting::RequestGuard;
use crate::balance;
use crate::error::{GatewayError, Relayed};
use crate::headers::Forward;
use crate::health::AttemptGuard;
use crate::namespace::RetryReason;
use crate::provider;
use crate::request::ParsedBody;
use crate::routing::{Endpoint, ModelRoute};
use crate::state::AppState;
use crate::stream::{self as relay, Ended};
use crate::upstream::{UpstreamBody, UpstreamClient, UpstreamError};
use crate::usage;
use actix_web::HttpRequest;
use aigw_service::clock::monotonic_ms;
use bytes::Bytes;
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::time::Instant;

/// What the attempts produced for the client.
pub enum Reply {
    /// The gateway's own JSON answer.
    Json(Bytes),
    /// An upstream answer relayed whole.
    Full {
        status: u16,
        headers: http::HeaderMap,
        body: Bytes,
        kind: Option<Relayed>,
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

/// Why an attempt failed, and so whether the request may be sent again.
enum Failure {
    /// The upstream provably did not get the request (refused, unreachable).
    Unsent { timeout: bool },
    /// The request left whole and no complete answer came back (connection
    /// lost, first byte or body too late, body cut short): the upstream may
    /// have processed it.
    Unknown { timeout: bool },
    /// The upstream answered that it did not process it (429, 5xx).
    Status(u16),
}

impl Failure {
    fn retry_reason(&self) -> RetryReason {
        match self {
            Failure::Unsent { timeout: false } => RetryReason::Connect,
            Failure::Unsent { timeout: true } => RetryReason::Timeout,
            Failure::Unknown { .. } => RetryReason::UnknownOutcome,
            Failure::Status(429) => RetryReason::Status429,
            Failure::Status(_) => RetryReason::Status5xx,
        }
    }

    /// Whether the instance is to blame for passive health. A request that
    /// was sent and is slow to answer is not: one caller's long generations
    /// must not mark every instance unhealthy.
    fn counts_against_health(&self) -> bool {
        !matches!(self, Failure::Unknown { timeout: true })
    }

    /// What the client is told when this was the last failure.
    fn into_error(self) -> GatewayError {
        match self {
            Failure::Unsent { timeout: true } | Failure::Unknown { timeout: true } => {
                GatewayError::UpstreamTimeout
            }
            Failure::Unknown { timeout: false } => GatewayError::UpstreamConnectionLost,
            Failure::Unsent { timeout: false } | Failure::Status(_) => {
                GatewayError::UpstreamUnreachable
            }
        }
    }
}

fn classify(e: &UpstreamError) -> Failure {
    let timeout = e.is_timeout();
    if e.request_unsent() {
        Failure::Unsent { timeout }
    } else {
        Failure::Unknown { timeout }
    }
}

fn is_event_stream(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// A request the client marked as safe to repeat.
fn has_idempotency_key(req: &HttpRequest) -> bool {
    req.headers()
        .get(IDEMPOTENCY_KEY)
        .is_some_and(|v| !v.is_empty())
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// One request as its attempts see it.
pub struct Attempt<'a> {
    pub state: &'a AppState,
    pub upstream: &'a UpstreamClient,
    pub endpoint: Endpoint,
    pub req: &'a HttpRequest,
    pub route: &'a Arc<ModelRoute>,
    pub parsed: &'a ParsedBody<'a>,
    /// The client's body, rewritten per instance.
    pub body: &'a Bytes,
    pub request_id: &'a str,
}

/// Sends the request to instances of its model until one answers, within
/// `MAX_ATTEMPTS` and the retry contract.
pub async fn forward(a: Attempt<'_>, guard: &mut RequestGuard) -> Result<Reply, GatewayError> {
    let Attempt {
        state,
        upstream,
        endpoint,
        req,
        route,
        parsed,
        body,
        request_id,
    } = a;
    let candidates = &route.instances;
    let idempotent = has_idempotency_key(req);
    let mut tried: Vec<usize> = Vec::with_capacity(2);
    let mut last: Option<Failure> = None;
    for attempt in 0..state.max_attempts {
        let Some(pick) = balance::pick(candidates, &tried, monotonic_ms()) else {
            break;
        };
        if let Some(prev) = &last {
            guard.count_retry(prev.retry_reason());
        }
        tried.push(pick.index);
        let inst = &candidates[pick.index];
        guard.set_instance(inst.id.clone());
        // One branch on the provider: OpenAI-shaped instances get the
        // client's body rewritten byte for byte, the others a translation.
        let (out_body, exchange) = if provider::translates(inst.provider, endpoint) {
            let (b, x) = provider::request(inst, endpoint, body)?;
            (b, Some(x))
        } else {
            (parsed.rewrite(body, &inst.upstream_model_json), None)
        };
        let mut att = AttemptGuard::new(inst.state.clone(), pick.trial);
        let started = Instant::now();
        let first_byte_by = started + inst.timeout;
        let headers = Forward {
            client: req.headers(),
            request_id,
            auth: inst.auth.as_ref().map(|v| (inst.auth_name, v)),
            provider: inst.provider_header.as_ref().map(|(n, v)| (*n, v)),
            organization: inst.openai_organization.as_ref(),
            project: inst.openai_project.as_ref(),
            peer: req.peer_addr().map(|a| a.ip()),
        };
        let send = upstream.send(inst, endpoint.target(parsed.stream), &headers, out_body);
        // Past this point every failure is judged by `failed`: whether it
        // counts against the instance's health and whether another attempt
        // may follow.
        let failed = |att: &mut AttemptGuard, f: Failure| -> ControlFlow<Failure, Failure> {
            if f.counts_against_health() {
                att.failure();
            }
            let resend = match f {
                Failure::Unknown { .. } => inst.retry_unknown_outcome || idempotent,
                _ => true,
            };
            if resend {
                ControlFlow::Continue(f)
            } else {
                ControlFlow::Break(f)
            }
        };
        let resp = match tokio::time::timeout_at(first_byte_by, send).await {
            Err(_) => {
                tracing::warn!(instance = %inst.id, "upstream did not answer in time");
                // The request may have left: the outcome is unknown.
                match failed(&mut att, Failure::Unknown { timeout: true }) {
                    ControlFlow::Continue(f) => {
                        last = Some(f);
                        continue;
                    }
                    ControlFlow::Break(f) => return Err(f.into_error()),
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(instance = %inst.id, error = %e, "upstream request failed");
                match failed(&mut att, classify(&e)) {
                    ControlFlow::Continue(f) => {
                        last = Some(f);
                        continue;
                    }
                    ControlFlow::Break(f) => return Err(f.into_error()),
                }
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
                && balance::has_candidate(candidates, &tried, monotonic_ms());
            if more {
                last = Some(Failure::Status(status));
                continue;
            }
            // Out of attempts: the client sees the upstream's own answer.
            guard.mark_first_byte();
            let body = read_whole(resp.body, &resp.headers, total_by, state.max_response_bytes)
                .await
                .unwrap_or_default();
            let (status, body) =
                provider::error(inst.provider, endpoint, status, &body).unwrap_or((status, body));
            let headers = resp.headers;
            return Ok(Reply::Full {
                status,
                headers,
                body,
                kind: Relayed::of_status(status),
            });
        }
        let ok = (200..300).contains(&status);
        // An event stream is relayed as one whatever the request said, so
        // its usage is read (or its text counted) event by event.
        let streamed = parsed.stream || is_event_stream(&resp.headers);
        if streamed && ok {
            guard.set_streamed();
            let headers = resp.headers;
            let mut upstream = resp.body;
            if let Some(map) = exchange.as_ref().and_then(provider::stream) {
                upstream = upstream.mapped(map);
            }
            // Commit to this instance only once its first chunk is here, so
            // a stream that dies before its first byte still fails over.
            let first = match tokio::time::timeout_at(first_byte_by, upstream.chunk()).await {
                Err(_) => Err(Failure::Unknown { timeout: true }),
                Ok(Some(Err(e))) => Err(classify(&e)),
                Ok(Some(Ok(chunk))) => Ok(chunk),
                Ok(None) => Ok(Bytes::new()),
            };
            let first = match first {
                Ok(chunk) => chunk,
                Err(f) => match failed(&mut att, f) {
                    ControlFlow::Continue(f) => {
                        last = Some(f);
                        continue;
                    }
                    ControlFlow::Break(f) => return Err(f.into_error()),
                },
            };
            att.success();
            guard.mark_first_byte();
            guard.set_upstream_answered();
            let (first, ended) = relay::gather_burst(first, &mut upstream).await;
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
        let body = match read_whole(resp.body, &headers, total_by, state.max_response_bytes).await {
            Ok(b) => b,
            Err(Whole::TooLarge) => {
                // It answered; the answer is not one the gateway relays.
                att.success();
                tracing::warn!(instance = %inst.id, "upstream answer over the size limit");
                return Err(GatewayError::UpstreamResponseTooLarge {
                    limit: state.max_response_bytes,
                });
            }
            Err(Whole::Failed(f)) => match failed(&mut att, f) {
                ControlFlow::Continue(f) => {
                    last = Some(f);
                    continue;
                }
                ControlFlow::Break(f) => return Err(f.into_error()),
            },
        };
        att.success();
        guard.mark_first_byte_at(headers_at);
        let (status, body) = match (&exchange, ok) {
            (Some(x), true) => {
                let (body, usage) = provider::answer(x, &body)?;
                guard.set_upstream_answered();
                match usage {
                    Some(u) => guard.set_usage(u),
                    None => guard.set_completion_body(body.clone()),
                }
                (status, body)
            }
            (None, true) => {
                guard.set_upstream_answered();
                match usage::usage_of_body(&body) {
                    Some(u) => guard.set_usage(u),
                    None => guard.set_completion_body(body.clone()),
                }
                (status, body)
            }
            (_, false) => {
                provider::error(inst.provider, endpoint, status, &body).unwrap_or((status, body))
            }
        };
        return Ok(Reply::Full {
            status,
            headers,
            body,
            kind: Relayed::of_status(status),
        });
    }
    Err(match last {
        None => GatewayError::NoHealthyInstance(route.name.clone()),
        Some(f) => f.into_error(),
    })
}

enum Whole {
    TooLarge,
    Failed(Failure),
}

/// The whole body of an answer whose head arrived, up to `limit` bytes:
/// any failure now is an unknown outcome.
async fn read_whole(
    body: UpstreamBody,
    headers: &http::HeaderMap,
    by: Instant,
    limit: usize,
) -> Result<Bytes, Whole> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Whole::TooLarge);
    }
    let read = async {
        if declared.is_some() {
            // Framing bounds it: read it the cheap way.
            return body.collect().await.map_err(Some);
        }
        body.collect_at_most(limit).await
    };
    match tokio::time::timeout_at(by, read).await {
        Err(_) => Err(Whole::Failed(Failure::Unknown { timeout: true })),
        Ok(Err(None)) => Err(Whole::TooLarge),
        Ok(Err(Some(e))) => Err(Whole::Failed(Failure::Unknown {
            timeout: e.is_timeout(),
        })),
        Ok(Ok(b)) => Ok(b),
    }
}
