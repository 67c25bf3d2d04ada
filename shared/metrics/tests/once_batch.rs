//! Once-batches (per-record exactly-once writes) against a real Redis: the
//! state they leave equals applying every new record's ops one by one, and
//! each key is written once per batch.

use aigw_metrics::families::token_service::{self as ts, ModelNs, NsMonth};
use aigw_metrics::family::bucket_field;
use aigw_metrics::metric::kind;
use aigw_metrics::ops::bucket_index;
use aigw_metrics::{
    keys, Counter, Decl, Family, Gauge, Histogram, Kind, LabelSet, MaxGauge, Metric, NoLabels,
    OnceBatch, Ops, SetGauge, Unit, LATENCY_BUCKETS_US,
};
use aigw_testkit::RedisServer;
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands;
use std::collections::{BTreeMap, BTreeSet, HashMap};

const SCOPE: &str = "t";
const TTL: u64 = 3600;

aigw_metrics::label_set! {
    struct Nsl { ns }
}
aigw_metrics::label_set! {
    struct NsModel { ns, model }
}

const fn decl(id: &'static str, key: &'static str, name: &'static str) -> Decl {
    Decl {
        id,
        key,
        name,
        help: "test",
        unit: Unit::Count,
    }
}

static REQS: Counter<Nsl<'static>> = Counter::new(decl(
    "t_requests",
    "metrics:t:{}:requests",
    "t_requests_total",
));
static ERRS: Counter<Nsl<'static>> =
    Counter::new(decl("t_errors", "metrics:t:{}:errors", "t_errors_total"));
static TOKENS: Counter<NsModel<'static>> =
    Counter::new(decl("t_tokens", "metrics:t:{}:{}:tokens", "t_tokens_total"));
static TOTAL: Counter<NoLabels> = Counter::new(decl("t_total", "metrics:t:total", "t_all_total"));
static LAT: Histogram<Nsl<'static>> = Histogram::new(
    Decl {
        id: "t_latency",
        key: "metrics:t:{}:latency_us",
        name: "t_latency_seconds",
        help: "test",
        unit: Unit::Micros,
    },
    LATENCY_BUCKETS_US,
);
static LAST: MaxGauge<Nsl<'static>> = MaxGauge::new(decl("t_last", "metrics:t:{}:last", "t_last"));
static STATE: SetGauge<Nsl<'static>> =
    SetGauge::new(decl("t_state", "metrics:t:{}:state", "t_state"));
static INFLIGHT: Gauge<Nsl<'static>> =
    Gauge::new(decl("t_inflight", "metrics:t:{}:inflight", "t_inflight"));
static GLOBAL_LAST: MaxGauge<NoLabels> = MaxGauge::new(decl(
    "t_global_last",
    "metrics:t:global_last",
    "t_global_last",
));
static HEALTH: SetGauge<NsModel<'static>> =
    SetGauge::new(decl("t_health", "metrics:t:{}:{}:health", "t_health"));

fn ns(ns: &str) -> Nsl<'_> {
    Nsl { ns }
}

/// One write, as the ops were applied one by one before batches were merged.
#[derive(Debug, Clone)]
enum Op {
    Incr(String, i64),
    HIncr(String, String, i64),
    Max(String, i64),
    Set(String, i64),
    SAdd(String, String),
    HSet(String, String, i64),
    XAdd(String, String, String),
}

/// Everything in Redis but the markers.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    strings: BTreeMap<String, i64>,
    hashes: BTreeMap<String, BTreeMap<String, i64>>,
    sets: BTreeMap<String, BTreeSet<String>>,
    streams: BTreeMap<String, Vec<(String, String)>>,
}

impl State {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Incr(k, by) => *self.strings.entry(k.clone()).or_insert(0) += by,
            Op::HIncr(k, f, by) => {
                *self
                    .hashes
                    .entry(k.clone())
                    .or_default()
                    .entry(f.clone())
                    .or_insert(0) += by
            }
            Op::Max(k, v) => {
                if *v > self.strings.get(k).copied().unwrap_or(-1) {
                    self.strings.insert(k.clone(), *v);
                }
            }
            Op::Set(k, v) => {
                self.strings.insert(k.clone(), *v);
            }
            Op::SAdd(k, m) => {
                self.sets.entry(k.clone()).or_default().insert(m.clone());
            }
            Op::HSet(k, f, v) => {
                self.hashes
                    .entry(k.clone())
                    .or_default()
                    .insert(f.clone(), *v);
            }
            Op::XAdd(k, f, v) => self
                .streams
                .entry(k.clone())
                .or_default()
                .push((f.clone(), v.clone())),
        }
    }
}

