//! `/api/v1/models`: the models clients may ask for, with their tokenizer
//! encoding and exact prices.

use super::common::{paginate, Pagination};
use crate::domain::{self, double_option, format_ms, Model, ValidationError};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use aigw_service::clock::now_ms;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    /// Name clients send: `^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`. Cannot be changed later.
    #[schema(example = "gpt-4o-mini")]
    pub name: String,
    /// tiktoken encoding: o200k_base, o200k_harmony, cl100k_base, p50k_base,
    /// p50k_edit, r50k_base or gpt2.
    #[schema(example = "o200k_base")]
    pub encoding: String,
    /// USD per million prompt tokens, decimal string ≥ 0; absent = unknown.
    #[schema(example = "0.15")]
    pub input_price_per_1m: Option<String>,
    /// USD per million completion tokens, decimal string ≥ 0; absent = unknown.
    #[schema(example = "0.60")]
    pub output_price_per_1m: Option<String>,
    /// USD per million prompt tokens read from the provider's prompt cache,
    /// decimal string ≥ 0; absent = the input price.
    #[schema(example = "0.075")]
    pub cached_input_price_per_1m: Option<String>,
    /// USD per million prompt tokens written to the provider's prompt cache
    /// (Anthropic's cache creation), decimal string ≥ 0; absent = the input
    /// price.
    #[schema(example = "0.1875")]
    pub cache_write_price_per_1m: Option<String>,
    /// Tokens, 1 to 4294967295.
    #[schema(example = 128000)]
    pub context_window: Option<i64>,
    /// Default true.
    pub enabled: Option<bool>,
}

