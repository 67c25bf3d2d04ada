//! Namespace limits: each one refuses with 429 + Retry-After at the right
//! count, RPM and concurrency hold across replicas, and a busy limited
//! namespace costs a fraction of a Redis command per request.

use crate::helpers::*;
use aigw_testkit::RedisServer;
use aigw_types::Limits;
use serde_json::{json, Value};
use std::time::Duration;

fn limited(base_url: &str, limits: Limits) -> aigw_types::ConfigSnapshot {
    let mut snap = one_instance(base_url);
    snap.namespaces[0].limits = limits;
    snap
}

async fn assert_429(resp: reqwest::Response, ty: &str, code: &str) -> u64 {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], ty, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_the_request_over_the_limit() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 2})));
    let snap = limited(
        &up.base_url(),
        Limits {
            max_concurrency: Some(2),
            ..Default::default()
        },
    );
    let app = TestApp::spawn(&snap).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut r = app.chat(KEY_A, chat_body(true)).await;
        let mut t = String::new();
        read_until(&mut r, &mut t, "\"Hello\"").await;
        held.push(r);
    }
    let retry = assert_429(
        app.chat(KEY_A, chat_body(false)).await,
        "requests",
        "concurrency_limit_exceeded",
    )
    .await;
    assert_eq!(retry, 1);
    up.release(2);
    for r in held {
        assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    app.settle().await;
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    app.settle().await;
    assert_eq!(
        app.get_i64("metrics:ns:team-a:rejections:concurrency")
            .await,
        1
    );
    assert_eq!(app.get_i64("metrics:ns:team-a:status:429").await, 1);
    assert_eq!(app.get_i64("metrics:ns:team-a:status:200").await, 3);
    let m = app.metrics().await;
    assert_eq!(
        m.value("ai_gateway_rejections_total{namespace_code=\"team-a\",reason=\"concurrency\"}"),
        1.0
    );
    assert_eq!(up.request_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_limit_refuses_at_the_exact_count_and_unlimited_namespaces_skip_redis() {
    let up = upstream("a1").await;
    let mut snap = limited(
        &up.base_url(),
        Limits {
            rpm: Some(3),
            ..Default::default()
        },
    );
    snap.namespaces.push(ns("free"));
    snap.api_keys.push(key("free", KEY_B));
    snap.instances
        .push(instance("f1", "free", MODEL, &up.base_url()));
    let app = TestApp::spawn(&snap).await;

    // A namespace without limits never makes the gateway call Redis' TIME
    // (which only the limit scripts use).
    app.redis.reset_stats().await;
    for _ in 0..5 {
        assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 200);
    }
    assert_eq!(app.redis.command_calls("time").await, 0);

    for i in 0..3 {
        assert_eq!(
            app.chat(KEY_A, chat_body(false)).await.status(),
            200,
            "request {i}"
        );
    }
    let retry = assert_429(
        app.chat(KEY_A, chat_body(false)).await,
        "requests",
        "rate_limit_exceeded",
    )
    .await;
    assert!(retry <= 60);
    assert_eq!(app.redis.command_calls("time").await, 4);
    assert_eq!(up.request_count(), 8);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:rejections:rpm").await, 1);
    assert_eq!(app.get("metrics:ns:free:rejections:rpm").await, None);
    let recs = app.usage_records().await;
    let rejected: Vec<_> = recs.iter().filter(|r| r.status == 429).collect();
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].error_kind.as_deref(), Some("rpm_limited"));
    assert_eq!(rejected[0].instance_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpm_limit_refuses_once_the_window_holds_enough_tokens() {
    let up = upstream("a1").await;
    // 2 + 3 = 5 tokens per request.
    let snap = limited(
        &up.base_url(),
        Limits {
            tpm: Some(8),
            ..Default::default()
        },
    );
    let app = TestApp::spawn(&snap).await;
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    app.settle().await;
    // 5 < 8: allowed. The stream's usage counts as well.
    let text = app.chat(KEY_A, chat_body(true)).await.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    app.settle().await;
    assert_429(
        app.chat(KEY_A, chat_body(false)).await,
        "tokens",
        "rate_limit_exceeded",
    )
    .await;
    assert_eq!(up.request_count(), 2);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:rejections:tpm").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_budget_refuses_once_the_cost_reaches_it() {
    let up = upstream("a1").await;
    let mut snap = one_instance(&up.base_url());
    snap.namespaces[0].monthly_budget_usd = Some("1".parse().unwrap());
    let app = TestApp::spawn(&snap).await;
    let month = aigw_types::BudgetMonth::of_unix_s(aigw_service::clock::now_unix_s()).label();
    let cost_key = format!("metrics:cost:ns:team-a:month:{month}");
    let set_cost = |v: i64| {
        let redis = &app.redis;
        let cost_key = cost_key.clone();
        async move {
            let mut c = redis.conn().await;
            let _: () = redis::cmd("SET")
                .arg(&cost_key)
                .arg(v)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    set_cost(999_999_999).await;
    eventually("cost read", || async {
        app.gw.handle.namespace_spent_nano_usd("team-a") == Some(999_999_999)
    })
    .await;
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    set_cost(1_000_000_000).await;
    eventually("cost read", || async {
        app.gw.handle.namespace_spent_nano_usd("team-a") == Some(1_000_000_000)
    })
    .await;
    let retry = assert_429(
        app.chat(KEY_A, chat_body(false)).await,
        "insufficient_quota",
        "insufficient_quota",
    )
    .await;
    assert!(retry <= 31 * 86_400);
    assert_eq!(up.request_count(), 2);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:rejections:budget").await, 1);
    // The budget is exported for the budget alerts and panels.
    assert_eq!(
        app.metrics()
            .await
            .value(r#"ai_gateway_namespace_budget_usd{namespace_code="team-a"}"#),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpm_is_shared_by_two_gateway_processes() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    let snap = limited(
        &up.base_url(),
        Limits {
            rpm: Some(4),
            ..Default::default()
        },
    );
    publish(&redis, &snap).await;
    let (mut g1, url1) = spawn_gateway_binary(&redis, &[]).await;
    let (mut g2, url2) = spawn_gateway_binary(&redis, &[]).await;
    let c = client();
    let send = |base: &str| {
        let c = c.clone();
        let url = format!("{base}/v1/chat/completions");
        async move {
            c.post(url)
                .bearer_auth(KEY_A)
                .json(&chat_body(false))
                .send()
                .await
                .unwrap()
        }
    };
    for (i, base) in [&url1, &url2, &url1, &url2].iter().enumerate() {
        assert_eq!(send(base).await.status(), 200, "request {i}");
    }
    assert_eq!(send(&url1).await.status(), 429);
    assert_eq!(send(&url2).await.status(), 429);
    assert_eq!(up.request_count(), 4);

    // SIGTERM: both drain, flush and exit 0.
    assert_eq!(
        g1.terminate(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        g1.logs()
    );
    assert_eq!(
        g2.terminate(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        g2.logs()
    );
    let mut conn = redis.conn().await;
    let total: i64 = redis::cmd("GET")
        .arg("metrics:global:total_requests")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(total, 6);
    let rejected: i64 = redis::cmd("GET")
        .arg("metrics:ns:team-a:rejections:rpm")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(rejected, 2);
    for p in [&g1, &g2] {
        assert!(!p.logs().contains("sk-upstream-secret"), "secret in logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_upstream_token_counts_saturate_instead_of_overflowing() {
    let up = upstream("a1").await;
    up.set(mock(
        json!({"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}),
    ));
    let snap = limited(
        &up.base_url(),
        Limits {
            tpm: Some(30),
            ..Default::default()
        },
    );
    let app = TestApp::spawn(&snap).await;
    // Whole and streamed: the sums are taken when the request is accounted
    // (in a `Drop`), which must neither panic nor wrap.
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].prompt_tokens, recs[0].completion_tokens),
        (u64::MAX, u64::MAX)
    );
    // The window holds the saturated count: the next request is refused.
    assert_429(
        app.chat(KEY_A, chat_body(true)).await,
        "tokens",
        "rate_limit_exceeded",
    )
    .await;
}

/// Lease members of the fleet's in-flight set with their expiry (Unix ms),
/// and Redis' clock now.
async fn leases(redis: &RedisServer) -> (Vec<(String, i64)>, i64) {
    let mut c = redis.conn().await;
    let members: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg("ratelimit:ns:team-a:inflight")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut c)
        .await
        .unwrap();
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    (members, s * 1000 + us / 1000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_holds_across_replicas_and_a_killed_replica_frees_its_slots() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 2})));
    let redis = RedisServer::start().await;
    let snap = limited(
        &up.base_url(),
        Limits {
            max_concurrency: Some(2),
            ..Default::default()
        },
    );
    publish(&redis, &snap).await;
    // Replica A in process; replica B a process of its own, killed later.
    let a = Gateway::start(test_settings(&redis.url())).await;
    a.wait_version(snap.version).await;
    let (mut b, b_url) = spawn_gateway_binary(&redis, &[("CONCURRENCY_LEASE_TTL", "2s")]).await;
    let c = client();

    // One stream on each replica: the namespace is full on both.
    let held_a = start_stream(&c, &a.addr).await;
    let held_b = start_stream(&c, &b_url).await;
    assert_eq!(chat_status(&c, &a.addr).await, 429);
    assert_eq!(chat_status(&c, &b_url).await, 429);
    let (members, _) = leases(&redis).await;
    assert_eq!(members.len(), 2, "{members:?}");
    // Both refusals reach the fleet's counter before B dies.
    eventually("both refusals counted", || async {
        redis
            .get_i64("metrics:ns:team-a:rejections:concurrency")
            .await
            == 2
    })
    .await;

    // B dies without releasing anything: its lease stays in the set, with an
    // expiry at most one TTL (B's, 2 s) ahead — the bound on how long a dead
    // replica keeps a slot.
    let b_pid = b.pid().expect("pid").to_string();
    b.kill().await;
    drop(held_b);
    let (members, now) = leases(&redis).await;
    let dead: Vec<_> = members
        .iter()
        .filter(|(m, _)| m.contains(&format!("-{b_pid}:")))
        .collect();
    assert_eq!(dead.len(), 1, "B's lease is still there: {members:?}");
    assert!(
        dead[0].1 <= now + 2000,
        "expires within B's TTL: {members:?} at {now}"
    );

    // Once it expires, A takes the slot it held.
    let refused = std::sync::atomic::AtomicU64::new(0);
    eventually("the dead replica's slot is free", || async {
        match chat_status(&c, &a.addr).await {
            200 => true,
            429 => {
                refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                false
            }
            s => panic!("unexpected status {s}"),
        }
    })
    .await;
    // The 200's own lease is released after its answer went out, so the
    // set is read until only A's stream is left.
    eventually("only A's stream holds a lease", || async {
        leases(&redis).await.0.len() == 1
    })
    .await;

    // A's stream ends: its lease is released, not left to expire.
    up.release(2);
    assert!(held_a.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    eventually("A's lease released", || async {
        leases(&redis).await.0.is_empty()
    })
    .await;
    settle(&a, &redis).await;
    assert_eq!(
        redis
            .get_i64("metrics:ns:team-a:rejections:concurrency")
            .await,
        (2 + refused.into_inner()) as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_each_replica_still_holds_max_concurrency_itself() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 2})));
    let snap = limited(
        &up.base_url(),
        Limits {
            max_concurrency: Some(1),
            ..Default::default()
        },
    );
    let mut app = TestApp::spawn(&snap).await;
    app.redis.stop().await;
    let held = start_stream(&app.client, &app.gw.addr).await;
    assert_eq!(chat_status(&app.client, &app.gw.addr).await, 429);
    up.release(2);
    assert!(held.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    eventually("the slot is free again", || async {
        chat_status(&app.client, &app.gw.addr).await == 200
    })
    .await;
    assert_eq!(up.request_count(), 2);
}

/// Sends `n` chats to `base`, `parallel` at a time; returns how many were
/// admitted (200) — every other answer must be the RPM refusal.
async fn burst(c: &reqwest::Client, base: &str, n: usize, parallel: usize) -> usize {
    use futures_util::stream::{self, StreamExt};
    let statuses: Vec<u16> = stream::iter(0..n)
        .map(|_| chat_status(c, base))
        .buffer_unordered(parallel)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    statuses.iter().filter(|s| **s == 200).count()
}

/// Three gateways of one fleet with `snap` loaded.
async fn three_replicas(redis: &RedisServer, snap: &aigw_types::ConfigSnapshot) -> Vec<Gateway> {
    publish(redis, snap).await;
    let mut gws = Vec::new();
    for _ in 0..3 {
        let g = Gateway::start(test_settings(&redis.url())).await;
        g.wait_version(snap.version).await;
        gws.push(g);
    }
    gws
}

/// [`burst`] on each of three replicas at once; how many each admitted.
async fn bursts(c: &reqwest::Client, gws: &[Gateway], n: usize, parallel: usize) -> [usize; 3] {
    let (a, b, d) = tokio::join!(
        burst(c, &gws[0].addr, n, parallel),
        burst(c, &gws[1].addr, n, parallel),
        burst(c, &gws[2].addr, n, parallel),
    );
    [a, b, d]
}

async fn window_sum(redis: &RedisServer, key: &str) -> i64 {
    let mut c = redis.conn().await;
    let h: Vec<(String, i64)> = redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut c)
        .await
        .unwrap();
    h.iter().map(|(_, v)| v).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_spending_rpm_slices_admit_the_limit_exactly() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    // Slices of at most 160 / 16 = 10 requests.
    let snap = limited(
        &up.base_url(),
        Limits {
            rpm: Some(160),
            ..Default::default()
        },
    );
    let gws = three_replicas(&redis, &snap).await;
    let c = client();

    // 3 × 90 requests at once: never more than the limit admitted.
    let [a, b, d] = bursts(&c, &gws, 90, 8).await;
    let mut admitted = a + b + d;
    assert!(admitted <= 160, "{a} + {b} + {d}");

    // What a replica reserved and did not spend comes back when its slice
    // ends: the fleet reaches the limit exactly, then refuses everywhere.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let admitted_more = std::sync::atomic::AtomicUsize::new(0);
    eventually("the window fills", || async {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if burst(&c, &gws[i % 3].addr, 1, 1).await == 1 {
            admitted_more.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        admitted + admitted_more.load(std::sync::atomic::Ordering::Relaxed) >= 160
    })
    .await;
    admitted += admitted_more.into_inner();
    assert_eq!(admitted, 160);
    for g in &gws {
        assert_429(
            c.post(format!("{}/v1/chat/completions", g.addr))
                .bearer_auth(KEY_A)
                .json(&chat_body(false))
                .send()
                .await
                .unwrap(),
            "requests",
            "rate_limit_exceeded",
        )
        .await;
    }
    assert_eq!(up.request_count(), 160);
    assert_eq!(window_sum(&redis, "ratelimit:ns:team-a:rpm").await, 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_limited_namespace_costs_a_fraction_of_a_redis_call_per_request() {
    let up = upstream("a1").await;
    let snap = limited(
        &up.base_url(),
        Limits {
            rpm: Some(1_000_000),
            tpm: Some(100_000_000),
            ..Default::default()
        },
    );
    let app = TestApp::spawn(&snap).await;
    app.redis.reset_stats().await;
    let c = client();
    assert_eq!(burst(&c, &app.gw.addr, 500, 8).await, 500);
    // Each slice call runs Redis' TIME once: slices double while they are
    // used up (1, 2, 4 … requests; 1, 2, 4 … tokens), plus one settlement
    // per slice and second.
    let calls = app.redis.command_calls("time").await;
    assert!(calls <= 500 / 5, "{calls} slice calls for 500 requests");
    // 5 tokens per request: every token reaches the TPM window once the
    // slices are settled.
    app.settle().await;
    eventually("tokens settled", || async {
        window_sum(&app.redis, "ratelimit:ns:team-a:tpm").await == 2_500
            && window_sum(&app.redis, "ratelimit:ns:team-a:rpm").await == 500
    })
    .await;
}

/// Three replicas, `clients` clients each sending 40 requests, for a
/// namespace allowed `max` at once: the upstream never sees more than `max`
/// at once, every answer is 200 or 429, and idle replicas keep no lease.
/// Returns how many were served and refused.
async fn three_replicas_at_max_concurrency(max: u32, clients: usize) -> (usize, usize) {
    let up = upstream("a1").await;
    // Long enough that the clients' requests overlap at the upstream.
    up.set(mock(json!({"latency_ms": 20})));
    let redis = RedisServer::start().await;
    let snap = limited(
        &up.base_url(),
        Limits {
            max_concurrency: Some(max),
            ..Default::default()
        },
    );
    let gws = three_replicas(&redis, &snap).await;
    let c = client();
    let served: usize = bursts(&c, &gws, 40, clients).await.iter().sum();
    let seen = up.state().waiting().1;
    assert!(
        (1..=u64::from(max)).contains(&seen),
        "upstream saw {seen} at once"
    );
    // Idle replicas give every lease back, spare ones included.
    eventually("leases released", || async {
        leases(&redis).await.0.is_empty()
    })
    .await;
    (served, 120 - served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_with_blocks_of_leases_never_exceed_max_concurrency() {
    // 3 replicas × 6 clients for 4 at once: no lease is kept spare.
    let (served, refused) = three_replicas_at_max_concurrency(4, 6).await;
    assert!(
        served > 0 && refused > 0,
        "{served} served, {refused} refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keeping_spare_leases_never_exceed_max_concurrency() {
    // 3 replicas × 16 clients for 32 at once: requests in flight and
    // spare leases (up to 32 / 16 = 2 per replica) share the 32.
    let (served, _) = three_replicas_at_max_concurrency(32, 16).await;
    assert!(served > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_namespace_with_all_three_limits_costs_a_fraction_of_a_redis_command_per_request() {
    let up = upstream("a1").await;
    let snap = limited(
        &up.base_url(),
        Limits {
            rpm: Some(10_000_000),
            tpm: Some(1_000_000_000),
            max_concurrency: Some(10_000),
        },
    );
    let app = TestApp::spawn_with(&snap, |s| {
        // Only the limits talk to Redis while commands are counted.
        s.metrics_flush_interval = Duration::from_secs(3600);
        s.metrics_flush_records = usize::MAX;
        s.config_poll_interval = Duration::from_secs(3600);
    })
    .await;
    let c = client();
    // Slices and spare leases grow to the load, then the load goes on.
    assert_eq!(burst(&c, &app.gw.addr, 300, 16).await, 300);
    app.redis.reset_stats().await;
    assert_eq!(burst(&c, &app.gw.addr, 1_500, 16).await, 1_500);
    let stats = app.redis.command_stats().await;
    // Every command counts but this test's own.
    let commands: u64 = stats
        .iter()
        .filter(|(name, _)| {
            !["info", "hello", "client"]
                .iter()
                .any(|t| name.starts_with(t))
        })
        .filter(|(name, _)| !name.starts_with("config"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        commands * 5 <= 1_500,
        "{commands} Redis commands for 1500 requests: {stats:?}"
    );
    // Every request and token reaches the windows once the slices are
    // settled (5 tokens per request).
    eventually("slices settled", || async {
        window_sum(&app.redis, "ratelimit:ns:team-a:rpm").await == 1_800
            && window_sum(&app.redis, "ratelimit:ns:team-a:tpm").await == 9_000
    })
    .await;
    // The idle replica gives its spare leases back.
    eventually("spare leases released", || async {
        leases(&app.redis).await.0.is_empty()
    })
    .await;
}
