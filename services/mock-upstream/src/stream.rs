//! Server-sent events, generated lazily one event at a time (no buffering,
//! one small allocation per event): OpenAI's chunk format (Azure's flavour
//! included) here, and a driver for the scripted streams of the other
//! providers.

use actix_web::HttpResponse;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What every worker's OpenAI-shaped streams share: the gate of gated
/// streams, and counters a test reads back.
pub struct Streams {
    gate: Semaphore,
    chunks_sent: AtomicU64,
    completed: AtomicU64,
    cancelled: AtomicU64,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            gate: Semaphore::new(0),
            chunks_sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
        }
    }
}

/// At most this many permits are released at once (the semaphore's own
/// bound is far above).
pub const MAX_RELEASE: usize = 1_000_000;

impl Streams {
    /// Lets gated streams send `n` more content chunks (at most
    /// [`MAX_RELEASE`] at once).
    pub fn release(&self, n: usize) {
        self.gate.add_permits(n.min(MAX_RELEASE));
    }

    /// Content chunks sent by every stream so far.
    pub fn chunks_sent(&self) -> u64 {
        self.chunks_sent.load(Relaxed)
    }

    /// Streams that reached the end of their plan (`[DONE]`, or a planned
    /// error event or break).
    pub fn completed(&self) -> u64 {
        self.completed.load(Relaxed)
    }

    /// Streams dropped before their end: the client went away.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Relaxed)
    }
}

/// Counts one stream as completed or cancelled when it is dropped.
pub struct Tracker {
    live: Arc<Streams>,
    ended: bool,
}

