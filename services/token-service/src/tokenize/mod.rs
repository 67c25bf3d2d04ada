//! Token counting: the encodings, loaded once at start, and the model →
//! encoding map.
//!
//! Counting goes through the `bpe` crate's linear-time encoder for every
//! encoding: `bpe-openai` ships o200k_base and cl100k_base; p50k_base and
//! r50k_base are built at start from the rank tables inside `tiktoken-rs`
//! with the same pretokenizer technique. Unlike tiktoken (Rust and Python),
//! whose backtracking regex panics on a whitespace run of about a million
//! characters, this path is linear in the input and cannot panic on any
//! input. [`reference`] holds an independent implementation (tiktoken's own
//! merge algorithm) that the tests use to prove the counts identical.
//!
//! cl100k_base uses `bpe-openai`'s dictionary with our own pretokenizer:
//! `bpe-openai` 0.3 tries `\s*[\r\n]+` before `\s+$`, the reverse of
//! tiktoken's `\s++$|\s*[\r\n]`, so trailing whitespace such as `"  \n  "`
//! at the end of a text is split in two pieces where tiktoken keeps one.

pub mod models;
pub mod reference;

use bpe_openai::byte_pair_encoding::BytePairEncoding;
use bpe_openai::Tokenizer;
use serde::Serialize;

/// The encodings the service counts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[serde(rename = "o200k_base")]
    O200kBase,
    #[serde(rename = "cl100k_base")]
    Cl100kBase,
    #[serde(rename = "p50k_base")]
    P50kBase,
    #[serde(rename = "r50k_base")]
    R50kBase,
}

impl Encoding {
    pub const ALL: [Encoding; 4] = [
        Encoding::O200kBase,
        Encoding::Cl100kBase,
        Encoding::P50kBase,
        Encoding::R50kBase,
    ];

    /// Other names tiktoken uses for encodings that count ordinary text
    /// exactly like one of ours: they share its rank table and pattern and
    /// differ only in special tokens, which this service counts as text.
    pub const ALIASES: [(&'static str, Encoding); 3] = [
        ("o200k_harmony", Encoding::O200kBase),
        ("p50k_edit", Encoding::P50kBase),
        ("gpt2", Encoding::R50kBase),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
            Encoding::P50kBase => "p50k_base",
            Encoding::R50kBase => "r50k_base",
        }
    }

    /// Parses an encoding name or alias.
    pub fn parse(name: &str) -> Option<Encoding> {
        Encoding::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .or_else(|| {
                Encoding::ALIASES
                    .iter()
                    .find(|(a, _)| *a == name)
                    .map(|(_, e)| *e)
            })
    }

    /// Every accepted name, canonical ones first (for error messages).
    pub fn known_names() -> Vec<&'static str> {
        Encoding::ALL
            .iter()
            .map(|e| e.name())
            .chain(Encoding::ALIASES.iter().map(|(a, _)| *a))
            .collect()
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Pretokenizer of r50k_base and p50k_base, tiktoken's
/// `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
/// rewritten for a linear-time engine the way `bpe-openai` rewrites the
/// others: possessive quantifiers become greedy ones (no alternative can
/// backtrack into them), and the look-ahead `\s+(?!\S)` becomes the second
/// pattern `\s+\s` whose last character is dropped from the match. Patterns
/// are tried in order, as the alternatives are.
const R50K_PATTERNS: [(&str, bool); 3] = [
    (
        r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+$",
        false,
    ),
    (r"\s+\s", true),
    (r"\s", false),
];

/// Pretokenizer of cl100k_base: tiktoken's
/// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
/// rewritten the same way, keeping `\s+$` before `\s*[\r\n]+` as tiktoken
/// does. (`\s*[\r\n]` and `\s*[\r\n]+` match the same text: both end at
/// the run's last line break.)
const CL100K_PATTERNS: [(&str, bool); 3] = [
    (
        r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+$|\s*[\r\n]+",
        false,
    ),
    (r"\s+\s", true),
    (r"\s", false),
];

/// Hash factor for the `bpe` dictionaries built at start: must give no
/// collision on the 50k tokens (checked when building; the value is the one
/// `bpe-openai` uses for its own dictionaries).
const HASH_FACTOR: u64 = 17846336922010275747;

/// All encoders, built once at start and shared read-only by every worker.
pub struct Encoders {
    cl100k: Tokenizer,
    p50k: Tokenizer,
    r50k: Tokenizer,
}

impl std::fmt::Debug for Encoders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoders").finish_non_exhaustive()
    }
}

