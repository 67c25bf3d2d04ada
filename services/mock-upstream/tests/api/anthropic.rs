//! Anthropic's Messages API as the mock speaks it.

use crate::helpers::*;
use mock_upstream::Config;
use serde_json::{json, Value};

const V: (&str, &str) = ("anthropic-version", "2023-06-01");
const KEY: (&str, &str) = ("x-api-key", "sk-ant-test");

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn a_message_has_content_blocks_and_usage_with_the_cache_apart() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                   "system": [{"type": "text", "text": "be brief"}],
                   "messages": [{"role": "user", "content": "say three words"}],
                   "mock": {"chunks": 3}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": "Hello from the"}])
    );
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 5, "output_tokens": 3,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
               "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
               "service_tier": "standard"})
    );

    // Thinking, a tool call and the cache: input_tokens excludes the cache's
    // tokens, output_tokens includes the thinking.
    let (_, body) = mock
        .post_json_with(
            "/messages",
            &[V, KEY],
            json!({"model": "claude-sonnet-4-5", "max_tokens": 100,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "weather?"}]},
                                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup", "input": {}}]},
                                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny and warm"}]}],
                   "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
                   "thinking": {"type": "enabled", "budget_tokens": 1024},
                   "mock": {"chunks": 1, "reasoning_tokens": 3, "tool_call": true,
                            "cached_tokens": 20, "cache_write_tokens": 7}}),
        )
        .await;
    assert_eq!(
        body["content"],
        json!([
            {"type": "thinking", "thinking": "Let me think", "signature": "mock-signature-2"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "toolu_mock_2", "name": "lookup", "input": {"location": "Paris"}}
        ])
    );
    assert_eq!(body["stop_reason"], "tool_use");
    // P = 1 + 3 (the tool result) words, N = 1, A = 2, T = 3.
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 4, "output_tokens": 6,
               "cache_creation_input_tokens": 7, "cache_read_input_tokens": 20,
               "cache_creation": {"ephemeral_5m_input_tokens": 7, "ephemeral_1h_input_tokens": 0},
               "output_tokens_details": {"thinking_tokens": 3},
               "service_tier": "standard"})
    );

    // max_tokens cuts the answer; a filtered answer is a refusal.
    let (_, body) = mock
        .post_json_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "c", "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(body["stop_reason"], "max_tokens");
    assert_eq!(body["content"][0]["text"], "Hello from");
    assert_eq!(body["usage"]["output_tokens"], 2);
    let (_, body) = mock
        .post_json_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "c", "max_tokens": 9, "messages": [], "mock": {"filtered": true}}),
        )
        .await;
    assert_eq!(body["stop_reason"], "refusal");
    mock.stop().await;
}

