//! A Redis connection that a service can hold from start even while Redis is
//! unreachable: it connects lazily, reconnects on its own, and every call is
//! bounded by timeouts so a dead Redis costs a quick error, never a hang.
//!
//! `REDIS_URL` names one of three deployments:
//! - a single server: `redis://[:password@]host:port[/db]`;
//! - a Redis Cluster, by seed nodes:
//!   `redis+cluster://[:password@]h1:p1,h2:p2[,…]`;
//! - a master watched by Sentinel:
//!   `redis+sentinel://[:password@]s1:p1,s2:p2[,…]/master-name[/db]`
//!   (the password is the master's; the sentinels are reached without one).
//!
//! [`RedisConn::get`] hands out one [`RedisHandle`] for all three. On a
//! cluster, commands are routed by key; every Lua script and `MULTI` block
//! of this workspace touches keys of one slot ([`crate::slots`]); a plain
//! pipeline whose commands name keys of several slots is sent command by
//! command. Through Sentinel, the handle talks to the current master and is
//! replaced after a connection error or a `READONLY` answer (a failover).

use crate::slots::key_slot;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{AggregateOp, MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Timeouts for Redis calls.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    pub connect: Duration,
    pub response: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_millis(1000),
            response: Duration::from_millis(3000),
        }
    }
}

const CLUSTER_SCHEME: &str = "redis+cluster://";
const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// Where `REDIS_URL` points.
enum Target {
    Single(redis::Client),
    Cluster {
        client: ClusterClient,
        seeds: Vec<String>,
        node: redis::RedisConnectionInfo,
    },
    Sentinel {
        client: Mutex<SentinelClient>,
        sentinels: Vec<String>,
        master: String,
    },
}

/// A shared, lazily connected Redis handle.
#[derive(Clone)]
pub struct RedisConn {
    target: Arc<Target>,
    timeouts: RedisTimeouts,
    handle: Arc<Mutex<Option<RedisHandle>>>,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only where it points.
        let mut d = f.debug_struct("RedisConn");
        match &*self.target {
            Target::Single(c) => d.field("addr", &c.get_connection_info().addr.to_string()),
            Target::Cluster { seeds, .. } => d.field("cluster", seeds),
            Target::Sentinel {
                sentinels, master, ..
            } => d.field("sentinels", sentinels).field("master", master),
        };
        d.finish()
    }
}

fn invalid(msg: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, msg, detail))
}

/// Splits `rest` (the URL after its scheme) into the password, the
/// comma-separated `host:port` list and what follows the first `/`.
fn split_multi(rest: &str) -> RedisResult<(Option<String>, Vec<String>, &str)> {
    let (auth, rest) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let password = match auth {
        None => None,
        Some(a) => {
            let (user, pw) = a.split_once(':').unwrap_or((a, ""));
            if !user.is_empty() {
                return Err(invalid(
                    "redis URL",
                    "a user name is not supported in a cluster or sentinel URL (use :password@)"
                        .into(),
                ));
            }
            (!pw.is_empty()).then(|| percent_decode(pw)).transpose()?
        }
    };
    let mut addrs = Vec::new();
    for h in hosts.split(',') {
        let (host, port) = h.rsplit_once(':').ok_or_else(|| {
            invalid(
                "redis URL",
                format!("node {h:?} is not host:port (nodes are comma-separated host:port)"),
            )
        })?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(invalid(
                "redis URL",
                format!("node {h:?} is not host:port with a port in 1..=65535"),
            ));
        }
        addrs.push(h.to_string());
    }
    Ok((password, addrs, path))
}

