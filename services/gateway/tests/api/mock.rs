//! A controllable OpenAI-compatible upstream, started in-process on a free
//! port. Each instance records the requests it received and behaves as the
//! test sets: status codes, latency, streams of N chunks (optionally gated
//! chunk by chunk by the test, or broken after k chunks), with or without
//! usage, and its health endpoint's status. Stopping it makes its port
//! refuse connections; it can be restarted on the same port.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Answer every API request with this status (an OpenAI error body).
    pub status: Option<u16>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Report usage (in answers, and in streams when asked for).
    pub usage: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Content chunks per stream.
    pub chunks: usize,
    /// Before chunk k ≥ 2 wait for a permit from [`MockUpstream::release`].
    pub gated: bool,
    pub chunk_delay: Duration,
    /// Break the connection after sending this many chunks.
    pub break_after: Option<usize>,
    /// Answer completions with a stream even when the request did not ask
    /// for one (an upstream that coerces `"stream": "true"`).
    pub force_stream: bool,
    /// The usage chunk in LiteLLM's shape: a non-empty `choices` array
    /// (`[{"index":0,"delta":{}}]`) and the upstream's own `cost` figure.
    pub usage_with_choices: bool,
    /// Bytes of padding in each answer (a `padding` field of the JSON
    /// answer, appended to each streamed content chunk).
    pub pad: usize,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            status: None,
            delay: Duration::ZERO,
            usage: true,
            prompt_tokens: 11,
            completion_tokens: 7,
            chunks: 3,
            gated: false,
            chunk_delay: Duration::ZERO,
            break_after: None,
            force_stream: false,
            usage_with_choices: false,
            pad: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct MockState {
    pub name: String,
    behaviour: Mutex<Behaviour>,
    pub health_status: AtomicU16,
    requests: Mutex<Vec<Recorded>>,
    health_checks: AtomicUsize,
    gate: Semaphore,
    pub chunks_sent: AtomicUsize,
    pub chunk_sent: Notify,
    pub streams_completed: AtomicUsize,
    pub streams_cancelled: AtomicUsize,
    pub stream_ended: Notify,
    /// Requests whose handler was dropped before answering (the caller went
    /// away).
    pub requests_cancelled: AtomicUsize,
}

struct Answering {
    st: Arc<MockState>,
    done: bool,
}

impl Drop for Answering {
    fn drop(&mut self) {
        if !self.done {
            self.st.requests_cancelled.fetch_add(1, SeqCst);
        }
    }
}

pub struct MockUpstream {
    pub state: Arc<MockState>,
    pub port: u16,
    handle: Mutex<Option<actix_web::dev::ServerHandle>>,
}

impl MockUpstream {
    pub async fn start(name: &str) -> MockUpstream {
        let state = Arc::new(MockState {
            name: name.to_string(),
            behaviour: Mutex::new(Behaviour::default()),
            health_status: AtomicU16::new(200),
            requests: Mutex::new(Vec::new()),
            health_checks: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            chunks_sent: AtomicUsize::new(0),
            chunk_sent: Notify::new(),
            streams_completed: AtomicUsize::new(0),
            streams_cancelled: AtomicUsize::new(0),
            stream_ended: Notify::new(),
            requests_cancelled: AtomicUsize::new(0),
        });
        let m = MockUpstream {
            state,
            port: 0,
            handle: Mutex::new(None),
        };
        m.serve(0).await
    }

