//! Which replica of a service exports the fleet series.
//!
//! The Redis-backed series are fleet totals: every replica reads the same
//! values. If every replica of a scrape job showed them, the product
//! specification's `sum(...)` queries would report N times the truth. So
//! exactly one replica at a time shows them: the holder of the lease
//! `metrics:exporter:{service}` in Redis. The others show only their own
//! process metrics. A holder renews the lease every third of its TTL and
//! gives it up at shutdown (another replica takes it at its next renewal);
//! a holder that dies loses it within one TTL. A replica stops showing the
//! fleet series two thirds of a TTL after its last confirmed renewal, so two
//! replicas never show them at once (unless a clock runs a third slower than
//! Redis'); between a holder's death and the next one's renewal the fleet
//! series are absent, which rate() and increase() bridge, instead of
//! doubled.

use crate::conn::RedisConn;
use crate::keys::metrics_exporter;
use redis::Script;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// KEYS: the lease. ARGV: this replica, TTL in ms. 1 when this replica
/// holds the lease (taken or renewed), 0 when another does.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#,
    )
});

/// KEYS: the lease. ARGV: this replica. Deletes the lease if it is ours.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// This replica's view of the exporter lease.
pub struct ExporterLease {
    key: String,
    me: String,
    ttl: Duration,
    epoch: Instant,
    /// Until when (ms after `epoch`) this replica may show the fleet series.
    valid_until_ms: AtomicU64,
    /// Whether the last lease call reached Redis.
    redis_up: AtomicBool,
    /// Whether the last lease call found this replica holding the lease.
    held: AtomicBool,
}

impl ExporterLease {
    /// `service` names the lease (`gateway`, `token-service`, …); `me` must be
    /// unique among the service's live replicas (e.g. `{host}-{pid}`).
    pub fn new(service: &str, me: String, ttl: Duration) -> Arc<ExporterLease> {
        Arc::new(ExporterLease {
            key: metrics_exporter(service),
            me,
            ttl,
            epoch: Instant::now(),
            valid_until_ms: AtomicU64::new(0),
            redis_up: AtomicBool::new(false),
            held: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether this replica shows the fleet series now.
    pub fn is_exporter(&self) -> bool {
        self.now_ms() < self.valid_until_ms.load(Relaxed)
    }

    /// Whether the last lease call reached Redis.
    pub fn redis_up(&self) -> bool {
        self.redis_up.load(Relaxed)
    }

    /// Takes or renews the lease; returns whether this replica holds it.
    pub async fn try_acquire(&self, redis: &RedisConn) -> bool {
        let asked_at = self.now_ms();
        let call = async {
            let mut conn = redis.get().await?;
            ACQUIRE
                .key(&self.key)
                .arg(&self.me)
                .arg(self.ttl.as_millis() as u64)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        let held = match tokio::time::timeout(self.ttl / 3, call).await {
            Ok(Ok(v)) => {
                self.redis_up.store(true, Relaxed);
                v == 1
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "metrics exporter lease: redis unreachable");
                self.redis_up.store(false, Relaxed);
                false
            }
            Err(_) => {
                self.redis_up.store(false, Relaxed);
                false
            }
        };
        self.held.store(held, Relaxed);
        let until = if held {
            asked_at + (self.ttl.as_millis() as u64) * 2 / 3
        } else {
            0
        };
        self.valid_until_ms.store(until, Relaxed);
        held
    }

    /// Gives the lease up if this replica holds it (as far as it knows: a
    /// replica that never got it, or lost Redis, does not wait on Redis at
    /// shutdown).
    pub async fn release(&self, redis: &RedisConn) {
        self.valid_until_ms.store(0, Relaxed);
        if !self.held.swap(false, Relaxed) {
            return;
        }
        let call = async {
            let mut conn = redis.get().await?;
            RELEASE
                .key(&self.key)
                .arg(&self.me)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        let _ = tokio::time::timeout((self.ttl / 3).min(Duration::from_secs(1)), call).await;
    }
}

/// Renews (or tries to take) the lease every third of its TTL until
/// `cancel`, then gives it up.
pub fn spawn_exporter_lease(
    lease: Arc<ExporterLease>,
    redis: RedisConn,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(lease.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    lease.try_acquire(&redis).await;
                }
            }
        }
        lease.release(&redis).await;
    })
}
