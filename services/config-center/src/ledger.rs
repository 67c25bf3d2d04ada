//! The spend ledger's writer and its retention.
//!
//! The token-service appends one priced row per accounted usage record to
//! the stream `usage:ledger`, in the same script that accounts the record.
//! [`Writer`] reads that stream with its own consumer group and stores each
//! batch atomically (`INSERT … ON CONFLICT (request_id) DO NOTHING`); only
//! after the commit are the entries acknowledged and deleted. The writer
//! is pipelined: while a batch commits, the previous one is acknowledged
//! and the next one read and decoded. So while the database is down or
//! slow the entries wait in the stream, pending, and the gateway is not
//! concerned; a batch whose commit failed (and the one read ahead) is read
//! again from this writer's pending list; a writer that died leaves its
//! entries pending until another claims them (`XAUTOCLAIM`) or it restarts
//! under the same name; and a row delivered twice (an acknowledgement
//! lost) is ignored by its key. Every record lands once.
//!
//! [`Retention`] deletes rows older than `LEDGER_RETENTION` in short,
//! bounded statements, so writers wait at most for one of them.

use crate::config::LedgerConfig;
use crate::storage::Store;
use aigw_metrics::families::config_center as fam;
use aigw_metrics::stream::{Entry, GroupReader};
use aigw_metrics::{keys, NoLabels, Recorder, RedisConn};
use aigw_service::clock::now_ms;
use aigw_types::LedgerRow;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often entries abandoned by a writer that went away are looked for.
const CLAIM_INTERVAL: Duration = Duration::from_secs(10);

/// Why a step failed: which side to report.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("database: {0}")]
    Database(#[from] crate::storage::StoreError),
}

/// Reads `usage:ledger` and stores it.
pub struct Writer {
    pub cfg: LedgerConfig,
    pub store: Store,
    pub redis: RedisConn,
    pub recorder: Recorder,
}

struct LoopState {
    reader: Option<redis::aio::MultiplexedConnection>,
    group_ready: bool,
    /// This writer's pending entries (from before a restart, or a batch
    /// whose commit failed) have been stored.
    own_pending_done: bool,
    last_claim: Option<Instant>,
    failing: bool,
    /// The batch read while the previous one was being stored, next to
    /// store. Its entries are pending on this writer, so dropping it
    /// (after a failure) loses nothing: they are read again from the
    /// pending list.
    ahead: Option<Batch>,
    /// Entries of the last batch committed, acknowledged with the next
    /// batch's commit (or before waiting for new entries).
    unacked: Vec<String>,
}

impl Writer {
    /// The group commands of this writer.
    fn reader(&self) -> GroupReader {
        GroupReader {
            stream: keys::LEDGER_STREAM,
            group: keys::LEDGER_GROUP,
            field: keys::LEDGER_FIELD,
            consumer: self.cfg.consumer_name.clone(),
            count: self.cfg.batch_rows,
            claim_idle: self.cfg.claim_idle,
        }
    }

