//! The usage record: one per request that reached a namespace and a model.
//! The gateway queues them and its flusher appends them to the usage stream
//! (several records per stream entry, as a JSON array in the field
//! `records`); the token-service consumes them.

use serde::{Deserialize, Serialize};

/// Where the token counts of a record come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The upstream reported `usage`.
    Upstream,
    /// The token-service counted them from [`UsageRecord::count_text`].
    Counted,
    /// No tokens to count (e.g. the request failed before reaching upstream).
    None,
}

/// Text the token-service must count because the upstream did not report usage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountText {
    /// The prompt as the tokenizer should see it (for chat, the messages'
    /// contents; the token-service applies the chat per-message accounting).
    pub prompt: String,
    pub completion: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The request id (also returned to the client as `x-request-id`);
    /// consumers are idempotent on it.
    pub id: String,
    pub namespace_code: String,
    /// Id of the API key the request authenticated with (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// `chat`, `completions` or `embeddings`.
    pub endpoint: String,
    /// HTTP status the client received (499 when the client went away).
    pub status: u16,
    /// Low-cardinality error name, e.g. `upstream_timeout`, `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Unix milliseconds when the request arrived.
    pub started_at_ms: i64,
    /// Total duration in microseconds.
    pub duration_us: u64,
    /// Time to first byte of the answer, microseconds (streams and non-streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<u64>,
    pub stream: bool,
    /// Every input token, in OpenAI's meaning: cache reads
    /// (`cached_tokens`) and cache writes (`cache_write_tokens`) are parts of
    /// it. (Anthropic's `input_tokens` excludes both; the gateway adds them.)
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Every output token; `reasoning_tokens` are a part of it.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Of the prompt tokens, those the upstream served from its cache
    /// (`usage.prompt_tokens_details.cached_tokens`, Anthropic's
    /// `cache_read_input_tokens`, Gemini's `cachedContentTokenCount`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
    /// Of the prompt tokens, those the upstream wrote to its cache
    /// (Anthropic's `cache_creation_input_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Of the completion tokens, those spent reasoning
    /// (`usage.completion_tokens_details.reasoning_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    pub token_source: TokenSource,
    /// Present only when `token_source` is `counted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_text: Option<CountText>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One priced request as the spend ledger keeps it: the token-service
/// appends one per usage record it accounts (to the stream
/// `usage:ledger`, in the same atomic step), the config-center stores it as
/// one SQL row keyed by `request_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    pub request_id: String,
    /// Unix milliseconds when the request arrived.
    pub started_at_ms: i64,
    pub namespace_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub endpoint: String,
    pub stream: bool,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// The token-service counted the tokens (the upstream reported none).
    pub estimated: bool,
    /// Cost in nano-USD (1e-9 USD), as added to the Redis counters.
    pub cost_nano_usd: u64,
    /// Total duration, microseconds.
    pub duration_us: u64,
    /// Time to first byte of the answer, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let r = UsageRecord {
            id: "r1".into(),
            namespace_code: "team-a".into(),
            api_key_id: Some("k1".into()),
            model: "gpt-4o-mini".into(),
            instance_id: Some("i1".into()),
            endpoint: "chat".into(),
            status: 200,
            error_kind: None,
            started_at_ms: 1,
            duration_us: 2,
            ttft_us: Some(1),
            stream: true,
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 3,
            token_source: TokenSource::Counted,
            count_text: Some(CountText {
                prompt: "hi".into(),
                completion: "hello".into(),
            }),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#""token_source":"counted""#));
        let back: UsageRecord = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
    }
}