/// A password as written in a URL: `%XX` escapes decoded.
fn percent_decode(s: &str) -> RedisResult<String> {
    let bad = || {
        invalid(
            "redis URL",
            "the password holds a malformed %-escape".into(),
        )
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Where a node of a node list is, with the password (already decoded).
fn node_info(addr: &str, password: Option<&str>) -> redis::ConnectionInfo {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    redis::ConnectionInfo {
        addr: redis::ConnectionAddr::Tcp(host.to_string(), port.parse().unwrap_or(6379)),
        redis: redis::RedisConnectionInfo {
            password: password.map(str::to_string),
            ..Default::default()
        },
    }
}

impl Target {
    fn parse(url: &str, timeouts: RedisTimeouts) -> RedisResult<Target> {
        let lower = url.get(..20).unwrap_or(url).to_ascii_lowercase();
        let other_plus = lower.starts_with("redis+")
            && !lower.starts_with(CLUSTER_SCHEME)
            && !lower.starts_with(SENTINEL_SCHEME)
            && !lower.starts_with("redis+unix:");
        if lower.starts_with("rediss+") || other_plus {
            return Err(invalid(
                "redis URL",
                "unknown scheme (TLS to a cluster or through Sentinel is not supported)".into(),
            ));
        }
        if lower.starts_with(CLUSTER_SCHEME) {
            let (password, seeds, path) = split_multi(&url[CLUSTER_SCHEME.len()..])?;
            if !path.is_empty() {
                return Err(invalid(
                    "redis URL",
                    "a cluster URL has no path (a cluster has only database 0)".into(),
                ));
            }
            let mut b = ClusterClient::builder(
                seeds
                    .iter()
                    .map(|a| node_info(a, password.as_deref()))
                    .collect::<Vec<_>>(),
            )
            .connection_timeout(timeouts.connect)
            .response_timeout(timeouts.response)
            .retries(3)
            .min_retry_wait(100)
            .max_retry_wait(1000);
            if let Some(pw) = &password {
                b = b.password(pw.clone());
            }
            return Ok(Target::Cluster {
                client: b.build()?,
                seeds,
                node: redis::RedisConnectionInfo {
                    password,
                    ..Default::default()
                },
            });
        }
        if lower.starts_with(SENTINEL_SCHEME) {
            let (password, sentinels, path) = split_multi(&url[SENTINEL_SCHEME.len()..])?;
            let (master, db) = match path.split_once('/') {
                Some((m, db)) => (m, db),
                None => (path, ""),
            };
            if master.is_empty() {
                return Err(invalid(
                    "redis URL",
                    "a sentinel URL names its master: redis+sentinel://h1:p1,h2:p2/master-name"
                        .into(),
                ));
            }
            let db: i64 = if db.is_empty() {
                0
            } else {
                db.parse()
                    .map_err(|_| invalid("redis URL", format!("database {db:?} is not a number")))?
            };
            let info = SentinelNodeConnectionInfo {
                tls_mode: None,
                redis_connection_info: Some(redis::RedisConnectionInfo {
                    db,
                    password,
                    ..Default::default()
                }),
            };
            let client = SentinelClient::build(
                sentinels
                    .iter()
                    .map(|a| node_info(a, None))
                    .collect::<Vec<_>>(),
                master.to_string(),
                Some(info),
                SentinelServerType::Master,
            )?;
            return Ok(Target::Sentinel {
                client: Mutex::new(client),
                sentinels,
                master: master.to_string(),
            });
        }
        Ok(Target::Single(redis::Client::open(url)?))
    }
}

/// Checks a `REDIS_URL` without connecting. The message names what is
/// wrong and the accepted forms; it never repeats the URL (which may hold a
/// password).
pub fn check_url(url: &str) -> Result<(), String> {
    match Target::parse(url, RedisTimeouts::default()) {
        Ok(_) => Ok(()),
        Err(e) => {
            let what = match (e.kind(), e.detail()) {
                (ErrorKind::InvalidClientConfig, Some(d)) if is_multi(url) => d.to_string(),
                _ => "not a valid URL".to_string(),
            };
            Err(format!(
                "{what}; expected redis://[:password@]host:port[/db], \
                 redis+cluster://[:password@]host:port,host:port[,...] or \
                 redis+sentinel://[:password@]host:port[,...]/master-name[/db]"
            ))
        }
    }
}

fn is_multi(url: &str) -> bool {
    let lower = url.get(..20).unwrap_or(url).to_ascii_lowercase();
    ["redis+", "rediss+"].iter().any(|p| lower.starts_with(p)) && !lower.starts_with("redis+unix:")
}

/// The deployment a handle talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Single,
    Cluster,
    Sentinel,
}

impl RedisConn {
    /// Parses the URL; does not connect.
    pub fn new(url: &str) -> RedisResult<Self> {
        Self::with_timeouts(url, RedisTimeouts::default())
    }

    pub fn with_timeouts(url: &str, timeouts: RedisTimeouts) -> RedisResult<Self> {
        Ok(RedisConn {
            target: Arc::new(Target::parse(url, timeouts)?),
            timeouts,
            handle: Arc::new(Mutex::new(None)),
        })
    }

    pub fn topology(&self) -> Topology {
        match &*self.target {
            Target::Single(_) => Topology::Single,
            Target::Cluster { .. } => Topology::Cluster,
            Target::Sentinel { .. } => Topology::Sentinel,
        }
    }

    fn timed_out() -> RedisError {
        RedisError::from((ErrorKind::IoError, "redis connect timed out"))
    }

    async fn bounded<T>(
        &self,
        f: impl std::future::Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        tokio::time::timeout(self.timeouts.connect + Duration::from_millis(200), f)
            .await
            .map_err(|_| Self::timed_out())?
    }

    /// A connection ready for commands, connecting first if needed.
    pub async fn get(&self) -> RedisResult<RedisHandle> {
        let mut slot = self.handle.lock().await;
        if let Some(h) = slot.as_ref() {
            if !h.is_broken() {
                return Ok(h.clone());
            }
        }
        let h = self.connect_new().await?;
        *slot = Some(h.clone());
        Ok(h)
    }

    /// A new connection of its own, not shared with [`Self::get`]: for a
    /// reader that replaces its connection whenever a call on it fails or
    /// hangs.
    pub async fn connect_new(&self) -> RedisResult<RedisHandle> {
        Ok(match &*self.target {
            Target::Single(client) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeouts.connect)
                    .set_response_timeout(self.timeouts.response)
                    .set_number_of_retries(1)
                    .set_max_delay(500);
                RedisHandle::Single(
                    self.bounded(ConnectionManager::new_with_config(client.clone(), cfg))
                        .await?,
                )
            }
            Target::Cluster { client, .. } => {
                RedisHandle::Cluster(self.bounded(client.get_async_connection()).await?)
            }
            Target::Sentinel { client, .. } => {
                let master = self
                    .bounded(async { client.lock().await.async_get_client().await })
                    .await?;
                let conn = self
                    .bounded(
                        master.get_multiplexed_async_connection_with_config(&self.node_config()),
                    )
                    .await?;
                RedisHandle::Sentinel(conn, Arc::new(AtomicBool::new(false)))
            }
        })
    }

    fn node_config(&self) -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeouts.connect)
            .set_response_timeout(self.timeouts.response)
    }

    /// A plain client for the server that owns `key`: the single server,
    /// the cluster master serving the key's slot, or Sentinel's current
    /// master. For pub/sub and blocking reads, which need a connection of
    /// their own.
    pub async fn node_client(&self, key: &str) -> RedisResult<redis::Client> {
        match &*self.target {
            Target::Single(c) => Ok(c.clone()),
            Target::Cluster { node, .. } => {
                let RedisHandle::Cluster(mut c) = self.get().await? else {
                    unreachable!("a cluster target hands out cluster handles")
                };
                let slots: Value = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async(&mut c)
                    .await?;
                let addr = master_of(&slots, key_slot(key.as_bytes())).ok_or_else(|| {
                    RedisError::from((ErrorKind::ClusterDown, "no master serves the key's slot"))
                })?;
                redis::Client::open(redis::ConnectionInfo {
                    addr: redis::ConnectionAddr::Tcp(addr.0, addr.1),
                    redis: node.clone(),
                })
            }
            Target::Sentinel { client, .. } => {
                let mut s = client.lock().await;
                self.bounded(s.async_get_client()).await
            }
        }
    }

    /// A dedicated (non-multiplexed) connection to the server owning `key`,
    /// for blocking commands on it.
    pub async fn dedicated(&self, key: &str) -> RedisResult<redis::aio::MultiplexedConnection> {
        let client = self.bounded(self.node_client(key)).await?;
        client
            .get_multiplexed_async_connection_with_config(&self.node_config())
            .await
    }
}

