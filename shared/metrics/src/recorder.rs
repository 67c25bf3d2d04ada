//! The in-process side of the batched writer. Recording a metric is a map
//! lookup and an atomic add; a background flusher turns the accumulated
//! deltas (and queued stream records) into one exactly-once script call per
//! interval.
//!
//! Exactly once: every flush carries an id `{replica}:{seq}` checked and set
//! inside the script. A flush whose reply was lost is retried with the same
//! id until Redis confirms it; new deltas keep merging into the atomic cells
//! meanwhile and go out in the next flush. So memory is bounded by the number
//! of series (plus the bounded record queue), not by the number of requests.

use crate::family::{bucket_field, Family, Kind};
use crate::journal::{self, Journal, JournalConfig, Segment};
use crate::metric::{kind, Counter, Gauge, Histogram, LabelSet, MaxGauge, Metric, SetGauge};
use crate::ops::{apply_flush, bucket_index, Heartbeat, Ops};
use dashmap::DashMap;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// One series' in-process state.
#[derive(Debug)]
pub struct Cell {
    family: &'static Family,
    labels: Box<[String]>,
    data: CellData,
}

#[derive(Debug)]
enum CellData {
    /// Delta not yet flushed.
    Counter(AtomicI64),
    /// Largest value since the last flush (`i64::MIN` = none).
    Max(AtomicI64),
    /// Last value and whether it changed since the last flush.
    Set(AtomicI64, AtomicBool),
    /// This replica's absolute value, and the value last put in a batch.
    Gauge(AtomicI64, AtomicI64),
    /// Per-bucket deltas (last is `+Inf`), sum and count deltas.
    Histogram(Box<[AtomicU64]>, AtomicU64, AtomicU64),
}

/// One series of the recorder, without its kind; cheap to clone, and
/// recording through it does no map lookup. Used through a typed
/// [`Handle`], which offers only the operations of the series' kind.
#[derive(Debug, Clone)]
pub(crate) struct Series(Arc<Cell>);

impl Series {
    /// Adds to a counter, or moves a gauge by `v`.
    pub fn add(&self, v: i64) {
        match &self.0.data {
            CellData::Counter(a) | CellData::Gauge(a, _) => {
                a.fetch_add(v, Relaxed);
            }
            _ => {}
        }
    }

    /// Sets a last-writer-wins series or a gauge, or raises a max series.
    pub fn set(&self, v: i64) {
        match &self.0.data {
            CellData::Set(a, dirty) => {
                a.store(v, Relaxed);
                dirty.store(true, Relaxed);
            }
            CellData::Max(a) => {
                a.fetch_max(v, Relaxed);
            }
            CellData::Gauge(a, _) => a.store(v, Relaxed),
            _ => {}
        }
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, v: u64) {
        if let (CellData::Histogram(b, sum, count), Kind::Histogram(bounds)) =
            (&self.0.data, self.0.family.kind)
        {
            b[bucket_index(bounds, v)].fetch_add(1, Relaxed);
            sum.fetch_add(v, Relaxed);
            count.fetch_add(1, Relaxed);
        }
    }

    /// Current in-process value of a gauge or last-writer-wins series.
    pub fn get(&self) -> i64 {
        match &self.0.data {
            CellData::Gauge(a, _)
            | CellData::Set(a, _)
            | CellData::Counter(a)
            | CellData::Max(a) => a.load(Relaxed),
            CellData::Histogram(_, _, c) => c.load(Relaxed) as i64,
        }
    }
}

