//! The AI gateway: an OpenAI-compatible proxy that authenticates a caller to a
//! namespace, routes the request to a healthy instance of the requested
//! model, streams the answer back and accounts for every request.
//!
//! Code map:
//! - [`config`]: typed settings from the environment.
//! - [`startup`]: [`Application::build`] / [`Application::run_until_stopped`],
//!   background tasks and graceful shutdown.
//! - [`routing`]: the compiled routing table of one config snapshot, and
//!   [`config_watch`] which keeps it current from Redis.
//! - [`routes`]: HTTP handlers; [`proxy`] the request path (auth → namespace
//!   → model → limits → instance → forward), [`stream`] the SSE pass-through,
//!   [`client_watch`] which ends streams whose client stopped reading.
//! - [`upstream`]: the HTTP client of the request path (hyper direct for
//!   plain-HTTP instances, reqwest for HTTPS and proxies).
//! - [`balance`] instance selection, [`health`] active and passive health,
//!   [`limits`] concurrency / RPM / TPM / budget.
//! - [`accounting`]: per-request metrics and usage records through the shared
//!   batched writer; [`exposition`] what `/metrics` shows.
//! - [`error`]: every client-visible error, in OpenAI's shape.
//! - [`usage`]: token usage and the text to count when upstream reports none.
//!
//! Invariants: the request path never waits on Redis except for the RPM/TPM
//! check of namespaces that have such a limit; every request is accounted
//! exactly once (a guard's `Drop` does it); upstream secrets and client keys
//! never reach a log line, a response or a metric label.

pub mod accounting;
pub mod balance;
pub mod client_watch;
pub mod config;
pub mod config_watch;
pub mod error;
pub mod exposition;
pub mod health;
pub mod limits;
pub mod proxy;
pub mod routes;
pub mod routing;
pub mod startup;
pub mod stream;
pub mod telemetry;
pub mod upstream;
pub mod usage;

pub use config::Settings;
pub use startup::{AppHandle, Application};
