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

/// One usage record. `S` is how its strings are held: `String` where
/// records are read, `&str` where the gateway writes one from what it
/// already holds (see [`UsageRecord::write_json`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord<S = String> {
    /// The request id (also returned to the client as `x-request-id`);
    /// consumers are idempotent on it.
    pub id: S,
    pub namespace_code: S,
    /// Id of the API key the request authenticated with (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<S>,
    pub model: S,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<S>,
    /// `chat`, `completions` or `embeddings`.
    pub endpoint: S,
    /// HTTP status the client received (499 when the client went away).
    pub status: u16,
    /// Low-cardinality error name, e.g. `upstream_timeout`, `rate_limited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<S>,
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

impl TokenSource {
    /// The name it is serialized as.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Upstream => "upstream",
            TokenSource::Counted => "counted",
            TokenSource::None => "none",
        }
    }
}

impl<S: AsRef<str>> UsageRecord<S> {
    /// Appends the record's JSON object to `out`: the bytes
    /// `serde_json::to_string` gives for it (same fields, same order, same
    /// omissions), written directly. The gateway writes one record per
    /// request, and serde's path (every field name scanned for characters
    /// to escape, a state machine per field) cost it about 5,000
    /// instructions per request, three times this.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"id\":");
        push_json_str(out, self.id.as_ref());
        out.push_str(",\"namespace_code\":");
        push_json_str(out, self.namespace_code.as_ref());
        if let Some(k) = &self.api_key_id {
            out.push_str(",\"api_key_id\":");
            push_json_str(out, k.as_ref());
        }
        out.push_str(",\"model\":");
        push_json_str(out, self.model.as_ref());
        if let Some(i) = &self.instance_id {
            out.push_str(",\"instance_id\":");
            push_json_str(out, i.as_ref());
        }
        out.push_str(",\"endpoint\":");
        push_json_str(out, self.endpoint.as_ref());
        push_json_int(out, ",\"status\":", self.status);
        if let Some(e) = &self.error_kind {
            out.push_str(",\"error_kind\":");
            push_json_str(out, e.as_ref());
        }
        push_json_int(out, ",\"started_at_ms\":", self.started_at_ms);
        push_json_int(out, ",\"duration_us\":", self.duration_us);
        if let Some(t) = self.ttft_us {
            push_json_int(out, ",\"ttft_us\":", t);
        }
        out.push_str(if self.stream {
            ",\"stream\":true"
        } else {
            ",\"stream\":false"
        });
        push_json_int(out, ",\"prompt_tokens\":", self.prompt_tokens);
        push_json_int(out, ",\"completion_tokens\":", self.completion_tokens);
        for (name, v) in [
            (",\"cached_tokens\":", self.cached_tokens),
            (",\"cache_write_tokens\":", self.cache_write_tokens),
            (",\"reasoning_tokens\":", self.reasoning_tokens),
        ] {
            if v != 0 {
                push_json_int(out, name, v);
            }
        }
        out.push_str(",\"token_source\":\"");
        out.push_str(self.token_source.as_str());
        out.push('"');
        if let Some(t) = &self.count_text {
            out.push_str(",\"count_text\":{\"prompt\":");
            push_json_str(out, &t.prompt);
            out.push_str(",\"completion\":");
            push_json_str(out, &t.completion);
            out.push('}');
        }
        out.push('}');
    }
}

