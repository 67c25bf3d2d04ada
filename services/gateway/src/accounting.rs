//! Per-request accounting through the shared batched writer: the design
//! brief's global and per-namespace series, latency and time-to-first-token
//! histograms, and one usage record per request that reached a namespace and
//! a model.
//!
//! A [`RequestGuard`] is created when a request arrives and accounts for it
//! in its `Drop`, so success, error, limit rejection, upstream failure and
//! client disconnect (the handler or body stream dropped unfinished: 499)
//! are each counted exactly once. Nothing here touches Redis: series handles
//! are atomics that the flusher drains. A request's deltas and usage record
//! are one recorder entry, journaled (when `JOURNAL_DIR` is on) before they
//! count: a whole answer is accounted before the handler returns it, a
//! stream before its last chunk is handed to the server
//! ([`RequestGuard::settle`]), so whatever a client received completely
//! survives a SIGKILL of the gateway.

use crate::error::LimitReason;
use crate::lease::Lease;
use crate::namespace::{AuthFailure, ConcurrencySlot, NamespaceRuntime, RetryReason};
use crate::routing::Endpoint;
use crate::usage::{self, Usage};
use aigw_metrics::families::gateway::{self as fam, Reason};
use aigw_metrics::metric::kind::{Counter, Max};
use aigw_metrics::{Handle, NoLabels, Recorder};
use aigw_service::clock;
use aigw_types::{CountText, TokenSource, UsageRecord};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// How a request that nobody finished ended: its client went away (the
/// handler or the body stream was dropped). Never shown to anyone, so not a
/// [`crate::error::GatewayError`]; recorded as nginx does.
pub const CLIENT_DISCONNECTED: (u16, &str) = (499, "client_disconnected");

/// Process-wide accounting handles.
pub struct Accounting {
    pub recorder: Recorder,
    global_requests: Handle<Counter>,
    global_errors: Handle<Counter>,
    global_response_time: Handle<Counter>,
    global_last_request: Handle<Max>,
    auth_failures: [Handle<Counter>; 4],
    usage_dropped: Handle<Counter>,
    live: AtomicUsize,
}

impl Accounting {
    pub fn new(recorder: Recorder) -> Self {
        Accounting {
            global_requests: fam::GLOBAL_REQUESTS.series(&recorder, &NoLabels),
            global_errors: fam::GLOBAL_ERRORS.series(&recorder, &NoLabels),
            global_response_time: fam::GLOBAL_RESPONSE_TIME.series(&recorder, &NoLabels),
            global_last_request: fam::GLOBAL_LAST_REQUEST_TIME.series(&recorder, &NoLabels),
            auth_failures: AuthFailure::ALL
                .map(|r| fam::AUTH_FAILURES.series(&recorder, &Reason { reason: r.as_str() })),
            usage_dropped: fam::USAGE_DROPPED.series(&recorder, &NoLabels),
            recorder,
            live: AtomicUsize::new(0),
        }
    }

    /// Requests being handled right now (guards alive).
    pub fn live_requests(&self) -> usize {
        self.live.load(Relaxed)
    }

    /// Starts accounting for one request.
    pub fn start(self: &Arc<Self>, endpoint: Endpoint) -> RequestGuard {
        self.live.fetch_add(1, Relaxed);
        let started_at_ms = clock::now_ms();
        RequestGuard {
            acc: self.clone(),
            start: Instant::now(),
            started_at_ms,
            record_id: new_record_id(started_at_ms),
            endpoint,
            ns: None,
            api_key_id: None,
            model: None,
            instance_id: None,
            tpm_limited: false,
            stream: false,
            ttft_us: None,
            usage: None,
            upstream_answered: false,
            request_body: None,
            completion: Completion::None,
            kept_bytes: 0,
            slot: None,
            lease: None,
            outcome: None,
            in_flight: false,
            settled: false,
            auth_failure: None,
            rejection: None,
            retries: [0; RetryReason::ALL.len()],
        }
    }
}

/// What the upstream answered, kept only to count tokens when it reported
/// no usage.
pub enum Completion {
    None,
    /// A whole JSON answer.
    Body(Bytes),
    /// Whole SSE events of a stream, in order, as read (see
    /// [`crate::sse::payloads`]).
    Events(Vec<Bytes>),
}

