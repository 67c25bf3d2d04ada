//! What every service is built on, so the binaries behave alike:
//!
//! - [`env`]: settings from the environment — one reader, one duration
//!   grammar, one error format naming the variable, and the list of every
//!   variable read (checked against each service's documented table);
//! - [`secret`]: [`Secret`], tokens and URLs that print redacted;
//! - [`logging`]: `RUST_LOG` / `LOG_FORMAT` (text or JSON) setup;
//! - [`clock`]: wall-clock and monotonic time, read in one place;
//! - [`shutdown`]: the SIGTERM/SIGINT future;
//! - [`BodyDeadline`]: the request-body deadline middleware, with its
//!   setting ([`body_timeout`]);
//! - [`scrape`]: [`ScrapeGate`], the `/metrics` gate (`METRICS_TOKEN`)
//!   and its one-second render cache.

mod body_deadline;
pub mod clock;
pub mod env;
pub mod logging;
pub mod scrape;
pub mod secret;
pub mod shutdown;

pub use body_deadline::BodyDeadline;
pub use env::{Env, EnvError, Setting};
pub use logging::{init_logging, init_logging_for_tests, LogFormat, LogSettings};
pub use scrape::ScrapeGate;
pub use secret::Secret;
pub use shutdown::shutdown_signal;

use std::time::Duration;

/// Default time allowed to receive a whole request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// `BODY_TIMEOUT`: how long a service waits for a whole request body
/// (a slower client gets a JSON 408), default [`DEFAULT_BODY_TIMEOUT`].
pub fn body_timeout(env: &Env) -> Result<Duration, EnvError> {
    env.positive_duration("BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT)
}

/// `METRICS_EXPORTER_TTL`: lifetime of the lease that names the one
/// replica of a service showing the fleet series on `/metrics` (renewed
/// every third of it), default 15s, at least 300ms.
pub fn metrics_exporter_ttl(env: &Env) -> Result<Duration, EnvError> {
    let ttl = env.duration("METRICS_EXPORTER_TTL", Duration::from_secs(15))?;
    if ttl < Duration::from_millis(300) {
        return Err(EnvError::new(
            "METRICS_EXPORTER_TTL",
            "must be at least 300ms",
        ));
    }
    Ok(ttl)
}

/// Where a service journals the metric deltas and usage records it has not
/// flushed to Redis yet, so a crash of the process loses none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalSettings {
    /// `JOURNAL_DIR`, default `journal` (relative to the working directory);
    /// `off` turns the journal off.
    pub dir: Option<std::path::PathBuf>,
    /// `JOURNAL_MAX_BYTES`: bound of one journal segment, default 256 MiB.
    pub max_bytes: u64,
}

/// Default directory of the metrics journal (relative to the working
/// directory: `/app/journal` in the image).
pub const DEFAULT_JOURNAL_DIR: &str = "journal";

/// `JOURNAL_DIR` and `JOURNAL_MAX_BYTES` ([`JournalSettings`]).
pub fn journal_settings(env: &Env) -> Result<JournalSettings, EnvError> {
    let dir = env.string("JOURNAL_DIR", DEFAULT_JOURNAL_DIR);
    let dir = match dir.to_ascii_lowercase().as_str() {
        "off" | "false" | "no" | "0" => None,
        _ => Some(std::path::PathBuf::from(dir)),
    };
    Ok(JournalSettings {
        dir,
        max_bytes: env.number_at_least("JOURNAL_MAX_BYTES", 256 * 1024 * 1024, 64 * 1024)?,
    })
}

/// `REDIS_URL`, default `redis://127.0.0.1:6379`, shown redacted: one
/// server, a Redis Cluster (`redis+cluster://h1:p1,h2:p2`) or a master
/// through Sentinel (`redis+sentinel://s1:p1,s2:p2/master-name`).
pub fn redis_url(env: &Env) -> Result<Secret, EnvError> {
    env.url(
        "REDIS_URL",
        "redis://127.0.0.1:6379",
        &[
            "redis",
            "rediss",
            "unix",
            "redis+unix",
            "redis+cluster",
            "redis+sentinel",
        ],
    )
}

/// A name for one running instance of a service, unique among live
/// replicas: `{hostname}-{pid}`, with `.{n}` appended for the second and
/// later instance built in the same process (tests run several).
pub fn replica_name(fallback: &str) -> String {
    static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = host_pid_name(fallback);
    if n == 0 {
        base
    } else {
        format!("{base}.{n}")
    }
}

/// `{hostname}-{pid}`: a name unique per live process, for a stream
/// consumer (`fallback` stands in for an unreadable hostname).
pub fn host_pid_name(fallback: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| fallback.to_string());
    format!("{host}-{}", std::process::id())
}
