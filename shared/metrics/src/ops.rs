//! Redis write operations encoded for the apply scripts, and the two scripts
//! that make writes exactly-once: one keyed by a flush id (the batched
//! writer), one keyed by record id (consumers of at-least-once streams).

use crate::conn::Placement;
use crate::family::{bucket_field, Family, Kind};
use crate::keys;
use crate::metric::{Counter, Gauge, Histogram, LabelSet, MaxGauge, SetGauge};
use crate::slots::{in_slot, key_slot};
use redis::{Cmd, ErrorKind, FromRedisValue, Script, ToRedisArgs};
use std::borrow::Cow;
use std::sync::LazyLock;

/// One call of a script with a single key, each argument copied once,
/// straight into the command. `redis::ScriptInvocation` copies every
/// argument into lists of its own and then again into the command it sends:
/// for a flush of 4,096 usage records, or the token-service's batch of
/// them, megabytes copied twice more per call (into freshly mapped memory,
/// as allocations that large are returned to the system between calls).
struct ScriptCall<'s> {
    script: &'s Script,
    cmd: Cmd,
}

impl<'s> ScriptCall<'s> {
    /// `args` and `bytes`: how many arguments will follow the key, and
    /// about how long they are together (the command's capacity).
    fn new(script: &'s Script, key: &str, args: usize, bytes: usize) -> Self {
        let mut cmd = Cmd::with_capacity(args + 4, bytes + key.len() + 64);
        cmd.arg("EVALSHA").arg(script.get_hash()).arg(1).arg(key);
        ScriptCall { script, cmd }
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    /// Sends the call; a server that does not know the script yet (a
    /// restart, `SCRIPT FLUSH`, a failover) gets it loaded and the same
    /// call again, as `ScriptInvocation` does.
    async fn invoke<T: FromRedisValue, C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<T> {
        match self.cmd.query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                self.script.load_async(conn).await?;
                self.cmd.query_async(conn).await
            }
            result => result,
        }
    }
}

/// A list of writes, applied atomically by one script call.
#[derive(Debug, Default, Clone)]
pub struct Ops {
    pub(crate) args: Vec<String>,
    pub(crate) count: usize,
}

/// Ops of [`OnceBatch::merged`], in [`Ops`]' encoding, their strings
/// borrowed from the batch where they are copied unchanged.
#[derive(Debug, Default)]
struct Merged<'a> {
    args: Vec<Cow<'a, str>>,
    count: usize,
}

impl<'a> Merged<'a> {
    fn push<const N: usize>(&mut self, parts: [Cow<'a, str>; N]) {
        self.args.extend(parts);
        self.count += 1;
    }

    /// Bytes of the arguments.
    fn bytes(&self) -> usize {
        self.args.iter().map(|a| a.len()).sum()
    }
}

/// Histogram changes: per-bucket counts (same order as the family's bounds,
/// plus one for `+Inf`), sum and count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistDelta {
    pub buckets: Vec<u64>,
    pub sum: u64,
    pub count: u64,
}

impl HistDelta {
    pub fn new(bounds: &[u64]) -> Self {
        HistDelta {
            buckets: vec![0; bounds.len() + 1],
            sum: 0,
            count: 0,
        }
    }

