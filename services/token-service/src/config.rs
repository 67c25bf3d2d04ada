//! Typed configuration, read from the environment through the shared reader
//! and validated before the service binds anything. Every variable read
//! here is listed in the settings table of `docs/token-service.md`; a test
//! compares the two ([`Config::settings`]).

use aigw_service::{Env, EnvError, LogSettings, Secret, Setting};
use std::time::Duration;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `RUST_LOG`, `LOG_FORMAT`.
    pub log: LogSettings,
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `TOKEN_SERVICE_PORT`, default 8001 (0 picks a free port, for tests).
    pub port: u16,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`; printed redacted.
    pub redis_url: Secret,
    /// `METRICS_TOKEN`: bearer token `/metrics` requires, default none (open).
    pub metrics_token: Option<Secret>,
    /// How long a `/metrics` render is served again: one second (not a
    /// setting; tests that watch a gauge move set it to zero).
    pub metrics_cache_ttl: Duration,
    /// `MAX_BODY_BYTES`: largest request body, default 8 MiB.
    pub max_body_bytes: usize,
    /// `BODY_TIMEOUT`: bound on receiving a whole request body, default 30s.
    pub body_timeout: Duration,
    /// `COUNT_CONCURRENCY`: counting jobs running at once on the blocking
    /// pool, default the number of CPUs.
    pub count_concurrency: usize,
    /// `HTTP_WORKERS`: actix workers, default the number of CPUs.
    pub http_workers: usize,
    /// `SHUTDOWN_TIMEOUT`: bound on draining in-flight requests and background
    /// work at shutdown, default 10s.
    pub shutdown_timeout: Duration,
    /// `METRICS_FLUSH_INTERVAL`: how often local metric deltas go to Redis, default 1s.
    pub metrics_flush_interval: Duration,
    /// `METRICS_EXPORTER_TTL`: lease of the one replica that shows the fleet
    /// series on `/metrics`, default 15s.
    pub metrics_exporter_ttl: Duration,
    /// `SNAPSHOT_POLL_INTERVAL`: slow poll of `config:version` (and PING of
    /// the `config:updates` subscription), in case a notification was
    /// missed or the subscription died silently, default 30s.
    pub snapshot_poll_interval: Duration,
    pub consumer: ConsumerConfig,
    /// Whether `run_until_stopped` listens for SIGTERM/SIGINT (tests turn it off).
    pub handle_signals: bool,
}

/// Settings of the usage-stream consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `USAGE_CONSUMER_ENABLED`, default true: false serves the counting API only.
    pub enabled: bool,
    /// `USAGE_CONSUMER_NAME`: this consumer's name in the group, default
    /// `{hostname}-{pid}`; must be unique among live consumers.
    pub name: String,
    /// `USAGE_BATCH_ENTRIES`: stream entries read per call, default 16.
    pub batch_entries: usize,
    /// `USAGE_APPLY_CHUNK`: records applied per Redis script call (whole
    /// stream entries, at least one), default 4096.
    pub apply_chunk: usize,
    /// `USAGE_BLOCK`: how long one read waits for new entries, default 1s.
    pub block: Duration,
    /// `USAGE_CLAIM_IDLE`: entries pending this long on another consumer are
    /// taken over (that consumer is presumed dead), default 60s.
    pub claim_idle: Duration,
    /// `USAGE_CLAIM_INTERVAL`: how often to look for such entries, default 10s.
    pub claim_interval: Duration,
    /// `USAGE_DEDUP_TTL`: how long a record id is remembered as applied,
    /// default 7 days; redeliveries later than this would count twice.
    pub dedup_ttl: Duration,
    /// `USAGE_LEDGER`, default true: append each accounted record to the
    /// spend ledger's stream (`usage:ledger`), which the config-center
    /// stores. Turn off only where no config-center consumes it.
    pub ledger: bool,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn default_consumer_name() -> String {
    aigw_service::host_pid_name("token-service")
}

/// The defaults: the configuration of an empty environment.
impl Default for Config {
    fn default() -> Self {
        Config::from_env(&Env::from_pairs::<String, String>([]))
            .expect("the defaults are a valid configuration")
    }
}

impl Config {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Config, EnvError> {
        let c = Config {
            log: LogSettings::from_env(env)?,
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            port: env.number("TOKEN_SERVICE_PORT", 8001)?,
            redis_url: aigw_service::redis_url(env)?,
            metrics_token: aigw_service::scrape::metrics_token(env),
            metrics_cache_ttl: aigw_service::scrape::SCRAPE_CACHE_TTL,
            max_body_bytes: env.number_at_least("MAX_BODY_BYTES", 8 * 1024 * 1024, 1)?,
            body_timeout: aigw_service::body_timeout(env)?,
            count_concurrency: env.number_or_else("COUNT_CONCURRENCY", "CPUs", cpus, 1)?,
            http_workers: env.number_or_else("HTTP_WORKERS", "CPUs", cpus, 1)?,
            shutdown_timeout: env.duration("SHUTDOWN_TIMEOUT", Duration::from_secs(10))?,
            metrics_exporter_ttl: aigw_service::metrics_exporter_ttl(env)?,
            metrics_flush_interval: env
                .positive_duration("METRICS_FLUSH_INTERVAL", Duration::from_secs(1))?,
            snapshot_poll_interval: env
                .positive_duration("SNAPSHOT_POLL_INTERVAL", Duration::from_secs(30))?,
            consumer: ConsumerConfig {
                enabled: env.flag("USAGE_CONSUMER_ENABLED", true)?,
                name: env.string_or_else(
                    "USAGE_CONSUMER_NAME",
                    "{hostname}-{pid}",
                    default_consumer_name,
                ),
                batch_entries: env.number_at_least("USAGE_BATCH_ENTRIES", 16, 1)?,
                apply_chunk: env.number_at_least("USAGE_APPLY_CHUNK", 4096, 1)?,
                block: env.duration("USAGE_BLOCK", Duration::from_secs(1))?,
                claim_idle: env.positive_duration("USAGE_CLAIM_IDLE", Duration::from_secs(60))?,
                claim_interval: env.duration("USAGE_CLAIM_INTERVAL", Duration::from_secs(10))?,
                dedup_ttl: env.duration("USAGE_DEDUP_TTL", Duration::from_secs(7 * 24 * 3600))?,
                ledger: env.flag("USAGE_LEDGER", true)?,
            },
            handle_signals: true,
        };
        c.validate()?;
        Ok(c)
    }

    /// Every variable [`Config::from_env`] reads, with its default.
    pub fn settings() -> Vec<Setting> {
        let env = Env::from_pairs::<String, String>([]);
        let _ = Config::from_env(&env);
        env.settings()
    }

    /// Checks what the types alone cannot (also for configurations built in
    /// code, as the tests do).
    pub fn validate(&self) -> Result<(), EnvError> {
        let err = |var, message: &str| Err(EnvError::new(var, message));
        for (var, n) in [
            ("MAX_BODY_BYTES", self.max_body_bytes),
            ("COUNT_CONCURRENCY", self.count_concurrency),
            ("HTTP_WORKERS", self.http_workers),
            ("USAGE_BATCH_ENTRIES", self.consumer.batch_entries),
            ("USAGE_APPLY_CHUNK", self.consumer.apply_chunk),
        ] {
            if n == 0 {
                return err(var, "must be at least 1");
            }
        }
        // A blocking read must return before the connection's response
        // timeout (3 s), or every idle read would look like a failure.
        if self.consumer.block.is_zero() || self.consumer.block > Duration::from_millis(2500) {
            return err("USAGE_BLOCK", "must be between 1ms and 2500ms");
        }
        if self.consumer.dedup_ttl < Duration::from_secs(1) {
            return err("USAGE_DEDUP_TTL", "must be at least 1s");
        }
        if self.consumer.name.len() > 200 {
            return err("USAGE_CONSUMER_NAME", "must be 1 to 200 characters");
        }
        if self.body_timeout.is_zero() {
            return err("BODY_TIMEOUT", "must be greater than zero");
        }
        if let Err(message) = aigw_metrics::conn::check_url(self.redis_url.expose()) {
            // The message never echoes the URL (it may hold a password).
            return err("REDIS_URL", &message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, EnvError> {
        Config::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_and_overrides() {
        let c = from(&[]).unwrap();
        assert_eq!(c.port, 8001);
        assert_eq!(c.max_body_bytes, 8 * 1024 * 1024);
        assert_eq!(c.body_timeout, Duration::from_secs(30));
        assert_eq!(c.redis_url.expose(), "redis://127.0.0.1:6379");
        let c = from(&[
            ("TOKEN_SERVICE_PORT", "9001"),
            ("USAGE_CLAIM_IDLE", "1500ms"),
            ("USAGE_CONSUMER_ENABLED", "false"),
            ("COUNT_CONCURRENCY", "3"),
            ("METRICS_FLUSH_INTERVAL", "30"),
            ("BODY_TIMEOUT", "1m"),
        ])
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.consumer.claim_idle, Duration::from_millis(1500));
        assert!(!c.consumer.enabled);
        assert_eq!(c.count_concurrency, 3);
        // Plain seconds, as every service accepts them.
        assert_eq!(c.metrics_flush_interval, Duration::from_secs(30));
        assert_eq!(c.body_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_are_named_without_secrets() {
        let e = from(&[("TOKEN_SERVICE_PORT", "eighty")]).unwrap_err();
        assert_eq!(e.var, "TOKEN_SERVICE_PORT");
        let e = from(&[("USAGE_BLOCK", "10s")]).unwrap_err();
        assert_eq!(e.var, "USAGE_BLOCK");
        let e = from(&[("REDIS_URL", "http://user:hunter2@x")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(from(&[("COUNT_CONCURRENCY", "0")]).is_err());
        let e = from(&[("SNAPSHOT_POLL_INTERVAL", "0")]).unwrap_err();
        assert_eq!(e.var, "SNAPSHOT_POLL_INTERVAL");
        let c = from(&[("REDIS_URL", "redis://:hunter2@cache:6379")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(format!("{c:?}").contains("cache:6379"));
    }

    #[test]
    fn the_settings_table_is_what_the_code_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/token-service.md");
        let doc = std::fs::read_to_string(path).expect("docs/token-service.md");
        let documented = aigw_testkit::docs::settings_table(&doc, "## Configuration (environment)");
        let read: Vec<(String, String)> = Config::settings()
            .into_iter()
            .map(|s| (s.var.to_string(), s.default))
            .collect();
        aigw_testkit::docs::assert_same_settings("docs/token-service.md", &documented, &read);
    }
}
