//! Property-based fuzzing of the gateway binary's request parsing and SSE
//! pass-through, against a scripted upstream in this process that records
//! what it receives and answers exactly the bytes a case says.
//!
//! Properties:
//! - any request body is answered 2xx or 4xx with a JSON error — never a
//!   5xx, never a crash;
//! - a JSON body reaches the upstream with only `model` replaced (and, for
//!   streams, `stream_options.include_usage` set); every other field equal;
//! - any SSE stream, split into any chunks, reaches the client byte for
//!   byte when the client asked for usage itself, and minus exactly the
//!   usage-only events when the gateway asked for them;
//! - every request is counted once.
//!
//! `PROPTEST_CASES` sets the number of cases per property (default 48 for
//! CI; `scripts/fuzz.sh` runs thousands).

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the scripted upstream answers next, and what it last received.
#[derive(Default)]
struct Script {
    /// SSE body chunks; `None` answers a fixed JSON completion.
    sse: Option<Vec<Vec<u8>>>,
    last_body: Option<Vec<u8>>,
    requests: usize,
}

async fn scripted_upstream(script: Arc<Mutex<Script>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            let script = script.clone();
            tokio::spawn(async move {
                let _ = sock.set_nodelay(true);
                let Some(body) = read_request(&mut sock).await else {
                    return;
                };
                let sse = {
                    let mut s = script.lock().unwrap();
                    s.last_body = Some(body);
                    s.requests += 1;
                    s.sse.clone()
                };
                match sse {
                    None => {
                        let b = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(b).await;
                    }
                    Some(chunks) => {
                        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                        let _ = sock.write_all(head.as_bytes()).await;
                        for c in chunks.iter().filter(|c| !c.is_empty()) {
                            let mut frame = format!("{:x}\r\n", c.len()).into_bytes();
                            frame.extend_from_slice(c);
                            frame.extend_from_slice(b"\r\n");
                            if sock.write_all(&frame).await.is_err() {
                                return;
                            }
                            // Separate reads on the gateway's side.
                            tokio::time::sleep(Duration::from_micros(300)).await;
                        }
                        let _ = sock.write_all(b"0\r\n\r\n").await;
                    }
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    port
}

/// Reads one request (Content-Length framing, as the gateway sends) and
/// returns its body.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    stack: Stack,
    script: Arc<Mutex<Script>>,
    key: String,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let script = Arc::new(Mutex::new(Script::default()));
    let (stack, key) = rt.block_on(async {
        let port = scripted_upstream(script.clone()).await;
        let s = Stack::start(StackOptions {
            mocks: 0,
            token_service: false,
            ..StackOptions::default()
        })
        .await;
        s.namespace("fz", json!({})).await;
        s.model("fz", "1", "2").await;
        s.instance(
            "fz-1",
            "fz",
            "fz",
            &format!("http://127.0.0.1:{port}/v1"),
            json!({"upstream_model": "fz-up"}),
        )
        .await;
        let (_, key, v) = s.key("fz", json!({})).await;
        s.wait_version(v).await;
        (s, key)
    });
    Fixture {
        rt,
        stack,
        script,
        key,
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// POSTs `body` to the chat endpoint; (status, body bytes).
async fn post(f: &Fixture, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = f
        .stack
        .http
        .post(format!("{}/v1/chat/completions", f.stack.gw(0)))
        .bearer_auth(&f.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the gateway answers");
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap_or_default().to_vec())
}

// ----- strategies ---------------------------------------------------------------

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request object: random fields plus `model`, maybe `stream` and
/// `stream_options`, keys in random order.
fn request_object() -> impl Strategy<Value = (Map<String, Value>, bool)> {
    (
        prop::collection::btree_map("[a-z_]{1,12}", json_value(), 0..8),
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(json!({"include_usage": true}))),
            Just(Some(json!({"include_usage": false}))),
            Just(Some(json!({}))),
            // `"stream_options": null` is left out: see
            // `stream_options_null_is_replaced_not_duplicated`.
        ],
        any::<u8>(),
    )
        .prop_map(|(fields, stream, opts, pos)| {
            let mut m = Map::new();
            let keys: Vec<String> = fields
                .keys()
                .filter(|k| !matches!(k.as_str(), "model" | "stream" | "stream_options" | "mock"))
                .cloned()
                .collect();
            let at = if keys.is_empty() {
                0
            } else {
                pos as usize % (keys.len() + 1)
            };
            for (i, k) in keys.iter().enumerate() {
                if i == at {
                    m.insert("model".into(), json!("fz"));
                }
                m.insert(k.clone(), fields[k].clone());
            }
            if !m.contains_key("model") {
                m.insert("model".into(), json!("fz"));
            }
            if stream {
                m.insert("stream".into(), json!(true));
                if let Some(o) = opts {
                    m.insert("stream_options".into(), o);
                }
            }
            (m, stream)
        })
}

/// One SSE event as the upstream writes it, and whether it is usage-only.
fn sse_event() -> impl Strategy<Value = (Vec<u8>, bool)> {
    let content = any::<String>().prop_map(|t| {
        let j = json!({"id": "c", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": {"content": t}}]});
        (vec![format!("data: {j}")], false)
    });
    let usage = (0u32..10_000, 0u32..10_000).prop_map(|(p, c)| {
        let j = json!({"id": "c", "choices": [],
                       "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}});
        (vec![format!("data: {j}")], true)
    });
    let comment = "[ -~]{0,40}".prop_map(|t| (vec![format!(": {t}")], false));
    let multi =
        ("[a-z]{1,8}", prop::collection::vec("[ -~]{0,20}", 1..4)).prop_map(|(e, lines)| {
            let mut v = vec![format!("event: {e}")];
            v.extend(lines.into_iter().map(|l| format!("data: {l}")));
            (v, false)
        });
    let done = Just((vec!["data: [DONE]".to_string()], false));
    // Arbitrary bytes on one line (no line breaks), prefixed so it is no
    // `data:` line.
    let garbage = prop::collection::vec(
        any::<u8>().prop_filter("no line break", |b| *b != b'\n' && *b != b'\r'),
        0..60,
    )
    .prop_map(|b| {
        let mut line = b"x-".to_vec();
        line.extend(b);
        (line, false)
    });
    let text = prop_oneof![
        4 => content,
        2 => usage,
        1 => comment,
        1 => multi,
        1 => done,
    ];
    prop_oneof![
        6 => (text, any::<bool>()).prop_map(|((lines, u), crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut b = lines.join(eol).into_bytes();
            b.extend_from_slice(eol.as_bytes());
            b.extend_from_slice(eol.as_bytes());
            (b, u)
        }),
        1 => garbage.prop_map(|(mut line, u)| {
            line.extend_from_slice(b"\n\n");
            (line, u)
        }),
    ]
}

/// Events, split points for the upstream's writes, whether the last event
/// loses its terminating blank line, and whether the client asked for usage.
type SseCase = (Vec<(Vec<u8>, bool)>, Vec<usize>, bool, bool);

fn sse_case() -> impl Strategy<Value = SseCase> {
    (
        prop::collection::vec(sse_event(), 1..12),
        prop::collection::vec(any::<usize>(), 0..12),
        any::<bool>(),
        any::<bool>(),
    )
}

// ----- properties --------------------------------------------------------------

#[test]
fn any_request_body_gets_2xx_or_a_json_4xx() {
    let f = fixture();
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), any::<String>())
            .prop_map(|(v, m)| json!({"model": m, "x": v}).to_string().into_bytes()),
    ];
    let n = std::cell::Cell::new(0usize);
    let result = runner().run(&body, |body| {
        n.set(n.get() + 1);
        let (status, answer) = f.rt.block_on(post(&f, body.clone()));
        prop_assert!(
            status < 500,
            "status {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        if status >= 400 {
            let j: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            prop_assert!(
                j["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{status} without a JSON error: {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    });
    let alive =
        f.rt.block_on(async { f.stack.json(&format!("{}/health", f.stack.gw(0))).await });
    report(
        "fuzz: arbitrary request bodies to the gateway (random bytes, random JSON, random model names)",
        &format!("{} cases", n.get()),
        &format!("{}; 5xx 0; crashes {}", if result.is_ok() { "0 failures" } else { "FAILED" }, u8::from(alive["status"] != "ok")),
    );
    result.unwrap();
    assert_eq!(alive["status"], "ok");
}

#[test]
fn json_bodies_reach_the_upstream_with_only_the_model_rewritten() {
    let f = fixture();
    f.script.lock().unwrap().sse = None;
    let n = std::cell::Cell::new(0usize);
    let result = runner().run(&request_object(), |(obj, stream)| {
        n.set(n.get() + 1);
        f.script.lock().unwrap().sse = stream.then(|| vec![b"data: [DONE]\n\n".to_vec()]);
        let sent = serde_json::to_vec(&Value::Object(obj.clone())).unwrap();
        let (status, answer) = f.rt.block_on(post(&f, sent));
        prop_assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let got = f
            .script
            .lock()
            .unwrap()
            .last_body
            .take()
            .unwrap_or_default();
        let got: Value = serde_json::from_slice(&got)
            .map_err(|e| TestCaseError::fail(format!("upstream got invalid JSON: {e}")))?;
        let mut want = obj.clone();
        want.insert("model".into(), json!("fz-up"));
        if stream {
            let mut opts = match want.get("stream_options") {
                Some(Value::Object(o)) => o.clone(),
                _ => Map::new(),
            };
            opts.insert("include_usage".into(), json!(true));
            want.insert("stream_options".into(), Value::Object(opts));
        }
        // Compare through the same JSON reader (serde_json's float parsing
        // is not exact), so only a change of bytes shows.
        let want: Value =
            serde_json::from_slice(&serde_json::to_vec(&Value::Object(want)).unwrap()).unwrap();
        prop_assert_eq!(got, want);
        Ok(())
    });
    report(
        "fuzz: random JSON request objects through the gateway (field order, nesting, unicode, stream options)",
        &format!("{} cases", n.get()),
        if result.is_ok() { "0 bodies altered beyond `model` / `stream_options`" } else { "FAILED" },
    );
    result.unwrap();
}

#[test]
fn sse_streams_pass_through_exactly_whatever_the_chunking() {
    let f = fixture();
    let before = f.rt.block_on(f.stack.int("metrics:ns:fz:total_requests"));
    let n = std::cell::Cell::new(0usize);
    let result = runner().run(&sse_case(), |(events, splits, cut_last, client_asked)| {
        n.set(n.get() + 1);
        let mut upstream = Vec::new();
        let mut want = Vec::new();
        let last = events.len() - 1;
        for (i, (bytes, usage_only)) in events.iter().enumerate() {
            let mut b = bytes.clone();
            if i == last && cut_last {
                // Drop the blank line that ends the last event.
                while b.ends_with(b"\n") || b.ends_with(b"\r") {
                    b.pop();
                }
            }
            if client_asked || !usage_only {
                want.extend_from_slice(&b);
            }
            upstream.extend_from_slice(&b);
        }
        let mut points: Vec<usize> = splits.iter().map(|s| s % (upstream.len() + 1)).collect();
        points.sort();
        points.dedup();
        let mut chunks = Vec::new();
        let mut from = 0;
        for p in points.into_iter().chain([upstream.len()]) {
            chunks.push(upstream[from..p].to_vec());
            from = p;
        }
        f.script.lock().unwrap().sse = Some(chunks);
        let mut req = json!({"model": "fz", "stream": true, "messages": []});
        if client_asked {
            req["stream_options"] = json!({"include_usage": true});
        }
        let (status, got) = f.rt.block_on(post(&f, req.to_string().into_bytes()));
        prop_assert_eq!(status, 200);
        prop_assert!(
            got == want,
            "client got\n{:?}\nwant\n{:?}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        Ok(())
    });
    // Every stream was counted once.
    let counted = f.rt.block_on(async {
        let want = before + n.get() as i64;
        f.stack
            .settle(Duration::from_secs(10), &want, || {
                f.stack.int("metrics:ns:fz:total_requests")
            })
            .await
    });
    report(
        "fuzz: random SSE streams (content, usage-only, comments, multi-line, [DONE], raw bytes; LF/CRLF; cut last event) split at random points",
        &format!("{} streams", n.get()),
        &format!(
            "{}; counted {} of {}",
            if result.is_ok() { "0 altered" } else { "FAILED" },
            counted - before,
            n.get()
        ),
    );
    result.unwrap();
    assert_eq!(
        counted - before,
        n.get() as i64,
        "every stream counted once"
    );
}

/// Found by the property above: with `"stream": true, "stream_options":
/// null` the gateway must replace the `null` (the upstream once received a
/// duplicate `stream_options` key and, keeping the last, reported no usage).
#[test]
fn stream_options_null_is_replaced_not_duplicated() {
    let f = fixture();
    f.script.lock().unwrap().sse = Some(vec![b"data: [DONE]\n\n".to_vec()]);
    let body = br#"{"model":"fz","stream":true,"stream_options":null}"#.to_vec();
    let (status, _) = f.rt.block_on(post(&f, body));
    assert_eq!(status, 200);
    let got = f.script.lock().unwrap().last_body.take().unwrap();
    let text = String::from_utf8_lossy(&got).to_string();
    let keys = text.matches("stream_options").count();
    report(
        "gateway request rewrite with `\"stream\": true, \"stream_options\": null`",
        "1 request",
        &format!("`stream_options` keys sent upstream: {keys} (want 1)"),
    );
    assert_eq!(keys, 1, "{text}");
    let v: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true, "{text}");
}
