//! An independent implementation of tiktoken's counting, used by the tests
//! and the benchmark to check the production path ([`super::Encoders`]).
//!
//! It shares nothing with the production path but the regex engine:
//! - rank tables come from `tiktoken-rs` (the production path uses
//!   `bpe-openai`'s own files for o200k/cl100k);
//! - the byte-pair merge is tiktoken's algorithm, ported line by line from
//!   `tiktoken-rs`'s vendored copy of `tiktoken` (MIT licence), instead of the
//!   `bpe` crate's backtracking encoder;
//! - the pretokenizer runs tiktoken's own alternatives in order and emulates
//!   the whitespace alternatives (`\s++$`, `\s+(?!\S)`, `\s`) by counting the
//!   whitespace run by hand, instead of the two-pattern look-ahead trick.
//!
//! It is linear in the pretokenization and `O(n log n)` in the merge, so it
//! also answers for inputs where tiktoken itself panics (whitespace runs of a
//! million characters), but it is several times slower than production.

use super::Encoding;
use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};
use std::collections::{BinaryHeap, HashMap};

type Rank = u32;

/// One alternative (or a group of consecutive ones) of an encoding's pattern.
enum Step {
    /// Ordinary alternatives without look-around, matched anchored.
    Regex(Regex),
    /// `\s++$`: the whitespace run, if it reaches the end of the text.
    WsToEnd,
    /// `\s+(?!\S)`: the run if it reaches the end, else all but its last
    /// character if that leaves at least one.
    WsLookahead,
    /// `\s` (and, where the run has one character, `\s+`).
    WsOne,
}

/// tiktoken's counting for one encoding, implemented independently.
pub struct ReferenceEncoder {
    steps: Vec<Step>,
    ranks: HashMap<Vec<u8>, Rank>,
}

fn re(p: &str) -> anyhow::Result<Step> {
    Ok(Step::Regex(
        Regex::new(p).map_err(|e| anyhow::anyhow!("pattern {p}: {e}"))?,
    ))
}

impl ReferenceEncoder {
    /// Builds the encoder (loads a rank table: up to a second).
    pub fn new(e: Encoding) -> anyhow::Result<ReferenceEncoder> {
        // tiktoken's patterns, in order; possessive quantifiers written greedy
        // (nothing after them in their alternative can make a backtracking
        // engine give characters back, so the match is the same).
        let (core, steps) = match e {
            Encoding::R50kBase | Encoding::P50kBase => (
                if e == Encoding::R50kBase {
                    tiktoken_rs::r50k_base()?
                } else {
                    tiktoken_rs::p50k_base()?
                },
                vec![
                    re(r"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+")?,
                    Step::WsToEnd,
                    Step::WsLookahead,
                    Step::WsOne,
                ],
            ),
            Encoding::Cl100kBase => (
                tiktoken_rs::cl100k_base()?,
                vec![
                    re(
                        r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*",
                    )?,
                    Step::WsToEnd,
                    re(r"\s*[\r\n]")?,
                    Step::WsLookahead,
                    Step::WsOne,
                ],
            ),
            Encoding::O200kBase => (
                tiktoken_rs::o200k_base()?,
                vec![
                    re(&[
                        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
                        r"\p{N}{1,3}",
                        r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
                        r"\s*[\r\n]+",
                    ]
                    .join("|"))?,
                    Step::WsLookahead,
                    Step::WsOne,
                ],
            ),
        };
        let ranks = super::ordinary_tokens(&core)
            .into_iter()
            .map(|(r, b)| (b, r))
            .collect();
        Ok(ReferenceEncoder { steps, ranks })
    }

    /// The pretokenizer's pieces.
    pub fn pieces<'a>(&self, text: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let len = self.next_piece(&text[pos..]);
            out.push(&text[pos..pos + len]);
            pos += len;
        }
        out
    }

    /// Length in bytes of the piece at the start of `rest` (never 0).
    fn next_piece(&self, rest: &str) -> usize {
        // The whitespace run at the start, in characters and bytes.
        let mut run_chars = 0usize;
        let mut run_bytes = 0usize;
        let mut last_char_len = 0usize;
        for c in rest.chars() {
            if !c.is_whitespace() {
                break;
            }
            run_chars += 1;
            run_bytes += c.len_utf8();
            last_char_len = c.len_utf8();
        }
        let reaches_end = run_bytes == rest.len();
        for step in &self.steps {
            let m = match step {
                Step::Regex(r) => r
                    .find(Input::new(rest).anchored(Anchored::Yes))
                    .map(|m| m.end())
                    .filter(|&end| end > 0),
                Step::WsToEnd => (run_chars > 0 && reaches_end).then_some(run_bytes),
                Step::WsLookahead => {
                    if run_chars > 0 && reaches_end {
                        Some(run_bytes)
                    } else if run_chars >= 2 {
                        Some(run_bytes - last_char_len)
                    } else {
                        None
                    }
                }
                Step::WsOne => rest
                    .chars()
                    .next()
                    .filter(|c| c.is_whitespace())
                    .map(char::len_utf8),
            };
            if let Some(len) = m {
                return len;
            }
        }
        // Unreachable for these patterns (every character starts some
        // alternative); one character keeps the loop going regardless.
        rest.chars().next().map_or(rest.len(), char::len_utf8)
    }

    /// Number of tokens of `text` (special-token strings count as text).
    pub fn count(&self, text: &str) -> usize {
        self.pieces(text)
            .into_iter()
            .map(|p| {
                let b = p.as_bytes();
                if self.ranks.contains_key(b) {
                    1
                } else {
                    byte_pair_encode(b, &self.ranks).len()
                }
            })
            .sum()
    }
}

