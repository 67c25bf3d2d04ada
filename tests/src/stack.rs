//! The whole stack as real processes for the fault, bad-input and isolation
//! tests: a private redis-server, the config-center on a fresh SQLite file,
//! the token-service, one or more gateways and mock upstreams, each a
//! [`Svc`] that can be stopped, killed and restarted on the same port with
//! the same settings. Also: the admin calls that build a routing config,
//! a load generator with exact client-side counts, readers of Redis and
//! `/metrics`, and the `RELIABILITY|…` lines `docs/RELIABILITY.md` is made of.

use aigw_testkit::{free_port, Proc, RedisServer, TempDir};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Admin token of every test stack. Long and distinctive so the secret
/// grep of the isolation tests cannot miss it.
pub const ADMIN_TOKEN: &str = "adm-TESTSECRET-5f1c9e7a2b4d48e0a6c3b1f9d7e5a2c4";
/// Metrics flush interval of every service: short, so tests settle quickly.
pub const FLUSH: Duration = Duration::from_millis(250);

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
    pub redis: RedisServer,
    pub http: reqwest::Client,
    pub cc: Svc,
    pub ts: Svc,
    pub gateways: Vec<Svc>,
    pub mocks: Vec<Svc>,
    _db: TempDir,
}

/// What the admin API answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    /// `x-config-version` of a committed change.
    pub version: Option<u64>,
}

