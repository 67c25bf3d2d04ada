//! The monitoring chain end to end: Redis, the three services and the mock
//! upstream as real processes, a real `prometheus` scraping them every second
//! with a test copy of `monitoring/prometheus.yml` (and the real alert rules),
//! traffic of known shape through the gateway, and then what an operator
//! would see: targets up, the design brief's four queries with the expected
//! values, and every dashboard panel query returning data.

use aigw_e2e::load::{send, Outcome};
use aigw_e2e::monitoring::{
    family_of, load_yaml, metric_names, names, panel_queries, parse_label_values, regex_values,
    scalar, substitute, test_prometheus_config, unix_now, variables, which, workspace_root,
    LogsOnPanic, Prometheus, Series, Targets,
};
use aigw_e2e::stack::{Stack, StackOptions};
use aigw_testkit::free_port;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
/// USD per million tokens, and the same in nano-USD per token.
const PRICE_IN: &str = "0.15";
const PRICE_OUT: &str = "0.60";
const NUSD_IN: u64 = 150;
const NUSD_OUT: u64 = 600;

/// One request as the client saw it.
struct Sent {
    /// Namespace of the key used (None: no valid key).
    ns: Option<&'static str>,
    status: Option<u16>,
    seconds: f64,
}

struct Traffic {
    sent: Vec<Sent>,
    /// Prompt and completion tokens the mock reported for demo's 200s.
    demo_tokens: (u64, u64),
    /// Of those, cache-read (prompt) and reasoning (completion) tokens.
    demo_cache_read: u64,
    demo_reasoning: u64,
    demo_model_requests: u64,
}

impl Traffic {
    fn total(&self) -> u64 {
        self.sent.len() as u64
    }
    fn errors(&self) -> u64 {
        self.sent
            .iter()
            .filter(|s| s.status.is_none_or(|c| c >= 400))
            .count() as u64
    }
    fn ns_total(&self, ns: &str) -> u64 {
        self.sent.iter().filter(|s| s.ns == Some(ns)).count() as u64
    }
    fn by_status(&self, ns: &str) -> BTreeMap<u16, u64> {
        let mut m = BTreeMap::new();
        for s in self.sent.iter().filter(|s| s.ns == Some(ns)) {
            *m.entry(s.status.unwrap_or(0)).or_default() += 1;
        }
        m
    }
    fn record(&mut self, ns: Option<&'static str>, o: &Outcome) -> Option<u16> {
        self.sent.push(Sent {
            ns,
            status: o.status,
            seconds: (o.finished - o.started).as_secs_f64(),
        });
        o.status
    }
}

