//! Test support: a real gateway `Application` on a free port over a private
//! redis-server, with the routing snapshot written straight into Redis the
//! way the config-center does it, and request / Redis / `/metrics` helpers.

use aigw_metrics::keys::USAGE_STREAM;
use aigw_testkit::RedisServer;
use aigw_types::{
    hash_api_key, ApiKeyConfig, ConfigSnapshot, InstanceConfig, Limits, ModelConfig,
    NamespaceConfig, UsageRecord,
};
use gateway::{AppHandle, Application, Settings};
use mock_upstream::overrides::MockOverrides;
use mock_upstream::MockServer;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub const KEY_A: &str = "sk-aigw-test-a-00000000000000000000000000000000";
pub const KEY_B: &str = "sk-aigw-test-b-00000000000000000000000000000000";
pub const MODEL: &str = "gpt-4o-mini";

/// Content chunks of every mock answer, whose text is then [`ANSWER`]
/// (streamed as `"Hello"`, `" from"`, `" the"`).
pub const CHUNKS: u32 = 3;
pub const ANSWER: &str = "Hello from the";
/// The usage the mock reports for [`chat_body`]: one prompt token per word
/// of "Say hello", one completion token per chunk.
pub const PROMPT_TOKENS: u64 = 2;
pub const COMPLETION_TOKENS: u64 = 3;

/// A mock upstream (`services/mock-upstream`) on a free port. Its answers
/// carry `x-upstream-name: {name}`, which tells instances apart, and a
/// `set-cookie` the gateway must not relay.
pub async fn upstream(name: &str) -> MockServer {
    MockServer::start(mock_upstream::Config {
        bind_addr: "127.0.0.1".into(),
        port: 0,
        workers: Some(1),
        chunks: CHUNKS,
        response_headers: vec![
            ("x-upstream-name".into(), name.into()),
            ("set-cookie".into(), "upstream=1".into()),
        ],
        ..mock_upstream::Config::default()
    })
    .await
    .expect("start the mock upstream")
}

/// `MockOverrides` from JSON, e.g. `mock(json!({"status": 500}))`.
pub fn mock(knobs: Value) -> MockOverrides {
    serde_json::from_value(knobs).expect("valid mock knobs")
}

pub fn ns(code: &str) -> NamespaceConfig {
    NamespaceConfig {
        code: code.into(),
        name: format!("Namespace {code}"),
        enabled: true,
        limits: Limits::default(),
        monthly_budget_usd: None,
    }
}

pub fn model(name: &str) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        encoding: "o200k_base".into(),
        input_price_per_1m: Some("0.15".parse().unwrap()),
        output_price_per_1m: Some("0.60".parse().unwrap()),
        cached_input_price_per_1m: None,
        cache_write_price_per_1m: None,
        context_window: Some(128_000),
        enabled: true,
    }
}

pub fn instance(id: &str, ns: &str, model: &str, base_url: &str) -> InstanceConfig {
    InstanceConfig {
        id: id.into(),
        namespace_code: ns.into(),
        model: model.into(),
        provider: Default::default(),
        base_url: base_url.into(),
        upstream_model: format!("{model}-upstream-{id}"),
        api_key: Some(format!("sk-upstream-secret-{id}")),
        azure_deployment: None,
        api_version: None,
        weight: 1,
        timeout_ms: 5_000,
        enabled: true,
        health_check: None,
        retry_unknown_outcome: false,
        openai_organization: None,
        openai_project: None,
    }
}

pub fn key(ns: &str, plaintext: &str) -> ApiKeyConfig {
    ApiKeyConfig {
        id: format!("key-{ns}-{}", &plaintext[plaintext.len() - 4..]),
        namespace_code: ns.into(),
        key_hash: hash_api_key(plaintext),
        prefix: plaintext[..12].into(),
        revoked: false,
        expires_at_ms: None,
        allowed_models: None,
    }
}

/// Namespace `team-a` with key [`KEY_A`] and one instance `a1` of [`MODEL`]
/// at `base_url`.
pub fn one_instance(base_url: &str) -> ConfigSnapshot {
    ConfigSnapshot {
        version: 1,
        generated_at_ms: 1_700_000_000_000,
        namespaces: vec![ns("team-a")],
        api_keys: vec![key("team-a", KEY_A)],
        models: vec![model(MODEL)],
        instances: vec![instance("a1", "team-a", MODEL, base_url)],
    }
}

