//! Metrics of the token-service: the model metrics (from the usage stream,
//! exactly once per usage record through [`crate::ops::OnceBatch`]), the
//! per-namespace monthly cost the gateway reads to enforce budgets, the
//! service's own counters (through the batched [`crate::Recorder`]), and the
//! gauges it computes at scrape time. Each is declared once here.
//!
//! | metric | key | kind | unit |
//! |---|---|---|---|
//! | [`MODEL_REQUESTS`] | `metrics:model:{model}:{ns}:requests` | counter | requests |
//! | [`MODEL_ERRORS`] | `metrics:model:{model}:{ns}:errors` | counter | requests |
//! | [`MODEL_TOKENS_IN`] | `metrics:model:{model}:{ns}:tokens_in` | counter | tokens |
//! | [`MODEL_TOKENS_OUT`] | `metrics:model:{model}:{ns}:tokens_out` | counter | tokens |
//! | [`MODEL_TOKENS_CACHE_READ`] | `metrics:model:{model}:{ns}:tokens_cache_read` | counter | tokens |
//! | [`MODEL_TOKENS_CACHE_WRITE`] | `metrics:model:{model}:{ns}:tokens_cache_write` | counter | tokens |
//! | [`MODEL_TOKENS_REASONING`] | `metrics:model:{model}:{ns}:tokens_reasoning` | counter | tokens |
//! | [`MODEL_COST`] | `metrics:model:{model}:{ns}:cost_nusd` | counter | nano-USD (1e-9 USD) |
//! | [`MODEL_DURATION`] | `metrics:model:{model}:{ns}:duration_us` | histogram | µs |
//! | [`MODEL_TTFT`] | `metrics:model:{model}:{ns}:ttft_us` | histogram | µs |
//! | [`NS_MONTH_COST`] | `metrics:cost:ns:{ns}:month:{YYYY-MM}` | counter | nano-USD |
//! | [`USAGE_PROCESSED`] | `metrics:token_service:usage_records_processed` | counter | records |
//! | [`USAGE_COUNTED`] | `metrics:token_service:usage_records_counted` | counter | records |
//! | [`USAGE_UNPRICED`] | `metrics:token_service:usage_records_unpriced:{model}` | counter | records |
//! | [`USAGE_DUPLICATES`] | `metrics:token_service:usage_records_duplicate` | counter | records |
//! | [`USAGE_MALFORMED`] | `metrics:token_service:usage_malformed:{reason}` | counter | entries or records |
//! | [`COUNT_REQUESTS`] | `metrics:token_service:count_requests:{endpoint}:{encoding}:{status}` | counter | requests |
//! | [`COUNT_LATENCY`] | `metrics:token_service:count_latency_us:{endpoint}` | histogram | µs |
//! | [`COUNT_TOKENS`] | `metrics:token_service:count_tokens:{encoding}` | counter | tokens |
//! | [`COUNT_BYTES`] | `metrics:token_service:count_bytes:{encoding}` | counter | bytes of text |
//!
//! The token breakdown: [`MODEL_TOKENS_IN`] counts every prompt token
//! (OpenAI's meaning); [`MODEL_TOKENS_CACHE_READ`] and
//! [`MODEL_TOKENS_CACHE_WRITE`] are parts of it (together at most it),
//! [`MODEL_TOKENS_REASONING`] is a part of [`MODEL_TOKENS_OUT`].
//!
//! Label values are bounded: `model` and `namespace_code` are names from the
//! config snapshot (anything else is recorded as `other`), `month` grows by
//! one per month, `encoding`, `endpoint`, `status` and `reason` are small
//! fixed sets.
//!
//! [`NS_MONTH_COST`] is the budget contract with the gateway: the month is
//! the UTC calendar month ([`aigw_types::BudgetMonth`]) of the request's
//! start time, and the value is the sum of the per-record costs, each
//! rounded half-up to whole nano-USD. It is not shown as such on
//! `/metrics` (its month label grows); [`NS_MONTH_COST_USD`] shows the
//! current month's.

use crate::family::{FAST_BUCKETS_US, LLM_LATENCY_BUCKETS_US};
use crate::metric::{Counter, Decl, Desc, Histogram, NoLabels, ScrapeGauge, Unit};

crate::label_set! {
    /// A model and a namespace, as named in the config snapshot.
    pub struct ModelNs { model, namespace_code }
}

crate::label_set! {
    /// A namespace and a UTC month (`YYYY-MM`).
    pub struct NsMonth { namespace_code, month }
}

crate::label_set! {
    /// A namespace.
    pub struct Ns { namespace_code }
}

crate::label_set! {
    /// A model.
    pub struct Model { model }
}

crate::label_set! {
    /// Why input was unreadable: `entry` or `record`.
    pub struct Reason { reason }
}

crate::label_set! {
    /// A counting-API request: endpoint (`count`, `chat`, `batch`),
    /// encoding (`none` when the request failed before one was chosen) and
    /// status code.
    pub struct CountRequest { endpoint, encoding, status }
}

