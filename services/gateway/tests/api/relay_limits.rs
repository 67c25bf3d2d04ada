//! Bounds of the relay: answer and event size caps, the idle timeout
//! between upstream chunks, and streams whose client stopped reading.

use crate::helpers::*;
use crate::raw_upstream::{Fault, RawUpstream};
use aigw_types::Limits;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await.expect("a JSON error body");
    (status, v["error"].clone())
}

/// Streams a chat to its end (bounded) and checks that the last event is
/// an error event with `code`; returns the `data:` payloads.
async fn stream_until_error(app: &TestApp, code: &str) -> Vec<String> {
    let resp = app.chat(KEY_A, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), resp.text())
        .await
        .expect("the stream ends")
        .unwrap();
    let data = sse_data(&text);
    let v: Value = serde_json::from_str(data.last().expect("an event")).unwrap();
    assert_eq!(v["error"]["code"], code, "{text}");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_over_the_cap_is_a_json_502() {
    let up = upstream("a1").await;
    let chunked = RawUpstream::start(Fault::ChunkedAnswer(64 * 1024)).await;
    let mut snap = one_instance(&up.base_url());
    snap.models.push(model("chunky"));
    snap.instances
        .push(instance("c1", "team-a", "chunky", &chunked.base_url()));
    let app = TestApp::spawn_with(&snap, |s| s.upstream_max_response_bytes = 4096).await;

    // Under the cap (three chunks of 333 bytes): relayed.
    up.set(mock(json!({"pad": 333})));
    assert_eq!(app.chat(KEY_A, chat_body(false)).await.status(), 200);
    // Over it (three of 2,666), with a Content-Length and chunked.
    up.set(mock(json!({"pad": 2666})));
    let (status, err) = error_of(app.chat(KEY_A, chat_body(false)).await).await;
    assert_eq!(status, 502);
    assert_eq!(err["code"], "upstream_response_too_large", "{err}");
    let mut body = chat_body(false);
    body["model"] = "chunky".into();
    let (status, err) = error_of(app.chat(KEY_A, body).await).await;
    assert_eq!(status, 502);
    assert_eq!(err["code"], "upstream_response_too_large", "{err}");
    assert_eq!(up.request_count(), 2, "an oversized answer is not retried");
    assert_eq!(chunked.posts(), 1);
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:status:502").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_stream_event_ends_the_stream_at_the_cap() {
    let up = RawUpstream::start(Fault::EndlessEvent).await;
    let app = TestApp::spawn_with(&one_instance(&up.base_url()), |s| {
        s.sse_max_event_bytes = 16 * 1024
    })
    .await;
    let data = stream_until_error(&app, "upstream_event_too_large").await;
    assert_eq!(data.len(), 1, "{data:?}");
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 502);
    assert_eq!(
        recs[0].error_kind.as_deref(),
        Some("upstream_event_too_large")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_stream_ends_after_the_idle_timeout() {
    let up = upstream("a1").await;
    up.set(mock(json!({"gated": true, "chunks": 3})));
    let app = TestApp::spawn_with(&one_instance(&up.base_url()), |s| {
        s.upstream_idle_timeout = Duration::from_millis(300);
        s.passive_failure_threshold = 1;
    })
    .await;
    // The mock waits for a permit before chunk 2 that never comes.
    let data = stream_until_error(&app, "upstream_idle_timeout").await;
    // The role chunk, the first content chunk, the gateway's error event.
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data[1].contains("\"Hello\""), "{data:?}");
    assert!(up.wait_streams_ended(1).await);
    assert_eq!(up.streams_cancelled(), 1);
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs[0].status, 504);
    assert_eq!(recs[0].error_kind.as_deref(), Some("upstream_idle_timeout"));
    // Slow is not broken: the instance stays healthy.
    assert_eq!(
        app.get("metrics:instance:a1:team-a").await.as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_frees_its_slot_and_is_accounted() {
    let up = upstream("a1").await;
    // A long stream of fat chunks: far more than the socket buffers hold.
    up.set(mock(json!({"chunks": 100_000, "pad": 4096})));
    let mut snap = one_instance(&up.base_url());
    snap.namespaces[0].limits = Limits {
        max_concurrency: Some(1),
        ..Default::default()
    };
    let app = TestApp::spawn_with(&snap, |s| {
        s.client_write_timeout = Duration::from_millis(500);
    })
    .await;

    // A client that sends its request and never reads a byte.
    let addr = app.gw.addr.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let body = serde_json::to_vec(&chat_body(true)).unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY_A}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(&body).await.unwrap();

    // The stream is ended for it: the upstream request is cancelled and the
    // request accounted, while its connection is still open.
    assert!(up.wait_streams_ended(1).await);
    assert_eq!(up.streams_cancelled(), 1);
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].status, 408);
    assert_eq!(recs[0].error_kind.as_deref(), Some("client_write_timeout"));
    assert!(recs[0].stream);
    // Its concurrency slot is free: the next request is served.
    up.reset();
    let resp = app.chat(KEY_A, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    drop(sock);
}
