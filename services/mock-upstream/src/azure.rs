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

/// One call on a deployment path (`deployment` given: `api-version`
/// required) or a v1 path (the model in the body).
async fn call(
    endpoint: Endpoint,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    deployment: Option<String>,
) -> Result<HttpResponse, Failure> {
    let deployment = deployment.as_deref();
    state.arrived(endpoint, &req, &body, deployment);
    let answer = async {
        auth::check(state.config.api_key.as_ref(), PROVIDER, &req)?;
        if deployment.is_some() {
            require_api_version(&req)?;
        }
        match endpoint {
            Endpoint::AzureEmbeddings => {
                openai::embeddings_answer(&state, PROVIDER, deployment, &body).await
            }
            _ => openai::chat_answer(&state, PROVIDER, deployment, &body).await,
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
    let deployment = Some(path.into_inner());
    call(Endpoint::AzureChatCompletions, req, body, state, deployment).await
}

pub async fn deployment_embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
    path: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let deployment = Some(path.into_inner());
    call(Endpoint::AzureEmbeddings, req, body, state, deployment).await
}

pub async fn v1_chat(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    call(Endpoint::AzureChatCompletions, req, body, state, None).await
}

pub async fn v1_embeddings(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> Result<HttpResponse, Failure> {
    call(Endpoint::AzureEmbeddings, req, body, state, None).await
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
