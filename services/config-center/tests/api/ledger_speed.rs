//! How fast the spend ledger's writer stores rows, stream to SQL, on each
//! engine (`docs/BENCHMARKS.md`, "Spend ledger"), and that every row lands
//! exactly once while it does. The suite runs it over 5,000 rows in the
//! debug build and checks the counts; the rates it prints mean something
//! only in a release build on a quiet machine, over more rows:
//! `LEDGER_SPEED_ROWS=100000 cargo nextest run --workspace --release --locked --no-capture -E 'package(config-center) & test(ledger_speed)'`
//! (speed goals live in benchmarks, not in timed assertions).

use crate::helpers::{test_config, Backend, Db};
use crate::ledger::{push_rows_to, row, T0};
use aigw_metrics::stream::GroupReader;
use aigw_metrics::{keys, RedisConn};
use aigw_testkit::RedisServer;
use aigw_types::LedgerRow;
use config_center::ledger::Writer;
use config_center::storage::Store;
use std::time::{Duration, Instant};

/// Rows per run: `LEDGER_SPEED_ROWS`, 5,000 by default (100,000 give
/// several seconds of steady writing for a measurement).
#[allow(clippy::disallowed_methods)]
fn rows_per_run() -> usize {
    std::env::var("LEDGER_SPEED_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

/// Rows shaped like the gateway's: UUID v7 ids, a few namespaces, keys
/// and models, one request per millisecond.
fn bench_rows(n: usize) -> Vec<LedgerRow> {
    (0..n)
        .map(|i| {
            let ns = format!("team-{}", i % 8);
            let key = format!("0192f3a1-7c55-7d2e-9a10-{:012x}", i % 32);
            let model = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "o3-mini"][i % 4];
            let id = uuid::Uuid::now_v7().to_string();
            let mut r = row(&id, T0 + i as i64, &ns, Some(&key), model);
            r.prompt_tokens = 40 + (i % 300) as u64;
            r.completion_tokens = 100 + (i % 700) as u64;
            r.cost_nano_usd = 78_750 + i as u64;
            r.duration_us = 800_000 + i as u64;
            r.stream = i % 2 == 0;
            r
        })
        .collect()
}

async fn stream_len(c: &mut redis::aio::MultiplexedConnection) -> i64 {
    redis::cmd("XLEN")
        .arg(keys::LEDGER_STREAM)
        .query_async(c)
        .await
        .unwrap()
}

async fn stored(store: &Store) -> i64 {
    let t = store
        .usage_totals(&Default::default(), &[], 1)
        .await
        .unwrap();
    t[0].totals.requests
}

fn recorder() -> aigw_metrics::Recorder {
    aigw_metrics::Recorder::new(aigw_metrics::RecorderConfig::for_service("config-center"))
}

/// Where one batch's time goes: the writer's steps one after another,
/// timed apart, over `LEDGER_SPEED_ROWS` rows.
async fn profile(b: Backend, batch: usize) {
    let Some(db) = Db::create(b).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let n = rows_per_run();
    let all = bench_rows(n);
    push_rows_to(&redis, &all).await;
    let store = Store::connect(&db.url(), 4).await.unwrap();
    let mut conn = redis.conn().await;
    let reader = GroupReader {
        stream: keys::LEDGER_STREAM,
        group: keys::LEDGER_GROUP,
        field: keys::LEDGER_FIELD,
        consumer: "profile".into(),
        count: batch,
        claim_idle: Duration::from_secs(60),
    };
    reader.ensure_group(&mut conn).await.unwrap();
    let mut spent = [Duration::ZERO; 4];
    let mut lap = |i: usize, t: &mut Instant| {
        spent[i] += t.elapsed();
        *t = Instant::now();
    };
    loop {
        let mut t = Instant::now();
        let entries = reader.read(&mut conn, ">", None).await.unwrap();
        if entries.is_empty() {
            break;
        }
        lap(0, &mut t);
        let rows: Vec<LedgerRow> = entries
            .iter()
            .map(|e| serde_json::from_str(e.payload.as_deref().unwrap()).unwrap())
            .collect();
        let ids: Vec<String> = entries.into_iter().map(|e| e.id).collect();
        lap(1, &mut t);
        store.insert_ledger_rows(&rows).await.unwrap();
        lap(2, &mut t);
        reader.ack_and_delete(&mut conn, &ids).await.unwrap();
        lap(3, &mut t);
    }
    assert_eq!(stored(&store).await, n as i64);
    let busy: Duration = spent.iter().sum();
    let per_row = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "ledger steps, {b:?}, {batch} rows a batch: XREADGROUP {:.2} µs/row, JSON {:.2}, \
         INSERT+COMMIT {:.2}, XACK+XDEL {:.2}; one after another {:.0} rows/s",
        per_row(spent[0]),
        per_row(spent[1]),
        per_row(spent[2]),
        per_row(spent[3]),
        n as f64 / busy.as_secs_f64()
    );
    store.close().await;
    if b == Backend::Postgres {
        copy_then_insert(&all, batch).await;
    }
}