    /// Runs until `cancel` fires; a batch being stored is finished first.
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            tracing::info!(consumer = %self.cfg.consumer_name, "ledger writer started");
            let mut st = LoopState {
                reader: None,
                group_ready: false,
                own_pending_done: false,
                last_claim: None,
                failing: false,
                ahead: None,
                unacked: Vec::new(),
            };
            while !cancel.is_cancelled() {
                match self.step(&mut st).await {
                    Ok(()) => {
                        if st.failing {
                            tracing::info!("ledger writer recovered");
                            st.failing = false;
                        }
                    }
                    Err(e) => {
                        if !st.failing {
                            tracing::warn!(error = %e, "ledger writer: batch not stored, retrying");
                        }
                        st.failing = true;
                        st.reader = None;
                        st.ahead = None;
                        // Read the batch again from the pending list.
                        st.own_pending_done = false;
                        if let StepError::Database(_) = e {
                            fam::LEDGER_FAILURES.add(&self.recorder, &NoLabels, 1);
                        } else {
                            st.group_ready = false;
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => {}
                            _ = tokio::time::sleep(self.cfg.retry) => {}
                        }
                    }
                }
            }
            // What is committed is acknowledged, and a batch read ahead is
            // stored, before stopping, so that a restart under another
            // name need not wait to claim them.
            if let Err(e) = self.finish(&mut st).await {
                tracing::warn!(error = %e, "ledger writer: last batch left pending");
            }
            tracing::info!("ledger writer stopped");
        })
    }

    async fn step(&self, st: &mut LoopState) -> Result<(), StepError> {
        let mut conn = self.redis.get().await?;
        if st.ahead.is_none() && !st.unacked.is_empty() {
            self.reader().ack_and_delete(&mut conn, &st.unacked).await?;
            st.unacked.clear();
        }
        if !st.group_ready {
            self.reader().ensure_group(&mut conn).await?;
            st.group_ready = true;
        }
        if !st.own_pending_done {
            loop {
                let batch = self.read_batch(&mut conn, "0", None).await?;
                if batch.ids.is_empty() {
                    break;
                }
                self.store_batch(&mut conn, batch).await?;
            }
            st.own_pending_done = true;
        }
        if st.last_claim.is_none_or(|t| t.elapsed() >= CLAIM_INTERVAL) {
            self.claim_abandoned(&mut conn).await?;
            st.last_claim = Some(Instant::now());
        }
        if st.reader.is_none() {
            st.reader = Some(self.redis.dedicated(keys::LEDGER_STREAM).await?);
        }
        let reader = st.reader.as_mut().expect("reader just set");
        let batch = match st.ahead.take() {
            Some(b) => b,
            None => self.read_batch(reader, ">", Some(self.cfg.block)).await?,
        };
        if batch.ids.is_empty() {
            return Ok(());
        }
        // While this batch is committed, the previous one is acknowledged
        // and the next one read and decoded. A failed acknowledgement
        // leaves its entries pending: read again, they are duplicates.
        let unacked = std::mem::take(&mut st.unacked);
        let (committed, acked, next) = tokio::join!(
            self.commit_batch(batch),
            async {
                if unacked.is_empty() {
                    return Ok(());
                }
                self.reader().ack_and_delete(&mut conn, &unacked).await
            },
            self.read_batch(reader, ">", Some(self.cfg.block)),
        );
        st.unacked = committed?;
        acked?;
        let next = next?;
        if !next.ids.is_empty() {
            st.ahead = Some(next);
        }
        Ok(())
    }

    /// Acknowledges what is committed and stores the batch read ahead.
    async fn finish(&self, st: &mut LoopState) -> Result<(), StepError> {
        let mut conn = self.redis.get().await?;
        if !st.unacked.is_empty() {
            self.reader().ack_and_delete(&mut conn, &st.unacked).await?;
            st.unacked.clear();
        }
        if let Some(batch) = st.ahead.take() {
            self.store_batch(&mut conn, batch).await?;
        }
        Ok(())
    }

    /// Reads entries (see [`GroupReader::read`]) and decodes them.
    async fn read_batch<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        id: &str,
        block: Option<Duration>,
    ) -> Result<Batch, StepError> {
        Ok(parse_batch(self.reader().read(conn, id, block).await?))
    }

    /// Takes over entries left pending by writers that went away.
    async fn claim_abandoned(&self, conn: &mut aigw_metrics::RedisHandle) -> Result<(), StepError> {
        let mut cursor = "0-0".to_string();
        // Bounded per round so new entries are not starved by a huge backlog.
        for _ in 0..64 {
            let (next, entries) = self.reader().claim(conn, &cursor).await?;
            if !entries.is_empty() {
                tracing::info!(
                    entries = entries.len(),
                    "claimed ledger entries abandoned by another writer"
                );
                self.store_batch(conn, parse_batch(entries)).await?;
            }
            if next == "0-0" || next.is_empty() {
                break;
            }
            cursor = next;
        }
        Ok(())
    }

    /// Stores a batch, then acknowledges and deletes its entries.
    async fn store_batch(
        &self,
        conn: &mut aigw_metrics::RedisHandle,
        batch: Batch,
    ) -> Result<(), StepError> {
        let ids = self.commit_batch(batch).await?;
        self.reader().ack_and_delete(conn, &ids).await?;
        Ok(())
    }

    /// Stores a batch atomically (its rows whose request id is new); returns
    /// the entry ids to acknowledge.
    async fn commit_batch(&self, batch: Batch) -> Result<Vec<String>, StepError> {
        let Batch {
            ids,
            rows,
            repeated,
            malformed,
        } = batch;
        let mut duplicates = repeated;
        if !rows.is_empty() {
            let inserted = self.store.insert_ledger_rows(&rows).await?;
            fam::LEDGER_ROWS.add(&self.recorder, &NoLabels, inserted as i64);
            fam::LEDGER_BATCHES.add(&self.recorder, &NoLabels, 1);
            duplicates += rows.len() as i64 - inserted as i64;
        }
        if duplicates > 0 {
            fam::LEDGER_DUPLICATES.add(&self.recorder, &NoLabels, duplicates);
        }
        if malformed > 0 {
            fam::LEDGER_MALFORMED.add(&self.recorder, &NoLabels, malformed);
        }
        Ok(ids)
    }
}

