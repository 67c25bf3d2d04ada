//! Fleet-wide concurrency leases: a request of a namespace with
//! `max_concurrency` holds one member of `ratelimit:ns:{ns}:inflight`, a
//! sorted set scored by the lease's expiry (Redis' own clock), shared by
//! every replica. A replica takes leases in blocks (one script call counts
//! the live members, drops the expired ones and adds what fits) and keeps
//! the ones its requests gave back spare for its next requests
//! ([`SlotPool`]): a busy replica takes a block only when more of its
//! requests hold a lease at once than recently.
//!
//! This replica renews its leases (in use and spare) every third of
//! `CONCURRENCY_LEASE_TTL`, and every [`SPARE_PERIOD`] gives back the spare
//! leases its recent requests did not need. A replica that dies (SIGKILL,
//! OOM, node loss) stops renewing, so its leases (spare ones too) expire
//! and free their slots within one TTL. A release or renewal that fails
//! (Redis down) is not retried: the lease expires on its own, also within
//! one TTL.

use aigw_metrics::keys::ratelimit_inflight;
use aigw_metrics::RedisConn;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A replica keeps at most `max_concurrency / SPARE_SHARE` spare leases of
/// a namespace (none below 16): the most it can keep other replicas from.
pub const SPARE_SHARE: u64 = 16;
/// How often spare leases are matched to the recent need: a replica keeps
/// spare at most twice the most leases its requests held at once in this
/// period and the last one, less those in use.
pub const SPARE_PERIOD: Duration = Duration::from_secs(1);

