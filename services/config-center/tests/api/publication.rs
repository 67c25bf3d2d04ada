//! Publication to Redis: versions, pub/sub, outages, restarts, concurrency
//! and the metrics that describe it.

use crate::both;
use crate::helpers::{Backend, Db, TestApp};
use aigw_metrics::keys;
use aigw_testkit::prom::Scrape;
use aigw_testkit::RedisServer;
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn redis_outage_catch_up(b: Backend) {
    let Some(mut app) = TestApp::spawn(b).await else {
        return;
    };
    let r = app
        .post("/api/v1/namespaces", json!({"code":"team-a"}))
        .await;
    let before = app.snapshot_at(r.version()).await;

    app.redis.stop().await;
    // Three changes while Redis is down: all commit and answer success.
    let r1 = app
        .post(
            "/api/v1/models",
            json!({"name":"gpt-4o-mini","encoding":"o200k_base","input_price_per_1m":"0.15"}),
        )
        .await;
    assert_eq!(r1.status, 201, "{}", r1.text);
    let r2 = app
        .post("/api/v1/namespaces", json!({"code":"team-b"}))
        .await;
    assert_eq!(r2.status, 201, "{}", r2.text);
    let r3 = app
        .patch("/api/v1/namespaces/team-a", json!({"name":"Renamed"}))
        .await;
    assert_eq!(r3.status, 200, "{}", r3.text);
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.header("x-config-published").as_deref(), Some("false"));
    }
    assert!(r1.version() < r2.version() && r2.version() < r3.version());
    // Reads from SQL keep working; the published snapshot cannot be read.
    assert_eq!(app.get("/api/v1/namespaces/team-b").await.status, 200);
    app.get("/api/v1/snapshot")
        .await
        .assert_error(503, "unavailable");
    let ready = app.send(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["redis"], false);
    assert_eq!(ready.json()["database"], true);

    app.redis.restart().await;
    // Redis kept the old snapshot across the restart (append-only file)…
    let (old, _) = app.redis_snapshot().await.expect("old snapshot survives");
    assert!(old.version >= before.version);
    // …and the service catches up to all three changes on its own.
    let snap = app.snapshot_at(r3.version()).await;
    assert_eq!(snap.version, r3.version());
    assert_eq!(
        snap.model("gpt-4o-mini")
            .unwrap()
            .input_price_per_1m
            .unwrap()
            .to_string(),
        "0.15"
    );
    assert!(snap.namespace("team-b").is_some());
    assert_eq!(snap.namespace("team-a").unwrap().name, "Renamed");
    let api = app.get("/api/v1/snapshot").await;
    assert_eq!(api.status, 200);
    assert_eq!(api.json()["version"], r3.version());
    // The failed attempts were counted.
    let m = app.metrics_with(&["config_center_redis_up 1"]).await;
    let failures = metric_value(&m, "config_center_publication_failures_total").unwrap_or(0.0);
    assert!(failures >= 1.0, "{m}");
}
both!(redis_outage_catch_up);

