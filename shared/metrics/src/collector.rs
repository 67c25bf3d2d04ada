//! The Redis-backed Prometheus collector: on each scrape it reads the series
//! named by the families' index sets in two pipelined round trips (index
//! sets and replica list, then every series and every heartbeat) — never
//! `KEYS`, never `SCAN` — and renders them through prometheus-client together
//! with process-local metrics. With Redis unreachable a scrape answers at
//! once with the local metrics and `{prefix}_redis_up 0`.

use crate::conn::RedisConn;
use crate::family::{bucket_field, Family, Kind};
use crate::keys;
use crate::metric::{Desc, LabelSet, Mean, MeanDesc, Metric, ScrapeGauge};
use crate::process::ProcessCollector;
use crate::recorder::Recorder;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Content type of [`MetricsEndpoint::render`]'s output (OpenMetrics).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Converts OpenMetrics text to the classic Prometheus text format (0.0.4):
/// counter families are named with their `_total` suffix, and `# EOF` and
/// `# UNIT` lines are dropped.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in om.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(om.len());
    for l in om.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = l.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        match renamed {
            Some(r) => out.push_str(&r),
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

/// How stored metrics are shown on `/metrics`, each as its declaration
/// says (name, help, unit): [`Render::of`] a stored metric, [`Render::mean`]
/// a mean of two stored counters.
#[derive(Debug)]
pub enum Render {
    /// A declared metric: counter, histogram, or gauge for every other kind
    /// (per-replica gauges: the sum over live replicas).
    Metric(&'static Desc),
    /// A gauge `sum / count` for series with equal labels; 0 when count is 0.
    Mean(&'static MeanDesc),
}

impl Render {
    /// A declared metric, shown as its declaration says: put this in a
    /// service's [`Exposition`].
    pub const fn of<L: LabelSet, K>(m: &'static Metric<L, K>) -> Render {
        Render::Metric(m.desc())
    }

    /// A declared mean.
    pub const fn mean<L: LabelSet>(m: &'static Mean<L>) -> Render {
        Render::Mean(m.desc())
    }

    fn families(&self) -> Vec<&'static Family> {
        match self {
            Render::Metric(d) => vec![&d.family],
            Render::Mean(m) => vec![&m.sum.family, &m.count.family],
        }
    }
}

/// What a service shows on `/metrics`.
#[derive(Debug)]
pub struct Exposition {
    /// Prefix of the service's own metrics, e.g. `ai_gateway`: gives
    /// `{prefix}_uptime_seconds`, `{prefix}_redis_up`, ….
    pub prefix: &'static str,
    pub renders: &'static [Render],
}

#[derive(Debug, Clone)]
enum Value {
    Counter(Num),
    Gauge(Num),
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<(f64, u64)>,
    },
}

/// Integral values render as integers (`5`, not `5.0`).
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(v: f64) -> Num {
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            Num::Int(v as i64)
        } else {
            Num::Float(v)
        }
    }
}

#[derive(Debug, Clone)]
struct Rendered {
    name: String,
    help: &'static str,
    series: Vec<(Vec<(String, String)>, Value)>,
}

/// Raw values read from Redis for one scrape.
#[derive(Debug, Default)]
struct Raw {
    /// key → string value (counters, max, set, summed gauges).
    strings: HashMap<String, Option<i64>>,
    /// key → hash (histograms, per-replica gauges).
    hashes: HashMap<String, HashMap<String, i64>>,
    /// index members per family name.
    members: HashMap<&'static str, Vec<String>>,
    live_replicas: HashSet<String>,
}

/// Renders a service's `/metrics`.
#[derive(Clone)]
pub struct MetricsEndpoint {
    inner: std::sync::Arc<EndpointInner>,
}

struct EndpointInner {
    redis: RedisConn,
    exposition: &'static Exposition,
    recorder: Option<Recorder>,
    /// When set, the fleet series are shown only while this replica holds
    /// the exporter lease (see [`crate::exporter`]).
    exporter: Option<std::sync::Arc<crate::exporter::ExporterLease>>,
    process: ProcessCollector,
    timeout: Duration,
    round_trips: std::sync::atomic::AtomicU64,
}

impl MetricsEndpoint {
    pub fn new(
        redis: RedisConn,
        exposition: &'static Exposition,
        recorder: Option<Recorder>,
    ) -> Self {
        Self::build_endpoint(redis, exposition, recorder, None)
    }

