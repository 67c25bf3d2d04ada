//! An OpenAI-compatible mock upstream: chat completions (streamed or not),
//! completions, embeddings and models, with configurable latency, error
//! rate, stream shape and missing usage. It backs the gateway's tests, the
//! benchmarks and the offline dev stack, so the request path stays cheap:
//! no per-request logging, bodies parsed without building a JSON tree.
//!
//! Usage numbers are deterministic: prompt tokens = whitespace-separated
//! words of the input text, completion tokens = content chunks.

pub mod config;
pub mod error;
pub mod routes;
pub mod stream;
pub mod words;

pub use config::{Config, ConfigError};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;

/// Request bodies up to this size are accepted (long prompts in benchmarks).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The routes, mounted both under `/v1` and at the root so either style of
/// upstream base URL works.
fn api(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/completions", web::post().to(routes::chat))
        .route("/completions", web::post().to(routes::completions))
        .route("/embeddings", web::post().to(routes::embeddings))
        .route("/models", web::get().to(routes::models));
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server;
    /// it serves once [`run_until_stopped`](Self::run_until_stopped) is awaited.
    pub fn build(config: Config) -> anyhow::Result<Application> {
        config.validate()?;
        let listener = TcpListener::bind((config.bind_addr.as_str(), config.port))?;
        let port = listener.local_addr()?.port();
        let workers = config.workers;
        let state = web::Data::new(routes::State::new(config));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .route("/health", web::get().to(routes::health))
                .route("/mock/stats", web::get().to(routes::stats))
                .service(web::scope("/v1").configure(api))
                .configure(api)
                .default_service(web::to(routes::not_found))
        })
        // Streams in flight get this long to finish on SIGTERM.
        .shutdown_timeout(5)
        // SSE chunks must leave at once, not wait for Nagle's delayed ACK.
        .tcp_nodelay(true)
        .listen(listener)?;
        if let Some(w) = workers {
            server = server.workers(w);
        }
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (tests).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT (graceful: in-flight requests finish
    /// within 5 s) or [`ServerHandle::stop`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
