//! The state every HTTP worker shares, built once at start.

use crate::pool::CountPool;
use crate::tokenize::Encoders;
use crate::usage::consumer::ConsumerStatus;
use aigw_metrics::{MetricsEndpoint, Recorder, RedisConn};
use aigw_snapshot::SnapshotCell;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct AppState {
    pub encoders: Arc<Encoders>,
    /// The config snapshot, kept current by the watcher.
    pub snapshot: SnapshotCell,
    pub pool: CountPool,
    pub recorder: Recorder,
    pub metrics: MetricsEndpoint,
    /// `/metrics`' token gate and render cache.
    pub scrape: aigw_service::ScrapeGate,
    pub redis: RedisConn,
    pub max_body_bytes: usize,
    pub consumer: Arc<ConsumerStatus>,
    pub shutting_down: Arc<AtomicBool>,
}
