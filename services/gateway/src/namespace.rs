//! Per-namespace state that outlives config snapshots: its metric handles,
//! the local in-flight count behind the concurrency limit and the slot that
//! holds it, the month-to-date cost read for the budget, and the labels of
//! the reasons a request was retried or refused before a namespace was known.

use crate::error::LimitReason;
use crate::lease::SlotPool;
use crate::quota::{Kind, Slice};
use aigw_metrics::families::gateway::{self as fam, Namespace, NsReason, NsStatus};
use aigw_metrics::metric::kind::{Counter, Gauge, Histogram};
use aigw_metrics::{Handle, Recorder};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

/// Why a request was retried on another instance (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    Connect,
    Timeout,
    Status429,
    Status5xx,
    /// The request was sent and its outcome is unknown; resent only to an
    /// instance that opted in, or with the client's `Idempotency-Key`.
    UnknownOutcome,
}

impl RetryReason {
    pub(crate) const ALL: [RetryReason; 5] = [
        RetryReason::Connect,
        RetryReason::Timeout,
        RetryReason::Status429,
        RetryReason::Status5xx,
        RetryReason::UnknownOutcome,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetryReason::Connect => "connect_error",
            RetryReason::Timeout => "timeout",
            RetryReason::Status429 => "status_429",
            RetryReason::Status5xx => "status_5xx",
            RetryReason::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// Why a request was refused before a namespace was known (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingKey,
    InvalidKey,
    RevokedKey,
    ExpiredKey,
}

impl AuthFailure {
    pub(crate) const ALL: [AuthFailure; 4] = [
        AuthFailure::MissingKey,
        AuthFailure::InvalidKey,
        AuthFailure::RevokedKey,
        AuthFailure::ExpiredKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::MissingKey => "missing_key",
            AuthFailure::InvalidKey => "invalid_key",
            AuthFailure::RevokedKey => "revoked_key",
            AuthFailure::ExpiredKey => "expired_key",
        }
    }
}

const STATUS_MIN: u16 = 100;
const STATUS_MAX: u16 = 599;

/// Per-namespace state that outlives config snapshots: metric handles (so
/// the hot path never formats a key), the local in-flight count used by the
/// concurrency limit, and the month-to-date cost read for the budget.
pub struct NamespaceRuntime {
    pub code: Arc<str>,
    pub(crate) recorder: Recorder,
    pub(crate) requests: Handle<Counter>,
    pub(crate) successful: Handle<Counter>,
    pub(crate) failed: Handle<Counter>,
    pub(crate) response_time: Handle<Counter>,
    pub(crate) concurrent: Handle<Gauge>,
    pub(crate) latency: Handle<Histogram>,
    pub(crate) ttft: Handle<Histogram>,
    pub(crate) status: Box<[OnceLock<Handle<Counter>>]>,
    pub(crate) rejections: [Handle<Counter>; 4],
    pub(crate) retries: [Handle<Counter>; 5],
    /// Requests of this namespace in flight in this replica.
    pub in_flight: AtomicU32,
    /// Month-to-date cost in nano-USD, as last read from the token-service's
    /// totals.
    pub spent_nano_usd: AtomicI64,
    /// This replica's slices of the RPM and TPM windows.
    pub(crate) rpm: Slice,
    pub(crate) tpm: Slice,
    /// Spare fleet-wide concurrency leases this replica holds.
    pub(crate) slots: Arc<SlotPool>,
}

impl NamespaceRuntime {
    pub fn new(recorder: &Recorder, code: &str) -> Self {
        let l = Namespace {
            namespace_code: code,
        };
        let reason = |reason| NsReason {
            namespace_code: code,
            reason,
        };
        NamespaceRuntime {
            code: Arc::from(code),
            recorder: recorder.clone(),
            requests: fam::NS_REQUESTS.series(recorder, &l),
            successful: fam::NS_SUCCESSFUL.series(recorder, &l),
            failed: fam::NS_FAILED.series(recorder, &l),
            response_time: fam::NS_RESPONSE_TIME.series(recorder, &l),
            concurrent: fam::NS_CONCURRENT.series(recorder, &l),
            latency: fam::NS_LATENCY.series(recorder, &l),
            ttft: fam::NS_TTFT.series(recorder, &l),
            status: (STATUS_MIN..=STATUS_MAX).map(|_| OnceLock::new()).collect(),
            rejections: LimitReason::ALL
                .map(|r| fam::NS_REJECTIONS.series(recorder, &reason(r.as_str()))),
            retries: RetryReason::ALL
                .map(|r| fam::NS_RETRIES.series(recorder, &reason(r.as_str()))),
            in_flight: AtomicU32::new(0),
            spent_nano_usd: AtomicI64::new(0),
            rpm: Slice::new(Kind::Requests),
            tpm: Slice::new(Kind::Tokens),
            slots: Arc::default(),
        }
    }

    /// The series of one status code, resolved on the first response with
    /// that code.
    pub(crate) fn status_series(&self, status: u16) -> &Handle<Counter> {
        let status = status.clamp(STATUS_MIN, STATUS_MAX);
        self.status[(status - STATUS_MIN) as usize].get_or_init(|| {
            fam::NS_STATUS.series(
                &self.recorder,
                &NsStatus {
                    namespace_code: &self.code,
                    status_code: &status.to_string(),
                },
            )
        })
    }
}

/// Holds a namespace's concurrency slot; released on drop.
pub struct ConcurrencySlot(pub Arc<NamespaceRuntime>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}
