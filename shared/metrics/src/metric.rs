//! Typed metric declarations. A metric is declared once — its Redis family
//! (key template, kind, unit of storage) and how `/metrics` shows it (name,
//! help, unit) — with a label struct naming its labels. The type system then
//! checks every use: a series is picked by a value of that struct (no
//! positional `&[&str]` that could be one label short), and only the
//! operations of its kind exist (no `observe` on a counter).
//!
//! ```
//! use aigw_metrics::metric::{Counter, Decl, Unit};
//! aigw_metrics::label_set! {
//!     /// Model and namespace.
//!     pub struct ModelNs { model, namespace_code }
//! }
//! pub static REQUESTS: Counter<ModelNs<'static>> = Counter::new(Decl {
//!     id: "doc_model_requests",
//!     key: "metrics:doc:{}:{}:requests",
//!     name: "doc_model_requests_total",
//!     help: "Requests per model and namespace.",
//!     unit: Unit::Count,
//! });
//! let rec = aigw_metrics::Recorder::new(aigw_metrics::RecorderConfig::for_service("doc"));
//! REQUESTS.add(&rec, &ModelNs { model: "gpt-4o", namespace_code: "team-a" }, 1);
//! assert_eq!(
//!     REQUESTS.key(&ModelNs { model: "gpt-4o", namespace_code: "team-a" }),
//!     "metrics:doc:gpt-4o:team-a:requests"
//! );
//! ```
//!
//! Declarations are `static`s whose constructors are `const fn`: a key
//! template whose placeholders do not match the label struct, a key outside
//! `metrics:`, or a counter name without `_total` fails the build:
//!
//! ```compile_fail
//! use aigw_metrics::metric::{Counter, Decl, Unit};
//! aigw_metrics::label_set! { pub struct Ns { namespace_code } }
//! // Two placeholders, one label: rejected at compile time.
//! pub static BAD: Counter<Ns<'static>> = Counter::new(Decl {
//!     id: "bad", key: "metrics:bad:{}:{}", name: "bad_total", help: "", unit: Unit::Count,
//! });
//! ```
//!
//! and so does a series picked with another metric's labels, or an
//! operation of another kind:
//!
//! ```compile_fail
//! use aigw_metrics::metric::{Counter, Decl, Unit};
//! aigw_metrics::label_set! { pub struct Ns { namespace_code } }
//! aigw_metrics::label_set! { pub struct Model { model } }
//! pub static REQS: Counter<Ns<'static>> = Counter::new(Decl {
//!     id: "reqs", key: "metrics:reqs:{}", name: "reqs_total", help: "", unit: Unit::Count,
//! });
//! let rec = aigw_metrics::Recorder::new(aigw_metrics::RecorderConfig::for_service("doc"));
//! REQS.add(&rec, &Model { model: "m" }, 1);
//! ```
//!
//! ```compile_fail
//! use aigw_metrics::metric::{Counter, Decl, Unit};
//! aigw_metrics::label_set! { pub struct Ns { namespace_code } }
//! pub static REQS: Counter<Ns<'static>> = Counter::new(Decl {
//!     id: "reqs", key: "metrics:reqs:{}", name: "reqs_total", help: "", unit: Unit::Count,
//! });
//! let rec = aigw_metrics::Recorder::new(aigw_metrics::RecorderConfig::for_service("doc"));
//! REQS.observe(&rec, &Ns { namespace_code: "a" }, 1);
//! ```
//!
//! A mean is declared from two counters with the same labels; counters with
//! different labels do not make one:
//!
//! ```compile_fail
//! use aigw_metrics::metric::{Counter, Decl, Mean, Unit};
//! aigw_metrics::label_set! { pub struct Ns { namespace_code } }
//! aigw_metrics::label_set! { pub struct Model { model } }
//! pub static TIME: Counter<Ns<'static>> = Counter::new(Decl {
//!     id: "t", key: "metrics:t:{}", name: "t_seconds_total", help: "", unit: Unit::Micros,
//! });
//! pub static REQS: Counter<Model<'static>> = Counter::new(Decl {
//!     id: "r", key: "metrics:r:{}", name: "r_total", help: "", unit: Unit::Count,
//! });
//! pub static MEAN: Mean<Ns<'static>> = Mean::new("t_mean_seconds", "", &TIME, &REQS);
//! ```

use crate::family::{Family, Kind};
use std::marker::PhantomData;

/// Most labels a metric may have.
pub const MAX_LABELS: usize = 4;

