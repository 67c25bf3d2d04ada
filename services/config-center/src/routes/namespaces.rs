//! `/api/v1/namespaces`: teams or applications, with their limits and budget.

use super::common::{paginate, Pagination};
use crate::domain::{self, double_option, format_ms, Namespace, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use aigw_types::Limits;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Limits on create; absent or `null` means unlimited.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    /// Requests in flight at once, 1 to 4294967295.
    #[schema(example = 100)]
    pub max_concurrency: Option<i64>,
    /// Requests per minute, 1 to 4294967295.
    #[schema(example = 600)]
    pub rpm: Option<i64>,
    /// Tokens (prompt + completion) per minute, at least 1.
    #[schema(example = 200000)]
    pub tpm: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNamespace {
    /// Identifier: `^[a-z0-9][a-z0-9_-]{0,62}$`. Cannot be changed later.
    #[schema(example = "team-a")]
    pub code: String,
    /// Display name (defaults to the code), at most 200 characters.
    #[schema(example = "Team A")]
    pub name: Option<String>,
    #[schema(example = "")]
    pub description: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    pub limits: Option<LimitsInput>,
    /// USD per calendar month as a decimal string; absent = unlimited.
    #[schema(example = "50.00")]
    pub monthly_budget_usd: Option<String>,
}

/// A limits change: absent fields stay, `null` removes a limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub max_concurrency: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub rpm: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub tpm: Option<Option<i64>>,
}

