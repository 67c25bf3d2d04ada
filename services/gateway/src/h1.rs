//! A small HTTP/1.1 client for plain-HTTP upstreams, driven by the request
//! handler itself.
//!
//! Each HTTP worker owns one [`Pool`]. A request checks out an idle
//! keep-alive connection to the instance (or opens one), writes the request
//! head and body in one `write`, and reads the answer on the handler's own
//! task: there is no connection task, no channel between a connection and
//! the handler, and a read hands over everything the socket had, so the
//! events an upstream sent together reach the client in one write. A body
//! read to its end puts the connection back in the pool; a body dropped
//! early closes it, which cancels the request upstream.
//!
//! Framing follows RFC 9112: `Transfer-Encoding: chunked`, `Content-Length`,
//! or (without either) the body ends when the upstream closes the
//! connection. 1xx answers are skipped; 204 and 304 have no body.
//!
//! Keep-alive race: an upstream may close an idle connection just as a
//! request is sent on it. A pooled connection is checked before use (a
//! pending end of file or unexpected data discards it), and when a reused
//! connection fails before a single byte of the answer arrived (write error,
//! reset, or end of file), the request is sent once more on a new
//! connection. Failures on a new connection are reported as they are.

use crate::stream::Held;
use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest answer head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines accepted in an answer head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;
/// Read buffer reserved before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Bodies up to this size are copied behind the head and leave in one
/// write; larger ones are written from their own buffer.
const COALESCE_BODY: usize = 64 * 1024;
/// How often idle connections are checked for age and closed peers.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// What a pool is built from.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub connect_timeout: Duration,
    /// Idle connections are closed after this long.
    pub idle_timeout: Duration,
    /// Idle connections kept per upstream address.
    pub max_idle_per_host: usize,
    /// TCP keep-alive probes after this much silence (`None`: off).
    pub tcp_keepalive: Option<Duration>,
}

/// One worker's keep-alive connections, by upstream address. Not `Send`:
/// build and use it on one worker thread.
pub struct Pool {
    inner: Rc<Inner>,
}

struct Inner {
    cfg: PoolConfig,
    idle: RefCell<HashMap<Arc<str>, Vec<Idle>>>,
    sweeper: Cell<bool>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One upstream connection and the bytes read from it but not yet used.
struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// False when the peer closed the connection or sent something while
    /// idle. Costs no system call unless the socket was reported readable.
    fn idle_ok(&self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// A request to send: the prebuilt request line and `Host` header, the
/// other header lines, and the body (sent with `Content-Length`).
pub struct Request<'a> {
    /// `host:port` to connect to; also the pool key.
    pub addr: &'a Arc<str>,
    /// `POST /path HTTP/1.1\r\nhost: …\r\n`.
    pub head_prefix: &'a [u8],
    /// Header lines, each `name: value\r\n` (see [`write_header`]).
    pub header_lines: &'a [u8],
    pub body: &'a Bytes,
}

/// Appends one `name: value` header line.
pub fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// An answer whose head arrived.
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Self {
        Pool {
            inner: Rc::new(Inner {
                cfg,
                idle: RefCell::new(HashMap::new()),
                sweeper: Cell::new(false),
            }),
        }
    }

    /// Idle connections held now (all addresses).
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.inner.idle.borrow().values().map(Vec::len).sum()
    }

    /// Sends `req` and reads the answer's head.
    pub async fn send(&self, req: Request<'_>) -> Result<Response, Error> {
        let wire = encode_request(&req);
        if let Some(conn) = self.inner.checkout(req.addr) {
            match exchange(conn, &wire, req.body).await {
                Ok(head) => return Ok(self.response(req.addr, head)),
                Err((e, answered)) if answered || !e.is_stale_connection() => return Err(e),
                // The upstream closed the reused connection without reading
                // or answering: send again on a new one.
                Err(_) => {}
            }
        }
        let conn = self.inner.connect(req.addr).await?;
        let head = exchange(conn, &wire, req.body).await.map_err(|(e, _)| e)?;
        Ok(self.response(req.addr, head))
    }

    fn response(&self, addr: &Arc<str>, (conn, head): (Conn, Fields)) -> Response {
        Response {
            status: head.status,
            headers: head.headers,
            body: Body {
                conn: Some(conn),
                framing: head.framing,
                keep_alive: head.keep_alive,
                pool: Rc::downgrade(&self.inner),
                addr: addr.clone(),
            },
        }
    }
}

