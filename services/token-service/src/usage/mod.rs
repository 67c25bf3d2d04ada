//! Usage accounting: turns the gateway's usage records into model metrics.
//!
//! [`consumer`] reads the usage stream; this module decides what the
//! records of one stream entry write ([`entry_plan`]): per record, tokens
//! (counted here when the upstream reported none) and cost from the
//! snapshot's prices ([`pricing`]: cache reads and writes at their own
//! prices); per model and namespace, the model series (the input, output,
//! cache-read, cache-write and reasoning tokens separately), summed over
//! the entry's records as they are read. The records of one stream entry
//! are one idempotent unit keyed by the entry id; the same unit appends the
//! entry's priced records to the spend ledger's stream (`usage:ledger`, one
//! ledger entry holding the rows as a JSON array, see `docs/ledger.md`), so
//! the ledger holds a row exactly when the counters hold the record, with
//! the same tokens and cost. Records are read with their strings borrowed
//! from the payload and rows written straight into the ledger entry
//! ([`record`]): nothing is allocated per field.
//!
//! Labels stay bounded: a model or namespace missing from the snapshot is
//! recorded as `other` (the gateway only forwards configured models, so this
//! only happens for records of models deleted since).

pub mod consumer;
pub mod pricing;
pub mod record;

use crate::chat::{count_chat, ChatCountRequest, ChatMessage};
use crate::tokenize::{models, Encoders, Encoding};
use aigw_metrics::families::token_service as f;
use aigw_metrics::{keys, Counter, HistDelta, Histogram, Kind, LabelSet, NoLabels, Ops};
use aigw_types::{BudgetMonth, ConfigSnapshot, CountText, ModelConfig, TokenSource};
use record::{LedgerRowView, RecordView, RowStr};

/// Scope of the idempotence markers, one per usage-stream entry
/// (`metrics:once:usage-entry:{entry id}`).
pub const ONCE_SCOPE: &str = "usage-entry";

/// Record ids longer than this are treated as malformed.
pub const MAX_RECORD_ID: usize = 256;

/// Label value for models and namespaces not in the snapshot.
pub const OTHER: &str = "other";

/// Prompt and completion tokens of a record's text, for a record whose
/// upstream did not report usage.
///
/// The prompt of a chat record may be the messages as JSON (an array of
/// messages, or an object with `messages` and `tools`): then the chat
/// per-message accounting applies. Anything else is counted as plain text.
pub fn count_record_text(
    enc: &Encoders,
    e: Encoding,
    model: &str,
    endpoint: &str,
    t: &CountText,
) -> (u64, u64) {
    let prompt = chat_prompt_tokens(enc, e, model, endpoint, &t.prompt)
        .unwrap_or_else(|| enc.count(e, &t.prompt) as u64);
    (prompt, enc.count(e, &t.completion) as u64)
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

fn cap_tokens(rec: &RecordView, what: &'static str, v: u64) -> u64 {
    if v > MAX_TOKENS_PER_RECORD {
        tracing::warn!(record = %rec.id, what, reported = v, cap = MAX_TOKENS_PER_RECORD,
            "implausible token count in a usage record; capped");
        MAX_TOKENS_PER_RECORD
    } else {
        v
    }
}

/// What one record is accounted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priced {
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
}

/// Tokens and cost of one record, priced at `model`'s prices (`None`: a
/// model not in the snapshot).
fn price(
    rec: &RecordView,
    model: Option<&ModelConfig>,
    snap: &ConfigSnapshot,
    enc: &Encoders,
) -> Priced {
    let mut counted = false;
    let (mut prompt, mut completion) = (
        cap_tokens(rec, "prompt_tokens", rec.prompt_tokens),
        cap_tokens(rec, "completion_tokens", rec.completion_tokens),
    );
    if rec.token_source == TokenSource::Counted {
        if let Some(text) = &rec.count_text {
            let e = models::resolve(Some(snap), &rec.model)
                .map(|(e, _)| e)
                .unwrap_or(Encoding::O200kBase);
            (prompt, completion) = count_record_text(enc, e, &rec.model, &rec.endpoint, text);
            counted = true;
        }
    }
    let tokens = pricing::Tokens::new(
        prompt,
        completion,
        rec.cached_tokens,
        rec.cache_write_tokens,
    );
    let c = pricing::cost(&tokens, &pricing::Prices::of(model));
    Priced {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: tokens.cached,
        cache_write_tokens: tokens.cache_write,
        reasoning_tokens: rec.reasoning_tokens.min(completion),
        cost_nano_usd: c.nano_usd,
        counted,
        unpriced: c.unpriced,
    }
}

