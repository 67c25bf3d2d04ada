//! Anthropic's Messages API behind OpenAI's chat completions: the request
//! (`system` hoisted, tool calls as `tool_use` blocks, tool results as
//! `tool_result` blocks, images as `image` blocks), the answer, the event
//! stream (`message_start` … `message_stop`) and the usage, whose
//! `input_tokens` excludes the cache's tokens.

use super::openai::{
    self as oa, ChatRequest, ChunkHead, Ids, Image, Msg, OnEvent, Part, ToolChoice,
};
use super::{Exchange, NAME_ANTHROPIC as NAME};
use crate::error::GatewayError;
use crate::usage::Usage;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::borrow::Cow;

/// `max_tokens` when the client sets none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub fn chat_request(body: &[u8], upstream_model: &str) -> Result<Bytes, GatewayError> {
    let r = ChatRequest::parse(body, NAME)?;
    let refuse = |present: bool, param: &str, reason: &str| {
        ChatRequest::refuse(present, NAME, param, reason)
    };
    refuse(r.seed.is_some(), "seed", "Anthropic has no seed")?;
    refuse(
        r.presence_penalty.is_some(),
        "presence_penalty",
        "Anthropic has no presence penalty",
    )?;
    refuse(
        r.frequency_penalty.is_some(),
        "frequency_penalty",
        "Anthropic has no frequency penalty",
    )?;
    refuse(
        r.temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)),
        "temperature",
        "Anthropic's temperature ranges from 0 to 1",
    )?;
    refuse(
        matches!(
            r.response_format,
            Some(oa::ResponseFormat::JsonObject | oa::ResponseFormat::JsonSchema(_))
        ),
        "response_format",
        "Anthropic has no JSON mode",
    )?;

    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, blocks: Vec<Value>| match messages.last_mut() {
        // Anthropic's turns alternate: consecutive ones of a role merge.
        Some((last, b)) if *last == role => b.extend(blocks),
        _ => messages.push((role, blocks)),
    };
    for m in r.messages {
        match m {
            Msg::System(text) => system.push(json!({"type": "text", "text": text})),
            Msg::User(parts) => push(
                "user",
                parts
                    .into_iter()
                    .map(|p| match p {
                        Part::Text(t) => json!({"type": "text", "text": t}),
                        Part::Image(Image::Url(url)) => {
                            json!({"type": "image", "source": {"type": "url", "url": url}})
                        }
                        Part::Image(Image::Base64 { media_type, data }) => json!({
                            "type": "image",
                            "source": {"type": "base64", "media_type": media_type, "data": data}
                        }),
                    })
                    .collect(),
            ),
            Msg::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if let Some(t) = text {
                    blocks.push(json!({"type": "text", "text": t}));
                }
                for c in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name,
                                       "input": c.arguments}));
                }
                push("assistant", blocks);
            }
            Msg::Tool {
                tool_call_id,
                content,
            } => push(
                "user",
                vec![json!({"type": "tool_result", "tool_use_id": tool_call_id,
                            "content": content})],
            ),
        }
    }
    let mut out = json!({
        "model": upstream_model,
        "max_tokens": r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        out["system"] = Value::Array(system);
    }
    if r.stream {
        out["stream"] = json!(true);
    }
    if let Some(t) = r.temperature {
        out["temperature"] = json!(t);
    }
    if let Some(p) = r.top_p {
        out["top_p"] = json!(p);
    }
    if !r.stop.is_empty() {
        out["stop_sequences"] = json!(r.stop);
    }
    if !r.tools.is_empty() {
        out["tools"] = r
            .tools
            .into_iter()
            .map(|t| {
                let mut tool = json!({
                    "name": t.name,
                    "input_schema": t.parameters.unwrap_or_else(|| json!({"type": "object"})),
                });
                if let Some(d) = t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
    }
    let mut choice = r.tool_choice.map(|c| match c {
        ToolChoice::None => json!({"type": "none"}),
        ToolChoice::Auto => json!({"type": "auto"}),
        ToolChoice::Required => json!({"type": "any"}),
        ToolChoice::Function(name) => json!({"type": "tool", "name": name}),
    });
    if r.parallel_tool_calls == Some(false) {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = json!(true);
    }
    if let Some(c) = choice {
        out["tool_choice"] = c;
    }
    if let Some(u) = r.user {
        out["metadata"] = json!({"user_id": u});
    }
    Ok(Bytes::from(out.to_string()))
}

/// Anthropic's usage object (`message_start`'s, `message_delta`'s, a
/// whole answer's); absent or null counts are not reported.
#[derive(Deserialize, Default, Clone, Copy)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct OutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// `later`'s counts where it has them (`message_delta` is cumulative).
    fn update(&mut self, later: AnthropicUsage) {
        let keep = |a: &mut Option<u64>, b: Option<u64>| {
            if b.is_some() {
                *a = b;
            }
        };
        keep(&mut self.input_tokens, later.input_tokens);
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        keep(&mut self.output_tokens, later.output_tokens);
        if later.output_tokens_details.is_some() {
            self.output_tokens_details = later.output_tokens_details;
        }
    }

    /// In OpenAI's meaning: the prompt counts every input token.
    fn openai(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let write = self.cache_creation_input_tokens.unwrap_or(0);
        let input = self.input_tokens.unwrap_or(0);
        oa::usage(
            input.saturating_add(read).saturating_add(write),
            read,
            write,
            self.output_tokens.unwrap_or(0),
            self.output_tokens_details
                .and_then(|d| d.thinking_tokens)
                .unwrap_or(0),
        )
    }
}

fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

pub fn chat_answer(x: &Exchange, body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let m: Message =
        serde_json::from_slice(body).map_err(|_| GatewayError::UpstreamInvalidAnswer(NAME))?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in m.content {
        match b.kind.as_str() {
            "text" => text
                .get_or_insert_with(String::new)
                .push_str(b.text.as_deref().unwrap_or_default()),
            "tool_use" => calls.push(oa::CallOut {
                id: b.id.unwrap_or_default(),
                name: b.name.unwrap_or_default(),
                arguments: b.input.unwrap_or_else(|| json!({})).to_string(),
            }),
            // Thinking is counted (reasoning tokens), not shown.
            _ => {}
        }
    }
    let usage = m.usage.map(|u| u.openai());
    let ids = Ids {
        id: m.id,
        model: if m.model.is_empty() {
            x.model.to_string()
        } else {
            m.model
        },
        created: x.created,
    };
    let finish = finish_reason(m.stop_reason.as_deref());
    Ok((
        oa::completion(&ids, text, calls, finish, usage.as_ref()),
        usage,
    ))
}

/// An Anthropic event stream turned into OpenAI's chunks as it arrives.
pub struct ChatStream {
    ids: Ids,
    head: ChunkHead,
    usage: Option<AnthropicUsage>,
    /// OpenAI tool-call index of each content block (by block index).
    tool_of_block: Vec<Option<usize>>,
    tools: usize,
    done: bool,
}

impl ChatStream {
    pub fn new(x: &Exchange) -> ChatStream {
        let ids = Ids {
            id: String::new(),
            model: x.model.to_string(),
            created: x.created,
        };
        ChatStream {
            head: ChunkHead::new(&ids),
            ids,
            usage: None,
            tool_of_block: Vec::new(),
            tools: 0,
            done: false,
        }
    }
}

/// One stream event: only what the translation reads, borrowed from the
/// event where it has no escapes.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: usize,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    content_block: Option<Value>,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

impl OnEvent for ChatStream {
    fn on_event(&mut self, payload: &[u8], out: &mut String) {
        if self.done {
            return;
        }
        let Ok(ev) = serde_json::from_slice::<Event>(payload) else {
            return;
        };
        match ev.kind.as_ref() {
            "message_start" => {
                if let Some(m) = ev.message {
                    self.ids.id = m.id.unwrap_or_default();
                    if let Some(model) = m.model {
                        self.ids.model = model;
                    }
                    self.usage = m.usage;
                    self.head = ChunkHead::new(&self.ids);
                }
                self.head
                    .write(r#"{"role":"assistant","content":""}"#, None, out);
            }
            "content_block_start" => {
                let block = ev.content_block.unwrap_or_default();
                match block["type"].as_str() {
                    Some("tool_use") => {
                        if self.tool_of_block.len() <= ev.index {
                            self.tool_of_block.resize(ev.index + 1, None);
                        }
                        let tool = self.tools;
                        self.tools += 1;
                        self.tool_of_block[ev.index] = Some(tool);
                        let delta = oa::tool_call_delta(
                            tool,
                            block["id"].as_str(),
                            block["name"].as_str(),
                            "",
                        );
                        self.head.write(&delta.to_string(), None, out);
                    }
                    Some("text") => {
                        if let Some(t) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            self.head.content(t, out);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let Some(d) = ev.delta else { return };
                match d.kind.as_deref() {
                    Some("text_delta") => {
                        self.head
                            .content(d.text.as_deref().unwrap_or_default(), out);
                    }
                    Some("input_json_delta") => {
                        let piece = d.partial_json.as_deref().unwrap_or_default();
                        if let (false, Some(Some(tool))) =
                            (piece.is_empty(), self.tool_of_block.get(ev.index))
                        {
                            let delta = oa::tool_call_delta(*tool, None, None, piece);
                            self.head.write(&delta.to_string(), None, out);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = ev.usage {
                    self.usage.get_or_insert_with(Default::default).update(u);
                }
                let stop = ev.delta.as_ref().and_then(|d| d.stop_reason.as_deref());
                self.head.write("{}", Some(finish_reason(stop)), out);
            }
            "message_stop" => {
                self.done = true;
                let usage = self.usage.map(|u| u.openai());
                out.push_str(&oa::usage_chunk_and_done(&self.ids, usage.as_ref()));
            }
            "error" => {
                self.done = true;
                let e = ev.error.unwrap_or_default();
                let kind = e["type"].as_str();
                out.push_str(&oa::error_event(
                    error_status(kind),
                    kind,
                    e["message"]
                        .as_str()
                        .unwrap_or("The upstream stream failed."),
                ));
            }
            _ => {}
        }
    }
}

/// The HTTP status of an Anthropic error type (inside a stream it has none).
fn error_status(kind: Option<&str>) -> u16 {
    match kind {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("billing_error") => 402,
        Some("permission_error") => 403,
        Some("not_found_error") => 404,
        Some("request_too_large") => 413,
        Some("rate_limit_error") => 429,
        Some("timeout_error") => 504,
        Some("overloaded_error") => 529,
        _ => 500,
    }
}

/// `{"type": "error", "error": {"type", "message"}}` → OpenAI's shape.
pub fn error_answer(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    oa::error_json(
        status,
        e["type"].as_str(),
        e["message"]
            .as_str()
            .unwrap_or("The upstream answered with an error."),
    )
}
