//! Keeps the routing table current with the shared snapshot watcher
//! (`aigw_snapshot`): subscribe to `config:updates`, load the snapshot, and
//! every `CONFIG_POLL_INTERVAL` PING the subscription and poll
//! `config:version`. Any failed or timed-out Redis call drops both of the
//! watcher's connections and opens new ones, so a connection that goes
//! silent cannot stall it. While Redis is unreachable the last good table
//! stays in use; a snapshot that does not parse is logged and ignored.
//!
//! The gateway once had a watcher of its own that read through the shared
//! command connection and never replaced it: once that connection went
//! silent (a peer gone without a FIN), every reload and poll timed out
//! (logged at debug only) and a gateway started before the first
//! publication stayed without configuration.

use crate::routing::RoutingStore;
use aigw_snapshot::{SnapshotSink, SnapshotWatcher, WatcherSettings};
use aigw_types::ConfigSnapshot;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl SnapshotSink for RoutingStore {
    fn version(&self) -> Option<u64> {
        RoutingStore::version(self)
    }

    fn install(&self, snapshot: ConfigSnapshot) {
        self.apply(&snapshot);
    }
}

/// Watches until `cancel` fires.
pub fn spawn(
    store: Arc<RoutingStore>,
    redis: aigw_metrics::RedisConn,
    poll_interval: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    SnapshotWatcher::new(
        redis,
        WatcherSettings {
            poll_interval,
            ..WatcherSettings::default()
        },
    )
    .spawn(store, cancel)
}
