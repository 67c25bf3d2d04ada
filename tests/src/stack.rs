//! The whole stack as real processes for the fault, bad-input and isolation
//! tests: a private redis-server, the config-center on a fresh SQLite file,
//! the token-service, one or more gateways and mock upstreams, each a
//! [`Svc`] that can be stopped, killed and restarted on the same port with
//! the same settings, and their logs.
//!
//! The rest of the harness works on a [`Stack`]: [`crate::admin`] (the
//! admin calls that build a routing config), [`crate::counters`] (Redis
//! counters), [`crate::load`] (a load generator with exact client-side
//! counts), [`crate::raw_http`], [`crate::report`] and [`crate::wait`];
//! `/metrics` text is read with `aigw_testkit::prom`.

use aigw_testkit::{free_port, Proc, RedisCluster, RedisSentinel, RedisServer, TempDir};
use std::time::Duration;
use tokio::time::Instant;

/// Admin token of every test stack. Long and distinctive so the secret
/// grep of the isolation tests cannot miss it.
pub const ADMIN_TOKEN: &str = "adm-TESTSECRET-5f1c9e7a2b4d48e0a6c3b1f9d7e5a2c4";
/// Metrics flush interval of every service: short, so tests settle quickly.
pub const FLUSH: Duration = Duration::from_millis(250);

/// `METRICS_EXPORTER_TTL` of every service: a killed exporter's successor
/// shows the fleet series within two seconds.
pub const EXPORTER_TTL: &str = "2s";

/// One service process, restartable with the same port and environment.
pub struct Svc {
    pub bin: &'static str,
    pub port: u16,
    envs: Vec<(String, String)>,
    ready_path: &'static str,
    pub proc: Option<Proc>,
    /// Logs of earlier runs of this service (kept across restarts so the
    /// secret grep sees everything).
    retired_logs: Vec<String>,
}

impl Svc {
    fn new(
        bin: &'static str,
        port: u16,
        ready_path: &'static str,
        envs: Vec<(String, String)>,
    ) -> Svc {
        Svc {
            bin,
            port,
            envs,
            ready_path,
            proc: None,
            retired_logs: Vec::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets (or replaces) one environment variable for the next start.
    pub fn set_env(&mut self, k: &str, v: impl Into<String>) {
        self.envs.retain(|(name, _)| name != k);
        self.envs.push((k.to_string(), v.into()));
    }

    /// Starts the process and waits until `ready_path` answers 2xx.
    pub async fn start(&mut self) {
        assert!(self.proc.is_none(), "{} already running", self.bin);
        let envs: Vec<(&str, String)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let mut p = Proc::spawn(self.bin, &envs);
        p.wait_ready(&format!("{}{}", self.url(), self.ready_path))
            .await;
        self.proc = Some(p);
    }

    /// Starts the process without waiting for readiness.
    pub fn spawn(&mut self) {
        assert!(self.proc.is_none(), "{} already running", self.bin);
        let envs: Vec<(&str, String)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        self.proc = Some(Proc::spawn(self.bin, &envs));
    }

    /// SIGKILL.
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill().await;
            self.retired_logs.push(p.logs());
        }
    }

    /// SIGTERM and wait up to `limit` for the exit code (`None`: it did not
    /// exit in time and was killed).
    pub async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let mut p = self.proc.take()?;
        let code = p.terminate(limit).await;
        if code.is_none() {
            p.kill().await;
        }
        self.retired_logs.push(p.logs());
        code
    }

    /// Sends SIGTERM without waiting; see [`Svc::wait_exit`].
    pub fn signal_term(&self) {
        if let Some(p) = &self.proc {
            p.signal(15);
        }
    }

    /// Waits up to `limit` for the process to exit by itself; its code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            let p = self.proc.as_mut()?;
            if let Some(code) = p.try_exit_code() {
                let p = self.proc.take().expect("running");
                self.retired_logs.push(p.logs());
                return code;
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.start().await;
    }

    pub fn is_running(&mut self) -> bool {
        match self.proc.as_mut() {
            Some(p) => p.try_exit_code().is_none(),
            None => false,
        }
    }

    /// Everything every run of this service printed.
    pub fn logs(&self) -> String {
        let mut s = self.retired_logs.join("\n");
        if let Some(p) = &self.proc {
            s.push('\n');
            s.push_str(&p.logs());
        }
        s
    }
}

