//! The run's report: JSON for scripts, a few lines for people.

use crate::hist::Summary;
use crate::procs::WatchReport;
use crate::run::{Mode, Outcome};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// From sending the request to the first complete event.
    pub first_event_ms: Summary,
    /// Between consecutive events of one response.
    pub gap_ms: Summary,
    pub events_min: u64,
    pub events_max: u64,
    pub events_mean: f64,
    /// 2xx streams that ended without `data: [DONE]`.
    pub incomplete: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `closed` or `open`.
    pub mode: &'static str,
    pub url: String,
    pub connections: usize,
    pub threads: usize,
    /// Open loop: the offered rate, requests/s.
    pub rate: Option<f64>,
    /// Requests the plan called for, when it fixes a number.
    pub planned_requests: Option<u64>,
    /// From the start of the load to the last answer.
    pub elapsed_s: f64,
    /// Complete responses, whatever their status.
    pub requests: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Non-2xx responses plus transport errors.
    pub errors: u64,
    /// Responses by status code.
    pub status: BTreeMap<String, u64>,
    /// Requests without a complete response: connect, timeout, closed, protocol, io.
    pub transport_errors: BTreeMap<String, u64>,
    /// Responses per second.
    pub rps: f64,
    /// Closed loop: from send to the last byte. Open loop: from the intended
    /// send time to the last byte.
    pub latency_ms: Summary,
    /// Open loop only: from the actual send to the last byte.
    pub service_ms: Option<Summary>,
    /// Open loop only: how late the pacer handed out send times (the load
    /// generator's own timer slack, included in `latency_ms`).
    pub dispatch_lag_ms: Option<Summary>,
    /// Open loop only: from hand-out to send (waiting for an idle
    /// connection, plus thread wake-up).
    pub pickup_lag_ms: Option<Summary>,
    /// From send to the first byte of the response head.
    pub ttfb_ms: Summary,
    pub stream: Option<StreamReport>,
    pub body_bytes: u64,
    /// TCP connections opened (reconnects included).
    pub connects: u64,
    /// CPU seconds the load generator itself used.
    pub loadgen_cpu_s: f64,
    pub watch: Vec<WatchReport>,
}

impl Report {
    pub fn new(
        url: &str,
        mode: &Mode,
        connections: usize,
        threads: usize,
        stream: bool,
        o: &Outcome,
    ) -> Report {
        let s = &o.stats;
        let transport: u64 = s.transport.values().sum();
        let (mode_name, rate, planned) = match mode {
            Mode::Closed { requests, .. } => ("closed", None, *requests),
            Mode::Open { rate, requests } => ("open", Some(*rate), Some(*requests)),
        };
        let secs = o.elapsed.as_secs_f64();
        Report {
            mode: mode_name,
            url: url.to_string(),
            connections,
            threads: threads.clamp(1, connections.max(1)),
            rate,
            planned_requests: planned,
            elapsed_s: secs,
            requests: s.responses,
            ok: s.ok,
            errors: (s.responses - s.ok) + transport,
            status: s.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            transport_errors: s
                .transport
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            rps: if secs > 0.0 {
                s.responses as f64 / secs
            } else {
                0.0
            },
            latency_ms: s.latency.summary_ms(),
            service_ms: rate.map(|_| s.service.summary_ms()),
            dispatch_lag_ms: rate.map(|_| s.dispatch_lag.summary_ms()),
            pickup_lag_ms: rate.map(|_| s.pickup_lag.summary_ms()),
            ttfb_ms: s.ttfb.summary_ms(),
            stream: stream.then(|| StreamReport {
                first_event_ms: s.first_event.summary_ms(),
                gap_ms: s.gaps.summary_ms(),
                events_min: s.events.min(),
                events_max: s.events.max(),
                events_mean: s.events.mean(),
                incomplete: s.incomplete_streams,
            }),
            body_bytes: s.body_bytes,
            connects: s.connects,
            loadgen_cpu_s: o.loadgen_cpu_s,
            watch: o.watch.clone(),
        }
    }

    /// A few lines a person can read at a glance.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let l = &self.latency_ms;
        let what = match self.rate {
            Some(r) => format!("open loop at {r} req/s"),
            None => "closed loop".into(),
        };
        let _ = writeln!(
            out,
            "{what}, {} connections, {} threads, {:.2} s: {} requests, {} errors, {:.1} req/s",
            self.connections, self.threads, self.elapsed_s, self.requests, self.errors, self.rps
        );
        let _ = writeln!(
            out,
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  (mean {:.3})",
            l.p50, l.p90, l.p99, l.max, l.mean
        );
        if let (Some(s), Some(d), Some(p)) =
            (&self.service_ms, &self.dispatch_lag_ms, &self.pickup_lag_ms)
        {
            let _ = writeln!(
                out,
                "  service ms (from actual send): p50 {:.3}  p99 {:.3}  max {:.3}; pacer lag p50 {:.3} p99 {:.3}; pickup p50 {:.3} p99 {:.3}",
                s.p50, s.p99, s.max, d.p50, d.p99, p.p50, p.p99
            );
        }
        if let Some(st) = &self.stream {
            let _ = writeln!(
                out,
                "  stream: first event ms p50 {:.3} p99 {:.3}; gap ms p50 {:.3} p99 {:.3} max {:.3}; events/response {}..{}; incomplete {}",
                st.first_event_ms.p50,
                st.first_event_ms.p99,
                st.gap_ms.p50,
                st.gap_ms.p99,
                st.gap_ms.max,
                st.events_min,
                st.events_max,
                st.incomplete
            );
        }
        let non_ok: Vec<String> = self
            .status
            .iter()
            .filter(|(k, _)| !k.starts_with('2'))
            .map(|(k, v)| format!("{k} x{v}"))
            .chain(
                self.transport_errors
                    .iter()
                    .map(|(k, v)| format!("{k} x{v}")),
            )
            .collect();
        if !non_ok.is_empty() {
            let _ = writeln!(out, "  errors: {}", non_ok.join(", "));
        }
        for w in &self.watch {
            let _ = writeln!(
                out,
                "  {}: {:.2} CPU s, {:.1} us/request ({:.1} user, {:.1} system), {:.2} cores; \
                 RSS {:.1} MiB (max {:.1})",
                w.name,
                w.cpu_s,
                w.cpu_us_per_request,
                w.user_us_per_request,
                w.system_us_per_request,
                w.cores_busy,
                w.rss_end_mib,
                w.rss_max_mib
            );
        }
        out
    }
}