/// A record: its ops for the script and the same writes for the model.
#[derive(Clone)]
struct Rec {
    id: String,
    ops: Ops,
    model: Vec<Op>,
}

impl Rec {
    fn new(id: &str) -> Self {
        Rec {
            id: id.to_string(),
            ops: Ops::new(),
            model: Vec::new(),
        }
    }

    fn index(&mut self, f: &Family, labels: &[&str]) {
        if f.is_indexed() {
            self.model
                .push(Op::SAdd(keys::index(f.name), Family::index_member(labels)));
        }
    }

    /// The family and label values of a typed series.
    fn parts<'a, L: LabelSet, K>(
        m: &'a Metric<L, K>,
        labels: &'a L::Values<'_>,
    ) -> (&'a Family, Vec<&'a str>) {
        (m.family(), L::values(labels).to_vec())
    }

    fn counter<L: LabelSet>(&mut self, m: &Counter<L>, labels: &L::Values<'_>, by: i64) {
        self.ops.counter(m, labels, by);
        let (f, l) = Self::parts(m, labels);
        self.model.push(Op::Incr(m.key(labels), by));
        self.index(f, &l);
    }

    fn observe<L: LabelSet>(&mut self, m: &Histogram<L>, labels: &L::Values<'_>, v: u64) {
        self.ops.observe(m, labels, v);
        let (f, l) = Self::parts(m, labels);
        let Kind::Histogram(bounds) = f.kind else {
            panic!("{} is not a histogram", f.name)
        };
        let key = m.key(labels);
        let bucket = bucket_field(bounds.get(bucket_index(bounds, v)).copied());
        self.model.push(Op::HIncr(key.clone(), bucket, 1));
        self.model
            .push(Op::HIncr(key.clone(), "sum".into(), v as i64));
        self.model.push(Op::HIncr(key, "count".into(), 1));
        self.index(f, &l);
    }

    fn max<L: LabelSet>(&mut self, m: &MaxGauge<L>, labels: &L::Values<'_>, v: i64) {
        self.ops.max(m, labels, v);
        let (f, l) = Self::parts(m, labels);
        self.model.push(Op::Max(m.key(labels), v));
        self.index(f, &l);
    }

    fn value<L: LabelSet>(&mut self, m: &SetGauge<L>, labels: &L::Values<'_>, v: i64) {
        self.ops.value(m, labels, v);
        let (f, l) = Self::parts(m, labels);
        self.model.push(Op::Set(m.key(labels), v));
        self.index(f, &l);
    }

    fn gauge<L: LabelSet>(
        &mut self,
        m: &Metric<L, kind::Gauge>,
        labels: &L::Values<'_>,
        replica: &str,
        v: i64,
    ) {
        self.ops.gauge(m, labels, replica, v);
        let (f, l) = Self::parts(m, labels);
        let key = m.key(labels);
        self.model
            .push(Op::HSet(keys::gauge_replicas(&key), replica.into(), v));
        self.model.push(Op::SAdd(keys::GAUGES.into(), key));
        self.model
            .push(Op::SAdd(keys::REPLICAS.into(), replica.into()));
        self.index(f, &l);
    }

    fn xadd(&mut self, stream: &str, field: &str, payload: &str) {
        self.ops.xadd(stream, field, payload);
        self.model
            .push(Op::XAdd(stream.into(), field.into(), payload.into()));
    }

    fn incr(&mut self, key: &str, by: i64) {
        self.ops.incr(key, by);
        self.model.push(Op::Incr(key.into(), by));
    }

    fn hincr(&mut self, key: &str, field: &str, by: i64) {
        self.ops.hincr(key, field, by);
        self.model.push(Op::HIncr(key.into(), field.into(), by));
    }

    fn set(&mut self, key: &str, v: i64) {
        self.ops.set(key, v);
        self.model.push(Op::Set(key.into(), v));
    }

    fn set_max(&mut self, key: &str, v: i64) {
        self.ops.set_max(key, v);
        self.model.push(Op::Max(key.into(), v));
    }
}

