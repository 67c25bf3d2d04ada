//! Usage accounting: turns the gateway's usage records into model metrics.
//!
//! [`consumer`] reads the usage stream; this module decides what one record
//! writes ([`record_ops`]): tokens (counted here when the upstream reported
//! none), cost from the snapshot's prices ([`pricing`]: cache reads and
//! writes at their own prices), and the model series (the input, output,
//! cache-read, cache-write and reasoning tokens separately). The records of
//! one stream entry are one idempotent unit keyed by the entry id
//! ([`entry_plan`]); the same unit appends the entry's priced records to the
//! spend ledger's stream (`usage:ledger`, one ledger entry holding the rows
//! as a JSON array, see `docs/ledger.md`), so the ledger holds a row exactly
//! when the counters hold the record, with the same tokens and cost.
//!
//! Labels stay bounded: a model or namespace missing from the snapshot is
//! recorded as `other` (the gateway only forwards configured models, so this
//! only happens for records of models deleted since).

pub mod consumer;
pub mod pricing;

use crate::chat::{count_chat, ChatCountRequest, ChatMessage};
use crate::tokenize::{models, Encoders, Encoding};
use aigw_metrics::families::token_service as f;
use aigw_metrics::{keys, NoLabels, Ops};
use aigw_types::{ConfigSnapshot, LedgerRow, TokenSource, UsageRecord};

/// Scope of the idempotence markers, one per usage-stream entry
/// (`metrics:once:usage-entry:{entry id}`).
pub const ONCE_SCOPE: &str = "usage-entry";

/// Record ids longer than this are treated as malformed.
pub const MAX_RECORD_ID: usize = 256;

/// Label value for models and namespaces not in the snapshot.
pub const OTHER: &str = "other";

/// What one record writes, and how it was computed.
#[derive(Debug, Clone)]
pub struct RecordPlan {
    pub ops: Ops,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of the prompt tokens, cache reads and cache writes (together at
    /// most `prompt_tokens`).
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    /// Of the completion tokens, those spent reasoning.
    pub reasoning_tokens: u64,
    pub cost_nano_usd: u64,
    pub counted: bool,
    pub unpriced: bool,
    /// The record's ledger row as JSON, when the ledger is on.
    pub ledger_row: Option<String>,
}

/// Tokens of a record's text when the upstream did not report usage.
///
/// The prompt of a chat record may be the messages as JSON (an array of
/// messages, or an object with `messages` and `tools`): then the chat
/// per-message accounting applies. Anything else is counted as plain text.
pub fn count_record_text(enc: &Encoders, e: Encoding, rec: &UsageRecord) -> Option<(u64, u64)> {
    let t = rec.count_text.as_ref()?;
    let prompt = chat_prompt_tokens(enc, e, &rec.model, &rec.endpoint, &t.prompt)
        .unwrap_or_else(|| enc.count(e, &t.prompt) as u64);
    Some((prompt, enc.count(e, &t.completion) as u64))
}

fn chat_prompt_tokens(
    enc: &Encoders,
    e: Encoding,
    model: &str,
    endpoint: &str,
    prompt: &str,
) -> Option<u64> {
    if endpoint != "chat" {
        return None;
    }
    let trimmed = prompt.trim_start();
    let req: ChatCountRequest = if trimmed.starts_with('[') {
        let messages: Vec<ChatMessage> = serde_json::from_str(prompt).ok()?;
        ChatCountRequest {
            model: model.to_string(),
            encoding: None,
            messages,
            tools: None,
            functions: None,
        }
    } else if trimmed.starts_with('{') {
        let mut v: serde_json::Value = serde_json::from_str(prompt).ok()?;
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), serde_json::Value::String(model.to_string()));
        }
        serde_json::from_value(v).ok()?
    } else {
        return None;
    };
    count_chat(enc, e, &req).ok().map(|c| c.tokens)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Most tokens one record may report per direction (2^32). Far above any
