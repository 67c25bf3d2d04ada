//! The mock's own endpoints for tests: `/health`, `/mock/stats`,
//! `/mock/requests` (what arrived), `/mock/overrides` (how the next
//! requests are answered), `/mock/release` (gated streams) and
//! `/mock/models-status` (the health probe's answer).

use crate::error::{MockError, Provider};
use crate::overrides::RuleRequest;
use crate::state::{Endpoint, State};
use crate::stream::MAX_RELEASE;
use crate::wire::parse;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Request counts per endpoint and provider, injected errors, and the last
/// request's routing facts.
pub async fn stats(state: web::Data<State>) -> HttpResponse {
    let last = state.journal.last().map(|e| {
        json!({
            "provider": e.provider,
            "path": e.path(),
            "model": e.model(),
            "authorization": e.header("authorization"),
        })
    });
    HttpResponse::Ok().json(json!({
        // OpenAI's endpoints, as before the other providers existed.
        "requests": {
            "chat_completions": state.count(Endpoint::ChatCompletions),
            "completions": state.count(Endpoint::Completions),
            "embeddings": state.count(Endpoint::Embeddings),
        },
        "requests_by_provider": state.counts_by_provider(),
        "injected_errors": state.injected(),
        "requests_cancelled": state.requests_cancelled(),
        // Requests waiting out their latency at once (a bound on how many
        // a caller ran concurrently): now, and the most ever.
        "waiting": {"now": state.waiting().0, "max": state.waiting().1},
        "models_requests": state.models_requests(),
        "streams": {
            "chunks_sent": state.streams.chunks_sent(),
            "completed": state.streams.completed(),
            "cancelled": state.streams.cancelled(),
        },
        "last_request": last.unwrap_or_else(|| json!({
            "provider": null, "path": null, "model": null, "authorization": null
        })),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    provider: Option<String>,
    limit: Option<usize>,
}

fn provider_filter(name: Option<&str>) -> Result<Option<Provider>, MockError> {
    match name {
        None => Ok(None),
        Some(n) => Provider::parse(n).map(Some).ok_or_else(|| {
            MockError::InvalidRequest(format!(
                "provider must be one of openai, anthropic, azure_openai, gemini; got {n:?}"
            ))
        }),
    }
}

/// `GET /mock/requests?provider=&limit=`: the newest recorded requests,
/// oldest first.
pub async fn requests(
    state: web::Data<State>,
    q: Result<web::Query<RequestsQuery>, actix_web::Error>,
) -> Result<HttpResponse, MockError> {
    let q = q.map_err(|e| MockError::InvalidRequest(e.to_string()))?;
    let provider = provider_filter(q.provider.as_deref())?;
    let limit = q.limit.unwrap_or(usize::MAX);
    let list: Vec<_> = state
        .journal
        .recent(provider, limit)
        .iter()
        .map(|e| e.to_json())
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "requests": list })))
}

pub async fn clear_requests(state: web::Data<State>) -> HttpResponse {
    state.journal.clear();
    HttpResponse::NoContent().finish()
}

/// `POST /mock/overrides`: a rule applied to the next matching requests.
pub async fn add_override(
    state: web::Data<State>,
    body: web::Bytes,
) -> Result<HttpResponse, MockError> {
    let r: RuleRequest = parse(&body)?;
    let rule = state.rules.add(r).map_err(MockError::InvalidRequest)?;
    Ok(HttpResponse::Created().json(rule))
}

pub async fn list_overrides(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "overrides": state.rules.list() }))
}

pub async fn clear_overrides(state: web::Data<State>) -> HttpResponse {
    state.rules.clear();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    chunks: usize,
}

/// `POST /mock/release {"chunks": n}`: gated streams may send `n` more
/// content chunks.
pub async fn release(state: web::Data<State>, body: web::Bytes) -> Result<HttpResponse, MockError> {
    let r: Release = parse(&body)?;
    if r.chunks > MAX_RELEASE {
        return Err(MockError::InvalidRequest(format!(
            "chunks must be at most {MAX_RELEASE}"
        )));
    }
    state.streams.release(r.chunks);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsStatus {
    status: u16,
}

/// `POST /mock/models-status {"status": 503}`: the status OpenAI's model
/// list answers with from now on.
pub async fn models_status(
    state: web::Data<State>,
    body: web::Bytes,
) -> Result<HttpResponse, MockError> {
    let r: ModelsStatus = parse(&body)?;
    if !(200..=599).contains(&r.status) {
        return Err(MockError::InvalidRequest(format!(
            "status must be 200..599, got {}",
            r.status
        )));
    }
    state.set_models_status(r.status);
    Ok(HttpResponse::NoContent().finish())
}

pub async fn not_found() -> Result<HttpResponse, MockError> {
    Err(MockError::NotFound)
}
