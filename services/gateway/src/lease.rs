//! Fleet-wide concurrency leases: a request of a namespace with
//! `max_concurrency` holds one member of `ratelimit:ns:{ns}:inflight`, a
//! sorted set scored by the lease's expiry (Redis' own clock), shared by
//! every replica. A replica takes leases in blocks (one script call counts
//! the live members, drops the expired ones and adds what fits) and keeps
//! a few spare for its next requests ([`SlotPool`]).
//!
//! This replica renews its leases (in use and spare) every third of
//! `CONCURRENCY_LEASE_TTL`; a lease that is not kept spare is removed when
//! its request ends. A replica that dies (SIGKILL, OOM, node loss) stops
//! renewing, so its leases expire and free their slots within one TTL. A
//! release or renewal that fails (Redis down) is not retried: the lease
//! expires on its own, also within one TTL.

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

/// One request's lease; released when dropped, or kept by its
/// namespace's [`SlotPool`] for the next request.
pub struct Lease {
    book: Arc<LeaseBook>,
    ns: Arc<str>,
    seq: u64,
    pool: Option<Arc<SlotPool>>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let mut release = Vec::new();
            pool.put_back(self.seq, &mut release);
            for seq in release {
                self.book.release(&self.ns, seq);
            }
        } else {
            self.book.release(&self.ns, self.seq);
        }
    }
}

/// Spare leases a replica keeps for a namespace's next requests: at most
/// a quarter of its requests in flight that hold a lease (so none once it
/// is idle). A request takes a spare one without calling Redis; a request
/// that finds none takes a block of new ones in one script call.
#[derive(Default)]
pub struct SlotPool {
    spare: Mutex<Vec<u64>>,
    /// Requests of this replica holding a lease of the namespace.
    holding: AtomicU64,
}

impl SlotPool {
    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A spare lease, if the pool has one.
    pub fn take(self: &Arc<Self>, book: &Arc<LeaseBook>, ns: &Arc<str>) -> Option<Lease> {
        let seq = self.spare().pop()?;
        Some(self.lease(book, ns, seq))
    }

    fn lease(self: &Arc<Self>, book: &Arc<LeaseBook>, ns: &Arc<str>, seq: u64) -> Lease {
        self.holding.fetch_add(1, Relaxed);
        Lease {
            book: book.clone(),
            ns: ns.clone(),
            seq,
            pool: Some(self.clone()),
        }
    }

    /// How many leases the next block asks for: what the pool keeps spare
    /// for the requests now holding one, plus this request's.
    pub fn block_size(&self, cap: u64) -> u64 {
        (self.holding.load(Relaxed) / 4 + 1).clamp(1, cap.max(1))
    }

    /// Leases Redis granted in one block: the first for this request, the
    /// others spare.
    pub fn granted(
        self: &Arc<Self>,
        book: &Arc<LeaseBook>,
        ns: &Arc<str>,
        seqs: &[u64],
    ) -> Option<Lease> {
        let (first, rest) = seqs.split_first()?;
        book.hold_seqs(ns, seqs);
        self.spare().extend_from_slice(rest);
        Some(self.lease(book, ns, *first))
    }

    /// A request ended: its lease stays spare or goes, and so do spares
    /// past a quarter of the requests still holding one.
    fn put_back(&self, seq: u64, release: &mut Vec<u64>) {
        let holding = self.holding.fetch_sub(1, Relaxed).saturating_sub(1);
        let keep = (holding / 4) as usize;
        let mut spare = self.spare();
        spare.push(seq);
        while spare.len() > keep {
            release.extend(spare.pop());
        }
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

    fn member(&self, seq: u64) -> String {
        format!("{}:{seq}", self.replica)
    }

    /// A block of `n` new leases: their numbers and members.
    pub fn next_block(&self, n: u64) -> (Vec<u64>, Vec<String>) {
        let first = self.next.fetch_add(n, Relaxed);
        let seqs: Vec<u64> = (first..first + n).collect();
        let members = seqs.iter().map(|s| self.member(*s)).collect();
        (seqs, members)
    }

    /// Records leases Redis granted; they are renewed until released.
    fn hold_seqs(&self, ns: &Arc<str>, seqs: &[u64]) {
        self.live_map()
            .entry(ns.clone())
            .or_default()
            .extend(seqs.iter().copied());
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
