//! Test support shared by every crate's tests: a private `redis-server` on a
//! free port (stoppable and restartable for outage tests), a private Redis
//! Cluster (3 masters, 3 replicas; a master can be killed and its replica
//! promoted) and Sentinel setup, fresh PostgreSQL
//! databases, free ports, workspace binaries run as child processes, and a
//! TCP proxy whose connections can go silent, the reader of `/metrics`
//! text ([`prom`]) and of the documented settings tables ([`docs`]).

pub mod docs;
mod postgres;
mod process;
pub mod prom;
mod proxy;
mod redis_cluster;
mod redis_server;

pub use postgres::PgDatabase;
pub use process::{bin_path, wait_http_ok, Proc};
pub use proxy::TcpProxy;
pub use redis_cluster::{RedisCluster, RedisSentinel, SENTINEL_MASTER};
pub use redis_server::RedisServer;

use std::path::PathBuf;

/// A TCP port that was free a moment ago on 127.0.0.1, never one this
/// process handed out before: the kernel may give the same ephemeral port to
/// two binds in a row once the first listener is closed, and a test that
/// asks for several ports at once (one per service) must get distinct ones.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A fresh private temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("aigw-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    #[allow(clippy::disallowed_methods)] // a test switch, not a service setting
    fn drop(&mut self) {
        if std::env::var_os("AIGW_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
