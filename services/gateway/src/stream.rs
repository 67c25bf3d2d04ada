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
use crate::error::{GatewayError, RelayError};
use crate::health::AttemptGuard;
use crate::sse::{data_payload, last_event_end, next_event_len};
use crate::upstream::{UpstreamBody, UpstreamError};
use crate::usage;
use actix_web::ResponseError;
use aigw_upstream_http::Held;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// Bounds of one relayed stream.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// Largest SSE event (an event without its terminator beyond this ends
    /// the stream).
    pub max_event_bytes: usize,
    /// Longest silence between two upstream chunks.
    pub idle_timeout: Duration,
}

pub struct ProxyStream {
    upstream: Option<UpstreamBody>,
    first: Option<Bytes>,
    /// Taken (and so accounted) when the stream ends early for a client
    /// that stopped reading.
    guard: Option<RequestGuard>,
    attempt: Option<AttemptGuard>,
    status: u16,
    hide_usage: bool,
    buf: BytesMut,
    /// Bytes of `buf` already searched for an event's end: each byte is
    /// scanned once however the event is split into chunks.
    scanned: usize,
    limits: RelayLimits,
    /// Fires at the earlier of the total deadline and the idle deadline
    /// (as last set; checked against `last_chunk` when it fires).
    timer: Pin<Box<tokio::time::Sleep>>,
    deadline: Instant,
    last_chunk: Instant,
    done: bool,
    held: Held,
    /// Scheduler turns taken for the output held now.
    turns: u8,
    /// How the upstream ended, when [`gather_burst`] already saw it.
    ended: Option<Ended>,
}

/// The end of an upstream body, seen ahead of time.
pub enum Ended {
    Clean,
    Broken(UpstreamError),
}