impl Inner {
    fn checkout(&self, addr: &str) -> Option<Conn> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(addr)?;
        while let Some(i) = list.pop() {
            if i.since.elapsed() < self.cfg.idle_timeout && i.conn.idle_ok() {
                return Some(i.conn);
            }
        }
        None
    }

    async fn connect(&self, addr: &str) -> Result<Conn, Error> {
        let io = tokio::time::timeout(self.cfg.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::ConnectTimeout)?
            .map_err(Error::Connect)?;
        io.set_nodelay(true).map_err(Error::Connect)?;
        if let Some(t) = self.cfg.tcp_keepalive {
            let ka = socket2::TcpKeepalive::new().with_time(t);
            // Best effort: the connection works without it.
            let _ = socket2::SockRef::from(&io).set_tcp_keepalive(&ka);
        }
        Ok(Conn {
            io,
            buf: BytesMut::new(),
        })
    }

    fn checkin(self: &Rc<Self>, addr: &Arc<str>, conn: Conn) {
        if !conn.buf.is_empty() {
            // Bytes beyond the answer: the connection is out of step.
            return;
        }
        {
            let mut idle = self.idle.borrow_mut();
            let list = idle.entry(addr.clone()).or_default();
            if list.len() >= self.cfg.max_idle_per_host {
                return;
            }
            list.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        if !self.sweeper.replace(true) {
            tokio::task::spawn_local(sweep(Rc::downgrade(self)));
        }
    }
}

/// Closes idle connections that are too old or whose peer went away, until
/// the pool is dropped.
async fn sweep(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(p) = pool.upgrade() else { return };
        let max_age = p.cfg.idle_timeout;
        p.idle.borrow_mut().retain(|_, list| {
            list.retain(|i| i.since.elapsed() < max_age && i.conn.idle_ok());
            !list.is_empty()
        });
    }
}

/// Request line, `Host`, headers, `Content-Length`, blank line, and the
/// body when it is small.
fn encode_request(req: &Request<'_>) -> Vec<u8> {
    let mut n = req.head_prefix.len() + req.header_lines.len() + 32;
    if req.body.len() <= COALESCE_BODY {
        n += req.body.len();
    }
    let mut w = Vec::with_capacity(n);
    w.extend_from_slice(req.head_prefix);
    w.extend_from_slice(req.header_lines);
    write_header(
        &mut w,
        b"content-length",
        itoa::Buffer::new().format(req.body.len()).as_bytes(),
    );
    w.extend_from_slice(b"\r\n");
    if req.body.len() <= COALESCE_BODY {
        w.extend_from_slice(req.body);
    }
    w
}

/// Writes the request and reads the answer's head. The flag tells whether
/// any byte of an answer had arrived when it failed.
async fn exchange(
    mut conn: Conn,
    wire: &[u8],
    body: &Bytes,
) -> Result<(Conn, Fields), (Error, bool)> {
    conn.io
        .write_all(wire)
        .await
        .map_err(|e| (Error::Write(e), false))?;
    if body.len() > COALESCE_BODY {
        conn.io
            .write_all(body)
            .await
            .map_err(|e| (Error::Write(e), false))?;
    }
    loop {
        match parse_head(&mut conn.buf).map_err(|e| (e, true))? {
            Parsed::Final(f) => return Ok((conn, f)),
            Parsed::Informational => continue,
            Parsed::Partial => {}
        }
        if conn.buf.len() >= MAX_HEAD_BYTES {
            return Err((Error::Protocol("answer head too large"), true));
        }
        let answered = !conn.buf.is_empty();
        conn.buf.reserve(READ_CHUNK);
        let n = read_buf(&mut conn.io, &mut conn.buf)
            .await
            .map_err(|e| (Error::Read(e), answered))?;
        if n == 0 {
            return Err((Error::Closed, answered));
        }
    }
}

async fn read_buf(io: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_buf(io, cx, buf)).await
}

