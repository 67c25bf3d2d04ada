//! Money: the cost of one usage record, exact.
//!
//! Prices are USD per million tokens (decimals from the config snapshot).
//! `prompt` counts every input token (OpenAI's meaning); cache reads
//! (`cached`) and cache writes (`cache_write`) are parts of it, priced at
//! their own prices when the model has them and at the input price when
//! not. A record costs
//!
//! ```text
//! ( (prompt − cached − cache_write) × input_price
//!   + cached × (cached_input_price or input_price)
//!   + cache_write × (cache_write_price or input_price)
//!   + completion × output_price ) / 1e6   USD,
//! ```
//!
//! computed exactly in decimal and stored as integer **nano-USD**
//! (1e-9 USD), rounded once per record, half away from zero ("half-up" for
//! these non-negative amounts). Totals are sums of those integers, so they
//! never drift, whatever the order or the number of records.

use aigw_types::ModelConfig;
use rust_decimal::{Decimal, RoundingStrategy};

/// The cost of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Nano-USD, rounded half-up.
    pub nano_usd: u64,
    /// Whether a price this record needed was missing (that part costs 0).
    pub unpriced: bool,
}

/// A model's prices, USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prices {
    pub input: Option<Decimal>,
    pub output: Option<Decimal>,
    /// Cache reads; `None`: the input price.
    pub cached_input: Option<Decimal>,
    /// Cache writes; `None`: the input price.
    pub cache_write: Option<Decimal>,
}

impl Prices {
    /// The prices of a model of the snapshot (none when it is not there).
    pub fn of(m: Option<&ModelConfig>) -> Prices {
        m.map_or_else(Prices::default, |m| Prices {
            input: m.input_price_per_1m,
            output: m.output_price_per_1m,
            cached_input: m.cached_input_price_per_1m,
            cache_write: m.cache_write_price_per_1m,
        })
    }
}

/// The tokens of one record. `cached` and `cache_write` are parts of
/// `prompt`; build it with [`Tokens::new`], which keeps them within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub cache_write: u64,
}

impl Tokens {
    /// Tokens with the cache parts capped so that `cached + cache_write ≤
    /// prompt` (cache reads first): an upstream reporting more cached
    /// tokens than input tokens is never charged below zero for the rest.
    pub fn new(prompt: u64, completion: u64, cached: u64, cache_write: u64) -> Tokens {
        let cached = cached.min(prompt);
        let cache_write = cache_write.min(prompt - cached);
        Tokens {
            prompt,
            completion,
            cached,
            cache_write,
        }
    }

    /// Prompt tokens neither read from nor written to a cache.
    pub fn uncached(&self) -> u64 {
        self.prompt
            .saturating_sub(self.cached)
            .saturating_sub(self.cache_write)
    }
}

/// Nano-USD per USD-per-million-tokens and token: 1e9 / 1e6.
const NANO_PER_MILLION: i64 = 1000;

/// Prices the tokens. A price that is absent or negative counts as
/// missing (a missing cache price falls back to the input price); a model
/// with no price at all is always `unpriced`.
pub fn cost(t: &Tokens, p: &Prices) -> Cost {
    let valid = |p: Option<Decimal>| p.filter(|p| !p.is_sign_negative());
    let input = valid(p.input);
    let output = valid(p.output);
    let cached_input = valid(p.cached_input).or(input);
    let cache_write = valid(p.cache_write).or(input);
    let parts = [
        (t.uncached(), input),
        (t.cached, cached_input),
        (t.cache_write, cache_write),
        (t.completion, output),
    ];
    let no_price = [p.input, p.output, p.cached_input, p.cache_write]
        .into_iter()
        .all(|p| valid(p).is_none());
    let unpriced = no_price || parts.iter().any(|(n, p)| *n > 0 && p.is_none());
    let usd_per_million =
        parts
            .iter()
            .try_fold(Decimal::ZERO, |sum, (tokens, price)| match price {
                Some(p) if *tokens > 0 => sum.checked_add(Decimal::from(*tokens).checked_mul(*p)?),
                _ => Some(sum),
            });
    let nano = usd_per_million
        .and_then(|t| t.checked_mul(Decimal::from(NANO_PER_MILLION)))
        .map(|t| t.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero))
        .and_then(|t| u64::try_from(t).ok());
    match nano {
        Some(nano_usd) => Cost { nano_usd, unpriced },
        // Beyond 1.8e10 USD for one request: not a real record. Count it as
        // unpriced rather than store a wrong number.
        None => Cost {
            nano_usd: 0,
            unpriced: true,
        },
    }
}

