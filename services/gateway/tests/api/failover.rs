//! Failover before the first byte, and instance health (passive and active).

use crate::helpers::*;
use aigw_types::{ConfigSnapshot, HealthCheckConfig};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Bad {
    Refused,
    Status500,
    Status429,
    Timeout,
}

/// `bad` is weighted so heavily that it is always tried first.
fn two_instances(bad_url: &str, good_url: &str) -> ConfigSnapshot {
    let mut snap = one_instance(good_url);
    snap.instances[0].id = "good".into();
    snap.instances[0].upstream_model = "up-good".into();
    let mut bad = instance("bad", "team-a", MODEL, bad_url);
    bad.weight = 1_000_000;
    snap.instances.push(bad);
    snap
}

fn refused_url() -> String {
    format!("http://127.0.0.1:{}/v1", aigw_testkit::free_port())
}

async fn failover_case(mode: Bad, reason: &str) {
    let bad = upstream("bad").await;
    let good = upstream("good").await;
    let bad_url = match mode {
        Bad::Refused => refused_url(),
        _ => bad.base_url(),
    };
    match mode {
        Bad::Status500 => bad.set(mock(json!({"status": 500}))),
        Bad::Status429 => bad.set(mock(json!({"status": 429}))),
        Bad::Timeout => bad.set(mock(json!({"latency_ms": 3000}))),
        Bad::Refused => {}
    }
    let mut snap = two_instances(&bad_url, &good.base_url());
    // A timeout after the request was sent is an unknown outcome: resent
    // only to an instance that opted in.
    snap.instances[1].retry_unknown_outcome = matches!(mode, Bad::Timeout);
    // Only the timeout case may time out, even on a busy machine.
    snap.instances[1].timeout_ms = if matches!(mode, Bad::Timeout) {
        300
    } else {
        5_000
    };
    let app = TestApp::spawn(&snap).await;
    for stream in [false, true] {
        let resp = app.chat(KEY_A, chat_body(stream)).await;
        assert_eq!(resp.status(), 200, "{mode:?}");
        let from = resp.headers().get("x-upstream-name").cloned();
        let text = resp.text().await.unwrap();
        if stream {
            assert!(text.contains("\" the\""), "{mode:?}: {text}");
        } else {
            assert_eq!(from.unwrap(), "good", "{mode:?}");
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
        }
    }
    let expected_bad = if matches!(mode, Bad::Refused) { 0 } else { 2 };
    assert_eq!(bad.request_count(), expected_bad, "{mode:?}");
    assert_eq!(good.request_count(), 2, "{mode:?}");
    assert_eq!(good.requests()[0].body()["model"], "up-good");

    app.settle().await;
    let key = format!("metrics:ns:team-a:retries:{reason}");
    assert_eq!(app.get_i64(&key).await, 2, "{mode:?}");
    let m = app.metrics().await;
    assert_eq!(
        m.value(&format!(
            "ai_gateway_retries_total{{namespace_code=\"team-a\",reason=\"{reason}\"}}"
        )),
        2.0
    );
    assert_eq!(
        m.value("ai_gateway_namespace_status_codes_total{namespace_code=\"team-a\",status_code=\"200\"}"),
        2.0
    );
    let recs = app.usage_records().await;
    assert!(recs
        .iter()
        .all(|r| r.instance_id.as_deref() == Some("good") && r.status == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_refused_connection() {
    failover_case(Bad::Refused, "connect_error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_500() {
    failover_case(Bad::Status500, "status_5xx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_429() {
    failover_case(Bad::Status429, "status_429").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_timeout() {
    failover_case(Bad::Timeout, "unknown_outcome").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_bounded_and_the_last_failure_is_reported() {
    let ups = [
        upstream("u1").await,
        upstream("u2").await,
        upstream("u3").await,
    ];
    let mut snap = one_instance(&ups[0].base_url());
    snap.instances = ups
        .iter()
        .enumerate()
        .map(|(i, u)| instance(&format!("u{}", i + 1), "team-a", MODEL, &u.base_url()))
        .collect();
    for u in &ups {
        u.set(mock(json!({"status": 503})));
    }
    // Two attempts allowed for three instances; failures never make an
    // instance unhealthy here, so every request tries two.
    let app = TestApp::spawn_with(&snap, |s| {
        s.upstream_max_attempts = 2;
        s.passive_failure_threshold = 100;
    })
    .await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    // The upstream's own last answer is relayed.
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "mock upstream injected a 503 error");
    let total: u64 = ups.iter().map(|u| u.request_count()).sum();
    assert_eq!(total, 2);

    // Unreachable everywhere → 502; too slow everywhere → 504.
    let mut snap2 = snap.clone();
    snap2.version = 2;
    for i in &mut snap2.instances {
        i.base_url = refused_url();
    }
    app.publish(&snap2).await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");

    let mut snap3 = snap.clone();
    snap3.version = 3;
    for i in &mut snap3.instances {
        i.timeout_ms = 200;
    }
    for u in &ups {
        u.set(mock(json!({"latency_ms": 2000})));
    }
    app.publish(&snap3).await;
    let before: u64 = ups.iter().map(|u| u.request_count()).sum();
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    // It was sent: its outcome is unknown, so it is not sent again.
    let after: u64 = ups.iter().map(|u| u.request_count()).sum();
    assert_eq!(after - before, 1);

    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:503").await, 1);
    assert_eq!(app.get_i64("metrics:ns:team-a:status:502").await, 1);
    assert_eq!(app.get_i64("metrics:ns:team-a:status:504").await, 1);
    assert_eq!(app.get_i64("metrics:ns:team-a:retries:status_5xx").await, 1);
    assert_eq!(
        app.get_i64("metrics:ns:team-a:retries:connect_error").await,
        1
    );
    assert_eq!(app.get("metrics:ns:team-a:retries:timeout").await, None);
    assert_eq!(
        app.get("metrics:ns:team-a:retries:unknown_outcome").await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_health_marks_an_instance_unhealthy_and_a_trial_restores_it() {
    let bad = upstream("bad").await;
    let good = upstream("good").await;
    let snap = two_instances(&bad.base_url(), &good.base_url());
    let app = TestApp::spawn_with(&snap, |s| {
        s.passive_failure_threshold = 2;
        s.passive_cooldown = Duration::from_secs(2);
    })
    .await;
    bad.stop().await;
    let health_key = "metrics:instance:bad:team-a";
    let healthy = "ai_gateway_instance_healthy{instance_id=\"bad\",namespace_code=\"team-a\"}";
    app.settle().await;
    assert_eq!(app.get(health_key).await.as_deref(), Some("1"));

    for _ in 0..2 {
        assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    }
    // While it cools down, requests go straight to the healthy instance.
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    app.settle().await;
    assert_eq!(
        app.get_i64("metrics:ns:team-a:retries:connect_error").await,
        2
    );
    assert_eq!(app.get(health_key).await.as_deref(), Some("0"));
    assert_eq!(
        app.get("metrics:instance:good:team-a").await.as_deref(),
        Some("1")
    );
    let m = app.metrics().await;
    assert_eq!(m.value(healthy), 0.0);
    assert_eq!(
        m.value("ai_gateway_instance_healthy{instance_id=\"good\",namespace_code=\"team-a\"}"),
        1.0
    );

    // Back up; after the cool-down one trial request goes to it.
    bad.restart().await.expect("restart the mock");
    let probe = format!("{}/models", bad.base_url());
    eventually("bad serving again", || async {
        app.client.get(&probe).send().await.is_ok()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.headers()["x-upstream-name"], "bad");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER, "{v}");
    assert_eq!(bad.request_count(), 1);
    app.settle().await;
    assert_eq!(app.get(health_key).await.as_deref(), Some("1"));
    assert_eq!(app.metrics().await.value(healthy), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_health_checks_drive_health_and_all_unhealthy_answers_503_at_once() {
    let x1 = upstream("x1").await;
    let x2 = upstream("x2").await;
    let mut snap = one_instance(&x1.base_url());
    snap.instances = vec![
        instance("x1", "team-a", MODEL, &x1.base_url()),
        instance("x2", "team-a", MODEL, &x2.base_url()),
    ];
    for i in &mut snap.instances {
        i.health_check = Some(HealthCheckConfig {
            path: "/models".into(),
            interval_s: 1,
        });
    }
    let app = TestApp::spawn(&snap).await;
    eventually("first probes", || async {
        x1.models_requests() >= 1 && x2.models_requests() >= 1
    })
    .await;

    x1.set_models_status(500);
    x2.set_models_status(503);
    for id in ["x1", "x2"] {
        let k = format!("metrics:instance:{id}:team-a");
        eventually(&format!("{id} unhealthy in Redis"), || async {
            app.get(&k).await.as_deref() == Some("0")
        })
        .await;
    }
    let m = app.metrics().await;
    for id in ["x1", "x2"] {
        assert_eq!(
            m.value(&format!(
                "ai_gateway_instance_healthy{{instance_id=\"{id}\",namespace_code=\"team-a\"}}"
            )),
            0.0
        );
    }
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_healthy_instance");
    assert_eq!(x1.request_count() + x2.request_count(), 0);

    x1.set_models_status(200);
    eventually("x1 healthy again", || async {
        app.get("metrics:instance:x1:team-a").await.as_deref() == Some("1")
    })
    .await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(x1.request_count(), 1);
    assert_eq!(x2.request_count(), 0);
}
