//! Per-request behaviour: the `"mock"` body object, and override rules
//! POSTed to `/mock/overrides` for requests whose bodies a gateway builds
//! itself (a translated Anthropic or Gemini request carries no `"mock"`).

use crate::error::Provider;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// The optional per-request `"mock"` object; absent fields fall back to a
/// matching rule, then to the config.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MockOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// One of the provider's error kinds (`overloaded_error`,
    /// `RESOURCE_EXHAUSTED`, `content_filter`, ...); sets the status too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_usage: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_after_chunks: Option<u32>,
    /// Send the error inside the stream after this many content chunks
    /// (status 200), instead of failing the request up front.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_after_chunks: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<ToolCallKnob>,
    /// The provider's content filter stops the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filtered: Option<bool>,
    /// OpenAI shape: spaces appended to each content chunk's text (a
    /// bigger answer with the same token counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pad: Option<u32>,
    /// OpenAI shape: report this `prompt_tokens` instead of the counted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u64>,
    /// OpenAI shape: report this `completion_tokens` instead of the counted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<u64>,
    /// OpenAI shape: answer with a stream although the request did not ask.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub force_stream: Option<bool>,
    /// OpenAI shape: the usage chunk as LiteLLM sends it, with a non-empty
    /// `choices` (`[{"index":0,"delta":{}}]`) and a `cost` figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_with_choices: Option<bool>,
    /// OpenAI shape: before each content chunk after the first, wait for a
    /// permit (`POST /mock/release`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gated: Option<bool>,
}

/// `"tool_call": true` (the request's first tool, default arguments) or a
/// call spelled out.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ToolCallKnob {
    On(bool),
    Call(ToolCallSpec),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSpec {
    /// Default: the first tool the request declares, else `get_weather`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The arguments as JSON text, exactly as streamed (default
    /// `{"location": "Paris"}`); must be a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl ToolCallKnob {
    pub fn spec(&self) -> Option<ToolCallSpec> {
        match self {
            ToolCallKnob::On(false) => None,
            ToolCallKnob::On(true) => Some(ToolCallSpec::default()),
            ToolCallKnob::Call(s) => Some(s.clone()),
        }
    }
}

impl MockOverrides {
    /// Fields set here win; the others come from `under`.
    pub fn over(self, under: MockOverrides) -> MockOverrides {
        MockOverrides {
            latency_ms: self.latency_ms.or(under.latency_ms),
            status: self.status.or(under.status),
            error: self.error.or(under.error),
            chunks: self.chunks.or(under.chunks),
            chunk_delay_ms: self.chunk_delay_ms.or(under.chunk_delay_ms),
            no_usage: self.no_usage.or(under.no_usage),
            abort_after_chunks: self.abort_after_chunks.or(under.abort_after_chunks),
            error_after_chunks: self.error_after_chunks.or(under.error_after_chunks),
            cached_tokens: self.cached_tokens.or(under.cached_tokens),
            cache_write_tokens: self.cache_write_tokens.or(under.cache_write_tokens),
            reasoning_tokens: self.reasoning_tokens.or(under.reasoning_tokens),
            tool_call: self.tool_call.or(under.tool_call),
            filtered: self.filtered.or(under.filtered),
            pad: self.pad.or(under.pad),
            prompt_tokens: self.prompt_tokens.or(under.prompt_tokens),
            completion_tokens: self.completion_tokens.or(under.completion_tokens),
            force_stream: self.force_stream.or(under.force_stream),
            usage_with_choices: self.usage_with_choices.or(under.usage_with_choices),
            gated: self.gated.or(under.gated),
        }
    }
}

/// `POST /mock/overrides`: apply `mock` to the next `times` requests (all of
/// them when absent) of `provider` (any when absent) for `model` (any when
/// absent).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub times: Option<u32>,
    pub mock: MockOverrides,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: u64,
    pub provider: Option<Provider>,
    pub model: Option<String>,
    /// Requests this rule still applies to; `None` = every one.
    pub remaining: Option<u32>,
    pub mock: MockOverrides,
}