/// The `(host, port)` of the master serving `slot` in a `CLUSTER SLOTS`
/// answer.
fn master_of(slots: &Value, slot: u16) -> Option<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    for r in ranges {
        let Value::Array(parts) = r else { continue };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        if (*lo..=*hi).contains(&(slot as i64)) {
            let host = match master.first()? {
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                Value::SimpleString(s) => s.clone(),
                _ => return None,
            };
            let Value::Int(port) = master.get(1)? else {
                return None;
            };
            return Some((host, *port as u16));
        }
    }
    None
}

/// One connection type for a single server, a cluster and a Sentinel
/// master; cheap to clone (all clones share the underlying connections).
#[derive(Clone)]
pub enum RedisHandle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The current master, and whether a failure showed it is no longer
    /// usable (the next [`RedisConn::get`] asks Sentinel again).
    Sentinel(redis::aio::MultiplexedConnection, Arc<AtomicBool>),
}

impl RedisHandle {
    pub fn topology(&self) -> Topology {
        match self {
            RedisHandle::Single(_) => Topology::Single,
            RedisHandle::Cluster(_) => Topology::Cluster,
            RedisHandle::Sentinel(..) => Topology::Sentinel,
        }
    }

    fn is_broken(&self) -> bool {
        matches!(self, RedisHandle::Sentinel(_, b) if b.load(Ordering::Relaxed))
    }

