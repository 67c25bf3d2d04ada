//! The versioned routing config snapshot: everything the gateway and the
//! token-service need, written whole by the config-center.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of every API key the config-center issues; makes leaked keys easy to
/// recognise and grep for.
pub const API_KEY_PREFIX: &str = "sk-aigw-";

/// The hash stored for an API key: lowercase hex SHA-256 of the whole key.
/// Keys carry 256 bits of randomness, so a fast unsalted hash is sufficient
/// and lets the gateway look a key up in a map without any round trip.
pub fn hash_api_key(key: &str) -> String {
    // Into a buffer, not through `hex::encode`, which builds the string a
    // char at a time (as many instructions as the SHA-256 itself on the
    // gateway's request path).
    let mut digits = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(key.as_bytes()), &mut digits)
        .expect("32 bytes are 64 hex digits");
    // Checked as UTF-8 (a few instructions for 64 ASCII bytes), not
    // through the lossy conversion's scan for bad sequences.
    std::str::from_utf8(&digits)
        .expect("hex digits are ASCII")
        .to_owned()
}

/// The whole routing configuration at one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    /// Strictly increasing with every published change.
    pub version: u64,
    /// When the config-center built this snapshot, unix milliseconds.
    pub generated_at_ms: i64,
    pub namespaces: Vec<NamespaceConfig>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub models: Vec<ModelConfig>,
    pub instances: Vec<InstanceConfig>,
}

impl ConfigSnapshot {
    pub fn namespace(&self, code: &str) -> Option<&NamespaceConfig> {
        self.namespaces.iter().find(|n| n.code == code)
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }
}

/// Per-namespace limits; `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    /// Tokens (prompt + completion) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.max_concurrency.is_none() && self.rpm.is_none() && self.tpm.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceConfig {
    pub code: String,
    pub name: String,
    pub enabled: bool,
    #[serde(default)]
    pub limits: Limits,
    /// Monthly budget in USD; `None` means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<Decimal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyConfig {
    pub id: String,
    pub namespace_code: String,
    /// [`hash_api_key`] of the key; the key itself is never stored.
    pub key_hash: String,
    /// The first characters of the key, safe to show and log.
    pub prefix: String,
    pub revoked: bool,
    /// Unix milliseconds after which the key no longer works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Models this key may use; `None` means every model of its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_models: Option<Vec<String>>,
}

impl ApiKeyConfig {
    /// Whether the key may be used at `now_ms` (unix milliseconds).
    pub fn is_active(&self, now_ms: i64) -> bool {
        !self.revoked && self.expires_at_ms.is_none_or(|t| now_ms < t)
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == model))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    /// tiktoken encoding name, e.g. `o200k_base`.
    pub encoding: String,
    /// USD per million prompt tokens; `None` means no price is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_price_per_1m: Option<Decimal>,
    /// USD per million completion tokens; `None` means no price is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_price_per_1m: Option<Decimal>,
    /// USD per million prompt tokens served from the provider's prompt
    /// cache (cache reads); `None` prices them at `input_price_per_1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_price_per_1m: Option<Decimal>,
    /// USD per million prompt tokens written to the provider's prompt cache
    /// (Anthropic's cache creation); `None` prices them at
    /// `input_price_per_1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_price_per_1m: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckConfig {
    /// Path appended to the instance's base URL, e.g. `/models`.
    pub path: String,
    pub interval_s: u32,
}

/// The wire protocol an upstream instance speaks; the gateway translates
/// between it and the OpenAI API its clients use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// OpenAI-compatible (`Authorization: Bearer`); passed through as is.
    #[default]
    Openai,
    /// Anthropic's Messages API (`x-api-key`, `anthropic-version`).
    Anthropic,
    /// Azure OpenAI (`api-key`): deployment paths with `api-version`, or
    /// the v1 API when no `api_version` is set.
    AzureOpenai,
    /// Google's Gemini API (`x-goog-api-key`).
    Gemini,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::Openai,
        Provider::Anthropic,
        Provider::AzureOpenai,
        Provider::Gemini,
    ];

    /// The name used in the admin API, the snapshot and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::AzureOpenai => "azure_openai",
            Provider::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn is_openai(&self) -> bool {
        *self == Provider::Openai
    }
}

