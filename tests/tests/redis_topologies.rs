//! The gateway, token-service and config-center on a local Redis Cluster
//! (3 masters, 3 replicas) and through Sentinel, over the real binaries.
//!
//! On the cluster: requests through the gateway while the master holding
//! the usage stream is SIGKILLed and its replica promoted; afterwards the
//! gateway's counters equal the answers the client received and the
//! token-service's totals and cost are exact — nothing lost, nothing
//! doubled (every exactly-once batch waits for a replica before it counts
//! as written, and one that failed is retried under its markers), and the
//! config-center's spend ledger holds one row per answer.
//! Through Sentinel: the services connect, a snapshot is published and
//! read, and requests are counted.

// Tests read the wall clock; the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::load::{chat_body, Load, COMPLETION_TOKENS, COST_NUSD, PROMPT_TOKENS};
use aigw_e2e::stack::{RedisKind, Stack, StackOptions};
use aigw_e2e::wait::eventually;
use aigw_metrics::keys;
use serde_json::json;
use std::time::Duration;

const MODEL: &str = "m1";

/// The gateway's and token-service's counts of `ns` equal `ok` answered
/// requests, and the global count `global`.
async fn assert_counted(s: &Stack, ns: &str, ok: i64, global: i64) {
    let counts = || async {
        (
            s.int(&keys::ns_total_requests(ns)).await,
            s.int(&keys::ns_status(ns, 200)).await,
            s.int(keys::GLOBAL_TOTAL_REQUESTS).await,
            s.model_totals(MODEL, ns).await,
        )
    };
    let settled = eventually(Duration::from_secs(30), || async {
        let (n, n200, g, t) = counts().await;
        n == ok && n200 == ok && g == global && t.requests == ok && t.cost_nusd == ok * COST_NUSD
    })
    .await;
    let (n, n200, g, t) = counts().await;
    assert!(
        settled,
        "want {ok} ({global} global): ns {n}, status 200 {n200}, global {g}, token-service {t:?}"
    );
    assert_eq!(t.tokens_in, ok * PROMPT_TOKENS);
    assert_eq!(t.tokens_out, ok * COMPLETION_TOKENS);
    assert_eq!(t.errors, 0);
    // The config-center's ledger writer (a blocking group read of
    // `usage:ledger`) stored one row per answered request.
    let path = format!("/api/v1/usage?namespace={ns}");
    let rows = || async {
        let a = s.admin(reqwest::Method::GET, &path, None).await;
        a.body["total"]["requests"].as_i64()
    };
    let stored = eventually(Duration::from_secs(30), || async {
        rows().await == Some(ok)
    })
    .await;
    assert!(stored, "ledger rows of {ns}: {:?}, want {ok}", rows().await);
    let a = s.admin(reqwest::Method::GET, &path, None).await;
    assert_eq!(
        a.body["total"]["cost_nano_usd"].as_i64(),
        Some(ok * COST_NUSD)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_mid_load_leaves_every_count_exact() {
    let mut s = Stack::start(StackOptions {
        redis: RedisKind::Cluster,
        mock_env: vec![("MOCK_LATENCY_MS".into(), "5".into())],
        ..StackOptions::default()
    })
    .await;
    let key = s.world("clu", MODEL, json!({})).await;
    const TOTAL: usize = 1200;
    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        4,
        TOTAL,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    );
    load.wait_done(TOTAL / 4, Duration::from_secs(60)).await;
    let before = load.done();
    let cluster = s.cluster.as_mut().expect("a cluster stack");
    let victim = cluster.master_of(keys::USAGE_STREAM).await;
    cluster.kill_master(victim).await;
    let obs = load.complete().await;
    assert!(
        before < TOTAL / 2,
        "the kill came mid-load ({before} of {TOTAL} done)"
    );
    assert_eq!(obs.status(200), TOTAL, "{:?}", obs.first_errors);
    assert_counted(&s, "clu", TOTAL as i64, TOTAL as i64).await;

    // A second wave after the failover is counted as exactly.
    let key2 = s.world("after", MODEL, json!({})).await;
    let obs2 = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key2,
        4,
        200,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    )
    .complete()
    .await;
    assert_eq!(obs2.status(200), 200, "{:?}", obs2.first_errors);
    assert_counted(&s, "after", 200, TOTAL as i64 + 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_work_through_sentinel() {
    let s = Stack::start(StackOptions {
        redis: RedisKind::Sentinel,
        ..StackOptions::default()
    })
    .await;
    // Publication and reading of the snapshot through Sentinel: the world's
    // version reaches the gateway and the token-service.
    let key = s.world("sen", MODEL, json!({})).await;
    let obs = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key,
        2,
        50,
        Duration::ZERO,
        |_| chat_body(MODEL, false, None),
    )
    .complete()
    .await;
    assert_eq!(obs.status(200), 50, "{:?}", obs.first_errors);
    assert_counted(&s, "sen", 50, 50).await;
}
