//! The retry contract: a request is sent again only when the upstream
//! provably did not process it. A request that left whole and got no answer
//! (connection lost, first byte too late) has an unknown outcome: it is
//! answered with a JSON 502/504 and not resent, unless the instance opted in
//! (`retry_unknown_outcome`) or the client sent an `Idempotency-Key`.

use crate::helpers::*;
use crate::raw_upstream::{Fault, RawUpstream};
use aigw_types::ConfigSnapshot;
use serde_json::{json, Value};
use std::time::Duration;

/// `bad` first (weighted so heavily it is always picked first), `good`
/// second.
fn bad_then_good(bad_url: &str, good_url: &str, opt_in: bool) -> ConfigSnapshot {
    let mut snap = one_instance(good_url);
    snap.instances[0].id = "good".into();
    let mut bad = instance("bad", "team-a", MODEL, bad_url);
    bad.weight = 1_000_000;
    bad.timeout_ms = 400;
    bad.retry_unknown_outcome = opt_in;
    snap.instances.push(bad);
    snap
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("a JSON error body");
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_connection_drops_after_it_was_sent_is_not_sent_again() {
    let bad = RawUpstream::start(Fault::DropAfterRequest).await;
    let good = upstream("good").await;
    let snap = bad_then_good(&bad.base_url(), &good.base_url(), false);
    let app = TestApp::spawn_with(&snap, |s| s.passive_failure_threshold = 100).await;
    for (n, stream) in [false, true].into_iter().enumerate() {
        let resp = app.chat(KEY_A, chat_body(stream)).await;
        assert_eq!(
            error_code(resp).await,
            (502, "upstream_connection_lost".to_string()),
            "stream={stream}"
        );
        assert_eq!(bad.posts(), n + 1, "the upstream received it once");
    }
    assert_eq!(good.request_count(), 0, "no failover after a sent request");
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:502").await, 2);
    for reason in ["connect_error", "timeout", "unknown_outcome"] {
        let key = format!("metrics:ns:team-a:retries:{reason}");
        assert_eq!(app.get(&key).await, None, "{reason}");
    }
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.status, 502);
        assert_eq!(r.error_kind.as_deref(), Some("upstream_connection_lost"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_opted_in_fails_over_on_an_unknown_outcome() {
    let bad = RawUpstream::start(Fault::DropAfterRequest).await;
    let good = upstream("good").await;
    let snap = bad_then_good(&bad.base_url(), &good.base_url(), true);
    let app = TestApp::spawn_with(&snap, |s| s.passive_failure_threshold = 100).await;
    for stream in [false, true] {
        let resp = app.chat(KEY_A, chat_body(stream)).await;
        assert_eq!(resp.status(), 200, "stream={stream}");
        resp.text().await.unwrap();
    }
    assert_eq!(bad.posts(), 2);
    assert_eq!(good.request_count(), 2);
    app.settle().await;
    assert_eq!(
        app.get_i64("metrics:ns:team-a:retries:unknown_outcome")
            .await,
        2
    );
    let m = app.metrics().await;
    assert_eq!(
        m.value("ai_gateway_retries_total{namespace_code=\"team-a\",reason=\"unknown_outcome\"}"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_forwarded_and_allows_a_resend() {
    let bad = RawUpstream::start(Fault::DropAfterRequest).await;
    let good = upstream("good").await;
    let snap = bad_then_good(&bad.base_url(), &good.base_url(), false);
    let app = TestApp::spawn_with(&snap, |s| s.passive_failure_threshold = 100).await;
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .header("Idempotency-Key", "order-42")
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(bad.posts(), 1);
    let heads = bad.heads();
    assert!(
        heads[0]
            .to_ascii_lowercase()
            .contains("idempotency-key: order-42"),
        "{heads:?}"
    );
    let sent = good.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("idempotency-key").as_deref(),
        Some("order-42")
    );
    app.settle().await;
    assert_eq!(
        app.get_i64("metrics:ns:team-a:retries:unknown_outcome")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_byte_timeout_is_not_resent_and_not_a_health_failure() {
    // An upstream that takes the request and stays silent far longer than
    // the instance's timeout.
    let bad = upstream("bad").await;
    bad.set(mock(json!({"latency_ms": 120_000})));
    let good = upstream("good").await;
    let snap = bad_then_good(&bad.base_url(), &good.base_url(), false);
    // Two failures would make an instance unhealthy: three slow answers
    // in a row must not.
    let app = TestApp::spawn_with(&snap, |s| {
        s.passive_failure_threshold = 2;
        s.passive_cooldown = Duration::from_secs(30);
    })
    .await;
    for n in 1..=3 {
        let resp = app.chat(KEY_A, chat_body(n == 2)).await;
        assert_eq!(
            error_code(resp).await,
            (504, "upstream_timeout".to_string())
        );
        assert_eq!(bad.request_count(), n);
    }
    assert_eq!(good.request_count(), 0);
    app.settle().await;
    assert_eq!(
        app.get("metrics:instance:bad:team-a").await.as_deref(),
        Some("1"),
        "a slow answer is not the instance's fault"
    );
    assert_eq!(app.get_i64("metrics:ns:team-a:status:504").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_still_fails_over() {
    let good = upstream("good").await;
    let refused = format!("http://127.0.0.1:{}/v1", aigw_testkit::free_port());
    let snap = bad_then_good(&refused, &good.base_url(), false);
    let app = TestApp::spawn(&snap).await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(good.request_count(), 1);
    app.settle().await;
    assert_eq!(
        app.get_i64("metrics:ns:team-a:retries:connect_error").await,
        1
    );
}
