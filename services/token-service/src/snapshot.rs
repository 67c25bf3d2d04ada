//! The config snapshot (models, encodings, prices, namespaces) as last read
//! from Redis, reloaded on every change notification and on a slow poll of
//! the version in case a notification was missed. The last good snapshot is
//! kept while Redis is unreachable.

use aigw_metrics::{keys, RedisConn};
use aigw_types::ConfigSnapshot;
use futures_util::StreamExt;
use redis::AsyncCommands;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Shared handle on the current snapshot.
#[derive(Clone, Default)]
pub struct SnapshotStore {
    current: Arc<RwLock<Option<Arc<ConfigSnapshot>>>>,
}

impl SnapshotStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot, if one was ever loaded.
    pub fn current(&self) -> Option<Arc<ConfigSnapshot>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn version(&self) -> Option<u64> {
        self.current().map(|s| s.version)
    }

    /// Installs `snap` unless the current one is newer.
    pub fn install(&self, snap: ConfigSnapshot) -> bool {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| c.version > snap.version) {
            return false;
        }
        *cur = Some(Arc::new(snap));
        true
    }

    /// Reads `config:snapshot` and installs it if it is new. Returns the
    /// version now installed.
    pub async fn reload(&self, redis: &RedisConn) -> anyhow::Result<Option<u64>> {
        let mut conn = redis.get().await?;
        let raw: Option<String> = conn.get(keys::CONFIG_SNAPSHOT).await?;
        let Some(raw) = raw else {
            return Ok(self.version());
        };
        let snap: ConfigSnapshot = serde_json::from_str(&raw)
            .map_err(|e| anyhow::anyhow!("config snapshot is not readable: {e}"))?;
        let v = snap.version;
        if self.version() != Some(v) && self.install(snap) {
            tracing::info!(version = v, "config snapshot loaded");
        }
        Ok(self.version())
    }

    /// Keeps the snapshot current until `cancel` fires: subscribes to
    /// `config:updates`, reloads on each message, and polls `config:version`
    /// every `poll` in case a message was lost.
    pub fn spawn_watcher(
        &self,
        redis: RedisConn,
        poll: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            while !cancel.is_cancelled() {
                match store.watch_once(&redis, poll, &cancel).await {
                    Ok(()) => {}
                    Err(e) => {
                        if !failing {
                            tracing::warn!(error = %e, "config watcher: redis unavailable, keeping the last snapshot");
                        }
                        failing = true;
                    }
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

    async fn watch_once(
        &self,
        redis: &RedisConn,
        poll: Duration,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut pubsub = redis.client().get_async_pubsub().await?;
        pubsub.subscribe(keys::CONFIG_CHANNEL).await?;
        // Load after subscribing so no change can fall between the two.
        self.reload(redis).await?;
        let mut messages = pubsub.into_on_message();
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                msg = messages.next() => {
                    if msg.is_none() {
                        anyhow::bail!("config channel closed");
                    }
                    self.reload(redis).await?;
                }
                _ = tick.tick() => {
                    let mut conn = redis.get().await?;
                    let v: Option<u64> = conn.get(keys::CONFIG_VERSION).await?;
                    if v.is_some() && v != self.version() {
                        self.reload(redis).await?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(v: u64) -> ConfigSnapshot {
        ConfigSnapshot {
            version: v,
            ..Default::default()
        }
    }

    #[test]
    fn older_versions_never_replace_newer() {
        let s = SnapshotStore::new();
        assert!(s.install(snap(3)));
        assert!(!s.install(snap(2)));
        assert_eq!(s.version(), Some(3));
        assert!(s.install(snap(4)));
        assert_eq!(s.version(), Some(4));
    }
}