    /// Records one observation of `v`.
    pub fn observe(&mut self, bounds: &[u64], v: u64) {
        let i = bucket_index(bounds, v);
        self.buckets[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

/// The bucket an observation falls into (`bounds.len()` is `+Inf`).
pub fn bucket_index(bounds: &[u64], v: u64) -> usize {
    bounds.partition_point(|&b| b < v)
}

impl Ops {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Bytes of the encoded operations' arguments.
    fn bytes(&self) -> usize {
        self.args.iter().map(String::len).sum()
    }

    /// Appends the ops of `other`, after these.
    pub fn extend(&mut self, other: Ops) {
        self.args.extend(other.args);
        self.count += other.count;
    }

    fn push(&mut self, parts: &[&str]) {
        self.args.extend(parts.iter().map(|s| s.to_string()));
        self.count += 1;
    }

    pub fn incr(&mut self, key: &str, by: i64) {
        self.push(&["c", key, &by.to_string()]);
    }
    pub fn hincr(&mut self, key: &str, field: &str, by: i64) {
        self.push(&["h", key, field, &by.to_string()]);
    }
    pub fn set_max(&mut self, key: &str, v: i64) {
        self.push(&["x", key, &v.to_string()]);
    }
    pub fn set(&mut self, key: &str, v: i64) {
        self.push(&["s", key, &v.to_string()]);
    }
    pub fn sadd(&mut self, key: &str, member: &str) {
        self.push(&["i", key, member]);
    }
    /// This replica's absolute value of a per-replica gauge.
    pub fn replica_gauge(&mut self, key: &str, replica: &str, v: i64) {
        self.push(&["g", key, replica, &v.to_string()]);
    }
    /// Appends a stream entry with one field (a `String` payload is moved
    /// in, not copied).
    pub fn xadd(&mut self, stream: &str, field: &str, payload: impl Into<String>) {
        self.args.extend([
            "a".to_string(),
            stream.to_string(),
            field.to_string(),
            payload.into(),
        ]);
        self.count += 1;
    }

    fn index(&mut self, family: &Family, labels: &[&str]) {
        if family.is_indexed() {
            self.sadd(&keys::index(family.name), &Family::index_member(labels));
        }
    }

    /// Adds `by` to a counter series (and names it in the family's index).
    pub fn counter<L: LabelSet>(&mut self, m: &Counter<L>, labels: &L::Values<'_>, by: i64) {
        self.family_counter(m.family(), &L::values(labels), by);
    }

    /// Sets a last-writer-wins series.
    pub fn value<L: LabelSet>(&mut self, m: &SetGauge<L>, labels: &L::Values<'_>, v: i64) {
        self.family_value(m.family(), &L::values(labels), v);
    }

    /// Raises a max series to at least `v`.
    pub fn max<L: LabelSet>(&mut self, m: &MaxGauge<L>, labels: &L::Values<'_>, v: i64) {
        self.family_max(m.family(), &L::values(labels), v);
    }

    /// Applies histogram changes to a histogram series.
    pub fn histogram<L: LabelSet>(
        &mut self,
        m: &Histogram<L>,
        labels: &L::Values<'_>,
        d: &HistDelta,
    ) {
        self.family_histogram(m.family(), &L::values(labels), d);
    }

    /// Records one observation in a histogram series.
    pub fn observe<L: LabelSet>(&mut self, m: &Histogram<L>, labels: &L::Values<'_>, v: u64) {
        if let Kind::Histogram(bounds) = m.family().kind {
            let mut d = HistDelta::new(bounds);
            d.observe(bounds, v);
            self.family_histogram(m.family(), &L::values(labels), &d);
        }
    }

    /// This replica's value of a per-replica gauge series.
    pub fn gauge<L: LabelSet>(
        &mut self,
        m: &Gauge<L>,
        labels: &L::Values<'_>,
        replica: &str,
        v: i64,
    ) {
        self.family_gauge(m.family(), &L::values(labels), replica, v);
    }

    pub(crate) fn family_counter(&mut self, family: &Family, labels: &[&str], by: i64) {
        self.incr(&family.key_for(labels), by);
        self.index(family, labels);
    }

    pub(crate) fn family_value(&mut self, family: &Family, labels: &[&str], v: i64) {
        self.set(&family.key_for(labels), v);
        self.index(family, labels);
    }

    pub(crate) fn family_max(&mut self, family: &Family, labels: &[&str], v: i64) {
        self.set_max(&family.key_for(labels), v);
        self.index(family, labels);
    }

    pub(crate) fn family_histogram(&mut self, family: &Family, labels: &[&str], d: &HistDelta) {
        let Kind::Histogram(bounds) = family.kind else {
            return;
        };
        if d.count == 0 {
            return;
        }
        let key = family.key_for(labels);
        for (i, n) in d.buckets.iter().enumerate() {
            if *n > 0 {
                self.hincr(&key, &bucket_field(bounds.get(i).copied()), *n as i64);
            }
        }
        self.hincr(&key, "sum", d.sum as i64);
        self.hincr(&key, "count", d.count as i64);
        self.index(family, labels);
    }

    pub(crate) fn family_gauge(&mut self, family: &Family, labels: &[&str], replica: &str, v: i64) {
        self.replica_gauge(&family.key_for(labels), replica, v);
        self.index(family, labels);
    }
}

/// The name of the hash of per-replica values of gauge key `k`
/// ([`keys::gauge_replicas`]): in the slot of `k`.
const RKEY_FN: &str = r#"
local function rkey(k)
  local o = string.find(k, '{', 1, true)
  if o then
    local c = string.find(k, '}', o + 1, true)
    if c and c > o + 1 then return k .. ':replicas' end
  end
  return '{' .. k .. '}:replicas'
end
"#;

/// The flush script's Lua body: applies ops from ARGV starting at index `i`,
/// `n` of them, one command each (a flush's ops are already merged per key
/// in process); returns the next index. A per-replica gauge is also named
/// in the `metrics:gauges` / `metrics:replicas` sets when `register` is
/// true (on a cluster those sets live in other slots and are written
/// apart, [`register_and_recompute`]).
const APPLY_FN: &str = r#"
local function apply(i, n)
  for _ = 1, n do
    local op = ARGV[i]
    if op == 'c' then
      redis.call('INCRBY', ARGV[i+1], ARGV[i+2]); i = i + 3
    elseif op == 'h' then
      redis.call('HINCRBY', ARGV[i+1], ARGV[i+2], ARGV[i+3]); i = i + 4
    elseif op == 'x' then
      local cur = tonumber(redis.call('GET', ARGV[i+1]) or '-1')
      if tonumber(ARGV[i+2]) > cur then redis.call('SET', ARGV[i+1], ARGV[i+2]) end
      i = i + 3
    elseif op == 's' then
      redis.call('SET', ARGV[i+1], ARGV[i+2]); i = i + 3
    elseif op == 'i' then
      redis.call('SADD', ARGV[i+1], ARGV[i+2]); i = i + 3
    elseif op == 'g' then
      redis.call('HSET', rkey(ARGV[i+1]), ARGV[i+2], ARGV[i+3])
      if register then
        redis.call('SADD', 'metrics:gauges', ARGV[i+1])
        redis.call('SADD', 'metrics:replicas', ARGV[i+2])
      end
      i = i + 4
    elseif op == 'a' then
      redis.call('XADD', ARGV[i+1], '*', ARGV[i+2], ARGV[i+3]); i = i + 4
    else
      return redis.error_reply('unknown op ' .. tostring(op))
    end
  end
  return i
end
"#;

/// Recomputes every per-replica gauge from live replicas and drops the
/// contributions of replicas whose heartbeat expired.
const RECOMPUTE_FN: &str = r#"
local function recompute()
  local live = {}
  for _, r in ipairs(redis.call('SMEMBERS', 'metrics:replicas')) do
    live[r] = redis.call('EXISTS', 'metrics:replica:' .. r) == 1
  end
  for _, g in ipairs(redis.call('SMEMBERS', 'metrics:gauges')) do
    local h = redis.call('HGETALL', rkey(g))
    local sum = 0
    for j = 1, #h, 2 do
      if live[h[j]] then sum = sum + tonumber(h[j+1]) else redis.call('HDEL', rkey(g), h[j]) end
    end
    redis.call('SET', g, sum)
  end
  for r, alive in pairs(live) do
    if not alive then redis.call('SREM', 'metrics:replicas', r) end
  end
end
"#;

/// KEYS[1] flush marker. ARGV: marker ttl s, replica, heartbeat ttl ms (0 = none),
/// op count, ops... Returns 1 when applied now, 0 when it had been applied before.
static FLUSH_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"local register = true
{RKEY_FN}{APPLY_FN}{RECOMPUTE_FN}
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return 0
end
local hb = tonumber(ARGV[3])
if hb > 0 then redis.call('SET', 'metrics:replica:' .. ARGV[2], '1', 'PX', hb) end
if hb < 0 then redis.call('DEL', 'metrics:replica:' .. ARGV[2]) end
apply(5, tonumber(ARGV[4]))
recompute()
return 1
"#
    ))
});

