//! `/api/v1/namespaces/{code}/api-keys`: keys clients present to the
//! gateway. The plaintext is returned once, at creation; only its SHA-256
//! is stored.

use super::common::{paginate, Pagination};
use crate::domain::{self, format_ms, ApiKey, IssuedKey};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::usage::{Totals, UsageGroup, UsageGroupView};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1 to 100 characters.
    #[schema(example = "ci")]
    pub name: String,
    /// RFC 3339 UTC time after which the key stops working; `null` = never.
    #[schema(example = "2030-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
    /// Registered model names this key may use; `null` = every model.
    pub allowed_models: Option<Vec<String>>,
}

/// A key as listed: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub namespace_code: String,
    pub name: String,
    /// First 12 characters of the key, e.g. `sk-aigw-AbCd`.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    /// All-time totals of the key's requests in the spend ledger (within
    /// its retention); absent on creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageGroupView>,
}

impl ApiKeyView {
    fn with_usage(mut self, t: Option<&Totals>) -> Self {
        let g = UsageGroup {
            totals: t.copied().unwrap_or_default(),
            ..UsageGroup::default()
        };
        self.usage = Some(UsageGroupView::new(&g, &[]));
        self
    }
}

impl From<&ApiKey> for ApiKeyView {
    fn from(k: &ApiKey) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            namespace_code: k.namespace_code.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: format_ms(k.created_at_ms),
            expires_at: k.expires_at_ms.map(format_ms),
            revoked: k.revoked_at_ms.is_some(),
            revoked_at: k.revoked_at_ms.map(format_ms),
            allowed_models: k.allowed_models.clone(),
            usage: None,
        }
    }
}

/// The answer to a creation: the only time the key is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    pub id: String,
    /// The key; store it now, it cannot be shown again.
    #[schema(example = "sk-aigw-…")]
    pub key: String,
    pub namespace_code: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub revoked_at: Option<String>,
    pub allowed_models: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
}

fn ns_not_found(code: &str) -> ApiError {
    ApiError::not_found(format!("namespace '{code}'"))
}

fn key_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("API key '{id}'"))
}

#[utoipa::path(
    post, operation_id = "create_api_key", path = "/api/v1/namespaces/{code}/api-keys", tag = "api-keys",
    params(("code" = String, Path, description = "Namespace code")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created; the only response that carries the key", body = CreatedApiKey),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    code: web::Path<String>,
    body: web::Json<CreateApiKey>,
) -> Result<HttpResponse, ApiError> {
    let (key, issued, v) = issue_api_key(&state, &code, body.into_inner()).await?;
    let view = ApiKeyView::from(&key);
    let created = CreatedApiKey {
        id: view.id,
        key: issued.plaintext,
        namespace_code: view.namespace_code,
        name: view.name,
        prefix: view.prefix,
        created_at: view.created_at,
        expires_at: view.expires_at,
        revoked: view.revoked,
        revoked_at: view.revoked_at,
        allowed_models: view.allowed_models,
    };
    Ok(state
        .committed(StatusCode::CREATED, v, Some(&created))
        .await)
}

/// Validates and commits a new key for namespace `code` (the admin API and
/// the console); the issued plaintext goes back to the caller only.
pub async fn issue_api_key(
    state: &AppState,
    code: &str,
    body: CreateApiKey,
) -> Result<(ApiKey, IssuedKey, u64), ApiError> {
    let now = now_ms();
    let name = domain::parse_text("name", &body.name, 100, false)?;
    let expires_at_ms = body
        .expires_at
        .as_deref()
        .map(|t| domain::parse_time("expires_at", t))
        .transpose()?;
    if expires_at_ms.is_some_and(|t| t <= now) {
        return Err(ApiError::validation("expires_at", "must be in the future"));
    }
    let allowed_models = match body.allowed_models {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ApiError::validation(
                "allowed_models",
                "must not be empty; use null to allow every model",
            ))
        }
        Some(list) => {
            let mut names = list
                .iter()
                .map(|m| domain::parse_model_name("allowed_models", m))
                .collect::<Result<Vec<_>, _>>()?;
            names.sort();
            names.dedup();
            Some(names)
        }
    };

    let mut tx = state.store.write().await?;
    tx.namespace(code)
        .await?
        .ok_or_else(|| ns_not_found(code))?;
    if let Some(names) = &allowed_models {
        let unknown = tx.unknown_models(names).await?;
        if !unknown.is_empty() {
            return Err(ApiError::validation(
                "allowed_models",
                format!("unknown model(s): {}", unknown.join(", ")),
            ));
        }
    }
    let issued = IssuedKey::generate();
    let key = ApiKey {
        id: uuid::Uuid::now_v7().to_string(),
        namespace_code: code.to_string(),
        name,
        key_hash: issued.hash.clone(),
        prefix: issued.prefix.clone(),
        allowed_models,
        expires_at_ms,
        revoked_at_ms: None,
        created_at_ms: now,
    };
    tx.insert_api_key(&key).await?;
    let v = tx.commit().await?;
    tracing::info!(namespace = %key.namespace_code, key_id = %key.id, prefix = %key.prefix, version = v, "API key issued");
    Ok((key, issued, v))
}

