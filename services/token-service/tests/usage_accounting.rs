//! Usage accounting end to end in process: usage records on the real stream
//! of a private redis-server, the service's consumer, and what lands in
//! Redis and on `/metrics` — exact tokens, cost, errors and histograms.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

mod common;

use aigw_metrics::keys;
use aigw_types::{CountText, LedgerRow, TokenSource};
use common::*;
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn processed(app: &TestApp) -> f64 {
    sample(
        &app.metrics().await,
        "token_service_usage_records_processed_total",
        &[],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn records_are_priced_and_rendered_exactly() {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let app = TestApp::spawn_on(redis, |_| {}).await;

    let mut r1 = record("r1", "team-a", "gpt-4o-mini");
    r1.prompt_tokens = 1000;
    r1.completion_tokens = 500;
    r1.duration_us = 1_200_000;
    r1.ttft_us = Some(300_000);
    let mut r2 = record("r2", "team-a", "precise");
    r2.prompt_tokens = 123_457;
    r2.completion_tokens = 98_765;
    r2.duration_us = 40_000;
    let mut r3 = record("r3", "team-b", "free-llama");
    r3.prompt_tokens = 10;
    r3.completion_tokens = 20;
    r3.status = 502;
    r3.error_kind = Some("upstream_error".into());
    let mut r4 = record("r4", "team-b", "gpt-4o-mini");
    r4.endpoint = "completions".into();
    r4.token_source = TokenSource::Counted;
    r4.count_text = Some(CountText {
        prompt: "Hello, world!".into(),
        completion: "The quick brown fox jumps over the lazy dog.".into(),
    });
    let r5 = record("r5", "team-a", "ghost-model");
    push_records(&app.redis, &[r1, r2, r3]).await;
    push_records(&app.redis, &[r4, r5]).await;

    wait_for(WAIT, "5 records consumed", || async {
        processed(&app).await == 5.0 && xlen(&app.redis).await == 0
    })
    .await;
    // A render taken while the records were being applied, or after they
    // were applied and before their entries were acknowledged, may be
    // served from the 1 s cache: wait until one shows every model series
    // and no entry pending.
    wait_for(WAIT, "the model series rendered", || async {
        let m = app.metrics().await;
        let l = |model, ns| [("model", model), ("namespace_code", ns)];
        sample(&m, "model_requests_total", &l("gpt-4o-mini", "team-b")) == Some(1.0)
            && sample(&m, "model_requests_total", &l("other", "team-a")) == Some(1.0)
            && sample(&m, "token_service_usage_stream_pending", &[]) == Some(0.0)
    })
    .await;

    // Costs by hand (nano-USD = tokens × USD-per-1M × 1000, rounded half-up):
    // r1: 1000 × 0.15 + 500 × 0.60 = 450 USD/1M → 450_000.
    // r2: 123457 × 0.123456789012 = 15241.604801054484
    //     98765 × 3.333333333333 = 329216.666666633745
    //     sum × 1000 = 344458271.467688229 → 344_458_271.
    // r4: counted 4 + 10 tokens (Python tiktoken): 4 × 0.15 + 10 × 0.60 = 6.6 → 6_600.
    let (c1, c2, c4) = (450_000i64, 344_458_271i64, 6_600i64);
    let r = &app.redis;
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:cost_nusd")
            .await,
        c1
    );
    assert_eq!(
        r.get_i64("metrics:model:precise:team-a:cost_nusd").await,
        c2
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-b:cost_nusd")
            .await,
        c4
    );
    assert_eq!(
        r.get_i64("metrics:model:free-llama:team-b:cost_nusd").await,
        0
    );
    assert_eq!(
        r.get_i64("metrics:cost:ns:team-a:month:2025-11").await,
        c1 + c2
    );
    assert_eq!(r.get_i64("metrics:cost:ns:team-b:month:2025-11").await, c4);
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-b:tokens_in")
            .await,
        4
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-b:tokens_out")
            .await,
        10
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:requests").await,
        1
    );
    assert_eq!(r.get_i64("metrics:model:free-llama:team-b:errors").await, 1);
    assert_eq!(r.get_i64("metrics:model:other:team-a:requests").await, 1);
    // The histogram: 1.2 s falls in the (1 s, 1.5 s] bucket.
    let h = "metrics:model:gpt-4o-mini:team-a:duration_us";
    assert_eq!(hget_i64(r, h, "1500000").await, 1);
    assert_eq!(hget_i64(r, h, "count").await, 1);
    assert_eq!(hget_i64(r, h, "sum").await, 1_200_000);

    let m = app.metrics().await;
    let l = |model, ns| [("model", model), ("namespace_code", ns)];
    assert_eq!(
        sample(&m, "model_requests_total", &l("gpt-4o-mini", "team-a")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "model_tokens_input_total", &l("precise", "team-a")),
        Some(123_457.0)
    );
    assert_eq!(
        sample(&m, "model_tokens_output_total", &l("precise", "team-a")),
        Some(98_765.0)
    );
    assert_eq!(
        sample(&m, "model_cost_usd_total", &l("gpt-4o-mini", "team-a")),
        Some(0.00045)
    );
    assert_eq!(
        sample(&m, "model_cost_usd_total", &l("precise", "team-a")),
        Some(0.344458271)
    );
    assert_eq!(
        sample(&m, "model_errors_total", &l("free-llama", "team-b")),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "model_errors_total", &l("gpt-4o-mini", "team-a")),
        Some(0.0)
    );
    let mut bucket = l("gpt-4o-mini", "team-a").to_vec();
    bucket.push(("le", "1.0"));
    assert_eq!(
        sample(&m, "model_request_duration_seconds_bucket", &bucket),
        Some(0.0)
    );
    bucket[2] = ("le", "1.5");
    assert_eq!(
        sample(&m, "model_request_duration_seconds_bucket", &bucket),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "model_time_to_first_token_seconds_count",
            &l("gpt-4o-mini", "team-a")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "token_service_usage_records_counted_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "token_service_usage_records_unpriced_total",
            &[("model", "free-llama")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "token_service_usage_records_unpriced_total",
            &[("model", "other")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "token_service_usage_stream_pending", &[]),
        Some(0.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn malformed_entries_are_acknowledged_and_counted() {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let app = TestApp::spawn_on(redis, |_| {}).await;
    push_raw(&app.redis, "this is not json").await;
    push_raw(&app.redis, "{\"records\": 1}").await;
    {
        let mut c = app.redis.conn().await;
        let _: String = redis::cmd("XADD")
            .arg(keys::USAGE_STREAM)
            .arg("*")
            .arg("something_else")
            .arg("1")
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let good = serde_json::to_value(record("good", "team-a", "gpt-4o-mini")).unwrap();
    let payload = serde_json::json!([good, {"id": "half-a-record"}, 42, {"id": "", "namespace_code": "team-a"}]);
    push_raw(&app.redis, &payload.to_string()).await;
    wait_for(WAIT, "stream drained", || async {
        xlen(&app.redis).await == 0 && processed(&app).await == 1.0
    })
    .await;
    wait_for(WAIT, "malformed counted", || async {
        let m = app.metrics().await;
        sample(
            &m,
            "token_service_usage_malformed_total",
            &[("reason", "entry")],
        ) == Some(3.0)
            && sample(
                &m,
                "token_service_usage_malformed_total",
                &[("reason", "record")],
            ) == Some(3.0)
    })
    .await;
    assert_eq!(
        app.redis
            .get_i64("metrics:model:gpt-4o-mini:team-a:requests")
            .await,
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn waits_for_a_snapshot_and_follows_price_changes() {
    let app = TestApp::spawn().await;
    let mut r = record("before-snapshot", "team-a", "gpt-4o-mini");
    r.prompt_tokens = 1_000_000;
    push_records(&app.redis, &[r]).await;
    wait_for(WAIT, "consumer waiting for a snapshot", || async {
        app.get("/ready").await.1.contains("waiting_for_snapshot")
    })
    .await;
    // Nothing is consumed without prices.
    assert_eq!(xlen(&app.redis).await, 1);
    assert_eq!(processed(&app).await, 0.0);

    publish_snapshot(&app.redis, &snapshot(1)).await;
    wait_for(WAIT, "first record", || async {
        processed(&app).await == 1.0
    })
    .await;
    // 1M tokens at $0.15/1M = $0.15.
    let key = "metrics:model:gpt-4o-mini:team-a:cost_nusd";
    assert_eq!(app.redis.get_i64(key).await, 150_000_000);

    // A price change, announced on the channel, applies to later records.
    let mut snap = snapshot(2);
    snap.models[0].input_price_per_1m = Some("2.5".parse().unwrap());
    publish_snapshot(&app.redis, &snap).await;
    wait_for(WAIT, "snapshot v2", || async {
        app.get("/ready").await.1.contains("\"snapshot_version\":2")
    })
    .await;
    let mut r = record("after-change", "team-a", "gpt-4o-mini");
    r.prompt_tokens = 1_000_000;
    push_records(&app.redis, &[r]).await;
    wait_for(WAIT, "second record", || async {
        processed(&app).await == 2.0
    })
    .await;
    assert_eq!(app.redis.get_i64(key).await, 150_000_000 + 2_500_000_000);
    app.stop().await;
}

#[tokio::test]
async fn this_months_cost_per_namespace_is_exported_for_budgets() {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let app = TestApp::spawn_on(redis, |_| {}).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut now = record("m1", "team-a", "gpt-4o-mini");
    now.started_at_ms = now_ms;
    now.prompt_tokens = 1000;
    now.completion_tokens = 500;
    // An older month must not count toward this month's spend.
    let mut old = record("m2", "team-a", "gpt-4o-mini");
    old.started_at_ms = now_ms - 62 * 24 * 3600 * 1000;
    old.prompt_tokens = 1_000_000;
    push_records(&app.redis, &[now, old]).await;
    wait_for(WAIT, "2 records consumed", || async {
        processed(&app).await == 2.0
    })
    .await;
    // One scrape reads the month's cost before the stored series, so the
    // render that first shows both records processed may predate the cost.
    let cost = |m: &str| {
        sample(
            m,
            "token_service_namespace_month_cost_usd",
            &[("namespace_code", "team-a")],
        )
    };
    wait_for(WAIT, "this month's cost in a scrape", || async {
        cost(&app.metrics().await).is_some_and(|c| c > 0.0)
    })
    .await;
    let m = app.metrics().await;
    assert_eq!(cost(&m), Some(0.00045), "{m}");
    assert_eq!(
        sample(
            &m,
            "token_service_namespace_month_cost_usd",
            &[("namespace_code", "team-b")]
        ),
        Some(0.0)
    );
}

#[tokio::test]
async fn an_implausible_token_count_is_capped_and_loses_nothing_else() {
    let redis = aigw_testkit::RedisServer::start().await;
    publish_snapshot(&redis, &snapshot(1)).await;
    let app = TestApp::spawn_on(redis, |_| {}).await;
    let mut huge = record("h1", "team-a", "gpt-4o-mini");
    huge.prompt_tokens = u64::MAX;
    huge.completion_tokens = u64::MAX / 2;
    let mut normal = record("h2", "team-a", "gpt-4o-mini");
    normal.prompt_tokens = 1000;
    normal.completion_tokens = 500;
    // Twice the huge one and the normal one in one batch: without the cap
    // the second would overflow the token counter and fail the batch.
    let mut huge2 = huge.clone();
    huge2.id = "h3".into();
    push_records(&app.redis, &[huge, huge2, normal]).await;
    wait_for(WAIT, "3 records consumed", || async {
        processed(&app).await == 3.0 && xlen(&app.redis).await == 0
    })
    .await;
    let cap = token_service::usage::MAX_TOKENS_PER_RECORD as i64;
    let r = &app.redis;
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:tokens_in")
            .await,
        2 * cap + 1000
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:tokens_out")
            .await,
        2 * cap + 500
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:requests").await,
        3
    );
}

/// The rows the token-service appended to the spend ledger's stream (one
/// entry per usage entry, its rows as a JSON array), by request id.
async fn ledger_rows(redis: &aigw_testkit::RedisServer) -> HashMap<String, LedgerRow> {
    ledger_entries(redis)
        .await
        .into_iter()
        .flatten()
        .map(|row| (row.request_id.clone(), row))
        .collect()
}

#[tokio::test]
async fn cache_and_reasoning_tokens_are_priced_and_broken_down() {
    let redis = aigw_testkit::RedisServer::start().await;
    let mut snap = snapshot(1);
    // Claude Sonnet's list prices: $3 in, $0.30 cache read, $3.75 cache
    // write, $15 out (USD per million tokens).
    snap.models.push(
        serde_json::from_value(serde_json::json!({
            "name": "claude-sonnet", "encoding": "o200k_base",
            "input_price_per_1m": "3", "output_price_per_1m": "15",
            "cached_input_price_per_1m": "0.30", "cache_write_price_per_1m": "3.75",
            "enabled": true
        }))
        .unwrap(),
    );
    publish_snapshot(&redis, &snap).await;
    let app = TestApp::spawn_on(redis, |_| {}).await;

    // (prompt, cache read, cache write, completion, reasoning) tokens.
    let usage = |id: &str, model: &str, t: [u64; 5]| {
        let mut r = record(id, "team-a", model);
        r.prompt_tokens = t[0];
        r.cached_tokens = t[1];
        r.cache_write_tokens = t[2];
        r.completion_tokens = t[3];
        r.reasoning_tokens = t[4];
        r
    };
    let c1 = usage("c1", "claude-sonnet", [10_000, 6_000, 2_000, 500, 120]);
    // Parts larger than their wholes: capped (reads first), never negative.
    let c2 = usage("c2", "claude-sonnet", [100, 150, 30, 10, 50]);
    // A model without cache prices: cache reads at the input price.
    let c3 = usage("c3", "gpt-4o-mini", [1_000, 400, 0, 500, 200]);
    push_records(&app.redis, &[c1, c2, c3]).await;
    wait_for(WAIT, "3 records consumed", || async {
        processed(&app).await == 3.0 && xlen(&app.redis).await == 0
    })
    .await;

    // c1: (10000 − 6000 − 2000) × 3 + 6000 × 0.30 + 2000 × 3.75 + 500 × 15
    //     = 6000 + 1800 + 7500 + 7500 = 22800 USD/1M → 22_800_000 nano-USD.
    // c2: 100 cache reads (of 150 reported), 0 writes, 0 uncached:
    //     100 × 0.30 + 10 × 15 = 30 + 150 = 180 → 180_000.
    // c3: 1000 × 0.15 + 500 × 0.60 = 450 → 450_000.
    let (k1, k2, k3) = (22_800_000i64, 180_000i64, 450_000i64);
    let r = &app.redis;
    let key = |model: &str, what: &str| format!("metrics:model:{model}:team-a:{what}");
    assert_eq!(r.get_i64(&key("claude-sonnet", "cost_nusd")).await, k1 + k2);
    assert_eq!(r.get_i64(&key("gpt-4o-mini", "cost_nusd")).await, k3);
    assert_eq!(
        r.get_i64("metrics:cost:ns:team-a:month:2025-11").await,
        k1 + k2 + k3
    );
    for (model, what, want) in [
        ("claude-sonnet", "tokens_in", 10_100),
        ("claude-sonnet", "tokens_out", 510),
        ("claude-sonnet", "tokens_cache_read", 6_100),
        ("claude-sonnet", "tokens_cache_write", 2_000),
        ("claude-sonnet", "tokens_reasoning", 130),
        ("gpt-4o-mini", "tokens_in", 1_000),
        ("gpt-4o-mini", "tokens_cache_read", 400),
        ("gpt-4o-mini", "tokens_cache_write", 0),
        ("gpt-4o-mini", "tokens_reasoning", 200),
    ] {
        assert_eq!(r.get_i64(&key(model, what)).await, want, "{model} {what}");
    }

    let l = [("model", "claude-sonnet"), ("namespace_code", "team-a")];
    let m = app.metrics().await;
    for (name, want) in [
        ("model_tokens_input_total", 10_100.0),
        ("model_tokens_output_total", 510.0),
        ("model_tokens_cache_read_total", 6_100.0),
        ("model_tokens_cache_write_total", 2_000.0),
        ("model_tokens_reasoning_total", 130.0),
        ("model_cost_usd_total", 0.02298),
    ] {
        assert_eq!(sample(&m, name, &l), Some(want), "{name}\n{m}");
    }
    assert_eq!(
        sample(
            &m,
            "model_tokens_cache_write_total",
            &[("model", "gpt-4o-mini"), ("namespace_code", "team-a")]
        ),
        Some(0.0)
    );

    // The ledger rows carry the same tokens and cost.
    let rows = ledger_rows(&app.redis).await;
    assert_eq!(rows.len(), 3);
    let row = |id: &str| {
        let r = &rows[id];
        (
            r.prompt_tokens,
            r.cached_tokens,
            r.cache_write_tokens,
            r.completion_tokens,
            r.reasoning_tokens,
            r.cost_nano_usd,
            r.estimated,
        )
    };
    assert_eq!(
        row("c1"),
        (10_000, 6_000, 2_000, 500, 120, 22_800_000, false)
    );
    assert_eq!(row("c2"), (100, 100, 0, 10, 10, 180_000, false));
    assert_eq!(row("c3"), (1_000, 400, 0, 500, 200, 450_000, false));
    app.stop().await;
}

/// A consumer that applied an entry and died before acknowledging it: the
/// entry is claimed and delivered again, and skipped whole by its marker —
/// the counters and the ledger hold each record once.
#[tokio::test]
async fn an_entry_applied_but_not_acknowledged_is_skipped_whole_when_redelivered() {
    let redis = aigw_testkit::RedisServer::start().await;
    let snap = snapshot(1);
    publish_snapshot(&redis, &snap).await;
    let recs: Vec<_> = (1..=4)
        .map(|i| {
            let mut r = record(&format!("d{i}"), "team-a", "gpt-4o-mini");
            r.prompt_tokens = 1000;
            r.completion_tokens = 500;
            r
        })
        .collect();
    push_records(&redis, &recs[..3]).await;
    push_records(&redis, &recs[3..]).await;

    // The dead consumer: takes the first entry, applies it as the service
    // does, never acknowledges it.
    let (taken, applied) = apply_first_unacknowledged(&redis, "dead", 1, &snap).await;
    assert_eq!((taken.len(), applied), (1, 3));

    // The service claims the dead consumer's entry after USAGE_CLAIM_IDLE.
    let app = TestApp::spawn_on(redis, |_| {}).await;
    wait_for(WAIT, "both entries consumed, 3 duplicates", || async {
        xlen(&app.redis).await == 0
            && sample(
                &app.metrics().await,
                "token_service_usage_records_duplicate_total",
                &[],
            ) == Some(3.0)
    })
    .await;
    assert_eq!(processed(&app).await, 4.0);
    let r = &app.redis;
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:requests").await,
        4
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:tokens_in")
            .await,
        4000
    );
    assert_eq!(
        r.get_i64("metrics:model:gpt-4o-mini:team-a:cost_nusd")
            .await,
        4 * 450_000
    );
    let rows = ledger_rows(r).await;
    assert_eq!(rows.len(), 4);
    let sizes: Vec<usize> = ledger_entries(r).await.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 1], "one ledger entry per usage entry");
}