/// Gathers what the upstream connection already holds after the first
/// chunk of a stream, before the response head is written: the head and a
/// burst of events (or a whole short stream) then leave in one write. Each
/// round gives the connection task one scheduler turn; a round that brings
/// nothing (the connection waits on the network) ends the gathering, so
/// nothing is held for the upstream. A direct-path body handed over all it
/// had with the first chunk already: no turns are taken for it.
pub async fn gather_burst(first: Bytes, upstream: &mut UpstreamBody) -> (Bytes, Option<Ended>) {
    let mut held = Held::default();
    held.push(first);
    let mut ended = None;
    let turns = if upstream.hands_over_all() {
        0
    } else {
        MAX_GATHER_TURNS
    };
    for _ in 0..turns {
        if held.len() >= MAX_HELD_BYTES {
            break;
        }
        let mut yielded = false;
        let next = std::future::poll_fn(|cx| {
            if !yielded {
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(upstream.poll_chunk(cx))
        })
        .await;
        match next {
            Poll::Ready(Some(Ok(chunk))) => held.push(chunk),
            Poll::Ready(Some(Err(e))) => {
                ended = Some(Ended::Broken(e));
                break;
            }
            Poll::Ready(None) => {
                ended = Some(Ended::Clean);
                break;
            }
            Poll::Pending => break,
        }
    }
    (held.take().unwrap_or_default(), ended)
}

impl ProxyStream {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstream: UpstreamBody,
        first: Bytes,
        ended: Option<Ended>,
        guard: RequestGuard,
        attempt: AttemptGuard,
        status: u16,
        hide_usage: bool,
        deadline: Instant,
        limits: RelayLimits,
    ) -> Self {
        let now = Instant::now();
        ProxyStream {
            upstream: Some(upstream),
            first: Some(first),
            guard: Some(guard),
            attempt: Some(attempt),
            status,
            hide_usage,
            buf: BytesMut::new(),
            scanned: 0,
            limits,
            timer: Box::pin(tokio::time::sleep_until(
                deadline.min(now + limits.idle_timeout),
            )),
            deadline,
            last_chunk: now,
            done: false,
            held: Held::default(),
            turns: 0,
            ended,
        }
    }

    /// Appends `chunk` and returns the complete events to forward; an
    /// incomplete event over the size limit ends the stream.
    fn process(&mut self, chunk: &[u8]) -> Bytes {
        self.buf.extend_from_slice(chunk);
        // No event ends before `scanned`; a terminator may straddle it.
        let from = self.scanned.saturating_sub(2);
        let end = match next_event_len(&self.buf[from..]) {
            Some(len) => from + len + last_event_end(&self.buf[from + len..]),
            None => 0,
        };
        if end == 0 {
            self.scanned = self.buf.len();
            if self.buf.len() > self.limits.max_event_bytes {
                tracing::warn!(
                    limit = self.limits.max_event_bytes,
                    "upstream stream event too large"
                );
                return self.fail(RelayError::EventTooLarge);
            }
            return Bytes::new();
        }
        let complete = self.buf.split_to(end).freeze();
        // What is left was searched by `last_event_end`.
        self.scanned = self.buf.len();
        // Kept for counting until the usage chunk shows up (one reference
        // per read, not per event; before the events are inspected, so
        // the text is whole when `[DONE]` accounts the request).
        if let Some(g) = self.guard.as_mut().filter(|g| !g.has_usage()) {
            g.keep_stream_events(complete.clone());
        }
        let mut out: Option<BytesMut> = None;
        let mut pos = 0;
        while pos < complete.len() {
            let len = next_event_len(&complete[pos..]).unwrap_or(complete.len() - pos);
            let event = complete.slice(pos..pos + len);
            match (self.inspect(&event), &mut out) {
                (Verdict::Keep, None) => {}
                (Verdict::Keep, Some(o)) => o.extend_from_slice(&event),
                (verdict, o) => {
                    let o = o.get_or_insert_with(|| {
                        let mut o = BytesMut::with_capacity(complete.len());
                        o.extend_from_slice(&complete[..pos]);
                        o
                    });
                    if let Verdict::Replace(b) = verdict {
                        o.extend_from_slice(&b);
                    }
                }
            }
            pos += len;
        }
        match out {
            None => complete,
            Some(o) => o.freeze(),
        }
    }

    /// Accounts for one event and says what of it reaches the client.
    fn inspect(&mut self, event: &Bytes) -> Verdict {
        let Some(payload) = data_payload(event) else {
            return Verdict::Keep;
        };
        if payload.as_ref() == b"[DONE]" {
            // The answer is whole once this leaves: accounted (journaled) first.
            if let Some(g) = self.guard.as_mut() {
                g.finish(self.status, None);
                g.settle();
            }
            return Verdict::Keep;
        }
        let info = usage::inspect_event(&payload);
        let Some(u) = info.usage else {
            return Verdict::Keep;
        };
        if let Some(g) = self.guard.as_mut() {
            g.set_usage(u);
        }
        if !self.hide_usage {
            Verdict::Keep
        } else if info.usage_only {
            Verdict::Drop
        } else {
            // A final chunk that also carries choices (LiteLLM's shape):
            // the choices go on, the usage the gateway asked for does not.
            match usage::without_usage(&payload) {
                Some(p) => {
                    let mut ev = Vec::with_capacity(p.len() + 8);
                    ev.extend_from_slice(b"data: ");
                    ev.extend_from_slice(&p);
                    ev.extend_from_slice(b"\n\n");
                    Verdict::Replace(Bytes::from(ev))
                }
                None => Verdict::Drop,
            }
        }
    }

    /// Ends the stream after an upstream failure, with an SSE error event
    /// in OpenAI's error shape.
    fn fail(&mut self, e: RelayError) -> Bytes {
        self.done = true;
        self.upstream = None;
        self.buf.clear();
        if e.counts_against_health() {
            if let Some(a) = self.attempt.as_mut() {
                a.failure();
            }
        }
        let e = GatewayError::Relay(e);
        if let Some(g) = self.guard.as_mut() {
            g.finish(e.status_code().as_u16(), Some(e.kind()));
        }
        let event = serde_json::to_string(&e.envelope()).unwrap_or_default();
        Bytes::from(format!("data: {event}\n\n"))
    }

    /// Ends the stream for a client that stopped reading: the upstream
    /// connection closes, and the request is accounted now (its slot freed,
    /// its usage so far recorded) instead of when the server drops it.
    pub fn abandon(&mut self) {
        if self.done && self.guard.is_none() {
            return;
        }
        self.done = true;
        self.upstream = None;
        self.first = None;
        self.ended = None;
        self.buf.clear();
        self.held = Held::default();
        // The upstream was fine: the attempt is dropped unjudged.
        self.attempt = None;
        if let Some(mut g) = self.guard.take() {
            let e = GatewayError::Relay(RelayError::ClientStalled);
            g.finish(e.status_code().as_u16(), Some(e.kind()));
        }
    }
}

/// What of an upstream event reaches the client.
enum Verdict {
    Keep,
    Drop,
    Replace(Bytes),
}

