//! How metrics live in Redis, for every service of the gateway.
//!
//! - [`keys`] and [`families`]: the key schema (names, types, units).
//! - [`recorder`] and [`writer`]: the batched, exactly-once writer. Recording
//!   is an atomic add in process; a background flusher applies the deltas
//!   and queued usage records in one script call per interval.
//! - [`ops`]: the write scripts, also usable directly by stream consumers
//!   that need per-record idempotence ([`ops::OnceBatch`]).
//! - [`collector`]: the Redis-backed Prometheus exposition for `/metrics`.
//! - [`process`]: process-local metrics.
//! - [`conn`]: a lazily connecting Redis handle with bounded timeouts.
//!
//! Only this crate talks to prometheus-client; it is re-exported for
//! services that register local metrics.

pub mod collector;
pub mod conn;
pub mod families;
pub mod family;
pub mod keys;
pub mod ops;
pub mod process;
pub mod recorder;
pub mod writer;

pub use collector::{
    openmetrics_to_text, Exposition, MetricsEndpoint, Render, CONTENT_TYPE, CONTENT_TYPE_TEXT,
};
pub use conn::{RedisConn, RedisTimeouts};
pub use family::{Family, Kind, FAST_BUCKETS_US, LATENCY_BUCKETS_US};
pub use ops::{Heartbeat, HistDelta, OnceBatch, Ops};
pub use prometheus_client;
pub use recorder::{FlushOutcome, Recorder, RecorderConfig, Series};
pub use writer::spawn_flusher;
