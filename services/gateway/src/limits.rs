//! Namespace limits, checked after the model is known and before an
//! instance is picked:
//!
//! - **Concurrency** (`max_concurrency`): held across the fleet by leases
//!   in Redis ([`crate::lease`]), taken in the same script call as the
//!   RPM/TPM check; a replica that dies frees its slots within
//!   `CONCURRENCY_LEASE_TTL`. Each replica also counts its own requests
//!   locally and never runs more than `max_concurrency` itself, which is
//!   the whole limit while Redis does not answer (then up to N ×
//!   `max_concurrency` across N replicas).
//! - **Budget** (`monthly_budget_usd`): compared with the month-to-date cost
//!   the token-service keeps in `metrics:cost:ns:{ns}:month:{YYYY-MM}`
//!   (nano-USD, UTC month), which a background task reads every
//!   `BUDGET_POLL_INTERVAL` — never per request.
//! - **RPM / TPM**: sliding 60-second windows shared by all replicas, kept in
//!   Redis as one hash per namespace and kind (`ratelimit:ns:{ns}:rpm`,
//!   `ratelimit:ns:{ns}:tpm`) with one field per second, checked and counted
//!   by one script call using Redis' clock. Only namespaces with such a limit
//!   (or `max_concurrency`) pay this round trip. A request is refused when the window already holds
//!   `rpm` requests / `tpm` tokens; tokens are added after the request ends
//!   (the upstream's usage, or an estimate when it reported none). If Redis
//!   does not answer within `RATE_LIMIT_TIMEOUT` the request is let through:
//!   an outage of the metrics store must not take the API down.

use crate::error::{GatewayError, LimitReason};
use crate::lease::{Lease, LeaseBook};
use crate::namespace::ConcurrencySlot;
use crate::routing::{NamespaceRoute, RoutingStore};
use aigw_metrics::{Placement, RedisConn};
use aigw_service::clock;
use aigw_types::BudgetMonth;
use redis::Script;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

// The keys live in the shared schema (`aigw_metrics::keys`); the month
// cost is the token-service's `NS_MONTH_COST`, the budget contract.
pub use aigw_metrics::keys::{
    ns_month_cost as month_cost_key, ratelimit_inflight as inflight_key, ratelimit_rpm as rpm_key,
    ratelimit_tpm as tpm_key,
};

/// KEYS: rpm hash, tpm hash, in-flight set. ARGV: rpm limit, tpm limit,
/// max concurrency (0 = none for each), lease member, lease TTL in ms.
/// Returns {0, 0} when allowed (and counts the request and adds the
/// lease), {1, retry_after} for RPM, {2, retry_after} for TPM, {3, 1} for
/// concurrency.
static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1])
local now_ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)
local lo = now - 59
local function window(key)
  local h = redis.call('HGETALL', key)
  local sum, oldest = 0, now
  for i = 1, #h, 2 do
    local s = tonumber(h[i])
    if s < lo then
      redis.call('HDEL', key, h[i])
    else
      sum = sum + tonumber(h[i + 1])
      if s < oldest then oldest = s end
    end
  end
  return sum, oldest
end
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
if max > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
  if redis.call('ZCARD', KEYS[3]) >= max then return {3, 1} end
end
if rpm > 0 then
  local used, oldest = window(KEYS[1])
  if used >= rpm then return {1, oldest + 60 - now} end
end
if tpm > 0 then
  local used, oldest = window(KEYS[2])
  if used >= tpm then return {2, oldest + 60 - now} end
end
if rpm > 0 then
  redis.call('HINCRBY', KEYS[1], now, 1)
  redis.call('EXPIRE', KEYS[1], 61)
end
if max > 0 then
  redis.call('ZADD', KEYS[3], now_ms + tonumber(ARGV[5]), ARGV[4])
  -- The set lives as long as its longest lease (replicas' TTLs may differ).
  local last = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[3], last[2])
end
return {0, 0}
"#,
    )
});

/// The same checks on a Redis Cluster, where the three keys live in
/// different slots: one script per key, in the order of [`CHECK_SCRIPT`]
/// (concurrency, RPM, TPM), each undoing what the earlier ones took when it
/// refuses. KEYS: the in-flight set. ARGV: max concurrency, lease member,
/// lease TTL in ms. {0, 0} when the lease was added, {3, 1} when full.
static CLUSTER_INFLIGHT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return {3, 1} end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {0, 0}
"#,
    )
});

