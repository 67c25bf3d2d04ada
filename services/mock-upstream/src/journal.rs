//! The last requests the mock received, so a test can assert what a gateway
//! sent: method, path, query, every header (keys exactly as given: the mock
//! only ever sees test keys) and the body.
//!
//! Recording is cheap on purpose (the benchmarks drive the mock): the URI,
//! the header map and the body are reference-counted clones, rendered to
//! JSON only when `GET /mock/requests` asks.

use crate::error::Provider;
use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, Uri};
use actix_web::HttpRequest;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Bodies longer than this are kept truncated (benchmarks send long prompts).
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

pub struct Entry {
    pub seq: u64,
    pub provider: Provider,
    pub endpoint: &'static str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    body_len: usize,
    /// The model named by the path (Azure deployments, Gemini), if any.
    path_model: Option<String>,
}

impl Entry {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The model the request named: in its path, else in its body.
    pub fn model(&self) -> Option<String> {
        if let Some(m) = &self.path_model {
            return Some(m.clone());
        }
        #[derive(serde::Deserialize)]
        struct Model {
            model: Option<String>,
        }
        serde_json::from_slice::<Model>(&self.body).ok()?.model
    }

    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (name, value) in self.headers.iter() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.get_mut(name.as_str()) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), Value::String(v));
                }
            }
        }
        // Sorted, so a test can compare header lists with a stable order.
        let headers: serde_json::Map<String, Value> = {
            let mut v: Vec<_> = headers.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter().collect()
        };
        let truncated = self.body_len > self.body.len();
        let body = match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if !truncated => v,
            _ => Value::String(String::from_utf8_lossy(&self.body).into_owned()),
        };
        json!({
            "seq": self.seq,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model(),
            "method": self.method.as_str(),
            "path": self.uri.path(),
            "query": self.uri.query().unwrap_or(""),
            "headers": headers,
            "body": body,
            "body_bytes": self.body_len,
            "body_truncated": truncated,
        })
    }
}

pub struct Journal {
    capacity: usize,
    seq: AtomicU64,
    entries: Mutex<VecDeque<Arc<Entry>>>,
}

impl Journal {
    pub fn new(capacity: usize) -> Journal {
        Journal {
            capacity: capacity.max(1),
            seq: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 1024))),
        }
    }

    pub fn record(
        &self,
        provider: Provider,
        endpoint: &'static str,
        req: &HttpRequest,
        body: &Bytes,
        path_model: Option<&str>,
    ) {
        let kept = if body.len() > MAX_RECORDED_BODY {
            Bytes::copy_from_slice(&body[..MAX_RECORDED_BODY])
        } else {
            body.clone()
        };
        let entry = Arc::new(Entry {
            seq: self.seq.fetch_add(1, Relaxed) + 1,
            provider,
            endpoint,
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            body: kept,
            body_len: body.len(),
            path_model: path_model.map(String::from),
        });
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    pub fn last(&self) -> Option<Arc<Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .cloned()
    }

    /// The newest `limit` entries of `provider` (every provider when
    /// `None`), oldest first.
    pub fn recent(&self, provider: Option<Provider>, limit: usize) -> Vec<Arc<Entry>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = entries
            .iter()
            .rev()
            .filter(|e| provider.is_none_or(|p| p == e.provider))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
