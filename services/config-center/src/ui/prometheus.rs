//! The overview's traffic figures from Prometheus' HTTP API when
//! `PROMETHEUS_URL` is set: per namespace the requests and failed requests
//! of the last hour and the p95 latency interpolated in the latency
//! histogram, three instant queries evaluated at one moment that the page
//! states. Every gateway replica exports the fleet-wide values it reads
//! from Redis, so replicas are combined with `max` (as the dashboards do),
//! never summed. Credentials in the URL become a basic-auth header; neither
//! they nor the URL ever reach a page, a log line or an error.

use aigw_service::Secret;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The window of the three queries (`[1h]` in each), as the page says it.
pub const WINDOW_TEXT: &str = "the last 1 h";

/// Requests per namespace over the last hour.
pub const REQUESTS: &str =
    "max by (namespace_code) (increase(ai_gateway_namespace_requests_total[1h]))";
/// Failed requests (status ≥ 400) per namespace over the last hour.
pub const FAILED: &str =
    "max by (namespace_code) (increase(ai_gateway_namespace_failed_requests_total[1h]))";
/// The 95th percentile of the request duration per namespace, seconds.
pub const P95: &str = "histogram_quantile(0.95, max by (namespace_code, le) \
(rate(ai_gateway_request_duration_seconds_bucket[1h])))";

/// Why Prometheus gave no figures. The text is safe to show: no URL, no
/// credentials, no answer body.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("did not answer within {0}")]
    Timeout(String),
    #[error("could not be reached")]
    Unreachable,
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("refused the query ({0})")]
    Query(String),
    #[error("answered something that is not a query result")]
    Malformed,
}

/// A namespace's traffic over the window (`None`: no value, e.g. the p95
/// of a namespace without requests).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NsTraffic {
    pub requests: Option<f64>,
    pub failed: Option<f64>,
    /// Seconds.
    pub p95_s: Option<f64>,
}

/// The three queries' answers, by namespace code.
#[derive(Debug)]
pub struct Traffic {
    /// Evaluation time, unix milliseconds.
    pub at_ms: i64,
    pub by_ns: HashMap<String, NsTraffic>,
}

/// The client, built once at start.
pub struct Prometheus {
    http: reqwest::Client,
    /// `…/api/v1/query`, without credentials.
    query_url: url::Url,
    basic_auth: Option<(String, Option<String>)>,
    timeout: Duration,
    /// How long before now the queries are evaluated.
    offset: Duration,
}

impl Prometheus {
    /// A client for the Prometheus at `url` (the config checked it is an
    /// `http(s)://` URL), giving up after `timeout`, evaluating `offset`
    /// before now.
    pub fn new(url: &Secret, timeout: Duration, offset: Duration) -> anyhow::Result<Prometheus> {
        let mut u = url::Url::parse(url.expose())
            .map_err(|_| anyhow::anyhow!("PROMETHEUS_URL is not a URL"))?;
        let basic_auth = (!u.username().is_empty() || u.password().is_some())
            .then(|| (decode(u.username()), u.password().map(decode)));
        let _ = u.set_username("");
        let _ = u.set_password(None);
        let path = format!("{}/api/v1/query", u.path().trim_end_matches('/'));
        u.set_path(&path);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| anyhow::anyhow!("Prometheus client: {}", e.without_url()))?;
        Ok(Prometheus {
            http,
            query_url: u,
            basic_auth,
            timeout,
            offset,
        })
    }

    /// Requests, failed requests and p95 per namespace over the last hour,
    /// evaluated the offset before `now_ms`.
    pub async fn traffic(&self, now_ms: i64) -> Result<Traffic, PromError> {
        let at_ms = now_ms - self.offset.as_millis() as i64;
        let (requests, failed, p95) = tokio::join!(
            self.instant(REQUESTS, at_ms),
            self.instant(FAILED, at_ms),
            self.instant(P95, at_ms),
        );
        let mut by_ns: HashMap<String, NsTraffic> = HashMap::new();
        for (ns, v) in requests? {
            by_ns.entry(ns).or_default().requests = v;
        }
        for (ns, v) in failed? {
            by_ns.entry(ns).or_default().failed = v;
        }
        for (ns, v) in p95? {
            by_ns.entry(ns).or_default().p95_s = v;
        }
        Ok(Traffic { at_ms, by_ns })
    }

    /// One instant query: value by `namespace_code`.
    async fn instant(
        &self,
        expr: &str,
        at_ms: i64,
    ) -> Result<Vec<(String, Option<f64>)>, PromError> {
        let time = format!("{}.{:03}", at_ms.div_euclid(1000), at_ms.rem_euclid(1000));
        let mut req = self
            .http
            .get(self.query_url.clone())
            .query(&[("query", expr), ("time", time.as_str())]);
        if let Some((user, password)) = &self.basic_auth {
            req = req.basic_auth(user, password.as_ref());
        }
        let res = req.send().await.map_err(|e| self.transport(e))?;
        let status = res.status();
        let body = res.bytes().await.map_err(|e| self.transport(e))?;
        parse_answer(status.as_u16(), &body)
    }

    fn transport(&self, e: reqwest::Error) -> PromError {
        let failure = if e.is_timeout() {
            PromError::Timeout(aigw_service::env::format_duration(self.timeout))
        } else if e.is_connect() {
            PromError::Unreachable
        } else {
            PromError::Malformed
        };
        tracing::debug!(error = %e.without_url(), "Prometheus query failed");
        failure
    }
}

