//! `/api/v1/instances`: upstream deployments of a model, owned by a
//! namespace. The upstream `api_key` is write-only: answers say only whether
//! one is set and its last four characters.

use super::common::{paginate, Pagination};
use crate::domain::{self, double_option, format_ms, Instance, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::WriteTx;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use aigw_types::{HealthCheckConfig, Provider};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DEFAULT_WEIGHT: i64 = 1;
pub const MAX_WEIGHT: i64 = 1_000_000;
pub const DEFAULT_TIMEOUT_MS: i64 = 60_000;
pub const MAX_TIMEOUT_MS: i64 = 3_600_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckInput {
    /// Appended to the base URL, e.g. `/models`.
    #[schema(example = "/models")]
    pub path: String,
    /// Seconds between checks, 1 to 86400 (default 15).
    #[schema(example = 15)]
    pub interval_s: Option<i64>,
}

// Hand-written Debug on bodies that carry the upstream secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Identifier: `^[a-z0-9][a-z0-9_-]{0,62}$`. Cannot be changed later.
    #[schema(example = "openai-eu-1")]
    pub id: String,
    #[schema(example = "team-a")]
    pub namespace_code: String,
    /// A registered model name.
    #[schema(example = "gpt-4o-mini")]
    pub model: String,
    /// The upstream's wire protocol: `openai` (default), `anthropic`,
    /// `azure_openai` or `gemini`.
    #[schema(example = "openai")]
    pub provider: Option<String>,
    /// http(s) URL without credentials: OpenAI's and Anthropic's and
    /// Gemini's include the version path (`https://api.openai.com/v1`,
    /// `https://api.anthropic.com/v1`,
    /// `https://generativelanguage.googleapis.com/v1beta`), Azure's is the
    /// resource (`https://NAME.openai.azure.com`).
    #[schema(example = "https://api.example.com/v1")]
    pub base_url: String,
    /// Model name sent upstream (default: `model`).
    #[schema(example = "gpt-4o-mini-2024-07-18")]
    pub upstream_model: Option<String>,
    /// Secret sent upstream in the provider's auth header (`Authorization:
    /// Bearer`, `x-api-key`, `api-key`, `x-goog-api-key`). Write-only.
    #[schema(example = "sk-upstream…", write_only)]
    pub api_key: Option<String>,
    /// Azure OpenAI only, with `api_version`: the deployment in the path
    /// (default: `upstream_model`).
    #[schema(example = "gpt-4o-mini-prod")]
    pub azure_deployment: Option<String>,
    /// Azure OpenAI: the `api-version` (absent: the v1 API). Anthropic: the
    /// `anthropic-version` header (absent: `2023-06-01`). Not for the
    /// other providers.
    #[schema(example = "2024-10-21")]
    pub api_version: Option<String>,
    /// 0 to 1000000 (default 1); 0 takes the instance out of rotation.
    #[schema(example = 10)]
    pub weight: Option<i64>,
    /// 1 to 3600000 (default 60000).
    #[schema(example = 60000)]
    pub timeout_ms: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
    pub health_check: Option<HealthCheckInput>,
    /// Resend a request whose outcome is unknown (sent whole, then the
    /// connection was lost or no answer came in time) to another instance.
    /// Default false: a paid upstream may have processed it.
    pub retry_unknown_outcome: Option<bool>,
    /// `OpenAI-Organization` sent upstream with this instance's key (a
    /// client's own header is never forwarded). Provider `openai` only.
    #[schema(example = "org-…")]
    pub openai_organization: Option<String>,
    /// `OpenAI-Project` sent upstream with this instance's key. Provider
    /// `openai` only.
    #[schema(example = "proj_…")]
    pub openai_project: Option<String>,
}

