//! Graceful shutdown of the real binary: SIGTERM stops accepting, lets the
//! stream in flight finish, flushes metrics and usage, exits 0.

use crate::helpers::*;
use aigw_testkit::RedisServer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_stream_in_flight_flushes_and_exits_zero() {
    let up = upstream("a1").await;
    up.set(mock(serde_json::json!({"gated": true})));
    let redis = RedisServer::start().await;
    publish(&redis, &one_instance(&up.base_url())).await;
    // Long interval: only the shutdown flush can write the request.
    let (mut gw, base) = spawn_gateway_binary(
        &redis,
        &[
            ("METRICS_FLUSH_INTERVAL", "1h"),
            ("SHUTDOWN_GRACE", "20s"),
            ("RUST_LOG", "debug"),
        ],
    )
    .await;

    let mut resp = start_stream(&client(), &base).await;
    let mut text = String::new();

    gw.signal(15);
    // New connections are refused while the stream is still open.
    eventually("listener closed", || async {
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err()
    })
    .await;
    assert!(
        gw.try_exit_code().is_none(),
        "exited with a stream in flight"
    );

    up.release(2);
    while let Some(c) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");

    let mut code = None;
    for _ in 0..300 {
        if let Some(c) = gw.try_exit_code() {
            code = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, Some(Some(0)), "{}", gw.logs());

    let mut c = redis.conn().await;
    let get = |k: &'static str| {
        let mut c = c.clone();
        async move {
            redis::cmd("GET")
                .arg(k)
                .query_async::<Option<i64>>(&mut c)
                .await
                .unwrap()
        }
    };
    assert_eq!(get("metrics:global:total_requests").await, Some(1));
    assert_eq!(get("metrics:ns:team-a:status:200").await, Some(1));
    assert_eq!(get("metrics:ns:team-a:concurrent_requests").await, Some(0));
    assert_eq!(usage_records(&redis).await.len(), 1);
    // The replica retired its heartbeat on the way out.
    let replicas: Vec<String> = redis::cmd("KEYS")
        .arg("metrics:replica:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(replicas.is_empty(), "{replicas:?}");
    let logs = gw.logs();
    assert!(
        !logs.contains("sk-upstream-secret"),
        "upstream secret in logs"
    );
    assert!(!logs.contains(KEY_A), "client key in logs");
    assert!(logs.contains("metrics flushed"), "{logs}");
}
