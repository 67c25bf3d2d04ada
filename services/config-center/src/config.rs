//! Typed configuration, read from the environment through the shared reader
//! and validated before anything binds. Every variable read here is listed
//! in the settings table of `docs/config-center.md`; a test compares the
//! two ([`Config::settings`]).

use aigw_service::{Env, EnvError, LogSettings, Secret, Setting};
use std::time::Duration;

/// Where the SQLite database goes when `DATABASE_URL` is unset, relative to
/// the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/config-center.db";

/// A fresh admin token for dev mode: 256 bits, base62.
pub fn generate_admin_token() -> Secret {
    Secret::new(format!("cc-dev-{}", crate::domain::random_base62(43)))
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `RUST_LOG`, `LOG_FORMAT`.
    pub log: LogSettings,
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `CONFIG_CENTER_PORT`, default 8000; 0 picks a free port (tests).
    pub port: u16,
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`; unset → SQLite file
    /// [`DEFAULT_SQLITE_PATH`]. Printed with its password redacted.
    pub database_url: Secret,
    /// `ADMIN_TOKEN`; generated in dev mode when unset. Never printed.
    pub admin_token: Secret,
    /// True when the admin token was generated (dev mode).
    pub admin_token_generated: bool,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`; printed redacted.
    pub redis_url: Secret,
    /// `METRICS_TOKEN`: bearer token `/metrics` requires, default none (open).
    pub metrics_token: Option<Secret>,
    /// `MAX_BODY_BYTES`, default 1 MiB; larger JSON bodies get 413.
    pub max_body_bytes: usize,
    /// `BODY_TIMEOUT`, default 30s: the whole request body must arrive
    /// within this (a slower client gets a JSON 408).
    pub body_timeout: Duration,
    /// `CONFIG_CENTER_WORKERS`, default 2: HTTP worker threads.
    pub workers: usize,
    /// `CONFIG_CENTER_DB_MAX_CONNECTIONS`, default 5.
    pub db_max_connections: u32,
    /// `CONFIG_CENTER_PUBLISH_RETRY`, default 1s: retry period while
    /// publication fails.
    pub publish_retry: Duration,
    /// `CONFIG_CENTER_PUBLISH_RESYNC`, default 30s: how often the published
    /// version is checked against SQL even without changes (heals a Redis
    /// that lost its data).
    pub publish_resync: Duration,
    /// `CONFIG_CENTER_PUBLISH_WAIT`, default 2s: how long a write waits for
    /// its version to be published before answering (only while Redis is
    /// healthy; the answer is a success either way).
    pub publish_wait: Duration,
    /// `METRICS_FLUSH_INTERVAL`, default 1s.
    pub metrics_flush_interval: Duration,
    /// `METRICS_EXPORTER_TTL`: lease of the one replica that shows the fleet
    /// series on `/metrics`, default 15s.
    pub metrics_exporter_ttl: Duration,
    /// `SHUTDOWN_TIMEOUT`, default 10s: bound for draining requests and
    /// flushing metrics on shutdown.
    pub shutdown_timeout: Duration,
    /// `CONSOLE_SESSION_TTL`, default 8h: how long a web console session
    /// lasts after sign-in.
    pub console_session_ttl: Duration,
    /// `TRUSTED_PROXIES`, default unset: the proxies in front of the
    /// config-center (IP addresses or CIDR ranges, comma-separated). A
    /// console sign-in that arrives from one of them is counted against the
    /// client `X-Forwarded-For` names (the rightmost address in it that is
    /// not a trusted proxy) instead of against the proxy.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `PROMETHEUS_URL`, default unset: the Prometheus the console's
    /// overview queries for requests, error rate and p95 latency (else it
    /// reads the Redis counters). May carry basic-auth credentials; printed
    /// redacted.
    pub prometheus_url: Option<Secret>,
    /// `PROMETHEUS_TIMEOUT`, default 2s: how long the overview waits for
    /// Prometheus before it falls back to Redis.
    pub prometheus_timeout: Duration,
    /// `PROMETHEUS_QUERY_OFFSET`, default 0s: the overview's queries are
    /// evaluated this long before now, so that scrapes still in flight
    /// cannot change the figures afterwards (Prometheus' `query_offset`).
    pub prometheus_query_offset: Duration,
    pub ledger: LedgerConfig,
}

