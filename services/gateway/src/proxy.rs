//! The request path of the proxied endpoints: authenticate → namespace →
//! body → model → limits → pick an instance → forward (with failover before
//! the first byte reached the client) → answer, whole or streamed.

use crate::accounting::RequestGuard;
use crate::client_watch::ClientWatch;
use crate::error::{echo, GatewayError, Relayed};
use crate::failover::{self, Attempt, Reply};
use crate::headers::{client_request_id, copy_response_headers, REQUEST_ID};
use crate::limits::Limiter;
use crate::request::{authenticate, read_body, Input, ParsedBody};
use crate::routing::Endpoint;
use crate::state::AppState;
use crate::stream::ProxyStream;
use crate::upstream::UpstreamClient;
use actix_web::http::header as ah;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

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
            guard.finish(status, kind.map(Relayed::kind));
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
            b.streaming(ClientWatch::new(
                ProxyStream::new(
                    upstream,
                    first,
                    ended,
                    guard,
                    attempt,
                    status,
                    hide_usage,
                    deadline,
                    state.relay,
                ),
                state.client_write_timeout,
            ))
        }
        Err(e) => {
            guard.finish(e.status_code().as_u16(), Some(e.kind()));
            if endpoint == Endpoint::Messages {
                e.anthropic_response()
            } else {
                e.error_response()
            }
        }
    };
    if let Ok(v) = ah::HeaderValue::from_str(&request_id) {
        resp.headers_mut()
            .insert(ah::HeaderName::from_static(REQUEST_ID), v);
    }
    resp
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
    let key = authenticate(&routing, req, endpoint).inspect_err(|(reason, _)| {
        guard.count_auth_failure(*reason);
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
    let rejected = |guard: &mut RequestGuard, e: &GatewayError| {
        if let GatewayError::RateLimited { reason, .. } = e {
            guard.count_rejection(*reason);
        }
    };
    if let Some(slot) = Limiter::check_local(&ns).inspect_err(|e| rejected(guard, e))? {
        guard.set_slot(slot);
    }
    let lease = state.limiter.check_shared(&ns).await;
    if let Some(lease) = lease.inspect_err(|e| rejected(guard, e))? {
        guard.set_lease(lease);
    }
    failover::forward(
        Attempt {
            state,
            upstream,
            endpoint,
            req,
            route,
            parsed: &parsed,
            body: &body,
            request_id,
        },
        guard,
    )
    .await
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
}