/// Settings for tests: fast intervals, one worker, loopback only.
pub fn test_settings(redis_url: &str) -> Settings {
    Settings {
        bind_addr: "127.0.0.1".into(),
        port: 0,
        redis_url: aigw_service::Secret::url(redis_url),
        workers: 1,
        metrics_flush_interval: Duration::from_millis(100),
        config_poll_interval: Duration::from_millis(300),
        budget_poll_interval: Duration::from_millis(100),
        passive_failure_threshold: 2,
        passive_cooldown: Duration::from_millis(500),
        health_check_failures: 1,
        shutdown_grace: Duration::from_secs(5),
        ..Settings::default()
    }
}

/// Writes a snapshot with the config-center's publisher: snapshot and
/// version in one script, then the version announced on `config:updates`.
pub async fn publish(redis: &RedisServer, snap: &ConfigSnapshot) {
    let mut c = redis.conn().await;
    let done = aigw_snapshot::publish(&mut c, snap).await.unwrap();
    assert_eq!(
        done,
        aigw_snapshot::Published::Written,
        "version {}",
        snap.version
    );
}

/// One running gateway.
pub struct Gateway {
    pub addr: String,
    pub handle: AppHandle,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    pub async fn start(settings: Settings) -> Gateway {
        aigw_service::init_logging_for_tests();
        let app = Application::build(settings).await.expect("build gateway");
        let addr = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let task = tokio::spawn(app.run_until_stopped());
        Gateway { addr, handle, task }
    }

    /// Waits until `/ready` reports `version`.
    pub async fn wait_version(&self, version: u64) {
        for _ in 0..200 {
            if self.handle.config_version() == Some(version) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "gateway did not load config version {version} (has {:?})",
            self.handle.config_version()
        );
    }
}

pub struct TestApp {
    pub gw: Gateway,
    pub redis: RedisServer,
    pub client: reqwest::Client,
}

impl TestApp {
    pub async fn spawn(snap: &ConfigSnapshot) -> TestApp {
        Self::spawn_with(snap, |_| {}).await
    }

    pub async fn spawn_with(snap: &ConfigSnapshot, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        let redis = RedisServer::start().await;
        publish(&redis, snap).await;
        let mut s = test_settings(&redis.url());
        tweak(&mut s);
        let gw = Gateway::start(s).await;
        gw.wait_version(snap.version).await;
        TestApp {
            gw,
            redis,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gw.addr)
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::Response {
        let mut rb = self.client.post(self.url(path)).json(body);
        if let Some(k) = key {
            rb = rb.bearer_auth(k);
        }
        rb.send().await.expect("request to gateway")
    }

    pub async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions", Some(key), &body).await
    }

    /// Waits until no request is in flight, then flushes the metrics: Redis then holds exactly what the
    /// requests so far recorded.
    pub async fn settle(&self) {
        settle(&self.gw, &self.redis).await;
    }

    pub async fn publish(&self, snap: &ConfigSnapshot) {
        publish(&self.redis, snap).await;
        self.gw.wait_version(snap.version).await;
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        let mut c = self.redis.conn().await;
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap()
    }

    pub async fn get_i64(&self, key: &str) -> i64 {
        self.get(key)
            .await
            .unwrap_or_else(|| panic!("{key} missing"))
            .parse()
            .unwrap()
    }

    pub async fn metrics(&self) -> Metrics {
        scrape(&self.gw.addr).await
    }

    pub async fn usage_records(&self) -> Vec<UsageRecord> {
        usage_records(&self.redis).await
    }
}