/// Settings of the spend ledger's writer and retention (`docs/ledger.md`).
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// `LEDGER_ENABLED`, default true: store `usage:ledger` in SQL.
    pub enabled: bool,
    /// `LEDGER_CONSUMER_NAME`, default `{hostname}-{pid}`: this writer's
    /// name in the consumer group; unique per live replica.
    pub consumer_name: String,
    /// `LEDGER_BATCH_ROWS`, default 2000: entries read per batch, and their
    /// rows inserted (an entry holds one row or an array of rows).
    pub batch_rows: usize,
    /// `LEDGER_BLOCK`, default 1s: how long one read waits for new entries.
    pub block: Duration,
    /// `LEDGER_CLAIM_IDLE`, default 1m: entries pending this long on
    /// another writer are taken over.
    pub claim_idle: Duration,
    /// `LEDGER_RETRY`, default 1s: wait after a failed batch (database or
    /// Redis down) before trying again.
    pub retry: Duration,
    /// `LEDGER_RETENTION`, default 90d: rows older than this are deleted.
    pub retention: Duration,
    /// `LEDGER_RETENTION_INTERVAL`, default 10m: how often retention runs.
    pub retention_interval: Duration,
    /// `LEDGER_RETENTION_BATCH`, default 1000: rows deleted per statement.
    pub retention_batch: u32,
}