/// ARGV: marker ttl s, record count, then per record: marker key, op count, ops...
/// Returns one flag per record: 1 when applied now, 0 when it had been
/// applied before.
///
/// Records whose marker is new are not written op by op: their ops are
/// first merged in Lua tables, then each key is written once — `INCRBY` of
/// the summed deltas per counter key, `HINCRBY` per hash field, one `SADD`
/// per set with its distinct members, and for `SET` / set-if-greater keys the
/// value the ops would have left, in record order (an `x` after an `s` on one
/// key compares with the value set). Per-replica gauges and stream appends are
/// applied as they come, in record order. Sums are kept exact: an increment
/// that would take a sum to 2^53 or beyond (where Lua numbers lose integer
/// precision) is written by itself instead. Zero sums are still written, so
/// a series' key exists once any record named it, as when ops were applied
/// one by one.
///
/// The merge reorders ops of different kinds; this is exact because a key is
/// only ever written by one kind of op (a family has one kind).
static ONCE_SCRIPT: LazyLock<Script> = LazyLock::new(|| once_script(true));
/// [`ONCE_SCRIPT`] for one slot of a cluster: gauges are not registered.
static ONCE_SLOT_SCRIPT: LazyLock<Script> = LazyLock::new(|| once_script(false));

fn once_script(register: bool) -> Script {
    Script::new(&format!(
        "local register = {register}\n{RKEY_FN}{ONCE_BODY}"
    ))
}

const ONCE_BODY: &str = r#"
local ttl = ARGV[1]
local WIDTH = {c = 3, h = 4, x = 3, s = 3, i = 3, g = 4, a = 4}
local EXACT = 9007199254740992
local incr, hincr, members, values = {}, {}, {}, {}
-- Adds v to t[k] when the sum stays an exact integer; false otherwise.
local function add(t, k, v)
  local d = tonumber(v)
  local s = (t[k] or 0) + d
  if math.abs(d) < EXACT and math.abs(s) < EXACT then
    t[k] = s
    return true
  end
  return false
