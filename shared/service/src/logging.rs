//! Logging setup for every service: `tracing` to stderr, filtered by
//! `RUST_LOG` (default `info`), as text (colours only on a terminal) or as
//! one JSON object per line with `LOG_FORMAT=json`.

use crate::env::{Env, EnvError};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The logging settings of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// `RUST_LOG`: an env-filter directive, e.g. `info` or `gateway=debug,info`.
    pub filter: String,
    /// `LOG_FORMAT`: `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

impl LogSettings {
    pub fn from_env(env: &Env) -> Result<LogSettings, EnvError> {
        let filter = env.string("RUST_LOG", "info");
        if let Err(e) = EnvFilter::try_new(&filter) {
            return Err(EnvError::new("RUST_LOG", format!("not a log filter: {e}")));
        }
        let format = match env
            .choice("LOG_FORMAT", "text", &["text", "json"])?
            .as_str()
        {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        Ok(LogSettings { filter, format })
    }
}

/// Installs the global subscriber. Later calls are no-ops (tests build
/// several applications in one process).
#[allow(clippy::disallowed_methods)] // the one logging setup
pub fn init_logging(s: &LogSettings) {
    let filter = EnvFilter::try_new(&s.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match s.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// For tests: logging only when `TEST_LOG` is set (then as the service
/// would log, from `RUST_LOG` and `LOG_FORMAT`).
pub fn init_logging_for_tests() {
    let env = Env::process();
    if env.optional("TEST_LOG").is_some() {
        init_logging(&LogSettings::from_env(&env).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_filters() {
        let s = LogSettings::from_env(&Env::from_pairs([("LOG_FORMAT", "JSON")])).unwrap();
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(s.filter, "info");
        assert_eq!(
            LogSettings::from_env(&Env::from_pairs([("RUST_LOG", "gateway=debug,info")]))
                .unwrap()
                .filter,
            "gateway=debug,info"
        );
        let e = LogSettings::from_env(&Env::from_pairs([("LOG_FORMAT", "xml")])).unwrap_err();
        assert_eq!(e.var, "LOG_FORMAT");
        let e = LogSettings::from_env(&Env::from_pairs([("RUST_LOG", "a=[[")])).unwrap_err();
        assert_eq!(e.var, "RUST_LOG");
    }
}
