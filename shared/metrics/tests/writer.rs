//! The batched writer against a real Redis: exact counts under contention,
//! outages, cut connections and lost replies.

use aigw_metrics::families::gateway::{
    Namespace, NsStatus, NS_CONCURRENT, NS_LATENCY, NS_REQUESTS, NS_STATUS,
};
use aigw_metrics::{
    spawn_flusher, FlushOutcome, Heartbeat, Recorder, RecorderConfig, RedisConn, RedisTimeouts,
};
use aigw_testkit::RedisServer;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const NAMESPACES: [&str; 4] = ["a", "b", "c", "d"];
const STATUSES: [&str; 3] = ["200", "429", "500"];
const A: Namespace<'static> = Namespace {
    namespace_code: "a",
};

fn quick(url: &str) -> RedisConn {
    RedisConn::with_timeouts(
        url,
        RedisTimeouts {
            connect: Duration::from_millis(300),
            response: Duration::from_millis(1000),
        },
    )
    .unwrap()
}

/// Task `t`'s i-th increment goes to namespace (t + i) % 4 and status i % 3,
/// so every series is written by several tasks.
fn record(rec: &Recorder, t: usize, i: usize) {
    let ns = NAMESPACES[(t + i) % NAMESPACES.len()];
    let l = Namespace { namespace_code: ns };
    NS_REQUESTS.add(rec, &l, 1);
    let status = NsStatus {
        namespace_code: ns,
        status_code: STATUSES[i % STATUSES.len()],
    };
    NS_STATUS.add(rec, &status, 1);
    NS_LATENCY.observe(rec, &l, (i % 100) as u64 * 1000);
}

/// What `record` wrote for tasks `0..counts.len()`, task t having done counts[t].
fn expected(counts: &[usize]) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for (t, n) in counts.iter().enumerate() {
        for i in 0..*n {
            let ns = NAMESPACES[(t + i) % NAMESPACES.len()];
            *m.entry(format!("metrics:ns:{ns}:total_requests"))
                .or_insert(0) += 1;
            *m.entry(format!(
                "metrics:ns:{ns}:status:{}",
                STATUSES[i % STATUSES.len()]
            ))
            .or_insert(0) += 1;
        }
    }
    m
}

async fn assert_exact(redis: &RedisServer, want: &HashMap<String, i64>) {
    let mut c = redis.conn().await;
    assert_eq!(want.len(), NAMESPACES.len() * (1 + STATUSES.len()));
    for (k, v) in want {
        let got: Option<i64> = c.get(k).await.unwrap();
        assert_eq!(got, Some(*v), "{k}");
    }
    // Histogram counts equal request counts per namespace.
    for ns in NAMESPACES {
        let count: Option<i64> = c
            .hget(format!("metrics:ns:{ns}:latency_us"), "count")
            .await
            .unwrap();
        let reqs = want[&format!("metrics:ns:{ns}:total_requests")];
        assert_eq!(count, Some(reqs), "histogram count of {ns}");
    }
}

