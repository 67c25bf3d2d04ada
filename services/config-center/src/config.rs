//! Typed configuration from the environment, validated before anything binds.

use std::time::Duration;

/// Where the SQLite database goes when `DATABASE_URL` is unset, relative to
/// the working directory.
pub const DEFAULT_SQLITE_PATH: &str = "data/config-center.db";

/// The admin bearer token. Never printed by `Debug`.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: impl Into<String>) -> Self {
        AdminToken(token.into())
    }

    /// A fresh random token (dev mode): 256 bits, base62.
    pub fn generate() -> Self {
        AdminToken(format!("cc-dev-{}", crate::domain::random_base62(43)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `CONFIG_CENTER_PORT`, default 8000; 0 picks a free port (tests).
    pub port: u16,
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`; unset → SQLite file
    /// [`DEFAULT_SQLITE_PATH`].
    pub database_url: String,
    /// `ADMIN_TOKEN`; generated in dev mode when unset.
    pub admin_token: AdminToken,
    /// True when the admin token was generated (dev mode).
    pub admin_token_generated: bool,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// `MAX_BODY_BYTES`, default 1 MiB; larger JSON bodies get 413.
    pub max_body_bytes: usize,
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
    /// `SHUTDOWN_TIMEOUT`, default 10s: bound for draining requests and
    /// flushing metrics on shutdown.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {message}")]
    Invalid { var: &'static str, message: String },
    #[error(
        "ADMIN_TOKEN is required (or set CONFIG_CENTER_DEV_MODE=1 to generate one for local use)"
    )]
    MissingAdminToken,
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        message: message.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let parse_num = |k: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(k) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| invalid(k, format!("not a non-negative integer: {v:?}"))),
            }
        };
        let parse_dur = |k: &'static str, default: Duration| -> Result<Duration, ConfigError> {
            match var(k) {
                None => Ok(default),
                Some(v) => humantime::parse_duration(&v)
                    .map_err(|e| invalid(k, format!("not a duration like 1s or 500ms: {e}"))),
            }
        };

        let dev_mode = matches!(
            var("CONFIG_CENTER_DEV_MODE").as_deref(),
            Some("1" | "true" | "yes")
        );
        let (admin_token, admin_token_generated) = match get("ADMIN_TOKEN") {
            Some(t) if !t.is_empty() => (AdminToken::new(t), false),
            _ if dev_mode => (AdminToken::generate(), true),
            _ => return Err(ConfigError::MissingAdminToken),
        };

        let port = parse_num("CONFIG_CENTER_PORT", 8000)?;
        let config = Config {
            bind_addr: var("BIND_ADDR").unwrap_or_else(|| "0.0.0.0".to_string()),
            port: u16::try_from(port).map_err(|_| invalid("CONFIG_CENTER_PORT", "above 65535"))?,
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| format!("sqlite://{DEFAULT_SQLITE_PATH}")),
            admin_token,
            admin_token_generated,
            redis_url: var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".to_string()),
            max_body_bytes: parse_num("MAX_BODY_BYTES", 1024 * 1024)? as usize,
            workers: parse_num("CONFIG_CENTER_WORKERS", 2)? as usize,
            db_max_connections: parse_num("CONFIG_CENTER_DB_MAX_CONNECTIONS", 5)? as u32,
            publish_retry: parse_dur("CONFIG_CENTER_PUBLISH_RETRY", Duration::from_secs(1))?,
            publish_resync: parse_dur("CONFIG_CENTER_PUBLISH_RESYNC", Duration::from_secs(30))?,
            publish_wait: parse_dur("CONFIG_CENTER_PUBLISH_WAIT", Duration::from_secs(2))?,
            metrics_flush_interval: parse_dur("METRICS_FLUSH_INTERVAL", Duration::from_secs(1))?,
            shutdown_timeout: parse_dur("SHUTDOWN_TIMEOUT", Duration::from_secs(10))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = self.admin_token.expose();
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "ADMIN_TOKEN",
                "must not contain whitespace or control characters",
            ));
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        if redis::Client::open(self.redis_url.as_str()).is_err() {
            return Err(invalid("REDIS_URL", "not a redis:// URL"));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("MAX_BODY_BYTES", "must be at least 1"));
        }
        if self.workers == 0 {
            return Err(invalid("CONFIG_CENTER_WORKERS", "must be at least 1"));
        }
        if self.db_max_connections == 0 {
            return Err(invalid(
                "CONFIG_CENTER_DB_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        for (var, d) in [
            ("CONFIG_CENTER_PUBLISH_RETRY", self.publish_retry),
            ("CONFIG_CENTER_PUBLISH_RESYNC", self.publish_resync),
            ("METRICS_FLUSH_INTERVAL", self.metrics_flush_interval),
        ] {
            if d.is_zero() {
                return Err(invalid(var, "must be greater than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn admin_token_is_required_outside_dev_mode() {
        assert!(matches!(cfg(&[]), Err(ConfigError::MissingAdminToken)));
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
        assert_eq!(c.database_url, "sqlite://data/config-center.db");
        assert_eq!(c.max_body_bytes, 1 << 20);
        let c = cfg(&[
            ("ADMIN_TOKEN", "t"),
            ("CONFIG_CENTER_PORT", "9001"),
            ("CONFIG_CENTER_PUBLISH_RETRY", "250ms"),
        ])
        .unwrap();
        assert_eq!(c.port, 9001);
        assert_eq!(c.publish_retry, Duration::from_millis(250));
        assert!(cfg(&[("ADMIN_TOKEN", "t"), ("CONFIG_CENTER_PORT", "x")]).is_err());
        assert!(cfg(&[("ADMIN_TOKEN", "t"), ("DATABASE_URL", "mysql://x")]).is_err());
    }
}