/// `YYYY-MM` of a unix-milliseconds time, in UTC: the budget month.
pub fn month_label(unix_ms: i64) -> String {
    aigw_types::BudgetMonth::of_unix_ms(unix_ms).label()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Option<Decimal> {
        Some(Decimal::from_str(s).unwrap())
    }

    /// Prompt and completion tokens at an input and an output price.
    fn cost(prompt: u64, completion: u64, input: Option<Decimal>, output: Option<Decimal>) -> Cost {
        super::cost(
            &Tokens::new(prompt, completion, 0, 0),
            &Prices {
                input,
                output,
                ..Prices::default()
            },
        )
    }

    #[test]
    fn hand_computed_costs() {
        // gpt-4o-mini list prices: 1000 × 0.15 / 1e6 + 500 × 0.60 / 1e6 USD
        // = 0.00015 + 0.0003 = 0.00045 USD = 450_000 nano-USD.
        assert_eq!(cost(1000, 500, d("0.15"), d("0.60")).nano_usd, 450_000);
        // 1 token at $2.50/1M = 2.5e-6 USD = 2500 nano-USD.
        assert_eq!(cost(1, 0, d("2.50"), d("10")).nano_usd, 2_500);
        // 7 × 0.123456789012 / 1e6 USD = 8.64197523084e-7 USD
        // = 864.197523084 nano-USD → 864.
        let c = cost(7, 0, d("0.123456789012"), d("1"));
        assert_eq!(
            c,
            Cost {
                nano_usd: 864,
                unpriced: false
            }
        );
        // 3 × 0.0000005 / 1e6 USD = 1.5e-12 USD = 0.0015 nano-USD → 0.
        assert_eq!(cost(3, 0, d("0.0000005"), None).nano_usd, 0);
        // Exactly half a nano-USD rounds up: 1 × 0.0005 → 0.5 nano → 1.
        assert_eq!(cost(1, 0, d("0.0005"), d("0")).nano_usd, 1);
        // Just below half rounds down: 1 × 0.000499999 → 0.499999 → 0.
        assert_eq!(cost(1, 0, d("0.000499999"), d("0")).nano_usd, 0);
        // Sum first, round once: 1 × 0.0003 + 1 × 0.0003 = 0.6 nano → 1
        // (rounding each part would give 0).
        assert_eq!(cost(1, 1, d("0.0003"), d("0.0003")).nano_usd, 1);
        // Many decimals on both sides:
        // 123457 × 3.333333333333 = 411523.333333292181 (per 1M)
        // 98765 × 0.000000000001 = 0.000000098765
        // sum 411523.333333390946 × 1000 = 411523333.333390946 → 411523333.
        assert_eq!(
            cost(123_457, 98_765, d("3.333333333333"), d("0.000000000001")).nano_usd,
            411_523_333
        );
        // A big request: 2,000,000 prompt tokens at $15/1M = $30 = 3e10 nano.
        assert_eq!(
            cost(2_000_000, 0, d("15"), d("60")).nano_usd,
            30_000_000_000
        );
    }

    #[test]
    fn missing_prices() {
        assert_eq!(
            cost(10, 10, None, None),
            Cost {
                nano_usd: 0,
                unpriced: true
            }
        );
        assert_eq!(
            cost(0, 0, None, None),
            Cost {
                nano_usd: 0,
                unpriced: true
            }
        );
        // Embeddings: no completion tokens, no output price needed.
        assert_eq!(
            cost(1000, 0, d("0.02"), None),
            Cost {
                nano_usd: 20_000,
                unpriced: false
            }
        );
        // Output tokens without an output price: that part is 0, flagged.
        assert_eq!(
            cost(1000, 5, d("0.02"), None),
            Cost {
                nano_usd: 20_000,
                unpriced: true
            }
        );
        // Negative prices are treated as missing.
        assert_eq!(
            cost(1000, 0, d("-1"), None),
            Cost {
                nano_usd: 0,
                unpriced: true
            }
        );
        // Absurd totals are not stored as wrong numbers.
        assert_eq!(
            cost(u64::MAX, 0, d("1000000000"), None),
            Cost {
                nano_usd: 0,
                unpriced: true
            }
        );
    }

    fn cache_prices(input: &str, cached: Option<&str>, write: Option<&str>) -> Prices {
        Prices {
            input: d(input),
            output: d("15"),
            cached_input: cached.and_then(d),
            cache_write: write.and_then(d),
        }
    }

    #[test]
    fn cache_reads_and_writes_have_their_own_prices() {
        // Claude Sonnet list prices: $3 in, $0.30 cache read, $3.75 cache
        // write, $15 out. 10,000 prompt tokens of which 6,000 cache reads
        // and 2,000 cache writes, 500 completion tokens:
        // 2,000 × 3 + 6,000 × 0.30 + 2,000 × 3.75 + 500 × 15
        // = 6,000 + 1,800 + 7,500 + 7,500 = 22,800 per 1M
        // = 0.0228 USD = 22,800,000 nano-USD.
        let t = Tokens::new(10_000, 500, 6_000, 2_000);
        assert_eq!(t.uncached(), 2_000);
        let c = super::cost(&t, &cache_prices("3", Some("0.30"), Some("3.75")));
        assert_eq!(
            c,
            Cost {
                nano_usd: 22_800_000,
                unpriced: false
            }
        );
        // No cache prices: every prompt token at the input price,
        // 10,000 × 3 + 500 × 15 = 37,500 per 1M = 37,500,000 nano-USD.
        assert_eq!(
            super::cost(&t, &cache_prices("3", None, None)).nano_usd,
            37_500_000
        );
        // Only a cache-read price: writes at the input price,
        // 4,000 × 3 + 6,000 × 0.30 + 7,500 = 21,300 → 21,300,000.
        assert_eq!(
            super::cost(&t, &cache_prices("3", Some("0.30"), None)).nano_usd,
            21_300_000
        );
        // Rounded once over the sum: 1 uncached × 0.0002 + 1 cached ×
        // 0.0002 + 1 write × 0.0001 = 0.0005 per 1M = 0.5 nano → 1 (each
        // part alone would round to 0).
        let t = Tokens::new(3, 0, 1, 1);
        assert_eq!(
            super::cost(&t, &cache_prices("0.0002", Some("0.0002"), Some("0.0001"))).nano_usd,
            1
        );
    }

    #[test]
    fn cache_parts_never_exceed_the_prompt() {
        // More cache reads reported than prompt tokens: capped at the prompt,
        // nothing left for writes or uncached tokens.
        let t = Tokens::new(100, 0, 150, 30);
        assert_eq!((t.cached, t.cache_write, t.uncached()), (100, 0, 0));
        // Reads and writes over the prompt together: writes take the rest.
        let t = Tokens::new(100, 0, 70, 50);
        assert_eq!((t.cached, t.cache_write, t.uncached()), (70, 30, 0));
        // 70 × 0.30 + 30 × 3.75 = 21 + 112.5 = 133.5 per 1M = 133,500 nano.
        assert_eq!(
            super::cost(&t, &cache_prices("3", Some("0.30"), Some("3.75"))).nano_usd,
            133_500
        );
    }

    #[test]
    fn cache_tokens_without_any_input_price() {
        // A cache-read price alone prices the reads (4 × 0.5 = 2 per 1M =
        // 2,000 nano); the uncached rest has no price: flagged unpriced.
        let p = Prices {
            cached_input: d("0.5"),
            ..Prices::default()
        };
        assert_eq!(
            super::cost(&Tokens::new(10, 0, 4, 0), &p),
            Cost {
                nano_usd: 2_000,
                unpriced: true
            }
        );
        // All reads: fully priced.
        assert_eq!(
            super::cost(&Tokens::new(4, 0, 4, 0), &p),
            Cost {
                nano_usd: 2_000,
                unpriced: false
            }
        );
        // A negative cache price is missing and falls back to the input price.
        let p = Prices {
            input: d("1"),
            cached_input: d("-1"),
            ..Prices::default()
        };
        assert_eq!(super::cost(&Tokens::new(10, 0, 10, 0), &p).nano_usd, 10_000);
    }

    #[test]
    fn months() {
        assert_eq!(month_label(0), "1970-01");
        // 2024-02-29T23:59:59.999Z and the next millisecond.
        assert_eq!(month_label(1_709_251_199_999), "2024-02");
        assert_eq!(month_label(1_709_251_200_000), "2024-03");
        // 2025-12-31T23:59:59Z → December; 2026-01-01T00:00:00Z → January.
        assert_eq!(month_label(1_767_225_599_000), "2025-12");
        assert_eq!(month_label(1_767_225_600_000), "2026-01");
        assert_eq!(month_label(-1), "1969-12");
    }
}
