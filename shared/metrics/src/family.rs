//! Metric families: what a series is (counter, gauge, histogram…), which
//! labels it has and which Redis key holds it.

use crate::keys::LABEL_SEP;

/// How a family's series are stored and merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer counter: deltas are summed in process and applied with `INCRBY`.
    Counter,
    /// The largest value seen (e.g. a timestamp); applied as "set if greater".
    Max,
    /// The last value set, e.g. a health flag; last writer wins.
    Set,
    /// An in-flight style gauge: each replica keeps its own absolute value
    /// (`{key}:replicas` hash, `keys::gauge_replicas`) and the key holds the sum over live replicas.
    Gauge,
    /// A histogram with fixed upper bounds (in the stored integer unit),
    /// stored as a hash with one field per bound, `+Inf`, `sum` and `count`.
    /// Bucket fields are not cumulative; rendering makes them so.
    Histogram(&'static [u64]),
}

/// A family of series sharing a kind, label names and a key template.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    /// Stable id, used to name the index set (`metrics:index:{name}`).
    pub name: &'static str,
    /// Redis key template; each `{}` is replaced by the next label value.
    pub key: &'static str,
    pub labels: &'static [&'static str],
    pub kind: Kind,
}

impl Family {
    /// The Redis key of the series with these label values, one per label:
    /// callers pass the values of a typed label struct, or values read back
    /// from an index set and checked against the labels.
    pub(crate) fn key_for(&self, values: &[&str]) -> String {
        let mut out = String::with_capacity(self.key.len() + 32);
        let mut vals = values.iter();
        let mut parts = self.key.split("{}");
        if let Some(first) = parts.next() {
            out.push_str(first);
        }
        for part in parts {
            out.push_str(vals.next().copied().unwrap_or(""));
            out.push_str(part);
        }
        out
    }

    /// The index-set member naming the series with these label values.
    pub fn index_member(values: &[&str]) -> String {
        let mut s = String::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                s.push(LABEL_SEP);
            }
            s.push_str(v);
        }
        s
    }

    /// Splits an index-set member back into label values.
    pub fn parse_member(member: &str) -> Vec<&str> {
        member.split(LABEL_SEP).collect()
    }

    pub fn is_indexed(&self) -> bool {
        !self.labels.is_empty()
    }
}

/// Histogram field name for the bucket with upper bound `bound`.
pub fn bucket_field(bound: Option<u64>) -> String {
    match bound {
        Some(b) => b.to_string(),
        None => "+Inf".to_string(),
    }
}

/// Bucket bounds for request latencies, in microseconds: 5 ms to 5 min.
pub const LATENCY_BUCKETS_US: &[u64] = &[
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// Bucket bounds for LLM request latencies (whole request or time to first
/// token), in microseconds: 50 ms to 5 min, dense where P95s of chat
/// completions usually fall (1-60 s).
pub const LLM_LATENCY_BUCKETS_US: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    750_000,
    1_000_000,
    1_500_000,
    2_000_000,
    3_000_000,
    5_000_000,
    7_500_000,
    10_000_000,
    15_000_000,
    20_000_000,
    30_000_000,
    45_000_000,
    60_000_000,
    90_000_000,
    120_000_000,
    180_000_000,
    300_000_000,
];

/// Bucket bounds for fast internal operations, in microseconds: 100 µs to 10 s.
pub const FAST_BUCKETS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];

#[cfg(test)]
mod tests {
    use super::*;

    const F: Family = Family {
        name: "t",
        key: "metrics:ns:{}:status:{}",
        labels: &["namespace_code", "status_code"],
        kind: Kind::Counter,
    };

    #[test]
    fn key_templates() {
        assert_eq!(F.key_for(&["a", "200"]), "metrics:ns:a:status:200");
        let m = Family::index_member(&["a", "200"]);
        assert_eq!(Family::parse_member(&m), vec!["a", "200"]);
    }
}