/// The label values of one series, in the order of [`LabelSet::NAMES`].
#[derive(Debug, Clone, Copy)]
pub struct LabelValues<'a> {
    values: [&'a str; MAX_LABELS],
    len: usize,
}

impl<'a> LabelValues<'a> {
    /// `values` must hold at most [`MAX_LABELS`] values.
    pub fn new(values: &[&'a str]) -> LabelValues<'a> {
        let mut out = LabelValues {
            values: [""; MAX_LABELS],
            len: values.len().min(MAX_LABELS),
        };
        out.values[..out.len].copy_from_slice(&values[..out.len]);
        out
    }
}

impl<'a> std::ops::Deref for LabelValues<'a> {
    type Target = [&'a str];
    fn deref(&self) -> &[&'a str] {
        &self.values[..self.len]
    }
}

/// The labels of a metric: a struct of `&str` fields, one per label,
/// usually made with [`label_set!`](crate::label_set). Implemented for the
/// struct at `'static`; [`LabelSet::Values`] is the same struct at any
/// lifetime, so series are picked with borrowed strings.
pub trait LabelSet: 'static {
    /// Label names, in the order of the key template's placeholders.
    const NAMES: &'static [&'static str];
    /// One series' label values.
    type Values<'a>;
    fn values<'a>(v: &'a Self::Values<'_>) -> LabelValues<'a>;
}

/// A metric without labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoLabels;

impl LabelSet for NoLabels {
    const NAMES: &'static [&'static str] = &[];
    type Values<'a> = NoLabels;
    fn values<'a>(_: &'a NoLabels) -> LabelValues<'a> {
        LabelValues::new(&[])
    }
}

/// Declares a label struct: `label_set! { pub struct ModelNs { model,
/// namespace_code } }` makes `ModelNs<'a>` with one `&'a str` field per
/// label (the field name is the label name) and its [`LabelSet`].
#[macro_export]
macro_rules! label_set {
    ($(#[$m:meta])* $vis:vis struct $name:ident { $($(#[$fm:meta])* $field:ident),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis struct $name<'a> {
            $($(#[$fm])* pub $field: &'a str,)+
        }
        impl $crate::metric::LabelSet for $name<'static> {
            const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];
            type Values<'a> = $name<'a>;
            fn values<'a>(v: &'a $name<'_>) -> $crate::metric::LabelValues<'a> {
                $crate::metric::LabelValues::new(&[$(v.$field),+])
            }
        }
    };
}

/// What a stored value measures, and so how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of things (requests, records, tokens, entities).
    Count,
    /// Bytes.
    Bytes,
    /// Stored as integer microseconds, shown in seconds.
    Micros,
    /// A unix time stored in milliseconds, shown in seconds.
    UnixMillis,
    /// Money stored as integer nano-USD (1e-9 USD), shown in USD.
    NanoUsd,
    /// A version number.
    Version,
}

impl Unit {
    /// Factor from the stored integer to the shown value.
    pub const fn scale(self) -> f64 {
        match self {
            Unit::Micros => 1e-6,
            Unit::UnixMillis => 1e-3,
            Unit::NanoUsd => 1e-9,
            Unit::Count | Unit::Bytes | Unit::Version => 1.0,
        }
    }

    /// The suffix the shown name must end with (before `_total`).
    const fn suffix(self) -> &'static str {
        match self {
            Unit::Micros | Unit::UnixMillis => "_seconds",
            Unit::NanoUsd => "_usd",
            Unit::Bytes => "_bytes",
            Unit::Count | Unit::Version => "",
        }
    }
}

/// The declaration of one metric.
#[derive(Debug, Clone, Copy)]
pub struct Decl {
    /// Stable id of the family in Redis: names its index set
    /// (`metrics:index:{id}`), so it never changes once data exists.
    pub id: &'static str,
    /// Redis key template; each `{}` takes the next label value.
    pub key: &'static str,
    /// Name on `/metrics`; counters end in `_total`.
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Unit,
}

/// A metric without its types: everything the collector needs to read and
/// show it.
#[derive(Debug)]
pub struct Desc {
    pub family: Family,
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Unit,
}

/// The kinds of metric, as types (see [`Kind`] for their semantics).
pub mod kind {
    /// An integer counter.
    #[derive(Debug)]
    pub enum Counter {}
    /// A per-replica gauge summed over live replicas.
    #[derive(Debug)]
    pub enum Gauge {}
    /// Last writer wins.
    #[derive(Debug)]
    pub enum Set {}
    /// The largest value seen.
    #[derive(Debug)]
    pub enum Max {}
    /// A histogram with fixed bounds.
    #[derive(Debug)]
    pub enum Histogram {}
}

