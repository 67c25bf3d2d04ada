//! Metrics of the gateway. The first eleven Redis keys are the product
//! specification's keys, exactly; the `/metrics` names are the design
//! brief's `ai_gateway_*` names, which the dashboards and alert rules in
//! `monitoring/` query. Each is declared once here and written through the
//! batched recorder from handles the gateway resolves once per namespace or
//! instance.

use crate::family::LATENCY_BUCKETS_US;
use crate::metric::{
    Counter, Decl, Desc, Gauge, Histogram, MaxGauge, Mean, MeanDesc, NoLabels, ScrapeGauge,
    SetGauge, Unit,
};

crate::label_set! {
    /// A namespace, as named in the config snapshot.
    pub struct Namespace { namespace_code }
}

crate::label_set! {
    /// A namespace and an HTTP status code of its responses.
    pub struct NsStatus { namespace_code, status_code }
}

crate::label_set! {
    /// An upstream instance of a namespace.
    pub struct InstanceNs { instance_id, namespace_code }
}

crate::label_set! {
    /// A namespace and why something happened to one of its requests.
    pub struct NsReason { namespace_code, reason }
}

crate::label_set! {
    /// Why a request was refused before a namespace was known.
    pub struct Reason { reason }
}

// ----- the product specification's series -----------------------------------

pub static GLOBAL_REQUESTS: Counter<NoLabels> = Counter::new(Decl {
    id: "global_total_requests",
    key: "metrics:global:total_requests",
    name: "ai_gateway_requests_total",
    help: "All requests to the API endpoints.",
    unit: Unit::Count,
});

pub static GLOBAL_ERRORS: Counter<NoLabels> = Counter::new(Decl {
    id: "global_total_errors",
    key: "metrics:global:total_errors",
    name: "ai_gateway_errors_total",
    help: "Requests that failed (status >= 400 or upstream failure).",
    unit: Unit::Count,
});

/// The sum of all response times. `/metrics` shows it as the mean
/// [`GLOBAL_RESPONSE_TIME_MEAN`], not on its own.
pub static GLOBAL_RESPONSE_TIME: Counter<NoLabels> = Counter::new(Decl {
    id: "global_total_response_time",
    key: "metrics:global:total_response_time",
    name: "ai_gateway_total_response_time_seconds_total",
    help: "Sum of the response times of all requests.",
    unit: Unit::Micros,
});

pub static GLOBAL_LAST_REQUEST_TIME: MaxGauge<NoLabels> = MaxGauge::new(Decl {
    id: "global_last_request_time",
    key: "metrics:global:last_request_time",
    name: "ai_gateway_last_request_timestamp_seconds",
    help: "Unix time of the last request.",
    unit: Unit::UnixMillis,
});

pub static NS_REQUESTS: Counter<Namespace<'static>> = Counter::new(Decl {
    id: "ns_total_requests",
    key: "metrics:ns:{}:total_requests",
    name: "ai_gateway_namespace_requests_total",
    help: "Requests per namespace.",
    unit: Unit::Count,
});

pub static NS_SUCCESSFUL: Counter<Namespace<'static>> = Counter::new(Decl {
    id: "ns_successful_requests",
    key: "metrics:ns:{}:successful_requests",
    name: "ai_gateway_namespace_successful_requests_total",
    help: "Requests per namespace that succeeded (status < 400).",
    unit: Unit::Count,
});

pub static NS_FAILED: Counter<Namespace<'static>> = Counter::new(Decl {
    id: "ns_failed_requests",
    key: "metrics:ns:{}:failed_requests",
    name: "ai_gateway_namespace_failed_requests_total",
    help: "Requests per namespace that failed (status >= 400).",
    unit: Unit::Count,
});

/// The sum of a namespace's response times. `/metrics` shows it as the
/// mean [`NS_RESPONSE_TIME_MEAN`], not on its own.
pub static NS_RESPONSE_TIME: Counter<Namespace<'static>> = Counter::new(Decl {
    id: "ns_total_response_time",
    key: "metrics:ns:{}:total_response_time",
    name: "ai_gateway_namespace_total_response_time_seconds_total",
    help: "Sum of the response times per namespace.",
    unit: Unit::Micros,
});

/// Each replica writes its own value; the key holds the sum over live
/// replicas.
pub static NS_CONCURRENT: Gauge<Namespace<'static>> = Gauge::new(Decl {
    id: "ns_concurrent_requests",
    key: "metrics:ns:{}:concurrent_requests",
    name: "ai_gateway_namespace_concurrent_requests",
    help: "Requests per namespace in flight now, over all live gateway replicas.",
    unit: Unit::Count,
});

pub static NS_STATUS: Counter<NsStatus<'static>> = Counter::new(Decl {
    id: "ns_status",
    key: "metrics:ns:{}:status:{}",
    name: "ai_gateway_namespace_status_codes_total",
    help: "Responses per namespace and HTTP status code (499: client went away).",
    unit: Unit::Count,
});

