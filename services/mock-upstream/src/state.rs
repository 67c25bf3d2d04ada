//! What every worker shares (config, counters, the request journal, the
//! override rules) and the plan of one request: the config, a matching rule
//! and the body's `"mock"` object folded into what this answer will do.

use crate::config::{Config, MAX_CHUNKS, MAX_DELAY_MS, MAX_EXTRA_TOKENS};
use crate::error::{MockError, Provider};
use crate::journal::Journal;
use crate::overrides::{MockOverrides, Rules, ToolCallSpec};
use crate::stream::{Extras, Streams};
use actix_web::HttpRequest;
use bytes::Bytes;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// At most this many spaces of `pad` per content chunk.
pub const MAX_PAD: u32 = 64 * 1024;

/// Every endpoint the mock counts, with its provider and its name in
/// `/mock/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Messages,
    CountTokens,
    AzureChatCompletions,
    AzureEmbeddings,
    GenerateContent,
    StreamGenerateContent,
    EmbedContent,
    BatchEmbedContents,
}

impl Endpoint {
    const ALL: [Endpoint; 11] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
        Endpoint::Messages,
        Endpoint::CountTokens,
        Endpoint::AzureChatCompletions,
        Endpoint::AzureEmbeddings,
        Endpoint::GenerateContent,
        Endpoint::StreamGenerateContent,
        Endpoint::EmbedContent,
        Endpoint::BatchEmbedContents,
    ];

    pub fn provider(self) -> Provider {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings => {
                Provider::OpenAi
            }
            Endpoint::Messages | Endpoint::CountTokens => Provider::Anthropic,
            Endpoint::AzureChatCompletions | Endpoint::AzureEmbeddings => Provider::AzureOpenAi,
            Endpoint::GenerateContent
            | Endpoint::StreamGenerateContent
            | Endpoint::EmbedContent
            | Endpoint::BatchEmbedContents => Provider::Gemini,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions | Endpoint::AzureChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings | Endpoint::AzureEmbeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::GenerateContent => "generate_content",
            Endpoint::StreamGenerateContent => "stream_generate_content",
            Endpoint::EmbedContent => "embed_content",
            Endpoint::BatchEmbedContents => "batch_embed_contents",
        }
    }
}

/// Shared by every worker: the config plus what tests can read back.
pub struct State {
    pub config: Config,
    pub models_body: Bytes,
    seq: AtomicU64,
    counts: [AtomicU64; Endpoint::ALL.len()],
    injected: AtomicU64,
    pub journal: Journal,
    pub rules: Rules,
    pub streams: Arc<Streams>,
    /// Requests whose caller went away while they waited out their latency.
    requests_cancelled: AtomicU64,
    /// Requests waiting out their latency now, and the most at once.
    waiting_now: AtomicU64,
    waiting_max: AtomicU64,
    /// The status of OpenAI's `GET /models` (a gateway's health probe).
    models_status: AtomicU16,
    models_requests: AtomicU64,
}

