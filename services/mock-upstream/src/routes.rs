//! The OpenAI-compatible endpoints and the mock's own `/mock/stats`.

use crate::config::{Config, MAX_CHUNKS, MAX_DELAY_MS, MAX_EMBEDDING_DIM};
use crate::error::MockError;
use crate::stream::{self, Shape, StreamPlan};
use crate::words::{EmbeddingInput, MessageWords, Words};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shared by every worker: the config plus counters tests can read.
pub struct State {
    pub config: Config,
    models_body: Bytes,
    seq: AtomicU64,
    chat: AtomicU64,
    completions: AtomicU64,
    embeddings: AtomicU64,
    injected: AtomicU64,
    last: Mutex<LastRequest>,
}

/// What the last API request carried, so tests can check what a gateway
/// forwarded (the upstream key it chose, the model name it rewrote).
#[derive(Default, Clone, Serialize)]
struct LastRequest {
    path: Option<String>,
    model: Option<String>,
    authorization: Option<String>,
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
            config,
            models_body,
            seq: AtomicU64::new(0),
            chat: AtomicU64::new(0),
            completions: AtomicU64::new(0),
            embeddings: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            last: Mutex::new(LastRequest::default()),
        }
    }

    fn remember(&self, req: &HttpRequest, model: &str) {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if let Ok(mut last) = self.last.lock() {
            last.path = Some(req.path().to_string());
            last.model = Some(model.to_string());
            last.authorization = auth;
        }
    }
}

/// The optional per-request `"mock"` object; absent fields fall back to the config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockOverrides {
    latency_ms: Option<u64>,
    status: Option<u16>,
    chunks: Option<u32>,
    chunk_delay_ms: Option<u64>,
    no_usage: Option<bool>,
    abort_after_chunks: Option<u32>,
}

/// What this one request will do, after overrides.
struct Plan {
    latency: Duration,
    fail_with: Option<u16>,
    chunks: u32,
    chunk_delay: Duration,
    no_usage: bool,
    abort_after: Option<u32>,
}

impl State {
    fn plan(&self, o: Option<MockOverrides>) -> Result<Plan, MockError> {
        let o = o.unwrap_or_default();
        let c = &self.config;
        let bad = |m: String| Err(MockError::InvalidRequest(m));
        if o.latency_ms.unwrap_or(0) > MAX_DELAY_MS || o.chunk_delay_ms.unwrap_or(0) > MAX_DELAY_MS
        {
            return bad(format!("mock delays must be at most {MAX_DELAY_MS} ms"));
        }
        if o.chunks.unwrap_or(0) > MAX_CHUNKS {
            return bad(format!("mock.chunks must be at most {MAX_CHUNKS}"));
        }
        let fail_with = match o.status {
            Some(s) if !(200..=599).contains(&s) => {
                return bad(format!("mock.status must be 200..599, got {s}"))
            }
            Some(s) if s >= 400 => Some(s),
            Some(_) => None,
            None if c.error_rate > 0.0 && rand::random::<f64>() < c.error_rate => {
                Some(c.error_status)
            }
            None => None,
        };
        Ok(Plan {
            latency: o.latency_ms.map(Duration::from_millis).unwrap_or(c.latency),
            fail_with,
            chunks: o.chunks.unwrap_or(c.chunks),
            chunk_delay: o
                .chunk_delay_ms
                .map(Duration::from_millis)
                .unwrap_or(c.chunk_delay),
            no_usage: o.no_usage.unwrap_or(c.no_usage),
            abort_after: o.abort_after_chunks,
        })
    }

    /// Waits out the planned latency and fails if the plan says so.
    async fn start(&self, plan: &Plan) -> Result<(), MockError> {
        if !plan.latency.is_zero() {
            tokio::time::sleep(plan.latency).await;
        }
        if let Some(s) = plan.fail_with {
            self.injected.fetch_add(1, Relaxed);
            return Err(MockError::Injected(s));
        }
        Ok(())
    }

