//! `GET /api/v1/snapshot` (the config as published in Redis, secrets
//! redacted) and `GET /api/v1/openapi.json`.

use crate::domain::last4;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{web, HttpResponse};
use aigw_metrics::keys;
use aigw_types::ConfigSnapshot;
use serde_json::{json, Value};

/// The snapshot as JSON with each instance's `api_key` replaced by
/// `api_key_set` / `api_key_last4`, like every other answer of this API.
pub fn redacted(snap: &ConfigSnapshot) -> Result<Value, serde_json::Error> {
    let mut v = serde_json::to_value(snap)?;
    if let Some(list) = v.get_mut("instances").and_then(Value::as_array_mut) {
        for (inst, cfg) in list.iter_mut().zip(&snap.instances) {
            if let Some(obj) = inst.as_object_mut() {
                obj.remove("api_key");
                let key = cfg.api_key.as_deref();
                obj.insert("api_key_set".into(), json!(key.is_some()));
                obj.insert("api_key_last4".into(), json!(key.and_then(last4)));
            }
        }
    }
    Ok(v)
}

#[utoipa::path(
    get, operation_id = "get_snapshot", path = "/api/v1/snapshot", tag = "snapshot",
    responses(
        (status = 200, description = "The published snapshot (aigw_types::ConfigSnapshot as JSON, instance secrets redacted)", body = Object),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "Nothing published yet", body = ErrorBody),
        (status = 503, description = "Redis unreachable", body = ErrorBody),
    )
)]
pub async fn get(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let unavailable =
        |_| ApiError::Unavailable("redis is unreachable; the snapshot cannot be read");
    let mut conn = state.redis.get().await.map_err(unavailable)?;
    let raw: Option<String> = redis::cmd("GET")
        .arg(keys::CONFIG_SNAPSHOT)
        .query_async(&mut conn)
        .await
        .map_err(unavailable)?;
    let raw = raw.ok_or_else(|| ApiError::not_found("published snapshot"))?;
    let snap: ConfigSnapshot = serde_json::from_str(&raw)
        .map_err(|e| anyhow::Error::new(e).context("decoding config:snapshot"))?;
    let body = redacted(&snap).map_err(anyhow::Error::new)?;
    Ok(HttpResponse::Ok()
        .insert_header((super::common::VERSION_HEADER, snap.version.to_string()))
        .json(body))
}

#[utoipa::path(
    get, operation_id = "get_openapi", path = "/api/v1/openapi.json", tag = "operations",
    responses(
        (status = 200, description = "This document", body = Object),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
    )
)]
pub async fn openapi(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(state.openapi_json.clone())
}