/// On a cluster: KEYS: one window hash (RPM or TPM). ARGV: limit, what to
/// answer when it is reached (1 RPM, 2 TPM), whether to count this request
/// in it (1 for RPM). {0, second counted in (or 0)} when under the limit,
/// {code, retry_after} otherwise.
static CLUSTER_WINDOW_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(redis.call('TIME')[1])
local lo = now - 59
local h = redis.call('HGETALL', KEYS[1])
local used, oldest = 0, now
for i = 1, #h, 2 do
  local s = tonumber(h[i])
  if s < lo then
    redis.call('HDEL', KEYS[1], h[i])
  else
    used = used + tonumber(h[i + 1])
    if s < oldest then oldest = s end
  end
end
if used >= tonumber(ARGV[1]) then return {tonumber(ARGV[2]), oldest + 60 - now} end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[1], now, 1)
  redis.call('EXPIRE', KEYS[1], 61)
  return {0, now}
end
return {0, 0}
"#,
    )
});

/// [`CHECK_SCRIPT`] as three single-slot steps (a Redis Cluster). The
/// steps are not one transaction: two requests racing for the last unit of
/// a limit may both be refused, never both admitted past it (each step
/// checks and takes atomically; a refusal gives back what earlier steps
/// took).
async fn check_per_slot(
    conn: &mut aigw_metrics::RedisHandle,
    code: &str,
    (rpm, tpm, max): (u64, u64, u64),
    member: &str,
    ttl_ms: u64,
) -> redis::RedisResult<(i64, i64)> {
    if max > 0 {
        let v: (i64, i64) = CLUSTER_INFLIGHT_SCRIPT
            .key(inflight_key(code))
            .arg(max)
            .arg(member)
            .arg(ttl_ms)
            .invoke_async(conn)
            .await?;
        if v.0 != 0 {
            return Ok(v);
        }
    }
    let undo_lease = |conn: &mut aigw_metrics::RedisHandle| {
        let mut c = conn.clone();
        let key = inflight_key(code);
        let member = member.to_string();
        async move {
            if max > 0 {
                let _: redis::RedisResult<i64> = redis::cmd("ZREM")
                    .arg(key)
                    .arg(member)
                    .query_async(&mut c)
                    .await;
            }
        }
    };
    let mut counted_in = 0;
    if rpm > 0 {
        let v: (i64, i64) = CLUSTER_WINDOW_SCRIPT
            .key(rpm_key(code))
            .arg(rpm)
            .arg(1)
            .arg(1)
            .invoke_async(conn)
            .await?;
        if v.0 != 0 {
            undo_lease(conn).await;
            return Ok(v);
        }
        counted_in = v.1;
    }
    if tpm > 0 {
        let v: (i64, i64) = CLUSTER_WINDOW_SCRIPT
            .key(tpm_key(code))
            .arg(tpm)
            .arg(2)
            .arg(0)
            .invoke_async(conn)
            .await?;
        if v.0 != 0 {
            undo_lease(conn).await;
            if rpm > 0 {
                let _: redis::RedisResult<i64> = redis::cmd("HINCRBY")
                    .arg(rpm_key(code))
                    .arg(counted_in)
                    .arg(-1)
                    .query_async(conn)
                    .await;
            }
            return Ok(v);
        }
    }
    Ok((0, 0))
}

/// Request-path limit checks.
pub struct Limiter {
    redis: RedisConn,
    timeout: Duration,
    leases: Arc<LeaseBook>,
}

