//! The usage record and the ledger row as the consumer reads and writes
//! them: [`aigw_types::UsageRecord`] and [`aigw_types::LedgerRow`] with the
//! same fields and serde rules, their strings borrowed — from the stream
//! entry's payload (copied only when they hold escapes) and from the record
//! — so that reading a record and writing its row allocate nothing per
//! field.

use aigw_types::{CountText, TokenSource};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// A usage record read from a payload; reads what
/// [`aigw_types::UsageRecord`] reads, and rejects what it rejects.
#[derive(Debug, Deserialize)]
pub struct RecordView<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub namespace_code: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "optional")]
    pub api_key_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "optional")]
    pub instance_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub endpoint: Cow<'a, str>,
    pub status: u16,
    #[serde(default, borrow, deserialize_with = "optional")]
    pub error_kind: Option<Cow<'a, str>>,
    pub started_at_ms: i64,
    pub duration_us: u64,
    #[serde(default)]
    pub ttft_us: Option<u64>,
    pub stream: bool,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    pub token_source: TokenSource,
    #[serde(default)]
    pub count_text: Option<CountText>,
}

/// An optional string, borrowed when it can be (serde borrows a `Cow`
/// only outside an `Option`).
fn optional<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(d)?.map(|b| b.0))
}

/// A ledger row as [`aigw_types::LedgerRow`] serializes it (same fields,
/// same order, same omissions).
#[derive(Debug, Serialize)]
pub struct LedgerRowView<'a> {
    pub request_id: &'a str,
    pub started_at_ms: i64,
    pub namespace_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<&'a str>,
    pub model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<&'a str>,
    pub endpoint: &'a str,
    pub stream: bool,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<&'a str>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated: bool,
    pub cost_nano_usd: u64,
    pub duration_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_types::{LedgerRow, UsageRecord};

    fn records() -> Vec<serde_json::Value> {
        let full = serde_json::json!({
            "id": "r1", "namespace_code": "team-a", "api_key_id": "k1", "model": "gpt-4o",
            "instance_id": "i\"1", "endpoint": "chat", "status": 502,
            "error_kind": "upstream_error", "started_at_ms": 1_764_000_000_000i64,
            "duration_us": 12, "ttft_us": 5, "stream": true, "prompt_tokens": 10,
            "completion_tokens": 4, "cached_tokens": 2, "cache_write_tokens": 1,
            "reasoning_tokens": 3, "token_source": "counted",
            "count_text": {"prompt": "hi", "completion": "ho"}
        });
        let minimal = serde_json::json!({
            "id": "r\\2", "namespace_code": "team-b", "model": "m", "endpoint": "embeddings",
            "status": 200, "started_at_ms": -1, "duration_us": 0, "stream": false,
            "token_source": "upstream", "api_key_id": null, "extra": [1]
        });
        vec![full, minimal]
    }

    /// The view reads what the shared type reads, and its row is the
    /// shared type's row, byte for byte.
    #[test]
    fn views_match_the_shared_types() {
        for v in records() {
            let text = v.to_string();
            let owned: UsageRecord = serde_json::from_str(&text).unwrap();
            let view: RecordView = serde_json::from_str(&text).unwrap();
            assert_eq!(view.id, owned.id);
            assert_eq!(view.api_key_id.as_deref(), owned.api_key_id.as_deref());
            assert_eq!(view.instance_id.as_deref(), owned.instance_id.as_deref());
            assert_eq!(view.error_kind.as_deref(), owned.error_kind.as_deref());
            assert_eq!(view.count_text, owned.count_text);
            let row = LedgerRow {
                request_id: owned.id.clone(),
                started_at_ms: owned.started_at_ms,
                namespace_code: owned.namespace_code.clone(),
                api_key_id: owned.api_key_id.clone(),
                model: owned.model.clone(),
                instance_id: owned.instance_id.clone(),
                endpoint: owned.endpoint.clone(),
                stream: owned.stream,
                status: owned.status,
                error_kind: owned.error_kind.clone(),
                prompt_tokens: 7,
                completion_tokens: owned.completion_tokens,
                cached_tokens: owned.cached_tokens,
                cache_write_tokens: owned.cache_write_tokens,
                reasoning_tokens: owned.reasoning_tokens,
                estimated: true,
                cost_nano_usd: 99,
                duration_us: owned.duration_us,
                ttft_us: owned.ttft_us,
            };
            let row_view = LedgerRowView {
                request_id: &view.id,
                started_at_ms: view.started_at_ms,
                namespace_code: &view.namespace_code,
                api_key_id: view.api_key_id.as_deref(),
                model: &view.model,
                instance_id: view.instance_id.as_deref(),
                endpoint: &view.endpoint,
                stream: view.stream,
                status: view.status,
                error_kind: view.error_kind.as_deref(),
                prompt_tokens: 7,
                completion_tokens: view.completion_tokens,
                cached_tokens: view.cached_tokens,
                cache_write_tokens: view.cache_write_tokens,
                reasoning_tokens: view.reasoning_tokens,
                estimated: true,
                cost_nano_usd: 99,
                duration_us: view.duration_us,
                ttft_us: view.ttft_us,
            };
            assert_eq!(
                serde_json::to_string(&row_view).unwrap(),
                serde_json::to_string(&row).unwrap()
            );
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = records()[0].to_string();
        let view: RecordView = serde_json::from_str(&text).unwrap();
        assert!(matches!(view.id, Cow::Borrowed(_)));
        assert!(matches!(view.api_key_id, Some(Cow::Borrowed(_))));
        // An escaped quote must be unescaped: a copy.
        assert!(matches!(view.instance_id, Some(Cow::Owned(_))));
    }

    /// Whatever the shared type rejects, the view rejects.
    #[test]
    fn the_same_records_are_unreadable() {
        let bad = [
            r#"{"id":"r","namespace_code":"a","model":"m","endpoint":"chat","status":200,"started_at_ms":1,"duration_us":1,"stream":false}"#,
            r#"{"id":"r","namespace_code":"a","model":"m","endpoint":"chat","status":70000,"started_at_ms":1,"duration_us":1,"stream":false,"token_source":"upstream"}"#,
            r#"{"id":"r","namespace_code":"a","model":"m","endpoint":"chat","status":200,"started_at_ms":1,"duration_us":-1,"stream":false,"token_source":"upstream"}"#,
            r#"{"id":"r","id":"s","namespace_code":"a","model":"m","endpoint":"chat","status":200,"started_at_ms":1,"duration_us":1,"stream":false,"token_source":"upstream"}"#,
            r#"{"id":1,"namespace_code":"a","model":"m","endpoint":"chat","status":200,"started_at_ms":1,"duration_us":1,"stream":false,"token_source":"upstream"}"#,
            r#"{"id":"r","namespace_code":"a","model":"m","endpoint":"chat","status":200,"started_at_ms":1,"duration_us":1,"stream":false,"token_source":"upstream","api_key_id":5}"#,
        ];
        for b in bad {
            assert!(serde_json::from_str::<UsageRecord>(b).is_err(), "{b}");
            assert!(serde_json::from_str::<RecordView>(b).is_err(), "{b}");
        }
    }
}
