//! The Gemini API (`/v1beta/models/{model}:{action}`, also under `/v1`):
//! `generateContent`, `streamGenerateContent` (`?alt=sse` for server-sent
//! events, else a streamed JSON array), `embedContent`, `batchEmbedContents`
//! and the model list. Keys come in `x-goog-api-key` or `?key=`; like the
//! real API, unknown top-level fields are refused.

use crate::answer::{thinking_text, Answer, Finish};
use crate::auth;
use crate::error::{Failure, MockError, Provider};
use crate::overrides::MockOverrides;
use crate::state::{Endpoint, State};
use crate::stream::{self, Beat, Script};
use crate::wire::{embedding_dim, vector};
use crate::words::{MessageWords, OneMessage};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

const PROVIDER: Provider = Provider::Gemini;

/// Field names in proto JSON's camelCase, with the snake_case spelling the
/// API also accepts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerateRequest {
    contents: MessageWords,
    #[serde(default, rename = "systemInstruction", alias = "system_instruction")]
    system_instruction: Option<OneMessage>,
    #[serde(default, rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
    #[serde(default)]
    tools: Option<Vec<Tool>>,
    #[serde(default)]
    mock: Option<MockOverrides>,
    #[serde(default, rename = "toolConfig", alias = "tool_config")]
    _tool_config: IgnoredAny,
    #[serde(default, rename = "safetySettings", alias = "safety_settings")]
    _safety_settings: IgnoredAny,
    #[serde(default, rename = "cachedContent", alias = "cached_content")]
    _cached_content: IgnoredAny,
    #[serde(default, rename = "labels")]
    _labels: IgnoredAny,
    #[serde(default, rename = "model")]
    _model: IgnoredAny,
    #[serde(default, rename = "serviceTier", alias = "service_tier")]
    _service_tier: IgnoredAny,
}

#[derive(Default, Deserialize)]
struct GenerationConfig {
    #[serde(default, rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u32>,
    #[serde(default, rename = "thinkingConfig", alias = "thinking_config")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Default, Deserialize)]
struct ThinkingConfig {
    #[serde(default, rename = "includeThoughts", alias = "include_thoughts")]
    include_thoughts: bool,
}

#[derive(Deserialize)]
struct Tool {
    #[serde(
        default,
        rename = "functionDeclarations",
        alias = "function_declarations"
    )]
    function_declarations: Option<Vec<FunctionDeclaration>>,
}

#[derive(Deserialize)]
struct FunctionDeclaration {
    name: String,
}

/// serde's wording turned into the API's.
fn gemini_parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let unknown = msg
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next());
        MockError::InvalidRequest(match unknown {
            Some(f) => {
                format!("Invalid JSON payload received. Unknown name \"{f}\": Cannot find field.")
            }
            None => format!("Invalid JSON payload received. {msg}"),
        })
    })
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::ToolCalls => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::Filtered => "SAFETY",
    }
}

/// `usageMetadata` after `candidates` visible output tokens: the prompt
/// count includes the cached tokens (also reported apart); thoughts are
/// apart from the candidates; zero-valued optional counts are left out, as
/// proto JSON does.
fn usage_metadata(a: &Answer, candidates: u64) -> Value {
    let prompt = a.input_total();
    let mut u = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + a.reasoning,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    });
    if a.cache_read > 0 {
        u["cachedContentTokenCount"] = json!(a.cache_read);
        u["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": a.cache_read}]);
    }
    if a.reasoning > 0 {
        u["thoughtsTokenCount"] = json!(a.reasoning);
    }
    u
}

/// Splits `gemini-2.0-flash:generateContent`.
fn model_action(path: &str) -> Option<(&str, &str)> {
    path.rsplit_once(':')
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
}

/// `POST /v1beta/models/{model}:{action}` (and `/v1/...`).
pub async fn model_call(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let Some((model, action)) = model_action(&path) else {
        return Err(MockError::NotFound.answered_by(PROVIDER));
    };
    let endpoint = match action {
        "generateContent" => Endpoint::GenerateContent,
        "streamGenerateContent" => Endpoint::StreamGenerateContent,
        "embedContent" => Endpoint::EmbedContent,
        "batchEmbedContents" => Endpoint::BatchEmbedContents,
        _ => return Err(MockError::NotFound.answered_by(PROVIDER)),
    };
    state.arrived(endpoint, &req, &body, Some(model));
    let answer = async {
        auth::check(state.config.api_key.as_ref(), PROVIDER, &req)?;
        match endpoint {
            Endpoint::EmbedContent | Endpoint::BatchEmbedContents => {
                embed(&state, model, endpoint, &body).await
            }
            _ => {
                let sse = req.query_string().split('&').any(|kv| kv == "alt=sse");
                generate(&state, model, endpoint, sse, &body).await
            }
        }
    };
    answer.await.map_err(|e| e.answered_by(PROVIDER))
}

