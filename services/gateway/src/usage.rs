//! Reading token usage from upstream answers, and the text the token-service
//! must count when an upstream reports none. Parsing is targeted: only the
//! fields needed are deserialized, the rest is skipped.

use crate::routing::Endpoint;
use aigw_types::CountText;
use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// Token usage in OpenAI's meaning, as OpenAI-compatible upstreams report
/// it; Anthropic's usage object (`input_tokens` without the cache's
/// tokens) is read into the same meaning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "UsageWire")]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_tokens_details: Option<PromptDetails>,
    pub completion_tokens_details: Option<CompletionDetails>,
}

/// Either usage shape, as sent.
#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default, deserialize_with = "lenient")]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    output_tokens_details: Option<ThinkingDetails>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct ThinkingDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(w: UsageWire) -> Usage {
        if w.prompt_tokens.is_none() && (w.input_tokens.is_some() || w.output_tokens.is_some()) {
            let read = w.cache_read_input_tokens.unwrap_or(0);
            let write = w.cache_creation_input_tokens.unwrap_or(0);
            return Usage {
                prompt_tokens: w
                    .input_tokens
                    .unwrap_or(0)
                    .saturating_add(read)
                    .saturating_add(write),
                completion_tokens: w.output_tokens.unwrap_or(0),
                prompt_tokens_details: Some(PromptDetails {
                    cached_tokens: Some(read),
                    cache_write_tokens: Some(write),
                }),
                completion_tokens_details: Some(CompletionDetails {
                    reasoning_tokens: w.output_tokens_details.and_then(|d| d.thinking_tokens),
                }),
            };
        }
        Usage {
            prompt_tokens: w.prompt_tokens.unwrap_or(0),
            completion_tokens: w.completion_tokens.unwrap_or(0),
            prompt_tokens_details: w.prompt_tokens_details,
            completion_tokens_details: w.completion_tokens_details,
        }
    }
}

/// A details object of an unexpected shape is ignored, never a reason to
/// lose the usage it came with.
fn lenient<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Lenient<T> {
        Ok(T),
        Other(IgnoredAny),
    }
    Ok(match Lenient::<T>::deserialize(d)? {
        Lenient::Ok(v) => Some(v),
        Lenient::Other(_) => None,
    })
}

/// `usage.prompt_tokens_details` (only what the ledger keeps).
/// `cache_write_tokens` is the gateway's own field on translated answers
/// (Anthropic's cache creation); OpenAI does not report one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct PromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_tokens: Option<u64>,
}

/// `usage.completion_tokens_details` (only what the ledger keeps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct CompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Prompt tokens the upstream served from its cache.
    pub fn cached_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }

    /// Prompt tokens the upstream wrote to its cache.
    pub fn cache_write_tokens(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cache_write_tokens)
            .unwrap_or(0)
    }

    /// Completion tokens spent reasoning.
    pub fn reasoning_tokens(&self) -> u64 {
        self.completion_tokens_details
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct UsageOnly {
    #[serde(default)]
    usage: Option<Usage>,
}

/// `usage` of a whole JSON answer, if present.
pub fn usage_of_body(body: &[u8]) -> Option<Usage> {
    match last_member_usage(body) {
        Some(usage) => usage,
        None => serde_json::from_slice::<UsageOnly>(body).ok()?.usage,
    }
}

/// `usage` of an answer that has it as its last member, the shape OpenAI's
/// and Anthropic's answers have, read without parsing the rest (the
/// choices and their text, most of the answer: 4,400 fewer instructions on
/// the gateway's request path for a 400-byte answer, more for longer
/// ones). `None` when the answer is not of that shape; then the whole
/// answer is parsed.
///
/// It reads what the whole parse reads. The last `"usage"` in the answer
/// is a key when a `{` or `,` comes before it (so its first quote is not
/// escaped: inside a string an unescaped quote ends it, and `usage"` cannot
/// follow the end of a string) and a `:` after it. When nothing but one
/// `}` follows its value, that brace closes the object holding the key and
/// ends the answer, so the object is the answer itself. Only an answer with
/// the key twice reads differently: the last one counts, where the whole
/// parse refuses the answer.
fn last_member_usage(body: &[u8]) -> Option<Option<Usage>> {
    const KEY: &[u8] = b"\"usage\"";
    static FINDER: std::sync::LazyLock<memchr::memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::FinderRev::new(KEY));
    let at = FINDER.rfind(body)?;
    if !matches!(body[..at].trim_ascii_end().last(), Some(b'{' | b',')) {
        return None;
    }
    let value = body[at + KEY.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<Option<Usage>>();
    let usage = values.next()?.ok()?;
    (value[values.byte_offset()..].trim_ascii() == b"}").then_some(usage)
}

/// What one SSE `data:` payload means for accounting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventInfo {
    pub usage: Option<Usage>,
    /// The payload is a usage-only chunk (`choices` empty or absent).
    pub usage_only: bool,
}

