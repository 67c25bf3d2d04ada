//! What the token-service binary spends applying usage records, for
//! comparing builds (ignored: a measurement, not a test).
//!
//! For each round and each binary in `TSVC_BINARIES` (space-separated
//! paths; default: this target directory's `token-service`), interleaved:
//! a fresh redis-server with the test snapshot, the binary started with the
//! production intervals, one warm-up entry consumed; then `TSVC_ENTRIES`
//! (default 400) entries of 256 records, as the gateway's flusher writes
//! them under load, are appended, and the process CPU (`utime + stime` of
//! `/proc/<pid>/stat`) and Redis's CPU (`INFO cpu`) are read from before the
//! first until the stream is empty and the ledger holds every record.
//! Prints µs per record per run and each binary's median.
//!
//! ```text
//! TSVC_BINARIES="/tmp/before/token-service target/release/token-service" TSVC_ROUNDS=5 \
//!   cargo nextest run --workspace -E 'test(consumer_cpu)' --run-ignored only --no-capture
//! ```

// A measurement reads its switches, the wall clock and /proc.
#![allow(clippy::disallowed_methods)]

mod common;

use aigw_metrics::keys;
use aigw_testkit::Proc;
use aigw_types::UsageRecord;
use common::*;
use std::time::Duration;

const PER_ENTRY: usize = 256;

/// Realistic records: two namespaces, two priced models, keys and
/// instances, a few cache reads and errors, as the gateway writes them.
fn entry(e: usize) -> Vec<UsageRecord> {
    let models = ["gpt-4o-mini", "precise"];
    let namespaces = ["team-a", "team-b"];
    (0..PER_ENTRY)
        .map(|i| {
            let k = e * PER_ENTRY + i;
            let mut r = record(
                &format!("0193a4c2-7f1e-7c3a-9e5b-{k:012x}"),
                namespaces[k % 2],
                models[(k / 2) % 2],
            );
            r.api_key_id = Some(format!("0193a4c2-0000-7000-8000-00000000000{}", k % 4));
            r.instance_id = Some(format!("inst-{}", k % 3));
            r.started_at_ms = 1_764_000_000_000 + k as i64;
            r.stream = k.is_multiple_of(2);
            r.prompt_tokens = 20 + (k as u64 % 500);
            r.completion_tokens = 30 + (k as u64 % 700);
            if k.is_multiple_of(5) {
                r.cached_tokens = r.prompt_tokens / 2;
            }
            if k.is_multiple_of(50) {
                r.status = 502;
                r.error_kind = Some("upstream_error".into());
            }
            r.duration_us = 900 + (k as u64 % 50_000);
            r.ttft_us = Some(400 + (k as u64 % 3000));
            r
        })
        .collect()
}

/// User + system CPU of a process, in µs (clock ticks of 10 ms).
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks * 10_000
}

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
async fn run(bin: &std::path::Path, payloads: &[String]) -> (f64, f64) {
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
    let pid = proc.pid().expect("running");
    push_records(&redis, &entry(0)).await;
    wait_for(
        Duration::from_secs(60),
        "the warm-up entry applied",
        || async { xlen(&redis).await == 0 && ledger_rows(&redis).await == 1 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rcpu0) = (cpu_us(pid), redis_cpu_us(&redis).await);
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
    let (cpu, rcpu) = (cpu_us(pid) - cpu0, redis_cpu_us(&redis).await - rcpu0);
    proc.kill().await;
    let records = (payloads.len() * PER_ENTRY) as f64;
    (cpu as f64 / records, rcpu as f64 / records)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test]
#[ignore = "a measurement: run with --run-ignored only (see the module docs)"]
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
    let (rounds, entries) = (number("TSVC_ROUNDS", 3), number("TSVC_ENTRIES", 400));
    let payloads: Vec<String> = (0..entries)
        .map(|e| serde_json::to_string(&entry(e)).unwrap())
        .collect();
    let mut results = vec![(Vec::new(), Vec::new()); bins.len()];
    for round in 0..rounds {
        for (bin, res) in bins.iter().zip(&mut results) {
            let (ts, redis) = run(bin, &payloads).await;
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
