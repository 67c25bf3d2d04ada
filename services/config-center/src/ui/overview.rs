//! `/ui`: the fleet at a glance — per namespace its requests, error rate
//! and p95 latency (from Prometheus over the last hour when `PROMETHEUS_URL`
//! is set, else the gateways' counters in Redis since they began), its
//! spend today (the ledger's rows since 00:00 UTC) and this month (the
//! token-service's counter in Redis), and how many instances are healthy.
//! The page says where each figure comes from; when Prometheus cannot
//! answer it says so and shows the Redis figures.

use super::error::UiError;
use super::layout::{usd, Nav, Page};
use super::live::{self, NsStats};
use super::prometheus::{self, NsTraffic, PromError, Traffic};
use super::session::Session;
use crate::domain::format_ms;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::state::AppState;
use crate::usage::{GroupBy, UsageFilter};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use maud::{html, Markup};
use std::collections::HashMap;

/// A bucket bound of the Redis histogram.
fn bucket_bound(us: u64) -> String {
    if us >= 1_000_000 {
        format!("≤ {} s", us as f64 / 1e6)
    } else {
        format!("≤ {} ms", us / 1000)
    }
}

/// An interpolated latency from Prometheus.
fn seconds(s: f64) -> String {
    let ms = s * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{s:.2} s")
    }
}

fn pct(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1} %", r * 100.0))
        .unwrap_or_else(|| DASH.into())
}

const DASH: &str = "—";

/// Where the requests, error-rate and p95 figures come from.
enum Source<'a> {
    Prometheus(&'a Traffic),
    /// The Redis counters (`None`: Redis is down too).
    Redis(Option<&'a [NsStats]>),
}

/// One namespace's requests, error rate and p95 cells: `(text, exact
/// value)`, the value as a `data-value` attribute for scripts and tests.
struct Cells {
    requests: (String, Option<String>),
    error_rate: String,
    p95: (String, Option<String>),
}

impl Source<'_> {
    fn cells(&self, i: usize, code: &str) -> Cells {
        match self {
            Source::Prometheus(t) => {
                let none = NsTraffic::default();
                let n = t.by_ns.get(code).unwrap_or(&none);
                // No series: no request in the window.
                let requests = n.requests.unwrap_or(0.0);
                let rate = (requests > 0.0).then(|| n.failed.unwrap_or(0.0) / requests);
                Cells {
                    requests: (format!("{requests:.0}"), Some(requests.to_string())),
                    error_rate: pct(rate),
                    p95: (
                        n.p95_s.map_or(DASH.into(), seconds),
                        n.p95_s.map(|v| v.to_string()),
                    ),
                }
            }
            Source::Redis(stats) => {
                let s = stats.map(|s| &s[i]);
                Cells {
                    requests: (
                        s.map_or(DASH.into(), |s| s.requests.to_string()),
                        s.map(|s| s.requests.to_string()),
                    ),
                    error_rate: pct(s.and_then(NsStats::error_rate)),
                    p95: (
                        s.and_then(|s| s.p95_us).map_or(DASH.into(), bucket_bound),
                        None,
                    ),
                }
            }
        }
    }

    /// All namespaces' requests and failed requests.
    fn totals(&self, codes: &[&str]) -> Option<(f64, f64)> {
        match self {
            Source::Prometheus(t) => Some(codes.iter().fold((0.0, 0.0), |(r, f), code| {
                let n = t.by_ns.get(*code);
                (
                    r + n.and_then(|n| n.requests).unwrap_or(0.0),
                    f + n.and_then(|n| n.failed).unwrap_or(0.0),
                )
            })),
            Source::Redis(stats) => stats.map(|s| {
                s.iter().fold((0.0, 0.0), |(r, f), s| {
                    (r + s.requests as f64, f + s.failed as f64)
                })
            }),
        }
    }

    /// How the page names the window of these figures.
    fn window(&self) -> &'static str {
        match self {
            Source::Prometheus(_) => prometheus::WINDOW_TEXT,
            Source::Redis(_) => "since the counters began",
        }
    }

    /// The paragraph saying where every figure comes from.
    fn explain(&self) -> Markup {
        let spend = html! {
            " Spend today: the spend ledger's rows since 00:00 UTC. Spend this month: the \
            token-service's cost counter in Redis, the figure budgets are checked against. \
            Instance health: what the gateways last reported."
        };
        match self {
            Source::Prometheus(t) => {
                let at = format_ms(t.at_ms);
                let at = format!("{} UTC", at[..19].replace('T', " "));
                html! {
                    p.hint #traffic-source data-source="prometheus"
                        data-time=(format!("{}.{:03}", t.at_ms.div_euclid(1000), t.at_ms.rem_euclid(1000))) {
                        "Requests, error rate and p95 latency: Prometheus, " (prometheus::WINDOW_TEXT)
                        " up to " (at) " (p95 interpolated within the latency histogram's bucket)."
                        (spend)
                    }
                    details.hint {
                        summary { "Prometheus queries" }
                        ul {
                            @for q in [prometheus::REQUESTS, prometheus::FAILED, prometheus::P95] {
                                li { code.promql { (q) } }
                            }
                        }
                    }
                }
            }
            Source::Redis(_) => html! {
                p.hint #traffic-source data-source="redis" {
                    "Requests, error rate and p95 latency: the gateways' counters in Redis, since \
                    they began (p95: the upper bound of the latency bucket that holds it)."
                    (spend)
                }
            },
        }
    }
}

