//! The one watcher of the config snapshot, used by every reader.
//!
//! It subscribes to `config:updates`, then reads the snapshot (so no change
//! can fall between the two), and reads it again on every notification.
//! Every `poll_interval` it also
//! - PINGs the subscription: a pub/sub connection can die without a word
//!   (a peer that vanished, a NAT entry that expired) and would then wait
//!   for messages forever;
//! - reads `config:version`: a notification can be lost, and a newer
//!   version found this way is loaded at once.
//!
//! Every Redis call is bounded by `timeout`. When a call fails or times out
//! both connections are dropped and opened afresh (after a short backoff),
//! so a connection that hangs cannot stall the watcher. Throughout, the
//! last good snapshot stays installed: a snapshot is installed only if its
//! version is newer than the installed one, and one that cannot be read is
//! logged and skipped.

use aigw_metrics::keys::{CONFIG_CHANNEL, CONFIG_SNAPSHOT, CONFIG_VERSION};
use aigw_metrics::{RedisConn, RedisHandle};
use aigw_types::ConfigSnapshot;
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Where a watcher installs snapshots.
pub trait SnapshotSink: Send + Sync + 'static {
    /// The installed version, if any.
    fn version(&self) -> Option<u64>;
    /// Installs a snapshot; the watcher only offers versions newer than
    /// [`SnapshotSink::version`].
    fn install(&self, snapshot: ConfigSnapshot);
}

impl<S: SnapshotSink> SnapshotSink for Arc<S> {
    fn version(&self) -> Option<u64> {
        (**self).version()
    }
    fn install(&self, snapshot: ConfigSnapshot) {
        (**self).install(snapshot)
    }
}

/// How a watcher polls and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct WatcherSettings {
    /// How often the version is polled and the subscription PINGed.
    pub poll_interval: Duration,
    /// Bound on every Redis call (connect, subscribe, read, PING).
    pub timeout: Duration,
}

impl Default for WatcherSettings {
    fn default() -> Self {
        WatcherSettings {
            poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0} timed out")]
    Timeout(&'static str),
    #[error("the notification connection closed")]
    Closed,
    #[error("{CONFIG_SNAPSHOT} is not a readable snapshot: {0}")]
    Unreadable(serde_json::Error),
}

/// Backoff between attempts to reconnect.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Keeps a [`SnapshotSink`] current from Redis.
#[derive(Clone)]
pub struct SnapshotWatcher {
    redis: RedisConn,
    settings: WatcherSettings,
}

impl std::fmt::Debug for SnapshotWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's Debug shows only where it points, never a password.
        f.debug_struct("SnapshotWatcher")
            .field("redis", &self.redis)
            .field("settings", &self.settings)
            .finish()
    }
}

impl SnapshotWatcher {
    pub fn new(redis: RedisConn, settings: WatcherSettings) -> Self {
        SnapshotWatcher { redis, settings }
    }

