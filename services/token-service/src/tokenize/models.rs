//! Which encoding a model uses: the config snapshot first (operators name
//! the encoding of every configured model), then a built-in map of OpenAI
//! model names, then whatever `tiktoken-rs` knows.

use super::Encoding;
use aigw_types::ConfigSnapshot;
use serde::Serialize;

/// Where a model's encoding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// The config snapshot's model list.
    Config,
    /// The built-in map of OpenAI model names.
    Builtin,
}

/// Built-in exact names (tiktoken's list; the prefix rules below cover the
/// dated and suffixed variants).
pub const BUILTIN_MODELS: &[(&str, Encoding)] = &[
    ("gpt-5", Encoding::O200kBase),
    ("gpt-4.1", Encoding::O200kBase),
    ("gpt-4o", Encoding::O200kBase),
    ("o1", Encoding::O200kBase),
    ("o3", Encoding::O200kBase),
    ("o4-mini", Encoding::O200kBase),
    ("gpt-4", Encoding::Cl100kBase),
    ("gpt-3.5-turbo", Encoding::Cl100kBase),
    ("gpt-35-turbo", Encoding::Cl100kBase),
    ("davinci-002", Encoding::Cl100kBase),
    ("babbage-002", Encoding::Cl100kBase),
    ("text-embedding-ada-002", Encoding::Cl100kBase),
    ("text-embedding-3-small", Encoding::Cl100kBase),
    ("text-embedding-3-large", Encoding::Cl100kBase),
    ("text-davinci-003", Encoding::P50kBase),
    ("text-davinci-002", Encoding::P50kBase),
    ("code-davinci-002", Encoding::P50kBase),
    ("code-davinci-001", Encoding::P50kBase),
    ("code-cushman-002", Encoding::P50kBase),
    ("code-cushman-001", Encoding::P50kBase),
    ("davinci-codex", Encoding::P50kBase),
    ("cushman-codex", Encoding::P50kBase),
    ("text-davinci-edit-001", Encoding::P50kBase),
    ("code-davinci-edit-001", Encoding::P50kBase),
    ("text-davinci-001", Encoding::R50kBase),
    ("text-curie-001", Encoding::R50kBase),
    ("text-babbage-001", Encoding::R50kBase),
    ("text-ada-001", Encoding::R50kBase),
    ("davinci", Encoding::R50kBase),
    ("curie", Encoding::R50kBase),
    ("babbage", Encoding::R50kBase),
    ("ada", Encoding::R50kBase),
    ("gpt2", Encoding::R50kBase),
    ("gpt-2", Encoding::R50kBase),
];

/// Built-in prefixes, longest match wins (so `gpt-4o-mini` is o200k even
/// though `gpt-4` would also match a shorter rule).
pub const BUILTIN_PREFIXES: &[(&str, Encoding)] = &[
    ("gpt-5", Encoding::O200kBase),
    ("gpt-4.1", Encoding::O200kBase),
    ("gpt-4.5", Encoding::O200kBase),
    ("gpt-4o", Encoding::O200kBase),
    ("chatgpt-4o", Encoding::O200kBase),
    ("gpt-oss", Encoding::O200kBase),
    ("codex-mini", Encoding::O200kBase),
    ("o1", Encoding::O200kBase),
    ("o3", Encoding::O200kBase),
    ("o4", Encoding::O200kBase),
    ("gpt-4-", Encoding::Cl100kBase),
    ("gpt-3.5-turbo", Encoding::Cl100kBase),
    ("gpt-35-turbo", Encoding::Cl100kBase),
    ("text-embedding-3-", Encoding::Cl100kBase),
];

/// The encoding of `model` and where it came from, or `None` if unknown.
pub fn resolve(snapshot: Option<&ConfigSnapshot>, model: &str) -> Option<(Encoding, ModelSource)> {
    if let Some(e) = snapshot
        .and_then(|s| s.model(model))
        .and_then(|m| Encoding::parse(&m.encoding))
    {
        return Some((e, ModelSource::Config));
    }
    builtin(model).map(|e| (e, ModelSource::Builtin))
}

/// The built-in rules alone.
pub fn builtin(model: &str) -> Option<Encoding> {
    // Fine-tuned models: `ft:{base}:{org}:...` use their base model's encoding.
    if let Some(rest) = model.strip_prefix("ft:") {
        return builtin(rest.split(':').next().unwrap_or(rest));
    }
    if let Some((_, e)) = BUILTIN_MODELS.iter().find(|(m, _)| *m == model) {
        return Some(*e);
    }
    if let Some((_, e)) = BUILTIN_PREFIXES
        .iter()
        .filter(|(p, _)| model.starts_with(p))
        .max_by_key(|(p, _)| p.len())
    {
        return Some(*e);
    }
    tiktoken_rs::tokenizer::get_tokenizer(model).map(from_tiktoken)
}

fn from_tiktoken(t: tiktoken_rs::tokenizer::Tokenizer) -> Encoding {
    use tiktoken_rs::tokenizer::Tokenizer as T;
    match t {
        T::O200kBase | T::O200kHarmony => Encoding::O200kBase,
        T::Cl100kBase => Encoding::Cl100kBase,
        T::P50kBase | T::P50kEdit => Encoding::P50kBase,
        T::R50kBase | T::Gpt2 => Encoding::R50kBase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_prefix_map() {
        for m in [
            "gpt-5",
            "gpt-5-mini",
            "gpt-4.1-nano",
            "gpt-4o",
            "gpt-4o-mini",
            "o1",
            "o1-mini",
            "o3-pro",
            "o4-mini",
            "ft:gpt-4o:acme:x",
        ] {
            assert_eq!(builtin(m), Some(Encoding::O200kBase), "{m}");
        }
        for m in [
            "gpt-4",
            "gpt-4-0613",
            "gpt-3.5-turbo",
            "gpt-3.5-turbo-0125",
            "text-embedding-3-small",
            "text-embedding-ada-002",
        ] {
            assert_eq!(builtin(m), Some(Encoding::Cl100kBase), "{m}");
        }
        assert_eq!(builtin("text-davinci-003"), Some(Encoding::P50kBase));
        assert_eq!(builtin("davinci"), Some(Encoding::R50kBase));
        assert_eq!(builtin("llama-3-70b"), None);
    }

    #[test]
    fn builtin_table_agrees_with_tiktoken_rs() {
        for (m, e) in BUILTIN_MODELS {
            if let Some(t) = tiktoken_rs::tokenizer::get_tokenizer(m) {
                assert_eq!(from_tiktoken(t), *e, "{m}");
            }
        }
    }

    #[test]
    fn snapshot_wins() {
        let snap: ConfigSnapshot = serde_json::from_value(serde_json::json!({
            "version": 1, "generated_at_ms": 0, "namespaces": [], "api_keys": [], "instances": [],
            "models": [
                {"name": "gpt-4o", "encoding": "cl100k_base", "enabled": true},
                {"name": "llama", "encoding": "r50k_base", "enabled": true},
                {"name": "odd", "encoding": "no_such_encoding", "enabled": true}
            ]
        }))
        .unwrap();
        assert_eq!(
            resolve(Some(&snap), "gpt-4o"),
            Some((Encoding::Cl100kBase, ModelSource::Config))
        );
        assert_eq!(
            resolve(Some(&snap), "llama"),
            Some((Encoding::R50kBase, ModelSource::Config))
        );
        assert_eq!(resolve(Some(&snap), "odd"), None);
        assert_eq!(
            resolve(None, "gpt-4o"),
            Some((Encoding::O200kBase, ModelSource::Builtin))
        );
    }
}
