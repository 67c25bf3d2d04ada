//! What the config-center shows on `/metrics`, and the middleware that
//! counts every HTTP request by method, route template and status.

use crate::routes::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error};
use aigw_metrics::families::config_center as fam;
use aigw_metrics::{Exposition, Render};
use std::time::Instant;

pub static EXPOSITION: Exposition = Exposition {
    prefix: "config_center",
    renders: &[
        Render::Counter {
            name: "config_center_http_requests_total",
            help: "HTTP requests by method, route template and status.",
            family: &fam::HTTP_REQUESTS,
            scale: 1.0,
        },
        Render::Histogram {
            name: "config_center_http_request_duration_seconds",
            help: "HTTP request latency by method, route template and status.",
            family: &fam::HTTP_LATENCY,
            scale: 1e-6,
        },
        Render::Gauge {
            name: "config_center_snapshot_version",
            help: "Version of the config snapshot last published to Redis.",
            family: &fam::SNAPSHOT_VERSION,
            scale: 1.0,
        },
        Render::Counter {
            name: "config_center_publications_total",
            help: "Config snapshots written to Redis.",
            family: &fam::PUBLICATIONS,
            scale: 1.0,
        },
        Render::Counter {
            name: "config_center_publication_failures_total",
            help: "Failed attempts to publish the config snapshot (each retry counts).",
            family: &fam::PUBLICATION_FAILURES,
            scale: 1.0,
        },
        Render::Gauge {
            name: "config_center_last_publication_timestamp_seconds",
            help: "Unix time of the last successful publication.",
            family: &fam::LAST_PUBLICATION,
            scale: 1e-3,
        },
        Render::Gauge {
            name: "config_center_entities",
            help: "Entities in the published config by kind (api_keys: not revoked).",
            family: &fam::ENTITIES,
            scale: 1.0,
        },
    ],
};

/// A bounded method label: unknown methods share one value.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Records every request (after it is answered) and logs it. The route
/// label is the matched template, never the raw path, so label values stay
/// bounded; unknown paths share `unmatched`.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await;
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let micros = started.elapsed().as_micros() as u64;
    if let Some(state) = state {
        let status_s = status.as_str();
        let labels = [method, route.as_str(), status_s];
        state.recorder.add(&fam::HTTP_REQUESTS, &labels, 1);
        state.recorder.observe(&fam::HTTP_LATENCY, &labels, micros);
    }
    if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        tracing::debug!(method, route, status = status.as_u16(), micros, "request");
    } else {
        tracing::info!(method, route, status = status.as_u16(), micros, "request");
    }
    res
}