/// The expected effect of a batch: records whose id was not applied before
/// (in Redis or earlier in the batch) apply their ops in order. Returns how
/// many were applied.
fn model_apply(state: &mut State, applied: &mut BTreeSet<String>, recs: &[Rec]) -> usize {
    let mut n = 0;
    for r in recs {
        if applied.insert(r.id.clone()) {
            n += 1;
            for op in &r.model {
                state.apply(op);
            }
        }
    }
    n
}

fn batch(recs: &[Rec]) -> OnceBatch {
    let mut b = OnceBatch::new();
    for r in recs {
        b.push(SCOPE, &r.id, r.ops.clone());
    }
    b
}

/// Every key in Redis: the state, and the ids of the markers (checked to be
/// `1` with a TTL).
async fn dump(c: &mut MultiplexedConnection) -> (State, BTreeSet<String>) {
    let all: Vec<String> = redis::cmd("KEYS").arg("*").query_async(c).await.unwrap();
    let mut s = State::default();
    let mut markers = BTreeSet::new();
    let marker_prefix = keys::once_marker(SCOPE, "");
    for k in all {
        if let Some(id) = k.strip_prefix(&marker_prefix) {
            let v: String = c.get(&k).await.unwrap();
            assert_eq!(v, "1", "{k}");
            let ttl: i64 = c.ttl(&k).await.unwrap();
            assert!(ttl > 0 && ttl <= TTL as i64, "{k} ttl {ttl}");
            markers.insert(id.to_string());
            continue;
        }
        let ty: String = redis::cmd("TYPE").arg(&k).query_async(c).await.unwrap();
        match ty.as_str() {
            "string" => {
                let v: String = c.get(&k).await.unwrap();
                let v: i64 = v.parse().unwrap_or_else(|_| panic!("{k} = {v:?}"));
                s.strings.insert(k, v);
            }
            "hash" => {
                let h: BTreeMap<String, i64> = c.hgetall(&k).await.unwrap();
                s.hashes.insert(k, h);
            }
            "set" => {
                let m: BTreeSet<String> = c.smembers(&k).await.unwrap();
                s.sets.insert(k, m);
            }
            "stream" => {
                let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query_async(c)
                    .await
                    .unwrap();
                let v = entries
                    .into_iter()
                    .map(|(_, fv)| {
                        assert_eq!(fv.len(), 2, "{k}: {fv:?}");
                        (fv[0].clone(), fv[1].clone())
                    })
                    .collect();
                s.streams.insert(k, v);
            }
            other => panic!("{k} has unexpected type {other}"),
        }
    }
    (s, markers)
}

async fn assert_state(c: &mut MultiplexedConnection, want: &State, applied: &BTreeSet<String>) {
    let (got, markers) = dump(c).await;
    for (k, v) in &want.strings {
        assert_eq!(got.strings.get(k), Some(v), "{k}");
    }
    for (k, v) in &want.hashes {
        assert_eq!(got.hashes.get(k), Some(v), "{k}");
    }
    for (k, v) in &want.sets {
        assert_eq!(got.sets.get(k), Some(v), "{k}");
    }
    for (k, v) in &want.streams {
        assert_eq!(got.streams.get(k), Some(v), "{k}");
    }
    assert_eq!(&got, want, "keys differ");
    assert_eq!(&markers, applied, "markers");
}

const NS: [&str; 3] = ["a", "b", "c"];
const MODELS: [&str; 2] = ["m1", "m2"];
const STREAM: &str = "t:stream";

/// The writes of one usage-like record; the values depend on `k`, so a
/// duplicate id carrying another `k` would show if it were applied.
fn usage(id: &str, k: u64) -> Rec {
    let ns = NS[(k % 3) as usize];
    let model = MODELS[((k / 3) % 2) as usize];
    let mut r = Rec::new(id);
    let l = Nsl { ns };
    r.counter(&REQS, &l, 1);
    // Namespace `c` never has errors: its counter sums to 0 but must exist.
    r.counter(&ERRS, &l, i64::from(ns != "c" && k.is_multiple_of(5)));
    r.counter(&TOKENS, &NsModel { ns, model }, ((k * 37) % 1000) as i64);
    r.counter(&TOTAL, &NoLabels, 1);
    r.observe(&LAT, &l, (k * 7919) % 400_000);
    r.max(&LAST, &l, 1_000_000 + ((k * 7907) % 100_000) as i64);
    r.value(&STATE, &l, k as i64);
    if k.is_multiple_of(40) {
        r.gauge(&INFLIGHT, &l, &format!("rep-{}", k % 80 / 40), k as i64);
    }
    if k.is_multiple_of(25) {
        r.xadd(STREAM, "id", &format!("{id}/{k}"));
    }
    r
}

