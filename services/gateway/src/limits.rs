//! Namespace limits, checked after the model is known and before an
//! instance is picked:
//!
//! - **Concurrency** (`max_concurrency`): counted locally, per gateway
//!   replica — an atomic, no Redis. With N replicas a namespace can have up
//!   to N × `max_concurrency` requests in flight; a shared count would need
//!   leases to survive a replica dying mid-request, and the brief only asks
//!   RPM/TPM to be global.
//! - **Budget** (`monthly_budget_usd`): compared with the month-to-date cost
//!   the token-service keeps in `metrics:cost:ns:{ns}:month:{YYYY-MM}`
//!   (nano-USD, UTC month), which a background task reads every
//!   `BUDGET_POLL_INTERVAL` — never per request.
//! - **RPM / TPM**: sliding 60-second windows shared by all replicas, kept in
//!   Redis as one hash per namespace and kind (`ratelimit:ns:{ns}:rpm`,
//!   `ratelimit:ns:{ns}:tpm`) with one field per second, checked and counted
//!   by one script call using Redis' clock. Only namespaces with such a limit
//!   pay this round trip. A request is refused when the window already holds
//!   `rpm` requests / `tpm` tokens; tokens are added after the request ends
//!   (the upstream's usage, or an estimate when it reported none). If Redis
//!   does not answer within `RATE_LIMIT_TIMEOUT` the request is let through:
//!   an outage of the metrics store must not take the API down.

use crate::error::{GatewayError, LimitReason};
use crate::namespace::ConcurrencySlot;
use crate::routing::{NamespaceRoute, RoutingStore};
use aigw_metrics::RedisConn;
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
    ns_month_cost as month_cost_key, ratelimit_rpm as rpm_key, ratelimit_tpm as tpm_key,
};

/// KEYS: rpm hash, tpm hash. ARGV: rpm limit, tpm limit (0 = none).
/// Returns {0, 0} when allowed (and counts the request), {1, retry_after}
/// for RPM, {2, retry_after} for TPM.
static CHECK_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(redis.call('TIME')[1])
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
return {0, 0}
"#,
    )
});

/// Request-path limit checks.
pub struct Limiter {
    redis: RedisConn,
    timeout: Duration,
}

impl Limiter {
    pub fn new(redis: RedisConn, timeout: Duration) -> Self {
        Limiter { redis, timeout }
    }

    /// Concurrency and budget: local, no I/O. The slot is held until the
    /// request's guard drops.
    pub fn check_local(ns: &NamespaceRoute) -> Result<Option<ConcurrencySlot>, GatewayError> {
        let rt = &ns.runtime;
        let slot = match ns.limits.max_concurrency {
            Some(max) => {
                let now = rt.in_flight.fetch_add(1, Relaxed) + 1;
                let slot = ConcurrencySlot(rt.clone());
                if now > max {
                    drop(slot);
                    rt.count_rejection(LimitReason::Concurrency);
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
                rt.count_rejection(LimitReason::Budget);
                return Err(GatewayError::RateLimited {
                    reason: LimitReason::Budget,
                    retry_after_s: BudgetMonth::seconds_to_next_month(clock::now_unix_s()),
                });
            }
        }
        Ok(slot)
    }

    /// RPM and TPM through Redis; a no-op for namespaces without them.
    pub async fn check_rate(&self, ns: &NamespaceRoute) -> Result<(), GatewayError> {
        let rpm = ns.limits.rpm.unwrap_or(0);
        let tpm = ns.limits.tpm.unwrap_or(0);
        if rpm == 0 && tpm == 0 {
            return Ok(());
        }
        let code = &ns.code;
        let call = async {
            let mut conn = self.redis.get().await?;
            CHECK_SCRIPT
                .key(rpm_key(code))
                .key(tpm_key(code))
                .arg(rpm)
                .arg(tpm)
                .invoke_async::<(i64, i64)>(&mut conn)
                .await
        };
        let verdict = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(namespace = %code, error = %e, "rate limit check failed; allowing request");
                return Ok(());
            }
            Err(_) => {
                tracing::warn!(namespace = %code, "rate limit check timed out; allowing request");
                return Ok(());
            }
        };
        let reason = match verdict.0 {
            0 => return Ok(()),
            1 => LimitReason::Rpm,
            _ => LimitReason::Tpm,
        };
        ns.runtime.count_rejection(reason);
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
