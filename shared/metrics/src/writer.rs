//! The background flusher: applies the recorder's batch every interval and
//! once more on shutdown.

use crate::conn::RedisConn;
use crate::ops::Heartbeat;
use crate::recorder::{heartbeat_ttl, Recorder};
use std::time::Duration;
use tokio::task::JoinHandle;
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
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => break,
            }
            match flush_once(&recorder, &redis, alive).await {
                Ok(()) => {
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
        // Shutdown: drain, retrying until confirmed or out of time.
        let deadline = tokio::time::Instant::now() + shutdown_grace;
        loop {
            match flush_once(&recorder, &redis, Heartbeat::Retire).await {
                Ok(()) if !recorder.has_pending().await && recorder.queued_records() == 0 => break,
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "final metrics flush failed"),
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::error!("metrics not fully flushed before shutdown deadline");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

async fn flush_once(
    recorder: &Recorder,
    redis: &RedisConn,
    heartbeat: Heartbeat,
) -> redis::RedisResult<()> {
    let mut conn = redis.get().await?;
    recorder.flush(&mut conn, heartbeat).await.map(|_| ())
}