/// Accounts for one request when dropped. See the module doc.
pub struct RequestGuard {
    acc: Arc<Accounting>,
    start: Instant,
    started_at_ms: i64,
    /// Unique id of the usage record (uuid v7), also the `x-request-id`
    /// unless the client sent its own.
    pub record_id: String,
    endpoint: Endpoint,
    ns: Option<Arc<NamespaceRuntime>>,
    api_key_id: Option<Arc<str>>,
    model: Option<Arc<str>>,
    instance_id: Option<Arc<str>>,
    tpm_limited: bool,
    stream: bool,
    ttft_us: Option<u64>,
    usage: Option<Usage>,
    upstream_answered: bool,
    request_body: Option<Bytes>,
    completion: Completion,
    /// Bytes held in `completion` (kept as a running total: a long stream
    /// must not re-sum its events on every new one).
    kept_bytes: usize,
    slot: Option<ConcurrencySlot>,
    /// The fleet-wide concurrency lease, released with the slot.
    lease: Option<Lease>,
    outcome: Option<(u16, Option<&'static str>)>,
    /// Counted in the namespace's in-flight gauge (from when its body was
    /// read: a client still sending is not in flight yet).
    in_flight: bool,
    /// Accounted already ([`RequestGuard::settle`]).
    settled: bool,
    /// Why its key was refused, if it was.
    auth_failure: Option<AuthFailure>,
    /// The limit that refused it, if one did.
    rejection: Option<LimitReason>,
    /// Attempts sent again to another instance, per reason.
    retries: [u32; RetryReason::ALL.len()],
}

/// Cap on stream payload bytes kept for counting, so a huge answer without
/// usage cannot grow memory without bound.
const MAX_KEPT_COMPLETION: usize = 4 * 1024 * 1024;

impl RequestGuard {
    /// The request belongs to this namespace from now on.
    pub fn set_namespace(&mut self, ns: Arc<NamespaceRuntime>) {
        self.ns = Some(ns);
    }

    /// The request is in flight: its body has arrived (or it has none) and
    /// it goes on to routing and the upstream.
    pub fn enter_in_flight(&mut self) {
        if let (Some(ns), false) = (&self.ns, self.in_flight) {
            ns.concurrent.add(1);
            self.in_flight = true;
        }
    }

    /// The API key the request authenticated with (its id).
    pub fn set_api_key(&mut self, id: Arc<str>) {
        self.api_key_id = Some(id);
    }

    pub fn namespace(&self) -> Option<&Arc<NamespaceRuntime>> {
        self.ns.as_ref()
    }

    /// The configured model the request resolved to: a usage record will be
    /// written.
    pub fn set_model(&mut self, model: Arc<str>, stream: bool, body: Bytes, tpm_limited: bool) {
        self.model = Some(model);
        self.stream = stream;
        self.request_body = Some(body);
        self.tpm_limited = tpm_limited;
    }

    /// The answer is relayed as a stream (the upstream sent one even when
    /// the request did not ask).
    pub fn set_streamed(&mut self) {
        self.stream = true;
    }

