//! OpenAI's endpoints: what a gateway (or the OpenAI SDK) sees from them.

use crate::helpers::*;
use mock_upstream::Config;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn chat_answer_has_deterministic_usage_and_honours_max_tokens() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "say three words"}]}
            ], "user": "passes-through", "mock": {"chunks": 4}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9})
    );

    // max_tokens below the chunk count cuts the answer, like a real model.
    let (_, body) = mock
        .post_json(
            "/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}),
        )
        .await;
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 2);

    // The default chunk count comes from the config (5), and no_usage drops usage.
    let (_, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "mock": {"no_usage": true}}),
        )
        .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream"
    );
    assert!(body.get("usage").is_none(), "{body}");

    // The stats show what the last request carried (what a gateway forwarded).
    let (_, stats) = mock.get_json("/mock/stats").await;
    assert_eq!(stats["requests"]["chat_completions"], 3);
    assert_eq!(
        stats["last_request"]["authorization"],
        "Bearer sk-upstream-test"
    );
    assert_eq!(stats["last_request"]["model"], "m");
    mock.stop().await;
}

#[tokio::test]
async fn streamed_chat_sends_role_content_finish_usage_and_done() {
    let mock = TestMock::start(Config {
        chunks: 3,
        ..Config::default()
    })
    .await;
    let (status, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "one two"}]}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = sse_events(&res.text().await.unwrap());
    // role + 3 content + finish + usage + [DONE]
    assert_eq!(events.len(), 7, "{events:#?}");
    assert_eq!(events[6], "[DONE]");
    let chunks: Vec<Value> = events[..6]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk is JSON"))
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content, "Hello from the");
    for c in &chunks[..5] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
        assert!(c["usage"].is_null() && c.get("usage").is_some(), "{c}");
    }
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[5]["choices"], json!([]));
    assert_eq!(
        chunks[5]["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5})
    );

    // Without include_usage there is no usage chunk and no usage field.
    let (_, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}],
                   "mock": {"chunks": 2}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(!events.iter().any(|e| e.contains("usage")), "{events:#?}");

    // no_usage wins over include_usage: the "missing usage" upstream.
    let (_, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "x"}], "mock": {"chunks": 2, "no_usage": true}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(
        !events.iter().any(|e| e.contains("prompt_tokens")),
        "{events:#?}"
    );
    mock.stop().await;
}

#[tokio::test]
async fn latency_and_chunk_delay_slow_the_answer_down() {
    let mock = TestMock::start(Config::default()).await;
    // Lower bounds only: the mock must wait at least this long.
    let t = Instant::now();
    let (status, _) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "mock": {"latency_ms": 300}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let t = Instant::now();
    let (_, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [],
                   "mock": {"chunks": 4, "chunk_delay_ms": 100}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 7);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "3 gaps of 100 ms"
    );
    mock.stop().await;
}

