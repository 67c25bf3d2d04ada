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
/// process handed out before. Ports come from 20000–32767, below Linux's
/// ephemeral range (32768–60999): a port from that range can be taken by
/// any outgoing connection (a client's to Redis, say) between the check and
/// the service's bind. The start of the scan is drawn per process, so test
/// processes running side by side rarely look at the same ports.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 32_768 - LOW;
    static GIVEN: std::sync::Mutex<(Option<u32>, Vec<u16>)> =
        std::sync::Mutex::new((None, Vec::new()));
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (next, taken) = &mut *given;
    let next = next.get_or_insert_with(|| {
        use std::hash::{BuildHasher, Hasher};
        // The standard library seeds each RandomState at random.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        (seed % u64::from(SPAN)) as u32
    });
    for _ in 0..SPAN {
        let port = (LOW + *next) as u16;
        *next = (*next + 1) % SPAN;
        if taken.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
    panic!("no free port in 20000-32767");
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
