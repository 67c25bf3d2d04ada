//! Redis Cluster hash slots: which slot a key lives in, and for every slot a
//! short hash tag that lands in it, so a marker key can be placed next to
//! the keys it guards.

use std::sync::LazyLock;

/// Number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The part of `key` that is hashed: the content of its first `{…}` when
/// that is not empty, the whole key otherwise.
fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The cluster slot of `key`.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hashed_part(key)) % SLOTS
}

/// A short string whose slot is `slot`: `{tag}` in a key name puts the key
/// in that slot.
pub fn slot_tag(slot: u16) -> &'static str {
    &TAGS[(slot % SLOTS) as usize]
}

static TAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut tags: Vec<Option<String>> = vec![None; SLOTS as usize];
    let mut missing = SLOTS as usize;
    let mut n: u64 = 0;
    while missing > 0 {
        let t = base36(n);
        let s = key_slot(t.as_bytes()) as usize;
        if tags[s].is_none() {
            tags[s] = Some(t);
            missing -= 1;
        }
        n += 1;
    }
    tags.into_iter().map(Option::unwrap_or_default).collect()
});

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `base` placed in `slot`: `base:{tag}` (the tag decides the slot, so
/// `base` itself must not hold a `{…}`).
pub fn in_slot(base: &str, slot: u16) -> String {
    format!("{base}:{{{}}}", slot_tag(slot))
}

/// The slot of the first key of `cmd`, for the commands this workspace
/// pipelines: the key is the first argument, or for `EVAL`/`EVALSHA` the
/// first declared key. `None` when the command names no key.
pub fn cmd_slot(cmd: &redis::Cmd) -> Option<u16> {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(b) => b,
        redis::Arg::Cursor => &[][..],
    });
    let name = args.next()?;
    if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") {
        let _script = args.next()?;
        let numkeys: usize = std::str::from_utf8(args.next()?).ok()?.parse().ok()?;
        if numkeys == 0 {
            return None;
        }
        return args.next().map(key_slot);
    }
    if name.eq_ignore_ascii_case(b"PING")
        || name.eq_ignore_ascii_case(b"MULTI")
        || name.eq_ignore_ascii_case(b"EXEC")
    {
        return None;
    }
    args.next().map(key_slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
    }

    #[test]
    fn every_slot_has_a_tag() {
        for s in 0..SLOTS {
            let t = slot_tag(s);
            assert!(!t.is_empty() && t.len() <= 4, "{t}");
            assert_eq!(key_slot(in_slot("metrics:flush:r:1", s).as_bytes()), s);
        }
    }
}