/// real context window; a larger figure is an upstream's error, and left as
/// it is it could overflow a Redis counter, which would fail the writes of
/// the whole batch. Such counts are capped here and the cap is logged.
pub const MAX_TOKENS_PER_RECORD: u64 = 1 << 32;

fn cap_tokens(rec: &UsageRecord, what: &'static str, v: u64) -> u64 {
    if v > MAX_TOKENS_PER_RECORD {
        tracing::warn!(record = %rec.id, what, reported = v, cap = MAX_TOKENS_PER_RECORD,
            "implausible token count in a usage record; capped");
        MAX_TOKENS_PER_RECORD
    } else {
        v
    }
}

/// The spend ledger's row of a record, with the tokens and cost accounted.
fn ledger_row(rec: &UsageRecord, plan: &RecordPlan) -> LedgerRow {
    LedgerRow {
        request_id: rec.id.clone(),
        started_at_ms: rec.started_at_ms,
        namespace_code: rec.namespace_code.clone(),
        api_key_id: rec.api_key_id.clone(),
        model: rec.model.clone(),
        instance_id: rec.instance_id.clone(),
        endpoint: rec.endpoint.clone(),
        stream: rec.stream,
        status: rec.status,
        error_kind: rec.error_kind.clone(),
        prompt_tokens: plan.prompt_tokens,
        completion_tokens: plan.completion_tokens,
        cached_tokens: plan.cached_tokens,
        cache_write_tokens: plan.cache_write_tokens,
        reasoning_tokens: plan.reasoning_tokens,
        estimated: plan.counted,
        cost_nano_usd: plan.cost_nano_usd,
        duration_us: rec.duration_us,
        ttft_us: rec.ttft_us,
    }
}

/// The writes of one usage record, priced with `snap`; with `ledger`, also
/// its ledger row (appended per entry by [`entry_plan`]).
pub fn record_ops(
    rec: &UsageRecord,
    snap: &ConfigSnapshot,
    enc: &Encoders,
    ledger: bool,
) -> RecordPlan {
    let model_cfg = snap.model(&rec.model);
    let model = if model_cfg.is_some() {
        rec.model.as_str()
    } else {
        OTHER
    };
    let ns = if snap.namespace(&rec.namespace_code).is_some() {
        rec.namespace_code.as_str()
    } else {
        OTHER
    };
    let labels = f::ModelNs {
        model,
        namespace_code: ns,
    };

    let mut counted = false;
    let (mut prompt, mut completion) = (
        cap_tokens(rec, "prompt_tokens", rec.prompt_tokens),
        cap_tokens(rec, "completion_tokens", rec.completion_tokens),
    );
    if rec.token_source == TokenSource::Counted {
        let e = models::resolve(Some(snap), &rec.model)
            .map(|(e, _)| e)
            .unwrap_or(Encoding::O200kBase);
        if let Some((p, c)) = count_record_text(enc, e, rec) {
            (prompt, completion) = (p, c);
            counted = true;
        }
    }
    let tokens = pricing::Tokens::new(
        prompt,
        completion,
        rec.cached_tokens,
        rec.cache_write_tokens,
    );
    let reasoning = rec.reasoning_tokens.min(completion);
    let c = pricing::cost(&tokens, &pricing::Prices::of(model_cfg));
    let is_error = rec.status >= 400 || rec.error_kind.is_some();

    let mut ops = Ops::new();
    ops.counter(&f::MODEL_REQUESTS, &labels, 1);
    ops.counter(&f::MODEL_ERRORS, &labels, i64::from(is_error));
    ops.counter(&f::MODEL_TOKENS_IN, &labels, clamp(prompt));
    ops.counter(&f::MODEL_TOKENS_OUT, &labels, clamp(completion));
    ops.counter(&f::MODEL_TOKENS_CACHE_READ, &labels, clamp(tokens.cached));
    ops.counter(
        &f::MODEL_TOKENS_CACHE_WRITE,
        &labels,
        clamp(tokens.cache_write),
    );
    ops.counter(&f::MODEL_TOKENS_REASONING, &labels, clamp(reasoning));
    ops.counter(&f::MODEL_COST, &labels, clamp(c.nano_usd));
    ops.observe(&f::MODEL_DURATION, &labels, rec.duration_us);
    if let Some(t) = rec.ttft_us {
        ops.observe(&f::MODEL_TTFT, &labels, t);
    }
    if c.nano_usd > 0 {
        let month = pricing::month_label(rec.started_at_ms);
        let l = f::NsMonth {
            namespace_code: ns,
            month: &month,
        };
        ops.counter(&f::NS_MONTH_COST, &l, clamp(c.nano_usd));
    }
    ops.counter(&f::USAGE_PROCESSED, &NoLabels, 1);
    if counted {
        ops.counter(&f::USAGE_COUNTED, &NoLabels, 1);
    }
    if c.unpriced {
        ops.counter(&f::USAGE_UNPRICED, &f::Model { model }, 1);
    }
    let mut plan = RecordPlan {
        ops,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: tokens.cached,
        cache_write_tokens: tokens.cache_write,
        reasoning_tokens: reasoning,
        cost_nano_usd: c.nano_usd,
        counted,
        unpriced: c.unpriced,
        ledger_row: None,
    };
    if ledger {
        match serde_json::to_string(&ledger_row(rec, &plan)) {
            Ok(json) => plan.ledger_row = Some(json),
            Err(e) => tracing::error!(record = %rec.id, error = %e, "ledger row not serializable"),
        }
    }
    plan
}

