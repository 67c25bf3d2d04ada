//! Typed settings of the gateway, read from the environment through the
//! shared reader and validated before anything binds. Every variable read
//! here is listed in the settings table of `docs/gateway.md`; a test
//! compares the two ([`Settings::settings`]).

use aigw_service::{Env, EnvError, JournalSettings, LogSettings, Secret, Setting};
use std::time::Duration;

/// Everything the gateway can be told from outside. Durations take the
/// shared grammar (`500ms`, `1s`, `2m`, or plain seconds).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `RUST_LOG`, `LOG_FORMAT`.
    pub log: LogSettings,
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `GATEWAY_PORT`, default 8080; 0 picks a free port (tests).
    pub port: u16,
    /// `REDIS_URL`, default `redis://127.0.0.1:6379`; printed redacted.
    pub redis_url: Secret,
    /// `METRICS_TOKEN`: bearer token `/metrics` requires, default none (open).
    pub metrics_token: Option<Secret>,
    /// `GATEWAY_WORKERS`: HTTP worker threads, default one per CPU.
    pub workers: usize,
    /// `METRICS_FLUSH_INTERVAL`, default 1s.
    pub metrics_flush_interval: Duration,
    /// `METRICS_FLUSH_RECORDS`: a flush starts before its interval once
    /// this many usage records wait, default 4096.
    pub metrics_flush_records: usize,
    /// `JOURNAL_DIR`, `JOURNAL_MAX_BYTES`: the local journal of unflushed
    /// metric deltas and usage records. Off in [`Settings::default`] (tests
    /// that want it set it); on, in `journal`, for the binary.
    pub journal: JournalSettings,
    /// `METRICS_EXPORTER_TTL`: lease of the one replica that shows the fleet
    /// series on `/metrics`, default 15s.
    pub metrics_exporter_ttl: Duration,
    /// `MAX_BODY_BYTES`, default 10 MiB.
    pub max_body_bytes: usize,
    /// `BODY_TIMEOUT`: bound on receiving a whole request body, default 30s.
    pub body_timeout: Duration,
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
    /// `RATE_LIMIT_TIMEOUT`: bound on a limit's Redis call (a concurrency
    /// block, an RPM/TPM slice); past it the
    /// request is let through (fail open), default 250ms.
    pub rate_limit_timeout: Duration,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may take to finish after
    /// SIGTERM, default 30s.
    pub shutdown_grace: Duration,
    /// `CONCURRENCY_LEASE_TTL`: lifetime of a fleet-wide concurrency lease
    /// between renewals (every third of it); the longest a dead replica's
    /// requests keep their namespace's slots, default 10s.
    pub concurrency_lease_ttl: Duration,
    /// Plain-HTTP instances use the gateway's own HTTP/1.1 client (see
    /// [`crate::upstream`]). Not a variable of its own: false when
    /// `HTTP_PROXY`/`ALL_PROXY` (or lower case) is set, so that reqwest
    /// applies the proxy.
    pub upstream_direct: bool,
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The defaults: the settings of an empty environment, without the journal
/// (in-process tests share a working directory).
impl Default for Settings {
    fn default() -> Self {
        let mut s = Settings::from_env(&Env::from_pairs::<String, String>([]))
            .expect("the defaults are valid settings");
        s.journal.dir = None;
        s
    }
}