/// The spend ledger's row of a record, with the tokens and cost accounted.
fn ledger_row<'r>(rec: &'r RecordView, p: &Priced) -> LedgerRowView<'r> {
    LedgerRowView {
        request_id: RowStr::of(&rec.id),
        started_at_ms: rec.started_at_ms,
        namespace_code: RowStr::of(&rec.namespace_code),
        api_key_id: rec.api_key_id.as_ref().map(RowStr::of),
        model: RowStr::of(&rec.model),
        instance_id: rec.instance_id.as_ref().map(RowStr::of),
        endpoint: RowStr::of(&rec.endpoint),
        stream: rec.stream,
        status: rec.status,
        error_kind: rec.error_kind.as_ref().map(RowStr::of),
        prompt_tokens: p.prompt_tokens,
        completion_tokens: p.completion_tokens,
        cached_tokens: p.cached_tokens,
        cache_write_tokens: p.cache_write_tokens,
        reasoning_tokens: p.reasoning_tokens,
        estimated: p.counted,
        cost_nano_usd: p.cost_nano_usd,
        duration_us: rec.duration_us,
        ttft_us: rec.ttft_us,
    }
}

/// A counter's delta summed over records. A sum that would pass `i64` is
/// cut: the part so far becomes a write of its own, so the writes add up
/// to the same total as one write per record.
#[derive(Debug, Default)]
struct Sum {
    total: i64,
    cut: Vec<i64>,
}

impl Sum {
    fn add(&mut self, v: i64) {
        match self.total.checked_add(v) {
            Some(t) => self.total = t,
            None => {
                self.cut.push(self.total);
                self.total = v;
            }
        }
    }

    fn write<L: LabelSet>(&self, ops: &mut Ops, m: &Counter<L>, labels: &L::Values<'_>) {
        for v in self.cut.iter().chain([&self.total]) {
            ops.counter(m, labels, *v);
        }
    }
}

/// Histogram observations summed over records; cut like [`Sum`] so that
/// the stored `sum` gets what one write per record would have added.
#[derive(Debug)]
struct Hist {
    bounds: &'static [u64],
    delta: HistDelta,
    cut: Vec<HistDelta>,
}

impl Hist {
    fn of<L: LabelSet>(m: &Histogram<L>) -> Hist {
        let bounds = match m.family().kind {
            Kind::Histogram(b) => b,
            _ => &[],
        };
        Hist {
            bounds,
            delta: HistDelta::new(bounds),
            cut: Vec::new(),
        }
    }

    fn observe(&mut self, v: u64) {
        let fits = self
            .delta
            .sum
            .checked_add(v)
            .is_some_and(|s| s <= i64::MAX as u64);
        if !fits && self.delta.count > 0 {
            let full = std::mem::replace(&mut self.delta, HistDelta::new(self.bounds));
            self.cut.push(full);
        }
        self.delta.observe(self.bounds, v);
    }

    fn write<L: LabelSet>(&self, ops: &mut Ops, m: &Histogram<L>, labels: &L::Values<'_>) {
        for d in self.cut.iter().chain([&self.delta]) {
            ops.histogram(m, labels, d);
        }
    }
}

/// The model series of one model and namespace label, summed over the
/// records of an entry.
#[derive(Debug)]
struct Series<'s> {
    labels: f::ModelNs<'s>,
    requests: Sum,
    errors: Sum,
    tokens_in: Sum,
    tokens_out: Sum,
    cache_read: Sum,
    cache_write: Sum,
    reasoning: Sum,
    cost: Sum,
    duration: Hist,
    ttft: Hist,
}

impl<'s> Series<'s> {
    fn new(labels: f::ModelNs<'s>) -> Self {
        Series {
            labels,
            requests: Sum::default(),
            errors: Sum::default(),
            tokens_in: Sum::default(),
            tokens_out: Sum::default(),
            cache_read: Sum::default(),
            cache_write: Sum::default(),
            reasoning: Sum::default(),
            cost: Sum::default(),
            duration: Hist::of(&f::MODEL_DURATION),
            ttft: Hist::of(&f::MODEL_TTFT),
        }
    }

    fn add(&mut self, rec: &RecordView, p: &Priced) {
        self.requests.add(1);
        self.errors
            .add(i64::from(rec.status >= 400 || rec.error_kind.is_some()));
        self.tokens_in.add(clamp(p.prompt_tokens));
        self.tokens_out.add(clamp(p.completion_tokens));
        self.cache_read.add(clamp(p.cached_tokens));
        self.cache_write.add(clamp(p.cache_write_tokens));
        self.reasoning.add(clamp(p.reasoning_tokens));
        self.cost.add(clamp(p.cost_nano_usd));
        self.duration.observe(rec.duration_us);
        if let Some(t) = rec.ttft_us {
            self.ttft.observe(t);
        }
    }

