//! The state every request handler shares, built once at start-up.

use crate::accounting::Accounting;
use crate::limits::Limiter;
use crate::routing::RoutingStore;
use crate::stream::RelayLimits;
use aigw_metrics::MetricsEndpoint;
use std::sync::Arc;
use std::time::Duration;

/// Shared state of the request handlers.
pub struct AppState {
    pub store: Arc<RoutingStore>,
    pub accounting: Arc<Accounting>,
    pub limiter: Limiter,
    pub metrics: MetricsEndpoint,
    pub max_body_bytes: usize,
    pub max_attempts: u32,
    pub total_timeout: Duration,
    /// Largest non-streamed upstream answer.
    pub max_response_bytes: usize,
    pub relay: RelayLimits,
    /// How long a stream's output may wait for its client.
    pub client_write_timeout: Duration,
}
