//! The web console under `/ui`: server-rendered pages (maud) over the same
//! validation, storage and publication as the admin API, with htmx and
//! uPlot embedded in the binary. Signed in with the admin token; every
//! write is a POST form that carries the session's CSRF token; every answer
//! has a strict Content-Security-Policy (no inline script or style).
//!
//! Layers, entry first: this file (routes and headers) → the pages
//! ([`signin`], [`overview`], [`namespaces`], [`keys`], [`models`],
//! [`instances`], [`usage`]) → [`session`], [`live`] (Redis reads),
//! [`prometheus`] (the overview's traffic from Prometheus' HTTP API),
//! [`forms`], [`error`] → [`layout`].

mod assets;
mod error;
mod forms;
mod instances;
mod keys;
mod layout;
mod live;
mod models;
mod namespaces;
mod overview;
pub mod prometheus;
mod session;
mod signin;
mod usage;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, Error};

/// Scripts, styles and everything else only from this origin; no plugins,
/// no framing, forms post only here.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_asset = req.path().starts_with("/ui/assets/");
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !is_asset {
        // Pages can hold a freshly issued key: never store them.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// Registers `/ui` and everything under it.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/ui")
            .wrap(from_fn(security_headers))
            .app_data(
                web::FormConfig::default()
                    .limit(64 * 1024)
                    .error_handler(error::form_error),
            )
            .route("", web::get().to(overview::show))
            .route("/", web::get().to(overview::show))
            .route("/assets/{name}", web::get().to(assets::serve))
            .route("/sign-in", web::get().to(signin::show))
            .route("/sign-in", web::post().to(signin::submit))
            .route("/sign-out", web::post().to(signin::sign_out))
            .route("/namespaces", web::get().to(namespaces::list))
            .route("/namespaces", web::post().to(namespaces::create))
            .route("/namespaces/{code}", web::get().to(namespaces::edit))
            .route("/namespaces/{code}", web::post().to(namespaces::update))
            .route(
                "/namespaces/{code}/enabled",
                web::post().to(namespaces::set_enabled),
            )
            .route("/namespaces/{code}/keys", web::get().to(keys::list))
            .route("/namespaces/{code}/keys", web::post().to(keys::create))
            .route(
                "/namespaces/{code}/keys/{id}/revoke",
                web::post().to(keys::revoke),
            )
            .route("/models", web::get().to(models::list))
            .route("/models", web::post().to(models::create))
            .route("/instances", web::get().to(instances::list))
            .route("/instances", web::post().to(instances::create))
            .route("/instances/table", web::get().to(instances::live_table))
            .route("/usage", web::get().to(usage::show))
            .route("/usage.csv", web::get().to(usage::csv))
            .default_service(web::to(error::not_found)),
    );
}