/// How to build a stack.
#[derive(Clone)]
pub struct StackOptions {
    pub gateways: usize,
    pub mocks: usize,
    pub token_service: bool,
    /// `RUST_LOG` of every service.
    pub log: String,
    pub gateway_env: Vec<(String, String)>,
    pub mock_env: Vec<(String, String)>,
    pub token_service_env: Vec<(String, String)>,
    pub config_center_env: Vec<(String, String)>,
    /// The config-center's `DATABASE_URL`; `None`: a fresh SQLite file,
    /// [`Stack::sqlite_path`].
    pub database_url: Option<String>,
    /// Which Redis the services use (`REDIS_URL`).
    pub redis: RedisKind,
}

/// The Redis deployment of a stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RedisKind {
    /// One redis-server ([`Stack::redis`]).
    #[default]
    Single,
    /// A local Redis Cluster, 3 masters and 3 replicas ([`Stack::cluster`]).
    Cluster,
    /// A master, a replica and 3 sentinels ([`Stack::sentinel`]).
    Sentinel,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            gateways: 1,
            mocks: 1,
            token_service: true,
            log: "info".into(),
            gateway_env: Vec::new(),
            mock_env: Vec::new(),
            token_service_env: Vec::new(),
            config_center_env: Vec::new(),
            database_url: None,
            redis: RedisKind::Single,
        }
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn merge(mut base: Vec<(String, String)>, extra: &[(String, String)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        base.retain(|(n, _)| n != k);
        base.push((k.clone(), v.clone()));
    }
    base
}

/// The running stack.
pub struct Stack {
    /// The single Redis (started for every stack; the services use it
    /// unless [`StackOptions::redis`] names another deployment).
    pub redis: RedisServer,
    pub cluster: Option<RedisCluster>,
    pub sentinel: Option<RedisSentinel>,
    pub http: reqwest::Client,
    pub cc: Svc,
    pub ts: Svc,
    pub gateways: Vec<Svc>,
    pub mocks: Vec<Svc>,
    _db: TempDir,
}

