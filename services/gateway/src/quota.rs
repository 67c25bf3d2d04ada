//! Local slices of a namespace's RPM and TPM windows.
//!
//! Each replica reserves a slice of the current window in Redis with one
//! script call (it is counted in the window like requests or tokens that
//! happened) and spends it locally with an atomic: a request of a
//! namespace whose slice is not used up never waits on Redis. A request
//! that finds the slice used up makes one script call that settles the old
//! slice and reserves the next one (or refuses, with the time until the
//! window has room). Every [`SLICE_LIFETIME`] the background task settles
//! each slice: the unused part is given back to the second it was
//! reserved in, and a new slice the size of what was spent is reserved
//! ahead of need (none when nothing was spent, or when slices are 1).
//!
//! A slice is at most `limit / SLICE_SHARE` (at least 1): a replica never
//! holds more than that of a window it does not use. The first slice is 1;
//! a slice used up before its end is followed by one twice its size.
//!
//! RPM slices count requests: the request takes one unit. TPM slices count
//! tokens, known only after a request ends: a request is let through while
//! the slice has tokens left, the tokens it used are taken from the slice
//! afterwards (it may go below zero), and the next settlement adds what
//! went past the slice to the window's current second.

use aigw_metrics::RedisHandle;
use redis::Script;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// How long a slice is spent before it is settled.
pub const SLICE_LIFETIME: Duration = Duration::from_secs(1);
/// A slice is at most the limit divided by this.
pub const SLICE_SHARE: u64 = 16;
/// Tokens one request can take from a slice: larger counts (a broken
/// upstream's) saturate here, which keeps every sum an exact integer in
/// Redis' Lua.
const MAX_TOKENS_PER_REQUEST: u64 = 1 << 40;

/// KEYS: one window hash (one field per second, sliding 60 s). ARGV: limit,
/// slice wanted, settlement (units to give back when negative, to add now
/// when positive), the second the settled slice was reserved in, the code
/// to answer when the window is full. Returns {0, second, granted} or
/// {code, retry_after, 0}. One key per call: runs on a Redis Cluster.
static LEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(redis.call('TIME')[1])
local lo = now - 59
local h = redis.call('HGETALL', KEYS[1])
local used, oldest = 0, now
local settle = tonumber(ARGV[3])
local at = ARGV[4]
for i = 1, #h, 2 do
  local s = tonumber(h[i])
  if s < lo then
    redis.call('HDEL', KEYS[1], h[i])
  else
    used = used + tonumber(h[i + 1])
    if s < oldest then oldest = s end
  end
end
if settle < 0 then
  if redis.call('HEXISTS', KEYS[1], at) == 1 then
    redis.call('HINCRBY', KEYS[1], at, settle)
    used = used + settle
  end
elseif settle > 0 then
  redis.call('HINCRBY', KEYS[1], now, settle)
  redis.call('EXPIRE', KEYS[1], 61)
  used = used + settle
end
local want = tonumber(ARGV[2])
if want == 0 then return {0, now, 0} end
local limit = tonumber(ARGV[1])
if used >= limit then return {tonumber(ARGV[5]), oldest + 60 - now, 0} end
local grant = math.min(want, limit - used)
redis.call('HINCRBY', KEYS[1], now, grant)
redis.call('EXPIRE', KEYS[1], 61)
return {0, now, grant}
"#,
    )
});

/// What a slice counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

/// Why a refill was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refill {
    /// A request found the slice used up.
    Request,
    /// The slice's lifetime ended: settle, reserve what was spent.
    Roll,
    /// Shutdown: settle, reserve nothing.
    Return,
}

/// The answer of a refill: the window is full, retry after this many
/// seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub retry_after_s: u64,
}

/// One namespace's slice of one window in this replica.
pub struct Slice {
    kind: Kind,
    /// Units left: requests not yet taken, or tokens not yet used (below
    /// zero when used past the slice).
    left: AtomicI64,
    state: tokio::sync::Mutex<SliceState>,
}

#[derive(Default)]
struct SliceState {
    granted: i64,
    /// The Redis second the slice was reserved in.
    second: i64,
    since: Option<Instant>,
}

