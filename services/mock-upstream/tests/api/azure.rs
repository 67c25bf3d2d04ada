//! Azure OpenAI as the mock speaks it: deployment and v1 paths, content
//! filter results, Azure's error shape.

use crate::helpers::*;
use mock_upstream::Config;
use serde_json::{json, Value};

const KEY: (&str, &str) = ("api-key", "azure-test-key");
const CHAT: &str = "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21";

fn safe() -> Value {
    json!({"hate": {"filtered": false, "severity": "safe"},
           "self_harm": {"filtered": false, "severity": "safe"},
           "sexual": {"filtered": false, "severity": "safe"},
           "violence": {"filtered": false, "severity": "safe"}})
}

#[tokio::test]
async fn a_deployment_answers_with_filter_results_and_token_details() {
    let mock = TestMock::start(Config::default()).await;
    let (status, body) = mock
        .post_json_with(
            CHAT,
            &[KEY],
            json!({"messages": [{"role": "user", "content": "one two three"}],
                   "mock": {"chunks": 2, "cached_tokens": 3, "reasoning_tokens": 4}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "chat.completion");
    // The deployment names the model when the body does not.
    assert_eq!(body["model"], "gpt-4o-prod");
    assert_eq!(
        body["prompt_filter_results"],
        json!([{"prompt_index": 0, "content_filter_results": safe()}])
    );
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], "Hello from");
    assert_eq!(choice["content_filter_results"], safe());
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12,
               "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 4, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    );

    // On a deployment path the deployment is the model, whatever the body says.
    let (_, body) = mock
        .post_json_with(CHAT, &[KEY], json!({"model": "gpt-x", "messages": []}))
        .await;
    assert_eq!(body["model"], "gpt-4o-prod");
    let (_, list) = mock.get_json("/mock/requests?limit=1").await;
    assert_eq!(list["requests"][0]["model"], "gpt-4o-prod");

    // The output filter stops an answer: finish_reason content_filter.
    let (_, body) = mock
        .post_json_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "mock": {"filtered": true}}),
        )
        .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        body["choices"][0]["content_filter_results"]["violence"],
        json!({"filtered": true, "severity": "medium"})
    );

    // Embeddings on a deployment.
    let (status, body) = mock
        .post_json_with(
            "/openai/deployments/embed-prod/embeddings?api-version=2024-10-21",
            &[KEY],
            json!({"input": ["a b", "c"], "dimensions": 3}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "embed-prod");
    assert_eq!(body["data"][1]["embedding"].as_array().unwrap().len(), 3);
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );

    // Without api-version a deployment path is Azure's plain 404.
    let (status, body) = mock
        .post_json_with(
            "/openai/deployments/gpt-4o-prod/chat/completions",
            &[KEY],
            json!({"messages": []}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"code": "404", "message": "Resource not found"}})
    );
    let (status, body) = mock
        .post_json_with(
            "/openai/deployments/gpt-4o-prod/chat/completions?api-version=latest",
            &[KEY],
            json!({"messages": []}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("API version not supported"));
    mock.stop().await;
}

#[tokio::test]
async fn a_stream_opens_with_the_prompt_filter_chunk() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post_with(
            CHAT,
            &[KEY],
            json!({"messages": [{"role": "user", "content": "hi"}], "stream": true,
                   "stream_options": {"include_usage": true}, "mock": {"chunks": 2}}),
        )
        .await;
    assert_eq!(status, 200);
    let events = sse_events(&res.text().await.unwrap());
    // prompt filter, role, 2 content, finish, usage, [DONE]
    assert_eq!(events.len(), 7, "{events:#?}");
    assert_eq!(events[6], "[DONE]");
    let chunks: Vec<Value> = events[..6]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        chunks[0],
        json!({"choices": [], "created": 0, "id": "", "model": "", "object": "",
               "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": safe()}]})
    );
    assert_eq!(chunks[1]["choices"][0]["content_filter_results"], json!({}));
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "Hello");
    assert_eq!(chunks[2]["choices"][0]["content_filter_results"], safe());
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        chunks[5]["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
    );

    let (_, res) = mock
        .post_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "stream": true, "mock": {"chunks": 1, "filtered": true}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    let finish: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        finish["choices"][0]["content_filter_results"]["violence"]["filtered"],
        true
    );
    mock.stop().await;
}

#[tokio::test]
async fn the_v1_path_takes_the_model_from_the_body() {
    let mock = TestMock::start(Config {
        models: vec!["gpt-4o".into()],
        ..Config::default()
    })
    .await;
    let (status, body) = mock
        .post_json_with(
            "/openai/v1/chat/completions",
            &[("authorization", "Bearer azure-test-key")],
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "a"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "gpt-4o");
    assert!(body["prompt_filter_results"].is_array());
    let (status, body) = mock
        .post_json_with(
            "/openai/v1/chat/completions",
            &[KEY],
            json!({"messages": []}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let (status, body) = mock
        .post_json_with(
            "/openai/v1/embeddings",
            &[KEY],
            json!({"model": "e", "input": "x y z"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    let (status, body) = mock.get_json("/openai/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["id"], "gpt-4o");
    mock.stop().await;
}

#[tokio::test]
async fn errors_are_azure_shaped() {
    let mock = TestMock::start(Config::default()).await;
    let (status, res) = mock
        .post_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "mock": {"status": 429}}),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "429");
    assert!(body["error"]["message"].is_string());

    // The prompt filter's refusal: OpenAI's shape with Azure's inner error.
    let (status, body) = mock
        .post_json_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "mock": {"error": "content_filter"}}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["param"], "prompt");
    assert_eq!(
        body["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );
    assert_eq!(
        body["error"]["innererror"]["content_filter_result"]["violence"]["filtered"],
        true
    );
    let (status, body) = mock
        .post_json_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "mock": {"error": "DeploymentNotFound"}}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "DeploymentNotFound");

    // Inside a stream: OpenAI's error event.
    let (_, res) = mock
        .post_with(
            CHAT,
            &[KEY],
            json!({"messages": [], "stream": true,
                   "mock": {"chunks": 3, "error_after_chunks": 1, "status": 503}}),
        )
        .await;
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.len(), 4, "{events:#?}");
    let err: Value = serde_json::from_str(&events[3]).unwrap();
    assert_eq!(err["error"]["code"], "503");
    mock.stop().await;
}