impl State {
    pub fn new(config: Config) -> State {
        let data: Vec<_> = config
            .models
            .iter()
            .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "mock-upstream"}))
            .collect();
        let models_body =
            Bytes::from(serde_json::json!({"object": "list", "data": data}).to_string());
        State {
            journal: Journal::new(config.record_requests),
            config,
            models_body,
            seq: AtomicU64::new(0),
            counts: Default::default(),
            injected: AtomicU64::new(0),
            rules: Rules::default(),
            streams: Arc::default(),
            requests_cancelled: AtomicU64::new(0),
            waiting_now: AtomicU64::new(0),
            waiting_max: AtomicU64::new(0),
            models_status: AtomicU16::new(200),
            models_requests: AtomicU64::new(0),
        }
    }

    /// Every API request counted so far (model lists not included).
    pub fn total_requests(&self) -> u64 {
        Endpoint::ALL.iter().map(|e| self.count(*e)).sum()
    }

    /// Requests waiting out their latency at once: now, and the most ever.
    pub fn waiting(&self) -> (u64, u64) {
        (
            self.waiting_now.load(Relaxed),
            self.waiting_max.load(Relaxed),
        )
    }

    pub fn requests_cancelled(&self) -> u64 {
        self.requests_cancelled.load(Relaxed)
    }

    /// Sets the status OpenAI's model list answers with (200 by default).
    pub fn set_models_status(&self, status: u16) {
        self.models_status.store(status, Relaxed);
    }

    /// Counts one OpenAI model list request and returns its status.
    pub fn models_requested(&self) -> u16 {
        self.models_requests.fetch_add(1, Relaxed);
        self.models_status.load(Relaxed)
    }

    pub fn models_requests(&self) -> u64 {
        self.models_requests.load(Relaxed)
    }

    /// Counts and records one API request before anything can refuse it, so
    /// a test sees what arrived even when the mock answered 400 or 401.
    pub fn arrived(
        &self,
        endpoint: Endpoint,
        req: &HttpRequest,
        body: &Bytes,
        path_model: Option<&str>,
    ) {
        self.counts[endpoint as usize].fetch_add(1, Relaxed);
        self.journal
            .record(endpoint.provider(), endpoint.name(), req, body, path_model);
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.counts[endpoint as usize].load(Relaxed)
    }

    /// `{provider: {endpoint: count}}` for `/mock/stats`.
    pub fn counts_by_provider(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for p in Provider::ALL {
            let mut m = serde_json::Map::new();
            for e in Endpoint::ALL.iter().filter(|e| e.provider() == p) {
                m.insert(e.name().into(), self.count(*e).into());
            }
            out.insert(p.name().into(), m.into());
        }
        out.into()
    }

    pub fn injected(&self) -> u64 {
        self.injected.load(Relaxed)
    }

    pub fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Relaxed) + 1
    }

    /// What this request will do: the body's `"mock"` object over the first
    /// matching rule over the config.
    pub fn plan(
        &self,
        provider: Provider,
        model: &str,
        body: Option<MockOverrides>,
    ) -> Result<Plan, MockError> {
        let o = match self.rules.take(provider, model) {
            Some(rule) => body.unwrap_or_default().over(rule),
            None => body.unwrap_or_default(),
        };
        let c = &self.config;
        let bad = |m: String| Err(MockError::InvalidRequest(m));
        if o.latency_ms.unwrap_or(0) > MAX_DELAY_MS || o.chunk_delay_ms.unwrap_or(0) > MAX_DELAY_MS
        {
            return bad(format!("mock delays must be at most {MAX_DELAY_MS} ms"));
        }
        if o.pad.unwrap_or(0) > MAX_PAD {
            return bad(format!("mock.pad must be at most {MAX_PAD}"));
        }
        if o.chunks.unwrap_or(0) > MAX_CHUNKS {
            return bad(format!("mock.chunks must be at most {MAX_CHUNKS}"));
        }
        if o.reasoning_tokens.unwrap_or(0) > MAX_CHUNKS as u64 {
            return bad(format!(
                "mock.reasoning_tokens must be at most {MAX_CHUNKS}"
            ));
        }
        if o.cached_tokens.unwrap_or(0) > MAX_EXTRA_TOKENS
            || o.cache_write_tokens.unwrap_or(0) > MAX_EXTRA_TOKENS
        {
            return bad(format!(
                "mock cache token counts must be at most {MAX_EXTRA_TOKENS}"
            ));
        }
        // An explicit kind names the status; an explicit status wins.
        let named = match o.error.as_deref() {
            Some(kind) => Some(
                provider
                    .error_kind(kind)
                    .map_err(MockError::InvalidRequest)?,
            ),
            None => None,
        };
        let error = match (o.status, named) {
            (Some(s), _) if !(200..=599).contains(&s) => {
                return bad(format!("mock.status must be 200..599, got {s}"))
            }
            (Some(s), Some((kind, _))) if s >= 400 => Some(MockError::Injected { status: s, kind }),
            (Some(s), None) if s >= 400 => Some(MockError::injected(provider, s)),
            (Some(_), _) => None,
            (None, Some((kind, status))) => Some(MockError::Injected { status, kind }),
            (None, None) if o.error_after_chunks.is_some() => Some(MockError::injected(
                provider,
                default_stream_error(provider),
            )),
            (None, None) if c.error_rate > 0.0 && rand::random::<f64>() < c.error_rate => {
                Some(MockError::injected(provider, c.error_status))
            }
            (None, None) => None,
        };
        let (fail_with, error_after) = match (error, o.error_after_chunks) {
            (Some(e), Some(k)) => (None, Some((k, e))),
            (e, _) => (e, None),
        };
        let tool_call = o.tool_call.as_ref().and_then(|t| t.spec());
        Ok(Plan {
            latency: o.latency_ms.map(Duration::from_millis).unwrap_or(c.latency),
            fail_with,
            error_after,
            chunks: o.chunks.unwrap_or(c.chunks),
            chunk_delay: o
                .chunk_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(c.chunk_delay),
            no_usage: o.no_usage.unwrap_or(c.no_usage),
            abort_after: o.abort_after_chunks,
            cache_read: o.cached_tokens.or(c.cached_tokens),
            cache_write: o.cache_write_tokens.or(c.cache_write_tokens),
            reasoning: o.reasoning_tokens.or(c.reasoning_tokens),
            tool_call,
            filtered: o.filtered.unwrap_or(false),
            prompt_tokens: o.prompt_tokens,
            completion_tokens: o.completion_tokens,
            force_stream: o.force_stream.unwrap_or(false),
            extras: Extras {
                pad: o.pad.unwrap_or(0),
                gated: o.gated.unwrap_or(false),
                usage_with_choices: o.usage_with_choices.unwrap_or(false),
            },
        })
    }

    /// Plans the request and starts it: the latency waited out, the planned
    /// failure returned. For a request that does not stream, a mid-stream
    /// error is an up-front one.
    pub async fn begin(
        &self,
        provider: Provider,
        model: &str,
        body: Option<MockOverrides>,
        streamed: bool,
    ) -> Result<Plan, MockError> {
        let mut plan = self.plan(provider, model, body)?;
        if !streamed {
            if let Some((_, e)) = plan.error_after.take() {
                plan.fail_with = Some(e);
            }
        }
        self.start(&mut plan).await?;
        Ok(plan)
    }

    /// Waits out the planned latency and fails if the plan says so.
    async fn start(&self, plan: &mut Plan) -> Result<(), MockError> {
        if !plan.latency.is_zero() {
            let now = self.waiting_now.fetch_add(1, Relaxed) + 1;
            self.waiting_max.fetch_max(now, Relaxed);
            let mut waiting = Waiting {
                cancelled: &self.requests_cancelled,
                now: &self.waiting_now,
                done: false,
            };
            tokio::time::sleep(plan.latency).await;
            waiting.done = true;
        }
        if let Some(e) = plan.fail_with.take() {
            self.injected.fetch_add(1, Relaxed);
            return Err(e);
        }
        if plan.error_after.is_some() {
            self.injected.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

/// Counts a request dropped (its caller gone) while it waited.
struct Waiting<'a> {
    cancelled: &'a AtomicU64,
    now: &'a AtomicU64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.now.fetch_sub(1, Relaxed);
        if !self.done {
            self.cancelled.fetch_add(1, Relaxed);
        }
    }
}

