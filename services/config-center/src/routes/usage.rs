//! `/api/v1/usage` and `/api/v1/usage/requests`: the spend ledger, as
//! totals grouped by namespace, key, model, day or hour, and as the rows
//! themselves, newest first; JSON or CSV (`format=csv` or
//! `Accept: text/csv`).

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::usage::{
    rows_csv, totals_csv, Format, LedgerRowView, QueryKind, RowCursor, Totals, UsageGroup,
    UsageGroupView, UsageQuery, MAX_GROUPS,
};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// Header carrying the next page's cursor of a CSV page of rows.
pub const NEXT_CURSOR_HEADER: &str = "x-next-cursor";

/// The filter both routes take (documentation of the query string).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilterParams {
    /// Namespace code.
    namespace: Option<String>,
    /// API key id.
    key_id: Option<String>,
    /// Model name.
    model: Option<String>,
    /// RFC 3339 time, inclusive: rows of requests that arrived at or after it.
    from: Option<String>,
    /// RFC 3339 time, exclusive.
    to: Option<String>,
    /// `json` (default) or `csv`; without it, `Accept: text/csv` asks for CSV.
    format: Option<String>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GroupParams {
    /// Dimensions: `namespace`, `key`, `model`, `day`, `hour` (UTC); several
    /// as a comma-separated list or repeated. None: one total.
    group_by: Option<String>,
}

#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct RowPageParams {
    /// Rows per page: 1 to 500 for JSON (default 50), to 100000 for CSV
    /// (default 10000).
    limit: Option<u32>,
    /// `next_cursor` of the previous page (JSON) or its `x-next-cursor`
    /// header (CSV).
    cursor: Option<String>,
}

/// The answer of `GET /api/v1/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotalsAnswer {
    pub group_by: Vec<String>,
    /// Ordered by the dimensions, in the order given.
    pub groups: Vec<UsageGroupView>,
    /// Sum of every group.
    pub total: UsageGroupView,
}

/// A page of `GET /api/v1/usage/requests`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageRowPage {
    pub items: Vec<LedgerRowView>,
    pub next_cursor: Option<String>,
}

fn parse(req: &HttpRequest, kind: QueryKind) -> Result<(UsageQuery, Format), ApiError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let q = UsageQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), kind)?;
    let format = q.format.unwrap_or_else(|| {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("text/csv") {
            Format::Csv
        } else {
            Format::Json
        }
    });
    Ok((q, format))
}

/// A 200 with a CSV attachment named `name`.
fn csv_response(name: &str) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ));
    res
}

#[utoipa::path(
    get, operation_id = "usage_totals", path = "/api/v1/usage", tag = "usage",
    params(FilterParams, GroupParams),
    responses(
        (status = 200, description = "Totals of the ledger's rows, per group (JSON, or CSV with one line per group)", body = UsageTotalsAnswer),
        (status = 400, description = "Invalid query, or more than 10000 groups", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn totals(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (q, format) = parse(&req, QueryKind::Totals)?;
    let groups = state
        .store
        .usage_totals(&q.filter, &q.group_by, MAX_GROUPS)
        .await?;
    if groups.len() > MAX_GROUPS as usize {
        return Err(ApiError::validation(
            "group_by",
            format!("more than {MAX_GROUPS} groups; narrow the filter or group less finely"),
        ));
    }
    match format {
        Format::Csv => Ok(csv_response("usage.csv").body(totals_csv(&groups, &q.group_by))),
        Format::Json => {
            let mut total = Totals::default();
            for g in &groups {
                total.add(&g.totals);
            }
            let total = UsageGroup {
                totals: total,
                ..UsageGroup::default()
            };
            Ok(HttpResponse::Ok().json(UsageTotalsAnswer {
                group_by: q.group_by.iter().map(|g| g.as_str().to_string()).collect(),
                groups: groups
                    .iter()
                    .map(|g| UsageGroupView::new(g, &q.group_by))
                    .collect(),
                total: UsageGroupView::new(&total, &[]),
            }))
        }
    }
}

#[utoipa::path(
    get, operation_id = "usage_requests", path = "/api/v1/usage/requests", tag = "usage",
    params(FilterParams, RowPageParams),
    responses(
        (status = 200, description = "A page of ledger rows, newest first (JSON, or CSV with the next cursor in `x-next-cursor`)", body = UsageRowPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn requests(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (q, format) = parse(&req, QueryKind::Rows)?;
    let limit = q.page_size(format)?;
    let mut rows = state
        .store
        .usage_rows(&q.filter, q.cursor.as_ref(), limit + 1)
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| {
            RowCursor {
                started_at_ms: r.started_at_ms,
                request_id: r.request_id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    match format {
        Format::Csv => {
            let mut res = csv_response("usage-requests.csv");
            if let Some(c) = &next_cursor {
                res.insert_header((NEXT_CURSOR_HEADER, c.as_str()));
            }
            Ok(res.body(rows_csv(&rows)))
        }
        Format::Json => Ok(HttpResponse::Ok().json(UsageRowPage {
            items: rows.iter().map(LedgerRowView::from).collect(),
            next_cursor,
        })),
    }
}