#[utoipa::path(
    get, operation_id = "list_api_keys", path = "/api/v1/namespaces/{code}/api-keys", tag = "api-keys",
    params(("code" = String, Path, description = "Namespace code"), Pagination),
    responses(
        (status = 200, description = "A page of keys in creation order (revoked ones included), each with its totals from the spend ledger", body = ApiKeyPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such namespace", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    code: web::Path<String>,
    q: web::Query<Pagination>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    state
        .store
        .namespace(&code)
        .await?
        .ok_or_else(|| ns_not_found(&code))?;
    let rows = state
        .store
        .list_api_keys(&code, q.cursor(), limit + 1)
        .await?;
    let (rows, next_cursor) = paginate(rows, limit, |k| k.id.clone());
    let ids: Vec<String> = rows.iter().map(|k| k.id.clone()).collect();
    let usage = state.store.key_totals(&code, &ids).await?;
    Ok(HttpResponse::Ok().json(ApiKeyPage {
        items: rows
            .iter()
            .map(|k| ApiKeyView::from(k).with_usage(usage.get(&k.id)))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get, operation_id = "get_api_key", path = "/api/v1/namespaces/{code}/api-keys/{id}", tag = "api-keys",
    params(
        ("code" = String, Path, description = "Namespace code"),
        ("id" = String, Path, description = "Key id"),
    ),
    responses(
        (status = 200, description = "The key (never the key itself), with its totals from the spend ledger", body = ApiKeyView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such key in this namespace", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (code, id) = path.into_inner();
    let key = state
        .store
        .api_key(&code, &id)
        .await?
        .ok_or_else(|| key_not_found(&id))?;
    let usage = state
        .store
        .key_totals(&code, std::slice::from_ref(&key.id))
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyView::from(&key).with_usage(usage.get(&key.id))))
}

#[utoipa::path(
    delete, operation_id = "revoke_api_key", path = "/api/v1/namespaces/{code}/api-keys/{id}", tag = "api-keys",
    params(
        ("code" = String, Path, description = "Namespace code"),
        ("id" = String, Path, description = "Key id"),
    ),
    responses(
        (status = 204, description = "Revoked (also when it already was)"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such key in this namespace", body = ErrorBody),
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (code, id) = path.into_inner();
    match revoke_api_key(&state, &code, &id).await? {
        Some(v) => Ok(state.committed::<()>(StatusCode::NO_CONTENT, v, None).await),
        None => Ok(HttpResponse::NoContent().finish()),
    }
}

/// Revokes a key (the admin API and the console): the version committed,
/// or `None` when it was already revoked and nothing changed.
pub async fn revoke_api_key(
    state: &AppState,
    code: &str,
    id: &str,
) -> Result<Option<u64>, ApiError> {
    if state.store.api_key(code, id).await?.is_none() {
        return Err(key_not_found(id));
    }
    let mut tx = state.store.write().await?;
    if !tx.revoke_api_key(code, id, now_ms()).await? {
        // Already revoked (or gone meanwhile): nothing changes, no new version.
        drop(tx);
        return Ok(None);
    }
    let v = tx.commit().await?;
    tracing::info!(namespace = %code, key_id = %id, version = v, "API key revoked");
    Ok(Some(v))
}
