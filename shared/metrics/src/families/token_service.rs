//! Series written by the token-service: the model metrics (from the usage
//! stream, exactly once per usage record through [`crate::ops::OnceBatch`]),
//! the per-namespace monthly cost the gateway reads to enforce budgets, and
//! the service's own counters (through the batched [`crate::Recorder`]).
//!
//! | family | key | kind | unit |
//! |---|---|---|---|
//! | [`MODEL_REQUESTS`] | `metrics:model:{model}:{ns}:requests` | counter | requests |
//! | [`MODEL_ERRORS`] | `metrics:model:{model}:{ns}:errors` | counter | requests |
//! | [`MODEL_TOKENS_IN`] | `metrics:model:{model}:{ns}:tokens_in` | counter | tokens |
//! | [`MODEL_TOKENS_OUT`] | `metrics:model:{model}:{ns}:tokens_out` | counter | tokens |
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
//! Label values are bounded: `model` and `namespace_code` are names from the
//! config snapshot (anything else is recorded as `other`), `month` grows by
//! one per month, `encoding`, `endpoint`, `status` and `reason` are small
//! fixed sets.
//!
//! [`NS_MONTH_COST`] is the budget contract with the gateway: the month is the
//! UTC calendar month of the request's start time, and the value is the sum of
//! the per-record costs, each rounded half-up to whole nano-USD.

use crate::family::{Family, Kind, FAST_BUCKETS_US, LLM_LATENCY_BUCKETS_US};

const MODEL_NS: &[&str] = &["model", "namespace_code"];

pub static MODEL_REQUESTS: Family = Family {
    name: "model_requests",
    key: "metrics:model:{}:{}:requests",
    labels: MODEL_NS,
    kind: Kind::Counter,
};
/// Requests answered with status ≥ 400 or carrying an error kind.
pub static MODEL_ERRORS: Family = Family {
    name: "model_errors",
    key: "metrics:model:{}:{}:errors",
    labels: MODEL_NS,
    kind: Kind::Counter,
};
/// Prompt tokens.
pub static MODEL_TOKENS_IN: Family = Family {
    name: "model_tokens_in",
    key: "metrics:model:{}:{}:tokens_in",
    labels: MODEL_NS,
    kind: Kind::Counter,
};
/// Completion tokens.
pub static MODEL_TOKENS_OUT: Family = Family {
    name: "model_tokens_out",
    key: "metrics:model:{}:{}:tokens_out",
    labels: MODEL_NS,
    kind: Kind::Counter,
};
/// Cost in nano-USD (1e-9 USD).
pub static MODEL_COST: Family = Family {
    name: "model_cost_nusd",
    key: "metrics:model:{}:{}:cost_nusd",
    labels: MODEL_NS,
    kind: Kind::Counter,
};
/// Whole request duration, microseconds.
pub static MODEL_DURATION: Family = Family {
    name: "model_duration_us",
    key: "metrics:model:{}:{}:duration_us",
    labels: MODEL_NS,
    kind: Kind::Histogram(LLM_LATENCY_BUCKETS_US),
};
/// Time to first byte of the answer, microseconds.
pub static MODEL_TTFT: Family = Family {
    name: "model_ttft_us",
    key: "metrics:model:{}:{}:ttft_us",
    labels: MODEL_NS,
    kind: Kind::Histogram(LLM_LATENCY_BUCKETS_US),
};
/// Cost per namespace and UTC month (`YYYY-MM`), nano-USD: what the gateway
/// compares with a namespace's monthly budget.
pub static NS_MONTH_COST: Family = Family {
    name: "ns_month_cost_nusd",
    key: "metrics:cost:ns:{}:month:{}",
    labels: &["namespace_code", "month"],
    kind: Kind::Counter,
};

/// Usage records applied (each exactly once).
pub static USAGE_PROCESSED: Family = Family {
    name: "token_service_usage_records_processed",
    key: "metrics:token_service:usage_records_processed",
    labels: &[],
    kind: Kind::Counter,
};
/// Usage records whose tokens this service counted from their text.
pub static USAGE_COUNTED: Family = Family {
    name: "token_service_usage_records_counted",
    key: "metrics:token_service:usage_records_counted",
    labels: &[],
    kind: Kind::Counter,
};
/// Usage records priced at 0 because their model has no (complete) price.
pub static USAGE_UNPRICED: Family = Family {
    name: "token_service_usage_records_unpriced",
    key: "metrics:token_service:usage_records_unpriced:{}",
    labels: &["model"],
    kind: Kind::Counter,
};
/// Redelivered usage records that had been applied before (not counted again).
pub static USAGE_DUPLICATES: Family = Family {
    name: "token_service_usage_records_duplicate",
    key: "metrics:token_service:usage_records_duplicate",
    labels: &[],
    kind: Kind::Counter,
};
/// Stream entries or records that could not be read, by reason
/// (`entry`: no readable `records` field, `record`: an element that is not a
/// usage record); they are acknowledged and skipped.
pub static USAGE_MALFORMED: Family = Family {
    name: "token_service_usage_malformed",
    key: "metrics:token_service:usage_malformed:{}",
    labels: &["reason"],
    kind: Kind::Counter,
};

/// Counting-API requests by endpoint (`count`, `chat`, `batch`), encoding
/// (`none` when the request failed before one was chosen) and status code.
pub static COUNT_REQUESTS: Family = Family {
    name: "token_service_count_requests",
    key: "metrics:token_service:count_requests:{}:{}:{}",
    labels: &["endpoint", "encoding", "status"],
    kind: Kind::Counter,
};
/// Counting-API latency by endpoint, microseconds.
pub static COUNT_LATENCY: Family = Family {
    name: "token_service_count_latency_us",
    key: "metrics:token_service:count_latency_us:{}",
    labels: &["endpoint"],
    kind: Kind::Histogram(FAST_BUCKETS_US),
};
/// Tokens counted by the counting API, by encoding.
pub static COUNT_TOKENS: Family = Family {
    name: "token_service_count_tokens",
    key: "metrics:token_service:count_tokens:{}",
    labels: &["encoding"],
    kind: Kind::Counter,
};
/// Bytes of text counted by the counting API, by encoding.
pub static COUNT_BYTES: Family = Family {
    name: "token_service_count_bytes",
    key: "metrics:token_service:count_bytes:{}",
    labels: &["encoding"],
    kind: Kind::Counter,
};

pub static ALL: &[&Family] = &[
    &MODEL_REQUESTS,
    &MODEL_ERRORS,
    &MODEL_TOKENS_IN,
    &MODEL_TOKENS_OUT,
    &MODEL_COST,
    &MODEL_DURATION,
    &MODEL_TTFT,
    &NS_MONTH_COST,
    &USAGE_PROCESSED,
    &USAGE_COUNTED,
    &USAGE_UNPRICED,
    &USAGE_DUPLICATES,
    &USAGE_MALFORMED,
    &COUNT_REQUESTS,
    &COUNT_LATENCY,
    &COUNT_TOKENS,
    &COUNT_BYTES,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_key_is_the_documented_one() {
        assert_eq!(
            NS_MONTH_COST.key_for(&["team-a", "2025-11"]),
            "metrics:cost:ns:team-a:month:2025-11"
        );
        assert_eq!(
            MODEL_COST.key_for(&["gpt-4o", "team-a"]),
            "metrics:model:gpt-4o:team-a:cost_nusd"
        );
    }
}
