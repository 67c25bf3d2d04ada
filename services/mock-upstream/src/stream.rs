//! Server-sent events in OpenAI's chunk format, generated lazily one event
//! at a time (no buffering, one small allocation per event).

use actix_web::HttpResponse;
use bytes::Bytes;
use std::time::Duration;

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

#[derive(Clone, Copy, PartialEq)]
pub enum Shape {
    Chat,
    Completion,
}

pub struct StreamPlan {
    pub shape: Shape,
    pub id: u64,
    pub created: u64,
    /// The model name, already a JSON string literal.
    pub model_json: String,
    pub chunks: u32,
    pub finish: &'static str,
    pub chunk_delay: Duration,
    /// `(prompt, completion)` tokens for a final usage chunk, if one is sent.
    pub usage: Option<(u64, u64)>,
    /// `stream_options.include_usage` was asked: every chunk carries `"usage":null`.
    pub usage_null: bool,
    /// Break the connection after this many content chunks.
    pub abort_after: Option<u32>,
}

/// Where the generator is. Chat streams open with a role chunk; both shapes
/// then send the content chunks, a finish chunk, the optional usage chunk and
/// `[DONE]`.
enum Step {
    Role,
    Content(u32),
    Finish,
    Usage,
    Done,
    End,
}

pub fn response(plan: StreamPlan) -> HttpResponse {
    let first = if plan.shape == Shape::Chat {
        Step::Role
    } else {
        Step::Content(0)
    };
    let events = futures_util::stream::unfold((plan, first), |(plan, step)| async move {
        let (event, next) = match step {
            Step::End => return None,
            Step::Role => (plan.event(Some("assistant"), "", None), Step::Content(0)),
            Step::Content(i) if i >= plan.chunks => {
                return Some((Ok(plan.finish_event()), (plan, Step::Finish)))
            }
            Step::Content(i) => {
                if plan.abort_after == Some(i) {
                    // Pause first so the events so far (and the headers) are
                    // flushed: the client sees a stream that breaks midway.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let err = std::io::Error::other("mock: stream aborted on request");
                    return Some((Err(err), (plan, Step::End)));
                }
                if i > 0 && !plan.chunk_delay.is_zero() {
                    tokio::time::sleep(plan.chunk_delay).await;
                }
                (plan.event(None, word(i), None), Step::Content(i + 1))
            }
            Step::Finish => match plan.usage {
                Some(_) => (plan.usage_event(), Step::Usage),
                None => (Bytes::from_static(b"data: [DONE]\n\n"), Step::Done),
            },
            Step::Usage => (Bytes::from_static(b"data: [DONE]\n\n"), Step::Done),
            Step::Done => return None,
        };
        Some((Ok::<_, std::io::Error>(event), (plan, next)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(events)
}

impl StreamPlan {
    fn usage_null(&self) -> &'static str {
        if self.usage_null {
            ",\"usage\":null"
        } else {
            ""
        }
    }

    /// One content-carrying event. `text` is one of [`WORDS`] (no escaping needed).
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
                format!(
                    "data: {{\"id\":\"chatcmpl-mock-{}\",\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_mock\",\"choices\":[{{\"index\":0,\"delta\":{{{delta}}},\"logprobs\":null,\"finish_reason\":{finish}}}]{}}}\n\n",
                    self.id, self.created, self.model_json, self.usage_null()
                )
            }
            Shape::Completion => format!(
                "data: {{\"id\":\"cmpl-mock-{}\",\"object\":\"text_completion\",\"created\":{},\"model\":{},\"choices\":[{{\"text\":\"{text}\",\"index\":0,\"logprobs\":null,\"finish_reason\":{finish}}}]{}}}\n\n",
                self.id, self.created, self.model_json, self.usage_null()
            ),
        };
        Bytes::from(s)
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
        Bytes::from(format!(
            "data: {{\"id\":\"{id_prefix}-mock-{}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":[],\"usage\":{{\"prompt_tokens\":{p},\"completion_tokens\":{c},\"total_tokens\":{}}}}}\n\n",
            self.id, self.created, self.model_json, p + c
        ))
    }
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
