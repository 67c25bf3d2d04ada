//! Prompt tokens of an OpenAI chat request, by the OpenAI cookbook's
//! accounting ("How to count tokens with tiktoken"):
//!
//! - every message costs `tokens_per_message` (3; 4 for
//!   `gpt-3.5-turbo-0301`) plus the tokens of each of its string fields
//!   (`role`, `content`, `name`, `tool_call_id`); a `name` adds
//!   `tokens_per_name` (1; −1 for `gpt-3.5-turbo-0301`);
//! - the reply is primed with 3 more tokens.
//!
//! Exact for text messages (multi-part text content counts each part).
//! Approximated, and flagged `approximate` in the answer:
//! - images: 85 tokens with `detail: "low"`, otherwise 765 (a 1024×1024
//!   image at high detail; the real cost depends on the image size, which a
//!   URL does not tell);
//! - other non-text parts (audio, files): 0;
//! - `tool_calls` / `function_call` of assistant messages: the tokens of the
//!   function name and arguments;
//! - `tools` / `functions`: the cookbook's function-calling estimate
//!   (7 per function for o200k models, 10 otherwise; 3 per property and
//!   enum item; 12 at the end), which ignores nested object schemas.

use crate::tokenize::{Encoders, Encoding};
use serde::Deserialize;
use serde_json::Value;

/// An OpenAI chat request body (fields other than these are ignored).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatCountRequest {
    /// Model name: picks the encoding and the per-message constants.
    pub model: String,
    /// Overrides the model's encoding.
    #[serde(default)]
    pub encoding: Option<String>,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    /// Legacy form of `tools`.
    #[serde(default)]
    pub functions: Option<Vec<FunctionDef>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub role: String,
    /// A string, an array of content parts, or null.
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub function_call: Option<FunctionCall>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One part of a multi-part content: `{"type":"text","text":…}` or
/// `{"type":"image_url","image_url":{"url":…,"detail":…}}`; other types are
/// accepted and counted as 0.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<ImageUrl>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ImageUrl {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: FunctionDef,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
}

/// The result of counting a chat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatCount {
    pub tokens: u64,
    /// Whether images, non-text parts, tool calls or tool definitions were
    /// estimated.
    pub approximate: bool,
}

/// A content-part problem the caller must fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartError(pub String);

const LOW_DETAIL_IMAGE: i64 = 85;
const HIGH_DETAIL_IMAGE: i64 = 765;

/// Counts the prompt tokens of `req` with encoding `e`.
pub fn count_chat(
    enc: &Encoders,
    e: Encoding,
    req: &ChatCountRequest,
) -> Result<ChatCount, PartError> {
    let (per_message, per_name) = if req.model == "gpt-3.5-turbo-0301" {
        (4i64, -1i64)
    } else {
        (3, 1)
    };
    let n = |s: &str| enc.count(e, s) as i64;
    let mut total: i64 = 0;
    let mut approximate = false;
    for (i, m) in req.messages.iter().enumerate() {
        total += per_message + n(&m.role);
        match &m.content {
            None => {}
            Some(MessageContent::Text(t)) => total += n(t),
            Some(MessageContent::Parts(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    match p.kind.as_str() {
                        "text" => {
                            let t = p.text.as_deref().ok_or_else(|| {
                                PartError(format!(
                                    "messages[{i}].content[{j}]: a text part needs a string `text`"
                                ))
                            })?;
                            total += n(t);
                        }
                        "image_url" => {
                            approximate = true;
                            let low = p.image_url.as_ref().and_then(|u| u.detail.as_deref())
                                == Some("low");
                            total += if low {
                                LOW_DETAIL_IMAGE
                            } else {
                                HIGH_DETAIL_IMAGE
                            };
                        }
                        _ => approximate = true,
                    }
                }
            }
        }
        if let Some(name) = &m.name {
            total += n(name) + per_name;
        }
        if let Some(id) = &m.tool_call_id {
            total += n(id);
        }
        let calls = m
            .tool_calls
            .iter()
            .flatten()
            .map(|c| &c.function)
            .chain(m.function_call.iter());
        for f in calls {
            approximate = true;
            total += f.name.as_deref().map_or(0, n) + f.arguments.as_deref().map_or(0, n);
        }
    }
    total += 3;
    let defs: Vec<&FunctionDef> = req
        .tools
        .iter()
        .flatten()
        .map(|t| &t.function)
        .chain(req.functions.iter().flatten())
        .collect();
    if !defs.is_empty() {
        approximate = true;
        total += tools_estimate(&defs, e, &n);
    }
    Ok(ChatCount {
        tokens: total.max(0) as u64,
        approximate,
    })
}

/// The cookbook's estimate for function definitions.
fn tools_estimate(defs: &[&FunctionDef], e: Encoding, n: &dyn Fn(&str) -> i64) -> i64 {
    let func_init = if e == Encoding::O200kBase { 7 } else { 10 };
    let (prop_init, prop_key, enum_init, enum_item, func_end) = (3, 3, -3, 3, 12);
    let mut total = 0;
    for f in defs {
        total += func_init;
        let desc = f.description.as_deref().unwrap_or("");
        let desc = desc.strip_suffix('.').unwrap_or(desc);
        total += n(&format!("{}:{}", f.name, desc));
        let props = f
            .parameters
            .as_ref()
            .and_then(|p| p.get("properties"))
            .and_then(Value::as_object);
        if let Some(props) = props.filter(|p| !p.is_empty()) {
            total += prop_init;
            for (key, schema) in props {
                total += prop_key;
                if let Some(items) = schema.get("enum").and_then(Value::as_array) {
                    total += enum_init;
                    for item in items {
                        total += enum_item;
                        total += match item {
                            Value::String(s) => n(s),
                            other => n(&other.to_string()),
                        };
                    }
                }
                let ty = schema.get("type").map_or(String::new(), |t| match t {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let pdesc = schema
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let pdesc = pdesc.strip_suffix('.').unwrap_or(pdesc);
                total += n(&format!("{key}:{ty}:{pdesc}"));
            }
        }
    }
    total + func_end
}
