//! The OpenAI side of a translation: a chat or embeddings request read into
//! what the providers' translators need (every field known or refused by
//! name), and OpenAI's answer, chunk, usage and error shapes written back.

use crate::error::GatewayError;
use crate::upstream::ChunkMap;
use crate::usage::{CompletionDetails, PromptDetails, Usage};
use bytes::Bytes;
use serde_json::{json, Map, Value};

/// A chat message as the translators see it.
pub enum Msg {
    /// `system` or `developer`: its text.
    System(String),
    User(Vec<Part>),
    Assistant {
        text: Option<String>,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        tool_call_id: String,
        content: String,
    },
}

pub enum Part {
    Text(String),
    Image(Image),
}

pub enum Image {
    /// An `http(s)` URL.
    Url(String),
    /// A `data:{media_type};base64,{data}` URL.
    Base64 { media_type: String, data: String },
}

pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON object (parsed from OpenAI's string).
    pub arguments: Value,
}

pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
}

pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema(Value),
}

/// `POST /v1/chat/completions`, every field the gateway translates.
/// Fields that are parsed here but that a provider cannot honour are
/// refused by that provider's translator.
#[derive(Default)]
pub struct ChatRequest {
    pub messages: Vec<Msg>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Vec<String>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub response_format: Option<ResponseFormat>,
    pub user: Option<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

/// A parameter the translation does not carry: refused by name.
pub fn unsupported(provider: &'static str, param: &str, reason: &str) -> GatewayError {
    GatewayError::UnsupportedParam {
        provider,
        param: param.to_string(),
        reason: reason.to_string(),
    }
}

fn invalid(param: &str, expected: &str) -> GatewayError {
    GatewayError::InvalidJson(format!("`{param}` must be {expected}"))
}

fn object(body: &[u8]) -> Result<Map<String, Value>, GatewayError> {
    serde_json::from_slice(body).map_err(|e| GatewayError::InvalidJson(e.to_string()))
}

fn string(v: Value, param: &str) -> Result<String, GatewayError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(invalid(param, "a string")),
    }
}

fn number(v: &Value, param: &str) -> Result<f64, GatewayError> {
    v.as_f64().ok_or_else(|| invalid(param, "a number"))
}

fn count(v: &Value, param: &str) -> Result<u64, GatewayError> {
    v.as_u64()
        .ok_or_else(|| invalid(param, "a non-negative integer"))
}

/// Text of a `content` that may only hold text: a string or `text` parts.
fn text_content(v: Value, param: &str) -> Result<String, GatewayError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, p) in parts.into_iter().enumerate() {
                let at = format!("{param}[{i}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") | Some("refusal") => {
                        let key = if p["type"] == "text" {
                            "text"
                        } else {
                            "refusal"
                        };
                        out.push_str(p.get(key).and_then(Value::as_str).unwrap_or_default());
                    }
                    _ => return Err(invalid(&format!("{at}.type"), "\"text\" here")),
                }
            }
            Ok(out)
        }
        _ => Err(invalid(param, "a string or an array of text parts")),
    }
}

fn user_parts(v: Value, provider: &'static str, param: &str) -> Result<Vec<Part>, GatewayError> {
    match v {
        Value::String(s) => Ok(vec![Part::Text(s)]),
        Value::Array(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let at = format!("{param}[{i}]");
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => Ok(Part::Text(
                        p.get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(&format!("{at}.text"), "a string"))?
                            .to_string(),
                    )),
                    Some("image_url") => {
                        let url = p
                            .get("image_url")
                            .and_then(|u| u.get("url"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid(&format!("{at}.image_url.url"), "a string"))?;
                        Ok(Part::Image(image(
                            url,
                            provider,
                            &format!("{at}.image_url.url"),
                        )?))
                    }
                    Some(other) => Err(unsupported(
                        provider,
                        &format!("{at}.type"),
                        &format!("content parts of type `{other}` are not translated"),
                    )),
                    None => Err(invalid(&format!("{at}.type"), "a string")),
                }
            })
            .collect(),
        _ => Err(invalid(param, "a string or an array of content parts")),
    }
}

fn image(url: &str, provider: &'static str, param: &str) -> Result<Image, GatewayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (head, data) = rest
            .split_once(',')
            .ok_or_else(|| invalid(param, "a data URL with a comma"))?;
        let media_type = head
            .strip_suffix(";base64")
            .ok_or_else(|| unsupported(provider, param, "only base64 data URLs are translated"))?;
        return Ok(Image::Base64 {
            media_type: media_type.to_string(),
            data: data.to_string(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_string()));
    }
    Err(invalid(param, "an http(s) URL or a base64 data URL"))
}

