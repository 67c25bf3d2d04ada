//! A private Redis Cluster (3 masters, 3 replicas) and a Sentinel setup
//! (1 master, 1 replica, 3 sentinels) for one test, next to the single
//! [`crate::RedisServer`].

use crate::{free_port, TempDir};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One `redis-server` process of a cluster or Sentinel setup.
struct Node {
    port: u16,
    _dir: TempDir,
    child: Option<Child>,
}

impl Node {
    fn spawn(tag: &str, port: u16, extra: &[String]) -> Node {
        let dir = TempDir::new(tag);
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.path().to_str().expect("utf-8 temp dir").into(),
            "--logfile".into(),
            "redis.log".into(),
        ];
        args.extend(extra.iter().cloned());
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server)");
        Node {
            port,
            _dir: dir,
            child: Some(child),
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn conn(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    tokio::time::timeout(
        Duration::from_millis(500),
        c.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let mut c = conn(port).await?;
    tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut c))
        .await
        .ok()?
        .ok()
}

async fn info(port: u16, section: &str) -> Option<String> {
    query(port, redis::cmd("INFO").arg(section)).await
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_end().strip_prefix(name)?.strip_prefix(':'))
}

/// Polls `f` until it holds, panicking with `what` after `secs` seconds.
async fn until<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} (waited {secs} s)");
}

/// A Redis Cluster of 3 masters and 3 replicas on free ports, each node
/// with its own directory; killed when dropped.
pub struct RedisCluster {
    nodes: Vec<Node>,
}

/// A node of `CLUSTER NODES`: port, whether it is a live master, and the
/// port of the master it replicates (for a replica).
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    master: bool,
    failed: bool,
    master_id: Option<String>,
    slots: Vec<(u16, u16)>,
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port: u16 = f
                .get(1)?
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let flags = f.get(2)?;
            let slots = f
                .iter()
                .skip(8)
                .filter_map(|s| {
                    if s.starts_with('[') {
                        return None;
                    }
                    match s.split_once('-') {
                        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                        None => s.parse().ok().map(|x| (x, x)),
                    }
                })
                .collect();
            Some(NodeLine {
                id: f.first()?.to_string(),
                port,
                master: flags.contains("master"),
                failed: flags.contains("fail"),
                master_id: (*f.get(3)? != "-").then(|| f[3].to_string()),
                slots,
            })
        })
        .collect()
}

