//! 10,000 usage records through real `token-service` processes that die:
//! a consumer that crashed after applying the first entry of its batch and
//! before acknowledging it (left pending in the group), a consumer process SIGKILLed in the middle of a batch and
//! restarted under the same name, and a second consumer that claims what the
//! dead one left. Every total must come out exact.

mod common;

use aigw_metrics::families::token_service as fam;
use aigw_metrics::{keys, LLM_LATENCY_BUCKETS_US};
use aigw_testkit::{free_port, Proc, RedisServer};
use aigw_types::{CountText, TokenSource, UsageRecord};
use common::*;
use rust_decimal::{Decimal, RoundingStrategy};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const RECORDS: usize = 10_000;
const PER_ENTRY: usize = 100;

fn make_records() -> Vec<UsageRecord> {
    let namespaces = ["team-a", "team-b", "team-gone"];
    let models = ["gpt-4o-mini", "precise", "free-llama", "retired-model"];
    (0..RECORDS)
        .map(|i| {
            let mut r = record(
                &format!("rec-{i:05}"),
                namespaces[i % 3],
                models[(i / 3) % 4],
            );
            r.started_at_ms = 1_764_000_000_000 + (i as i64) * 1000;
            r.duration_us = ((i as u64) * 7919) % 200_000_000 + 10_000;
            r.ttft_us = (i % 2 == 0).then_some(((i as u64) * 131) % 5_000_000);
            r.prompt_tokens = (i as u64 * 37) % 5000;
            r.completion_tokens = (i as u64 * 11) % 777;
            if i % 7 == 0 {
                r.status = 500;
                r.error_kind = Some("upstream_error".into());
            } else if i % 13 == 0 {
                r.status = 429;
            }
            if i % 10 == 0 {
                r.endpoint = "completions".into();
                r.token_source = TokenSource::Counted;
                r.prompt_tokens = 0;
                r.completion_tokens = 0;
                r.count_text = Some(CountText {
                    prompt: "Hello, world!".into(),
                    completion: "The quick brown fox jumps over the lazy dog.".into(),
                });
            }
            r
        })
        .collect()
}

/// Expected totals per (model label, namespace label), computed here
/// independently of the service's code.
#[derive(Default, Debug, PartialEq)]
struct Totals {
    requests: i64,
    errors: i64,
    tokens_in: i64,
    tokens_out: i64,
    cost_nano: i64,
    buckets: BTreeMap<String, i64>,
    duration_sum: i64,
    ttft_count: i64,
}

fn expected(records: &[UsageRecord]) -> (HashMap<(String, String), Totals>, HashMap<String, i64>) {
    let snap = snapshot(1);
    let mut by_series: HashMap<(String, String), Totals> = HashMap::new();
    let mut month_cost: HashMap<String, i64> = HashMap::new();
    for r in records {
        let model_cfg = snap.models.iter().find(|m| m.name == r.model);
        let model = model_cfg.map_or("other".to_string(), |m| m.name.clone());
        let ns = if r.namespace_code == "team-gone" {
            "other"
        } else {
            r.namespace_code.as_str()
        };
        let (p, c) = if r.token_source == TokenSource::Counted {
            // Python tiktoken's counts (both texts count the same in o200k and cl100k).
            let e = if r.model == "precise" {
                "cl100k_base"
            } else {
                "o200k_base"
            };
            (
                python_count(e, "Hello, world!", 1, ""),
                python_count(e, "The quick brown fox jumps over the lazy dog.", 1, ""),
            )
        } else {
            (r.prompt_tokens, r.completion_tokens)
        };
        let price = |x: Option<Decimal>| x.unwrap_or(Decimal::ZERO);
        let usd_per_m = Decimal::from(p) * price(model_cfg.and_then(|m| m.input_price_per_1m))
            + Decimal::from(c) * price(model_cfg.and_then(|m| m.output_price_per_1m));
        let nano: i64 = (usd_per_m * Decimal::from(1000))
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .try_into()
            .unwrap();
        let t = by_series.entry((model, ns.to_string())).or_default();
        t.requests += 1;
        t.errors += i64::from(r.status >= 400 || r.error_kind.is_some());
        t.tokens_in += p as i64;
        t.tokens_out += c as i64;
        t.cost_nano += nano;
        let bucket = LLM_LATENCY_BUCKETS_US
            .iter()
            .find(|&&b| r.duration_us <= b)
            .map_or("+Inf".to_string(), |b| b.to_string());
        *t.buckets.entry(bucket).or_default() += 1;
        t.duration_sum += r.duration_us as i64;
        t.ttft_count += i64::from(r.ttft_us.is_some());
        if nano > 0 {
            *month_cost.entry(ns.to_string()).or_default() += nano;
        }
    }
    (by_series, month_cost)
}

