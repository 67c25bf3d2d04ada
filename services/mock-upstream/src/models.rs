//! The model lists, in each provider's shape: OpenAI's (also Azure's),
//! Anthropic's and Gemini's. OpenAI's, Anthropic's and Gemini's v1 share
//! `GET /v1/models`, so the request's headers pick the dialect.

use crate::state::State;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

/// OpenAI's list, with the status set for it (`POST /mock/models-status`),
/// counted: a gateway probes an instance's health with it.
fn openai(state: &State) -> HttpResponse {
    let status = StatusCode::from_u16(state.models_requested()).unwrap_or(StatusCode::OK);
    HttpResponse::build(status)
        .content_type("application/json")
        .body(state.models_body.clone())
}

fn anthropic(state: &State) -> HttpResponse {
    let data: Vec<Value> = state
        .config
        .models
        .iter()
        .map(|id| {
            json!({"type": "model", "id": id, "display_name": id,
                   "created_at": "2025-01-01T00:00:00Z"})
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "data": data,
        "has_more": false,
        "first_id": state.config.models.first(),
        "last_id": state.config.models.last(),
    }))
}

fn gemini(state: &State) -> HttpResponse {
    let models: Vec<Value> = state
        .config
        .models
        .iter()
        .map(|id| {
            let methods = if id.contains("embed") {
                json!(["embedContent", "batchEmbedContents"])
            } else {
                json!(["generateContent", "streamGenerateContent", "countTokens"])
            };
            json!({"name": format!("models/{id}"), "displayName": id, "version": "001",
                   "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
                   "supportedGenerationMethods": methods})
        })
        .collect();
    HttpResponse::Ok().json(json!({ "models": models }))
}

/// `GET /v1/models`: OpenAI's list, or Anthropic's or Gemini's when the
/// request carries that provider's headers.
pub async fn list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let h = req.headers();
    if h.contains_key("anthropic-version") {
        return anthropic(&state);
    }
    if h.contains_key("x-goog-api-key") || req.query_string().contains("key=") {
        return gemini(&state);
    }
    openai(&state)
}

/// `GET /v1beta/models`.
pub async fn gemini_list(state: web::Data<State>) -> HttpResponse {
    gemini(&state)
}

/// `GET /openai/v1/models` and `/openai/models`.
pub async fn azure_list(state: web::Data<State>) -> HttpResponse {
    openai(&state)
}
