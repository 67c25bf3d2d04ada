//! Liveness, readiness and `/metrics` (no auth on these).

use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use aigw_metrics::families::config_center as fam;
use aigw_metrics::{keys, NoLabels, ScrapeValues};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` when the database answers; Redis being down does not make
    /// the service unready (changes still commit and publish later).
    #[schema(example = "ready")]
    pub status: &'static str,
    pub database: bool,
    pub redis: bool,
    /// Version committed in SQL (null when the database is unreachable).
    pub committed_version: Option<u64>,
    /// Highest version this process knows to be in Redis.
    pub published_version: u64,
}

#[utoipa::path(
    get, operation_id = "health", path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

#[utoipa::path(
    get, operation_id = "ready", path = "/ready", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready to take changes", body = Readiness),
        (status = 503, description = "Database unreachable", body = Readiness),
    )
)]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let committed_version = state.store.version().await.ok();
    let database = committed_version.is_some();
    // Bounded: a probe must answer quickly even while Redis hangs.
    let ping = async {
        let mut c = state.redis.get().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut c).await.ok()
    };
    let redis = matches!(
        tokio::time::timeout(Duration::from_millis(500), ping).await,
        Ok(Some(_))
    );
    let body = Readiness {
        status: if database { "ready" } else { "not_ready" },
        database,
        redis,
        committed_version,
        published_version: state.publisher.published_version(),
    };
    if database {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[utoipa::path(
    get, operation_id = "metrics", path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus exposition (text, or OpenMetrics when asked for)", content_type = "text/plain", body = String))
)]
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let st = state.clone();
    let render = |accept: Option<String>| async move {
        let mut values = ScrapeValues::new();
        // Fleet values: read only by the replica that shows them.
        let backlog = if st.metrics.is_exporter() {
            aigw_metrics::stream::group_backlog(&st.redis, keys::LEDGER_STREAM, keys::LEDGER_GROUP)
                .await
        } else {
            None
        };
        if let Some((pending, lag)) = backlog {
            values.set_fleet(&fam::LEDGER_PENDING, &NoLabels, pending as f64);
            if let Some(lag) = lag {
                values.set_fleet(&fam::LEDGER_LAG, &NoLabels, lag as f64);
            }
        }
        st.metrics
            .render_negotiated_with(accept.as_deref(), &values)
            .await
    };
    state.scrape.serve(&req, render).await
}
