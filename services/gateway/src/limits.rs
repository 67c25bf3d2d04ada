//! Namespace limits, checked after the model is known and before an
//! instance is picked:
//!
//! - **Concurrency** (`max_concurrency`): held across the fleet by leases
//!   in Redis ([`crate::lease`]); a replica takes them in blocks and keeps
//!   a few spare, so most requests take one without a Redis call. A replica
//!   that dies frees its slots within `CONCURRENCY_LEASE_TTL`. Each replica
//!   also counts its own requests locally and never runs more than
//!   `max_concurrency` itself, which is the whole limit while Redis does
//!   not answer (then up to N × `max_concurrency` across N replicas).
//! - **Budget** (`monthly_budget_usd`): compared with the month-to-date cost
//!   the token-service keeps in `metrics:cost:ns:{ns}:month:{YYYY-MM}`
//!   (nano-USD, UTC month), which a background task reads every
//!   `BUDGET_POLL_INTERVAL` — never per request.
//! - **RPM / TPM**: sliding 60-second windows shared by all replicas, kept in
//!   Redis as one hash per namespace and kind (`ratelimit:ns:{ns}:rpm`,
//!   `ratelimit:ns:{ns}:tpm`) with one field per second. Each replica
//!   reserves slices of them and spends them locally ([`crate::quota`]).
//!   A request is refused when the window already holds `rpm` requests /
//!   `tpm` tokens (reserved slices included); tokens are taken from the
//!   slice after the request ends (the upstream's usage, or an estimate
//!   when it reported none). If Redis does not answer within
//!   `RATE_LIMIT_TIMEOUT` the request is let through: an outage of the
//!   metrics store must not take the API down.

use crate::error::{GatewayError, LimitReason};
use crate::lease::{Lease, LeaseBook};
use crate::namespace::{ConcurrencySlot, NamespaceRuntime};
use crate::quota::{timed_out, Kind, Refill, Slice, SLICE_LIFETIME};
use crate::routing::{NamespaceRoute, RoutingStore};
use aigw_metrics::RedisConn;
use aigw_service::clock;
use aigw_types::BudgetMonth;
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

// The keys live in the shared schema (`aigw_metrics::keys`); the month
// cost is the token-service's `NS_MONTH_COST`, the budget contract.
pub use aigw_metrics::keys::{
    ns_month_cost as month_cost_key, ratelimit_inflight as inflight_key, ratelimit_rpm as rpm_key,
    ratelimit_tpm as tpm_key,
};