async fn pending_of(redis: &RedisServer, consumer: &str) -> i64 {
    let mut c = redis.conn().await;
    let v: redis::Value = redis::cmd("XPENDING")
        .arg(keys::USAGE_STREAM)
        .arg(keys::USAGE_GROUP)
        .arg("-")
        .arg("+")
        .arg(100_000)
        .arg(consumer)
        .query_async(&mut c)
        .await
        .unwrap();
    match v {
        redis::Value::Array(a) => a.len() as i64,
        _ => 0,
    }
}

async fn processed(redis: &RedisServer) -> i64 {
    redis
        .get_i64(&fam::USAGE_PROCESSED.key(&aigw_metrics::NoLabels))
        .await
}

fn spawn_service(redis: &RedisServer, name: &str, claim_idle: &str, chunk: &str) -> (Proc, u16) {
    let port = free_port();
    let p = Proc::spawn(
        "token-service",
        &[
            ("REDIS_URL", redis.url()),
            ("TOKEN_SERVICE_PORT", port.to_string()),
            ("BIND_ADDR", "127.0.0.1".into()),
            ("USAGE_CONSUMER_NAME", name.into()),
            ("USAGE_BATCH_ENTRIES", "2".into()),
            ("USAGE_APPLY_CHUNK", chunk.into()),
            ("USAGE_CLAIM_IDLE", claim_idle.into()),
            ("USAGE_CLAIM_INTERVAL", "300ms".into()),
            ("USAGE_BLOCK", "200ms".into()),
            ("METRICS_FLUSH_INTERVAL", "100ms".into()),
            ("METRICS_EXPORTER_TTL", "1s".into()),
            ("RUST_LOG", "info".into()),
        ],
    );
    (p, port)
}