    /// An endpoint of one replica among several: the fleet series (Redis
    /// totals and fleet scrape gauges) only while `lease` is held.
    pub fn with_exporter(
        redis: RedisConn,
        exposition: &'static Exposition,
        recorder: Option<Recorder>,
        lease: std::sync::Arc<crate::exporter::ExporterLease>,
    ) -> Self {
        Self::build_endpoint(redis, exposition, recorder, Some(lease))
    }

    fn build_endpoint(
        redis: RedisConn,
        exposition: &'static Exposition,
        recorder: Option<Recorder>,
        exporter: Option<std::sync::Arc<crate::exporter::ExporterLease>>,
    ) -> Self {
        MetricsEndpoint {
            inner: std::sync::Arc::new(EndpointInner {
                redis,
                exposition,
                recorder,
                exporter,
                process: ProcessCollector::new(exposition.prefix),
                timeout: Duration::from_millis(1500),
                round_trips: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    /// Redis round trips made by scrapes so far (for tests of the bound).
    pub fn round_trips(&self) -> u64 {
        self.inner
            .round_trips
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The whole exposition text. `extra` registers service-local metrics.
    pub async fn render(&self, extra: Option<&Registry>) -> String {
        self.render_all(extra, None).await
    }

    /// The whole exposition text with the service's scrape-time gauges.
    pub async fn render_with(&self, values: &ScrapeValues) -> String {
        self.render_all(None, Some(values)).await
    }

    /// Whether this replica shows the fleet series now (always, without an
    /// exporter lease).
    pub fn is_exporter(&self) -> bool {
        self.inner.exporter.as_ref().is_none_or(|l| l.is_exporter())
    }

    async fn render_all(&self, extra: Option<&Registry>, values: Option<&ScrapeValues>) -> String {
        let started = Instant::now();
        let exporting = self.is_exporter();
        let (rendered, redis_up) = match &self.inner.exporter {
            // Not the exporter: no fleet series, and no Redis read for them.
            Some(lease) if !exporting => (Vec::new(), lease.redis_up()),
            _ => match tokio::time::timeout(self.inner.timeout, self.fetch()).await {
                Ok(Ok(raw)) => (self.build(&raw), true),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "metrics scrape: redis unreachable");
                    (Vec::new(), false)
                }
                Err(_) => (Vec::new(), false),
            },
        };
        let mut reg = Registry::default();
        reg.register_collector(Box::new(RedisSeries(rendered)));
        let prefix = self.inner.exposition.prefix;
        let mut local = LocalMetrics {
            gauges: vec![
                (
                    format!("{prefix}_redis_up"),
                    "Whether the last scrape could read Redis (1) or not (0).",
                    if redis_up { 1.0 } else { 0.0 },
                ),
                (
                    format!("{prefix}_scrape_duration_seconds"),
                    "Time spent reading Redis for this scrape.",
                    started.elapsed().as_secs_f64(),
                ),
            ],
            counters: Vec::new(),
        };
        if self.inner.exporter.is_some() {
            local.gauges.push((
                format!("{prefix}_metrics_exporter"),
                "Whether this replica shows the fleet series (1) or only its own process metrics (0).",
                if exporting { 1.0 } else { 0.0 },
            ));
        }
        if let Some(r) = &self.inner.recorder {
            let (ok, failed) = r.flush_stats();
            local.counters.push((
                format!("{prefix}_metrics_flushes_total"),
                "Metric flushes applied to Redis.",
                ok as f64,
            ));
            local.counters.push((
                format!("{prefix}_metrics_flush_failures_total"),
                "Metric flush attempts that failed (the deltas are kept and retried).",
                failed as f64,
            ));
            local.gauges.push((
                format!("{prefix}_metrics_queued_records"),
                "Usage records queued in memory, not yet written to Redis.",
                r.queued_records() as f64,
            ));
            local.counters.push((
                format!("{prefix}_metrics_dropped_records_total"),
                "Usage records dropped because the in-memory queue was full.",
                r.dropped_records() as f64,
            ));
        }
        reg.register_collector(Box::new(local));
        reg.register_collector(Box::new(self.inner.process.clone()));
        if let Some(v) = values {
            reg.register_collector(Box::new(RedisSeries(v.families.clone())));
            if exporting {
                reg.register_collector(Box::new(RedisSeries(v.fleet.clone())));
            }
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &reg).is_err() {
            out.clear();
        }
        if let Some(extra) = extra {
            let _ = prometheus_client::encoding::text::encode_registry(&mut out, extra);
        }
        prometheus_client::encoding::text::encode_eof(&mut out).ok();
        out
    }

    /// Renders in the format the scraper asked for: OpenMetrics when the
    /// `Accept` header names it (as Prometheus does), the classic text format
    /// otherwise. Returns the content type and the body.
    pub async fn render_negotiated(
        &self,
        accept: Option<&str>,
        extra: Option<&Registry>,
    ) -> (&'static str, String) {
        negotiated(accept, self.render(extra).await)
    }

    /// [`Self::render_negotiated`] with the service's scrape-time gauges.
    pub async fn render_negotiated_with(
        &self,
        accept: Option<&str>,
        values: &ScrapeValues,
    ) -> (&'static str, String) {
        negotiated(accept, self.render_with(values).await)
    }

    async fn fetch(&self) -> redis::RedisResult<Raw> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut conn = self.inner.redis.get().await?;
        let families: Vec<&'static Family> = self
            .inner
            .exposition
            .renders
            .iter()
            .flat_map(Render::families)
            .collect();
        // Round trip 1: index sets and replicas.
        let indexed: Vec<&'static Family> = families
            .iter()
            .copied()
            .filter(|f| f.is_indexed())
            .collect();
        let mut p = redis::pipe();
        for f in &indexed {
            p.smembers(keys::index(f.name));
        }
        p.smembers(keys::REPLICAS);
        self.inner.round_trips.fetch_add(1, Relaxed);
        let mut sets: Vec<Vec<String>> = p.query_async(&mut conn).await?;
        let replicas = sets.pop().unwrap_or_default();
        let mut raw = Raw::default();
        for (f, m) in indexed.iter().zip(sets) {
            raw.members.insert(f.name, m);
        }
        // Round trip 2: every series and every heartbeat.
        let mut p = redis::pipe();
        let mut plan: Vec<(String, bool)> = Vec::new();
        let mut seen = HashSet::new();
        for f in &families {
            let label_sets: Vec<Vec<&str>> = if f.is_indexed() {
                raw.members
                    .get(f.name)
                    .map(|ms| ms.iter().map(|m| Family::parse_member(m)).collect())
                    .unwrap_or_default()
            } else {
                vec![vec![]]
            };
            for labels in label_sets {
                if labels.len() != f.labels.len() {
                    continue;
                }
                let key = f.key_for(&labels);
                if !seen.insert(key.clone()) {
                    continue;
                }
                match f.kind {
                    Kind::Histogram(_) => {
                        p.hgetall(&key);
                        plan.push((key, true));
                    }
                    Kind::Gauge => {
                        p.hgetall(keys::gauge_replicas(&key));
                        plan.push((key, true));
                    }
                    _ => {
                        p.get(&key);
                        plan.push((key, false));
                    }
                }
            }
        }
        for r in &replicas {
            p.exists(keys::replica_heartbeat(r));
        }
        self.inner.round_trips.fetch_add(1, Relaxed);
        let values: Vec<redis::Value> = p.query_async(&mut conn).await?;
        let mut it = values.into_iter();
        for (key, is_hash) in plan {
            let v = it.next().unwrap_or(redis::Value::Nil);
            if is_hash {
                let h: HashMap<String, i64> = redis::from_redis_value(&v).unwrap_or_default();
                raw.hashes.insert(key, h);
            } else {
                let s: Option<i64> = redis::from_redis_value(&v).unwrap_or(None);
                raw.strings.insert(key, s);
            }
        }
        for r in replicas {
            let alive: bool = it
                .next()
                .map(|v| redis::from_redis_value(&v).unwrap_or(false))
                .unwrap_or(false);
            if alive {
                raw.live_replicas.insert(r);
            }
        }
        Ok(raw)
    }

    fn build(&self, raw: &Raw) -> Vec<Rendered> {
        self.inner
            .exposition
            .renders
            .iter()
            .map(|r| render_one(r, raw))
            .collect()
    }
}

fn negotiated(accept: Option<&str>, om: String) -> (&'static str, String) {
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (CONTENT_TYPE, om)
    } else {
        (CONTENT_TYPE_TEXT, openmetrics_to_text(&om))
    }
}

/// `v × scale`, dividing by the inverse for sub-unit scales so that e.g.
/// 25000 µs renders as `0.025`, not `0.024999999999999998`.
fn scaled(v: f64, scale: f64) -> f64 {
    if scale > 0.0 && scale < 1.0 {
        v / (1.0 / scale).round()
    } else {
        v * scale
    }
}

fn label_sets(f: &Family, raw: &Raw) -> Vec<Vec<String>> {
    if !f.is_indexed() {
        return vec![vec![]];
    }
    let mut v: Vec<Vec<String>> = raw
        .members
        .get(f.name)
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    Family::parse_member(m)
                        .into_iter()
                        .map(String::from)
                        .collect::<Vec<_>>()
                })
                .filter(|l| l.len() == f.labels.len())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn labelled(f: &Family, values: &[String]) -> Vec<(String, String)> {
    f.labels
        .iter()
        .zip(values)
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn scalar(f: &Family, values: &[String], raw: &Raw) -> f64 {
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let key = f.key_for(&refs);
    if f.kind == Kind::Gauge {
        return raw
            .hashes
            .get(&key)
            .map(|h| {
                h.iter()
                    .filter(|(r, _)| raw.live_replicas.contains(*r))
                    .map(|(_, v)| *v)
                    .sum::<i64>()
            })
            .unwrap_or(0) as f64;
    }
    raw.strings.get(&key).copied().flatten().unwrap_or(0) as f64
}

fn render_one(r: &Render, raw: &Raw) -> Rendered {
    match r {
        Render::Metric(d) => match d.family.kind {
            Kind::Counter => counter(d.name, d.help, &d.family, d.unit.scale(), raw),
            Kind::Histogram(_) => histogram(d.name, d.help, &d.family, d.unit.scale(), raw),
            Kind::Gauge | Kind::Set | Kind::Max => {
                gauge(d.name, d.help, &d.family, d.unit.scale(), raw)
            }
        },
        Render::Mean(m) => {
            let (sum, count) = (&m.sum.family, &m.count.family);
            Rendered {
                name: m.name.to_string(),
                help: m.help,
                series: label_sets(count, raw)
                    .into_iter()
                    .map(|l| {
                        let c = scalar(count, &l, raw);
                        let s = scalar(sum, &l, raw);
                        let v = if c > 0.0 {
                            scaled(s / c, m.sum.unit.scale())
                        } else {
                            0.0
                        };
                        (labelled(count, &l), Value::Gauge(Num::of(v)))
                    })
                    .collect(),
            }
        }
    }
}

fn counter(
    name: &'static str,
    help: &'static str,
    family: &Family,
    scale: f64,
    raw: &Raw,
) -> Rendered {
    scalars(
        name.trim_end_matches("_total"),
        help,
        family,
        scale,
        raw,
        Value::Counter,
    )
}

fn gauge(
    name: &'static str,
    help: &'static str,
    family: &Family,
    scale: f64,
    raw: &Raw,
) -> Rendered {
    scalars(name, help, family, scale, raw, Value::Gauge)
}

/// One value per series of `family`, × `scale`, as counters or gauges.
fn scalars(
    name: &str,
    help: &'static str,
    family: &Family,
    scale: f64,
    raw: &Raw,
    value: fn(Num) -> Value,
) -> Rendered {
    Rendered {
        name: name.to_string(),
        help,
        series: label_sets(family, raw)
            .into_iter()
            .map(|l| {
                let v = scaled(scalar(family, &l, raw), scale);
                (labelled(family, &l), value(Num::of(v)))
            })
            .collect(),
    }
}

fn histogram(
    name: &'static str,
    help: &'static str,
    family: &Family,
    scale: f64,
    raw: &Raw,
) -> Rendered {
    let Kind::Histogram(bounds) = family.kind else {
        return Rendered {
            name: name.to_string(),
            help,
            series: vec![],
        };
    };
    let series = label_sets(family, raw)
        .into_iter()
        .filter_map(|l| {
            let refs: Vec<&str> = l.iter().map(String::as_str).collect();
            let h = raw.hashes.get(&family.key_for(&refs))?;
            // prometheus-client makes the buckets cumulative itself and
            // names the bucket bounded by f64::MAX `+Inf`.
            let mut buckets = Vec::with_capacity(bounds.len() + 1);
            for b in bounds.iter() {
                let n = h.get(&bucket_field(Some(*b))).copied().unwrap_or(0).max(0) as u64;
                buckets.push((scaled(*b as f64, scale), n));
            }
            let inf = h.get(&bucket_field(None)).copied().unwrap_or(0).max(0) as u64;
            buckets.push((f64::MAX, inf));
            let count = h.get("count").copied().unwrap_or(0).max(0) as u64;
            let sum = scaled(h.get("sum").copied().unwrap_or(0) as f64, scale);
            Some((
                labelled(family, &l),
                Value::Histogram {
                    sum,
                    count,
                    buckets,
                },
            ))
        })
        .collect();
    Rendered {
        name: name.to_string(),
        help,
        series,
    }
}

/// Values of [`ScrapeGauge`]s for one scrape, shown after the stored
/// series. A gauge given no value is left out.
#[derive(Debug, Default)]
pub struct ScrapeValues {
    families: Vec<Rendered>,
    /// Fleet-wide values (read from Redis or the config), shown only by
    /// the replica that exports the fleet series.
    fleet: Vec<Rendered>,
}

impl ScrapeValues {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets one series of `gauge`, a value of this process.
    pub fn set<L: LabelSet>(
        &mut self,
        gauge: &'static ScrapeGauge<L>,
        labels: &L::Values<'_>,
        v: f64,
    ) {
        push_value(&mut self.families, gauge, labels, v);
    }

    /// Sets one series of `gauge`, a value of the whole fleet: shown by
    /// the exporting replica only (else a sum over replicas would count it
    /// once per replica).
    pub fn set_fleet<L: LabelSet>(
        &mut self,
        gauge: &'static ScrapeGauge<L>,
        labels: &L::Values<'_>,
        v: f64,
    ) {
        push_value(&mut self.fleet, gauge, labels, v);
    }
}

fn push_value<L: LabelSet>(
    families: &mut Vec<Rendered>,
    gauge: &'static ScrapeGauge<L>,
    labels: &L::Values<'_>,
    v: f64,
) {
    let labels: Vec<(String, String)> = L::NAMES
        .iter()
        .zip(L::values(labels).iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let fam = match families.iter().position(|f| f.name == gauge.name) {
        Some(i) => &mut families[i],
        None => {
            families.push(Rendered {
                name: gauge.name.to_string(),
                help: gauge.help,
                series: Vec::new(),
            });
            families.last_mut().expect("just pushed")
        }
    };
    fam.series.push((labels, Value::Gauge(Num::of(v))));
}

#[derive(Debug)]
struct RedisSeries(Vec<Rendered>);

impl Collector for RedisSeries {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_rendered(&self.0, encoder)
    }
}

fn encode_rendered(
    families: &[Rendered],
    mut encoder: DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    for fam in families {
        let Some((_, first)) = fam.series.first() else {
            continue;
        };
        let ty = match first {
            Value::Counter(_) => MetricType::Counter,
            Value::Gauge(_) => MetricType::Gauge,
            Value::Histogram { .. } => MetricType::Histogram,
        };
        let mut me = encoder.encode_descriptor(&fam.name, fam.help, None, ty)?;
        if let [(labels, v)] = fam.series.as_slice() {
            if labels.is_empty() {
                encode_value(v, me)?;
                continue;
            }
        }
        for (labels, v) in &fam.series {
            encode_value(v, me.encode_family(labels)?)?;
        }
    }
    Ok(())
}

fn encode_value(
    v: &Value,
    mut enc: prometheus_client::encoding::MetricEncoder<'_>,
) -> Result<(), std::fmt::Error> {
    match v {
        Value::Counter(Num::Int(x)) => ConstCounter::new(*x as u64).encode(enc),
        Value::Counter(Num::Float(x)) => ConstCounter::new(*x).encode(enc),
        Value::Gauge(Num::Int(x)) => ConstGauge::new(*x).encode(enc),
        Value::Gauge(Num::Float(x)) => ConstGauge::new(*x).encode(enc),
        Value::Histogram {
            sum,
            count,
            buckets,
        } => enc.encode_histogram::<Vec<(String, String)>>(*sum, *count, buckets, None),
    }
}

#[derive(Debug)]
struct LocalMetrics {
    gauges: Vec<(String, &'static str, f64)>,
    counters: Vec<(String, &'static str, f64)>,
}

impl Collector for LocalMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, v) in &self.gauges {
            let me = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            match Num::of(*v) {
                Num::Int(i) => ConstGauge::new(i).encode(me)?,
                Num::Float(f) => ConstGauge::new(f).encode(me)?,
            }
        }
        for (name, help, v) in &self.counters {
            let me = encoder.encode_descriptor(
                name.trim_end_matches("_total"),
                help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(*v as u64).encode(me)?;
        }
        Ok(())
    }
}
