//! `/ui`: the fleet at a glance — per namespace its requests, error rate,
//! p95 latency and spend this month (the gateways' and token-service's
//! counters in Redis), its spend today (the ledger's rows since 00:00 UTC),
//! and how many instances are healthy.

use super::error::UiError;
use super::layout::{usd, Nav, Page};
use super::live;
use super::session::Session;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::state::AppState;
use crate::usage::{GroupBy, UsageFilter};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use maud::html;
use std::collections::HashMap;

fn ms(us: u64) -> String {
    if us >= 1_000_000 {
        format!("≤ {} s", us as f64 / 1e6)
    } else {
        format!("≤ {} ms", us / 1000)
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
    let stats = live::namespace_stats(&state, &codes).await;
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
    let total = stats.as_ref().map(|s| {
        s.iter()
            .fold(live::NsStats::default(), |a, b| live::NsStats {
                requests: a.requests + b.requests,
                failed: a.failed + b.failed,
                month_cost_nano: a.month_cost_nano + b.month_cost_nano,
                p95_us: None,
            })
    });
    let pct = |r: Option<f64>| {
        r.map(|r| format!("{:.1} %", r * 100.0))
            .unwrap_or_else(|| "—".into())
    };
    let body = html! {
        @if stats.is_none() {
            p.error role="alert" { "Redis cannot be reached: traffic and spend are unknown right now." }
        }
        div.tiles {
            div.tile { div.value { (total.as_ref().map_or("—".into(), |t| t.requests.to_string())) } div.label { "requests (all time)" } }
            div.tile { div.value { (pct(total.as_ref().and_then(live::NsStats::error_rate))) } div.label { "error rate" } }
            div.tile { div.value { (total.as_ref().map_or("—".into(), |t| usd(t.month_cost_nano))) } div.label { "spend this month" } }
            div.tile { div.value { (today.as_ref().map_or("—".into(), |t| usd(t.values().sum::<i64>()))) } div.label { "spend today (UTC)" } }
            div.tile { div.value { (healthy) " / " (instances.len()) } div.label { "instances healthy" } }
            div.tile { div.value { (unhealthy) } div.label { "instances unhealthy" } }
            div.tile { div.value { (namespaces.len()) } div.label { "namespaces" } }
        }
        h2 { "Namespaces" }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Namespace" } th.num scope="col" { "Requests" } th.num scope="col" { "Error rate" }
                    th.num scope="col" { "p95 latency" } th.num scope="col" { "Spend today" } th.num scope="col" { "Spend this month" }
                } }
                tbody {
                    @for (i, n) in namespaces.iter().enumerate() {
                        @let s = stats.as_ref().map(|s| &s[i]);
                        tr {
                            td { a href=(format!("/ui/namespaces/{}", n.code)) { (n.code) } " " span.hint { (n.name) } }
                            td.num { (s.map_or("—".into(), |s| s.requests.to_string())) }
                            td.num { (pct(s.and_then(live::NsStats::error_rate))) }
                            td.num { (s.and_then(|s| s.p95_us).map_or("—".into(), ms)) }
                            td.num { (today_of(&n.code).unwrap_or_else(|| "—".into())) }
                            td.num { (s.map_or("—".into(), |s| usd(s.month_cost_nano))) }
                        }
                    }
                }
            }
        }
        p.hint { "p95: the upper bound of the latency bucket that holds it, since the counters began." }
    };
    let page = Page {
        title: "Overview",
        nav: Nav::Overview,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(StatusCode::OK, body))
}
