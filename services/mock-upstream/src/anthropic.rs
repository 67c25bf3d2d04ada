//! Anthropic's Messages API: `POST /v1/messages` (whole or streamed with
//! Anthropic's event sequence), `POST /v1/messages/count_tokens` and the
//! model list. Like the real API it requires `anthropic-version` and
//! `max_tokens`, and refuses top-level fields it does not know.

use crate::answer::{thinking_word, Answer, Finish};
use crate::auth;
use crate::error::{Failure, MockError, Provider};
use crate::overrides::MockOverrides;
use crate::state::{Endpoint, State};
use crate::stream::{self, Beat, Script};
use crate::wire::parse;
use crate::words::{MessageWords, Words};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

const PROVIDER: Provider = Provider::Anthropic;

/// The request body; fields the mock does not use are accepted so that
/// unknown ones can be refused as the real API does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesRequest {
    model: String,
    max_tokens: u32,
    messages: MessageWords,
    #[serde(default)]
    system: Words,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    mock: Option<MockOverrides>,
    #[serde(default, rename = "metadata")]
    _metadata: IgnoredAny,
    #[serde(default, rename = "stop_sequences")]
    _stop_sequences: IgnoredAny,
    #[serde(default, rename = "temperature")]
    _temperature: IgnoredAny,
    #[serde(default, rename = "top_p")]
    _top_p: IgnoredAny,
    #[serde(default, rename = "top_k")]
    _top_k: IgnoredAny,
    #[serde(default, rename = "tool_choice")]
    _tool_choice: IgnoredAny,
    #[serde(default, rename = "thinking")]
    _thinking: IgnoredAny,
    #[serde(default, rename = "service_tier")]
    _service_tier: IgnoredAny,
    #[serde(default, rename = "container")]
    _container: IgnoredAny,
    #[serde(default, rename = "mcp_servers")]
    _mcp_servers: IgnoredAny,
    #[serde(default, rename = "context_management")]
    _context_management: IgnoredAny,
    #[serde(default, rename = "output_config")]
    _output_config: IgnoredAny,
    #[serde(default, rename = "inference_geo")]
    _inference_geo: IgnoredAny,
    #[serde(default, rename = "speed")]
    _speed: IgnoredAny,
    #[serde(default, rename = "cache_control")]
    _cache_control: IgnoredAny,
    #[serde(default, rename = "diagnostics")]
    _diagnostics: IgnoredAny,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(default)]
    name: Option<String>,
}

/// serde's wording turned into the API's (`field: Extra inputs are not
/// permitted`, `field: Field required`).
fn anthropic_parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let field = |prefix: &str| {
            msg.strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(String::from)
        };
        MockError::InvalidRequest(if let Some(f) = field("unknown field `") {
            format!("{f}: Extra inputs are not permitted")
        } else if let Some(f) = field("missing field `") {
            format!("{f}: Field required")
        } else {
            msg
        })
    })
}

fn require_version(req: &HttpRequest) -> Result<(), MockError> {
    match req.headers().get("anthropic-version") {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(MockError::InvalidRequest(
            "anthropic-version: header is required".into(),
        )),
    }
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::Filtered => "refusal",
    }
}

/// The usage object (non-streamed and `message_delta`): `input_tokens`
/// excludes the cache's tokens; `output_tokens` includes thinking.
fn usage(a: &Answer) -> Value {
    let mut u = json!({
        "input_tokens": a.prompt,
        "cache_creation_input_tokens": a.cache_write,
        "cache_read_input_tokens": a.cache_read,
        "output_tokens": a.output_total(),
    });
    if a.reasoning > 0 {
        u["output_tokens_details"] = json!({"thinking_tokens": a.reasoning});
    }
    u
}

fn signature(id: u64) -> String {
    format!("mock-signature-{id}")
}

pub async fn messages(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    state.arrived(Endpoint::Messages, &req, &body, None);
    answer(&req, &body, &state)
        .await
        .map_err(|e| e.answered_by(PROVIDER))
}