pub async fn show(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, UiError> {
    let limit = MAX_PAGE as u32;
    let namespaces = state
        .store
        .list_namespaces(None, limit)
        .await
        .map_err(ApiError::from)?;
    let instances = state
        .store
        .list_instances(None, None, None, limit)
        .await
        .map_err(ApiError::from)?;
    let codes: Vec<&str> = namespaces.iter().map(|n| n.code.as_str()).collect();
    // Prometheus (when set) and Redis are asked at the same time.
    let (stats, traffic) = tokio::join!(live::namespace_stats(&state, &codes), async {
        match &state.prometheus {
            Some(p) => Some(p.traffic(now_ms()).await),
            None => None,
        }
    });
    let traffic: Option<Result<Traffic, PromError>> = traffic;
    let prom_failure = match &traffic {
        Some(Err(e)) => {
            tracing::warn!(error = %e, "Prometheus: the overview shows the Redis counters");
            Some(e)
        }
        _ => None,
    };
    let source = match &traffic {
        Some(Ok(t)) => Source::Prometheus(t),
        _ => Source::Redis(stats.as_deref()),
    };
    let pairs: Vec<(&str, &str)> = instances
        .iter()
        .map(|i| (i.id.as_str(), i.namespace_code.as_str()))
        .collect();
    let health = live::instance_health(&state, &pairs).await;
    // Spend today per namespace, from the ledger (None: the query failed).
    const DAY_MS: i64 = 86_400_000;
    let today = UsageFilter {
        from_ms: Some(now_ms() - now_ms().rem_euclid(DAY_MS)),
        ..UsageFilter::default()
    };
    let today: Option<HashMap<String, i64>> = state
        .store
        .usage_totals(&today, &[GroupBy::Namespace], limit)
        .await
        .ok()
        .map(|groups| {
            groups
                .into_iter()
                .filter_map(|g| Some((g.namespace?, g.totals.cost_nano_usd)))
                .collect()
        });
    let today_of = |code: &str| {
        today
            .as_ref()
            .map(|t| usd(t.get(code).copied().unwrap_or(0)))
    };
    let healthy = health.iter().filter(|h| **h == Some(true)).count();
    let unhealthy = health.iter().filter(|h| **h == Some(false)).count();
    let month_total = stats
        .as_ref()
        .map(|s| s.iter().map(|s| s.month_cost_nano).sum::<i64>());
    let totals = source.totals(&codes);
    let window = source.window();
    let body = html! {
        @if let Some(e) = prom_failure {
            p.error #prometheus-note role="alert" {
                "Prometheus " (e) ": requests, error rate and p95 latency below are the Redis \
                counters since they began, not " (prometheus::WINDOW_TEXT) "."
            }
        }
        @if stats.is_none() {
            p.error role="alert" { "Redis cannot be reached: spend this month (and traffic without Prometheus) is unknown right now." }
        }
        div.tiles {
            div.tile { div.value #total-requests { (totals.map_or(DASH.into(), |(r, _)| format!("{r:.0}"))) } div.label { "requests (" (window) ")" } }
            div.tile { div.value { (pct(totals.and_then(|(r, f)| (r > 0.0).then(|| f / r)))) } div.label { "error rate (" (window) ")" } }
            div.tile { div.value { (month_total.map_or(DASH.into(), usd)) } div.label { "spend this month" } }
            div.tile { div.value { (today.as_ref().map_or(DASH.into(), |t| usd(t.values().sum::<i64>()))) } div.label { "spend today (UTC)" } }
            div.tile { div.value { (healthy) " / " (instances.len()) } div.label { "instances healthy" } }
            div.tile { div.value { (unhealthy) } div.label { "instances unhealthy" } }
            div.tile { div.value { (namespaces.len()) } div.label { "namespaces" } }
        }
        h2 { "Namespaces" }
        div.table-wrap {
            table #overview-namespaces {
                thead { tr {
                    th scope="col" { "Namespace" }
                    th.num scope="col" { "Requests" br; span.hint { (window) } }
                    th.num scope="col" { "Error rate" br; span.hint { (window) } }
                    th.num scope="col" { "p95 latency" br; span.hint { (window) } }
                    th.num scope="col" { "Spend today" }
                    th.num scope="col" { "Spend this month" }
                } }
                tbody {
                    @for (i, n) in namespaces.iter().enumerate() {
                        @let c = source.cells(i, &n.code);
                        @let s = stats.as_ref().map(|s| &s[i]);
                        tr data-namespace=(n.code) {
                            td { a href=(format!("/ui/namespaces/{}", n.code)) { (n.code) } " " span.hint { (n.name) } }
                            td.num.requests data-value=[c.requests.1] { (c.requests.0) }
                            td.num.error-rate { (c.error_rate) }
                            td.num.p95 data-value=[c.p95.1] { (c.p95.0) }
                            td.num { (today_of(&n.code).unwrap_or_else(|| DASH.into())) }
                            td.num { (s.map_or(DASH.into(), |s| usd(s.month_cost_nano))) }
                        }
                    }
                }
            }
        }
        (source.explain())
    };
    let page = Page {
        title: "Overview",
        nav: Nav::Overview,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(StatusCode::OK, body))
}