/// Bound on output held back while the connection still has events
/// buffered (see [`ProxyStream::poll_next`]).
const MAX_HELD_BYTES: usize = 64 * 1024;
/// Bound on scheduler turns taken to gather one write.
const MAX_GATHER_TURNS: u8 = 32;

impl crate::client_watch::Abandon for ProxyStream {
    fn abandon(&mut self) {
        ProxyStream::abandon(self);
    }
}

impl Stream for ProxyStream {
    type Item = Result<Bytes, actix_web::Error>;

    /// Forwards events as they arrive, with one refinement for the general
    /// (reqwest) path: hyper hands over
    /// one HTTP chunk per poll (its connection task must run again to decode
    /// the next one from its buffer), and the server writes whenever this
    /// stream is pending. Events the upstream sent together would so leave
    /// in one write each. After an event, the stream therefore gives the
    /// connection task one scheduler turn (wakes itself, returns pending)
    /// before writing; when that turn brings nothing new — the connection is
    /// waiting on the network — what was gathered goes out at once. An event
    /// is thus never held for the upstream, only for work already queued on
    /// this thread. The direct path's body hands over everything the socket
    /// received in one poll, so its output is written at once.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                // Accounted (journaled) before the last chunk leaves.
                if let Some(g) = this.guard.as_mut() {
                    g.settle();
                }
                return Poll::Ready(this.held.take().map(Ok));
            }
            if let Some(first) = this.first.take() {
                let out = this.process(&first);
                this.held.push(out);
                continue;
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                let now = Instant::now();
                let idle_by = this.last_chunk + this.limits.idle_timeout;
                if now >= this.deadline {
                    tracing::warn!("upstream stream exceeded the total time limit");
                    let ev = this.fail(RelayError::TotalTimeout);
                    this.held.push(ev);
                } else if now >= idle_by {
                    tracing::warn!("upstream stream went silent");
                    let ev = this.fail(RelayError::IdleTimeout);
                    this.held.push(ev);
                } else {
                    // A chunk came since the timer was set: set it again.
                    this.timer.as_mut().reset(this.deadline.min(idle_by));
                }
                continue;
            }
            let next = match this.ended.take() {
                Some(Ended::Clean) => Poll::Ready(None),
                Some(Ended::Broken(e)) => Poll::Ready(Some(Err(e))),
                None => match this.upstream.as_mut() {
                    Some(up) => up.poll_chunk(cx),
                    None => {
                        this.done = true;
                        continue;
                    }
                },
            };
            match next {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.last_chunk = Instant::now();
                    let out = this.process(&chunk);
                    this.held.push(out);
                    if !this.held.is_empty()
                        && !this
                            .upstream
                            .as_ref()
                            .is_some_and(UpstreamBody::hands_over_all)
                        && this.held.len() < MAX_HELD_BYTES
                        && this.turns < MAX_GATHER_TURNS
                    {
                        this.turns += 1;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    if let Some(out) = this.held.take() {
                        this.turns = 0;
                        return Poll::Ready(Some(Ok(out)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "upstream stream broke");
                    let ev = this.fail(RelayError::StreamBroken);
                    this.held.push(ev);
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.upstream = None;
                    // A final event without its blank line still counts.
                    let rest = this.buf.split().freeze();
                    if !rest.is_empty() {
                        if let Some(g) = this.guard.as_mut().filter(|g| !g.has_usage()) {
                            g.keep_stream_events(rest.clone());
                        }
                        match this.inspect(&rest) {
                            Verdict::Keep => this.held.push(rest),
                            Verdict::Replace(b) => this.held.push(b),
                            Verdict::Drop => {}
                        }
                    }
                    if let Some(a) = this.attempt.as_mut() {
                        a.success();
                    }
                    let status = this.status;
                    if let Some(g) = this.guard.as_mut() {
                        g.finish(status, None);
                    }
                }
                Poll::Pending => {
                    this.turns = 0;
                    return match this.held.take() {
                        Some(out) => Poll::Ready(Some(Ok(out))),
                        None => Poll::Pending,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- gathering: events that arrived together leave together, and
    // nothing is ever held while the upstream is silent.

    use crate::accounting::Accounting;
    use crate::health::{HealthPolicy, InstanceState};
    use crate::routing::Endpoint;
    use aigw_metrics::families::gateway::{InstanceNs, INSTANCE_HEALTH};
    use aigw_metrics::{Recorder, RecorderConfig};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    fn event(n: usize) -> Bytes {
        Bytes::from(format!("data: {{\"n\":{n}}}\n\n"))
    }

    /// An upstream body fed by the test through a channel.
    fn upstream() -> (mpsc::UnboundedSender<Bytes>, UpstreamBody) {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        let s = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        (tx, UpstreamBody::General(reqwest::Body::wrap_stream(s)))
    }

    fn proxy_stream(body: UpstreamBody, first: Bytes, ended: Option<Ended>) -> ProxyStream {
        let recorder = Recorder::new(RecorderConfig::for_service("t"));
        let acc = Arc::new(Accounting::new(recorder.clone()));
        let state = Arc::new(InstanceState::new(
            INSTANCE_HEALTH.series(
                &recorder,
                &InstanceNs {
                    instance_id: "i",
                    namespace_code: "ns",
                },
            ),
            HealthPolicy {
                failure_threshold: 3,
                cooldown: std::time::Duration::from_secs(1),
                probe_failures: 1,
            },
            "i".into(),
        ));
        ProxyStream::new(
            body,
            first,
            ended,
            acc.start(Endpoint::Chat),
            AttemptGuard::new(state, false),
            200,
            false,
            tokio::time::Instant::now() + std::time::Duration::from_secs(60),
            RelayLimits {
                max_event_bytes: 1024,
                idle_timeout: std::time::Duration::from_secs(60),
            },
        )
    }

    /// Polls until the stream yields (or ends), counting the scheduler
    /// turns it asked for on the way.
    fn next_item(s: &mut ProxyStream) -> (Option<Bytes>, usize) {
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        for turns in 0..1000 {
            match Pin::new(&mut *s).poll_next(&mut cx) {
                Poll::Ready(item) => return (item.map(|r| r.unwrap()), turns),
                Poll::Pending => {}
            }
        }
        panic!("the stream never yielded");
    }

    #[tokio::test]
    async fn events_that_arrived_together_leave_in_one_write() {
        let (tx, body) = upstream();
        for n in 1..=3 {
            tx.send(event(n)).unwrap();
        }
        let mut s = proxy_stream(body, event(0), None);
        let (out, turns) = next_item(&mut s);
        let expected: Vec<u8> = (0..=3).flat_map(|n| event(n).to_vec()).collect();
        assert_eq!(out.unwrap(), expected);
        assert!(turns >= 3, "one turn per gathered event, got {turns}");
    }

    #[tokio::test]
    async fn nothing_is_held_while_the_upstream_is_silent() {
        let (tx, body) = upstream();
        let mut s = proxy_stream(body, event(0), None);
        // The upstream stays open and sends nothing more: the first event
        // goes out anyway.
        assert_eq!(next_item(&mut s).0.unwrap(), event(0));
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut s).poll_next(&mut cx).is_pending());
        tx.send(event(1)).unwrap();
        assert_eq!(next_item(&mut s).0.unwrap(), event(1));
        drop(tx);
        assert_eq!(next_item(&mut s).0, None);
    }

    #[tokio::test]
    async fn a_short_stream_is_gathered_whole_before_the_head_is_written() {
        let (tx, mut body) = upstream();
        for n in 1..=2 {
            tx.send(event(n)).unwrap();
        }
        tx.send(Bytes::from_static(b"data: [DONE]\n\n")).unwrap();
        drop(tx);
        let (first, ended) = gather_burst(event(0), &mut body).await;
        let mut expected: Vec<u8> = (0..=2).flat_map(|n| event(n).to_vec()).collect();
        expected.extend_from_slice(b"data: [DONE]\n\n");
        assert_eq!(first, expected);
        assert!(matches!(ended, Some(Ended::Clean)));
        // The stream then forwards it in one piece and ends.
        let mut s = proxy_stream(body, first, ended);
        assert_eq!(next_item(&mut s).0.unwrap(), expected);
        assert_eq!(next_item(&mut s).0, None);
    }

    #[tokio::test]
    async fn gathering_stops_at_a_silent_upstream() {
        let (tx, mut body) = upstream();
        tx.send(event(1)).unwrap();
        let (first, ended) = gather_burst(event(0), &mut body).await;
        let expected: Vec<u8> = (0..=1).flat_map(|n| event(n).to_vec()).collect();
        assert_eq!(first, expected);
        assert!(ended.is_none(), "the upstream is still open");
        drop(tx);
    }
}