#[derive(Deserialize)]
struct ChunkProbe {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

/// Inspects a stream payload. Cheap for the common case: only a payload
/// whose `"usage"` is an object is parsed.
pub fn inspect_event(payload: &[u8]) -> EventInfo {
    if !has_usage_object(payload) {
        return EventInfo::default();
    }
    match serde_json::from_slice::<ChunkProbe>(payload) {
        Ok(p) => EventInfo {
            usage_only: p.usage.is_some() && p.choices.as_ref().is_none_or(|c| c.is_empty()),
            usage: p.usage,
        },
        Err(_) => EventInfo::default(),
    }
}

/// Fields of a stream chunk that only the gateway asked for: the usage and
/// the cost some upstreams (LiteLLM) report with it.
const USAGE_FIELDS: [&str; 2] = ["usage", "cost"];

/// A stream chunk's JSON without its `usage` and `cost` fields; `None` when it is not a
/// JSON object.
pub fn without_usage(payload: &[u8]) -> Option<Vec<u8>> {
    let mut chunk: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).ok()?;
    for f in USAGE_FIELDS {
        chunk.remove(f);
    }
    serde_json::to_vec(&chunk).ok()
}

/// Whether `"usage"` appears followed by `:` and an object (not `null`).
fn has_usage_object(p: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"usage\"";
    // Built once: a searcher costs more to build than one short search.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(NEEDLE));
    FINDER.find_iter(p).any(|i| {
        let rest = &p[i + NEEDLE.len()..];
        let mut it = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
        it.next() == Some(b':') && it.find(|c| !c.is_ascii_whitespace()) == Some(b'{')
    })
}

// ---- text for counting -------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
    Other(IgnoredAny),
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl Content {
    fn push_to(&self, out: &mut String) {
        match self {
            Content::Text(s) => push_line(out, s),
            Content::Parts(parts) => {
                for p in parts {
                    if let Some(t) = &p.text {
                        push_line(out, t);
                    }
                }
            }
            Content::Other(_) => {}
        }
    }
}

fn push_line(out: &mut String, s: &str) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(s);
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    messages: Vec<Message>,
    /// Anthropic's Messages API.
    #[serde(default)]
    system: Option<Content>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Content>,
}

/// The prompt as text: chat message contents one per line; a completion
/// prompt or embedding input (string or list of strings).
pub fn prompt_text(endpoint: Endpoint, body: &[u8]) -> String {
    let mut out = String::new();
    match endpoint {
        Endpoint::Chat | Endpoint::Messages => {
            if let Ok(r) = serde_json::from_slice::<ChatRequest>(body) {
                if let Some(s) = &r.system {
                    s.push_to(&mut out);
                }
                for m in &r.messages {
                    if let Some(c) = &m.content {
                        c.push_to(&mut out);
                    }
                }
            }
        }
        Endpoint::Completions | Endpoint::Embeddings => {
            if let Ok(v) = serde_json::from_slice::<PromptList>(body) {
                for s in v.items() {
                    push_line(&mut out, s);
                }
            }
        }
        Endpoint::Models => {}
    }
    out
}