impl std::fmt::Debug for CreateInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateInstance")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// JSON Merge Patch: absent fields stay, `null` clears an optional field
/// (`"api_key": null` removes the secret). The provider's rules are checked
/// on the result (changing `provider` may need other fields cleared).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchInstance {
    pub namespace_code: Option<String>,
    pub model: Option<String>,
    /// `openai`, `anthropic`, `azure_openai` or `gemini`.
    pub provider: Option<String>,
    pub base_url: Option<String>,
    pub upstream_model: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, write_only)]
    pub api_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub azure_deployment: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_version: Option<Option<String>>,
    pub weight: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<HealthCheckInput>)]
    pub health_check: Option<Option<HealthCheckInput>>,
    pub retry_unknown_outcome: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub openai_organization: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub openai_project: Option<Option<String>>,
}

impl std::fmt::Debug for PatchInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchInstance").finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthCheckView {
    pub path: String,
    pub interval_s: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub namespace_code: String,
    pub model: String,
    /// `openai`, `anthropic`, `azure_openai` or `gemini`.
    #[schema(example = "openai")]
    pub provider: String,
    pub base_url: String,
    pub upstream_model: String,
    /// Whether an upstream secret is set.
    pub api_key_set: bool,
    /// Its last four characters (only for secrets of 8+ characters).
    pub api_key_last4: Option<String>,
    pub azure_deployment: Option<String>,
    pub api_version: Option<String>,
    pub weight: u32,
    pub timeout_ms: u64,
    pub enabled: bool,
    pub health_check: Option<HealthCheckView>,
    pub retry_unknown_outcome: bool,
    pub openai_organization: Option<String>,
    pub openai_project: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Instance> for InstanceView {
    fn from(i: &Instance) -> Self {
        InstanceView {
            id: i.id.clone(),
            namespace_code: i.namespace_code.clone(),
            model: i.model.clone(),
            provider: i.provider.as_str().to_string(),
            base_url: i.base_url.clone(),
            upstream_model: i.upstream_model.clone(),
            api_key_set: i.api_key.is_some(),
            api_key_last4: i.api_key_last4(),
            azure_deployment: i.azure_deployment.clone(),
            api_version: i.api_version.clone(),
            weight: i.weight,
            timeout_ms: i.timeout_ms,
            enabled: i.enabled,
            health_check: i.health_check.as_ref().map(|h| HealthCheckView {
                path: h.path.clone(),
                interval_s: h.interval_s,
            }),
            retry_unknown_outcome: i.retry_unknown_outcome,
            openai_organization: i.openai_organization.clone(),
            openai_project: i.openai_project.clone(),
            created_at: format_ms(i.created_at_ms),
            updated_at: format_ms(i.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceView>,
    pub next_cursor: Option<String>,
}

/// `?namespace=&model=&limit=&cursor=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    /// Only instances of this namespace.
    pub namespace: Option<String>,
    /// Only instances of this model.
    pub model: Option<String>,
    /// Items per page, 1 to 500 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn weight(v: i64) -> Result<u32, ValidationError> {
    domain::bounded("weight", v, 0, MAX_WEIGHT).map(|v| v as u32)
}

fn timeout(v: i64) -> Result<u64, ValidationError> {
    domain::bounded("timeout_ms", v, 1, MAX_TIMEOUT_MS).map(|v| v as u64)
}

fn health_check(h: HealthCheckInput) -> Result<HealthCheckConfig, ValidationError> {
    domain::parse_health_check("health_check", &h.path, h.interval_s)
}

/// An organization or project id: sent as a header value, so visible ASCII
/// only.
fn header_id(field: &str, s: &str) -> Result<String, ValidationError> {
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|c| c.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            "must be 1 to 200 visible ASCII characters",
        ));
    }
    Ok(s.to_string())
}

fn upstream_model(s: &str) -> Result<String, ApiError> {
    let m = domain::parse_text("upstream_model", s, 200, false)?;
    if m.chars().any(char::is_whitespace) {
        return Err(ApiError::validation(
            "upstream_model",
            "must not contain whitespace",
        ));
    }
    Ok(m)
}

