//! Server-sent events as the relay and the accounting read them: where an
//! event ends (one linear scan per byte) and what its `data:` payload is.

use bytes::Bytes;

/// The `data:` payloads of whole SSE events kept by a `ProxyStream`
/// (each piece holds complete events), without `[DONE]`: the text to count
/// when the upstream reported no usage.
pub fn payloads(pieces: &[Bytes]) -> Vec<Bytes> {
    let mut out = Vec::new();
    for piece in pieces {
        let mut pos = 0;
        while pos < piece.len() {
            let len = next_event_len(&piece[pos..]).unwrap_or(piece.len() - pos);
            if let Some(p) = data_payload(&piece.slice(pos..pos + len)) {
                if p.as_ref() != b"[DONE]" {
                    out.push(p);
                }
            }
            pos += len;
        }
    }
    out
}

/// Length of the first event in `b` including its blank-line terminator.
pub fn next_event_len(b: &[u8]) -> Option<usize> {
    // Every terminator starts at a newline: jump from one to the next.
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', &b[from..]) {
        let i = from + off;
        if b.get(i + 1) == Some(&b'\n') {
            return Some(i + 2);
        }
        if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
            return Some(i + 3);
        }
        from = i + 1;
    }
    None
}

/// End of the last complete event in `b` (0 when there is none).
pub fn last_event_end(b: &[u8]) -> usize {
    let mut end = 0;
    while let Some(len) = next_event_len(&b[end..]) {
        end += len;
    }
    end
}

/// The `data:` payload of an event (several data lines joined by `\n`).
pub fn data_payload(event: &Bytes) -> Option<Bytes> {
    // The common shape, `data: …` and the blank line, found with memchr.
    if let Some(rest) = event.strip_prefix(b"data:") {
        let eol = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        if rest[eol..].iter().all(|&c| c == b'\n' || c == b'\r') {
            let mut value = &rest[..eol];
            value = value.strip_suffix(b"\r").unwrap_or(value);
            let skip = usize::from(value.first() == Some(&b' '));
            let off = 5 + skip;
            return Some(event.slice(off..off + value.len() - skip));
        }
    }
    data_payload_general(event)
}

/// [`data_payload`] for any event: comments, other fields, several `data:`
/// lines (joined with newlines).
pub fn data_payload_general(event: &Bytes) -> Option<Bytes> {
    let mut found: Option<Bytes> = None;
    let mut joined: Option<Vec<u8>> = None;
    let mut start = 0;
    for line in event.split(|&c| c == b'\n') {
        let line_start = start;
        start += line.len() + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        let skip = usize::from(rest.first() == Some(&b' '));
        let value = &rest[skip..];
        match (&found, &mut joined) {
            (None, _) => {
                let off = line_start + 5 + skip;
                found = Some(event.slice(off..off + value.len()));
            }
            (Some(first), None) => {
                let mut j = first.to_vec();
                j.push(b'\n');
                j.extend_from_slice(value);
                joined = Some(j);
            }
            (Some(_), Some(j)) => {
                j.push(b'\n');
                j.extend_from_slice(value);
            }
        }
    }
    match joined {
        Some(j) => Some(Bytes::from(j)),
        None => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_boundaries() {
        assert_eq!(next_event_len(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(next_event_len(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(next_event_len(b"data: a\n"), None);
        assert_eq!(last_event_end(b"data: a\n\ndata: b\n\ndata: c"), 18);
    }

    #[test]
    fn payloads() {
        let e = Bytes::from_static(b"event: x\ndata: {\"a\":1}\n\n");
        assert_eq!(data_payload(&e).unwrap().as_ref(), b"{\"a\":1}");
        let e = Bytes::from_static(b"data:one\r\ndata: two\r\n\r\n");
        assert_eq!(data_payload(&e).unwrap().as_ref(), b"one\ntwo");
        assert!(data_payload(&Bytes::from_static(b": comment\n\n")).is_none());
        // The fast path and the general one agree.
        for ev in [
            &b"data: {\"a\":1}\n\n"[..],
            b"data:{\"a\":1}\n\n",
            b"data: {\"a\":1}\r\n\r\n",
            b"data: x",
            b"data: \n\n",
            b"data: one\ndata: two\n\n",
            b"data: one\nid: 7\n\n",
            b"event: e\ndata: z\n\n",
        ] {
            let e = Bytes::copy_from_slice(ev);
            assert_eq!(data_payload(&e), data_payload_general(&e), "{ev:?}");
        }
        let kept = [
            Bytes::from_static(b"data: {\"a\":1}\n\n: ping\n\ndata: two\n\n"),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ];
        assert_eq!(
            super::payloads(&kept),
            vec![Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"two")]
        );
    }
}
