//! What `/metrics` shows: the model metrics and the service's own series
//! from Redis (through the shared collector), plus gauges read at scrape
//! time (usage-stream backlog, counting jobs in flight, snapshot version).

use aigw_metrics::families::token_service as f;
use aigw_metrics::prometheus_client::metrics::gauge::Gauge;
use aigw_metrics::prometheus_client::registry::Registry;
use aigw_metrics::{Exposition, Recorder, Render};

pub static EXPOSITION: Exposition = Exposition {
    prefix: "token_service",
    renders: &[
        Render::Counter {
            name: "model_requests_total",
            help: "Requests per model and namespace (from the gateway's usage records).",
            family: &f::MODEL_REQUESTS,
            scale: 1.0,
        },
        Render::Histogram {
            name: "model_request_duration_seconds",
            help: "Request duration per model and namespace.",
            family: &f::MODEL_DURATION,
            scale: 1e-6,
        },
        Render::Histogram {
            name: "model_time_to_first_token_seconds",
            help: "Time to the first byte of the answer per model and namespace.",
            family: &f::MODEL_TTFT,
            scale: 1e-6,
        },
        Render::Counter {
            name: "model_tokens_input_total",
            help: "Prompt tokens per model and namespace.",
            family: &f::MODEL_TOKENS_IN,
            scale: 1.0,
        },
        Render::Counter {
            name: "model_tokens_output_total",
            help: "Completion tokens per model and namespace.",
            family: &f::MODEL_TOKENS_OUT,
            scale: 1.0,
        },
        Render::Counter {
            name: "model_cost_usd_total",
            help: "Cost in USD per model and namespace (stored as integer nano-USD, each record rounded half-up).",
            family: &f::MODEL_COST,
            scale: 1e-9,
        },
        Render::Counter {
            name: "model_errors_total",
            help: "Failed requests (status >= 400 or an error kind) per model and namespace.",
            family: &f::MODEL_ERRORS,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_usage_records_processed_total",
            help: "Usage records applied to the model metrics (each exactly once).",
            family: &f::USAGE_PROCESSED,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_usage_records_counted_total",
            help: "Usage records whose tokens this service counted (the upstream reported none).",
            family: &f::USAGE_COUNTED,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_usage_records_unpriced_total",
            help: "Usage records priced 0 because their model has no (complete) price.",
            family: &f::USAGE_UNPRICED,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_usage_records_duplicate_total",
            help: "Redelivered usage records that had already been applied.",
            family: &f::USAGE_DUPLICATES,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_usage_malformed_total",
            help: "Unreadable usage-stream entries or records, acknowledged and skipped.",
            family: &f::USAGE_MALFORMED,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_count_requests_total",
            help: "Counting-API requests by endpoint, encoding and status.",
            family: &f::COUNT_REQUESTS,
            scale: 1.0,
        },
        Render::Histogram {
            name: "token_service_count_request_duration_seconds",
            help: "Counting-API latency by endpoint.",
            family: &f::COUNT_LATENCY,
            scale: 1e-6,
        },
        Render::Counter {
            name: "token_service_count_tokens_total",
            help: "Tokens counted by the counting API, by encoding.",
            family: &f::COUNT_TOKENS,
            scale: 1.0,
        },
        Render::Counter {
            name: "token_service_count_bytes_total",
            help: "Bytes of text counted by the counting API, by encoding.",
            family: &f::COUNT_BYTES,
            scale: 1.0,
        },
    ],
};

/// One counting-API request, as recorded.
pub struct CountObservation<'a> {
    pub endpoint: &'static str,
    /// `None` when the request failed before an encoding was chosen.
    pub encoding: Option<&'a str>,
    pub status: u16,
    pub latency_us: u64,
    pub tokens: u64,
    pub bytes: u64,
}

/// Records a counting-API request (in process; the flusher writes it).
pub fn record_count(rec: &Recorder, o: &CountObservation<'_>) {
    let encoding = o.encoding.unwrap_or("none");
    let status = o.status.to_string();
    rec.add(&f::COUNT_REQUESTS, &[o.endpoint, encoding, &status], 1);
    rec.observe(&f::COUNT_LATENCY, &[o.endpoint], o.latency_us);
    if let Some(e) = o.encoding {
        rec.add(&f::COUNT_TOKENS, &[e], o.tokens as i64);
        rec.add(&f::COUNT_BYTES, &[e], o.bytes as i64);
    }
}

/// Values read at scrape time.
#[derive(Debug, Default)]
pub struct ScrapeGauges {
    /// Entries delivered to a consumer and not yet acknowledged.
    pub stream_pending: Option<i64>,
    /// Entries not yet delivered to the group.
    pub stream_lag: Option<i64>,
    pub count_jobs_in_flight: i64,
    pub snapshot_version: Option<i64>,
    pub consumer_running: bool,
    /// Cost of the current UTC month per namespace of the snapshot, in USD
    /// (from `NS_MONTH_COST`); empty when Redis could not be read.
    pub month_cost_usd: Vec<(String, f64)>,
}

/// A registry holding the scrape-time gauges.
pub fn scrape_registry(g: &ScrapeGauges) -> Registry {
    let mut reg = Registry::default();
    let mut gauge = |name: &str, help: &str, v: i64| {
        let m = Gauge::<i64>::default();
        m.set(v);
        reg.register(name, help, m);
    };
    if let Some(v) = g.stream_pending {
        gauge(
            "token_service_usage_stream_pending",
            "Usage-stream entries delivered to a consumer and not yet acknowledged.",
            v,
        );
    }
    if let Some(v) = g.stream_lag {
        gauge(
            "token_service_usage_stream_lag",
            "Usage-stream entries not yet delivered to the consumer group.",
            v,
        );
    }
    gauge(
        "token_service_count_jobs_in_flight",
        "Counting jobs queued or running on the blocking pool.",
        g.count_jobs_in_flight,
    );
    gauge(
        "token_service_config_snapshot_version",
        "Version of the config snapshot in use (-1: none loaded).",
        g.snapshot_version.unwrap_or(-1),
    );
    gauge(
        "token_service_usage_consumer_running",
        "Whether this replica's usage consumer is reading the stream (1) or not (0).",
        i64::from(g.consumer_running),
    );
    if !g.month_cost_usd.is_empty() {
        let fam = aigw_metrics::prometheus_client::metrics::family::Family::<
            Vec<(&'static str, String)>,
            Gauge<f64, std::sync::atomic::AtomicU64>,
        >::default();
        for (ns, usd) in &g.month_cost_usd {
            fam.get_or_create(&vec![("namespace_code", ns.clone())])
                .set(*usd);
        }
        reg.register(
            "token_service_namespace_month_cost_usd",
            "Cost of the current UTC calendar month per namespace, USD (what monthly budgets are checked against).",
            fam,
        );
    }
    reg
}
