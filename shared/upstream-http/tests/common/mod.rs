//! A scripted upstream on a real socket that writes exact bytes and counts
//! what it received, and the client calls the tests make.

#![allow(dead_code)]

use aigw_upstream_http::{Error, Pool, PoolConfig, Request};
use bytes::Bytes;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream does next on one connection.
#[derive(Clone)]
pub enum Act {
    /// Reads one whole request, then writes these bytes.
    Answer(Vec<u8>),
    /// Reads one whole request, then closes the connection.
    ReadThenClose,
    /// Reads one request's head (not its body), then resets the connection.
    ReadHeadThenReset,
    /// Closes the connection without reading.
    Close,
}

pub fn answer(bytes: &[u8]) -> Act {
    Act::Answer(bytes.to_vec())
}

/// What the upstream received, counted as it happened.
#[derive(Default)]
pub struct Counts {
    accepted: AtomicUsize,
    heads: AtomicUsize,
    requests: AtomicUsize,
    closed: AtomicUsize,
}

pub struct Upstream {
    pub addr: Arc<str>,
    counts: Arc<Counts>,
}

impl Upstream {
    /// Connection `i` follows `scripts[i]`; once its script is done (and on
    /// connections beyond the scripts) it reads and counts requests without
    /// answering, until the client closes it.
    pub async fn start(scripts: Vec<Vec<Act>>) -> Upstream {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: Arc<str> = l.local_addr().unwrap().to_string().into();
        let counts = Arc::new(Counts::default());
        let c = counts.clone();
        tokio::spawn(async move {
            let mut scripts = scripts.into_iter();
            loop {
                let (s, _) = l.accept().await.unwrap();
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let script = scripts.next().unwrap_or_default();
                tokio::spawn(serve(s, script, c.clone()));
            }
        });
        Upstream { addr, counts }
    }

    /// Connections accepted.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Request heads received, complete bodies or not.
    pub fn heads(&self) -> usize {
        self.counts.heads.load(Ordering::SeqCst)
    }

    /// Requests received whole (head and every byte of the body).
    pub fn requests(&self) -> usize {
        self.counts.requests.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the upstream closed `n` connections itself.
    pub async fn closed(&self, n: usize) {
        for _ in 0..1000 {
            if self.counts.closed.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the upstream did not close {n} connection(s)");
    }
}

async fn serve(mut s: TcpStream, script: Vec<Act>, c: Arc<Counts>) {
    let mut buf = Vec::new();
    for act in script {
        match act {
            Act::Answer(bytes) => {
                if !read_request(&mut s, &mut buf, &c, true).await
                    || s.write_all(&bytes).await.is_err()
                {
                    return;
                }
            }
            Act::ReadThenClose => {
                read_request(&mut s, &mut buf, &c, true).await;
                return close(s, &c);
            }
            Act::ReadHeadThenReset => {
                read_request(&mut s, &mut buf, &c, false).await;
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
                return close(s, &c);
            }
            Act::Close => return close(s, &c),
        }
    }
    while read_request(&mut s, &mut buf, &c, true).await {}
}

fn close(s: TcpStream, c: &Counts) {
    drop(s);
    c.closed.fetch_add(1, Ordering::SeqCst);
}

/// Reads one request: its head, and its `Content-Length` body when `body`.
/// False when the client closed the connection first.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>, c: &Counts, body: bool) -> bool {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !read_more(s, buf).await {
            return false;
        }
    };
    c.heads.fetch_add(1, Ordering::SeqCst);
    if !body {
        return true;
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        if !read_more(s, buf).await {
            return false;
        }
    }
    buf.drain(..head_end + len);
    c.requests.fetch_add(1, Ordering::SeqCst);
    true
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 64 * 1024];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

pub fn pool() -> Pool {
    Pool::new(PoolConfig {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(60),
        max_idle_per_host: 4,
        tcp_keepalive: None,
    })
}

/// Posts `body` and reads the whole answer.
pub async fn post_body(pool: &Pool, addr: &Arc<str>, body: Bytes) -> Result<(u16, Bytes), Error> {
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

pub async fn post(pool: &Pool, addr: &Arc<str>) -> Result<(u16, Bytes), Error> {
    post_body(pool, addr, Bytes::from_static(b"{}")).await
}

/// Runs a test on one thread, as the gateway's workers run the pool; a
/// client that waits for an answer that never comes fails instead of
/// hanging.
pub fn run(test: impl Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        tokio::time::timeout(Duration::from_secs(30), test)
            .await
            .expect("the test did not finish within 30 s")
    });
}