impl Stack {
    /// Starts Redis, the config-center, the token-service (unless turned
    /// off), the mocks and the gateways, each ready.
    pub async fn start(o: StackOptions) -> Stack {
        let redis = RedisServer::start().await;
        let db = TempDir::new("stack-db");
        let db_url = format!("sqlite://{}/cc.db", db.path().display());
        let log = o.log.clone();
        let flush = format!("{}ms", FLUSH.as_millis());
        let cc = Svc::new(
            "config-center",
            free_port(),
            "/ready",
            merge(
                env(&[
                    ("REDIS_URL", redis.url()),
                    ("DATABASE_URL", db_url),
                    ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
                    ("BIND_ADDR", "127.0.0.1".into()),
                    ("RUST_LOG", log.clone()),
                    ("METRICS_FLUSH_INTERVAL", flush.clone()),
                    ("BODY_TIMEOUT", "5s".into()),
                    ("CONFIG_CENTER_PUBLISH_RETRY", "200ms".into()),
                    ("CONFIG_CENTER_PUBLISH_RESYNC", "2s".into()),
                    ("SHUTDOWN_TIMEOUT", "5s".into()),
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
                    ("REDIS_URL", redis.url()),
                    ("BIND_ADDR", "127.0.0.1".into()),
                    ("RUST_LOG", log.clone()),
                    ("METRICS_FLUSH_INTERVAL", flush.clone()),
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
                        ("REDIS_URL", redis.url()),
                        ("BIND_ADDR", "127.0.0.1".into()),
                        ("RUST_LOG", log.clone()),
                        ("METRICS_FLUSH_INTERVAL", flush.clone()),
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

    // ----- admin API ---------------------------------------------------------

    /// One admin call with the admin token.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        self.admin_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    /// One admin call with `token` (or none).
    pub async fn admin_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.cc.url(), path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("config-center answers");
        let status = r.status().as_u16();
        let version = r
            .headers()
            .get("x-config-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            version,
        }
    }

    async fn admin_ok(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let a = self.admin(method.clone(), path, Some(body.clone())).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {path} {body} → {}: {}",
            a.status,
            a.text
        );
        a
    }

    /// Creates a namespace; `extra` is merged into the body (limits, budget).
    pub async fn namespace(&self, code: &str, extra: Value) -> u64 {
        let mut body = json!({"code": code});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        self.admin_ok(reqwest::Method::POST, "/api/v1/namespaces", body)
            .await
            .version
            .expect("version header")
    }

    /// Creates a model priced `input`/`output` USD per million tokens.
    pub async fn model(&self, name: &str, input: &str, output: &str) -> u64 {
        self.admin_ok(
            reqwest::Method::POST,
            "/api/v1/models",
            json!({"name": name, "encoding": "o200k_base",
                   "input_price_per_1m": input, "output_price_per_1m": output}),
        )
        .await
        .version
        .expect("version header")
    }

    /// Creates an instance of `model` for `ns` at `base_url`; `extra` is
    /// merged into the body (api_key, health_check, timeout_ms, weight).
    pub async fn instance(
        &self,
        id: &str,
        ns: &str,
        model: &str,
        base_url: &str,
        extra: Value,
    ) -> u64 {
        let mut body =
            json!({"id": id, "namespace_code": ns, "model": model, "base_url": base_url});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        self.admin_ok(reqwest::Method::POST, "/api/v1/instances", body)
            .await
            .version
            .expect("version header")
    }

    /// Issues a key for `ns`: (key id, key, version).
    pub async fn key(&self, ns: &str, extra: Value) -> (String, String, u64) {
        let mut body = json!({"name": "e2e"});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        let a = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/{ns}/api-keys"),
                body,
            )
            .await;
        let key = a.body["key"].as_str().expect("key in answer").to_string();
        let id = a.body["id"].as_str().expect("id in answer").to_string();
        (id, key, a.version.expect("version header"))
    }

    /// Revokes a key; the version it committed as.
    pub async fn revoke(&self, ns: &str, id: &str) -> Option<u64> {
        let a = self
            .admin(
                reqwest::Method::DELETE,
                &format!("/api/v1/namespaces/{ns}/api-keys/{id}"),
                None,
            )
            .await;
        assert_eq!(a.status, 204, "revoke: {}", a.text);
        a.version
    }

    /// The usual small world: namespace `ns` with model `m` (1 and 2 USD per
    /// million tokens) served by every mock (instance `{ns}-i{n}`, with a 1 s
    /// health check), and one key. Waits until every running gateway and
    /// the token-service loaded it. Returns the key.
    pub async fn world(&self, ns: &str, model: &str, ns_extra: Value) -> String {
        self.namespace(ns, ns_extra).await;
        if self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/models/{model}"),
                None,
            )
            .await
            .status
            == 404
        {
            self.model(model, "1", "2").await;
        }
        for i in 0..self.mocks.len() {
            self.instance(
                &format!("{ns}-i{i}"),
                ns,
                model,
                &self.mock_base(i),
                json!({"api_key": upstream_secret(ns, i),
                       "health_check": {"path": "/models", "interval_s": 1},
                       "timeout_ms": 5000}),
            )
            .await;
        }
        let (_, key, v) = self.key(ns, json!({})).await;
        self.wait_version(v).await;
        key
    }

    /// Waits until every running gateway (and the token-service, when it
    /// runs) has loaded config version `v` or later (20 s at most).
    pub async fn wait_version(&self, v: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for g in &self.gateways {
            if g.proc.is_none() {
                continue;
            }
            loop {
                let got = self.json(&format!("{}/ready", g.url())).await["config_version"].as_u64();
                if got.is_some_and(|g| g >= v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "gateway {} stuck at config {got:?} < {v}",
                    g.url()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if self.ts.proc.is_some() {
            loop {
                let got = self.json(&format!("{}/ready", self.ts.url())).await["snapshot_version"]
                    .as_u64();
                if got.is_some_and(|g| g >= v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "token-service stuck at config {got:?} < {v}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// GET → JSON (Null when unreachable or not JSON).
    pub async fn json(&self, url: &str) -> Value {
        match self.http.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// GET → text ("" when unreachable).
    pub async fn text(&self, url: &str) -> String {
        match self.http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    // ----- Redis ------------------------------------------------------------

    /// An integer key (0 when absent).
    pub async fn int(&self, key: &str) -> i64 {
        let mut c = self.redis.conn().await;
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap_or(None);
        v.unwrap_or(0)
    }

    /// Every key matching `pattern` (SCAN; tests only).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut c = self.redis.conn().await;
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .expect("SCAN");
            out.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        out
    }

    /// The gateway's counters of namespace `ns` as the product spec names them.
    pub async fn gateway_counts(&self, ns: &str, statuses: &[u16]) -> Counts {
        let mut by_status = BTreeMap::new();
        for s in statuses {
            by_status.insert(*s, self.int(&format!("metrics:ns:{ns}:status:{s}")).await);
        }
        Counts {
            global_requests: self.int("metrics:global:total_requests").await,
            global_errors: self.int("metrics:global:total_errors").await,
            ns_requests: self.int(&format!("metrics:ns:{ns}:total_requests")).await,
            ns_successful: self
                .int(&format!("metrics:ns:{ns}:successful_requests"))
                .await,
            ns_failed: self.int(&format!("metrics:ns:{ns}:failed_requests")).await,
            by_status,
        }
    }

    /// The token-service's totals of `model` in `ns`.
    pub async fn model_totals(&self, model: &str, ns: &str) -> ModelTotals {
        let k = |s: &str| format!("metrics:model:{model}:{ns}:{s}");
        ModelTotals {
            requests: self.int(&k("requests")).await,
            errors: self.int(&k("errors")).await,
            tokens_in: self.int(&k("tokens_in")).await,
            tokens_out: self.int(&k("tokens_out")).await,
            cost_nusd: self.int(&k("cost_nusd")).await,
        }
    }

    /// Waits (up to `limit`) until `read` returns `want`, then four more
    /// flush intervals so anything counted late or twice shows; returns the
    /// last value read, for the caller to compare and report.
    pub async fn settle<T, F, Fut>(&self, limit: Duration, want: &T, read: F) -> T
    where
        T: PartialEq,
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        let deadline = Instant::now() + limit;
        loop {
            let got = read().await;
            if &got == want || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(FLUSH * 4).await;
        read().await
    }
}

/// The upstream secret of instance `i` of namespace `ns`: distinctive, so the
/// secret grep finds any leak.
pub fn upstream_secret(ns: &str, i: usize) -> String {
    format!("sk-upstream-SECRET-{ns}-{i}-9c2e4a61f0b7")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub global_requests: i64,
    pub global_errors: i64,
    pub ns_requests: i64,
    pub ns_successful: i64,
    pub ns_failed: i64,
    pub by_status: BTreeMap<u16, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelTotals {
    pub requests: i64,
    pub errors: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_nusd: i64,
}

// ----- requests and load -------------------------------------------------------

/// The chat body every load request sends: 4 prompt words, so the mock
/// reports 4 prompt tokens and (by default) 5 completion tokens.
pub fn chat_body(model: &str, stream: bool, mock: Option<Value>) -> Value {
    let mut b = json!({
        "model": model,
        "messages": [{"role": "user", "content": "count these four words"}],
    });
    if stream {
        b["stream"] = json!(true);
    }
    if let Some(m) = mock {
        b["mock"] = m;
    }
    b
}

pub const PROMPT_TOKENS: i64 = 4;
pub const COMPLETION_TOKENS: i64 = 5;
/// Cost of one load request at 1 / 2 USD per million tokens, nano-USD.
pub const COST_NUSD: i64 = PROMPT_TOKENS * 1000 + COMPLETION_TOKENS * 2000;

/// What one request ended with, as the client saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None`: no HTTP answer (connection refused or broken).
    pub status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
    pub started: Instant,
    pub finished: Instant,
}

impl Outcome {
    /// A stream that ended properly with `data: [DONE]`.
    pub fn stream_done(&self) -> bool {
        self.body.trim_end().ends_with("data: [DONE]")
    }
}

/// One request through a gateway, reading the whole answer.
pub async fn send(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Outcome {
    let started = Instant::now();
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await;
    match r {
        Err(e) => Outcome {
            status: None,
            body: String::new(),
            error: Some(e.to_string()),
            started,
            finished: Instant::now(),
        },
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text().await {
                Ok(body) => Outcome {
                    status: Some(status),
                    body,
                    error: None,
                    started,
                    finished: Instant::now(),
                },
                Err(e) => Outcome {
                    status: Some(status),
                    body: String::new(),
                    error: Some(format!("body: {e}")),
                    started,
                    finished: Instant::now(),
                },
            }
        }
    }
}

/// A load run: `workers` clients each sending requests one after another
/// (round-robin over `urls`) until stopped or `max` requests were started.
pub struct Load {
    stop: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Everything the client observed.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub sent: usize,
    pub by_status: BTreeMap<u16, usize>,
    /// Requests without an HTTP answer.
    pub transport_errors: usize,
    /// 200 streams that did not end with `[DONE]`.
    pub broken_streams: usize,
    pub first_errors: Vec<String>,
    /// Every request's outcome, in completion order.
    pub outcomes: Vec<Outcome>,
}

impl Observed {
    pub fn answered(&self) -> usize {
        self.by_status.values().sum()
    }
    pub fn status(&self, s: u16) -> usize {
        self.by_status.get(&s).copied().unwrap_or(0)
    }
    pub fn non_200(&self) -> usize {
        self.answered() - self.status(200)
    }
}

impl Load {
    /// Starts the load. `body(i)` is the body of request `i`.
    pub fn start(
        http: reqwest::Client,
        urls: Vec<String>,
        key: String,
        workers: usize,
        max: usize,
        pause: Duration,
        body: impl Fn(usize) -> Value + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(body);
        let urls = Arc::new(urls);
        let tasks = (0..workers)
            .map(|_| {
                let (stop, started, done, outcomes, body, urls, http, key) = (
                    stop.clone(),
                    started.clone(),
                    done.clone(),
                    outcomes.clone(),
                    body.clone(),
                    urls.clone(),
                    http.clone(),
                    key.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let i = started.fetch_add(1, Ordering::SeqCst);
                        if i >= max {
                            started.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                        let url = &urls[i % urls.len()];
                        let o = send(&http, url, &key, &body(i)).await;
                        outcomes.lock().unwrap().push(o);
                        done.fetch_add(1, Ordering::SeqCst);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            started,
            done,
            outcomes,
            tasks,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests finished (or `limit` passed).
    pub async fn wait_done(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.done() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops starting requests, waits for those in flight, and reports.
    pub async fn finish(self) -> Observed {
        self.stop.store(true, Ordering::SeqCst);
        self.complete().await
    }

    /// Waits until all `max` requests are done (a bounded load), and reports.
    pub async fn complete(self) -> Observed {
        for t in self.tasks {
            let _ = t.await;
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        let mut o = Observed {
            sent: self.started.load(Ordering::SeqCst),
            outcomes: outcomes.clone(),
            ..Observed::default()
        };
        for r in &outcomes {
            match r.status {
                Some(s) => {
                    *o.by_status.entry(s).or_default() += 1;
                    let is_stream = r.body.starts_with("data:") || r.body.contains("\ndata:");
                    if s == 200 && is_stream && !r.stream_done() {
                        o.broken_streams += 1;
                    }
                    if s != 200 && o.first_errors.len() < 5 {
                        o.first_errors.push(format!(
                            "{s}: {}",
                            r.body.chars().take(300).collect::<String>()
                        ));
                    }
                }
                None => {
                    o.transport_errors += 1;
                    if o.first_errors.len() < 5 {
                        o.first_errors.push(r.error.clone().unwrap_or_default());
                    }
                }
            }
        }
        o
    }
}

// ----- /metrics ------------------------------------------------------------------

/// The value of the sample `name{labels}` in a Prometheus text exposition
/// (labels must match exactly as a set; `&[]` = no labels).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        // Timestamps are not used by these services.
        let (n, l) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        let mut got: Vec<(String, String)> = Vec::new();
        if !l.is_empty() {
            for part in split_labels(l) {
                if let Some((k, v)) = part.split_once('=') {
                    got.push((k.to_string(), v.trim_matches('"').to_string()));
                }
            }
        }
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        got.sort();
        want.sort();
        if got == want {
            return value.parse().ok();
        }
    }
    None
}

fn split_labels(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_q = false;
    let mut esc = false;
    for c in s.chars() {
        if esc {
            cur.push(c);
            esc = false;
            continue;
        }
        match c {
            '\\' => {
                esc = true;
                cur.push(c);
            }
            '"' => {
                in_q = !in_q;
                cur.push(c);
            }
            ',' if !in_q => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Number of samples (non-comment lines) whose name starts with `prefix`.
pub fn series_count(text: &str, prefix: &str) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .count()
}

// ----- reliability report ------------------------------------------------------------

/// Prints `RELIABILITY|fault|load|lost` (and appends it to the file named by
/// `AIGW_RELIABILITY_FILE`, which `scripts/reliability.sh` sets); the rows of
/// `docs/RELIABILITY.md`.
pub fn report(fault: &str, load: &str, lost: &str) {
    let line = format!("RELIABILITY|{fault}|{load}|{lost}");
    println!("{line}");
    if let Ok(path) = std::env::var("AIGW_RELIABILITY_FILE") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Polls `f` every 50 ms until it is true or `limit` passed; whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ----- raw HTTP ----------------------------------------------------------------------

/// An answer read off a raw TCP connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `None`: the connection closed (or timed out) without a status line.
    pub status: Option<u16>,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is (it should say `Connection: close`) to
/// 127.0.0.1:`port` and reads the answer until the server closes or
/// `limit` passes. Any bytes can be sent: invalid UTF-8, odd methods,
/// broken framing.
pub async fn raw_http(port: u16, request: &[u8], limit: Duration) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        // The server may answer (413, 431) and close before reading all of a
        // large request: a failed write is not an error here.
        let _ = s.write_all(request).await;
        let mut chunk = [0u8; 16384];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(limit, io).await;
    parse_raw(&buf)
}

fn parse_raw(buf: &[u8]) -> RawResponse {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let Some(split) = split else {
        return RawResponse {
            status: None,
            head: String::from_utf8_lossy(buf).into_owned(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    RawResponse { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 2 + size + 2).min(b.len())..];
    }
    out
}

/// A request with `Content-Length` framing and `Connection: close`.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}
