//! Domain types and the parsing of every input: values are checked once here
//! (codes, names, URLs, prices, limits, times) and trusted afterwards. A
//! value that breaks a rule is a [`ValidationError`] naming the field; the
//! HTTP layer (`error.rs`) turns it into a 400. Nothing here knows HTTP or
//! SQL.

use aigw_types::{HealthCheckConfig, Limits, Provider};
use rand::Rng;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

/// A value that breaks a rule: the field and what the rule is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &str, message: impl Into<String>) -> ValidationError {
        ValidationError {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// tiktoken encodings the token-service can count with.
pub const KNOWN_ENCODINGS: &[&str] = &[
    "o200k_base",
    "o200k_harmony",
    "cl100k_base",
    "p50k_base",
    "p50k_edit",
    "r50k_base",
    "gpt2",
];

/// Characters of an issued key shown as its prefix (`sk-aigw-` and four more).
pub const KEY_PREFIX_LEN: usize = 12;
/// Random characters after `sk-aigw-`: 43 base62 characters carry 256 bits.
pub const KEY_RANDOM_LEN: usize = 43;

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn field_err(field: &str, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

/// `n` characters from the OS CSPRNG, alphabet `[0-9A-Za-z]`.
pub fn random_base62(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A freshly issued API key: the plaintext (returned once) and what is stored.
pub struct IssuedKey {
    pub plaintext: String,
    pub hash: String,
    pub prefix: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl IssuedKey {
    pub fn generate() -> IssuedKey {
        let plaintext = format!(
            "{}{}",
            aigw_types::API_KEY_PREFIX,
            random_base62(KEY_RANDOM_LEN)
        );
        IssuedKey {
            hash: aigw_types::hash_api_key(&plaintext),
            prefix: plaintext[..KEY_PREFIX_LEN].to_string(),
            plaintext,
        }
    }
}

/// An identifier used in URLs and Redis keys: `^[a-z0-9][a-z0-9_-]{0,62}$`.
pub fn parse_code(field: &str, s: &str) -> Result<String, ValidationError> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(field_err(
            field,
            "must match ^[a-z0-9][a-z0-9_-]{0,62}$ (lowercase letters, digits, '_' and '-', at most 63)",
        ))
    }
}

/// 1 to `max` ASCII letters, digits and `extra` characters, starting with a
/// letter or digit.
fn is_name(s: &str, max: usize, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

/// A model name clients send: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`
/// (no '/', so it fits one URL path segment).
pub fn parse_model_name(field: &str, s: &str) -> Result<String, ValidationError> {
    if is_name(s, 128, b"._:-") {
        Ok(s.to_string())
    } else {
        Err(field_err(
            field,
            "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        ))
    }
}

/// Free text shown to operators: trimmed, 1..=max characters, no control
/// characters.
pub fn parse_text(
    field: &str,
    s: &str,
    max: usize,
    allow_empty: bool,
) -> Result<String, ValidationError> {
    let t = s.trim();
    if t.is_empty() && !allow_empty {
        return Err(field_err(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(field_err(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(field_err(field, "must not contain control characters"));
    }
    Ok(t.to_string())
}

pub fn parse_encoding(field: &str, s: &str) -> Result<String, ValidationError> {
    if KNOWN_ENCODINGS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(field_err(
            field,
            format!("unknown encoding; known: {}", KNOWN_ENCODINGS.join(", ")),
        ))
    }
}

/// A non-negative exact decimal given as a string, e.g. `"0.15"`.
pub fn parse_money(field: &str, s: &str) -> Result<Decimal, ValidationError> {
    let d = Decimal::from_str_exact(s.trim())
        .map_err(|_| field_err(field, "must be a decimal number as a string, e.g. \"0.15\""))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(field_err(field, "must be >= 0"));
    }
    // A stored "-0" would read back oddly; normalise the sign.
    Ok(if d.is_zero() { d.abs() } else { d })
}

/// An integer within `min..=max`.
pub fn bounded(field: &str, v: i64, min: i64, max: i64) -> Result<i64, ValidationError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(field_err(field, format!("must be between {min} and {max}")))
    }
}

/// An upstream base URL: http(s), a host, no credentials, query or
/// fragment; trailing slashes dropped so paths can be appended.
pub fn parse_base_url(field: &str, s: &str) -> Result<String, ValidationError> {
    let u = url::Url::parse(s.trim()).map_err(|_| field_err(field, "must be an http(s) URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none_or(str::is_empty) {
        return Err(field_err(field, "must be an http(s) URL with a host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(field_err(
            field,
            "must not carry credentials; use api_key instead",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(field_err(field, "must not have a query or fragment"));
    }
    Ok(u.as_str().trim_end_matches('/').to_string())
}

/// An upstream secret: 1..=4096 visible ASCII characters (it goes into an
/// HTTP header).
pub fn parse_secret(field: &str, s: &str) -> Result<String, ValidationError> {
    if s.is_empty() || s.len() > 4096 || !s.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(field_err(
            field,
            "must be 1 to 4096 visible ASCII characters",
        ));
    }
    Ok(s.to_string())
}

/// An upstream provider's name: `openai`, `anthropic`, `azure_openai` or
/// `gemini`.
pub fn parse_provider(field: &str, s: &str) -> Result<Provider, ValidationError> {
    Provider::parse(s).ok_or_else(|| {
        let known: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        field_err(
            field,
            format!("unknown provider; known: {}", known.join(", ")),
        )
    })
}

/// A name that goes into an upstream URL path, query or header (Azure's
/// deployment, an API version): 1 to 64 of `[A-Za-z0-9._-]`, starting with
/// a letter or digit.
pub fn parse_path_name(field: &str, s: &str) -> Result<String, ValidationError> {
    if is_name(s, 64, b"._-") {
        Ok(s.to_string())
    } else {
        Err(field_err(
            field,
            "must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        ))
    }
}

/// An RFC 3339 UTC time, e.g. `2030-01-01T00:00:00Z`, as unix milliseconds.
pub fn parse_time(field: &str, s: &str) -> Result<i64, ValidationError> {
    let t = humantime::parse_rfc3339(s.trim()).map_err(|_| {
        field_err(
            field,
            "must be an RFC 3339 UTC time like 2030-01-01T00:00:00Z",
        )
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| field_err(field, "must be after 1970"))
}

pub fn parse_health_check(
    field: &str,
    path: &str,
    interval_s: Option<i64>,
) -> Result<HealthCheckConfig, ValidationError> {
    if !path.starts_with('/') || path.len() > 512 || !path.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(field_err(
            &format!("{field}.path"),
            "must start with '/' and be at most 512 visible ASCII characters",
        ));
    }
    let interval = bounded(
        &format!("{field}.interval_s"),
        interval_s.unwrap_or(15),
        1,
        86_400,
    )?;
    Ok(HealthCheckConfig {
        path: path.to_string(),
        interval_s: interval as u32,
    })
}

/// Deserializes a field that may be absent (outer `None`), `null`
/// (`Some(None)`) or a value: JSON Merge Patch semantics for PATCH bodies.
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A namespace as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub code: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub limits: Limits,
    pub monthly_budget_usd: Option<Decimal>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A model as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub name: String,
    pub encoding: String,
    pub input_price_per_1m: Option<Decimal>,
    pub output_price_per_1m: Option<Decimal>,
    /// Cache reads; `None` prices them at the input price.
    pub cached_input_price_per_1m: Option<Decimal>,
    /// Cache writes; `None` prices them at the input price.
    pub cache_write_price_per_1m: Option<Decimal>,
    pub context_window: Option<u32>,
    pub enabled: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An API key as stored: only its hash, never the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub namespace_code: String,
    pub name: String,
    pub key_hash: String,
    pub prefix: String,
    pub allowed_models: Option<Vec<String>>,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub created_at_ms: i64,
}

/// An upstream instance as stored, secret included.
#[derive(Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    pub namespace_code: String,
    pub model: String,
    /// The upstream's wire protocol.
    pub provider: Provider,
    pub base_url: String,
    pub upstream_model: String,
    pub api_key: Option<String>,
    /// Azure OpenAI: the deployment in the path (`None`: `upstream_model`).
    pub azure_deployment: Option<String>,
    /// Azure OpenAI's `api-version` or Anthropic's `anthropic-version`.
    pub api_version: Option<String>,
    pub weight: u32,
    pub timeout_ms: u64,
    pub enabled: bool,
    pub health_check: Option<HealthCheckConfig>,
    /// A request with an unknown outcome may be resent to another instance.
    pub retry_unknown_outcome: bool,
    /// `OpenAI-Organization` / `OpenAI-Project` sent with the instance's key.
    pub openai_organization: Option<String>,
    pub openai_project: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

// Hand-written so the upstream secret never reaches a log line.
impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("id", &self.id)
            .field("namespace_code", &self.namespace_code)
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Instance {
    /// Checks the fields that depend on the provider (400 naming the
    /// field): `azure_deployment` only for Azure and with an `api_version`
    /// (the v1 API has no deployment in its path), `api_version` only for
    /// Azure and Anthropic, the OpenAI organization and project only for
    /// OpenAI.
    pub fn check_provider_fields(&self) -> Result<(), ValidationError> {
        let p = self.provider;
        if self.azure_deployment.is_some() {
            if p != Provider::AzureOpenai {
                return Err(field_err(
                    "azure_deployment",
                    format!("only for provider azure_openai, not {}", p.as_str()),
                ));
            }
            if self.api_version.is_none() {
                return Err(field_err(
                    "azure_deployment",
                    "needs an api_version (the v1 API, used without one, has no deployment in its path)",
                ));
            }
        }
        if self.api_version.is_some() && !matches!(p, Provider::AzureOpenai | Provider::Anthropic) {
            return Err(field_err(
                "api_version",
                format!(
                    "only for providers azure_openai and anthropic, not {}",
                    p.as_str()
                ),
            ));
        }
        for (field, v) in [
            ("openai_organization", &self.openai_organization),
            ("openai_project", &self.openai_project),
        ] {
            if v.is_some() && p != Provider::Openai {
                return Err(field_err(
                    field,
                    format!("only for provider openai, not {}", p.as_str()),
                ));
            }
        }
        Ok(())
    }

    /// The last four characters of the secret, shown only when the secret is
    /// long enough (8+) that they give little away.
    pub fn api_key_last4(&self) -> Option<String> {
        last4(self.api_key.as_deref()?)
    }
}

/// The last four characters of a secret of 8 or more characters.
pub fn last4(secret: &str) -> Option<String> {
    let n = secret.chars().count();
    (n >= 8).then(|| secret.chars().skip(n - 4).collect())
}

/// Parses a decimal stored by this service (always written from a
/// [`Decimal`], so failure means the row was edited by hand).
pub fn stored_decimal(s: &str) -> anyhow::Result<Decimal> {
    Decimal::from_str(s).map_err(|e| anyhow::anyhow!("stored decimal {s:?} is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        for ok in ["a", "team-a", "0_x", &"a".repeat(63)] {
            assert!(parse_code("code", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a b",
            "a/b",
            "a:b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(parse_code("code", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn model_names() {
        assert!(parse_model_name("name", "gpt-3.5-turbo").is_ok());
        assert!(parse_model_name("name", "llama3:8b").is_ok());
        assert!(parse_model_name("name", "a/b").is_err());
        assert!(parse_model_name("name", ".x").is_err());
    }

    #[test]
    fn money_is_exact_and_non_negative() {
        assert_eq!(parse_money("p", "0.15").unwrap().to_string(), "0.15");
        assert_eq!(
            parse_money("p", "0.123456789012345678")
                .unwrap()
                .to_string(),
            "0.123456789012345678"
        );
        assert_eq!(parse_money("p", "-0").unwrap().to_string(), "0");
        assert!(parse_money("p", "-0.01").is_err());
        assert!(parse_money("p", "abc").is_err());
        assert!(parse_money("p", "1e3").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_base_url("u", "https://api.example.com/v1/").unwrap(),
            "https://api.example.com/v1"
        );
        assert_eq!(
            parse_base_url("u", "http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        for bad in [
            "ftp://x/v1",
            "not a url",
            "https://user:pw@x/v1",
            "https://x/v1?a=b",
            "/v1",
        ] {
            assert!(parse_base_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_have_256_bits_and_a_prefix() {
        let k = IssuedKey::generate();
        assert!(k.plaintext.starts_with("sk-aigw-"));
        assert_eq!(k.plaintext.len(), 8 + KEY_RANDOM_LEN);
        assert_eq!(k.prefix, &k.plaintext[..12]);
        assert_eq!(k.hash, aigw_types::hash_api_key(&k.plaintext));
        assert!(!format!("{k:?}").contains(&k.plaintext));
        assert_ne!(IssuedKey::generate().plaintext, k.plaintext);
    }

    #[test]
    fn last_four_only_of_long_secrets() {
        assert_eq!(last4("sk-abcdefgh").as_deref(), Some("efgh"));
        assert_eq!(last4("short"), None);
        assert_eq!(last4("ééééééééé").as_deref(), Some("éééé"));
    }

    #[test]
    fn providers_and_path_names() {
        assert_eq!(
            parse_provider("provider", "azure_openai").unwrap(),
            Provider::AzureOpenai
        );
        let e = parse_provider("provider", "azure").unwrap_err();
        assert_eq!(e.field, "provider");
        assert!(e
            .message
            .contains("openai, anthropic, azure_openai, gemini"));
        for ok in ["2024-10-21", "2024-12-01-preview", "gpt-4o_prod.1"] {
            assert!(parse_path_name("v", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a/b", "a b", "a?b", &"a".repeat(65)] {
            assert!(parse_path_name("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_round_trip() {
        let ms = parse_time("t", "2030-01-02T03:04:05Z").unwrap();
        assert_eq!(format_ms(ms), "2030-01-02T03:04:05.000Z");
        assert!(parse_time("t", "2030-01-02").is_err());
    }
}