    pub fn set_lease(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    pub fn set_slot(&mut self, slot: ConcurrencySlot) {
        self.slot = Some(slot);
    }

    pub fn set_instance(&mut self, id: Arc<str>) {
        self.instance_id = Some(id);
    }

    /// The first byte of the answer arrived now.
    pub fn mark_first_byte(&mut self) {
        self.mark_first_byte_at(Instant::now());
    }

    /// The first byte of the answer arrived at `at`.
    pub fn mark_first_byte_at(&mut self, at: Instant) {
        if self.ttft_us.is_none() {
            self.ttft_us = Some(at.saturating_duration_since(self.start).as_micros() as u64);
        }
    }

    pub fn set_upstream_answered(&mut self) {
        self.upstream_answered = true;
    }

    pub fn set_usage(&mut self, usage: Usage) {
        self.usage = Some(usage);
    }

    pub fn has_usage(&self) -> bool {
        self.usage.is_some()
    }

    pub fn set_completion_body(&mut self, body: Bytes) {
        self.completion = Completion::Body(body);
    }

    /// Keeps whole stream events, as read, for counting (bounded).
    pub fn keep_stream_events(&mut self, events: Bytes) {
        if let Completion::None = self.completion {
            self.completion = Completion::Events(Vec::new());
        }
        if let Completion::Events(v) = &mut self.completion {
            if self.kept_bytes + events.len() <= MAX_KEPT_COMPLETION {
                self.kept_bytes += events.len();
                v.push(events);
            }
        }
    }

    /// Its key was refused (counted with the request).
    pub fn count_auth_failure(&mut self, reason: AuthFailure) {
        self.auth_failure = Some(reason);
    }

    /// A limit refused the request (counted with it).
    pub fn count_rejection(&mut self, reason: LimitReason) {
        self.rejection = Some(reason);
    }

    /// The request goes to another instance after a failed attempt
    /// (counted with it).
    pub fn count_retry(&mut self, reason: RetryReason) {
        self.retries[reason as usize] += 1;
    }

    /// Whether a usage record will be written for this request.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The status and error kind the request ended with.
    pub fn finish(&mut self, status: u16, error_kind: Option<&'static str>) {
        self.outcome = Some((status, error_kind));
    }

    /// Accounts for the request now (once): one journaled entry of the
    /// recorder. Streams call it before their last chunk leaves, so a
    /// request whose answer the client got completely is in the journal.
    pub fn settle(&mut self) {
        if !self.settled {
            self.settled = true;
            self.account();
        }
    }

    fn account(&mut self) {
        let (status, kind) = self
            .outcome
            .take()
            .unwrap_or((CLIENT_DISCONNECTED.0, Some(CLIENT_DISCONNECTED.1)));
        let dur_us = self.start.elapsed().as_micros() as u64;
        let acc = Arc::clone(&self.acc);
        let failed = status >= 400;
        let mut entry = acc.recorder.entry();
        entry.inc(&acc.global_requests);
        if failed {
            entry.inc(&acc.global_errors);
        }
        entry.add(&acc.global_response_time, dur_us as i64);
        entry.raise(
            &acc.global_last_request,
            self.started_at_ms + (dur_us / 1000) as i64,
        );
        if let Some(reason) = self.auth_failure {
            entry.inc(&acc.auth_failures[reason as usize]);
        }
        let Some(ns) = self.ns.take() else {
            entry.commit();
            return;
        };
        entry.inc(&ns.requests);
        if failed {
            entry.inc(&ns.failed);
        } else {
            entry.inc(&ns.successful);
        }
        entry.add(&ns.response_time, dur_us as i64);
        entry.inc(ns.status_series(status));
        entry.observe(&ns.latency, dur_us);
        if let Some(t) = self.ttft_us {
            entry.observe(&ns.ttft, t);
        }
        if let Some(reason) = self.rejection {
            entry.inc(&ns.rejections[reason.index()]);
        }
        for (n, h) in self.retries.iter().zip(&ns.retries) {
            if *n > 0 {
                entry.add(h, i64::from(*n));
            }
        }
        if let Some(model) = self.model.take() {
            let tokens = self.tokens();
            let record = self.usage_record(&ns.code, &model, status, kind, dur_us, tokens);
            if self.tpm_limited {
                // Upstream-reported counts are untrusted: saturate.
                let tokens = record
                    .prompt_tokens
                    .saturating_add(record.completion_tokens)
                    .saturating_add(
                        record
                            .count_text
                            .as_ref()
                            .map(usage::estimate_tokens)
                            .unwrap_or(0),
                    );
                // Taken from this replica's TPM slice, settled in the
                // window by the slice settler (`limits`).
                if tokens > 0 {
                    ns.tpm.spend(tokens);
                }
            }
            let mut json = String::with_capacity(RECORD_CAPACITY);
            record.write_json(&mut json);
            entry.record(json);
        }
        let dropped = entry.commit();
        if dropped > 0 {
            acc.usage_dropped.add(dropped as i64);
        }
        if self.in_flight {
            self.in_flight = false;
            ns.concurrent.add(-1);
        }
    }

    /// The record's token counts and where they come from; the text to
    /// count when the upstream reported none (the kept completion is
    /// taken).
    fn tokens(&mut self) -> Tokens {
        let Some(u) = &self.usage else {
            if !self.upstream_answered {
                return Tokens::default();
            }
            let prompt = self
                .request_body
                .as_deref()
                .map(|b| usage::prompt_text(self.endpoint, b))
                .unwrap_or_default();
            let completion = match std::mem::replace(&mut self.completion, Completion::None) {
                Completion::None => String::new(),
                Completion::Body(b) => usage::completion_text(self.endpoint, &b),
                Completion::Events(ev) => usage::stream_completion_text(&crate::sse::payloads(&ev)),
            };
            return Tokens {
                source: TokenSource::Counted,
                count_text: Some(CountText { prompt, completion }),
                ..Tokens::default()
            };
        };
        Tokens {
            prompt: u.prompt_tokens,
            completion: u.completion_tokens,
            cached: u.cached_tokens(),
            cache_write: u.cache_write_tokens(),
            reasoning: u.reasoning_tokens(),
            source: TokenSource::Upstream,
            count_text: None,
        }
    }

    /// The usage record, its strings borrowed from what the guard holds.
    fn usage_record<'a>(
        &'a self,
        ns: &'a str,
        model: &'a str,
        status: u16,
        kind: Option<&'static str>,
        dur_us: u64,
        tokens: Tokens,
    ) -> UsageRecord<&'a str> {
        UsageRecord {
            id: &self.record_id,
            namespace_code: ns,
            api_key_id: self.api_key_id.as_deref(),
            model,
            instance_id: self.instance_id.as_deref(),
            endpoint: self.endpoint.as_str(),
            status,
            error_kind: kind,
            started_at_ms: self.started_at_ms,
            duration_us: dur_us,
            ttft_us: self.ttft_us,
            stream: self.stream,
            prompt_tokens: tokens.prompt,
            completion_tokens: tokens.completion,
            cached_tokens: tokens.cached,
            cache_write_tokens: tokens.cache_write,
            reasoning_tokens: tokens.reasoning,
            token_source: tokens.source,
            count_text: tokens.count_text,
        }
    }
}

