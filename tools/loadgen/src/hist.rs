//! A log-linear latency histogram (HdrHistogram's layout, 128 sub-buckets per
//! power of two, so any percentile is within 0.8% of the exact value) with
//! exact count, sum, min and max. Fixed size, cheap to record and to merge.

use serde::Serialize;

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough groups for any u64.
const BUCKETS: usize = ((64 - SUB_BITS + 1) as usize + 1) * SUB as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let e = 63 - v.leading_zeros();
    let mantissa = v >> (e - SUB_BITS);
    (((e - SUB_BITS + 1) as u64) * SUB + (mantissa - SUB)) as usize
}

/// Lowest value and width of bucket `i`.
fn bucket(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, 1);
    }
    let group = i >> SUB_BITS;
    let mantissa = (i & (SUB - 1)) + SUB;
    (mantissa << (group - 1), 1 << (group - 1))
}

/// Percentiles in milliseconds (the histogram records nanoseconds).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket holding the
    /// `ceil(q·n)`-th smallest sample, clamped to the exact min and max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket(i);
                return (low + width / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Percentiles of nanosecond samples, in milliseconds.
    pub fn summary_ms(&self) -> Summary {
        let ms = |ns: u64| ns as f64 / 1e6;
        Summary {
            count: self.count,
            mean: self.mean() / 1e6,
            min: ms(self.min()),
            p50: ms(self.quantile(0.50)),
            p90: ms(self.quantile(0.90)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut expect_low = 0u64;
        for i in 0..(20 * SUB as usize) {
            let (low, width) = bucket(i);
            assert_eq!(low, expect_low, "bucket {i}");
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            expect_low = low + width;
        }
        for v in [0, 1, 127, 128, 255, 256, 1_000_000, u64::MAX / 3, u64::MAX] {
            let (low, width) = bucket(index(v));
            assert!(low <= v && v - low < width, "{v}");
        }
    }

    #[test]
    fn quantiles_are_within_one_percent_of_exact() {
        // A deterministic spread over five decades, like real latencies.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = Vec::new();
        let mut h = Histogram::default();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = 1_000 + (x % 1_000) * (x % 1_000) * (x % 100);
            values.push(v);
            h.record(v);
        }
        values.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            let exact = values[((q * values.len() as f64).ceil() as usize) - 1] as f64;
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.01, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.max(), *values.last().unwrap());
        assert_eq!(h.min(), values[0]);
        assert_eq!(h.count(), 100_000);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        a.record(20);
        b.record(5);
        b.record(1_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(a.min(), 5);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.mean(), (10 + 20 + 5 + 1_000_000) as f64 / 4.0);
        assert_eq!(a.quantile(0.5), 10);
        let empty = Histogram::default();
        assert_eq!(empty.summary_ms(), Summary::default());
    }
}
