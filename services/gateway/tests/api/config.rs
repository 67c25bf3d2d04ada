//! Config changes without restart, readiness, and life without Redis.

use crate::helpers::*;
use aigw_metrics::keys::{CONFIG_SNAPSHOT, CONFIG_VERSION};
use aigw_testkit::RedisServer;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_without_restart_and_spare_requests_in_flight() {
    let m1 = upstream("i1").await;
    let m2 = upstream("i2").await;
    let mut snap = one_instance(&m1.base_url());
    snap.instances = vec![
        instance("i1", "team-a", MODEL, &m1.base_url()),
        instance("i2", "team-a", MODEL, &m2.base_url()),
    ];
    let app = TestApp::spawn(&snap).await;
    assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 401);

    // A new key, announced on the channel.
    snap.version = 2;
    snap.api_keys.push(key("team-a", KEY_B));
    app.publish(&snap).await;
    assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 200);

    // A disabled instance gets no more traffic.
    snap.version = 3;
    snap.instances[0].enabled = false;
    app.publish(&snap).await;
    let before = m1.request_count();
    for _ in 0..10 {
        assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    }
    assert_eq!(m1.request_count(), before);

    // A stream in flight on i2 finishes although i2 is disabled meanwhile.
    m2.set(mock(serde_json::json!({"gated": true})));
    let mut stream = app.chat(KEY_A, chat_body(true)).await;
    let mut text = String::new();
    read_until(&mut stream, &mut text, "\"Hello\"").await;
    snap.version = 4;
    snap.instances[0].enabled = true;
    snap.instances[1].enabled = false;
    app.publish(&snap).await;
    m2.release(2);
    while let Some(c) = stream.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let before = m2.request_count();
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    assert_eq!(m2.request_count(), before);

    // A missed notification is caught by the version poll. Written by hand
    // on purpose: the publisher would announce it.
    snap.version = 5;
    snap.api_keys
        .retain(|k| k.namespace_code != "team-a" || k.key_hash != aigw_types::hash_api_key(KEY_B));
    let mut c = app.redis.conn().await;
    let _: () = redis::pipe()
        .set(CONFIG_SNAPSHOT, serde_json::to_string(&snap).unwrap())
        .set(CONFIG_VERSION, 5)
        .query_async(&mut c)
        .await
        .unwrap();
    app.gw.wait_version(5).await;
    assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_serving_the_last_snapshot_while_redis_is_down() {
    let up = upstream("a1").await;
    let mut snap = one_instance(&up.base_url());
    let mut app = TestApp::spawn(&snap).await;
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    app.settle().await;

    app.redis.stop().await;
    for _ in 0..3 {
        assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    }
    let text = app.chat(KEY_A, chat_body(true)).await.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    assert_eq!(
        app.client
            .get(app.url("/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let m = app.metrics().await;
    assert_eq!(m.value("ai_gateway_redis_up"), 0.0);

    // Back: it resubscribes (a new key announced now works), and what was
    // counted during the outage is written, once.
    app.redis.restart().await;
    snap.version = 2;
    snap.api_keys.push(key("team-a", KEY_B));
    app.publish(&snap).await;
    assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 200);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:global:total_requests").await, 6);
    assert_eq!(app.get_i64("metrics:ns:team-a:status:200").await, 6);
    assert_eq!(app.usage_records().await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_without_redis_and_is_ready_once_a_snapshot_arrives() {
    let up = upstream("a1").await;
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let gw = Gateway::start(test_settings(&redis.url())).await;
    let c = client();
    let health = c.get(format!("{}/health", gw.addr)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = c.get(format!("{}/ready", gw.addr)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let resp = c
        .post(format!("{}/v1/chat/completions", gw.addr))
        .bearer_auth(KEY_A)
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_ready");

    redis.restart().await;
    publish(&redis, &one_instance(&up.base_url())).await;
    gw.wait_version(1).await;
    let ready = c.get(format!("{}/ready", gw.addr)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let resp = c
        .post(format!("{}/v1/chat/completions", gw.addr))
        .bearer_auth(KEY_A)
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    gw.handle.stop(true).await;
    gw.task.await.unwrap().unwrap();
}

/// Connections to Redis that go silent (the peer vanished without a FIN)
/// must not stall the watcher: it gives up on them and loads the next
/// version over new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_redis_connection_does_not_stall_the_config_watcher() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    let proxy = aigw_testkit::TcpProxy::start(redis.port()).await;
    let mut snap = one_instance(&up.base_url());
    publish(&redis, &snap).await;
    let gw = Gateway::start(test_settings(&proxy.redis_url())).await;
    gw.wait_version(1).await;

    // Every connection open now stops forwarding; new ones work.
    proxy.stall();
    snap.version = 2;
    publish(&redis, &snap).await;
    for _ in 0..600 {
        if gw.handle.config_version() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(gw.handle.config_version(), Some(2), "watcher stalled");
}
