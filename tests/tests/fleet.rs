//! Three gateway and two token-service replicas on one Redis, scraped by a
//! real Prometheus as the product specification's jobs, load through all
//! the gateways:
//! the Redis counters equal the answers the clients got, the specification's
//! `sum(...)` over the job equals the truth (one replica exports the fleet
//! series), a `max_concurrency: 2` namespace never has more than two
//! requests at its upstream across the fleet, the in-flight gauge and the
//! fleet's lease set return to zero, and when the exporting replica stops
//! another continues from the same totals.
//!
//! The conformance run does the same on a local Redis Cluster (3 masters,
//! 3 replicas) and SIGKILLs one gateway in the middle of the load: a
//! survivor replays its journal from the shared directory, and every
//! number still adds up.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::load::Observed;
use aigw_e2e::load::{chat_body, Load};
use aigw_e2e::monitoring::{test_prometheus_config, which, LogsOnPanic, Prometheus, Targets};
use aigw_e2e::stack::{RedisKind, Stack, StackOptions};
use aigw_e2e::wait::eventually;
use aigw_testkit::TempDir;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "m1";

/// The value of a query that yields one series (`None` for none).
async fn one(prom: &Prometheus, expr: &str) -> Option<f64> {
    let v = prom.query(expr).await.ok()?;
    match v.as_slice() {
        [s] => Some(s.value),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_gateways_count_exactly_and_share_one_concurrency_limit() {
    let Some(prometheus) = which("prometheus") else {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "prometheus is not installed (scripts/test.sh installs it)"
        );
        println!("SKIPPED: prometheus is not installed");
        return;
    };
    let mut s = Stack::start(StackOptions {
        gateways: 3,
        mocks: 2,
        mock_env: vec![("MOCK_LATENCY_MS".into(), "20".into())],
        ..StackOptions::default()
    })
    .await;
    s.model(MODEL, "1", "2").await;
    s.namespace("fleet", json!({})).await;
    s.instance(
        "fleet-i0",
        "fleet",
        MODEL,
        &s.mock_base(0),
        json!({"api_key": "sk-up-fleet", "timeout_ms": 5000}),
    )
    .await;
    // Its own upstream, so the upstream's count of requests at once is
    // this namespace's.
    s.namespace("capped", json!({"limits": {"max_concurrency": 2}}))
        .await;
    s.instance(
        "capped-i1",
        "capped",
        MODEL,
        &s.mock_base(1),
        json!({"api_key": "sk-up-capped", "timeout_ms": 5000}),
    )
    .await;
    let (_, fleet_key, _) = s.key("fleet", json!({})).await;
    let (_, capped_key, v) = s.key("capped", json!({})).await;
    s.wait_version(v).await;
    let ts2 = s.token_service_replica("ts-e2e-2").await;

    // Each job lists every replica, as a scaled deployment's does.
    let mut targets = Targets::of(&s);
    targets.gateway = (0..3)
        .map(|i| format!("127.0.0.1:{}", s.gateways[i].port))
        .collect::<Vec<_>>()
        .join("\", \"");
    targets.token_service = format!("127.0.0.1:{}\", \"127.0.0.1:{}", s.ts.port, ts2.port);
    let prom = Prometheus::start(&prometheus, &test_prometheus_config(&targets, "1s")).await;
    let _logs = LogsOnPanic(&prom);

    let urls: Vec<String> = (0..3).map(|i| s.gw(i)).collect();
    let fleet = Load::start(
        s.http.clone(),
        urls.clone(),
        fleet_key,
        4,
        600,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    );
    let capped = Load::start(
        s.http.clone(),
        urls.clone(),
        capped_key,
        8,
        200,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    );
    let fleet = fleet.complete().await;
    let capped = capped.complete().await;
    assert_eq!(
        fleet.by_status.get(&200),
        Some(&600),
        "{:?}",
        fleet.first_errors
    );
    let served = capped.by_status.get(&200).copied().unwrap_or(0);
    let refused = capped.by_status.get(&429).copied().unwrap_or(0);
    assert_eq!(served + refused, 200, "{:?}", capped.first_errors);
    assert!(
        served > 0 && refused > 0,
        "{served} served, {refused} refused"
    );

    // At the upstream, never more than two of the capped namespace's
    // requests at once, though eight clients pushed through three replicas.
    let stats = s.json(&format!("{}/mock/stats", s.mocks[1].url())).await;
    let max = stats["waiting"]["max"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&max),
        "upstream saw {max} at once: {stats}"
    );

    // Redis: every answer counted once; the leases all gone.
    let counted = |key: String, want: i64| {
        let s = &s;
        async move {
            eventually(Duration::from_secs(10), || async {
                s.int(&key).await == want
            })
            .await
        }
    };
    assert!(counted("metrics:ns:fleet:total_requests".into(), 600).await);
    assert!(counted("metrics:ns:capped:total_requests".into(), 200).await);
    assert!(counted("metrics:ns:capped:status:429".into(), refused as i64).await);
    assert!(counted("metrics:global:total_requests".into(), 800).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.keys("ratelimit:ns:capped:inflight").await.is_empty()
        })
        .await,
        "every lease released"
    );

    // Prometheus: the specification's sums over the three replicas are the
    // truth; exactly one replica exports; the in-flight gauge is back to 0.
    let ns_requests =
        r#"sum by (namespace_code) (ai_gateway_namespace_requests_total{namespace_code="fleet"})"#;
    assert!(
        eventually(Duration::from_secs(15), || async {
            one(&prom, ns_requests).await == Some(600.0)
                && one(&prom, "sum(ai_gateway_requests_total)").await == Some(800.0)
        })
        .await,
        "sums over the job: {:?} {:?}",
        one(&prom, ns_requests).await,
        one(&prom, "sum(ai_gateway_requests_total)").await
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            one(&prom, r#"count(up{job="gateway"} == 1)"#).await == Some(3.0)
        })
        .await,
        "every replica scraped: {:?}",
        prom.query("up").await
    );
    assert_eq!(
        one(&prom, r#"sum(ai_gateway_metrics_exporter{job="gateway"})"#).await,
        Some(1.0)
    );
    // The two token-services shared the usage stream (each record applied
    // once) and one of them shows the model totals.
    assert!(counted("metrics:token_service:usage_records_processed".into(), 800).await);
    assert!(
        eventually(Duration::from_secs(15), || async {
            one(&prom, r#"count(up{job="token-service"} == 1)"#).await == Some(2.0)
                && one(
                    &prom,
                    r#"sum(model_requests_total{namespace_code="fleet"})"#,
                )
                .await
                    == Some(600.0)
        })
        .await,
        "token-service sums: {:?}",
        prom.query(r#"model_requests_total"#).await
    );
    assert_eq!(
        one(
            &prom,
            r#"sum(token_service_metrics_exporter{job="token-service"})"#
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        one(
            &prom,
            r#"sum(ai_gateway_namespace_concurrent_requests{namespace_code="capped"})"#
        )
        .await,
        Some(0.0)
    );

    // The exporting replica stops: another shows the same totals.
    let exporter = prom
        .query(r#"ai_gateway_metrics_exporter{job="gateway"} == 1"#)
        .await
        .unwrap();
    let instance = exporter[0].labels["instance"].clone();
    let i = (0..3)
        .find(|i| instance.ends_with(&format!(":{}", s.gateways[*i].port)))
        .expect("the exporter is one of the three");
    assert_eq!(
        s.gateways[i].terminate(Duration::from_secs(15)).await,
        Some(0)
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            let others = format!(
                r#"sum(ai_gateway_metrics_exporter{{job="gateway",instance!="{instance}"}})"#
            );
            one(&prom, &others).await == Some(1.0) && one(&prom, ns_requests).await == Some(600.0)
        })
        .await,
        "a remaining replica exports the same totals"
    );
}

/// Answers a client received whole (any status; a stream through
/// `data: [DONE]`), of them the 429s, and requests in flight at the kill
/// that got no whole answer.
fn split(seen: &Observed, killed_at: Instant) -> (i64, i64, i64) {
    let (mut whole, mut refused, mut cut) = (0, 0, 0);
    for o in &seen.outcomes {
        let complete = o.status.is_some()
            && o.error.is_none()
            && (!o.body.starts_with("data:") || o.stream_done());
        if complete {
            whole += 1;
            refused += i64::from(o.status == Some(429));
        } else if o.started <= killed_at {
            cut += 1;
        }
    }
    (whole, refused, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_a_redis_cluster_keeps_every_number_when_a_gateway_is_killed() {
    let Some(prometheus) = which("prometheus") else {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "prometheus is not installed (scripts/test.sh installs it)"
        );
        println!("SKIPPED: prometheus is not installed");
        return;
    };
    let journal = TempDir::new("fleet-journal");
    let mut s = Stack::start(StackOptions {
        gateways: 3,
        mocks: 2,
        redis: RedisKind::Cluster,
        mock_env: vec![("MOCK_LATENCY_MS".into(), "20".into())],
        gateway_env: vec![
            ("JOURNAL_DIR".into(), journal.path().display().to_string()),
            ("METRICS_FLUSH_INTERVAL".into(), "100ms".into()),
            ("CONCURRENCY_LEASE_TTL".into(), "2s".into()),
        ],
        ..StackOptions::default()
    })
    .await;
    s.model(MODEL, "1", "2").await;
    s.namespace("fleet", json!({})).await;
    s.instance(
        "fleet-i0",
        "fleet",
        MODEL,
        &s.mock_base(0),
        json!({"api_key": "sk-up-fleet", "timeout_ms": 5000}),
    )
    .await;
    s.namespace("capped", json!({"limits": {"max_concurrency": 2}}))
        .await;
    s.instance(
        "capped-i1",
        "capped",
        MODEL,
        &s.mock_base(1),
        json!({"api_key": "sk-up-capped", "timeout_ms": 5000}),
    )
    .await;
    let (_, fleet_key, _) = s.key("fleet", json!({})).await;
    let (_, capped_key, v) = s.key("capped", json!({})).await;
    s.wait_version(v).await;
    let ts2 = s.token_service_replica("ts-e2e-2").await;

    let mut targets = Targets::of(&s);
    targets.gateway = (0..3)
        .map(|i| format!("127.0.0.1:{}", s.gateways[i].port))
        .collect::<Vec<_>>()
        .join("\", \"");
    targets.token_service = format!("127.0.0.1:{}\", \"127.0.0.1:{}", s.ts.port, ts2.port);
    let prom = Prometheus::start(&prometheus, &test_prometheus_config(&targets, "1s")).await;
    let _logs = LogsOnPanic(&prom);

    // Load through all three until one dies: whole answers and streams on
    // the open namespace, eight clients pushing the capped one.
    let urls: Vec<String> = (0..3).map(|i| s.gw(i)).collect();
    let fleet = Load::start(
        s.http.clone(),
        urls.clone(),
        fleet_key,
        6,
        usize::MAX,
        Duration::ZERO,
        |i| chat_body(MODEL, i % 2 == 0, None),
    );
    let capped = Load::start(
        s.http.clone(),
        urls.clone(),
        capped_key,
        8,
        usize::MAX,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    );
    fleet.wait_done(300, Duration::from_secs(60)).await;
    let killed_at = Instant::now();
    s.gateways[0].kill().await;
    // The survivors go on answering for a while (the killed replica's
    // clients get connection errors).
    fleet.wait_done(600, Duration::from_secs(60)).await;
    let fleet = fleet.finish().await;
    let capped = capped.finish().await;
    let (fleet_whole, fleet_429, fleet_cut) = split(&fleet, killed_at);
    let (capped_whole, capped_429, capped_cut) = split(&capped, killed_at);
    assert_eq!(fleet_429, 0, "{:?}", fleet.first_errors);
    assert!(
        fleet_whole >= 500,
        "{:?} {:?}",
        fleet.by_status,
        fleet.first_errors
    );
    assert!(
        capped_whole > capped_429 && capped_429 > 0,
        "{:?} {:?}",
        capped.by_status,
        capped.first_errors
    );

    // Never more than two of the capped namespace's requests at its
    // upstream at once, across the fleet and through the kill.
    let stats = s.json(&format!("{}/mock/stats", s.mocks[1].url())).await;
    let max = stats["waiting"]["max"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&max),
        "upstream saw {max} at once: {stats}"
    );

    // Redis, once a survivor has replayed the dead replica's journal
    // (within its 10 s scan): every whole answer counted once; a request
    // the kill cut off at most once.
    let within = |v: i64, whole: i64, cut: i64| (whole..=whole + cut).contains(&v);
    let settled = eventually(Duration::from_secs(40), || async {
        let f = s.int("metrics:ns:fleet:total_requests").await;
        let c = s.int("metrics:ns:capped:total_requests").await;
        let g = s.int("metrics:global:total_requests").await;
        within(f, fleet_whole, fleet_cut)
            && within(c, capped_whole, capped_cut)
            && g == f + c
            && s.int("metrics:token_service:usage_records_processed").await == g
    })
    .await;
    let f = s.int("metrics:ns:fleet:total_requests").await;
    let c = s.int("metrics:ns:capped:total_requests").await;
    let g = s.int("metrics:global:total_requests").await;
    assert!(
        settled,
        "fleet {f} (whole {fleet_whole}, cut {fleet_cut}), capped {c} (whole {capped_whole}, cut {capped_cut}), global {g}, records {}",
        s.int("metrics:token_service:usage_records_processed").await
    );
    assert!(
        s.gateways[1..]
            .iter()
            .any(|g| g.logs().contains("journals of stopped replicas replayed")),
        "a survivor replayed the journal"
    );
    let refused = s.int("metrics:ns:capped:status:429").await;
    assert!(
        within(refused, capped_429, capped_cut),
        "429s counted {refused}, answered {capped_429}"
    );
    assert_eq!(
        s.int("metrics:ns:fleet:status:200").await
            + s.int("metrics:ns:capped:status:200").await
            + refused,
        g
    );
    // The dead replica's share of the in-flight gauge expires with it.
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.int("metrics:ns:capped:concurrent_requests").await == 0
                && s.int("metrics:ns:fleet:concurrent_requests").await == 0
        })
        .await,
        "in-flight gauges back to 0"
    );

    // Prometheus: the specification's sums over the jobs equal Redis'
    // totals, no counter went backwards, the in-flight gauge shows 0.
    let ns_requests =
        r#"sum by (namespace_code) (ai_gateway_namespace_requests_total{namespace_code="fleet"})"#;
    assert!(
        eventually(Duration::from_secs(20), || async {
            one(&prom, ns_requests).await == Some(f as f64)
                && one(&prom, "sum(ai_gateway_requests_total)").await == Some(g as f64)
                && one(
                    &prom,
                    r#"sum(model_requests_total{namespace_code="fleet"})"#,
                )
                .await
                    == Some(f as f64)
                && one(
                    &prom,
                    r#"sum(ai_gateway_namespace_concurrent_requests{namespace_code="capped"})"#,
                )
                .await
                    == Some(0.0)
        })
        .await,
        "sums over the jobs: {:?} {:?} {:?}",
        one(&prom, ns_requests).await,
        one(&prom, "sum(ai_gateway_requests_total)").await,
        one(
            &prom,
            r#"sum(model_requests_total{namespace_code="fleet"})"#
        )
        .await
    );
    assert_eq!(
        one(
            &prom,
            "sum(resets(ai_gateway_requests_total[5m])) + sum(resets(ai_gateway_namespace_requests_total[5m]))"
        )
        .await,
        Some(0.0),
        "no counter dipped"
    );
    assert!(
        eventually(Duration::from_secs(20), || async {
            one(&prom, r#"sum(ai_gateway_metrics_exporter{job="gateway"})"#).await == Some(1.0)
                && one(
                    &prom,
                    r#"sum(token_service_metrics_exporter{job="token-service"})"#,
                )
                .await
                    == Some(1.0)
        })
        .await,
        "one exporter per job"
    );
}