impl Tracker {
    pub fn new(live: Arc<Streams>) -> Tracker {
        Tracker { live, ended: false }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let counter = match self.ended {
            true => &self.live.completed,
            false => &self.live.cancelled,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// Knobs of the OpenAI shape only (see [`crate::overrides::MockOverrides`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// Spaces appended to each content chunk's text.
    pub pad: u32,
    /// Wait for a permit before each content chunk after the first.
    pub gated: bool,
    /// The usage chunk with a non-empty `choices` and a `cost`, as LiteLLM
    /// sends it.
    pub usage_with_choices: bool,
}

/// Words of the answer, cycled. Each is a single token in OpenAI's
/// encodings, so a tokenizer counting the streamed text agrees with the
/// reported `completion_tokens` (= number of content chunks).
const WORDS: &[&str] = &[
    " Hello",
    " from",
    " the",
    " mock",
    " upstream",
    " server",
    " and",
    " this",
    " is",
    " a",
    " test",
    ".",
];

/// Content of chunk `i` (0-based); the answer starts without a space.
pub fn word(i: u32) -> &'static str {
    if i == 0 {
        "Hello"
    } else {
        WORDS[i as usize % WORDS.len()]
    }
}

/// The full answer of `n` tokens: the concatenation of the streamed chunks.
pub fn text(n: u32) -> String {
    (0..n).map(word).collect()
}

/// The same with `pad` spaces after each chunk's word.
pub fn padded_text(n: u32, pad: u32) -> String {
    if pad == 0 {
        return text(n);
    }
    let pad = " ".repeat(pad as usize);
    (0..n).map(|i| format!("{}{pad}", word(i))).collect()
}

#[derive(Clone, Copy, PartialEq)]
pub enum Shape {
    Chat,
    Completion,
}

/// A tool call streamed after the text, its parts already JSON literals.
pub struct StreamTool {
    pub id: u64,
    pub name_json: String,
    pub pieces_json: Vec<String>,
}

pub struct StreamPlan {
    pub shape: Shape,
    /// Azure OpenAI's flavour: a first chunk with the prompt's content
    /// filter results and filter results on every choice.
    pub azure: bool,
    pub id: u64,
    pub created: u64,
    /// The model name, already a JSON string literal.
    pub model_json: String,
    pub chunks: u32,
    pub finish: &'static str,
    pub chunk_delay: Duration,
    /// `(prompt, completion)` tokens for a final usage chunk, if one is sent.
    pub usage: Option<(u64, u64)>,
    /// `(cached, reasoning)` token details of that chunk, when a knob asked.
    pub usage_details: Option<(u64, u64)>,
    pub tool: Option<StreamTool>,
    /// The finish chunk reports the content filter's stop (Azure's results).
    pub filtered: bool,
    /// Send this error event after that many content chunks, then end.
    pub error_after: Option<(u32, Bytes)>,
    /// `stream_options.include_usage` was asked: every chunk carries `"usage":null`.
    pub usage_null: bool,
    /// Break the connection after this many content chunks.
    pub abort_after: Option<u32>,
    pub extras: Extras,
    pub tracker: Tracker,
}

/// Where the generator is. Azure streams open with the prompt filter chunk;
/// chat streams then send a role chunk; both shapes then send the content
/// chunks, the tool call, a finish chunk, the optional usage chunk and
/// `[DONE]`.
enum Step {
    Prompt,
    Role,
    Content(u32),
    ToolPiece(usize),
    Finish,
    Usage,
    Done,
    End,
}

/// Pauses so the events so far (and the headers) are flushed, then breaks
/// the connection: the client sees a stream that breaks midway.
async fn abort() -> std::io::Error {
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::io::Error::other("mock: stream aborted on request")
}

pub fn response(plan: StreamPlan) -> HttpResponse {
    let first = match plan.shape {
        Shape::Chat if plan.azure => Step::Prompt,
        Shape::Chat => Step::Role,
        Shape::Completion => Step::Content(0),
    };
    // Boxed: the state moves in and out of each step's future, and a
    // pointer moves cheaper than the plan.
    let events = futures_util::stream::unfold((Box::new(plan), first), |(plan, step)| async move {
        let mut plan = plan;
        let (event, next) = match step {
            Step::End => {
                plan.tracker.ended = true;
                return None;
            }
            Step::Prompt => (plan.prompt_filter_event(), Step::Role),
            Step::Role => (plan.event(Some("assistant"), "", None), Step::Content(0)),
            Step::Content(i) => {
                if let Some((k, event)) = &plan.error_after {
                    if i == (*k).min(plan.chunks) {
                        let event = event.clone();
                        plan.tracker.ended = true;
                        return Some((Ok(event), (plan, Step::End)));
                    }
                }
                if i >= plan.chunks {
                    return match &plan.tool {
                        Some(_) => Some((Ok(plan.tool_start_event()), (plan, Step::ToolPiece(0)))),
                        None => Some((Ok(plan.finish_event()), (plan, Step::Finish))),
                    };
                }
                if plan.abort_after == Some(i) {
                    // A planned break: the end of this stream's plan.
                    plan.tracker.ended = true;
                    return Some((Err(abort().await), (plan, Step::End)));
                }
                if i > 0 && plan.extras.gated {
                    if let Ok(permit) = plan.tracker.live.gate.acquire().await {
                        permit.forget();
                    }
                }
                if i > 0 && !plan.chunk_delay.is_zero() {
                    tokio::time::sleep(plan.chunk_delay).await;
                }
                plan.tracker.live.chunks_sent.fetch_add(1, Relaxed);
                (plan.content_event(i), Step::Content(i + 1))
            }
            Step::ToolPiece(k) => match plan.tool.as_ref().and_then(|t| t.pieces_json.get(k)) {
                Some(piece) => (plan.tool_piece_event(piece), Step::ToolPiece(k + 1)),
                None => (plan.finish_event(), Step::Finish),
            },
            Step::Finish => match plan.usage {
                Some(_) => (plan.usage_event(), Step::Usage),
                None => (Bytes::from_static(b"data: [DONE]\n\n"), Step::Done),
            },
            Step::Usage => (Bytes::from_static(b"data: [DONE]\n\n"), Step::Done),
            Step::Done => {
                plan.tracker.ended = true;
                return None;
            }
        };
        Some((Ok::<_, std::io::Error>(event), (plan, next)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(events)
}

/// Azure's content filter verdict on a piece of text: nothing filtered.
const AZURE_SAFE: &str = r#"{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}"#;

/// Azure's verdict when the answer was stopped by the filter.
pub const AZURE_FILTERED: &str = r#"{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":true,"severity":"medium"}}"#;

/// Azure's `prompt_filter_results` for a prompt that passed.
pub fn azure_prompt_filter_results() -> String {
    format!(r#"[{{"prompt_index":0,"content_filter_results":{AZURE_SAFE}}}]"#)
}

/// Azure's per-choice filter results for an answer's text.
pub fn azure_choice_filter_results(filtered: bool) -> &'static str {
    if filtered {
        AZURE_FILTERED
    } else {
        AZURE_SAFE
    }
}

impl StreamPlan {
    fn usage_null(&self) -> &'static str {
        if self.usage_null {
            ",\"usage\":null"
        } else {
            ""
        }
    }

    /// Content chunk `i`: its word and the padding.
    fn content_event(&self, i: u32) -> Bytes {
        match self.extras.pad {
            0 => self.event(None, word(i), None),
            pad => {
                let text = format!("{}{}", word(i), " ".repeat(pad as usize));
                self.event(None, &text, None)
            }
        }
    }

    /// One content-carrying event. `text` is one of [`WORDS`] (no escaping
    /// needed), maybe with spaces after it.
    fn event(&self, role: Option<&str>, text: &str, finish: Option<&str>) -> Bytes {
        let finish = match finish {
            Some(f) => format!("\"{f}\""),
            None => "null".into(),
        };
        let s = match self.shape {
            Shape::Chat => {
                let role = role.map(|r| format!("\"role\":\"{r}\",")).unwrap_or_default();
                let delta = if text.is_empty() && role.is_empty() {
                    String::new()
                } else {
                    format!("{role}\"content\":\"{text}\"")
                };
                self.chat_chunk(&delta, &finish, !text.is_empty())
            }
            Shape::Completion => format!(
                "data: {{\"id\":\"cmpl-mock-{}\",\"object\":\"text_completion\",\"created\":{},\"model\":{},\"choices\":[{{\"text\":\"{text}\",\"index\":0,\"logprobs\":null,\"finish_reason\":{finish}}}]{}}}\n\n",
                self.id, self.created, self.model_json, self.usage_null()
            ),
        };
        Bytes::from(s)
    }

    /// One chat chunk around `delta` (the inside of the delta object);
    /// `text` says whether it carries answer text (Azure filters those).
    fn chat_chunk(&self, delta: &str, finish: &str, text: bool) -> String {
        if !self.azure {
            return format!(
                "data: {{\"id\":\"chatcmpl-mock-{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_mock\",\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish}}}]{}}}\n\n",
                self.id, self.created, self.model_json, self.usage_null()
            );
        }
        let filter = match (text, self.filtered && finish != "null") {
            (_, true) => AZURE_FILTERED,
            (true, false) => AZURE_SAFE,
            (false, false) => "{}",
        };
        format!(
            "data: {{\"id\":\"chatcmpl-mock-{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_mock\",\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish},\"content_filter_results\":{filter}}}]{}}}\n\n",
            self.id, self.created, self.model_json, self.usage_null()
        )
    }

    /// Azure's first chunk: no choices, empty ids, the prompt's filter results.
    fn prompt_filter_event(&self) -> Bytes {
        Bytes::from(format!(
            "data: {{\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":{}}}\n\n",
            azure_prompt_filter_results()
        ))
    }

    fn tool_start_event(&self) -> Bytes {
        let Some(t) = &self.tool else {
            return self.finish_event();
        };
        let delta = format!(
            "\"tool_calls\":[{{\"index\":0,\"id\":\"call_mock_{}\",\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":\"\"}}}}]",
            t.id, t.name_json
        );
        Bytes::from(self.chat_chunk(&delta, "null", false))
    }

    fn tool_piece_event(&self, piece_json: &str) -> Bytes {
        let delta =
            format!("\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":{piece_json}}}}}]");
        Bytes::from(self.chat_chunk(&delta, "null", false))
    }

    fn finish_event(&self) -> Bytes {
        self.event(None, "", Some(self.finish))
    }

    fn usage_event(&self) -> Bytes {
        let (p, c) = self.usage.unwrap_or_default();
        let (id_prefix, object) = match self.shape {
            Shape::Chat => ("chatcmpl", "chat.completion.chunk"),
            Shape::Completion => ("cmpl", "text_completion"),
        };
        let details = match self.usage_details {
            None => String::new(),
            Some((cached, reasoning)) => openai_usage_details(cached, reasoning),
        };
        let (choices, cost) = match self.extras.usage_with_choices {
            true => (r#"[{"index":0,"delta":{}}]"#, r#","cost":0.000123"#),
            false => ("[]", ""),
        };
        Bytes::from(format!(
            "data: {{\"id\":\"{id_prefix}-mock-{}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":{choices},\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{}{details}}}{cost}}}\n\n",
            self.id, self.created, self.model_json, p.saturating_add(c)
        ))
    }
}

