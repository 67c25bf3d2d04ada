//! The load engines. Connections are spread over a few OS threads, each with
//! its own single-threaded runtime and its own statistics (no locks or atomics
//! on the request path but the ticket counter of `--requests`).
//!
//! - Closed loop: each connection sends its next request when the previous
//!   answer is complete, until the deadline or the request budget is used up.
//!   A request that was started always completes; none is cut at the end, so
//!   the count can be compared exactly with a server's counters.
//! - Open loop: a pacer hands out send times at a fixed rate; idle connections
//!   take them in order. Latency runs from the intended send time, so a slow
//!   server is charged for the requests that queued behind it (no coordinated
//!   omission).

use crate::hist::Histogram;
use crate::http::{Conn, Discard, Response, SseScan};
use crate::procs::{Watch, WatchReport, Watcher};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Pause after a failed connect, so a dead target does not spin the CPU.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// At least one of the two is set.
    Closed {
        duration: Option<Duration>,
        requests: Option<u64>,
    },
    Open {
        rate: f64,
        requests: u64,
    },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub request: Arc<[u8]>,
    pub head_request: bool,
    pub connections: usize,
    pub threads: usize,
    pub mode: Mode,
    pub timeout: Duration,
    pub stream: bool,
    pub watches: Vec<Watch>,
}

/// Per-thread tallies, merged at the end.
#[derive(Default)]
pub struct Stats {
    pub latency: Histogram,
    pub service: Histogram,
    pub ttfb: Histogram,
    pub first_event: Histogram,
    pub gaps: Histogram,
    pub events: Histogram,
    /// Open loop: how late the pacer handed out each send time.
    pub dispatch_lag: Histogram,
    /// Open loop: from hand-out to send (waiting for an idle connection).
    pub pickup_lag: Histogram,
    pub responses: u64,
    pub ok: u64,
    pub status: BTreeMap<u16, u64>,
    pub transport: BTreeMap<&'static str, u64>,
    pub incomplete_streams: u64,
    pub body_bytes: u64,
    pub connects: u64,
    pub last_done: Option<Instant>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.latency.merge(&o.latency);
        self.service.merge(&o.service);
        self.ttfb.merge(&o.ttfb);
        self.first_event.merge(&o.first_event);
        self.gaps.merge(&o.gaps);
        self.events.merge(&o.events);
        self.dispatch_lag.merge(&o.dispatch_lag);
        self.pickup_lag.merge(&o.pickup_lag);
        self.responses += o.responses;
        self.ok += o.ok;
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        for (k, v) in o.transport {
            *self.transport.entry(k).or_default() += v;
        }
        self.incomplete_streams += o.incomplete_streams;
        self.body_bytes += o.body_bytes;
        self.connects += o.connects;
        self.last_done = self.last_done.max(o.last_done);
    }

    fn transport_error(&mut self, kind: &'static str) {
        *self.transport.entry(kind).or_default() += 1;
        self.last_done = Some(Instant::now());
    }

    fn response(
        &mut self,
        r: &Response,
        send: Instant,
        ticket: Option<Ticket>,
        sse: Option<&SseScan>,
    ) {
        let ns = |later: Instant, earlier: Instant| {
            later.saturating_duration_since(earlier).as_nanos() as u64
        };
        self.responses += 1;
        *self.status.entry(r.status).or_default() += 1;
        let ok = (200..300).contains(&r.status);
        if ok {
            self.ok += 1;
        }
        match ticket {
            Some(t) => {
                self.latency.record(ns(r.done, t.intended));
                self.service.record(ns(r.done, send));
                self.dispatch_lag.record(ns(t.dispatched, t.intended));
                self.pickup_lag.record(ns(send, t.dispatched));
            }
            None => self.latency.record(ns(r.done, send)),
        }
        self.ttfb.record(ns(r.first_byte, send));
        self.body_bytes += r.body_bytes;
        if let (Some(s), true) = (sse, ok) {
            self.events.record(s.events as u64);
            if let Some(fe) = s.first_event {
                self.first_event.record(ns(fe, send));
            }
            for g in &s.gaps_ns {
                self.gaps.record(*g);
            }
            if !s.done {
                self.incomplete_streams += 1;
            }
        }
        self.last_done = self.last_done.max(Some(r.done));
    }
}