end
local i = 3
local flags = {}
for _ = 1, tonumber(ARGV[2]) do
  local new = redis.call('SET', ARGV[i], '1', 'NX', 'EX', ttl)
  local n = tonumber(ARGV[i+1])
  i = i + 2
  flags[#flags + 1] = new and 1 or 0
  for _ = 1, n do
    local op, k = ARGV[i], ARGV[i+1]
    local w = WIDTH[op]
    if w == nil then return redis.error_reply('unknown op ' .. tostring(op)) end
    if new then
      if op == 'c' then
        if not add(incr, k, ARGV[i+2]) then redis.call('INCRBY', k, ARGV[i+2]) end
      elseif op == 'h' then
        local f = hincr[k]
        if f == nil then f = {}; hincr[k] = f end
        if not add(f, ARGV[i+2], ARGV[i+3]) then redis.call('HINCRBY', k, ARGV[i+2], ARGV[i+3]) end
      elseif op == 'i' then
        local m = members[k]
        if m == nil then m = {}; members[k] = m end
        m[ARGV[i+2]] = true
      elseif op == 's' then
        values[k] = {set = true, v = ARGV[i+2], n = tonumber(ARGV[i+2])}
      elseif op == 'x' then
        local v, e = tonumber(ARGV[i+2]), values[k]
        if e == nil then
          values[k] = {set = false, v = ARGV[i+2], n = v}
        elseif v > e.n then
          e.v = ARGV[i+2]; e.n = v
        end
      elseif op == 'g' then
        redis.call('HSET', rkey(k), ARGV[i+2], ARGV[i+3])
        if register then
          redis.call('SADD', 'metrics:gauges', k)
          redis.call('SADD', 'metrics:replicas', ARGV[i+2])
        end
      else
        redis.call('XADD', k, '*', ARGV[i+2], ARGV[i+3])
      end
    end
    i = i + w
  end
end
for k, s in pairs(incr) do redis.call('INCRBY', k, string.format('%.0f', s)) end
for k, f in pairs(hincr) do
  for field, s in pairs(f) do redis.call('HINCRBY', k, field, string.format('%.0f', s)) end
end
for k, m in pairs(members) do
  local chunk = {}
  for member in pairs(m) do
    chunk[#chunk + 1] = member
    if #chunk == 1000 then redis.call('SADD', k, unpack(chunk)); chunk = {} end
  end
  if #chunk > 0 then redis.call('SADD', k, unpack(chunk)) end
end
for k, e in pairs(values) do
  if e.set or e.n > tonumber(redis.call('GET', k) or '-1') then redis.call('SET', k, e.v) end
end
return flags
"#;

/// The common case of a once-batch, where no record was applied before.
/// ARGV: marker ttl s, marker count, markers..., op count, ops (already
/// merged over the batch, see [`OnceBatch::merged`]). Sets every marker with
/// `SET NX`; if one existed, deletes those it set, writes nothing and returns
/// 0 (the caller then uses [`ONCE_SCRIPT`], which skips the duplicates);
/// otherwise applies the ops and returns 1.
static ONCE_FAST_SCRIPT: LazyLock<Script> = LazyLock::new(|| once_fast_script(true));
/// [`ONCE_FAST_SCRIPT`] for one slot of a cluster: gauges are not registered.
static ONCE_FAST_SLOT_SCRIPT: LazyLock<Script> = LazyLock::new(|| once_fast_script(false));

fn once_fast_script(register: bool) -> Script {
    Script::new(&format!(
        r#"local register = {register}
{RKEY_FN}{APPLY_FN}
local ttl = ARGV[1]
local n = tonumber(ARGV[2])
for j = 1, n do
  if not redis.call('SET', ARGV[2 + j], '1', 'NX', 'EX', ttl) then
    for k = 1, j - 1 do redis.call('DEL', ARGV[2 + k]) end
    return 0
  end
end
apply(4 + n, tonumber(ARGV[3 + n]))
return 1
"#
    ))
}

/// How a flush's liveness signal should change.
#[derive(Debug, Clone, Copy)]
pub enum Heartbeat {
    /// Leave it as is.
    None,
    /// Mark the replica alive for this long.
    Alive(std::time::Duration),
    /// The replica is shutting down: remove its heartbeat.
    Retire,
}

/// One slot's part of a flush on a cluster. KEYS[1] flush marker (in the
/// slot). ARGV: marker ttl s, op count, ops... Returns 1 when applied now,
/// 0 when it had been applied before.
static FLUSH_SLOT_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"local register = false
{RKEY_FN}{APPLY_FN}
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return 0
end
apply(3, tonumber(ARGV[2]))
return 1
"#
    ))
});

