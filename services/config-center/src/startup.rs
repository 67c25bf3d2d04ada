//! Building and running the service: shared state is built once (pool,
//! Redis handle, recorder, publisher, ledger writer), then the HTTP server;
//! shutdown stops accepting, drains in-flight requests within a bound, stops
//! the publisher and the ledger's tasks and lets the metrics flusher drain.

use crate::config::Config;
use crate::ledger;
use crate::publisher::Publisher;
use crate::state::AppState;
use crate::storage::Store;
use crate::{auth, metrics, openapi};
use crate::{routes, ui};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use aigw_metrics::{ExporterLease, MetricsEndpoint, Recorder, RecorderConfig, RedisConn};
use anyhow::Context;
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
    /// Stops the background tasks (publisher); the flusher has its own
    /// token, cancelled after the publisher ended so its last metrics go out.
    cancel: CancellationToken,
    flush_cancel: CancellationToken,
    publisher_task: JoinHandle<()>,
    /// The ledger's writer and retention, when `LEDGER_ENABLED`.
    tasks: Vec<JoinHandle<()>>,
    flusher_task: JoinHandle<()>,
    shutdown_timeout: Duration,
}

impl Application {
    /// Connects to the database (running migrations), prepares Redis
    /// (lazily: Redis may be down) and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        if config.admin_token_generated {
            // Dev mode: the one place the token is shown.
            println!(
                "config-center dev mode: generated ADMIN_TOKEN={}",
                config.admin_token.expose()
            );
            tracing::warn!("dev mode: using a generated admin token (printed once on stdout)");
        }
        let store = Store::connect(config.database_url.expose(), config.db_max_connections).await?;
        tracing::info!(backend = ?store.backend(), "database ready");
        let redis = RedisConn::new(config.redis_url.expose()).context("REDIS_URL")?;
        let recorder = Recorder::new(RecorderConfig::for_service("config-center"));
        let publisher = Publisher::new(
            store.clone(),
            redis.clone(),
            recorder.clone(),
            config.publish_retry,
            config.publish_resync,
        );
        let cancel = CancellationToken::new();
        let flush_cancel = CancellationToken::new();
        let publisher_task = publisher.spawn(cancel.clone());
        let mut tasks = Vec::new();
        if config.ledger.enabled {
            tasks.push(
                ledger::Writer {
                    cfg: config.ledger.clone(),
                    store: store.clone(),
                    redis: redis.clone(),
                    recorder: recorder.clone(),
                }
                .spawn(cancel.clone()),
            );
            tasks.push(
                ledger::Retention {
                    cfg: config.ledger.clone(),
                    store: store.clone(),
                    recorder: recorder.clone(),
                }
                .spawn(cancel.clone()),
            );
        }
        let exporter = ExporterLease::new(
            "config-center",
            aigw_service::replica_name("config-center"),
            config.metrics_exporter_ttl,
        );
        tasks.push(aigw_metrics::spawn_exporter_lease(
            exporter.clone(),
            redis.clone(),
            cancel.clone(),
        ));
        let flusher_task = aigw_metrics::spawn_flusher(
            recorder.clone(),
            redis.clone(),
            config.metrics_flush_interval,
            config.shutdown_timeout,
            flush_cancel.clone(),
        );

        let prometheus = match &config.prometheus_url {
            Some(url) => {
                tracing::info!("the console's overview queries Prometheus (PROMETHEUS_URL)");
                Some(ui::prometheus::Prometheus::new(
                    url,
                    config.prometheus_timeout,
                    config.prometheus_query_offset,
                )?)
            }
            None => None,
        };
        let state = web::Data::new(AppState {
            store: store.clone(),
            publisher,
            metrics: MetricsEndpoint::with_exporter(
                redis.clone(),
                &metrics::EXPOSITION,
                Some(recorder.clone()),
                exporter,
            ),
            scrape: aigw_service::ScrapeGate::new(config.metrics_token.clone()),
            redis,
            recorder,
            admin_token_hash: auth::token_hash(config.admin_token.expose()),
            publish_wait: config.publish_wait,
            openapi_json: openapi::json(),
            console_session_ttl: config.console_session_ttl,
            trusted_proxies: config.trusted_proxies.clone(),
            prometheus,
        });

        let listener = std::net::TcpListener::bind((config.bind_addr.as_str(), config.port))
            .with_context(|| format!("binding {}:{}", config.bind_addr, config.port))?;
        let port = listener.local_addr()?.port();
        let max_body = config.max_body_bytes;
        let body_timeout = config.body_timeout;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(ui::configure)
                .configure(routes::configure(max_body))
                .wrap(from_fn(metrics::track))
                .wrap(aigw_service::BodyDeadline(body_timeout))
        })
        .workers(config.workers)
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout.as_secs().max(1))
        .listen(listener)?
        .run();
        tracing::info!(addr = %config.bind_addr, port, "config-center listening");

        Ok(Application {
            port,
            server,
            store,
            cancel,
            flush_cancel,
            publisher_task,
            tasks,
            flusher_task,
            shutdown_timeout: config.shutdown_timeout,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from outside (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(aigw_service::shutdown_signal()).await
    }

    /// Serves until `stop` completes (or the server is stopped through
    /// [`Application::handle`]), then shuts down gracefully.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let stopper = tokio::spawn(async move {
            stop.await;
            tracing::info!("shutting down: draining in-flight requests");
            handle.stop(true).await;
        });
        let served = self.server.await;
        stopper.abort();
        self.cancel.cancel();
        let bound = self.shutdown_timeout + Duration::from_secs(1);
        if tokio::time::timeout(bound, self.publisher_task)
            .await
            .is_err()
        {
            tracing::warn!("publisher did not stop in time");
        }
        for task in self.tasks {
            if tokio::time::timeout(bound, task).await.is_err() {
                tracing::warn!("background task did not stop in time");
            }
        }
        self.flush_cancel.cancel();
        if tokio::time::timeout(bound, self.flusher_task)
            .await
            .is_err()
        {
            tracing::warn!("metrics flusher did not finish in time");
        }
        self.store.close().await;
        tracing::info!("config-center stopped");
        served.context("http server")
    }
}