#[tokio::test]
async fn ten_thousand_records_are_exact_across_crashes() {
    let redis = RedisServer::start().await;
    let snap = snapshot(1);
    publish_snapshot(&redis, &snap).await;
    let records = make_records();
    for chunk in records.chunks(PER_ENTRY) {
        push_records(&redis, chunk).await;
    }
    assert_eq!(xlen(&redis).await, (RECORDS / PER_ENTRY) as i64);

    // A consumer "ghost" takes three entries, applies the first one (as the
    // service does: the entry's records under the entry's marker, with its
    // ledger rows), and dies before acknowledging anything.
    let (ghost_entries, applied) = apply_first_unacknowledged(&redis, "ghost", 3, &snap).await;
    assert_eq!(ghost_entries.len(), 3);
    assert_eq!(applied, PER_ENTRY);
    assert_eq!(pending_of(&redis, "ghost").await, 3);

    // Consumer A (small script calls, so a batch takes a while) is killed
    // while it holds a batch it has not acknowledged.
    let (mut a, port_a) = spawn_service(&redis, "consumer-a", "1h", "5");
    a.wait_ready(&format!("http://127.0.0.1:{port_a}/health"))
        .await;
    // Between acknowledging a batch and reading the next, A holds nothing:
    // it is frozen (SIGSTOP) before its state is read, so the state seen is
    // the state it dies in, and let go again when it sits in that gap.
    let mut tries = 0;
    loop {
        wait_for(Duration::from_secs(120), "consumer-a mid-batch", || async {
            processed(&redis).await >= 2000 && pending_of(&redis, "consumer-a").await > 0
        })
        .await;
        a.signal_named("STOP");
        // Commands A wrote before it stopped are applied by now.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if pending_of(&redis, "consumer-a").await > 0 {
            break;
        }
        tries += 1;
        assert!(tries < 20, "consumer-a never stopped holding a batch");
        a.signal_named("CONT");
    }
    a.kill().await;
    let applied_when_killed = processed(&redis).await;
    let a_pending = pending_of(&redis, "consumer-a").await;
    assert!(
        a_pending > 0,
        "consumer-a acknowledged its batch before the kill"
    );
    assert!(applied_when_killed < RECORDS as i64);

    // A restarts under the same name (it finishes its own pending entries
    // first) and B joins; B takes over the ghost's entries once idle.
    let (mut a2, port_a2) = spawn_service(&redis, "consumer-a", "1h", "500");
    let (mut b, port_b) = spawn_service(&redis, "consumer-b", "1s", "500");
    a2.wait_ready(&format!("http://127.0.0.1:{port_a2}/health"))
        .await;
    b.wait_ready(&format!("http://127.0.0.1:{port_b}/health"))
        .await;
    wait_for(Duration::from_secs(120), "every entry consumed", || async {
        xlen(&redis).await == 0
            && pending_of(&redis, "ghost").await == 0
            && pending_of(&redis, "consumer-a").await == 0
            && pending_of(&redis, "consumer-b").await == 0
    })
    .await;
    assert_eq!(
        processed(&redis).await,
        RECORDS as i64,
        "each record exactly once"
    );

    // Every series, exactly.
    let (want, want_month) = expected(&records);
    assert_eq!(
        want.len(),
        4 * 3,
        "series: 3 priced or unpriced models + other, × 2 namespaces + other"
    );
    for ((model, ns), t) in &want {
        let k = |suffix: &str| format!("metrics:model:{model}:{ns}:{suffix}");
        assert_eq!(
            redis.get_i64(&k("requests")).await,
            t.requests,
            "{model}/{ns} requests"
        );
        assert_eq!(
            redis.get_i64(&k("errors")).await,
            t.errors,
            "{model}/{ns} errors"
        );
        assert_eq!(
            redis.get_i64(&k("tokens_in")).await,
            t.tokens_in,
            "{model}/{ns} in"
        );
        assert_eq!(
            redis.get_i64(&k("tokens_out")).await,
            t.tokens_out,
            "{model}/{ns} out"
        );
        assert_eq!(
            redis.get_i64(&k("cost_nusd")).await,
            t.cost_nano,
            "{model}/{ns} cost"
        );
        let h = k("duration_us");
        assert_eq!(
            hget_i64(&redis, &h, "count").await,
            t.requests,
            "{model}/{ns} count"
        );
        assert_eq!(
            hget_i64(&redis, &h, "sum").await,
            t.duration_sum,
            "{model}/{ns} sum"
        );
        for (bucket, n) in &t.buckets {
            assert_eq!(
                hget_i64(&redis, &h, bucket).await,
                *n,
                "{model}/{ns} le {bucket}"
            );
        }
        assert_eq!(hget_i64(&redis, &k("ttft_us"), "count").await, t.ttft_count);
    }
    for (ns, nano) in &want_month {
        let key = format!("metrics:cost:ns:{ns}:month:2025-11");
        assert_eq!(redis.get_i64(&key).await, *nano, "{key}");
    }
    let total_requests: i64 = want.values().map(|t| t.requests).sum();
    assert_eq!(total_requests, RECORDS as i64);

    // And as rendered by the surviving replica that exports the fleet
    // series (the killed one's lease expires within a second).
    let scrape = |port: u16| async move {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let exporting = |m: &str| sample(m, "token_service_metrics_exporter", &[]) == Some(1.0);
    wait_for(
        Duration::from_secs(20),
        "a surviving replica exports",
        || async { exporting(&scrape(port_a2).await) || exporting(&scrape(port_b).await) },
    )
    .await;
    let m = match scrape(port_b).await {
        m if exporting(&m) => m,
        _ => scrape(port_a2).await,
    };
    for ((model, ns), t) in &want {
        let l = [("model", model.as_str()), ("namespace_code", ns.as_str())];
        assert_eq!(
            sample(&m, "model_requests_total", &l),
            Some(t.requests as f64),
            "{model}/{ns}"
        );
        assert_eq!(sample(&m, "model_errors_total", &l), Some(t.errors as f64));
        assert_eq!(
            sample(&m, "model_tokens_input_total", &l),
            Some(t.tokens_in as f64)
        );
        assert_eq!(
            sample(&m, "model_request_duration_seconds_count", &l),
            Some(t.requests as f64)
        );
        let cost = sample(&m, "model_cost_usd_total", &l).unwrap();
        assert!(
            (cost - t.cost_nano as f64 * 1e-9).abs() < 1e-9,
            "{model}/{ns}: {cost}"
        );
    }
    assert_eq!(
        sample(&m, "token_service_usage_records_processed_total", &[]),
        Some(RECORDS as f64)
    );
    assert_eq!(
        sample(&m, "token_service_usage_records_counted_total", &[]),
        Some((RECORDS / 10) as f64)
    );
    // The ghost's applied entry was delivered again and skipped whole.
    let dups = sample(&m, "token_service_usage_records_duplicate_total", &[]).unwrap_or(0.0);
    assert!(dups >= PER_ENTRY as f64, "duplicates {dups}");
    assert_eq!(
        dups as usize % PER_ENTRY,
        0,
        "whole entries skipped: {dups}"
    );

    // The ledger: one entry per usage entry, each record's row exactly once.
    let ledger = ledger_entries(&redis).await;
    assert_eq!(ledger.len(), RECORDS / PER_ENTRY);
    let mut ids = std::collections::BTreeSet::new();
    let mut rows = 0;
    for entry_rows in ledger {
        rows += entry_rows.len();
        ids.extend(entry_rows.into_iter().map(|r| r.request_id));
    }
    assert_eq!(rows, RECORDS, "ledger rows");
    assert_eq!(ids.len(), RECORDS, "distinct ledger rows");

    for p in [&mut a2, &mut b] {
        assert_eq!(
            p.terminate(Duration::from_secs(20)).await,
            Some(0),
            "{}",
            p.logs()
        );
    }
    assert!(b.logs().contains("claimed usage entries"), "{}", b.logs());
}