fn provider(s: &str) -> Result<Provider, ValidationError> {
    domain::parse_provider("provider", s)
}

fn azure_deployment(s: &str) -> Result<String, ValidationError> {
    domain::parse_path_name("azure_deployment", s)
}

fn api_version(s: &str) -> Result<String, ValidationError> {
    domain::parse_path_name("api_version", s)
}

impl CreateInstance {
    fn parse(self, now: i64) -> Result<Instance, ApiError> {
        let model = domain::parse_model_name("model", &self.model)?;
        let inst = Instance {
            id: domain::parse_code("id", &self.id)?,
            namespace_code: domain::parse_code("namespace_code", &self.namespace_code)?,
            upstream_model: upstream_model(self.upstream_model.as_deref().unwrap_or(&model))?,
            model,
            provider: self
                .provider
                .as_deref()
                .map(provider)
                .transpose()?
                .unwrap_or_default(),
            base_url: domain::parse_base_url("base_url", &self.base_url)?,
            api_key: self
                .api_key
                .map(|k| domain::parse_secret("api_key", &k))
                .transpose()?,
            azure_deployment: self
                .azure_deployment
                .as_deref()
                .map(azure_deployment)
                .transpose()?,
            api_version: self.api_version.as_deref().map(api_version).transpose()?,
            weight: weight(self.weight.unwrap_or(DEFAULT_WEIGHT))?,
            timeout_ms: timeout(self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS))?,
            enabled: self.enabled.unwrap_or(true),
            health_check: self.health_check.map(health_check).transpose()?,
            retry_unknown_outcome: self.retry_unknown_outcome.unwrap_or(false),
            openai_organization: self
                .openai_organization
                .map(|v| header_id("openai_organization", &v))
                .transpose()?,
            openai_project: self
                .openai_project
                .map(|v| header_id("openai_project", &v))
                .transpose()?,
            created_at_ms: now,
            updated_at_ms: now,
        };
        inst.check_provider_fields()?;
        Ok(inst)
    }
}

impl PatchInstance {
    fn apply(self, i: &mut Instance, now: i64) -> Result<(), ApiError> {
        if let Some(ns) = self.namespace_code {
            i.namespace_code = domain::parse_code("namespace_code", &ns)?;
        }
        if let Some(m) = self.model {
            i.model = domain::parse_model_name("model", &m)?;
        }
        if let Some(p) = self.provider {
            i.provider = provider(&p)?;
        }
        if let Some(u) = self.base_url {
            i.base_url = domain::parse_base_url("base_url", &u)?;
        }
        if let Some(u) = self.upstream_model {
            i.upstream_model = upstream_model(&u)?;
        }
        if let Some(k) = self.api_key {
            i.api_key = k.map(|k| domain::parse_secret("api_key", &k)).transpose()?;
        }
        if let Some(d) = self.azure_deployment {
            i.azure_deployment = d.as_deref().map(azure_deployment).transpose()?;
        }
        if let Some(v) = self.api_version {
            i.api_version = v.as_deref().map(api_version).transpose()?;
        }
        if let Some(w) = self.weight {
            i.weight = weight(w)?;
        }
        if let Some(t) = self.timeout_ms {
            i.timeout_ms = timeout(t)?;
        }
        if let Some(e) = self.enabled {
            i.enabled = e;
        }
        if let Some(h) = self.health_check {
            i.health_check = h.map(health_check).transpose()?;
        }
        if let Some(r) = self.retry_unknown_outcome {
            i.retry_unknown_outcome = r;
        }
        if let Some(v) = self.openai_organization {
            i.openai_organization = v
                .map(|v| header_id("openai_organization", &v))
                .transpose()?;
        }
        if let Some(v) = self.openai_project {
            i.openai_project = v.map(|v| header_id("openai_project", &v)).transpose()?;
        }
        i.check_provider_fields()?;
        i.updated_at_ms = now;
        Ok(())
    }
}

