//! A mock of the LLM providers' APIs — OpenAI's, Anthropic's Messages API,
//! Azure OpenAI's and Gemini's — speaking each one's wire format (paths,
//! auth headers, JSON, stream events, usage fields, error bodies), with
//! configurable latency, errors, stream shape, usage, cache and reasoning
//! tokens and tool calls. It backs the gateway's tests, the benchmarks and
//! the offline dev stack, so the OpenAI path stays cheap: no per-request
//! logging, bodies parsed without building a JSON tree.
//!
//! Usage numbers are deterministic (see [`answer`]): input tokens =
//! whitespace-separated words of the input text, output tokens = content
//! chunks, plus the knobs' cache, reasoning and tool-call tokens.

pub mod answer;
pub mod anthropic;
pub mod auth;
pub mod azure;
pub mod config;
pub mod control;
pub mod error;
pub mod gemini;
pub mod handle;
pub mod journal;
pub mod models;
pub mod openai;
pub mod overrides;
pub mod state;
pub mod stream;
pub mod wire;
pub mod words;

pub use config::{Config, ConfigError};
pub use handle::MockServer;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;

/// Request bodies up to this size are accepted (long prompts in benchmarks).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// The routes of the OpenAI and Anthropic APIs, mounted both under `/v1`
/// and at the root so either style of upstream base URL works. All static:
/// they are matched before any pattern route (actix matches patterns with
/// a regex, which the OpenAI path the benchmarks use should not pay for).
fn api(cfg: &mut web::ServiceConfig) {
    cfg.route("/chat/completions", web::post().to(openai::chat))
        .route("/completions", web::post().to(openai::completions))
        .route("/embeddings", web::post().to(openai::embeddings))
        .route("/models", web::get().to(models::list))
        .route("/messages", web::post().to(anthropic::messages))
        .route(
            "/messages/count_tokens",
            web::post().to(anthropic::count_tokens),
        );
}

/// `/v1`: the routes above, then Gemini's `models/{model}:{action}` (the
/// `google-genai` SDK's default API version).
fn v1_api(cfg: &mut web::ServiceConfig) {
    api(cfg);
    cfg.route("/models/{model_action}", web::post().to(gemini::model_call));
}

/// Azure OpenAI's deployment and v1 paths, and Gemini's `/v1beta`.
fn pattern_api(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/openai/v1/chat/completions",
        web::post().to(azure::v1_chat),
    )
    .route(
        "/openai/v1/embeddings",
        web::post().to(azure::v1_embeddings),
    )
    .route("/openai/v1/models", web::get().to(models::azure_list))
    .route("/openai/models", web::get().to(models::azure_list))
    .route("/v1beta/models", web::get().to(models::gemini_list))
    .route(
        "/openai/deployments/{deployment}/chat/completions",
        web::post().to(azure::deployment_chat),
    )
    .route(
        "/openai/deployments/{deployment}/embeddings",
        web::post().to(azure::deployment_embeddings),
    )
    .route(
        "/v1beta/models/{model_action}",
        web::post().to(gemini::model_call),
    );
}

/// The mock's own endpoints for tests.
fn control_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(control::health))
        .route("/mock/stats", web::get().to(control::stats))
        .route("/mock/requests", web::get().to(control::requests))
        .route("/mock/requests", web::delete().to(control::clear_requests))
        .route("/mock/overrides", web::get().to(control::list_overrides))
        .route("/mock/overrides", web::post().to(control::add_override))
        .route(
            "/mock/overrides",
            web::delete().to(control::clear_overrides),
        )
        .route("/mock/release", web::post().to(control::release))
        .route(
            "/mock/models-status",
            web::post().to(control::models_status),
        );
}

/// The server over `state` on `listener`. A client that closes its half of
/// the connection is gone: its request is dropped (a gateway cancelling an
/// upstream request closes the connection). In-process servers (tests)
/// leave the process's signals alone and stop at once.
fn serve(
    state: web::Data<state::State>,
    listener: TcpListener,
    in_process: bool,
) -> std::io::Result<Server> {
    let workers = state.config.workers;
    let mut server = HttpServer::new(move || {
        let mut headers = DefaultHeaders::new();
        for (name, value) in &state.config.response_headers {
            headers = headers.add((name.as_str(), value.as_str()));
        }
        App::new()
            .wrap(headers)
            .app_data(state.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .service(web::scope("/v1").configure(v1_api))
            .configure(api)
            .configure(control_api)
            .configure(pattern_api)
            .default_service(web::to(control::not_found))
    })
    // Streams in flight get 5 s to finish on SIGTERM.
    .shutdown_timeout(if in_process { 0 } else { 5 })
    .h1_allow_half_closed(false)
    // SSE chunks must leave at once, not wait for Nagle's delayed ACK.
    .tcp_nodelay(true)
    .listen(listener)?;
    if let Some(w) = workers {
        server = server.workers(w);
    }
    if in_process {
        server = server.disable_signals();
    }
    Ok(server.run())
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
        let state = web::Data::new(state::State::new(config));
        let server = serve(state, listener, false)?;
        Ok(Application { port, server })
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
