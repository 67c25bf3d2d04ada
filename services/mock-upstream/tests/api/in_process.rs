//! The mock started in-process through [`MockServer`], as the gateway's
//! tests use it: knobs set on the handle, the gate of gated streams, the
//! counters, the status of the health probe, headers on every answer, and
//! stop/restart on the same port. Each is also reachable over HTTP.

use crate::helpers::sse_events;
use mock_upstream::overrides::MockOverrides;
use mock_upstream::{Config, MockServer};
use serde_json::{json, Value};
use std::time::Duration;

async fn start(config: Config) -> MockServer {
    MockServer::start(Config {
        bind_addr: "127.0.0.1".into(),
        port: 0,
        workers: Some(1),
        ..config
    })
    .await
    .expect("start the mock")
}

fn knobs(v: Value) -> MockOverrides {
    serde_json::from_value(v).unwrap()
}

fn chat(stream: Value) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Say hello"}], "stream": stream})
}

async fn post_to(url: String, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// POSTs to an API path under the base URL (`/v1`).
async fn post(mock: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    post_to(format!("{}{path}", mock.base_url()), body).await
}

async fn answer(mock: &MockServer, path: &str, body: &Value) -> Value {
    post(mock, path, body).await.json().await.unwrap()
}

/// POSTs to one of the mock's own endpoints (`/mock/...`).
async fn control(mock: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    post_to(format!("http://127.0.0.1:{}{path}", mock.port()), body).await
}

/// Three content chunks: "Hello", " from", " the".
fn three_chunks() -> Config {
    Config {
        chunks: 3,
        ..Config::default()
    }
}

#[tokio::test]
async fn openai_shape_knobs_pad_report_force_a_stream_and_reshape_usage() {
    let mock = start(three_chunks()).await;
    // `"stream": null` is no stream, as OpenAI reads it.
    let v = answer(&mock, "/chat/completions", &chat(Value::Null)).await;
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the");
    assert_eq!(v["usage"]["prompt_tokens"], 2);

    // Padding: each chunk's word plus N spaces; the token counts stay.
    mock.set(knobs(json!({"pad": 2})));
    let v = answer(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello   from   the  "
    );
    assert_eq!(v["usage"]["completion_tokens"], 3);

    // Reported usage in place of the counted one, saturating its sum.
    mock.set(knobs(
        json!({"prompt_tokens": u64::MAX, "completion_tokens": 7}),
    ));
    let v = answer(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": u64::MAX, "completion_tokens": 7, "total_tokens": u64::MAX})
    );
    let v = answer(&mock, "/embeddings", &json!({"model": "e", "input": "x"})).await;
    assert_eq!(v["usage"]["prompt_tokens"], u64::MAX);

    // A stream although none was asked for; the usage chunk as LiteLLM
    // sends it when asked for.
    mock.set(knobs(
        json!({"force_stream": true, "usage_with_choices": true}),
    ));
    let res = post(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = sse_events(&res.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(!events.iter().any(|e| e.contains("\"usage\":{")));
    let mut body = chat(json!(true));
    body["stream_options"] = json!({"include_usage": true});
    let events = sse_events(
        &post(&mock, "/chat/completions", &body)
            .await
            .text()
            .await
            .unwrap(),
    );
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([{"index": 0, "delta": {}}]));
    assert_eq!(usage["cost"], json!(0.000123));
    assert_eq!(usage["usage"]["total_tokens"], 5);
    // Completions follow the same knobs.
    let res = post(
        &mock,
        "/completions",
        &json!({"model": "m", "prompt": "Hi"}),
    )
    .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");

    // Too much padding is refused; reset answers from the config again.
    mock.set(knobs(json!({"pad": 1_000_000})));
    let res = post(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("mock.pad"),
        "{v}"
    );
    mock.reset();
    let res = post(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(mock.request_count(), 9);
    assert_eq!(mock.requests().len(), 9);
    assert_eq!(mock.requests()[0].path(), "/v1/chat/completions");
    assert_eq!(mock.requests()[0].body()["stream"], Value::Null);
}

/// Reads until `needle` is in `acc`.
async fn read_until(res: &mut reqwest::Response, acc: &mut String, needle: &str) {
    while !acc.contains(needle) {
        let c = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("a chunk in time")
            .unwrap()
            .expect("the stream goes on");
        acc.push_str(std::str::from_utf8(&c).unwrap());
    }
}

#[tokio::test]
async fn gated_streams_wait_for_each_permit_and_are_counted_when_they_end() {
    let mock = start(three_chunks()).await;
    mock.set(knobs(json!({"gated": true})));
    let mut res = post(&mock, "/chat/completions", &chat(json!(true))).await;
    let mut text = String::new();
    read_until(&mut res, &mut text, "\"Hello\"").await;
    assert_eq!(mock.chunks_sent(), 1);
    mock.release(1);
    read_until(&mut res, &mut text, "\" from\"").await;
    assert_eq!(mock.chunks_sent(), 2);
    assert!(!text.contains("\" the\""));
    // Over HTTP as well.
    let r = control(&mock, "/mock/release", &json!({"chunks": 1})).await;
    assert_eq!(r.status(), 204);
    read_until(&mut res, &mut text, "[DONE]").await;
    assert!(mock.wait_streams_ended(1).await);
    assert_eq!((mock.streams_completed(), mock.streams_cancelled()), (1, 0));

    // A client that leaves while the stream waits cancels it.
    let mut res = post(&mock, "/chat/completions", &chat(json!(true))).await;
    let mut text = String::new();
    read_until(&mut res, &mut text, "\"Hello\"").await;
    drop(res);
    assert!(mock.wait_streams_ended(2).await);
    assert_eq!((mock.streams_completed(), mock.streams_cancelled()), (1, 1));
    assert_eq!(mock.chunks_sent(), 4);

    let stats: Value = reqwest::get(format!("http://127.0.0.1:{}/mock/stats", mock.port()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["streams"],
        json!({"chunks_sent": 4, "completed": 1, "cancelled": 1})
    );
    for bad in [
        json!({"chunks": -1}),
        json!({"chunks": 2_000_000}),
        json!({"n": 1}),
    ] {
        let r = control(&mock, "/mock/release", &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{bad}");
    }
}

#[tokio::test]
async fn headers_health_status_cancelled_requests_and_restart() {
    let mock = start(Config {
        response_headers: vec![
            ("set-cookie".into(), "upstream=1".into()),
            ("x-upstream-name".into(), "a1".into()),
        ],
        ..Config::default()
    })
    .await;
    let res = post(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(res.headers()["x-upstream-name"], "a1");
    assert_eq!(res.headers()["set-cookie"], "upstream=1");

    // The model list answers with the status set, and counts its calls.
    let models = format!("{}/models", mock.base_url());
    assert_eq!(reqwest::get(&models).await.unwrap().status(), 200);
    mock.set_models_status(503);
    assert_eq!(reqwest::get(&models).await.unwrap().status(), 503);
    let r = control(&mock, "/mock/models-status", &json!({"status": 200})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(reqwest::get(&models).await.unwrap().status(), 200);
    let r = control(&mock, "/mock/models-status", &json!({"status": 99})).await;
    assert_eq!(r.status(), 400);
    assert_eq!(mock.models_requests(), 3);

    // A caller that gives up during the latency: the request is dropped.
    mock.set(knobs(json!({"latency_ms": 5000})));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = impatient
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat(json!(false)))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    for _ in 0..500 {
        if mock.requests_cancelled() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.requests_cancelled(), 1);
    mock.reset();

    // Stopped, the port refuses; restarted, the same port and state serve.
    mock.stop().await;
    let fresh = reqwest::Client::new();
    assert!(fresh
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat(json!(false)))
        .send()
        .await
        .unwrap_err()
        .is_connect());
    mock.restart().await.unwrap();
    let res = post(&mock, "/chat/completions", &chat(json!(false))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(mock.request_count(), 3);
}
