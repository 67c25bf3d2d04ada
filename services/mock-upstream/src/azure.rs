//! Azure OpenAI's paths: `/openai/deployments/{deployment}/chat/completions`
//! and `/embeddings` with a required `api-version` query parameter, and the
//! v1 API (`/openai/v1/chat/completions`, `/embeddings`, `/models`), which
//! names the model in the body. Keys come in `api-key` (or `Authorization:
//! Bearer`); answers are OpenAI's with Azure's content filter results.

use crate::auth;
use crate::error::{Failure, MockError, Provider};
use crate::openai;
use crate::state::{Endpoint, State};
use actix_web::{web, HttpRequest, HttpResponse};

const PROVIDER: Provider = Provider::AzureOpenAi;

/// A deployment path needs `api-version=YYYY-MM-DD[-preview]`; Azure
/// answers a request without one with its plain 404.
fn require_api_version(req: &HttpRequest) -> Result<(), MockError> {
    let version = req
        .query_string()
        .split('&')
        .find_map(|kv| kv.strip_prefix("api-version="));
    match version {
        None | Some("") => Err(MockError::NotFound),
        Some(v) if is_api_version(v) => Ok(()),
        Some(v) => Err(MockError::InvalidRequest(format!(
            "API version not supported: {v}"
        ))),
    }
}

fn is_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

async fn deployment_call(
    endpoint: Endpoint,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    deployment: String,
) -> Result<HttpResponse, Failure> {
    state.arrived(endpoint, &req, &body, Some(&deployment));
    let answer = async {
        auth::check(state.config.api_key.as_ref(), PROVIDER, &req)?;
        require_api_version(&req)?;
        match endpoint {
            Endpoint::AzureEmbeddings => {
                openai::embeddings_answer(&state, PROVIDER, Some(&deployment), &body).await
            }
            _ => openai::chat_answer(&state, PROVIDER, Some(&deployment), &body).await,
        }
    };
    answer.await.map_err(|e| e.answered_by(PROVIDER))
}

async fn v1_call(
    endpoint: Endpoint,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    state.arrived(endpoint, &req, &body, None);
    let answer = async {
        auth::check(state.config.api_key.as_ref(), PROVIDER, &req)?;
        match endpoint {
            Endpoint::AzureEmbeddings => {
                openai::embeddings_answer(&state, PROVIDER, None, &body).await
            }
            _ => openai::chat_answer(&state, PROVIDER, None, &body).await,
        }
    };
    answer.await.map_err(|e| e.answered_by(PROVIDER))
}

pub async fn deployment_chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let deployment = path.into_inner();
    deployment_call(Endpoint::AzureChatCompletions, req, body, state, deployment).await
}

pub async fn deployment_embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let deployment = path.into_inner();
    deployment_call(Endpoint::AzureEmbeddings, req, body, state, deployment).await
}

pub async fn v1_chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    v1_call(Endpoint::AzureChatCompletions, req, body, state).await
}

pub async fn v1_embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    v1_call(Endpoint::AzureEmbeddings, req, body, state).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_are_dates_with_an_optional_preview() {
        for ok in ["2024-10-21", "2025-04-01-preview"] {
            assert!(is_api_version(ok), "{ok}");
        }
        for bad in ["", "latest", "2024-1-21", "2024-10-21-beta", "20241021xx"] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }
}
