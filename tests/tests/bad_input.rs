//! Bad input over every HTTP surface of the real binaries (gateway,
//! config-center, token-service): malformed JSON, wrong types, missing
//! fields, invalid UTF-8, oversized bodies and headers, wrong content types,
//! unknown routes and methods. Each must be answered with the right 4xx and
//! a JSON error body — never a 5xx, never a crash — and the services must
//! keep serving afterwards. Slow clients (a stalled request head, a body
//! trickled byte by byte) must be cut off without tying up the workers.
//!
//! Requests are written byte for byte on raw TCP connections, so framing,
//! header bytes and methods are exactly what the case says.

use aigw_e2e::load::{chat_body, send};
use aigw_e2e::raw_http::{http_request, raw_http, RawResponse};
use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

const MODEL: &str = "m1";
/// Body limit every service runs with here, so oversized cases stay cheap.
const LIMIT: usize = 64 * 1024;

async fn stack() -> (Stack, String) {
    let limit = || vec![("MAX_BODY_BYTES".to_string(), LIMIT.to_string())];
    let s = Stack::start(StackOptions {
        gateway_env: limit(),
        config_center_env: limit(),
        token_service_env: limit(),
        ..StackOptions::default()
    })
    .await;
    let key = s.world("bad", MODEL, json!({})).await;
    (s, key)
}

/// One bad request and the status it must get.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    want: u16,
}

fn case(name: &'static str, want: u16, request: Vec<u8>) -> Case {
    Case {
        name,
        request,
        want,
    }
}

/// A JSON POST (or any method) with the given headers.
fn req(method: &str, path: &str, auth: Option<&str>, ct: Option<&str>, body: &[u8]) -> Vec<u8> {
    let auth = auth.map(|a| format!("Bearer {a}"));
    let mut h: Vec<(&str, &[u8])> = Vec::new();
    if let Some(a) = &auth {
        h.push(("Authorization", a.as_bytes()));
    }
    if let Some(ct) = ct {
        h.push(("Content-Type", ct.as_bytes()));
    }
    http_request(method, path, &h, body)
}

