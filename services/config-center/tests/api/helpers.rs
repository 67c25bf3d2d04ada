//! The test harness: the real `Application` on port 0 against a private
//! redis-server and a fresh database (a SQLite file, or a PostgreSQL
//! database created for the test), with request helpers.

use aigw_metrics::keys;
use aigw_service::Env;
use aigw_testkit::prom::{Sample, Scrape};
use aigw_testkit::{PgDatabase, RedisServer, TempDir};
use aigw_types::ConfigSnapshot;
use config_center::{Application, Config};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

pub const TOKEN: &str = "test-admin-token-0123456789";
/// Small enough that a 413 is cheap to provoke.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `both!(name);` expects
/// `async fn name(b: Backend)` in scope.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// Where a test's data lives; dropped (deleted) with the test.
pub enum Db {
    Sqlite { dir: TempDir, url: String },
    Postgres(PgDatabase),
}

impl Db {
    /// A fresh database, or None (with a message) when PostgreSQL is not
    /// reachable.
    pub async fn create(b: Backend) -> Option<Db> {
        match b {
            Backend::Sqlite => {
                let dir = TempDir::new("cc-sqlite");
                let url = format!("sqlite://{}/cc.db", dir.path().display());
                Some(Db::Sqlite { dir, url })
            }
            Backend::Postgres => {
                match PgDatabase::create().await {
                    Some(pg) => Some(Db::Postgres(pg)),
                    None => {
                        // scripts/test.sh sets this when a server answered, so
                        // a PostgreSQL pass cannot silently turn into a skip.
                        if std::env::var_os("AIGW_REQUIRE_PG").is_some() {
                            panic!("AIGW_REQUIRE_PG is set but no PostgreSQL database could be created");
                        }
                        eprintln!("skipping: no PostgreSQL");
                        None
                    }
                }
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Db::Sqlite { url, .. } => url.clone(),
            Db::Postgres(pg) => pg.url.clone(),
        }
    }

    /// Every byte the database holds, as text: the SQLite file and its WAL,
    /// or every row of every table on PostgreSQL.
    pub async fn dump(&self) -> String {
        match self {
            Db::Sqlite { dir, .. } => {
                let mut bytes = Vec::new();
                for f in ["cc.db", "cc.db-wal"] {
                    if let Ok(b) = std::fs::read(dir.path().join(f)) {
                        bytes.extend_from_slice(&b);
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Db::Postgres(pg) => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&pg.url).await.unwrap();
                let mut out = String::new();
                for t in [
                    "namespaces",
                    "api_keys",
                    "models",
                    "instances",
                    "config_state",
                ] {
                    // Table names are fixed literals here, not input.
                    let rows: Vec<String> =
                        sqlx::query_scalar(&format!("SELECT t::text FROM {t} t"))
                            .fetch_all(&mut c)
                            .await
                            .unwrap();
                    out.push_str(&rows.join("\n"));
                    out.push('\n');
                }
                out
            }
        }
    }
}

/// The test settings, read through the service's own settings reader.
pub fn test_config(db_url: &str, redis_url: &str) -> Config {
    let env = Env::from_pairs([
        ("BIND_ADDR", "127.0.0.1"),
        ("CONFIG_CENTER_PORT", "0"),
        ("DATABASE_URL", db_url),
        ("ADMIN_TOKEN", TOKEN),
        ("REDIS_URL", redis_url),
        ("MAX_BODY_BYTES", MAX_BODY.to_string().as_str()),
        ("CONFIG_CENTER_WORKERS", "1"),
        ("CONFIG_CENTER_DB_MAX_CONNECTIONS", "4"),
        ("CONFIG_CENTER_PUBLISH_RETRY", "200ms"),
        ("CONFIG_CENTER_PUBLISH_RESYNC", "30s"),
        ("CONFIG_CENTER_PUBLISH_WAIT", "2s"),
        ("METRICS_FLUSH_INTERVAL", "200ms"),
        ("SHUTDOWN_TIMEOUT", "3s"),
        ("LEDGER_BLOCK", "100ms"),
        ("LEDGER_RETRY", "200ms"),
        // The ledger tests use fixed dates, which must not age out.
        ("LEDGER_RETENTION", "36500d"),
    ]);
    Config::from_env(&env).expect("test settings")
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {}", self.status, self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The config version the change committed as.
    pub fn version(&self) -> u64 {
        self.header("x-config-version")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no x-config-version: {self:?}"))
    }

    /// Asserts the status and the error body shape; returns the error object.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "content-type {ct}: {}",
            self.text
        );
        let body = self.json();
        let err = body["error"].clone();
        assert_eq!(err["code"], code, "{}", self.text);
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.text
        );
        assert!(
            err.as_object().unwrap().contains_key("field"),
            "{}",
            self.text
        );
        err
    }
}

pub struct TestApp {
    pub addr: String,
    pub client: reqwest::Client,
    pub redis: RedisServer,
    pub db: Db,
    handle: actix_web::dev::ServerHandle,
    run: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Every response body seen, to check secrets never appear in any.
    seen: std::sync::Mutex<Vec<String>>,
}

impl TestApp {
    /// Starts Redis, a fresh database and the app; None when the backend is
    /// unavailable (PostgreSQL not running).
    pub async fn spawn(b: Backend) -> Option<TestApp> {
        let db = Db::create(b).await?;
        let redis = RedisServer::start().await;
        Some(Self::start(b, db, redis).await)
    }

