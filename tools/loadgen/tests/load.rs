//! Load runs against the workspace's real mock upstream (and two tiny raw
//! servers for misbehaviour): the counts the load generator reports must be
//! exactly what the server saw.

use serde_json::Value;
use std::io::{Read, Write};
use std::process::Command;

/// Starts the mock on a free port in its own actix system; it lives until
/// the test process ends.
fn start_mock() -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = mock_upstream::Application::build(mock_upstream::Config {
                port: 0,
                bind_addr: "127.0.0.1".into(),
                workers: Some(1),
                ..Default::default()
            })
            .expect("build mock");
            tx.send(app.port()).expect("send port");
            app.run_until_stopped().await.expect("mock runs");
        })
    });
    rx.recv().expect("mock started")
}

/// A GET over a fresh connection, answered as JSON.
fn get_json(port: u16, path: &str) -> Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn mock_chat_count(port: u16) -> u64 {
    get_json(port, "/mock/stats")["requests"]["chat_completions"]
        .as_u64()
        .expect("count")
}

fn chat_body(extra: &str) -> String {
    format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"hello there"}}]{extra}}}"#
    )
}

fn options(args: &[&str]) -> loadgen::cli::Options {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    loadgen::cli::parse(&args).expect("options")
}

fn run(args: &[&str]) -> loadgen::Report {
    loadgen::run(&options(args)).expect("run")
}

#[test]
fn exactly_n_requests_reach_the_server() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body("");
    let r = run(&["-n", "3000", "-c", "16", "-t", "2", "-b", &body, &url]);
    assert_eq!(r.requests, 3000);
    assert_eq!(r.ok, 3000);
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.status.get("200"), Some(&3000));
    assert_eq!(r.connects, 16, "keep-alive: one connection each");
    assert_eq!(mock_chat_count(port), 3000);
    assert_eq!(r.latency_ms.count, 3000);
    assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.p50 <= r.latency_ms.p99);
    assert!(
        r.body_bytes > 3000 * 100,
        "bodies are read whole: {}",
        r.body_bytes
    );
}

#[test]
fn a_timed_run_completes_every_request_it_started() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body("");
    let r = run(&["-d", "1s", "-c", "8", "-b", &body, &url]);
    assert!(r.requests > 0);
    assert!(r.transport_errors.is_empty(), "{r:?}");
    // Nothing was cut at the deadline: the server saw exactly what was counted.
    assert_eq!(mock_chat_count(port), r.requests);
    assert_eq!(r.ok, r.requests);
}

#[test]
fn open_loop_sends_exactly_the_schedule_and_charges_queueing() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body("");
    let r = run(&["-R", "2000", "-d", "1s", "-c", "4", "-b", &body, &url]);
    assert_eq!(r.mode, "open");
    assert_eq!(r.planned_requests, Some(2000));
    assert_eq!(r.requests, 2000);
    assert_eq!(mock_chat_count(port), 2000);
    // Latency from the intended send time is never below the one from the
    // actual send.
    let service = r
        .service_ms
        .clone()
        .expect("open loop reports service time");
    assert!(r.latency_ms.p50 >= service.p50, "{r:?}");
    assert!(r.latency_ms.max >= service.max, "{r:?}");
}

#[test]
fn streams_are_scanned_event_by_event() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    // 20 content chunks 2 ms apart: a role event, 20 content events and a
    // finish event, then [DONE].
    let body = chat_body(r#","stream":true,"mock":{"chunks":20,"chunk_delay_ms":2}"#);
    let r = run(&["-n", "50", "-c", "5", "--stream", "-b", &body, &url]);
    assert_eq!(r.ok, 50, "{r:?}");
    let s = r.stream.clone().expect("stream report");
    assert_eq!((s.events_min, s.events_max), (22, 22), "{s:?}");
    assert_eq!(s.incomplete, 0);
    assert_eq!(s.first_event_ms.count, 50);
    assert_eq!(s.gap_ms.count, 50 * 21);
    // The mock sleeps 2 ms between content chunks, so some gap is that long.
    assert!(s.gap_ms.max >= 2.0, "{s:?}");
    assert!(s.first_event_ms.p50 <= r.latency_ms.p50);
}

#[test]
fn aborted_streams_are_transport_errors_and_reconnect() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body(r#","stream":true,"mock":{"chunks":20,"abort_after_chunks":3}"#);
    let r = run(&["-n", "12", "-c", "3", "--stream", "-b", &body, &url]);
    assert_eq!(r.requests, 0, "{r:?}");
    assert_eq!(r.transport_errors.get("closed"), Some(&12), "{r:?}");
    assert_eq!(r.errors, 12);
    // Every request after a broken one needed a new connection.
    assert_eq!(r.connects, 12);
    assert_eq!(mock_chat_count(port), 12);
}

#[test]
fn error_statuses_are_counted_by_code() {
    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body(r#","mock":{"status":503}"#);
    let r = run(&["-n", "40", "-c", "4", "-b", &body, &url]);
    assert_eq!(r.requests, 40);
    assert_eq!(r.ok, 0);
    assert_eq!(r.errors, 40);
    assert_eq!(r.status.get("503"), Some(&40), "{r:?}");
    assert!(r.human().contains("errors: 503 x40"), "{}", r.human());
}

#[test]
fn a_dead_target_gives_connect_errors_not_a_hang() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let r = run(&["-n", "5", "-c", "1", &url]);
    assert_eq!(r.requests, 0);
    assert!(
        r.transport_errors.get("connect").is_some_and(|n| *n >= 5),
        "{r:?}"
    );
}

#[test]
fn connection_close_answers_are_followed_by_reconnects() {
    // A server that answers one request per connection, then closes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut b = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&b[..n]),
                }
            }
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let r = run(&["-n", "20", "-c", "2", &url]);
    assert_eq!((r.requests, r.ok, r.errors), (20, 20, 0), "{r:?}");
    assert_eq!(r.connects, 20);
    assert_eq!(r.body_bytes, 40);
}

#[test]
fn the_binary_prints_json_and_refuses_bad_options() {
    let exe = env!("CARGO_BIN_EXE_loadgen");
    let out = Command::new(exe)
        .args(["-n", "10", "--rate", "-3", "http://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rate"));

    let port = start_mock();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = chat_body("");
    let watch = format!("mock={}", std::process::id());
    let out = Command::new(exe)
        .args([
            "-n", "200", "-c", "2", "-b", &body, "--watch", &watch, "--json", "-", &url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["requests"], 200);
    assert_eq!(v["status"]["200"], 200);
    assert_eq!(v["watch"][0]["name"], "mock");
    assert!(v["watch"][0]["rss_max_mib"].as_f64().unwrap() > 0.0);
    // The human summary went to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("200 requests, 0 errors"));
    assert_eq!(mock_chat_count(port), 200);
}
