//! Keeps the routing table current: loads `config:snapshot` at start, again
//! on every `config:updates` notification (pub/sub on a dedicated
//! connection, resubscribed after an outage) and whenever a slow poll of
//! `config:version` finds a version other than the loaded one (a missed
//! notification). While Redis is unreachable the last good table stays in
//! use; a snapshot that does not parse is logged and ignored.

use crate::routing::RoutingStore;
use aigw_metrics::keys::{CONFIG_CHANNEL, CONFIG_SNAPSHOT, CONFIG_VERSION};
use aigw_metrics::RedisConn;
use aigw_types::ConfigSnapshot;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const REDIS_TIMEOUT: Duration = Duration::from_secs(3);

/// Fetches the snapshot and applies it if its version differs from the
/// loaded one. Returns the loaded version.
pub async fn reload(store: &RoutingStore, redis: &RedisConn) -> anyhow::Result<Option<u64>> {
    let fetch = async {
        let mut conn = redis.get().await?;
        redis::cmd("GET")
            .arg(CONFIG_SNAPSHOT)
            .query_async::<Option<String>>(&mut conn)
            .await
    };
    let raw = tokio::time::timeout(REDIS_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("reading {CONFIG_SNAPSHOT} timed out"))??;
    let Some(raw) = raw else {
        return Ok(store.version());
    };
    let snap: ConfigSnapshot = serde_json::from_str(&raw)
        .map_err(|e| anyhow::anyhow!("{CONFIG_SNAPSHOT} is not a valid snapshot: {e}"))?;
    if store.version() != Some(snap.version) {
        store.apply(&snap);
        tracing::info!(
            version = snap.version,
            namespaces = snap.namespaces.len(),
            keys = snap.api_keys.len(),
            instances = snap.instances.len(),
            "routing configuration loaded"
        );
    }
    Ok(Some(snap.version))
}

async fn poll_version(store: &RoutingStore, redis: &RedisConn) -> anyhow::Result<()> {
    let fetch = async {
        let mut conn = redis.get().await?;
        redis::cmd("GET")
            .arg(CONFIG_VERSION)
            .query_async::<Option<u64>>(&mut conn)
            .await
    };
    let v = tokio::time::timeout(REDIS_TIMEOUT, fetch)
        .await
        .map_err(|_| anyhow::anyhow!("reading {CONFIG_VERSION} timed out"))??;
    if (v.is_some() && v != store.version()) || store.version().is_none() {
        reload(store, redis).await?;
    }
    Ok(())
}

/// Runs until `cancel` fires.
pub async fn watch(
    store: Arc<RoutingStore>,
    redis: RedisConn,
    poll_interval: Duration,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut warned = false;
    loop {
        let subscribed = async {
            let mut ps = tokio::time::timeout(REDIS_TIMEOUT, redis.client().get_async_pubsub())
                .await
                .map_err(|_| anyhow::anyhow!("pub/sub connect timed out"))??;
            tokio::time::timeout(REDIS_TIMEOUT, ps.subscribe(CONFIG_CHANNEL))
                .await
                .map_err(|_| anyhow::anyhow!("subscribe timed out"))??;
            anyhow::Ok(ps)
        };
        let ps = tokio::select! {
            _ = cancel.cancelled() => return,
            r = subscribed => r,
        };
        match ps {
            Ok(ps) => {
                if warned {
                    tracing::info!("config notifications resubscribed");
                }
                backoff = Duration::from_millis(100);
                // Anything published while we were not listening.
                if let Err(e) = reload(&store, &redis).await {
                    tracing::warn!(error = %e, "could not load routing configuration");
                }
                let mut messages = ps.into_on_message();
                let mut tick = tokio::time::interval(poll_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        m = messages.next() => match m {
                            Some(_) => {
                                if let Err(e) = reload(&store, &redis).await {
                                    tracing::warn!(error = %e, "could not load routing configuration");
                                }
                            }
                            None => {
                                tracing::warn!("config notification connection lost; keeping the last configuration");
                                warned = true;
                                break;
                            }
                        },
                        _ = tick.tick() => {
                            if let Err(e) = poll_version(&store, &redis).await {
                                tracing::debug!(error = %e, "config version poll failed");
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "cannot subscribe to config notifications; retrying");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
