//! The SSE pass-through: forwards an upstream stream to the client event by
//! event as it arrives (no buffering beyond an incomplete event), takes the
//! usage chunk for accounting and hides it from a client that did not ask
//! for it, and ends a broken stream with an SSE error event.
//!
//! The stream owns the request's [`RequestGuard`] and the upstream body:
//! when the client goes away actix drops this stream, which drops the
//! upstream response (cancelling the upstream request) and accounts the
//! request as 499 `client_disconnected`.

use crate::accounting::RequestGuard;
use crate::health::AttemptGuard;
use crate::usage;
use bytes::{Bytes, BytesMut};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub struct ProxyStream {
    upstream: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    first: Option<Bytes>,
    guard: RequestGuard,
    attempt: Option<AttemptGuard>,
    status: u16,
    hide_usage: bool,
    buf: BytesMut,
    deadline: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl ProxyStream {
    pub fn new(
        upstream: BoxStream<'static, reqwest::Result<Bytes>>,
        first: Bytes,
        guard: RequestGuard,
        attempt: AttemptGuard,
        status: u16,
        hide_usage: bool,
        deadline: tokio::time::Instant,
    ) -> Self {
        ProxyStream {
            upstream: Some(upstream),
            first: Some(first),
            guard,
            attempt: Some(attempt),
            status,
            hide_usage,
            buf: BytesMut::new(),
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            done: false,
        }
    }

    /// Appends `chunk` and returns the complete events to forward.
    fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.buf.extend_from_slice(chunk);
        let end = last_event_end(&self.buf);
        if end == 0 {
            return Bytes::new();
        }
        let complete = self.buf.split_to(end).freeze();
        let mut out: Option<BytesMut> = None;
        let mut pos = 0;
        while pos < complete.len() {
            let len = next_event_len(&complete[pos..]).unwrap_or(complete.len() - pos);
            let event = complete.slice(pos..pos + len);
            let keep = self.inspect(&event);
            match (&mut out, keep) {
                (None, false) => {
                    let mut o = BytesMut::with_capacity(complete.len());
                    o.extend_from_slice(&complete[..pos]);
                    out = Some(o);
                }
                (Some(o), true) => o.extend_from_slice(&event),
                _ => {}
            }
            pos += len;
        }
        match out {
            None => complete,
            Some(o) => o.freeze(),
        }
    }

    /// Accounts for one event; false when it must not reach the client.
    fn inspect(&mut self, event: &Bytes) -> bool {
        let Some(payload) = data_payload(event) else {
            return true;
        };
        if payload.as_ref() == b"[DONE]" {
            return true;
        }
        let info = usage::inspect_event(&payload);
        if let Some(u) = info.usage {
            self.guard.set_usage(u);
            if info.usage_only && self.hide_usage {
                return false;
            }
        }
        if !self.guard.has_usage() {
            self.guard.keep_event(payload);
        }
        true
    }

    /// Ends the stream after an upstream failure.
    fn fail(&mut self, status: u16, kind: &'static str, message: &str) -> Bytes {
        self.done = true;
        self.upstream = None;
        self.buf.clear();
        if let Some(a) = self.attempt.as_mut() {
            a.failure();
        }
        self.guard.finish(status, Some(kind));
        let event = serde_json::json!({
            "error": {"message": message, "type": "server_error", "param": null, "code": kind}
        });
        Bytes::from(format!("data: {event}\n\n"))
    }
}

impl Stream for ProxyStream {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        loop {
            if let Some(first) = this.first.take() {
                let out = this.process(&first);
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(out)));
                }
                continue;
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                tracing::warn!("upstream stream exceeded the total time limit");
                let ev = this.fail(
                    504,
                    "upstream_timeout",
                    "The upstream stream exceeded the gateway's total time limit.",
                );
                return Poll::Ready(Some(Ok(ev)));
            }
            let Some(up) = this.upstream.as_mut() else {
                return Poll::Ready(None);
            };
            match up.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    let out = this.process(&chunk);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %crate::health::without_url(&e), "upstream stream broke");
                    let ev = this.fail(
                        502,
                        "upstream_stream_error",
                        "The upstream stream ended unexpectedly.",
                    );
                    return Poll::Ready(Some(Ok(ev)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.upstream = None;
                    // A final event without its blank line still counts.
                    let rest = this.buf.split().freeze();
                    let keep = !rest.is_empty() && this.inspect(&rest);
                    if let Some(a) = this.attempt.as_mut() {
                        a.success();
                    }
                    let status = this.status;
                    this.guard.finish(status, None);
                    return Poll::Ready(if keep { Some(Ok(rest)) } else { None });
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Length of the first event in `b` including its blank-line terminator.
fn next_event_len(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// End of the last complete event in `b` (0 when there is none).
fn last_event_end(b: &[u8]) -> usize {
    let mut end = 0;
    while let Some(len) = next_event_len(&b[end..]) {
        end += len;
    }
    end
}

/// The `data:` payload of an event (several data lines joined by `\n`).
fn data_payload(event: &Bytes) -> Option<Bytes> {
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
    }
}
