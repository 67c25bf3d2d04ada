//! The token-service binary applies a burst of usage entries exactly,
//! and what it spends doing so, for comparing builds.
//!
//! For each round and each binary in `TSVC_BINARIES` (space-separated
//! paths; default: this target directory's `token-service`), interleaved:
//! a fresh redis-server with the test snapshot, the binary started with the
//! production intervals, one warm-up entry consumed; then `TSVC_ENTRIES`
//! (default 40) entries of 256 records, as the gateway's flusher writes
//! them under load, are appended, and the process CPU (`utime + stime` of
//! `/proc/<pid>/stat`) and Redis's CPU (`INFO cpu`) are read from before the
//! first until the stream is empty and the ledger holds every record.
//! Every run must count each record once (model series, ledger rows);
//! prints µs per record per run and each binary's median. The suite runs
//! one round of 40 entries with the debug build; for a measurement, give a
//! release build and more:
//!
//! ```text
//! TSVC_BINARIES="/tmp/before/token-service target/release/token-service" TSVC_ROUNDS=5 TSVC_ENTRIES=400 \
//!   cargo nextest run --workspace -E 'test(consumer_cpu)' --no-capture
//! ```

// A measurement reads its switches, the wall clock and /proc.
#![allow(clippy::disallowed_methods)]

mod common;

use aigw_metrics::keys;
use aigw_testkit::Proc;
use common::*;
use std::time::Duration;

const PER_ENTRY: usize = 256;

/// Redis's own user + system CPU, in µs.
async fn redis_cpu_us(redis: &aigw_testkit::RedisServer) -> u64 {
    let mut c = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(&mut c)
        .await
        .unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    ((field("used_cpu_user") + field("used_cpu_sys")) * 1e6) as u64
}

async fn ledger_rows(redis: &aigw_testkit::RedisServer) -> usize {
    let mut c = redis.conn().await;
    let n: usize = redis::cmd("XLEN")
        .arg(keys::LEDGER_STREAM)
        .query_async(&mut c)
        .await
        .unwrap();
    n
}

/// One run: (token-service µs, Redis µs) per record.
async fn run(bin: &std::path::Path, payloads: &[String], tokens_in: u64) -> (f64, f64) {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let mut proc = Proc::spawn_path(
        bin,
        "token-service",
        &[
            ("REDIS_URL", redis.url()),
            ("TOKEN_SERVICE_PORT", "0".into()),
            ("BIND_ADDR", "127.0.0.1".into()),
            ("RUST_LOG", "warn".into()),
        ],
    );
    let pid = proc.pid().expect("running").to_string();
    push_records(&redis, &load_entry(0, PER_ENTRY)).await;
    wait_for(
        Duration::from_secs(60),
        "the warm-up entry applied",
        || async { xlen(&redis).await == 0 && ledger_rows(&redis).await == 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rcpu0) = (cpu_us(&pid), redis_cpu_us(&redis).await);
    let mut c = redis.conn().await;
    let mut pipe = redis::pipe();
    for p in payloads {
        pipe.cmd("XADD")
            .arg(keys::USAGE_STREAM)
            .arg("*")
            .arg(keys::USAGE_FIELD)
            .arg(p)
            .ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
    let want = payloads.len() + 1;
    wait_for(Duration::from_secs(300), "every entry applied", || async {
        xlen(&redis).await == 0 && ledger_rows(&redis).await == want
    })
    .await;
    let (cpu, rcpu) = (cpu_us(&pid) - cpu0, redis_cpu_us(&redis).await - rcpu0);
    // Every record counted once, the warm-up entry's included.
    let records = payloads.len() * PER_ENTRY;
    assert_eq!(
        load_series_sum(&redis, "requests").await as usize,
        records + PER_ENTRY
    );
    assert_eq!(load_series_sum(&redis, "tokens_in").await as u64, tokens_in);
    let rows: usize = ledger_entries(&redis).await.iter().map(Vec::len).sum();
    assert_eq!(rows, records + PER_ENTRY);
    proc.kill().await;
    let records = records as f64;
    (cpu as f64 / records, rcpu as f64 / records)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test]
async fn consumer_cpu() {
    let bins: Vec<std::path::PathBuf> = match std::env::var("TSVC_BINARIES") {
        Ok(s) if !s.trim().is_empty() => s.split_whitespace().map(Into::into).collect(),
        _ => vec![aigw_testkit::bin_path("token-service")],
    };
    let number = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, entries) = (number("TSVC_ROUNDS", 1), number("TSVC_ENTRIES", 40));
    let mut tokens_in = load_entry(0, PER_ENTRY)
        .iter()
        .map(|r| r.prompt_tokens)
        .sum();
    let payloads: Vec<String> = (1..=entries)
        .map(|e| {
            let recs = load_entry(e, PER_ENTRY);
            tokens_in += recs.iter().map(|r| r.prompt_tokens).sum::<u64>();
            serde_json::to_string(&recs).unwrap()
        })
        .collect();
    let mut results = vec![(Vec::new(), Vec::new()); bins.len()];
    for round in 0..rounds {
        for (bin, res) in bins.iter().zip(&mut results) {
            let (ts, redis) = run(bin, &payloads, tokens_in).await;
            println!(
                "round {round} {}: token-service {ts:.2} µs/record, redis {redis:.2} µs/record",
                bin.display()
            );
            res.0.push(ts);
            res.1.push(redis);
        }
    }
    for (bin, (ts, redis)) in bins.iter().zip(&mut results) {
        println!(
            "median of {rounds} × {} records, {}: token-service {:.2} µs/record, redis {:.2} µs/record",
            entries * PER_ENTRY,
            bin.display(),
            median(ts),
            median(redis)
        );
    }
}
