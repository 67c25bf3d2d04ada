//! Anthropic's Messages API in front (`POST /v1/messages`) for instances
//! that do not speak it: the request becomes an OpenAI chat request (then,
//! for Gemini, Gemini's), and the OpenAI answer, chunks and errors become
//! Anthropic's message, event sequence and error. Anthropic instances get
//! the request as it is (model replaced); their streams pass through with
//! `message_delta`'s usage completed from `message_start`'s.

use super::openai::OnEvent;
use crate::error::{anthropic_error_type as error_type, GatewayError};
use crate::upstream::ChunkMap;
use crate::usage::Usage;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};

const NAME: &str = "messages";

fn unsupported(param: &str, reason: &str) -> GatewayError {
    super::openai::unsupported(NAME, param, reason)
}

fn invalid(param: &str, expected: &str) -> GatewayError {
    GatewayError::InvalidJson(format!("`{param}` must be {expected}"))
}

/// Text of a `system` or `tool_result` content: a string or text blocks.
fn text_of(v: &Value, param: &str) -> Result<String, GatewayError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut out = String::new();
            for (i, b) in blocks.iter().enumerate() {
                match b["type"].as_str() {
                    Some("text") => out.push_str(b["text"].as_str().unwrap_or_default()),
                    _ => {
                        return Err(unsupported(
                            &format!("{param}[{i}].type"),
                            "only text blocks are translated here",
                        ))
                    }
                }
            }
            Ok(out)
        }
        Value::Null => Ok(String::new()),
        _ => Err(invalid(param, "a string or an array of text blocks")),
    }
}

fn image_url(source: &Value, param: &str) -> Result<String, GatewayError> {
    match source["type"].as_str() {
        Some("base64") => Ok(format!(
            "data:{};base64,{}",
            source["media_type"].as_str().unwrap_or("image/png"),
            source["data"].as_str().unwrap_or_default()
        )),
        Some("url") => Ok(source["url"].as_str().unwrap_or_default().to_string()),
        _ => Err(unsupported(
            &format!("{param}.source.type"),
            "only base64 and url images are translated",
        )),
    }
}

/// One Anthropic message as OpenAI messages (tool results become `tool`
/// messages ahead of the rest of the user turn).
fn message(m: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), GatewayError> {
    let at = format!("messages[{i}]");
    let role = m["role"]
        .as_str()
        .ok_or_else(|| invalid(&format!("{at}.role"), "user or assistant"))?;
    let blocks: Vec<Value> = match &m["content"] {
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(b) => b.clone(),
        _ => return Err(invalid(&format!("{at}.content"), "a string or an array")),
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let bat = format!("{at}.content[{j}]");
        match (role, b["type"].as_str()) {
            (_, Some("text")) => parts.push(json!({"type": "text", "text": b["text"]})),
            ("user", Some("image")) => parts.push(json!({"type": "image_url",
                "image_url": {"url": image_url(&b["source"], &bat)?}})),
            ("user", Some("tool_result")) => {
                if b["is_error"].as_bool() == Some(true) {
                    return Err(unsupported(
                        &format!("{bat}.is_error"),
                        "OpenAI's tool messages carry no error flag",
                    ));
                }
                out.push(json!({
                    "role": "tool",
                    "tool_call_id": b["tool_use_id"],
                    "content": text_of(&b["content"], &format!("{bat}.content"))?,
                }));
            }
            ("assistant", Some("tool_use")) => calls.push(json!({
                "id": b["id"],
                "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()},
            })),
            (_, other) => {
                return Err(unsupported(
                    &format!("{bat}.type"),
                    &format!(
                        "{role} blocks of type `{}` are not translated",
                        other.unwrap_or("?")
                    ),
                ))
            }
        }
    }
    match role {
        "user" if !parts.is_empty() => out.push(json!({"role": "user", "content": parts})),
        "user" => {}
        "assistant" => {
            let text: String = parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("");
            let mut m = json!({"role": "assistant",
                               "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            out.push(m);
        }
        _ => return Err(invalid(&format!("{at}.role"), "user or assistant")),
    }
    Ok(())
}

/// A Messages API body as an OpenAI chat body for `model` (streams ask
/// for the usage chunk).
pub fn to_openai(body: &[u8], model: &str) -> Result<Bytes, GatewayError> {
    let req: Map<String, Value> =
        serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    let mut messages = Vec::new();
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let mut parallel = None;
    for (k, v) in &req {
        if v.is_null() {
            continue;
        }
        match k.as_str() {
            "model" | "messages" | "system" => {}
            "max_tokens" => {
                out.insert("max_tokens".into(), v.clone());
            }
            "stream" => {
                if v.as_bool() == Some(true) {
                    out.insert("stream".into(), json!(true));
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "temperature" | "top_p" => {
                out.insert(k.clone(), v.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), v.clone());
            }
            "metadata" => {
                if let Some(u) = v.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), u.clone());
                }
            }
            "tools" => {
                let tools = v
                    .as_array()
                    .ok_or_else(|| invalid("tools", "an array"))?
                    .iter()
                    .enumerate()
                    .map(|(i, t)| {
                        if t.get("type").is_some_and(|t| t != "custom") {
                            return Err(unsupported(
                                &format!("tools[{i}].type"),
                                "server tools are not translated",
                            ));
                        }
                        let mut f = json!({"name": t["name"], "parameters": t["input_schema"]});
                        if let Some(d) = t.get("description") {
                            f["description"] = d.clone();
                        }
                        Ok(json!({"type": "function", "function": f}))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.insert("tools".into(), Value::Array(tools));
            }
            "tool_choice" => {
                let choice = match v["type"].as_str() {
                    Some("auto") => json!("auto"),
                    Some("any") => json!("required"),
                    Some("none") => json!("none"),
                    Some("tool") => json!({"type": "function", "function": {"name": v["name"]}}),
                    _ => return Err(invalid("tool_choice.type", "auto, any, tool or none")),
                };
                if v["disable_parallel_tool_use"].as_bool() == Some(true) {
                    parallel = Some(false);
                }
                out.insert("tool_choice".into(), choice);
            }
            _ => {
                return Err(unsupported(
                    k,
                    "the gateway does not translate this parameter for this model's upstream",
                ))
            }
        }
    }
    if let Some(p) = parallel {
        out.insert("parallel_tool_calls".into(), json!(p));
    }
    if let Some(s) = req.get("system").filter(|s| !s.is_null()) {
        messages.push(json!({"role": "system", "content": text_of(s, "system")?}));
    }
    let list = req
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "an array"))?;
    for (i, m) in list.iter().enumerate() {
        message(m, i, &mut messages)?;
    }
    out.insert("messages".into(), Value::Array(messages));
    Ok(Bytes::from(Value::Object(out).to_string()))
}

fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic's usage object for OpenAI-meaning counts: `input_tokens`
/// without the cache's tokens.
fn usage_json(u: &Usage) -> Value {
    let read = u.cached_tokens();
    let write = u.cache_write_tokens();
    let mut out = json!({
        "input_tokens": u.prompt_tokens.saturating_sub(read).saturating_sub(write),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": u.completion_tokens,
    });
    if u.reasoning_tokens() > 0 {
        out["output_tokens_details"] = json!({"thinking_tokens": u.reasoning_tokens()});
    }
    out
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// An OpenAI `chat.completion` as an Anthropic message.
pub fn answer(body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let c: Completion =
        serde_json::from_slice(body).map_err(|_| GatewayError::UpstreamInvalidAnswer(NAME))?;
    let choice = c.choices.into_iter().next();
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(ch) = choice {
        finish = ch.finish_reason;
        let m = ch.message.unwrap_or_default();
        if let Some(t) = m["content"].as_str().filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": t}));
        }
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            let args = call["function"]["arguments"].as_str().unwrap_or("{}");
            content.push(json!({
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": serde_json::from_str::<Value>(args).unwrap_or_else(|_| json!({})),
            }));
        }
    }
    let mut out = json!({
        "id": c.id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop_reason(finish.as_deref()),
        "stop_sequence": null,
    });
    if let Some(u) = &c.usage {
        out["usage"] = usage_json(u);
    }
    Ok((Bytes::from(out.to_string()), c.usage))
}

/// An OpenAI-shaped error body as Anthropic's.
pub fn error(status: u16, openai_body: &[u8]) -> Bytes {
    let v: Value = serde_json::from_slice(openai_body).unwrap_or(Value::Null);
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("The upstream answered with an error.");
    Bytes::from(
        json!({"type": "error", "error": {"type": error_type(status), "message": message}})
            .to_string(),
    )
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

#[derive(PartialEq)]
enum Block {
    None,
    Text,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

/// OpenAI chunks turned into Anthropic's event sequence.
pub struct Stream {
    started: bool,
    block: Block,
    /// Index of the next content block.
    next: u64,
    finish: Option<String>,
    usage: Option<Usage>,
    done: bool,
    fallback_model: String,
}

impl Stream {
    pub fn new(model: &str) -> Stream {
        Stream {
            started: false,
            block: Block::None,
            next: 0,
            finish: None,
            usage: None,
            done: false,
            fallback_model: model.to_string(),
        }
    }

    fn close_block(&mut self, out: &mut String) {
        if self.block != Block::None {
            out.push_str(&event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.next - 1}),
            ));
            self.block = Block::None;
        }
    }

    fn open_block(&mut self, block: Block, start: Value, out: &mut String) {
        self.close_block(out);
        out.push_str(&event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next, "content_block": start}),
        ));
        self.next += 1;
        self.block = block;
    }

    fn delta(&self, delta: Value, out: &mut String) {
        out.push_str(&event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.next - 1, "delta": delta}),
        ));
    }
}

