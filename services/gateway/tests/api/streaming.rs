//! Streaming: chunk-by-chunk pass-through, usage handling, client
//! disconnects and broken upstream streams.

use crate::helpers::*;
use aigw_types::TokenSource;
use serde_json::{json, Value};

fn payloads(text: &str) -> Vec<Value> {
    sse_data(text)
        .into_iter()
        .filter(|d| d != "[DONE]")
        .map(|d| serde_json::from_str(&d).unwrap())
        .collect()
}

/// The text of each content chunk (the role chunk and the finish chunk
/// carry none).
fn deltas(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .filter(|c| !c.is_empty())
        .collect()
}

const WORDS: [&str; 3] = ["Hello", " from", " the"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_reach_the_client_before_the_next_is_sent() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 3})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let mut resp = app.chat(KEY_A, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    read_until(&mut resp, &mut text, "\"Hello\"").await;
    // The client holds chunk 1 while the upstream has not sent chunk 2
    // (it waits for our permit): nothing is buffered.
    assert_eq!(up.chunks_sent(), 1);
    assert!(!text.contains("\" from\""));
    up.release(1);
    read_until(&mut resp, &mut text, "\" from\"").await;
    assert_eq!(up.chunks_sent(), 2);
    assert!(!text.contains("\" the\""));
    up.release(1);
    while let Some(c) = resp.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = payloads(&text);
    assert_eq!(deltas(&events), WORDS);
    // The usage chunk the gateway asked for is not shown to this client.
    assert!(events.iter().all(|e| e["usage"].is_null()), "{text}");

    let sent = &up.requests()[0].body();
    assert_eq!(sent["stream_options"], json!({"include_usage": true}));

    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.stream);
    assert_eq!(r.status, 200);
    assert_eq!(r.token_source, TokenSource::Upstream);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens),
        (PROMPT_TOKENS, COMPLETION_TOKENS)
    );
    assert_eq!(r.instance_id.as_deref(), Some("a1"));
    assert!(r.ttft_us.is_some_and(|t| t <= r.duration_us));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_chunk_is_kept_for_a_client_that_asked() {
    let up = upstream("a1").await;
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = app.chat(KEY_A, body.clone()).await.text().await.unwrap();
    let events = payloads(&text);
    let last = events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(
        last["usage"]["total_tokens"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    // The body went upstream unchanged apart from the model.
    let mut expected = body;
    expected["model"] = json!("gpt-4o-mini-upstream-a1");
    assert_eq!(up.requests()[0].body(), expected);

    // Completions streams get the same treatment.
    let text = app
        .post(
            "/v1/completions",
            Some(KEY_A),
            &json!({"model": MODEL, "prompt": "Hi", "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let events = payloads(&text);
    // Content chunks, then the finish chunk (no text); no usage chunk.
    let texts: Vec<&str> = events
        .iter()
        .map(|e| e["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["Hello", " from", " the", ""]);
    assert_eq!(
        up.requests()[1].body()["stream_options"]["include_usage"],
        true
    );
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.token_source == TokenSource::Upstream));
    assert_eq!(recs[1].endpoint, "completions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_upstream_usage_the_text_is_recorded_for_counting() {
    let up = upstream("a1").await;
    up.set(mock(json!({"no_usage": true})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let text = app.chat(KEY_A, chat_body(true)).await.text().await.unwrap();
    let events = payloads(&text);
    assert_eq!(deltas(&events), WORDS);
    assert!(events.iter().all(|e| e["usage"].is_null()), "{text}");
    let r = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(r.status(), 200);
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.token_source, TokenSource::Counted);
        assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 0));
        assert_eq!(r.count_text.as_ref().unwrap().prompt, "Say hello");
    }
    let completions: Vec<&str> = recs
        .iter()
        .map(|r| r.count_text.as_ref().unwrap().completion.as_str())
        .collect();
    // The streamed chunks joined, and the whole answer.
    assert_eq!(completions, vec![ANSWER, ANSWER]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_upstream_request_and_is_accounted() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 50, "no_usage": true})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let mut resp = app.chat(KEY_A, chat_body(true)).await;
    let mut text = String::new();
    read_until(&mut resp, &mut text, "\"Hello\"").await;
    drop(resp);
    // No permit is ever released: only the gateway dropping the upstream
    // connection can end the mock's stream.
    assert!(up.wait_streams_ended(1).await);
    assert_eq!(up.streams_cancelled(), 1);
    assert_eq!(up.streams_completed(), 0);
    assert_eq!(up.chunks_sent(), 1);

    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:499").await, 1);
    assert_eq!(app.get_i64("metrics:ns:team-a:failed_requests").await, 1);
    assert_eq!(app.get_i64("metrics:global:total_errors").await, 1);
    assert_eq!(
        app.get_i64("metrics:ns:team-a:concurrent_requests").await,
        0
    );
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 499);
    assert_eq!(recs[0].error_kind.as_deref(), Some("client_disconnected"));
    // What was generated before the client left is still counted.
    assert_eq!(recs[0].token_source, TokenSource::Counted);
    assert_eq!(recs[0].count_text.as_ref().unwrap().completion, "Hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upstream_stream_ends_with_an_sse_error_event() {
    let up = upstream("a1").await;
    up.set(mock(json!({"chunks": 5, "abort_after_chunks": 2})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let resp = app.chat(KEY_A, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let events = payloads(&text);
    // The role chunk, two content chunks, the gateway's error event.
    assert_eq!(events.len(), 4, "{text}");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(deltas(&events), ["Hello", " from"]);
    assert_eq!(events[3]["error"]["code"], "upstream_stream_error");
    assert!(!text.contains("[DONE]"));
    // Exactly one upstream request: no retry once bytes went out.
    assert_eq!(up.request_count(), 1);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:502").await, 1);
    let recs = app.usage_records().await;
    assert_eq!(recs[0].error_kind.as_deref(), Some("upstream_stream_error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_while_waiting_cancels_the_upstream_request() {
    let up = upstream("a1").await;
    up.set(mock(json!({"latency_ms": 5000})));
    let app = TestApp::spawn_with(&one_instance(&up.base_url()), |s| {
        s.upstream_max_attempts = 1;
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let err = impatient
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(KEY_A)
        .json(&chat_body(false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // The mock's handler is dropped long before its 5 s delay ends.
    eventually("upstream request cancelled", || async {
        up.requests_cancelled() == 1
    })
    .await;
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:499").await, 1);
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 499);
    assert_eq!(recs[0].token_source, TokenSource::None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_must_be_a_json_boolean() {
    let up = upstream("a1").await;
    up.set(mock(json!({"force_stream": true})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    for stream in [json!("true"), json!(1), json!("yes"), json!({})] {
        let mut body = chat_body(false);
        body["stream"] = stream.clone();
        let resp = app.chat(KEY_A, body).await;
        assert_eq!(resp.status(), 400, "{stream}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        assert_eq!(v["error"]["param"], "stream", "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }
    assert_eq!(up.request_count(), 0, "nothing reached the upstream");
    let mut body = chat_body(false);
    body["stream"] = Value::Null;
    assert_eq!(app.chat(KEY_A, body).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_answer_is_relayed_and_accounted_as_a_stream() {
    let up = upstream("a1").await;
    // The upstream streams although the request did not ask: no usage chunk
    // was requested, so the text must be counted.
    up.set(mock(json!({"force_stream": true})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let resp = app.chat(KEY_A, chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert_eq!(deltas(&payloads(&text)), WORDS);
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.stream);
    assert_eq!(r.token_source, TokenSource::Counted);
    assert_eq!(r.count_text.as_ref().unwrap().completion, ANSWER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_chunk_with_choices_is_stripped_for_a_client_that_did_not_ask() {
    let up = upstream("a1").await;
    up.set(mock(json!({"usage_with_choices": true})));
    let app = TestApp::spawn(&one_instance(&up.base_url())).await;
    let text = app.chat(KEY_A, chat_body(true)).await.text().await.unwrap();
    // (`"usage": null` on content chunks is what OpenAI sends too.)
    assert!(!text.contains("\"usage\":{"), "{text}");
    assert!(!text.contains("cost"), "{text}");
    assert!(!text.contains("prompt_tokens"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = payloads(&text);
    // The final chunk itself stays (its choices may carry a finish), without
    // what the gateway asked for: role, three contents, finish, that chunk.
    assert_eq!(events.len(), 6, "{text}");
    assert_eq!(events[5]["choices"], json!([{"index": 0, "delta": {}}]));

    // A client that asked gets the chunk whole.
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = app.chat(KEY_A, body).await.text().await.unwrap();
    let events = payloads(&text);
    assert_eq!(
        events[5]["usage"]["total_tokens"],
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    assert_eq!(events[5]["cost"], json!(0.000123));

    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.token_source, TokenSource::Upstream);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens),
            (PROMPT_TOKENS, COMPLETION_TOKENS)
        );
    }
}
