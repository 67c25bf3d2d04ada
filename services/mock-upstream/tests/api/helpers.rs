//! A mock on port 0 with request helpers, and parsers of each provider's
//! stream framing.

use mock_upstream::{Application, Config};
use serde_json::Value;

const BEARER: (&str, &str) = ("authorization", "Bearer sk-upstream-test");

pub struct TestMock {
    pub base: String,
    pub client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
}

impl TestMock {
    pub async fn start(config: Config) -> TestMock {
        let app = Application::build(Config {
            port: 0,
            bind_addr: "127.0.0.1".into(),
            workers: Some(1),
            ..config
        })
        .expect("build mock");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        TestMock {
            base,
            client: reqwest::Client::new(),
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs JSON with OpenAI's bearer key.
    pub async fn post(&self, path: &str, body: Value) -> (u16, reqwest::Response) {
        self.post_with(path, &[BEARER], body).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_json_with(path, &[BEARER], body).await
    }

    /// POSTs JSON with exactly these headers.
    pub async fn post_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (u16, reqwest::Response) {
        let mut req = self.client.post(self.url(path)).json(&body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("send");
        (res.status().as_u16(), res)
    }

    pub async fn post_json_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: Value,
    ) -> (u16, Value) {
        let (s, res) = self.post_with(path, headers, body).await;
        (s, res.json().await.expect("json body"))
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(self.url(path)).send().await.expect("send");
        (res.status().as_u16(), res.json().await.expect("json body"))
    }

    pub async fn delete(&self, path: &str) -> u16 {
        let res = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("send");
        res.status().as_u16()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// The `data:` payloads of an OpenAI-style SSE body, in order.
pub fn sse_events(body: &str) -> Vec<String> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// `(event name, data)` of an Anthropic SSE body, in order.
pub fn named_events(body: &str) -> Vec<(String, Value)> {
    assert!(
        body.ends_with("\n\n"),
        "events end with a blank line: {body:?}"
    );
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not a named event: {e:?}"));
            let data: Value = serde_json::from_str(data).expect("event data is JSON");
            assert_eq!(data["type"], name, "the data's type names the event");
            (name.to_string(), data)
        })
        .collect()
}

/// Reads a streamed body to its end, telling a clean end from a broken
/// connection.
pub async fn read_to_end(mut res: reqwest::Response) -> (String, &'static str) {
    let mut got = Vec::new();
    let end = loop {
        match res.chunk().await {
            Ok(Some(b)) => got.extend_from_slice(&b),
            Ok(None) => break "clean end",
            Err(_) => break "error",
        }
    };
    (String::from_utf8(got).expect("utf-8"), end)
}