/// The other way to store a batch on PostgreSQL, timed on a fresh database
/// for comparison: `COPY` into a temporary table, then `INSERT … SELECT …
/// ON CONFLICT DO NOTHING`, one transaction per batch.
async fn copy_then_insert(all: &[LedgerRow], batch: usize) {
    use sqlx::{Connection, Executor};
    let Some(db) = Db::create(Backend::Postgres).await else {
        return;
    };
    // Migrations.
    Store::connect(&db.url(), 1).await.unwrap().close().await;
    let mut c = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let started = Instant::now();
    for rows in all.chunks(batch) {
        let mut text = String::with_capacity(rows.len() * 256);
        for r in rows {
            let opt = |v: &Option<String>| v.as_deref().map_or("\\N".to_string(), copy_text);
            let cells = [
                copy_text(&r.request_id),
                r.started_at_ms.to_string(),
                copy_text(&r.namespace_code),
                opt(&r.api_key_id),
                copy_text(&r.model),
                opt(&r.instance_id),
                copy_text(&r.endpoint),
                i64::from(r.stream).to_string(),
                r.status.to_string(),
                opt(&r.error_kind),
                r.prompt_tokens.to_string(),
                r.completion_tokens.to_string(),
                r.cached_tokens.to_string(),
                r.reasoning_tokens.to_string(),
                i64::from(r.estimated).to_string(),
                r.cost_nano_usd.to_string(),
                r.duration_us.to_string(),
                r.ttft_us.map_or("\\N".to_string(), |v| v.to_string()),
                // Added by a later migration: the table's last column.
                r.cache_write_tokens.to_string(),
            ];
            text.push_str(&cells.join("\t"));
            text.push('\n');
        }
        let mut tx = c.begin().await.unwrap();
        tx.execute(
            "CREATE TEMP TABLE IF NOT EXISTS ledger_in (LIKE usage_ledger) ON COMMIT DELETE ROWS",
        )
        .await
        .unwrap();
        let mut copy = tx.copy_in_raw("COPY ledger_in FROM STDIN").await.unwrap();
        copy.send(text.as_bytes()).await.unwrap();
        copy.finish().await.unwrap();
        tx.execute(
            "INSERT INTO usage_ledger SELECT * FROM ledger_in ON CONFLICT (request_id) DO NOTHING",
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, all.len() as i64);
    println!(
        "ledger steps, Postgres, {batch} rows a batch: COPY + INSERT … SELECT {:.2} µs/row",
        secs * 1e6 / all.len() as f64
    );
}

/// A value in `COPY`'s text format.
fn copy_text(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// The writer itself over a stream holding `LEDGER_SPEED_ROWS` rows: start-up (connect and
/// migrations) apart from the steady rate (first read to the last entry
/// acknowledged).
async fn steady(b: Backend, batch: usize) {
    let Some(db) = Db::create(b).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let n = rows_per_run();
    push_rows_to(&redis, &bench_rows(n)).await;
    let mut conn = redis.conn().await;
    let config = test_config(&db.url(), &redis.url());
    let started = Instant::now();
    let store = Store::connect(&db.url(), config.db_max_connections)
        .await
        .unwrap();
    let start_up = started.elapsed();
    let writer = Writer {
        cfg: config_center::config::LedgerConfig {
            batch_rows: batch,
            ..config.ledger.clone()
        },
        store: store.clone(),
        redis: RedisConn::new(&redis.url()).unwrap(),
        recorder: recorder(),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let writing = Instant::now();
    let task = writer.spawn(cancel.clone());
    // Entries leave the stream only after their batch committed.
    while stream_len(&mut conn).await > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = writing.elapsed().as_secs_f64();
    cancel.cancel();
    task.await.unwrap();
    assert_eq!(stored(&store).await, n as i64);
    println!(
        "ledger writer, {b:?}, {batch} rows a batch: start-up {:.0} ms; \
         {n} rows in {secs:.2} s = {:.0} rows/s steady",
        start_up.as_secs_f64() * 1e3,
        n as f64 / secs
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_speed() {
    for b in [Backend::Sqlite, Backend::Postgres] {
        profile(b, 2_000).await;
        for batch in [500, 2_000, 5_000] {
            steady(b, batch).await;
        }
    }
}
