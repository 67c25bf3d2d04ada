//! Reading the counters the services keep in Redis.

use crate::stack::Stack;
use std::collections::BTreeMap;

impl Stack {
    /// An integer key (0 when absent).
    pub async fn int(&self, key: &str) -> i64 {
        if let Some(cluster) = &self.cluster {
            return cluster.get_i64(key).await;
        }
        let mut c = match &self.sentinel {
            Some(s) => redis::Client::open(s.master_url())
                .expect("master url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect to the sentinel master"),
            None => self.redis.conn().await,
        };
        let v: Option<i64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .unwrap_or(None);
        v.unwrap_or(0)
    }

    /// Every key matching `pattern` (SCAN; tests only).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut c = self.redis.conn().await;
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await
                .expect("SCAN");
            out.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        out.sort();
        out.dedup();
        out
    }

    /// The gateway's counters of namespace `ns` as the product spec names them.
    pub async fn gateway_counts(&self, ns: &str, statuses: &[u16]) -> Counts {
        let mut by_status = BTreeMap::new();
        for s in statuses {
            by_status.insert(*s, self.int(&format!("metrics:ns:{ns}:status:{s}")).await);
        }
        Counts {
            global_requests: self.int("metrics:global:total_requests").await,
            global_errors: self.int("metrics:global:total_errors").await,
            ns_requests: self.int(&format!("metrics:ns:{ns}:total_requests")).await,
            ns_successful: self
                .int(&format!("metrics:ns:{ns}:successful_requests"))
                .await,
            ns_failed: self.int(&format!("metrics:ns:{ns}:failed_requests")).await,
            by_status,
        }
    }

    /// The token-service's totals of `model` in `ns`.
    pub async fn model_totals(&self, model: &str, ns: &str) -> ModelTotals {
        let k = |s: &str| format!("metrics:model:{model}:{ns}:{s}");
        ModelTotals {
            requests: self.int(&k("requests")).await,
            errors: self.int(&k("errors")).await,
            tokens_in: self.int(&k("tokens_in")).await,
            tokens_out: self.int(&k("tokens_out")).await,
            cost_nusd: self.int(&k("cost_nusd")).await,
            cache_read: self.int(&k("tokens_cache_read")).await,
            cache_write: self.int(&k("tokens_cache_write")).await,
            reasoning: self.int(&k("tokens_reasoning")).await,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub global_requests: i64,
    pub global_errors: i64,
    pub ns_requests: i64,
    pub ns_successful: i64,
    pub ns_failed: i64,
    pub by_status: BTreeMap<u16, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelTotals {
    pub requests: i64,
    pub errors: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_nusd: i64,
    /// Parts of `tokens_in` (cache reads, cache writes) and of `tokens_out`
    /// (reasoning).
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}
