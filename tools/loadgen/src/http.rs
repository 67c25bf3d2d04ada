//! A minimal HTTP/1.1 client connection: the request is written whole from
//! prebuilt bytes, the response is read with Content-Length, chunked or
//! close-delimited framing, and its body is scanned (never stored). Lean on
//! purpose: on two cores every cycle the load generator spends is taken from
//! the proxy it measures.

use std::io;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Read buffer size; also the bound on the response head and on one chunk-size line.
const BUF: usize = 64 * 1024;

/// An `http://host:port/path` target.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    #[error("only http:// URLs are supported: {0:?}")]
    Scheme(String),
    #[error("bad port in {0:?}")]
    Port(String),
    #[error("no host in {0:?}")]
    Host(String),
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, UrlError> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::Scheme(s.into()))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            // `[::1]:80` splits at the last colon; a bare `[::1]` has none after `]`.
            Some((h, p)) if !p.contains(']') => {
                (h, p.parse().map_err(|_| UrlError::Port(s.into()))?)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(UrlError::Host(s.into()));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path,
        })
    }

    /// `Host` header value.
    pub fn authority(&self) -> String {
        if self.port == 80 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The bytes of one request, built once and written for every request.
pub fn build_request(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut out = format!("{method} {} HTTP/1.1\r\n", url.path);
    if !has("host") {
        out.push_str(&format!("Host: {}\r\n", url.authority()));
    }
    if !has("user-agent") {
        out.push_str("User-Agent: aigw-loadgen\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" && method != "HEAD" {
        if !has("content-type") && !body.is_empty() {
            out.push_str("Content-Type: application/json\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Receives body bytes as they arrive, with the time of the read that
/// delivered them.
pub trait BodySink {
    fn data(&mut self, bytes: &[u8], at: Instant);
}

/// Counts nothing but bytes.
pub struct Discard;

impl BodySink for Discard {
    fn data(&mut self, _: &[u8], _: Instant) {}
}

/// What one response looked like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body_bytes: u64,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
    /// When the first byte of the response head arrived.
    pub first_byte: Instant,
    /// When the last byte of the response arrived.
    pub done: Instant,
}

pub struct Conn<S> {
    stream: S,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Time of the read that filled the unread bytes.
    read_at: Instant,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn eof(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.to_string())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(stream: S) -> Conn<S> {
        Conn {
            stream,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            len: 0,
            read_at: Instant::now(),
        }
    }

    /// Reads more bytes after the unread ones; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.len {
            self.pos = 0;
            self.len = 0;
        } else if self.len == self.buf.len() {
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
        }
        if self.len == self.buf.len() {
            return Err(bad("response line or head too large"));
        }
        let n = self.stream.read(&mut self.buf[self.len..]).await?;
        self.read_at = Instant::now();
        self.len += n;
        Ok(n)
    }

    async fn fill_or_eof(&mut self) -> io::Result<()> {
        if self.fill().await? == 0 {
            return Err(eof("connection closed mid-response"));
        }
        Ok(())
    }

    /// Position just past the next `\r\n`, reading as needed; `None` means
    /// end of stream before any byte of a line.
    async fn line_end(&mut self) -> io::Result<Option<usize>> {
        let mut from = self.pos;
        loop {
            if let Some(i) = find(&self.buf[from..self.len], b"\r\n") {
                return Ok(Some(from + i + 2));
            }
            from = self.len.saturating_sub(1).max(self.pos);
            let before = self.pos;
            if self.fill().await? == 0 {
                if self.pos == self.len {
                    return Ok(None);
                }
                return Err(eof("connection closed mid-line"));
            }
            // `fill` may have moved the unread bytes to the front.
            from = from - before + self.pos;
        }
    }

    /// Writes `request` and reads the whole response, feeding its body to `sink`.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        head_request: bool,
        sink: &mut impl BodySink,
    ) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.read_response(head_request, sink).await
    }

    async fn read_response(
        &mut self,
        head_request: bool,
        sink: &mut impl BodySink,
    ) -> io::Result<Response> {
        let mut first_byte = None;
        loop {
            // The head: find the blank line.
            let head_end = loop {
                if self.pos < self.len && first_byte.is_none() {
                    first_byte = Some(self.read_at);
                }
                if let Some(i) = find(&self.buf[self.pos..self.len], b"\r\n\r\n") {
                    break self.pos + i + 4;
                }
                if self.fill().await? == 0 {
                    return Err(eof(if self.pos == self.len {
                        "connection closed before a response"
                    } else {
                        "connection closed mid-head"
                    }));
                }
            };
            let head = parse_head(&self.buf[self.pos..head_end])?;
            self.pos = head_end;
            // 1xx answers are interim (101 would switch protocols: not supported).
            if (100..200).contains(&head.status) && head.status != 101 {
                continue;
            }
            let first_byte = first_byte.unwrap_or(self.read_at);
            let mut keep_alive = head.keep_alive;
            let no_body =
                head_request || head.status == 204 || head.status == 304 || head.status < 200;
            let body_bytes = if no_body {
                0
            } else if head.chunked {
                self.chunked_body(sink).await?
            } else if let Some(n) = head.content_length {
                self.exact(n, sink).await?;
                n
            } else {
                keep_alive = false;
                self.until_eof(sink).await?
            };
            return Ok(Response {
                status: head.status,
                body_bytes,
                keep_alive,
                first_byte,
                done: self.read_at,
            });
        }
    }

    async fn exact(&mut self, mut n: u64, sink: &mut impl BodySink) -> io::Result<()> {
        while n > 0 {
            if self.pos == self.len {
                self.fill_or_eof().await?;
            }
            let take = ((self.len - self.pos) as u64).min(n) as usize;
            sink.data(&self.buf[self.pos..self.pos + take], self.read_at);
            self.pos += take;
            n -= take as u64;
        }
        Ok(())
    }

    async fn until_eof(&mut self, sink: &mut impl BodySink) -> io::Result<u64> {
        let mut total = 0;
        loop {
            if self.pos < self.len {
                sink.data(&self.buf[self.pos..self.len], self.read_at);
                total += (self.len - self.pos) as u64;
                self.pos = self.len;
            }
            if self.fill().await? == 0 {
                return Ok(total);
            }
        }
    }

    async fn chunked_body(&mut self, sink: &mut impl BodySink) -> io::Result<u64> {
        let mut total = 0;
        loop {
            let end = self
                .line_end()
                .await?
                .ok_or_else(|| eof("connection closed before a chunk"))?;
            let line = &self.buf[self.pos..end - 2];
            let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
            let size_text = std::str::from_utf8(size_text)
                .map_err(|_| bad("chunk size is not ASCII"))?
                .trim();
            let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("bad chunk size"))?;
            self.pos = end;
            if size == 0 {
                // Trailers, up to the blank line.
                loop {
                    let end = self
                        .line_end()
                        .await?
                        .ok_or_else(|| eof("connection closed in trailers"))?;
                    let blank = end - self.pos == 2;
                    self.pos = end;
                    if blank {
                        return Ok(total);
                    }
                }
            }
            self.exact(size, sink).await?;
            total += size;
            let end = self
                .line_end()
                .await?
                .ok_or_else(|| eof("connection closed after a chunk"))?;
            if end - self.pos != 2 {
                return Err(bad("chunk not followed by CRLF"));
            }
            self.pos = end;
        }
    }
}

struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    keep_alive: bool,
}

fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| bad("response head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(bad("not an HTTP/1.x response")),
    };
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| bad("bad status code"))?;
    let mut head = Head {
        status,
        content_length: None,
        chunked: false,
        keep_alive: !http10,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    head.keep_alive = true;
                }
            }
        }
    }
    Ok(head)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Scans a `text/event-stream` body: counts events, notes when each one
/// completed, and whether the OpenAI terminator `data: [DONE]` came.
#[derive(Debug, Default)]
pub struct SseScan {
    /// Events other than `[DONE]`.
    pub events: u32,
    pub done: bool,
    pub first_event: Option<Instant>,
    last_event: Option<Instant>,
    /// Nanoseconds between consecutive events (other than `[DONE]`).
    pub gaps_ns: Vec<u64>,
    prev_newline: bool,
    has_content: bool,
    prefix: [u8; 12],
    prefix_len: usize,
}

impl SseScan {
    /// Ready for the next response; keeps the gap buffer's allocation.
    pub fn reset(&mut self) {
        let mut gaps = std::mem::take(&mut self.gaps_ns);
        gaps.clear();
        *self = SseScan {
            gaps_ns: gaps,
            ..SseScan::default()
        };
    }

    fn end_event(&mut self, at: Instant) {
        let p = &self.prefix[..self.prefix_len];
        if p.starts_with(b"data: [DONE]") || p.starts_with(b"data:[DONE]") {
            self.done = true;
        } else if p.starts_with(b":") {
            // A comment (keep-alive ping), not an event.
        } else {
            self.events += 1;
            match self.last_event {
                None => self.first_event = Some(at),
                Some(last) => self.gaps_ns.push(at.duration_since(last).as_nanos() as u64),
            }
            self.last_event = Some(at);
        }
        self.has_content = false;
        self.prefix_len = 0;
    }
}