    fn write(&self, ops: &mut Ops) {
        let l = &self.labels;
        self.requests.write(ops, &f::MODEL_REQUESTS, l);
        self.errors.write(ops, &f::MODEL_ERRORS, l);
        self.tokens_in.write(ops, &f::MODEL_TOKENS_IN, l);
        self.tokens_out.write(ops, &f::MODEL_TOKENS_OUT, l);
        self.cache_read.write(ops, &f::MODEL_TOKENS_CACHE_READ, l);
        self.cache_write.write(ops, &f::MODEL_TOKENS_CACHE_WRITE, l);
        self.reasoning.write(ops, &f::MODEL_TOKENS_REASONING, l);
        self.cost.write(ops, &f::MODEL_COST, l);
        self.duration.write(ops, &f::MODEL_DURATION, l);
        self.ttft.write(ops, &f::MODEL_TTFT, l);
    }
}

/// Index of `name` among `names`, remembering the indexes found: the
/// records of an entry name few models and namespaces, so most lookups
/// compare with those few instead of the whole snapshot.
fn find<T>(
    seen: &mut Vec<usize>,
    all: &[T],
    key: impl Fn(&T) -> &str,
    name: &str,
) -> Option<usize> {
    if let Some(&i) = seen.iter().find(|&&i| key(&all[i]) == name) {
        return Some(i);
    }
    let i = all.iter().position(|t| key(t) == name)?;
    seen.push(i);
    Some(i)
}

/// Indexes of a series' model and namespace in the snapshot.
type SeriesKey = (Option<usize>, Option<usize>);