impl RedisCluster {
    /// Starts six nodes, joins them with `redis-cli --cluster create …
    /// --cluster-replicas 1`, and waits until every node reports
    /// `cluster_state:ok` and every master has a replica in sync.
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_port();
            let bus = free_port();
            nodes.push(Node::spawn(
                "redis-cluster",
                port,
                &[
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-port".into(),
                    bus.to_string(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-node-timeout".into(),
                    "1000".into(),
                    // A replica may always take over, however long it
                    // was cut off (the tests kill masters on purpose).
                    "--cluster-replica-validity-factor".into(),
                    "0".into(),
                ],
            ));
        }
        let cluster = RedisCluster { nodes };
        for n in &cluster.nodes {
            let port = n.port;
            until(30, "a cluster node did not start", || async move {
                query::<String>(port, &redis::cmd("PING")).await.is_some()
            })
            .await;
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port)),
        );
        args.extend([
            "--cluster-replicas".into(),
            "1".into(),
            "--cluster-yes".into(),
        ]);
        let out = Command::new("redis-cli")
            .args(&args)
            .output()
            .expect("redis-cli not found");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_healthy(3).await;
        cluster
    }

    /// Waits until every live node reports `cluster_state:ok`, agrees on
    /// `masters` masters covering all slots, and each master has a replica
    /// whose link is up (`masters` is 3 at start, and stays 3 after a
    /// failover; a killed master's replica then has no replica of its own,
    /// so only the state and slots are awaited for it).
    async fn wait_healthy(&self, masters: usize) {
        let ports: Vec<u16> = self.live_ports();
        until(60, "the cluster did not become healthy", || {
            let ports = ports.clone();
            async move {
                for p in &ports {
                    let Some(i) = info_cluster(*p).await else {
                        return false;
                    };
                    if field(&i, "cluster_state") != Some("ok")
                        || field(&i, "cluster_slots_ok") != Some("16384")
                    {
                        return false;
                    }
                    let Some(nodes) = cluster_nodes(*p).await else {
                        return false;
                    };
                    let live_masters = nodes
                        .iter()
                        .filter(|n| n.master && !n.failed && !n.slots.is_empty())
                        .count();
                    if live_masters != masters {
                        return false;
                    }
                }
                true
            }
        })
        .await;
        // Replication links of the live replicas are up.
        for p in self.live_ports() {
            until(60, "a replica did not sync", || async move {
                match info(p, "replication").await {
                    Some(r) if field(&r, "role") == Some("slave") => {
                        field(&r, "master_link_status") == Some("up")
                    }
                    Some(_) => true,
                    None => false,
                }
            })
            .await;
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    async fn topology(&self) -> Vec<NodeLine> {
        for p in self.live_ports() {
            if let Some(n) = cluster_nodes(p).await {
                return n;
            }
        }
        panic!("no cluster node answers CLUSTER NODES");
    }

    /// Ports of the live masters that serve slots.
    pub async fn master_ports(&self) -> Vec<u16> {
        self.topology()
            .await
            .into_iter()
            .filter(|n| n.master && !n.failed && !n.slots.is_empty())
            .map(|n| n.port)
            .collect()
    }

    /// The port of the master serving `key`.
    pub async fn master_of(&self, key: &str) -> u16 {
        let p = self.live_ports()[0];
        let slot: i64 = query(p, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .expect("CLUSTER KEYSLOT");
        self.topology()
            .await
            .into_iter()
            .find(|n| {
                n.master
                    && !n.failed
                    && n.slots
                        .iter()
                        .any(|(a, b)| (*a as i64..=*b as i64).contains(&slot))
            })
            .map(|n| n.port)
            .expect("a master serves the slot")
    }

    /// SIGKILLs the master on `port` and waits until its replica has been
    /// promoted and the cluster serves every slot again. Returns the
    /// promoted replica's port.
    pub async fn kill_master(&mut self, port: u16) -> u16 {
        let before = self.topology().await;
        let id = before
            .iter()
            .find(|n| n.port == port && n.master)
            .map(|n| n.id.clone())
            .expect("the port is a master");
        let replica = before
            .iter()
            .find(|n| n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
            .expect("the master has a replica");
        for n in &mut self.nodes {
            if n.port == port {
                n.kill();
            }
        }
        until(60, "the replica was not promoted", || async move {
            match info(replica, "replication").await {
                Some(r) => field(&r, "role") == Some("master"),
                None => false,
            }
        })
        .await;
        self.wait_healthy(3).await;
        replica
    }

    /// A cluster connection for the test's own reads and writes.
    pub async fn conn(&self) -> redis::cluster_async::ClusterConnection {
        let seeds: Vec<String> = self
            .live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        redis::cluster::ClusterClient::new(seeds)
            .expect("cluster client")
            .get_async_connection()
            .await
            .expect("connect to the test cluster")
    }

    /// An integer key's value, 0 when the key does not exist.
    pub async fn get_i64(&self, key: &str) -> i64 {
        let mut c = self.conn().await;
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("GET on the test cluster");
        v.unwrap_or(0)
    }

    /// Calls of every command summed over the live masters since start or
    /// the last [`Self::reset_stats`], from `INFO commandstats`.
    pub async fn command_stats(&self) -> Vec<(String, u64)> {
        let mut sums: std::collections::BTreeMap<String, u64> = Default::default();
        for p in self.master_ports().await {
            let i = info(p, "commandstats").await.expect("INFO commandstats");
            for l in i.lines() {
                let Some((name, rest)) = l
                    .strip_prefix("cmdstat_")
                    .and_then(|x| x.split_once(":calls="))
                else {
                    continue;
                };
                let n: u64 = rest
                    .split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                *sums.entry(name.to_string()).or_default() += n;
            }
        }
        sums.into_iter().collect()
    }

    pub async fn reset_stats(&self) {
        for p in self.live_ports() {
            let _: Option<()> = query(p, redis::cmd("CONFIG").arg("RESETSTAT")).await;
        }
    }
}

async fn info_cluster(port: u16) -> Option<String> {
    query(port, redis::cmd("CLUSTER").arg("INFO")).await
}

async fn cluster_nodes(port: u16) -> Option<Vec<NodeLine>> {
    let text: String = query(port, redis::cmd("CLUSTER").arg("NODES")).await?;
    Some(parse_nodes(&text))
}

/// A master, its replica and three sentinels watching it as `mymaster`;
/// killed when dropped.
pub struct RedisSentinel {
    master: Node,
    replica: Node,
    sentinels: Vec<Node>,
}

/// The name the sentinels know the master by.
pub const SENTINEL_MASTER: &str = "mymaster";

impl RedisSentinel {
    pub async fn start() -> RedisSentinel {
        let master = Node::spawn("redis-sentinel-master", free_port(), &[]);
        let mp = master.port;
        let replica = Node::spawn(
            "redis-sentinel-replica",
            free_port(),
            &["--replicaof".into(), "127.0.0.1".into(), mp.to_string()],
        );
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = TempDir::new("redis-sentinel");
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nlogfile sentinel.log\n\
                     sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {mp} 2\n\
                     sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n\
                     sentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                    dir.path().display()
                ),
            )
            .expect("write sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server --sentinel");
            sentinels.push(Node {
                port,
                _dir: dir,
                child: Some(child),
            });
        }
        let rp = replica.port;
        until(30, "the replica did not sync", || async move {
            matches!(info(rp, "replication").await, Some(r) if field(&r, "master_link_status") == Some("up"))
        })
        .await;
        for s in &sentinels {
            let sp = s.port;
            until(30, "a sentinel does not know the master", || async move {
                let a: Option<Vec<String>> = query(
                    sp,
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(SENTINEL_MASTER),
                )
                .await;
                a.is_some_and(|a| a.get(1).map(String::as_str) == Some(mp.to_string().as_str()))
            })
            .await;
            // A failover needs each sentinel to know the replica (learnt
            // from the master's INFO, every 10 s) and the other sentinels
            // (their hellos, every 2 s): a master killed before that is
            // never replaced.
            until(40, "a sentinel does not know the replica", || async move {
                let r: Option<Vec<Vec<String>>> = query(
                    sp,
                    redis::cmd("SENTINEL").arg("REPLICAS").arg(SENTINEL_MASTER),
                )
                .await;
                r.is_some_and(|r| {
                    r.iter().any(|fields| {
                        fields
                            .windows(2)
                            .any(|kv| kv[0] == "port" && kv[1] == rp.to_string())
                    })
                })
            })
            .await;
            until(40, "a sentinel does not know the others", || async move {
                let others: Option<Vec<Vec<String>>> = query(
                    sp,
                    redis::cmd("SENTINEL").arg("SENTINELS").arg(SENTINEL_MASTER),
                )
                .await;
                others.is_some_and(|o| o.len() == 2)
            })
            .await;
        }
        RedisSentinel {
            master,
            replica,
            sentinels,
        }
    }

    /// `redis+sentinel://s1,s2,s3/mymaster`.
    pub fn url(&self) -> String {
        let s: Vec<String> = self
            .sentinels
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+sentinel://{}/{SENTINEL_MASTER}", s.join(","))
    }

    /// The current master's own URL, for the test's direct reads.
    pub fn master_url(&self) -> String {
        let port = if self.master.child.is_some() {
            self.master.port
        } else {
            self.replica.port
        };
        format!("redis://127.0.0.1:{port}")
    }

    /// SIGKILLs the master and waits until the sentinels promoted the
    /// replica and name it as the master.
    pub async fn kill_master(&mut self) {
        self.master.kill();
        let rp = self.replica.port;
        until(60, "the replica was not promoted", || async move {
            matches!(info(rp, "replication").await, Some(r) if field(&r, "role") == Some("master"))
        })
        .await;
        for s in &self.sentinels {
            let sp = s.port;
            until(
                60,
                "a sentinel does not name the new master",
                || async move {
                    let a: Option<Vec<String>> = query(
                        sp,
                        redis::cmd("SENTINEL")
                            .arg("get-master-addr-by-name")
                            .arg(SENTINEL_MASTER),
                    )
                    .await;
                    a.is_some_and(|a| a.get(1).map(String::as_str) == Some(rp.to_string().as_str()))
                },
            )
            .await;
        }
    }
}
