//! Parsing an answer's head: status, headers, how its body is framed and
//! whether the connection may be reused, by hyper 1.x's client rules.

use crate::error::Error;
use crate::framing::{Chunked, Framing};
use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::mem::MaybeUninit;

/// Most header lines accepted in an answer head.
const MAX_HEADERS: usize = 128;

pub(crate) enum Parsed {
    Final(Fields),
    Informational,
    Partial,
}

/// What a final answer head says.
pub(crate) struct Fields {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    pub(crate) keep_alive: bool,
}

/// Parses an answer head at the start of `buf` and consumes it.
pub(crate) fn parse_head(buf: &mut BytesMut) -> Result<Parsed, Error> {
    if buf.is_empty() {
        return Ok(Parsed::Partial);
    }
    // Left uninitialized: httparse writes the lines it finds (writing 128
    // empty slots first cost more than parsing a short head).
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Protocol("too many header lines"))
        }
        Err(_) => return Err(Error::Protocol("malformed answer head")),
    };
    let status = resp.code.unwrap_or(0);
    // `http::StatusCode`'s range, as hyper checks it.
    if !(100..=999).contains(&status) {
        return Err(Error::Protocol("invalid status code"));
    }
    if (100..200).contains(&status) {
        if status == 101 {
            return Err(Error::Protocol("unexpected protocol switch"));
        }
        buf.advance(len);
        return Ok(Parsed::Informational);
    }
    let http10 = resp.version == Some(0);
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    // Whether the last coding of the last `Transfer-Encoding` line is
    // chunked (hyper's `transfer_encoding_is_chunked`).
    let mut te_chunked: Option<bool> = None;
    let mut length = Length::Absent;
    let mut keep_alive = !http10;
    let mut saw_close = false;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Error::Protocol("invalid header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| Error::Protocol("invalid header value"))?;
        if name == http::header::TRANSFER_ENCODING {
            te_chunked = Some(last_token(h.value).eq_ignore_ascii_case(b"chunked"));
        } else if name == http::header::CONTENT_LENGTH {
            length = length.add(h.value);
        } else if name == http::header::CONNECTION {
            // A `close` cannot be undone by a later `keep-alive`.
            if saw_close || has_token(h.value, b"close") {
                saw_close = true;
                keep_alive = false;
            } else if !keep_alive {
                keep_alive = has_token(h.value, b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if let Some(chunked) = te_chunked {
        if http10 {
            return Err(Error::Protocol("transfer-encoding on an HTTP/1.0 answer"));
        }
        // The last coding decides. hyper reads any other coding until the
        // connection closes; a body the gateway could not read is refused.
        if !chunked {
            return Err(Error::Protocol("unsupported transfer coding"));
        }
        // Both framings: Transfer-Encoding wins, and the connection is not
        // reused (RFC 9112 §6.3: a sign of request smuggling).
        if !matches!(length, Length::Absent) {
            keep_alive = false;
        }
        Framing::Chunked(Chunked::new())
    } else {
        match length {
            Length::Absent => {
                keep_alive = false;
                Framing::UntilClose
            }
            Length::Valid(n) => Framing::Length(n),
            Length::Invalid => return Err(Error::Protocol("invalid content-length")),
        }
    };
    Ok(Parsed::Final(Fields {
        status,
        headers,
        framing,
        keep_alive,
    }))
}

/// The `Content-Length` lines seen so far (hyper's
/// `content_length_parse_all`): every comma-separated value of every line
/// must be plain decimal digits, and all equal.
#[derive(Clone, Copy)]
enum Length {
    Absent,
    Valid(u64),
    Invalid,
}

/// Longest body length hyper accepts (`DecodedLength::MAX_LEN`).
const MAX_LENGTH: u64 = u64::MAX - 2;

impl Length {
    fn add(self, line: &[u8]) -> Length {
        let mut now = self;
        for v in line.split(|&c| c == b',') {
            now = match (now, digits(v.trim_ascii())) {
                (Length::Invalid, _) | (_, None) => Length::Invalid,
                (Length::Absent, Some(n)) => Length::Valid(n),
                (Length::Valid(l), Some(n)) if l == n => Length::Valid(l),
                (Length::Valid(_), Some(_)) => Length::Invalid,
            };
        }
        now
    }
}

/// A decimal number of digits only: no sign, no space, no junk.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    (n <= MAX_LENGTH).then_some(n)
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&c| c == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&c| c == b',').next().unwrap_or(v).trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> (u16, Framing, bool) {
        match parse_head(&mut BytesMut::from(s)).unwrap() {
            Parsed::Final(p) => (p.status, p.framing, p.keep_alive),
            _ => panic!("not final: {s}"),
        }
    }

    #[test]
    fn heads_set_framing_and_reuse() {
        let chunked = Framing::Chunked(Chunked::new());
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            (200, Framing::Length(12), true)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            (200, chunked, false)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n"),
            (200, chunked, false)
        );
        assert_eq!(
            head("HTTP/1.1 500 Oops\r\n\r\n"),
            (500, Framing::UntilClose, false)
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n"),
            (200, Framing::Length(1), false)
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n"),
            (200, Framing::Length(1), true)
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 1\r\n\r\n"),
            (200, Framing::Length(1), false)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 3, 3\r\ncontent-length: 3\r\n\r\n"),
            (200, Framing::Length(3), true)
        );
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\n\r\n"),
            (204, Framing::Length(0), true)
        );
        let mut b = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert!(matches!(parse_head(&mut b), Ok(Parsed::Informational)));
        assert!(matches!(parse_head(&mut b), Ok(Parsed::Partial)));
    }

    #[test]
    fn heads_hyper_refuses_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1,2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0x5\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 5,\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 099 Low\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 000 Zero\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 1000 High\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTQ 200\r\n\r\n",
        ] {
            assert!(parse_head(&mut BytesMut::from(bad)).is_err(), "{bad}");
        }
    }

    /// Up to 128 header lines, each kept in order with its value; one more
    /// is refused.
    #[test]
    fn a_head_holds_at_most_128_lines() {
        let lines = |n: usize| {
            let mut h = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..n - 1 {
                h.push_str(&format!("x-h{i}: v{i}\r\n"));
            }
            h.push_str("content-length: 0\r\n\r\n");
            h
        };
        let Ok(Parsed::Final(f)) = parse_head(&mut BytesMut::from(lines(MAX_HEADERS).as_str()))
        else {
            panic!("128 lines are a head");
        };
        assert_eq!(f.headers.len(), MAX_HEADERS);
        assert_eq!(f.headers["x-h0"], "v0");
        assert_eq!(f.headers["x-h126"], "v126");
        assert_eq!(f.framing, Framing::Length(0));
        assert!(matches!(
            parse_head(&mut BytesMut::from(lines(MAX_HEADERS + 1).as_str())),
            Err(Error::Protocol("too many header lines"))
        ));
    }
}
