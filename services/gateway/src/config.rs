//! Typed settings of the gateway, read from the environment and validated
//! before anything binds.

use std::fmt;
use std::time::Duration;

/// A Redis URL; it may carry a password, so it never prints.
#[derive(Clone)]
pub struct RedisUrl(String);

impl RedisUrl {
    pub fn new(url: impl Into<String>) -> Self {
        RedisUrl(url.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl(<redacted>)")
    }
}

/// Everything the gateway can be told from outside. Durations accept
/// humantime (`500ms`, `1s`, `2m`) or plain seconds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `GATEWAY_PORT`, default 8080; 0 picks a free port (tests).
    pub port: u16,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`.
    pub redis_url: RedisUrl,
    /// `GATEWAY_WORKERS`: HTTP worker threads, default one per core.
    pub workers: Option<usize>,
    /// `METRICS_FLUSH_INTERVAL`, default 1s.
    pub metrics_flush_interval: Duration,
    /// `MAX_BODY_BYTES`, default 10 MiB.
    pub max_body_bytes: usize,
    /// `UPSTREAM_MAX_ATTEMPTS`: attempts per request including the first,
    /// default 3.
    pub upstream_max_attempts: u32,
    /// `UPSTREAM_CONNECT_TIMEOUT`, default 3s.
    pub upstream_connect_timeout: Duration,
    /// `UPSTREAM_TOTAL_TIMEOUT`: bound on a whole upstream exchange
    /// including a stream, default 10m.
    pub upstream_total_timeout: Duration,
    /// `UPSTREAM_IDLE_TIMEOUT`: longest silence between two chunks of an
    /// upstream stream, default 2m.
    pub upstream_idle_timeout: Duration,
    /// `UPSTREAM_MAX_RESPONSE_BYTES`: largest non-streamed upstream answer,
    /// default 32 MiB (502 `upstream_response_too_large` beyond).
    pub upstream_max_response_bytes: usize,
    /// `SSE_MAX_EVENT_BYTES`: largest event of an upstream stream, default
    /// 4 MiB (the stream ends with an error event beyond).
    pub sse_max_event_bytes: usize,
    /// `CLIENT_WRITE_TIMEOUT`: how long a stream's output may wait for a
    /// client that does not read before the stream ends, default 60s.
    pub client_write_timeout: Duration,
    /// `PASSIVE_FAILURE_THRESHOLD`: consecutive failed requests that make an
    /// instance unhealthy, default 3.
    pub passive_failure_threshold: u32,
    /// `PASSIVE_COOLDOWN`: how long an unhealthy instance rests before one
    /// trial request, default 10s.
    pub passive_cooldown: Duration,
    /// `HEALTH_CHECK_FAILURES`: consecutive failed active probes that make an
    /// instance unhealthy, default 2.
    pub health_check_failures: u32,
    /// `CONFIG_POLL_INTERVAL`: slow poll of `config:version` for a missed
    /// notification, default 5s.
    pub config_poll_interval: Duration,
    /// `BUDGET_POLL_INTERVAL`: how often month-to-date cost is read for
    /// namespaces with a budget, default 10s.
    pub budget_poll_interval: Duration,
    /// `RATE_LIMIT_TIMEOUT`: bound on the RPM/TPM round trip; past it the
    /// request is let through (fail open), default 250ms.
    pub rate_limit_timeout: Duration,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may take to finish after
    /// SIGTERM, default 30s.
    pub shutdown_grace: Duration,
    /// Plain-HTTP instances use the direct hyper client (see
    /// [`crate::upstream`]). Not a variable of its own: false when
    /// `HTTP_PROXY`/`ALL_PROXY` (or lower case) is set, so that reqwest applies
    /// the proxy as before.
    pub upstream_direct: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
}

fn invalid(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.into(),
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind_addr: "0.0.0.0".into(),
            port: 8080,
            redis_url: RedisUrl::new("redis://127.0.0.1:6379"),
            workers: None,
            metrics_flush_interval: Duration::from_secs(1),
            max_body_bytes: 10 * 1024 * 1024,
            upstream_max_attempts: 3,
            upstream_connect_timeout: Duration::from_secs(3),
            upstream_total_timeout: Duration::from_secs(600),
            upstream_idle_timeout: Duration::from_secs(120),
            upstream_max_response_bytes: 32 * 1024 * 1024,
            sse_max_event_bytes: 4 * 1024 * 1024,
            client_write_timeout: Duration::from_secs(60),
            passive_failure_threshold: 3,
            passive_cooldown: Duration::from_secs(10),
            health_check_failures: 2,
            config_poll_interval: Duration::from_secs(5),
            budget_poll_interval: Duration::from_secs(10),
            rate_limit_timeout: Duration::from_millis(250),
            shutdown_grace: Duration::from_secs(30),
            upstream_direct: true,
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let s = Settings {
            bind_addr: get("BIND_ADDR").unwrap_or(d.bind_addr),
            port: parse_num(&get, "GATEWAY_PORT", d.port)?,
            redis_url: get("REDIS_URL").map(RedisUrl::new).unwrap_or(d.redis_url),
            workers: match get("GATEWAY_WORKERS") {
                Some(v) => Some(
                    v.trim()
                        .parse()
                        .map_err(|_| invalid("GATEWAY_WORKERS", "not a number"))?,
                ),
                None => None,
            },
            metrics_flush_interval: parse_dur(
                &get,
                "METRICS_FLUSH_INTERVAL",
                d.metrics_flush_interval,
            )?,
            max_body_bytes: parse_num(&get, "MAX_BODY_BYTES", d.max_body_bytes)?,
            upstream_max_attempts: parse_num(
                &get,
                "UPSTREAM_MAX_ATTEMPTS",
                d.upstream_max_attempts,
            )?,
            upstream_connect_timeout: parse_dur(
                &get,
                "UPSTREAM_CONNECT_TIMEOUT",
                d.upstream_connect_timeout,
            )?,
            upstream_total_timeout: parse_dur(
                &get,
                "UPSTREAM_TOTAL_TIMEOUT",
                d.upstream_total_timeout,
            )?,
            upstream_idle_timeout: parse_dur(
                &get,
                "UPSTREAM_IDLE_TIMEOUT",
                d.upstream_idle_timeout,
            )?,
            upstream_max_response_bytes: parse_num(
                &get,
                "UPSTREAM_MAX_RESPONSE_BYTES",
                d.upstream_max_response_bytes,
            )?,
            sse_max_event_bytes: parse_num(&get, "SSE_MAX_EVENT_BYTES", d.sse_max_event_bytes)?,
            client_write_timeout: parse_dur(&get, "CLIENT_WRITE_TIMEOUT", d.client_write_timeout)?,
            passive_failure_threshold: parse_num(
                &get,
                "PASSIVE_FAILURE_THRESHOLD",
                d.passive_failure_threshold,
            )?,
            passive_cooldown: parse_dur(&get, "PASSIVE_COOLDOWN", d.passive_cooldown)?,
            health_check_failures: parse_num(
                &get,
                "HEALTH_CHECK_FAILURES",
                d.health_check_failures,
            )?,
            config_poll_interval: parse_dur(&get, "CONFIG_POLL_INTERVAL", d.config_poll_interval)?,
            budget_poll_interval: parse_dur(&get, "BUDGET_POLL_INTERVAL", d.budget_poll_interval)?,
            rate_limit_timeout: parse_dur(&get, "RATE_LIMIT_TIMEOUT", d.rate_limit_timeout)?,
            shutdown_grace: parse_dur(&get, "SHUTDOWN_GRACE", d.shutdown_grace)?,
            upstream_direct: !http_proxy_configured(&get),
        };
        s.validate()?;
        Ok(s)
    }

    /// Rejects values that would make the gateway misbehave rather than fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("METRICS_FLUSH_INTERVAL", self.metrics_flush_interval),
            ("UPSTREAM_CONNECT_TIMEOUT", self.upstream_connect_timeout),
            ("UPSTREAM_TOTAL_TIMEOUT", self.upstream_total_timeout),
            ("UPSTREAM_IDLE_TIMEOUT", self.upstream_idle_timeout),
            ("CLIENT_WRITE_TIMEOUT", self.client_write_timeout),
            ("CONFIG_POLL_INTERVAL", self.config_poll_interval),
            ("BUDGET_POLL_INTERVAL", self.budget_poll_interval),
            ("RATE_LIMIT_TIMEOUT", self.rate_limit_timeout),
        ];
        for (name, d) in positive {
            if d.is_zero() {
                return Err(invalid(name, "must be greater than zero"));
            }
        }
        if self.upstream_max_attempts == 0 {
            return Err(invalid("UPSTREAM_MAX_ATTEMPTS", "must be at least 1"));
        }
        if self.upstream_max_response_bytes == 0 {
            return Err(invalid(
                "UPSTREAM_MAX_RESPONSE_BYTES",
                "must be greater than zero",
            ));
        }
        if self.sse_max_event_bytes == 0 {
            return Err(invalid("SSE_MAX_EVENT_BYTES", "must be greater than zero"));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("MAX_BODY_BYTES", "must be greater than zero"));
        }
        if self.passive_failure_threshold == 0 {
            return Err(invalid("PASSIVE_FAILURE_THRESHOLD", "must be at least 1"));
        }
        if self.health_check_failures == 0 {
            return Err(invalid("HEALTH_CHECK_FAILURES", "must be at least 1"));
        }
        if self.workers == Some(0) {
            return Err(invalid("GATEWAY_WORKERS", "must be at least 1"));
        }
        if !self.redis_url.expose().starts_with("redis://")
            && !self.redis_url.expose().starts_with("rediss://")
            && !self.redis_url.expose().starts_with("unix://")
        {
            return Err(invalid(
                "REDIS_URL",
                "must start with redis://, rediss:// or unix://",
            ));
        }
        Ok(())
    }
}

fn parse_num<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| invalid(name, format!("`{v}` is not a valid number"))),
    }
}

fn parse_dur(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => parse_duration(&v).ok_or_else(|| {
            invalid(
                name,
                format!("`{v}` is not a duration (e.g. `500ms`, `2s`, or seconds)"),
            )
        }),
    }
}

/// `humantime` form, or a plain number of seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).ok()
}

/// Whether reqwest would send plain-HTTP requests through a proxy (it reads
/// these variables; `HTTPS_PROXY` only concerns HTTPS instances, which take
/// the general path anyway).
pub fn http_proxy_configured(get: impl Fn(&str) -> Option<String>) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|k| get(k).is_some_and(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_proxy_variables_switch_the_direct_path_off() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!http_proxy_configured(env(&[])));
        assert!(!http_proxy_configured(env(&[(
            "HTTPS_PROXY",
            "http://p:3128"
        )])));
        assert!(!http_proxy_configured(env(&[("HTTP_PROXY", "")])));
        assert!(http_proxy_configured(env(&[(
            "HTTP_PROXY",
            "http://p:3128"
        )])));
        assert!(http_proxy_configured(env(&[(
            "http_proxy",
            "http://p:3128"
        )])));
        assert!(http_proxy_configured(env(&[(
            "ALL_PROXY",
            "socks5://p:1080"
        )])));
    }
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = from(&[]).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.bind_addr, "0.0.0.0");
        assert_eq!(s.redis_url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(s.metrics_flush_interval, Duration::from_secs(1));
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(s.upstream_max_attempts, 3);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn durations_and_numbers_parse() {
        let s = from(&[
            ("GATEWAY_PORT", "9000"),
            ("METRICS_FLUSH_INTERVAL", "250ms"),
            ("SHUTDOWN_GRACE", "5"),
            ("UPSTREAM_MAX_ATTEMPTS", "5"),
        ])
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.metrics_flush_interval, Duration::from_millis(250));
        assert_eq!(s.shutdown_grace, Duration::from_secs(5));
        assert_eq!(s.upstream_max_attempts, 5);
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_name() {
        let e = from(&[("GATEWAY_PORT", "eighty")]).unwrap_err().to_string();
        assert!(e.contains("GATEWAY_PORT"), "{e}");
        let e = from(&[("UPSTREAM_MAX_ATTEMPTS", "0")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("UPSTREAM_MAX_ATTEMPTS"), "{e}");
        let e = from(&[("METRICS_FLUSH_INTERVAL", "0s")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("METRICS_FLUSH_INTERVAL"), "{e}");
    }

    #[test]
    fn an_http_proxy_switches_the_direct_upstream_client_off() {
        assert!(from(&[]).unwrap().upstream_direct);
        assert!(
            !from(&[("HTTP_PROXY", "http://proxy:3128")])
                .unwrap()
                .upstream_direct
        );
        assert!(
            !from(&[("all_proxy", "socks5://proxy:1080")])
                .unwrap()
                .upstream_direct
        );
        // HTTPS_PROXY concerns HTTPS instances, which use reqwest anyway.
        assert!(
            from(&[("HTTPS_PROXY", "http://proxy:3128")])
                .unwrap()
                .upstream_direct
        );
    }

    #[test]
    fn redis_url_does_not_print() {
        let s = from(&[("REDIS_URL", "redis://:hunter2@redis:6379")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