impl OnEvent for Stream {
    fn on_event(&mut self, p: &[u8], out: &mut String) {
        if self.done {
            return;
        }
        if p == b"[DONE]" {
            self.done = true;
            self.close_block(out);
            let mut d = json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
            });
            if let Some(u) = &self.usage {
                d["usage"] = usage_json(u);
            }
            out.push_str(&event("message_delta", &d));
            out.push_str(&event("message_stop", &json!({"type": "message_stop"})));
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(p) else {
            return;
        };
        if let Some(e) = v.get("error") {
            self.done = true;
            let status = match e["type"].as_str() {
                Some("rate_limit_error") => 429,
                Some("invalid_request_error") => 400,
                _ => 500,
            };
            let message = e["message"]
                .as_str()
                .unwrap_or("The upstream stream failed.");
            out.push_str(&event(
                "error",
                &json!({"type": "error",
                        "error": {"type": error_type(status), "message": message}}),
            ));
            return;
        }
        let Ok(c) = Completion::deserialize(&v) else {
            return;
        };
        if !self.started {
            self.started = true;
            let model = if c.model.is_empty() {
                self.fallback_model.clone()
            } else {
                c.model.clone()
            };
            out.push_str(&event(
                "message_start",
                &json!({"type": "message_start", "message": {
                    "id": c.id, "type": "message", "role": "assistant", "model": model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
            ));
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        let Some(ch) = c.choices.into_iter().next() else {
            return;
        };
        let d = ch.delta.unwrap_or_default();
        if let Some(t) = d["content"].as_str().filter(|t| !t.is_empty()) {
            if self.block != Block::Text {
                self.open_block(Block::Text, json!({"type": "text", "text": ""}), out);
            }
            self.delta(json!({"type": "text_delta", "text": t}), out);
        }
        for call in d["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap_or(0);
            if call.get("id").is_some_and(|id| !id.is_null()) || self.block != Block::Tool(index) {
                self.open_block(
                    Block::Tool(index),
                    json!({"type": "tool_use", "id": call["id"],
                           "name": call["function"]["name"], "input": {}}),
                    out,
                );
            }
            if let Some(a) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                self.delta(json!({"type": "input_json_delta", "partial_json": a}), out);
            }
        }
        if let Some(f) = ch.finish_reason {
            self.finish = Some(f);
            self.close_block(out);
        }
    }
}

/// An Anthropic stream passed through, its `message_delta` usage
/// completed with `message_start`'s input counts where it lacks them (the
/// relay reads the usage from `message_delta`).
#[derive(Default)]
pub struct UsageFill {
    buf: bytes::BytesMut,
    start: Option<Map<String, Value>>,
}

impl ChunkMap for UsageFill {
    fn map(&mut self, chunk: &[u8]) -> Bytes {
        self.buf.extend_from_slice(chunk);
        let mut out = bytes::BytesMut::new();
        while let Some(len) = crate::sse::next_event_len(&self.buf) {
            let ev = self.buf.split_to(len).freeze();
            let payload = crate::sse::data_payload(&ev);
            let Some(mut v) = payload.and_then(|p| serde_json::from_slice::<Value>(&p).ok()) else {
                out.extend_from_slice(&ev);
                continue;
            };
            match v["type"].as_str() {
                Some("message_start") => {
                    self.start = v["message"]["usage"].as_object().cloned();
                    out.extend_from_slice(&ev);
                }
                Some("message_delta") if self.start.is_some() => {
                    let start = self.start.take().unwrap_or_default();
                    if let Some(u) = v.get_mut("usage").and_then(Value::as_object_mut) {
                        for (k, val) in start {
                            if k != "output_tokens" && u.get(&k).is_none_or(Value::is_null) {
                                u.insert(k, val);
                            }
                        }
                    }
                    out.extend_from_slice(event("message_delta", &v).as_bytes());
                }
                _ => out.extend_from_slice(&ev),
            }
        }
        out.freeze()
    }

    fn end(&mut self) -> Bytes {
        self.buf.split().freeze()
    }
}