fn tool_calls(v: Value, param: &str) -> Result<Vec<ToolCall>, GatewayError> {
    let Value::Array(calls) = v else {
        return Err(invalid(param, "an array"));
    };
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let at = format!("{param}[{i}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{at}.id"), "a string"))?;
            let f = c
                .get("function")
                .ok_or_else(|| invalid(&format!("{at}.function"), "an object"))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{at}.function.name"), "a string"))?;
            let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
            let arguments: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| {
                        invalid(&format!("{at}.function.arguments"), "a JSON object's text")
                    })?
            };
            Ok(ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                arguments,
            })
        })
        .collect()
}

fn messages(v: Value, provider: &'static str) -> Result<Vec<Msg>, GatewayError> {
    let Value::Array(list) = v else {
        return Err(invalid("messages", "an array"));
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.into_iter().enumerate() {
        let at = format!("messages[{i}]");
        let Value::Object(mut m) = m else {
            return Err(invalid(&at, "an object"));
        };
        let role = m
            .remove("role")
            .and_then(|r| r.as_str().map(str::to_string))
            .ok_or_else(|| invalid(&format!("{at}.role"), "a string"))?;
        let content = m.remove("content").unwrap_or(Value::Null);
        let msg = match role.as_str() {
            "system" | "developer" => Msg::System(text_content(content, &format!("{at}.content"))?),
            "user" => Msg::User(user_parts(content, provider, &format!("{at}.content"))?),
            "assistant" => {
                let text = text_content(content, &format!("{at}.content"))?;
                let calls = match m.remove("tool_calls") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => tool_calls(v, &format!("{at}.tool_calls"))?,
                };
                // OpenAI's SDKs send these back as they received them.
                m.remove("refusal");
                m.remove("annotations");
                Msg::Assistant {
                    text: (!text.is_empty()).then_some(text),
                    tool_calls: calls,
                }
            }
            "tool" => Msg::Tool {
                tool_call_id: m
                    .remove("tool_call_id")
                    .and_then(|r| r.as_str().map(str::to_string))
                    .ok_or_else(|| invalid(&format!("{at}.tool_call_id"), "a string"))?,
                content: text_content(content, &format!("{at}.content"))?,
            },
            other => {
                return Err(unsupported(
                    provider,
                    &format!("{at}.role"),
                    &format!("messages of role `{other}` are not translated"),
                ))
            }
        };
        // Whatever is left (`name`, `audio`, …) cannot be carried.
        if let Some((k, _)) = m.into_iter().find(|(_, v)| !v.is_null()) {
            return Err(unsupported(
                provider,
                &format!("{at}.{k}"),
                "this message field is not translated",
            ));
        }
        out.push(msg);
    }
    Ok(out)
}

fn tools(v: Value, provider: &'static str) -> Result<Vec<Tool>, GatewayError> {
    let Value::Array(list) = v else {
        return Err(invalid("tools", "an array"));
    };
    list.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let at = format!("tools[{i}]");
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported(
                    provider,
                    &format!("{at}.type"),
                    "only function tools are translated",
                ));
            }
            let f = t
                .get("function")
                .ok_or_else(|| invalid(&format!("{at}.function"), "an object"))?;
            if f.get("strict").and_then(Value::as_bool) == Some(true) {
                return Err(unsupported(
                    provider,
                    &format!("{at}.function.strict"),
                    "strict function schemas are not translated",
                ));
            }
            Ok(Tool {
                name: f
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{at}.function.name"), "a string"))?
                    .to_string(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                parameters: f.get("parameters").cloned(),
            })
        })
        .collect()
}

fn tool_choice(v: Value) -> Result<ToolChoice, GatewayError> {
    match &v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            _ => Err(invalid("tool_choice", "none, auto, required or a function")),
        },
        _ => v
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Function(n.to_string()))
            .ok_or_else(|| invalid("tool_choice", "none, auto, required or a function")),
    }
}

fn response_format(v: Value) -> Result<ResponseFormat, GatewayError> {
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => v
            .get("json_schema")
            .and_then(|s| s.get("schema"))
            .cloned()
            .map(ResponseFormat::JsonSchema)
            .ok_or_else(|| invalid("response_format.json_schema.schema", "an object")),
        _ => Err(invalid(
            "response_format.type",
            "text, json_object or json_schema",
        )),
    }
}

