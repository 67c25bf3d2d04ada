//! Waiting for the stack to reach a state, bounded.

use crate::stack::{Stack, FLUSH};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Polls `f` every 50 ms until it is true or `limit` passed; whether it became true.
pub async fn eventually<F, Fut>(limit: Duration, f: F) -> bool
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Stack {
    /// Waits (up to `limit`) until `read` returns `want`, then four more
    /// flush intervals so anything counted late or twice shows; returns the
    /// last value read, for the caller to compare and report.
    pub async fn settle<T, F, Fut>(&self, limit: Duration, want: &T, read: F) -> T
    where
        T: PartialEq,
        F: Fn() -> Fut,
        Fut: Future<Output = T>,
    {
        let deadline = Instant::now() + limit;
        loop {
            let got = read().await;
            if &got == want || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(FLUSH * 4).await;
        read().await
    }
}
