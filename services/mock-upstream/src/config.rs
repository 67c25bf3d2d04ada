//! Typed configuration of the mock: environment variables, overridable by
//! `--flag value` command-line arguments.

use std::time::Duration;

/// Upper bounds that keep a typo (or a hostile body) from parking a worker
/// for hours or streaming gigabytes.
pub const MAX_DELAY_MS: u64 = 120_000;
pub const MAX_CHUNKS: u32 = 100_000;
pub const MAX_EMBEDDING_DIM: usize = 8_192;
/// Cache and reasoning token counts are reported, never generated, so they
/// may be large; this bound only keeps the sums far from overflow.
pub const MAX_EXTRA_TOKENS: u64 = 1_000_000_000;
pub const MAX_RECORDED: usize = 10_000;

/// The key every API request must carry when set (`MOCK_API_KEY`). It never
/// prints: `Debug` shows only whether one is set.
#[derive(Clone, PartialEq)]
pub struct ExpectedKey(String);

impl ExpectedKey {
    pub fn new(key: impl Into<String>) -> ExpectedKey {
        ExpectedKey(key.into())
    }

    pub fn matches(&self, given: &str) -> bool {
        self.0 == given
    }
}

impl std::fmt::Debug for ExpectedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExpectedKey(..)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `BIND_ADDR`, default `0.0.0.0`.
    pub bind_addr: String,
    /// `MOCK_PORT`, default 9000; 0 picks a free port (tests).
    pub port: u16,
    /// `MOCK_LATENCY_MS`: delay before the response starts (the time to
    /// first byte), default 0.
    pub latency: Duration,
    /// `MOCK_ERROR_RATE`: share of requests answered with `error_status`,
    /// 0.0..=1.0, default 0.
    pub error_rate: f64,
    /// `MOCK_ERROR_STATUS`, default 500.
    pub error_status: u16,
    /// `MOCK_CHUNKS`: content chunks of a streamed answer, which is also the
    /// number of completion tokens reported; default 5.
    pub chunks: u32,
    /// `MOCK_CHUNK_DELAY_MS`: delay between two content chunks, default 0.
    pub chunk_delay: Duration,
    /// `MOCK_NO_USAGE`: never report usage (the token-service must count).
    pub no_usage: bool,
    /// `MOCK_MODELS`: comma-separated ids listed by `GET /v1/models`.
    pub models: Vec<String>,
    /// `MOCK_EMBEDDING_DIM`: vector length when the request names none, default 16.
    pub embedding_dim: usize,
    /// `MOCK_WORKERS`: actix workers, default one per core.
    pub workers: Option<usize>,
    /// `MOCK_API_KEY`: when set, every API request must carry this key the
    /// way its provider sends it, or gets that provider's auth error.
    pub api_key: Option<ExpectedKey>,
    /// `MOCK_RECORD_REQUESTS`: how many recent requests `GET /mock/requests`
    /// keeps (method, path, query, headers, body), default 64, at least 1.
    pub record_requests: usize,
    /// `MOCK_CACHED_TOKENS`: prompt tokens reported as read from the
    /// provider's prompt cache, on top of the prompt's words (unset: none,
    /// and OpenAI-shaped usage carries no token details).
    pub cached_tokens: Option<u64>,
    /// `MOCK_CACHE_WRITE_TOKENS`: prompt tokens reported as written to the cache.
    pub cache_write_tokens: Option<u64>,
    /// `MOCK_REASONING_TOKENS`: reasoning (thinking) tokens added to each answer.
    pub reasoning_tokens: Option<u64>,
    /// `MOCK_RESPONSE_HEADERS`: headers added to every answer, a JSON object
    /// of name → value (e.g. a name that tells instances apart, or a
    /// `set-cookie` a gateway must not relay).
    pub response_headers: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind_addr: "0.0.0.0".into(),
            port: 9000,
            latency: Duration::ZERO,
            error_rate: 0.0,
            error_status: 500,
            chunks: 5,
            chunk_delay: Duration::ZERO,
            no_usage: false,
            models: ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
                .map(String::from)
                .to_vec(),
            embedding_dim: 16,
            workers: None,
            api_key: None,
            record_requests: 64,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            response_headers: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{name}: cannot parse {value:?}")]
    Parse { name: String, value: String },
    #[error("{0}")]
    Invalid(String),
    #[error("unknown argument {0:?} (see --help)")]
    UnknownArg(String),
    #[error("argument {0} needs a value")]
    MissingValue(String),
}

