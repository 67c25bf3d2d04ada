//! What every handler uses: answering after a commit, pagination, JSON 405
//! and 404 answers.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

/// Header naming the config version a change committed as.
pub const VERSION_HEADER: &str = "x-config-version";
/// Header saying whether that version was already in Redis when answering.
pub const PUBLISHED_HEADER: &str = "x-config-published";

impl AppState {
    /// The answer to a committed change: waits (bounded) for publication so
    /// a caller can read its write from Redis, and says the version.
    pub async fn committed<T: Serialize>(
        &self,
        status: StatusCode,
        version: u64,
        body: Option<&T>,
    ) -> HttpResponse {
        let published = self.publisher.committed(version, self.publish_wait).await;
        let mut res = HttpResponse::build(status);
        res.insert_header((VERSION_HEADER, version.to_string()))
            .insert_header((PUBLISHED_HEADER, if published { "true" } else { "false" }));
        match body {
            Some(b) => res.json(b),
            None => res.finish(),
        }
    }
}

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

impl Pagination {
    pub fn limit(&self) -> Result<u32, crate::domain::ValidationError> {
        let l = self.limit.unwrap_or(DEFAULT_PAGE);
        crate::domain::bounded("limit", l, 1, MAX_PAGE).map(|l| l as u32)
    }

    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref().filter(|c| !c.is_empty())
    }
}

/// Cuts a page fetched with `limit + 1` rows to `limit` and names the
/// cursor of the next page (the last item's sort key).
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

/// A resource whose unsupported methods get a JSON 405 naming `allowed`.
pub fn resource(path: &str, allowed: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            allowed: allowed.to_string(),
        })
    }))
}

pub async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}
