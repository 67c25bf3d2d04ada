//! Black-box tests of the config-center: the real application against a
//! private redis-server, each on SQLite and on PostgreSQL.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

mod helpers;

mod auth_openapi;
mod console;
mod crud;
mod errors;
mod ledger;
mod ledger_speed;
mod lifecycle;
mod pagination;
mod providers;
mod publication;
