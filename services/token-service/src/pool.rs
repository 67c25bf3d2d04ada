//! Where counting runs: off the async workers, on the blocking pool, at most
//! `COUNT_CONCURRENCY` jobs at once. Small jobs (a few KiB of text, tens of
//! microseconds) run inline: sending them to another thread would cost more
//! than counting, and it keeps them from queueing behind heavy ones.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Jobs with at most this many bytes of input run inline on the caller.
pub const INLINE_LIMIT: usize = 16 * 1024;

/// A failed counting job (it panicked, or the pool is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("counting job failed: {0}")]
pub struct JobError(String);

/// Bounded pool for CPU-heavy counting.
#[derive(Clone)]
pub struct CountPool {
    permits: Arc<Semaphore>,
    /// Jobs queued or running on the pool (inline jobs excluded).
    in_flight: Arc<AtomicI64>,
}

struct InFlight(Arc<AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl CountPool {
    pub fn new(concurrency: usize) -> Self {
        CountPool {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            in_flight: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Runs `job`, inline when `input_bytes` is small, else on the blocking
    /// pool once a permit is free. A panic inside `job` becomes an error;
    /// the worker and the process live on.
    pub async fn run<T, F>(&self, input_bytes: usize, job: F) -> Result<T, JobError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if input_bytes <= INLINE_LIMIT {
            return Ok(job());
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _guard = InFlight(self.in_flight.clone());
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| JobError(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| {
            JobError(if e.is_panic() {
                "panicked".into()
            } else {
                e.to_string()
            })
        })
    }

    /// Jobs queued or running on the blocking pool now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}
