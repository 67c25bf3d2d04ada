//! Publication of the config to Redis. One background task owns it: woken
//! after every commit (and on a timer), it reads the latest committed state
//! from SQL and writes it with the shared publisher (`aigw_snapshot`): one
//! script that writes `config:snapshot` + `config:version`, refuses to go
//! backwards, and then publishes the version on `config:updates`. Readers never see a half-written snapshot, and after a
//! Redis outage the next attempt carries every change made meanwhile.

use crate::storage::{Store, StoreError};
use aigw_metrics::families::config_center as fam;
use aigw_metrics::{keys, NoLabels, Recorder, RedisConn};
use aigw_service::clock::now_ms;
use aigw_snapshot::Published;
use aigw_types::ConfigSnapshot;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("reading the config: {0}")]
    Store(#[from] StoreError),
    #[error("redis holds version {redis}, newer than this database's {ours}")]
    Newer { redis: u64, ours: u64 },
    #[error("writing the snapshot: {0}")]
    Publish(#[from] aigw_snapshot::PublishError),
}

/// What one attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Wrote this version.
    Published(u64),
    /// Redis already held this version.
    UpToDate(u64),
}

/// Handle to the publisher. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    redis: RedisConn,
    recorder: Recorder,
    wake: Notify,
    published: watch::Sender<u64>,
    healthy: AtomicBool,
    retry: Duration,
    resync: Duration,
}

impl Publisher {
    pub fn new(
        store: Store,
        redis: RedisConn,
        recorder: Recorder,
        retry: Duration,
        resync: Duration,
    ) -> Self {
        Publisher {
            inner: Arc::new(Inner {
                store,
                redis,
                recorder,
                wake: Notify::new(),
                published: watch::Sender::new(0),
                healthy: AtomicBool::new(false),
                retry,
                resync,
            }),
        }
    }

    /// The highest version known to be in Redis.
    pub fn published_version(&self) -> u64 {
        *self.inner.published.borrow()
    }

    /// Whether the last attempt reached Redis.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Relaxed)
    }

    /// Asks for a publication soon; several asks coalesce into one.
    pub fn trigger(&self) {
        self.inner.wake.notify_one();
    }

    /// After a commit of `version`: triggers publication and, while Redis
    /// is healthy, waits up to `wait` for it. Returns whether `version` is
    /// published. The change is committed either way.
    pub async fn committed(&self, version: u64, wait: Duration) -> bool {
        self.trigger();
        if !self.healthy() {
            return self.published_version() >= version;
        }
        let mut rx = self.inner.published.subscribe();
        let published = async { rx.wait_for(|v| *v >= version).await.is_ok() };
        tokio::time::timeout(wait, published).await.unwrap_or(false)
    }

    /// Runs until `cancel`: publishes at once, then on every trigger, every
    /// `retry` while failing and every `resync` otherwise.
    pub fn spawn(&self, cancel: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let inner = &this.inner;
            let failures = fam::PUBLICATION_FAILURES.series(&inner.recorder, &NoLabels);
            // Until Redis has answered once, a newer version there means
            // this database was reset: move past it instead of failing.
            let mut reconciled = false;
            let mut first = true;
            loop {
                let wait = match this.publish_once(first, &mut reconciled).await {
                    Ok(outcome) => {
                        if !inner.healthy.swap(true, Relaxed) {
                            tracing::info!(?outcome, "config publication to redis is healthy");
                        } else if let Outcome::Published(v) = outcome {
                            tracing::debug!(version = v, "config published");
                        }
                        first = false;
                        inner.resync
                    }
                    Err(e) => {
                        failures.inc();
                        if inner.healthy.swap(false, Relaxed) || first {
                            tracing::warn!(error = %e, "config publication failed; retrying in the background");
                        } else {
                            tracing::debug!(error = %e, "config publication still failing");
                        }
                        first = false;
                        inner.retry
                    }
                };
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = inner.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// One attempt to bring Redis up to the committed version.
    /// `full` builds and offers the snapshot even if Redis looks current
    /// (so the entity gauges get set after a restart).
    pub async fn publish_once(
        &self,
        full: bool,
        reconciled: &mut bool,
    ) -> Result<Outcome, PublishError> {
        let inner = &self.inner;
        let mut conn = inner.redis.get().await?;
        if !full {
            let ours = inner.store.version().await?;
            let (theirs, exists): (Option<u64>, bool) = redis::pipe()
                .get(keys::CONFIG_VERSION)
                .exists(keys::CONFIG_SNAPSHOT)
                .query_async(&mut conn)
                .await?;
            if exists && theirs == Some(ours) {
                *reconciled = true;
                self.mark_published(ours);
                return Ok(Outcome::UpToDate(ours));
            }
        }
        // At most two rounds: a refusal either fails or raises our version once.
        loop {
            let snap = inner.store.snapshot(now_ms()).await?;
            let r = aigw_snapshot::publish(&mut conn, &snap).await?;
            match r {
                Published::Written => {
                    *reconciled = true;
                    let rec = &inner.recorder;
                    fam::PUBLICATIONS.add(rec, &NoLabels, 1);
                    fam::LAST_PUBLICATION.raise(rec, &NoLabels, now_ms());
                    self.record_state(&snap);
                    self.mark_published(snap.version);
                    return Ok(Outcome::Published(snap.version));
                }
                Published::AlreadyThere => {
                    *reconciled = true;
                    self.record_state(&snap);
                    self.mark_published(snap.version);
                    return Ok(Outcome::UpToDate(snap.version));
                }
                Published::Refused { current: theirs } => {
                    if *reconciled {
                        return Err(PublishError::Newer {
                            redis: theirs,
                            ours: snap.version,
                        });
                    }
                    *reconciled = true;
                    let v = inner.store.raise_version(theirs + 1).await?;
                    tracing::warn!(
                        redis_version = theirs,
                        new_version = v,
                        "redis held a newer config version than the database (was the database reset?); continuing after it"
                    );
                }
            }
        }
    }

    fn mark_published(&self, v: u64) {
        self.inner.published.send_if_modified(|cur| {
            if v > *cur {
                *cur = v;
                true
            } else {
                false
            }
        });
    }

    fn record_state(&self, snap: &ConfigSnapshot) {
        let rec = &self.inner.recorder;
        fam::SNAPSHOT_VERSION.set(rec, &NoLabels, snap.version as i64);
        let active_keys = snap.api_keys.iter().filter(|k| !k.revoked).count();
        for (kind, n) in [
            ("namespaces", snap.namespaces.len()),
            ("api_keys", active_keys),
            ("models", snap.models.len()),
            ("instances", snap.instances.len()),
        ] {
            fam::ENTITIES.set(rec, &fam::EntityKind { kind }, n as i64);
        }
    }
}