    fn note<T>(&self, r: RedisResult<T>) -> RedisResult<T> {
        if let (RedisHandle::Sentinel(_, broken), Err(e)) = (self, &r) {
            if e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.kind() == ErrorKind::ReadOnly
            {
                broken.store(true, Ordering::Relaxed);
            }
        }
        r
    }

    /// Waits until the writes sent on this handle so far reached at least
    /// one replica (of every master, on a cluster), for at most `timeout`.
    /// Returns the fewest replicas any master reported (0 on a single
    /// server, where nothing is asked).
    pub async fn wait_replicated(&mut self, timeout: Duration) -> RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(1).arg(timeout.as_millis() as u64);
        match self {
            RedisHandle::Single(_) => Ok(0),
            RedisHandle::Cluster(c) => {
                let route = RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::Aggregate(AggregateOp::Min)),
                ));
                let v = c.route_command(&wait, route).await?;
                redis::from_owned_redis_value(v)
            }
            RedisHandle::Sentinel(..) => {
                let r = wait.query_async(self).await;
                self.note(r)
            }
        }
    }
}

/// Runs the commands of a plain pipeline one by one (concurrently) on a
/// cluster, where a pipeline must stay within one slot.
async fn split_pipeline(
    c: &ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let futs = pipeline.cmd_iter().map(|cmd| {
        let mut c = c.clone();
        async move { c.req_packed_command(cmd).await }
    });
    let all = futures_util::future::join_all(futs).await;
    let mut out = Vec::with_capacity(all.len());
    for v in all {
        out.push(v?);
    }
    Ok(out.into_iter().skip(offset).take(count).collect())
}

fn pipeline_slots_differ(pipeline: &Pipeline) -> bool {
    let mut first: Option<u16> = None;
    for cmd in pipeline.cmd_iter() {
        if let Some(s) = crate::slots::cmd_slot(cmd) {
            match first {
                None => first = Some(s),
                Some(f) if f != s => return true,
                _ => {}
            }
        }
    }
    false
}