impl Config {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Config, EnvError> {
        let log = LogSettings::from_env(env)?;
        let dev_mode = env.flag("CONFIG_CENTER_DEV_MODE", false)?;
        let (admin_token, admin_token_generated) = match env.secret("ADMIN_TOKEN") {
            Some(t) => (t, false),
            None if dev_mode => (generate_admin_token(), true),
            None => return Err(EnvError::new(
                "ADMIN_TOKEN",
                "missing; it is required (CONFIG_CENTER_DEV_MODE=1 generates one for local use)",
            )),
        };
        let config = Config {
            log,
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            port: env.number("CONFIG_CENTER_PORT", 8000)?,
            database_url: env.url(
                "DATABASE_URL",
                &format!("sqlite://{DEFAULT_SQLITE_PATH}"),
                &["sqlite", "postgres", "postgresql"],
            )?,
            admin_token,
            admin_token_generated,
            redis_url: aigw_service::redis_url(env)?,
            metrics_token: aigw_service::scrape::metrics_token(env),
            max_body_bytes: env.number_at_least("MAX_BODY_BYTES", 1024 * 1024, 1)?,
            body_timeout: aigw_service::body_timeout(env)?,
            workers: env.number_at_least("CONFIG_CENTER_WORKERS", 2, 1)?,
            db_max_connections: env.number_at_least("CONFIG_CENTER_DB_MAX_CONNECTIONS", 5, 1)?,
            publish_retry: env
                .positive_duration("CONFIG_CENTER_PUBLISH_RETRY", Duration::from_secs(1))?,
            publish_resync: env
                .positive_duration("CONFIG_CENTER_PUBLISH_RESYNC", Duration::from_secs(30))?,
            publish_wait: env.duration("CONFIG_CENTER_PUBLISH_WAIT", Duration::from_secs(2))?,
            metrics_exporter_ttl: aigw_service::metrics_exporter_ttl(env)?,
            metrics_flush_interval: env
                .positive_duration("METRICS_FLUSH_INTERVAL", Duration::from_secs(1))?,
            shutdown_timeout: env.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(10))?,
            console_session_ttl: env
                .positive_duration("CONSOLE_SESSION_TTL", Duration::from_secs(8 * 3600))?,
            trusted_proxies: trusted_proxies(env)?,
            prometheus_url: prometheus_url(env)?,
            prometheus_timeout: env
                .positive_duration("PROMETHEUS_TIMEOUT", Duration::from_secs(2))?,
            prometheus_query_offset: env.duration("PROMETHEUS_QUERY_OFFSET", Duration::ZERO)?,
            ledger: LedgerConfig {
                enabled: env.flag("LEDGER_ENABLED", true)?,
                consumer_name: env.string_or_else(
                    "LEDGER_CONSUMER_NAME",
                    "{hostname}-{pid}",
                    || aigw_service::host_pid_name("config-center"),
                ),
                batch_rows: env.number_at_least("LEDGER_BATCH_ROWS", 2000, 1)?,
                block: env.positive_duration("LEDGER_BLOCK", Duration::from_secs(1))?,
                claim_idle: env.positive_duration("LEDGER_CLAIM_IDLE", Duration::from_secs(60))?,
                retry: env.positive_duration("LEDGER_RETRY", Duration::from_secs(1))?,
                retention: env
                    .positive_duration("LEDGER_RETENTION", Duration::from_secs(90 * 86_400))?,
                retention_interval: env
                    .positive_duration("LEDGER_RETENTION_INTERVAL", Duration::from_secs(600))?,
                retention_batch: env.number_at_least("LEDGER_RETENTION_BATCH", 1000, 1)?,
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Every variable [`Config::from_env`] reads, with its default.
    pub fn settings() -> Vec<Setting> {
        // Without a token nothing past it is read.
        let env = Env::from_pairs([("ADMIN_TOKEN", "t")]);
        let _ = Config::from_env(&env);
        env.settings()
    }

    /// Checks what the types alone cannot (also for configurations built in
    /// code, as the tests do).
    pub fn validate(&self) -> Result<(), EnvError> {
        let invalid = |var, message: &str| Err(EnvError::new(var, message));
        let t = self.admin_token.expose();
        if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid(
                "ADMIN_TOKEN",
                "must not be empty or contain whitespace or control characters",
            );
        }
        let db = self.database_url.expose();
        if !(db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://"))
        {
            return invalid("DATABASE_URL", "must start with sqlite: or postgres://");
        }
        if let Err(message) = aigw_metrics::conn::check_url(self.redis_url.expose()) {
            // The message never echoes the URL (it may hold a password).
            return invalid("REDIS_URL", &message);
        }
        for (var, n) in [
            ("MAX_BODY_BYTES", self.max_body_bytes),
            ("CONFIG_CENTER_WORKERS", self.workers),
            (
                "CONFIG_CENTER_DB_MAX_CONNECTIONS",
                self.db_max_connections as usize,
            ),
        ] {
            if n == 0 {
                return invalid(var, "must be at least 1");
            }
        }
        for (var, d) in [
            ("CONFIG_CENTER_PUBLISH_RETRY", self.publish_retry),
            ("CONFIG_CENTER_PUBLISH_RESYNC", self.publish_resync),
            ("METRICS_FLUSH_INTERVAL", self.metrics_flush_interval),
            ("BODY_TIMEOUT", self.body_timeout),
            ("CONSOLE_SESSION_TTL", self.console_session_ttl),
            ("PROMETHEUS_TIMEOUT", self.prometheus_timeout),
        ] {
            if d.is_zero() {
                return invalid(var, "must be greater than zero");
            }
        }
        Ok(())
    }
}

/// `TRUSTED_PROXIES`: unset, or IP addresses and CIDR ranges separated by
/// commas (an address is a range of one).
fn trusted_proxies(env: &Env) -> Result<Vec<ipnet::IpNet>, EnvError> {
    let Some(v) = env.optional("TRUSTED_PROXIES") else {
        return Ok(Vec::new());
    };
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    EnvError::new(
                        "TRUSTED_PROXIES",
                        format!("`{s}` is not an IP address or a CIDR range"),
                    )
                })
        })
        .collect()
}

