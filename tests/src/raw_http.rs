//! A raw HTTP client: any bytes on a TCP connection, and the answer as the
//! server sent it (for malformed requests no HTTP library would send).

use serde_json::Value;
use std::time::Duration;

/// An answer read off a raw TCP connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// `None`: the connection closed (or timed out) without a status line.
    pub status: Option<u16>,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as is (it should say `Connection: close`) to
/// 127.0.0.1:`port` and reads the answer until the server closes or
/// `limit` passes. Any bytes can be sent: invalid UTF-8, odd methods,
/// broken framing.
pub async fn raw_http(port: u16, request: &[u8], limit: Duration) -> RawResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = Vec::new();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        // The server may answer (413, 431) and close before reading all of a
        // large request: a failed write is not an error here.
        let _ = s.write_all(request).await;
        let mut chunk = [0u8; 16384];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(limit, io).await;
    parse_raw(&buf)
}

fn parse_raw(buf: &[u8]) -> RawResponse {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let Some(split) = split else {
        return RawResponse {
            status: None,
            head: String::from_utf8_lossy(buf).into_owned(),
            body: Vec::new(),
        };
    };
    let head = String::from_utf8_lossy(&buf[..split]).into_owned();
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let mut body = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    RawResponse { status, head, body }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&b[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 || b.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[(eol + 2 + size + 2).min(b.len())..];
    }
    out
}

/// A request with `Content-Length` framing and `Connection: close`.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n")
        .into_bytes();
    for (k, v) in headers {
        r.extend_from_slice(k.as_bytes());
        r.extend_from_slice(b": ");
        r.extend_from_slice(v);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    r.extend_from_slice(body);
    r
}