impl Cell {
    fn new(family: &'static Family, labels: &[&str]) -> Cell {
        let data = match family.kind {
            Kind::Counter => CellData::Counter(AtomicI64::new(0)),
            Kind::Max => CellData::Max(AtomicI64::new(i64::MIN)),
            Kind::Set => CellData::Set(AtomicI64::new(0), AtomicBool::new(false)),
            Kind::Gauge => CellData::Gauge(AtomicI64::new(0), AtomicI64::new(i64::MIN)),
            Kind::Histogram(bounds) => CellData::Histogram(
                (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ),
        };
        Cell {
            family,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            data,
        }
    }

    /// Moves this cell's pending changes into `ops`. Per-replica gauges go
    /// out when they changed, and always when `all_gauges` (periodic flushes
    /// restate them, which heals a Redis that lost them).
    fn drain_into(&self, ops: &mut Ops, replica: &str, all_gauges: bool) {
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let f = self.family;
        match &self.data {
            CellData::Counter(a) => {
                let d = a.swap(0, Relaxed);
                if d != 0 {
                    ops.family_counter(f, &labels, d);
                }
            }
            CellData::Max(a) => {
                let v = a.swap(i64::MIN, Relaxed);
                if v != i64::MIN {
                    ops.family_max(f, &labels, v);
                }
            }
            CellData::Set(a, dirty) => {
                if dirty.swap(false, Relaxed) {
                    ops.family_value(f, &labels, a.load(Relaxed));
                }
            }
            CellData::Gauge(a, sent) => {
                let v = a.load(Relaxed);
                if all_gauges || sent.swap(v, Relaxed) != v {
                    sent.store(v, Relaxed);
                    ops.family_gauge(f, &labels, replica, v);
                }
            }
            CellData::Histogram(b, sum, count) => {
                let Kind::Histogram(bounds) = f.kind else {
                    return;
                };
                let n = count.swap(0, Relaxed);
                if n == 0 {
                    return;
                }
                let key = f.key_for(&labels);
                for (i, cell) in b.iter().enumerate() {
                    let c = cell.swap(0, Relaxed);
                    if c > 0 {
                        ops.hincr(&key, &bucket_field(bounds.get(i).copied()), c as i64);
                    }
                }
                ops.hincr(&key, "sum", sum.swap(0, Relaxed) as i64);
                ops.hincr(&key, "count", n as i64);
                if f.is_indexed() {
                    ops.sadd(&crate::keys::index(f.name), &Family::index_member(&labels));
                }
            }
        }
    }
}

/// Settings of the batched writer.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Replica id: unique per process, used for flush ids and per-replica gauges.
    pub replica: String,
    /// Stream the queued records go to.
    pub stream: String,
    /// Field of each stream entry holding the JSON array of records.
    pub stream_field: String,
    /// Records kept in memory at most while Redis is unreachable; beyond
    /// that new records are dropped and counted.
    pub max_queued_records: usize,
    /// Records per stream entry at most.
    pub records_per_entry: usize,
    /// A flush starts before its interval is up once this many records are
    /// waiting ([`Recorder::records_waiting`]): the memory a batch takes,
    /// and the burst of work it makes down the stream, stay bounded
    /// however many requests a second the replica serves.
    pub flush_records: usize,
}

impl RecorderConfig {
    /// A config with a fresh replica id `{service}-{uuid}`.
    pub fn for_service(service: &str) -> Self {
        RecorderConfig {
            replica: format!("{service}-{}", uuid::Uuid::new_v4().simple()),
            stream: crate::keys::USAGE_STREAM.to_string(),
            stream_field: crate::keys::USAGE_FIELD.to_string(),
            max_queued_records: 200_000,
            records_per_entry: 256,
            flush_records: 4096,
        }
    }
}

struct Pending {
    seq: u64,
    ops: Ops,
    /// The journal segment holding this flush's entries.
    sealed: Option<PathBuf>,
}

/// The journal and its current segment. Entries append under the shared
/// side of `segment`'s lock; a batch is drained, numbered and the segment
/// rotated under the exclusive side, so each segment holds exactly the
/// entries of one flush (see [`crate::journal`]).
struct Journaled {
    journal: Journal,
    segment: RwLock<Segment>,
}

struct Inner {
    cfg: RecorderConfig,
    cells: DashMap<String, Series>,
    records: Mutex<VecDeque<String>>,
    /// Woken when the queue reaches `cfg.flush_records`.
    records_waiting: tokio::sync::Notify,
    dropped_records: AtomicU64,
    next_seq: AtomicU64,
    pending: tokio::sync::Mutex<Option<Pending>>,
    flushes: AtomicU64,
    flush_failures: AtomicU64,
    has_gauges: AtomicBool,
    journal: Option<Journaled>,
}

/// The process-wide metrics recorder. Clone it freely.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

/// What one call to [`Recorder::flush`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushOutcome {
    /// Nothing to write.
    Idle,
    /// Written now (`ops` operations).
    Applied { ops: usize },
    /// The flush had already been applied by an earlier attempt whose reply
    /// was lost; it was not applied again.
    AlreadyApplied,
}

impl Recorder {
    pub fn new(cfg: RecorderConfig) -> Self {
        Self::build(cfg, None)
    }

