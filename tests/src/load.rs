//! Requests and load: the chat body of every load request, one request
//! read to its end, and a load generator that keeps exact client-side
//! counts.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The chat body every load request sends: 4 prompt words, so the mock
/// reports 4 prompt tokens and (by default) 5 completion tokens.
pub fn chat_body(model: &str, stream: bool, mock: Option<Value>) -> Value {
    let mut b = json!({
        "model": model,
        "messages": [{"role": "user", "content": "count these four words"}],
    });
    if stream {
        b["stream"] = json!(true);
    }
    if let Some(m) = mock {
        b["mock"] = m;
    }
    b
}

pub const PROMPT_TOKENS: i64 = 4;
pub const COMPLETION_TOKENS: i64 = 5;
/// Cost of one load request at 1 / 2 USD per million tokens, nano-USD.
pub const COST_NUSD: i64 = PROMPT_TOKENS * 1000 + COMPLETION_TOKENS * 2000;

/// What one request ended with, as the client saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None`: no HTTP answer (connection refused or broken).
    pub status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
    pub started: Instant,
    pub finished: Instant,
}

impl Outcome {
    /// A stream that ended properly with `data: [DONE]`.
    pub fn stream_done(&self) -> bool {
        self.body.trim_end().ends_with("data: [DONE]")
    }
}

/// One request through a gateway, reading the whole answer.
pub async fn send(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> Outcome {
    let started = Instant::now();
    let r = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await;
    match r {
        Err(e) => Outcome {
            status: None,
            body: String::new(),
            error: Some(e.to_string()),
            started,
            finished: Instant::now(),
        },
        Ok(r) => {
            let status = r.status().as_u16();
            match r.text().await {
                Ok(body) => Outcome {
                    status: Some(status),
                    body,
                    error: None,
                    started,
                    finished: Instant::now(),
                },
                Err(e) => Outcome {
                    status: Some(status),
                    body: String::new(),
                    error: Some(format!("body: {e}")),
                    started,
                    finished: Instant::now(),
                },
            }
        }
    }
}

/// A load run: `workers` clients each sending requests one after another
/// (round-robin over `urls`) until stopped or `max` requests were started.
pub struct Load {
    stop: Arc<AtomicBool>,
    started: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Everything the client observed.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub sent: usize,
    pub by_status: BTreeMap<u16, usize>,
    /// Requests without an HTTP answer.
    pub transport_errors: usize,
    /// 200 streams that did not end with `[DONE]`.
    pub broken_streams: usize,
    pub first_errors: Vec<String>,
    /// Every request's outcome, in completion order.
    pub outcomes: Vec<Outcome>,
}

impl Observed {
    pub fn answered(&self) -> usize {
        self.by_status.values().sum()
    }
    pub fn status(&self, s: u16) -> usize {
        self.by_status.get(&s).copied().unwrap_or(0)
    }
    pub fn non_200(&self) -> usize {
        self.answered() - self.status(200)
    }
}

impl Load {
    /// Starts the load. `body(i)` is the body of request `i`.
    pub fn start(
        http: reqwest::Client,
        urls: Vec<String>,
        key: String,
        workers: usize,
        max: usize,
        pause: Duration,
        body: impl Fn(usize) -> Value + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let body = Arc::new(body);
        let urls = Arc::new(urls);
        let tasks = (0..workers)
            .map(|_| {
                let (stop, started, done, outcomes, body, urls, http, key) = (
                    stop.clone(),
                    started.clone(),
                    done.clone(),
                    outcomes.clone(),
                    body.clone(),
                    urls.clone(),
                    http.clone(),
                    key.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let i = started.fetch_add(1, Ordering::SeqCst);
                        if i >= max {
                            started.fetch_sub(1, Ordering::SeqCst);
                            break;
                        }
                        let url = &urls[i % urls.len()];
                        let o = send(&http, url, &key, &body(i)).await;
                        outcomes.lock().unwrap().push(o);
                        done.fetch_add(1, Ordering::SeqCst);
                        if !pause.is_zero() {
                            tokio::time::sleep(pause).await;
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            started,
            done,
            outcomes,
            tasks,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests finished (or `limit` passed).
    pub async fn wait_done(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.done() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops starting requests, waits for those in flight, and reports.
    pub async fn finish(self) -> Observed {
        self.stop.store(true, Ordering::SeqCst);
        self.complete().await
    }

    /// Waits until all `max` requests are done (a bounded load), and reports.
    pub async fn complete(self) -> Observed {
        for t in self.tasks {
            let _ = t.await;
        }
        let outcomes = self.outcomes.lock().unwrap().clone();
        let mut o = Observed {
            sent: self.started.load(Ordering::SeqCst),
            outcomes: outcomes.clone(),
            ..Observed::default()
        };
        for r in &outcomes {
            match r.status {
                Some(s) => {
                    *o.by_status.entry(s).or_default() += 1;
                    let is_stream = r.body.starts_with("data:") || r.body.contains("\ndata:");
                    if s == 200 && is_stream && !r.stream_done() {
                        o.broken_streams += 1;
                    }
                    if s != 200 && o.first_errors.len() < 5 {
                        o.first_errors.push(format!(
                            "{s}: {}",
                            r.body.chars().take(300).collect::<String>()
                        ));
                    }
                }
                None => {
                    o.transport_errors += 1;
                    if o.first_errors.len() < 5 {
                        o.first_errors.push(r.error.clone().unwrap_or_default());
                    }
                }
            }
        }
        o
    }
}
