//! HTTP routes: their registration. One module per resource; [`common`]
//! holds what every handler uses (pagination, answering after a commit).
//! Handlers parse, call the domain and storage, and shape the answer.

pub mod api_keys;
pub mod common;
pub mod health;
pub mod instances;
pub mod models;
pub mod namespaces;
pub mod snapshot;
pub mod usage;

use crate::auth;
use crate::error::{json_error, query_error, ApiError};
use actix_web::middleware::from_fn;
use actix_web::web;
use common::{resource, route_not_found};

/// Registers every route. `max_body` bounds JSON bodies (413 beyond).
pub fn configure(max_body: usize) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(
            web::JsonConfig::default()
                .limit(max_body)
                .error_handler(json_error),
        )
        .app_data(web::QueryConfig::default().error_handler(query_error))
        // A path segment that cannot be decoded names nothing that exists.
        .app_data(
            web::PathConfig::default().error_handler(|_, _| ApiError::not_found("resource").into()),
        )
        .service(resource("/health", "GET").route(web::get().to(health::health)))
        .service(resource("/ready", "GET").route(web::get().to(health::ready)))
        .service(resource("/metrics", "GET").route(web::get().to(health::metrics)))
        .service(
            web::scope("/api/v1")
                .wrap(from_fn(auth::require_admin))
                .service(resource("/openapi.json", "GET").route(web::get().to(snapshot::openapi)))
                .service(resource("/snapshot", "GET").route(web::get().to(snapshot::get)))
                .service(
                    resource("/namespaces", "GET, POST")
                        .route(web::get().to(namespaces::list))
                        .route(web::post().to(namespaces::create)),
                )
                .service(
                    resource("/namespaces/{code}", "GET, PATCH, DELETE")
                        .route(web::get().to(namespaces::get))
                        .route(web::patch().to(namespaces::patch))
                        .route(web::delete().to(namespaces::delete)),
                )
                .service(
                    resource("/namespaces/{code}/api-keys", "GET, POST")
                        .route(web::get().to(api_keys::list))
                        .route(web::post().to(api_keys::create)),
                )
                .service(
                    resource("/namespaces/{code}/api-keys/{id}", "GET, DELETE")
                        .route(web::get().to(api_keys::get))
                        .route(web::delete().to(api_keys::revoke)),
                )
                .service(
                    resource("/models", "GET, POST")
                        .route(web::get().to(models::list))
                        .route(web::post().to(models::create)),
                )
                .service(
                    resource("/models/{name}", "GET, PATCH, DELETE")
                        .route(web::get().to(models::get))
                        .route(web::patch().to(models::patch))
                        .route(web::delete().to(models::delete)),
                )
                .service(
                    resource("/instances", "GET, POST")
                        .route(web::get().to(instances::list))
                        .route(web::post().to(instances::create)),
                )
                .service(
                    resource("/instances/{id}", "GET, PATCH, DELETE")
                        .route(web::get().to(instances::get))
                        .route(web::patch().to(instances::patch))
                        .route(web::delete().to(instances::delete)),
                )
                .service(resource("/usage", "GET").route(web::get().to(usage::totals)))
                .service(resource("/usage/requests", "GET").route(web::get().to(usage::requests)))
                .default_service(web::to(route_not_found)),
        )
        .default_service(web::to(route_not_found));
    }
}
