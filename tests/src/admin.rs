//! The admin calls that build a routing config through the config-center,
//! and reading the services' JSON endpoints.

use crate::stack::{Stack, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// What the admin API answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    /// `x-config-version` of a committed change.
    pub version: Option<u64>,
}

impl Stack {
    /// One admin call with the admin token.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        self.admin_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    /// One admin call with `token` (or none).
    pub async fn admin_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut rb = self
            .http
            .request(method, format!("{}{}", self.cc.url(), path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("config-center answers");
        let status = r.status().as_u16();
        let version = r
            .headers()
            .get("x-config-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            version,
        }
    }

    async fn admin_ok(&self, method: reqwest::Method, path: &str, body: Value) -> Answer {
        let a = self.admin(method.clone(), path, Some(body.clone())).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {path} {body} → {}: {}",
            a.status,
            a.text
        );
        a
    }

    /// Creates a namespace; `extra` is merged into the body (limits, budget).
    pub async fn namespace(&self, code: &str, extra: Value) -> u64 {
        let mut body = json!({"code": code});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        self.admin_ok(reqwest::Method::POST, "/api/v1/namespaces", body)
            .await
            .version
            .expect("version header")
    }

    /// Creates a model priced `input`/`output` USD per million tokens.
    pub async fn model(&self, name: &str, input: &str, output: &str) -> u64 {
        self.priced_model(name, &Prices::new(input, output)).await
    }

    /// Creates a model with `prices`, the cache prices included when set.
    pub async fn priced_model(&self, name: &str, prices: &Prices<'_>) -> u64 {
        let mut body = json!({"name": name, "encoding": "o200k_base",
                              "input_price_per_1m": prices.input,
                              "output_price_per_1m": prices.output});
        if let Some(p) = prices.cached_input {
            body["cached_input_price_per_1m"] = p.into();
        }
        if let Some(p) = prices.cache_write {
            body["cache_write_price_per_1m"] = p.into();
        }
        self.admin_ok(reqwest::Method::POST, "/api/v1/models", body)
            .await
            .version
            .expect("version header")
    }

    /// Creates an instance of `model` for `ns` at `base_url`; `extra` is
    /// merged into the body (api_key, health_check, timeout_ms, weight).
    pub async fn instance(
        &self,
        id: &str,
        ns: &str,
        model: &str,
        base_url: &str,
        extra: Value,
    ) -> u64 {
        let mut body =
            json!({"id": id, "namespace_code": ns, "model": model, "base_url": base_url});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        self.admin_ok(reqwest::Method::POST, "/api/v1/instances", body)
            .await
            .version
            .expect("version header")
    }

    /// Creates an instance of `model` for `ns` speaking `provider`'s API,
    /// served by mock `mock` (its `base_url` as that provider's instances
    /// name it, [`Stack::provider_base`]); `extra` is merged into the body
    /// (api_key, api_version, azure_deployment, upstream_model, …).
    pub async fn provider_instance(
        &self,
        id: &str,
        ns: &str,
        model: &str,
        provider: &str,
        mock: usize,
        extra: Value,
    ) -> u64 {
        let mut body = json!({"provider": provider});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        self.instance(id, ns, model, &self.provider_base(mock, provider), body)
            .await
    }

    /// Mock `i`'s address as an instance of `provider` names it: with the
    /// version path for OpenAI and Anthropic (`/v1`) and Gemini
    /// (`/v1beta`), the bare resource for Azure OpenAI.
    pub fn provider_base(&self, i: usize, provider: &str) -> String {
        match provider {
            "azure_openai" => self.mocks[i].url(),
            "gemini" => format!("{}/v1beta", self.mocks[i].url()),
            _ => self.mock_base(i),
        }
    }

