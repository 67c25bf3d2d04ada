//! The usage-stream consumer.
//!
//! Delivery is at least once, made exact by idempotence per stream entry:
//! the writes of all records of an entry are applied by one script call
//! together with a marker keyed by the entry id
//! ([`aigw_metrics::OnceBatch`]; several entries share a call, each under
//! its own marker), and an entry is acknowledged (then deleted, so the
//! stream does not grow) only after it is applied. A consumer that dies
//! mid-batch leaves its entries pending; any live consumer claims them once
//! they have been idle for `USAGE_CLAIM_IDLE` (`XAUTOCLAIM`) and applies
//! them again: entries applied before the crash are skipped by their
//! markers, the rest are applied now (`docs/token-service.md` has the
//! argument).
//!
//! Nothing is consumed before a config snapshot is loaded: pricing needs
//! prices, and entries wait safely in the stream meanwhile.

use super::{entry_plan, EntryError, EntryPlan, ONCE_SCOPE};
use crate::config::ConsumerConfig;
use crate::pool::CountPool;
use crate::tokenize::Encoders;
use aigw_metrics::families::token_service as f;
use aigw_metrics::stream::{Entry, GroupReader};
use aigw_metrics::RedisHandle;
use aigw_metrics::{keys, NoLabels, OnceBatch, Recorder, RedisConn};
use aigw_snapshot::SnapshotCell;
use aigw_types::ConfigSnapshot;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the consumer is doing, for `/ready` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConsumerState {
    Disabled = 0,
    Starting = 1,
    WaitingForSnapshot = 2,
    Running = 3,
    RedisUnavailable = 4,
    Stopped = 5,
}

impl ConsumerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerState::Disabled => "disabled",
            ConsumerState::Starting => "starting",
            ConsumerState::WaitingForSnapshot => "waiting_for_snapshot",
            ConsumerState::Running => "running",
            ConsumerState::RedisUnavailable => "redis_unavailable",
            ConsumerState::Stopped => "stopped",
        }
    }
}

/// Shared view of the consumer's state.
#[derive(Debug)]
pub struct ConsumerStatus(AtomicU8);

impl ConsumerStatus {
    pub fn new(s: ConsumerState) -> Self {
        ConsumerStatus(AtomicU8::new(s as u8))
    }

    pub fn get(&self) -> ConsumerState {
        match self.0.load(Ordering::Relaxed) {
            0 => ConsumerState::Disabled,
            1 => ConsumerState::Starting,
            2 => ConsumerState::WaitingForSnapshot,
            3 => ConsumerState::Running,
            4 => ConsumerState::RedisUnavailable,
            _ => ConsumerState::Stopped,
        }
    }

    fn set(&self, s: ConsumerState) {
        self.0.store(s as u8, Ordering::Relaxed);
    }
}

/// The entries of a batch, ready to apply.
struct Prepared {
    ids: Vec<String>,
    /// Entries with something to write: id, plan.
    plans: Vec<(String, EntryPlan)>,
    malformed_entries: i64,
    malformed_records: i64,
}

fn prepare(entries: Vec<Entry>, snap: &ConfigSnapshot, enc: &Encoders, ledger: bool) -> Prepared {
    let mut p = Prepared {
        ids: Vec::with_capacity(entries.len()),
        plans: Vec::with_capacity(entries.len()),
        malformed_entries: 0,
        malformed_records: 0,
    };
    for e in entries {
        p.ids.push(e.id.clone());
        if e.deleted {
            continue;
        }
        let Some(raw) = e.payload else {
            p.malformed_entries += 1;
            // The id is ours (Redis-generated); the payload is never logged.
            tracing::warn!(entry = %e.id, "usage entry without a `records` field; skipped");
            continue;
        };
        match entry_plan(&e.id, &raw, snap, enc, ledger) {
            Ok(plan) => {
                p.malformed_records += plan.malformed_records as i64;
                if plan.records > 0 {
                    p.plans.push((e.id, plan));
                }
            }
            Err(EntryError::NotAnArray(class)) => {
                p.malformed_entries += 1;
                tracing::warn!(entry = %e.id, error = class, bytes = raw.len(),
                    "usage entry is not a JSON array of records; skipped");
            }
        }
    }
    p
}

/// The consumer task.
pub struct Consumer {
    pub cfg: ConsumerConfig,
    pub redis: RedisConn,
    /// Kept current by the config watcher.
    pub snapshot: SnapshotCell,
    pub encoders: Arc<Encoders>,
    pub pool: CountPool,
    pub recorder: Recorder,
    pub status: Arc<ConsumerStatus>,
}

struct LoopState {
    reader: Option<redis::aio::MultiplexedConnection>,
    group_ready: bool,
    own_pending_done: bool,
    last_claim: Option<Instant>,
    failing: bool,
}

impl Consumer {
    /// The group commands of this consumer.
    fn reader(&self) -> GroupReader {
        GroupReader {
            stream: keys::USAGE_STREAM,
            group: keys::USAGE_GROUP,
            field: keys::USAGE_FIELD,
            consumer: self.cfg.name.clone(),
            count: self.cfg.batch_entries,
            claim_idle: self.cfg.claim_idle,
        }
    }