/// What the run measured, before formatting.
pub struct Outcome {
    pub stats: Stats,
    pub elapsed: Duration,
    pub watch: Vec<WatchReport>,
    pub loadgen_cpu_s: f64,
}

/// Shared by every thread.
struct Shared {
    plan: Plan,
    connected: Barrier,
    started: Barrier,
    start: OnceLock<Instant>,
    /// Requests left under `--requests` (closed loop).
    remaining: Option<AtomicU64>,
}

impl Shared {
    fn start(&self) -> Instant {
        *self.start.get().expect("start is set before the run phase")
    }

    /// May a closed-loop connection start another request?
    fn ticket(&self) -> bool {
        let Mode::Closed { duration, .. } = self.plan.mode else {
            return false;
        };
        if duration.is_some_and(|d| Instant::now() >= self.start() + d) {
            return false;
        }
        match &self.remaining {
            Some(r) => r
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            None => true,
        }
    }
}

fn error_kind(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "closed",
        io::ErrorKind::InvalidData => "protocol",
        _ => "io",
    }
}

async fn connect(sh: &Shared, stats: &RefCell<Stats>) -> Option<Conn<TcpStream>> {
    let res = tokio::time::timeout(sh.plan.timeout, TcpStream::connect(sh.plan.addr)).await;
    match res {
        Ok(Ok(s)) => {
            // Small requests must not wait for Nagle.
            let _ = s.set_nodelay(true);
            stats.borrow_mut().connects += 1;
            Some(Conn::new(s))
        }
        Ok(Err(_)) | Err(_) => {
            stats.borrow_mut().transport_error("connect");
            None
        }
    }
}

/// One request on `conn` (dropped on failure); records the outcome.
async fn one(
    sh: &Shared,
    stats: &RefCell<Stats>,
    conn: &mut Option<Conn<TcpStream>>,
    sse: &mut SseScan,
    ticket: Option<Ticket>,
) {
    let Some(c) = conn.as_mut() else { return };
    let send = Instant::now();
    let req = &sh.plan.request;
    let head = sh.plan.head_request;
    let res = if sh.plan.stream {
        sse.reset();
        tokio::time::timeout(sh.plan.timeout, c.exchange(req, head, sse)).await
    } else {
        tokio::time::timeout(sh.plan.timeout, c.exchange(req, head, &mut Discard)).await
    };
    match res {
        Ok(Ok(r)) => {
            let scan = sh.plan.stream.then_some(&*sse);
            stats.borrow_mut().response(&r, send, ticket, scan);
            if !r.keep_alive {
                *conn = None;
            }
        }
        Ok(Err(e)) => {
            stats.borrow_mut().transport_error(error_kind(&e));
            *conn = None;
        }
        Err(_) => {
            stats.borrow_mut().transport_error("timeout");
            *conn = None;
        }
    }
}

async fn closed_conn(
    sh: Arc<Shared>,
    stats: Rc<RefCell<Stats>>,
    mut conn: Option<Conn<TcpStream>>,
) {
    let mut sse = SseScan::default();
    while sh.ticket() {
        if conn.is_none() {
            conn = connect(&sh, &stats).await;
            if conn.is_none() {
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        }
        one(&sh, &stats, &mut conn, &mut sse, None).await;
    }
}

/// An open-loop send time, and when the pacer actually handed it out.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    intended: Instant,
    dispatched: Instant,
}

type Queue = Rc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Ticket>>>;

async fn open_conn(
    sh: Arc<Shared>,
    stats: Rc<RefCell<Stats>>,
    queue: Queue,
    mut conn: Option<Conn<TcpStream>>,
) {
    let mut sse = SseScan::default();
    loop {
        let next = queue.lock().await.recv().await;
        let Some(ticket) = next else { break };
        if conn.is_none() {
            conn = connect(&sh, &stats).await;
        }
        one(&sh, &stats, &mut conn, &mut sse, Some(ticket)).await;
    }
}