/// 1 healthy, 0 unhealthy.
pub static INSTANCE_HEALTH: SetGauge<InstanceNs<'static>> = SetGauge::new(Decl {
    id: "instance_health",
    key: "metrics:instance:{}:{}",
    name: "ai_gateway_instance_healthy",
    help: "Instance health as seen by the gateway (1 healthy, 0 unhealthy).",
    unit: Unit::Count,
});

// ----- operator extras -------------------------------------------------------

pub static NS_LATENCY: Histogram<Namespace<'static>> = Histogram::new(
    Decl {
        id: "ns_latency_us",
        key: "metrics:ns:{}:latency_us",
        name: "ai_gateway_request_duration_seconds",
        help: "Request duration per namespace, to the last byte of the answer.",
        unit: Unit::Micros,
    },
    LATENCY_BUCKETS_US,
);

/// Time to the first byte of the upstream answer.
pub static NS_TTFT: Histogram<Namespace<'static>> = Histogram::new(
    Decl {
        id: "ns_ttft_us",
        key: "metrics:ns:{}:ttft_us",
        name: "ai_gateway_time_to_first_token_seconds",
        help: "Time to the first byte of the upstream answer per namespace.",
        unit: Unit::Micros,
    },
    LATENCY_BUCKETS_US,
);

/// Retries on another instance, by namespace and reason.
pub static NS_RETRIES: Counter<NsReason<'static>> = Counter::new(Decl {
    id: "ns_retries",
    key: "metrics:ns:{}:retries:{}",
    name: "ai_gateway_retries_total",
    help: "Requests retried on another instance, by namespace and reason.",
    unit: Unit::Count,
});

/// Requests refused by a limit, by namespace and reason (`concurrency`,
/// `rpm`, `tpm`, `budget`).
pub static NS_REJECTIONS: Counter<NsReason<'static>> = Counter::new(Decl {
    id: "ns_rejections",
    key: "metrics:ns:{}:rejections:{}",
    name: "ai_gateway_rejections_total",
    help: "Requests refused by a namespace limit, by reason.",
    unit: Unit::Count,
});

/// Requests refused before a namespace was known, by reason (`missing_key`,
/// `invalid_key`, ...): brute-force attempts show here.
pub static AUTH_FAILURES: Counter<Reason<'static>> = Counter::new(Decl {
    id: "gateway_auth_failures",
    key: "metrics:gateway:auth_failures:{}",
    name: "ai_gateway_auth_failures_total",
    help: "Requests refused before a namespace was known, by reason.",
    unit: Unit::Count,
});

/// Usage records dropped because the in-memory queue was full while Redis
/// was down.
pub static USAGE_DROPPED: Counter<NoLabels> = Counter::new(Decl {
    id: "gateway_usage_records_dropped",
    key: "metrics:gateway:usage_records_dropped",
    name: "ai_gateway_usage_records_dropped_total",
    help: "Usage records dropped because the in-memory queue was full.",
    unit: Unit::Count,
});

// ----- shown as means --------------------------------------------------------

pub static GLOBAL_RESPONSE_TIME_MEAN: Mean<NoLabels> = Mean::new(
    "ai_gateway_response_time_seconds",
    "Mean response time of all requests.",
    &GLOBAL_RESPONSE_TIME,
    &GLOBAL_REQUESTS,
);

pub static NS_RESPONSE_TIME_MEAN: Mean<Namespace<'static>> = Mean::new(
    "ai_gateway_namespace_response_time_seconds",
    "Mean response time per namespace.",
    &NS_RESPONSE_TIME,
    &NS_REQUESTS,
);

// ----- computed at scrape time -----------------------------------------------

/// A namespace's monthly budget from the config snapshot, for the budget
/// alerts and panels (spend is the token-service's
/// `token_service_namespace_month_cost_usd`).
pub static NAMESPACE_BUDGET_USD: ScrapeGauge<Namespace<'static>> = ScrapeGauge::new(
    "ai_gateway_namespace_budget_usd",
    "Monthly budget per namespace from the config snapshot, USD.",
);

/// Every stored metric of the gateway.
pub static ALL: &[&Desc] = &[
    GLOBAL_REQUESTS.desc(),
    GLOBAL_ERRORS.desc(),
    GLOBAL_RESPONSE_TIME.desc(),
    GLOBAL_LAST_REQUEST_TIME.desc(),
    NS_REQUESTS.desc(),
    NS_SUCCESSFUL.desc(),
    NS_FAILED.desc(),
    NS_RESPONSE_TIME.desc(),
    NS_CONCURRENT.desc(),
    NS_STATUS.desc(),
    INSTANCE_HEALTH.desc(),
    NS_LATENCY.desc(),
    NS_TTFT.desc(),
    NS_RETRIES.desc(),
    NS_REJECTIONS.desc(),
    AUTH_FAILURES.desc(),
    USAGE_DROPPED.desc(),
];