/// A per-replica gauge's sum on a cluster. KEYS[1] the gauge key. ARGV: the
/// live replicas. Drops the values of the others and sets the sum.
static GAUGE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{RKEY_FN}
local live = {{}}
for _, r in ipairs(ARGV) do live[r] = true end
local h = redis.call('HGETALL', rkey(KEYS[1]))
local sum = 0
for j = 1, #h, 2 do
  if live[h[j]] then sum = sum + tonumber(h[j+1]) else redis.call('HDEL', rkey(KEYS[1]), h[j]) end
end
redis.call('SET', KEYS[1], sum)
return sum
"#
    ))
});

/// Words per op, by op code.
fn op_width(op: &str) -> Option<usize> {
    match op {
        "c" | "x" | "s" | "i" => Some(3),
        "h" | "g" | "a" => Some(4),
        _ => None,
    }
}

fn unknown_op(op: &str) -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::ClientError,
        "unknown metrics op",
        op.to_string(),
    ))
}

impl Ops {
    /// The ops grouped by the cluster slot of the key each writes (a
    /// per-replica gauge by the gauge key: its hash of replica values lives
    /// in that slot), in their order within each group, groups by slot.
    pub fn by_slot(&self) -> redis::RedisResult<Vec<(u16, Ops)>> {
        let mut groups: std::collections::BTreeMap<u16, Ops> = Default::default();
        let a = &self.args;
        let mut i = 0;
        while i < a.len() {
            let w = op_width(&a[i]).ok_or_else(|| unknown_op(&a[i]))?;
            let part = a.get(i..i + w).ok_or_else(|| unknown_op(&a[i]))?;
            let g = groups.entry(key_slot(part[1].as_bytes())).or_default();
            g.args.extend(part.iter().cloned());
            g.count += 1;
            i += w;
        }
        Ok(groups.into_iter().collect())
    }

    /// The gauge keys of the per-replica gauge ops, and their replicas.
    fn gauges(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut keys, mut replicas) = (Vec::new(), Vec::new());
        let a = &self.args;
        let mut i = 0;
        while i < a.len() {
            let Some(w) = op_width(&a[i]) else { break };
            if a[i] == "g" {
                if let (Some(k), Some(r)) = (a.get(i + 1), a.get(i + 2)) {
                    keys.push(k.as_str());
                    replicas.push(r.as_str());
                }
            }
            i += w;
        }
        keys.sort_unstable();
        keys.dedup();
        replicas.sort_unstable();
        replicas.dedup();
        (keys, replicas)
    }
}

/// On a cluster, after a batch's per-slot groups: names the batch's gauges
/// and replicas in `metrics:gauges` / `metrics:replicas`, and recomputes
/// every per-replica gauge over the live replicas, dropping the others (what
/// the single-server flush script does inside itself). Idempotent: a retry
/// or a concurrent flush of another replica only sets the same sums again.
async fn register_and_recompute<C: Placement>(
    conn: &mut C,
    gauges: &[&str],
    replicas: &[&str],
) -> redis::RedisResult<()> {
    if !gauges.is_empty() {
        let _: () = redis::cmd("SADD")
            .arg(keys::GAUGES)
            .arg(gauges)
            .query_async(conn)
            .await?;
        let _: () = redis::cmd("SADD")
            .arg(keys::REPLICAS)
            .arg(replicas)
            .query_async(conn)
            .await?;
    }
    let known: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::REPLICAS)
        .query_async(conn)
        .await?;
    let mut live = Vec::with_capacity(known.len());
    let mut dead = Vec::new();
    for r in known {
        let alive: bool = redis::cmd("EXISTS")
            .arg(keys::replica_heartbeat(&r))
            .query_async(conn)
            .await?;
        if alive {
            live.push(r);
        } else {
            dead.push(r);
        }
    }
    let all: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys::GAUGES)
        .query_async(conn)
        .await?;
    for g in &all {
        let mut inv = GAUGE_SCRIPT.key(g);
        for r in &live {
            inv.arg(r);
        }
        let _: i64 = inv.invoke_async(conn).await?;
    }
    if !dead.is_empty() {
        let _: () = redis::cmd("SREM")
            .arg(keys::REPLICAS)
            .arg(&dead)
            .query_async(conn)
            .await?;
    }
    Ok(())
}