impl BodySink for SseScan {
    fn data(&mut self, bytes: &[u8], at: Instant) {
        // An event ends at a blank line; `\r` is ignored so CRLF streams count too.
        for &b in bytes {
            match b {
                b'\r' => {}
                b'\n' => {
                    if self.prev_newline && self.has_content {
                        self.end_event(at);
                    }
                    self.prev_newline = true;
                }
                _ => {
                    self.prev_newline = false;
                    self.has_content = true;
                    if self.prefix_len < self.prefix.len() {
                        self.prefix[self.prefix_len] = b;
                        self.prefix_len += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn urls_parse() {
        let u = Url::parse("http://127.0.0.1:8080/v1/chat/completions").unwrap();
        assert_eq!(
            u,
            Url {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/v1/chat/completions".into()
            }
        );
        assert_eq!(u.authority(), "127.0.0.1:8080");
        let u = Url::parse("http://localhost").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("http://[::1]:9000?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("[::1]", 9000, "/?x=1")
        );
        assert!(matches!(Url::parse("https://x/"), Err(UrlError::Scheme(_))));
        assert!(matches!(
            Url::parse("http://x:http/"),
            Err(UrlError::Port(_))
        ));
        assert!(matches!(Url::parse("http://:80/"), Err(UrlError::Host(_))));
    }

    #[test]
    fn request_bytes() {
        let u = Url::parse("http://h:81/p").unwrap();
        let r = build_request(
            "POST",
            &u,
            &[("Authorization".into(), "Bearer k".into())],
            b"{}",
        );
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "POST /p HTTP/1.1\r\nHost: h:81\r\nUser-Agent: aigw-loadgen\r\nAuthorization: Bearer k\r\n\
             Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
        let r = build_request("GET", &u, &[], b"");
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "GET /p HTTP/1.1\r\nHost: h:81\r\nUser-Agent: aigw-loadgen\r\n\r\n"
        );
    }

    /// Feeds `wire` to a connection in pieces of `step` bytes and reads
    /// responses until the wire is used up.
    async fn read_all(wire: &[u8], step: usize) -> Vec<(Response, Vec<u8>)> {
        struct Keep(Vec<u8>);
        impl BodySink for Keep {
            fn data(&mut self, b: &[u8], _: Instant) {
                self.0.extend_from_slice(b);
            }
        }
        let (client, mut server) = tokio::io::duplex(64);
        let wire = wire.to_vec();
        let writer = tokio::spawn(async move {
            for piece in wire.chunks(step) {
                server.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
            // Dropping `server` closes the stream.
        });
        let mut conn = Conn::new(client);
        let mut out = Vec::new();
        loop {
            let mut keep = Keep(Vec::new());
            match conn.read_response(false, &mut keep).await {
                Ok(r) => {
                    let ka = r.keep_alive;
                    out.push((r, keep.0));
                    if !ka {
                        break;
                    }
                }
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
                    break;
                }
            }
        }
        writer.await.unwrap();
        out
    }

    const WIRE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello\
        HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n\
        3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\n\
        HTTP/1.1 204 No Content\r\n\r\n\
        HTTP/1.0 200 OK\r\n\r\nuntil the end";

    #[tokio::test]
    async fn framings_parse_at_every_split() {
        for step in [1, 2, 3, 7, 64, WIRE.len()] {
            let got = read_all(WIRE, step).await;
            let view: Vec<(u16, u64, bool, &[u8])> = got
                .iter()
                .map(|(r, b)| (r.status, r.body_bytes, r.keep_alive, b.as_slice()))
                .collect();
            assert_eq!(
                view,
                vec![
                    (200, 5, true, &b"hello"[..]),
                    (503, 19, true, &b"abc0123456789abcdef"[..]),
                    (204, 0, true, &b""[..]),
                    (200, 13, false, &b"until the end"[..]),
                ],
                "step {step}"
            );
        }
    }

    #[tokio::test]
    async fn truncated_and_garbage_responses_are_errors() {
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .await
            .unwrap();
        drop(server);
        let e = Conn::new(client)
            .read_response(false, &mut Discard)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        // A stream cut between two chunks (an upstream that died) is a closed
        // connection, not a protocol error.
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            .await
            .unwrap();
        drop(server);
        let e = Conn::new(client)
            .read_response(false, &mut Discard)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);

        let (client, mut server) = tokio::io::duplex(1024);
        server.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await.unwrap();
        let e = Conn::new(client)
            .read_response(false, &mut Discard)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);

        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            .await
            .unwrap();
        let e = Conn::new(client)
            .read_response(false, &mut Discard)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn sse_scan_counts_events_across_splits_and_line_endings() {
        let body = "data: {\"a\":1}\n\ndata: {\"a\":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n";
        for step in 1..body.len() {
            let mut s = SseScan::default();
            let t0 = Instant::now();
            for (i, piece) in body.as_bytes().chunks(step).enumerate() {
                s.data(piece, t0 + std::time::Duration::from_millis(i as u64));
            }
            // Neither the comment nor [DONE] is counted.
            assert_eq!(s.events, 2, "step {step}");
            assert!(s.done);
            assert_eq!(s.gaps_ns.len(), 1);
            assert!(s.first_event.is_some());
            s.reset();
            assert_eq!((s.events, s.done, s.gaps_ns.len()), (0, false, 0));
        }
    }
}