pub async fn settle(gw: &Gateway, redis: &RedisServer) {
    for _ in 0..1000 {
        if gw.handle.live_requests() == 0 {
            let mut c = redis.conn().await;
            gw.handle
                .recorder()
                .flush(&mut c, aigw_metrics::Heartbeat::None)
                .await
                .expect("flush");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "requests still in flight: {} live",
        gw.handle.live_requests()
    );
}

pub async fn usage_records(redis: &RedisServer) -> Vec<UsageRecord> {
    let mut c = redis.conn().await;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(USAGE_STREAM)
        .arg("-")
        .arg("+")
        .query_async::<redis::Value>(&mut c)
        .await
        .map(|v| parse_xrange(&v))
        .unwrap();
    let mut out = Vec::new();
    for (_, fields) in entries {
        for (f, v) in fields {
            assert_eq!(f, "records");
            let recs: Vec<UsageRecord> = serde_json::from_str(&v).unwrap();
            out.extend(recs);
        }
    }
    out
}

fn parse_xrange(v: &redis::Value) -> Vec<(String, Vec<(String, String)>)> {
    let redis::Value::Array(items) = v else {
        return vec![];
    };
    items
        .iter()
        .filter_map(|e| {
            let redis::Value::Array(parts) = e else {
                return None;
            };
            let id: String = redis::from_redis_value(&parts[0]).ok()?;
            let kv: Vec<String> = redis::from_redis_value(&parts[1]).ok()?;
            let pairs = kv.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            Some((id, pairs))
        })
        .collect()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub fn chat_body(stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}

/// Parsed `/metrics` text: `name{labels}` → value.
pub struct Metrics {
    pub text: String,
    pub series: BTreeMap<String, f64>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            text: text.to_string(),
            series: aigw_testkit::prom::Scrape::parse(text).by_series(),
        }
    }

    /// The value of a series, e.g. `ai_gateway_requests_total` or
    /// `ai_gateway_namespace_requests_total{namespace_code="team-a"}`.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.series.get(series).copied()
    }

    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("series {series} missing from /metrics:\n{}", self.text))
    }

    /// Every `ai_gateway_*` series (without process metrics).
    pub fn gateway_series(&self) -> BTreeMap<String, f64> {
        self.series
            .iter()
            .filter(|(k, _)| k.starts_with("ai_gateway_"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }
}

/// Polls `cond` every 20 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Reads a streamed response until `needle` appears; returns all text read.
pub async fn read_until(resp: &mut reqwest::Response, acc: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !acc.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {acc:?}"))
            .expect("read stream");
        match chunk {
            Some(c) => acc.push_str(std::str::from_utf8(&c).unwrap()),
            None => panic!("stream ended before {needle:?}; got {acc:?}"),
        }
    }
}

/// The `data:` payloads of an SSE text.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| {
            ev.lines()
                .find_map(|l| l.strip_prefix("data: ").map(str::to_string))
        })
        .collect()
}

/// The gateway binary on a free port of `redis`, ready: one worker, fast
/// flushes; `overrides` replace or add variables.
pub async fn spawn_gateway_binary(
    redis: &RedisServer,
    overrides: &[(&str, &str)],
) -> (aigw_testkit::Proc, String) {
    spawn_gateway_at(gateway_binary(), redis, overrides).await
}

/// The gateway binary of this build.
pub fn gateway_binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_gateway"))
}

/// [`spawn_gateway_binary`] with another executable: e.g. a script that
/// sets limits and `exec`s [`gateway_binary`].
pub async fn spawn_gateway_at(
    path: &std::path::Path,
    redis: &RedisServer,
    overrides: &[(&str, &str)],
) -> (aigw_testkit::Proc, String) {
    let port = aigw_testkit::free_port();
    let mut env: Vec<(&str, String)> = vec![
        ("GATEWAY_PORT", port.to_string()),
        ("BIND_ADDR", "127.0.0.1".into()),
        ("REDIS_URL", redis.url()),
        ("GATEWAY_WORKERS", "1".into()),
        ("METRICS_FLUSH_INTERVAL", "100ms".into()),
        ("SHUTDOWN_GRACE", "5s".into()),
        ("RUST_LOG", "info".into()),
    ];
    for (k, v) in overrides {
        match env.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k, v.to_string())),
        }
    }
    let mut p = aigw_testkit::Proc::spawn_path(path, "gateway", &env);
    let base = format!("http://127.0.0.1:{port}");
    p.wait_ready(&format!("{base}/ready")).await;
    (p, base)
}

/// The `/metrics` of the gateway at `base` (`http://host:port`).
pub async fn scrape(base: &str) -> Metrics {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Metrics::parse(&text)
}

/// A stream of team A's key through the gateway at `base`, read up to its
/// first content chunk (so it is running upstream).
pub async fn start_stream(c: &reqwest::Client, base: &str) -> reqwest::Response {
    let mut r = c
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut t = String::new();
    read_until(&mut r, &mut t, "\"Hello\"").await;
    r
}

/// The status of one non-streaming chat request with team A's key.
pub async fn chat_status(c: &reqwest::Client, base: &str) -> u16 {
    c.post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&chat_body(false))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
