//! Micro-benchmark of the batched writer: the hot-path cost of recording one
//! request's metrics with two threads contending, and the cost of one flush
//! of 10,000 series to a private Redis. Run with
//! `cargo bench -p aigw-metrics --bench hot_path` (or `scripts/bench-metrics.sh`).

use aigw_metrics::families::gateway::{
    Namespace, NsStatus, GLOBAL_ERRORS, GLOBAL_LAST_REQUEST_TIME, GLOBAL_REQUESTS,
    GLOBAL_RESPONSE_TIME, NS_CONCURRENT, NS_FAILED, NS_LATENCY, NS_REQUESTS, NS_RESPONSE_TIME,
    NS_STATUS, NS_SUCCESSFUL, NS_TTFT,
};
use aigw_metrics::{Heartbeat, NoLabels, Recorder, RecorderConfig, RedisConn};
use std::time::Instant;

/// Everything the gateway records for one request, looked up by name (the
/// slow path: no cached handles).
fn record_by_lookup(rec: &Recorder, ns: &str, status: &str) {
    let n = Namespace { namespace_code: ns };
    GLOBAL_REQUESTS.add(rec, &NoLabels, 1);
    GLOBAL_RESPONSE_TIME.add(rec, &NoLabels, 1234);
    GLOBAL_LAST_REQUEST_TIME.raise(rec, &NoLabels, 1_700_000_000_000);
    NS_REQUESTS.add(rec, &n, 1);
    NS_SUCCESSFUL.add(rec, &n, 1);
    NS_RESPONSE_TIME.add(rec, &n, 1234);
    let s = NsStatus {
        namespace_code: ns,
        status_code: status,
    };
    NS_STATUS.add(rec, &s, 1);
    NS_LATENCY.observe(rec, &n, 1234);
    NS_TTFT.observe(rec, &n, 234);
    let g = NS_CONCURRENT.series(rec, &n);
    g.add(1);
    g.add(-1);
}

/// A usage record of typical size (~600 bytes of JSON).
const RECORD: &str = r#"{"id":"0194f2a8-7c1e-7b3a-9f10-2c4d5e6f7a8b","namespace_code":"team-a","api_key_id":"k-0194f2a8","model":"gpt-4o-mini","instance_id":"openai-main","endpoint":"chat_completions","status":200,"error_kind":null,"started_at_ms":1700000000000,"duration_us":183456,"ttft_us":42345,"stream":true,"prompt_tokens":412,"completion_tokens":128,"cached_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"token_source":"upstream","count_text":null}"#;

/// ns per request of committing one request's accounting as one entry
/// (the gateway's 10 series and a usage record), 2 threads contending.
fn entry_ns(rec: &Recorder, n: u64) -> f64 {
    let team_a = Namespace {
        namespace_code: "team-a",
    };
    let ok = NsStatus {
        namespace_code: "team-a",
        status_code: "200",
    };
    let counters = [
        GLOBAL_REQUESTS.series(rec, &NoLabels),
        GLOBAL_RESPONSE_TIME.series(rec, &NoLabels),
        NS_REQUESTS.series(rec, &team_a),
        NS_SUCCESSFUL.series(rec, &team_a),
        NS_RESPONSE_TIME.series(rec, &team_a),
        NS_STATUS.series(rec, &ok),
    ];
    let last = GLOBAL_LAST_REQUEST_TIME.series(rec, &NoLabels);
    let (lat, ttft) = (
        NS_LATENCY.series(rec, &team_a),
        NS_TTFT.series(rec, &team_a),
    );
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..n / 2 {
                    let mut e = rec.entry();
                    for h in &counters {
                        e.add(h, 1);
                    }
                    e.raise(&last, 1_700_000_000_000);
                    e.observe(&lat, 1234);
                    e.observe(&ttft, 234);
                    e.record(RECORD.to_string());
                    e.commit();
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let rec = Recorder::new(RecorderConfig::for_service("bench"));
    let n = 1_000_000u64;

    // Two threads contending on the same series.
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let rec = rec.clone();
            s.spawn(move || {
                for _ in 0..n / 2 {
                    record_by_lookup(&rec, "team-a", "200");
                }
            });
        }
    });
    let lookup_ns = start.elapsed().as_nanos() as f64 / n as f64;

    // Cached handles, as the gateway keeps them per namespace.
    let team_a = Namespace {
        namespace_code: "team-a",
    };
    let ok = NsStatus {
        namespace_code: "team-a",
        status_code: "200",
    };
    let handles = [
        GLOBAL_REQUESTS.series(&rec, &NoLabels),
        GLOBAL_RESPONSE_TIME.series(&rec, &NoLabels),
        NS_REQUESTS.series(&rec, &team_a),
        NS_SUCCESSFUL.series(&rec, &team_a),
        NS_RESPONSE_TIME.series(&rec, &team_a),
        NS_STATUS.series(&rec, &ok),
    ];
    let lat = NS_LATENCY.series(&rec, &team_a);
    let conc = NS_CONCURRENT.series(&rec, &team_a);
    let _ = GLOBAL_ERRORS.series(&rec, &NoLabels);
    let _ = NS_FAILED.series(&rec, &team_a);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (handles, lat, conc) = (handles.clone(), lat.clone(), conc.clone());
            s.spawn(move || {
                for _ in 0..n / 2 {
                    conc.add(1);
                    for h in &handles {
                        h.add(1);
                    }
                    lat.observe(1234);
                    conc.add(-1);
                }
            });
        }
    });
    let cached_ns = start.elapsed().as_nanos() as f64 / n as f64;

    println!("record one request, 2 threads contending, by lookup : {lookup_ns:8.0} ns/request (wall, per request, both threads)");
    println!("record one request, 2 threads contending, cached    : {cached_ns:8.0} ns/request");

    // The gateway's accounting: one entry per request, without and with the
    // journal (a copy of ~900 bytes per entry into the segment's shared
    // file mapping).
    let entries = 100_000;
    let plain = entry_ns(
        &Recorder::new(RecorderConfig::for_service("bench")),
        entries,
    );
    let dir = aigw_testkit::TempDir::new("bench-journal");
    let journaled = Recorder::with_journal(
        RecorderConfig::for_service("bench"),
        &aigw_metrics::JournalConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1 << 30,
        },
    )
    .unwrap();
    let with_journal = entry_ns(&journaled, entries);
    println!("one request as one entry + record, 2 threads, no journal : {plain:8.0} ns/request");
    println!(
        "one request as one entry + record, 2 threads, journal    : {with_journal:8.0} ns/request"
    );

    // One flush of 10,000 series.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redis = aigw_testkit::RedisServer::start().await;
        let conn = RedisConn::new(&redis.url()).unwrap();
        let mut c = conn.get().await.unwrap();
        let rec = Recorder::new(RecorderConfig::for_service("bench"));
        let mut times = Vec::new();
        for round in 0..5 {
            for i in 0..1000 {
                let ns = format!("ns-{i}");
                for code in 0..10 {
                    let status = NsStatus {
                        namespace_code: &ns,
                        status_code: &(200 + code).to_string(),
                    };
                    NS_STATUS.add(&rec, &status, round + 1);
                }
            }
            let start = Instant::now();
            rec.flush(&mut c, Heartbeat::None).await.unwrap();
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "flush of 10,000 changed series (one script call)     : {:8.1} ms median of 5 (min {:.1}, max {:.1})",
            times[2], times[0], times[4]
        );
    });
}
