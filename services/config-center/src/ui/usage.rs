//! `/ui/usage`: the usage explorer over the spend ledger — filters
//! (namespace, key, model, time range), requests and cost over time as a
//! chart, the request rows, and the same rows as CSV.

use super::error::UiError;
use super::layout::{field, Input, Nav, Page, Problem};
use super::session::Session;
use crate::domain::format_ms;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::state::AppState;
use crate::usage::{
    rows_csv, GroupBy, QueryKind, UsageFilter, UsageGroup, UsageQuery, MAX_CSV_ROWS, MAX_GROUPS,
};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use aigw_types::LedgerRow;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

/// The filters, as the query string carries them (the admin API's names).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct Filters {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub key_id: String,
    #[serde(default)]
    pub model: String,
    /// RFC 3339; empty = the last 24 hours.
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Most rows the page shows (the CSV holds up to the API's CSV bound).
const PAGE_ROWS: u32 = 200;
const DAY_MS: i64 = 86_400_000;

/// What the ledger holds for the filters: buckets over time and rows.
struct Found {
    buckets: Vec<UsageGroup>,
    rows: Vec<LedgerRow>,
    /// The range covered, unix milliseconds.
    from_ms: i64,
    to_ms: i64,
}

/// The filters as the admin API reads them (same parsing, same errors);
/// without `from`, the last 24 hours.
fn filter(f: &Filters) -> Result<UsageFilter, ApiError> {
    let pairs = [
        ("namespace", &f.namespace),
        ("key_id", &f.key_id),
        ("model", &f.model),
        ("from", &f.from),
        ("to", &f.to),
    ];
    let given = pairs
        .iter()
        .map(|(k, v)| (*k, v.trim()))
        .filter(|(_, v)| !v.is_empty());
    let mut filter = UsageQuery::parse(given, QueryKind::Rows)?.filter;
    let to = filter.to_ms.unwrap_or_else(now_ms);
    filter.from_ms.get_or_insert(to - DAY_MS);
    Ok(filter)
}

async fn query(state: &AppState, f: &Filters, rows: u32) -> Result<Found, ApiError> {
    let filter = filter(f)?;
    let to_ms = filter.to_ms.unwrap_or_else(now_ms);
    let from_ms = filter.from_ms.unwrap_or(0);
    let by = if to_ms - from_ms > 7 * DAY_MS {
        GroupBy::Day
    } else {
        GroupBy::Hour
    };
    Ok(Found {
        from_ms,
        to_ms,
        buckets: state.store.usage_totals(&filter, &[by], MAX_GROUPS).await?,
        rows: state.store.usage_rows(&filter, None, rows).await?,
    })
}

#[derive(Serialize)]
struct Series {
    t: Vec<i64>,
    requests: Vec<i64>,
    cost: Vec<f64>,
    /// The filter's range, unix seconds: the chart's x axis.
    from: i64,
    to: i64,
}

fn filters_form(
    f: &Filters,
    namespaces: &[(String, String)],
    models: &[(String, String)],
) -> Markup {
    let text = |value| Input::Text {
        kind: "text",
        value,
    };
    let none: Option<&Problem> = None;
    html! {
        form.card method="get" action="/ui/usage" {
            div.grid {
                (field("Namespace", "namespace", Input::Select { options: namespaces, selected: &f.namespace }, None, none))
                (field("API key id", "key_id", text(&f.key_id), Some("empty = every key"), none))
                (field("Model", "model", Input::Select { options: models, selected: &f.model }, None, none))
                (field("From (UTC)", "from", text(&f.from), Some("RFC 3339; empty = 24 hours ago"), none))
                (field("To (UTC)", "to", text(&f.to), Some("RFC 3339; empty = now"), none))
            }
            div.actions { button type="submit" { "Show" } }
        }
    }
}

pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    f: web::Query<Filters>,
) -> Result<HttpResponse, UiError> {
    let f = f.into_inner();
    let any = || vec![(String::new(), "all".to_string())];
    let mut namespaces = any();
    namespaces.extend(
        state
            .store
            .list_namespaces(None, MAX_PAGE as u32)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|n| (n.code.clone(), n.code)),
    );
    let mut models = any();
    models.extend(
        state
            .store
            .list_models(None, MAX_PAGE as u32)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|m| (m.name.clone(), m.name)),
    );
    let ledger = match query(&state, &f, PAGE_ROWS).await {
        Ok(found) => Ok(found),
        Err(e) => Err(Problem::from_api(e)?),
    };
    let csv = format!(
        "/ui/usage.csv?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("namespace", &f.namespace)
            .append_pair("key_id", &f.key_id)
            .append_pair("model", &f.model)
            .append_pair("from", &f.from)
            .append_pair("to", &f.to)
            .finish()
    );
    let body = html! {
        (filters_form(&f, &namespaces, &models))
        @match &ledger {
            Err(p) => p.error role="alert" { (p.message) },
            Ok(Found { rows, buckets, from_ms, to_ms }) => {
                @let series = Series {
                    t: buckets.iter().map(|b| b.hour_ms.or(b.day_ms).unwrap_or(0) / 1000).collect(),
                    requests: buckets.iter().map(|b| b.totals.requests).collect(),
                    cost: buckets.iter().map(|b| b.totals.cost_nano_usd as f64 / 1e9).collect(),
                    from: from_ms / 1000,
                    to: to_ms / 1000,
                };
                h2 { "Over time" }
                // The chart's data rides in an attribute (escaped like any
                // other value): no inline script.
                div #usage-chart role="img" aria-label="Requests and cost over time"
                    data-series=(serde_json::to_string(&series).unwrap_or_default()) {
                    p.hint { (buckets.len()) " time buckets; the chart needs JavaScript." }
                }
                h2 { "Requests" }
                p { a.button href=(csv) download { "Download CSV" } }
                div.table-wrap #usage-rows {
                    table {
                        caption.hint { (rows.len()) " requests, newest first" }
                        thead { tr {
                            th scope="col" { "Time (UTC)" } th scope="col" { "Namespace" } th scope="col" { "Key" }
                            th scope="col" { "Model" } th.num scope="col" { "Status" }
                            th.num scope="col" { "Prompt tokens" } th.num scope="col" { "Completion tokens" }
                            th.num scope="col" { "Cost" } th.num scope="col" { "Latency (ms)" }
                        } }
                        tbody {
                            @for r in rows {
                                tr {
                                    td { (format_ms(r.started_at_ms)) }
                                    td { (r.namespace_code) }
                                    td.mono { (r.api_key_id.as_deref().unwrap_or("—")) }
                                    td { (r.model) }
                                    td.num { (r.status) }
                                    td.num { (r.prompt_tokens) }
                                    td.num { (r.completion_tokens) }
                                    td.num { "$" (crate::usage::usd(r.cost_nano_usd as i64)) }
                                    td.num { (r.duration_us / 1000) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = match &ledger {
        Err(p) => p.status(),
        Ok(_) => StatusCode::OK,
    };
    let page = Page {
        title: "Usage",
        nav: Nav::Usage,
        csrf: Some(session.csrf()),
        chart: true,
    };
    Ok(page.render(status, body))
}

/// `GET /ui/usage.csv`: the filtered rows in the admin API's CSV shape.
pub async fn csv(
    state: web::Data<AppState>,
    _session: Session,
    f: web::Query<Filters>,
) -> Result<HttpResponse, UiError> {
    let found = query(&state, &f, MAX_CSV_ROWS).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"usage.csv\"",
        ))
        .body(rows_csv(&found.rows)))
}