/// An upstream deployment of one model, owned by one namespace.
///
/// What `base_url` names depends on the provider: OpenAI's includes the
/// version path (`https://api.openai.com/v1`), Anthropic's too
/// (`https://api.anthropic.com/v1`, the gateway appends `/messages`), Azure's
/// is the resource (`https://NAME.openai.azure.com`, the gateway appends
/// `/openai/...`), Gemini's includes the version
/// (`https://generativelanguage.googleapis.com/v1beta`, the gateway appends
/// `/models/{upstream_model}:generateContent`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceConfig {
    pub id: String,
    pub namespace_code: String,
    pub model: String,
    /// The upstream's wire protocol; `openai` when absent.
    #[serde(default, skip_serializing_if = "Provider::is_openai")]
    pub provider: Provider,
    /// Base URL; see the type's documentation for each provider.
    pub base_url: String,
    /// Model name sent upstream in place of the client's.
    pub upstream_model: String,
    /// Secret sent upstream in the provider's auth header
    /// (`Authorization: Bearer`, `x-api-key`, `api-key`, `x-goog-api-key`);
    /// never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Azure OpenAI: the deployment name in the path; `None` uses
    /// `upstream_model`. Only with `api_version` set (the v1 API has no
    /// deployment in its path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_deployment: Option<String>,
    /// Azure OpenAI: the `api-version` query parameter; `None` uses the v1
    /// API (`/openai/v1/...`, model in the body). Anthropic: the
    /// `anthropic-version` header; `None` sends `2023-06-01`. Unused by the
    /// other providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub weight: u32,
    pub timeout_ms: u64,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckConfig>,
    /// Whether a request whose outcome is unknown (sent whole, then the
    /// connection was lost or the first byte did not come in time) may be
    /// sent again to another instance. Off by default: a paid upstream may
    /// have processed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_unknown_outcome: bool,
    /// `OpenAI-Organization` sent upstream with this instance's key (the
    /// client's own header is never forwarded); not logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_organization: Option<String>,
    /// `OpenAI-Project` sent upstream with this instance's key; not logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai_project: Option<String>,
}

// Hand-written so the upstream secret never reaches a log line.
impl std::fmt::Debug for InstanceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceConfig")
            .field("id", &self.id)
            .field("namespace_code", &self.namespace_code)
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("upstream_model", &self.upstream_model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("azure_deployment", &self.azure_deployment)
            .field("api_version", &self.api_version)
            .field("weight", &self.weight)
            .field("timeout_ms", &self.timeout_ms)
            .field("enabled", &self.enabled)
            .field("health_check", &self.health_check)
            .field("retry_unknown_outcome", &self.retry_unknown_outcome)
            .field(
                "openai_organization",
                &self.openai_organization.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "openai_project",
                &self.openai_project.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_sha256_hex() {
        assert_eq!(
            hash_api_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn instance_debug_hides_secret() {
        let i = InstanceConfig {
            id: "i1".into(),
            namespace_code: "ns".into(),
            model: "m".into(),
            provider: Provider::Openai,
            base_url: "http://x/v1".into(),
            upstream_model: "m".into(),
            api_key: Some("sk-very-secret".into()),
            azure_deployment: None,
            api_version: None,
            weight: 1,
            timeout_ms: 1000,
            enabled: true,
            health_check: None,
            retry_unknown_outcome: false,
            openai_organization: Some("org-secret-id".into()),
            openai_project: Some("proj-secret-id".into()),
        };
        let s = format!("{i:?}");
        assert!(!s.contains("sk-very-secret"), "{s}");
        assert!(
            !s.contains("org-secret-id") && !s.contains("proj-secret-id"),
            "{s}"
        );
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn key_activity_and_models() {
        let mut k = ApiKeyConfig {
            id: "k".into(),
            namespace_code: "ns".into(),
            key_hash: String::new(),
            prefix: "sk-aigw-ab".into(),
            revoked: false,
            expires_at_ms: Some(1000),
            allowed_models: Some(vec!["a".into()]),
        };
        assert!(k.is_active(999));
        assert!(!k.is_active(1000));
        assert!(k.allows_model("a"));
        assert!(!k.allows_model("b"));
        k.revoked = true;
        assert!(!k.is_active(0));
    }

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("azure"), None);
    }

    #[test]
    fn prices_round_trip_exactly() {
        let m: ModelConfig = serde_json::from_str(
            r#"{"name":"m","encoding":"o200k_base","input_price_per_1m":"0.123456789012","enabled":true}"#,
        )
        .unwrap();
        assert_eq!(m.input_price_per_1m.unwrap().to_string(), "0.123456789012");
        let back = serde_json::to_string(&m).unwrap();
        assert!(
            back.contains(r#""input_price_per_1m":"0.123456789012""#),
            "{back}"
        );
    }
}
