//! Series written by the gateway. The first eleven are the product
//! specification's keys, exactly.

use crate::family::{Family, Kind, LATENCY_BUCKETS_US};
use crate::metric::ScrapeGauge;

const NS: &[&str] = &["namespace_code"];

pub static GLOBAL_REQUESTS: Family = Family {
    name: "global_total_requests",
    key: "metrics:global:total_requests",
    labels: &[],
    kind: Kind::Counter,
};
pub static GLOBAL_ERRORS: Family = Family {
    name: "global_total_errors",
    key: "metrics:global:total_errors",
    labels: &[],
    kind: Kind::Counter,
};
/// Microseconds.
pub static GLOBAL_RESPONSE_TIME: Family = Family {
    name: "global_total_response_time",
    key: "metrics:global:total_response_time",
    labels: &[],
    kind: Kind::Counter,
};
/// Unix milliseconds.
pub static GLOBAL_LAST_REQUEST_TIME: Family = Family {
    name: "global_last_request_time",
    key: "metrics:global:last_request_time",
    labels: &[],
    kind: Kind::Max,
};
pub static NS_REQUESTS: Family = Family {
    name: "ns_total_requests",
    key: "metrics:ns:{}:total_requests",
    labels: NS,
    kind: Kind::Counter,
};
pub static NS_SUCCESSFUL: Family = Family {
    name: "ns_successful_requests",
    key: "metrics:ns:{}:successful_requests",
    labels: NS,
    kind: Kind::Counter,
};
pub static NS_FAILED: Family = Family {
    name: "ns_failed_requests",
    key: "metrics:ns:{}:failed_requests",
    labels: NS,
    kind: Kind::Counter,
};
/// Microseconds.
pub static NS_RESPONSE_TIME: Family = Family {
    name: "ns_total_response_time",
    key: "metrics:ns:{}:total_response_time",
    labels: NS,
    kind: Kind::Counter,
};
pub static NS_CONCURRENT: Family = Family {
    name: "ns_concurrent_requests",
    key: "metrics:ns:{}:concurrent_requests",
    labels: NS,
    kind: Kind::Gauge,
};
pub static NS_STATUS: Family = Family {
    name: "ns_status",
    key: "metrics:ns:{}:status:{}",
    labels: &["namespace_code", "status_code"],
    kind: Kind::Counter,
};
/// 1 healthy, 0 unhealthy.
pub static INSTANCE_HEALTH: Family = Family {
    name: "instance_health",
    key: "metrics:instance:{}:{}",
    labels: &["instance_id", "namespace_code"],
    kind: Kind::Set,
};

/// Response time per namespace, microseconds.
pub static NS_LATENCY: Family = Family {
    name: "ns_latency_us",
    key: "metrics:ns:{}:latency_us",
    labels: NS,
    kind: Kind::Histogram(LATENCY_BUCKETS_US),
};
/// Time to first byte of the answer per namespace, microseconds.
pub static NS_TTFT: Family = Family {
    name: "ns_ttft_us",
    key: "metrics:ns:{}:ttft_us",
    labels: NS,
    kind: Kind::Histogram(LATENCY_BUCKETS_US),
};
/// Retries on another instance, by namespace and reason.
pub static NS_RETRIES: Family = Family {
    name: "ns_retries",
    key: "metrics:ns:{}:retries:{}",
    labels: &["namespace_code", "reason"],
    kind: Kind::Counter,
};
/// Requests refused by a limit, by namespace and reason
/// (`concurrency`, `rpm`, `tpm`, `budget`).
pub static NS_REJECTIONS: Family = Family {
    name: "ns_rejections",
    key: "metrics:ns:{}:rejections:{}",
    labels: &["namespace_code", "reason"],
    kind: Kind::Counter,
};
/// Requests refused before a namespace was known, by reason
/// (`missing_key`, `invalid_key`, ...): brute-force attempts show here.
pub static AUTH_FAILURES: Family = Family {
    name: "gateway_auth_failures",
    key: "metrics:gateway:auth_failures:{}",
    labels: &["reason"],
    kind: Kind::Counter,
};
/// Usage records dropped because the in-memory queue was full while Redis was down.
pub static USAGE_DROPPED: Family = Family {
    name: "gateway_usage_records_dropped",
    key: "metrics:gateway:usage_records_dropped",
    labels: &[],
    kind: Kind::Counter,
};

pub static ALL: &[&Family] = &[
    &GLOBAL_REQUESTS,
    &GLOBAL_ERRORS,
    &GLOBAL_RESPONSE_TIME,
    &GLOBAL_LAST_REQUEST_TIME,
    &NS_REQUESTS,
    &NS_SUCCESSFUL,
    &NS_FAILED,
    &NS_RESPONSE_TIME,
    &NS_CONCURRENT,
    &NS_STATUS,
    &INSTANCE_HEALTH,
    &NS_LATENCY,
    &NS_TTFT,
    &NS_RETRIES,
    &NS_REJECTIONS,
    &AUTH_FAILURES,
    &USAGE_DROPPED,
];

crate::label_set! {
    /// A namespace, as named in the config snapshot.
    pub struct Namespace { namespace_code }
}

/// A namespace's monthly budget from the config snapshot, for the budget
/// alerts and panels (spend is the token-service's
/// `token_service_namespace_month_cost_usd`).
pub static NAMESPACE_BUDGET_USD: ScrapeGauge<Namespace<'static>> = ScrapeGauge::new(
    "ai_gateway_namespace_budget_usd",
    "Monthly budget per namespace from the config snapshot, USD.",
);
