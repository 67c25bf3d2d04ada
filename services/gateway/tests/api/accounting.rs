//! After requests of known outcomes, every seed key in Redis and every
//! `ai_gateway_*` series has exactly the expected value.

use crate::helpers::*;
use aigw_types::{ConfigSnapshot, TokenSource};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_keys_and_every_series_have_exact_values() {
    let up = upstream("a1").await;
    let bad = upstream("x1").await;
    bad.set(mock(json!({"status": 400})));
    let snap = ConfigSnapshot {
        version: 1,
        generated_at_ms: 0,
        namespaces: vec![ns("team-a"), ns("team-b")],
        api_keys: vec![key("team-a", KEY_A), key("team-b", KEY_B)],
        models: vec![model(MODEL), model("picky")],
        instances: vec![
            instance("a1", "team-a", MODEL, &up.base_url()),
            instance("x1", "team-a", "picky", &bad.base_url()),
            instance("b1", "team-b", MODEL, &up.base_url()),
        ],
    };
    let app = TestApp::spawn(&snap).await;
    let started_ms = aigw_service::clock::now_ms();

    // team-a: 3 chats, 1 stream, 1 embedding, 1 models list (200 ×6),
    // 1 unknown model (404), 1 upstream 400 relayed.
    for _ in 0..3 {
        assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    }
    let text = app.chat(KEY_A, chat_body(true)).await.text().await.unwrap();
    assert!(text.contains("[DONE]"));
    let r = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": MODEL, "input": "x"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A random model name: must not create any series.
    let r = app
        .chat(KEY_A, json!({"model": "random-7f3a9c", "messages": []}))
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .chat(KEY_A, json!({"model": "picky", "messages": []}))
        .await;
    assert_eq!(r.status(), 400);
    // team-b: one chat.
    assert_eq!(app.chat(KEY_B, chat_body(false)).await.status(), 200);
    // No namespace: two unknown keys, one missing key.
    for k in [Some("sk-aigw-nope-1"), Some("sk-aigw-nope-2"), None] {
        let r = app.post("/v1/chat/completions", k, &chat_body(false)).await;
        assert_eq!(r.status(), 401);
    }
    app.settle().await;
    let ended_ms = aigw_service::clock::now_ms();

    // ---- Redis seed keys ----
    let exact: &[(&str, Option<i64>)] = &[
        ("metrics:global:total_requests", Some(12)),
        ("metrics:global:total_errors", Some(5)),
        ("metrics:ns:team-a:total_requests", Some(8)),
        ("metrics:ns:team-a:successful_requests", Some(6)),
        ("metrics:ns:team-a:failed_requests", Some(2)),
        ("metrics:ns:team-a:concurrent_requests", Some(0)),
        ("metrics:ns:team-a:status:200", Some(6)),
        ("metrics:ns:team-a:status:404", Some(1)),
        ("metrics:ns:team-a:status:400", Some(1)),
        ("metrics:ns:team-a:status:401", None),
        ("metrics:ns:team-b:total_requests", Some(1)),
        ("metrics:ns:team-b:successful_requests", Some(1)),
        ("metrics:ns:team-b:failed_requests", None),
        ("metrics:ns:team-b:concurrent_requests", Some(0)),
        ("metrics:ns:team-b:status:200", Some(1)),
        ("metrics:instance:a1:team-a", Some(1)),
        ("metrics:instance:x1:team-a", Some(1)),
        ("metrics:instance:b1:team-b", Some(1)),
        ("metrics:gateway:auth_failures:invalid_key", Some(2)),
        ("metrics:gateway:auth_failures:missing_key", Some(1)),
    ];
    for (k, v) in exact {
        let got = app.get(k).await.map(|s| s.parse::<i64>().unwrap());
        assert_eq!(got, *v, "{k}");
    }
    let last = app.get_i64("metrics:global:last_request_time").await;
    assert!(last >= started_ms && last <= ended_ms, "{last}");
    let global_rt = app.get_i64("metrics:global:total_response_time").await;
    let a_rt = app.get_i64("metrics:ns:team-a:total_response_time").await;
    let b_rt = app.get_i64("metrics:ns:team-b:total_response_time").await;
    assert!(a_rt > 0 && b_rt > 0);
    // The global sum also holds the three requests without a namespace.
    assert!(global_rt > a_rt + b_rt);
    let mut c = app.redis.conn().await;
    let hist: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg("metrics:ns:team-a:latency_us")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(hist["count"], 8);
    assert_eq!(hist["sum"], a_rt);
    let ttft: HashMap<String, i64> = redis::cmd("HGETALL")
        .arg("metrics:ns:team-a:ttft_us")
        .query_async(&mut c)
        .await
        .unwrap();
    // Everything that reached an upstream: 3 + 1 + 1 + the relayed 400.
    assert_eq!(ttft["count"], 6);

    // ---- usage records: one per request that reached a namespace and a model ----
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 7);
    let ids: HashSet<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 7);
    let per: BTreeMap<(String, String, u16), usize> =
        recs.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry((r.namespace_code.clone(), r.endpoint.clone(), r.status))
                .or_default() += 1;
            m
        });
    let expected: BTreeMap<(String, String, u16), usize> = [
        (("team-a", "chat", 200), 4),
        (("team-a", "chat", 400), 1),
        (("team-a", "embeddings", 200), 1),
        (("team-b", "chat", 200), 1),
    ]
    .into_iter()
    .map(|((n, e, s), c)| ((n.to_string(), e.to_string(), s), c))
    .collect();
    assert_eq!(per, expected);
    for r in &recs {
        match r.status {
            200 => {
                assert_eq!(r.token_source, TokenSource::Upstream);
                // The embedding's input is one word, "x".
                let expected = match r.endpoint.as_str() {
                    "embeddings" => (1, 0),
                    _ => (PROMPT_TOKENS, COMPLETION_TOKENS),
                };
                assert_eq!((r.prompt_tokens, r.completion_tokens), expected);
            }
            _ => {
                assert_eq!(r.token_source, TokenSource::None);
                assert_eq!(r.error_kind.as_deref(), Some("upstream_client_error"));
                assert_eq!(r.model, "picky");
            }
        }
    }
    let b_records_us: u64 = recs
        .iter()
        .filter(|r| r.namespace_code == "team-b")
        .map(|r| r.duration_us)
        .sum();
    assert_eq!(b_records_us as i64, b_rt);

    // ---- /metrics: every ai_gateway_* series ----
    let m = app.metrics().await;
    let variable = |k: &str| {
        k.contains("_bucket{")
            || k.contains("_sum{")
            || k.starts_with("ai_gateway_uptime_seconds")
            || k.starts_with("ai_gateway_scrape_duration_seconds")
            || k.starts_with("ai_gateway_response_time_seconds")
            || k.starts_with("ai_gateway_namespace_response_time_seconds")
            || k.starts_with("ai_gateway_last_request_timestamp_seconds")
            || k.starts_with("ai_gateway_metrics_flushes_total")
    };
    let got: BTreeMap<String, f64> = m
        .gateway_series()
        .into_iter()
        .filter(|(k, _)| !variable(k))
        .collect();
    let ns_a = "namespace_code=\"team-a\"";
    let ns_b = "namespace_code=\"team-b\"";
    let want: BTreeMap<String, f64> = [
        ("ai_gateway_requests_total".to_string(), 12.0),
        ("ai_gateway_errors_total".into(), 5.0),
        (
            format!("ai_gateway_namespace_requests_total{{{ns_a}}}"),
            8.0,
        ),
        (
            format!("ai_gateway_namespace_requests_total{{{ns_b}}}"),
            1.0,
        ),
        (
            format!("ai_gateway_namespace_successful_requests_total{{{ns_a}}}"),
            6.0,
        ),
        (
            format!("ai_gateway_namespace_successful_requests_total{{{ns_b}}}"),
            1.0,
        ),
        (
            format!("ai_gateway_namespace_failed_requests_total{{{ns_a}}}"),
            2.0,
        ),
        (
            format!("ai_gateway_namespace_concurrent_requests{{{ns_a}}}"),
            0.0,
        ),
        (
            format!("ai_gateway_namespace_concurrent_requests{{{ns_b}}}"),
            0.0,
        ),
        (
            format!("ai_gateway_namespace_status_codes_total{{{ns_a},status_code=\"200\"}}"),
            6.0,
        ),
        (
            format!("ai_gateway_namespace_status_codes_total{{{ns_a},status_code=\"400\"}}"),
            1.0,
        ),
        (
            format!("ai_gateway_namespace_status_codes_total{{{ns_a},status_code=\"404\"}}"),
            1.0,
        ),
        (
            format!("ai_gateway_namespace_status_codes_total{{{ns_b},status_code=\"200\"}}"),
            1.0,
        ),
        (
            format!("ai_gateway_request_duration_seconds_count{{{ns_a}}}"),
            8.0,
        ),
        (
            format!("ai_gateway_request_duration_seconds_count{{{ns_b}}}"),
            1.0,
        ),
        (
            format!("ai_gateway_time_to_first_token_seconds_count{{{ns_a}}}"),
            6.0,
        ),
        (
            format!("ai_gateway_time_to_first_token_seconds_count{{{ns_b}}}"),
            1.0,
        ),
        (
            "ai_gateway_instance_healthy{instance_id=\"a1\",namespace_code=\"team-a\"}".into(),
            1.0,
        ),
        (
            "ai_gateway_instance_healthy{instance_id=\"b1\",namespace_code=\"team-b\"}".into(),
            1.0,
        ),
        (
            "ai_gateway_instance_healthy{instance_id=\"x1\",namespace_code=\"team-a\"}".into(),
            1.0,
        ),
        (
            "ai_gateway_auth_failures_total{reason=\"invalid_key\"}".into(),
            2.0,
        ),
        (
            "ai_gateway_auth_failures_total{reason=\"missing_key\"}".into(),
            1.0,
        ),
        ("ai_gateway_usage_records_dropped_total".into(), 0.0),
        ("ai_gateway_redis_up".into(), 1.0),
        ("ai_gateway_metrics_flush_failures_total".into(), 0.0),
        ("ai_gateway_metrics_queued_records".into(), 0.0),
        ("ai_gateway_metrics_dropped_records_total".into(), 0.0),
        ("ai_gateway_metrics_exporter".into(), 1.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "\n/metrics was:\n{}", m.text);

    // The variable ones, checked against Redis.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert!(close(
        m.value("ai_gateway_response_time_seconds"),
        global_rt as f64 / 12.0 * 1e-6
    ));
    assert!(close(
        m.value(&format!(
            "ai_gateway_namespace_response_time_seconds{{{ns_a}}}"
        )),
        a_rt as f64 / 8.0 * 1e-6
    ));
    assert!(close(
        m.value(&format!(
            "ai_gateway_request_duration_seconds_sum{{{ns_a}}}"
        )),
        a_rt as f64 * 1e-6
    ));
    assert_eq!(
        m.value(&format!(
            "ai_gateway_request_duration_seconds_bucket{{le=\"+Inf\",{ns_a}}}"
        )),
        8.0
    );
    assert!(close(
        m.value("ai_gateway_last_request_timestamp_seconds"),
        last as f64 / 1000.0
    ));
    assert!(m.value("ai_gateway_uptime_seconds") > 0.0);
    // The random model name never became a label anywhere.
    assert!(!m.text.contains("random-7f3a9c"));
    let mut c = app.redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*random*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_starts_once_metrics_flush_records_wait() {
    let up = upstream("a1").await;
    let app = TestApp::spawn_with(&one_instance(&up.base_url()), |s| {
        s.metrics_flush_interval = Duration::from_secs(3600);
        s.metrics_flush_records = 5;
    })
    .await;
    for _ in 0..4 {
        assert_eq!(chat_status(&app.client, &app.gw.addr).await, 200);
    }
    // Four records wait: no flush within a second ("eventually" would
    // accept the value it finds first, so the absence is read after a
    // pause, which can only make this check stricter).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.redis.get_i64("metrics:global:total_requests").await, 0);
    // The fifth starts one.
    assert_eq!(chat_status(&app.client, &app.gw.addr).await, 200);
    eventually("the five requests flushed", || async {
        app.redis.get_i64("metrics:global:total_requests").await == 5
    })
    .await;
}
