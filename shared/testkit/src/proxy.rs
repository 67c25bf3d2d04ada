//! A TCP proxy whose connections can go silent: [`TcpProxy::stall`] makes
//! every open connection (or [`TcpProxy::stall_connection`] one of them)
//! stop forwarding in both directions while staying open — what a client
//! sees when its peer vanishes without a FIN (a crashed host, an expired
//! NAT entry). New connections are forwarded normally unless
//! [`TcpProxy::stall_new`] says otherwise.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Shared {
    /// One flag per accepted connection, in accept order: set = silent.
    stalled: Mutex<Vec<Arc<AtomicBool>>>,
    stall_new: AtomicBool,
    accepted: AtomicUsize,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// A proxy from a free port on 127.0.0.1 to `target`.
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: u16) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            stalled: Mutex::new(Vec::new()),
            stall_new: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.accepted.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let stalled = Arc::new(AtomicBool::new(s.stall_new.load(Ordering::SeqCst)));
                s.stalled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(stalled.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let up = tokio::spawn(pump(cr, sw, stalled.clone()));
                let down = tokio::spawn(pump(sr, cw, stalled));
                let mut tasks = s.tasks.lock().unwrap_or_else(|e| e.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(up);
                tasks.push(down);
            }
        });
        TcpProxy {
            port,
            shared,
            accept,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every open connection stops forwarding, silently, and stays open.
    pub fn stall(&self) {
        for f in self.flags().iter() {
            f.store(true, Ordering::SeqCst);
        }
    }

    /// Connection `i` (in accept order, from 0) goes silent.
    pub fn stall_connection(&self, i: usize) {
        if let Some(f) = self.flags().get(i) {
            f.store(true, Ordering::SeqCst);
        }
    }

    fn flags(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicBool>>> {
        self.shared
            .stalled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether connections accepted from now on are silent from the start.
    pub fn stall_new(&self, on: bool) {
        self.shared.stall_new.store(on, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until either side closes; once the connection is
/// stalled, holds both halves open and forwards nothing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    flag: Arc<AtomicBool>,
) {
    let stalled = || flag.load(Ordering::SeqCst);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled() {
            return std::future::pending().await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled() {
            return std::future::pending().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for t in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }
}