/// Flag ↔ environment variable, so both spellings stay in one table.
const FLAGS: &[(&str, &str)] = &[
    ("--bind", "BIND_ADDR"),
    ("--port", "MOCK_PORT"),
    ("--latency-ms", "MOCK_LATENCY_MS"),
    ("--error-rate", "MOCK_ERROR_RATE"),
    ("--error-status", "MOCK_ERROR_STATUS"),
    ("--chunks", "MOCK_CHUNKS"),
    ("--chunk-delay-ms", "MOCK_CHUNK_DELAY_MS"),
    ("--no-usage", "MOCK_NO_USAGE"),
    ("--models", "MOCK_MODELS"),
    ("--embedding-dim", "MOCK_EMBEDDING_DIM"),
    ("--workers", "MOCK_WORKERS"),
    ("--api-key", "MOCK_API_KEY"),
    ("--record-requests", "MOCK_RECORD_REQUESTS"),
    ("--cached-tokens", "MOCK_CACHED_TOKENS"),
    ("--cache-write-tokens", "MOCK_CACHE_WRITE_TOKENS"),
    ("--reasoning-tokens", "MOCK_REASONING_TOKENS"),
    ("--response-headers", "MOCK_RESPONSE_HEADERS"),
];

pub const HELP: &str =
    "mock-upstream: a mock of the OpenAI, Anthropic, Azure OpenAI and Gemini APIs

Flags (each also read from the environment variable shown; flags win):
  --bind ADDR            BIND_ADDR            listen address (0.0.0.0)
  --port N               MOCK_PORT            port (9000; 0 = any free port)
  --latency-ms N         MOCK_LATENCY_MS      delay before answering (0)
  --error-rate F         MOCK_ERROR_RATE      share of requests that fail, 0..1 (0)
  --error-status N       MOCK_ERROR_STATUS    status of injected failures (500)
  --chunks N             MOCK_CHUNKS          streamed content chunks = completion tokens (5)
  --chunk-delay-ms N     MOCK_CHUNK_DELAY_MS  delay between chunks (0)
  --no-usage [BOOL]      MOCK_NO_USAGE        never report usage (false)
  --models A,B           MOCK_MODELS          ids listed by GET /v1/models
  --embedding-dim N      MOCK_EMBEDDING_DIM   embedding length (16)
  --workers N            MOCK_WORKERS         worker threads (one per core)
  --api-key KEY          MOCK_API_KEY         key every request must carry (unset: none)
  --record-requests N    MOCK_RECORD_REQUESTS requests kept for GET /mock/requests (64)
  --cached-tokens N      MOCK_CACHED_TOKENS   prompt tokens read from the cache (unset)
  --cache-write-tokens N MOCK_CACHE_WRITE_TOKENS prompt tokens written to the cache (unset)
  --reasoning-tokens N   MOCK_REASONING_TOKENS reasoning tokens per answer (unset)
  --response-headers J   MOCK_RESPONSE_HEADERS headers on every answer, a JSON object (none)

Per request, an optional body field (or a rule POSTed to /mock/overrides)
overrides these:
  \"mock\": {\"latency_ms\":N, \"status\":N, \"error\":\"KIND\", \"chunks\":N,
           \"chunk_delay_ms\":N, \"no_usage\":true, \"abort_after_chunks\":N,
           \"error_after_chunks\":N, \"cached_tokens\":N, \"cache_write_tokens\":N,
           \"reasoning_tokens\":N, \"tool_call\":true, \"filtered\":true,
           \"pad\":N, \"prompt_tokens\":N, \"completion_tokens\":N,
           \"force_stream\":true, \"usage_with_choices\":true, \"gated\":true}
See docs/mock-upstream.md.
";

