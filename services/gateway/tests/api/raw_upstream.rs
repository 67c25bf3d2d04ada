//! An upstream at the socket level, for the byte-level faults an HTTP
//! server cannot stage: it reads each whole POST (head and `Content-Length`
//! body), counts it, and then closes the connection without a byte of
//! answer, sends a whole answer without a `Content-Length` in chunked
//! framing, or sends one SSE event that never ends. Every other upstream of
//! these tests is `services/mock-upstream` (see `helpers::upstream`):
//! actix-web, which it is built on, always answers a request it read, frames
//! a whole JSON answer with a `Content-Length`, and ends each event it
//! writes, so these three stay here.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Read the whole request, then close the connection.
    DropAfterRequest,
    /// Answer 200 with a chunked JSON body of this many bytes.
    ChunkedAnswer(usize),
    /// Answer 200 `text/event-stream` with one event that never ends:
    /// `data: ` and then 1 KiB of `x` every 5 ms until the peer goes away.
    EndlessEvent,
}

pub struct RawUpstream {
    pub port: u16,
    posts: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(fault: Fault) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (p, h) = (posts.clone(), heads.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, fault, p.clone(), h.clone()));
            }
        });
        RawUpstream {
            port,
            posts,
            heads,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Whole POSTs received so far.
    pub fn posts(&self) -> usize {
        self.posts.load(SeqCst)
    }

    /// The request heads received, as text.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut sock: TcpStream,
    fault: Fault,
    posts: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let Ok(n) = sock.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        if buf.len() < end + 4 + len {
            continue;
        }
        if head.starts_with("POST ") {
            heads.lock().unwrap().push(head);
            posts.fetch_add(1, SeqCst);
        }
        break;
    }
    match fault {
        Fault::DropAfterRequest => {
            let _ = sock.shutdown().await;
        }
        Fault::ChunkedAnswer(n) => {
            let mut out =
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                    .to_vec();
            let body = format!("{{\"padding\":\"{}\"}}", "p".repeat(n.saturating_sub(14)));
            for piece in body.as_bytes().chunks(1024) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            let _ = sock.write_all(&out).await;
            let _ = sock.read(&mut chunk).await;
        }
        Fault::EndlessEvent => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n";
            if sock.write_all(head).await.is_err() {
                return;
            }
            let piece = format!("400\r\n{}\r\n", "x".repeat(1024));
            while sock.write_all(piece.as_bytes()).await.is_ok() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}