struct Ids<'a> {
    id: u64,
    model: &'a str,
}

impl Ids<'_> {
    /// One `GenerateContentResponse` with a single candidate.
    fn response(&self, candidate: Value, usage: Option<Value>) -> Value {
        let mut r = json!({
            "candidates": [candidate],
            "modelVersion": self.model,
            "responseId": format!("mock-{}", self.id),
        });
        if let Some(u) = usage {
            r["usageMetadata"] = u;
        }
        r
    }
}

fn candidate(parts: Vec<Value>, finish: Option<Finish>) -> Value {
    let mut c = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(f) = finish {
        c["finishReason"] = json!(finish_reason(f));
        if f == Finish::Filtered {
            c["safetyRatings"] = json!([{
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": true
            }]);
        }
    }
    c
}

fn function_call(a: &Answer) -> Option<Value> {
    a.tool
        .as_ref()
        .map(|t| json!({"functionCall": {"name": t.name, "args": t.args}}))
}

async fn generate(
    state: &State,
    model: &str,
    endpoint: Endpoint,
    sse: bool,
    body: &[u8],
) -> Result<HttpResponse, MockError> {
    let r: GenerateRequest = gemini_parse(body)?;
    let streamed = endpoint == Endpoint::StreamGenerateContent;
    let mut plan = state.begin(PROVIDER, model, r.mock, streamed).await?;
    let config = r.generation_config.unwrap_or_default();
    let thoughts_shown = config.thinking_config.is_some_and(|t| t.include_thoughts);
    let first_tool = r
        .tools
        .as_ref()
        .and_then(|t| {
            t.iter()
                .filter_map(|t| t.function_declarations.as_ref())
                .flatten()
                .next()
        })
        .map(|f| f.name.as_str());
    let prompt = r.system_instruction.map_or(0, |s| s.0) + r.contents.0;
    let a = Answer::new(&plan, prompt, config.max_output_tokens, first_tool)?;
    let ids = Ids {
        id: state.next_id(),
        model,
    };

    if streamed {
        let error = plan.error_after.take().map(|(k, e)| (k, e.body(PROVIDER)));
        let script = GenerateStream::new(
            &ids,
            a,
            thoughts_shown,
            plan.no_usage,
            plan.abort_after,
            error,
            sse,
        );
        let content_type = if sse {
            "text/event-stream"
        } else {
            "application/json"
        };
        return Ok(stream::scripted(script, plan.chunk_delay, content_type));
    }

    let mut parts = Vec::new();
    if a.reasoning > 0 && thoughts_shown {
        parts.push(json!({"text": thinking_text(a.reasoning), "thought": true}));
    }
    if a.text > 0 || a.tool.is_none() {
        parts.push(json!({"text": stream::text(a.text)}));
    }
    parts.extend(function_call(&a));
    let usage = (!plan.no_usage).then(|| usage_metadata(&a, a.visible_output()));
    Ok(HttpResponse::Ok().json(ids.response(candidate(parts, Some(a.finish)), usage)))
}

/// A streamed answer: one chunk per thought summary, text word and function
/// call, then a last chunk with the finish reason. Every chunk carries the
/// usage so far (cumulative: the last one is final, they never add up).
struct GenerateStream {
    chunks: Vec<Bytes>,
    /// Index of the chunk to break the connection before, if any.
    abort_at: Option<usize>,
    /// The text chunks: those after the first wait for the chunk delay.
    text: std::ops::Range<usize>,
    sse: bool,
}

