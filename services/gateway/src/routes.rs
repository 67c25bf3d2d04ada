//! HTTP routes: the OpenAI-compatible API under `/v1`, and `/health`,
//! `/ready`, `/metrics`. Unknown routes and wrong methods answer in the
//! OpenAI error shape too.

use crate::error::GatewayError;
use crate::proxy;
use crate::request::Input;
use crate::routing::Endpoint;
use crate::state::AppState;
use crate::upstream::UpstreamClient;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use aigw_metrics::families::gateway as fam;
use aigw_metrics::ScrapeValues;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/chat/completions")
            .route(web::post().to(chat))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/messages")
            .route(web::post().to(messages))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/completions")
            .route(web::post().to(completions))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/embeddings")
            .route(web::post().to(embeddings))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/models")
            .route(web::get().to(models))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/models/{model}")
            .route(web::get().to(model))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/ready")
            .route(web::get().to(ready))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(metrics))
            .default_service(web::to(method_not_allowed)),
    );
}

/// This worker's upstream client (registered per worker in `startup`).
type Upstream = web::Data<UpstreamClient>;

async fn chat(
    state: web::Data<AppState>,
    up: Upstream,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    proxy::handle(&state, &up, Endpoint::Chat, &req, Input::Body(body)).await
}

async fn messages(
    state: web::Data<AppState>,
    up: Upstream,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    proxy::handle(&state, &up, Endpoint::Messages, &req, Input::Body(body)).await
}

async fn completions(
    state: web::Data<AppState>,
    up: Upstream,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    proxy::handle(&state, &up, Endpoint::Completions, &req, Input::Body(body)).await
}

async fn embeddings(
    state: web::Data<AppState>,
    up: Upstream,
    req: HttpRequest,
    body: web::Payload,
) -> HttpResponse {
    proxy::handle(&state, &up, Endpoint::Embeddings, &req, Input::Body(body)).await
}

async fn models(state: web::Data<AppState>, up: Upstream, req: HttpRequest) -> HttpResponse {
    proxy::handle(&state, &up, Endpoint::Models, &req, Input::ModelList).await
}

/// `GET /v1/models/{model}`: one entry of the caller's list, or 404.
async fn model(
    state: web::Data<AppState>,
    up: Upstream,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let input = Input::Model(path.into_inner());
    proxy::handle(&state, &up, Endpoint::Models, &req, input).await
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready once a routing snapshot is loaded.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    match state.store.version() {
        Some(v) => HttpResponse::Ok().json(serde_json::json!({"status": "ready", "config_version": v})),
        None => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not_ready", "reason": "no routing configuration loaded yet"})),
    }
}

/// Prometheus exposition: OpenMetrics when asked for (as Prometheus does),
/// the classic text format otherwise.
async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    scrape: web::Data<aigw_service::ScrapeGate>,
) -> HttpResponse {
    let render = |accept: Option<String>| async move {
        let budgets = budget_values(&state);
        state
            .metrics
            .render_negotiated_with(accept.as_deref(), &budgets)
            .await
    };
    scrape.serve(&req, render).await
}

/// `ai_gateway_namespace_budget_usd{namespace_code}` from the routing
/// snapshot.
fn budget_values(state: &AppState) -> ScrapeValues {
    let mut values = ScrapeValues::new();
    if let Some(routing) = state.store.load() {
        for (ns, nano) in routing.budgets() {
            values.set_fleet(
                &fam::NAMESPACE_BUDGET_USD,
                &fam::Namespace { namespace_code: ns },
                nano as f64 / 1e9,
            );
        }
    }
    values
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    GatewayError::RouteNotFound {
        method: req.method().to_string(),
        path: crate::error::echo(req.path()),
    }
    .error_response()
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    GatewayError::MethodNotAllowed {
        method: req.method().to_string(),
        path: crate::error::echo(req.path()),
    }
    .error_response()
}
