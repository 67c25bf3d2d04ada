//! The usage record and the ledger row as the consumer reads and writes
//! them: [`aigw_types::UsageRecord`] and [`aigw_types::LedgerRow`] with the
//! same fields and serde rules, their strings borrowed — from the stream
//! entry's payload (copied only when they hold escapes) and from the record
//! — so that reading a record and writing its row allocate nothing per
//! field. A row is written by hand ([`LedgerRowView::write`]): a string read
//! without escapes is written back as it was read, without scanning it
//! again for characters to escape.

use aigw_types::usage::{push_json_int, push_json_str};
use aigw_types::{CountText, TokenSource};
use serde::{Deserialize, Deserializer};
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

/// A string of a record, to be written into a row as JSON.
#[derive(Debug, Clone, Copy)]
pub struct RowStr<'a> {
    text: &'a str,
    /// Read without escapes: serde_json borrows a string only when it has
    /// none, and refuses control characters in it, so the text holds no
    /// character that JSON output escapes (`"`, `\`, U+0000–U+001F).
    plain: bool,
}

impl<'a> RowStr<'a> {
    /// A string of a [`RecordView`] (the `Cow` itself: its variant tells
    /// whether the text had escapes).
    #[allow(clippy::ptr_arg)]
    pub fn of(s: &'a Cow<'_, str>) -> Self {
        RowStr {
            text: s,
            plain: matches!(s, Cow::Borrowed(_)),
        }
    }

    fn write(self, out: &mut String) {
        if self.plain {
            out.push('"');
            out.push_str(self.text);
            out.push('"');
        } else {
            // serde_json's escaping, as `LedgerRow` serializes it.
            push_json_str(out, self.text);
        }
    }
}

/// A ledger row as [`aigw_types::LedgerRow`] serializes it (same fields,
/// same order, same omissions), written by [`LedgerRowView::write`].
#[derive(Debug)]
pub struct LedgerRowView<'a> {
    pub request_id: RowStr<'a>,
    pub started_at_ms: i64,
    pub namespace_code: RowStr<'a>,
    pub api_key_id: Option<RowStr<'a>>,
    pub model: RowStr<'a>,
    pub instance_id: Option<RowStr<'a>>,
    pub endpoint: RowStr<'a>,
    pub stream: bool,
    pub status: u16,
    pub error_kind: Option<RowStr<'a>>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub estimated: bool,
    pub cost_nano_usd: u64,
    pub duration_us: u64,
    pub ttft_us: Option<u64>,
}

impl LedgerRowView<'_> {
    /// Appends the row's JSON object to `out`: the bytes
    /// `serde_json::to_string(&LedgerRow)` gives for the same row.
    pub fn write(&self, out: &mut String) {
        out.push_str("{\"request_id\":");
        self.request_id.write(out);
        push_json_int(out, ",\"started_at_ms\":", self.started_at_ms);
        out.push_str(",\"namespace_code\":");
        self.namespace_code.write(out);
        if let Some(k) = self.api_key_id {
            out.push_str(",\"api_key_id\":");
            k.write(out);
        }
        out.push_str(",\"model\":");
        self.model.write(out);
        if let Some(i) = self.instance_id {
            out.push_str(",\"instance_id\":");
            i.write(out);
        }
        out.push_str(",\"endpoint\":");
        self.endpoint.write(out);
        out.push_str(if self.stream {
            ",\"stream\":true"
        } else {
            ",\"stream\":false"
        });
        push_json_int(out, ",\"status\":", self.status);
        if let Some(e) = self.error_kind {
            out.push_str(",\"error_kind\":");
            e.write(out);
        }
        push_json_int(out, ",\"prompt_tokens\":", self.prompt_tokens);
        push_json_int(out, ",\"completion_tokens\":", self.completion_tokens);
        push_json_int(out, ",\"cached_tokens\":", self.cached_tokens);
        push_json_int(out, ",\"cache_write_tokens\":", self.cache_write_tokens);
        push_json_int(out, ",\"reasoning_tokens\":", self.reasoning_tokens);
        out.push_str(if self.estimated {
            ",\"estimated\":true"
        } else {
            ",\"estimated\":false"
        });
        push_json_int(out, ",\"cost_nano_usd\":", self.cost_nano_usd);
        push_json_int(out, ",\"duration_us\":", self.duration_us);
        if let Some(t) = self.ttft_us {
            push_json_int(out, ",\"ttft_us\":", t);
        }
        out.push('}');
    }
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
        let escaped = serde_json::json!({
            "id": "r\u{1}\n\t/é\u{7f}", "namespace_code": "ns \\ \"q\"", "api_key_id": "κλειδί",
            "model": "m\u{1f}", "instance_id": "", "endpoint": "chat", "status": 200,
            "error_kind": "é\u{0}", "started_at_ms": i64::MIN, "duration_us": u64::MAX,
            "ttft_us": 0, "stream": false, "prompt_tokens": u64::MAX,
            "token_source": "upstream"
        });
        vec![full, minimal, escaped]
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
            // The row the consumer writes for this record.
            let priced = crate::usage::Priced {
                prompt_tokens: 7,
                completion_tokens: view.completion_tokens,
                cached_tokens: view.cached_tokens,
                cache_write_tokens: view.cache_write_tokens,
                reasoning_tokens: view.reasoning_tokens,
                cost_nano_usd: 99,
                counted: true,
                unpriced: false,
            };
            let row_view = crate::usage::ledger_row(&view, &priced);
            let mut written = String::new();
            row_view.write(&mut written);
            assert_eq!(written, serde_json::to_string(&row).unwrap());
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