impl Encoders {
    /// Loads every encoding (a second or two: run it before serving).
    pub fn load() -> anyhow::Result<Encoders> {
        // The four builds are independent; two threads halve the start time.
        let p50k = std::thread::spawn(|| build_from_tiktoken(&tiktoken_rs::p50k_base()?));
        let r50k = build_from_tiktoken(&tiktoken_rs::r50k_base()?)?;
        let p50k = p50k
            .join()
            .map_err(|_| anyhow::anyhow!("building p50k_base panicked"))??;
        // bpe-openai's dictionary is not `Clone`; a serde round trip copies
        // it (the same bytes bpe-openai itself loads from).
        let bytes = rmp_serde::to_vec(&bpe_openai::cl100k_base().bpe)?;
        let cl100k_bpe: BytePairEncoding = rmp_serde::from_slice(&bytes)?;
        let cl100k = Tokenizer::new_lookahead(cl100k_bpe, &CL100K_PATTERNS, false)
            .map_err(|e| anyhow::anyhow!("pretokenizer pattern: {e}"))?;
        // Force the lazily built static now rather than on a first request.
        let _ = bpe_openai::o200k_base().count("warm up");
        Ok(Encoders { cl100k, p50k, r50k })
    }

    fn tokenizer(&self, e: Encoding) -> &Tokenizer {
        match e {
            Encoding::O200kBase => bpe_openai::o200k_base(),
            Encoding::Cl100kBase => &self.cl100k,
            Encoding::P50kBase => &self.p50k,
            Encoding::R50kBase => &self.r50k,
        }
    }

    /// Number of tokens of `text`; special-token strings count as text.
    pub fn count(&self, e: Encoding, text: &str) -> usize {
        self.tokenizer(e).count(text)
    }

    /// The pieces the pretokenizer splits `text` into (for tests).
    pub fn split<'a>(&'a self, e: Encoding, text: &'a str) -> Vec<&'a str> {
        self.tokenizer(e).split(text).collect()
    }
}

/// The ordinary (non-special) tokens of a tiktoken encoding, in rank order.
pub fn ordinary_tokens(core: &tiktoken_rs::CoreBPE) -> Vec<(u32, Vec<u8>)> {
    let special: std::collections::HashSet<u32> = core
        .special_tokens()
        .into_iter()
        .flat_map(|s| core.encode_with_special_tokens(s))
        .collect();
    let mut out = Vec::new();
    for rank in 0u32.. {
        if special.contains(&rank) {
            continue;
        }
        match core.decode_bytes(&[rank]) {
            Ok(bytes) => out.push((rank, bytes)),
            Err(_) => break,
        }
    }
    out
}

fn build_from_tiktoken(core: &tiktoken_rs::CoreBPE) -> anyhow::Result<Tokenizer> {
    let tokens = ordinary_tokens(core).into_iter().map(|(_, b)| b);
    let bpe = BytePairEncoding::from_dictionary(tokens, Some(HASH_FACTOR));
    Tokenizer::new_lookahead(bpe, &R50K_PATTERNS, false)
        .map_err(|e| anyhow::anyhow!("pretokenizer pattern: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for e in Encoding::ALL {
            assert_eq!(Encoding::parse(e.name()), Some(e));
        }
        assert_eq!(Encoding::parse("gpt2"), Some(Encoding::R50kBase));
        assert_eq!(Encoding::parse("nope"), None);
    }
}
