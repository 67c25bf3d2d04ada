//! Fault tests over the real binaries (issue 8, 1–6): each drives steady
//! traffic with a known count of requests through the gateway while a part
//! of the stack fails, then checks the outcome exactly — what the client
//! saw, the gateway's `metrics:global:*` / `metrics:ns:*` keys, and the
//! token-service's model totals — and prints a `RELIABILITY|…` row for
//! `docs/RELIABILITY.md`.
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`) and
//! `redis-server`; every test is bounded (about a minute each).

use aigw_e2e::counters::{Counts, ModelTotals};
use aigw_e2e::load::{
    chat_body, send, Load, Observed, COMPLETION_TOKENS, COST_NUSD, PROMPT_TOKENS,
};
use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions, FLUSH};
use aigw_e2e::wait::eventually;
use aigw_testkit::prom::sample;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "m1";

/// What the gateway must have counted for the requests the client saw
/// answered (transport errors never reached an answer, so are not counted).
fn expected_counts(obs: &Observed, other_global: i64) -> Counts {
    let by_status: BTreeMap<u16, i64> =
        obs.by_status.iter().map(|(s, n)| (*s, *n as i64)).collect();
    let failed: i64 = by_status
        .iter()
        .filter(|(s, _)| **s >= 400)
        .map(|(_, n)| n)
        .sum();
    let total = obs.answered() as i64;
    Counts {
        global_requests: total + other_global,
        global_errors: failed,
        ns_requests: total,
        ns_successful: total - failed,
        ns_failed: failed,
        by_status,
    }
}

/// Model totals for `total` requests that reached the model, `ok` of which
/// were answered by the upstream with usage.
fn expected_totals(total: usize, ok: usize) -> ModelTotals {
    let (total, ok) = (total as i64, ok as i64);
    ModelTotals {
        requests: total,
        errors: total - ok,
        tokens_in: ok * PROMPT_TOKENS,
        tokens_out: ok * COMPLETION_TOKENS,
        cost_nusd: ok * COST_NUSD,
        ..ModelTotals::default()
    }
}

fn lost(want: i64, got: i64) -> String {
    if want == got {
        "0".into()
    } else {
        format!("{} (want {want}, got {got})", want - got)
    }
}

async fn counts(s: &Stack, ns: &str, statuses: &[u16]) -> Counts {
    s.gateway_counts(ns, statuses).await
}

/// 1. Redis stopped for 10 s under load, then restarted: the gateway keeps
/// answering from its last snapshot, no request fails because of Redis, and
/// afterwards every counter and the token-service's totals are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_of_10s_under_load_loses_nothing() {
    let mut s = Stack::start(StackOptions::default()).await;
    let ns = "redis-out";
    let key = s.world(ns, MODEL, json!({})).await;

    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        4,
        usize::MAX,
        Duration::from_millis(40),
        |i| chat_body(MODEL, i % 3 == 0, None),
    );
    load.wait_done(60, Duration::from_secs(30)).await;
    s.redis.stop().await;
    let during_from = load.done();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = load.done() - during_from;
    s.redis.restart().await;
    let after = load.done();
    load.wait_done(after + 60, Duration::from_secs(30)).await;
    let obs = load.finish().await;
    let n = obs.answered();

    // The client saw no failure at all.
    assert_eq!(obs.transport_errors, 0, "{:?}", obs.first_errors);
    assert_eq!(obs.non_200(), 0, "{:?}", obs.first_errors);
    assert_eq!(obs.broken_streams, 0);
    assert!(
        during > 20,
        "only {during} requests were served while Redis was down"
    );

    let want = expected_counts(&obs, 0);
    let got = s
        .settle(Duration::from_secs(60), &want, || counts(&s, ns, &[200]))
        .await;
    let want_t = expected_totals(n, n);
    let got_t = s
        .settle(Duration::from_secs(60), &want_t, || {
            s.model_totals(MODEL, ns)
        })
        .await;
    report(
        "Redis stopped (SIGKILL) for 10 s under load, then restarted",
        &format!("{n} chat requests (1/3 streamed) from 4 clients, {during} while Redis was down"),
        &format!(
            "failed requests 0; gateway counts lost {}; token totals lost {}",
            lost(want.ns_requests, got.ns_requests),
            lost(
                want_t.tokens_in + want_t.tokens_out,
                got_t.tokens_in + got_t.tokens_out
            )
        ),
    );
    assert_eq!(got, want, "gateway counters after the outage");
    assert_eq!(got_t, want_t, "token-service totals after the outage");
    assert_eq!(s.int("metrics:gateway:usage_records_dropped").await, 0);
}

/// 2. The token-service is killed (SIGKILL) while it consumes usage records
/// and restarted later: the records wait in the stream, and afterwards the
/// model totals are exact — nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_service_killed_mid_stream_counts_exactly_once() {
    let mut s = Stack::start(StackOptions::default()).await;
    let ns = "ts-kill";
    let key = s.world(ns, MODEL, json!({})).await;

    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        4,
        usize::MAX,
        Duration::from_millis(10),
        |i| chat_body(MODEL, i % 2 == 0, None),
    );
    // Kill it while it is busy applying records.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.model_totals(MODEL, ns).await.requests < 50 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.ts.kill().await;
    let at_kill = load.done();
    load.wait_done(at_kill + 200, Duration::from_secs(60)).await;
    let obs = load.finish().await;
    let n = obs.answered();
    assert_eq!(obs.transport_errors, 0, "{:?}", obs.first_errors);
    assert_eq!(obs.non_200(), 0, "{:?}", obs.first_errors);

    // While it is down the records wait: the totals are short of n.
    tokio::time::sleep(FLUSH * 4).await;
    let waiting = s.model_totals(MODEL, ns).await;
    assert!(
        (waiting.requests as usize) < n,
        "totals complete without a token-service: {waiting:?}"
    );

    s.ts.start().await;
    let want_t = expected_totals(n, n);
    let got_t = s
        .settle(Duration::from_secs(60), &want_t, || {
            s.model_totals(MODEL, ns)
        })
        .await;
    let want = expected_counts(&obs, 0);
    let got = counts(&s, ns, &[200]).await;
    report(
        "token-service killed (SIGKILL) while consuming, restarted later",
        &format!(
            "{n} chat requests (1/2 streamed) from 4 clients, {} accounted before the restart",
            waiting.requests
        ),
        &format!(
            "requests lost {}, tokens lost {}, cost lost {} nano-USD",
            lost(want_t.requests, got_t.requests),
            lost(
                want_t.tokens_in + want_t.tokens_out,
                got_t.tokens_in + got_t.tokens_out
            ),
            lost(want_t.cost_nusd, got_t.cost_nusd)
        ),
    );
    assert_eq!(got_t, want_t, "model totals after the restart");
    assert_eq!(got, want, "gateway counters");
}

/// Whether the gateway's `/metrics` shows the instance's health as `want`.
async fn healthy_on_metrics(s: &Stack, labels: &[(&str, &str)], want: f64) -> bool {
    let m = s.text(&format!("{}/metrics", s.gw(0))).await;
    sample(&m, "ai_gateway_instance_healthy", labels) == Some(want)
}

/// 3. One of two upstream instances killed under load: non-streaming
/// requests fail over (at most the requests in flight on it may fail), the
/// instance turns unhealthy in Redis and on `/metrics`, and healthy again
/// once restarted; counts are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_instance_killed_fails_over_and_recovers() {
    let mut s = Stack::start(StackOptions {
        mocks: 2,
        mock_env: vec![("MOCK_LATENCY_MS".into(), "30".into())],
        gateway_env: vec![("PASSIVE_COOLDOWN".into(), "1s".into())],
        ..StackOptions::default()
    })
    .await;
    let ns = "failover";
    let key = s.world(ns, MODEL, json!({})).await;
    let health_key = format!("metrics:instance:{ns}-i1:{ns}");
    let workers = 4;

    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        workers,
        usize::MAX,
        Duration::from_millis(10),
        |_| chat_body(MODEL, false, None),
    );
    load.wait_done(80, Duration::from_secs(30)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            s.int(&health_key).await == 1
        })
        .await,
        "instance 1 healthy before the kill"
    );
    s.mocks[1].kill().await;
    let killed_at = Instant::now();
    assert!(
        eventually(Duration::from_secs(15), || async {
            s.int(&health_key).await == 0
        })
        .await,
        "the killed instance turns unhealthy in Redis"
    );
    let instance_labels = [("instance_id", "failover-i1"), ("namespace_code", ns)];
    // A render is served again for up to a second: wait for a fresh one.
    assert!(
        eventually(Duration::from_secs(5), || healthy_on_metrics(
            &s,
            &instance_labels,
            0.0
        ))
        .await,
        "unhealthy on /metrics"
    );
    let before_restart = load.done();
    load.wait_done(before_restart + 80, Duration::from_secs(30))
        .await;

    s.mocks[1].start().await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            s.int(&health_key).await == 1
        })
        .await,
        "the restarted instance turns healthy again in Redis"
    );
    assert!(
        eventually(Duration::from_secs(5), || healthy_on_metrics(
            &s,
            &instance_labels,
            1.0
        ))
        .await,
        "healthy again on /metrics"
    );
    // It takes traffic again.
    let served_before = chat_count(&s, 1).await;
    let resumed = load.done();
    load.wait_done(resumed + 80, Duration::from_secs(30)).await;
    let obs = load.finish().await;
    let served_after = chat_count(&s, 1).await;
    assert!(
        served_after > served_before,
        "restarted instance gets requests again"
    );

    let n = obs.answered();
    let ok = obs.status(200);
    // Requests that ended before the kill plus those after it: at most the
    // ones in flight on the dying instance may fail (one per client).
    let failed_at_kill = obs
        .outcomes
        .iter()
        .filter(|o| o.status != Some(200) && o.finished >= killed_at)
        .count();
    assert_eq!(obs.transport_errors, 0, "{:?}", obs.first_errors);
    assert!(
        obs.non_200() <= workers,
        "{} failed requests, more than the {workers} that can be in flight: {:?}",
        obs.non_200(),
        obs.first_errors
    );
    let statuses: Vec<u16> = obs.by_status.keys().copied().collect();
    let want = expected_counts(&obs, 0);
    let got = s
        .settle(Duration::from_secs(30), &want, || counts(&s, ns, &statuses))
        .await;
    let want_t = expected_totals(n, ok);
    let got_t = s
        .settle(Duration::from_secs(60), &want_t, || {
            s.model_totals(MODEL, ns)
        })
        .await;
    report(
        "one of two upstream instances killed (SIGKILL) under load, restarted later",
        &format!("{n} non-streaming chat requests from {workers} clients"),
        &format!(
            "client-visible failures {} (bound: {workers} in flight), {failed_at_kill} after the kill; counts lost {}",
            obs.non_200(),
            lost(want.ns_requests, got.ns_requests)
        ),
    );
    assert_eq!(got, want, "gateway counters");
    assert_eq!(got_t, want_t, "token-service totals");
}

async fn chat_count(s: &Stack, mock: usize) -> u64 {
    s.json(&format!("{}/mock/stats", s.mocks[mock].url())).await["requests"]["chat_completions"]
        .as_u64()
        .unwrap_or(0)
}

/// 4. The config-center stopped: the gateway and the token-service keep
/// working on their last snapshot (even across a gateway restart); changes
/// made after it is back propagate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_center_down_keeps_serving_and_changes_propagate_after() {
    let mut s = Stack::start(StackOptions::default()).await;
    let ns = "cc-down";
    let key = s.world(ns, MODEL, json!({})).await;
    s.cc.kill().await;

    // Serving and counting tokens go on.
    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key.clone(),
        2,
        100,
        Duration::ZERO,
        |i| chat_body(MODEL, i % 2 == 0, None),
    );
    let obs1 = load.complete().await;
    assert_eq!(obs1.status(200), 100, "{:?}", obs1.first_errors);
    let r = s
        .http
        .post(format!("{}/v1/tokens/count", s.ts.url()))
        .json(&json!({"model": MODEL, "text": "hello world"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A gateway restarted meanwhile (gracefully: a SIGKILL would lose its
    // last flush interval) loads the last snapshot from Redis.
    assert_eq!(
        s.gateways[0].terminate(Duration::from_secs(20)).await,
        Some(0)
    );
    s.gateways[0].start().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.json(&format!("{}/ready", s.gw(0))).await["status"] == "ready"
        })
        .await
    );
    let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
    assert_eq!(o.status, Some(200), "{}", o.body);

    // Back, and changes propagate: a new model with its instance and key, a
    // revoked key.
    s.cc.start().await;
    s.model("m2", "1", "2").await;
    s.instance("cc-down-m2", ns, "m2", &s.mock_base(0), json!({}))
        .await;
    let (_, key2, _) = s.key(ns, json!({})).await;
    let old_id = s
        .admin(
            reqwest::Method::GET,
            &format!("/api/v1/namespaces/{ns}/api-keys"),
            None,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = s.revoke(ns, &old_id).await.expect("revocation version");
    s.wait_version(v).await;
    let o = send(&s.http, &s.gw(0), &key2, &chat_body("m2", false, None)).await;
    assert_eq!(o.status, Some(200), "new key and model work: {}", o.body);
    let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
    assert_eq!(o.status, Some(401), "revoked key refused: {}", o.body);
    let models = s.json(&format!("{}/v1/models", s.ts.url())).await;
    assert!(
        models["models"].as_array().is_some_and(|m| m
            .iter()
            .any(|x| x["model"] == "m2" && x["source"] != "builtin")),
        "token-service sees the new model: {models}"
    );

    let n = obs1.answered() + 1;
    let want_t = expected_totals(n, n);
    let got_t = s
        .settle(Duration::from_secs(30), &want_t, || {
            s.model_totals(MODEL, ns)
        })
        .await;
    // 100 + 1 + 1 (m2) requests of the namespace; plus one 401 globally.
    let want_c = Counts {
        global_requests: 103,
        global_errors: 1,
        ns_requests: 102,
        ns_successful: 102,
        ns_failed: 0,
        by_status: [(200, 102)].into_iter().collect(),
    };
    let got_c = s
        .settle(Duration::from_secs(30), &want_c, || counts(&s, ns, &[200]))
        .await;
    assert_eq!(got_c, want_c, "gateway counters across the restart");
    report(
        "config-center killed; gateway restarted meanwhile; config-center back",
        "101 chat requests and token counting while it was down; then a new model, key and a revocation",
        &format!(
            "failed requests 0; token totals lost {}; changes after its return propagated",
            lost(want_t.requests, got_t.requests)
        ),
    );
    assert_eq!(got_t, want_t);
}

/// 5. SIGTERM under load: the gateway (two HTTP workers) stops accepting,
/// finishes the requests in flight (streams included), flushes metrics and
/// usage, and exits 0; the counts equal what clients were answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_under_load_drains_and_counts_exactly() {
    sigterm_under_load("2").await;
}

/// The same, five rounds in a row (~1 minute, run in CI because the failure
/// it guards against showed only about one run in five). History: with
/// one `reqwest::Client` shared by every actix worker, about one run in
/// five cut a stream at shutdown (`upstream_stream_error` a second after
/// the signal): a pooled upstream connection's driver task lived on the
/// runtime of the worker that opened it and died when that worker stopped.
/// Since the gateway keeps one plain-HTTP client per worker
/// (`services/gateway/src/upstream.rs`) no round has failed; HTTPS
/// instances still share one reqwest client and are not covered here (the
/// test upstreams are plain HTTP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigterm_five_rounds_never_cuts_a_stream() {
    for _ in 0..5 {
        sigterm_under_load("2").await;
    }
}

async fn sigterm_under_load(workers: &str) {
    let mut s = Stack::start(StackOptions {
        gateway_env: vec![("GATEWAY_WORKERS".into(), workers.into())],
        ..StackOptions::default()
    })
    .await;
    let ns = "sigterm";
    let key = s.world(ns, MODEL, json!({})).await;

    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        6,
        usize::MAX,
        Duration::from_millis(20),
        |i| {
            if i % 2 == 0 {
                // A stream of about 1.5 s.
                chat_body(MODEL, true, Some(json!({"chunk_delay_ms": 300})))
            } else {
                chat_body(MODEL, false, Some(json!({"latency_ms": 200})))
            }
        },
    );
    load.wait_done(30, Duration::from_secs(30)).await;
    let term_at = Instant::now();
    s.gateways[0].signal_term();
    let code = s.gateways[0].wait_exit(Duration::from_secs(20)).await;
    let exited_at = Instant::now();
    let obs = load.finish().await;

    assert_eq!(
        code,
        Some(0),
        "exit code after SIGTERM; logs:\n{}",
        s.gateways[0].logs()
    );
    let in_flight_done = obs
        .outcomes
        .iter()
        .filter(|o| o.started < term_at && o.finished >= term_at && o.status == Some(200))
        .count();
    let streams_in_flight = obs
        .outcomes
        .iter()
        .filter(|o| o.started < term_at && o.finished >= term_at && o.stream_done())
        .count();
    assert!(in_flight_done > 0, "no request was in flight at SIGTERM");
    assert!(streams_in_flight > 0, "no stream was in flight at SIGTERM");
    let cut: Vec<String> = obs
        .outcomes
        .iter()
        .filter(|o| o.status == Some(200) && o.body.starts_with("data:") && !o.stream_done())
        .map(|o| {
            format!(
                "started {:?} / ended {:?} after SIGTERM (exit {:?} after), error {:?}, tail {:?}",
                o.started
                    .checked_duration_since(term_at)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or_else(|| -(term_at.duration_since(o.started).as_millis() as i64)),
                o.finished.duration_since(term_at),
                exited_at.duration_since(term_at),
                o.error,
                &o.body[o.body.len().saturating_sub(200)..]
            )
        })
        .collect();
    // Nothing is answered after the exit: the rest were refused.
    assert!(obs
        .outcomes
        .iter()
        .filter(|o| o.status.is_some())
        .all(|o| o.finished <= exited_at + Duration::from_millis(100)));

    let n = obs.answered();
    let want = expected_counts(&obs, 0);
    // No gateway runs any more: what is in Redis is what the exit flushed.
    let got = counts(&s, ns, &[200]).await;
    let want_t = expected_totals(n, n);
    let got_t = s
        .settle(Duration::from_secs(30), &want_t, || {
            s.model_totals(MODEL, ns)
        })
        .await;
    report(
        &format!("gateway ({workers} HTTP worker(s)) sent SIGTERM under load"),
        &format!(
            "{n} chat requests (1/2 streams of 1.5 s) from 6 clients; {in_flight_done} in flight at SIGTERM ({streams_in_flight} streams), {} refused after",
            obs.transport_errors
        ),
        &format!(
            "cut or failed requests {}; counts lost {}; usage lost {}",
            cut.len() + obs.non_200(),
            lost(want.ns_requests, got.ns_requests),
            lost(want_t.requests, got_t.requests)
        ),
    );
    // Everything answered was answered fully and successfully.
    assert_eq!(obs.non_200(), 0, "{:?}", obs.first_errors);
    assert!(
        cut.is_empty(),
        "streams in flight were cut:\n{}\ngateway log tail:\n{}",
        cut.join("\n"),
        s.gateways[0]
            .logs()
            .lines()
            .filter(|l| l.contains("WARN")
                || l.contains("ERROR")
                || l.contains("shutdown")
                || l.contains("stopped"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(got, want, "counters flushed at exit");
    assert_eq!(got_t, want_t, "usage flushed at exit");
    assert_eq!(
        s.int(&format!("metrics:ns:{ns}:concurrent_requests")).await,
        0
    );
}

/// 6. Two gateway replicas behind one Redis: counts are the sum, an RPM limit
/// holds across both, and a replica killed with SIGKILL leaves no stale
/// in-flight count after a few flush intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sum_share_limits_and_forget_a_killed_one() {
    let mut s = Stack::start(StackOptions {
        gateways: 2,
        ..StackOptions::default()
    })
    .await;
    let ns = "replicas";
    let key = s.world(ns, MODEL, json!({})).await;
    let limited = "limited";
    let rpm = 20;
    let key_l = s
        .world(limited, MODEL, json!({"limits": {"rpm": rpm}}))
        .await;

    // Counts are the sum over both replicas.
    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0), s.gw(1)],
        key.clone(),
        4,
        300,
        Duration::ZERO,
        |i| chat_body(MODEL, i % 3 == 0, None),
    );
    let obs = load.complete().await;
    assert_eq!(obs.status(200), 300, "{:?}", obs.first_errors);

    // The RPM limit holds across replicas: alternate between them.
    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0), s.gw(1)],
        key_l,
        1,
        rpm as usize + 10,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    );
    let obs_l = load.complete().await;
    assert_eq!(obs_l.status(200), rpm as usize, "{:?}", obs_l.by_status);
    assert_eq!(obs_l.status(429), 10, "{:?}", obs_l.by_status);

    let want = expected_counts(&obs, obs_l.answered() as i64);
    let mut want = want;
    want.global_errors = 10;
    let got = s
        .settle(Duration::from_secs(30), &want, || counts(&s, ns, &[200]))
        .await;
    let want_l = Counts {
        global_requests: want.global_requests,
        global_errors: 10,
        ns_requests: rpm + 10,
        ns_successful: rpm,
        ns_failed: 10,
        by_status: [(200, rpm), (429, 10)].into_iter().collect(),
    };
    let got_l = counts(&s, limited, &[200, 429]).await;
    assert_eq!(got, want, "sum over replicas");
    assert_eq!(got_l, want_l, "limited namespace over replicas");
    let got_t = s
        .settle(Duration::from_secs(30), &expected_totals(300, 300), || {
            s.model_totals(MODEL, ns)
        })
        .await;
    assert_eq!(got_t, expected_totals(300, 300));

    // Long streams in flight on replica 1, then SIGKILL.
    let conc = format!("metrics:ns:{ns}:concurrent_requests");
    let streams = Load::start(
        s.http.clone(),
        vec![s.gw(1)],
        key.clone(),
        4,
        4,
        Duration::ZERO,
        |_| {
            chat_body(
                MODEL,
                true,
                Some(json!({"chunks": 100, "chunk_delay_ms": 200})),
            )
        },
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.int(&conc).await == 4
        })
        .await,
        "4 streams in flight seen in Redis (got {})",
        s.int(&conc).await
    );
    let before = s.int(&format!("metrics:ns:{ns}:total_requests")).await;
    s.gateways[1].kill().await;
    let cut = streams.finish().await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.int(&conc).await == 0
        })
        .await,
        "stale in-flight count of the killed replica: {}",
        s.int(&conc).await
    );
    // The survivor shows the fleet's gauge, at 0 (if the killed replica was
    // the one exporting the fleet series, once its lease has expired).
    assert!(
        eventually(Duration::from_secs(10), || async {
            let m = s.text(&format!("{}/metrics", s.gw(0))).await;
            sample(
                &m,
                "ai_gateway_namespace_concurrent_requests",
                &[("namespace_code", ns)],
            ) == Some(0.0)
        })
        .await,
        "the in-flight gauge on the survivor's /metrics returns to 0"
    );
    // The survivor still serves and counts.
    let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
    assert_eq!(o.status, Some(200));
    let after = s
        .settle(Duration::from_secs(10), &(before + 1), || async {
            s.int(&format!("metrics:ns:{ns}:total_requests")).await
        })
        .await;
    assert_eq!(after, before + 1);
    report(
        "two gateway replicas, one SIGKILLed with 4 streams in flight",
        &format!(
            "300 requests over both + {} against a shared RPM limit of {rpm}; 4 long streams on the killed one",
            rpm + 10
        ),
        &format!(
            "counts lost 0; RPM admitted exactly {rpm}; stale in-flight 0; the {} streams cut by SIGKILL are not counted (no process left to count them)",
            cut.answered()
        ),
    );
}
