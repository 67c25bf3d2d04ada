//! The Gemini API as the mock speaks it.

use crate::helpers::*;
use mock_upstream::Config;
use serde_json::{json, Value};

const KEY: (&str, &str) = ("x-goog-api-key", "gemini-test-key");
const GENERATE: &str = "/v1beta/models/gemini-2.5-flash:generateContent";
const STREAM: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";

/// The JSON of each `data:` event of a Gemini SSE body (CRLF-framed).
fn gemini_events(body: &str) -> Vec<Value> {
    assert!(body.ends_with("\r\n\r\n"), "CRLF framing: {body:?}");
    body.split("\r\n\r\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"));
            serde_json::from_str(data).expect("event is JSON")
        })
        .collect()
}

fn text_of(chunk: &Value) -> &str {
    chunk["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn generate_content_has_parts_finish_reason_and_usage_metadata() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json_with(
            GENERATE,
            &[KEY],
            json!({"contents": [{"role": "user", "parts": [{"text": "one two three"}]}],
                   "systemInstruction": {"parts": [{"text": "be brief"}]},
                   "mock": {"chunks": 3}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["candidates"],
        json!([{"content": {"parts": [{"text": "Hello from the"}], "role": "model"},
                "finishReason": "STOP", "index": 0}])
    );
    assert_eq!(body["modelVersion"], "gemini-2.5-flash");
    assert!(body["responseId"].is_string());
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}]})
    );

    // Cache, thoughts (shown when asked) and a function call; snake_case
    // field names work too. The prompt count includes the cached tokens;
    // thoughts are counted apart from the candidates.
    let (_, body) = mock
        .post_json_with(
            "/v1/models/gemini-2.5-flash:generateContent",
            &[KEY],
            json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}],
                   "tools": [{"function_declarations": [{"name": "lookup", "parameters": {}}]}],
                   "generation_config": {"thinking_config": {"include_thoughts": true}},
                   "mock": {"chunks": 1, "cached_tokens": 6, "cache_write_tokens": 2,
                            "reasoning_tokens": 4, "tool_call": true}}),
        )
        .await;
    assert_eq!(
        body["candidates"][0]["content"]["parts"],
        json!([{"text": "Let me think about", "thought": true},
               {"text": "Hello"},
               {"functionCall": {"name": "lookup", "args": {"location": "Paris"}}}])
    );
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 9, "cachedContentTokenCount": 6,
               "candidatesTokenCount": 3, "thoughtsTokenCount": 4, "totalTokenCount": 16,
               "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 9}],
               "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 6}]})
    );

    // maxOutputTokens cuts; the safety filter blocks.
    let (_, body) = mock
        .post_json_with(
            GENERATE,
            &[KEY],
            json!({"contents": [], "generationConfig": {"maxOutputTokens": 2}}),
        )
        .await;
    assert_eq!(body["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(text_of(&body), "Hello from");
    let (_, body) = mock
        .post_json_with(
            GENERATE,
            &[KEY],
            json!({"contents": [], "mock": {"filtered": true}}),
        )
        .await;
    assert_eq!(body["candidates"][0]["finishReason"], "SAFETY");
    assert_eq!(body["candidates"][0]["safetyRatings"][0]["blocked"], true);
    mock.stop().await;
}

#[tokio::test]
async fn streams_are_sse_with_alt_sse_and_a_json_array_without() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post_with(
            &format!("{STREAM}?alt=sse"),
            &[KEY],
            json!({"contents": [{"role": "user", "parts": [{"text": "a b"}]}],
                   "mock": {"chunks": 3, "cached_tokens": 1}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = gemini_events(&res.text().await.unwrap());
    // 3 text chunks and the finish chunk.
    assert_eq!(events.len(), 4, "{events:#?}");
    let text: String = events.iter().map(text_of).collect();
    assert_eq!(text, "Hello from the");
    // Usage is cumulative in every chunk; the last one is final.
    let candidates: Vec<u64> = events
        .iter()
        .map(|e| e["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap())
        .collect();
    assert_eq!(candidates, [1, 2, 3, 3]);
    for e in &events[..3] {
        assert!(e["candidates"][0].get("finishReason").is_none(), "{e}");
        assert_eq!(e["usageMetadata"]["promptTokenCount"], 3);
    }
    assert_eq!(events[3]["candidates"][0]["finishReason"], "STOP");
    assert_eq!(events[3]["usageMetadata"]["totalTokenCount"], 6);
    assert_eq!(events[3]["usageMetadata"]["cachedContentTokenCount"], 1);

    // A function call arrives whole in its own chunk.
    let (_, res) = mock
        .post_with(
            &format!("{STREAM}?alt=sse"),
            &[KEY],
            json!({"contents": [], "mock": {"chunks": 0, "tool_call": {"name": "f", "arguments": "{\"x\": 1}"}}}),
        )
        .await;
    let events = gemini_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(
        events[0]["candidates"][0]["content"]["parts"][0],
        json!({"functionCall": {"name": "f", "args": {"x": 1}}})
    );
    assert_eq!(events[1]["usageMetadata"]["candidatesTokenCount"], 2);

    // Without alt=sse the stream is one JSON array.
    let (_, res) = mock
        .post_with(
            STREAM,
            &[KEY],
            json!({"contents": [], "mock": {"chunks": 2}}),
        )
        .await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let array: Vec<Value> = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(array.len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");

    // no_usage: no usageMetadata anywhere.
    let (_, res) = mock
        .post_with(
            &format!("{STREAM}?alt=sse"),
            &[KEY],
            json!({"contents": [], "mock": {"chunks": 2, "no_usage": true}}),
        )
        .await;
    let events = gemini_events(&res.text().await.unwrap());
    assert!(events.iter().all(|e| e.get("usageMetadata").is_none()));
    mock.stop().await;
}

#[tokio::test]
async fn embeddings_single_and_batched() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json_with(
            "/v1beta/models/gemini-embedding-001:embedContent",
            &[KEY],
            json!({"content": {"parts": [{"text": "a b c"}]}, "outputDimensionality": 4}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["embedding"]["values"].as_array().unwrap().len(), 4);
    assert_eq!(
        body["usageMetadata"],
        json!({"promptTokenCount": 3, "totalTokenCount": 3})
    );
    let (status, body) = mock
        .post_json_with(
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            &[KEY],
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a b c"}]}, "outputDimensionality": 4},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "d"}]}, "outputDimensionality": 4}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let embeddings = body["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    // Deterministic: the first input's vector is the same as above.
    let (_, single) = mock
        .post_json_with(
            "/v1beta/models/gemini-embedding-001:embedContent",
            &[KEY],
            json!({"content": {"parts": [{"text": "a b c"}]}, "outputDimensionality": 4}),
        )
        .await;
    assert_eq!(embeddings[0]["values"], single["embedding"]["values"]);
    assert_eq!(body["usageMetadata"]["promptTokenCount"], 4);
    let (status, body) = mock
        .post_json_with(
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
            &[KEY],
            json!({"requests": []}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");

    let (status, body) = mock.get_json("/v1beta/models").await;
    assert_eq!(status, 200);
    assert!(body["models"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("models/"));
    mock.stop().await;
}

#[tokio::test]
async fn errors_are_google_shaped_up_front_and_inside_the_stream() {
    let mock = TestMock::start(Config::default()).await;
    for (knob, status, kind) in [
        (json!({"status": 429}), 429, "RESOURCE_EXHAUSTED"),
        (json!({"status": 503}), 503, "UNAVAILABLE"),
        (json!({"status": 500}), 500, "INTERNAL"),
        (
            json!({"error": "DEADLINE_EXCEEDED"}),
            504,
            "DEADLINE_EXCEEDED",
        ),
    ] {
        let (s, body) = mock
            .post_json_with(GENERATE, &[KEY], json!({"contents": [], "mock": knob}))
            .await;
        assert_eq!(s, status, "{body}");
        assert_eq!(body["error"]["code"], status);
        assert_eq!(body["error"]["status"], kind);
        assert!(body["error"]["message"].is_string());
    }
    let (_, body) = mock
        .post_json_with(
            GENERATE,
            &[KEY],
            json!({"contents": [], "mock": {"status": 429}}),
        )
        .await;
    assert_eq!(
        body["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );

    // Unknown fields and actions, as the API refuses them.
    let (status, body) = mock
        .post_json_with(GENERATE, &[KEY], json!({"contents": [], "temperature": 1}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Unknown name \"temperature\""));
    let (status, body) = mock
        .post_json_with("/v1beta/models/gemini-2.5-flash:predict", &[KEY], json!({}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");

    // Midway: an error object as a data event, then the end.
    let (status, res) = mock
        .post_with(
            &format!("{STREAM}?alt=sse"),
            &[KEY],
            json!({"contents": [], "mock": {"chunks": 4, "error_after_chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    let (body, end) = read_to_end(res).await;
    assert_eq!(end, "clean end");
    let events = gemini_events(&body);
    assert_eq!(events.len(), 3, "{events:#?}");
    assert_eq!(events[2]["error"]["status"], "UNAVAILABLE");
    assert_eq!(events[2]["error"]["code"], 503);

    let (_, res) = mock
        .post_with(
            &format!("{STREAM}?alt=sse"),
            &[KEY],
            json!({"contents": [], "mock": {"chunks": 4, "abort_after_chunks": 1}}),
        )
        .await;
    let (body, end) = read_to_end(res).await;
    assert_eq!(end, "error");
    assert_eq!(gemini_events(&body).len(), 1);
    mock.stop().await;
}