    /// Issues a key for `ns`: (key id, key, version).
    pub async fn key(&self, ns: &str, extra: Value) -> (String, String, u64) {
        let mut body = json!({"name": "e2e"});
        if let Some(o) = extra.as_object() {
            for (k, v) in o {
                body[k] = v.clone();
            }
        }
        let a = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/v1/namespaces/{ns}/api-keys"),
                body,
            )
            .await;
        let key = a.body["key"].as_str().expect("key in answer").to_string();
        let id = a.body["id"].as_str().expect("id in answer").to_string();
        (id, key, a.version.expect("version header"))
    }

    /// Revokes a key; the version it committed as.
    pub async fn revoke(&self, ns: &str, id: &str) -> Option<u64> {
        let a = self
            .admin(
                reqwest::Method::DELETE,
                &format!("/api/v1/namespaces/{ns}/api-keys/{id}"),
                None,
            )
            .await;
        assert_eq!(a.status, 204, "revoke: {}", a.text);
        a.version
    }

    /// The usual small world: namespace `ns` with model `m` (1 and 2 USD per
    /// million tokens) served by every mock (instance `{ns}-i{n}`, with a 1 s
    /// health check), and one key. Waits until every running gateway and
    /// the token-service loaded it. Returns the key.
    pub async fn world(&self, ns: &str, model: &str, ns_extra: Value) -> String {
        self.namespace(ns, ns_extra).await;
        if self
            .admin(
                reqwest::Method::GET,
                &format!("/api/v1/models/{model}"),
                None,
            )
            .await
            .status
            == 404
        {
            self.model(model, "1", "2").await;
        }
        for i in 0..self.mocks.len() {
            self.instance(
                &format!("{ns}-i{i}"),
                ns,
                model,
                &self.mock_base(i),
                json!({"api_key": upstream_secret(ns, i),
                       "health_check": {"path": "/models", "interval_s": 1},
                       "timeout_ms": 5000}),
            )
            .await;
        }
        let (_, key, v) = self.key(ns, json!({})).await;
        self.wait_version(v).await;
        key
    }

    /// Waits until every running gateway (and the token-service, when it
    /// runs) has loaded config version `v` or later (20 s at most).
    pub async fn wait_version(&self, v: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for g in &self.gateways {
            if g.proc.is_none() {
                continue;
            }
            loop {
                let got = self.json(&format!("{}/ready", g.url())).await["config_version"].as_u64();
                if got.is_some_and(|g| g >= v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "gateway {} stuck at config {got:?} < {v}",
                    g.url()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if self.ts.proc.is_some() {
            loop {
                let got = self.json(&format!("{}/ready", self.ts.url())).await["snapshot_version"]
                    .as_u64();
                if got.is_some_and(|g| g >= v) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "token-service stuck at config {got:?} < {v}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Every spend-ledger row matching `filter` (query parameters of
    /// `GET /api/v1/usage/requests`, `""` for all), paged through newest
    /// first.
    pub async fn ledger_rows(&self, filter: &str) -> Vec<Value> {
        let mut rows = Vec::new();
        let mut cursor = String::new();
        loop {
            let a = self
                .admin(
                    reqwest::Method::GET,
                    &format!("/api/v1/usage/requests?{filter}&limit=500&cursor={cursor}"),
                    None,
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            rows.extend(a.body["items"].as_array().unwrap().iter().cloned());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return rows,
            }
        }
    }

    /// GET → JSON (Null when unreachable or not JSON).
    pub async fn json(&self, url: &str) -> Value {
        match self.http.get(url).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// GET → text ("" when unreachable).
    pub async fn text(&self, url: &str) -> String {
        match self.http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }
}

/// The upstream secret of instance `i` of namespace `ns`: distinctive, so the
/// secret grep finds any leak.
pub fn upstream_secret(ns: &str, i: usize) -> String {
    format!("sk-upstream-SECRET-{ns}-{i}-9c2e4a61f0b7")
}

/// A model's prices in USD per million tokens, as the admin API takes them
/// (decimal strings); the cache prices are optional.
#[derive(Debug, Clone, Copy)]
pub struct Prices<'a> {
    pub input: &'a str,
    pub output: &'a str,
    pub cached_input: Option<&'a str>,
    pub cache_write: Option<&'a str>,
}

impl<'a> Prices<'a> {
    pub fn new(input: &'a str, output: &'a str) -> Prices<'a> {
        Prices {
            input,
            output,
            cached_input: None,
            cache_write: None,
        }
    }

    /// The cost of one request in nano-USD as the token-service computes it
    /// (`docs/token-service.md`): uncached input at the input price, cache
    /// reads and writes at their prices (the input price when unset), the
    /// completion at the output price; rounded once, half away from zero.
    pub fn cost_nusd(&self, prompt: u64, cached: u64, cache_write: u64, completion: u64) -> i64 {
        let input = price_e9(self.input);
        let parts = [
            (prompt - cached - cache_write, input),
            (cached, self.cached_input.map_or(input, price_e9)),
            (cache_write, self.cache_write.map_or(input, price_e9)),
            (completion, price_e9(self.output)),
        ];
        // Σ tokens × USD per million tokens × 1e9 (the prices' scale);
        // divided by 1e6 it is nano-USD.
        let units: i128 = parts.iter().map(|(t, p)| i128::from(*t) * p).sum();
        ((units + 500_000) / 1_000_000) as i64
    }
}

/// A decimal price string (at most nine decimals) × 1e9.
fn price_e9(s: &str) -> i128 {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    assert!(frac.len() <= 9, "price {s} has more than nine decimals");
    let frac = format!("{frac:0<9}");
    whole.parse::<i128>().expect("price") * 1_000_000_000 + frac.parse::<i128>().expect("price")
}
