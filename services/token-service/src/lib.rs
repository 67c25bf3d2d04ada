//! The token-service: counts tokens exactly as OpenAI's tiktoken does (HTTP
//! API), and turns the gateway's usage records into the model metrics —
//! requests, latency, tokens, cost, errors per model and namespace.
//!
//! Code map:
//! - [`tokenize`]: encodings (loaded once), model → encoding, and an
//!   independent reference implementation used by the tests;
//! - [`chat`]: the per-message accounting of chat requests;
//! - [`routes`]: HTTP handlers; [`body`] and [`error`] their input and errors;
//! - [`pool`]: where counting runs (bounded, off the async workers);
//! - [`usage`]: the usage-stream consumer, pricing and the model series;
//! - [`metrics`]: what `/metrics` shows;
//! - [`state`]: what every worker shares (the config snapshot, kept current
//!   by the shared watcher, among it);
//! - [`startup`] and [`config`]: building, running and stopping the service.

pub mod body;
pub mod chat;
pub mod config;
pub mod error;
pub mod metrics;
pub mod pool;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tokenize;
pub mod usage;

pub use config::Config;
pub use startup::Application;
