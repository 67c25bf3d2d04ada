//! A reader's copy of the snapshot.

use crate::watcher::SnapshotSink;
use aigw_types::ConfigSnapshot;
use std::sync::Arc;
use tokio::sync::watch;

/// The current snapshot of a reader: cheap to clone and to read, and never
/// replaced by an older or equal version.
#[derive(Clone)]
pub struct SnapshotCell {
    tx: Arc<watch::Sender<Option<Arc<ConfigSnapshot>>>>,
}

impl Default for SnapshotCell {
    fn default() -> Self {
        SnapshotCell {
            tx: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl std::fmt::Debug for SnapshotCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotCell")
            .field("version", &self.version())
            .finish()
    }
}

impl SnapshotCell {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot, if one was ever installed.
    pub fn current(&self) -> Option<Arc<ConfigSnapshot>> {
        self.tx.borrow().clone()
    }

    pub fn version(&self) -> Option<u64> {
        self.tx.borrow().as_ref().map(|s| s.version)
    }

    /// Installs `snap` if it is newer than the current one; whether it did.
    pub fn install(&self, snap: ConfigSnapshot) -> bool {
        let mut snap = Some(snap);
        self.tx.send_if_modified(|cur| {
            let newer = match (cur.as_ref(), snap.as_ref()) {
                (Some(c), Some(s)) => s.version > c.version,
                (None, Some(_)) => true,
                (_, None) => false,
            };
            if newer {
                *cur = snap.take().map(Arc::new);
            }
            newer
        })
    }

    /// Resolves once a snapshot is installed (at once if one is).
    pub async fn loaded(&self) -> Arc<ConfigSnapshot> {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(s) = rx.borrow_and_update().clone() {
                return s;
            }
            // The sender lives as long as `self`: this cannot fail.
            let _ = rx.changed().await;
        }
    }
}

impl SnapshotSink for SnapshotCell {
    fn version(&self) -> Option<u64> {
        SnapshotCell::version(self)
    }

    fn install(&self, snapshot: ConfigSnapshot) {
        SnapshotCell::install(self, snapshot);
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

    #[tokio::test]
    async fn older_versions_never_replace_newer() {
        let c = SnapshotCell::new();
        assert_eq!(c.version(), None);
        let waiting = tokio::spawn({
            let c = c.clone();
            async move { c.loaded().await.version }
        });
        assert!(c.install(snap(3)));
        assert_eq!(waiting.await.unwrap(), 3);
        assert!(!c.install(snap(2)));
        assert!(!c.install(snap(3)));
        assert_eq!(c.version(), Some(3));
        assert!(c.install(snap(4)));
        assert_eq!(c.current().unwrap().version, 4);
    }
}