/// JSON Merge Patch: absent fields stay as they are, `null` clears an
/// optional field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchNamespace {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// `null` removes every limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LimitsPatch>)]
    pub limits: Option<Option<LimitsPatch>>,
    /// `null` removes the budget.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub monthly_budget_usd: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LimitsView {
    pub max_concurrency: Option<u32>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespaceView {
    pub code: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub limits: LimitsView,
    /// Decimal string, `null` = unlimited.
    pub monthly_budget_usd: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Namespace> for NamespaceView {
    fn from(n: &Namespace) -> Self {
        NamespaceView {
            code: n.code.clone(),
            name: n.name.clone(),
            description: n.description.clone(),
            enabled: n.enabled,
            limits: LimitsView {
                max_concurrency: n.limits.max_concurrency,
                rpm: n.limits.rpm,
                tpm: n.limits.tpm,
            },
            monthly_budget_usd: n.monthly_budget_usd.map(|d| d.to_string()),
            created_at: format_ms(n.created_at_ms),
            updated_at: format_ms(n.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NamespacePage {
    pub items: Vec<NamespaceView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

const U32_MAX: i64 = u32::MAX as i64;

fn limit_u32(field: &str, v: i64) -> Result<u32, ValidationError> {
    domain::bounded(field, v, 1, U32_MAX).map(|v| v as u32)
}

fn limit_u64(field: &str, v: i64) -> Result<u64, ValidationError> {
    domain::bounded(field, v, 1, i64::MAX).map(|v| v as u64)
}

impl LimitsInput {
    fn parse(self) -> Result<Limits, ApiError> {
        Ok(Limits {
            max_concurrency: self
                .max_concurrency
                .map(|v| limit_u32("limits.max_concurrency", v))
                .transpose()?,
            rpm: self.rpm.map(|v| limit_u32("limits.rpm", v)).transpose()?,
            tpm: self.tpm.map(|v| limit_u64("limits.tpm", v)).transpose()?,
        })
    }
}

impl CreateNamespace {
    fn parse(self, now: i64) -> Result<Namespace, ApiError> {
        let code = domain::parse_code("code", &self.code)?;
        Ok(Namespace {
            name: match self.name {
                Some(n) => domain::parse_text("name", &n, 200, false)?,
                None => code.clone(),
            },
            code,
            description: domain::parse_text(
                "description",
                self.description.as_deref().unwrap_or(""),
                2000,
                true,
            )?,
            enabled: self.enabled.unwrap_or(true),
            limits: self.limits.unwrap_or_default().parse()?,
            monthly_budget_usd: self
                .monthly_budget_usd
                .map(|b| domain::parse_money("monthly_budget_usd", &b))
                .transpose()?,
            created_at_ms: now,
            updated_at_ms: now,
        })
    }
}

impl PatchNamespace {
    fn apply(self, n: &mut Namespace, now: i64) -> Result<(), ApiError> {
        if let Some(name) = self.name {
            n.name = domain::parse_text("name", &name, 200, false)?;
        }
        if let Some(d) = self.description {
            n.description = domain::parse_text("description", &d, 2000, true)?;
        }
        if let Some(e) = self.enabled {
            n.enabled = e;
        }
        match self.limits {
            None => {}
            Some(None) => n.limits = Limits::default(),
            Some(Some(l)) => {
                if let Some(v) = l.max_concurrency {
                    n.limits.max_concurrency = v
                        .map(|v| limit_u32("limits.max_concurrency", v))
                        .transpose()?;
                }
                if let Some(v) = l.rpm {
                    n.limits.rpm = v.map(|v| limit_u32("limits.rpm", v)).transpose()?;
                }
                if let Some(v) = l.tpm {
                    n.limits.tpm = v.map(|v| limit_u64("limits.tpm", v)).transpose()?;
                }
            }
        }
        if let Some(b) = self.monthly_budget_usd {
            n.monthly_budget_usd = b
                .map(|b| domain::parse_money("monthly_budget_usd", &b))
                .transpose()?;
        }
        n.updated_at_ms = now;
        Ok(())
    }
}

fn not_found(code: &str) -> ApiError {
    ApiError::not_found(format!("namespace '{code}'"))
}

#[utoipa::path(
    post, operation_id = "create_namespace", path = "/api/v1/namespaces", tag = "namespaces",
    request_body = CreateNamespace,
    responses(
        (status = 201, description = "Created", body = NamespaceView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "Code already taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateNamespace>,
) -> Result<HttpResponse, ApiError> {
    let (ns, v) = create_namespace(&state, body.into_inner()).await?;
    Ok(state
        .committed(StatusCode::CREATED, v, Some(&NamespaceView::from(&ns)))
        .await)
}

/// Validates and commits a new namespace (the admin API and the console);
/// answers it and the version it committed as.
pub async fn create_namespace(
    state: &AppState,
    input: CreateNamespace,
) -> Result<(Namespace, u64), ApiError> {
    let ns = input.parse(now_ms())?;
    let mut tx = state.store.write().await?;
    tx.insert_namespace(&ns).await?;
    let v = tx.commit().await?;
    tracing::info!(namespace = %ns.code, version = v, "namespace created");
    Ok((ns, v))
}

#[utoipa::path(
    get, operation_id = "list_namespaces", path = "/api/v1/namespaces", tag = "namespaces",
    params(Pagination),
    responses(
        (status = 200, description = "A page of namespaces ordered by code", body = NamespacePage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<Pagination>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let rows = state.store.list_namespaces(q.cursor(), limit + 1).await?;
    let (rows, next_cursor) = paginate(rows, limit, |n| n.code.clone());
    Ok(HttpResponse::Ok().json(NamespacePage {
        items: rows.iter().map(NamespaceView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get, operation_id = "get_namespace", path = "/api/v1/namespaces/{code}", tag = "namespaces",
    params(("code" = String, Path, description = "Namespace code")),
    responses(
        (status = 200, description = "The namespace", body = NamespaceView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ns = state
        .store
        .namespace(&code)
        .await?
        .ok_or_else(|| not_found(&code))?;
    Ok(HttpResponse::Ok().json(NamespaceView::from(&ns)))
}

#[utoipa::path(
    patch, operation_id = "patch_namespace", path = "/api/v1/namespaces/{code}", tag = "namespaces",
    params(("code" = String, Path, description = "Namespace code")),
    request_body = PatchNamespace,
    responses(
        (status = 200, description = "Updated", body = NamespaceView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn patch(
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: web::Json<PatchNamespace>,
) -> Result<HttpResponse, ApiError> {
    let (ns, v) = patch_namespace(&state, &code, body.into_inner()).await?;
    Ok(state
        .committed(StatusCode::OK, v, Some(&NamespaceView::from(&ns)))
        .await)
}

/// Applies a merge patch to a namespace and commits it (the admin API and
/// the console).
pub async fn patch_namespace(
    state: &AppState,
    code: &str,
    patch: PatchNamespace,
) -> Result<(Namespace, u64), ApiError> {
    let mut tx = state.store.write().await?;
    let mut ns = tx.namespace(code).await?.ok_or_else(|| not_found(code))?;
    patch.apply(&mut ns, now_ms())?;
    tx.update_namespace(&ns).await?;
    let v = tx.commit().await?;
    tracing::info!(namespace = %ns.code, version = v, "namespace updated");
    Ok((ns, v))
}

#[utoipa::path(
    delete, operation_id = "delete_namespace", path = "/api/v1/namespaces/{code}", tag = "namespaces",
    params(("code" = String, Path, description = "Namespace code")),
    responses(
        (status = 204, description = "Deleted (with its revoked keys)"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 409, description = "Still has instances or keys that are not revoked", body = ErrorBody),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.store.write().await?;
    if !tx.delete_namespace(&code).await? {
        return Err(not_found(&code));
    }
    let v = tx.commit().await?;
    tracing::info!(namespace = %code, version = v, "namespace deleted");
    Ok(state.committed::<()>(StatusCode::NO_CONTENT, v, None).await)
}
