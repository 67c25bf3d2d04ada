//! Money: the cost of one usage record, exact.
//!
//! Prices are USD per million tokens (decimals from the config snapshot).
//! A record costs `prompt × input_price / 1e6 + completion × output_price / 1e6`
//! USD, computed exactly in decimal and stored as integer **nano-USD**
//! (1e-9 USD), rounded once per record, half away from zero ("half-up" for
//! these non-negative amounts). Totals are sums of those integers, so they
//! never drift, whatever the order or the number of records.

use rust_decimal::{Decimal, RoundingStrategy};

/// The cost of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Nano-USD, rounded half-up.
    pub nano_usd: u64,
    /// Whether a price this record needed was missing (that part costs 0).
    pub unpriced: bool,
}

/// Nano-USD per USD-per-million-tokens and token: 1e9 / 1e6.
const NANO_PER_MILLION: i64 = 1000;

/// Prices the token counts. A price that is absent or negative counts as
/// missing; a model with no price at all is always `unpriced`.
pub fn cost(
    prompt_tokens: u64,
    completion_tokens: u64,
    input_per_1m: Option<Decimal>,
    output_per_1m: Option<Decimal>,
) -> Cost {
    let valid = |p: Option<Decimal>| p.filter(|p| !p.is_sign_negative());
    let (input, output) = (valid(input_per_1m), valid(output_per_1m));
    let unpriced = (input.is_none() && output.is_none())
        || (prompt_tokens > 0 && input.is_none())
        || (completion_tokens > 0 && output.is_none());
    let part = |tokens: u64, price: Option<Decimal>| -> Option<Decimal> {
        match price {
            Some(p) if tokens > 0 => Decimal::from(tokens).checked_mul(p),
            _ => Some(Decimal::ZERO),
        }
    };
    let usd_per_million = part(prompt_tokens, input)
        .zip(part(completion_tokens, output))
        .and_then(|(a, b)| a.checked_add(b));
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
