//! Reading Redis streams through a consumer group: the group's creation,
//! `XREADGROUP` and `XAUTOCLAIM` replies parsed in RESP2 or RESP3, and the
//! group's backlog (`XINFO GROUPS`). Shared by the stream consumers (the
//! token-service's usage consumer, the config-center's ledger writer).

use crate::conn::RedisConn;
use redis::Value;
use std::time::Duration;

/// One stream entry as read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    /// The value of the consumer's field; `None` when the entry lacks it.
    pub payload: Option<String>,
    /// The entry was deleted from the stream while pending (nothing to apply).
    pub deleted: bool,
}

/// One consumer of one group on one stream: the commands every consumer
/// sends, with their replies parsed.
#[derive(Debug, Clone)]
pub struct GroupReader {
    pub stream: &'static str,
    pub group: &'static str,
    /// The entry field holding the payload.
    pub field: &'static str,
    /// This consumer's name; unique per live process.
    pub consumer: String,
    /// Entries per read or claim.
    pub count: usize,
    /// Entries pending this long on another consumer are claimed.
    pub claim_idle: Duration,
}

impl GroupReader {
    /// `XREADGROUP` from `id` (`0`: this consumer's pending entries; `>`:
    /// new ones, waiting up to `block`).
    pub async fn read<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        id: &str,
        block: Option<Duration>,
    ) -> redis::RedisResult<Vec<Entry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.count);
        if let Some(b) = block {
            cmd.arg("BLOCK").arg(b.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(self.stream).arg(id);
        let v: Value = cmd.query_async(conn).await?;
        Ok(parse_read_reply(v, self.field))
    }

    /// One `XAUTOCLAIM` step from `cursor`: the next cursor (`0-0` at the
    /// end) and the entries taken over.
    pub async fn claim<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        cursor: &str,
    ) -> redis::RedisResult<(String, Vec<Entry>)> {
        let v: Value = redis::cmd("XAUTOCLAIM")
            .arg(self.stream)
            .arg(self.group)
            .arg(&self.consumer)
            .arg(self.claim_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(self.count)
            .query_async(conn)
            .await?;
        Ok(parse_autoclaim_reply(v, self.field))
    }

    /// Acknowledges the entries and deletes them (so the stream does not
    /// grow), in one round trip.
    pub async fn ack_and_delete<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        ids: &[String],
    ) -> redis::RedisResult<()> {
        let mut p = redis::pipe();
        p.cmd("XACK")
            .arg(self.stream)
            .arg(self.group)
            .arg(ids)
            .ignore();
        p.cmd("XDEL").arg(self.stream).arg(ids).ignore();
        p.query_async::<()>(conn).await
    }

    /// Creates the group if missing (see [`ensure_group`]).
    pub async fn ensure_group<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
    ) -> redis::RedisResult<()> {
        ensure_group(conn, self.stream, self.group).await
    }
}

/// Creates the consumer group (and the stream) if missing, starting at the
/// beginning of the stream so entries written before the first consumer
/// started are read too.
pub async fn ensure_group<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> redis::RedisResult<()> {
    let r: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
    match r {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// Pending (delivered, not acknowledged) and undelivered (`lag`) entries
/// of a group (`XINFO GROUPS`); `None` when Redis does not answer within a
/// second or has no such group.
pub async fn group_backlog(
    redis: &RedisConn,
    stream: &str,
    group: &str,
) -> Option<(i64, Option<i64>)> {
    let fut = async {
        let mut conn = redis.get().await.ok()?;
        let v: Value = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut conn)
            .await
            .ok()?;
        let groups = as_seq(&v)?;
        for g in groups {
            let fields = as_pairs(g);
            let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            if get("name").and_then(as_string).as_deref() != Some(group) {
                continue;
            }
            let pending = get("pending").and_then(as_int).unwrap_or(0);
            let lag = get("lag").and_then(as_int);
            return Some((pending, lag));
        }
        None
    };
    tokio::time::timeout(Duration::from_millis(1000), fut)
        .await
        .ok()
        .flatten()
}

fn as_seq(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => as_string(other).and_then(|s| s.parse().ok()),
    }
}

/// Field/value pairs of a RESP2 flat array or a RESP3 map.
fn as_pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Map(m) => m
            .iter()
            .filter_map(|(k, v)| Some((as_string(k)?, v)))
            .collect(),
        Value::Array(a) => a
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((as_string(k)?, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Entries of an `[[id, fields-or-nil], ...]` list; `field` names the
/// payload, which is moved out of the reply, not copied.
fn parse_entries(v: Value, field: &str) -> Vec<Entry> {
    into_seq(v)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let mut parts = into_seq(e)?.into_iter();
            let id = as_string(&parts.next()?)?;
            let fields = parts.next();
            let deleted = matches!(fields, None | Some(Value::Nil));
            let payload = fields.and_then(|fields| field_value(fields, field));
            Some(Entry {
                id,
                payload,
                deleted,
            })
        })
        .collect()
}

fn into_seq(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        _ => None,
    }
}

fn into_string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// The value of `field` in an entry's fields (a map, or a flat list of
/// field and value).
fn field_value(fields: Value, field: &str) -> Option<String> {
    match fields {
        Value::Map(m) => m
            .into_iter()
            .find(|(k, _)| as_string(k).as_deref() == Some(field))
            .and_then(|(_, v)| into_string(v)),
        Value::Array(a) => {
            let mut it = a.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if as_string(&k).as_deref() == Some(field) {
                    return into_string(v);
                }
            }
            None
        }
        _ => None,
    }
}

/// Entries of an `XREADGROUP` reply (nil on timeout).
pub fn parse_read_reply(v: Value, field: &str) -> Vec<Entry> {
    match v {
        Value::Nil => Vec::new(),
        Value::Map(m) => m
            .into_iter()
            .flat_map(|(_, e)| parse_entries(e, field))
            .collect(),
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|s| into_seq(s).and_then(|p| p.into_iter().nth(1)))
            .flat_map(|e| parse_entries(e, field))
            .collect(),
        _ => Vec::new(),
    }
}

/// The next cursor and the claimed entries of an `XAUTOCLAIM` reply.
pub fn parse_autoclaim_reply(v: Value, field: &str) -> (String, Vec<Entry>) {
    let Some(parts) = into_seq(v) else {
        return (String::new(), Vec::new());
    };
    let mut parts = parts.into_iter();
    let next = parts.next().and_then(into_string).unwrap_or_default();
    let entries = parts
        .next()
        .map(|e| parse_entries(e, field))
        .unwrap_or_default();
    (next, entries)
}
