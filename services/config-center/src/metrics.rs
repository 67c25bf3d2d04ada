//! What the config-center shows on `/metrics`, and the middleware that
//! counts every HTTP request by method, route template and status.

use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error};
use aigw_metrics::families::config_center as fam;
use aigw_metrics::{Exposition, Render};
use std::time::Instant;

/// Every metric shown as declared in `aigw_metrics::families::config_center`.
pub static EXPOSITION: Exposition = Exposition {
    prefix: "config_center",
    renders: &[
        Render::of(&fam::HTTP_REQUESTS),
        Render::of(&fam::HTTP_LATENCY),
        Render::of(&fam::SNAPSHOT_VERSION),
        Render::of(&fam::PUBLICATIONS),
        Render::of(&fam::PUBLICATION_FAILURES),
        Render::of(&fam::LAST_PUBLICATION),
        Render::of(&fam::ENTITIES),
        Render::of(&fam::LEDGER_ROWS),
        Render::of(&fam::LEDGER_DUPLICATES),
        Render::of(&fam::LEDGER_BATCHES),
        Render::of(&fam::LEDGER_FAILURES),
        Render::of(&fam::LEDGER_MALFORMED),
        Render::of(&fam::LEDGER_DELETED),
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
        let labels = fam::Http {
            method,
            route: &route,
            status: status.as_str(),
        };
        fam::HTTP_REQUESTS.add(&state.recorder, &labels, 1);
        fam::HTTP_LATENCY.observe(&state.recorder, &labels, micros);
    }
    if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        tracing::debug!(method, route, status = status.as_u16(), micros, "request");
    } else {
        tracing::info!(method, route, status = status.as_u16(), micros, "request");
    }
    res
}