impl Slice {
    pub fn new(kind: Kind) -> Self {
        Slice {
            kind,
            left: AtomicI64::new(0),
            state: tokio::sync::Mutex::new(SliceState::default()),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Takes a request from the slice, or tells that a refill is needed.
    pub fn try_take(&self) -> bool {
        match self.kind {
            Kind::Requests => self.left.fetch_sub(1, Relaxed) > 0,
            Kind::Tokens => self.left.load(Relaxed) > 0,
        }
    }

    /// Tokens a request used (TPM slices).
    pub fn spend(&self, units: u64) {
        self.left
            .fetch_sub(units.min(MAX_TOKENS_PER_REQUEST) as i64, Relaxed);
    }

    /// The request path's refill: one script call at most, made by one
    /// request at a time (the others wait for it and then spend the new
    /// slice). `Ok(Ok(()))`: the request may go; `Ok(Err(full))`: refused.
    pub async fn admit(
        &self,
        conn: &mut RedisHandle,
        key: &str,
        limit: u64,
        timeout: Duration,
    ) -> redis::RedisResult<Result<(), Full>> {
        if self.try_take() {
            return Ok(Ok(()));
        }
        let mut st = self.state.lock().await;
        if self.try_take() {
            return Ok(Ok(()));
        }
        self.refill(&mut st, conn, key, limit, Refill::Request, timeout)
            .await
    }

    /// Settles a slice whose lifetime ended (or every slice, with
    /// [`Refill::Return`]). Skipped while a request refills it.
    pub async fn settle(
        &self,
        conn: &mut RedisHandle,
        key: &str,
        limit: u64,
        how: Refill,
        timeout: Duration,
    ) -> redis::RedisResult<()> {
        let Ok(mut st) = self.state.try_lock() else {
            return Ok(());
        };
        let due = match st.since {
            Some(t) => how == Refill::Return || t.elapsed() >= SLICE_LIFETIME,
            None => self.kind == Kind::Tokens && self.left.load(Relaxed) < 0,
        };
        if !due {
            return Ok(());
        }
        self.refill(&mut st, conn, key, limit, how, timeout)
            .await
            .map(|_| ())
    }

    async fn refill(
        &self,
        st: &mut SliceState,
        conn: &mut RedisHandle,
        key: &str,
        limit: u64,
        how: Refill,
        timeout: Duration,
    ) -> redis::RedisResult<Result<(), Full>> {
        let old = self.left.swap(0, Relaxed);
        // Give back what is unused; a TPM slice used past its end adds the
        // excess.
        let (settle, spent) = match self.kind {
            Kind::Requests => (-old.max(0), st.granted - old.max(0)),
            Kind::Tokens => (-old, st.granted - old),
        };
        let cap = (limit / SLICE_SHARE).clamp(1, i64::MAX as u64) as i64;
        let want = match how {
            Refill::Request if old <= 0 => st.granted.saturating_mul(2).max(1),
            Refill::Request => spent.max(1),
            // Ahead of need only when slices can be larger than the
            // request's own unit: with slices of 1 the fleet admits
            // exactly up to the limit, in any order.
            Refill::Roll if cap > 1 => spent.max(0),
            Refill::Roll => 0,
            Refill::Return => 0,
        }
        .min(cap);
        let refused = match self.kind {
            Kind::Requests => 1,
            Kind::Tokens => 2,
        };
        let mut invocation = LEASE_SCRIPT.key(key);
        invocation
            .arg(limit)
            .arg(want)
            .arg(settle)
            .arg(st.second)
            .arg(refused);
        let call = invocation.invoke_async::<(i64, i64, i64)>(conn);
        let (code, at, granted) = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.restore(old);
                return Err(e);
            }
            Err(_) => {
                self.restore(old);
                return Err(timed_out());
            }
        };
        if code != 0 {
            *st = SliceState::default();
            return Ok(Err(Full {
                retry_after_s: at.max(1) as u64,
            }));
        }
        st.granted = granted;
        st.second = at;
        st.since = (granted > 0).then(Instant::now);
        match self.kind {
            // The request that refilled takes the first unit.
            Kind::Requests if how == Refill::Request => self.left.store(granted - 1, Relaxed),
            Kind::Requests => self.left.store(granted, Relaxed),
            Kind::Tokens => {
                self.left.fetch_add(granted, Relaxed);
            }
        }
        if how == Refill::Request && granted == 0 {
            return Ok(Err(Full { retry_after_s: 1 }));
        }
        Ok(Ok(()))
    }

    /// Puts back what a failed refill took out (the slice stays reserved).
    fn restore(&self, old: i64) {
        match self.kind {
            Kind::Requests => self.left.store(old.max(0), Relaxed),
            Kind::Tokens => {
                self.left.fetch_add(old, Relaxed);
            }
        }
    }
}

/// The error of a Redis call that did not answer in time.
pub(crate) fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "timeout"))
}
