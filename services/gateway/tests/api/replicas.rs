//! Several gateway replicas on one Redis: exactly one shows the fleet
//! series on `/metrics`, so a scrape job over all of them sums to the truth;
//! when it leaves (stopped or killed) another takes over with the same
//! totals, so no counter dips.

use crate::helpers::*;
use aigw_testkit::RedisServer;
use std::time::Duration;

/// The sum of `series` over the replicas' scrapes (absent counts 0).
fn sum(scrapes: &[&Metrics], series: &str) -> f64 {
    scrapes.iter().map(|m| m.get(series).unwrap_or(0.0)).sum()
}

async fn chat_ok(base: &str) {
    assert_eq!(chat_status(&client(), base).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_exports_the_fleet_series_and_another_takes_over_when_it_stops() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    let snap = one_instance(&up.base_url());
    publish(&redis, &snap).await;
    let mut s = test_settings(&redis.url());
    s.metrics_exporter_ttl = Duration::from_millis(900);
    let a = Gateway::start(s.clone()).await;
    a.wait_version(snap.version).await;
    let b = Gateway::start(s).await;
    b.wait_version(snap.version).await;

    for base in [&a.addr, &b.addr, &a.addr, &b.addr, &a.addr] {
        chat_ok(base).await;
    }
    settle(&a, &redis).await;
    settle(&b, &redis).await;
    let (ma, mb) = (scrape(&a.addr).await, scrape(&b.addr).await);
    let both = [&ma, &mb];
    assert_eq!(sum(&both, "ai_gateway_metrics_exporter"), 1.0);
    assert_eq!(sum(&both, "ai_gateway_requests_total"), 5.0);
    assert_eq!(
        sum(
            &both,
            r#"ai_gateway_namespace_requests_total{namespace_code="team-a"}"#
        ),
        5.0
    );
    // Process metrics come from every replica.
    assert!(ma.get("process_cpu_seconds_total").is_some());
    assert!(mb.get("process_cpu_seconds_total").is_some());
    let (exporter, other) = if ma.value("ai_gateway_metrics_exporter") == 1.0 {
        (a, b)
    } else {
        (b, a)
    };
    // The other shows no fleet series at all.
    let mo = scrape(&other.addr).await;
    assert_eq!(mo.get("ai_gateway_requests_total"), None, "{}", mo.text);

    // The exporter stops: it gives the lease up, the other takes it and
    // shows the same totals.
    exporter.handle.stop(true).await;
    exporter.task.await.unwrap().unwrap();
    chat_ok(&other.addr).await;
    settle(&other, &redis).await;
    eventually("the other replica exports", || async {
        scrape(&other.addr).await.get("ai_gateway_requests_total") == Some(6.0)
    })
    .await;
    assert_eq!(
        scrape(&other.addr)
            .await
            .value("ai_gateway_metrics_exporter"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_exporter_is_replaced_within_its_lease() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    let snap = one_instance(&up.base_url());
    publish(&redis, &snap).await;
    // The binary starts first and takes the lease.
    let (mut dead, dead_url) =
        spawn_gateway_binary(&redis, &[("METRICS_EXPORTER_TTL", "1s")]).await;
    eventually("the first replica exports", || async {
        scrape(&dead_url).await.get("ai_gateway_metrics_exporter") == Some(1.0)
    })
    .await;
    chat_ok(&dead_url).await;
    let mut s = test_settings(&redis.url());
    s.metrics_exporter_ttl = Duration::from_secs(1);
    let live = Gateway::start(s).await;
    live.wait_version(snap.version).await;
    chat_ok(&live.addr).await;
    settle(&live, &redis).await;
    eventually("the first request flushed", || async {
        redis.get_i64("metrics:global:total_requests").await == 2
    })
    .await;
    assert_eq!(
        scrape(&live.addr)
            .await
            .value("ai_gateway_metrics_exporter"),
        0.0
    );

    dead.kill().await;
    eventually("the live replica exports", || async {
        scrape(&live.addr).await.get("ai_gateway_requests_total") == Some(2.0)
    })
    .await;
}
