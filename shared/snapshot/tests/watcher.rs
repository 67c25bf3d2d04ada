//! The snapshot watcher and publisher against a real Redis: notifications,
//! polls, versions that never go back, unreadable snapshots, and
//! connections that die silently or hang — after which the watcher must
//! still follow every change.

use aigw_metrics::keys::{CONFIG_CHANNEL, CONFIG_SNAPSHOT, CONFIG_VERSION};
use aigw_snapshot::{
    publish, Published, SnapshotCell, SnapshotSink, SnapshotWatcher, WatcherSettings,
};
use aigw_testkit::{RedisServer, TcpProxy};
use aigw_types::{ConfigSnapshot, NamespaceConfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const SETTINGS: WatcherSettings = WatcherSettings {
    poll_interval: Duration::from_millis(200),
    timeout: Duration::from_millis(500),
};

/// Generous: these tests check that a change arrives at all, not how fast.
const ARRIVAL: Duration = Duration::from_secs(30);

fn snap(v: u64) -> ConfigSnapshot {
    ConfigSnapshot {
        version: v,
        generated_at_ms: 1,
        namespaces: vec![NamespaceConfig {
            code: format!("ns-{v}"),
            name: "n".into(),
            enabled: true,
            limits: Default::default(),
            monthly_budget_usd: None,
        }],
        ..Default::default()
    }
}

/// A sink that remembers every version installed, in order.
#[derive(Default)]
struct Recording {
    cell: SnapshotCell,
    installed: Mutex<Vec<u64>>,
}

impl SnapshotSink for Recording {
    fn version(&self) -> Option<u64> {
        self.cell.version()
    }
    fn install(&self, s: ConfigSnapshot) {
        self.installed.lock().unwrap().push(s.version);
        self.cell.install(s);
    }
}

impl Recording {
    fn installed(&self) -> Vec<u64> {
        self.installed.lock().unwrap().clone()
    }
}

async fn wait_for(sink: &Recording, v: u64) {
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    while sink.version() != Some(v) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "version {v} never arrived; installed {:?}",
            sink.installed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn watch(url: &str, sink: Arc<Recording>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let w = SnapshotWatcher::new(aigw_metrics::RedisConn::new(url).unwrap(), SETTINGS);
    let task = w.spawn(sink, cancel.clone());
    (cancel, task)
}

/// Writes a snapshot without the publish script: any version, no
/// notification unless asked.
async fn write_raw(redis: &RedisServer, json: &str, version: u64, notify: bool) {
    let mut c = redis.conn().await;
    let _: () = redis::pipe()
        .set(CONFIG_SNAPSHOT, json)
        .set(CONFIG_VERSION, version)
        .query_async(&mut c)
        .await
        .unwrap();
    if notify {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(CONFIG_CHANNEL)
            .arg(version)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

async fn publish_to(redis: &RedisServer, s: &ConfigSnapshot) -> Published {
    publish(&mut redis.conn().await, s).await.unwrap()
}

#[tokio::test]
async fn the_publisher_never_goes_back() {
    let redis = RedisServer::start().await;
    assert_eq!(publish_to(&redis, &snap(2)).await, Published::Written);
    assert_eq!(publish_to(&redis, &snap(2)).await, Published::AlreadyThere);
    assert_eq!(
        publish_to(&redis, &snap(1)).await,
        Published::Refused { current: 2 }
    );
    let mut c = redis.conn().await;
    let v: u64 = redis::cmd("GET")
        .arg(CONFIG_VERSION)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(v, 2);
    let raw: String = redis::cmd("GET")
        .arg(CONFIG_SNAPSHOT)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<ConfigSnapshot>(&raw).unwrap(),
        snap(2)
    );
}

#[tokio::test]
async fn follows_notifications_and_polls_and_never_installs_an_older_version() {
    let redis = RedisServer::start().await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&redis.url(), sink.clone());

    publish_to(&redis, &snap(1)).await;
    wait_for(&sink, 1).await;
    publish_to(&redis, &snap(2)).await;
    wait_for(&sink, 2).await;
    assert_eq!(sink.cell.current().unwrap().namespaces[0].code, "ns-2");

    // A lost notification: only the poll can find it.
    write_raw(&redis, &serde_json::to_string(&snap(3)).unwrap(), 3, false).await;
    wait_for(&sink, 3).await;

    // An older version in Redis, announced and polled: never installed.
    write_raw(&redis, &serde_json::to_string(&snap(2)).unwrap(), 2, true).await;
    // Several poll rounds see it; then a newer one is followed again.
    tokio::time::sleep(SETTINGS.poll_interval * 4).await;
    assert_eq!(sink.version(), Some(3));
    write_raw(&redis, &serde_json::to_string(&snap(5)).unwrap(), 5, true).await;
    wait_for(&sink, 5).await;
    assert_eq!(sink.installed(), vec![1, 2, 3, 5]);

    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn an_unreadable_snapshot_keeps_the_last_good_one() {
    let redis = RedisServer::start().await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&redis.url(), sink.clone());
    publish_to(&redis, &snap(1)).await;
    wait_for(&sink, 1).await;

    write_raw(&redis, "{not json", 2, true).await;
    tokio::time::sleep(SETTINGS.poll_interval * 4).await;
    assert_eq!(sink.version(), Some(1));

    write_raw(&redis, &serde_json::to_string(&snap(3)).unwrap(), 3, true).await;
    wait_for(&sink, 3).await;
    assert_eq!(sink.installed(), vec![1, 3]);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn starts_before_redis_and_loads_once_it_answers() {
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&redis.url(), sink.clone());
    tokio::time::sleep(SETTINGS.timeout * 2).await;
    assert_eq!(sink.version(), None);

    redis.restart().await;
    publish_to(&redis, &snap(4)).await;
    wait_for(&sink, 4).await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn connections_that_die_silently_are_replaced() {
    let redis = RedisServer::start().await;
    let proxy = TcpProxy::start(redis.port()).await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&proxy.redis_url(), sink.clone());
    publish_to(&redis, &snap(1)).await;
    wait_for(&sink, 1).await;
    let opened = proxy.accepted();

    // Both the subscription and the read connection go silent: no FIN, no
    // error, nothing arrives. A notification sent now is lost with them.
    proxy.stall();
    publish_to(&redis, &snap(2)).await;
    wait_for(&sink, 2).await;
    assert!(proxy.accepted() > opened, "the watcher reconnected");

    // And the new subscription works: a change is followed again.
    publish_to(&redis, &snap(3)).await;
    wait_for(&sink, 3).await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_subscription_that_dies_silently_is_renewed() {
    let redis = RedisServer::start().await;
    let proxy = TcpProxy::start(redis.port()).await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&proxy.redis_url(), sink.clone());
    publish_to(&redis, &snap(1)).await;
    wait_for(&sink, 1).await;
    // The watcher opens its read connection first, then the subscription.
    assert_eq!(proxy.accepted(), 2);

    // Only the subscription goes silent; reads still work, so polls alone
    // would keep the snapshot current — but every change would wait for
    // the next poll. The PING on the subscription finds it dead.
    proxy.stall_connection(1);
    let deadline = tokio::time::Instant::now() + ARRIVAL;
    while proxy.accepted() == 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a dead subscription was never renewed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    publish_to(&redis, &snap(2)).await;
    wait_for(&sink, 2).await;
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_redis_that_hangs_neither_stalls_the_watcher_nor_its_shutdown() {
    let redis = RedisServer::start().await;
    let proxy = TcpProxy::start(redis.port()).await;
    let sink = Arc::new(Recording::default());
    let (cancel, task) = watch(&proxy.redis_url(), sink.clone());
    publish_to(&redis, &snap(1)).await;
    wait_for(&sink, 1).await;

    // Every connection, old and new, accepts bytes and never answers.
    proxy.stall_new(true);
    proxy.stall();
    publish_to(&redis, &snap(2)).await;
    tokio::time::sleep(SETTINGS.timeout * 4).await;
    assert_eq!(sink.version(), Some(1), "last good snapshot kept");
    let attempts = proxy.accepted();
    tokio::time::sleep(SETTINGS.timeout * 4).await;
    assert!(proxy.accepted() > attempts, "still trying to reconnect");

    // Redis answers again: the change made meanwhile arrives.
    proxy.stall_new(false);
    wait_for(&sink, 2).await;

    // A watcher blocked on a hanging call still stops when asked.
    proxy.stall_new(true);
    proxy.stall();
    tokio::time::sleep(SETTINGS.timeout).await;
    cancel.cancel();
    tokio::time::timeout(ARRIVAL, task)
        .await
        .expect("the watcher stops on cancel")
        .unwrap();
}

#[tokio::test]
async fn load_reads_once_and_installs_only_newer() {
    let redis = RedisServer::start().await;
    let cell = SnapshotCell::new();
    let w = SnapshotWatcher::new(
        aigw_metrics::RedisConn::new(&redis.url()).unwrap(),
        SETTINGS,
    );
    assert_eq!(w.load(&cell).await.unwrap(), None);
    publish_to(&redis, &snap(7)).await;
    assert_eq!(w.load(&cell).await.unwrap(), Some(7));
    write_raw(&redis, &serde_json::to_string(&snap(6)).unwrap(), 6, false).await;
    assert_eq!(w.load(&cell).await.unwrap(), Some(7));
    assert_eq!(cell.current().unwrap().namespaces[0].code, "ns-7");
}
