//! The last requests the mock received, so a test can assert what a gateway
//! sent: method, path, query, every header (keys exactly as given: the mock
//! only ever sees test keys) and the body.
//!
//! Recording is cheap on purpose (the benchmarks drive the mock): the
//! request head and body are copied into the buffers of the entry they
//! evict, so a full journal records without allocating, and rendered to
//! JSON only when `GET /mock/requests` asks. (Copied, not reference-counted:
//! actix's header values share the connection's read buffer, and a body
//! kept alive for many requests would keep the allocator from reusing its
//! hot memory.)

use crate::error::Provider;
use actix_web::http::Method;
use actix_web::HttpRequest;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Bodies longer than this are kept truncated (benchmarks send long prompts).
pub const MAX_RECORDED_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct Entry {
    pub seq: u64,
    pub provider: Provider,
    pub endpoint: &'static str,
    method: Method,
    /// Path, query, then each header's name and value, as received, each
    /// followed by `SEP` (which a valid head never contains); read as UTF-8
    /// (lossily) only when rendered.
    head: Vec<u8>,
    /// At most [`MAX_RECORDED_BODY`] bytes of the body.
    body: Vec<u8>,
    body_len: usize,
    /// The model named by the path (Azure deployments, Gemini), if any.
    path_model: Option<String>,
}

const SEP: u8 = 0;

impl Entry {
    fn fields(&self) -> impl Iterator<Item = Cow<'_, str>> {
        self.head.split(|b| *b == SEP).map(String::from_utf8_lossy)
    }

    pub fn path(&self) -> String {
        self.fields().next().unwrap_or_default().into_owned()
    }

    fn query(&self) -> String {
        self.fields().nth(1).unwrap_or_default().into_owned()
    }

    /// `(name, value)` of every header, in the header map's order.
    fn headers(&self) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
        let mut f = self.fields().skip(2);
        std::iter::from_fn(move || Some((f.next()?, f.next()?))).filter(|(n, _)| !n.is_empty())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body as JSON (a body that is not JSON, or was truncated, as a
    /// string), as `GET /mock/requests` shows it.
    pub fn body(&self) -> Value {
        let truncated = self.body_len > self.body.len();
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) if !truncated => v,
            _ => Value::String(String::from_utf8_lossy(&self.body).into_owned()),
        }
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
        for (name, v) in self.headers() {
            match headers.get_mut(name.as_ref()) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(name.into_owned(), Value::String(v.into_owned()));
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
        json!({
            "seq": self.seq,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model(),
            "method": self.method.as_str(),
            "path": self.path(),
            "query": self.query(),
            "headers": headers,
            "body": self.body(),
            "body_bytes": self.body_len,
            "body_truncated": truncated,
        })
    }
}

pub struct Journal {
    capacity: usize,
    seq: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl Journal {
    pub fn new(capacity: usize) -> Journal {
        Journal {
            capacity: capacity.max(1),
            seq: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 1024))),
        }
    }

    /// Records one request. Once the journal is full, the evicted entry's
    /// buffer is reused, so recording allocates nothing.
    pub fn record(
        &self,
        provider: Provider,
        endpoint: &'static str,
        req: &HttpRequest,
        body: &Bytes,
        path_model: Option<&str>,
    ) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (mut head, mut kept) = match entries.len() == self.capacity {
            true => entries
                .pop_front()
                .map(|e| (e.head, e.body))
                .unwrap_or_default(),
            false => (Vec::with_capacity(256), Vec::with_capacity(body.len())),
        };
        head.clear();
        kept.clear();
        kept.extend_from_slice(&body[..body.len().min(MAX_RECORDED_BODY)]);
        for part in [req.path(), req.query_string()] {
            head.extend_from_slice(part.as_bytes());
            head.push(SEP);
        }
        for (name, value) in req.headers().iter() {
            head.extend_from_slice(name.as_str().as_bytes());
            head.push(SEP);
            head.extend_from_slice(value.as_bytes());
            head.push(SEP);
        }
        entries.push_back(Entry {
            seq: self.seq.fetch_add(1, Relaxed) + 1,
            provider,
            endpoint,
            method: req.method().clone(),
            head,
            body: kept,
            body_len: body.len(),
            path_model: path_model.map(String::from),
        });
    }

    pub fn last(&self) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .cloned()
    }

    /// The newest `limit` entries of `provider` (every provider when
    /// `None`), oldest first.
    pub fn recent(&self, provider: Option<Provider>, limit: usize) -> Vec<Entry> {
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