    fn next_id(&self) -> u64 {
        self.seq.fetch_add(1, Relaxed) + 1
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|e| MockError::InvalidRequest(e.to_string()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: MessageWords,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl Usage {
    fn new(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
        }
    }
}

/// Completion tokens after `max_tokens`, and whether that limit cut the answer.
fn completion_len(chunks: u32, max: Option<u32>) -> (u32, &'static str) {
    match max {
        Some(m) if m < chunks => (m, "length"),
        _ => (chunks, "stop"),
    }
}

pub async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, MockError> {
    state.chat.fetch_add(1, Relaxed);
    let r: ChatRequest = parse(&body)?;
    state.remember(&req, &r.model);
    let plan = state.plan(r.mock)?;
    state.start(&plan).await?;
    let (n, finish) = completion_len(plan.chunks, r.max_completion_tokens.or(r.max_tokens));
    let prompt = r.messages.0;
    let id = state.next_id();
    let created = unix_now();

    if r.stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        let sp = StreamPlan {
            shape: Shape::Chat,
            id,
            created,
            model_json: serde_json::to_string(&r.model).unwrap_or_else(|_| "\"\"".into()),
            chunks: n,
            finish,
            chunk_delay: plan.chunk_delay,
            usage: (include_usage && !plan.no_usage).then_some((prompt, n as u64)),
            usage_null: include_usage,
            abort_after: plan.abort_after,
        };
        return Ok(stream::response(sp));
    }

    #[derive(Serialize)]
    struct Message {
        role: &'static str,
        content: String,
    }
    #[derive(Serialize)]
    struct Choice {
        index: u32,
        message: Message,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct Completion<'a> {
        id: String,
        object: &'static str,
        created: u64,
        model: &'a str,
        system_fingerprint: &'static str,
        choices: [Choice; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    }
    let out = Completion {
        id: format!("chatcmpl-mock-{id}"),
        object: "chat.completion",
        created,
        model: &r.model,
        system_fingerprint: "fp_mock",
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: stream::text(n),
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: (!plan.no_usage).then(|| Usage::new(prompt, n as u64)),
    };
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    #[serde(default)]
    prompt: Words,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

pub async fn completions(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, MockError> {
    state.completions.fetch_add(1, Relaxed);
    let r: CompletionRequest = parse(&body)?;
    state.remember(&req, &r.model);
    let plan = state.plan(r.mock)?;
    state.start(&plan).await?;
    let (n, finish) = completion_len(plan.chunks, r.max_tokens);
    let prompt = r.prompt.0;
    let id = state.next_id();
    let created = unix_now();

    if r.stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        return Ok(stream::response(StreamPlan {
            shape: Shape::Completion,
            id,
            created,
            model_json: serde_json::to_string(&r.model).unwrap_or_else(|_| "\"\"".into()),
            chunks: n,
            finish,
            chunk_delay: plan.chunk_delay,
            usage: (include_usage && !plan.no_usage).then_some((prompt, n as u64)),
            usage_null: include_usage,
            abort_after: plan.abort_after,
        }));
    }

    #[derive(Serialize)]
    struct Choice {
        text: String,
        index: u32,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct Completion<'a> {
        id: String,
        object: &'static str,
        created: u64,
        model: &'a str,
        choices: [Choice; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    }
    Ok(HttpResponse::Ok().json(Completion {
        id: format!("cmpl-mock-{id}"),
        object: "text_completion",
        created,
        model: &r.model,
        choices: [Choice {
            text: stream::text(n),
            index: 0,
            logprobs: None,
            finish_reason: finish,
        }],
        usage: (!plan.no_usage).then(|| Usage::new(prompt, n as u64)),
    }))
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

/// A deterministic vector for input `item`: same request, same numbers.
fn vector(item: u32, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| {
            let h = (item as u64 + 1).wrapping_mul(2_654_435_761) ^ (j as u64).wrapping_mul(40_503);
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

pub async fn embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, MockError> {
    state.embeddings.fetch_add(1, Relaxed);
    let r: EmbeddingRequest = parse(&body)?;
    state.remember(&req, &r.model);
    let dim = r.dimensions.unwrap_or(state.config.embedding_dim);
    if dim == 0 || dim > MAX_EMBEDDING_DIM {
        return Err(MockError::InvalidRequest(format!(
            "dimensions must be 1..={MAX_EMBEDDING_DIM}"
        )));
    }
    if r.input.items == 0 {
        return Err(MockError::InvalidRequest("input must not be empty".into()));
    }
    let plan = state.plan(r.mock)?;
    state.start(&plan).await?;

    #[derive(Serialize)]
    struct Embedding {
        object: &'static str,
        index: u32,
        embedding: Vec<f32>,
    }
    #[derive(Serialize)]
    struct EmbeddingUsage {
        prompt_tokens: u64,
        total_tokens: u64,
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Embedding>,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<EmbeddingUsage>,
    }
    let words = r.input.words;
    Ok(HttpResponse::Ok().json(List {
        object: "list",
        data: (0..r.input.items)
            .map(|i| Embedding {
                object: "embedding",
                index: i,
                embedding: vector(i, dim),
            })
            .collect(),
        model: &r.model,
        usage: (!plan.no_usage).then_some(EmbeddingUsage {
            prompt_tokens: words,
            total_tokens: words,
        }),
    }))
}

pub async fn models(state: web::Data<State>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.models_body.clone())
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Request counts per endpoint and the last request's routing facts.
pub async fn stats(state: web::Data<State>) -> HttpResponse {
    let last = state.last.lock().map(|l| l.clone()).unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({
        "requests": {
            "chat_completions": state.chat.load(Relaxed),
            "completions": state.completions.load(Relaxed),
            "embeddings": state.embeddings.load(Relaxed),
        },
        "injected_errors": state.injected.load(Relaxed),
        "last_request": last,
    }))
}

pub async fn not_found() -> Result<HttpResponse, MockError> {
    Err(MockError::NotFound)
}
