//! Building and running the gateway: shared state built once, background
//! tasks under one cancellation token, the HTTP server, and graceful
//! shutdown (stop accepting → drain in-flight requests within
//! `SHUTDOWN_GRACE` → stop background tasks → flush metrics and usage).

use crate::accounting::Accounting;
use crate::config::Settings;
use crate::exposition::EXPOSITION;
use crate::health::HealthPolicy;
use crate::lease::{self, LeaseBook};
use crate::limits::{Limiter, QuotaBook};
use crate::routing::RoutingStore;
use crate::state::AppState;
use crate::stream::RelayLimits;
use crate::upstream::{self, UpstreamClient, UpstreamConfig};
use crate::{config_watch, limits, probe, routes};
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use aigw_metrics::{
    ExporterLease, JournalConfig, MetricsEndpoint, Recorder, RecorderConfig, RedisConn,
};
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Application {
    port: u16,
    server: Server,
    handle: AppHandle,
    tasks: Vec<JoinHandle<()>>,
    flusher: JoinHandle<()>,
    cancel: CancellationToken,
    flush_cancel: CancellationToken,
}

/// A handle to a running application, for tests and embedding.
#[derive(Clone)]
pub struct AppHandle {
    server: ServerHandle,
    state: web::Data<AppState>,
}

impl AppHandle {
    /// Stops the server; `graceful` lets in-flight requests finish first.
    pub async fn stop(&self, graceful: bool) {
        self.server.stop(graceful).await;
    }

    /// Requests being handled right now.
    pub fn live_requests(&self) -> usize {
        self.state.accounting.live_requests()
    }

    /// Version of the loaded routing snapshot.
    pub fn config_version(&self) -> Option<u64> {
        self.state.store.version()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.state.accounting.recorder
    }

    /// The month-to-date cost last read for a namespace, nano-USD.
    pub fn namespace_spent_nano_usd(&self, ns: &str) -> Option<i64> {
        let r = self.state.store.load()?;
        Some(
            r.namespace(ns)?
                .runtime
                .spent_nano_usd
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }
}

impl Application {
    /// Binds the port and starts background work; does not need Redis to be
    /// up (the gateway serves `/health` and reports not ready until a
    /// snapshot is loaded).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        let body_timeout = settings.body_timeout;
        let scrape = web::Data::new(aigw_service::ScrapeGate::new(
            settings.metrics_token.clone(),
        ));
        let listener = std::net::TcpListener::bind((settings.bind_addr.as_str(), settings.port))
            .with_context(|| format!("binding {}:{}", settings.bind_addr, settings.port))?;
        let port = listener.local_addr()?.port();
        let url = settings.redis_url.expose();
        // Separate handles: background tasks run on this runtime, request
        // handlers and scrapes on the HTTP workers' runtimes, and a Redis
        // connection's driver lives on the runtime that opened it.
        let bg_redis = RedisConn::new(url).context("REDIS_URL")?;
        let request_redis = RedisConn::new(url).context("REDIS_URL")?;
        let scrape_redis = RedisConn::new(url).context("REDIS_URL")?;