/// Room reserved for a usage record's JSON: a record with ids, names and
/// all counts is about 350 bytes; only one with text to count is longer.
const RECORD_CAPACITY: usize = 512;

/// A usage record's token counts (see [`RequestGuard::tokens`]).
struct Tokens {
    prompt: u64,
    completion: u64,
    cached: u64,
    cache_write: u64,
    reasoning: u64,
    source: TokenSource,
    count_text: Option<CountText>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            prompt: 0,
            completion: 0,
            cached: 0,
            cache_write: 0,
            reasoning: 0,
            source: TokenSource::None,
            count_text: None,
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.settle();
        // The slot goes before `live` drops so a test that waits for no live
        // requests sees the concurrency count settled too.
        self.slot = None;
        self.lease = None;
        self.acc.live.fetch_sub(1, Relaxed);
    }
}

/// A fresh UUID v7 for `now_ms`, its random part from the thread's RNG.
/// (`Uuid::now_v7` reads the OS RNG per id — a syscall — behind a
/// process-wide lock that the HTTP workers contend for.) Ids only need to be
/// unique, not ordered within a millisecond.
pub fn new_record_id(now_ms: i64) -> String {
    let mut random = [0u8; 10];
    rand::Rng::fill(&mut rand::thread_rng(), &mut random);
    let id = uuid::Builder::from_unix_timestamp_millis(now_ms.max(0) as u64, &random).into_uuid();
    // Encoded into a stack buffer: `to_string` goes through `fmt`.
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_unique_uuid_v7_of_the_given_time() {
        let now = 1_700_000_000_123;
        let a = new_record_id(now);
        let b = new_record_id(now);
        assert_ne!(a, b, "same millisecond, different ids");
        for id in [&a, &b] {
            let u = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(u.get_version_num(), 7);
            let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos) / 1_000_000, now as u64);
        }
    }
}