/// KEYS: the in-flight set. ARGV: TTL in ms, then lease members. Pushes
/// the expiry of the given members that are still present, and the set's
/// own expiry to its latest member's. Sent as EVAL in
/// one pipeline for every namespace (small, and needs no SCRIPT LOAD).
const RENEW: &str = r#"
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
-- One ZADD per 1000 members (Lua's unpack has a stack limit).
local i = 2
while i <= #ARGV do
  local args = {}
  for j = i, math.min(i + 999, #ARGV) do
    args[#args + 1] = until_ms
    args[#args + 1] = ARGV[j]
  end
  redis.call('ZADD', KEYS[1], 'XX', unpack(args))
  i = i + 1000
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
    /// Live leases per namespace, renewed by [`run`], with the pool that
    /// keeps the spare ones.
    live: Mutex<HashMap<Arc<str>, Held>>,
    released: mpsc::UnboundedSender<(Arc<str>, u64)>,
}

struct Held {
    seqs: HashSet<u64>,
    pool: Arc<SlotPool>,
}

/// One request's lease; released when dropped, or kept by its
/// namespace's [`SlotPool`] for the next request.
pub struct Lease {
    book: Arc<LeaseBook>,
    ns: Arc<str>,
    seq: u64,
    pool: Arc<SlotPool>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(seq) = self.pool.put_back(self.seq) {
            self.book.release(&self.ns, seq);
        }
    }
}

/// Spare leases a replica keeps for a namespace's next requests. A request
/// takes a spare one without calling Redis; a request that finds none
/// takes a block of new ones in one script call, as many as the replica's
/// requests hold (so its leases double), at most the cap. A lease given
/// back stays spare while the spare ones are fewer than the cap and than
/// twice the most held at once in this [`SPARE_PERIOD`] and the last one,
/// less those in use; [`run`] trims them every period, so an idle replica
/// keeps none after two periods.
#[derive(Default)]
pub struct SlotPool {
    spare: Mutex<Vec<u64>>,
    /// Requests of this replica holding a lease of the namespace.
    holding: AtomicU64,
    /// Most requests holding one at once in this period, and in the last.
    peak: AtomicU64,
    last_peak: AtomicU64,
    /// Most spare leases kept: `max_concurrency / SPARE_SHARE` as of the
    /// last block taken (0: none).
    cap: AtomicU64,
}

impl SlotPool {
    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A spare lease, if the pool has one and `max` is the limit its
    /// spare leases were taken for (after a change the next block applies
    /// the new one, and spare leases beyond its cap go back).
    pub fn take(self: &Arc<Self>, book: &Arc<LeaseBook>, ns: &Arc<str>, max: u64) -> Option<Lease> {
        if self.cap.load(Relaxed) != max / SPARE_SHARE {
            return None;
        }
        let seq = self.spare().pop()?;
        Some(self.lease(book, ns, seq))
    }

    fn lease(self: &Arc<Self>, book: &Arc<LeaseBook>, ns: &Arc<str>, seq: u64) -> Lease {
        let holding = self.holding.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(holding, Relaxed);
        Lease {
            book: book.clone(),
            ns: ns.clone(),
            seq,
            pool: self.clone(),
        }
    }

    /// How many leases the next block asks for when the namespace allows
    /// `max` at once: one for this request and as many spare as the
    /// replica's requests hold now, at most `max / SPARE_SHARE` spare.
    pub fn block_size(&self, max: u64) -> u64 {
        let cap = max / SPARE_SHARE;
        self.cap.store(cap, Relaxed);
        self.holding.load(Relaxed).min(cap) + 1
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
        book.hold_seqs(ns, self, seqs);
        self.spare().extend_from_slice(rest);
        Some(self.lease(book, ns, *first))
    }

    /// Spare leases to keep while `holding` are in use.
    fn keep(&self, holding: u64) -> usize {
        let recent = self.peak.load(Relaxed).max(self.last_peak.load(Relaxed));
        (recent.saturating_mul(2).saturating_sub(holding)).min(self.cap.load(Relaxed)) as usize
    }

    /// A request ended: its lease stays spare, or is returned to be
    /// released.
    fn put_back(&self, seq: u64) -> Option<u64> {
        let holding = self.holding.fetch_sub(1, Relaxed).saturating_sub(1);
        let keep = self.keep(holding);
        let mut spare = self.spare();
        if spare.len() < keep {
            spare.push(seq);
            None
        } else {
            Some(seq)
        }
    }

    /// A period ended: spare leases past what the last two periods needed
    /// go into `release`.
    fn roll(&self, release: &mut Vec<u64>) {
        let holding = self.holding.load(Relaxed);
        self.last_peak
            .store(self.peak.swap(holding, Relaxed), Relaxed);
        let keep = self.keep(holding);
        let mut spare = self.spare();
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
    fn hold_seqs(&self, ns: &Arc<str>, pool: &Arc<SlotPool>, seqs: &[u64]) {
        self.live_map()
            .entry(ns.clone())
            .or_insert_with(|| Held {
                seqs: HashSet::new(),
                pool: pool.clone(),
            })
            .seqs
            .extend(seqs.iter().copied());
    }

    fn release(&self, ns: &Arc<str>, seq: u64) {
        {
            let mut live = self.live_map();
            if let Some(held) = live.get_mut(ns) {
                held.seqs.remove(&seq);
                if held.seqs.is_empty() {
                    live.remove(ns);
                }
            }
        }
        // The task removes it from Redis; if that fails it expires.
        let _ = self.released.send((ns.clone(), seq));
    }

    /// Releases the spare leases the last periods did not need (every
    /// spare lease when `all`).
    fn trim_spare(&self, all: bool) {
        let pools: Vec<_> = self
            .live_map()
            .iter()
            .map(|(ns, held)| (ns.clone(), held.pool.clone()))
            .collect();
        let mut release = Vec::new();
        for (ns, pool) in pools {
            if all {
                release.append(&mut pool.spare());
            } else {
                pool.roll(&mut release);
            }
            for seq in release.drain(..) {
                self.release(&ns, seq);
            }
        }
    }

    fn live_map(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Held>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> Vec<(Arc<str>, Vec<u64>)> {
        self.live_map()
            .iter()
            .map(|(ns, held)| (ns.clone(), held.seqs.iter().copied().collect()))
            .collect()
    }
}

/// Removes released leases from Redis (in batches), renews the live ones
/// every third of the TTL and trims spare ones every [`SPARE_PERIOD`],
/// until `cancel`; then releases the spare ones.
pub async fn run(
    book: Arc<LeaseBook>,
    mut released: mpsc::UnboundedReceiver<(Arc<str>, u64)>,
    redis: RedisConn,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(book.ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut period = tokio::time::interval(SPARE_PERIOD);
    period.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            _ = period.tick() => book.trim_spare(false),
        }
    }
    // Requests still running at shutdown were drained or cut by the
    // server; whatever is left goes now (or expires).
    book.trim_spare(true);
    while let Ok(r) = released.try_recv() {
        batch.push(r);
    }
    remove(&book, &redis, &batch).await;
}

async fn remove(book: &LeaseBook, redis: &RedisConn, batch: &[(Arc<str>, u64)]) {
    if batch.is_empty() {
        return;
    }
    // One ZREM per namespace.
    let mut per_ns: HashMap<&str, Vec<String>> = HashMap::new();
    for (ns, seq) in batch {
        per_ns.entry(&**ns).or_default().push(book.member(*seq));
    }
    let mut pipe = redis::pipe();
    for (ns, members) in &per_ns {
        pipe.zrem(ratelimit_inflight(ns), members).ignore();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_and_book() -> (Arc<SlotPool>, Arc<LeaseBook>, Arc<str>) {
        let (book, _rx) = LeaseBook::new("r".into(), Duration::from_secs(10));
        (Arc::default(), book, Arc::from("ns"))
    }

    /// Takes a lease as a request would: a spare one, else a granted block.
    fn take(pool: &Arc<SlotPool>, book: &Arc<LeaseBook>, ns: &Arc<str>, max: u64) -> (Lease, bool) {
        if let Some(l) = pool.take(book, ns, max) {
            return (l, false);
        }
        let (seqs, _) = book.next_block(pool.block_size(max));
        (pool.granted(book, ns, &seqs).unwrap(), true)
    }

    #[test]
    fn below_sixteen_no_lease_is_kept_spare() {
        let (pool, book, ns) = pool_and_book();
        for _ in 0..3 {
            let held: Vec<_> = (0..3).map(|_| take(&pool, &book, &ns, 15)).collect();
            assert!(held.iter().all(|(_, block)| *block), "each took its own");
            drop(held);
            assert!(pool.spare().is_empty());
        }
    }

    #[test]
    fn a_busy_replica_reuses_its_leases_and_an_idle_one_gives_them_back() {
        let (pool, book, ns) = pool_and_book();
        // 8 requests at once, again and again: blocks only while the
        // replica's leases double up to 8.
        let mut blocks = 0;
        for _ in 0..50 {
            let held: Vec<_> = (0..8).map(|_| take(&pool, &book, &ns, 10_000)).collect();
            blocks += held.iter().filter(|(_, block)| *block).count();
        }
        assert!(blocks <= 4, "{blocks} blocks");
        // Spare: at most twice the peak (8), less those in use (0).
        let spare = pool.spare().len();
        assert!((8..=16).contains(&spare), "{spare} spare");
        // Never more spare than max / 16.
        assert!(pool.spare().len() as u64 <= 10_000 / SPARE_SHARE);
        // Two idle periods: none left.
        let mut release = Vec::new();
        pool.roll(&mut release);
        pool.roll(&mut release);
        assert!(pool.spare().is_empty());
        assert_eq!(release.len(), spare);
    }

    #[test]
    fn spare_leases_stay_under_a_sixteenth_of_the_limit() {
        let (pool, book, ns) = pool_and_book();
        let held: Vec<_> = (0..40).map(|_| take(&pool, &book, &ns, 160)).collect();
        drop(held);
        assert_eq!(pool.spare().len(), 10);
    }
}
