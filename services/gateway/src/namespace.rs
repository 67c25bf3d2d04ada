//! Per-namespace state that outlives config snapshots: its metric handles,
//! the local in-flight count behind the concurrency limit and the slot that
//! holds it, the month-to-date cost read for the budget, and the labels of
//! the reasons a request was retried or refused before a namespace was known.

use crate::error::LimitReason;
use aigw_metrics::families::gateway as fam;
use aigw_metrics::{Recorder, Series};
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
    pub(crate) requests: Series,
    pub(crate) successful: Series,
    pub(crate) failed: Series,
    pub(crate) response_time: Series,
    pub(crate) concurrent: Series,
    pub(crate) latency: Series,
    pub(crate) ttft: Series,
    pub(crate) status: Box<[OnceLock<Series>]>,
    pub(crate) rejections: [Series; 4],
    pub(crate) retries: [Series; 5],
    /// Requests of this namespace in flight in this replica.
    pub in_flight: AtomicU32,
    /// Month-to-date cost in nano-USD, as last read from the token-service's
    /// totals.
    pub spent_nano_usd: AtomicI64,
}

impl NamespaceRuntime {
    pub fn new(recorder: &Recorder, code: &str) -> Self {
        let l = [code];
        NamespaceRuntime {
            code: Arc::from(code),
            recorder: recorder.clone(),
            requests: recorder.series(&fam::NS_REQUESTS, &l),
            successful: recorder.series(&fam::NS_SUCCESSFUL, &l),
            failed: recorder.series(&fam::NS_FAILED, &l),
            response_time: recorder.series(&fam::NS_RESPONSE_TIME, &l),
            concurrent: recorder.series(&fam::NS_CONCURRENT, &l),
            latency: recorder.series(&fam::NS_LATENCY, &l),
            ttft: recorder.series(&fam::NS_TTFT, &l),
            status: (STATUS_MIN..=STATUS_MAX).map(|_| OnceLock::new()).collect(),
            rejections: LimitReason::ALL
                .map(|r| recorder.series(&fam::NS_REJECTIONS, &[code, r.as_str()])),
            retries: RetryReason::ALL
                .map(|r| recorder.series(&fam::NS_RETRIES, &[code, r.as_str()])),
            in_flight: AtomicU32::new(0),
            spent_nano_usd: AtomicI64::new(0),
        }
    }

    pub(crate) fn status_series(&self, status: u16) -> Series {
        let status = status.clamp(STATUS_MIN, STATUS_MAX);
        self.status[(status - STATUS_MIN) as usize]
            .get_or_init(|| {
                self.recorder
                    .series(&fam::NS_STATUS, &[&self.code, &status.to_string()])
            })
            .clone()
    }

    pub fn count_rejection(&self, reason: LimitReason) {
        self.rejections[reason.index()].inc();
    }

    pub fn count_retry(&self, reason: RetryReason) {
        self.retries[reason as usize].inc();
    }
}

/// Holds a namespace's concurrency slot; released on drop.
pub struct ConcurrencySlot(pub Arc<NamespaceRuntime>);

impl Drop for ConcurrencySlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}
