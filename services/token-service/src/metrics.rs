//! What `/metrics` shows: the model metrics and the service's own series
//! from Redis (through the shared collector), plus gauges read at scrape
//! time (usage-stream backlog, counting jobs in flight, snapshot version,
//! this month's cost per namespace).

use aigw_metrics::families::token_service as f;
use aigw_metrics::{Exposition, NoLabels, Recorder, ScrapeValues};

/// Every stored metric shown, as declared in
/// `aigw_metrics::families::token_service`.
pub static EXPOSITION: Exposition = Exposition {
    prefix: "token_service",
    renders: &[
        f::MODEL_REQUESTS.render(),
        f::MODEL_DURATION.render(),
        f::MODEL_TTFT.render(),
        f::MODEL_TOKENS_IN.render(),
        f::MODEL_TOKENS_OUT.render(),
        f::MODEL_COST.render(),
        f::MODEL_ERRORS.render(),
        f::USAGE_PROCESSED.render(),
        f::USAGE_COUNTED.render(),
        f::USAGE_UNPRICED.render(),
        f::USAGE_DUPLICATES.render(),
        f::USAGE_MALFORMED.render(),
        f::COUNT_REQUESTS.render(),
        f::COUNT_LATENCY.render(),
        f::COUNT_TOKENS.render(),
        f::COUNT_BYTES.render(),
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
    let status = o.status.to_string();
    let labels = f::CountRequest {
        endpoint: o.endpoint,
        encoding: o.encoding.unwrap_or("none"),
        status: &status,
    };
    f::COUNT_REQUESTS.add(rec, &labels, 1);
    f::COUNT_LATENCY.observe(
        rec,
        &f::Endpoint {
            endpoint: o.endpoint,
        },
        o.latency_us,
    );
    if let Some(encoding) = o.encoding {
        let e = f::Encoding { encoding };
        f::COUNT_TOKENS.add(rec, &e, o.tokens as i64);
        f::COUNT_BYTES.add(rec, &e, o.bytes as i64);
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

/// The scrape-time gauges, as declared in
/// `aigw_metrics::families::token_service`.
pub fn scrape_values(g: &ScrapeGauges) -> ScrapeValues {
    let mut v = ScrapeValues::new();
    if let Some(n) = g.stream_pending {
        v.set(&f::STREAM_PENDING, &NoLabels, n as f64);
    }
    if let Some(n) = g.stream_lag {
        v.set(&f::STREAM_LAG, &NoLabels, n as f64);
    }
    v.set(
        &f::COUNT_JOBS_IN_FLIGHT,
        &NoLabels,
        g.count_jobs_in_flight as f64,
    );
    v.set(
        &f::CONFIG_SNAPSHOT_VERSION,
        &NoLabels,
        g.snapshot_version.unwrap_or(-1) as f64,
    );
    v.set(
        &f::CONSUMER_RUNNING,
        &NoLabels,
        f64::from(u8::from(g.consumer_running)),
    );
    for (ns, usd) in &g.month_cost_usd {
        v.set(&f::NS_MONTH_COST_USD, &f::Ns { namespace_code: ns }, *usd);
    }
    v
}