impl Stack {
    /// Starts Redis, the config-center, the token-service (unless turned
    /// off), the mocks and the gateways, each ready.
    pub async fn start(o: StackOptions) -> Stack {
        let redis = RedisServer::start().await;
        let cluster = match o.redis {
            RedisKind::Cluster => Some(RedisCluster::start().await),
            _ => None,
        };
        let sentinel = match o.redis {
            RedisKind::Sentinel => Some(RedisSentinel::start().await),
            _ => None,
        };
        let redis_url = match (&cluster, &sentinel) {
            (Some(c), _) => c.url(),
            (_, Some(s)) => s.url(),
            _ => redis.url(),
        };
        let db = TempDir::new("stack-db");
        let db_url = o
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/cc.db", db.path().display()));
        let log = o.log.clone();
        let flush = format!("{}ms", FLUSH.as_millis());
        let cc = Svc::new(
            "config-center",
            free_port(),
            "/ready",
            merge(
                env(&[
                    ("REDIS_URL", redis_url.clone()),
                    ("DATABASE_URL", db_url),
                    ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
                    ("BIND_ADDR", "127.0.0.1".into()),
                    ("RUST_LOG", log.clone()),
                    ("METRICS_FLUSH_INTERVAL", flush.clone()),
                    ("METRICS_EXPORTER_TTL", EXPORTER_TTL.into()),
                    ("BODY_TIMEOUT", "5s".into()),
                    ("CONFIG_CENTER_PUBLISH_RETRY", "200ms".into()),
                    ("CONFIG_CENTER_PUBLISH_RESYNC", "2s".into()),
                    ("SHUTDOWN_TIMEOUT", "5s".into()),
                    ("LEDGER_BLOCK", "200ms".into()),
                    ("LEDGER_RETRY", "200ms".into()),
                    ("LEDGER_CLAIM_IDLE", "2s".into()),
                ]),
                &o.config_center_env,
            ),
        );
        let ts = Svc::new(
            "token-service",
            free_port(),
            "/health",
            merge(
                env(&[
                    ("REDIS_URL", redis_url.clone()),
                    ("BIND_ADDR", "127.0.0.1".into()),
                    ("RUST_LOG", log.clone()),
                    ("METRICS_FLUSH_INTERVAL", flush.clone()),
                    ("METRICS_EXPORTER_TTL", EXPORTER_TTL.into()),
                    ("BODY_TIMEOUT", "5s".into()),
                    ("SNAPSHOT_POLL_INTERVAL", "1s".into()),
                    ("USAGE_CONSUMER_NAME", "ts-e2e".into()),
                    ("USAGE_BLOCK", "200ms".into()),
                    ("USAGE_CLAIM_IDLE", "2s".into()),
                    ("USAGE_CLAIM_INTERVAL", "1s".into()),
                    ("HTTP_WORKERS", "2".into()),
                    ("COUNT_CONCURRENCY", "2".into()),
                    ("SHUTDOWN_TIMEOUT", "5s".into()),
                ]),
                &o.token_service_env,
            ),
        );
        let mut mocks = Vec::new();
        for _ in 0..o.mocks {
            mocks.push(Svc::new(
                "mock-upstream",
                free_port(),
                "/health",
                merge(
                    env(&[
                        ("BIND_ADDR", "127.0.0.1".into()),
                        ("RUST_LOG", log.clone()),
                        ("MOCK_WORKERS", "2".into()),
                    ]),
                    &o.mock_env,
                ),
            ));
        }
        let mut gateways = Vec::new();
        for _ in 0..o.gateways {
            gateways.push(Svc::new(
                "gateway",
                free_port(),
                "/health",
                merge(
                    env(&[
                        ("REDIS_URL", redis_url.clone()),
                        ("BIND_ADDR", "127.0.0.1".into()),
                        ("RUST_LOG", log.clone()),
                        ("METRICS_FLUSH_INTERVAL", flush.clone()),
                        ("METRICS_EXPORTER_TTL", EXPORTER_TTL.into()),
                        ("BODY_TIMEOUT", "5s".into()),
                        ("CONFIG_POLL_INTERVAL", "1s".into()),
                        ("BUDGET_POLL_INTERVAL", "1s".into()),
                        ("SHUTDOWN_GRACE", "10s".into()),
                        ("GATEWAY_WORKERS", "2".into()),
                    ]),
                    &o.gateway_env,
                ),
            ));
        }
        let mut s = Stack {
            redis,
            cluster,
            sentinel,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
            cc,
            ts,
            gateways,
            mocks,
            _db: db,
        };
        for m in &mut s.mocks {
            m.set_env("MOCK_PORT", m.port.to_string());
        }
        let p = s.cc.port.to_string();
        s.cc.set_env("CONFIG_CENTER_PORT", p);
        let p = s.ts.port.to_string();
        s.ts.set_env("TOKEN_SERVICE_PORT", p);
        for g in &mut s.gateways {
            g.set_env("GATEWAY_PORT", g.port.to_string());
        }
        s.cc.start().await;
        for m in &mut s.mocks {
            m.start().await;
        }
        if o.token_service {
            s.ts.start().await;
        }
        for g in &mut s.gateways {
            g.start().await;
        }
        s
    }

    /// Another token-service replica on the same Redis: the stack's own
    /// settings, a free port and its own consumer name; started and ready.
    pub async fn token_service_replica(&self, consumer: &str) -> Svc {
        let port = free_port();
        let mut r = Svc::new("token-service", port, "/health", self.ts.envs.clone());
        r.set_env("TOKEN_SERVICE_PORT", port.to_string());
        r.set_env("USAGE_CONSUMER_NAME", consumer);
        r.start().await;
        r
    }

    /// The config-center's SQLite file (when the stack made one).
    pub fn sqlite_path(&self) -> std::path::PathBuf {
        self._db.path().join("cc.db")
    }

    pub fn gw(&self, i: usize) -> String {
        self.gateways[i].url()
    }

    /// Base URL of mock `i` as an instance `base_url`.
    pub fn mock_base(&self, i: usize) -> String {
        format!("{}/v1", self.mocks[i].url())
    }

    /// Every log line of every process of the stack, one string per service.
    pub fn all_logs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("config-center".to_string(), self.cc.logs()),
            ("token-service".to_string(), self.ts.logs()),
        ];
        for (i, g) in self.gateways.iter().enumerate() {
            v.push((format!("gateway-{i}"), g.logs()));
        }
        for (i, m) in self.mocks.iter().enumerate() {
            v.push((format!("mock-{i}"), m.logs()));
        }
        v
    }
}

/// A failed stack test shows every service's log: a gateway stuck without
/// configuration, a crashed token-service, a mock that refused — the reason
/// is in one of them.
impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, logs) in self.all_logs() {
                eprintln!("----- {name} log\n{logs}");
            }
        }
    }
}
