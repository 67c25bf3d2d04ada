//! What tests use to steer and inspect the mock: key enforcement, the
//! request journal, override rules and the per-provider stats.

use crate::helpers::*;
use mock_upstream::config::ExpectedKey;
use mock_upstream::Config;
use serde_json::{json, Value};

const ANTHROPIC: &str = "/v1/messages";
const AZURE: &str = "/openai/deployments/d1/chat/completions?api-version=2024-10-21";
const GEMINI: &str = "/v1beta/models/gemini-2.5-flash:generateContent";

fn anthropic_body() -> Value {
    json!({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn a_configured_key_is_enforced_with_each_providers_refusal() {
    let mock = TestMock::start(Config {
        api_key: Some(ExpectedKey::new("right-key")),
        ..Config::default()
    })
    .await;
    let chat = json!({"model": "m", "messages": []});
    let v = ("anthropic-version", "2023-06-01");

    // OpenAI: Bearer.
    let (s, b) = mock
        .post_json_with("/v1/chat/completions", &[], chat.clone())
        .await;
    assert_eq!((s, b["error"]["code"].clone()), (401, Value::Null), "{b}");
    let (s, b) = mock
        .post_json_with(
            "/v1/chat/completions",
            &[("authorization", "Bearer wrong")],
            chat.clone(),
        )
        .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (s, _) = mock
        .post_json_with(
            "/v1/chat/completions",
            &[("authorization", "Bearer right-key")],
            chat.clone(),
        )
        .await;
    assert_eq!(s, 200);

    // Anthropic: x-api-key (or Bearer), authentication_error.
    let (s, b) = mock.post_json_with(ANTHROPIC, &[v], anthropic_body()).await;
    assert_eq!(s, 401);
    assert_eq!(b["type"], "error");
    assert_eq!(b["error"]["type"], "authentication_error");
    assert_eq!(b["error"]["message"], "x-api-key header is required");
    let (s, b) = mock
        .post_json_with(ANTHROPIC, &[v, ("x-api-key", "wrong")], anthropic_body())
        .await;
    assert_eq!(
        (s, b["error"]["message"].as_str()),
        (401, Some("invalid x-api-key"))
    );
    for auth in [
        ("x-api-key", "right-key"),
        ("authorization", "Bearer right-key"),
    ] {
        let (s, b) = mock
            .post_json_with(ANTHROPIC, &[v, auth], anthropic_body())
            .await;
        assert_eq!(s, 200, "{auth:?}: {b}");
    }

    // Azure: api-key (or Bearer), {"error":{"code":"401",...}}.
    let (s, b) = mock
        .post_json_with(AZURE, &[], json!({"messages": []}))
        .await;
    assert_eq!(s, 401);
    assert_eq!(b["error"]["code"], "401");
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("missing subscription key"));
    let (s, b) = mock
        .post_json_with(AZURE, &[("api-key", "wrong")], json!({"messages": []}))
        .await;
    assert_eq!(s, 401);
    assert!(b["error"]["message"]
        .as_str()
        .unwrap()
        .contains("invalid subscription key"));
    let (s, _) = mock
        .post_json_with(AZURE, &[("api-key", "right-key")], json!({"messages": []}))
        .await;
    assert_eq!(s, 200);

    // Gemini: x-goog-api-key or ?key=; a missing key is 403
    // PERMISSION_DENIED, a wrong one 400 API_KEY_INVALID, as Google answers.
    let gem = json!({"contents": []});
    let (s, b) = mock.post_json_with(GEMINI, &[], gem.clone()).await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (s, b) = mock
        .post_json_with(GEMINI, &[("x-goog-api-key", "wrong")], gem.clone())
        .await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    assert_eq!(b["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let (s, _) = mock
        .post_json_with(GEMINI, &[("x-goog-api-key", "right-key")], gem.clone())
        .await;
    assert_eq!(s, 200);
    let (s, _) = mock
        .post_json_with(&format!("{GEMINI}?key=right-key"), &[], gem)
        .await;
    assert_eq!(s, 200);

    // Refused requests are still recorded, with the key as given.
    let (_, list) = mock
        .get_json("/mock/requests?provider=gemini&limit=3")
        .await;
    let seen: Vec<Value> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["headers"]["x-goog-api-key"].clone())
        .collect();
    assert_eq!(seen, [json!("wrong"), json!("right-key"), Value::Null]);
    mock.stop().await;
}

#[tokio::test]
async fn the_journal_shows_what_arrived_per_provider() {
    let mock = TestMock::start(Config {
        record_requests: 4,
        ..Config::default()
    })
    .await;
    let (s, _) = mock
        .post_json_with(
            ANTHROPIC,
            &[
                ("anthropic-version", "2023-06-01"),
                ("anthropic-beta", "prompt-caching-2024-07-31"),
                ("x-api-key", "sk-ant-upstream"),
            ],
            anthropic_body(),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = mock
        .post_json_with(
            &format!("{GEMINI}?alt=sse&key=g-key"),
            &[],
            json!({"contents": [{"parts": [{"text": "x"}]}]}),
        )
        .await;
    assert_eq!(s, 200);

    let (status, list) = mock.get_json("/mock/requests?provider=anthropic").await;
    assert_eq!(status, 200);
    let reqs = list["requests"].as_array().unwrap();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r["provider"], "anthropic");
    assert_eq!(r["endpoint"], "messages");
    assert_eq!(r["method"], "POST");
    assert_eq!(r["path"], "/v1/messages");
    assert_eq!(r["query"], "");
    assert_eq!(r["model"], "claude-x");
    assert_eq!(r["headers"]["x-api-key"], "sk-ant-upstream");
    assert_eq!(r["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(r["headers"]["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(r["body"], anthropic_body());
    assert_eq!(r["body_truncated"], false);

    let (_, list) = mock.get_json("/mock/requests?limit=1").await;
    let r = &list["requests"][0];
    assert_eq!(r["provider"], "gemini");
    assert_eq!(r["endpoint"], "generate_content");
    assert_eq!(r["model"], "gemini-2.5-flash");
    assert_eq!(r["query"], "alt=sse&key=g-key");

    // The journal keeps the newest `record_requests`, oldest first.
    for i in 0..5 {
        mock.post_json(
            "/v1/chat/completions",
            json!({"model": format!("m{i}"), "messages": []}),
        )
        .await;
    }
    let (_, list) = mock.get_json("/mock/requests").await;
    let models: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["m1", "m2", "m3", "m4"]);
    let seqs: Vec<u64> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5, 6, 7]);

    // A long body is kept truncated, as text.
    let long = "word ".repeat(20_000);
    mock.post_json(
        "/v1/chat/completions",
        json!({"model": "big", "messages": [{"role": "user", "content": long}]}),
    )
    .await;
    let (_, list) = mock.get_json("/mock/requests?limit=1").await;
    let r = &list["requests"][0];
    assert_eq!(r["body_truncated"], true);
    assert!(r["body_bytes"].as_u64().unwrap() > 100_000);
    assert_eq!(r["body"].as_str().unwrap().len(), 64 * 1024);

    assert_eq!(mock.delete("/mock/requests").await, 204);
    let (_, list) = mock.get_json("/mock/requests").await;
    assert_eq!(list["requests"], json!([]));
    let (status, body) = mock.get_json("/mock/requests?provider=bedrock").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("provider must be one of"));
    mock.stop().await;
}

#[tokio::test]
async fn override_rules_steer_requests_a_gateway_builds() {
    let mock = TestMock::start(Config::default()).await;
    let v = ("anthropic-version", "2023-06-01");
    // One overloaded answer for claude-x, then normal ones: a retry test.
    let (status, rule) = mock
        .post_json(
            "/mock/overrides",
            json!({"provider": "anthropic", "model": "claude-x", "times": 1,
                   "mock": {"status": 529}}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["remaining"], 1);
    // Cached tokens for every Gemini request until cleared.
    mock.post_json(
        "/mock/overrides",
        json!({"provider": "gemini", "mock": {"cached_tokens": 9, "chunks": 1}}),
    )
    .await;

    let other = json!({"model": "claude-y", "max_tokens": 5, "messages": []});
    let (s, _) = mock.post_json_with(ANTHROPIC, &[v], other).await;
    assert_eq!(s, 200, "another model is not matched");
    let (s, b) = mock.post_json_with(ANTHROPIC, &[v], anthropic_body()).await;
    assert_eq!(
        (s, b["error"]["type"].as_str()),
        (529, Some("overloaded_error"))
    );
    let (s, _) = mock.post_json_with(ANTHROPIC, &[v], anthropic_body()).await;
    assert_eq!(s, 200, "the rule ran out");

    for _ in 0..2 {
        let (s, b) = mock
            .post_json_with(GEMINI, &[], json!({"contents": []}))
            .await;
        assert_eq!(s, 200);
        assert_eq!(b["usageMetadata"]["cachedContentTokenCount"], 9);
        assert_eq!(b["usageMetadata"]["candidatesTokenCount"], 1);
    }
    // The body's own knobs win over a rule's.
    let (_, b) = mock
        .post_json_with(GEMINI, &[], json!({"contents": [], "mock": {"chunks": 2}}))
        .await;
    assert_eq!(b["usageMetadata"]["candidatesTokenCount"], 2);
    assert_eq!(b["usageMetadata"]["cachedContentTokenCount"], 9);

    let (_, list) = mock.get_json("/mock/overrides").await;
    assert_eq!(list["overrides"].as_array().unwrap().len(), 1);
    assert_eq!(mock.delete("/mock/overrides").await, 204);
    let (_, b) = mock
        .post_json_with(GEMINI, &[], json!({"contents": []}))
        .await;
    assert!(b["usageMetadata"].get("cachedContentTokenCount").is_none());

    for bad in [
        json!({"provider": "bedrock", "mock": {}}),
        json!({"times": 0, "mock": {}}),
        json!({"mock": {"chunkz": 1}}),
        json!({"provider": "openai"}),
    ] {
        let (s, b) = mock.post_json("/mock/overrides", bad.clone()).await;
        assert_eq!(s, 400, "{bad} → {b}");
        assert_eq!(b["error"]["type"], "invalid_request_error");
    }
    mock.stop().await;
}

#[tokio::test]
async fn stats_count_requests_per_provider() {
    let mock = TestMock::start(Config::default()).await;
    mock.post_json(
        "/v1/chat/completions",
        json!({"model": "m", "messages": []}),
    )
    .await;
    mock.post_json_with(
        ANTHROPIC,
        &[("anthropic-version", "2023-06-01")],
        anthropic_body(),
    )
    .await;
    mock.post_json_with(AZURE, &[("api-key", "az")], json!({"messages": []}))
        .await;
    mock.post_json_with(GEMINI, &[], json!({"contents": []}))
        .await;
    let (s, res) = mock
        .post_with(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &[],
            json!({"contents": []}),
        )
        .await;
    assert_eq!(s, 200);
    res.text().await.unwrap();
    let (_, stats) = mock.get_json("/mock/stats").await;
    assert_eq!(
        stats["requests"],
        json!({"chat_completions": 1, "completions": 0, "embeddings": 0})
    );
    let by = &stats["requests_by_provider"];
    assert_eq!(by["openai"]["chat_completions"], 1);
    assert_eq!(by["anthropic"]["messages"], 1);
    assert_eq!(by["azure_openai"]["chat_completions"], 1);
    assert_eq!(by["gemini"]["generate_content"], 1);
    assert_eq!(by["gemini"]["stream_generate_content"], 1);
    assert_eq!(stats["last_request"]["provider"], "gemini");
    assert_eq!(stats["last_request"]["model"], "gemini-2.5-flash");
    mock.stop().await;
}

#[tokio::test]
async fn stats_show_how_many_requests_waited_out_their_latency_at_once() {
    let mock = TestMock::start(Config {
        latency: std::time::Duration::from_secs(1),
        ..Config::default()
    })
    .await;
    let body = || json!({"model": "m", "messages": []});
    let (a, b, c) = tokio::join!(
        mock.post_json("/v1/chat/completions", body()),
        mock.post_json("/v1/chat/completions", body()),
        mock.post_json("/v1/chat/completions", body()),
    );
    assert_eq!((a.0, b.0, c.0), (200, 200, 200));
    mock.post_json("/v1/chat/completions", body()).await;
    let (_, stats) = mock.get_json("/mock/stats").await;
    assert_eq!(stats["waiting"], json!({"now": 0, "max": 3}), "{stats}");
    mock.stop().await;
}