impl Settings {
    /// Reads and validates the settings.
    pub fn from_env(env: &Env) -> Result<Settings, EnvError> {
        let secs = Duration::from_secs;
        let s = Settings {
            log: LogSettings::from_env(env)?,
            bind_addr: env.string("BIND_ADDR", "0.0.0.0"),
            port: env.number("GATEWAY_PORT", 8080)?,
            redis_url: aigw_service::redis_url(env)?,
            metrics_token: aigw_service::scrape::metrics_token(env),
            workers: env.number_or_else("GATEWAY_WORKERS", "one per CPU", cpus, 1)?,
            metrics_flush_interval: env.positive_duration("METRICS_FLUSH_INTERVAL", secs(1))?,
            metrics_flush_records: env.number_at_least("METRICS_FLUSH_RECORDS", 4096, 1)?,
            journal: aigw_service::journal_settings(env)?,
            metrics_exporter_ttl: aigw_service::metrics_exporter_ttl(env)?,
            max_body_bytes: env.number_at_least("MAX_BODY_BYTES", 10 * 1024 * 1024, 1)?,
            body_timeout: aigw_service::body_timeout(env)?,
            upstream_max_attempts: env.number_at_least("UPSTREAM_MAX_ATTEMPTS", 3, 1)?,
            upstream_connect_timeout: env.positive_duration("UPSTREAM_CONNECT_TIMEOUT", secs(3))?,
            upstream_total_timeout: env.positive_duration("UPSTREAM_TOTAL_TIMEOUT", secs(600))?,
            upstream_idle_timeout: env.positive_duration("UPSTREAM_IDLE_TIMEOUT", secs(120))?,
            upstream_max_response_bytes: env.number_at_least(
                "UPSTREAM_MAX_RESPONSE_BYTES",
                32 * 1024 * 1024,
                1,
            )?,
            sse_max_event_bytes: env.number_at_least("SSE_MAX_EVENT_BYTES", 4 * 1024 * 1024, 1)?,
            client_write_timeout: env.positive_duration("CLIENT_WRITE_TIMEOUT", secs(60))?,
            passive_failure_threshold: env.number_at_least("PASSIVE_FAILURE_THRESHOLD", 3, 1)?,
            passive_cooldown: env.duration("PASSIVE_COOLDOWN", secs(10))?,
            health_check_failures: env.number_at_least("HEALTH_CHECK_FAILURES", 2, 1)?,
            config_poll_interval: env.positive_duration("CONFIG_POLL_INTERVAL", secs(5))?,
            budget_poll_interval: env.positive_duration("BUDGET_POLL_INTERVAL", secs(10))?,
            rate_limit_timeout: env
                .positive_duration("RATE_LIMIT_TIMEOUT", Duration::from_millis(250))?,
            shutdown_grace: env.duration("SHUTDOWN_GRACE", secs(30))?,
            concurrency_lease_ttl: env.positive_duration("CONCURRENCY_LEASE_TTL", secs(10))?,
            upstream_direct: !http_proxy_configured(env),
        };
        s.validate()?;
        Ok(s)
    }

    /// Every variable [`Settings::from_env`] reads, with its default.
    pub fn settings() -> Vec<Setting> {
        let env = Env::from_pairs::<String, String>([]);
        let _ = Settings::from_env(&env);
        env.settings()
    }

    /// Checks what the types alone cannot (also for settings built in code,
    /// as the tests do).
    pub fn validate(&self) -> Result<(), EnvError> {
        let err = |var, message: &str| Err(EnvError::new(var, message));
        for (var, d) in [
            ("METRICS_FLUSH_INTERVAL", self.metrics_flush_interval),
            ("BODY_TIMEOUT", self.body_timeout),
            ("UPSTREAM_CONNECT_TIMEOUT", self.upstream_connect_timeout),
            ("UPSTREAM_TOTAL_TIMEOUT", self.upstream_total_timeout),
            ("UPSTREAM_IDLE_TIMEOUT", self.upstream_idle_timeout),
            ("CLIENT_WRITE_TIMEOUT", self.client_write_timeout),
            ("CONFIG_POLL_INTERVAL", self.config_poll_interval),
            ("BUDGET_POLL_INTERVAL", self.budget_poll_interval),
            ("RATE_LIMIT_TIMEOUT", self.rate_limit_timeout),
        ] {
            if d.is_zero() {
                return err(var, "must be greater than zero");
            }
        }
        for (var, n) in [
            ("GATEWAY_WORKERS", self.workers),
            ("METRICS_FLUSH_RECORDS", self.metrics_flush_records),
            ("MAX_BODY_BYTES", self.max_body_bytes),
            (
                "UPSTREAM_MAX_RESPONSE_BYTES",
                self.upstream_max_response_bytes,
            ),
            ("SSE_MAX_EVENT_BYTES", self.sse_max_event_bytes),
            ("UPSTREAM_MAX_ATTEMPTS", self.upstream_max_attempts as usize),
            (
                "PASSIVE_FAILURE_THRESHOLD",
                self.passive_failure_threshold as usize,
            ),
            ("HEALTH_CHECK_FAILURES", self.health_check_failures as usize),
        ] {
            if n == 0 {
                return err(var, "must be at least 1");
            }
        }
        if self.concurrency_lease_ttl < Duration::from_millis(300) {
            // Renewed every third of it: shorter would renew in a loop.
            return err("CONCURRENCY_LEASE_TTL", "must be at least 300ms");
        }
        if let Err(message) = aigw_metrics::conn::check_url(self.redis_url.expose()) {
            // The message never echoes the URL (it may hold a password).
            return err("REDIS_URL", &message);
        }
        Ok(())
    }
}