/// What a provider's stream most often dies of.
fn default_stream_error(provider: Provider) -> u16 {
    match provider {
        Provider::Anthropic => 529,
        Provider::Gemini => 503,
        Provider::OpenAi | Provider::AzureOpenAi => 500,
    }
}

/// What this one request will do, after overrides.
pub struct Plan {
    pub latency: Duration,
    /// Fail up front with this error.
    pub fail_with: Option<MockError>,
    /// Send this error inside the stream after that many content chunks (a
    /// request that does not stream fails up front with it).
    pub error_after: Option<(u32, MockError)>,
    pub chunks: u32,
    pub chunk_delay: Duration,
    pub no_usage: bool,
    pub abort_after: Option<u32>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
    pub tool_call: Option<ToolCallSpec>,
    pub filtered: bool,
    /// Reported instead of the counted usage (OpenAI shape).
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    /// Stream although the request did not ask (OpenAI shape).
    pub force_stream: bool,
    pub extras: Extras,
}

impl Plan {
    /// `(prompt, completion)` as reported: the counted numbers unless a
    /// knob names others.
    pub fn reported(&self, prompt: u64, completion: u64) -> (u64, u64) {
        (
            self.prompt_tokens.unwrap_or(prompt),
            self.completion_tokens.unwrap_or(completion),
        )
    }
}
