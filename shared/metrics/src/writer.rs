//! The background flusher: applies the recorder's batch every interval (and
//! sooner when [`crate::RecorderConfig::flush_records`] records are
//! waiting, the interval then counting from that flush) and once more on
//! shutdown. With a journal, it also replays the
//! journals of replicas that died in the same directory (at start, then
//! every [`REPLAY_SCAN`]) and removes its own on a clean stop.

use crate::conn::RedisConn;
use crate::ops::Heartbeat;
use crate::recorder::{heartbeat_ttl, FlushOutcome, Recorder};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a journaling flusher looks for journals of dead replicas.
pub const REPLAY_SCAN: Duration = Duration::from_secs(10);
/// How soon a replay that failed (Redis unreachable) is tried again.
const REPLAY_RETRY: Duration = Duration::from_secs(1);
use tokio_util::sync::CancellationToken;

/// Runs until `cancel` fires, then flushes until everything recorded is
/// confirmed written (or `shutdown_grace` passes) and retires the replica's
/// liveness so its gauges drop at once.
pub fn spawn_flusher(
    recorder: Recorder,
    redis: RedisConn,
    interval: Duration,
    shutdown_grace: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let alive = Heartbeat::Alive(heartbeat_ttl(interval));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let journaling = recorder.journal_dir().is_some();
        // Replayed before the first flush of this replica, then on a timer
        // of its own (whatever the flush interval).
        let mut next_scan = Instant::now();
        loop {
            if journaling && Instant::now() >= next_scan {
                next_scan = Instant::now()
                    + if replay_journals(&recorder, &redis).await {
                        REPLAY_SCAN
                    } else {
                        REPLAY_RETRY
                    };
            }
            tokio::select! {
                _ = tick.tick() => {}
                _ = recorder.records_waiting() => {
                    // The interval counts from this flush: otherwise the
                    // tick due soon after it would flush the few records
                    // that came in between, and a busy replica would flush
                    // twice as often as it needs to.
                    tick.reset();
                }
                _ = tokio::time::sleep_until(next_scan), if journaling => continue,
                _ = cancel.cancelled() => break,
            }
            match flush_once(&recorder, &redis, alive).await {
                Ok(_) => {
                    if failing {
                        tracing::info!("metrics flush recovered");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "metrics flush failed; keeping deltas in memory");
                        failing = true;
                    }
                }
            }
        }
        // Shutdown: drain until a flush finds nothing left, then retire the
        // replica's heartbeat so its gauge contributions vanish at once.
        let deadline = tokio::time::Instant::now() + shutdown_grace;
        let mut drained = false;
        while tokio::time::Instant::now() < deadline {
            match flush_once(&recorder, &redis, Heartbeat::None).await {
                Ok(FlushOutcome::Idle) => {
                    drained = true;
                    break;
                }
                Ok(_) => continue,
                Err(e) => tracing::warn!(error = %e, "final metrics flush failed; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if drained {
            if let Err(e) = flush_once(&recorder, &redis, Heartbeat::Retire).await {
                tracing::warn!(error = %e, "could not retire replica heartbeat");
            }
            recorder.close_journal();
        } else {
            tracing::error!(
                queued_records = recorder.queued_records(),
                "metrics not fully flushed before the shutdown deadline"
            );
        }
    })
}

async fn flush_once(
    recorder: &Recorder,
    redis: &RedisConn,
    heartbeat: Heartbeat,
) -> redis::RedisResult<FlushOutcome> {
    let mut conn = redis.get().await?;
    recorder.flush(&mut conn, heartbeat).await
}

/// Replays the journals of dead replicas next to this recorder's; false
/// when Redis failed (tried again after [`REPLAY_RETRY`]).
async fn replay_journals(recorder: &Recorder, redis: &RedisConn) -> bool {
    let Some(dir) = recorder.journal_dir() else {
        return true;
    };
    let result = async {
        let mut conn = redis.get().await?;
        crate::replay::replay_dir(dir, recorder.replica(), recorder.config(), &mut conn).await
    }
    .await;
    match result {
        Ok(r) => {
            if !r.replicas.is_empty() {
                tracing::info!(
                    replicas = ?r.replicas,
                    segments = r.segments,
                    frames = r.frames,
                    applied = r.applied,
                    skipped_bytes = r.skipped_bytes,
                    "journals of stopped replicas replayed"
                );
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "journal replay failed; retrying");
            false
        }
    }
}