#[tokio::test]
async fn errors_are_openai_shaped_and_injectable() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "mock": {"status": 429}}),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"].is_string());

    // Bad bodies are 400s with the OpenAI error shape, never 5xx.
    for bad in [
        json!({"messages": []}),
        json!({"model": "m"}),
        json!({"model": "m", "messages": "nope"}),
        json!({"model": "m", "messages": [], "mock": {"chunkz": 1}}),
        json!({"model": "m", "messages": [], "mock": {"status": 700}}),
        json!({"model": "m", "messages": [], "mock": {"latency_ms": 99999999}}),
    ] {
        let (status, body) = mock.post_json("/v1/chat/completions", bad.clone()).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    }
    let res = mock
        .client
        .post(format!("{}/v1/chat/completions", mock.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);

    let (status, body) = mock.get_json("/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "unknown_url");
    mock.stop().await;

    // An error rate of 1 fails every request with the configured status.
    let mock = TestMock::start(Config {
        error_rate: 1.0,
        error_status: 503,
        ..Config::default()
    })
    .await;
    for _ in 0..5 {
        let (status, body) = mock
            .post_json("/v1/embeddings", json!({"model": "e", "input": "x"}))
            .await;
        assert_eq!(status, 503);
        assert_eq!(body["error"]["type"], "server_error");
    }
    // ...unless the request asks for a success explicitly.
    let (status, _) = mock
        .post_json(
            "/v1/embeddings",
            json!({"model": "e", "input": "x", "mock": {"status": 200}}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, stats) = mock.get_json("/mock/stats").await;
    assert_eq!(stats["injected_errors"], 5);
    mock.stop().await;
}

#[tokio::test]
async fn completions_embeddings_models_and_health() {
    let mock = TestMock::start(Config {
        models: vec!["a".into(), "b".into()],
        ..Config::default()
    })
    .await;
    let (status, body) = mock
        .post_json(
            "/v1/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "once upon a time", "mock": {"chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "Hello from");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6})
    );

    let (_, res) = mock
        .post(
            "/v1/completions",
            json!({"model": "x", "prompt": ["a b", "c"], "stream": true,
                   "stream_options": {"include_usage": true}, "mock": {"chunks": 2}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    // 2 content + finish + usage + [DONE]; completions have no role chunk.
    assert_eq!(events.len(), 5, "{events:#?}");
    let usage: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(usage["usage"]["prompt_tokens"], 3);
    assert_eq!(usage["usage"]["completion_tokens"], 2);

    let (status, body) = mock
        .post_json(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"], "dimensions": 4}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    // Deterministic: the same request gives the same vectors.
    let (_, again) = mock
        .post_json(
            "/v1/embeddings",
            json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"], "dimensions": 4}),
        )
        .await;
    assert_eq!(body["data"], again["data"]);
    let (status, _) = mock
        .post_json("/v1/embeddings", json!({"model": "e", "input": []}))
        .await;
    assert_eq!(status, 400);

    let (status, body) = mock.get_json("/v1/models").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        mock.get_json("/health").await,
        (200, json!({"status": "ok"}))
    );
    mock.stop().await;
}

#[tokio::test]
async fn abort_after_chunks_breaks_the_stream_midway() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [],
                   "mock": {"chunks": 5, "abort_after_chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    // Headers and the first events arrive, then the connection breaks: the
    // reader sees an error, not a clean end.
    let (got, end) = read_to_end(res).await;
    assert_eq!(end, "error", "{got}");
    assert!(got.contains("\"content\":\" from\""), "{got}");
    assert!(!got.contains("[DONE]"), "{got}");
    mock.stop().await;
}

#[tokio::test]
async fn binary_reads_env_serves_and_exits_0_on_sigterm() {
    let port = aigw_testkit::free_port();
    let mut proc = aigw_testkit::Proc::spawn_path(
        std::path::Path::new(env!("CARGO_BIN_EXE_mock-upstream")),
        "mock-upstream",
        &[
            ("MOCK_PORT", port.to_string()),
            ("BIND_ADDR", "127.0.0.1".into()),
            ("MOCK_CHUNKS", "2".into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    proc.wait_ready(&format!("{base}/health")).await;
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "a b c"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 2);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(
        proc.terminate(Duration::from_secs(10)).await,
        Some(0),
        "{}",
        proc.logs()
    );
    let logs = proc.logs();
    assert!(logs.contains("mock upstream listening"), "{logs}");
    // No per-request logging at info level (it serves the benchmarks).
    assert!(!logs.contains("chat/completions"), "{logs}");
}

#[tokio::test]
async fn cache_and_reasoning_tokens_add_openai_token_details_when_asked() {
    let mock = TestMock::start(Config::default()).await;
    let msgs = json!([{"role": "user", "content": "one two three"}]);
    // P = 3 words, R = 10 cached, W = 4 written, N = 2, T = 6 reasoning.
    let (status, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "o3", "messages": msgs, "mock": {"chunks": 2,
                   "cached_tokens": 10, "cache_write_tokens": 4, "reasoning_tokens": 6}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 17, "completion_tokens": 8, "total_tokens": 25,
               "prompt_tokens_details": {"cached_tokens": 10, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 6, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    );

    // The same in the stream's usage chunk; a zero asked for is still shown.
    let (_, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "o3", "messages": msgs, "stream": true,
                   "stream_options": {"include_usage": true},
                   "mock": {"chunks": 2, "cached_tokens": 0}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
               "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    );
    mock.stop().await;

    // The configured defaults apply to every request.
    let mock = TestMock::start(Config {
        cached_tokens: Some(5),
        reasoning_tokens: Some(1),
        ..Config::default()
    })
    .await;
    let (_, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": msgs}),
        )
        .await;
    assert_eq!(body["usage"]["prompt_tokens"], 8);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 6);
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        1
    );
    mock.stop().await;
}

#[tokio::test]
async fn tool_calls_are_answered_whole_and_streamed_in_pieces() {
    let mock = TestMock::start(Config::default()).await;
    let tools = json!([{"type": "function", "function": {"name": "lookup", "parameters": {}}}]);
    let (_, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "a b"}], "tools": tools,
                   "mock": {"chunks": 0, "tool_call": true}}),
        )
        .await;
    let msg = &body["choices"][0]["message"];
    assert!(msg["content"].is_null(), "{body}");
    assert_eq!(msg["tool_calls"][0]["type"], "function");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "lookup");
    assert_eq!(
        msg["tool_calls"][0]["function"]["arguments"],
        r#"{"location": "Paris"}"#
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    // The arguments are 2 whitespace-separated pieces: 2 completion tokens.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4})
    );

    let args = r#"{"city": "Oslo", "days": 3}"#;
    let (_, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "stream": true,
                   "stream_options": {"include_usage": true},
                   "mock": {"chunks": 1, "tool_call": {"name": "forecast", "arguments": args}}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    // role, "Hello", tool start, 4 argument pieces, finish, usage.
    assert_eq!(chunks.len(), 9, "{events:#?}");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hello");
    let start = &chunks[2]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(start["id"], "call_mock_2");
    assert_eq!(start["function"]["name"], "forecast");
    assert_eq!(start["function"]["arguments"], "");
    let streamed: String = chunks[3..7]
        .iter()
        .map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(streamed, args);
    assert_eq!(chunks[7]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        chunks[8]["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 5, "total_tokens": 5})
    );

    // A call that does not fit max_tokens is cut, like a model's; bad
    // arguments are the caller's mistake.
    let (_, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "max_tokens": 3,
                   "mock": {"chunks": 2, "tool_call": true}}),
        )
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(body["usage"]["completion_tokens"], 2);
    for bad in [json!({"arguments": "[1]"}), json!({"arguments": "{nope"})] {
        let (status, body) = mock
            .post_json(
                "/v1/chat/completions",
                json!({"model": "m", "messages": [], "mock": {"tool_call": bad}}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tool_call.arguments"),
            "{body}"
        );
    }
    mock.stop().await;
}

#[tokio::test]
async fn errors_can_arrive_inside_a_stream_or_be_named() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "stream": true,
                   "mock": {"chunks": 4, "error_after_chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    let (body, end) = read_to_end(res).await;
    assert_eq!(end, "clean end");
    let events = sse_events(&body);
    // role, 2 content chunks, the error; no finish, no [DONE].
    assert_eq!(events.len(), 4, "{events:#?}");
    let err: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(err["error"]["type"], "server_error");

    let (status, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "mock": {"error": "insufficient_quota"}}),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "insufficient_quota");
    let (status, body) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "mock": {"error": "overloaded_error"}}),
        )
        .await;
    assert_eq!(status, 400, "not an OpenAI kind: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("known: invalid_request_error"),
        "{body}"
    );
    // A request that does not stream fails up front with the error.
    let (status, _) = mock
        .post_json(
            "/v1/chat/completions",
            json!({"model": "m", "messages": [], "mock": {"error_after_chunks": 1}}),
        )
        .await;
    assert_eq!(status, 500);
    let (_, stats) = mock.get_json("/mock/stats").await;
    assert_eq!(stats["injected_errors"], 3);
    mock.stop().await;
}