/// KEYS: the in-flight set. ARGV: max concurrency, lease TTL in ms, then
/// the members of a block of leases. Drops expired leases and adds as many
/// of the block as fit: {0, added} when at least one did, {3, 1} when the
/// set is full. One key: runs on a Redis Cluster as well.
static INFLIGHT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
local free = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
if free <= 0 then return {3, 1} end
local n = math.min(free, #ARGV - 2)
local until_ms = now_ms + tonumber(ARGV[2])
local args = {}
for i = 1, n do
  args[#args + 1] = until_ms
  args[#args + 1] = ARGV[i + 2]
end
redis.call('ZADD', KEYS[1], unpack(args))
-- The set lives as long as its longest lease (replicas' TTLs may differ).
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {0, n}
"#,
    )
});

/// The namespaces whose RPM/TPM slices this replica holds, with the limits
/// they were last checked against: settled by [`spawn_slice_settler`]'s
/// task.
#[derive(Default)]
pub struct QuotaBook {
    held: Mutex<HashMap<Arc<str>, Held>>,
}

#[derive(Clone)]
struct Held {
    runtime: Arc<NamespaceRuntime>,
    rpm: u64,
    tpm: u64,
}

impl QuotaBook {
    fn hold(&self, ns: &NamespaceRoute) {
        let held = Held {
            runtime: ns.runtime.clone(),
            rpm: ns.limits.rpm.map_or(0, u64::from),
            tpm: ns.limits.tpm.unwrap_or(0),
        };
        self.map().insert(ns.code.clone(), held);
    }

    fn all(&self) -> Vec<(Arc<str>, Held)> {
        self.map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Request-path limit checks.
pub struct Limiter {
    redis: RedisConn,
    timeout: Duration,
    leases: Arc<LeaseBook>,
    quotas: Arc<QuotaBook>,
}

impl Limiter {
    pub fn new(
        redis: RedisConn,
        timeout: Duration,
        leases: Arc<LeaseBook>,
        quotas: Arc<QuotaBook>,
    ) -> Self {
        Limiter {
            redis,
            timeout,
            leases,
            quotas,
        }
    }

    /// This replica's share of concurrency, and the budget: local, no I/O.
    /// The slot is held until the request's guard drops.
    pub fn check_local(ns: &NamespaceRoute) -> Result<Option<ConcurrencySlot>, GatewayError> {
        let rt = &ns.runtime;
        let slot = match ns.limits.max_concurrency {
            Some(max) => {
                let now = rt.in_flight.fetch_add(1, Relaxed) + 1;
                let slot = ConcurrencySlot(rt.clone());
                if now > max {
                    drop(slot);
                    return Err(GatewayError::RateLimited {
                        reason: LimitReason::Concurrency,
                        retry_after_s: 1,
                    });
                }
                Some(slot)
            }
            None => None,
        };
        if let Some(budget) = ns.budget_nano_usd {
            if rt.spent_nano_usd.load(Relaxed) >= budget {
                return Err(GatewayError::RateLimited {
                    reason: LimitReason::Budget,
                    retry_after_s: BudgetMonth::seconds_to_next_month(clock::now_unix_s()),
                });
            }
        }
        Ok(slot)
    }

    /// Fleet-wide concurrency (a lease in Redis, one script call), then
    /// TPM and RPM from this replica's slices ([`crate::quota`]): no Redis
    /// call unless a slice is used up. A no-op for namespaces without them.
    /// The lease, when one was taken, is held until the request's guard
    /// drops. If Redis does not answer the request is let through (the
    /// local concurrency check already holds).
    pub async fn check_shared(&self, ns: &NamespaceRoute) -> Result<Option<Lease>, GatewayError> {
        let rpm = ns.limits.rpm.map_or(0, u64::from);
        let tpm = ns.limits.tpm.unwrap_or(0);
        let max = ns.limits.max_concurrency.unwrap_or(0);
        let lease = match max {
            0 => None,
            max => self.take_lease(ns, max).await?,
        };
        // Tokens first: only the request count is taken from its slice.
        if tpm > 0 {
            self.spend(ns, &ns.runtime.tpm, tpm_key, tpm).await?;
        }
        if rpm > 0 {
            self.spend(ns, &ns.runtime.rpm, rpm_key, rpm).await?;
        }
        Ok(lease)
    }

    async fn spend(
        &self,
        ns: &NamespaceRoute,
        slice: &Slice,
        key: fn(&str) -> String,
        limit: u64,
    ) -> Result<(), GatewayError> {
        if slice.try_take() {
            return Ok(());
        }
        self.quotas.hold(ns);
        let code = &ns.code;
        let call = async {
            let mut conn = tokio::time::timeout(self.timeout, self.redis.get())
                .await
                .map_err(|_| timed_out())??;
            slice
                .admit(&mut conn, &key(code), limit, self.timeout)
                .await
        };
        match call.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(full)) => {
                let reason = match slice.kind() {
                    Kind::Requests => LimitReason::Rpm,
                    Kind::Tokens => LimitReason::Tpm,
                };
                Err(GatewayError::RateLimited {
                    reason,
                    retry_after_s: full.retry_after_s,
                })
            }
            Err(e) => {
                tracing::warn!(namespace = %code, error = %e, "rate limit check failed; allowing request");
                Ok(())
            }
        }
    }

    /// A spare lease of this replica, or a block of new ones from Redis
    /// (one script call; requests that find no spare lease do not wait
    /// for each other).
    async fn take_lease(
        &self,
        ns: &NamespaceRoute,
        max: u32,
    ) -> Result<Option<Lease>, GatewayError> {
        let code = &ns.code;
        let pool = &ns.runtime.slots;
        if let Some(lease) = pool.take(&self.leases, code, u64::from(max)) {
            return Ok(Some(lease));
        }
        let n = pool.block_size(u64::from(max));
        let (seqs, members) = self.leases.next_block(n);
        let call = async {
            let mut conn = self.redis.get().await?;
            INFLIGHT_SCRIPT
                .key(inflight_key(code))
                .arg(max)
                .arg(self.leases.ttl().as_millis() as u64)
                .arg(&members)
                .invoke_async::<(i64, i64)>(&mut conn)
                .await
        };
        // Leases Redis granted whose answer was lost are never renewed:
        // they expire within one TTL.
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((0, added))) => {
                let added = (added.max(0) as usize).min(seqs.len());
                Ok(pool.granted(&self.leases, code, &seqs[..added]))
            }
            Ok(Ok((_, retry))) => Err(GatewayError::RateLimited {
                reason: LimitReason::Concurrency,
                retry_after_s: retry.max(1) as u64,
            }),
            Ok(Err(e)) => {
                tracing::warn!(namespace = %code, error = %e, "concurrency check failed; allowing request");
                Ok(None)
            }
            Err(_) => {
                tracing::warn!(namespace = %code, "concurrency check timed out; allowing request");
                Ok(None)
            }
        }
    }
}