/// A batch of entries, read.
struct Batch {
    /// Every entry's id, to acknowledge.
    ids: Vec<String>,
    /// The rows, each request id once: one INSERT must not name a key
    /// twice.
    rows: Vec<LedgerRow>,
    /// Rows left out because the batch held their request id already.
    repeated: i64,
    /// Entries that were not a row.
    malformed: i64,
}

/// The rows of one entry's payload: one row (a JSON object) or a JSON array
/// of rows (the token-service appends one entry per usage entry). `None`
/// when it is neither, or a row has an empty or oversized request id.
fn parse_rows(payload: &str) -> Option<Vec<LedgerRow>> {
    let rows = if payload.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<LedgerRow>>(payload).ok()?
    } else {
        vec![serde_json::from_str::<LedgerRow>(payload).ok()?]
    };
    rows.iter()
        .all(|r| !r.request_id.is_empty() && r.request_id.len() <= crate::usage::MAX_REQUEST_ID)
        .then_some(rows)
}

fn parse_batch(entries: Vec<Entry>) -> Batch {
    let mut ids = Vec::with_capacity(entries.len());
    let mut rows: Vec<LedgerRow> = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    let (mut repeated, mut malformed) = (0, 0);
    for e in entries {
        ids.push(e.id.clone());
        if e.deleted {
            continue;
        }
        let parsed = e.payload.as_deref().and_then(parse_rows);
        match parsed {
            Some(entry_rows) => {
                for r in entry_rows {
                    if seen.insert(r.request_id.clone()) {
                        rows.push(r);
                    } else {
                        repeated += 1;
                    }
                }
            }
            None => {
                malformed += 1;
                // The payload is never logged; the entry id is ours.
                tracing::warn!(entry = %e.id, "ledger entry is not a ledger row; skipped");
            }
        }
    }
    Batch {
        ids,
        rows,
        repeated,
        malformed,
    }
}

/// Deletes rows older than the retention, in bounded batches.
pub struct Retention {
    pub cfg: LedgerConfig,
    pub store: Store,
    pub recorder: Recorder,
}

impl Retention {
    pub fn spawn(self, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once(&cancel).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "ledger retention deleted old rows"),
                    Err(e) => tracing::warn!(error = %e, "ledger retention failed; will retry"),
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(self.cfg.retention_interval) => {}
                }
            }
        })
    }

    /// Deletes every row older than the retention, one batch per statement
    /// (yielding between them); returns how many.
    pub async fn run_once(
        &self,
        cancel: &CancellationToken,
    ) -> Result<u64, crate::storage::StoreError> {
        let cutoff = now_ms().saturating_sub(self.cfg.retention.as_millis() as i64);
        let mut total = 0;
        while !cancel.is_cancelled() {
            let n = self
                .store
                .delete_ledger_before(cutoff, self.cfg.retention_batch)
                .await?;
            total += n;
            if n > 0 {
                fam::LEDGER_DELETED.add(&self.recorder, &NoLabels, n as i64);
            }
            if n < u64::from(self.cfg.retention_batch) {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(total)
    }
}
