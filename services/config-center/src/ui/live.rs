//! What the console reads from Redis besides its sessions: instance health
//! as the gateways report it (`metrics:instance:*`), the namespaces'
//! request counters and latency histograms, and their cost this month (the
//! figure budgets are checked against). Every read is one pipelined round
//! trip; while Redis is down the pages say "unknown" instead of failing.

use crate::state::AppState;
use aigw_metrics::families::gateway::{Namespace, NS_LATENCY};
use aigw_metrics::keys;
use aigw_metrics::LATENCY_BUCKETS_US;
use aigw_service::clock::now_ms;
use aigw_types::BudgetMonth;
use std::collections::HashMap;

/// Health of each `(instance id, namespace)`: `Some(true)` healthy,
/// `Some(false)` unhealthy, `None` not reported yet (or Redis down).
pub async fn instance_health(state: &AppState, instances: &[(&str, &str)]) -> Vec<Option<bool>> {
    if instances.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = instances
        .iter()
        .map(|(id, ns)| keys::instance_health(id, ns))
        .collect();
    let got: Option<Vec<Option<String>>> = async {
        let mut c = state.redis.get().await.ok()?;
        redis::cmd("MGET").arg(&keys).query_async(&mut c).await.ok()
    }
    .await;
    match got {
        Some(v) => v.into_iter().map(|s| s.map(|s| s.trim() == "1")).collect(),
        None => vec![None; instances.len()],
    }
}

/// A namespace's traffic as the gateways counted it, and its cost this month.
#[derive(Debug, Default, Clone)]
pub struct NsStats {
    pub requests: i64,
    pub failed: i64,
    /// Upper bound (µs) of the latency bucket holding the 95th percentile.
    pub p95_us: Option<u64>,
    /// Nano-USD, from the token-service's monthly cost counter.
    pub month_cost_nano: i64,
}

impl NsStats {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.failed as f64 / self.requests as f64)
    }
}

/// The 95th percentile's bucket bound from per-bucket (not cumulative)
/// counts keyed by bound (`+Inf` for the last).
fn p95(buckets: &HashMap<String, i64>) -> Option<u64> {
    let count: i64 = buckets.get("count").copied().unwrap_or(0);
    if count <= 0 {
        return None;
    }
    let want = (count as f64 * 0.95).ceil() as i64;
    let mut seen = 0;
    for b in LATENCY_BUCKETS_US {
        seen += buckets.get(&b.to_string()).copied().unwrap_or(0);
        if seen >= want {
            return Some(*b);
        }
    }
    LATENCY_BUCKETS_US.last().copied()
}

/// Stats of each namespace in `codes`, or `None` while Redis is down.
pub async fn namespace_stats(state: &AppState, codes: &[&str]) -> Option<Vec<NsStats>> {
    if codes.is_empty() {
        return Some(Vec::new());
    }
    let month = BudgetMonth::of_unix_ms(now_ms()).label();
    let mut pipe = redis::pipe();
    for ns in codes {
        pipe.cmd("MGET")
            .arg(keys::ns_total_requests(ns))
            .arg(keys::ns_failed_requests(ns))
            .arg(keys::ns_month_cost(ns, &month));
        pipe.cmd("HGETALL")
            .arg(NS_LATENCY.key(&Namespace { namespace_code: ns }));
    }
    let mut c = state.redis.get().await.ok()?;
    type Reply = (Vec<Option<i64>>, HashMap<String, i64>);
    let replies: Vec<Reply> = pipe.query_async(&mut c).await.ok()?;
    Some(
        replies
            .into_iter()
            .map(|(counters, hist)| NsStats {
                requests: counters.first().copied().flatten().unwrap_or(0),
                failed: counters.get(1).copied().flatten().unwrap_or(0),
                month_cost_nano: counters.get(2).copied().flatten().unwrap_or(0),
                p95_us: p95(&hist),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p95_is_the_bound_of_the_bucket_holding_it() {
        let h = |pairs: &[(&str, i64)]| -> HashMap<String, i64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert_eq!(p95(&h(&[])), None);
        // 90 fast, 10 slow: the 95th is among the slow ones.
        let m = h(&[("5000", 90), ("1000000", 10), ("count", 100)]);
        assert_eq!(p95(&m), Some(1_000_000));
        let m = h(&[("5000", 96), ("1000000", 4), ("count", 100)]);
        assert_eq!(p95(&m), Some(5_000));
    }
}