async fn starts_with_redis_down(b: Backend) {
    let Some(db) = Db::create(b).await else {
        return;
    };
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let mut app = TestApp::start(b, db, redis).await;
    let h = app.send(Method::GET, "/health", None, None).await;
    assert_eq!(h.status, 200);
    assert_eq!(h.json(), json!({"status":"ok"}));
    let r = app
        .post("/api/v1/namespaces", json!({"code":"early"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("x-config-published").as_deref(), Some("false"));
    let m = app.metrics().await;
    assert!(m.lines().any(|l| l == "config_center_redis_up 0"), "{m}");
    app.redis.restart().await;
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.namespace("early").is_some());
}
both!(starts_with_redis_down);

async fn pubsub_announces_each_version(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.snapshot_at(1).await;
    let client = redis::Client::open(app.redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(keys::CONFIG_CHANNEL).await.unwrap();
    let mut versions = Vec::new();
    for code in ["a", "b", "c"] {
        let r = app
            .post("/api/v1/namespaces", json!({ "code": code }))
            .await;
        versions.push(r.version());
        app.snapshot_at(r.version()).await;
    }
    let mut stream = pubsub.on_message();
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("no update announced")
            .unwrap();
        let payload: String = msg.get_payload().unwrap();
        got.push(payload.parse::<u64>().unwrap());
    }
    assert_eq!(got, versions);
}
both!(pubsub_announces_each_version);

async fn versions_survive_restarts(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let r = app.post("/api/v1/namespaces", json!({"code":"a"})).await;
    let v = r.version();
    app.snapshot_at(v).await;
    let (db, redis) = app.stop().await;

    let app = TestApp::start(b, db, redis).await;
    // Nothing changed: the same version stays published, not a lower one.
    let (snap, published) = app.redis_snapshot().await.unwrap();
    assert_eq!(published, v);
    assert!(snap.namespace("a").is_some());
    let r = app.post("/api/v1/namespaces", json!({"code":"b"})).await;
    assert_eq!(r.version(), v + 1);
    let snap = app.snapshot_at(v + 1).await;
    assert_eq!(snap.namespaces.len(), 2);
}
both!(versions_survive_restarts);

async fn reset_database_moves_past_redis(b: Backend) {
    // Redis holds version 50 from an earlier life; the database is new.
    let Some(db) = Db::create(b).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let _: () = redis::pipe()
        .set(keys::CONFIG_SNAPSHOT, r#"{"version":50,"generated_at_ms":0,"namespaces":[{"code":"ghost","name":"g","enabled":true}],"api_keys":[],"models":[],"instances":[]}"#)
        .set(keys::CONFIG_VERSION, 50)
        .query_async(&mut c)
        .await
        .unwrap();
    let app = TestApp::start(b, db, redis).await;
    let snap = app.snapshot_at(51).await;
    assert_eq!(snap.version, 51);
    assert!(
        snap.namespaces.is_empty(),
        "the new database's content wins"
    );
    let r = app.post("/api/v1/namespaces", json!({"code":"a"})).await;
    assert_eq!(r.version(), 52);
    app.snapshot_at(52).await;
}
both!(reset_database_moves_past_redis);

async fn concurrent_changes_get_distinct_versions(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let r = app
                .post(
                    "/api/v1/namespaces",
                    json!({ "code": format!("ns-{i:02}") }),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.version()
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort();
    // Initial version 1, then exactly one new version per change.
    assert_eq!(versions, (2..18).collect::<Vec<u64>>());
    let snap = app.snapshot_at(17).await;
    assert_eq!(snap.version, 17);
    assert_eq!(snap.namespaces.len(), 16);
}
both!(concurrent_changes_get_distinct_versions);

pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    Scrape::parse(text).get(series)
}

async fn metrics_are_rendered(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.snapshot_at(1).await;
    let mut changes = 0;
    for code in ["team-a", "team-b"] {
        let r = app
            .post("/api/v1/namespaces", json!({ "code": code }))
            .await;
        app.snapshot_at(r.version()).await;
        changes += 1;
    }
    app.create_model("m").await;
    app.create_instance("i-1", "team-a", "m", Some("sk-upstream-metrics-0000"))
        .await;
    for _ in 0..2 {
        let r = app
            .post("/api/v1/namespaces/team-a/api-keys", json!({"name":"k"}))
            .await;
        app.snapshot_at(r.version()).await;
    }
    changes += 4;
    let last = app.redis_snapshot().await.unwrap().1;
    app.get("/api/v1/namespaces/nope").await;
    app.send(Method::GET, "/no/such/path/123", None, None).await;
    app.send(Method::GET, "/api/v1/namespaces", None, None)
        .await;
    app.send(
        Method::from_bytes(b"BREW").unwrap(),
        "/api/v1/models",
        Some(crate::helpers::TOKEN),
        None,
    )
    .await;

    let m = app
        .metrics_with(&[
            r#"config_center_http_requests_total{method="POST",route="/api/v1/namespaces",status="201"} 2"#,
            r#"config_center_http_requests_total{method="POST",route="/api/v1/namespaces/{code}/api-keys",status="201"} 2"#,
            r#"config_center_http_requests_total{method="GET",route="/api/v1/namespaces/{code}",status="404"} 1"#,
            r#"config_center_http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"config_center_http_requests_total{method="GET",route="/api/v1/namespaces",status="401"} 1"#,
            r#"config_center_http_requests_total{method="OTHER",route="/api/v1/models",status="405"} 1"#,
            r#"config_center_http_request_duration_seconds_count{method="POST",route="/api/v1/namespaces",status="201"} 2"#,
            r#"config_center_entities{kind="namespaces"} 2"#,
            r#"config_center_entities{kind="models"} 1"#,
            r#"config_center_entities{kind="instances"} 1"#,
            r#"config_center_entities{kind="api_keys"} 2"#,
            &format!("config_center_snapshot_version {last}"),
            &format!("config_center_publications_total {}", 1 + changes),
            "config_center_publication_failures_total 0",
            "config_center_redis_up 1",
        ])
        .await;
    let ts = metric_value(&m, "config_center_last_publication_timestamp_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(ts > now - 3600.0 && ts <= now + 1.0, "{ts}");
    assert!(m.contains("config_center_uptime_seconds"), "{m}");
    assert!(m.contains("process_resident_memory_bytes"), "{m}");
    // The raw path never becomes a label.
    assert!(!m.contains("/no/such/path"), "{m}");
    assert!(!m.contains("team-a"), "{m}");
}
both!(metrics_are_rendered);
