//! The one way a snapshot is written to Redis.

use aigw_metrics::{keys, Placement};
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

/// On a Redis Cluster `config:snapshot` and `config:version` live in
/// different slots, so the snapshot is written first by a script of its own
/// that compares with the version inside the stored snapshot, then
/// `config:version` is raised to it ([`RAISE_VERSION_SCRIPT`]) and the
/// version announced. KEYS: snapshot. ARGV: version, snapshot JSON.
/// Returns as [`PUBLISH_SCRIPT`].
static CLUSTER_SNAPSHOT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local raw = redis.call('GET', KEYS[1])
local cur = 0
if raw then
  local ok, old = pcall(cjson.decode, raw)
  if ok and type(old) == 'table' and tonumber(old.version) then cur = tonumber(old.version) end
end
local v = tonumber(ARGV[1])
if v < cur then return -cur end
if v == cur and raw then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#,
    )
});

/// KEYS: version. ARGV: version. Raises the key to it, never lowers it.
static RAISE_VERSION_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[1])
end
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
/// Readers never see a half-written snapshot. On a Redis Cluster the
/// snapshot is written first and `config:version` follows (a reader may
/// for a moment find the version behind the snapshot, never ahead of it).
pub async fn publish<C: Placement>(
    conn: &mut C,
    snap: &ConfigSnapshot,
) -> Result<Published, PublishError> {
    let json = serde_json::to_string(snap)?;
    if conn.clustered() {
        let r: i64 = CLUSTER_SNAPSHOT_SCRIPT
            .key(keys::CONFIG_SNAPSHOT)
            .arg(snap.version)
            .arg(json)
            .invoke_async(conn)
            .await?;
        if r >= 0 {
            let _: i64 = RAISE_VERSION_SCRIPT
                .key(keys::CONFIG_VERSION)
                .arg(snap.version)
                .invoke_async(conn)
                .await?;
        }
        if r == 1 {
            let _: i64 = redis::cmd("PUBLISH")
                .arg(keys::CONFIG_CHANNEL)
                .arg(snap.version)
                .query_async(conn)
                .await?;
        }
        return Ok(outcome(r));
    }
    let r: i64 = PUBLISH_SCRIPT
        .key(keys::CONFIG_SNAPSHOT)
        .key(keys::CONFIG_VERSION)
        .arg(snap.version)
        .arg(json)
        .arg(keys::CONFIG_CHANNEL)
        .invoke_async(conn)
        .await?;
    Ok(outcome(r))
}

fn outcome(r: i64) -> Published {
    match r {
        1 => Published::Written,
        0 => Published::AlreadyThere,
        neg => Published::Refused {
            current: neg.unsigned_abs(),
        },
    }
}
