//! HTTP routes: registration, shared state and the helpers every handler
//! uses (pagination, answering after a commit). Handlers parse, call the
//! domain and storage, and shape the answer.

pub mod api_keys;
pub mod health;
pub mod instances;
pub mod models;
pub mod namespaces;
pub mod snapshot;

use crate::auth;
use crate::error::{json_error, query_error, ApiError};
use crate::publisher::Publisher;
use crate::storage::Store;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};
use aigw_metrics::{MetricsEndpoint, Recorder, RedisConn};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Header naming the config version a change committed as.
pub const VERSION_HEADER: &str = "x-config-version";
/// Header saying whether that version was already in Redis when answering.
pub const PUBLISHED_HEADER: &str = "x-config-published";

/// State shared by every worker, built once at start.
pub struct AppState {
    pub store: Store,
    pub publisher: Publisher,
    pub redis: RedisConn,
    pub recorder: Recorder,
    pub metrics: MetricsEndpoint,
    pub admin_token_hash: [u8; 32],
    pub publish_wait: Duration,
    pub openapi_json: String,
}

impl AppState {
    /// The answer to a committed change: waits (bounded) for publication so
    /// a caller can read its write from Redis, and says the version.
    pub async fn committed<T: Serialize>(
        &self,
        status: StatusCode,
        version: u64,
        body: Option<&T>,
    ) -> HttpResponse {
        let published = self.publisher.committed(version, self.publish_wait).await;
        let mut res = HttpResponse::build(status);
        res.insert_header((VERSION_HEADER, version.to_string()))
            .insert_header((PUBLISHED_HEADER, if published { "true" } else { "false" }));
        match body {
            Some(b) => res.json(b),
            None => res.finish(),
        }
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

impl Pagination {
    pub fn limit(&self) -> Result<u32, ApiError> {
        let l = self.limit.unwrap_or(DEFAULT_PAGE);
        crate::domain::bounded("limit", l, 1, MAX_PAGE).map(|l| l as u32)
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// Cuts a page fetched with `limit + 1` rows to `limit` and names the
/// cursor of the next page (the last item's sort key).
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

/// A resource whose unsupported methods get a JSON 405 naming `allowed`.
fn resource(path: &str, allowed: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            allowed: allowed.to_string(),
        })
    }))
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

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
                .default_service(web::to(route_not_found)),
        )
        .default_service(web::to(route_not_found));
    }
}