impl ChatRequest {
    /// Reads a chat body for `provider`; a field the gateway does not
    /// translate is refused by name.
    pub fn parse(body: &[u8], provider: &'static str) -> Result<ChatRequest, GatewayError> {
        let mut r = ChatRequest::default();
        for (k, v) in object(body)? {
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "model" => {}
                "messages" => r.messages = messages(v, provider)?,
                "stream" => r.stream = v.as_bool().unwrap_or(false),
                "stream_options" => {
                    if let Some((k, _)) = v
                        .as_object()
                        .and_then(|o| o.iter().find(|(k, _)| *k != "include_usage"))
                    {
                        return Err(unsupported(
                            provider,
                            &format!("stream_options.{k}"),
                            "not translated",
                        ));
                    }
                }
                "max_tokens" | "max_completion_tokens" => r.max_tokens = Some(count(&v, &k)?),
                "temperature" => r.temperature = Some(number(&v, &k)?),
                "top_p" => r.top_p = Some(number(&v, &k)?),
                "stop" => {
                    r.stop = match v {
                        Value::String(s) => vec![s],
                        Value::Array(a) => a
                            .into_iter()
                            .map(|s| string(s, "stop"))
                            .collect::<Result<_, _>>()?,
                        _ => return Err(invalid("stop", "a string or an array of strings")),
                    }
                }
                "tools" => r.tools = tools(v, provider)?,
                "tool_choice" => r.tool_choice = Some(tool_choice(v)?),
                "parallel_tool_calls" => {
                    r.parallel_tool_calls =
                        Some(v.as_bool().ok_or_else(|| invalid(&k, "a boolean"))?)
                }
                "response_format" => r.response_format = Some(response_format(v)?),
                "user" => r.user = Some(string(v, "user")?),
                "seed" => r.seed = Some(v.as_i64().ok_or_else(|| invalid(&k, "an integer"))?),
                "presence_penalty" => r.presence_penalty = Some(number(&v, &k)?),
                "frequency_penalty" => r.frequency_penalty = Some(number(&v, &k)?),
                "n" if v.as_u64() == Some(1) => {}
                "logprobs" if v == Value::Bool(false) => {}
                _ => {
                    return Err(unsupported(
                        provider,
                        &k,
                        "the gateway does not translate this parameter for this provider",
                    ))
                }
            }
        }
        Ok(r)
    }

    /// The model refuses `param` when `present`.
    pub fn refuse(
        present: bool,
        provider: &'static str,
        param: &str,
        reason: &str,
    ) -> Result<(), GatewayError> {
        if present {
            Err(unsupported(provider, param, reason))
        } else {
            Ok(())
        }
    }
}

/// `POST /v1/embeddings`, as far as it is translated.
pub struct EmbeddingsRequest {
    pub input: Vec<String>,
    pub dimensions: Option<u64>,
    /// `encoding_format: "base64"` (what OpenAI's Python SDK asks for).
    pub base64: bool,
}

impl EmbeddingsRequest {
    pub fn parse(body: &[u8], provider: &'static str) -> Result<EmbeddingsRequest, GatewayError> {
        let mut r = EmbeddingsRequest {
            input: Vec::new(),
            dimensions: None,
            base64: false,
        };
        for (k, v) in object(body)? {
            if v.is_null() {
                continue;
            }
            match k.as_str() {
                "model" => {}
                "input" => {
                    r.input = match v {
                        Value::String(s) => vec![s],
                        Value::Array(a) => a
                            .into_iter()
                            .map(|s| match s {
                                Value::String(s) => Ok(s),
                                _ => Err(unsupported(
                                    provider,
                                    "input",
                                    "only text inputs are translated (not token ids)",
                                )),
                            })
                            .collect::<Result<_, _>>()?,
                        _ => return Err(invalid("input", "a string or an array of strings")),
                    }
                }
                "dimensions" => r.dimensions = Some(count(&v, &k)?),
                "encoding_format" => {
                    r.base64 = match v.as_str() {
                        Some("float") => false,
                        Some("base64") => true,
                        _ => return Err(invalid(&k, "float or base64")),
                    }
                }
                _ => {
                    return Err(unsupported(
                        provider,
                        &k,
                        "the gateway does not translate this parameter for this provider",
                    ))
                }
            }
        }
        if r.input.is_empty() {
            return Err(invalid("input", "a non-empty string or array of strings"));
        }
        Ok(r)
    }
}

// ---- answers ----------------------------------------------------------

/// The token counts of one answer, in OpenAI's meaning.
pub fn usage(
    prompt: u64,
    cache_read: u64,
    cache_write: u64,
    completion: u64,
    reasoning: u64,
) -> Usage {
    Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        prompt_tokens_details: Some(PromptDetails {
            cached_tokens: Some(cache_read),
            cache_write_tokens: Some(cache_write),
        }),
        completion_tokens_details: Some(CompletionDetails {
            reasoning_tokens: Some(reasoning),
        }),
    }
}

/// OpenAI's `usage` object, with `prompt_tokens_details.cache_write_tokens`
/// beside `cached_tokens`.
pub fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens.saturating_add(u.completion_tokens),
        "prompt_tokens_details": {
            "cached_tokens": u.cached_tokens(),
            "cache_write_tokens": u.cache_write_tokens(),
        },
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens()},
    })
}