/// The owning namespace and the model must exist (400 naming the field).
async fn check_references(tx: &mut WriteTx, i: &Instance) -> Result<(), ApiError> {
    if tx.namespace(&i.namespace_code).await?.is_none() {
        return Err(ApiError::validation(
            "namespace_code",
            format!("namespace '{}' does not exist", i.namespace_code),
        ));
    }
    if tx.model(&i.model).await?.is_none() {
        return Err(ApiError::validation(
            "model",
            format!("model '{}' does not exist", i.model),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("instance '{id}'"))
}

#[utoipa::path(
    post, operation_id = "create_instance", path = "/api/v1/instances", tag = "instances",
    request_body = CreateInstance,
    responses(
        (status = 201, description = "Created", body = InstanceView),
        (status = 400, description = "Invalid input, or unknown namespace or model", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "Id already taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateInstance>,
) -> Result<HttpResponse, ApiError> {
    let (inst, v) = create_instance(&state, body.into_inner()).await?;
    Ok(state
        .committed(StatusCode::CREATED, v, Some(&InstanceView::from(&inst)))
        .await)
}

/// Validates and commits a new instance (the admin API and the console).
pub async fn create_instance(
    state: &AppState,
    input: CreateInstance,
) -> Result<(Instance, u64), ApiError> {
    let inst = input.parse(now_ms())?;
    let mut tx = state.store.write().await?;
    check_references(&mut tx, &inst).await?;
    tx.insert_instance(&inst).await?;
    let v = tx.commit().await?;
    tracing::info!(instance = %inst.id, namespace = %inst.namespace_code, model = %inst.model, version = v, "instance created");
    Ok((inst, v))
}

#[utoipa::path(
    get, operation_id = "list_instances", path = "/api/v1/instances", tag = "instances",
    params(InstanceQuery),
    responses(
        (status = 200, description = "A page of instances ordered by id", body = InstancePage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<InstanceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = Pagination {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = page.limit()?;
    let rows = state
        .store
        .list_instances(
            q.namespace.as_deref().filter(|s| !s.is_empty()),
            q.model.as_deref().filter(|s| !s.is_empty()),
            page.cursor(),
            limit + 1,
        )
        .await?;
    let (rows, next_cursor) = paginate(rows, limit, |i| i.id.clone());
    Ok(HttpResponse::Ok().json(InstancePage {
        items: rows.iter().map(InstanceView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get, operation_id = "get_instance", path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 200, description = "The instance (never its secret)", body = InstanceView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let i = state
        .store
        .instance(&id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(InstanceView::from(&i)))
}

#[utoipa::path(
    patch, operation_id = "patch_instance", path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    request_body = PatchInstance,
    responses(
        (status = 200, description = "Updated", body = InstanceView),
        (status = 400, description = "Invalid input, or unknown namespace or model", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn patch(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<PatchInstance>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.store.write().await?;
    let mut inst = tx.instance(&id).await?.ok_or_else(|| not_found(&id))?;
    body.into_inner().apply(&mut inst, now_ms())?;
    check_references(&mut tx, &inst).await?;
    tx.update_instance(&inst).await?;
    let v = tx.commit().await?;
    tracing::info!(instance = %inst.id, version = v, "instance updated");
    Ok(state
        .committed(StatusCode::OK, v, Some(&InstanceView::from(&inst)))
        .await)
}

#[utoipa::path(
    delete, operation_id = "delete_instance", path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "Instance id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.store.write().await?;
    if !tx.delete_instance(&id).await? {
        return Err(not_found(&id));
    }
    let v = tx.commit().await?;
    tracing::info!(instance = %id, version = v, "instance deleted");
    Ok(state.committed::<()>(StatusCode::NO_CONTENT, v, None).await)
}