/// Whether reqwest would send plain-HTTP requests through a proxy (it reads
/// these variables; `HTTPS_PROXY` only concerns HTTPS instances, which take
/// the general path anyway).
pub fn http_proxy_configured(env: &Env) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .any(|k| env.optional(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Settings, EnvError> {
        Settings::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = from(&[]).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.bind_addr, "0.0.0.0");
        assert_eq!(s.redis_url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(s.metrics_flush_interval, Duration::from_secs(1));
        assert_eq!(s.metrics_flush_records, 4096);
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(s.body_timeout, Duration::from_secs(30));
        assert_eq!(s.upstream_max_attempts, 3);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
        assert!(s.metrics_token.is_none());
        assert!(s.workers >= 1);
    }

    #[test]
    fn durations_and_numbers_parse() {
        let s = from(&[
            ("GATEWAY_PORT", "9000"),
            ("METRICS_FLUSH_INTERVAL", "250ms"),
            ("METRICS_FLUSH_RECORDS", "500"),
            ("SHUTDOWN_GRACE", "5"),
            ("UPSTREAM_MAX_ATTEMPTS", "5"),
            ("GATEWAY_WORKERS", "3"),
            ("BODY_TIMEOUT", "1m"),
            ("LOG_FORMAT", "json"),
        ])
        .unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.metrics_flush_interval, Duration::from_millis(250));
        assert_eq!(s.metrics_flush_records, 500);
        assert_eq!(s.shutdown_grace, Duration::from_secs(5));
        assert_eq!(s.upstream_max_attempts, 5);
        assert_eq!(s.workers, 3);
        assert_eq!(s.body_timeout, Duration::from_secs(60));
        assert_eq!(s.log.format, aigw_service::LogFormat::Json);
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_name() {
        for (var, value) in [
            ("GATEWAY_PORT", "eighty"),
            ("UPSTREAM_MAX_ATTEMPTS", "0"),
            ("METRICS_FLUSH_INTERVAL", "0s"),
            ("METRICS_FLUSH_RECORDS", "0"),
            ("GATEWAY_WORKERS", "0"),
            ("BODY_TIMEOUT", "soon"),
            ("LOG_FORMAT", "xml"),
            ("REDIS_URL", "http://cache:6379"),
        ] {
            let e = from(&[(var, value)]).unwrap_err().to_string();
            assert!(e.contains(var), "{var}={value}: {e}");
        }
    }

    #[test]
    fn an_http_proxy_switches_the_direct_upstream_client_off() {
        assert!(from(&[]).unwrap().upstream_direct);
        assert!(from(&[("HTTP_PROXY", "")]).unwrap().upstream_direct);
        for (var, value) in [
            ("HTTP_PROXY", "http://proxy:3128"),
            ("http_proxy", "http://proxy:3128"),
            ("ALL_PROXY", "socks5://proxy:1080"),
            ("all_proxy", "socks5://proxy:1080"),
        ] {
            assert!(!from(&[(var, value)]).unwrap().upstream_direct, "{var}");
        }
        // HTTPS_PROXY concerns HTTPS instances, which use reqwest anyway.
        assert!(
            from(&[("HTTPS_PROXY", "http://proxy:3128")])
                .unwrap()
                .upstream_direct
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = from(&[
            ("REDIS_URL", "redis://:hunter2@redis:6379"),
            ("METRICS_TOKEN", "scrape-secret"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("scrape-secret"), "{shown}");
        assert!(shown.contains("redis:6379"), "{shown}");
    }

    #[test]
    fn the_settings_table_is_what_the_code_reads() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/gateway.md");
        let doc = std::fs::read_to_string(path).expect("docs/gateway.md");
        let documented = aigw_testkit::docs::settings_table(&doc, "## Configuration (environment)");
        let read: Vec<(String, String)> = Settings::settings()
            .into_iter()
            .map(|s| (s.var.to_string(), s.default))
            .collect();
        aigw_testkit::docs::assert_same_settings("docs/gateway.md", &documented, &read);
    }
}