/// Percent-decoded URL user info (`p%40ss` → `p@ss`).
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// An `/api/v1/query` answer → `(namespace_code, value)` per series; a
/// value that is not finite (the p95 of no requests is NaN) is `None`.
fn parse_answer(status: u16, body: &[u8]) -> Result<Vec<(String, Option<f64>)>, PromError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) if status >= 300 => return Err(PromError::Status(status)),
        Err(_) => return Err(PromError::Malformed),
    };
    if v["status"] == "error" {
        // Prometheus' error types are a fixed set of words.
        let kind = v["errorType"].as_str().unwrap_or("error");
        let kind: String = kind
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect();
        return Err(PromError::Query(kind));
    }
    if status >= 300 {
        return Err(PromError::Status(status));
    }
    if v["status"] != "success" || v["data"]["resultType"] != "vector" {
        return Err(PromError::Malformed);
    }
    let result = v["data"]["result"].as_array().ok_or(PromError::Malformed)?;
    result
        .iter()
        .map(|s| {
            let ns = s["metric"]["namespace_code"].as_str().unwrap_or_default();
            let value = s["value"][1].as_str().ok_or(PromError::Malformed)?;
            let value = value.parse::<f64>().ok().filter(|v| v.is_finite());
            Ok((ns.to_string(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_values_by_namespace() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"namespace_code":"a"},"value":[1700000000.5,"4.2857"]},
            {"metric":{"namespace_code":"b"},"value":[1700000000.5,"NaN"]},
            {"metric":{"namespace_code":"c"},"value":[1700000000.5,"+Inf"]}]}}"#;
        assert_eq!(
            parse_answer(200, body).unwrap(),
            vec![
                ("a".to_string(), Some(4.2857)),
                ("b".to_string(), None),
                ("c".to_string(), None)
            ]
        );
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse_answer(200, empty).unwrap().is_empty());
    }

    #[test]
    fn failures_name_a_reason_without_the_answer() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3: <secret>"}"#;
        let e = parse_answer(400, bad).unwrap_err();
        assert_eq!(e.to_string(), "refused the query (bad_data)");
        let e = parse_answer(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(e.to_string(), "answered HTTP 502");
        let e = parse_answer(200, b"not json").unwrap_err();
        assert!(matches!(e, PromError::Malformed));
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(matches!(
            parse_answer(200, matrix),
            Err(PromError::Malformed)
        ));
    }

    #[test]
    fn credentials_leave_the_url_for_a_header() {
        let p = Prometheus::new(
            &Secret::url("https://viewer:p%40ss@prom.example:9090/prom/"),
            Duration::from_secs(2),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(
            p.query_url.as_str(),
            "https://prom.example:9090/prom/api/v1/query"
        );
        assert_eq!(
            p.basic_auth,
            Some(("viewer".to_string(), Some("p@ss".to_string())))
        );
        let p = Prometheus::new(
            &Secret::url("http://127.0.0.1:9090"),
            Duration::from_secs(2),
            Duration::ZERO,
        )
        .unwrap();
        assert_eq!(p.query_url.as_str(), "http://127.0.0.1:9090/api/v1/query");
        assert_eq!(p.basic_auth, None);
    }
}