    /// A recorder whose entries ([`Recorder::entry`]) are journaled in
    /// `journal.dir` before they count, so they survive a crash of this
    /// process (replayed by [`crate::replay::replay_dir`]).
    pub fn with_journal(cfg: RecorderConfig, journal: &JournalConfig) -> std::io::Result<Self> {
        let (journal, segment) = Journal::open(journal, &cfg.replica, 1)?;
        Ok(Self::build(
            cfg,
            Some(Journaled {
                journal,
                segment: RwLock::new(segment),
            }),
        ))
    }

    /// A recorder with a journal in `journal.dir` when given; when the
    /// journal cannot be opened the error is logged and the recorder runs
    /// without one (a crash then loses the last flush interval).
    pub fn open(cfg: RecorderConfig, journal: Option<&JournalConfig>) -> Self {
        let Some(j) = journal else {
            return Self::new(cfg);
        };
        match Self::with_journal(cfg.clone(), j) {
            Ok(r) => {
                tracing::info!(dir = %j.dir.display(), "metrics journal on");
                r
            }
            Err(e) => {
                tracing::error!(error = %e, dir = %j.dir.display(), "metrics journal could not be opened; running without it");
                Self::new(cfg)
            }
        }
    }

    fn build(cfg: RecorderConfig, journal: Option<Journaled>) -> Self {
        Recorder {
            inner: Arc::new(Inner {
                cfg,
                cells: DashMap::new(),
                records: Mutex::new(VecDeque::new()),
                records_waiting: tokio::sync::Notify::new(),
                dropped_records: AtomicU64::new(0),
                next_seq: AtomicU64::new(1),
                pending: tokio::sync::Mutex::new(None),
                flushes: AtomicU64::new(0),
                flush_failures: AtomicU64::new(0),
                has_gauges: AtomicBool::new(false),
                journal,
            }),
        }
    }

    /// The flush id the next batch takes (replaying a journal segment).
    pub(crate) fn set_next_seq(&self, seq: u64) {
        self.inner.next_seq.store(seq, Relaxed);
    }

    /// The settings this recorder was built with.
    pub fn config(&self) -> &RecorderConfig {
        &self.inner.cfg
    }

    /// The journal's directory, when journaling.
    pub fn journal_dir(&self) -> Option<&Path> {
        self.inner.journal.as_ref().map(|j| j.journal.dir())
    }

    /// Entries that were not journaled (the segment reached its bound while
    /// Redis was unreachable, or the journal failed); they still count.
    pub fn journal_skipped(&self) -> u64 {
        self.inner
            .journal
            .as_ref()
            .map_or(0, |j| j.journal.skipped())
    }

    /// Everything was flushed and nothing more will be recorded: removes
    /// this replica's journal files.
    pub fn close_journal(&self) {
        if let Some(j) = &self.inner.journal {
            let seg = j.segment.read().unwrap_or_else(|e| e.into_inner());
            j.journal.close(&seg);
        }
    }