    /// Runs until `cancel` fires; a batch being applied is always finished
    /// (at most one blocking read, `USAGE_BLOCK`, is waited out).
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            tracing::info!(consumer = %self.cfg.name, "usage consumer started");
            let mut st = LoopState {
                reader: None,
                group_ready: false,
                own_pending_done: false,
                last_claim: None,
                failing: false,
            };
            while !cancel.is_cancelled() {
                match self.step(&mut st, &cancel).await {
                    Ok(()) => {
                        if st.failing {
                            tracing::info!("usage consumer recovered");
                            st.failing = false;
                        }
                    }
                    Err(e) => {
                        if !st.failing {
                            tracing::warn!(error = %e, "usage consumer: redis error, retrying");
                        }
                        st.failing = true;
                        st.reader = None;
                        if e.downcast_ref::<redis::RedisError>().and_then(|r| r.code())
                            == Some("NOGROUP")
                        {
                            st.group_ready = false;
                        }
                        self.status.set(ConsumerState::RedisUnavailable);
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            }
            self.status.set(ConsumerState::Stopped);
            tracing::info!("usage consumer stopped");
        })
    }

    async fn step(&self, st: &mut LoopState, cancel: &CancellationToken) -> anyhow::Result<()> {
        let mut conn = self.redis.get().await?;
        if !st.group_ready {
            ensure_group(&mut conn).await?;
            st.group_ready = true;
        }
        let snap = match self.snapshot.current() {
            Some(s) => s,
            None => {
                self.status.set(ConsumerState::WaitingForSnapshot);
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = self.snapshot.loaded() => {}
                }
                return Ok(());
            }
        };
        self.status.set(ConsumerState::Running);
        // Entries this consumer name was given before a restart.
        if !st.own_pending_done {
            loop {
                let entries = self.reader().read(&mut conn, "0", None).await?;
                if entries.is_empty() {
                    break;
                }
                self.handle(&mut conn, entries, &snap).await?;
            }
            st.own_pending_done = true;
        }
        if st
            .last_claim
            .is_none_or(|t| t.elapsed() >= self.cfg.claim_interval)
        {
            self.claim_abandoned(&mut conn, &snap).await?;
            st.last_claim = Some(Instant::now());
        }
        if st.reader.is_none() {
            st.reader = Some(self.redis.dedicated(keys::USAGE_STREAM).await?);
        }
        let reader = st.reader.as_mut().expect("reader just set");
        let entries = self
            .reader()
            .read(reader, ">", Some(self.cfg.block))
            .await?;
        if !entries.is_empty() {
            // Take the latest snapshot: a model may have been added meanwhile.
            let snap = self.snapshot.current().unwrap_or(snap);
            self.handle(&mut conn, entries, &snap).await?;
        }
        Ok(())
    }

    /// Takes over entries left pending by consumers that went away.
    async fn claim_abandoned(
        &self,
        conn: &mut RedisHandle,
        snap: &Arc<ConfigSnapshot>,
    ) -> anyhow::Result<()> {
        let mut cursor = "0-0".to_string();
        // Bounded per round so new entries are not starved by a huge backlog.
        for _ in 0..64 {
            let (next, entries) = self.reader().claim(conn, &cursor).await?;
            if !entries.is_empty() {
                tracing::info!(
                    entries = entries.len(),
                    "claimed usage entries abandoned by another consumer"
                );
                self.handle(conn, entries, snap).await?;
            }
            if next == "0-0" || next.is_empty() {
                break;
            }
            cursor = next;
        }
        Ok(())
    }

    /// Applies a batch of entries exactly once, then acknowledges and
    /// deletes them.
    async fn handle(
        &self,
        conn: &mut RedisHandle,
        entries: Vec<Entry>,
        snap: &Arc<ConfigSnapshot>,
    ) -> anyhow::Result<()> {
        let bytes: usize = entries
            .iter()
            .map(|e| e.payload.as_ref().map_or(0, String::len))
            .sum();
        let (snap, enc, ledger) = (snap.clone(), self.encoders.clone(), self.cfg.ledger);
        let prepared = self
            .pool
            .run(bytes, move || prepare(entries, &snap, &enc, ledger))
            .await?;
        let ttl_s = self.cfg.dedup_ttl.as_secs().max(1);
        let mut duplicates = 0usize;
        let mut plans = prepared.plans.into_iter().peekable();
        while plans.peek().is_some() {
            // Whole entries, until the call holds `apply_chunk` records.
            let mut batch = OnceBatch::new();
            let mut sizes = Vec::new();
            let mut records = 0;
            while records < self.cfg.apply_chunk {
                let Some((id, plan)) = plans.next() else {
                    break;
                };
                records += plan.records;
                sizes.push(plan.records);
                batch.push(ONCE_SCOPE, &id, plan.ops);
            }
            let applied = batch.apply_each(conn, ttl_s).await?;
            duplicates += sizes
                .iter()
                .zip(applied)
                .filter(|(_, new)| !new)
                .map(|(n, _)| n)
                .sum::<usize>();
        }
        if duplicates > 0 {
            f::USAGE_DUPLICATES.add(&self.recorder, &NoLabels, duplicates as i64);
        }
        if prepared.malformed_entries > 0 {
            let reason = f::Reason { reason: "entry" };
            f::USAGE_MALFORMED.add(&self.recorder, &reason, prepared.malformed_entries);
        }
        if prepared.malformed_records > 0 {
            let reason = f::Reason { reason: "record" };
            f::USAGE_MALFORMED.add(&self.recorder, &reason, prepared.malformed_records);
        }
        self.reader().ack_and_delete(conn, &prepared.ids).await?;
        Ok(())
    }
}

/// Creates the usage consumer group (and the stream) if missing, from the
/// stream's beginning.
pub async fn ensure_group<C: redis::aio::ConnectionLike>(conn: &mut C) -> redis::RedisResult<()> {
    aigw_metrics::stream::ensure_group(conn, keys::USAGE_STREAM, keys::USAGE_GROUP).await
}

/// Pending and undelivered entries of the usage group.
pub async fn stream_backlog(redis: &RedisConn) -> Option<(i64, Option<i64>)> {
    aigw_metrics::stream::group_backlog(redis, keys::USAGE_STREAM, keys::USAGE_GROUP).await
}