fn chat(words: &str, stream: bool, mock: Value) -> Value {
    let mut b =
        json!({"model": MODEL, "messages": [{"role": "user", "content": words}], "mock": mock});
    if stream {
        b["stream"] = json!(true);
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

/// Lower and upper bound of `rate(x[5m])` for one raw series, from the
/// extrapolation Prometheus does: the increase between the first and last
/// sample, stretched at the end by at most 1.1 average sample intervals and
/// at the start by half an interval, or, for a counter whose first sample is
/// small against the increase, by the time the counter would have taken to
/// rise from zero (`sampled × first ÷ increase`) when that is under 1.1
/// intervals.
fn rate_bounds(s: &Series, window_s: f64) -> (f64, f64) {
    let pts = &s.points;
    assert!(pts.len() >= 2, "too few samples: {s:?}");
    let (t0, v0) = pts[0];
    let (t1, v1) = pts[pts.len() - 1];
    let sampled = t1 - t0;
    assert!(sampled >= 5.0, "samples span only {sampled} s");
    let avg = sampled / (pts.len() - 1) as f64;
    let delta = v1 - v0;
    let lo = delta / window_s;
    // The window starts minutes before the first sample, so only the
    // counter's distance to zero can bring the start closer than 1.1 avg.
    let to_zero = if delta > 0.0 {
        sampled * v0 / delta
    } else {
        f64::INFINITY
    };
    let start = if to_zero < 1.1 * avg {
        to_zero
    } else {
        0.5 * avg
    };
    let hi = lo * (sampled + start + 1.1 * avg) / sampled;
    // Float noise, and the sample interval shifting a little between the
    // two queries.
    (lo * 0.999, hi * 1.02 + 1e-12)
}

fn assert_within(what: &str, v: f64, (lo, hi): (f64, f64)) {
    assert!(
        v >= lo && v <= hi,
        "{what} = {v}, expected within [{lo}, {hi}]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_stack_and_every_query_works() {
    let Some(prometheus) = which("prometheus") else {
        println!("SKIPPED: prometheus is not installed (scripts/test.sh installs it)");
        return;
    };
    let stack = Stack::start(StackOptions::default()).await;

    // ---- config: three namespaces of one model, all served by the mock ----
    let mock = stack.mock_base(0);
    let hc = json!({"path": "/models", "interval_s": 1});
    stack.model(MODEL, PRICE_IN, PRICE_OUT).await;
    stack
        .namespace(
            "demo",
            json!({"name": "Demo", "monthly_budget_usd": "50.00"}),
        )
        .await;
    stack
        .instance(
            "demo-mock",
            "demo",
            MODEL,
            &mock,
            json!({"api_key": "sk-up-demo", "health_check": hc, "timeout_ms": 5000}),
        )
        .await;
    // Two requests a minute: the rest are rejections.
    stack
        .namespace("limited", json!({"name": "Limited", "limits": {"rpm": 2}}))
        .await;
    stack
        .instance(
            "limited-mock",
            "limited",
            MODEL,
            &mock,
            json!({"api_key": "sk-up-limited", "health_check": hc, "timeout_ms": 5000}),
        )
        .await;
    // One heavily weighted instance where nothing listens and no health
    // check runs: requests pick it, fail to connect and retry on the other.
    stack.namespace("flaky", json!({"name": "Flaky"})).await;
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    stack
        .instance(
            "flaky-dead",
            "flaky",
            MODEL,
            &dead,
            json!({"api_key": "sk-up-dead", "weight": 1000, "timeout_ms": 2000}),
        )
        .await;
    stack
        .instance(
            "flaky-mock",
            "flaky",
            MODEL,
            &mock,
            json!({"api_key": "sk-up-flaky", "health_check": hc, "timeout_ms": 5000}),
        )
        .await;
    let (_, demo_key, _) = stack.key("demo", json!({})).await;
    let (_, limited_key, _) = stack.key("limited", json!({})).await;
    let (_, flaky_key, v) = stack.key("flaky", json!({})).await;
    stack.wait_version(v).await;

    // ---- a real Prometheus scraping the stack every second ----
    let config = test_prometheus_config(&Targets::of(&stack), "1s");
    let prom = Prometheus::start(&prometheus, &config).await;
    let _logs = LogsOnPanic(&prom);
    let started = unix_now();
    let gw = stack.gw(0);
    let http = &stack.http;
    let mut t = Traffic {
        sent: Vec::new(),
        demo_tokens: (0, 0),
        demo_cache_read: 0,
        demo_reasoning: 0,
        demo_model_requests: 0,
    };

    // All three targets up before any traffic, so every counter's first
    // sample is taken before it moves.
    let up = prom.wait_targets(3, "up").await;
    let jobs: BTreeSet<&str> = up.iter().map(|(j, _, _)| j.as_str()).collect();
    assert_eq!(
        jobs,
        BTreeSet::from(["gateway", "config-center", "token-service"]),
        "{up:?}"
    );
    assert!(up.iter().all(|(_, h, _)| h == "up"), "targets: {up:?}");

    // ---- phase 1: one request per namespace and one bad key, so the
    // per-namespace series exist before the measured traffic ----
    let o = send(
        http,
        &gw,
        &demo_key,
        &chat("warm up", false, json!({"chunks": 2})),
    )
    .await;
    assert_eq!(t.record(Some("demo"), &o), Some(200), "{}", o.body);
    t.demo_tokens.0 += 2;
    t.demo_tokens.1 += 2;
    t.demo_model_requests += 1;
    let o = send(http, &gw, &limited_key, &chat("warm up", false, json!({}))).await;
    assert_eq!(t.record(Some("limited"), &o), Some(200), "{}", o.body);
    let o = send(http, &gw, &flaky_key, &chat("warm up", false, json!({}))).await;
    t.record(Some("flaky"), &o);
    let o = send(
        http,
        &gw,
        "sk-aigw-not-a-real-key",
        &chat("hi", false, json!({})),
    )
    .await;
    assert_eq!(t.record(None, &o), Some(401), "{}", o.body);
    let phase1 = t.total() as f64;
    let v = prom
        .wait_value(
            &format!("sum({})", names::REQUESTS),
            Duration::from_secs(20),
            |v| v == phase1,
        )
        .await;
    assert_eq!(
        v,
        Some(phase1),
        "phase-1 requests never showed in Prometheus"
    );
    for ns in ["demo", "limited", "flaky"] {
        let v = prom
            .wait_value(
                &format!("sum({}{{namespace_code=\"{ns}\"}})", names::NS_REQUESTS),
                Duration::from_secs(20),
                |v| v == 1.0,
            )
            .await;
        assert_eq!(v, Some(1.0), "phase-1 request of {ns}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- phase 2: the measured traffic ----
    for (i, words) in ["one", "one two", "one two three", "a b c d", "a b c d e"]
        .iter()
        .enumerate()
    {
        let o = send(
            http,
            &gw,
            &demo_key,
            &chat(words, false, json!({"chunks": 4})),
        )
        .await;
        assert_eq!(
            t.record(Some("demo"), &o),
            Some(200),
            "demo #{i}: {}",
            o.body
        );
        t.demo_tokens.0 += words.split_whitespace().count() as u64;
        t.demo_tokens.1 += 4;
        t.demo_model_requests += 1;
    }
    for i in 0..3 {
        let o = send(
            http,
            &gw,
            &demo_key,
            &chat(
                "stream this please",
                true,
                json!({"chunks": 6, "chunk_delay_ms": 20}),
            ),
        )
        .await;
        assert_eq!(
            t.record(Some("demo"), &o),
            Some(200),
            "demo stream #{i}: {}",
            o.body
        );
        assert!(
            o.stream_done(),
            "stream #{i} ended without [DONE]: {}",
            o.body
        );
        t.demo_tokens.0 += 3;
        t.demo_tokens.1 += 6;
        t.demo_model_requests += 1;
    }
    // One served partly from the upstream's prompt cache, with reasoning:
    // the mock reports prompt_tokens = 3 words + 40 cached, completion
    // tokens = 2 words + 5 reasoning.
    let o = send(
        http,
        &gw,
        &demo_key,
        &chat(
            "from the cache",
            false,
            json!({"chunks": 2, "cached_tokens": 40, "reasoning_tokens": 5}),
        ),
    )
    .await;
    assert_eq!(t.record(Some("demo"), &o), Some(200), "{}", o.body);
    t.demo_tokens.0 += 3 + 40;
    t.demo_tokens.1 += 2 + 5;
    t.demo_cache_read += 40;
    t.demo_reasoning += 5;
    t.demo_model_requests += 1;
    // A slow one, so the latency histogram has spread.
    let o = send(
        http,
        &gw,
        &demo_key,
        &chat("slow", false, json!({"chunks": 1, "latency_ms": 300})),
    )
    .await;
    assert_eq!(t.record(Some("demo"), &o), Some(200), "{}", o.body);
    t.demo_tokens.0 += 1;
    t.demo_tokens.1 += 1;
    t.demo_model_requests += 1;
    // An unknown model.
    for _ in 0..2 {
        let mut b = chat("which model", false, json!({}));
        b["model"] = json!("gpt-does-not-exist");
        let o = send(http, &gw, &demo_key, &b).await;
        assert_eq!(t.record(Some("demo"), &o), Some(404), "{}", o.body);
    }
    // Bad keys, and no key at all.
    for k in ["sk-aigw-wrong-1", "sk-aigw-wrong-2", "not-even-a-key"] {
        let o = send(http, &gw, k, &chat("hi", false, json!({}))).await;
        assert_eq!(t.record(None, &o), Some(401), "{}", o.body);
    }
    let r = http
        .post(format!("{gw}/v1/chat/completions"))
        .json(&chat("no key", false, json!({})))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(r.status().as_u16(), 401);
    t.sent.push(Sent {
        ns: None,
        status: Some(401),
        seconds: 0.0,
    });
    // Over the limit: the namespace allows 2 a minute and used 1 (even if a
    // minute boundary passed since, 4 more cannot all get through).
    for _ in 0..4 {
        let o = send(http, &gw, &limited_key, &chat("limited", false, json!({}))).await;
        t.record(Some("limited"), &o);
    }
    assert!(
        t.by_status("limited").get(&429).copied().unwrap_or(0) >= 1,
        "rpm limit should refuse: {:?}",
        t.by_status("limited")
    );
    // Retries around the dead instance, and upstream failures (model errors).
    for _ in 0..6 {
        let o = send(http, &gw, &flaky_key, &chat("flaky", false, json!({}))).await;
        t.record(Some("flaky"), &o);
    }
    for _ in 0..2 {
        let o = send(
            http,
            &gw,
            &flaky_key,
            &chat("fail upstream", false, json!({"status": 400})),
        )
        .await;
        let s = t.record(Some("flaky"), &o);
        assert!(
            s.is_some_and(|s| s >= 400),
            "an upstream 400 is an error: {s:?}"
        );
    }
    let client_max_latency = t.sent.iter().map(|s| s.seconds).fold(0.0, f64::max);

    // ---- wait until Prometheus has scraped the final counts ----
    let total = t.total() as f64;
    let v = prom
        .wait_value(
            &format!("sum({})", names::REQUESTS),
            Duration::from_secs(30),
            |v| v == total,
        )
        .await;
    assert_eq!(v, Some(total), "sum(ai_gateway_requests_total)");
    let demo_in = t.demo_tokens.0 as f64;
    let sel = format!("{{model=\"{MODEL}\",namespace_code=\"demo\"}}");
    let v = prom
        .wait_value(
            &format!("sum({}{sel})", names::MODEL_TOKENS_IN),
            Duration::from_secs(30),
            |v| v == demo_in,
        )
        .await;
    assert_eq!(v, Some(demo_in), "model_tokens_input_total of demo");
    // A few more scrapes at the final values.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // ---- exact counts ----
    assert_eq!(
        prom.value(&format!("sum({})", names::REQUESTS)).await,
        Some(total)
    );
    assert_eq!(
        prom.value(&format!("sum({})", names::ERRORS)).await,
        Some(t.errors() as f64),
        "sum(ai_gateway_errors_total)"
    );
    for ns in ["demo", "limited", "flaky"] {
        assert_eq!(
            prom.value(&format!(
                "sum({}{{namespace_code=\"{ns}\"}})",
                names::NS_REQUESTS
            ))
            .await,
            Some(t.ns_total(ns) as f64),
            "requests of {ns}"
        );
        let seen: BTreeMap<u16, u64> = prom
            .query(&format!("{}{{namespace_code=\"{ns}\"}}", names::NS_STATUS))
            .await
            .unwrap()
            .iter()
            .map(|s| (s.labels["status_code"].parse().unwrap(), s.value as u64))
            .collect();
        assert_eq!(seen, t.by_status(ns), "status codes of {ns}");
    }
    let one = |metric: &str| format!("sum({metric}{sel})");
    assert_eq!(
        prom.value(&one(names::MODEL_REQUESTS)).await,
        Some(t.demo_model_requests as f64)
    );
    assert_eq!(
        prom.value(&one(names::MODEL_TOKENS_OUT)).await,
        Some(t.demo_tokens.1 as f64)
    );
    // The breakdown: the model has no cache prices, so the cost below
    // prices cache reads at the input price; OpenAI reports no cache writes.
    for (metric, want) in [
        (names::MODEL_TOKENS_CACHE_READ, t.demo_cache_read),
        (names::MODEL_TOKENS_CACHE_WRITE, 0),
        (names::MODEL_TOKENS_REASONING, t.demo_reasoning),
    ] {
        assert_eq!(
            prom.value(&one(metric)).await,
            Some(want as f64),
            "{metric}"
        );
    }
    let cost = prom
        .value(&one(names::MODEL_COST))
        .await
        .expect("cost series");
    let want_cost = (t.demo_tokens.0 * NUSD_IN + t.demo_tokens.1 * NUSD_OUT) as f64 * 1e-9;
    assert!(
        (cost - want_cost).abs() < 1e-12,
        "cost {cost} USD, expected {want_cost}"
    );

    // ---- the design brief's four queries ----
    let [q_rate, q_ns_rate, q_mean, q_err_ratio] = names::DESIGN_QUERIES;
    let req_raw = prom.raw(&format!("{}[5m]", names::REQUESTS)).await;
    assert_eq!(req_raw.len(), 1);
    assert_eq!(req_raw[0].points.last().unwrap().1, total);
    let req_bounds = rate_bounds(&req_raw[0], 300.0);
    let v = prom.value(q_rate).await.expect(q_rate);
    assert_within(q_rate, v, req_bounds);
    assert!(v > 0.0);

    let by_ns: BTreeMap<String, f64> = prom
        .query(q_ns_rate)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.labels["namespace_code"].clone(), s.value))
        .collect();
    assert_eq!(
        by_ns.keys().map(String::as_str).collect::<Vec<_>>(),
        ["demo", "flaky", "limited"],
        "{q_ns_rate}"
    );
    for raw in prom.raw(&format!("{}[5m]", names::NS_REQUESTS)).await {
        let ns = raw.labels["namespace_code"].clone();
        assert_eq!(raw.points.last().unwrap().1, t.ns_total(&ns) as f64, "{ns}");
        assert_within(
            &format!("{q_ns_rate} [{ns}]"),
            by_ns[&ns],
            rate_bounds(&raw, 300.0),
        );
    }

    // The mean is exactly what Redis holds (µs sum / count), in seconds.
    let mean = prom.value(q_mean).await.expect(q_mean);
    let sum_us = stack.int("metrics:global:total_response_time").await as f64;
    let count = stack.int("metrics:global:total_requests").await as f64;
    assert_eq!(count, total);
    let want = sum_us / 1e6 / count;
    assert!(
        (mean - want).abs() <= want * 1e-9,
        "{q_mean} = {mean}, Redis says {want}"
    );
    assert!(
        mean > 0.0 && mean <= client_max_latency,
        "mean {mean} s, slowest client view {client_max_latency} s"
    );

    let err_raw = prom.raw(&format!("{}[5m]", names::ERRORS)).await;
    assert_eq!(err_raw[0].points.last().unwrap().1, t.errors() as f64);
    let (e_lo, e_hi) = rate_bounds(&err_raw[0], 300.0);
    let (r_lo, r_hi) = req_bounds;
    let ratio = prom.value(q_err_ratio).await.expect(q_err_ratio);
    assert_within(
        q_err_ratio,
        ratio,
        (e_lo / r_hi * 100.0, e_hi / r_lo * 100.0),
    );
    println!(
        "design queries: rate {v:.5}/s, mean {mean:.4} s, error ratio {ratio:.2}% ({} of {} requests failed)",
        t.errors(),
        t.total()
    );

    // ---- the alert rules evaluate cleanly against real series ----
    let rules = prom.rules().await;
    assert_eq!(rules.len(), 9, "{rules:?}");
    for (name, health, err) in &rules {
        assert_eq!(health, "ok", "rule {name}: {err}");
    }

    // ---- every metric the rules and dashboards read is exported ----
    let pending: BTreeMap<&str, &str> = names::PENDING.iter().copied().collect();
    let mut referenced = BTreeSet::new();
    let alerts = load_yaml(&workspace_root().join("monitoring/alerts.yml"));
    for g in alerts["groups"].as_vec().unwrap() {
        for r in g["rules"].as_vec().unwrap() {
            referenced.extend(metric_names(&scalar(&r["expr"]).unwrap()));
        }
    }
    for q in panel_queries() {
        referenced.extend(metric_names(&q.expr));
    }
    let exported: BTreeSet<String> = prom
        .label_values("{__name__=~\".+\"}", "__name__")
        .await
        .into_iter()
        .collect();
    let mut missing = Vec::new();
    for name in &referenced {
        let present = exported.contains(name);
        match pending.get(name.as_str()) {
            Some(_) => assert!(
                !present,
                "{name} is exported now: remove it from names::PENDING (the test then checks its queries)"
            ),
            None if !present => missing.push(name.clone()),
            None => {}
        }
    }
    assert!(
        missing.is_empty(),
        "read by rules/dashboards but not exported: {missing:?}"
    );
    for (name, owner) in names::PENDING {
        println!("PENDING metric {name}: {owner}");
    }

    // ---- dashboards: variables resolve, every panel query returns data ----
    let mut vars = BTreeMap::new();
    for var in variables() {
        let (selector, label) = parse_label_values(&var.query).expect("label_values variable");
        let values = prom.label_values(&selector, &label).await;
        assert!(
            !values.is_empty(),
            "variable {} of {} has no values",
            var.name,
            var.dashboard
        );
        if var.name == "namespace_code" {
            for ns in ["demo", "limited", "flaky"] {
                assert!(values.contains(&ns.to_string()), "{values:?}");
            }
        }
        if var.name == "model" {
            assert!(values.contains(&MODEL.to_string()), "{values:?}");
        }
        vars.insert(var.name.clone(), regex_values(&values));
    }
    let mut checked = 0;
    let mut failures = Vec::new();
    for q in panel_queries() {
        let names_read = metric_names(&q.expr);
        if let Some(p) = names_read
            .iter()
            .find(|n| pending.contains_key(family_of(n)))
        {
            println!("skipped {}/{} (reads pending {p})", q.dashboard, q.panel);
            continue;
        }
        let expr = substitute(&q.expr, &vars, "1m", "5m");
        let values: Result<Vec<f64>, String> = if q.instant {
            prom.query(&expr)
                .await
                .map(|v| v.into_iter().map(|s| s.value).collect())
        } else {
            prom.query_range(&expr, started, 1.0).await.map(|v| {
                v.into_iter()
                    .flat_map(|s| s.points.into_iter().map(|p| p.1))
                    .collect()
            })
        };
        checked += 1;
        match values {
            Err(e) => failures.push(format!("{}/{}: {e}\n    {expr}", q.dashboard, q.panel)),
            Ok(v) if !v.iter().any(|x| x.is_finite()) => {
                failures.push(format!("{}/{}: no data\n    {expr}", q.dashboard, q.panel))
            }
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "panel queries failing:\n{}",
        failures.join("\n")
    );
    assert!(checked >= 30, "only {checked} panel queries checked");
    println!("{checked} panel queries returned data");
}

/// With `METRICS_TOKEN` set on every service, `/metrics` answers a JSON 401
/// to a scrape without the bearer token (or with another one) and the
/// exposition to one with it; the shipped scrape config, given the token in
/// its `metrics_token` file, scrapes all three targets, and without it sees
/// them refuse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_token_gates_every_service_and_the_shipped_config_scrapes_with_it() {
    const TOKEN: &str = "scrape-token-7f3a";
    let token_env = || vec![("METRICS_TOKEN".to_string(), TOKEN.to_string())];
    let stack = Stack::start(StackOptions {
        gateway_env: token_env(),
        token_service_env: token_env(),
        config_center_env: token_env(),
        ..StackOptions::default()
    })
    .await;
    let urls = [
        ("gateway", stack.gw(0)),
        ("config-center", stack.cc.url()),
        ("token-service", stack.ts.url()),
    ];
    for (name, base) in &urls {
        let url = format!("{base}/metrics");
        for auth in [
            None,
            Some("Bearer wrong-token"),
            Some("Basic c2NyYXBlLXRva2VuLTdmM2E="),
        ] {
            let mut req = stack.http.get(&url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 401, "{name} {auth:?}");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body["error"]["code"], "invalid_metrics_token",
                "{name}: {body}"
            );
            assert!(!body.to_string().contains(TOKEN), "{name}: {body}");
        }
        let resp = stack
            .http
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{name}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("# TYPE "), "{name}: {text}");
    }

    let Some(prometheus) = which("prometheus") else {
        println!(
            "SKIPPED (Prometheus part): prometheus is not installed (scripts/test.sh installs it)"
        );
        return;
    };
    let config = test_prometheus_config(&Targets::of(&stack), "1s");
    for (token, health) in [(TOKEN, "up"), ("", "down")] {
        let prom = Prometheus::start_with_token(&prometheus, &config, token).await;
        let _logs = LogsOnPanic(&prom);
        let seen = prom.wait_targets(3, health).await;
        assert_eq!(seen.len(), 3, "{seen:?}");
        for (job, h, err) in &seen {
            assert_eq!(h, health, "{job} with token {token:?}: {err}");
            if health == "down" {
                assert!(err.contains("401"), "{job}: {err}");
            }
        }
    }
}
