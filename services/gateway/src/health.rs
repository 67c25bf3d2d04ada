//! Instance health: passive detection from real traffic and active probes.
//!
//! Passive: `PASSIVE_FAILURE_THRESHOLD` consecutive failed attempts
//! (connection error, timeout, 5xx — not 429, which means "busy", not
//! "broken") make an instance unhealthy. After `PASSIVE_COOLDOWN` exactly one
//! request is let through as a trial: success makes it healthy again,
//! failure starts a new cool-down.
//!
//! Active: instances with a `health_check` in the snapshot are probed every
//! `interval_s` with `GET {base_url}{path}` and the instance key.
//! `HEALTH_CHECK_FAILURES` consecutive failed probes make the instance
//! unhealthy and keep it out (no trials) until a probe succeeds.
//!
//! Every transition is written to `metrics:instance:{id}:{namespace}` (1/0)
//! through the batched writer and shown as `ai_gateway_instance_healthy`.

use aigw_metrics::metric::kind::Set;
use aigw_metrics::Handle;
use aigw_service::clock::monotonic_ms;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Thresholds of passive and active detection.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    pub failure_threshold: u32,
    pub cooldown: Duration,
    pub probe_failures: u32,
}

/// Health and load of one instance; outlives config snapshots.
pub struct InstanceState {
    pub in_flight: AtomicU32,
    healthy: AtomicBool,
    failures: AtomicU32,
    /// When (see [`monotonic_ms`]) an unhealthy instance may get a trial request.
    trial_at_ms: AtomicU64,
    trial_running: AtomicBool,
    /// The last active probes failed: no trials until a probe succeeds.
    probe_down: AtomicBool,
    probe_failures: AtomicU32,
    pub(crate) next_probe_ms: AtomicU64,
    pub(crate) probing: AtomicBool,
    series: Handle<Set>,
    policy: HealthPolicy,
    label: String,
}

/// How an instance may be used by a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    /// Unhealthy but its cool-down is over: one request may try it.
    TrialDue,
    Unavailable,
}