fn thread_main(
    sh: Arc<Shared>,
    rt: tokio::runtime::Runtime,
    conns: usize,
    queue: Option<mpsc::UnboundedReceiver<Ticket>>,
) -> Stats {
    let local = tokio::task::LocalSet::new();
    let stats = Rc::new(RefCell::new(Stats::default()));
    // Connect everything first, so the measured window holds no handshakes.
    let opened: Vec<Option<Conn<TcpStream>>> = local.block_on(&rt, async {
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (sh, stats) = (sh.clone(), stats.clone());
                tokio::task::spawn_local(async move { connect(&sh, &stats).await })
            })
            .collect();
        let mut out = Vec::with_capacity(conns);
        for t in tasks {
            out.push(t.await.ok().flatten());
        }
        out
    });
    sh.connected.wait();
    sh.started.wait();
    let queue: Option<Queue> = queue.map(|q| Rc::new(tokio::sync::Mutex::new(q)));
    local.block_on(&rt, async {
        let tasks: Vec<_> = opened
            .into_iter()
            .map(|c| {
                let (sh, stats) = (sh.clone(), stats.clone());
                match &queue {
                    Some(q) => tokio::task::spawn_local(open_conn(sh, stats, q.clone(), c)),
                    None => tokio::task::spawn_local(closed_conn(sh, stats, c)),
                }
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    });
    drop(queue);
    Rc::try_unwrap(stats)
        .map(RefCell::into_inner)
        .unwrap_or_else(|rc| std::mem::take(&mut *rc.borrow_mut()))
}

/// Hands out `requests` send times at `rate` per second, round-robin over the
/// threads' queues. Runs on the calling thread; the queues close when it returns.
fn pace(start: Instant, rate: f64, requests: u64, queues: Vec<mpsc::UnboundedSender<Ticket>>) {
    let n = queues.len();
    // Linux lets a sleep end up to 50 us late by default ("timer slack");
    // one nanosecond keeps the schedule tight. Best effort: the lag is
    // measured and reported either way.
    set_own_timer_slack_ns(1);
    for i in 0..requests {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        // A queue only closes if its thread died; its tickets are lost with it.
        let _ = queues[(i as usize) % n].send(Ticket {
            intended: due,
            dispatched: Instant::now(),
        });
    }
}

/// Sets the calling thread's timer slack. `/proc/<tid>/timerslack_ns`
/// addresses one thread (the per-task directories lack the file).
fn set_own_timer_slack_ns(ns: u64) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()));
    if let Some(tid) = tid {
        let _ = std::fs::write(format!("/proc/{tid}/timerslack_ns"), ns.to_string());
    }
}

pub fn execute(plan: Plan) -> anyhow::Result<Outcome> {
    let threads = plan.threads.clamp(1, plan.connections.max(1));
    // Checked before any load: a wrong pid must fail loudly.
    let mut watcher = Some(Watcher::start(plan.watches.clone())?);
    let remaining = match plan.mode {
        Mode::Closed {
            requests: Some(n), ..
        } => Some(AtomicU64::new(n)),
        _ => None,
    };
    let open = match plan.mode {
        Mode::Open { rate, requests } => Some((rate, requests)),
        Mode::Closed { .. } => None,
    };
    let connections = plan.connections;
    let sh = Arc::new(Shared {
        plan,
        connected: Barrier::new(threads + 1),
        started: Barrier::new(threads + 1),
        start: OnceLock::new(),
        remaining,
    });
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for t in 0..threads {
        let conns = connections / threads + usize::from(t < connections % threads);
        let queue = open.map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            rx
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sh = sh.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || thread_main(sh, rt, conns, queue))?,
        );
    }
    sh.connected.wait();
    // The CPU window starts now, after the connections are up.
    let watcher = watcher.take().map(Watcher::restart).expect("watcher");
    let cpu0 = crate::procs::self_cpu_s();
    let start = Instant::now();
    sh.start.set(start).expect("start is set once");
    sh.started.wait();
    if let Some((rate, requests)) = open {
        pace(start, rate, requests, senders);
    }
    let mut stats = Stats::default();
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread panicked"))?;
        stats.merge(s);
    }
    let end = stats.last_done.unwrap_or_else(Instant::now).max(start);
    let elapsed = end - start;
    let watch = watcher.finish(elapsed, stats.responses);
    Ok(Outcome {
        stats,
        elapsed,
        watch,
        loadgen_cpu_s: crate::procs::self_cpu_s() - cpu0,
    })
}