impl Limiter {
    pub fn new(redis: RedisConn, timeout: Duration, leases: Arc<LeaseBook>) -> Self {
        Limiter {
            redis,
            timeout,
            leases,
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

    /// RPM, TPM and fleet-wide concurrency through Redis, in one script
    /// call; a no-op for namespaces without them. The lease, when one was
    /// taken, is held until the request's guard drops. If Redis does not
    /// answer the request is let through (the local concurrency check
    /// already holds).
    pub async fn check_shared(&self, ns: &NamespaceRoute) -> Result<Option<Lease>, GatewayError> {
        let rpm = ns.limits.rpm.unwrap_or(0);
        let tpm = ns.limits.tpm.unwrap_or(0);
        let max = ns.limits.max_concurrency.unwrap_or(0);
        if rpm == 0 && tpm == 0 && max == 0 {
            return Ok(None);
        }
        let code = &ns.code;
        // Only a concurrency limit takes a lease (and names it).
        let lease = (max > 0).then(|| self.leases.next());
        let call = async {
            let mut conn = self.redis.get().await?;
            if conn.clustered() {
                let member = lease.as_ref().map_or("", |(_, m)| m.as_str());
                let ttl_ms = self.leases.ttl().as_millis() as u64;
                let limits = (u64::from(rpm), tpm, u64::from(max));
                return check_per_slot(&mut conn, code, limits, member, ttl_ms).await;
            }
            CHECK_SCRIPT
                .key(rpm_key(code))
                .key(tpm_key(code))
                .key(inflight_key(code))
                .arg(rpm)
                .arg(tpm)
                .arg(max)
                .arg(lease.as_ref().map_or("", |(_, member)| member.as_str()))
                .arg(self.leases.ttl().as_millis() as u64)
                .invoke_async::<(i64, i64)>(&mut conn)
                .await
        };
        // A lease Redis granted whose answer was lost is never renewed: it
        // expires within one TTL.
        let verdict = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(namespace = %code, error = %e, "rate limit check failed; allowing request");
                return Ok(None);
            }
            Err(_) => {
                tracing::warn!(namespace = %code, "rate limit check timed out; allowing request");
                return Ok(None);
            }
        };
        let reason = match verdict.0 {
            0 => return Ok(lease.map(|(seq, _)| self.leases.hold(code, seq))),
            1 => LimitReason::Rpm,
            2 => LimitReason::Tpm,
            _ => LimitReason::Concurrency,
        };
        Err(GatewayError::RateLimited {
            reason,
            retry_after_s: verdict.1.max(1) as u64,
        })
    }
}

/// Sends tokens used by requests of TPM-limited namespaces to the writer.
#[derive(Clone)]
pub struct TokenSink {
    tx: mpsc::UnboundedSender<(Arc<str>, u64)>,
    pending: Arc<AtomicUsize>,
}

impl TokenSink {
    pub fn add(&self, ns: Arc<str>, tokens: u64) {
        self.pending.fetch_add(1, Relaxed);
        if self.tx.send((ns, tokens)).is_err() {
            self.pending.fetch_sub(1, Relaxed);
        }
    }

    /// Token additions not yet written (or given up on).
    pub fn pending(&self) -> usize {
        self.pending.load(Relaxed)
    }
}

/// The writer of TPM windows: batches additions into one pipeline.
pub fn spawn_token_writer(
    redis: RedisConn,
    cancel: CancellationToken,
) -> (TokenSink, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Arc<str>, u64)>();
    let pending = Arc::new(AtomicUsize::new(0));
    let sink = TokenSink {
        tx,
        pending: pending.clone(),
    };
    let task = tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, 256) => n,
                _ = cancel.cancelled() => {
                    // Write what is queued, then stop.
                    rx.close();
                    rx.recv_many(&mut batch, usize::MAX).await
                }
            };
            if n == 0 {
                return;
            }
            let mut per_ns: std::collections::HashMap<Arc<str>, u64> = Default::default();
            for (ns, t) in batch.drain(..) {
                let sum = per_ns.entry(ns).or_default();
                *sum = sum.saturating_add(t);
            }
            let write = async {
                let mut conn = redis.get().await?;
                let mut pipe = redis::pipe();
                for (ns, t) in &per_ns {
                    // Sent by body: EVALSHA in a pipeline fails on a cold
                    // script cache.
                    pipe.add_command(
                        redis::cmd("EVAL")
                            .arg(ADD_TOKENS_BODY)
                            .arg(1)
                            .arg(tpm_key(ns))
                            .arg((*t).min(i64::MAX as u64))
                            .to_owned(),
                    );
                }
                pipe.query_async::<()>(&mut conn).await
            };
            if let Err(e) = tokio::time::timeout(Duration::from_secs(3), write)
                .await
                .unwrap_or_else(|_| {
                    Err(redis::RedisError::from((
                        redis::ErrorKind::IoError,
                        "timeout",
                    )))
                })
            {
                tracing::warn!(error = %e, "could not record TPM usage");
            }
            pending.fetch_sub(n, Relaxed);
            if cancel.is_cancelled() && rx.is_closed() && rx.is_empty() {
                return;
            }
        }
    });
    (sink, task)
}

/// KEYS: tpm hash. ARGV: tokens. Adds them to the current second.
const ADD_TOKENS_BODY: &str = r#"
local now = redis.call('TIME')[1]
redis.call('HINCRBY', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], 61)
return 1
"#;

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
