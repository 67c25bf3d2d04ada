//! The proxy path: rewriting, headers, endpoints, errors, isolation.

use crate::helpers::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_forwarded_with_upstream_model_and_instance_key_only() {
    forwarded_chat(true).await;
}

/// The same through reqwest, the client of HTTPS instances and of plain-HTTP
/// ones when an HTTP proxy is configured: both paths send the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_general_upstream_client_forwards_the_same_request() {
    forwarded_chat(false).await;
}

async fn forwarded_chat(direct: bool) {
    let up = upstream("a1").await;
    let mut snap = one_instance(&up.base_url());
    snap.instances[0].openai_organization = Some("org-of-the-instance".into());
    let app = TestApp::spawn_with(&snap, |s| {
        s.upstream_direct = direct;
    })
    .await;
    let body = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0.25,
        "user": "u-1",
        "metadata": {"model": "not-this-one"},
    });
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .header("cookie", "session=secret-cookie")
        .header("x-api-key", "another-secret")
        .header("x-custom", "kept")
        .header("x-request-id", "client-rid-1")
        .header("openai-organization", "org-chosen-by-client")
        .header("openai-project", "proj-chosen-by-client")
        .header("x-forwarded-for", "203.0.113.7")
        .header("forwarded", "for=198.51.100.1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "client-rid-1");
    assert_eq!(resp.headers()["x-upstream-name"], "a1");
    assert!(resp.headers().get("set-cookie").is_none());
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);

    let reqs = up.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path(), "/v1/chat/completions");
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer sk-upstream-secret-a1")
    );
    assert_eq!(r.header("x-custom").as_deref(), Some("kept"));
    assert_eq!(r.header("x-request-id").as_deref(), Some("client-rid-1"));
    assert_eq!(r.header("cookie").as_deref(), None);
    assert_eq!(r.header("x-api-key").as_deref(), None);
    // The billing scope is the instance's, never the client's.
    assert_eq!(
        r.header("openai-organization").as_deref(),
        Some("org-of-the-instance")
    );
    assert_eq!(r.header("openai-project").as_deref(), None);
    assert_eq!(
        r.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(r.header("forwarded").as_deref(), None);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("accept").as_deref(), Some("*/*"));
    let authority = up
        .base_url()
        .trim_start_matches("http://")
        .replace("/v1", "");
    assert_eq!(r.header("host").as_deref(), Some(authority.as_str()));
    // Only `model` changed.
    let mut expected = body.clone();
    expected["model"] = json!("gpt-4o-mini-upstream-a1");
    assert_eq!(r.body(), expected);

    // Without a client id, one is created, returned and propagated.
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let parsed = uuid::Uuid::parse_str(&rid).expect("uuid request id");
    assert_eq!(parsed.get_version_num(), 7);
    assert_eq!(up.requests()[1].header("x-request-id"), Some(rid));
    assert_eq!(
        up.requests()[1].header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );

    // A stream passes through whole, its usage chunk hidden and accounted.
    let resp = app.chat(KEY_A, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("prompt_tokens"), "{text}");
    app.settle().await;
    let records = app.usage_records().await;
    assert_eq!(records.len(), 3);
    assert!(records[2].stream);
    assert_eq!(records[2].prompt_tokens, PROMPT_TOKENS);
    assert_eq!(records[2].completion_tokens, COMPLETION_TOKENS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_embeddings_and_models_list() {
    let up = upstream("a1").await;
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;

    let resp = app
        .post(
            "/v1/completions",
            Some(KEY_A),
            &json!({"model": MODEL, "prompt": "Once upon a time", "max_tokens": 5}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["text"], ANSWER);

    let resp = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": MODEL, "input": "embed me"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    // The mock's deterministic vector for the first input, relayed as sent.
    let got: Vec<f32> = serde_json::from_value(v["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(got, mock_upstream::wire::vector(0, 16));

    let paths: Vec<String> = up.requests().iter().map(|r| r.path()).collect();
    assert_eq!(paths, vec!["/v1/completions", "/v1/embeddings"]);

    let resp = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(
        v["data"],
        json!([{"id": MODEL, "object": "model", "created": 1_700_000_000, "owned_by": "team-a"}])
    );

    let one: Value = app
        .client
        .get(app.url(&format!("/v1/models/{MODEL}")))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], MODEL);
    let resp = app
        .client
        .get(app.url("/v1/models/nope"))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Health and readiness.
    let h: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h, json!({"status": "ok"}));
    let r = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["config_version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_has_openai_shape_and_expected_status() {
    let up = upstream("a1").await;
    let mut snap = one_instance(&up.base_url());
    let mut revoked = key("team-a", "sk-aigw-revoked-000000000000000000000");
    revoked.revoked = true;
    let mut expired = key("team-a", "sk-aigw-expired-000000000000000000000");
    expired.expires_at_ms = Some(1_000);
    let mut restricted = key("team-a", "sk-aigw-restricted-0000000000000000000");
    restricted.allowed_models = Some(vec!["other-model".into()]);
    let mut off = ns("team-off");
    off.enabled = false;
    snap.namespaces.push(off);
    snap.api_keys.extend([
        revoked,
        expired,
        restricted,
        key("team-off", "sk-aigw-off-00000000000000000000000000"),
    ]);
    let app = TestApp::spawn_with(&snap, |s| s.max_body_bytes = 4096).await;

    let chat = "/v1/chat/completions";
    let good = chat_body(false);
    let cases: Vec<(&str, Option<&str>, Value, u16, &str)> = vec![
        ("no key", None, good.clone(), 401, "invalid_api_key"),
        (
            "unknown key",
            Some("sk-aigw-unknown"),
            good.clone(),
            401,
            "invalid_api_key",
        ),
        (
            "revoked key",
            Some("sk-aigw-revoked-000000000000000000000"),
            good.clone(),
            401,
            "invalid_api_key",
        ),
        (
            "expired key",
            Some("sk-aigw-expired-000000000000000000000"),
            good.clone(),
            401,
            "invalid_api_key",
        ),
        (
            "disabled namespace",
            Some("sk-aigw-off-00000000000000000000000000"),
            good.clone(),
            403,
            "namespace_disabled",
        ),
        (
            "model not allowed",
            Some("sk-aigw-restricted-0000000000000000000"),
            good.clone(),
            403,
            "model_not_allowed",
        ),
        (
            "unknown model",
            Some(KEY_A),
            json!({"model": "no-such-model", "messages": []}),
            404,
            "model_not_found",
        ),
        (
            "missing model",
            Some(KEY_A),
            json!({"messages": []}),
            400,
            "missing_model",
        ),
        (
            "model not a string",
            Some(KEY_A),
            json!({"model": 7}),
            400,
            "invalid_json",
        ),
        (
            "not an object",
            Some(KEY_A),
            json!([1, 2]),
            400,
            "invalid_json",
        ),
        (
            "too large",
            Some(KEY_A),
            json!({"model": MODEL, "pad": "x".repeat(5000)}),
            413,
            "request_too_large",
        ),
    ];
    for (what, key, body, status, code) in cases {
        let resp = app.post(chat, key, &body).await;
        assert_eq!(resp.status().as_u16(), status, "{what}");
        assert!(resp.headers().contains_key("x-request-id"), "{what}");
        let v: Value = resp.json().await.unwrap();
        assert_error_shape(&v, code, what);
    }

    // Malformed JSON (not expressible as a serde_json::Value).
    let resp = app
        .client
        .post(app.url(chat))
        .bearer_auth(KEY_A)
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_error_shape(&resp.json().await.unwrap(), "invalid_json", "malformed");

    let resp = app
        .client
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_error_shape(&resp.json().await.unwrap(), "unknown_url", "unknown route");
    let resp = app.client.get(app.url(chat)).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_error_shape(
        &resp.json().await.unwrap(),
        "method_not_allowed",
        "wrong method",
    );

    assert_eq!(
        up.request_count(),
        0,
        "no error case may reach the upstream"
    );
}

fn assert_error_shape(v: &Value, code: &str, what: &str) {
    let e = &v["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(e["type"].is_string(), "{what}: {v}");
    assert!(e.as_object().unwrap().contains_key("param"), "{what}: {v}");
    assert_eq!(e["code"], code, "{what}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_one_namespace_never_reaches_another() {
    let up_a = upstream("a1").await;
    let up_b = upstream("b1").await;
    let snap = aigw_types::ConfigSnapshot {
        version: 1,
        generated_at_ms: 0,
        namespaces: vec![ns("team-a"), ns("team-b")],
        api_keys: vec![key("team-a", KEY_A), key("team-b", KEY_B)],
        models: vec![model(MODEL), model("b-only")],
        instances: vec![
            instance("a1", "team-a", MODEL, &up_a.base_url()),
            instance("b1", "team-b", MODEL, &up_b.base_url()),
            instance("b2", "team-b", "b-only", &up_b.base_url()),
        ],
    };
    let app = TestApp::spawn(&snap).await;
    for _ in 0..5 {
        let r = app.chat(KEY_A, chat_body(false)).await;
        assert_eq!(r.status(), 200);
    }
    let r = app
        .chat(KEY_A, json!({"model": "b-only", "messages": []}))
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(up_a.request_count(), 5);
    assert_eq!(up_b.request_count(), 0);

    let list = |k: &'static str| {
        let app = &app;
        async move {
            let v: Value = app
                .client
                .get(app.url("/v1/models"))
                .bearer_auth(k)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(KEY_A).await, vec![MODEL]);
    assert_eq!(list(KEY_B).await, vec!["b-only", MODEL]);

    let r = app.chat(KEY_B, chat_body(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(up_b.request_count(), 1);
    assert_eq!(
        up_b.requests()[0].body()["model"],
        "gpt-4o-mini-upstream-b1"
    );
    assert_eq!(up_a.request_count(), 5);
}
