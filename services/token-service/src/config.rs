//! Typed configuration, read from the environment and validated before the
//! service binds anything.

use std::time::Duration;

/// Everything the service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `TOKEN_SERVICE_PORT`, default 8001 (0 picks a free port, for tests).
    pub port: u16,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`; may carry a password, so
    /// it is never logged.
    pub redis_url: String,
    /// `MAX_BODY_BYTES`: largest request body, default 8 MiB.
    pub max_body_bytes: usize,
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
    /// `SNAPSHOT_POLL_INTERVAL`: slow poll of `config:version`, in case a
    /// change notification was missed, default 30s.
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
    /// `USAGE_APPLY_CHUNK`: records applied per Redis script call, default 500.
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
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "token-service".to_string());
    format!("{host}-{}", std::process::id())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind_addr: "0.0.0.0".to_string(),
            port: 8001,
            redis_url: "redis://127.0.0.1:6379".to_string(),
            max_body_bytes: 8 * 1024 * 1024,
            count_concurrency: cpus(),
            http_workers: cpus(),
            shutdown_timeout: Duration::from_secs(10),
            metrics_flush_interval: Duration::from_secs(1),
            snapshot_poll_interval: Duration::from_secs(30),
            consumer: ConsumerConfig {
                enabled: true,
                name: default_consumer_name(),
                batch_entries: 16,
                apply_chunk: 500,
                block: Duration::from_secs(1),
                claim_idle: Duration::from_secs(60),
                claim_interval: Duration::from_secs(10),
                dedup_ttl: Duration::from_secs(7 * 24 * 3600),
            },
            handle_signals: true,
        }
    }
}

impl Config {
    /// Reads the environment over the defaults, then validates.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Config::from_env`] with an explicit lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("BIND_ADDR") {
            c.bind_addr = v;
        }
        if let Some(v) = get("REDIS_URL") {
            c.redis_url = v;
        }
        if let Some(v) = get("TOKEN_SERVICE_PORT") {
            c.port = parse_num("TOKEN_SERVICE_PORT", &v)?;
        }
        if let Some(v) = get("MAX_BODY_BYTES") {
            c.max_body_bytes = parse_num("MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = get("COUNT_CONCURRENCY") {
            c.count_concurrency = parse_num("COUNT_CONCURRENCY", &v)?;
        }
        if let Some(v) = get("HTTP_WORKERS") {
            c.http_workers = parse_num("HTTP_WORKERS", &v)?;
        }
        for (var, slot) in [
            ("SHUTDOWN_TIMEOUT", &mut c.shutdown_timeout),
            ("METRICS_FLUSH_INTERVAL", &mut c.metrics_flush_interval),
            ("SNAPSHOT_POLL_INTERVAL", &mut c.snapshot_poll_interval),
            ("USAGE_BLOCK", &mut c.consumer.block),
            ("USAGE_CLAIM_IDLE", &mut c.consumer.claim_idle),
            ("USAGE_CLAIM_INTERVAL", &mut c.consumer.claim_interval),
            ("USAGE_DEDUP_TTL", &mut c.consumer.dedup_ttl),
        ] {
            if let Some(v) = get(var) {
                *slot = humantime::parse_duration(v.trim()).map_err(|e| ConfigError {
                    var,
                    reason: format!("{e} (use e.g. `500ms`, `10s`, `7d`)"),
                })?;
            }
        }
        if let Some(v) = get("USAGE_CONSUMER_ENABLED") {
            c.consumer.enabled = match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(ConfigError {
                        var: "USAGE_CONSUMER_ENABLED",
                        reason: "expected true or false".into(),
                    })
                }
            };
        }
        if let Some(v) = get("USAGE_CONSUMER_NAME") {
            c.consumer.name = v.trim().to_string();
        }
        if let Some(v) = get("USAGE_BATCH_ENTRIES") {
            c.consumer.batch_entries = parse_num("USAGE_BATCH_ENTRIES", &v)?;
        }
        if let Some(v) = get("USAGE_APPLY_CHUNK") {
            c.consumer.apply_chunk = parse_num("USAGE_APPLY_CHUNK", &v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks ranges that would otherwise fail later and less clearly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |var, reason: &str| {
            Err(ConfigError {
                var,
                reason: reason.to_string(),
            })
        };
        if self.max_body_bytes == 0 {
            return err("MAX_BODY_BYTES", "must be positive");
        }
        if self.count_concurrency == 0 {
            return err("COUNT_CONCURRENCY", "must be at least 1");
        }
        if self.http_workers == 0 {
            return err("HTTP_WORKERS", "must be at least 1");
        }
        if self.consumer.batch_entries == 0 {
            return err("USAGE_BATCH_ENTRIES", "must be at least 1");
        }
        if self.consumer.apply_chunk == 0 {
            return err("USAGE_APPLY_CHUNK", "must be at least 1");
        }
        // A blocking read must return before the connection's response
        // timeout (3 s), or every idle read would look like a failure.
        if self.consumer.block.is_zero() || self.consumer.block > Duration::from_millis(2500) {
            return err("USAGE_BLOCK", "must be between 1ms and 2500ms");
        }
        if self.consumer.claim_idle.is_zero() {
            return err("USAGE_CLAIM_IDLE", "must be positive");
        }
        if self.consumer.dedup_ttl < Duration::from_secs(1) {
            return err("USAGE_DEDUP_TTL", "must be at least 1s");
        }
        if self.consumer.name.is_empty() || self.consumer.name.len() > 200 {
            return err("USAGE_CONSUMER_NAME", "must be 1 to 200 characters");
        }
        if self.metrics_flush_interval.is_zero() || self.snapshot_poll_interval.is_zero() {
            return err(
                "METRICS_FLUSH_INTERVAL/SNAPSHOT_POLL_INTERVAL",
                "must be positive",
            );
        }
        redis::Client::open(self.redis_url.as_str()).map_err(|_| ConfigError {
            var: "REDIS_URL",
            // The URL may hold a password: do not echo it.
            reason: "not a valid redis:// URL".into(),
        })?;
        Ok(())
    }
}

fn parse_num<T: std::str::FromStr>(var: &'static str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError {
        var,
        reason: format!("`{}` is not a valid number", v.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = from(&[]).unwrap();
        assert_eq!(c.port, 8001);
        assert_eq!(c.max_body_bytes, 8 * 1024 * 1024);
        let c = from(&[
            ("TOKEN_SERVICE_PORT", "9001"),
            ("USAGE_CLAIM_IDLE", "1500ms"),
            ("USAGE_CONSUMER_ENABLED", "false"),
            ("COUNT_CONCURRENCY", "3"),
        ])
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.consumer.claim_idle, Duration::from_millis(1500));
        assert!(!c.consumer.enabled);
        assert_eq!(c.count_concurrency, 3);
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
    }
}
