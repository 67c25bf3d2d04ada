//! The clock: the one place that reads wall-clock time, so every service
//! stamps records, markers and months the same way.

use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 if the clock is before 1970).
#[allow(clippy::disallowed_methods)] // the one reader of the wall clock
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix time in whole seconds.
pub fn now_unix_s() -> i64 {
    now_ms().div_euclid(1000)
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on a process-local monotonic clock (never goes back; its
/// zero is the first call). For cooldowns and intervals, not for stamps.
pub fn monotonic_ms() -> u64 {
    EPOCH.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_and_monotonic() {
        // 2020-01-01T00:00:00Z: any machine running this is later.
        assert!(now_ms() > 1_577_836_800_000);
        assert_eq!(now_unix_s(), now_ms() / 1000);
        let a = monotonic_ms();
        assert!(monotonic_ms() >= a);
    }
}