impl Config {
    /// Reads the process environment and arguments (without the program name).
    #[allow(clippy::disallowed_methods)] // a provider's stand-in, with its own flags beside the environment
    pub fn from_env_and_args(args: &[String]) -> Result<Config, ConfigError> {
        Self::from_sources(|k| std::env::var(k).ok(), args)
    }

    /// The testable core: `env` looks a variable up; `args` win over it.
    pub fn from_sources(
        env: impl Fn(&str) -> Option<String>,
        args: &[String],
    ) -> Result<Config, ConfigError> {
        let mut values: Vec<(&'static str, String)> = FLAGS
            .iter()
            .filter_map(|(_, var)| env(var).map(|v| (*var, v)))
            .collect();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let Some((_, var)) = FLAGS.iter().find(|(f, _)| *f == flag) else {
                return Err(ConfigError::UnknownArg(arg.clone()));
            };
            let value = match inline {
                Some(v) => v,
                // A bare `--no-usage` means true.
                None if flag == "--no-usage"
                    && it.peek().is_none_or(|next| next.starts_with("--")) =>
                {
                    "true".into()
                }
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| ConfigError::MissingValue(flag.into()))?,
            };
            values.retain(|(k, _)| k != var);
            values.push((var, value));
        }

        let mut c = Config::default();
        for (var, raw) in values {
            let v = raw.trim();
            match var {
                "BIND_ADDR" => c.bind_addr = v.to_string(),
                "MOCK_PORT" => c.port = parse(var, v)?,
                "MOCK_LATENCY_MS" => c.latency = Duration::from_millis(parse(var, v)?),
                "MOCK_ERROR_RATE" => c.error_rate = parse(var, v)?,
                "MOCK_ERROR_STATUS" => c.error_status = parse(var, v)?,
                "MOCK_CHUNKS" => c.chunks = parse(var, v)?,
                "MOCK_CHUNK_DELAY_MS" => c.chunk_delay = Duration::from_millis(parse(var, v)?),
                "MOCK_NO_USAGE" => c.no_usage = parse_bool(var, v)?,
                "MOCK_MODELS" => {
                    c.models = v
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                "MOCK_EMBEDDING_DIM" => c.embedding_dim = parse(var, v)?,
                "MOCK_WORKERS" => c.workers = Some(parse(var, v)?),
                "MOCK_API_KEY" => c.api_key = (!v.is_empty()).then(|| ExpectedKey::new(v)),
                "MOCK_RECORD_REQUESTS" => c.record_requests = parse(var, v)?,
                "MOCK_CACHED_TOKENS" => c.cached_tokens = Some(parse(var, v)?),
                "MOCK_CACHE_WRITE_TOKENS" => c.cache_write_tokens = Some(parse(var, v)?),
                "MOCK_REASONING_TOKENS" => c.reasoning_tokens = Some(parse(var, v)?),
                "MOCK_RESPONSE_HEADERS" => c.response_headers = parse_headers(var, v)?,
                _ => unreachable!("every FLAGS entry is matched"),
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !(0.0..=1.0).contains(&self.error_rate) {
            return bad(format!(
                "MOCK_ERROR_RATE must be within 0..1, got {}",
                self.error_rate
            ));
        }
        if !(400..=599).contains(&self.error_status) {
            return bad(format!(
                "MOCK_ERROR_STATUS must be 400..599, got {}",
                self.error_status
            ));
        }
        if self.chunks > MAX_CHUNKS {
            return bad(format!("MOCK_CHUNKS must be at most {MAX_CHUNKS}"));
        }
        if self.latency.as_millis() > MAX_DELAY_MS as u128
            || self.chunk_delay.as_millis() > MAX_DELAY_MS as u128
        {
            return bad(format!("delays must be at most {MAX_DELAY_MS} ms"));
        }
        if self.embedding_dim == 0 || self.embedding_dim > MAX_EMBEDDING_DIM {
            return bad(format!(
                "MOCK_EMBEDDING_DIM must be 1..={MAX_EMBEDDING_DIM}"
            ));
        }
        if self.workers == Some(0) {
            return bad("MOCK_WORKERS must be at least 1".into());
        }
        if !(1..=MAX_RECORDED).contains(&self.record_requests) {
            return bad(format!("MOCK_RECORD_REQUESTS must be 1..={MAX_RECORDED}"));
        }
        if [self.cached_tokens, self.cache_write_tokens]
            .iter()
            .any(|t| t.unwrap_or(0) > MAX_EXTRA_TOKENS)
        {
            return bad(format!(
                "cache token counts must be at most {MAX_EXTRA_TOKENS}"
            ));
        }
        if self.reasoning_tokens.unwrap_or(0) > MAX_CHUNKS as u64 {
            return bad(format!(
                "MOCK_REASONING_TOKENS must be at most {MAX_CHUNKS}"
            ));
        }
        for (name, value) in &self.response_headers {
            let name_ok = actix_web::http::header::HeaderName::try_from(name.as_str()).is_ok();
            let value_ok = actix_web::http::header::HeaderValue::try_from(value.as_str()).is_ok();
            if !name_ok || !value_ok {
                return bad(format!(
                    "MOCK_RESPONSE_HEADERS: {name:?}: {value:?} is not a valid header"
                ));
            }
        }
        Ok(())
    }
}

/// `{"name": "value", ...}`, sorted by name; empty text means none.
fn parse_headers(name: &str, v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    if v.is_empty() {
        return Ok(Vec::new());
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(v).map_err(|_| ConfigError::Parse {
            name: name.into(),
            value: v.into(),
        })?;
    let mut headers = map
        .into_iter()
        .map(|(k, val)| match val {
            serde_json::Value::String(s) => Ok((k, s)),
            _ => Err(ConfigError::Parse {
                name: name.into(),
                value: v.into(),
            }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    headers.sort();
    Ok(headers)
}

fn parse<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| ConfigError::Parse {
        name: name.into(),
        value: v.into(),
    })
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::Parse {
            name: name.into(),
            value: v.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_env_and_flags_with_flags_winning() {
        let c = Config::from_sources(|_| None, &[]).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.chunks, 5);
        assert!(!c.no_usage);

        let env = |k: &str| match k {
            "MOCK_PORT" => Some("9100".to_string()),
            "MOCK_CHUNKS" => Some("7".to_string()),
            "MOCK_NO_USAGE" => Some("true".to_string()),
            _ => None,
        };
        let c = Config::from_sources(env, &args(&["--chunks", "3", "--latency-ms=40"])).unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.chunks, 3);
        assert_eq!(c.latency, Duration::from_millis(40));
        assert!(c.no_usage);

        let c = Config::from_sources(|_| None, &args(&["--no-usage", "--port", "0"])).unwrap();
        assert!(c.no_usage);
        assert_eq!(c.port, 0);
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_named() {
        let e = Config::from_sources(|_| None, &args(&["--error-rate", "1.5"])).unwrap_err();
        assert!(e.to_string().contains("MOCK_ERROR_RATE"), "{e}");
        let e = Config::from_sources(|k| (k == "MOCK_PORT").then(|| "x".into()), &[]).unwrap_err();
        assert_eq!(
            e,
            ConfigError::Parse {
                name: "MOCK_PORT".into(),
                value: "x".into()
            }
        );
        assert!(matches!(
            Config::from_sources(|_| None, &args(&["--nope"])),
            Err(ConfigError::UnknownArg(_))
        ));
        assert!(matches!(
            Config::from_sources(|_| None, &args(&["--chunks"])),
            Err(ConfigError::MissingValue(_))
        ));
        for bad in [r#"["a"]"#, r#"{"x": 1}"#, r#"{"bad name": "v"}"#] {
            let e =
                Config::from_sources(|_| None, &args(&["--response-headers", bad])).unwrap_err();
            assert!(
                e.to_string().contains("MOCK_RESPONSE_HEADERS"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn response_headers_are_a_json_object() {
        let env = |k: &str| {
            (k == "MOCK_RESPONSE_HEADERS")
                .then(|| r#"{"x-upstream-name": "a1", "set-cookie": "s=1; Path=/"}"#.into())
        };
        let c = Config::from_sources(env, &[]).unwrap();
        assert_eq!(
            c.response_headers,
            vec![
                ("set-cookie".to_string(), "s=1; Path=/".to_string()),
                ("x-upstream-name".to_string(), "a1".to_string())
            ]
        );
    }
}
