//! Process plumbing every service shares: logging setup and the shutdown
//! signal, so the three binaries behave alike.

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
