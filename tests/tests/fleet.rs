//! Three gateway and two token-service replicas on one Redis, scraped by a
//! real Prometheus as the product specification's jobs, load through all
//! the gateways:
//! the Redis counters equal the answers the clients got, the specification's
//! `sum(...)` over the job equals the truth (one replica exports the fleet
//! series), a `max_concurrency: 2` namespace never has more than two
//! requests at its upstream across the fleet, the in-flight gauge and the
//! fleet's lease set return to zero, and when the exporting replica stops
//! another continues from the same totals.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::load::{chat_body, Load};
use aigw_e2e::monitoring::{test_prometheus_config, which, LogsOnPanic, Prometheus, Targets};
use aigw_e2e::stack::{Stack, StackOptions};
use aigw_e2e::wait::eventually;
use serde_json::json;
use std::time::Duration;

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