async fn answer(req: &HttpRequest, body: &[u8], state: &State) -> Result<HttpResponse, MockError> {
    auth::check(state.config.api_key.as_ref(), PROVIDER, req)?;
    require_version(req)?;
    let r: MessagesRequest = anthropic_parse(body)?;
    let mut plan = state.begin(PROVIDER, &r.model, r.mock, r.stream).await?;
    let first_tool = r
        .tools
        .as_ref()
        .and_then(|t| t.iter().find_map(|t| t.name.as_deref()));
    let a = Answer::new(
        &plan,
        r.system.0 + r.messages.0,
        Some(r.max_tokens),
        first_tool,
    )?;
    let id = state.next_id();

    if r.stream {
        let error = plan
            .error_after
            .take()
            .map(|(k, e)| (k, event("error", &e.body(PROVIDER))));
        let script = MessageStream::new(id, r.model, a, plan.no_usage, plan.abort_after, error);
        return Ok(stream::scripted(
            script,
            plan.chunk_delay,
            "text/event-stream",
        ));
    }

    let mut content = Vec::new();
    if a.reasoning > 0 {
        content.push(json!({
            "type": "thinking",
            "thinking": crate::answer::thinking_text(a.reasoning),
            "signature": signature(id),
        }));
    }
    if a.text > 0 || a.tool.is_none() {
        content.push(json!({"type": "text", "text": stream::text(a.text)}));
    }
    if let Some(t) = &a.tool {
        content.push(json!({
            "type": "tool_use",
            "id": format!("toolu_mock_{id}"),
            "name": t.name,
            "input": t.args,
        }));
    }
    let mut out = json!({
        "id": format!("msg_mock_{id}"),
        "type": "message",
        "role": "assistant",
        "model": r.model,
        "content": content,
        "stop_reason": stop_reason(a.finish),
        "stop_sequence": null,
    });
    if !plan.no_usage {
        let mut u = usage(&a);
        u["cache_creation"] = json!({
            "ephemeral_5m_input_tokens": a.cache_write,
            "ephemeral_1h_input_tokens": 0,
        });
        u["service_tier"] = json!("standard");
        out["usage"] = u;
    }
    Ok(HttpResponse::Ok().json(out))
}

/// One server-sent event in Anthropic's framing.
fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    MessageStart,
    ThinkingStart,
    Ping,
    Thinking(u64),
    Signature,
    TextStart,
    Text(u32),
    ToolStart,
    /// `partial_json` piece: 0 is the empty first one, then the arguments.
    ToolJson(usize),
    /// `content_block_stop` of block index `n`.
    Stop(u32),
    MessageDelta,
    MessageStop,
    Error,
    Abort,
}

/// The event sequence of a streamed message: `message_start`, for each
/// content block (thinking, text, tool_use) `content_block_start`, its
/// deltas and `content_block_stop` (a `ping` after the first start), then
/// `message_delta` with the stop reason and cumulative usage, and
/// `message_stop`.
struct MessageStream {
    id: u64,
    model: String,
    answer: Answer,
    no_usage: bool,
    error: Option<Bytes>,
    steps: Vec<Step>,
    /// The tool call's argument pieces.
    pieces: Vec<String>,
}

impl MessageStream {
    fn new(
        id: u64,
        model: String,
        answer: Answer,
        no_usage: bool,
        abort_after: Option<u32>,
        error: Option<(u32, Bytes)>,
    ) -> MessageStream {
        let mut steps = vec![Step::MessageStart];
        let mut block = 0;
        let mut pinged = false;
        let mut start = |steps: &mut Vec<Step>, s: Step| {
            steps.push(s);
            if !pinged {
                steps.push(Step::Ping);
                pinged = true;
            }
        };
        if answer.reasoning > 0 {
            start(&mut steps, Step::ThinkingStart);
            steps.extend((0..answer.reasoning).map(Step::Thinking));
            steps.push(Step::Signature);
            steps.push(Step::Stop(block));
            block += 1;
        }
        let cut = error.as_ref().map(|(k, _)| (*k).min(answer.text));
        let mut ended = false;
        if answer.text > 0 || answer.tool.is_none() {
            start(&mut steps, Step::TextStart);
            for i in 0..=answer.text {
                if cut == Some(i) {
                    steps.push(Step::Error);
                    ended = true;
                    break;
                }
                if i == answer.text {
                    break;
                }
                if abort_after == Some(i) {
                    steps.push(Step::Abort);
                    ended = true;
                    break;
                }
                steps.push(Step::Text(i));
            }
            if !ended {
                steps.push(Step::Stop(block));
                block += 1;
            }
        } else if cut.is_some() {
            steps.push(Step::Error);
            ended = true;
        }
        let pieces: Vec<String> = answer
            .tool
            .as_ref()
            .map(|t| t.pieces().into_iter().map(String::from).collect())
            .unwrap_or_default();
        if !ended {
            if answer.tool.is_some() {
                start(&mut steps, Step::ToolStart);
                steps.extend((0..=pieces.len()).map(Step::ToolJson));
                steps.push(Step::Stop(block));
            }
            steps.push(Step::MessageDelta);
            steps.push(Step::MessageStop);
        }
        MessageStream {
            id,
            model,
            answer,
            no_usage,
            error: error.map(|(_, e)| e),
            steps,
            pieces,
        }
    }