/// A declared metric with labels `L` and kind `K`.
#[derive(Debug)]
pub struct Metric<L, K> {
    desc: Desc,
    _types: PhantomData<fn(&L) -> K>,
}

pub type Counter<L> = Metric<L, kind::Counter>;
pub type Gauge<L> = Metric<L, kind::Gauge>;
pub type SetGauge<L> = Metric<L, kind::Set>;
pub type MaxGauge<L> = Metric<L, kind::Max>;
pub type Histogram<L> = Metric<L, kind::Histogram>;

const fn count_placeholders(s: &str) -> usize {
    let b = s.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'}' {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn ends_with(s: &str, suffix: &str) -> bool {
    let (s, x) = (s.as_bytes(), suffix.as_bytes());
    if x.len() > s.len() {
        return false;
    }
    let mut i = 0;
    while i < x.len() {
        if s[s.len() - x.len() + i] != x[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn starts_with(s: &str, prefix: &str) -> bool {
    let (s, p) = (s.as_bytes(), prefix.as_bytes());
    if p.len() > s.len() {
        return false;
    }
    let mut i = 0;
    while i < p.len() {
        if s[i] != p[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `name` without a trailing `_total`.
const fn ends_with_unit(name: &str, unit: Unit, counter: bool) -> bool {
    let suffix = unit.suffix();
    if !counter {
        return ends_with(name, suffix);
    }
    // `{base}{suffix}_total`: compare the part before `_total`.
    let b = name.as_bytes();
    if b.len() < 6 {
        return false;
    }
    let (head, _) = b.split_at(b.len() - 6);
    match std::str::from_utf8(head) {
        Ok(h) => ends_with(h, suffix),
        Err(_) => false,
    }
}

impl<L: LabelSet, K> Metric<L, K> {
    const fn declare(d: Decl, kind: Kind) -> Self {
        assert!(
            count_placeholders(d.key) == L::NAMES.len(),
            "a metric's key template needs one {{}} per label"
        );
        assert!(L::NAMES.len() <= MAX_LABELS, "too many labels");
        assert!(
            starts_with(d.key, "metrics:"),
            "metric keys live under metrics:"
        );
        let counter = matches!(kind, Kind::Counter);
        assert!(
            ends_with(d.name, "_total") == counter,
            "counter names end in _total, other names do not"
        );
        assert!(
            ends_with_unit(d.name, d.unit, counter),
            "the shown name ends with its unit (_seconds, _usd, _bytes)"
        );
        Metric {
            desc: Desc {
                family: Family {
                    name: d.id,
                    key: d.key,
                    labels: L::NAMES,
                    kind,
                },
                name: d.name,
                help: d.help,
                unit: d.unit,
            },
            _types: PhantomData,
        }
    }

    /// Everything about the metric but its types.
    pub const fn desc(&self) -> &Desc {
        &self.desc
    }

    /// Its Redis family.
    pub const fn family(&self) -> &Family {
        &self.desc.family
    }

    /// The Redis key of one series.
    pub fn key(&self, labels: &L::Values<'_>) -> String {
        self.desc.family.key_for(&L::values(labels))
    }
}

impl<L: LabelSet> Counter<L> {
    pub const fn new(d: Decl) -> Self {
        Self::declare(d, Kind::Counter)
    }
}

impl<L: LabelSet> Gauge<L> {
    pub const fn new(d: Decl) -> Self {
        Self::declare(d, Kind::Gauge)
    }
}

impl<L: LabelSet> SetGauge<L> {
    pub const fn new(d: Decl) -> Self {
        Self::declare(d, Kind::Set)
    }
}

impl<L: LabelSet> MaxGauge<L> {
    pub const fn new(d: Decl) -> Self {
        Self::declare(d, Kind::Max)
    }
}

impl<L: LabelSet> Histogram<L> {
    /// `bounds`: bucket upper bounds in the stored unit, increasing.
    pub const fn new(d: Decl, bounds: &'static [u64]) -> Self {
        Self::declare(d, Kind::Histogram(bounds))
    }
}

/// A gauge shown as the mean of two stored counters with the same labels:
/// `sum / count`, in the unit of `sum` (e.g. the mean response time from
/// the total response time and the request count), 0 while `count` is 0.
/// Declared once like stored metrics; the two counters stay declarations of
/// their own, and both being `Counter<L>` makes their labels the same.
#[derive(Debug)]
pub struct Mean<L> {
    desc: MeanDesc,
    _labels: PhantomData<fn(&L)>,
}

/// A [`Mean`] without its types.
#[derive(Debug)]
pub struct MeanDesc {
    pub name: &'static str,
    pub help: &'static str,
    pub sum: &'static Desc,
    pub count: &'static Desc,
}

impl<L: LabelSet> Mean<L> {
    pub const fn new(
        name: &'static str,
        help: &'static str,
        sum: &'static Counter<L>,
        count: &'static Counter<L>,
    ) -> Self {
        assert!(
            !ends_with(name, "_total"),
            "a mean is a gauge: its name does not end in _total"
        );
        assert!(
            ends_with_unit(name, sum.desc.unit, false),
            "the shown name ends with the unit of its sum (_seconds, _usd, _bytes)"
        );
        Mean {
            desc: MeanDesc {
                name,
                help,
                sum: &sum.desc,
                count: &count.desc,
            },
            _labels: PhantomData,
        }
    }

    pub const fn desc(&self) -> &MeanDesc {
        &self.desc
    }
}

/// A gauge computed when `/metrics` is scraped (a stream backlog, a value
/// read from Redis or from the config), not stored as a series: declared
/// once like stored metrics, its values handed to the collector per scrape
/// in [`ScrapeValues`](crate::ScrapeValues).
#[derive(Debug)]
pub struct ScrapeGauge<L> {
    pub name: &'static str,
    pub help: &'static str,
    _labels: PhantomData<fn(&L)>,
}

impl<L: LabelSet> ScrapeGauge<L> {
    pub const fn new(name: &'static str, help: &'static str) -> Self {
        assert!(
            !ends_with(name, "_total"),
            "gauge names do not end in _total"
        );
        ScrapeGauge {
            name,
            help,
            _labels: PhantomData,
        }
    }

    /// The label names.
    pub fn label_names(&self) -> &'static [&'static str] {
        L::NAMES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::label_set! {
        struct Pair { first, second }
    }

    static PAIRS: Counter<Pair<'static>> = Counter::new(Decl {
        id: "t_pairs",
        key: "metrics:t:{}:{}:pairs",
        name: "t_pairs_total",
        help: "Pairs.",
        unit: Unit::Count,
    });

    static LAT: Histogram<NoLabels> = Histogram::new(
        Decl {
            id: "t_lat",
            key: "metrics:t:lat",
            name: "t_latency_seconds",
            help: "Latency.",
            unit: Unit::Micros,
        },
        &[10, 100],
    );

    #[test]
    fn declarations_carry_their_labels() {
        let l = Pair {
            first: "a",
            second: "b",
        };
        assert_eq!(PAIRS.key(&l), "metrics:t:a:b:pairs");
        assert_eq!(PAIRS.family().labels, &["first", "second"]);
        assert_eq!(LAT.key(&NoLabels), "metrics:t:lat");
        assert_eq!(LAT.desc().unit.scale(), 1e-6);
    }

    static PAIR_TIME: Counter<Pair<'static>> = Counter::new(Decl {
        id: "t_pair_time",
        key: "metrics:t:{}:{}:time",
        name: "t_pair_time_seconds_total",
        help: "Time.",
        unit: Unit::Micros,
    });

    static PAIR_MEAN: Mean<Pair<'static>> =
        Mean::new("t_pair_mean_seconds", "Mean time.", &PAIR_TIME, &PAIRS);

    #[test]
    fn a_mean_names_its_two_counters() {
        let d = PAIR_MEAN.desc();
        assert_eq!(d.sum.family.key, "metrics:t:{}:{}:time");
        assert_eq!(d.count.family.key, "metrics:t:{}:{}:pairs");
        assert_eq!(d.sum.unit.scale(), 1e-6);
    }

    #[test]
    fn const_checks() {
        assert_eq!(count_placeholders("metrics:{}:x:{}"), 2);
        assert!(ends_with_unit("a_seconds", Unit::Micros, false));
        assert!(ends_with_unit("a_usd_total", Unit::NanoUsd, true));
        assert!(!ends_with_unit("a_total", Unit::NanoUsd, true));
        assert!(ends_with_unit("a_total", Unit::Count, true));
    }
}
