//! What the gateway's `/metrics` shows: the design brief's `ai_gateway_*`
//! metrics and the operator extras, all rendered from Redis (so every replica
//! shows the fleet-wide values), plus the process metrics the shared
//! collector adds (`ai_gateway_uptime_seconds`, `ai_gateway_redis_up`, …).

use aigw_metrics::families::gateway as fam;
use aigw_metrics::{Exposition, Render};

/// Microseconds → seconds.
const US: f64 = 1e-6;

pub static EXPOSITION: Exposition = Exposition {
    prefix: "ai_gateway",
    renders: &[
        Render::Counter {
            name: "ai_gateway_requests_total",
            help: "All requests to the API endpoints.",
            family: &fam::GLOBAL_REQUESTS,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_errors_total",
            help: "Requests that failed (status >= 400 or upstream failure).",
            family: &fam::GLOBAL_ERRORS,
            scale: 1.0,
        },
        Render::Mean {
            name: "ai_gateway_response_time_seconds",
            help: "Mean response time of all requests.",
            sum: &fam::GLOBAL_RESPONSE_TIME,
            count: &fam::GLOBAL_REQUESTS,
            scale: US,
        },
        Render::Gauge {
            name: "ai_gateway_last_request_timestamp_seconds",
            help: "Unix time of the last request.",
            family: &fam::GLOBAL_LAST_REQUEST_TIME,
            scale: 1e-3,
        },
        Render::Counter {
            name: "ai_gateway_namespace_requests_total",
            help: "Requests per namespace.",
            family: &fam::NS_REQUESTS,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_namespace_successful_requests_total",
            help: "Requests per namespace that succeeded (status < 400).",
            family: &fam::NS_SUCCESSFUL,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_namespace_failed_requests_total",
            help: "Requests per namespace that failed (status >= 400).",
            family: &fam::NS_FAILED,
            scale: 1.0,
        },
        Render::Gauge {
            name: "ai_gateway_namespace_concurrent_requests",
            help: "Requests per namespace in flight now, over all live gateway replicas.",
            family: &fam::NS_CONCURRENT,
            scale: 1.0,
        },
        Render::Mean {
            name: "ai_gateway_namespace_response_time_seconds",
            help: "Mean response time per namespace.",
            sum: &fam::NS_RESPONSE_TIME,
            count: &fam::NS_REQUESTS,
            scale: US,
        },
        Render::Counter {
            name: "ai_gateway_namespace_status_codes_total",
            help: "Responses per namespace and HTTP status code (499: client went away).",
            family: &fam::NS_STATUS,
            scale: 1.0,
        },
        Render::Histogram {
            name: "ai_gateway_request_duration_seconds",
            help: "Request duration per namespace, to the last byte of the answer.",
            family: &fam::NS_LATENCY,
            scale: US,
        },
        Render::Histogram {
            name: "ai_gateway_time_to_first_token_seconds",
            help: "Time to the first byte of the upstream answer per namespace.",
            family: &fam::NS_TTFT,
            scale: US,
        },
        Render::Gauge {
            name: "ai_gateway_instance_healthy",
            help: "Instance health as seen by the gateway (1 healthy, 0 unhealthy).",
            family: &fam::INSTANCE_HEALTH,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_retries_total",
            help: "Requests retried on another instance, by namespace and reason.",
            family: &fam::NS_RETRIES,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_rejections_total",
            help: "Requests refused by a namespace limit, by reason.",
            family: &fam::NS_REJECTIONS,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_auth_failures_total",
            help: "Requests refused before a namespace was known, by reason.",
            family: &fam::AUTH_FAILURES,
            scale: 1.0,
        },
        Render::Counter {
            name: "ai_gateway_usage_records_dropped_total",
            help: "Usage records dropped because the in-memory queue was full.",
            family: &fam::USAGE_DROPPED,
            scale: 1.0,
        },
    ],
};
