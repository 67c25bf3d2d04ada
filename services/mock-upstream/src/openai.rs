//! OpenAI's endpoints: chat completions, completions, embeddings, models.
//! Azure OpenAI's chat completions and embeddings answer through the same
//! code in Azure's flavour (content filter results, a deployment naming the
//! model).

use crate::answer::{Answer, Finish};
use crate::auth;
use crate::error::{MockError, Provider};
use crate::overrides::MockOverrides;
use crate::state::{Endpoint, Plan, State};
use crate::stream::{self, Shape, StreamPlan, StreamTool, Tracker};
use crate::wire::{embedding_dim, json_str, parse, unix_now, vector};
use crate::words::{EmbeddingInput, MessageWords, Words};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Only a tool's name is read (the default name of a mocked tool call).
#[derive(Deserialize)]
struct Tool {
    function: Option<ToolFunction>,
}

#[derive(Deserialize)]
struct ToolFunction {
    name: String,
}

#[derive(Deserialize)]
struct ChatRequest {
    /// Required, except on Azure's deployment path which names the model.
    #[serde(default)]
    model: Option<String>,
    messages: MessageWords,
    /// `null` is accepted as false, as OpenAI does.
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

#[derive(Serialize)]
struct PromptDetails {
    cached_tokens: u64,
    audio_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetails {
    reasoning_tokens: u64,
    audio_tokens: u64,
    accepted_prediction_tokens: u64,
    rejected_prediction_tokens: u64,
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_tokens_details: Option<CompletionDetails>,
}

impl Usage {
    fn new(prompt: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: None,
            completion_tokens_details: None,
        }
    }

    /// The answer's usage, or the numbers the plan reports instead.
    fn of(a: &Answer, plan: &Plan) -> Usage {
        let (p, c) = plan.reported(a.input_total(), a.output_total());
        let mut u = Usage::new(p, c);
        if a.details {
            u.prompt_tokens_details = Some(PromptDetails {
                cached_tokens: a.cache_read,
                audio_tokens: 0,
            });
            u.completion_tokens_details = Some(CompletionDetails {
                reasoning_tokens: a.reasoning,
                audio_tokens: 0,
                accepted_prediction_tokens: 0,
                rejected_prediction_tokens: 0,
            });
        }
        u
    }
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::Filtered => "content_filter",
    }
}

/// Completion tokens after `max_tokens`, and whether that limit cut the answer.
fn completion_len(chunks: u32, max: Option<u32>) -> (u32, &'static str) {
    match max {
        Some(m) if m < chunks => (m, "length"),
        _ => (chunks, "stop"),
    }
}

/// The Azure deployment (its path names the model), else the body's model,
/// which OpenAI and Azure's v1 path require.
fn model_or<'a>(body: Option<&'a str>, deployment: Option<&'a str>) -> Result<&'a str, MockError> {
    deployment
        .or(body)
        .ok_or_else(|| MockError::InvalidRequest("missing field `model`".into()))
}

/// The bytes of an error sent inside an OpenAI-shaped stream.
fn stream_error(plan: &mut Plan, provider: Provider) -> Option<(u32, Bytes)> {
    let (k, e) = plan.error_after.take()?;
    Some((k, Bytes::from(format!("data: {}\n\n", e.body(provider)))))
}

pub async fn chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, MockError> {
    state.arrived(Endpoint::ChatCompletions, &req, &body, None);
    auth::check(state.config.api_key.as_ref(), Provider::OpenAi, &req)?;
    chat_answer(&state, Provider::OpenAi, None, &body).await
}

