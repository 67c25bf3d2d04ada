//! The config-center: the admin side of the AI gateway. Operators manage
//! namespaces, API keys, models and upstream instances over a JSON API;
//! SQL (SQLite by default, PostgreSQL) holds the truth, and every committed
//! change is published to Redis as a versioned snapshot that the gateway
//! and the token-service read.
//!
//! - [`startup`]: [`Application`] — build, serve, shut down.
//! - [`config`]: typed configuration from the environment.
//! - [`routes`]: handlers over the shared [`state`]; [`domain`]: input
//!   parsing and the entities; [`storage`]: SQL, one module per entity.
//! - [`publisher`]: the background publication to Redis.
//! - [`ui`]: the web console under `/ui`, over the same domain and storage.
//! - [`usage`]: the spend ledger's queries (filters, groups, CSV);
//!   [`ledger`]: its writer (the `usage:ledger` consumer) and retention.
//! - [`metrics`], [`auth`], [`error`], [`openapi`].

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod openapi;
pub mod publisher;
pub mod routes;
pub mod startup;
pub mod state;
pub mod storage;
pub mod ui;
pub mod usage;

pub use config::Config;
pub use startup::Application;
