//! The state every HTTP worker shares, built once at start.

use crate::publisher::Publisher;
use crate::storage::Store;
use aigw_metrics::{MetricsEndpoint, Recorder, RedisConn};
use std::time::Duration;

pub struct AppState {
    pub store: Store,
    pub publisher: Publisher,
    pub redis: RedisConn,
    pub recorder: Recorder,
    pub metrics: MetricsEndpoint,
    /// `/metrics`' token gate and render cache.
    pub scrape: aigw_service::ScrapeGate,
    pub admin_token_hash: [u8; 32],
    pub publish_wait: Duration,
    pub openapi_json: String,
    /// How long a console session lasts (`CONSOLE_SESSION_TTL`).
    pub console_session_ttl: Duration,
    /// The proxies whose `X-Forwarded-For` names a sign-in's client
    /// (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The overview's Prometheus (`PROMETHEUS_URL`), when set.
    pub prometheus: Option<crate::ui::prometheus::Prometheus>,
}
