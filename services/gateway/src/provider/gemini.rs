//! Google's Gemini API behind OpenAI's chat completions and embeddings:
//! `generateContent` / `streamGenerateContent?alt=sse` (contents with
//! `user`/`model` roles, `systemInstruction`, function declarations, calls
//! and responses, inline and file images) and `batchEmbedContents`; usage
//! from `usageMetadata` (the prompt count includes the cached tokens,
//! thoughts are apart from the candidates).

use super::openai::{
    self as oa, ChatRequest, ChunkHead, EmbeddingsRequest, Ids, Image, Msg, OnEvent, Part,
    ResponseFormat, ToolChoice,
};
use super::{Exchange, NAME_GEMINI as NAME};
use crate::error::GatewayError;
use crate::usage::Usage;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The media type of an image URL, from its extension (Gemini's file parts
/// need one).
fn image_media_type(url: &str) -> Option<&'static str> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    let ext = path.rsplit_once('.')?.1.to_string();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => return None,
    })
}

pub fn chat_request(body: &[u8]) -> Result<Bytes, GatewayError> {
    let r = ChatRequest::parse(body, NAME)?;
    let refuse = |present: bool, param: &str, reason: &str| {
        ChatRequest::refuse(present, NAME, param, reason)
    };
    refuse(
        r.parallel_tool_calls == Some(false),
        "parallel_tool_calls",
        "Gemini cannot be kept to one call",
    )?;
    refuse(r.user.is_some(), "user", "Gemini takes no end-user id")?;

    let mut names: HashMap<String, String> = HashMap::new();
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, parts: Vec<Value>| match contents.last_mut() {
        Some((last, p)) if *last == role => p.extend(parts),
        _ => contents.push((role, parts)),
    };
    for (i, m) in r.messages.into_iter().enumerate() {
        match m {
            Msg::System(text) => system.push(json!({"text": text})),
            Msg::User(parts) => {
                let mut out = Vec::with_capacity(parts.len());
                for (j, p) in parts.into_iter().enumerate() {
                    out.push(match p {
                        Part::Text(t) => json!({"text": t}),
                        Part::Image(Image::Base64 { media_type, data }) => {
                            json!({"inlineData": {"mimeType": media_type, "data": data}})
                        }
                        Part::Image(Image::Url(url)) => {
                            let Some(mime) = image_media_type(&url) else {
                                return Err(oa::unsupported(
                                    NAME,
                                    &format!("messages[{i}].content[{j}].image_url.url"),
                                    "an image URL must end in .png, .jpg, .jpeg, .webp, .gif, \
                                     .heic or .heif (or be a base64 data URL)",
                                ));
                            };
                            json!({"fileData": {"mimeType": mime, "fileUri": url}})
                        }
                    });
                }
                push("user", out);
            }
            Msg::Assistant { text, tool_calls } => {
                let mut parts = Vec::new();
                if let Some(t) = text {
                    parts.push(json!({"text": t}));
                }
                for c in tool_calls {
                    names.insert(c.id, c.name.clone());
                    parts.push(json!({"functionCall": {"name": c.name, "args": c.arguments}}));
                }
                push("model", parts);
            }
            Msg::Tool {
                tool_call_id,
                content,
            } => {
                let Some(name) = names.get(&tool_call_id) else {
                    return Err(GatewayError::InvalidJson(format!(
                        "`messages[{i}].tool_call_id` names no tool call of an earlier assistant message"
                    )));
                };
                push(
                    "user",
                    vec![json!({"functionResponse": {"name": name,
                                                     "response": {"content": content}}})],
                );
            }
        }
    }
    let mut out = json!({
        "contents": contents
            .into_iter()
            .map(|(role, parts)| json!({"role": role, "parts": parts}))
            .collect::<Vec<_>>(),
    });
    if !system.is_empty() {
        out["systemInstruction"] = json!({"parts": system});
    }
    let mut config = Map::new();
    let mut set = |k: &str, v: Value| {
        config.insert(k.to_string(), v);
    };
    if let Some(n) = r.max_tokens {
        set("maxOutputTokens", json!(n));
    }
    if let Some(t) = r.temperature {
        set("temperature", json!(t));
    }
    if let Some(p) = r.top_p {
        set("topP", json!(p));
    }
    if !r.stop.is_empty() {
        set("stopSequences", json!(r.stop));
    }
    if let Some(s) = r.seed {
        set("seed", json!(s));
    }
    if let Some(p) = r.presence_penalty {
        set("presencePenalty", json!(p));
    }
    if let Some(p) = r.frequency_penalty {
        set("frequencyPenalty", json!(p));
    }
    match r.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => set("responseMimeType", json!("application/json")),
        Some(ResponseFormat::JsonSchema(schema)) => {
            set("responseMimeType", json!("application/json"));
            set("responseJsonSchema", schema);
        }
    }
    if !config.is_empty() {
        out["generationConfig"] = Value::Object(config);
    }
    if !r.tools.is_empty() {
        let decls: Vec<Value> = r
            .tools
            .into_iter()
            .map(|t| {
                let mut d = json!({"name": t.name});
                if let Some(desc) = t.description {
                    d["description"] = json!(desc);
                }
                if let Some(p) = t.parameters {
                    d["parametersJsonSchema"] = p;
                }
                d
            })
            .collect();
        out["tools"] = json!([{"functionDeclarations": decls}]);
    }
    if let Some(c) = r.tool_choice {
        let config = match c {
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        out["toolConfig"] = json!({"functionCallingConfig": config});
    }
    Ok(Bytes::from(out.to_string()))
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// In OpenAI's meaning: the prompt includes the cached tokens (as
    /// Gemini counts it) and tool-use prompts; the completion includes the
    /// thoughts.
    fn openai(&self) -> Usage {
        oa::usage(
            self.prompt_token_count
                .saturating_add(self.tool_use_prompt_token_count),
            self.cached_content_token_count,
            0,
            self.candidates_token_count
                .saturating_add(self.thoughts_token_count),
            self.thoughts_token_count,
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    response_id: Option<String>,
    #[serde(default)]
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Content {
    #[serde(default)]
    parts: Vec<GeminiPart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiPart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

fn finish_reason(reason: &str, called: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if called => "tool_calls",
        _ => "stop",
    }
}

fn call_id(f: &FunctionCall, index: usize) -> String {
    f.id.clone().unwrap_or_else(|| format!("call_{index}"))
}

impl Response {
    fn ids(&mut self, x: &Exchange) -> Ids {
        Ids {
            id: self.response_id.take().unwrap_or_default(),
            model: self
                .model_version
                .take()
                .unwrap_or_else(|| x.model.to_string()),
            created: x.created,
        }
    }
}

pub fn chat_answer(x: &Exchange, body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let mut r: Response =
        serde_json::from_slice(body).map_err(|_| GatewayError::UpstreamInvalidAnswer(NAME))?;
    let ids = r.ids(x);
    let usage = r.usage_metadata.map(|u| u.openai());
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let mut finish = "stop";
    if let Some(c) = r.candidates.into_iter().next() {
        for p in c.content.unwrap_or_default().parts {
            if let Some(f) = p.function_call {
                calls.push(oa::CallOut {
                    id: call_id(&f, calls.len()),
                    arguments: f.args.unwrap_or_else(|| json!({})).to_string(),
                    name: f.name,
                });
            } else if let (Some(t), false) = (p.text, p.thought) {
                text.get_or_insert_with(String::new).push_str(&t);
            }
        }
        finish = finish_reason(c.finish_reason.as_deref().unwrap_or(""), !calls.is_empty());
    } else if r.prompt_feedback.is_some() {
        // The prompt itself was blocked.
        finish = "content_filter";
    }
    Ok((
        oa::completion(&ids, text, calls, finish, usage.as_ref()),
        usage,
    ))
}

/// A Gemini SSE stream (each event a whole `GenerateContentResponse` with
/// the usage so far) turned into OpenAI's chunks. Gemini has no end event:
/// the usage chunk and `[DONE]` follow the clean end of the body, after a
/// finish reason.
pub struct ChatStream {
    ids: Option<(Ids, ChunkHead)>,
    fallback_model: String,
    created: i64,
    usage: Option<UsageMetadata>,
    calls: usize,
    finished: bool,
    failed: bool,
}

impl ChatStream {
    pub fn new(x: &Exchange) -> ChatStream {
        ChatStream {
            ids: None,
            fallback_model: x.model.to_string(),
            created: x.created,
            usage: None,
            calls: 0,
            finished: false,
            failed: false,
        }
    }
}

impl OnEvent for ChatStream {
    fn on_event(&mut self, payload: &[u8], out: &mut String) {
        if self.failed {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        if let Some(e) = v.get("error") {
            self.failed = true;
            let status = e["code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(500);
            out.push_str(&oa::error_event(
                status,
                e["status"].as_str(),
                e["message"]
                    .as_str()
                    .unwrap_or("The upstream stream failed."),
            ));
            return;
        }
        let Ok(mut r) = Response::deserialize(v) else {
            return;
        };
        if let Some(u) = r.usage_metadata {
            self.usage = Some(u);
        }
        if self.ids.is_none() {
            let ids = r.ids(&Exchange {
                model: self.fallback_model.as_str().into(),
                created: self.created,
                ..Exchange::default()
            });
            let head = ChunkHead::new(&ids);
            head.write(r#"{"role":"assistant","content":""}"#, None, out);
            self.ids = Some((ids, head));
        }
        let Some((_, head)) = &self.ids else { return };
        let Some(c) = r.candidates.into_iter().next() else {
            return;
        };
        for p in c.content.unwrap_or_default().parts {
            if let Some(f) = p.function_call {
                let index = self.calls;
                self.calls += 1;
                let args = f.args.clone().unwrap_or_else(|| json!({})).to_string();
                let delta =
                    oa::tool_call_delta(index, Some(&call_id(&f, index)), Some(&f.name), &args);
                head.write(&delta.to_string(), None, out);
            } else if let (Some(t), false) = (p.text, p.thought) {
                if !t.is_empty() {
                    head.content(&t, out);
                }
            }
        }
        if let Some(reason) = c.finish_reason {
            self.finished = true;
            let finish = finish_reason(&reason, self.calls > 0);
            head.write("{}", Some(finish), out);
        }
    }

    fn on_end(&mut self, out: &mut String) {
        if let (Some((ids, _)), true) = (&self.ids, self.finished && !self.failed) {
            let usage = self.usage.map(|u| u.openai());
            out.push_str(&oa::usage_chunk_and_done(ids, usage.as_ref()));
        }
    }
}

pub fn embeddings_request(
    body: &[u8],
    upstream_model: &str,
) -> Result<(Bytes, bool), GatewayError> {
    let r = EmbeddingsRequest::parse(body, NAME)?;
    let model = format!("models/{upstream_model}");
    let requests: Vec<Value> = r
        .input
        .into_iter()
        .map(|text| {
            let mut req = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if let Some(d) = r.dimensions {
                req["outputDimensionality"] = json!(d);
            }
            req
        })
        .collect();
    Ok((
        Bytes::from(json!({"requests": requests}).to_string()),
        r.base64,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchEmbeddings {
    #[serde(default)]
    embeddings: Vec<Embedding>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
}

#[derive(Deserialize)]
struct Embedding {
    /// As sent (Gemini's float32 values in decimal): relayed without
    /// widening to float64's digits.
    #[serde(default)]
    values: Vec<f64>,
}

pub fn embeddings_answer(
    x: &Exchange,
    body: &[u8],
) -> Result<(Bytes, Option<Usage>), GatewayError> {
    let r: BatchEmbeddings =
        serde_json::from_slice(body).map_err(|_| GatewayError::UpstreamInvalidAnswer(NAME))?;
    let data: Vec<Value> = r
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let embedding = if x.base64 {
                let mut raw = Vec::with_capacity(e.values.len() * 4);
                for v in &e.values {
                    raw.extend_from_slice(&(*v as f32).to_le_bytes());
                }
                json!(base64::engine::general_purpose::STANDARD.encode(raw))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let usage = r
        .usage_metadata
        .map(|u| oa::usage(u.prompt_token_count, u.cached_content_token_count, 0, 0, 0));
    let mut out = json!({"object": "list", "data": data, "model": x.model.as_ref()});
    if let Some(u) = &usage {
        out["usage"] = json!({"prompt_tokens": u.prompt_tokens, "total_tokens": u.prompt_tokens});
    }
    Ok((Bytes::from(out.to_string()), usage))
}

/// `{"error": {"code", "message", "status"}}` → OpenAI's shape.
pub fn error_answer(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let e = &v["error"];
    oa::error_json(
        status,
        e["status"].as_str(),
        e["message"]
            .as_str()
            .unwrap_or("The upstream answered with an error."),
    )
}