#[tokio::test]
async fn merged_batches_leave_the_state_of_ops_applied_one_by_one() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let mut want = State::default();
    let mut applied = BTreeSet::new();

    // Existing values the batch must build on.
    let preset = [
        Op::Max(LAST.key(&ns("a")), 1_000_000_000), // above every x of `a`
        Op::Incr(REQS.key(&ns("b")), 5),
        Op::SAdd(keys::index(REQS.family().name), "old".into()),
    ];
    let _: () = c.set(LAST.key(&ns("a")), 1_000_000_000).await.unwrap();
    let _: () = c.incr(REQS.key(&ns("b")), 5).await.unwrap();
    let _: () = c
        .sadd(keys::index(REQS.family().name), "old")
        .await
        .unwrap();
    for op in &preset {
        want.apply(op);
    }

    // 200 records; every seventh repeats the id of the record three before it.
    let first: Vec<Rec> = (0..200u64)
        .map(|k| {
            let id = if k % 7 == 6 { k - 3 } else { k };
            usage(&format!("r{id}"), k)
        })
        .collect();
    // 150..250: ids up to 199 were applied by the first batch, except those
    // of the in-batch duplicates (k % 7 == 6); and one more repeat of r200.
    let mut second: Vec<Rec> = (150..250u64)
        .map(|k| usage(&format!("r{k}"), k + 1000))
        .collect();
    second.push(usage("r200", 7));

    let n1 = batch(&first).apply(&mut c, TTL).await.unwrap();
    assert_eq!(n1, 200 - 28);
    assert_eq!(model_apply(&mut want, &mut applied, &first), n1);
    assert_state(&mut c, &want, &applied).await;
    assert_eq!(want.strings[&TOTAL.key(&NoLabels)], 172);
    assert_eq!(want.strings[&ERRS.key(&ns("c"))], 0);
    assert!(want.streams[STREAM].len() > 1);

    let n2 = batch(&second).apply(&mut c, TTL).await.unwrap();
    assert_eq!(n2, 50 + 7);
    assert_eq!(model_apply(&mut want, &mut applied, &second), n2);
    assert_state(&mut c, &want, &applied).await;
    assert_eq!(want.strings[&TOTAL.key(&NoLabels)], 172 + 57);
    // Per namespace: requests = applied records of it (+5 preset for `b`),
    // histogram count = requests.
    for (i, ns) in NS.iter().enumerate() {
        let n = applied_ks().filter(|k| k % 3 == i as u64).count() as i64;
        let preset = if *ns == "b" { 5 } else { 0 };
        assert_eq!(want.strings[&REQS.key(&Nsl { ns })], n + preset, "{ns}");
        assert_eq!(want.hashes[&LAT.key(&Nsl { ns })]["count"], n, "{ns}");
    }
    assert_eq!(
        want.strings[&LAST.key(&ns("a"))],
        1_000_000_000,
        "preset max kept"
    );

    // Redelivering both batches changes nothing.
    assert_eq!(batch(&first).apply(&mut c, TTL).await.unwrap(), 0);
    assert_eq!(batch(&second).apply(&mut c, TTL).await.unwrap(), 0);
    assert_state(&mut c, &want, &applied).await;
}

/// A server that lost its script cache (a restart, a failover, `SCRIPT
/// FLUSH`) answers `NOSCRIPT`; the batch loads the script and is applied
/// once, by the fast script and by the record-by-record one.
#[tokio::test]
async fn a_server_that_forgot_the_scripts_gets_them_and_applies_once() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let mut want = State::default();
    let mut applied = BTreeSet::new();
    let first: Vec<Rec> = (0..40u64).map(|k| usage(&format!("r{k}"), k)).collect();
    // 30..70: the first ten were applied, so the fast script gives way to
    // the record-by-record one.
    let second: Vec<Rec> = (30..70u64).map(|k| usage(&format!("r{k}"), k)).collect();
    for (recs, new) in [(&first, 40), (&second, 30)] {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut c)
            .await
            .unwrap();
        let n = batch(recs).apply(&mut c, TTL).await.unwrap();
        assert_eq!(n, new);
        assert_eq!(model_apply(&mut want, &mut applied, recs), n);
        assert_state(&mut c, &want, &applied).await;
    }
}

