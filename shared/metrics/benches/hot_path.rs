//! Micro-benchmark of the batched writer: the hot-path cost of recording one
//! request's metrics with two threads contending, and the cost of one flush
//! of 10,000 series to a private Redis. Run with
//! `cargo bench -p aigw-metrics --bench hot_path` (or `scripts/bench-metrics.sh`).

use aigw_metrics::families::gateway::{
    GLOBAL_ERRORS, GLOBAL_LAST_REQUEST_TIME, GLOBAL_REQUESTS, GLOBAL_RESPONSE_TIME, NS_CONCURRENT,
    NS_FAILED, NS_LATENCY, NS_REQUESTS, NS_RESPONSE_TIME, NS_STATUS, NS_SUCCESSFUL, NS_TTFT,
};
use aigw_metrics::{Heartbeat, Recorder, RecorderConfig, RedisConn};
use std::time::Instant;

/// Everything the gateway records for one request, looked up by name (the
/// slow path: no cached handles).
fn record_by_lookup(rec: &Recorder, ns: &str, status: &str) {
    rec.add(&GLOBAL_REQUESTS, &[], 1);
    rec.add(&GLOBAL_RESPONSE_TIME, &[], 1234);
    rec.set(&GLOBAL_LAST_REQUEST_TIME, &[], 1_700_000_000_000);
    rec.add(&NS_REQUESTS, &[ns], 1);
    rec.add(&NS_SUCCESSFUL, &[ns], 1);
    rec.add(&NS_RESPONSE_TIME, &[ns], 1234);
    rec.add(&NS_STATUS, &[ns, status], 1);
    rec.observe(&NS_LATENCY, &[ns], 1234);
    rec.observe(&NS_TTFT, &[ns], 234);
    let g = rec.series(&NS_CONCURRENT, &[ns]);
    g.add(1);
    g.add(-1);
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
    let handles = [
        rec.series(&GLOBAL_REQUESTS, &[]),
        rec.series(&GLOBAL_RESPONSE_TIME, &[]),
        rec.series(&NS_REQUESTS, &["team-a"]),
        rec.series(&NS_SUCCESSFUL, &["team-a"]),
        rec.series(&NS_RESPONSE_TIME, &["team-a"]),
        rec.series(&NS_STATUS, &["team-a", "200"]),
    ];
    let lat = rec.series(&NS_LATENCY, &["team-a"]);
    let conc = rec.series(&NS_CONCURRENT, &["team-a"]);
    let _ = rec.series(&GLOBAL_ERRORS, &[]);
    let _ = rec.series(&NS_FAILED, &["team-a"]);
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
                    rec.add(&NS_STATUS, &[&ns, &(200 + code).to_string()], round + 1);
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
