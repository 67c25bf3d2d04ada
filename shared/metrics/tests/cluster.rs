//! The batched writer and once-batches on a real Redis Cluster (3 masters,
//! 3 replicas): exact counts with keys spread over every master, and with a
//! master SIGKILLed mid-load while its replica takes over; and through
//! Sentinel (1 master, 1 replica, 3 sentinels) across a failover.

use aigw_metrics::families::gateway::{Namespace, NsStatus, NS_CONCURRENT, NS_REQUESTS, NS_STATUS};
use aigw_metrics::ops::apply_flush;
use aigw_metrics::{
    keys, spawn_flusher, FlushOutcome, Heartbeat, OnceBatch, Ops, Recorder, RecorderConfig,
    RedisConn, Topology,
};
use aigw_testkit::RedisCluster;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const NAMESPACES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
const STATUSES: [&str; 3] = ["200", "429", "500"];

fn record(rec: &Recorder, i: usize) {
    let ns = NAMESPACES[i % NAMESPACES.len()];
    NS_REQUESTS.add(rec, &Namespace { namespace_code: ns }, 1);
    NS_STATUS.add(
        rec,
        &NsStatus {
            namespace_code: ns,
            status_code: STATUSES[i % STATUSES.len()],
        },
        1,
    );
}

fn expected(n: usize) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for i in 0..n {
        let ns = NAMESPACES[i % NAMESPACES.len()];
        *m.entry(keys::ns_total_requests(ns)).or_insert(0) += 1;
        *m.entry(format!(
            "metrics:ns:{ns}:status:{}",
            STATUSES[i % STATUSES.len()]
        ))
        .or_insert(0) += 1;
    }
    m
}

async fn assert_exact(cluster: &RedisCluster, want: &HashMap<String, i64>) {
    for (k, v) in want {
        assert_eq!(cluster.get_i64(k).await, *v, "{k}");
    }
}

/// Sets its flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

