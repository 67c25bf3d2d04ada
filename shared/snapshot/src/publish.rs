//! The one way a snapshot is written to Redis.

use aigw_metrics::keys;
use aigw_types::ConfigSnapshot;
use redis::Script;
use std::sync::LazyLock;

/// KEYS: snapshot, version. ARGV: version, snapshot JSON, channel.
/// Returns 1 when written (and published), 0 when that version is already
/// there, or `-current` when Redis holds a newer version.
static PUBLISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local v = tonumber(ARGV[1])
if v < cur then return -cur end
if v == cur and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"#,
    )
});

/// What [`publish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Written, and its version announced on `config:updates`.
    Written,
    /// Redis already held this version; nothing changed.
    AlreadyThere,
    /// Redis holds a newer version (`current`); nothing changed.
    Refused { current: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("encoding the snapshot: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Writes `snap` as `config:snapshot` + `config:version` in one script that
/// refuses to go backwards, and announces the version on `config:updates`.
/// Readers never see a half-written snapshot.
pub async fn publish<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    snap: &ConfigSnapshot,
) -> Result<Published, PublishError> {
    let json = serde_json::to_string(snap)?;
    let r: i64 = PUBLISH_SCRIPT
        .key(keys::CONFIG_SNAPSHOT)
        .key(keys::CONFIG_VERSION)
        .arg(snap.version)
        .arg(json)
        .arg(keys::CONFIG_CHANNEL)
        .invoke_async(conn)
        .await?;
    Ok(match r {
        1 => Published::Written,
        0 => Published::AlreadyThere,
        neg => Published::Refused {
            current: neg.unsigned_abs(),
        },
    })
}
