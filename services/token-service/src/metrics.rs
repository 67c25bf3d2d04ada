//! What `/metrics` shows: the model metrics and the service's own series
//! from Redis (through the shared collector), plus gauges read at scrape
//! time (usage-stream backlog, counting jobs in flight, snapshot version,
//! this month's cost per namespace).

use aigw_metrics::families::token_service as f;
use aigw_metrics::{Exposition, NoLabels, Recorder, Render, ScrapeValues};
use std::time::Instant;

/// Every stored metric shown, as declared in
/// `aigw_metrics::families::token_service`.
pub static EXPOSITION: Exposition = Exposition {
    prefix: "token_service",
    renders: &[
        Render::of(&f::MODEL_REQUESTS),
        Render::of(&f::MODEL_DURATION),
        Render::of(&f::MODEL_TTFT),
        Render::of(&f::MODEL_TOKENS_IN),
        Render::of(&f::MODEL_TOKENS_OUT),
        Render::of(&f::MODEL_TOKENS_CACHE_READ),
        Render::of(&f::MODEL_TOKENS_CACHE_WRITE),
        Render::of(&f::MODEL_TOKENS_REASONING),
        Render::of(&f::MODEL_COST),
        Render::of(&f::MODEL_ERRORS),
        Render::of(&f::USAGE_PROCESSED),
        Render::of(&f::USAGE_COUNTED),
        Render::of(&f::USAGE_UNPRICED),
        Render::of(&f::USAGE_DUPLICATES),
        Render::of(&f::USAGE_MALFORMED),
        Render::of(&f::COUNT_REQUESTS),
        Render::of(&f::COUNT_LATENCY),
        Render::of(&f::COUNT_TOKENS),
        Render::of(&f::COUNT_BYTES),
    ],
};

/// What a counting-API request counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counted {
    /// `None` when the request failed before an encoding was chosen.
    pub encoding: Option<&'static str>,
    pub tokens: u64,
    /// Bytes of text counted.
    pub bytes: u64,
}

/// Accounts for one counting-API request exactly once, when dropped: with
/// the status it was answered with, or 499 when the client went away
/// before the answer (the handler's future was dropped).
pub struct CountGuard {
    rec: Recorder,
    endpoint: &'static str,
    started: Instant,
    status: u16,
    counted: Counted,
}

impl CountGuard {
    pub fn start(rec: &Recorder, endpoint: &'static str) -> CountGuard {
        CountGuard {
            rec: rec.clone(),
            endpoint,
            started: Instant::now(),
            status: 499,
            counted: Counted::default(),
        }
    }

    pub fn counted(&mut self, c: Counted) {
        self.counted = c;
    }

    pub fn answered(&mut self, status: u16) {
        self.status = status;
    }
}

impl Drop for CountGuard {
    fn drop(&mut self) {
        let status = self.status.to_string();
        let c = self.counted;
        let labels = f::CountRequest {
            endpoint: self.endpoint,
            encoding: c.encoding.unwrap_or("none"),
            status: &status,
        };
        f::COUNT_REQUESTS.add(&self.rec, &labels, 1);
        f::COUNT_LATENCY.observe(
            &self.rec,
            &f::Endpoint {
                endpoint: self.endpoint,
            },
            self.started.elapsed().as_micros() as u64,
        );
        if let Some(encoding) = c.encoding {
            let e = f::Encoding { encoding };
            f::COUNT_TOKENS.add(&self.rec, &e, c.tokens as i64);
            f::COUNT_BYTES.add(&self.rec, &e, c.bytes as i64);
        }
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
        v.set_fleet(&f::STREAM_PENDING, &NoLabels, n as f64);
    }
    if let Some(n) = g.stream_lag {
        v.set_fleet(&f::STREAM_LAG, &NoLabels, n as f64);
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
        v.set_fleet(&f::NS_MONTH_COST_USD, &f::Ns { namespace_code: ns }, *usd);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use aigw_metrics::RecorderConfig;

    fn requests(rec: &Recorder, endpoint: &str, encoding: &str, status: &str) -> i64 {
        let labels = f::CountRequest {
            endpoint,
            encoding,
            status,
        };
        f::COUNT_REQUESTS.series(rec, &labels).pending()
    }

    fn encoded(m: &'static aigw_metrics::Counter<f::Encoding<'static>>, rec: &Recorder) -> i64 {
        m.series(
            rec,
            &f::Encoding {
                encoding: "cl100k_base",
            },
        )
        .pending()
    }

    #[test]
    fn each_request_is_counted_once_also_when_the_client_leaves() {
        let rec = Recorder::new(RecorderConfig::for_service("t"));
        {
            // The handler's future dropped before an answer: the client left.
            let _g = CountGuard::start(&rec, "count");
        }
        {
            let mut g = CountGuard::start(&rec, "batch");
            g.counted(Counted {
                encoding: Some("cl100k_base"),
                tokens: 3,
                bytes: 11,
            });
            g.answered(200);
        }
        assert_eq!(requests(&rec, "count", "none", "499"), 1);
        assert_eq!(requests(&rec, "batch", "cl100k_base", "200"), 1);
        assert_eq!(encoded(&f::COUNT_TOKENS, &rec), 3);
        assert_eq!(encoded(&f::COUNT_BYTES, &rec), 11);
        // Two requests, two latency observations, nothing else.
        assert_eq!(rec.series_count(), 6);
    }
}