/// `PROMETHEUS_URL`: unset, or an `http(s)://` URL without a query (the
/// API paths are appended to its path).
fn prometheus_url(env: &Env) -> Result<Option<Secret>, EnvError> {
    let Some(v) = env.secret("PROMETHEUS_URL") else {
        return Ok(None);
    };
    let ok = url::Url::parse(v.expose()).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.has_host() && u.query().is_none()
    });
    if !ok {
        return Err(EnvError::new(
            "PROMETHEUS_URL",
            "not a URL starting with http:// or https:// (without a query)",
        ));
    }
    Ok(Some(Secret::url(v.expose())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, EnvError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn admin_token_is_required_outside_dev_mode() {
        let e = cfg(&[]).unwrap_err();
        assert_eq!(e.var, "ADMIN_TOKEN");
        let c = cfg(&[("CONFIG_CENTER_DEV_MODE", "1")]).unwrap();
        assert!(c.admin_token_generated);
        assert!(c.admin_token.expose().len() >= 43);
        assert!(!format!("{c:?}").contains(c.admin_token.expose()));
    }

    #[test]
    fn defaults_and_overrides() {
        let c = cfg(&[("ADMIN_TOKEN", "secret-token-123456")]).unwrap();
        assert_eq!(c.port, 8000);
        assert_eq!(c.bind_addr, "0.0.0.0");
        assert_eq!(c.database_url.expose(), "sqlite://data/config-center.db");
        assert_eq!(c.max_body_bytes, 1 << 20);
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        let c = cfg(&[
            ("ADMIN_TOKEN", "t"),
            ("CONFIG_CENTER_PORT", "9001"),
            ("CONFIG_CENTER_PUBLISH_RETRY", "250ms"),
            // Plain seconds, as every service accepts them.
            ("METRICS_FLUSH_INTERVAL", "30"),
        ])
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.publish_retry, Duration::from_millis(250));
        assert_eq!(c.metrics_flush_interval, Duration::from_secs(30));
        assert_eq!(
            cfg(&[("ADMIN_TOKEN", "t"), ("CONFIG_CENTER_PORT", "x")])
                .unwrap_err()
                .var,
            "CONFIG_CENTER_PORT"
        );
        assert_eq!(
            cfg(&[("ADMIN_TOKEN", "t"), ("DATABASE_URL", "mysql://x")])
                .unwrap_err()
                .var,
            "DATABASE_URL"
        );
    }

    #[test]
    fn secrets_never_print() {
        let c = cfg(&[
            ("ADMIN_TOKEN", "adm-hunter2"),
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/cc"),
            ("REDIS_URL", "redis://:hunter2@cache:6379"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("db:5432") && shown.contains("cache:6379"),
            "{shown}"
        );
        let e = cfg(&[
            ("ADMIN_TOKEN", "t"),
            ("DATABASE_URL", "mysql://u:hunter2@x"),
        ])
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let c = cfg(&[("ADMIN_TOKEN", "t")]).unwrap();
        assert!(c.trusted_proxies.is_empty());
        let c = cfg(&[
            ("ADMIN_TOKEN", "t"),
            ("TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.7 ,fd00::/8,"),
        ])
        .unwrap();
        let shown: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        let e = cfg(&[
            ("ADMIN_TOKEN", "t"),
            ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("TRUSTED_PROXIES"), "{e}");
        assert!(e.to_string().contains("`proxy.local`"), "{e}");
    }

    #[test]
    fn prometheus_url_is_optional_checked_and_redacted() {
        let c = cfg(&[("ADMIN_TOKEN", "t")]).unwrap();
        assert!(c.prometheus_url.is_none());
        assert_eq!(c.prometheus_timeout, Duration::from_secs(2));
        assert_eq!(c.prometheus_query_offset, Duration::ZERO);
        let c = cfg(&[
            ("ADMIN_TOKEN", "t"),
            (
                "PROMETHEUS_URL",
                "https://viewer:hunter2@prom.example:9090/prom",
            ),
            ("PROMETHEUS_TIMEOUT", "500ms"),
            ("PROMETHEUS_QUERY_OFFSET", "15s"),
        ])
        .unwrap();
        assert_eq!(c.prometheus_query_offset, Duration::from_secs(15));
        let url = c.prometheus_url.as_ref().unwrap();
        assert_eq!(
            url.expose(),
            "https://viewer:hunter2@prom.example:9090/prom"
        );
        assert_eq!(c.prometheus_timeout, Duration::from_millis(500));
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("prom.example:9090"), "{shown}");
        for bad in [
            "prom:9090",
            "ftp://u:hunter2@prom:9090",
            "http://u:hunter2@prom:9090/?token=x",
        ] {
            let e = cfg(&[("ADMIN_TOKEN", "t"), ("PROMETHEUS_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "PROMETHEUS_URL");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let e = cfg(&[("ADMIN_TOKEN", "t"), ("PROMETHEUS_TIMEOUT", "0s")]).unwrap_err();
        assert_eq!(e.var, "PROMETHEUS_TIMEOUT");
    }

    #[test]
    fn the_settings_table_is_what_the_code_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config-center.md");
        let doc = std::fs::read_to_string(path).expect("docs/config-center.md");
        let documented =
            aigw_testkit::docs::settings_table(&doc, "### Configuration (environment)");
        let read: Vec<(String, String)> = Config::settings()
            .into_iter()
            .map(|s| (s.var.to_string(), s.default))
            .collect();
        aigw_testkit::docs::assert_same_settings("docs/config-center.md", &documented, &read);
    }
}
