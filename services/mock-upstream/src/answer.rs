//! The answer every provider renders in its own format, with deterministic
//! token counts a test can compute exactly:
//!
//! - input: the request's words `P` are the uncached input; `R` cache-read
//!   and `W` cache-write tokens (knobs) come on top, as if the request
//!   carried a cached prefix of `R + W` tokens;
//! - output: `N` text tokens (one per content chunk), the tool call's
//!   argument tokens `A` (whitespace-separated pieces of its JSON) and `T`
//!   reasoning tokens (knob).

use crate::error::MockError;
use crate::state::Plan;
use crate::words::count_words;
use serde_json::Value;

/// Thinking text, cycled one word per token (distinct from the answer's).
const THINKING: &[&str] = &[" Let", " me", " think", " about", " the", " answer"];

/// Word `i` (0-based) of the thinking text.
pub fn thinking_word(i: u64) -> &'static str {
    if i == 0 {
        "Let"
    } else {
        THINKING[(i % THINKING.len() as u64) as usize]
    }
}

pub fn thinking_text(n: u64) -> String {
    (0..n).map(thinking_word).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    Filtered,
}

#[derive(Debug, Clone)]
pub struct ToolCall {
    pub name: String,
    /// JSON text of an object, sent as given.
    pub arguments: String,
    /// The same, parsed (Anthropic's `input`, Gemini's `args`).
    pub args: Value,
}

impl ToolCall {
    /// The arguments in streamed pieces: each holds one whitespace-separated
    /// word and the whitespace after it, so the pieces concatenate to the
    /// arguments and their number is the call's token count.
    pub fn pieces(&self) -> Vec<&str> {
        let s = self.arguments.as_str();
        let mut out = Vec::new();
        let (mut start, mut prev_ws, mut seen_word) = (0, false, false);
        for (i, c) in s.char_indices() {
            let ws = c.is_whitespace();
            if !ws && prev_ws && seen_word {
                out.push(&s[start..i]);
                start = i;
            }
            seen_word |= !ws;
            prev_ws = ws;
        }
        out.push(&s[start..]);
        out
    }

    pub fn tokens(&self) -> u64 {
        count_words(&self.arguments)
    }
}

#[derive(Debug, Clone)]
pub struct Answer {
    /// `P`: words of the request's input.
    pub prompt: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
    /// `N`: text tokens (content chunks) sent.
    pub text: u32,
    pub tool: Option<ToolCall>,
    pub finish: Finish,
    /// A knob asked for cache or reasoning counts: OpenAI-shaped usage then
    /// carries its token details.
    pub details: bool,
}

impl Answer {
    /// `max_tokens` caps the text and the tool call (a call that does not
    /// fit is dropped, like a model cut mid-call); reasoning comes on top.
    pub fn new(
        plan: &Plan,
        prompt: u64,
        max_tokens: Option<u32>,
        first_tool: Option<&str>,
    ) -> Result<Answer, MockError> {
        let tool = match &plan.tool_call {
            None => None,
            Some(spec) => {
                let arguments = spec
                    .arguments
                    .clone()
                    .unwrap_or_else(|| r#"{"location": "Paris"}"#.into());
                let args: Value = serde_json::from_str(&arguments).map_err(|e| {
                    MockError::InvalidRequest(format!("mock.tool_call.arguments: {e}"))
                })?;
                if !args.is_object() {
                    return Err(MockError::InvalidRequest(
                        "mock.tool_call.arguments must be a JSON object".into(),
                    ));
                }
                let name = spec
                    .name
                    .clone()
                    .or_else(|| first_tool.map(String::from))
                    .unwrap_or_else(|| "get_weather".into());
                Some(ToolCall {
                    name,
                    arguments,
                    args,
                })
            }
        };
        let n = plan.chunks;
        let (text, tool, finish) = match (max_tokens, tool) {
            (Some(max), _) if max < n => (max, None, Finish::Length),
            (Some(max), Some(t)) if (max as u64) < n as u64 + t.tokens() => {
                (n, None, Finish::Length)
            }
            (_, _) if plan.filtered => (n, None, Finish::Filtered),
            (_, Some(t)) => (n, Some(t), Finish::ToolCalls),
            (_, None) => (n, None, Finish::Stop),
        };
        Ok(Answer {
            prompt,
            cache_read: plan.cache_read.unwrap_or(0),
            cache_write: plan.cache_write.unwrap_or(0),
            reasoning: plan.reasoning.unwrap_or(0),
            text,
            tool,
            finish,
            details: plan.cache_read.is_some()
                || plan.cache_write.is_some()
                || plan.reasoning.is_some(),
        })
    }

    /// Every input token: OpenAI's `prompt_tokens`, Gemini's `promptTokenCount`.
    pub fn input_total(&self) -> u64 {
        self.prompt + self.cache_read + self.cache_write
    }

    /// Text and tool-call tokens (Gemini's `candidatesTokenCount`).
    pub fn visible_output(&self) -> u64 {
        self.text as u64 + self.tool.as_ref().map_or(0, |t| t.tokens())
    }

    /// Every output token, reasoning included: OpenAI's
    /// `completion_tokens`, Anthropic's `output_tokens`.
    pub fn output_total(&self) -> u64 {
        self.visible_output() + self.reasoning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(arguments: &str) -> ToolCall {
        ToolCall {
            name: "f".into(),
            arguments: arguments.into(),
            args: Value::Null,
        }
    }

    #[test]
    fn tool_arguments_split_into_one_piece_per_token() {
        for (args, pieces) in [
            (
                r#"{"location": "Paris"}"#,
                vec![r#"{"location": "#, r#""Paris"}"#],
            ),
            ("{}", vec!["{}"]),
            (" { \"a\":  1 }", vec![" { ", "\"a\":  ", "1 ", "}"]),
        ] {
            let c = call(args);
            assert_eq!(c.pieces(), pieces, "{args}");
            assert_eq!(c.pieces().concat(), args);
            assert_eq!(c.tokens(), pieces.len() as u64);
        }
    }

    #[test]
    fn thinking_text_is_one_word_per_token() {
        assert_eq!(thinking_text(4), "Let me think about");
        assert_eq!(count_words(&thinking_text(50)), 50);
    }
}
