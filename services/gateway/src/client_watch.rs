//! Ends response streams whose client stopped reading.
//!
//! The server polls a response body only while its write buffer has room:
//! once a client stops reading, the body is not polled again, so no timer
//! inside the body can fire. Each HTTP worker therefore keeps a list of its
//! watched bodies and one sweeper task that, while the list is not empty,
//! looks at them a few times per timeout: a body whose output has waited
//! for the client longer than its timeout is abandoned — its upstream
//! connection closed and its request accounted at once, which frees the
//! namespace's concurrency slot. The connection itself ends when the client
//! goes away.

use futures_util::Stream;
use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// A stream that can be ended from outside.
pub trait Abandon {
    fn abandon(&mut self);
}

struct Shared<S> {
    /// When the output last handed over started waiting for the client;
    /// `None` while the body waits for its upstream instead.
    waiting_since: Cell<Option<Instant>>,
    timeout: Duration,
    stream: RefCell<S>,
}

trait Watched {
    /// Abandons the stream when its client stalled; true when it did.
    fn check(&self, now: Instant) -> bool;
}

impl<S: Abandon> Watched for Shared<S> {
    fn check(&self, now: Instant) -> bool {
        let stalled = self
            .waiting_since
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) >= self.timeout);
        if stalled {
            // Not borrowed: the sweeper runs between polls on this thread.
            if let Ok(mut s) = self.stream.try_borrow_mut() {
                s.abandon();
                self.waiting_since.set(None);
                return true;
            }
        }
        false
    }
}

thread_local! {
    static WATCHED: RefCell<Vec<Weak<dyn Watched>>> = const { RefCell::new(Vec::new()) };
    static SWEEPING: Cell<bool> = const { Cell::new(false) };
}

/// A response body whose client must keep reading: output not taken within
/// `timeout` ends it.
pub struct ClientWatch<S> {
    shared: Rc<Shared<S>>,
}

impl<S: Abandon + 'static> ClientWatch<S> {
    /// Watches `stream` on this worker thread (which must run a
    /// `LocalSet`, as the server's workers do).
    pub fn new(stream: S, timeout: Duration) -> Self {
        let shared = Rc::new(Shared {
            waiting_since: Cell::new(None),
            timeout,
            stream: RefCell::new(stream),
        });
        let weak: Weak<dyn Watched> = Rc::downgrade(&shared) as Weak<dyn Watched>;
        WATCHED.with(|w| w.borrow_mut().push(weak));
        if !SWEEPING.with(|s| s.replace(true)) {
            tokio::task::spawn_local(sweep(timeout));
        }
        ClientWatch { shared }
    }
}

impl<S: Stream + Unpin> Stream for ClientWatch<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let shared = &self.shared;
        let polled = Pin::new(&mut *shared.stream.borrow_mut()).poll_next(cx);
        shared.waiting_since.set(match &polled {
            Poll::Ready(Some(_)) => Some(Instant::now()),
            _ => None,
        });
        polled
    }
}

/// Looks at the watched bodies of this thread until there are none.
async fn sweep(timeout: Duration) {
    let every = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        let live: Vec<Rc<dyn Watched>> = WATCHED.with(|w| {
            let mut w = w.borrow_mut();
            w.retain(|x| x.strong_count() > 0);
            w.iter().filter_map(Weak::upgrade).collect()
        });
        if live.is_empty() {
            SWEEPING.with(|s| s.set(false));
            return;
        }
        for s in &live {
            if s.check(now) {
                tracing::info!("client stopped reading a stream; stream ended");
            }
        }
    }
}