/// Who an answer is from, for its `id`, `model` and `created`.
pub struct Ids {
    pub id: String,
    pub model: String,
    pub created: i64,
}

/// A tool call of an answer.
pub struct CallOut {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// A whole `chat.completion`.
pub fn completion(
    ids: &Ids,
    text: Option<String>,
    calls: Vec<CallOut>,
    finish: &str,
    usage: Option<&Usage>,
) -> Bytes {
    let mut message = json!({"role": "assistant", "content": text, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = calls
            .into_iter()
            .map(|c| {
                json!({"id": c.id, "type": "function",
                       "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
    }
    let mut out = json!({
        "id": ids.id,
        "object": "chat.completion",
        "created": ids.created,
        "model": ids.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
    });
    if let Some(u) = usage {
        out["usage"] = usage_json(u);
    }
    Bytes::from(out.to_string())
}

/// A stream's `chat.completion.chunk` events of choice 0: what comes before
/// the delta is written once per stream.
pub struct ChunkHead(String);

impl ChunkHead {
    pub fn new(ids: &Ids) -> ChunkHead {
        ChunkHead(format!(
            r#"data: {{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":"#,
            Value::from(ids.id.as_str()),
            ids.created,
            Value::from(ids.model.as_str()),
        ))
    }

    /// One chunk with `delta` (JSON text) and `finish`.
    pub fn write(&self, delta: &str, finish: Option<&str>, out: &mut String) {
        out.push_str(&self.0);
        out.push_str(delta);
        out.push_str(r#","logprobs":null,"finish_reason":"#);
        match finish {
            Some(f) => {
                out.push('"');
                out.push_str(f);
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str("}]}\n\n");
    }

    /// One content chunk.
    pub fn content(&self, text: &str, out: &mut String) {
        let delta = format!(r#"{{"content":{}}}"#, Value::from(text));
        self.write(&delta, None, out);
    }
}

/// The usage chunk (`choices: []`), then `[DONE]`.
pub fn usage_chunk_and_done(ids: &Ids, usage: Option<&Usage>) -> String {
    let mut out = String::new();
    if let Some(u) = usage {
        let c = json!({
            "id": ids.id,
            "object": "chat.completion.chunk",
            "created": ids.created,
            "model": ids.model,
            "choices": [],
            "usage": usage_json(u),
        });
        out.push_str(&format!("data: {c}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// A tool call opening in a stream (`id`, `name`, arguments so far).
pub fn tool_call_delta(index: usize, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut call = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    if let Some(name) = name {
        call["function"]["name"] = json!(name);
    }
    json!({"tool_calls": [call]})
}

/// OpenAI's error object for an upstream's error: the `type` for the
/// status, the provider's own error name as `code`.
pub fn error_json(status: u16, code: Option<&str>, message: &str) -> Value {
    let kind = match status {
        400 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 | 403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        _ => aigw_types::openai_error::type_for_status(status),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// An error inside a stream: an SSE event with OpenAI's error object (what
/// OpenAI's SDKs raise from).
pub fn error_event(status: u16, code: Option<&str>, message: &str) -> String {
    format!("data: {}\n\n", error_json(status, code, message))
}

/// A stream translation that reads whole SSE events and writes text.
pub trait OnEvent {
    /// Appends what the `data:` payload of one event becomes.
    fn on_event(&mut self, payload: &[u8], out: &mut String);
    /// Appends what follows the clean end of the stream.
    fn on_end(&mut self, _out: &mut String) {}
}

/// A [`ChunkMap`] out of an [`OnEvent`]: events cut anywhere by the
/// network are gathered whole first.
pub struct EventMap<T> {
    buf: bytes::BytesMut,
    inner: T,
}

impl<T: OnEvent + 'static> EventMap<T> {
    pub fn boxed(inner: T) -> Box<dyn ChunkMap> {
        Box::new(EventMap {
            buf: bytes::BytesMut::new(),
            inner,
        })
    }
}

impl<T: OnEvent> ChunkMap for EventMap<T> {
    fn map(&mut self, chunk: &[u8]) -> Bytes {
        self.buf.extend_from_slice(chunk);
        let mut out = String::new();
        while let Some(len) = crate::sse::next_event_len(&self.buf) {
            let event = self.buf.split_to(len).freeze();
            if let Some(p) = crate::sse::data_payload(&event) {
                self.inner.on_event(&p, &mut out);
            }
        }
        Bytes::from(out)
    }

    fn end(&mut self) -> Bytes {
        let mut out = String::new();
        self.inner.on_end(&mut out);
        Bytes::from(out)
    }
}