/// Appends `name` (what stands before the value, e.g. `,"status":`) and
/// the integer `v`, as JSON writes it.
pub fn push_json_int(out: &mut String, name: &str, v: impl itoa::Integer) {
    out.push_str(name);
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it. A string
/// with nothing to escape (no `"`, `\` or control character, the common
/// case for ids and names) is copied as it is.
pub fn push_json_str(out: &mut String, s: &str) {
    // Without an early exit, so that the check runs over whole vectors.
    let plain = !s.bytes().fold(false, |esc, b| {
        esc | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    match serde_json::to_string(s) {
        Ok(t) => out.push_str(&t),
        // A `str` always serializes; keep the output valid regardless.
        Err(_) => out.push_str("\"\""),
    }
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

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            namespace_code: "team-a".into(),
            api_key_id: None,
            model: "gpt-4o-mini".into(),
            instance_id: None,
            endpoint: "chat".into(),
            status: 200,
            error_kind: None,
            started_at_ms: 1_764_000_000_000,
            duration_us: 1234,
            ttft_us: None,
            stream: false,
            prompt_tokens: 14,
            completion_tokens: 20,
            cached_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            token_source: TokenSource::Upstream,
            count_text: None,
        }
    }

    /// Records of every shape: each optional field present and absent,
    /// zeros and extremes, strings that need escaping.
    fn records() -> Vec<UsageRecord> {
        let mut out = vec![record("0199-plain")];
        let mut full = record("r1");
        full.api_key_id = Some("k1".into());
        full.instance_id = Some("mock-1".into());
        full.error_kind = Some("upstream_timeout".into());
        full.status = 504;
        full.ttft_us = Some(0);
        full.stream = true;
        full.cached_tokens = 1;
        full.cache_write_tokens = 2;
        full.reasoning_tokens = 3;
        out.push(full);
        let mut extreme = record("");
        extreme.started_at_ms = i64::MIN;
        extreme.duration_us = u64::MAX;
        extreme.prompt_tokens = u64::MAX;
        extreme.completion_tokens = 0;
        extreme.status = u16::MAX;
        extreme.ttft_us = Some(u64::MAX);
        extreme.reasoning_tokens = u64::MAX;
        extreme.token_source = TokenSource::None;
        out.push(extreme);
        let mut escaped = record("r\u{1}\n\t/é\u{7f}\u{1f}");
        escaped.namespace_code = "ns \\ \"q\"".into();
        escaped.api_key_id = Some("κλειδί".into());
        escaped.model = "m\u{0}".into();
        escaped.instance_id = Some(String::new());
        escaped.error_kind = Some("\u{2028}\"".into());
        escaped.token_source = TokenSource::Counted;
        escaped.count_text = Some(CountText {
            prompt: "system\nline \"two\"\t\\".into(),
            completion: String::new(),
        });
        out.push(escaped);
        let mut counted = record("r4");
        counted.token_source = TokenSource::Counted;
        counted.count_text = Some(CountText {
            prompt: "plain".into(),
            completion: "hello".into(),
        });
        out.push(counted);
        out
    }

    fn borrowed(r: &UsageRecord) -> UsageRecord<&str> {
        UsageRecord {
            id: &r.id,
            namespace_code: &r.namespace_code,
            api_key_id: r.api_key_id.as_deref(),
            model: &r.model,
            instance_id: r.instance_id.as_deref(),
            endpoint: &r.endpoint,
            status: r.status,
            error_kind: r.error_kind.as_deref(),
            started_at_ms: r.started_at_ms,
            duration_us: r.duration_us,
            ttft_us: r.ttft_us,
            stream: r.stream,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            token_source: r.token_source,
            count_text: r.count_text.clone(),
        }
    }

    /// `write_json` gives serde's bytes, for owned and borrowed strings,
    /// appended after what the buffer held; and they read back as the record.
    #[test]
    fn written_json_is_serdes_json() {
        for r in records() {
            let serde = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::to_string(&borrowed(&r)).unwrap(), serde);
            let mut owned = String::from("[");
            r.write_json(&mut owned);
            assert_eq!(owned[1..], serde, "{r:?}");
            let mut view = String::new();
            borrowed(&r).write_json(&mut view);
            assert_eq!(view, serde);
            let back: UsageRecord = serde_json::from_str(&view).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_escapes_them() {
        let mut all = String::new();
        for c in (0u32..0x80).chain([0xe9, 0x2028, 0x1f600]) {
            all.push(char::from_u32(c).unwrap());
        }
        for s in [
            "", "plain", "a\"b", "a\\b", "\u{0}", "\u{1f}", " ", "\u{7f}", &all,
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }
}