/// The rules in the order they were added; the first that matches applies.
#[derive(Default)]
pub struct Rules {
    /// Set while any rule exists, so requests skip the lock otherwise (the
    /// benchmarks never add rules).
    active: AtomicBool,
    next_id: AtomicU64,
    rules: Mutex<Vec<Rule>>,
}

impl Rules {
    pub fn add(&self, r: RuleRequest) -> Result<Rule, String> {
        let provider = match r.provider.as_deref() {
            None => None,
            Some(name) => Some(Provider::parse(name).ok_or_else(|| {
                format!(
                    "provider must be one of openai, anthropic, azure_openai, gemini; got {name:?}"
                )
            })?),
        };
        if r.times == Some(0) {
            return Err("times must be at least 1 (omit it for every request)".into());
        }
        let rule = Rule {
            id: self.next_id.fetch_add(1, Relaxed) + 1,
            provider,
            model: r.model,
            remaining: r.times,
            mock: r.mock,
        };
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.push(rule.clone());
        self.active.store(true, Relaxed);
        Ok(rule)
    }

    pub fn list(&self) -> Vec<Rule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear(&self) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.clear();
        self.active.store(false, Relaxed);
    }

    /// The overrides of the first rule matching this request, counting it
    /// as used.
    pub fn take(&self, provider: Provider, model: &str) -> Option<MockOverrides> {
        if !self.active.load(Relaxed) {
            return None;
        }
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let i = rules.iter().position(|r| {
            r.provider.is_none_or(|p| p == provider)
                && r.model.as_deref().is_none_or(|m| m == model)
        })?;
        let mock = rules[i].mock.clone();
        if let Some(n) = rules[i].remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                rules.remove(i);
            }
        }
        self.active.store(!rules.is_empty(), Relaxed);
        Some(mock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> RuleRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn first_matching_rule_applies_and_runs_out() {
        let rules = Rules::default();
        assert!(rules.take(Provider::Anthropic, "m").is_none());
        rules
            .add(rule(
                r#"{"provider":"anthropic","times":2,"mock":{"status":529}}"#,
            ))
            .unwrap();
        rules
            .add(rule(r#"{"model":"m2","mock":{"cached_tokens":7}}"#))
            .unwrap();
        assert!(rules.take(Provider::Gemini, "m").is_none());
        assert_eq!(
            rules.take(Provider::Anthropic, "m").unwrap().status,
            Some(529)
        );
        assert_eq!(
            rules.take(Provider::Anthropic, "m2").unwrap().status,
            Some(529)
        );
        // The first rule is used up; the second matches any provider for m2.
        assert!(rules.take(Provider::Anthropic, "m").is_none());
        for _ in 0..3 {
            let o = rules.take(Provider::Gemini, "m2").unwrap();
            assert_eq!(o.cached_tokens, Some(7));
        }
        assert_eq!(rules.list().len(), 1);
        rules.clear();
        assert!(rules.take(Provider::Gemini, "m2").is_none());
    }

    #[test]
    fn bad_rules_and_knobs_are_refused() {
        let rules = Rules::default();
        assert!(rules
            .add(rule(r#"{"provider":"bedrock","mock":{}}"#))
            .unwrap_err()
            .contains("provider"));
        assert!(rules.add(rule(r#"{"times":0,"mock":{}}"#)).is_err());
        assert!(serde_json::from_str::<RuleRequest>(r#"{"mock":{"chunkz":1}}"#).is_err());
        assert!(serde_json::from_str::<MockOverrides>(r#"{"tool_call":{"nme":"x"}}"#).is_err());
        let o: MockOverrides =
            serde_json::from_str(r#"{"tool_call":{"name":"f","arguments":"{}"}}"#).unwrap();
        assert_eq!(
            o.tool_call.unwrap().spec().unwrap().name.as_deref(),
            Some("f")
        );
    }

    #[test]
    fn body_fields_win_over_a_rule() {
        let body = MockOverrides {
            chunks: Some(2),
            ..Default::default()
        };
        let rule = MockOverrides {
            chunks: Some(9),
            status: Some(503),
            ..Default::default()
        };
        let o = body.over(rule);
        assert_eq!((o.chunks, o.status), (Some(2), Some(503)));
    }
}