fn poll_read_buf(
    io: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

enum Parsed {
    Final(Fields),
    Informational,
    Partial,
}

/// What a final answer head says.
struct Fields {
    status: u16,
    headers: HeaderMap,
    framing: Framing,
    keep_alive: bool,
}

/// Parses an answer head at the start of `buf` and consumes it.
fn parse_head(buf: &mut BytesMut) -> Result<Parsed, Error> {
    if buf.is_empty() {
        return Ok(Parsed::Partial);
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::Protocol("too many header lines"))
        }
        Err(_) => return Err(Error::Protocol("malformed answer head")),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) {
        if status == 101 {
            return Err(Error::Protocol("unexpected protocol switch"));
        }
        buf.advance(len);
        return Ok(Parsed::Informational);
    }
    let http10 = resp.version == Some(0);
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    let mut chunked = false;
    let mut length: Option<u64> = None;
    let mut close = http10;
    for h in resp.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| Error::Protocol("invalid header name"))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| Error::Protocol("invalid header value"))?;
        if name == http::header::TRANSFER_ENCODING {
            // The last coding decides; anything but chunked is refused below.
            chunked = last_token(h.value).eq_ignore_ascii_case(b"chunked");
            if !chunked {
                return Err(Error::Protocol("unsupported transfer coding"));
            }
        } else if name == http::header::CONTENT_LENGTH {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(Error::Protocol("invalid content-length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::Protocol("conflicting content-length"));
            }
            length = Some(n);
        } else if name == http::header::CONNECTION {
            for t in h.value.split(|&c| c == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if http10 && t.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked(Chunk::Size)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Parsed::Final(Fields {
        status,
        headers,
        framing,
        keep_alive: !close,
    }))
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&c| c == b',').next().unwrap_or(v).trim_ascii()
}

/// How the body's end is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    UntilClose,
    /// The body ended.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many data bytes of the current chunk are left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailers,
}

/// Decodes what `buf` holds: the body bytes found (all of them, in one
/// piece) and whether the body ended.
fn decode(framing: &mut Framing, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
    match framing {
        Framing::Done => Ok(None),
        Framing::Length(left) => {
            if *left == 0 {
                *framing = Framing::Done;
                return Ok(None);
            }
            let n = (*left).min(buf.len() as u64) as usize;
            if n == 0 {
                return Ok(None);
            }
            *left -= n as u64;
            if *left == 0 {
                *framing = Framing::Done;
            }
            Ok(Some(buf.split_to(n).freeze()))
        }
        Framing::UntilClose => Ok((!buf.is_empty()).then(|| buf.split().freeze())),
        Framing::Chunked(state) => {
            let mut out = Held::default();
            let ended = decode_chunked(state, buf, |piece| out.push(piece))?;
            if ended {
                *framing = Framing::Done;
            }
            Ok(out.take())
        }
    }
}

/// Runs the chunked decoder over `buf`, handing each data piece to `out`;
/// true once the last chunk and the trailers were consumed.
fn decode_chunked(
    state: &mut Chunk,
    buf: &mut BytesMut,
    mut out: impl FnMut(Bytes),
) -> Result<bool, Error> {
    loop {
        match *state {
            Chunk::Size => {
                let Some(eol) = memchr::memchr(b'\n', buf) else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(Error::Protocol("chunk size line too long"));
                    }
                    return Ok(false);
                };
                let line = buf.split_to(eol + 1);
                let size = parse_chunk_size(&line)?;
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(false);
                }
                let n = left.min(buf.len() as u64) as usize;
                out(buf.split_to(n).freeze());
                *state = if n as u64 == left {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(left - n as u64)
                };
            }
            Chunk::DataEnd => {
                let Some(eol) = memchr::memchr(b'\n', buf) else {
                    if buf.len() >= 2 {
                        return Err(Error::Protocol("missing CRLF after chunk data"));
                    }
                    return Ok(false);
                };
                if !matches!(&buf[..eol], b"" | b"\r") {
                    return Err(Error::Protocol("missing CRLF after chunk data"));
                }
                buf.advance(eol + 1);
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                let Some(eol) = memchr::memchr(b'\n', buf) else {
                    if buf.len() > MAX_HEAD_BYTES {
                        return Err(Error::Protocol("trailers too large"));
                    }
                    return Ok(false);
                };
                let blank = matches!(&buf[..eol], b"" | b"\r");
                buf.advance(eol + 1);
                if blank {
                    return Ok(true);
                }
            }
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    let bad = || Error::Protocol("invalid chunk size");
    let line = line.strip_suffix(b"\n").ok_or_else(bad)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line
        .split(|&c| c == b';')
        .next()
        .unwrap_or(line)
        .trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad());
    }
    let mut n: u64 = 0;
    for &c in digits {
        let d = (c as char).to_digit(16).ok_or_else(bad)?;
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

/// The body of an answer, read on the caller's task.
pub struct Body {
    conn: Option<Conn>,
    framing: Framing,
    keep_alive: bool,
    pool: Weak<Inner>,
    addr: Arc<str>,
}

impl Body {
    /// Everything received of the body so far, in one piece, or `None` at
    /// its end. At the end the connection goes back to the pool.
    pub fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match decode(&mut self.framing, &mut conn.buf) {
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Ok(got) => {
                    if self.framing == Framing::Done {
                        self.release();
                    }
                    if let Some(b) = got {
                        return Poll::Ready(Some(Ok(b)));
                    }
                    if self.conn.is_none() {
                        return Poll::Ready(None);
                    }
                }
            }
            let conn = self.conn.as_mut().expect("checked above");
            let want = match self.framing {
                Framing::Length(left) => (left as usize).clamp(1, 4 * READ_CHUNK),
                _ => READ_CHUNK,
            };
            conn.buf.reserve(want);
            match poll_read_buf(&mut conn.io, cx, &mut conn.buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(Error::Read(e))));
                }
                Poll::Ready(Ok(0)) => {
                    self.conn = None;
                    if self.framing == Framing::UntilClose {
                        self.framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(Error::BodyClosed)));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    /// The whole body.
    pub async fn collect(mut self) -> Result<Bytes, Error> {
        let mut out = Held::default();
        while let Some(b) = std::future::poll_fn(|cx| self.poll_chunk(cx)).await {
            out.push(b?);
        }
        Ok(out.take().unwrap_or_default())
    }

    /// The body ended: keep the connection for the next request if it may
    /// be reused.
    fn release(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.keep_alive {
            if let Some(pool) = self.pool.upgrade() {
                pool.checkin(&self.addr, conn);
            }
        }
    }
}