/// A chat answer in OpenAI's shape, or in Azure's when `provider` says so
/// (`deployment` then names the model when the body does not).
pub async fn chat_answer(
    state: &State,
    provider: Provider,
    deployment: Option<&str>,
    body: &[u8],
) -> Result<HttpResponse, MockError> {
    let r: ChatRequest = parse(body)?;
    let model = model_or(r.model.as_deref(), deployment)?;
    let asked = r.stream.unwrap_or(false);
    let mut plan = state.begin(provider, model, r.mock, asked).await?;
    let first_tool = r
        .tools
        .as_ref()
        .and_then(|t| t.iter().find_map(|t| t.function.as_ref()))
        .map(|f| f.name.as_str());
    let answer = Answer::new(
        &plan,
        r.messages.0,
        r.max_completion_tokens.or(r.max_tokens),
        first_tool,
    )?;
    let id = state.next_id();
    let created = unix_now();
    let azure = provider == Provider::AzureOpenAi;

    if asked || plan.force_stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        let sp = StreamPlan {
            shape: Shape::Chat,
            azure,
            id,
            created,
            model_json: json_str(model),
            chunks: answer.text,
            finish: finish_reason(answer.finish),
            chunk_delay: plan.chunk_delay,
            usage: (include_usage && !plan.no_usage)
                .then(|| plan.reported(answer.input_total(), answer.output_total())),
            usage_details: answer
                .details
                .then_some((answer.cache_read, answer.reasoning)),
            usage_null: include_usage,
            abort_after: plan.abort_after,
            tool: answer.tool.as_ref().map(|t| StreamTool {
                id,
                name_json: json_str(&t.name),
                pieces_json: t.pieces().into_iter().map(json_str).collect(),
            }),
            filtered: answer.finish == Finish::Filtered,
            error_after: stream_error(&mut plan, provider),
            extras: plan.extras,
            tracker: Tracker::new(state.streams.clone()),
        };
        return Ok(stream::response(sp));
    }

    #[derive(Serialize)]
    struct Function<'a> {
        name: &'a str,
        arguments: &'a str,
    }
    #[derive(Serialize)]
    struct ToolCallOut<'a> {
        id: String,
        #[serde(rename = "type")]
        kind: &'static str,
        function: Function<'a>,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_calls: Option<[ToolCallOut<'a>; 1]>,
    }
    #[derive(Serialize)]
    struct Choice<'a> {
        index: u32,
        message: Message<'a>,
        logprobs: Option<()>,
        finish_reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content_filter_results: Option<Value>,
    }
    #[derive(Serialize)]
    struct Completion<'a> {
        id: String,
        object: &'static str,
        created: u64,
        model: &'a str,
        system_fingerprint: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_filter_results: Option<Value>,
        choices: [Choice<'a>; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    }
    let text = stream::padded_text(answer.text, plan.extras.pad);
    let out = Completion {
        id: format!("chatcmpl-mock-{id}"),
        object: "chat.completion",
        created,
        model,
        system_fingerprint: "fp_mock",
        prompt_filter_results: azure
            .then(|| serde_json::from_str(&stream::azure_prompt_filter_results()).ok())
            .flatten(),
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: (answer.tool.is_none() || !text.is_empty()).then_some(text),
                tool_calls: answer.tool.as_ref().map(|t| {
                    [ToolCallOut {
                        id: format!("call_mock_{id}"),
                        kind: "function",
                        function: Function {
                            name: &t.name,
                            arguments: &t.arguments,
                        },
                    }]
                }),
            },
            logprobs: None,
            finish_reason: finish_reason(answer.finish),
            content_filter_results: azure
                .then(|| {
                    serde_json::from_str(stream::azure_choice_filter_results(
                        answer.finish == Finish::Filtered,
                    ))
                    .ok()
                })
                .flatten(),
        }],
        usage: (!plan.no_usage).then(|| Usage::of(&answer, &plan)),
    };
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
struct CompletionRequest {
    model: String,
    #[serde(default)]
    prompt: Words,
    #[serde(default)]
    stream: Option<bool>,
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
    state.arrived(Endpoint::Completions, &req, &body, None);
    auth::check(state.config.api_key.as_ref(), Provider::OpenAi, &req)?;
    let r: CompletionRequest = parse(&body)?;
    let asked = r.stream.unwrap_or(false);
    let mut plan = state
        .begin(Provider::OpenAi, &r.model, r.mock, asked)
        .await?;
    let (n, finish) = completion_len(plan.chunks, r.max_tokens);
    let prompt = r.prompt.0;
    let id = state.next_id();
    let created = unix_now();

    if asked || plan.force_stream {
        let include_usage = r.stream_options.is_some_and(|o| o.include_usage);
        return Ok(stream::response(StreamPlan {
            shape: Shape::Completion,
            azure: false,
            id,
            created,
            model_json: json_str(&r.model),
            chunks: n,
            finish,
            chunk_delay: plan.chunk_delay,
            usage: (include_usage && !plan.no_usage).then(|| plan.reported(prompt, n as u64)),
            usage_details: None,
            usage_null: include_usage,
            abort_after: plan.abort_after,
            tool: None,
            filtered: false,
            error_after: stream_error(&mut plan, Provider::OpenAi),
            extras: plan.extras,
            tracker: Tracker::new(state.streams.clone()),
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
            text: stream::padded_text(n, plan.extras.pad),
            index: 0,
            logprobs: None,
            finish_reason: finish,
        }],
        usage: (!plan.no_usage).then(|| {
            let (p, c) = plan.reported(prompt, n as u64);
            Usage::new(p, c)
        }),
    }))
}

#[derive(Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    input: EmbeddingInput,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

pub async fn embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, MockError> {
    state.arrived(Endpoint::Embeddings, &req, &body, None);
    auth::check(state.config.api_key.as_ref(), Provider::OpenAi, &req)?;
    embeddings_answer(&state, Provider::OpenAi, None, &body).await
}

/// Embeddings in OpenAI's shape (Azure's is the same).
pub async fn embeddings_answer(
    state: &State,
    provider: Provider,
    deployment: Option<&str>,
    body: &[u8],
) -> Result<HttpResponse, MockError> {
    let r: EmbeddingRequest = parse(body)?;
    let model = model_or(r.model.as_deref(), deployment)?;
    let dim = embedding_dim(state, r.dimensions)?;
    if r.input.items == 0 {
        return Err(MockError::InvalidRequest("input must not be empty".into()));
    }
    let plan = state.begin(provider, model, r.mock, false).await?;

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
        model,
        usage: (!plan.no_usage).then(|| {
            let (words, _) = plan.reported(words, 0);
            EmbeddingUsage {
                prompt_tokens: words,
                total_tokens: words,
            }
        }),
    }))
}
