//! HTTP routes: the counting API ([`count`]), the operational endpoints
//! ([`ops`]) and the OpenAPI document ([`openapi`]).

pub mod count;
pub mod openapi;
pub mod ops;

use crate::error::ApiError;
use actix_web::{web, HttpResponse, ResponseError};

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
        .service(get("/openapi.json", web::get().to(openapi::openapi)))
        .default_service(web::to(not_found));
}