/// What one usage-stream entry writes: every readable record's writes, and
/// with the ledger on one ledger-stream entry holding their rows as a JSON
/// array. Applied as one unit under the entry's marker.
#[derive(Debug, Default)]
pub struct EntryPlan {
    pub ops: Ops,
    /// Records accounted.
    pub records: usize,
    /// Records skipped as unreadable (or with an empty or oversized id).
    pub malformed_records: usize,
}

/// Why an entry's payload was not read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryError {
    /// Not a JSON array (its error class, for the log).
    NotAnArray(&'static str),
}

/// The plan of one entry's payload (a JSON array of usage records), each
/// record parsed once from its own slice; `entry` names it in logs.
pub fn entry_plan(
    entry: &str,
    payload: &str,
    snap: &ConfigSnapshot,
    enc: &Encoders,
    ledger: bool,
) -> Result<EntryPlan, EntryError> {
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_str(payload).map_err(|e| EntryError::NotAnArray(classify(&e)))?;
    let mut plan = EntryPlan::default();
    let mut rows = String::new();
    for (i, item) in items.into_iter().enumerate() {
        match serde_json::from_str::<UsageRecord>(item.get()) {
            Ok(rec) if !rec.id.is_empty() && rec.id.len() <= MAX_RECORD_ID => {
                let p = record_ops(&rec, snap, enc, ledger);
                plan.ops.extend(p.ops);
                if let Some(row) = p.ledger_row {
                    rows.push(if rows.is_empty() { '[' } else { ',' });
                    rows.push_str(&row);
                }
                plan.records += 1;
            }
            Ok(_) => {
                plan.malformed_records += 1;
                tracing::warn!(
                    entry,
                    index = i,
                    "usage record with an empty or oversized id; skipped"
                );
            }
            Err(err) => {
                plan.malformed_records += 1;
                tracing::warn!(
                    entry,
                    index = i,
                    error = classify(&err),
                    "unreadable usage record; skipped"
                );
            }
        }
    }
    if !rows.is_empty() {
        rows.push(']');
        plan.ops
            .xadd(keys::LEDGER_STREAM, keys::LEDGER_FIELD, &rows);
    }
    Ok(plan)
}

/// A JSON error's class; its text may quote the payload and is never logged.
pub fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "eof",
    }
}
