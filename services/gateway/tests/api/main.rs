//! Black-box tests of the gateway: the real `Application` on a free port, a
//! private redis-server, and in-process mock upstreams the tests control.

mod helpers;
mod mock;

mod accounting;
mod config;
mod failover;
mod limits;
mod proxy;
mod sdk;
mod shutdown;
mod streaming;