/// Every mean the gateway shows.
pub static MEANS: &[&MeanDesc] = &[
    GLOBAL_RESPONSE_TIME_MEAN.desc(),
    NS_RESPONSE_TIME_MEAN.desc(),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::Kind;

    /// The product specification's keys and the `/metrics` names, help and
    /// units that `monitoring/` and the gateway's users rely on: changing
    /// one is a breaking change, made here on purpose or not at all.
    #[test]
    fn keys_names_and_help_are_the_published_ones() {
        let got: Vec<_> = ALL
            .iter()
            .map(|d| {
                (
                    d.family.key,
                    d.family.labels,
                    d.name,
                    d.help,
                    d.unit.scale(),
                )
            })
            .collect();
        let ns: &[&str] = &["namespace_code"];
        let ns_reason: &[&str] = &["namespace_code", "reason"];
        let want: Vec<(&str, &[&str], &str, &str, f64)> = vec![
            (
                "metrics:global:total_requests",
                &[],
                "ai_gateway_requests_total",
                "All requests to the API endpoints.",
                1.0,
            ),
            (
                "metrics:global:total_errors",
                &[],
                "ai_gateway_errors_total",
                "Requests that failed (status >= 400 or upstream failure).",
                1.0,
            ),
            (
                "metrics:global:total_response_time",
                &[],
                "ai_gateway_total_response_time_seconds_total",
                "Sum of the response times of all requests.",
                1e-6,
            ),
            (
                "metrics:global:last_request_time",
                &[],
                "ai_gateway_last_request_timestamp_seconds",
                "Unix time of the last request.",
                1e-3,
            ),
            (
                "metrics:ns:{}:total_requests",
                ns,
                "ai_gateway_namespace_requests_total",
                "Requests per namespace.",
                1.0,
            ),
            (
                "metrics:ns:{}:successful_requests",
                ns,
                "ai_gateway_namespace_successful_requests_total",
                "Requests per namespace that succeeded (status < 400).",
                1.0,
            ),
            (
                "metrics:ns:{}:failed_requests",
                ns,
                "ai_gateway_namespace_failed_requests_total",
                "Requests per namespace that failed (status >= 400).",
                1.0,
            ),
            (
                "metrics:ns:{}:total_response_time",
                ns,
                "ai_gateway_namespace_total_response_time_seconds_total",
                "Sum of the response times per namespace.",
                1e-6,
            ),
            (
                "metrics:ns:{}:concurrent_requests",
                ns,
                "ai_gateway_namespace_concurrent_requests",
                "Requests per namespace in flight now, over all live gateway replicas.",
                1.0,
            ),
            (
                "metrics:ns:{}:status:{}",
                &["namespace_code", "status_code"],
                "ai_gateway_namespace_status_codes_total",
                "Responses per namespace and HTTP status code (499: client went away).",
                1.0,
            ),
            (
                "metrics:instance:{}:{}",
                &["instance_id", "namespace_code"],
                "ai_gateway_instance_healthy",
                "Instance health as seen by the gateway (1 healthy, 0 unhealthy).",
                1.0,
            ),
            (
                "metrics:ns:{}:latency_us",
                ns,
                "ai_gateway_request_duration_seconds",
                "Request duration per namespace, to the last byte of the answer.",
                1e-6,
            ),
            (
                "metrics:ns:{}:ttft_us",
                ns,
                "ai_gateway_time_to_first_token_seconds",
                "Time to the first byte of the upstream answer per namespace.",
                1e-6,
            ),
            (
                "metrics:ns:{}:retries:{}",
                ns_reason,
                "ai_gateway_retries_total",
                "Requests retried on another instance, by namespace and reason.",
                1.0,
            ),
            (
                "metrics:ns:{}:rejections:{}",
                ns_reason,
                "ai_gateway_rejections_total",
                "Requests refused by a namespace limit, by reason.",
                1.0,
            ),
            (
                "metrics:gateway:auth_failures:{}",
                &["reason"],
                "ai_gateway_auth_failures_total",
                "Requests refused before a namespace was known, by reason.",
                1.0,
            ),
            (
                "metrics:gateway:usage_records_dropped",
                &[],
                "ai_gateway_usage_records_dropped_total",
                "Usage records dropped because the in-memory queue was full.",
                1.0,
            ),
        ];
        assert_eq!(got, want);
        let means: Vec<_> = MEANS
            .iter()
            .map(|m| (m.name, m.help, m.sum.family.key, m.count.family.key))
            .collect();
        assert_eq!(
            means,
            vec![
                (
                    "ai_gateway_response_time_seconds",
                    "Mean response time of all requests.",
                    "metrics:global:total_response_time",
                    "metrics:global:total_requests"
                ),
                (
                    "ai_gateway_namespace_response_time_seconds",
                    "Mean response time per namespace.",
                    "metrics:ns:{}:total_response_time",
                    "metrics:ns:{}:total_requests"
                ),
            ]
        );
        // Kinds decide how Redis stores and merges a series.
        assert_eq!(GLOBAL_LAST_REQUEST_TIME.family().kind, Kind::Max);
        assert_eq!(NS_CONCURRENT.family().kind, Kind::Gauge);
        assert_eq!(INSTANCE_HEALTH.family().kind, Kind::Set);
        assert_eq!(
            NS_LATENCY.family().kind,
            Kind::Histogram(LATENCY_BUCKETS_US)
        );
    }
}