impl InstanceState {
    pub fn new(series: Handle<Set>, policy: HealthPolicy, label: String) -> Self {
        // Written at once so the series exists from the instance's first
        // appearance.
        series.set(1);
        InstanceState {
            in_flight: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            trial_at_ms: AtomicU64::new(0),
            trial_running: AtomicBool::new(false),
            probe_down: AtomicBool::new(false),
            probe_failures: AtomicU32::new(0),
            next_probe_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            series,
            policy,
            label,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub fn availability(&self, now: u64) -> Availability {
        if self.healthy.load(Relaxed) {
            Availability::Healthy
        } else if !self.probe_down.load(Relaxed)
            && !self.trial_running.load(Relaxed)
            && now >= self.trial_at_ms.load(Relaxed)
        {
            Availability::TrialDue
        } else {
            Availability::Unavailable
        }
    }

    /// Claims the single trial request; false when another request won.
    pub fn begin_trial(&self) -> bool {
        self.trial_running
            .compare_exchange(false, true, Relaxed, Relaxed)
            .is_ok()
    }

    /// Releases a trial that ended without a verdict (e.g. the client left).
    pub fn abandon_trial(&self) {
        self.trial_running.store(false, Relaxed);
    }

    fn set_healthy(&self, reason: &'static str) {
        self.failures.store(0, Relaxed);
        self.trial_running.store(false, Relaxed);
        if !self.healthy.swap(true, Relaxed) {
            self.series.set(1);
            tracing::info!(instance = %self.label, reason, "instance healthy again");
        }
    }

    fn set_unhealthy(&self, reason: &'static str) {
        self.trial_at_ms.store(
            monotonic_ms() + self.policy.cooldown.as_millis() as u64,
            Relaxed,
        );
        self.trial_running.store(false, Relaxed);
        if self.healthy.swap(false, Relaxed) {
            self.series.set(0);
            tracing::warn!(instance = %self.label, reason, "instance marked unhealthy");
        }
    }

    /// A request attempt succeeded (any answer but 429/5xx).
    pub fn record_success(&self) {
        if self.healthy.load(Relaxed) {
            // Plain load first: the common case writes nothing shared.
            if self.failures.load(Relaxed) != 0 {
                self.failures.store(0, Relaxed);
            }
            return;
        }
        if !self.probe_down.load(Relaxed) {
            self.set_healthy("trial request succeeded");
        }
    }

    /// A request attempt failed (connect error, timeout, 5xx).
    pub fn record_failure(&self, trial: bool) {
        if trial || !self.healthy.load(Relaxed) {
            self.set_unhealthy("trial request failed");
            return;
        }
        let n = self.failures.fetch_add(1, Relaxed) + 1;
        if n >= self.policy.failure_threshold {
            self.set_unhealthy("consecutive request failures");
        }
    }

    /// Result of one active probe.
    pub fn record_probe(&self, ok: bool) {
        if ok {
            self.probe_failures.store(0, Relaxed);
            self.probe_down.store(false, Relaxed);
            if !self.healthy.load(Relaxed) {
                self.set_healthy("health check succeeded");
            }
        } else {
            let n = self.probe_failures.fetch_add(1, Relaxed) + 1;
            if n >= self.policy.probe_failures {
                self.probe_down.store(true, Relaxed);
                self.set_unhealthy("health check failed");
            }
        }
    }
}

/// Marks an attempt in flight on an instance; ends a trial nobody judged.
pub struct AttemptGuard {
    pub state: Arc<InstanceState>,
    pub trial: bool,
    judged: bool,
}

impl AttemptGuard {
    pub fn new(state: Arc<InstanceState>, trial: bool) -> Self {
        state.in_flight.fetch_add(1, Relaxed);
        AttemptGuard {
            state,
            trial,
            judged: false,
        }
    }

    pub fn success(&mut self) {
        self.judged = true;
        self.state.record_success();
    }

    pub fn failure(&mut self) {
        self.judged = true;
        self.state.record_failure(self.trial);
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Relaxed);
        if self.trial && !self.judged {
            self.state.abandon_trial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_metrics::families::gateway::{InstanceNs, INSTANCE_HEALTH};
    use aigw_metrics::{Recorder, RecorderConfig};

    fn state(threshold: u32, cooldown_ms: u64) -> InstanceState {
        let r = Recorder::new(RecorderConfig::for_service("t"));
        InstanceState::new(
            INSTANCE_HEALTH.series(
                &r,
                &InstanceNs {
                    instance_id: "i",
                    namespace_code: "ns",
                },
            ),
            HealthPolicy {
                failure_threshold: threshold,
                cooldown: Duration::from_millis(cooldown_ms),
                probe_failures: 2,
            },
            "i".into(),
        )
    }

    #[test]
    fn passive_threshold_cooldown_and_trial() {
        let s = state(2, 0);
        s.record_failure(false);
        assert!(s.is_healthy());
        s.record_success();
        s.record_failure(false);
        assert!(s.is_healthy(), "a success resets the count");
        s.record_failure(false);
        assert!(!s.is_healthy());
        assert_eq!(s.series.get(), 0);
        // Cool-down 0: a trial is due, and only one request gets it.
        assert_eq!(s.availability(monotonic_ms()), Availability::TrialDue);
        assert!(s.begin_trial());
        assert_eq!(s.availability(monotonic_ms()), Availability::Unavailable);
        assert!(!s.begin_trial());
        s.record_success();
        assert!(s.is_healthy());
        assert_eq!(s.series.get(), 1);
    }

    #[test]
    fn failed_trial_restarts_cooldown() {
        let s = state(1, 60_000);
        s.record_failure(false);
        assert_eq!(s.availability(monotonic_ms()), Availability::Unavailable);
        assert_eq!(
            s.availability(monotonic_ms() + 61_000),
            Availability::TrialDue
        );
    }

    #[test]
    fn abandoned_trial_is_released() {
        let s = Arc::new(state(1, 0));
        s.record_failure(false);
        assert!(s.begin_trial());
        drop(AttemptGuard::new(s.clone(), true));
        assert_eq!(s.availability(monotonic_ms()), Availability::TrialDue);
        assert_eq!(s.in_flight.load(Relaxed), 0);
    }

    #[test]
    fn probes_keep_instance_out_until_success() {
        let s = state(3, 0);
        s.record_probe(false);
        assert!(s.is_healthy(), "one failed probe is not enough");
        s.record_probe(false);
        assert!(!s.is_healthy());
        assert_eq!(
            s.availability(monotonic_ms() + 1_000_000),
            Availability::Unavailable
        );
        s.record_probe(true);
        assert!(s.is_healthy());
    }
}