/// The token details OpenAI (and Azure) add to `usage`, as JSON members
/// starting with a comma.
pub fn openai_usage_details(cached: u64, reasoning: u64) -> String {
    format!(
        ",\"prompt_tokens_details\":{{\"cached_tokens\":{cached},\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":{reasoning},\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}"
    )
}

/// One beat of a scripted stream.
pub enum Beat {
    /// Send these bytes now.
    Send(Bytes),
    /// Send these bytes after the chunk delay (a content chunk after the first).
    Paced(Bytes),
    /// Break the connection.
    Abort,
}

/// A stream scripted step by step (Anthropic's and Gemini's): `beat(i)` is
/// what step `i` sends, `None` past the end.
pub trait Script: Send + 'static {
    fn beat(&self, i: usize) -> Option<Beat>;
}

/// Plays a script lazily with the given content type (SSE, or Gemini's
/// streamed JSON array).
pub fn scripted(script: impl Script, chunk_delay: Duration, content_type: &str) -> HttpResponse {
    let events =
        futures_util::stream::unfold((Box::new(script), 0usize), move |(script, i)| async move {
            match script.beat(i)? {
                Beat::Send(b) => Some((Ok(b), (script, i + 1))),
                Beat::Paced(b) => {
                    if !chunk_delay.is_zero() {
                        tokio::time::sleep(chunk_delay).await;
                    }
                    Some((Ok(b), (script, i + 1)))
                }
                // Past the end afterwards: the stream stops after the error.
                Beat::Abort => Some((Err(abort().await), (script, usize::MAX))),
            }
        });
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("cache-control", "no-cache"))
        .streaming(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_the_concatenation_of_chunks() {
        assert_eq!(text(3), "Hello from the");
        assert_eq!(text(0), "");
        let long = text(WORDS.len() as u32 + 2);
        assert!(long.ends_with(". Hello from"), "{long}");
    }
}