    /// Like [`TestApp::spawn`], with settings changed by `change`.
    pub async fn spawn_with(b: Backend, change: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let db = Db::create(b).await?;
        let redis = RedisServer::start().await;
        Some(Self::start_with(db, redis, change).await)
    }

    /// Starts the app on an existing database and Redis.
    pub async fn start(_b: Backend, db: Db, redis: RedisServer) -> TestApp {
        Self::start_with(db, redis, |_| {}).await
    }

    async fn start_with(db: Db, redis: RedisServer, change: impl FnOnce(&mut Config)) -> TestApp {
        aigw_service::init_logging_for_tests();
        let mut config = test_config(&db.url(), &redis.url());
        change(&mut config);
        let app = Application::build(config).await.expect("build app");
        let addr = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let run = tokio::spawn(app.run_until(std::future::pending()));
        TestApp {
            addr,
            client: reqwest::Client::new(),
            redis,
            db,
            handle,
            run: Some(run),
            seen: Default::default(),
        }
    }

    /// Stops gracefully and hands back the database and Redis.
    pub async fn stop(mut self) -> (Db, RedisServer) {
        self.handle.stop(true).await;
        if let Some(run) = self.run.take() {
            run.await.expect("join").expect("app ended with an error");
        }
        let TestApp { db, redis, .. } = self;
        (db, redis)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Res {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.addr, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.finish(req).await
    }

    /// Sends a prepared request (raw bodies, custom headers).
    pub async fn finish(&self, req: reqwest::RequestBuilder) -> Res {
        let r = req.send().await.expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("body");
        self.seen.lock().unwrap().push(text.clone());
        Res {
            status,
            headers,
            text,
        }
    }

    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.addr, path))
            .bearer_auth(TOKEN)
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, Some(TOKEN), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Res {
        self.send(Method::POST, path, Some(TOKEN), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Res {
        self.send(Method::PATCH, path, Some(TOKEN), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.send(Method::DELETE, path, Some(TOKEN), None).await
    }

    /// Every response body this app answered so far, joined.
    pub fn all_responses(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// The snapshot as stored in Redis (with secrets), and `config:version`.
    pub async fn redis_snapshot(&self) -> Option<(ConfigSnapshot, u64)> {
        let mut c = self.redis.conn().await;
        let (raw, v): (Option<String>, Option<u64>) = redis::pipe()
            .get(keys::CONFIG_SNAPSHOT)
            .get(keys::CONFIG_VERSION)
            .query_async(&mut c)
            .await
            .ok()?;
        Some((serde_json::from_str(&raw?).expect("snapshot JSON"), v?))
    }

    /// Polls Redis until the snapshot has at least `version` (bounded: 20 s).
    pub async fn snapshot_at(&self, version: u64) -> ConfigSnapshot {
        for _ in 0..400 {
            if let Some((s, v)) = self.redis_snapshot().await {
                if v >= version {
                    assert_eq!(s.version, v, "config:version and the snapshot disagree");
                    return s;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "snapshot version {version} not published; redis has {:?}",
            self.redis_snapshot().await.map(|(_, v)| v)
        );
    }

    pub async fn metrics(&self) -> String {
        self.send(Method::GET, "/metrics", None, None).await.text
    }

    /// Polls `/metrics` until every line in `want` is present (bounded: 20 s).
    /// Waits until `/metrics` holds every `series value` of `want` (labels
    /// in any order); the text.
    pub async fn metrics_with(&self, want: &[&str]) -> String {
        let want: Vec<Sample> = want
            .iter()
            .flat_map(|w| Scrape::parse(w).samples().to_vec())
            .collect();
        let has = |text: &str, w: &Sample| {
            let labels: Vec<(&str, &str)> = w
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            Scrape::parse(text).value(&w.name, &labels) == Some(w.value)
        };
        let mut last = String::new();
        for _ in 0..200 {
            last = self.metrics().await;
            if want.iter().all(|w| has(&last, w)) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let missing: Vec<String> = want
            .iter()
            .filter(|w| !has(&last, w))
            .map(|w| format!("{} {}", w.series(), w.value))
            .collect();
        panic!("metrics missing: {missing:?}\n{last}");
    }

    // Seeding helpers through the HTTP API. Each returns once its change is
    // in Redis, so a later read of the snapshot sees it even when the
    // answer came before the publication (a slow machine).

    pub async fn create_namespace(&self, code: &str) -> Value {
        let r = self
            .post(
                "/api/v1/namespaces",
                serde_json::json!({ "code": code, "name": code }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        self.snapshot_at(r.version()).await;
        r.json()
    }

    pub async fn create_model(&self, name: &str) -> Value {
        let r = self
            .post(
                "/api/v1/models",
                serde_json::json!({ "name": name, "encoding": "o200k_base",
                    "input_price_per_1m": "0.15", "output_price_per_1m": "0.60" }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        self.snapshot_at(r.version()).await;
        r.json()
    }

    pub async fn create_instance(
        &self,
        id: &str,
        ns: &str,
        model: &str,
        secret: Option<&str>,
    ) -> Value {
        let r = self
            .post(
                "/api/v1/instances",
                serde_json::json!({ "id": id, "namespace_code": ns, "model": model,
                    "base_url": "http://127.0.0.1:9/v1", "api_key": secret }),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        self.snapshot_at(r.version()).await;
        r.json()
    }
}