crate::label_set! {
    /// A counting-API endpoint.
    pub struct Endpoint { endpoint }
}

crate::label_set! {
    /// An encoding.
    pub struct Encoding { encoding }
}

pub static MODEL_REQUESTS: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_requests",
    key: "metrics:model:{}:{}:requests",
    name: "model_requests_total",
    help: "Requests per model and namespace (from the gateway's usage records).",
    unit: Unit::Count,
});

/// Requests answered with status ≥ 400 or carrying an error kind.
pub static MODEL_ERRORS: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_errors",
    key: "metrics:model:{}:{}:errors",
    name: "model_errors_total",
    help: "Failed requests (status >= 400 or an error kind) per model and namespace.",
    unit: Unit::Count,
});

pub static MODEL_TOKENS_IN: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_tokens_in",
    key: "metrics:model:{}:{}:tokens_in",
    name: "model_tokens_input_total",
    help: "Prompt tokens per model and namespace.",
    unit: Unit::Count,
});

pub static MODEL_TOKENS_OUT: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_tokens_out",
    key: "metrics:model:{}:{}:tokens_out",
    name: "model_tokens_output_total",
    help: "Completion tokens per model and namespace.",
    unit: Unit::Count,
});

/// Of [`MODEL_TOKENS_IN`], those the upstream served from its prompt
/// cache.
pub static MODEL_TOKENS_CACHE_READ: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_tokens_cache_read",
    key: "metrics:model:{}:{}:tokens_cache_read",
    name: "model_tokens_cache_read_total",
    help: "Prompt tokens read from the upstream's prompt cache (a part of model_tokens_input_total) per model and namespace.",
    unit: Unit::Count,
});

/// Of [`MODEL_TOKENS_IN`], those the upstream wrote to its prompt cache.
pub static MODEL_TOKENS_CACHE_WRITE: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_tokens_cache_write",
    key: "metrics:model:{}:{}:tokens_cache_write",
    name: "model_tokens_cache_write_total",
    help: "Prompt tokens written to the upstream's prompt cache (a part of model_tokens_input_total) per model and namespace.",
    unit: Unit::Count,
});

/// Of [`MODEL_TOKENS_OUT`], those spent reasoning.
pub static MODEL_TOKENS_REASONING: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_tokens_reasoning",
    key: "metrics:model:{}:{}:tokens_reasoning",
    name: "model_tokens_reasoning_total",
    help: "Completion tokens spent reasoning (a part of model_tokens_output_total) per model and namespace.",
    unit: Unit::Count,
});

pub static MODEL_COST: Counter<ModelNs<'static>> = Counter::new(Decl {
    id: "model_cost_nusd",
    key: "metrics:model:{}:{}:cost_nusd",
    name: "model_cost_usd_total",
    help: "Cost in USD per model and namespace (stored as integer nano-USD, each record rounded half-up).",
    unit: Unit::NanoUsd,
});

pub static MODEL_DURATION: Histogram<ModelNs<'static>> = Histogram::new(
    Decl {
        id: "model_duration_us",
        key: "metrics:model:{}:{}:duration_us",
        name: "model_request_duration_seconds",
        help: "Request duration per model and namespace.",
        unit: Unit::Micros,
    },
    LLM_LATENCY_BUCKETS_US,
);

pub static MODEL_TTFT: Histogram<ModelNs<'static>> = Histogram::new(
    Decl {
        id: "model_ttft_us",
        key: "metrics:model:{}:{}:ttft_us",
        name: "model_time_to_first_token_seconds",
        help: "Time to the first byte of the answer per model and namespace.",
        unit: Unit::Micros,
    },
    LLM_LATENCY_BUCKETS_US,
);

/// What the gateway compares with a namespace's monthly budget.
pub static NS_MONTH_COST: Counter<NsMonth<'static>> = Counter::new(Decl {
    id: "ns_month_cost_nusd",
    key: "metrics:cost:ns:{}:month:{}",
    name: "namespace_month_cost_usd_total",
    help: "Cost per namespace and UTC month, USD (stored as integer nano-USD).",
    unit: Unit::NanoUsd,
});

pub static USAGE_PROCESSED: Counter<NoLabels> = Counter::new(Decl {
    id: "token_service_usage_records_processed",
    key: "metrics:token_service:usage_records_processed",
    name: "token_service_usage_records_processed_total",
    help: "Usage records applied to the model metrics (each exactly once).",
    unit: Unit::Count,
});

pub static USAGE_COUNTED: Counter<NoLabels> = Counter::new(Decl {
    id: "token_service_usage_records_counted",
    key: "metrics:token_service:usage_records_counted",
    name: "token_service_usage_records_counted_total",
    help: "Usage records whose tokens this service counted (the upstream reported none).",
    unit: Unit::Count,
});

pub static USAGE_UNPRICED: Counter<Model<'static>> = Counter::new(Decl {
    id: "token_service_usage_records_unpriced",
    key: "metrics:token_service:usage_records_unpriced:{}",
    name: "token_service_usage_records_unpriced_total",
    help: "Usage records priced 0 because their model has no (complete) price.",
    unit: Unit::Count,
});