        let journal = settings.journal.dir.as_ref().map(|dir| JournalConfig {
            dir: dir.clone(),
            max_bytes: settings.journal.max_bytes,
        });
        let recorder = Recorder::open(
            RecorderConfig {
                flush_records: settings.metrics_flush_records,
                ..RecorderConfig::for_service("gateway")
            },
            journal.as_ref(),
        );
        let cancel = CancellationToken::new();
        let flush_cancel = CancellationToken::new();
        let quotas = Arc::new(QuotaBook::default());
        let slice_task =
            limits::spawn_slice_settler(bg_redis.clone(), quotas.clone(), cancel.clone());
        let replica = aigw_service::replica_name("gateway");
        let exporter =
            ExporterLease::new("gateway", replica.clone(), settings.metrics_exporter_ttl);
        let (leases, released) = LeaseBook::new(replica, settings.concurrency_lease_ttl);
        let accounting = Arc::new(Accounting::new(recorder.clone()));
        let store = Arc::new(RoutingStore::new(
            recorder.clone(),
            HealthPolicy {
                failure_threshold: settings.passive_failure_threshold,
                cooldown: settings.passive_cooldown,
                probe_failures: settings.health_check_failures,
            },
        ));
        let up_config = UpstreamConfig {
            connect_timeout: settings.upstream_connect_timeout,
            direct: settings.upstream_direct,
        };
        let general = upstream::general_client(settings.upstream_connect_timeout)
            .context("building the upstream HTTP client")?;
        let probe_client = upstream::general_client(settings.upstream_connect_timeout)
            .context("building the health-check HTTP client")?;
        let state = web::Data::new(AppState {
            store: store.clone(),
            accounting,
            limiter: Limiter::new(
                request_redis,
                settings.rate_limit_timeout,
                leases.clone(),
                quotas,
            ),
            metrics: MetricsEndpoint::with_exporter(
                scrape_redis,
                &EXPOSITION,
                Some(recorder.clone()),
                exporter.clone(),
            ),
            max_body_bytes: settings.max_body_bytes,
            max_attempts: settings.upstream_max_attempts,
            total_timeout: settings.upstream_total_timeout,
            max_response_bytes: settings.upstream_max_response_bytes,
            relay: RelayLimits {
                max_event_bytes: settings.sse_max_event_bytes,
                idle_timeout: settings.upstream_idle_timeout,
            },
            client_write_timeout: settings.client_write_timeout,
        });

        let tasks = vec![
            config_watch::spawn(
                store.clone(),
                bg_redis.clone(),
                settings.config_poll_interval,
                cancel.clone(),
            ),
            tokio::spawn(probe::run_active_checks(
                store.clone(),
                probe_client,
                cancel.clone(),
            )),
            tokio::spawn(limits::run_budget_poller(
                store.clone(),
                bg_redis.clone(),
                settings.budget_poll_interval,
                cancel.clone(),
            )),
            slice_task,
            aigw_metrics::spawn_exporter_lease(exporter, bg_redis.clone(), cancel.clone()),
            tokio::spawn(lease::run(
                leases,
                released,
                bg_redis.clone(),
                cancel.clone(),
            )),
        ];
        let flusher = aigw_metrics::spawn_flusher(
            recorder,
            bg_redis,
            settings.metrics_flush_interval,
            settings.shutdown_grace.min(Duration::from_secs(10)),
            flush_cancel.clone(),
        );

        let data = state.clone();
        let server = HttpServer::new(move || {
            // Runs on each worker thread: the upstream client's direct path
            // belongs to this worker (see `upstream`).
            let client = UpstreamClient::for_worker(&up_config, general.clone());
            App::new()
                .app_data(data.clone())
                .app_data(scrape.clone())
                .app_data(web::Data::new(client))
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
                .wrap(aigw_service::BodyDeadline(body_timeout))
        })
        .disable_signals()
        // A client that closes its side is gone: drop its response at once so
        // the upstream request is cancelled instead of generating unread tokens.
        .h1_allow_half_closed(false)
        // Stream chunks are small writes: without this, Nagle's algorithm
        // holds each one until the client's delayed ACK (tens of ms).
        .tcp_nodelay(true)
        .shutdown_timeout(settings.shutdown_grace.as_secs().max(1))
        .workers(settings.workers);
        let server = server.listen(listener)?.run();
        let handle = AppHandle {
            server: server.handle(),
            state,
        };
        tracing::info!(port, "gateway listening");
        Ok(Application {
            port,
            server,
            handle,
            tasks,
            flusher,
            cancel,
            flush_cancel,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> AppHandle {
        self.handle.clone()
    }

    /// Serves until SIGTERM/SIGINT (or [`AppHandle::stop`]), then drains and
    /// flushes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let server_handle = self.server.handle();
        let signals = tokio::spawn(async move {
            aigw_service::shutdown_signal().await;
            tracing::info!("shutdown signal received; draining in-flight requests");
            server_handle.stop(true).await;
        });
        let result = self.server.await;
        signals.abort();
        tracing::info!("http server stopped; stopping background tasks");
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        // Last: every request has been accounted and every slice given
        // back, so the final flush carries everything.
        self.flush_cancel.cancel();
        let _ = self.flusher.await;
        tracing::info!("metrics flushed; bye");
        result.context("http server")
    }
}
