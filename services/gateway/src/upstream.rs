//! The HTTP client of the request path.
//!
//! Plain-HTTP instances go through the gateway's own HTTP/1.1 client
//! ([`aigw_upstream_http`], the "direct" path): one keep-alive pool per HTTP worker
//! thread, driven by the request handler itself, with the request line and
//! `Host` prebuilt per instance when a snapshot is compiled. No connection
//! task sits between the socket and the handler, and a body read hands over
//! everything the socket received so far.
//!
//! HTTPS instances, and every instance when an HTTP proxy is configured in
//! the environment (`HTTP_PROXY`/`ALL_PROXY`, which reqwest honours), go
//! through reqwest ("general" path: rustls, proxy variables). Both paths
//! answer with the same [`UpstreamResponse`].

use crate::headers::Forward;
use crate::routing::{Instance, Target};
use aigw_upstream_http as h1;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Body;
use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Idle upstream connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream host (per worker on the direct path).
const POOL_MAX_IDLE_PER_HOST: usize = 512;
/// TCP keep-alive probes on upstream connections after this much silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// What both paths are built from.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    /// Plain-HTTP instances use the direct path; false when an HTTP proxy is
    /// configured, so that reqwest applies it as before.
    pub direct: bool,
}

/// The general client (reqwest), shared by all workers and used by the
/// active health checks too.
pub fn general_client(connect_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// One HTTP worker's upstream client. Build it on the worker thread (in the
/// app factory) and use it only there: the direct path's pool belongs to
/// that thread.
pub struct UpstreamClient {
    direct: Option<h1::Pool>,
    general: reqwest::Client,
}

impl UpstreamClient {
    pub fn for_worker(cfg: &UpstreamConfig, general: reqwest::Client) -> Self {
        let direct = cfg.direct.then(|| {
            h1::Pool::new(h1::PoolConfig {
                connect_timeout: cfg.connect_timeout,
                idle_timeout: POOL_IDLE_TIMEOUT,
                max_idle_per_host: POOL_MAX_IDLE_PER_HOST,
                tcp_keepalive: Some(TCP_KEEPALIVE),
            })
        });
        UpstreamClient { direct, general }
    }

    /// Sends `POST` to the instance's URL for `target` with `headers` and
    /// `body`; resolves once the answer's head arrived.
    pub async fn send(
        &self,
        inst: &Instance,
        target: Target,
        headers: &Forward<'_>,
        body: Bytes,
    ) -> Result<UpstreamResponse, UpstreamError> {
        if let (Some(pool), Some(direct)) = (&self.direct, inst.direct.as_ref()) {
            let resp = pool
                .send(h1::Request {
                    addr: &direct.addr,
                    head_prefix: direct.head_prefix(target),
                    header_lines: &headers.header_lines(),
                    body: &body,
                })
                .await
                .map_err(UpstreamError::Direct)?;
            return Ok(UpstreamResponse {
                status: resp.status,
                headers: resp.headers,
                body: UpstreamBody::Direct(resp.body),
            });
        }
        let resp = self
            .general
            .post(inst.url(target).clone())
            .headers(headers.header_map())
            .body(body)
            .send()
            .await
            .map_err(UpstreamError::General)?;
        let (parts, body) = http::Response::from(resp).into_parts();
        Ok(UpstreamResponse {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: UpstreamBody::General(body),
        })
    }
}

/// An upstream answer whose head arrived.
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
}

/// The body of an upstream answer, read chunk by chunk as it arrives.
/// Dropping it before the end closes the upstream connection (cancelling
/// the request upstream).
pub enum UpstreamBody {
    Direct(h1::Body),
    General(reqwest::Body),
    /// Another body's chunks rewritten on the way (a provider's stream
    /// translated to OpenAI's).
    Mapped(Box<Mapped>),
}

/// Rewrites a body chunk by chunk; keeps whatever it needs between chunks
/// (an event split across two of them).
pub trait ChunkMap {
    /// What `chunk` becomes (empty: nothing yet).
    fn map(&mut self, chunk: &[u8]) -> Bytes;
    /// What is left to send when the body ended cleanly.
    fn end(&mut self) -> Bytes;
}

pub struct Mapped {
    inner: UpstreamBody,
    map: Box<dyn ChunkMap>,
    ended: bool,
}

impl UpstreamBody {
    /// This body with each chunk passed through `map`.
    pub fn mapped(self, map: Box<dyn ChunkMap>) -> UpstreamBody {
        UpstreamBody::Mapped(Box::new(Mapped {
            inner: self,
            map,
            ended: false,
        }))
    }
}

impl Mapped {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            match self.inner.poll_chunk(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = self.map.map(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(None) => {
                    self.ended = true;
                    let out = self.map.end();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                other => return other,
            }
        }
    }
}