/// A body sent with chunked framing (no Content-Length), in 8 KiB chunks.
fn chunked(path: &str, auth: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nAuthorization: Bearer {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for c in body.chunks(8192) {
        r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        r.extend_from_slice(c);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"0\r\n\r\n");
    r
}

fn nested(depth: usize) -> Vec<u8> {
    let mut b = br#"{"model":"m1","messages":[],"x":"#.to_vec();
    b.extend(std::iter::repeat_n(b'[', depth));
    b.extend(std::iter::repeat_n(b']', depth));
    b.push(b'}');
    b
}

fn nested_model(depth: usize) -> Vec<u8> {
    let mut b = br#"{"messages":[],"model":"#.to_vec();
    b.extend(std::iter::repeat_n(b'[', depth));
    b.extend(std::iter::repeat_n(b']', depth));
    b.push(b'}');
    b
}

fn big_json(bytes: usize) -> Vec<u8> {
    format!(
        r#"{{"model":"m1","text":"{}","messages":[{{"role":"user","content":"x"}}]}}"#,
        "a".repeat(bytes)
    )
    .into_bytes()
}

/// Runs every case against `port`; returns a description of each failure.
async fn run(service: &str, port: u16, cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases {
        let r = raw_http(port, &c.request, Duration::from_secs(20)).await;
        if let Some(problem) = judge(&r, c.want) {
            failures.push(format!("{service} {}: {problem}", c.name));
        }
    }
    failures
}

/// None when `r` is the wanted status with a JSON error body.
fn judge(r: &RawResponse, want: u16) -> Option<String> {
    let Some(status) = r.status else {
        return Some(format!("no answer (connection closed): {:?}", r.head));
    };
    if status != want {
        return Some(format!("status {status}, want {want}: {}", r.text()));
    }
    let j = r.json();
    let msg = j["error"]["message"].as_str().unwrap_or("");
    if msg.is_empty() {
        return Some(format!(
            "{status} without a JSON error message: {:?}",
            r.text()
        ));
    }
    None
}

async fn still_serving(s: &mut Stack) {
    assert!(
        s.gateways[0].is_running(),
        "gateway crashed:\n{}",
        s.gateways[0].logs()
    );
    assert!(s.cc.is_running(), "config-center crashed:\n{}", s.cc.logs());
    assert!(s.ts.is_running(), "token-service crashed:\n{}", s.ts.logs());
    for url in [s.gw(0), s.cc.url(), s.ts.url()] {
        let j = s.json(&format!("{url}/health")).await;
        assert_eq!(j["status"], "ok", "{url}/health after bad input");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_answers_bad_input_with_json_4xx() {
    let (mut s, key) = stack().await;
    let k = Some(key.as_str());
    let j = Some("application/json");
    let chat = "/v1/chat/completions";
    let cases = vec![
        case(
            "malformed JSON",
            400,
            req("POST", chat, k, j, br#"{"model":"#),
        ),
        case("JSON array", 400, req("POST", chat, k, j, b"[1,2]")),
        case("empty body", 400, req("POST", chat, k, j, b"")),
        case(
            "model of wrong type",
            400,
            req("POST", chat, k, j, br#"{"model":42,"messages":[]}"#),
        ),
        case(
            "model null",
            400,
            req("POST", chat, k, j, br#"{"model":null,"messages":[]}"#),
        ),
        case(
            "model missing",
            400,
            req("POST", chat, k, j, br#"{"messages":[]}"#),
        ),
        case(
            "duplicate model",
            400,
            req("POST", chat, k, j, br#"{"model":"m1","model":"m1"}"#),
        ),
        case(
            "invalid UTF-8 in a string",
            400,
            req(
                "POST",
                chat,
                k,
                j,
                b"{\"model\":\"m\xff\xfe1\",\"messages\":[]}",
            ),
        ),
        case(
            "invalid UTF-8 outside strings",
            400,
            req("POST", chat, k, j, b"{\"model\":\"m1\",\xc3\x28:1}"),
        ),
        // Deep nesting where the gateway reads (elsewhere the body is opaque
        // and passes through to the upstream).
        case(
            "model nested 20000 deep",
            400,
            req("POST", chat, k, j, &nested_model(20_000)),
        ),
        case(
            "unknown model",
            404,
            req(
                "POST",
                chat,
                k,
                j,
                br#"{"model":"no-such-model","messages":[]}"#,
            ),
        ),
        case(
            "model name of 100 KB",
            413,
            req("POST", chat, k, j, &big_json(100 * 1024)),
        ),
        case(
            "body over the limit",
            413,
            req("POST", chat, k, j, &big_json(LIMIT)),
        ),
        case(
            "chunked body over the limit",
            413,
            chunked(chat, &key, &big_json(LIMIT * 2)),
        ),
        case(
            "text/plain garbage",
            400,
            req("POST", chat, k, Some("text/plain"), b"hello there"),
        ),
        case(
            "form body",
            400,
            req(
                "POST",
                chat,
                k,
                Some("application/x-www-form-urlencoded"),
                b"model=m1&x=1",
            ),
        ),
        // The upstream refuses messages of the wrong type; its 400 is relayed.
        case(
            "messages of wrong type",
            400,
            req("POST", chat, k, j, br#"{"model":"m1","messages":"hi"}"#),
        ),
        case(
            "no key",
            401,
            req("POST", chat, None, j, br#"{"model":"m1","messages":[]}"#),
        ),
        case(
            "wrong key",
            401,
            req("POST", chat, Some("sk-aigw-wrong"), j, br#"{"model":"m1"}"#),
        ),
        case(
            "key of 8 KB",
            401,
            req(
                "POST",
                chat,
                Some(&"k".repeat(8192)),
                j,
                br#"{"model":"m1"}"#,
            ),
        ),
        case(
            "basic auth",
            401,
            http_request(
                "POST",
                chat,
                &[("Authorization", b"Basic dXNlcjpwYXNz")],
                b"{}",
            ),
        ),
        case(
            "non-ASCII key bytes",
            401,
            http_request(
                "POST",
                chat,
                &[("Authorization", b"Bearer sk-\xff\xfe")],
                b"{}",
            ),
        ),
        case(
            "empty bearer",
            401,
            http_request("POST", chat, &[("Authorization", b"Bearer ")], b"{}"),
        ),
        case(
            "completions: wrong type",
            400,
            req("POST", "/v1/completions", k, j, br#"{"model":["m1"]}"#),
        ),
        case(
            "embeddings: malformed",
            400,
            req("POST", "/v1/embeddings", k, j, b"{{}"),
        ),
        case("GET on chat", 405, req("GET", chat, k, None, b"")),
        case(
            "DELETE on models",
            405,
            req("DELETE", "/v1/models", k, None, b""),
        ),
        case("unknown method", 405, req("FOO", chat, k, j, b"{}")),
        case("POST /health", 405, req("POST", "/health", None, j, b"{}")),
        case("unknown route", 404, req("GET", "/v1/nope", k, None, b"")),
        case(
            "invalid percent-encoding",
            404,
            req("GET", "/v1/%ff%fe", k, None, b""),
        ),
        case(
            "path of 4 KB",
            404,
            req("GET", &format!("/v1/{}", "p".repeat(4096)), k, None, b""),
        ),
        case(
            "unknown model by id",
            404,
            req("GET", "/v1/models/nope", k, None, b""),
        ),
    ];
    let n = cases.len();
    let failures = run("gateway", s.gateways[0].port, cases).await;
    still_serving(&mut s).await;
    // And a good request still works.
    let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
    assert_eq!(o.status, Some(200), "{}", o.body);
    report(
        "gateway: bad input (malformed/wrong-typed/missing fields, invalid UTF-8, 20k-deep nesting, oversized and chunked bodies, wrong content types, bad keys, unknown routes/methods)",
        &format!("{n} kinds of request"),
        &format!("{} answered wrongly; 0 crashes", failures.len()),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_center_answers_bad_input_with_json_4xx() {
    let (mut s, _key) = stack().await;
    let a = Some(ADMIN_TOKEN);
    let j = Some("application/json");
    let ns = "/api/v1/namespaces";
    let cases = vec![
        case("malformed JSON", 400, req("POST", ns, a, j, br#"{"code":"#)),
        case("empty body", 400, req("POST", ns, a, j, b"")),
        case("wrong type", 400, req("POST", ns, a, j, br#"{"code":42}"#)),
        case(
            "missing field",
            400,
            req("POST", ns, a, j, br#"{"name":"x"}"#),
        ),
        case(
            "unknown field",
            400,
            req("POST", ns, a, j, br#"{"code":"x","colour":1}"#),
        ),
        case(
            "invalid UTF-8",
            400,
            req("POST", ns, a, j, b"{\"code\":\"a\xff\"}"),
        ),
        case(
            "nested 20000 deep",
            400,
            req("POST", ns, a, j, &nested(20_000)),
        ),
        case(
            "number too large",
            400,
            req("POST", ns, a, j, br#"{"code":"x","limits":{"rpm":1e400}}"#),
        ),
        case(
            "integer overflow",
            400,
            req(
                "POST",
                ns,
                a,
                j,
                br#"{"code":"x","limits":{"rpm":99999999999999999999999}}"#,
            ),
        ),
        case(
            "invalid code",
            400,
            req("POST", ns, a, j, br#"{"code":"../../etc"}"#),
        ),
        case(
            "body over the limit",
            413,
            req("POST", ns, a, j, &big_json(LIMIT)),
        ),
        case(
            "chunked body over the limit",
            413,
            chunked(ns, ADMIN_TOKEN, &big_json(LIMIT * 2)),
        ),
        case(
            "text/plain",
            415,
            req("POST", ns, a, Some("text/plain"), br#"{"code":"x"}"#),
        ),
        case(
            "no content type",
            415,
            req("POST", ns, a, None, br#"{"code":"x"}"#),
        ),
        case(
            "patch: malformed",
            400,
            req("PATCH", &format!("{ns}/bad"), a, j, b"{"),
        ),
        case(
            "instance: wrong types",
            400,
            req(
                "POST",
                "/api/v1/instances",
                a,
                j,
                br#"{"id":1,"namespace_code":[],"model":{},"base_url":null}"#,
            ),
        ),
        case(
            "key: bad expiry",
            400,
            req(
                "POST",
                &format!("{ns}/bad/api-keys"),
                a,
                j,
                br#"{"name":"x","expires_at":"soon"}"#,
            ),
        ),
        case(
            "query: limit not a number",
            400,
            req("GET", &format!("{ns}?limit=abc"), a, None, b""),
        ),
        case(
            "query: limit out of range",
            400,
            req("GET", &format!("{ns}?limit=-1"), a, None, b""),
        ),
        case(
            "query: limit overflow",
            400,
            req(
                "GET",
                &format!("{ns}?limit=99999999999999999999"),
                a,
                None,
                b"",
            ),
        ),
        case("no token", 401, req("GET", ns, None, None, b"")),
        case("wrong token", 401, req("GET", ns, Some("nope"), None, b"")),
        case(
            "non-ASCII token bytes",
            401,
            http_request("GET", ns, &[("Authorization", b"Bearer \xff\xfe")], b""),
        ),
        case(
            "unknown API route",
            404,
            req("GET", "/api/v1/nope", a, None, b""),
        ),
        case(
            "unknown namespace",
            404,
            req("GET", &format!("{ns}/nope"), a, None, b""),
        ),
        case(
            "invalid percent-encoding",
            404,
            req("GET", &format!("{ns}/%ff%fe"), a, None, b""),
        ),
        case("unknown route", 404, req("GET", "/nope", None, None, b"")),
        case("PUT on collection", 405, req("PUT", ns, a, j, b"{}")),
        case("unknown method", 405, req("FOO", ns, a, j, b"{}")),
        case(
            "POST /metrics",
            405,
            req("POST", "/metrics", None, j, b"{}"),
        ),
    ];
    let n = cases.len();
    let failures = run("config-center", s.cc.port, cases).await;
    still_serving(&mut s).await;
    report(
        "config-center: bad input (malformed/wrong-typed/missing/unknown fields, invalid UTF-8, deep nesting, huge numbers, oversized and chunked bodies, wrong or missing content type, bad queries and tokens, unknown routes/methods)",
        &format!("{n} kinds of request"),
        &format!("{} answered wrongly; 0 crashes", failures.len()),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_service_answers_bad_input_with_json_4xx() {
    let (mut s, _key) = stack().await;
    let j = Some("application/json");
    let c = "/v1/tokens/count";
    let cases = vec![
        case(
            "malformed JSON",
            400,
            req("POST", c, None, j, br#"{"text":"#),
        ),
        case("empty body", 400, req("POST", c, None, j, b"")),
        case(
            "text of wrong type",
            400,
            req("POST", c, None, j, br#"{"model":"m1","text":42}"#),
        ),
        case(
            "text missing",
            400,
            req("POST", c, None, j, br#"{"model":"m1"}"#),
        ),
        case(
            "neither model nor encoding",
            400,
            req("POST", c, None, j, br#"{"text":"hi"}"#),
        ),
        case(
            "unknown encoding",
            400,
            req("POST", c, None, j, br#"{"encoding":"utf-9","text":"hi"}"#),
        ),
        case(
            "unknown model",
            400,
            req("POST", c, None, j, br#"{"model":"zz-unknown","text":"hi"}"#),
        ),
        case(
            "invalid UTF-8",
            400,
            req(
                "POST",
                c,
                None,
                j,
                b"{\"model\":\"m1\",\"text\":\"\xff\xfe\"}",
            ),
        ),
        case(
            "nested 20000 deep",
            400,
            req("POST", c, None, j, &nested(20_000)),
        ),
        case(
            "body over the limit",
            413,
            req("POST", c, None, j, &big_json(LIMIT)),
        ),
        case(
            "chunked body over the limit",
            413,
            chunked(c, "-", &big_json(LIMIT * 2)),
        ),
        case(
            "text/plain garbage",
            400,
            req("POST", c, None, Some("text/plain"), b"count me"),
        ),
        case(
            "chat: messages of wrong type",
            400,
            req(
                "POST",
                "/v1/tokens/count/chat",
                None,
                j,
                br#"{"model":"m1","messages":"hi"}"#,
            ),
        ),
        case(
            "chat: message without role",
            400,
            req(
                "POST",
                "/v1/tokens/count/chat",
                None,
                j,
                br#"{"model":"m1","messages":[{"content":"hi"}]}"#,
            ),
        ),
        case(
            "batch: texts not a list",
            400,
            req(
                "POST",
                "/v1/tokens/count/batch",
                None,
                j,
                br#"{"model":"m1","texts":"hi"}"#,
            ),
        ),
        case(
            "batch: texts of wrong type",
            400,
            req(
                "POST",
                "/v1/tokens/count/batch",
                None,
                j,
                br#"{"model":"m1","texts":[1,2]}"#,
            ),
        ),
        case("GET on count", 405, req("GET", c, None, None, b"")),
        case(
            "DELETE on models",
            405,
            req("DELETE", "/v1/models", None, None, b""),
        ),
        case("unknown method", 405, req("FOO", c, None, j, b"{}")),
        case(
            "unknown route",
            404,
            req("GET", "/v1/nope", None, None, b""),
        ),
        case(
            "invalid percent-encoding",
            404,
            req("GET", "/v1/%ff%fe", None, None, b""),
        ),
    ];
    let n = cases.len();
    let failures = run("token-service", s.ts.port, cases).await;
    still_serving(&mut s).await;
    report(
        "token-service: bad input (malformed/wrong-typed/missing fields, unknown model/encoding, invalid UTF-8, deep nesting, oversized and chunked bodies, wrong content type, unknown routes/methods)",
        &format!("{n} kinds of request"),
        &format!("{} answered wrongly; 0 crashes", failures.len()),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Oversized request heads (one huge header, too many headers, a huge
/// request line) are refused with a 4xx by every service, which keeps
/// serving. They are refused by the HTTP layer before any route runs, so
/// the body is the framework's, not a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_with_4xx() {
    let (mut s, key) = stack().await;
    let big = "a".repeat(128 * 1024);
    let many: Vec<(String, String)> = (0..300).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let mut failures = Vec::new();
    let mut seen = Vec::new();
    for (name, port) in [
        ("gateway", s.gateways[0].port),
        ("config-center", s.cc.port),
        ("token-service", s.ts.port),
    ] {
        let huge_header = http_request("GET", "/health", &[("X-Big", big.as_bytes())], b"");
        let many_refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let many_headers = http_request("GET", "/health", &many_refs, b"");
        let huge_line = http_request("GET", &format!("/health?{big}"), &[], b"");
        for (what, r) in [
            ("one 128 KiB header", huge_header),
            ("300 headers", many_headers),
            ("128 KiB request line", huge_line),
        ] {
            let resp = raw_http(port, &r, Duration::from_secs(20)).await;
            match resp.status {
                Some(st) if (400..500).contains(&st) => seen.push(format!("{name} {what}: {st}")),
                other => failures.push(format!("{name} {what}: {other:?} {}", resp.head)),
            }
        }
    }
    still_serving(&mut s).await;
    let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
    assert_eq!(o.status, Some(200));
    report(
        "oversized request heads (128 KiB header, 300 headers, 128 KiB request line) on all three services",
        "9 requests",
        &format!("{} not refused with a 4xx; 0 crashes ({})", failures.len(), seen.join(", ")),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Slow clients, part 1: request heads that stall are cut off (actix's
/// client request timeout, 408) by every service, and while they hang on,
/// normal requests are served — the workers are not tied up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_heads_are_cut_off_without_tying_up_workers() {
    slow_clients(false).await;
}

/// Slow clients, part 2: a body trickled a byte per second is cut off by
/// every service's body deadline (`BODY_TIMEOUT`, 5 s in this stack) with a
/// JSON 408, while normal requests keep being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_are_cut_off_without_tying_up_workers() {
    slow_clients(true).await;
}

async fn slow_clients(trickle: bool) {
    let (mut s, key) = stack().await;
    // Far more slow connections than workers (2 per service).
    const SLOW: usize = 8;
    const BOUND: Duration = Duration::from_secs(45);
    let kind = if trickle {
        "trickled body"
    } else {
        "stalled head"
    };
    let services = [
        (
            "gateway",
            s.gateways[0].port,
            "/v1/chat/completions",
            Some(key.clone()),
        ),
        (
            "config-center",
            s.cc.port,
            "/api/v1/namespaces",
            Some(ADMIN_TOKEN.to_string()),
        ),
        ("token-service", s.ts.port, "/v1/tokens/count", None),
    ];
    let mut tasks = Vec::new();
    for (name, port, path, auth) in services.clone() {
        for _ in 0..SLOW {
            let mut head = format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            if let Some(a) = &auth {
                head.push_str(&format!("Authorization: Bearer {a}\r\n"));
            }
            if trickle {
                head.push_str("Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
            }
            tasks.push(tokio::spawn(async move {
                (
                    name,
                    slow_client(port, head.into_bytes(), trickle, BOUND).await,
                )
            }));
        }
    }
    // Meanwhile every service serves normal requests.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_flight_gauge = s.int("metrics:ns:bad:concurrent_requests").await;
    if trickle {
        // A client still sending its body is not in flight yet.
        assert_eq!(in_flight_gauge, 0, "slow senders counted as in flight");
    }
    for _ in 0..5 {
        let o = send(&s.http, &s.gw(0), &key, &chat_body(MODEL, false, None)).await;
        assert_eq!(
            o.status,
            Some(200),
            "gateway busy with slow clients: {}",
            o.body
        );
        let a = s
            .admin(reqwest::Method::GET, "/api/v1/namespaces", None)
            .await;
        assert_eq!(a.status, 200, "config-center busy with slow clients");
        let r = s
            .http
            .post(format!("{}/v1/tokens/count", s.ts.url()))
            .json(&json!({"model": MODEL, "text": "hi"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "token-service busy with slow clients");
    }
    let mut not_cut = Vec::new();
    let mut cut = Vec::new();
    for t in tasks {
        let (name, r) = t.await.unwrap();
        match r {
            Some((after, status)) => {
                cut.push(format!("{name}: {status:?} after {}s", after.as_secs()))
            }
            None => not_cut.push(name),
        }
    }
    not_cut.dedup();
    cut.sort();
    cut.dedup();
    still_serving(&mut s).await;
    report(
        &format!(
            "slow clients: {kind}{}",
            if trickle { " at 1 byte/s" } else { "" }
        ),
        &format!("{SLOW} slow connections per service alongside normal requests"),
        &format!(
            "normal requests failed 0; connections not cut within {}s: {}{}",
            BOUND.as_secs(),
            if not_cut.is_empty() {
                "none".to_string()
            } else {
                not_cut.join(", ")
            },
            if trickle {
                format!("; gateway in-flight gauge meanwhile {in_flight_gauge}")
            } else {
                String::new()
            }
        ),
    );
    assert!(
        not_cut.is_empty(),
        "{kind} not cut off within {BOUND:?}: {not_cut:?}\ncut: {cut:?}"
    );
}

/// Writes `head`, then (when `trickle`) one body byte per second; returns
/// when the server answered or closed (the time and the status), or None if
/// it still holds the connection after `bound`.
async fn slow_client(
    port: u16,
    head: Vec<u8>,
    trickle: bool,
    bound: Duration,
) -> Option<(Duration, Option<u16>)> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(&head).await.ok()?;
    let writer = tokio::spawn(async move {
        if !trickle {
            // A stalled head: never finish it.
            std::future::pending::<()>().await;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if wr.write_all(b" ").await.is_err() {
                break;
            }
        }
    });
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let done = tokio::time::timeout(bound, read).await.is_ok();
    writer.abort();
    if !done {
        return None;
    }
    let status = String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok());
    Some((start.elapsed(), status))
}
