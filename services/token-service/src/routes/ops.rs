//! Health, readiness and metrics.

use crate::metrics::{scrape_values, ScrapeGauges};
use crate::state::AppState;
use crate::usage::consumer::{stream_backlog, ConsumerState};
use actix_web::{web, HttpResponse};
use aigw_metrics::families::token_service as f;
use aigw_types::BudgetMonth;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` while the process serves.
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `ready`, or `shutting_down` while draining.
    pub status: &'static str,
    /// Encoders are loaded before the service listens: always true.
    pub encoders: bool,
    /// Whether Redis answered a PING just now (only usage accounting and
    /// metrics need it; counting works without).
    pub redis: bool,
    /// Version of the config snapshot in use, if one was loaded.
    pub snapshot_version: Option<u64>,
    /// `disabled`, `starting`, `waiting_for_snapshot`, `running`,
    /// `redis_unavailable` or `stopped`.
    pub consumer: &'static str,
}

/// This UTC month's cost per namespace of the snapshot, in USD: one
/// pipelined read of the `NS_MONTH_COST` series.
async fn month_costs(state: &AppState) -> Vec<(String, f64)> {
    let Some(snap) = state.snapshot.current() else {
        return Vec::new();
    };
    let month = BudgetMonth::of_unix_ms(aigw_service::clock::now_ms()).label();
    let codes: Vec<&str> = snap.namespaces.iter().map(|n| n.code.as_str()).collect();
    let fut = async {
        let mut conn = state.redis.get().await.ok()?;
        let mut p = redis::pipe();
        for ns in &codes {
            p.get(f::NS_MONTH_COST.key(&f::NsMonth {
                namespace_code: ns,
                month: &month,
            }));
        }
        p.query_async::<Vec<Option<i64>>>(&mut conn).await.ok()
    };
    match tokio::time::timeout(Duration::from_millis(1000), fut).await {
        Ok(Some(values)) => codes
            .iter()
            .zip(values)
            .map(|(ns, v)| (ns.to_string(), v.unwrap_or(0) as f64 / 1e9))
            .collect(),
        _ => Vec::new(),
    }
}

/// Liveness: answers while the process serves, whatever Redis does.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: 200 when the counting API can serve (it needs no Redis), 503
/// while shutting down. The body tells the state of usage accounting.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses(
        (status = 200, description = "Ready to count", body = Readiness),
        (status = 503, description = "Shutting down", body = Readiness),
    ))]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let redis_ok = async {
        let mut c = state.redis.get().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    };
    let redis = tokio::time::timeout(Duration::from_millis(500), redis_ok)
        .await
        .ok()
        .flatten()
        .is_some();
    let shutting_down = state.shutting_down.load(Ordering::Relaxed);
    let body = Readiness {
        status: if shutting_down {
            "shutting_down"
        } else {
            "ready"
        },
        encoders: true,
        redis,
        snapshot_version: state.snapshot.version(),
        consumer: state.consumer.get().as_str(),
    };
    if shutting_down {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
    }
}

/// Prometheus exposition: OpenMetrics when asked for (as Prometheus does),
/// the classic text format otherwise.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Metrics (classic text, or OpenMetrics when the Accept header asks for it)",
        content((String = "text/plain"), (String = "application/openmetrics-text")))))]
pub async fn metrics(req: actix_web::HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let st = state.clone();
    let render = |accept: Option<String>| async move {
        let state = st;
        // Fleet values: read only by the replica that shows them.
        let fleet = state.metrics.is_exporter();
        let backlog = if fleet {
            stream_backlog(&state.redis).await
        } else {
            None
        };
        let month_cost_usd = if fleet {
            month_costs(&state).await
        } else {
            Vec::new()
        };
        let gauges = ScrapeGauges {
            stream_pending: backlog.map(|(p, _)| p),
            stream_lag: backlog.and_then(|(_, l)| l),
            count_jobs_in_flight: state.pool.in_flight(),
            snapshot_version: state.snapshot.version().map(|v| v as i64),
            consumer_running: state.consumer.get() == ConsumerState::Running,
            month_cost_usd,
        };
        let values = scrape_values(&gauges);
        state
            .metrics
            .render_negotiated_with(accept.as_deref(), &values)
            .await
    };
    state.scrape.serve(&req, render).await
}