impl GenerateStream {
    fn new(
        ids: &Ids,
        a: Answer,
        thoughts_shown: bool,
        no_usage: bool,
        abort_after: Option<u32>,
        error: Option<(u32, Value)>,
        sse: bool,
    ) -> GenerateStream {
        let usage = |candidates: u64| (!no_usage).then(|| usage_metadata(&a, candidates));
        let mut chunks = Vec::new();
        if a.reasoning > 0 && thoughts_shown {
            let part = json!({"text": thinking_text(a.reasoning), "thought": true});
            chunks.push(ids.response(candidate(vec![part], None), usage(0)));
        }
        let text_from = chunks.len();
        let cut = error.as_ref().map(|(k, _)| (*k).min(a.text));
        let mut abort_at = None;
        let mut ended = false;
        for i in 0..=a.text {
            if cut == Some(i) {
                if let Some((_, e)) = &error {
                    chunks.push(e.clone());
                }
                ended = true;
                break;
            }
            if i == a.text {
                break;
            }
            if abort_after == Some(i) {
                abort_at = Some(chunks.len());
                ended = true;
                break;
            }
            let part = json!({"text": stream::word(i)});
            chunks.push(ids.response(candidate(vec![part], None), usage(i as u64 + 1)));
        }
        let text_to = chunks.len();
        if !ended {
            if let Some(call) = function_call(&a) {
                chunks.push(ids.response(candidate(vec![call], None), usage(a.visible_output())));
            }
            let last = candidate(vec![json!({"text": ""})], Some(a.finish));
            chunks.push(ids.response(last, usage(a.visible_output())));
        }
        let chunks = chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                Bytes::from(match (sse, i) {
                    // Google frames its events with CRLF.
                    (true, _) => format!("data: {c}\r\n\r\n"),
                    (false, 0) => format!("[{c}"),
                    (false, _) => format!(",\r\n{c}"),
                })
            })
            .collect();
        GenerateStream {
            chunks,
            abort_at,
            text: text_from..text_to,
            sse,
        }
    }
}

impl Script for GenerateStream {
    fn beat(&self, i: usize) -> Option<Beat> {
        if Some(i) == self.abort_at {
            return Some(Beat::Abort);
        }
        match self.chunks.get(i) {
            Some(c) if i > self.text.start && i < self.text.end => Some(Beat::Paced(c.clone())),
            Some(c) => Some(Beat::Send(c.clone())),
            // An array stream closes with `]` unless it broke.
            None if i == self.chunks.len() && !self.sse => {
                Some(Beat::Send(Bytes::from_static(b"]")))
            }
            None => None,
        }
    }
}

#[derive(Deserialize)]
struct EmbedContentRequest {
    content: OneMessage,
    #[serde(
        default,
        rename = "outputDimensionality",
        alias = "output_dimensionality"
    )]
    output_dimensionality: Option<usize>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

#[derive(Deserialize)]
struct BatchEmbedRequest {
    requests: Vec<EmbedContentRequest>,
    #[serde(default)]
    mock: Option<MockOverrides>,
}

async fn embed(
    state: &State,
    model: &str,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<HttpResponse, MockError> {
    let (requests, mock) = if endpoint == Endpoint::BatchEmbedContents {
        let r: BatchEmbedRequest = gemini_parse(body)?;
        (r.requests, r.mock)
    } else {
        let mut r: EmbedContentRequest = gemini_parse(body)?;
        let mock = r.mock.take();
        (vec![r], mock)
    };
    if requests.is_empty() {
        return Err(MockError::InvalidRequest(
            "* BatchEmbedContentsRequest.requests: at least one request is required".into(),
        ));
    }
    let dims = requests
        .iter()
        .map(|r| embedding_dim(state, r.output_dimensionality))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = state.begin(PROVIDER, model, mock, false).await?;
    let words: u64 = requests.iter().map(|r| r.content.0).sum();
    let embeddings: Vec<Value> = dims
        .iter()
        .enumerate()
        .map(|(i, dim)| json!({"values": vector(i as u32, *dim)}))
        .collect();
    let mut out = if endpoint == Endpoint::BatchEmbedContents {
        json!({ "embeddings": embeddings })
    } else {
        json!({ "embedding": embeddings[0] })
    };
    if !plan.no_usage {
        out["usageMetadata"] = json!({"promptTokenCount": words, "totalTokenCount": words});
    }
    Ok(HttpResponse::Ok().json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_model_and_action() {
        assert_eq!(
            model_action("gemini-2.0-flash:generateContent"),
            Some(("gemini-2.0-flash", "generateContent"))
        );
        assert_eq!(model_action("gemini-2.0-flash"), None);
        assert_eq!(model_action(":generateContent"), None);
    }
}