/// A failed exchange. Its text names the kind of failure and the system's
/// reason, never an address, a header or a byte of the exchange.
pub enum Error {
    Connect(io::Error),
    ConnectTimeout,
    Write(io::Error),
    Read(io::Error),
    /// The connection closed before the answer's head was complete.
    Closed,
    /// The connection closed before the body's end.
    BodyClosed,
    Protocol(&'static str),
}

impl Error {
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::ConnectTimeout => true,
            Error::Connect(e) | Error::Write(e) | Error::Read(e) => {
                e.kind() == io::ErrorKind::TimedOut
            }
            _ => false,
        }
    }

    pub fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::ConnectTimeout)
    }

    /// The upstream provably did not get the whole request: connect failure,
    /// connect timeout, or a write that failed before the request was complete.
    pub fn request_unsent(&self) -> bool {
        matches!(self, Error::Connect(_) | Error::ConnectTimeout)
    }

    pub fn is_body(&self) -> bool {
        matches!(self, Error::BodyClosed)
    }

    /// What a reused connection the upstream had closed looks like.
    fn is_stale_connection(&self) -> bool {
        match self {
            Error::Closed => true,
            Error::Write(e) | Error::Read(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// The innermost reason, for the log line.
    pub fn detail(&self) -> String {
        match self {
            Error::Connect(e) | Error::Write(e) | Error::Read(e) => e.to_string(),
            Error::ConnectTimeout => "connect timed out".into(),
            Error::Closed => "connection closed before the answer's head".into(),
            Error::BodyClosed => "connection closed before the body's end".into(),
            Error::Protocol(m) => format!("invalid answer: {m}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn chunked(input: &[&[u8]]) -> Result<(Vec<u8>, bool, usize), Error> {
        let mut framing = Framing::Chunked(Chunk::Size);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut pieces = 0;
        for part in input {
            buf.extend_from_slice(part);
            if let Some(b) = decode(&mut framing, &mut buf)? {
                out.extend_from_slice(&b);
                pieces += 1;
            }
        }
        Ok((out, framing == Framing::Done, pieces))
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for cut in 0..wire.len() {
            for cut2 in cut..wire.len() {
                let (out, done, _) =
                    chunked(&[&wire[..cut], &wire[cut..cut2], &wire[cut2..]]).unwrap();
                assert_eq!(out, b"hello, world", "cut at {cut}/{cut2}");
                assert!(done, "cut at {cut}/{cut2}");
            }
        }
        // Everything at once comes out as one piece.
        let (out, done, pieces) = chunked(&[wire]).unwrap();
        assert_eq!(
            (out.as_slice(), done, pieces),
            (&b"hello, world"[..], true, 1)
        );
    }

    #[test]
    fn bad_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\nab\r\n"[..],
            b"2\r\nabXY",
            b"\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert!(
                chunked(&[wire]).is_err(),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn heads_set_framing_and_reuse() {
        let head = |s: &str| match parse_head(&mut BytesMut::from(s)).unwrap() {
            Parsed::Final(p) => (p.status, p.framing, p.keep_alive),
            _ => panic!("not final: {s}"),
        };
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"),
            (200, Framing::Length(12), true)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
            (200, Framing::Chunked(Chunk::Size), false)
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
            head("HTTP/1.1 204 No Content\r\n\r\n"),
            (204, Framing::Length(0), true)
        );
        let mut b = BytesMut::from("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert!(matches!(parse_head(&mut b), Ok(Parsed::Informational)));
        assert!(matches!(parse_head(&mut b), Ok(Parsed::Partial)));
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n",
            "HTTQ 200\r\n\r\n",
        ] {
            assert!(parse_head(&mut BytesMut::from(bad)).is_err(), "{bad}");
        }
    }

    /// A one-connection-at-a-time server answering each request with the
    /// given raw answers in turn; returns its address and the number of
    /// connections it accepted.
    async fn server(answers: Vec<&'static str>) -> (Arc<str>, Rc<Cell<usize>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: Arc<str> = l.local_addr().unwrap().to_string().into();
        let accepted = Rc::new(Cell::new(0));
        let acc = accepted.clone();
        tokio::task::spawn_local(async move {
            let mut answers = answers.into_iter();
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                acc.set(acc.get() + 1);
                let mut buf = vec![0u8; 65536];
                'conn: loop {
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break 'conn;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    let Some(a) = answers.next() else { return };
                    if a == "CLOSE" {
                        break 'conn;
                    }
                    s.write_all(a.as_bytes()).await.unwrap();
                    if a.contains("connection: close") || a.ends_with("\r\n\r\nbye") {
                        break 'conn;
                    }
                }
            }
        });
        (addr, accepted)
    }

    fn pool() -> Pool {
        Pool::new(PoolConfig {
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            max_idle_per_host: 4,
            tcp_keepalive: None,
        })
    }

    async fn post(pool: &Pool, addr: &Arc<str>) -> Result<(u16, Bytes), Error> {
        let body = Bytes::from_static(b"{}");
        let r = pool
            .send(Request {
                addr,
                head_prefix: b"POST /v1/x HTTP/1.1\r\nhost: t\r\n",
                header_lines: b"x-test: 1\r\n",
                body: &body,
            })
            .await?;
        Ok((r.status, r.body.collect().await?))
    }

    #[tokio::test]
    async fn connections_are_reused_and_closed_ones_replaced() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (addr, accepted) = server(vec![
                    "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
                    // The server drops the kept connection without answering:
                    // the request goes again on a new connection.
                    "CLOSE",
                    "HTTP/1.1 201 Created\r\ncontent-length: 3\r\nconnection: close\r\n\r\nnew",
                ])
                .await;
                let p = pool();
                assert_eq!(post(&p, &addr).await.unwrap(), (200, Bytes::from("ok")));
                assert_eq!(p.idle_count(), 1);
                assert_eq!(post(&p, &addr).await.unwrap(), (200, Bytes::from("hi")));
                assert_eq!(accepted.get(), 1, "second request reused the connection");
                assert_eq!(post(&p, &addr).await.unwrap(), (201, Bytes::from("new")));
                assert_eq!(accepted.get(), 2);
                assert_eq!(p.idle_count(), 0, "`connection: close` is not kept");
            })
            .await;
    }

    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                // Answers, then closes the connection while it sits idle.
                let (addr, accepted) = server(vec![
                    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nbye",
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nagain",
                ])
                .await;
                let p = pool();
                assert_eq!(post(&p, &addr).await.unwrap(), (200, Bytes::from("bye")));
                assert_eq!(p.idle_count(), 1);
                // Let the event loop see the close.
                tokio::time::sleep(Duration::from_millis(50)).await;
                assert_eq!(post(&p, &addr).await.unwrap(), (200, Bytes::from("again")));
                assert_eq!(accepted.get(), 2);
            })
            .await;
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let (addr, _) = server(vec![
                    "HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nshort",
                ])
                .await;
                let e = post(&pool(), &addr).await.unwrap_err();
                assert!(e.is_body(), "{e}");
            })
            .await;
    }

    #[tokio::test]
    async fn refused_connections_are_connect_errors() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr: Arc<str> = l.local_addr().unwrap().to_string().into();
        drop(l);
        let e = post(&pool(), &addr).await.unwrap_err();
        assert!(e.is_connect() && !e.is_timeout(), "{e}");
    }
}