/// Applies `ops` exactly once under `marker`: if a script with the same
/// marker already ran (e.g. the reply to an earlier attempt was lost), nothing
/// is applied again. Returns whether this call applied it.
///
/// On a single server (or a Sentinel master) that is one script call. On a
/// cluster the ops are split by slot ([`Ops::by_slot`]) and each slot's group
/// is applied by its own script under its own marker,
/// `{marker}:{tag}` with a tag of that slot ([`crate::slots::in_slot`]);
/// a retry of the same batch (same ops, same marker) skips the groups
/// applied before. The heartbeat and the gauge sums follow as separate,
/// idempotent commands ([`register_and_recompute`]). Where a master has
/// replicas, the call returns once they hold the writes or
/// [`crate::conn::REPLICA_WAIT`] passed ([`Placement::confirm`]).
pub async fn apply_flush<C: Placement>(
    conn: &mut C,
    marker: &str,
    marker_ttl_s: u64,
    replica: &str,
    heartbeat: Heartbeat,
    ops: &Ops,
) -> redis::RedisResult<bool> {
    let hb: i64 = match heartbeat {
        Heartbeat::None => 0,
        Heartbeat::Alive(d) => d.as_millis().max(1) as i64,
        Heartbeat::Retire => -1,
    };
    if !conn.clustered() {
        let mut call = ScriptCall::new(&FLUSH_SCRIPT, marker, ops.args.len() + 4, ops.bytes());
        call.arg(marker_ttl_s).arg(replica).arg(hb).arg(ops.count);
        for a in &ops.args {
            call.arg(a);
        }
        let applied: i64 = call.invoke(conn).await?;
        conn.confirm(&[marker]).await?;
        return Ok(applied == 1);
    }
    let beat = keys::replica_heartbeat(replica);
    if hb > 0 {
        let _: () = redis::cmd("SET")
            .arg(&beat)
            .arg(1)
            .arg("PX")
            .arg(hb)
            .query_async(conn)
            .await?;
    }
    let mut applied = false;
    let mut markers = Vec::new();
    for (slot, group) in ops.by_slot()? {
        let m = in_slot(marker, slot);
        let mut call = ScriptCall::new(&FLUSH_SLOT_SCRIPT, &m, group.args.len() + 2, group.bytes());
        call.arg(marker_ttl_s).arg(group.count);
        for a in &group.args {
            call.arg(a);
        }
        let n: i64 = call.invoke(conn).await?;
        applied |= n == 1;
        markers.push(m);
    }
    if hb < 0 {
        let _: () = redis::cmd("DEL").arg(&beat).query_async(conn).await?;
    }
    let (gauges, replicas) = ops.gauges();
    register_and_recompute(conn, &gauges, &replicas).await?;
    let refs: Vec<&str> = markers.iter().map(String::as_str).collect();
    conn.confirm(&refs).await?;
    Ok(applied)
}

/// What a once-batch script call returned.
enum Outcome {
    /// Every distinct record was new.
    AllNew,
    /// The record-by-record script's answer: one 0/1 flag per record.
    Each(redis::Value),
}

/// Writes applied at most once per record id, for consumers of an
/// at-least-once stream: a redelivered record changes nothing.
#[derive(Debug, Default, Clone)]
pub struct OnceBatch {
    records: Vec<(String, Ops)>,
}