impl UpstreamBody {
    /// The next data chunk; `None` at the end. Trailers are skipped. The
    /// direct path hands over everything received so far in one chunk; the
    /// general path one HTTP chunk at a time.
    pub fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, UpstreamError>>> {
        loop {
            let frame = match self {
                UpstreamBody::Direct(b) => {
                    return b
                        .poll_chunk(cx)
                        .map(|c| c.map(|r| r.map_err(UpstreamError::Direct)))
                }
                UpstreamBody::General(b) => match Pin::new(b).poll_frame(cx) {
                    Poll::Ready(Some(Ok(f))) => f,
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Some(Err(UpstreamError::General(e))))
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Pending => return Poll::Pending,
                },
                UpstreamBody::Mapped(m) => return m.poll_chunk(cx),
            };
            if let Ok(data) = frame.into_data() {
                return Poll::Ready(Some(Ok(data)));
            }
        }
    }

    /// Whether one [`poll_chunk`](Self::poll_chunk) hands over everything
    /// received so far (the direct path), so that waiting a scheduler turn
    /// for more cannot gather anything.
    pub fn hands_over_all(&self) -> bool {
        match self {
            UpstreamBody::Direct(_) => true,
            UpstreamBody::General(_) => false,
            UpstreamBody::Mapped(m) => m.inner.hands_over_all(),
        }
    }

    /// The next data chunk; `None` at the end.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, UpstreamError>> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// The whole body if it is at most `limit` bytes; `Err(None)` past
    /// the limit (the rest is not read).
    pub async fn collect_at_most(mut self, limit: usize) -> Result<Bytes, Option<UpstreamError>> {
        let mut first: Option<Bytes> = None;
        let mut more = bytes::BytesMut::new();
        let mut total = 0usize;
        while let Some(chunk) = self.chunk().await {
            let chunk = chunk.map_err(Some)?;
            total = total.saturating_add(chunk.len());
            if total > limit {
                return Err(None);
            }
            match first.take() {
                None if more.is_empty() => first = Some(chunk),
                Some(f) => {
                    more.extend_from_slice(&f);
                    more.extend_from_slice(&chunk);
                }
                None => more.extend_from_slice(&chunk),
            }
        }
        Ok(match first {
            Some(f) => f,
            None => more.freeze(),
        })
    }

    /// The whole body (one chunk is returned without copying).
    pub async fn collect(self) -> Result<Bytes, UpstreamError> {
        match self {
            UpstreamBody::Direct(b) => b.collect().await.map_err(UpstreamError::Direct),
            UpstreamBody::General(b) => b
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(UpstreamError::General),
            mut mapped @ UpstreamBody::Mapped(_) => {
                let mut out = bytes::BytesMut::new();
                while let Some(chunk) = mapped.chunk().await {
                    out.extend_from_slice(&chunk?);
                }
                Ok(out.freeze())
            }
        }
    }
}

/// A failed exchange with an upstream. Its text never carries the URL
/// (whose userinfo may hold credentials) or a header.
pub enum UpstreamError {
    /// Direct path.
    Direct(h1::Error),
    General(reqwest::Error),
}

impl UpstreamError {
    /// A timeout (connect timeout included), as opposed to a refused or
    /// broken connection.
    pub fn is_timeout(&self) -> bool {
        match self {
            UpstreamError::General(e) => e.is_timeout(),
            UpstreamError::Direct(e) => e.is_timeout(),
        }
    }

    /// The upstream provably did not get the whole request (it could not
    /// be reached), so sending it again cannot process it twice. Any other
    /// failure happened after the request left: its outcome is unknown.
    pub fn request_unsent(&self) -> bool {
        match self {
            UpstreamError::Direct(e) => e.request_unsent(),
            UpstreamError::General(e) => e.is_connect(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            _ if self.is_timeout() => "timeout",
            UpstreamError::Direct(e) if e.is_connect() => "connect error",
            UpstreamError::General(e) if e.is_connect() => "connect error",
            UpstreamError::Direct(e) if e.is_body() => "body error",
            UpstreamError::General(e) if e.is_body() || e.is_decode() => "body error",
            _ => "request error",
        }
    }
}

impl fmt::Display for UpstreamError {
    /// The kind and the innermost cause (e.g. `connect error: Connection
    /// refused (os error 111)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top: &(dyn StdError + 'static) = match self {
            UpstreamError::Direct(e) => return write!(f, "{}: {}", self.kind(), e.detail()),
            UpstreamError::General(e) => e,
        };
        let mut src = top.source();
        let mut detail = None;
        while let Some(s) = src {
            detail = Some(s);
            src = s.source();
        }
        match detail {
            Some(d) => write!(f, "{}: {d}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl fmt::Debug for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
