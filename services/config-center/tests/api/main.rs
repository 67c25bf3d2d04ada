//! Black-box tests of the config-center: the real application against a
//! private redis-server, each on SQLite and on PostgreSQL.

mod helpers;

mod auth_openapi;
mod console;
mod crud;
mod errors;
mod ledger;
mod ledger_speed;
mod lifecycle;
mod pagination;
mod publication;
