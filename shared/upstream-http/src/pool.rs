//! The per-thread keep-alive pool, sending a request and reading its
//! answer on the caller's task.

use crate::error::Error;
use crate::framing::{decode, Framing};
use crate::head::{parse_head, Fields, Parsed};
use crate::held::Held;
use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Largest answer head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Room reserved for a read once the socket is readable (see
/// [`poll_read_buf`]).
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
    /// Looked up twice per request (checkout, check-in): foldhash, not
    /// SipHash; its keys are configured upstream addresses.
    idle: RefCell<foldhash::HashMap<Arc<str>, Vec<Idle>>>,
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
    /// What the socket holds to read now (bytes, an end of file or an
    /// error), asked of the kernel with a non-blocking peek: the runtime's
    /// readiness flags may not have caught up with a close yet.
    fn peek(&self) -> io::Result<usize> {
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        socket2::SockRef::from(&self.io).peek(&mut probe)
    }

    /// False when the peer closed the connection or sent something while
    /// idle.
    fn idle_ok(&self) -> bool {
        self.buf.is_empty()
            && matches!(self.peek(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Whether a byte of an answer arrived.
    fn answered(&self) -> bool {
        !self.buf.is_empty() || matches!(self.peek(), Ok(n) if n > 0)
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
                idle: RefCell::new(foldhash::HashMap::default()),
                sweeper: Cell::new(false),
            }),
        }
    }

    /// Idle connections held now (all addresses).
    pub fn idle_count(&self) -> usize {
        self.inner.idle.borrow().values().map(Vec::len).sum()
    }

    /// Sends `req` once and reads the answer's head.
    ///
    /// A request goes on a second connection only when the first was a
    /// reused one whose write failed before the whole request was written
    /// and no byte of an answer had arrived: the upstream cannot have
    /// processed it. Every other failure is returned as it is.
    pub async fn send(&self, req: Request<'_>) -> Result<Response, Error> {
        let wire = encode_request(&req);
        if let Some(conn) = self.inner.checkout(req.addr) {
            match exchange(conn, &wire, req.body).await {
                Ok(head) => return Ok(self.response(req.addr, head)),
                Err(Failed { error, resend }) if !resend => return Err(error),
                Err(_) => {}
            }
        }
        let conn = self.inner.connect(req.addr).await?;
        let head = exchange(conn, &wire, req.body).await.map_err(|f| f.error)?;
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
    /// A kept connection to `addr` that is still open and quiet; closed
    /// ones are dropped here, before a byte of the request is written.
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

    fn checkin(self: &Rc<Self>, addr: &Arc<str>, mut conn: Conn) {
        if !conn.buf.is_empty() {
            // Bytes beyond the answer: the connection is out of step.
            return;
        }
        // An idle connection holds no buffer (the next read reserves one).
        conn.buf = BytesMut::new();
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

/// A failed exchange, and whether the request may go again on a new
/// connection: only when the write failed before the whole request was
/// written and nothing of an answer had arrived.
struct Failed {
    error: Error,
    resend: bool,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Self {
        Failed {
            error,
            resend: false,
        }
    }
}

/// Writes the request and reads the answer's head.
async fn exchange(mut conn: Conn, wire: &[u8], body: &Bytes) -> Result<(Conn, Fields), Failed> {
    let mut written = conn.io.write_all(wire).await;
    if written.is_ok() && body.len() > COALESCE_BODY {
        written = conn.io.write_all(body).await;
    }
    if let Err(e) = written {
        return Err(Failed {
            resend: !conn.answered(),
            error: Error::Write(e),
        });
    }
    // From here on the upstream may have the whole request.
    loop {
        match parse_head(&mut conn.buf)? {
            Parsed::Final(f) => return Ok((conn, f)),
            Parsed::Informational => continue,
            Parsed::Partial => {}
        }
        if conn.buf.len() >= MAX_HEAD_BYTES {
            return Err(Error::Protocol("answer head too large").into());
        }
        let n = read_buf(&conn.io, &mut conn.buf)
            .await
            .map_err(Error::Read)?;
        if n == 0 {
            return Err(Error::Closed.into());
        }
    }
}

async fn read_buf(io: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| poll_read_buf(io, cx, buf, READ_CHUNK)).await
}

/// Reads what the socket holds into `buf`, with at least `want` bytes of
/// room. The room is reserved only once the socket is readable, and an
/// empty buffer is let go while it is not: a connection that waits on its
/// upstream (a request before its answer, a stream between two events)
/// holds no read buffer, which is most of a stream's life.
fn poll_read_buf(
    io: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
    want: usize,
) -> Poll<io::Result<usize>> {
    loop {
        if io.poll_read_ready(cx)?.is_pending() {
            if buf.is_empty() && buf.capacity() > 0 {
                *buf = BytesMut::new();
            }
            return Poll::Pending;
        }
        buf.reserve(want);
        match io.try_read_buf(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            done => return Poll::Ready(done),
        }
    }
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
            match poll_read_buf(&conn.io, cx, &mut conn.buf, want) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    fn poll_once(io: &TcpStream, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let waker = std::task::Waker::noop();
        poll_read_buf(io, &mut Context::from_waker(waker), buf, READ_CHUNK)
    }

    #[tokio::test]
    async fn a_connection_waiting_on_its_upstream_holds_no_read_buffer() {
        let (client, mut server) = pair().await;
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        assert!(poll_once(&client, &mut buf).is_pending());
        assert_eq!(buf.capacity(), 0);

        server.write_all(b"data: 1\n\n").await.unwrap();
        let n = std::future::poll_fn(|cx| poll_read_buf(&client, cx, &mut buf, READ_CHUNK))
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"data: 1\n\n");
        assert!(buf.capacity() >= READ_CHUNK);
    }

    #[tokio::test]
    async fn a_partial_answer_is_kept_while_waiting_for_the_rest() {
        let (client, mut server) = pair().await;
        server.write_all(b"data: 1\n").await.unwrap();
        let mut buf = BytesMut::new();
        std::future::poll_fn(|cx| poll_read_buf(&client, cx, &mut buf, READ_CHUNK))
            .await
            .unwrap();
        assert!(poll_once(&client, &mut buf).is_pending());
        assert_eq!(&buf[..], b"data: 1\n");
    }
}
