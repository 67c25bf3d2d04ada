//! HTTP routes: the counting API ([`count`]) and the operational endpoints
//! ([`ops`]), plus the OpenAPI document.

pub mod count;
pub mod ops;

use crate::error::ApiError;
use actix_web::{web, HttpResponse, ResponseError};
use utoipa::OpenApi;

/// The OpenAPI document served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "token-service",
        description = "Token counting (OpenAI tiktoken encodings, exact) and usage accounting of the AI gateway."
    ),
    paths(
        count::count,
        count::count_chat_request,
        count::count_batch,
        count::encodings,
        count::list_models,
        ops::health,
        ops::ready,
        ops::metrics,
        ops::openapi,
    ),
    tags(
        (name = "tokens", description = "Token counting"),
        (name = "ops", description = "Health, readiness, metrics")
    )
)]
pub struct ApiDoc;

async fn not_found() -> HttpResponse {
    ApiError::NotFound.error_response()
}

async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let post = |path: &str, r: actix_web::Route| {
        web::resource(path)
            .route(r)
            .default_service(web::to(method_not_allowed))
    };
    let get = post;
    cfg.service(post("/v1/tokens/count", web::post().to(count::count)))
        .service(post(
            "/v1/tokens/count/chat",
            web::post().to(count::count_chat_request),
        ))
        .service(post(
            "/v1/tokens/count/batch",
            web::post().to(count::count_batch),
        ))
        .service(get("/v1/encodings", web::get().to(count::encodings)))
        .service(get("/v1/models", web::get().to(count::list_models)))
        .service(get("/health", web::get().to(ops::health)))
        .service(get("/ready", web::get().to(ops::ready)))
        .service(get("/metrics", web::get().to(ops::metrics)))
        .service(get("/openapi.json", web::get().to(ops::openapi)))
        .default_service(web::to(not_found));
}
