//! The `/metrics` endpoint's gate and cache, the same on every service.
//!
//! - `METRICS_TOKEN` (optional): when set, a scrape must carry
//!   `Authorization: Bearer <token>` (compared in constant time); any other
//!   request gets a JSON 401. Unset, `/metrics` is open, as the seed's
//!   `:8080/metrics` has always been.
//! - A scrape's rendered text is kept for at most [`SCRAPE_CACHE_TTL`] per
//!   `Accept` header: scrapes arriving within that second share one render,
//!   so a scraper (or an attacker) cannot turn scrape rate into Redis load.
//!   Concurrent scrapes that find no fresh text wait for the one render in
//!   progress instead of starting their own.

use crate::{Env, Secret};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a rendered scrape is served again.
pub const SCRAPE_CACHE_TTL: Duration = Duration::from_secs(1);

/// The most `Accept` variants cached at once (Prometheus sends one; a
/// client sending many only evicts its own entries).
const CACHED_VARIANTS: usize = 4;

struct Rendered {
    at: Instant,
    accept: Option<String>,
    content_type: &'static str,
    body: String,
}

/// `METRICS_TOKEN`: the bearer token `/metrics` requires; unset or empty
/// means open.
pub fn metrics_token(env: &Env) -> Option<Secret> {
    env.secret("METRICS_TOKEN")
        .filter(|t| !t.expose().is_empty())
}

/// A service's `/metrics`: who may scrape it and the last renders.
pub struct ScrapeGate {
    token: Option<Secret>,
    ttl: Duration,
    cache: tokio::sync::Mutex<Vec<Rendered>>,
}

impl ScrapeGate {
    /// A gate requiring `token` when there is one, with the standard cache.
    pub fn new(token: Option<Secret>) -> ScrapeGate {
        ScrapeGate::with(token, SCRAPE_CACHE_TTL)
    }

    pub fn with(token: Option<Secret>, ttl: Duration) -> ScrapeGate {
        ScrapeGate {
            token,
            ttl,
            cache: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Whether a token is required.
    pub fn is_protected(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `req` may scrape.
    pub fn allows(&self, req: &HttpRequest) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), token.expose().as_bytes())
    }

    /// Answers a scrape: a JSON 401 when the gate refuses it, else the text
    /// `render(accept)` produced within the last second for the same
    /// `Accept`, or a new render.
    pub async fn serve<F, Fut>(&self, req: &HttpRequest, render: F) -> HttpResponse
    where
        F: FnOnce(Option<String>) -> Fut,
        Fut: Future<Output = (&'static str, String)>,
    {
        if !self.allows(req) {
            return unauthorized();
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        cache.retain(|r| now.duration_since(r.at) < self.ttl);
        if let Some(hit) = cache.iter().find(|r| r.accept == accept) {
            return ok(hit.content_type, hit.body.clone());
        }
        let (content_type, body) = render(accept.clone()).await;
        if cache.len() >= CACHED_VARIANTS {
            cache.remove(0);
        }
        cache.push(Rendered {
            at: Instant::now(),
            accept,
            content_type,
            body: body.clone(),
        });
        ok(content_type, body)
    }
}

fn ok(content_type: &'static str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn unauthorized() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
        .json(aigw_types::ErrorEnvelope::new(
            "authentication_error",
            "invalid_metrics_token",
            "/metrics requires Authorization: Bearer <METRICS_TOKEN>",
        ))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use actix_web::test::TestRequest;
    use std::cell::Cell;

    async fn scrape(gate: &ScrapeGate, req: HttpRequest, renders: &Cell<u32>) -> (u16, String) {
        let resp = gate
            .serve(&req, |accept| async move {
                renders.set(renders.get() + 1);
                (
                    "text/plain; version=0.0.4",
                    format!("render {} for {accept:?}\n", renders.get()),
                )
            })
            .await;
        let status = resp.status().as_u16();
        let body = resp.into_body().try_into_bytes().unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn without_a_token_every_scrape_is_served() {
        let gate = ScrapeGate::with(None, Duration::ZERO);
        let renders = Cell::new(0);
        let (status, body) = scrape(&gate, TestRequest::get().to_http_request(), &renders).await;
        assert_eq!((status, body.as_str()), (200, "render 1 for None\n"));
        assert!(!gate.is_protected());
    }

    #[tokio::test]
    async fn with_a_token_only_its_bearer_is_served() {
        let gate = ScrapeGate::with(Some(Secret::new("s3cret")), Duration::ZERO);
        let renders = Cell::new(0);
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
        ] {
            let mut req = TestRequest::get();
            if let Some(a) = auth {
                req = req.insert_header((header::AUTHORIZATION, a));
            }
            let (status, body) = scrape(&gate, req.to_http_request(), &renders).await;
            assert_eq!(status, 401, "{auth:?}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], "invalid_metrics_token", "{body}");
            assert!(!body.contains("s3cret"), "{body}");
        }
        assert_eq!(renders.get(), 0, "a refused scrape renders nothing");
        for auth in ["Bearer s3cret", "bearer  s3cret"] {
            let req = TestRequest::get().insert_header((header::AUTHORIZATION, auth));
            let (status, _) = scrape(&gate, req.to_http_request(), &renders).await;
            assert_eq!(status, 200, "{auth}");
        }
    }

    #[tokio::test]
    async fn scrapes_within_the_ttl_share_one_render_per_accept() {
        let gate = ScrapeGate::with(None, Duration::from_secs(3600));
        let renders = Cell::new(0);
        let om = || {
            TestRequest::get()
                .insert_header((header::ACCEPT, "application/openmetrics-text"))
                .to_http_request()
        };
        let first = scrape(&gate, TestRequest::get().to_http_request(), &renders).await;
        let second = scrape(&gate, TestRequest::get().to_http_request(), &renders).await;
        assert_eq!(first, second);
        assert_eq!(renders.get(), 1);
        let (_, om1) = scrape(&gate, om(), &renders).await;
        let (_, om2) = scrape(&gate, om(), &renders).await;
        assert_eq!(om1, "render 2 for Some(\"application/openmetrics-text\")\n");
        assert_eq!(om1, om2);
        assert_eq!(renders.get(), 2);
    }

    #[tokio::test]
    async fn an_expired_render_is_rendered_again() {
        let gate = ScrapeGate::with(None, Duration::ZERO);
        let renders = Cell::new(0);
        scrape(&gate, TestRequest::get().to_http_request(), &renders).await;
        let (_, body) = scrape(&gate, TestRequest::get().to_http_request(), &renders).await;
        assert_eq!(body, "render 2 for None\n");
    }
}