    /// Starts one entry: deltas and records that count together, and that
    /// are journaled together when the recorder has a journal.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            rec: self,
            items: Vec::with_capacity(12),
            records: Vec::new(),
        }
    }

    pub fn replica(&self) -> &str {
        &self.inner.cfg.replica
    }

    /// The series of `family` with these label values (one per label, as
    /// [`crate::Metric::series`] passes them), created on first use. This
    /// lookup costs a key format and a map read.
    pub(crate) fn series(&self, family: &'static Family, labels: &[&str]) -> Series {
        let key = family.key_for(labels);
        if let Some(s) = self.inner.cells.get(&key) {
            return s.clone();
        }
        if family.kind == Kind::Gauge {
            self.inner.has_gauges.store(true, Relaxed);
        }
        self.inner
            .cells
            .entry(key)
            .or_insert_with(|| Series(Arc::new(Cell::new(family, labels))))
            .clone()
    }

    /// Queues one record (a JSON value) for the stream. Returns false, and
    /// counts it, when the queue is full.
    pub fn push_record(&self, json: String) -> bool {
        let mut q = self.inner.records.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.inner.cfg.max_queued_records {
            drop(q);
            self.inner.dropped_records.fetch_add(1, Relaxed);
            return false;
        }
        q.push_back(json);
        let n = q.len();
        drop(q);
        if n == self.inner.cfg.flush_records {
            self.inner.records_waiting.notify_one();
        }
        true
    }

    /// Resolves once [`RecorderConfig::flush_records`] records are waiting
    /// (at once, when they came while nobody was waiting).
    pub async fn records_waiting(&self) {
        self.inner.records_waiting.notified().await
    }

    /// Records queued and not yet confirmed written.
    pub fn queued_records(&self) -> usize {
        self.inner
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Records dropped because the queue was full.
    pub fn dropped_records(&self) -> u64 {
        self.inner.dropped_records.load(Relaxed)
    }

    /// Number of series known in process.
    pub fn series_count(&self) -> usize {
        self.inner.cells.len()
    }

    /// Flushes applied, and failed flush attempts, since start.
    pub fn flush_stats(&self) -> (u64, u64) {
        (
            self.inner.flushes.load(Relaxed),
            self.inner.flush_failures.load(Relaxed),
        )
    }

    /// Gets the journal's next segment ready outside the exclusive lock
    /// that [`Recorder::build_batch`] takes to rotate to it. The file work
    /// (megabytes of zeros under load) runs on a blocking thread with no
    /// lock held, so the runtime that flushes goes on serving its other
    /// tasks; only the flusher, holding `pending`, rotates, so the segment
    /// read here is still the current one when it is done.
    async fn prepare_segment(&self) {
        let Some(j) = &self.inner.journal else {
            return;
        };
        let (seq, used) = j.segment.read().unwrap_or_else(|e| e.into_inner()).fill();
        if j.journal.is_prepared(seq, used) {
            return;
        }
        let rec = self.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            if let Some(j) = &rec.inner.journal {
                j.journal.prepare(seq, used);
            }
        })
        .await;
        if let Err(e) = prepared {
            tracing::debug!(error = %e, "journal segment not prepared ahead");
        }
    }

    /// Drains every pending change into a batch with the next flush id;
    /// `None` (and no id taken) when there is nothing to write and `keep`
    /// is false.
    fn build_batch(&self, all_gauges: bool, keep: bool) -> Option<Pending> {
        let mut ops = Ops::new();
        let replica = self.inner.cfg.replica.as_str();
        let mut segment = self
            .inner
            .journal
            .as_ref()
            .map(|j| j.segment.write().unwrap_or_else(|e| e.into_inner()));
        for entry in self.inner.cells.iter() {
            entry.value().0.drain_into(&mut ops, replica, all_gauges);
        }
        let records: Vec<String> = {
            let mut q = self.inner.records.lock().unwrap_or_else(|e| e.into_inner());
            let n = q.len();
            q.drain(..n).collect()
        };
        if ops.is_empty() && records.is_empty() && !keep {
            return None;
        }
        let seq = self.inner.next_seq.fetch_add(1, Relaxed);
        let sealed = match (&self.inner.journal, segment.as_deref_mut()) {
            (Some(j), Some(seg)) => {
                debug_assert_eq!(Journal::segment_seq(seg), seq);
                j.journal.rotate(seg, seq)
            }
            _ => None,
        };
        drop(segment);
        for chunk in records.chunks(self.inner.cfg.records_per_entry.max(1)) {
            let mut payload =
                String::with_capacity(chunk.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
            payload.push('[');
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    payload.push(',');
                }
                payload.push_str(r);
            }
            payload.push(']');
            ops.xadd(
                &self.inner.cfg.stream,
                &self.inner.cfg.stream_field,
                payload,
            );
        }
        Some(Pending { seq, ops, sealed })
    }

    /// Writes everything recorded since the last successful flush, exactly
    /// once. On error the batch is kept and the next call retries it first
    /// with the same flush id.
    pub async fn flush<C: crate::conn::Placement>(
        &self,
        conn: &mut C,
        heartbeat: Heartbeat,
    ) -> redis::RedisResult<FlushOutcome> {
        let mut pending = self.inner.pending.lock().await;
        // An unconfirmed batch is retried first, under its original id;
        // what accumulated since goes out in the next flush.
        if pending.is_none() {
            self.prepare_segment().await;
            let alive = matches!(heartbeat, Heartbeat::Alive(_));
            let needs_heartbeat =
                !matches!(heartbeat, Heartbeat::None) && self.inner.has_gauges.load(Relaxed);
            let Some(batch) = self.build_batch(alive, needs_heartbeat) else {
                return Ok(FlushOutcome::Idle);
            };
            *pending = Some(batch);
        }
        let Some(batch) = pending.as_ref() else {
            return Ok(FlushOutcome::Idle);
        };
        let marker = crate::keys::flush_marker(&self.inner.cfg.replica, batch.seq);
        let result = apply_flush(
            conn,
            &marker,
            MARKER_TTL_S,
            &self.inner.cfg.replica,
            heartbeat,
            &batch.ops,
        )
        .await;
        match result {
            Ok(applied) => {
                let n = batch.ops.len();
                if let (Some(j), Some(path)) = (&self.inner.journal, &batch.sealed) {
                    j.journal.confirmed(path);
                }
                *pending = None;
                self.inner.flushes.fetch_add(1, Relaxed);
                Ok(if applied {
                    FlushOutcome::Applied { ops: n }
                } else {
                    FlushOutcome::AlreadyApplied
                })
            }
            Err(e) => {
                self.inner.flush_failures.fetch_add(1, Relaxed);
                Err(e)
            }
        }
    }

    /// Whether a batch is waiting for confirmation.
    pub async fn has_pending(&self) -> bool {
        self.inner.pending.lock().await.is_some()
    }
}

