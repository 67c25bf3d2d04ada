//! Black-box tests of the gateway: the real `Application` on a free port, a
//! private redis-server, and in-process mock upstreams the tests control
//! (`services/mock-upstream`, plus a socket-level one for byte-level faults).

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

mod helpers;
mod raw_upstream;

mod accounting;
mod config;
mod failover;
mod journal;
mod limits;
mod providers;
mod proxy;
mod relay_limits;
mod replicas;
mod retry;
mod sdk;
mod shutdown;
mod streaming;