    fn render(&self, step: Step) -> Bytes {
        let a = &self.answer;
        let thinking_index = 0;
        let text_index = u32::from(a.reasoning > 0);
        let tool_index = text_index + u32::from(a.text > 0);
        match step {
            Step::MessageStart => {
                let mut message = json!({
                    "id": format!("msg_mock_{}", self.id),
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                });
                if !self.no_usage {
                    // Like the real API: the input counts, and a placeholder
                    // output count that message_delta's cumulative one replaces.
                    message["usage"] = json!({
                        "input_tokens": a.prompt,
                        "cache_creation_input_tokens": a.cache_write,
                        "cache_read_input_tokens": a.cache_read,
                        "output_tokens": 1,
                        "service_tier": "standard",
                    });
                }
                event(
                    "message_start",
                    &json!({"type": "message_start", "message": message}),
                )
            }
            Step::Ping => Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n"),
            Step::ThinkingStart => block_start(
                thinking_index,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ),
            Step::Thinking(i) => delta(
                thinking_index,
                json!({"type": "thinking_delta", "thinking": thinking_word(i)}),
            ),
            Step::Signature => delta(
                thinking_index,
                json!({"type": "signature_delta", "signature": signature(self.id)}),
            ),
            Step::TextStart => block_start(text_index, json!({"type": "text", "text": ""})),
            Step::Text(i) => delta(
                text_index,
                json!({"type": "text_delta", "text": stream::word(i)}),
            ),
            Step::ToolStart => {
                let name = a.tool.as_ref().map_or("", |t| t.name.as_str());
                block_start(
                    tool_index,
                    json!({"type": "tool_use", "id": format!("toolu_mock_{}", self.id),
                           "name": name, "input": {}}),
                )
            }
            Step::ToolJson(k) => {
                let piece = match k {
                    0 => "",
                    k => self.pieces.get(k - 1).map_or("", String::as_str),
                };
                delta(
                    tool_index,
                    json!({"type": "input_json_delta", "partial_json": piece}),
                )
            }
            Step::Stop(index) => event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ),
            Step::MessageDelta => {
                let mut d = json!({
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason(a.finish), "stop_sequence": null},
                });
                if !self.no_usage {
                    d["usage"] = usage(a);
                }
                event("message_delta", &d)
            }
            Step::MessageStop => event("message_stop", &json!({"type": "message_stop"})),
            Step::Error => self.error.clone().unwrap_or_default(),
            // Rendered by `beat` as a broken connection.
            Step::Abort => Bytes::new(),
        }
    }
}

fn block_start(index: u32, block: Value) -> Bytes {
    event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": block}),
    )
}

fn delta(index: u32, delta: Value) -> Bytes {
    event(
        "content_block_delta",
        &json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

impl Script for MessageStream {
    fn beat(&self, i: usize) -> Option<Beat> {
        let step = *self.steps.get(i)?;
        Some(match step {
            Step::Abort => Beat::Abort,
            Step::Text(k) if k > 0 => Beat::Paced(self.render(step)),
            _ => Beat::Send(self.render(step)),
        })
    }
}

#[derive(Deserialize)]
struct CountTokensRequest {
    #[serde(rename = "model")]
    _model: IgnoredAny,
    messages: MessageWords,
    #[serde(default)]
    system: Words,
}

/// `POST /v1/messages/count_tokens`: the input words, as `input_tokens`.
pub async fn count_tokens(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    state.arrived(Endpoint::CountTokens, &req, &body, None);
    let count = || -> Result<HttpResponse, MockError> {
        auth::check(state.config.api_key.as_ref(), PROVIDER, &req)?;
        require_version(&req)?;
        let r: CountTokensRequest = parse(&body)?;
        Ok(HttpResponse::Ok().json(json!({"input_tokens": r.system.0 + r.messages.0})))
    };
    count().map_err(|e| e.answered_by(PROVIDER))
}