/// The `k` of every record applied by the two batches of the test above,
/// worked out independently of the model.
fn applied_ks() -> impl Iterator<Item = u64> {
    let first = (0..200u64).filter(|k| k % 7 != 6);
    let second = (150..250u64)
        .filter(|k| *k >= 200 || k % 7 == 6)
        .map(|k| k + 1000);
    first.chain(second)
}

#[tokio::test]
async fn set_and_set_if_greater_on_one_key_keep_record_order() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let mut want = State::default();
    for (k, v) in [("k:b", 10), ("k:c", 10), ("k:d", 10)] {
        let _: () = c.set(k, v).await.unwrap();
        want.apply(&Op::Set(k.into(), v));
    }
    let mut recs = Vec::new();
    let mut one = |id: &str, f: &dyn Fn(&mut Rec)| {
        let mut r = Rec::new(id);
        f(&mut r);
        recs.push(r);
    };
    // k:a: x 5, s 3, x 4 → 4 (one by one: 5, then 3, then 4 > 3).
    one("1", &|r| r.set_max("k:a", 5));
    one("2", &|r| r.set("k:a", 3));
    one("2", &|r| r.set("k:a", 100)); // duplicate id: skipped
    one("3", &|r| r.set_max("k:a", 4));
    // k:b (10): x 7, x 12, x 11 → 12.
    one("4", &|r| {
        r.set_max("k:b", 7);
        r.set_max("k:b", 12)
    });
    one("5", &|r| r.set_max("k:b", 11));
    // k:c (10): s 2, x 1 → 2.
    one("6", &|r| r.set("k:c", 2));
    one("7", &|r| r.set_max("k:c", 1));
    // k:d (10): x 3 → 10 unchanged; k:e (missing): x -1 → still missing.
    one("8", &|r| {
        r.set_max("k:d", 3);
        r.set_max("k:e", -1)
    });
    // k:f: s, s, s → the last.
    one("9", &|r| r.set("k:f", 1));
    one("10", &|r| {
        r.set("k:f", 2);
        r.set("k:f", -3)
    });
    let mut applied = BTreeSet::new();
    let n = batch(&recs).apply(&mut c, TTL).await.unwrap();
    assert_eq!(n, 10);
    assert_eq!(model_apply(&mut want, &mut applied, &recs), n);
    assert_state(&mut c, &want, &applied).await;
    let expect = [
        ("k:a", 4),
        ("k:b", 12),
        ("k:c", 2),
        ("k:d", 10),
        ("k:f", -3),
    ];
    for (k, v) in expect {
        assert_eq!(want.strings[k], v, "{k}");
    }
    assert!(!want.strings.contains_key("k:e"));
}

#[tokio::test]
async fn sums_past_2_pow_53_stay_exact() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let p52 = 1i64 << 52;
    let big = i64::MAX - 10;
    let mut recs = Vec::new();
    for (i, (a, b)) in [(p52, 1), (p52, 3), (-3, big), (1, 2), (3, 4)]
        .into_iter()
        .enumerate()
    {
        let mut r = Rec::new(&format!("{i}"));
        r.incr("n:a", a);
        r.hincr("n:h", "f", b);
        r.hincr("n:h", "g", a);
        recs.push(r);
    }
    let mut want = State::default();
    let mut applied = BTreeSet::new();
    let n = batch(&recs).apply(&mut c, TTL).await.unwrap();
    assert_eq!(n, 5);
    assert_eq!(model_apply(&mut want, &mut applied, &recs), 5);
    assert_state(&mut c, &want, &applied).await;
    assert_eq!(want.strings["n:a"], 2 * p52 + 1);
    assert_eq!(want.hashes["n:h"]["f"], i64::MAX);
    assert_eq!(want.hashes["n:h"]["g"], 2 * p52 + 1);
}