/// The writes of an entry's records, summed per series as they are read:
/// the entry is one unit, so one write per series and entry adds what
/// one write per record did.
struct EntrySums<'s> {
    snap: &'s ConfigSnapshot,
    models_seen: Vec<usize>,
    namespaces_seen: Vec<usize>,
    /// Keyed by the indexes of model and namespace in the snapshot (`None`:
    /// not there, labelled [`OTHER`]).
    series: Vec<(SeriesKey, Series<'s>)>,
    month_cost: Vec<(&'s str, BudgetMonth, Sum)>,
    unpriced: Vec<(&'s str, i64)>,
    processed: i64,
    counted: i64,
}

impl<'s> EntrySums<'s> {
    fn new(snap: &'s ConfigSnapshot) -> Self {
        EntrySums {
            snap,
            models_seen: Vec::new(),
            namespaces_seen: Vec::new(),
            series: Vec::new(),
            month_cost: Vec::new(),
            unpriced: Vec::new(),
            processed: 0,
            counted: 0,
        }
    }

    /// Prices one record and adds it; returns what it was accounted as.
    fn add(&mut self, rec: &RecordView, enc: &Encoders) -> Priced {
        let snap = self.snap;
        let m = find(
            &mut self.models_seen,
            &snap.models,
            |m| m.name.as_str(),
            &rec.model,
        );
        let n = find(
            &mut self.namespaces_seen,
            &snap.namespaces,
            |n| n.code.as_str(),
            &rec.namespace_code,
        );
        let model_cfg = m.map(|i| &snap.models[i]);
        let p = price(rec, model_cfg, snap, enc);
        let model = model_cfg.map_or(OTHER, |c| c.name.as_str());
        let ns = n.map_or(OTHER, |i| snap.namespaces[i].code.as_str());
        let at = match self.series.iter().position(|(k, _)| *k == (m, n)) {
            Some(i) => i,
            None => {
                let labels = f::ModelNs {
                    model,
                    namespace_code: ns,
                };
                self.series.push(((m, n), Series::new(labels)));
                self.series.len() - 1
            }
        };
        self.series[at].1.add(rec, &p);
        if p.cost_nano_usd > 0 {
            let month = BudgetMonth::of_unix_ms(rec.started_at_ms);
            match self
                .month_cost
                .iter_mut()
                .find(|(code, mo, _)| *code == ns && *mo == month)
            {
                Some((_, _, s)) => s.add(clamp(p.cost_nano_usd)),
                None => {
                    let mut s = Sum::default();
                    s.add(clamp(p.cost_nano_usd));
                    self.month_cost.push((ns, month, s));
                }
            }
        }
        self.processed += 1;
        self.counted += i64::from(p.counted);
        if p.unpriced {
            match self.unpriced.iter_mut().find(|(m, _)| *m == model) {
                Some((_, k)) => *k += 1,
                None => self.unpriced.push((model, 1)),
            }
        }
        p
    }

    fn write(&self, ops: &mut Ops) {
        for (_, s) in &self.series {
            s.write(ops);
        }
        for &(ns, month, ref s) in &self.month_cost {
            let month = month.label();
            let l = f::NsMonth {
                namespace_code: ns,
                month: &month,
            };
            s.write(ops, &f::NS_MONTH_COST, &l);
        }
        if self.processed > 0 {
            ops.counter(&f::USAGE_PROCESSED, &NoLabels, self.processed);
        }
        if self.counted > 0 {
            ops.counter(&f::USAGE_COUNTED, &NoLabels, self.counted);
        }
        for &(model, k) in &self.unpriced {
            ops.counter(&f::USAGE_UNPRICED, &f::Model { model }, k);
        }
    }
}

/// What one usage-stream entry writes: its records' model series (one
/// write per series, summed over the records), and with the ledger on one
/// ledger-stream entry holding their rows as a JSON array. Applied as one
/// unit under the entry's marker.
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

/// The plan of one entry's payload (a JSON array of usage records), the
/// records' strings borrowed from it; `entry` names it in logs.
///
/// The payload is read in one pass when every record in it is readable
/// (the gateway writes nothing else); otherwise it is read again, record
/// by record, so that an unreadable record is skipped and the others are
/// accounted.
pub fn entry_plan(
    entry: &str,
    payload: &str,
    snap: &ConfigSnapshot,
    enc: &Encoders,
    ledger: bool,
) -> Result<EntryPlan, EntryError> {
    let mut plan = EntryPlan::default();
    let mut sums = EntrySums::new(snap);
    // Rows are about as long as the records they come from.
    let mut rows = String::with_capacity(if ledger { payload.len() } else { 0 });
    let mut take = |i: usize, rec: Result<&RecordView<'_>, &'static str>| match rec {
        Ok(rec) if !rec.id.is_empty() && rec.id.len() <= MAX_RECORD_ID => {
            let p = sums.add(rec, enc);
            if ledger {
                rows.push(if rows.is_empty() { '[' } else { ',' });
                ledger_row(rec, &p).write(&mut rows);
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
        Err(class) => {
            plan.malformed_records += 1;
            tracing::warn!(
                entry,
                index = i,
                error = class,
                "unreadable usage record; skipped"
            );
        }
    };
    match serde_json::from_str::<Vec<RecordView>>(payload) {
        Ok(records) => {
            for (i, rec) in records.iter().enumerate() {
                take(i, Ok(rec));
            }
        }
        Err(_) => {
            let items: Vec<&serde_json::value::RawValue> =
                serde_json::from_str(payload).map_err(|e| EntryError::NotAnArray(classify(&e)))?;
            for (i, item) in items.into_iter().enumerate() {
                let rec = serde_json::from_str::<RecordView>(item.get());
                take(i, rec.as_ref().map_err(classify));
            }
        }
    }
    sums.write(&mut plan.ops);
    if !rows.is_empty() {
        rows.push(']');
        plan.ops.xadd(keys::LEDGER_STREAM, keys::LEDGER_FIELD, rows);
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

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_types::ModelConfig;
    use rust_decimal::Decimal;

    fn record(id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "namespace_code": "team-a", "model": "gpt-4o-mini",
            "instance_id": "i\"1", "endpoint": "chat", "status": 200,
            "started_at_ms": 1_764_000_000_000i64, "duration_us": 1500, "ttft_us": 700,
            "stream": false, "prompt_tokens": 1000, "completion_tokens": 500,
            "token_source": "upstream"
        })
    }

    /// A payload with unreadable records is read record by record; the
    /// readable ones are planned exactly as in a payload of only them,
    /// which is read in one pass.
    #[test]
    fn unreadable_records_leave_the_plan_of_the_others_as_it_is() {
        let mut snap = ConfigSnapshot::default();
        snap.models.push(ModelConfig {
            name: "gpt-4o-mini".into(),
            encoding: "o200k_base".into(),
            input_price_per_1m: Some(Decimal::new(15, 2)),
            output_price_per_1m: Some(Decimal::new(60, 2)),
            cached_input_price_per_1m: None,
            cache_write_price_per_1m: None,
            context_window: None,
            enabled: true,
        });
        let enc = Encoders::load().unwrap();
        let clean = serde_json::json!([record("a"), record("b")]).to_string();
        let mixed = serde_json::json!([record("a"), 42, {"id": "half"}, record("b"), record("")])
            .to_string();
        let clean = entry_plan("1-0", &clean, &snap, &enc, true).unwrap();
        let mixed = entry_plan("2-0", &mixed, &snap, &enc, true).unwrap();
        assert_eq!((clean.records, clean.malformed_records), (2, 0));
        assert_eq!((mixed.records, mixed.malformed_records), (2, 3));
        assert_eq!(format!("{:?}", mixed.ops), format!("{:?}", clean.ops));
        // 1000 × 0.15 + 500 × 0.60 per 1M = 0.00045 USD per record.
        assert!(format!("{:?}", clean.ops).contains(r#"\"cost_nano_usd\":450000"#));
        assert!(matches!(
            entry_plan("3-0", "{\"a\": 1}", &snap, &enc, true),
            Err(EntryError::NotAnArray("data"))
        ));
    }
}