#[tokio::test]
async fn a_stream_follows_anthropics_event_sequence() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "claude-x", "max_tokens": 100, "stream": true,
                   "messages": [{"role": "user", "content": "one two"}],
                   "mock": {"chunks": 3, "cached_tokens": 4}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = named_events(&res.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    // The real API's placeholder output count, replaced by message_delta's.
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 2, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 4, "output_tokens": 1, "service_tier": "standard"})
    );
    assert_eq!(
        events[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..6]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, "Hello from the");
    assert_eq!(events[6].1["index"], 0);
    assert_eq!(
        events[7].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"input_tokens": 2, "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 4, "output_tokens": 3}})
    );

    // Thinking, text and a tool call: three blocks with their own indices.
    let (_, res) = mock
        .post_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "claude-x", "max_tokens": 100, "stream": true, "messages": [],
                   "tools": [{"name": "lookup", "input_schema": {}}],
                   "mock": {"chunks": 1, "reasoning_tokens": 2, "tool_call": true}}),
        )
        .await;
    let events = named_events(&res.text().await.unwrap());
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1].1["content_block"]["type"], "thinking");
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "Let"})
    );
    assert_eq!(events[5].1["delta"]["type"], "signature_delta");
    assert_eq!(events[7].1["index"], 1);
    assert_eq!(
        events[10].1["content_block"],
        json!({"type": "tool_use", "id": "toolu_mock_2", "name": "lookup", "input": {}})
    );
    let json: String = events[11..14]
        .iter()
        .map(|(_, d)| {
            assert_eq!(d["index"], 2);
            d["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert_eq!(json, r#"{"location": "Paris"}"#);
    assert_eq!(events[15].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[15].1["usage"]["output_tokens"], 5);
    assert_eq!(
        events[15].1["usage"]["output_tokens_details"],
        json!({"thinking_tokens": 2})
    );
    mock.stop().await;
}

#[tokio::test]
async fn errors_are_anthropic_shaped_up_front_and_inside_the_stream() {
    let mock = TestMock::start(Config::default()).await;
    let msg = |mock: Value| json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "mock": mock});
    for (knob, status, kind) in [
        (json!({"status": 529}), 529, "overloaded_error"),
        (json!({"status": 429}), 429, "rate_limit_error"),
        (json!({"status": 500}), 500, "api_error"),
        (
            json!({"error": "overloaded_error"}),
            529,
            "overloaded_error",
        ),
        (
            json!({"error": "permission_error"}),
            403,
            "permission_error",
        ),
        (
            json!({"error": "rate_limit_error", "status": 503}),
            503,
            "rate_limit_error",
        ),
    ] {
        let (s, res) = mock
            .post_with("/v1/messages", &[V, KEY], msg(knob.clone()))
            .await;
        assert_eq!(s, status, "{knob}");
        let request_id = res.headers()["request-id"].to_str().unwrap().to_string();
        let retry_after = res.headers().get("retry-after").cloned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(body["error"]["message"].is_string());
        assert_eq!(body["request_id"], request_id);
        assert_eq!(retry_after.is_some(), status == 429, "{knob}");
    }

    // The caller's mistakes: 400 invalid_request_error in the API's words.
    for (headers, body, says) in [
        (
            vec![KEY],
            msg(json!({})),
            "anthropic-version: header is required",
        ),
        (
            vec![V, KEY],
            json!({"model": "c", "messages": []}),
            "max_tokens: Field required",
        ),
        (
            vec![V, KEY],
            json!({"model": "c", "max_tokens": 5, "messages": [], "n": 2}),
            "n: Extra inputs are not permitted",
        ),
        (
            vec![V, KEY],
            msg(json!({"error": "server_error"})),
            "known: invalid_request_error",
        ),
    ] {
        let (s, got) = mock.post_json_with("/v1/messages", &headers, body).await;
        assert_eq!(s, 400, "{got}");
        assert_eq!(got["error"]["type"], "invalid_request_error");
        assert!(
            got["error"]["message"].as_str().unwrap().contains(says),
            "{got}"
        );
    }

    // Overloaded midway: an `error` event after two text deltas, then the end.
    let (status, res) = mock
        .post_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "c", "max_tokens": 10, "stream": true, "messages": [],
                   "mock": {"chunks": 5, "error_after_chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    let (body, end) = read_to_end(res).await;
    assert_eq!(end, "clean end");
    let events = named_events(&body);
    assert_eq!(
        names(&events),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(events[5].1["error"]["type"], "overloaded_error");

    // A connection dying midway never sends message_delta's usage.
    let (_, res) = mock
        .post_with(
            "/v1/messages",
            &[V, KEY],
            json!({"model": "c", "max_tokens": 10, "stream": true, "messages": [],
                   "mock": {"chunks": 5, "abort_after_chunks": 1}}),
        )
        .await;
    let (body, end) = read_to_end(res).await;
    assert_eq!(end, "error");
    assert!(body.contains("\"text\":\"Hello\""), "{body}");
    assert!(!body.contains("message_delta"), "{body}");
    mock.stop().await;
}

#[tokio::test]
async fn count_tokens_and_the_model_list() {
    let mock = TestMock::start(Config {
        models: vec!["claude-a".into(), "claude-b".into()],
        ..Config::default()
    })
    .await;
    let (status, body) = mock
        .post_json_with(
            "/v1/messages/count_tokens",
            &[V, KEY],
            json!({"model": "claude-a", "system": "be brief",
                   "messages": [{"role": "user", "content": "one two three"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"input_tokens": 5}));

    let res = mock
        .client
        .get(mock.url("/v1/models"))
        .header(V.0, V.1)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"][1]["type"], "model");
    assert_eq!(body["data"][1]["id"], "claude-b");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["first_id"], "claude-a");
    // Without Anthropic's header the same path is OpenAI's list.
    let (_, body) = mock.get_json("/v1/models").await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
    mock.stop().await;
}
