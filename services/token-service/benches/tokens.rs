//! Counting throughput: in process (the production path and tiktoken-rs,
//! single-threaded) and, when `BENCH_URL` points at a running service,
//! through `POST /v1/tokens/count` — so the HTTP overhead is visible.
//! Run through `scripts/bench-tokens.sh`.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};
use token_service::tokenize::{Encoders, Encoding};

const SIZES: [(&str, usize); 3] = [("50 B", 50), ("1 KB", 1024), ("100 KB", 100 * 1024)];

/// Mixed English prose, code and a little CJK, cut to `n` bytes.
fn text_of(n: usize) -> String {
    let para = "The gateway counts every request: tokens in, tokens out, cost per model. \
        fn main() { let x = vec![1, 2, 3]; println!(\"{x:?}\"); } \
        {\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]} \
        今日はいい天気ですね。Numbers 3.14159 and 2024-11-26. ";
    let mut s = String::new();
    while s.len() < n {
        s.push_str(para);
    }
    let mut cut = n;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

fn run_for<F: FnMut() -> usize>(d: Duration, mut f: F) -> (u64, f64) {
    let start = Instant::now();
    let mut ops = 0u64;
    let mut sink = 0usize;
    while start.elapsed() < d {
        sink = sink.wrapping_add(f());
        ops += 1;
    }
    std::hint::black_box(sink);
    (ops, start.elapsed().as_secs_f64())
}

fn in_process(secs: f64) {
    let prod = Encoders::load().expect("encoders");
    let tik = [
        (Encoding::O200kBase, tiktoken_rs::o200k_base().unwrap()),
        (Encoding::Cl100kBase, tiktoken_rs::cl100k_base().unwrap()),
    ];
    println!("## In process, one thread\n");
    println!("| encoding | size | service path req/s | service path MB/s | tiktoken-rs req/s | tiktoken-rs MB/s |");
    println!("|---|---|---|---|---|---|");
    for (e, core) in &tik {
        for (label, n) in SIZES {
            let t = text_of(n);
            assert_eq!(prod.count(*e, &t), core.encode_ordinary(&t).len());
            let d = Duration::from_secs_f64(secs);
            let (a_ops, a_s) = run_for(d, || prod.count(*e, &t));
            let (b_ops, b_s) = run_for(d, || core.encode_ordinary(&t).len());
            let mbs = |ops: u64, s: f64| ops as f64 * t.len() as f64 / s / 1e6;
            println!(
                "| {e} | {label} | {:.0} | {:.1} | {:.0} | {:.1} |",
                a_ops as f64 / a_s,
                mbs(a_ops, a_s),
                b_ops as f64 / b_s,
                mbs(b_ops, b_s)
            );
        }
    }
    println!();
}

fn over_http(url: &str, secs: f64, concurrency: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .build()
            .unwrap();
        println!("## Through the HTTP API ({concurrency} concurrent keep-alive clients)\n");
        println!("| encoding | size | req/s | MB/s of text | mean latency ms |");
        println!("|---|---|---|---|---|");
        for e in ["o200k_base", "cl100k_base"] {
            for (label, n) in SIZES {
                let body = serde_json::json!({"encoding": e, "text": text_of(n)}).to_string();
                let deadline = Instant::now() + Duration::from_secs_f64(secs);
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    let (client, body, url) = (
                        client.clone(),
                        body.clone(),
                        format!("{url}/v1/tokens/count"),
                    );
                    tasks.push(tokio::spawn(async move {
                        let mut done = 0u64;
                        let mut busy = Duration::ZERO;
                        while Instant::now() < deadline {
                            let t = Instant::now();
                            let r = client
                                .post(&url)
                                .header("content-type", "application/json")
                                .body(body.clone())
                                .send()
                                .await
                                .expect("request");
                            assert!(r.status().is_success(), "{}", r.status());
                            let _ = r.bytes().await.expect("body");
                            busy += t.elapsed();
                            done += 1;
                        }
                        (done, busy)
                    }));
                }
                let started = Instant::now();
                let mut done = 0;
                let mut busy = Duration::ZERO;
                for t in tasks {
                    let (d, b) = t.await.unwrap();
                    done += d;
                    busy += b;
                }
                let s = started.elapsed().as_secs_f64();
                println!(
                    "| {e} | {label} | {:.0} | {:.1} | {:.2} |",
                    done as f64 / s,
                    done as f64 * n as f64 / s / 1e6,
                    busy.as_secs_f64() * 1e3 / done.max(1) as f64
                );
            }
        }
        println!();
    });
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let secs: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    in_process(secs);
    if let Ok(url) = std::env::var("BENCH_URL") {
        let c = std::env::var("BENCH_CONCURRENCY")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        over_http(url.trim_end_matches('/'), secs, c);
    }
}