/// The writes of one usage record of the token-service (as `record_ops`
/// builds them: five model counters, duration and TTFT histograms, the
/// monthly cost, the processed counter), plus one set-if-greater and one set.
fn token_service_like(k: u64) -> Rec {
    let labels = ModelNs {
        model: "m",
        namespace_code: "team",
    };
    let mut r = Rec::new(&format!("u{k}"));
    r.counter(&ts::MODEL_REQUESTS, &labels, 1);
    r.counter(&ts::MODEL_ERRORS, &labels, i64::from(k.is_multiple_of(10)));
    r.counter(&ts::MODEL_TOKENS_IN, &labels, k as i64 + 1);
    r.counter(&ts::MODEL_TOKENS_OUT, &labels, 2 * k as i64);
    r.counter(&ts::MODEL_COST, &labels, 1000 + k as i64);
    // Durations in three buckets (0.4 s, 0.6 s, 0.9 s), TTFT in one.
    r.observe(
        &ts::MODEL_DURATION,
        &labels,
        [400_000, 600_000, 900_000][(k % 3) as usize],
    );
    r.observe(&ts::MODEL_TTFT, &labels, 60_000 + k);
    r.counter(
        &ts::NS_MONTH_COST,
        &NsMonth {
            namespace_code: "team",
            month: "2026-11",
        },
        1000 + k as i64,
    );
    r.counter(&ts::USAGE_PROCESSED, &NoLabels, 1);
    r.max(&GLOBAL_LAST, &NoLabels, 1_700_000_000_000 + k as i64);
    r.value(
        &HEALTH,
        &NsModel {
            ns: "i-1",
            model: "team",
        },
        (k % 2) as i64,
    );
    r
}

#[tokio::test]
async fn a_batch_hitting_the_same_keys_writes_each_key_once() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    // Load the script so the measured call is one EVALSHA.
    assert_eq!(OnceBatch::new().apply(&mut c, TTL).await.unwrap(), 0);
    let recs: Vec<Rec> = (0..100).map(token_service_like).collect();
    assert_eq!(recs[0].ops.len(), 7 + 6 + 9 + 2);

    redis.reset_stats().await;
    assert_eq!(batch(&recs).apply(&mut c, TTL).await.unwrap(), 100);
    let stats: HashMap<String, u64> = redis.command_stats().await.into_iter().collect();
    eprintln!("{stats:?}");

    let calls = |cmd: &str| stats.get(cmd).copied().unwrap_or(0);
    // 100 markers, the set key, the set-if-greater key (whose values rise
    // above the missing key's -1).
    assert_eq!(calls("set"), 100 + 2);
    assert_eq!(calls("get"), 1);
    // requests, errors, tokens in/out, cost, month cost, processed.
    assert_eq!(calls("incrby"), 7);
    // duration: 3 buckets + sum + count; ttft: 1 bucket + sum + count.
    assert_eq!(calls("hincrby"), 5 + 3);
    // One per index set: the 5 counters, 2 histograms, month cost, health.
    assert_eq!(calls("sadd"), 9);
    assert_eq!(calls("evalsha"), 1);
    let known = [
        "set",
        "get",
        "incrby",
        "hincrby",
        "sadd",
        "evalsha", // the batch
        "config|resetstat",
        "info",
        "client|setinfo",
        "hello", // the test's
    ];
    let others: Vec<_> = stats
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    assert!(others.is_empty(), "unexpected commands: {others:?}");

    // The merged writes hold the sums of the 100 records.
    let mut want = State::default();
    let mut applied = BTreeSet::new();
    model_apply(&mut want, &mut applied, &recs);
    assert_state(&mut c, &want, &applied).await;
    let l = ModelNs {
        model: "m",
        namespace_code: "team",
    };
    assert_eq!(want.strings[&ts::MODEL_REQUESTS.key(&l)], 100);
    assert_eq!(want.strings[&ts::MODEL_ERRORS.key(&l)], 10);
    assert_eq!(want.strings[&ts::MODEL_TOKENS_IN.key(&l)], 5050);
    assert_eq!(want.hashes[&ts::MODEL_DURATION.key(&l)]["count"], 100);
    assert_eq!(want.strings[&GLOBAL_LAST.key(&NoLabels)], 1_700_000_000_099);
    assert_eq!(
        want.strings[&HEALTH.key(&NsModel {
            ns: "i-1",
            model: "team"
        })],
        1
    );
}