impl ConnectionLike for RedisHandle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = match self {
                RedisHandle::Single(c) => c.req_packed_command(cmd).await,
                RedisHandle::Cluster(c) => c.req_packed_command(cmd).await,
                RedisHandle::Sentinel(c, _) => c.req_packed_command(cmd).await,
            };
            self.note(r)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = match self {
                RedisHandle::Single(c) => c.req_packed_commands(cmd, offset, count).await,
                RedisHandle::Cluster(c) => {
                    if !cmd.is_transaction() && pipeline_slots_differ(cmd) {
                        split_pipeline(c, cmd, offset, count).await
                    } else {
                        c.req_packed_commands(cmd, offset, count).await
                    }
                }
                RedisHandle::Sentinel(c, _) => c.req_packed_commands(cmd, offset, count).await,
            };
            self.note(r)
        })
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisHandle::Single(c) => c.get_db(),
            RedisHandle::Cluster(_) => 0,
            RedisHandle::Sentinel(c, _) => c.get_db(),
        }
    }
}

/// What the exactly-once writers need to know about a connection: whether
/// keys live in several slots (a cluster), and whether a write should be
/// confirmed on a replica before it counts as acknowledged.
pub trait Placement: ConnectionLike + Send {
    /// Keys are spread over slots: a script may only touch keys of one.
    fn clustered(&self) -> bool {
        false
    }

    /// Waits for the writes sent so far (to the servers owning `keys`) to
    /// reach a replica, on a cluster or Sentinel master; a no-op on a
    /// single server or when `keys` is empty.
    fn confirm<'a>(&'a mut self, _keys: &'a [&'a str]) -> RedisFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

impl Placement for ConnectionManager {}
impl Placement for redis::aio::MultiplexedConnection {}

/// How long an exactly-once write waits for a replica's acknowledgement.
pub const REPLICA_WAIT: Duration = Duration::from_millis(500);

impl Placement for RedisHandle {
    fn clustered(&self) -> bool {
        matches!(self, RedisHandle::Cluster(_))
    }

    fn confirm<'a>(&'a mut self, keys: &'a [&'a str]) -> RedisFuture<'a, ()> {
        Box::pin(async move {
            if self.topology() == Topology::Single || keys.is_empty() {
                return Ok(());
            }
            let n = self.wait_replicated(REPLICA_WAIT).await?;
            if n < 1 {
                tracing::debug!(
                    "a write was acknowledged by its master only (no replica within {REPLICA_WAIT:?})"
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = RedisConn::new("redis+cluster://:s3cret@127.0.0.1:7000,127.0.0.1:7001").unwrap();
        assert_eq!(percent_decode("a%2Fb%40c").unwrap(), "a/b@c");
        assert!(RedisConn::new("redis+cluster://:a%2@h1:7000").is_err());
        assert_eq!(c.topology(), Topology::Cluster);
        let dbg = format!("{c:?}");
        assert!(dbg.contains("127.0.0.1:7001"), "{dbg}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        let s = RedisConn::new("redis+sentinel://:pw@h1:26379,h2:26379/mymaster").unwrap();
        assert_eq!(s.topology(), Topology::Sentinel);
        let dbg = format!("{s:?}");
        assert!(dbg.contains("mymaster") && !dbg.contains("pw"), "{dbg}");
        assert!(check_url("redis+cluster://h1:7000,h2:7001").is_ok());
        assert!(check_url("redis+sentinel://h1:26379/m/2").is_ok());
        assert!(check_url("http://h1:26379").is_err());
        assert!(check_url("redis+unix:///run/redis.sock").is_ok());
        assert!(check_url("unix:///run/redis.sock").is_ok());
        assert_eq!(
            RedisConn::new("redis://127.0.0.1:6379").unwrap().topology(),
            Topology::Single
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h1",
            "redis+cluster://h1:0",
            "redis+cluster://h1:7000,",
            "redis+cluster://h1:7000/3",
            "redis+cluster://user:pw@h1:7000",
            "rediss+cluster://h1:7000",
            "redis+sentinel://h1:26379",
            "redis+sentinel://h1:26379/",
            "redis+sentinel://h1:26379/m/x",
            "redis+sentinel://h1:x/m",
        ] {
            let e = RedisConn::new(bad).expect_err(bad);
            assert!(!e.to_string().contains("pw"), "{e}");
            let m = check_url(bad).expect_err(bad);
            assert!(m.contains("expected redis://") && !m.contains("pw"), "{m}");
        }
    }
}