// ---- tiktoken's byte-pair merge (ported from tiktoken-rs `vendor_tiktoken.rs`) ----

#[derive(Eq, PartialEq, Clone, Copy)]
struct Merge {
    start: usize,
    rank: Rank,
}

impl Ord for Merge {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.start.cmp(&self.start))
    }
}

impl PartialOrd for Merge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct State {
    prev: usize,
    end: usize,
    next_end: usize,
    next_rank: Rank,
    cur_rank: Rank,
}

fn byte_pair_merge_large(ranks: &HashMap<Vec<u8>, Rank>, piece: &[u8]) -> Vec<Rank> {
    let mut state = Vec::with_capacity(piece.len());
    state.push(State {
        prev: usize::MAX,
        end: 1,
        next_end: 2,
        next_rank: Rank::MAX,
        cur_rank: Rank::MAX,
    });
    let mut heap = BinaryHeap::with_capacity(piece.len());
    for i in 0..piece.len() - 1 {
        if let Some(&rank) = ranks.get(&piece[i..i + 2]) {
            heap.push(Merge { start: i, rank });
            state[i].next_rank = rank;
        }
        state.push(State {
            prev: i,
            end: i + 2,
            next_end: i + 3,
            next_rank: Rank::MAX,
            cur_rank: Rank::MAX,
        });
    }
    let potential_merge = |state: &mut Vec<State>,
                           heap: &mut BinaryHeap<Merge>,
                           start: usize,
                           next_end_item: usize| {
        state[start].next_end = next_end_item;
        state[start].next_rank = Rank::MAX;
        if next_end_item <= piece.len() {
            if let Some(&rank) = ranks.get(&piece[start..next_end_item]) {
                heap.push(Merge { start, rank });
                state[start].next_rank = rank;
            }
        }
    };
    while let Some(left) = heap.pop() {
        if left.rank == Rank::MAX {
            break;
        }
        if left.rank != state[left.start].next_rank {
            continue;
        }
        let left_start = left.start;
        let right_start = state[left_start].end;
        let right_end = state[left_start].next_end;
        let right_next_end = state[right_start].next_end;
        state[left_start].cur_rank = state[left_start].next_rank;
        state[left_start].end = right_end;
        potential_merge(&mut state, &mut heap, left_start, right_next_end);
        if right_end < state.len() {
            state[right_end].prev = left_start;
        }
        if left_start > 0 {
            let prev_start = state[left_start].prev;
            potential_merge(&mut state, &mut heap, prev_start, right_end);
        }
        state[right_start].next_rank = Rank::MAX;
    }
    let mut result = Vec::new();
    let mut i = 0;
    while i < state.len() {
        if state[i].cur_rank != Rank::MAX {
            result.push(state[i].cur_rank);
        } else {
            result.push(ranks[&piece[i..state[i].end]]);
        }
        i = state[i].end;
    }
    result
}

fn byte_pair_merge(ranks: &HashMap<Vec<u8>, Rank>, piece: &[u8]) -> Vec<(usize, Rank)> {
    let mut parts = Vec::with_capacity(piece.len() + 1);
    let mut min_rank: (Rank, usize) = (Rank::MAX, usize::MAX);
    for i in 0..piece.len() - 1 {
        let rank = *ranks.get(&piece[i..i + 2]).unwrap_or(&Rank::MAX);
        if rank < min_rank.0 {
            min_rank = (rank, i);
        }
        parts.push((i, rank));
    }
    parts.push((piece.len() - 1, Rank::MAX));
    parts.push((piece.len(), Rank::MAX));
    let get_rank = |parts: &Vec<(usize, Rank)>, i: usize| {
        if (i + 3) < parts.len() {
            *ranks
                .get(&piece[parts[i].0..parts[i + 3].0])
                .unwrap_or(&Rank::MAX)
        } else {
            Rank::MAX
        }
    };
    while min_rank.0 != Rank::MAX {
        let i = min_rank.1;
        if i > 0 {
            parts[i - 1].1 = get_rank(&parts, i - 1);
        }
        parts[i].1 = get_rank(&parts, i);
        parts.remove(i + 1);
        min_rank = (Rank::MAX, usize::MAX);
        for (i, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < min_rank.0 {
                min_rank = (rank, i);
            }
        }
    }
    parts
}

fn byte_pair_encode(piece: &[u8], ranks: &HashMap<Vec<u8>, Rank>) -> Vec<Rank> {
    if piece.len() == 1 {
        return vec![ranks[piece]];
    }
    if piece.len() < 100 {
        return byte_pair_merge(ranks, piece)
            .windows(2)
            .map(|part| ranks[&piece[part[0].0..part[1].0]])
            .collect();
    }
    byte_pair_merge_large(ranks, piece)
}
