//! What the usage pipeline costs Redis per record: 51,200 records in
//! entries of 256 (as the gateway's flusher writes them under load),
//! consumed by the service with the production intervals and the ledger
//! on. Counts every Redis command the service sends (`INFO commandstats`,
//! commands inside scripts included) and checks the budget of 0.1 per
//! record; prints that figure and the process CPU per record.

// Tests read the wall clock and /proc; the rules of clippy.toml are for
// the services.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

const ENTRIES: usize = 200;
const PER_ENTRY: usize = 256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_sends_at_most_a_tenth_of_a_command_per_record() {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let mut n = 0u64;
    for e in 0..ENTRIES {
        let recs = load_entry(e, PER_ENTRY);
        n += recs.iter().map(|r| r.prompt_tokens).sum::<u64>();
        push_records(&redis, &recs).await;
    }
    let records = (ENTRIES * PER_ENTRY) as u64;
    let before: BTreeMap<String, u64> = redis.command_stats().await.into_iter().collect();
    let cpu0 = cpu_us("self");
    let app = TestApp::spawn_on(redis, |c| {
        c.metrics_flush_interval = Duration::from_secs(1);
        c.snapshot_poll_interval = Duration::from_secs(5);
        c.consumer.claim_interval = Duration::from_secs(10);
        c.consumer.block = Duration::from_secs(1);
    })
    .await;
    let mut polls = 0u64;
    wait_for(Duration::from_secs(300), "every entry consumed", || {
        polls += 1;
        async { xlen(&app.redis).await == 0 }
    })
    .await;
    let cpu = cpu_us("self") - cpu0;
    let after: BTreeMap<String, u64> = app.redis.command_stats().await.into_iter().collect();

    let mut total = 0u64;
    let mut top: Vec<(u64, &str)> = Vec::new();
    for (name, calls) in &after {
        // This test's own INFO and XLEN calls are left out.
        if name == "info" || name == "xlen" {
            continue;
        }
        let d = calls - before.get(name).copied().unwrap_or(0);
        total += d;
        top.push((d, name));
    }
    top.sort_unstable_by(|a, b| b.cmp(a));
    let per = total as f64 / records as f64;
    println!(
        "usage pipeline: {records} records in {ENTRIES} entries: {total} Redis commands = {per:.4} per record \
         (top: {:?}); process CPU {:.2} µs per record ({polls} polls)",
        &top[..top.len().min(6)],
        cpu as f64 / records as f64
    );

    // Exact, and within budget.
    let r = &app.redis;
    let requests = load_series_sum(r, "requests").await;
    assert_eq!(requests as u64, records);
    let tokens_in = load_series_sum(r, "tokens_in").await;
    assert_eq!(tokens_in as u64, n);
    let ledger = ledger_entries(r).await;
    assert_eq!(ledger.len(), ENTRIES, "one ledger entry per usage entry");
    assert_eq!(ledger.iter().map(Vec::len).sum::<usize>() as u64, records);
    assert!(per <= 0.1, "{per} Redis commands per record");
}