async fn flush_until_clean(rec: &Recorder, conn: &RedisConn) {
    for _ in 0..600 {
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
async fn flushes_on_a_cluster_are_exact_and_applied_once() {
    let cluster = RedisCluster::start().await;
    let conn = RedisConn::new(&cluster.url()).unwrap();
    assert_eq!(conn.topology(), Topology::Cluster);
    // The series of this test live on every master.
    let mut owners: Vec<u16> = Vec::new();
    for ns in NAMESPACES {
        owners.push(cluster.master_of(&keys::ns_total_requests(ns)).await);
    }
    owners.sort_unstable();
    owners.dedup();
    assert_eq!(owners.len(), 3, "keys on every master");

    let rec = Recorder::new(RecorderConfig::for_service("cluster"));
    let cancel = CancellationToken::new();
    let flusher = spawn_flusher(
        rec.clone(),
        conn.clone(),
        Duration::from_millis(20),
        Duration::from_secs(10),
        cancel.clone(),
    );
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let rec = rec.clone();
            tokio::task::spawn_blocking(move || {
                for i in 0..20_000 {
                    record(&rec, t * 20_000 + i);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    cancel.cancel();
    flusher.await.unwrap();
    assert_exact(&cluster, &expected(80_000)).await;

    // A batch retried under its marker (a lost reply) changes nothing.
    let mut ops = Ops::new();
    for ns in NAMESPACES {
        ops.incr(&keys::ns_total_requests(ns), 5);
    }
    let mut c = conn.get().await.unwrap();
    let marker = keys::flush_marker("retry", 1);
    let none = Heartbeat::None;
    assert!(apply_flush(&mut c, &marker, 60, "retry", none, &ops)
        .await
        .unwrap());
    assert!(!apply_flush(&mut c, &marker, 60, "retry", none, &ops)
        .await
        .unwrap());
    let mut want = expected(80_000);
    for ns in NAMESPACES {
        *want.get_mut(&keys::ns_total_requests(ns)).unwrap() += 5;
    }
    assert_exact(&cluster, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_replica_gauges_sum_over_live_replicas_on_a_cluster() {
    let cluster = RedisCluster::start().await;
    let conn = RedisConn::new(&cluster.url()).unwrap();
    let interval = Duration::from_millis(100);
    let live = Recorder::new(RecorderConfig::for_service("live"));
    let dead = Recorder::new(RecorderConfig::for_service("dead"));
    let cancel = CancellationToken::new();
    let _l = spawn_flusher(
        live.clone(),
        conn.clone(),
        interval,
        Duration::from_secs(5),
        cancel.clone(),
    );
    let dead_task = spawn_flusher(
        dead.clone(),
        conn.clone(),
        interval,
        Duration::from_secs(5),
        CancellationToken::new(),
    );
    let a = Namespace {
        namespace_code: "a",
    };
    let b = Namespace {
        namespace_code: "b",
    };
    NS_CONCURRENT.series(&live, &a).add(2);
    NS_CONCURRENT.series(&dead, &a).add(5);
    NS_CONCURRENT.series(&dead, &b).add(1);
    let key_a = keys::ns_concurrent_requests("a");
    let key_b = keys::ns_concurrent_requests("b");
    let mut seen = (0, 0);
    for _ in 0..100 {
        tokio::time::sleep(interval).await;
        seen = (cluster.get_i64(&key_a).await, cluster.get_i64(&key_b).await);
        if seen == (7, 1) {
            break;
        }
    }
    assert_eq!(seen, (7, 1), "both replicas' contributions");
    // The dead replica stops without any cleanup (like SIGKILL).
    dead_task.abort();
    let _ = dead_task.await;
    for _ in 0..100 {
        tokio::time::sleep(interval).await;
        seen = (cluster.get_i64(&key_a).await, cluster.get_i64(&key_b).await);
        if seen == (2, 0) {
            break;
        }
    }
    assert_eq!(seen, (2, 0), "only the live replica's contribution");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_batches_on_a_cluster_apply_each_record_once() {
    let cluster = RedisCluster::start().await;
    let conn = RedisConn::new(&cluster.url()).unwrap();
    let mut c = conn.get().await.unwrap();
    let mut batch = OnceBatch::new();
    for i in 0..40 {
        let mut ops = Ops::new();
        let ns = NAMESPACES[i % NAMESPACES.len()];
        ops.incr(&keys::ns_total_requests(ns), 1);
        ops.incr(keys::GLOBAL_TOTAL_REQUESTS, 1);
        ops.xadd(keys::LEDGER_STREAM, keys::LEDGER_FIELD, format!("row {i}"));
        batch.push("test", &format!("r{i}"), ops);
    }
    assert_eq!(batch.apply(&mut c, 60).await.unwrap(), 40);
    // Redelivered, with 10 new records.
    for i in 40..50 {
        let mut ops = Ops::new();
        ops.incr(keys::GLOBAL_TOTAL_REQUESTS, 1);
        batch.push("test", &format!("r{i}"), ops);
    }
    assert_eq!(batch.apply(&mut c, 60).await.unwrap(), 10);
    assert_eq!(batch.apply(&mut c, 60).await.unwrap(), 0);
    assert_eq!(cluster.get_i64(keys::GLOBAL_TOTAL_REQUESTS).await, 50);
    for ns in NAMESPACES {
        assert_eq!(cluster.get_i64(&keys::ns_total_requests(ns)).await, 5);
    }
    let mut t = cluster.conn().await;
    let len: i64 = redis::cmd("XLEN")
        .arg(keys::LEDGER_STREAM)
        .query_async(&mut t)
        .await
        .unwrap();
    assert_eq!(len, 40);
}

/// A master is SIGKILLed while a flusher writes at full speed; its replica
/// is promoted. Every recorded increment is in the cluster exactly once
/// afterwards: a flush that failed is retried under its markers, and a
/// flush is acknowledged only after a replica confirmed it (`WAIT`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_mid_load_loses_and_doubles_nothing() {
    let mut cluster = RedisCluster::start().await;
    let conn = RedisConn::new(&cluster.url()).unwrap();
    let rec = Recorder::new(RecorderConfig::for_service("failover"));
    let cancel = CancellationToken::new();
    let flusher = spawn_flusher(
        rec.clone(),
        conn.clone(),
        Duration::from_millis(10),
        Duration::from_secs(30),
        cancel.clone(),
    );
    let recorded = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // A failed assertion stops the writer too: the runtime waits for its
    // blocking task when the test unwinds.
    let _stop_on_unwind = StopOnDrop(stop.clone());
    let writer = {
        let (rec, recorded, stop) = (rec.clone(), recorded.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                record(&rec, i);
                i += 1;
                recorded.store(i, Ordering::Relaxed);
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    // Let some flushes land, then kill the master of a hot key.
    while recorded.load(Ordering::Relaxed) < 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let victim = cluster
        .master_of(&keys::ns_total_requests(NAMESPACES[0]))
        .await;
    let promoted = cluster.kill_master(victim).await;
    assert_ne!(promoted, victim);
    // Keep writing after the failover, then stop.
    let at_failover = recorded.load(Ordering::Relaxed);
    while recorded.load(Ordering::Relaxed) < at_failover + 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    cancel.cancel();
    flusher.await.unwrap();
    flush_until_clean(&rec, &conn).await;
    let (_, failed) = rec.flush_stats();
    assert!(failed > 0, "the kill hit flushes in flight");
    let n = recorded.load(Ordering::Relaxed);
    assert_exact(&cluster, &expected(n)).await;
}

/// Through Sentinel: the master is SIGKILLed mid-load and the sentinels
/// promote its replica; the writer follows the new master and every
/// increment is there exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_failover_mid_load_loses_and_doubles_nothing() {
    let mut sentinel = aigw_testkit::RedisSentinel::start().await;
    let conn = RedisConn::new(&sentinel.url()).unwrap();
    assert_eq!(conn.topology(), Topology::Sentinel);
    let rec = Recorder::new(RecorderConfig::for_service("sentinel"));
    let cancel = CancellationToken::new();
    let flusher = spawn_flusher(
        rec.clone(),
        conn.clone(),
        Duration::from_millis(10),
        Duration::from_secs(30),
        cancel.clone(),
    );
    let recorded = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // A failed assertion stops the writer too: the runtime waits for its
    // blocking task when the test unwinds.
    let _stop_on_unwind = StopOnDrop(stop.clone());
    let writer = {
        let (rec, recorded, stop) = (rec.clone(), recorded.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                record(&rec, i);
                i += 1;
                recorded.store(i, Ordering::Relaxed);
                if i % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    while recorded.load(Ordering::Relaxed) < 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sentinel.kill_master().await;
    let at_failover = recorded.load(Ordering::Relaxed);
    while recorded.load(Ordering::Relaxed) < at_failover + 20_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let n = recorded.load(Ordering::Relaxed);
    cancel.cancel();
    flusher.await.unwrap();
    flush_until_clean(&rec, &conn).await;
    let (_, failed) = rec.flush_stats();
    assert!(failed > 0, "the kill hit flushes");
    let mut c = redis::Client::open(sentinel.master_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for (k, v) in expected(n) {
        let got: Option<i64> = redis::cmd("GET").arg(&k).query_async(&mut c).await.unwrap();
        assert_eq!(got, Some(v), "{k}");
    }
}