    async fn bounded<T, E: Into<WatchError>>(
        &self,
        what: &'static str,
        f: impl Future<Output = Result<T, E>>,
    ) -> Result<T, WatchError> {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(WatchError::Timeout(what)),
        }
    }

    async fn connect(&self) -> Result<RedisHandle, WatchError> {
        // A connection per session: one that hung is replaced, not reused.
        self.bounded("connecting", self.redis.connect_new()).await
    }

    /// One bounded read of the snapshot, installed if newer. Returns the
    /// installed version afterwards.
    pub async fn load(&self, sink: &dyn SnapshotSink) -> Result<Option<u64>, WatchError> {
        let mut conn = self.connect().await?;
        self.sync(&mut conn, sink).await
    }

    async fn sync(
        &self,
        conn: &mut RedisHandle,
        sink: &dyn SnapshotSink,
    ) -> Result<Option<u64>, WatchError> {
        let raw: Option<String> = self
            .bounded(
                "reading the snapshot",
                redis::cmd("GET")
                    .arg(CONFIG_SNAPSHOT)
                    .query_async::<Option<String>>(conn),
            )
            .await?;
        let Some(raw) = raw else {
            return Ok(sink.version());
        };
        let snap: ConfigSnapshot = serde_json::from_str(&raw).map_err(WatchError::Unreadable)?;
        let installed = sink.version();
        match installed {
            Some(v) if snap.version < v => {
                tracing::warn!(
                    redis_version = snap.version,
                    installed = v,
                    "redis holds an older config version than the one in use; keeping ours (a reset config store needs the readers restarted)"
                );
            }
            Some(v) if snap.version == v => {}
            _ => {
                let (version, namespaces, models, instances) = (
                    snap.version,
                    snap.namespaces.len(),
                    snap.models.len(),
                    snap.instances.len(),
                );
                sink.install(snap);
                tracing::info!(
                    version,
                    namespaces,
                    models,
                    instances,
                    "config snapshot loaded"
                );
            }
        }
        Ok(sink.version())
    }

    /// Reads the snapshot, logging (not failing on) one that cannot be read.
    async fn sync_logged(
        &self,
        conn: &mut RedisHandle,
        sink: &dyn SnapshotSink,
    ) -> Result<(), WatchError> {
        match self.sync(conn, sink).await {
            Ok(_) => Ok(()),
            Err(WatchError::Unreadable(e)) => {
                tracing::warn!(error = %e, "config snapshot in redis is unreadable; keeping the last good one");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Watches until `cancel` fires.
    pub fn spawn<S: SnapshotSink>(self, sink: S, cancel: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut backoff = MIN_BACKOFF;
            let mut failing = false;
            loop {
                let session = self.session(&sink, &cancel, &mut failing, &mut backoff);
                let ended = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = session => r,
                };
                match ended {
                    Ok(()) => return,
                    Err(e) => {
                        if failing {
                            tracing::debug!(error = %e, "config watcher: still failing");
                        } else {
                            tracing::warn!(error = %e, "config watcher: redis unavailable, keeping the last snapshot; reconnecting");
                            failing = true;
                        }
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// One connection's lifetime: subscribe, load, then follow
    /// notifications and polls until a call fails. `Ok` only on cancel.
    #[allow(clippy::disallowed_methods)] // the one subscriber to config notifications
    async fn session(
        &self,
        sink: &dyn SnapshotSink,
        cancel: &CancellationToken,
        failing: &mut bool,
        backoff: &mut Duration,
    ) -> Result<(), WatchError> {
        let mut conn = self.connect().await?;
        // Notifications come on a connection of their own, to the server
        // owning the channel's name (on a cluster, any master hears every
        // PUBLISH; through Sentinel, the current master).
        let pubsub = self
            .bounded("opening the notification connection", async {
                self.redis
                    .node_client(CONFIG_CHANNEL)
                    .await?
                    .get_async_pubsub()
                    .await
            })
            .await?;
        let (mut control, mut messages) = pubsub.split();
        self.bounded("subscribing", control.subscribe(CONFIG_CHANNEL))
            .await?;
        // Load after subscribing so no change can fall between the two.
        self.sync_logged(&mut conn, sink).await?;
        if *failing {
            tracing::info!(version = ?sink.version(), "config watcher: reconnected");
            *failing = false;
        }
        *backoff = MIN_BACKOFF;

        let mut tick = tokio::time::interval(self.settings.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(WatchError::Closed);
                    };
                    // The payload is the version: nothing to read when it is
                    // not newer than ours (a duplicate, or an old message).
                    let announced: Option<u64> = msg.get_payload().ok();
                    let ours = sink.version();
                    if announced.is_none() || ours.is_none() || announced > ours {
                        self.sync_logged(&mut conn, sink).await?;
                    }
                }
                _ = tick.tick() => {
                    self.bounded("PING on the notification connection", control.ping::<redis::Value>())
                        .await?;
                    let v: Option<u64> = self
                        .bounded(
                            "reading the version",
                            redis::cmd("GET").arg(CONFIG_VERSION).query_async::<Option<u64>>(&mut conn),
                        )
                        .await?;
                    let ours = sink.version();
                    if v.is_some() && (ours.is_none() || v > ours) {
                        tracing::debug!(version = ?v, "config watcher: newer version found by polling");
                        self.sync_logged(&mut conn, sink).await?;
                    }
                }
            }
        }
    }
}
