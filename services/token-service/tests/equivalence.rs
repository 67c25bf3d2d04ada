//! The production counting path (the `bpe` crate's linear encoder) against
//! two references: `tiktoken-rs` itself, on inputs it can handle, and the
//! independent reference implementation, which in turn is checked against
//! the Python fixtures.

mod common;

use common::*;
use token_service::tokenize::reference::ReferenceEncoder;
use token_service::tokenize::{Encoders, Encoding};

/// Deterministic pseudo-random numbers (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces chosen to exercise every alternative of the four patterns:
/// contractions in both cases, letters of several scripts and cases,
/// combining marks, digits of several systems, punctuation runs, every
/// kind of whitespace (including CR LF runs and Unicode spaces), emoji.
const ATOMS: &[&str] = &[
    "a",
    "Z",
    "hello",
    "World",
    "CamelCase",
    "ÉTÉ",
    "ß",
    "ǅ",
    "é",
    "e\u{301}",
    "'s",
    "'S",
    "'ll",
    "'LL",
    "'re",
    "'ve",
    "'m",
    "'d",
    "'t",
    "'x",
    "’s",
    "1",
    "12",
    "123",
    "1234",
    "٣",
    "१२",
    "Ⅻ",
    "½",
    ".",
    ",",
    "!?",
    "...",
    "->",
    "//",
    "/",
    "\\",
    "#",
    "@",
    "$",
    "%",
    "(",
    ")",
    "{",
    "}",
    "\"",
    "`",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "\n\n",
    " \n",
    "\n ",
    "\u{a0}",
    "\u{3000}",
    "\u{2009}",
    "\u{200b}",
    "\u{feff}",
    "你",
    "好",
    "世界",
    "日本語",
    "カタカナ",
    "ｶﾀｶﾅ",
    "한국어",
    "Привет",
    "مرحبا",
    "שלום",
    "αβγ",
    "हिन्दी",
    "😀",
    "👍🏽",
    "🇯🇵",
    "👨\u{200d}👩\u{200d}👧",
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|endofprompt|>",
    "\u{0}",
    "\u{7f}",
    "\u{fffd}",
];

fn random_text(rng: &mut Rng) -> String {
    let len = [1, 2, 3, 5, 8, 13, 30, 60, 120][rng.below(9)];
    (0..len).map(|_| ATOMS[rng.below(ATOMS.len())]).collect()
}

#[test]
fn production_equals_tiktoken_rs_and_reference_on_random_text() {
    let prod = Encoders::load().unwrap();
    let tiktoken = [
        (Encoding::O200kBase, tiktoken_rs::o200k_base().unwrap()),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base().unwrap()),
        (Encoding::P50kBase, tiktoken_rs::p50k_base().unwrap()),
        (Encoding::R50kBase, tiktoken_rs::r50k_base().unwrap()),
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut checked = 0;
    for (e, core) in &tiktoken {
        let reference = ReferenceEncoder::new(*e).unwrap();
        for _ in 0..2500 {
            let text = random_text(&mut rng);
            let expected = core.encode_ordinary(&text).len();
            assert_eq!(prod.count(*e, &text), expected, "{e} production {text:?}");
            assert_eq!(reference.count(&text), expected, "{e} reference {text:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 10_000);
}

/// The reference implementation reproduces Python tiktoken on every
/// fixture vector (the 8 MiB ones are left to the API test: the reference
/// is slow in debug builds).
#[test]
fn reference_equals_python_fixtures() {
    let vectors = vectors();
    for e in Encoding::ALL {
        let r = ReferenceEncoder::new(e).unwrap();
        for v in vectors.iter().filter(|v| v.encoding == e.name()) {
            let text = v.full_text();
            if text.len() > 1_000_000 {
                continue;
            }
            assert_eq!(
                r.count(&text) as u64,
                v.tokens,
                "{e} {} {:?}×{}+{:?}",
                v.category,
                v.text,
                v.repeat,
                v.suffix
            );
        }
    }
}

/// Trailing whitespace with a line break inside: tiktoken's `\s++$` comes
/// before `\s*[\r\n]` in cl100k_base, so the run stays one piece
/// (`bpe-openai` 0.3's own cl100k pretokenizer splits it after the `\n`).
#[test]
fn trailing_whitespace_stays_one_piece_in_cl100k() {
    let prod = Encoders::load().unwrap();
    let reference = ReferenceEncoder::new(Encoding::Cl100kBase).unwrap();
    for (text, pieces) in [
        ("x  \n  ", vec!["x", "  \n  "]),
        ("x \r\n\t", vec!["x", " \r\n\t"]),
        ("x\n\n y", vec!["x", "\n\n", " y"]),
    ] {
        assert_eq!(prod.split(Encoding::Cl100kBase, text), pieces, "{text:?}");
        assert_eq!(reference.pieces(text), pieces, "{text:?}");
    }
}

/// Pieces: both paths split text the way tiktoken's regex does.
#[test]
fn pretokenizers_agree() {
    let prod = Encoders::load().unwrap();
    let mut rng = Rng(7);
    for e in Encoding::ALL {
        let r = ReferenceEncoder::new(e).unwrap();
        for _ in 0..500 {
            let text = random_text(&mut rng);
            assert_eq!(prod.split(e, &text), r.pieces(&text), "{e} {text:?}");
        }
        // A run longer than tiktoken's regex can take, then a letter.
        let long = " ".repeat(1_500_000) + "x";
        assert_eq!(prod.split(e, &long), r.pieces(&long), "{e}");
    }
}