    async fn serve(mut self, port: u16) -> MockUpstream {
        let st = self.state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(st.clone()))
                .default_service(web::to(handle))
        })
        .workers(1)
        .disable_signals()
        .h1_allow_half_closed(false)
        .tcp_nodelay(true)
        .shutdown_timeout(0)
        .bind(("127.0.0.1", port))
        .expect("bind mock upstream");
        self.port = server.addrs()[0].port();
        let server = server.run();
        *self.handle.lock().unwrap() = Some(server.handle());
        tokio::spawn(server);
        self
    }

    /// Base URL as an instance's `base_url` (with `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }

    /// API requests received (health checks not included).
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn health_checks(&self) -> usize {
        self.state.health_checks.load(SeqCst)
    }

    /// Lets a gated stream send `n` more chunks.
    pub fn release(&self, n: usize) {
        self.state.gate.add_permits(n);
    }

    pub fn chunks_sent(&self) -> usize {
        self.state.chunks_sent.load(SeqCst)
    }

    /// Stops listening: connections to its port are refused.
    pub async fn stop(&self) {
        let h = self.handle.lock().unwrap().take();
        if let Some(h) = h {
            h.stop(false).await;
        }
    }

    /// Starts again on the same port with the same state.
    pub async fn restart(self) -> MockUpstream {
        self.stop().await;
        let port = self.port;
        for _ in 0..50 {
            let ok = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
            if ok {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.serve(port).await
    }

    /// Waits until a stream ended (completed or cancelled), up to 10 s.
    pub async fn wait_stream_end(&self) {
        let st = &self.state;
        let ended = || st.streams_completed.load(SeqCst) + st.streams_cancelled.load(SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while ended() == 0 && tokio::time::Instant::now() < deadline {
            let _ =
                tokio::time::timeout(Duration::from_millis(50), st.stream_ended.notified()).await;
        }
    }
}

fn error_body(status: u16) -> Value {
    json!({"error": {"message": format!("mock upstream error {status}"), "type": "server_error", "param": null, "code": null}})
}

async fn handle(req: HttpRequest, body: Bytes, st: web::Data<Arc<MockState>>) -> HttpResponse {
    let path = req.path().to_string();
    if req.method() == actix_web::http::Method::GET {
        st.health_checks.fetch_add(1, SeqCst);
        let status = st.health_status.load(SeqCst);
        let code = actix_web::http::StatusCode::from_u16(status).unwrap();
        return HttpResponse::build(code).json(json!({"object": "list", "data": []}));
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.requests.lock().unwrap().push(Recorded {
        path: path.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: json.clone(),
    });
    let b = st.behaviour.lock().unwrap().clone();
    let mut answering = Answering {
        st: st.get_ref().clone(),
        done: false,
    };
    if !b.delay.is_zero() {
        tokio::time::sleep(b.delay).await;
    }
    answering.done = true;
    if let Some(status) = b.status {
        let code = actix_web::http::StatusCode::from_u16(status).unwrap();
        return HttpResponse::build(code).json(error_body(status));
    }
    let model = json["model"].as_str().unwrap_or("").to_string();
    let usage = json!({
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": b.completion_tokens,
        "total_tokens": b.prompt_tokens.saturating_add(b.completion_tokens),
    });
    let chat = path.ends_with("/chat/completions");
    match path.as_str() {
        p if p.ends_with("/embeddings") => {
            let mut out = json!({
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                "model": model,
            });
            if b.usage {
                out["usage"] =
                    json!({"prompt_tokens": b.prompt_tokens, "total_tokens": b.prompt_tokens});
            }
            HttpResponse::Ok().json(out)
        }
        p if p.ends_with("/completions") => {
            if json["stream"] == true || b.force_stream {
                let include_usage = json["stream_options"]["include_usage"] == true;
                return stream(st.get_ref().clone(), b, model, chat, include_usage);
            }
            let text = format!("Hello from {}", st.name);
            let choice = if chat {
                json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
            } else {
                json!({"index": 0, "text": text, "finish_reason": "stop"})
            };
            let mut out = json!({
                "id": "cmpl-mock",
                "object": if chat { "chat.completion" } else { "text_completion" },
                "created": 1,
                "model": model,
                "choices": [choice],
            });
            if b.usage {
                out["usage"] = usage;
            }
            if b.pad > 0 {
                out["padding"] = json!("p".repeat(b.pad));
            }
            HttpResponse::Ok()
                .insert_header(("x-upstream-name", st.name.clone()))
                .insert_header(("set-cookie", "upstream=1"))
                .json(out)
        }
        _ => HttpResponse::NotFound().json(error_body(404)),
    }
}

struct StreamState {
    st: Arc<MockState>,
    b: Behaviour,
    model: String,
    chat: bool,
    include_usage: bool,
    k: usize,
    usage_sent: bool,
    done_sent: bool,
    completed: bool,
    broken: bool,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        if self.completed {
            self.st.streams_completed.fetch_add(1, SeqCst);
        } else {
            self.st.streams_cancelled.fetch_add(1, SeqCst);
        }
        self.st.stream_ended.notify_waiters();
    }
}

fn event(v: Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn stream(
    st: Arc<MockState>,
    b: Behaviour,
    model: String,
    chat: bool,
    include_usage: bool,
) -> HttpResponse {
    let state = StreamState {
        st,
        b,
        model,
        chat,
        include_usage,
        k: 0,
        usage_sent: false,
        done_sent: false,
        completed: false,
        broken: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        if s.broken || s.completed {
            return None;
        }
        if s.k < s.b.chunks {
            if s.b.break_after == Some(s.k) {
                // Let the chunks before go out first: actix drops unflushed
                // output when a body fails.
                tokio::time::sleep(Duration::from_millis(100)).await;
                s.broken = true;
                return Some((
                    Err(actix_web::error::ErrorInternalServerError(
                        "mock stream broken",
                    )),
                    s,
                ));
            }
            if s.k >= 1 {
                if s.b.gated {
                    s.st.gate.acquire().await.expect("gate").forget();
                }
                if !s.b.chunk_delay.is_zero() {
                    tokio::time::sleep(s.b.chunk_delay).await;
                }
            }
            s.k += 1;
            let text = format!("c{}{}", s.k, " ".repeat(s.b.pad));
            let choice = if s.chat {
                json!({"index": 0, "delta": {"content": text}, "finish_reason": null})
            } else {
                json!({"index": 0, "text": text, "finish_reason": null})
            };
            let mut chunk = json!({
                "id": "cmpl-mock",
                "object": if s.chat { "chat.completion.chunk" } else { "text_completion" },
                "created": 1,
                "model": s.model,
                "choices": [choice],
            });
            if s.include_usage {
                chunk["usage"] = Value::Null;
            }
            s.st.chunks_sent.fetch_add(1, SeqCst);
            s.st.chunk_sent.notify_waiters();
            return Some((Ok(event(chunk)), s));
        }
        if s.include_usage && s.b.usage && !s.usage_sent {
            s.usage_sent = true;
            let mut chunk = json!({
                "id": "cmpl-mock",
                "object": if s.chat { "chat.completion.chunk" } else { "text_completion" },
                "created": 1,
                "model": s.model,
                "choices": [],
                "usage": {
                    "prompt_tokens": s.b.prompt_tokens,
                    "completion_tokens": s.b.completion_tokens,
                    "total_tokens": s.b.prompt_tokens.saturating_add(s.b.completion_tokens),
                },
            });
            if s.b.usage_with_choices {
                chunk["choices"] = json!([{"index": 0, "delta": {}}]);
                chunk["cost"] = json!(0.000123);
            }
            return Some((Ok(event(chunk)), s));
        }
        if !s.done_sent {
            s.done_sent = true;
            s.completed = true;
            return Some((Ok(Bytes::from_static(b"data: [DONE]\n\n")), s));
        }
        None
    });
    HttpResponse::Ok()
        .insert_header(("content-type", "text/event-stream"))
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}