async fn flush_until_clean(rec: &Recorder, conn: &RedisConn) {
    for _ in 0..200 {
        if let Ok(mut c) = conn.get().await {
            if let Ok(FlushOutcome::Idle) = rec.flush(&mut c, Heartbeat::None).await {
                if !rec.has_pending().await {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not flush everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_of_100k_increments_are_exact() {
    let redis = RedisServer::start().await;
    let rec = Recorder::new(RecorderConfig::for_service("test"));
    let conn = RedisConn::new(&redis.url()).unwrap();
    let cancel = CancellationToken::new();
    let flusher = spawn_flusher(
        rec.clone(),
        conn.clone(),
        Duration::from_millis(20),
        Duration::from_secs(10),
        cancel.clone(),
    );
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let rec = rec.clone();
            tokio::task::spawn_blocking(move || {
                for i in 0..100_000 {
                    record(&rec, t, i);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    cancel.cancel();
    flusher.await.unwrap();
    assert_exact(&redis, &expected(&[100_000; 8])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_for_5s_under_load_loses_nothing() {
    let mut redis = RedisServer::start().await;
    let rec = Recorder::new(RecorderConfig::for_service("test"));
    let conn = quick(&redis.url());
    let cancel = CancellationToken::new();
    let flusher = spawn_flusher(
        rec.clone(),
        conn.clone(),
        Duration::from_millis(50),
        Duration::from_secs(20),
        cancel.clone(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let rec = rec.clone();
            let stop = stop.clone();
            tokio::task::spawn_blocking(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    record(&rec, t, i);
                    i += 1;
                    if i % 1000 == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                i
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut counts = Vec::new();
    for w in writers {
        counts.push(w.await.unwrap());
    }
    cancel.cancel();
    flusher.await.unwrap();
    let (_, failures) = rec.flush_stats();
    assert!(failures > 0, "the outage was not noticed by the flusher");
    assert_exact(&redis, &expected(&counts)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_cut_during_flushes_keep_values_exact() {
    let redis = RedisServer::start().await;
    let rec = Recorder::new(RecorderConfig::for_service("test"));
    let conn = quick(&redis.url());
    let per_task = 50_000;
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let rec = rec.clone();
            tokio::task::spawn_blocking(move || {
                for i in 0..per_task {
                    record(&rec, t, i);
                    if i % 500 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        })
        .collect();
    // Flush continuously while another task kills every client connection
    // at pseudo-random moments.
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let done = done.clone();
        let url = redis.url();
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut kills = 0u64;
            let mut x: u64 = 0x2545F4914F6CDD1D;
            while !done.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                tokio::time::sleep(Duration::from_micros(200 + x % 3000)).await;
                if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                    let n: u64 = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("TYPE")
                        .arg("normal")
                        .arg("SKIPME")
                        .arg("yes")
                        .query_async(&mut c)
                        .await
                        .unwrap_or(0);
                    kills += n;
                }
            }
            kills
        })
    };
    let flusher = {
        let rec = rec.clone();
        let conn = conn.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                match conn.get().await {
                    Ok(mut c) => match rec.flush(&mut c, Heartbeat::None).await {
                        Ok(_) => ok += 1,
                        Err(_) => err += 1,
                    },
                    Err(_) => err += 1,
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (ok, err)
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let kills = killer.await.unwrap();
    let (ok, err) = flusher.await.unwrap();
    assert!(kills > 0, "no connection was cut");
    assert!(err > 0, "no flush was interrupted (ok {ok})");
    flush_until_clean(&rec, &conn).await;
    assert_exact(&redis, &expected(&[per_task; 4])).await;
}

/// A TCP proxy that can swallow the next reply from Redis and cut the
/// connection, so a flush is applied but its reply never arrives.
async fn lossy_proxy(target: u16, drop_next_reply: Arc<AtomicBool>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let drop_next = drop_next_reply.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async {
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        if drop_next.swap(false, Ordering::SeqCst) {
                            return; // swallow the reply and cut the connection
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    port
}

#[tokio::test]
async fn a_flush_whose_reply_is_lost_is_not_applied_twice() {
    let redis = RedisServer::start().await;
    let drop_reply = Arc::new(AtomicBool::new(false));
    let port = lossy_proxy(redis.port(), drop_reply.clone()).await;
    let conn = quick(&format!("redis://127.0.0.1:{port}"));
    let rec = Recorder::new(RecorderConfig::for_service("test"));
    // Warm the connection and load the script so the next reply is the flush's.
    let mut c = conn.get().await.unwrap();
    NS_REQUESTS.add(&rec, &A, 1);
    assert!(matches!(
        rec.flush(&mut c, Heartbeat::None).await.unwrap(),
        FlushOutcome::Applied { .. }
    ));

    NS_REQUESTS.add(&rec, &A, 10);
    drop_reply.store(true, Ordering::SeqCst);
    assert!(rec.flush(&mut c, Heartbeat::None).await.is_err());
    assert!(rec.has_pending().await);
    let mut direct = redis.conn().await;
    let v: i64 = direct.get("metrics:ns:a:total_requests").await.unwrap();
    assert_eq!(v, 11, "redis applied the flush although the reply was lost");

    NS_REQUESTS.add(&rec, &A, 100);
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        if let Ok(mut c) = conn.get().await {
            match rec.flush(&mut c, Heartbeat::None).await {
                Ok(FlushOutcome::Idle) => break,
                Ok(o) => outcomes.push(o),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    assert!(
        outcomes.contains(&FlushOutcome::AlreadyApplied),
        "the retried flush was not recognised: {outcomes:?}"
    );
    let v: i64 = direct.get("metrics:ns:a:total_requests").await.unwrap();
    assert_eq!(v, 111);
}

#[tokio::test]
async fn a_dead_replicas_in_flight_count_disappears() {
    let redis = RedisServer::start().await;
    let interval = Duration::from_millis(100);
    let conn = RedisConn::new(&redis.url()).unwrap();
    let live = Recorder::new(RecorderConfig::for_service("live"));
    let dead = Recorder::new(RecorderConfig::for_service("dead"));
    let cancel_live = CancellationToken::new();
    let _l = spawn_flusher(
        live.clone(),
        conn.clone(),
        interval,
        Duration::from_secs(5),
        cancel_live.clone(),
    );
    let dead_task = spawn_flusher(
        dead.clone(),
        conn.clone(),
        interval,
        Duration::from_secs(5),
        CancellationToken::new(),
    );
    NS_CONCURRENT.series(&live, &A).add(2);
    NS_CONCURRENT.series(&dead, &A).add(5);

    let mut c = redis.conn().await;
    let mut seen = None;
    for _ in 0..50 {
        tokio::time::sleep(interval).await;
        seen = c.get("metrics:ns:a:concurrent_requests").await.unwrap();
        if seen == Some(7) {
            break;
        }
    }
    assert_eq!(seen, Some(7), "both replicas' contributions");

    // The dead replica stops without any cleanup (like SIGKILL).
    dead_task.abort();
    let _ = dead_task.await;
    let mut last: Option<i64> = None;
    for _ in 0..30 {
        tokio::time::sleep(interval).await;
        last = c.get("metrics:ns:a:concurrent_requests").await.unwrap();
        if last == Some(2) {
            break;
        }
    }
    assert_eq!(last, Some(2), "dead replica's contribution still counted");
    let fields: HashMap<String, i64> = c
        .hgetall("{metrics:ns:a:concurrent_requests}:replicas")
        .await
        .unwrap();
    assert_eq!(fields.len(), 1, "{fields:?}");
    assert_eq!(fields.get(live.replica()), Some(&2));
    cancel_live.cancel();
}

#[tokio::test]
async fn shutdown_drains_and_retires_the_replica() {
    let redis = RedisServer::start().await;
    let conn = RedisConn::new(&redis.url()).unwrap();
    let rec = Recorder::new(RecorderConfig::for_service("stopping"));
    let cancel = CancellationToken::new();
    let grace = Duration::from_secs(60);
    let task = spawn_flusher(
        rec.clone(),
        conn,
        Duration::from_millis(50),
        grace,
        cancel.clone(),
    );
    let g = NS_CONCURRENT.series(&rec, &A);
    g.add(1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = redis.conn().await;
    let hb: bool = c
        .exists(format!("metrics:replica:{}", rec.replica()))
        .await
        .unwrap();
    assert!(hb, "heartbeat while running");
    g.add(-1);
    NS_REQUESTS.add(&rec, &A, 3);
    assert!(rec.push_record(r#"{"id":"r1"}"#.to_string()));
    cancel.cancel();
    // Draining ends on its own once everything is written, well before the
    // grace period would cut it off.
    tokio::time::timeout(grace / 2, task)
        .await
        .expect("flusher kept draining until the deadline")
        .unwrap();
    let v: i64 = c.get("metrics:ns:a:total_requests").await.unwrap();
    assert_eq!(v, 3);
    let conc: i64 = c.get("metrics:ns:a:concurrent_requests").await.unwrap();
    assert_eq!(conc, 0);
    let hb: bool = c
        .exists(format!("metrics:replica:{}", rec.replica()))
        .await
        .unwrap();
    assert!(!hb, "heartbeat left behind");
    let len: i64 = c.xlen("usage:stream").await.unwrap();
    assert_eq!(len, 1);
}

/// The records in the usage stream.
async fn streamed_records(c: &mut redis::aio::MultiplexedConnection) -> usize {
    let entries: redis::streams::StreamRangeReply = c.xrange_all("usage:stream").await.unwrap();
    entries
        .ids
        .iter()
        .map(|e| {
            let payload: String = e.get("records").unwrap();
            serde_json::from_str::<Vec<serde_json::Value>>(&payload)
                .unwrap()
                .len()
        })
        .sum()
}

/// Waits (up to 30 s) until the usage stream holds `n` records; returns
/// how many it holds then.
async fn wait_streamed(c: &mut redis::aio::MultiplexedConnection, n: usize) -> usize {
    for _ in 0..600 {
        if streamed_records(c).await == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    streamed_records(c).await
}

/// A recorder that flushes early once `flush_records` records wait, and its
/// running flusher.
fn flushing(
    redis: &RedisServer,
    flush_records: usize,
    interval: Duration,
) -> (Recorder, CancellationToken, tokio::task::JoinHandle<()>) {
    let conn = RedisConn::new(&redis.url()).unwrap();
    let rec = Recorder::new(RecorderConfig {
        flush_records,
        ..RecorderConfig::for_service("early")
    });
    let cancel = CancellationToken::new();
    let task = spawn_flusher(
        rec.clone(),
        conn,
        interval,
        Duration::from_secs(10),
        cancel.clone(),
    );
    (rec, cancel, task)
}

/// Once `flush_records` records wait, they are written without waiting for
/// the interval (an hour here), in entries of `records_per_entry`.
#[tokio::test]
async fn a_full_batch_of_records_is_flushed_before_the_interval() {
    let redis = RedisServer::start().await;
    let (rec, cancel, task) = flushing(&redis, 600, Duration::from_secs(3600));
    let mut c = redis.conn().await;
    // The interval's first tick is at once: it writes this record.
    assert!(rec.push_record(r#"{"id":"first"}"#.to_string()));
    assert_eq!(wait_streamed(&mut c, 1).await, 1, "first tick");
    for i in 0..600 {
        assert!(rec.push_record(format!(r#"{{"id":"r{i}"}}"#)));
    }
    assert_eq!(
        wait_streamed(&mut c, 601).await,
        601,
        "flushed before the interval"
    );
    let entries: i64 = c.xlen("usage:stream").await.unwrap();
    assert_eq!(entries, 1 + 3, "600 records in entries of 256");
    assert_eq!(rec.queued_records(), 0);
    cancel.cancel();
    task.await.unwrap();
}

/// An early flush restarts the interval: the records that come after it
/// wait for a whole interval (or the next full batch), not for the tick
/// that was due soon after it, so a busy replica flushes once per batch
/// instead of once per batch and once per tick.
#[tokio::test]
async fn an_early_flush_restarts_the_interval() {
    const INTERVAL: Duration = Duration::from_secs(2);
    let redis = RedisServer::start().await;
    let (rec, cancel, task) = flushing(&redis, 10, INTERVAL);
    let mut c = redis.conn().await;
    let started = tokio::time::Instant::now();
    assert!(rec.push_record(r#"{"id":"first"}"#.to_string()));
    assert_eq!(wait_streamed(&mut c, 1).await, 1, "first tick");
    // Halfway to the next tick, a full batch: flushed at once.
    tokio::time::sleep_until(started + INTERVAL / 2).await;
    let batch_at = tokio::time::Instant::now();
    for i in 0..10 {
        assert!(rec.push_record(format!(r#"{{"id":"r{i}"}}"#)));
    }
    assert_eq!(wait_streamed(&mut c, 11).await, 11, "the full batch");
    assert_eq!(rec.flush_stats().0, 2);
    // One more record: written by the next tick, a whole interval after
    // the batch (the tick due at `started + INTERVAL` was moved; a slow
    // machine only makes the gap longer).
    assert!(rec.push_record(r#"{"id":"last"}"#.to_string()));
    assert_eq!(wait_streamed(&mut c, 12).await, 12, "the next tick");
    let gap = batch_at.elapsed();
    assert!(gap >= INTERVAL, "flushed {gap:?} after the batch");
    assert_eq!(rec.flush_stats().0, 3);
    cancel.cancel();
    task.await.unwrap();
}
