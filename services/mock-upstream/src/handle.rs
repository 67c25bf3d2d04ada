//! The mock started inside a test process: [`MockServer::start`] serves on
//! its own port (0 picks a free one) and the handle steers and reads it
//! directly — the same knobs and counters as the `/mock/*` endpoints,
//! without HTTP.

use crate::journal::Entry;
use crate::overrides::{MockOverrides, RuleRequest};
use crate::state::State;
use crate::Config;
use actix_web::dev::ServerHandle;
use actix_web::web;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

/// A running in-process mock. Dropping the handle leaves it serving until
/// the test's runtime ends; [`stop`](Self::stop) stops it earlier.
pub struct MockServer {
    state: web::Data<State>,
    host: String,
    port: u16,
    server: Mutex<Option<ServerHandle>>,
}

impl MockServer {
    /// Validates `config`, binds its address and port, and serves on the
    /// current tokio runtime.
    pub async fn start(config: Config) -> anyhow::Result<MockServer> {
        config.validate()?;
        let listener = TcpListener::bind((config.bind_addr.as_str(), config.port))?;
        let port = listener.local_addr()?.port();
        let host = match config.bind_addr.as_str() {
            "0.0.0.0" => "127.0.0.1".to_string(),
            h => h.to_string(),
        };
        let state = web::Data::new(State::new(config));
        let mock = MockServer {
            state,
            host,
            port,
            server: Mutex::new(None),
        };
        mock.serve(listener)?;
        Ok(mock)
    }

    fn serve(&self, listener: TcpListener) -> std::io::Result<()> {
        let server = crate::serve(self.state.clone(), listener, true)?;
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(server.handle());
        tokio::spawn(server);
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port/v1`, an instance's base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}:{}/v1", self.host, self.port)
    }

    /// Everything shared by the workers: counters, journal, rules.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Answers every request from now on with `mock` (replacing the rules
    /// set before): an override rule without `times`.
    pub fn set(&self, mock: MockOverrides) {
        self.state.rules.clear();
        self.state
            .rules
            .add(RuleRequest {
                provider: None,
                model: None,
                times: None,
                mock,
            })
            .expect("a rule for every request is valid");
    }

    /// Removes every rule: requests are answered from the config again.
    pub fn reset(&self) {
        self.state.rules.clear();
    }

    /// The recorded requests, oldest first (the journal keeps
    /// `record_requests` of them).
    pub fn requests(&self) -> Vec<Entry> {
        self.state.journal.recent(None, usize::MAX)
    }

    /// API requests received (model lists not included).
    pub fn request_count(&self) -> u64 {
        self.state.total_requests()
    }

    /// Gated streams may send `n` more content chunks.
    pub fn release(&self, n: usize) {
        self.state.streams.release(n);
    }

    pub fn chunks_sent(&self) -> u64 {
        self.state.streams.chunks_sent()
    }

    pub fn streams_completed(&self) -> u64 {
        self.state.streams.completed()
    }

    pub fn streams_cancelled(&self) -> u64 {
        self.state.streams.cancelled()
    }

    /// Requests whose caller went away while they waited out their latency.
    pub fn requests_cancelled(&self) -> u64 {
        self.state.requests_cancelled()
    }

    /// The status OpenAI's `GET /models` answers with from now on.
    pub fn set_models_status(&self, status: u16) {
        self.state.set_models_status(status);
    }

    /// `GET /models` requests received (a gateway's health probes).
    pub fn models_requests(&self) -> u64 {
        self.state.models_requests()
    }

    /// Waits until `n` streams ended (completed or cancelled), polling for
    /// up to 10 s; returns whether they did.
    pub async fn wait_streams_ended(&self, n: u64) -> bool {
        for _ in 0..1000 {
            if self.streams_completed() + self.streams_cancelled() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Stops serving at once: connections to its port are refused.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            server.stop(false).await;
        }
    }

    /// Serves again on the same port with the same state (counters,
    /// journal, rules), once the port is free (up to 1 s).
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop().await;
        let addr = (self.state.config.bind_addr.as_str(), self.port);
        let mut bound = TcpListener::bind(addr);
        for _ in 0..50 {
            if bound.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            bound = TcpListener::bind(addr);
        }
        self.serve(bound?)?;
        Ok(())
    }
}