// ----- typed recording ---------------------------------------------------

impl<L: LabelSet, K> Metric<L, K> {
    /// A handle to one series of this process's recorder; keep it on hot
    /// paths (recording through it does no lookup).
    pub fn series(&'static self, rec: &Recorder, labels: &L::Values<'_>) -> Handle<K> {
        Handle {
            series: rec.series(self.family(), &L::values(labels)),
            _kind: PhantomData,
        }
    }
}

impl<L: LabelSet> Counter<L> {
    /// Adds `v` in this process; the flusher writes it.
    pub fn add(&'static self, rec: &Recorder, labels: &L::Values<'_>, v: i64) {
        self.series(rec, labels).add(v);
    }
}

impl<L: LabelSet> SetGauge<L> {
    pub fn set(&'static self, rec: &Recorder, labels: &L::Values<'_>, v: i64) {
        self.series(rec, labels).set(v);
    }
}

impl<L: LabelSet> MaxGauge<L> {
    /// Raises the series to at least `v`.
    pub fn raise(&'static self, rec: &Recorder, labels: &L::Values<'_>, v: i64) {
        self.series(rec, labels).raise(v);
    }
}

impl<L: LabelSet> Gauge<L> {
    /// Sets this replica's value.
    pub fn set(&'static self, rec: &Recorder, labels: &L::Values<'_>, v: i64) {
        self.series(rec, labels).set(v);
    }
}

impl<L: LabelSet> Histogram<L> {
    pub fn observe(&'static self, rec: &Recorder, labels: &L::Values<'_>, v: u64) {
        self.series(rec, labels).observe(v);
    }
}

/// A handle to one series, with the operations of its kind.
#[derive(Debug)]
pub struct Handle<K> {
    series: Series,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Handle<K> {
    fn clone(&self) -> Self {
        Handle {
            series: self.series.clone(),
            _kind: PhantomData,
        }
    }
}

impl Handle<kind::Counter> {
    pub fn add(&self, v: i64) {
        self.series.add(v);
    }

    pub fn inc(&self) {
        self.series.add(1);
    }

    /// What this process added and has not flushed yet.
    pub fn pending(&self) -> i64 {
        self.series.get()
    }
}

impl Handle<kind::Gauge> {
    /// Moves this replica's value by `v`.
    pub fn add(&self, v: i64) {
        self.series.add(v);
    }

    /// Sets this replica's value.
    pub fn set(&self, v: i64) {
        self.series.set(v);
    }

    /// This replica's value.
    pub fn get(&self) -> i64 {
        self.series.get()
    }
}

impl Handle<kind::Set> {
    pub fn set(&self, v: i64) {
        self.series.set(v);
    }