impl OnceBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the writes of one record, identified by `scope` and `id`.
    pub fn push(&mut self, scope: &str, id: &str, ops: Ops) {
        self.records.push((keys::once_marker(scope, id), ops));
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The batch's distinct markers and its ops merged as [`ONCE_SCRIPT`]
    /// merges the ops of new records: counters and hash fields summed per
    /// key (zero sums kept), set members once each, one final value per
    /// `SET` / set-if-greater key in record order, gauges and stream appends
    /// as they come. A record whose marker came earlier in the batch is a
    /// duplicate and left out. `None` when the ops cannot be merged here
    /// (a value that is not an integer, a sum past `i64`): the record-by-
    /// record script handles those.
    fn merged(&self) -> Option<(Vec<&str>, Merged<'_>)> {
        use std::collections::hash_map::Entry;
        use std::collections::{HashMap, HashSet};
        let mut markers: Vec<&str> = Vec::with_capacity(self.records.len());
        let mut seen: HashSet<&str> = HashSet::with_capacity(self.records.len());
        let mut out = Merged::default();
        let mut incr: Vec<(&str, i64)> = Vec::new();
        let mut incr_at: HashMap<&str, usize> = HashMap::new();
        let mut hincr: Vec<(&str, &str, i64)> = Vec::new();
        let mut hincr_at: HashMap<(&str, &str), usize> = HashMap::new();
        let mut members: Vec<(&str, &str)> = Vec::new();
        let mut member_seen: HashSet<(&str, &str)> = HashSet::new();
        // key → (written by `s`, value)
        let mut values: Vec<(&str, bool, i64)> = Vec::new();
        let mut value_at: HashMap<&str, usize> = HashMap::new();
        for (marker, ops) in &self.records {
            if !seen.insert(marker.as_str()) {
                continue;
            }
            markers.push(marker);
            let a = &ops.args;
            let mut i = 0;
            while i < a.len() {
                let (op, k) = (a[i].as_str(), a.get(i + 1)?.as_str());
                match op {
                    "c" => {
                        let v: i64 = a.get(i + 2)?.parse().ok()?;
                        match incr_at.entry(k) {
                            Entry::Occupied(e) => {
                                let s = &mut incr[*e.get()].1;
                                *s = s.checked_add(v)?;
                            }
                            Entry::Vacant(e) => {
                                e.insert(incr.len());
                                incr.push((k, v));
                            }
                        }
                        i += 3;
                    }
                    "h" => {
                        let f = a.get(i + 2)?.as_str();
                        let v: i64 = a.get(i + 3)?.parse().ok()?;
                        match hincr_at.entry((k, f)) {
                            Entry::Occupied(e) => {
                                let s = &mut hincr[*e.get()].2;
                                *s = s.checked_add(v)?;
                            }
                            Entry::Vacant(e) => {
                                e.insert(hincr.len());
                                hincr.push((k, f, v));
                            }
                        }
                        i += 4;
                    }
                    "i" => {
                        let m = a.get(i + 2)?.as_str();
                        if member_seen.insert((k, m)) {
                            members.push((k, m));
                        }
                        i += 3;
                    }
                    "s" | "x" => {
                        let v: i64 = a.get(i + 2)?.parse().ok()?;
                        match value_at.entry(k) {
                            Entry::Occupied(e) => {
                                let cur = &mut values[*e.get()];
                                if op == "s" {
                                    *cur = (k, true, v);
                                } else if v > cur.2 {
                                    cur.2 = v;
                                }
                            }
                            Entry::Vacant(e) => {
                                e.insert(values.len());
                                values.push((k, op == "s", v));
                            }
                        }
                        i += 3;
                    }
                    "g" | "a" => {
                        let (x, y) = (a.get(i + 2)?, a.get(i + 3)?);
                        // Borrowed: a stream payload can be large.
                        out.push([op, k, x, y].map(Cow::Borrowed));
                        i += 4;
                    }
                    _ => return None,
                }
            }
        }
        let b = Cow::Borrowed;
        for (k, v) in incr {
            out.push([b("c"), b(k), Cow::Owned(v.to_string())]);
        }
        for (k, f, v) in hincr {
            out.push([b("h"), b(k), b(f), Cow::Owned(v.to_string())]);
        }
        for (k, m) in members {
            out.push([b("i"), b(k), b(m)]);
        }
        for (k, set, v) in values {
            out.push([
                b(if set { "s" } else { "x" }),
                b(k),
                Cow::Owned(v.to_string()),
            ]);
        }
        Some((markers, out))
    }

    /// Applies every record not applied before, atomically; returns how many
    /// were applied by this call.
    ///
    /// Common case, one script call: the batch's ops are merged here
    /// ([`Self::merged`]) and sent once, with every record's marker; Redis
    /// runs one `SET NX` per record and one write per distinct counter key,
    /// hash field, set member and value key (plus one `GET` per
    /// set-if-greater key). Records of a batch that hit the same series cost
    /// little more than their markers, in Redis and on the wire. When a
    /// marker already existed (a redelivered record), that call changes
    /// nothing and a second one applies the batch record by record, skipping
    /// the records applied before (the same merge, done in Lua per new
    /// record).
    pub async fn apply<C: Placement>(
        &self,
        conn: &mut C,
        marker_ttl_s: u64,
    ) -> redis::RedisResult<usize> {
        let flags = self.apply_each(conn, marker_ttl_s).await?;
        Ok(flags.into_iter().filter(|f| *f).count())
    }

    /// [`Self::apply`], telling for each record (in the order pushed)
    /// whether this call applied it: false for a record applied before, and
    /// for a repeat of a marker earlier in the batch.
    pub async fn apply_each<C: Placement>(
        &self,
        conn: &mut C,
        marker_ttl_s: u64,
    ) -> redis::RedisResult<Vec<bool>> {
        if conn.clustered() {
            return self.apply_per_slot(conn, marker_ttl_s).await;
        }
        let flags = match self
            .apply_here(conn, marker_ttl_s, &ONCE_FAST_SCRIPT, &ONCE_SCRIPT)
            .await?
        {
            Outcome::AllNew => self.first_occurrences(),
            Outcome::Each(v) => redis::from_owned_redis_value::<Vec<i64>>(v)?
                .into_iter()
                .map(|f| f == 1)
                .collect(),
        };
        let first: Vec<&str> = self
            .records
            .first()
            .map(|r| r.0.as_str())
            .into_iter()
            .collect();
        conn.confirm(&first).await?;
        Ok(flags)
    }

    /// True for each record whose marker did not come earlier in the batch.
    fn first_occurrences(&self) -> Vec<bool> {
        let mut seen = std::collections::HashSet::with_capacity(self.records.len());
        self.records
            .iter()
            .map(|(m, _)| seen.insert(m.as_str()))
            .collect()
    }

    /// Runs the fast script, or the record-by-record one when a marker
    /// existed.
    async fn apply_here<C: Placement>(
        &self,
        conn: &mut C,
        marker_ttl_s: u64,
        fast: &Script,
        each: &Script,
    ) -> redis::RedisResult<Outcome> {
        // The first marker routes the call on a cluster (all keys of a
        // per-slot batch share its slot); the scripts read only ARGV.
        let route = self.records.first().map(|r| r.0.as_str()).unwrap_or("");
        if let Some((markers, ops)) = self.merged() {
            let args = markers.len() + ops.args.len() + 3;
            let bytes = markers.iter().map(|m| m.len()).sum::<usize>() + ops.bytes();
            let mut call = ScriptCall::new(fast, route, args, bytes);
            call.arg(marker_ttl_s).arg(markers.len());
            for m in &markers {
                call.arg(*m);
            }
            call.arg(ops.count);
            for a in &ops.args {
                call.arg(a.as_ref());
            }
            let all_new: i64 = call.invoke(conn).await?;
            if all_new == 1 {
                return Ok(Outcome::AllNew);
            }
        }
        let args = self
            .records
            .iter()
            .map(|(_, o)| o.args.len() + 2)
            .sum::<usize>()
            + 2;
        let bytes = self.records.iter().map(|(m, o)| m.len() + o.bytes()).sum();
        let mut call = ScriptCall::new(each, route, args, bytes);
        call.arg(marker_ttl_s).arg(self.records.len());
        for (marker, ops) in &self.records {
            call.arg(marker).arg(ops.count);
            for a in &ops.args {
                call.arg(a);
            }
        }
        Ok(Outcome::Each(call.invoke(conn).await?))
    }

    /// On a cluster: each record's ops split by slot, and each slot's part
    /// applied at most once under the record's marker placed in that slot
    /// (`metrics:once:{scope}:{id}:{tag}`). A record counts as applied by
    /// this call when any of its parts was.
    async fn apply_per_slot<C: Placement>(
        &self,
        conn: &mut C,
        marker_ttl_s: u64,
    ) -> redis::RedisResult<Vec<bool>> {
        let mut per_slot: std::collections::BTreeMap<u16, OnceBatch> = Default::default();
        let mut gauge_ops = Ops::new();
        for (marker, ops) in &self.records {
            for (slot, part) in ops.by_slot()? {
                let (g, _) = part.gauges();
                if !g.is_empty() {
                    gauge_ops.args.extend(part.args.iter().cloned());
                    gauge_ops.count += part.count;
                }
                per_slot
                    .entry(slot)
                    .or_default()
                    .records
                    .push((in_slot(marker, slot), part));
            }
        }
        // A record counts as new when its part in its first slot was (the
        // parts of a record are applied in slot order; after a failure
        // between two slots a retry counts it as a duplicate while still
        // applying its remaining parts exactly once).
        let mut new_records: std::collections::HashSet<&str> = Default::default();
        let mut seen: std::collections::HashSet<&str> = Default::default();
        let mut markers = Vec::new();
        for batch in per_slot.values() {
            let flags: Vec<bool> = match batch
                .apply_here(
                    conn,
                    marker_ttl_s,
                    &ONCE_FAST_SLOT_SCRIPT,
                    &ONCE_SLOT_SCRIPT,
                )
                .await?
            {
                Outcome::AllNew => vec![true; batch.records.len()],
                Outcome::Each(v) => redis::from_owned_redis_value::<Vec<i64>>(v)?
                    .into_iter()
                    .map(|f| f == 1)
                    .collect(),
            };
            for ((m, _), new) in batch.records.iter().zip(flags) {
                let base = m.rsplit_once(":{").map_or(m.as_str(), |(b, _)| b);
                if seen.insert(base) && new {
                    new_records.insert(base);
                }
            }
            if let Some((m, _)) = batch.records.first() {
                markers.push(m.clone());
            }
        }
        let (gauges, replicas) = gauge_ops.gauges();
        if !gauges.is_empty() {
            register_and_recompute(conn, &gauges, &replicas).await?;
        }
        let refs: Vec<&str> = markers.iter().map(String::as_str).collect();
        conn.confirm(&refs).await?;
        let mut counted: std::collections::HashSet<&str> = Default::default();
        Ok(self
            .records
            .iter()
            .map(|(m, _)| new_records.contains(m.as_str()) && counted.insert(m.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let b = &[10, 20, 30];
        assert_eq!(bucket_index(b, 0), 0);
        assert_eq!(bucket_index(b, 10), 0);
        assert_eq!(bucket_index(b, 11), 1);
        assert_eq!(bucket_index(b, 30), 2);
        assert_eq!(bucket_index(b, 31), 3);
    }
}
