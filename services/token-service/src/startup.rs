//! Building and running the service: shared state built once, the HTTP
//! server, the background tasks, and an orderly shutdown.

use crate::config::Config;
use crate::metrics::EXPOSITION;
use crate::pool::CountPool;
use crate::state::AppState;
use crate::tokenize::Encoders;
use crate::usage::consumer::{Consumer, ConsumerState, ConsumerStatus};
use actix_web::{web, App, HttpServer};
use aigw_metrics::{ExporterLease, MetricsEndpoint, Recorder, RecorderConfig, RedisConn};
use aigw_snapshot::{SnapshotCell, SnapshotWatcher, WatcherSettings};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A built, not yet running, service.
pub struct Application {
    port: u16,
    config: Config,
    exporter: Arc<ExporterLease>,
    server: actix_web::dev::Server,
    state: web::Data<AppState>,
    stop: CancellationToken,
}

impl Application {
    /// Loads the encoders, binds the listener and prepares the server.
    /// Does not need Redis.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        let started = std::time::Instant::now();
        let encoders = Arc::new(
            tokio::task::spawn_blocking(Encoders::load)
                .await
                .context("loading encoders")??,
        );
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "encoders loaded"
        );
        let redis = RedisConn::new(config.redis_url.expose()).context("REDIS_URL")?;
        let recorder = Recorder::new(RecorderConfig::for_service("token-service"));
        let exporter = ExporterLease::new(
            "token-service",
            aigw_service::replica_name("token-service"),
            config.metrics_exporter_ttl,
        );
        let state = web::Data::new(AppState {
            encoders,
            snapshot: SnapshotCell::new(),
            pool: CountPool::new(config.count_concurrency),
            metrics: MetricsEndpoint::with_exporter(
                redis.clone(),
                &EXPOSITION,
                Some(recorder.clone()),
                exporter.clone(),
            ),
            scrape: aigw_service::ScrapeGate::with(
                config.metrics_token.clone(),
                config.metrics_cache_ttl,
            ),
            recorder,
            redis,
            max_body_bytes: config.max_body_bytes,
            consumer: Arc::new(ConsumerStatus::new(if config.consumer.enabled {
                ConsumerState::Starting
            } else {
                ConsumerState::Disabled
            })),
            shutting_down: Arc::new(AtomicBool::new(false)),
        });
        let listener = TcpListener::bind((config.bind_addr.as_str(), config.port))
            .with_context(|| format!("binding {}:{}", config.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let app_state = state.clone();
        let body_timeout = config.body_timeout;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .configure(crate::routes::configure)
                .wrap(aigw_service::BodyDeadline(body_timeout))
        })
        .workers(config.http_workers)
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            config,
            exporter,
            server,
            state,
            stop: CancellationToken::new(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cancelling this token stops the service as SIGTERM does.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Serves until SIGTERM/SIGINT (when `handle_signals`) or the stop
    /// token, then shuts down in order: refuse new connections and drain
    /// in-flight requests (bounded by `SHUTDOWN_TIMEOUT`), stop the consumer
    /// after its current batch and the config watcher, and finally let the
    /// metrics flusher write what is left. The flusher has its own token
    /// because it must outlive the tasks whose metrics it writes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Application {
            exporter,
            config,
            server,
            state,
            stop,
            port,
        } = self;
        let work = CancellationToken::new();
        let flush_stop = CancellationToken::new();
        let flusher = aigw_metrics::spawn_flusher(
            state.recorder.clone(),
            state.redis.clone(),
            config.metrics_flush_interval,
            config.shutdown_timeout,
            flush_stop.clone(),
        );
        let exporter =
            aigw_metrics::spawn_exporter_lease(exporter, state.redis.clone(), work.clone());
        let watcher = SnapshotWatcher::new(
            state.redis.clone(),
            WatcherSettings {
                poll_interval: config.snapshot_poll_interval,
                ..WatcherSettings::default()
            },
        )
        .spawn(state.snapshot.clone(), work.clone());
        let consumer = config.consumer.enabled.then(|| {
            Consumer {
                cfg: config.consumer.clone(),
                redis: state.redis.clone(),
                snapshot: state.snapshot.clone(),
                encoders: state.encoders.clone(),
                pool: state.pool.clone(),
                recorder: state.recorder.clone(),
                status: state.consumer.clone(),
            }
            .spawn(work.clone())
        });
        tracing::info!(port, addr = %config.bind_addr, consumer = config.consumer.enabled, "token-service listening");

        let handle = server.handle();
        let mut server_task = tokio::spawn(server);
        let signals = shutdown_signal(config.handle_signals);
        tokio::select! {
            _ = stop.cancelled() => tracing::info!("stop requested"),
            _ = signals => tracing::info!("shutdown signal received"),
            r = &mut server_task => {
                work.cancel();
                flush_stop.cancel();
                return r.context("server task")?.context("server");
            }
        }
        state.shutting_down.store(true, Ordering::Relaxed);
        work.cancel();
        handle.stop(true).await;
        let _ = server_task.await;
        let bound = config.shutdown_timeout;
        if let Some(c) = consumer {
            if tokio::time::timeout(bound, c).await.is_err() {
                tracing::warn!("usage consumer did not stop within the shutdown timeout");
            }
        }
        let _ = tokio::time::timeout(bound, watcher).await;
        let _ = tokio::time::timeout(bound, exporter).await;
        flush_stop.cancel();
        // The flusher bounds its own final drain by the same timeout.
        let _ = tokio::time::timeout(bound + std::time::Duration::from_secs(1), flusher).await;
        tracing::info!("token-service stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM or SIGINT; never when `enabled` is false.
async fn shutdown_signal(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    aigw_service::shutdown_signal().await
}