    /// The value last set in this process.
    pub fn get(&self) -> i64 {
        self.series.get()
    }
}

impl Handle<kind::Max> {
    pub fn raise(&self, v: i64) {
        self.series.set(v);
    }
}

impl Handle<kind::Histogram> {
    pub fn observe(&self, v: u64) {
        self.series.observe(v);
    }
}

/// One request's deltas and usage records, counted together by
/// [`Entry::commit`]. With a journal, the commit first appends them as one
/// frame (a copy into the segment's file mapping), so once it returns they
/// survive a crash of the process; without one it records them directly.
pub struct Entry<'a> {
    rec: &'a Recorder,
    items: Vec<(u8, &'a Series, u64)>,
    records: Vec<String>,
}

thread_local! {
    /// The frame being encoded (reused: no allocation per entry).
    static FRAME: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<'a> Entry<'a> {
    pub fn add(&mut self, h: &'a Handle<kind::Counter>, v: i64) {
        self.items.push((journal::TAG_ADD, &h.series, v as u64));
    }

    pub fn inc(&mut self, h: &'a Handle<kind::Counter>) {
        self.add(h, 1);
    }

    pub fn raise(&mut self, h: &'a Handle<kind::Max>, v: i64) {
        self.items.push((journal::TAG_RAISE, &h.series, v as u64));
    }

    pub fn observe(&mut self, h: &'a Handle<kind::Histogram>, v: u64) {
        self.items.push((journal::TAG_OBSERVE, &h.series, v));
    }

    /// Queues one record (a JSON value) for the stream.
    pub fn record(&mut self, json: String) {
        self.records.push(json);
    }

    /// Journals (when the recorder has a journal) and records everything.
    /// Returns how many records were dropped because the queue was full.
    pub fn commit(self) -> usize {
        let Some(j) = &self.rec.inner.journal else {
            return self.apply();
        };
        if self.items.is_empty() && self.records.is_empty() {
            return 0;
        }
        FRAME.with(|buf| {
            let mut buf = buf.borrow_mut();
            journal::begin_frame(&mut buf);
            for (tag, s, v) in &self.items {
                journal::put_series(&mut buf, *tag, s.0.family, &s.0.labels, *v);
            }
            for r in &self.records {
                journal::put_record(&mut buf, r);
            }
            journal::end_frame(&mut buf);
            let seg = j.segment.read().unwrap_or_else(|e| e.into_inner());
            j.journal.append(&seg, &buf);
            let dropped = self.apply();
            drop(seg);
            dropped
        })
    }

    fn apply(self) -> usize {
        let Entry {
            rec,
            items,
            records,
        } = self;
        for (tag, s, v) in items {
            match tag {
                journal::TAG_ADD => s.add(v as i64),
                journal::TAG_RAISE => s.set(v as i64),
                _ => s.observe(v),
            }
        }
        let mut dropped = 0;
        for r in records {
            if !rec.push_record(r) {
                dropped += 1;
            }
        }
        dropped
    }
}

/// Flush markers live this long: far longer than any retry of one flush.
pub const MARKER_TTL_S: u64 = 24 * 3600;

/// Heartbeat lifetime for a flush interval: a replica that misses three
/// flushes is considered gone.
pub fn heartbeat_ttl(interval: Duration) -> Duration {
    interval * 3 + Duration::from_millis(250)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::gateway;

    crate::label_set! {
        struct Pair { first, second }
    }

    static PAIRS: Counter<Pair<'static>> = Counter::new(crate::metric::Decl {
        id: "t_pairs",
        key: "metrics:t:{}:{}:pairs",
        name: "t_pairs_total",
        help: "Pairs.",
        unit: crate::metric::Unit::Count,
    });

    #[test]
    fn typed_metrics_record_through_their_declaration() {
        let rec = Recorder::new(RecorderConfig::for_service("t"));
        let l = Pair {
            first: "a",
            second: "b",
        };
        PAIRS.add(&rec, &l, 2);
        PAIRS.series(&rec, &l).inc();
        assert_eq!(PAIRS.series(&rec, &l).pending(), 3);
        assert_eq!(rec.series_count(), 1);
        let joined = rec.build_batch(false, false).unwrap().ops.args.join(" ");
        assert!(joined.contains("c metrics:t:a:b:pairs 3"), "{joined}");
    }

    #[test]
    fn series_are_shared_and_batched() {
        let r = Recorder::new(RecorderConfig::for_service("t"));
        let a = gateway::Namespace {
            namespace_code: "a",
        };
        gateway::NS_REQUESTS.add(&r, &a, 2);
        gateway::NS_REQUESTS.series(&r, &a).add(3);
        gateway::NS_LATENCY.observe(&r, &a, 7_000);
        assert_eq!(r.series_count(), 2);
        let b = r.build_batch(true, false).unwrap();
        let joined = b.ops.args.join(" ");
        assert!(
            joined.contains("c metrics:ns:a:total_requests 5"),
            "{joined}"
        );
        assert!(
            joined.contains("h metrics:ns:a:latency_us 10000 1"),
            "{joined}"
        );
        // Drained: the next batch is empty.
        assert!(r.build_batch(false, false).is_none());
    }
}