/// JSON Merge Patch: absent fields stay, `null` clears an optional field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchModel {
    pub encoding: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub input_price_per_1m: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub output_price_per_1m: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub cached_input_price_per_1m: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub cache_write_price_per_1m: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub context_window: Option<Option<i64>>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    pub encoding: String,
    /// Decimal string, exactly as stored.
    pub input_price_per_1m: Option<String>,
    pub output_price_per_1m: Option<String>,
    /// Absent: cache reads are priced at the input price.
    pub cached_input_price_per_1m: Option<String>,
    /// Absent: cache writes are priced at the input price.
    pub cache_write_price_per_1m: Option<String>,
    pub context_window: Option<u32>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Model> for ModelView {
    fn from(m: &Model) -> Self {
        ModelView {
            name: m.name.clone(),
            encoding: m.encoding.clone(),
            input_price_per_1m: m.input_price_per_1m.map(|d| d.to_string()),
            output_price_per_1m: m.output_price_per_1m.map(|d| d.to_string()),
            cached_input_price_per_1m: m.cached_input_price_per_1m.map(|d| d.to_string()),
            cache_write_price_per_1m: m.cache_write_price_per_1m.map(|d| d.to_string()),
            context_window: m.context_window,
            enabled: m.enabled,
            created_at: format_ms(m.created_at_ms),
            updated_at: format_ms(m.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPage {
    pub items: Vec<ModelView>,
    pub next_cursor: Option<String>,
}

fn context_window(v: i64) -> Result<u32, ValidationError> {
    domain::bounded("context_window", v, 1, u32::MAX as i64).map(|v| v as u32)
}

/// An optional price: a decimal string ≥ 0, kept exact.
fn price(field: &str, p: Option<String>) -> Result<Option<Decimal>, ValidationError> {
    p.map(|p| domain::parse_money(field, &p)).transpose()
}

impl CreateModel {
    fn parse(self, now: i64) -> Result<Model, ApiError> {
        Ok(Model {
            name: domain::parse_model_name("name", &self.name)?,
            encoding: domain::parse_encoding("encoding", &self.encoding)?,
            input_price_per_1m: price("input_price_per_1m", self.input_price_per_1m)?,
            output_price_per_1m: price("output_price_per_1m", self.output_price_per_1m)?,
            cached_input_price_per_1m: price(
                "cached_input_price_per_1m",
                self.cached_input_price_per_1m,
            )?,
            cache_write_price_per_1m: price(
                "cache_write_price_per_1m",
                self.cache_write_price_per_1m,
            )?,
            context_window: self.context_window.map(context_window).transpose()?,
            enabled: self.enabled.unwrap_or(true),
            created_at_ms: now,
            updated_at_ms: now,
        })
    }
}

impl PatchModel {
    fn apply(self, m: &mut Model, now: i64) -> Result<(), ApiError> {
        if let Some(e) = self.encoding {
            m.encoding = domain::parse_encoding("encoding", &e)?;
        }
        if let Some(p) = self.input_price_per_1m {
            m.input_price_per_1m = price("input_price_per_1m", p)?;
        }
        if let Some(p) = self.output_price_per_1m {
            m.output_price_per_1m = price("output_price_per_1m", p)?;
        }
        if let Some(p) = self.cached_input_price_per_1m {
            m.cached_input_price_per_1m = price("cached_input_price_per_1m", p)?;
        }
        if let Some(p) = self.cache_write_price_per_1m {
            m.cache_write_price_per_1m = price("cache_write_price_per_1m", p)?;
        }
        if let Some(c) = self.context_window {
            m.context_window = c.map(context_window).transpose()?;
        }
        if let Some(e) = self.enabled {
            m.enabled = e;
        }
        m.updated_at_ms = now;
        Ok(())
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("model '{name}'"))
}

#[utoipa::path(
    post, operation_id = "create_model", path = "/api/v1/models", tag = "models",
    request_body = CreateModel,
    responses(
        (status = 201, description = "Created", body = ModelView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "Name already taken", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn create(
    state: web::Data<AppState>,
    body: web::Json<CreateModel>,
) -> Result<HttpResponse, ApiError> {
    let (m, v) = create_model(&state, body.into_inner()).await?;
    Ok(state
        .committed(StatusCode::CREATED, v, Some(&ModelView::from(&m)))
        .await)
}

/// Validates and commits a new model (the admin API and the console).
pub async fn create_model(state: &AppState, input: CreateModel) -> Result<(Model, u64), ApiError> {
    let m = input.parse(now_ms())?;
    let mut tx = state.store.write().await?;
    tx.insert_model(&m).await?;
    let v = tx.commit().await?;
    tracing::info!(model = %m.name, version = v, "model created");
    Ok((m, v))
}

#[utoipa::path(
    get, operation_id = "list_models", path = "/api/v1/models", tag = "models",
    params(Pagination),
    responses(
        (status = 200, description = "A page of models ordered by name", body = ModelPage),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn list(
    state: web::Data<AppState>,
    q: web::Query<Pagination>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit()?;
    let rows = state.store.list_models(q.cursor(), limit + 1).await?;
    let (rows, next_cursor) = paginate(rows, limit, |m| m.name.clone());
    Ok(HttpResponse::Ok().json(ModelPage {
        items: rows.iter().map(ModelView::from).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get, operation_id = "get_model", path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "The model", body = ModelView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let m = state
        .store
        .model(&name)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(HttpResponse::Ok().json(ModelView::from(&m)))
}

#[utoipa::path(
    patch, operation_id = "patch_model", path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    request_body = PatchModel,
    responses(
        (status = 200, description = "Updated", body = ModelView),
        (status = 400, description = "Invalid input", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    )
)]
pub async fn patch(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<PatchModel>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.store.write().await?;
    let mut m = tx.model(&name).await?.ok_or_else(|| not_found(&name))?;
    body.into_inner().apply(&mut m, now_ms())?;
    tx.update_model(&m).await?;
    let v = tx.commit().await?;
    tracing::info!(model = %m.name, version = v, "model updated");
    Ok(state
        .committed(StatusCode::OK, v, Some(&ModelView::from(&m)))
        .await)
}

#[utoipa::path(
    delete, operation_id = "delete_model", path = "/api/v1/models/{name}", tag = "models",
    params(("name" = String, Path, description = "Model name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such model", body = ErrorBody),
        (status = 409, description = "Instances still serve this model", body = ErrorBody),
    )
)]
pub async fn delete(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut tx = state.store.write().await?;
    if !tx.delete_model(&name).await? {
        return Err(not_found(&name));
    }
    let v = tx.commit().await?;
    tracing::info!(model = %name, version = v, "model deleted");
    Ok(state.committed::<()>(StatusCode::NO_CONTENT, v, None).await)
}