pub static USAGE_DUPLICATES: Counter<NoLabels> = Counter::new(Decl {
    id: "token_service_usage_records_duplicate",
    key: "metrics:token_service:usage_records_duplicate",
    name: "token_service_usage_records_duplicate_total",
    help: "Redelivered usage records that had already been applied.",
    unit: Unit::Count,
});

/// `entry`: no readable `records` field; `record`: an element that is not
/// a usage record. Both are acknowledged and skipped.
pub static USAGE_MALFORMED: Counter<Reason<'static>> = Counter::new(Decl {
    id: "token_service_usage_malformed",
    key: "metrics:token_service:usage_malformed:{}",
    name: "token_service_usage_malformed_total",
    help: "Unreadable usage-stream entries or records, acknowledged and skipped.",
    unit: Unit::Count,
});

pub static COUNT_REQUESTS: Counter<CountRequest<'static>> = Counter::new(Decl {
    id: "token_service_count_requests",
    key: "metrics:token_service:count_requests:{}:{}:{}",
    name: "token_service_count_requests_total",
    help: "Counting-API requests by endpoint, encoding and status.",
    unit: Unit::Count,
});

pub static COUNT_LATENCY: Histogram<Endpoint<'static>> = Histogram::new(
    Decl {
        id: "token_service_count_latency_us",
        key: "metrics:token_service:count_latency_us:{}",
        name: "token_service_count_request_duration_seconds",
        help: "Counting-API latency by endpoint.",
        unit: Unit::Micros,
    },
    FAST_BUCKETS_US,
);

pub static COUNT_TOKENS: Counter<Encoding<'static>> = Counter::new(Decl {
    id: "token_service_count_tokens",
    key: "metrics:token_service:count_tokens:{}",
    name: "token_service_count_tokens_total",
    help: "Tokens counted by the counting API, by encoding.",
    unit: Unit::Count,
});

pub static COUNT_BYTES: Counter<Encoding<'static>> = Counter::new(Decl {
    id: "token_service_count_bytes",
    key: "metrics:token_service:count_bytes:{}",
    name: "token_service_count_bytes_total",
    help: "Bytes of text counted by the counting API, by encoding.",
    unit: Unit::Bytes,
});

// ----- computed at scrape time ---------------------------------------------

pub static STREAM_PENDING: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "token_service_usage_stream_pending",
    "Usage-stream entries delivered to a consumer and not yet acknowledged.",
);

pub static STREAM_LAG: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "token_service_usage_stream_lag",
    "Usage-stream entries not yet delivered to the consumer group.",
);

pub static COUNT_JOBS_IN_FLIGHT: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "token_service_count_jobs_in_flight",
    "Counting jobs queued or running on the blocking pool.",
);

pub static CONFIG_SNAPSHOT_VERSION: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "token_service_config_snapshot_version",
    "Version of the config snapshot in use (-1: none loaded).",
);

pub static CONSUMER_RUNNING: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "token_service_usage_consumer_running",
    "Whether this replica's usage consumer is reading the stream (1) or not (0).",
);

/// [`NS_MONTH_COST`] of the current month, per namespace of the snapshot.
pub static NS_MONTH_COST_USD: ScrapeGauge<Ns<'static>> = ScrapeGauge::new(
    "token_service_namespace_month_cost_usd",
    "Cost of the current UTC calendar month per namespace, USD (what monthly budgets are checked against).",
);

/// Every stored metric of the token-service.
pub static ALL: &[&Desc] = &[
    MODEL_REQUESTS.desc(),
    MODEL_ERRORS.desc(),
    MODEL_TOKENS_IN.desc(),
    MODEL_TOKENS_OUT.desc(),
    MODEL_TOKENS_CACHE_READ.desc(),
    MODEL_TOKENS_CACHE_WRITE.desc(),
    MODEL_TOKENS_REASONING.desc(),
    MODEL_COST.desc(),
    MODEL_DURATION.desc(),
    MODEL_TTFT.desc(),
    NS_MONTH_COST.desc(),
    USAGE_PROCESSED.desc(),
    USAGE_COUNTED.desc(),
    USAGE_UNPRICED.desc(),
    USAGE_DUPLICATES.desc(),
    USAGE_MALFORMED.desc(),
    COUNT_REQUESTS.desc(),
    COUNT_LATENCY.desc(),
    COUNT_TOKENS.desc(),
    COUNT_BYTES.desc(),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_key_is_the_documented_one() {
        assert_eq!(
            NS_MONTH_COST.key(&NsMonth {
                namespace_code: "team-a",
                month: "2025-11"
            }),
            "metrics:cost:ns:team-a:month:2025-11"
        );
        assert_eq!(
            crate::keys::ns_month_cost("team-a", "2025-11"),
            "metrics:cost:ns:team-a:month:2025-11"
        );
        assert_eq!(
            MODEL_COST.key(&ModelNs {
                model: "gpt-4o",
                namespace_code: "team-a"
            }),
            "metrics:model:gpt-4o:team-a:cost_nusd"
        );
    }
}
