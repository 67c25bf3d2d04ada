//! The AI gateway: an OpenAI-compatible proxy that authenticates a caller to a
//! namespace, routes the request to a healthy instance of the requested
//! model, streams the answer back and accounts for every request.
//!
//! Code map, in layers from the request's entry down (a module imports only
//! its own layer or those below; `ARCHITECTURE.md` has the table):
//! - entry: [`startup`] ([`Application::build`], background tasks, graceful
//!   shutdown) and [`routes`] (the HTTP surface);
//! - request: [`proxy`] (auth → namespace → body → model → limits → forward
//!   → answer) over [`request`] (key check, body, the `model`/`stream` probe
//!   and rewrite);
//! - failover: [`failover`], the attempts under the retry contract, using
//!   [`state`] (what every handler shares);
//! - relay: [`stream`] (the SSE pass-through) and [`client_watch`] (ends
//!   streams whose client stopped reading);
//! - provider: [`provider`] (requests, answers, streams and errors of
//!   Anthropic and Gemini instances translated to and from OpenAI's API);
//! - upstream: [`upstream`] (`aigw_upstream_http` for plain-HTTP instances,
//!   reqwest for HTTPS and proxies) and [`headers`];
//! - policy: [`limits`] (concurrency / RPM / TPM / budget), [`balance`]
//!   (weighted P2C), [`probe`] (active checks), [`health`] (passive health);
//! - accounting: [`accounting`] (the per-request guard), [`usage`], [`sse`];
//! - namespace: [`namespace`] (per-namespace runtime state and labels),
//!   [`quota`] (this replica's slices of the RPM/TPM windows) and
//!   [`lease`] (fleet-wide concurrency leases);
//! - data: [`routing`] (the compiled snapshot) and [`config_watch`],
//!   [`config`], [`error`], [`exposition`].
//!
//! Invariants: the request path never waits on Redis except for the
//! fleet-wide concurrency lease of namespaces with `max_concurrency` and
//! the refill of a used-up RPM/TPM slice; every request is accounted
//! exactly once (a guard's `Drop` does it); upstream secrets and client keys
//! never reach a log line, a response or a metric label.

pub mod accounting;
pub mod balance;
pub mod client_watch;
pub mod config;
pub mod config_watch;
pub mod error;
pub mod exposition;
pub mod failover;
pub mod headers;
pub mod health;
pub mod lease;
pub mod limits;
pub mod namespace;
pub mod probe;
pub mod provider;
pub mod proxy;
pub mod quota;
pub mod request;
pub mod routes;
pub mod routing;
pub mod sse;
pub mod startup;
pub mod state;
pub mod stream;
pub mod upstream;
pub mod usage;

pub use config::Settings;
pub use startup::{AppHandle, Application};
