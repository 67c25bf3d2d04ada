//! Process plumbing every service shares: logging setup, the shutdown
//! signal and the request-body deadline, so the three binaries behave alike.

mod body_deadline;

pub use body_deadline::BodyDeadline;

/// Default time allowed to receive a whole request body.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The request-body deadline from `BODY_TIMEOUT` (human form such as `30s`,
/// or plain seconds), [`DEFAULT_BODY_TIMEOUT`] when unset.
pub fn body_timeout_from_env() -> Result<std::time::Duration, String> {
    match std::env::var("BODY_TIMEOUT") {
        Err(_) => Ok(DEFAULT_BODY_TIMEOUT),
        Ok(v) => parse_duration(&v).map_err(|e| format!("BODY_TIMEOUT: {e}")),
    }
}

fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    let v = v.trim();
    let d = match v.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(v).map_err(|e| format!("`{v}`: {e}"))?,
    };
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber: filtered by `RUST_LOG`
/// (default `info`), one JSON object per line when `LOG_FORMAT=json`,
/// colours only on a terminal, to stderr. Later calls are no-ops (tests build
/// several applications in one process).
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// For tests: logging only when `TEST_LOG` is set (then as [`init_tracing`]).
pub fn init_tracing_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init_tracing();
    }
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install SIGTERM/SIGINT handlers; only Ctrl-C stops the service");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("1m").unwrap().as_secs(), 60);
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