#[derive(Deserialize)]
struct PromptList {
    #[serde(default)]
    prompt: Option<StringOrList>,
    #[serde(default)]
    input: Option<StringOrList>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrList {
    One(String),
    Many(Vec<serde_json::Value>),
}

impl PromptList {
    fn items(&self) -> Vec<&str> {
        let mut v = Vec::new();
        for x in [&self.prompt, &self.input].into_iter().flatten() {
            match x {
                StringOrList::One(s) => v.push(s.as_str()),
                StringOrList::Many(items) => v.extend(items.iter().filter_map(|i| i.as_str())),
            }
        }
        v
    }
}

#[derive(Deserialize)]
struct AnswerProbe {
    #[serde(default)]
    choices: Vec<ChoiceProbe>,
    /// Anthropic's message: its content blocks.
    #[serde(default)]
    content: Option<Vec<BlockProbe>>,
    /// Anthropic's `content_block_delta`.
    #[serde(default)]
    delta: Option<BlockProbe>,
}

/// An Anthropic content block or block delta: its text or tool input.
#[derive(Deserialize)]
struct BlockProbe {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

impl BlockProbe {
    fn push_to(&self, out: &mut String) {
        for t in [&self.text, &self.partial_json].into_iter().flatten() {
            out.push_str(t);
        }
        if let Some(i) = &self.input {
            out.push_str(&i.to_string());
        }
    }
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    message: Option<MessageProbe>,
    #[serde(default)]
    delta: Option<MessageProbe>,
}

#[derive(Deserialize)]
struct MessageProbe {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallProbe>>,
}

#[derive(Deserialize)]
struct ToolCallProbe {
    #[serde(default)]
    function: Option<FunctionProbe>,
}

#[derive(Deserialize)]
struct FunctionProbe {
    #[serde(default)]
    arguments: Option<String>,
}

fn push_choice_text(out: &mut String, c: &ChoiceProbe) {
    if let Some(t) = &c.text {
        out.push_str(t);
    }
    for m in [&c.message, &c.delta].into_iter().flatten() {
        if let Some(t) = &m.content {
            out.push_str(t);
        }
        for tc in m.tool_calls.iter().flatten() {
            if let Some(a) = tc.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                out.push_str(a);
            }
        }
    }
}

/// The generated text of a whole answer (embeddings have none).
pub fn completion_text(endpoint: Endpoint, body: &[u8]) -> String {
    let mut out = String::new();
    if endpoint == Endpoint::Embeddings {
        return out;
    }
    if let Ok(a) = serde_json::from_slice::<AnswerProbe>(body) {
        for c in &a.choices {
            push_choice_text(&mut out, c);
        }
        for b in a.content.iter().flatten() {
            b.push_to(&mut out);
        }
    }
    out
}

/// The generated text of a stream, from its `data:` payloads.
pub fn stream_completion_text(payloads: &[Bytes]) -> String {
    let mut out = String::new();
    for p in payloads {
        if let Ok(a) = serde_json::from_slice::<AnswerProbe>(p) {
            for c in &a.choices {
                push_choice_text(&mut out, c);
            }
            if let Some(d) = &a.delta {
                d.push_to(&mut out);
            }
        }
    }
    out
}

/// A rough token estimate (4 bytes per token) for TPM accounting when the
/// upstream reported no usage; the token-service counts exactly later.
pub fn estimate_tokens(t: &CountText) -> u64 {
    ((t.prompt.len() + t.completion.len()) as u64).div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_chunks_are_recognised() {
        let final_chunk = br#"{"id":"x","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        let info = inspect_event(final_chunk);
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7,
                ..Usage::default()
            })
        );
        assert!(info.usage_only);
        let normal = br#"{"id":"x","choices":[{"delta":{"content":"hi"}}],"usage":null}"#;
        assert_eq!(inspect_event(normal), EventInfo::default());
        let both = br#"{"choices":[{"delta":{"content":"hi"}}],"usage" : {"prompt_tokens":1}}"#;
        let info = inspect_event(both);
        assert!(info.usage.is_some());
        assert!(!info.usage_only);
    }

    #[test]
    fn anthropic_usage_is_read_in_openai_meaning() {
        let d = br#"{"type":"message_delta","usage":{"input_tokens":4,
            "cache_creation_input_tokens":30,"cache_read_input_tokens":null,
            "output_tokens":7,"output_tokens_details":{"thinking_tokens":2}}}"#;
        let u = inspect_event(d).usage.unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (34, 7));
        assert_eq!(
            (
                u.cached_tokens(),
                u.cache_write_tokens(),
                u.reasoning_tokens()
            ),
            (0, 30, 2)
        );
        // message_start's usage is nested: not a usage event.
        let start = br#"{"type":"message_start","message":{"usage":{"input_tokens":4}}}"#;
        assert_eq!(inspect_event(start).usage, None);
    }

    #[test]
    fn prompt_and_completion_text() {
        let chat = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello"}]}]}"#;
        assert_eq!(prompt_text(Endpoint::Chat, chat), "be brief\nhello");
        let comp = br#"{"model":"m","prompt":["a","b"]}"#;
        assert_eq!(prompt_text(Endpoint::Completions, comp), "a\nb");
        let emb = br#"{"model":"m","input":"text to embed"}"#;
        assert_eq!(prompt_text(Endpoint::Embeddings, emb), "text to embed");
        let answer = br#"{"choices":[{"message":{"role":"assistant","content":"Hi there"}}]}"#;
        assert_eq!(completion_text(Endpoint::Chat, answer), "Hi there");
        let events = vec![
            Bytes::from_static(br#"{"choices":[{"delta":{"role":"assistant"}}]}"#),
            Bytes::from_static(br#"{"choices":[{"delta":{"content":"Hel"}}]}"#),
            Bytes::from_static(br#"{"choices":[{"delta":{"content":"lo"}}]}"#),
        ];
        assert_eq!(stream_completion_text(&events), "Hello");
    }

    #[test]
    fn body_usage() {
        let b = br#"{"object":"list","data":[],"usage":{"prompt_tokens":3,"total_tokens":3}}"#;
        assert_eq!(
            usage_of_body(b),
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 0,
                ..Usage::default()
            })
        );
        assert_eq!(usage_of_body(b"{}"), None);
        let d = br#"{"usage":{"prompt_tokens":9,"completion_tokens":4,
            "prompt_tokens_details":{"cached_tokens":6,"audio_tokens":0},
            "completion_tokens_details":{"reasoning_tokens":3}}}"#;
        let u = usage_of_body(d).unwrap();
        assert_eq!((u.cached_tokens(), u.reasoning_tokens()), (6, 3));
        // Details of another shape do not cost the counts.
        let odd = br#"{"usage":{"prompt_tokens":2,"prompt_tokens_details":7,
            "completion_tokens_details":{"reasoning_tokens":"x"}}}"#;
        let u = usage_of_body(odd).unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens(), u.reasoning_tokens()),
            (2, 0, 0)
        );
        assert_eq!(usage_of_body(b"not json"), None);
    }

    /// The answer read whole, as `usage_of_body` reads it when `usage` is
    /// not its last member.
    fn parsed_whole(body: &[u8]) -> Option<Usage> {
        serde_json::from_slice::<UsageOnly>(body).ok()?.usage
    }

    /// Answers with `usage` last are read without the whole parse, and
    /// read as it reads them; so are the shapes that only look like it.
    #[test]
    fn usage_as_the_last_member_reads_as_the_whole_answer() {
        let last: &[&[u8]] = &[
            br#"{"id":"c1","choices":[{"message":{"content":"a \"usage\": {}"}}],"usage":{"prompt_tokens":14,"completion_tokens":20,"total_tokens":34}}"#,
            b"{ \"usage\" :\n { \"prompt_tokens\" : 1 ,\"completion_tokens\":2} }\r\n",
            br#"{"usage":{"input_tokens":5,"output_tokens":7,"cache_read_input_tokens":2}}"#,
            br#"{"a":1,"usage":null}"#,
        ];
        for b in last {
            let fast = last_member_usage(b);
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(b));
            assert_eq!(
                fast.unwrap(),
                parsed_whole(b),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(usage_of_body(last[0]).unwrap().completion_tokens, 20);
        assert_eq!(usage_of_body(last[2]).unwrap().prompt_tokens, 7);
        assert_eq!(usage_of_body(last[3]), None);

        let other: &[&[u8]] = &[
            // Not last (vLLM adds members after it).
            br#"{"usage":{"prompt_tokens":3},"prompt_logprobs":null}"#,
            // Not the answer's own.
            br#"{"choices":[{"usage":{"prompt_tokens":9}}]}"#,
            br#"{"a":{"usage":{"prompt_tokens":9}}}"#,
            // A key ending in an escaped quote, and a string that ends in one.
            br#"{"say \"usage":{"prompt_tokens":9}}"#,
            br#"{"x":["say \"usage"]}"#,
            // Not an object, or not JSON.
            br#"{"usage":7}"#,
            br#"{"usage":{"prompt_tokens":9}"#,
            br#""usage""#,
            b"\"usage\":{}}",
        ];
        for b in other {
            assert_eq!(last_member_usage(b), None, "{}", String::from_utf8_lossy(b));
            assert_eq!(
                usage_of_body(b),
                parsed_whole(b),
                "{}",
                String::from_utf8_lossy(b)
            );
        }
        assert_eq!(usage_of_body(other[0]).unwrap().prompt_tokens, 3);
    }
}