/// The settler of RPM/TPM slices: settles every slice at the end of its
/// lifetime (a TPM slice also when requests used tokens past it) and gives
/// every slice back at shutdown. The tokens of a request are taken from
/// its namespace's TPM slice when it is accounted
/// ([`crate::accounting`]), on the request's own thread.
pub fn spawn_slice_settler(
    redis: RedisConn,
    quotas: Arc<QuotaBook>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SLICE_LIFETIME / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => settle_slices(&redis, &quotas, Refill::Roll).await,
                _ = cancel.cancelled() => {
                    settle_slices(&redis, &quotas, Refill::Return).await;
                    return;
                }
            }
        }
    })
}

async fn settle_slices(redis: &RedisConn, quotas: &QuotaBook, how: Refill) {
    let held = quotas.all();
    if held.is_empty() {
        return;
    }
    let timeout = Duration::from_secs(3);
    let settle = async {
        let mut conn = redis.get().await?;
        for (code, h) in &held {
            if h.rpm > 0 {
                let key = rpm_key(code);
                h.runtime
                    .rpm
                    .settle(&mut conn, &key, h.rpm, how, timeout)
                    .await?;
            }
            if h.tpm > 0 {
                let key = tpm_key(code);
                h.runtime
                    .tpm
                    .settle(&mut conn, &key, h.tpm, how, timeout)
                    .await?;
            }
        }
        Ok::<_, redis::RedisError>(())
    };
    if let Err(e) = tokio::time::timeout(timeout, settle)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
    {
        tracing::warn!(error = %e, "could not settle RPM/TPM slices");
    }
}

/// Reads the month-to-date cost of every namespace with a budget.
pub async fn run_budget_poller(
    store: Arc<RoutingStore>,
    redis: RedisConn,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(routing) = store.load() else {
            continue;
        };
        let budgeted: Vec<_> = routing
            .namespaces()
            .filter(|n| n.budget_nano_usd.is_some())
            .cloned()
            .collect();
        if budgeted.is_empty() {
            continue;
        }
        let month = BudgetMonth::of_unix_s(clock::now_unix_s()).label();
        let keys: Vec<String> = budgeted
            .iter()
            .map(|n| month_cost_key(&n.code, &month))
            .collect();
        let read = async {
            let mut conn = redis.get().await?;
            redis::cmd("MGET")
                .arg(&keys)
                .query_async::<Vec<Option<i64>>>(&mut conn)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(3), read).await {
            Ok(Ok(values)) => {
                failing = false;
                for (ns, v) in budgeted.iter().zip(values) {
                    ns.runtime.spent_nano_usd.store(v.unwrap_or(0), Relaxed);
                }
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "could not read month-to-date cost; keeping last values");
            }
            Err(_) if !failing => {
                failing = true;
                tracing::warn!("reading month-to-date cost timed out; keeping last values");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        assert_eq!(rpm_key("a"), "ratelimit:ns:a:rpm");
        assert_eq!(tpm_key("a"), "ratelimit:ns:a:tpm");
        assert_eq!(
            month_cost_key("a", "2024-02"),
            "metrics:cost:ns:a:month:2024-02"
        );
    }
}
