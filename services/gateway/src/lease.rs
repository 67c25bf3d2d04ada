//! Fleet-wide concurrency leases: a request of a namespace with
//! `max_concurrency` holds one member of `ratelimit:ns:{ns}:inflight`, a
//! sorted set scored by the lease's expiry (Redis' own clock), shared by
//! every replica. The limits script counts the live members, drops the
//! expired ones and adds a lease in the same call as the RPM/TPM check.
//!
//! While its request runs, this replica renews the lease every third of
//! `CONCURRENCY_LEASE_TTL`; the request's end removes it. A replica that
//! dies (SIGKILL, OOM, node loss) stops renewing, so its leases expire and
//! free their slots within one TTL. A release or renewal that fails (Redis
//! down) is not retried: the lease expires on its own, also within one TTL.

use aigw_metrics::keys::ratelimit_inflight;
use aigw_metrics::RedisConn;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// KEYS: the in-flight set. ARGV: TTL in ms, then lease members. Pushes
/// the expiry of the given members that are still present, and the set's
/// own expiry to its latest member's. Sent as EVAL in
/// one pipeline for every namespace (small, and needs no SCRIPT LOAD).
const RENEW: &str = r#"
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i])
end
-- The set lives as long as its longest lease (replicas' TTLs may differ).
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 0
"#;

/// The leases this replica holds, and where their releases go.
pub struct LeaseBook {
    replica: String,
    ttl: Duration,
    next: AtomicU64,
    /// Live leases per namespace, renewed by [`run`].
    live: Mutex<HashMap<Arc<str>, HashSet<u64>>>,
    released: mpsc::UnboundedSender<(Arc<str>, u64)>,
}

/// One request's lease; released when dropped.
pub struct Lease {
    book: Arc<LeaseBook>,
    ns: Arc<str>,
    seq: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.book.release(&self.ns, self.seq);
    }
}

impl LeaseBook {
    /// `replica` must be unique among live replicas (e.g. `{host}-{pid}`).
    pub fn new(
        replica: String,
        ttl: Duration,
    ) -> (Arc<LeaseBook>, mpsc::UnboundedReceiver<(Arc<str>, u64)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let book = LeaseBook {
            replica,
            ttl,
            next: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            released: tx,
        };
        (Arc::new(book), rx)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new lease's number and its member in the in-flight set.
    pub fn next(&self) -> (u64, String) {
        let seq = self.next.fetch_add(1, Relaxed);
        (seq, self.member(seq))
    }

    fn member(&self, seq: u64) -> String {
        format!("{}:{seq}", self.replica)
    }

    /// Records a lease Redis granted; it is renewed until dropped.
    pub fn hold(self: &Arc<Self>, ns: &Arc<str>, seq: u64) -> Lease {
        self.live_map().entry(ns.clone()).or_default().insert(seq);
        Lease {
            book: self.clone(),
            ns: ns.clone(),
            seq,
        }
    }

    fn release(&self, ns: &Arc<str>, seq: u64) {
        {
            let mut live = self.live_map();
            if let Some(set) = live.get_mut(ns) {
                set.remove(&seq);
                if set.is_empty() {
                    live.remove(ns);
                }
            }
        }
        // The task removes it from Redis; if that fails it expires.
        let _ = self.released.send((ns.clone(), seq));
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, HashSet<u64>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> Vec<(Arc<str>, Vec<u64>)> {
        self.live_map()
            .iter()
            .map(|(ns, set)| (ns.clone(), set.iter().copied().collect()))
            .collect()
    }
}

/// Removes released leases from Redis (in batches) and renews the live
/// ones every third of the TTL, until `cancel`.
pub async fn run(
    book: Arc<LeaseBook>,
    mut released: mpsc::UnboundedReceiver<(Arc<str>, u64)>,
    redis: RedisConn,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(book.ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch: Vec<(Arc<str>, u64)> = Vec::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            n = released.recv_many(&mut batch, 512) => {
                if n == 0 {
                    break;
                }
                remove(&book, &redis, &batch).await;
                batch.clear();
            }
            _ = tick.tick() => renew(&book, &redis).await,
        }
    }
    // Requests still running at shutdown were drained or cut by the
    // server; whatever is left goes now (or expires).
    while let Ok(r) = released.try_recv() {
        batch.push(r);
    }
    remove(&book, &redis, &batch).await;
}

async fn remove(book: &LeaseBook, redis: &RedisConn, batch: &[(Arc<str>, u64)]) {
    if batch.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    for (ns, seq) in batch {
        pipe.zrem(ratelimit_inflight(ns), book.member(*seq))
            .ignore();
    }
    let call = async {
        let mut conn = redis.get().await?;
        pipe.query_async::<()>(&mut conn).await
    };
    match tokio::time::timeout(book.ttl, call).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, leases = batch.len(), "releasing concurrency leases failed; they expire on their own")
        }
        Err(_) => {
            tracing::warn!(
                leases = batch.len(),
                "releasing concurrency leases timed out; they expire on their own"
            )
        }
    }
}

async fn renew(book: &LeaseBook, redis: &RedisConn) {
    let live = book.snapshot();
    if live.is_empty() {
        return;
    }
    let ttl_ms = book.ttl.as_millis() as u64;
    let mut pipe = redis::pipe();
    for (ns, seqs) in &live {
        pipe.cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(ratelimit_inflight(ns))
            .arg(ttl_ms)
            .arg(seqs.iter().map(|s| book.member(*s)).collect::<Vec<_>>())
            .ignore();
    }
    let call = async {
        let mut conn = redis.get().await?;
        pipe.query_async::<()>(&mut conn).await
    };
    match tokio::time::timeout(book.ttl / 3, call).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "renewing concurrency leases failed"),
        Err(_) => tracing::warn!("renewing concurrency leases timed out"),
    }
}
