//! The counting API: plain text, chat requests, batches, and the lists of
//! encodings and models.

use crate::body::{echo, parse_json, read_body};
use crate::chat::{count_chat, ChatCountRequest};
use crate::error::{ApiError, ErrorBody};
use crate::metrics::{CountGuard, Counted};
use crate::state::AppState;
use crate::tokenize::models::{self, ModelSource, BUILTIN_MODELS, BUILTIN_PREFIXES};
use crate::tokenize::{Encoders, Encoding};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use aigw_types::ConfigSnapshot;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Most texts accepted in one batch.
pub const MAX_BATCH_TEXTS: usize = 100_000;

/// `model` or `encoding` (at least one), and the text.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CountRequest {
    /// A configured or known OpenAI model, e.g. `gpt-4o-mini`.
    #[serde(default)]
    pub model: Option<String>,
    /// An encoding, e.g. `cl100k_base`; wins over `model`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// The text; special-token strings such as `<|endoftext|>` count as text.
    pub text: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CountResponse {
    pub tokens: u64,
    pub encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchCountRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    /// Up to 100,000 texts.
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchCountResponse {
    /// One count per text, in order.
    pub counts: Vec<u64>,
    pub total: u64,
    pub encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChatCountResponse {
    /// Prompt tokens by the OpenAI cookbook's per-message accounting.
    pub tokens: u64,
    pub encoding: Encoding,
    pub model: String,
    /// True when images, non-text parts, tool calls or tool definitions were estimated.
    pub approximate: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EncodingInfo {
    pub name: Encoding,
    /// Other names accepted for it (same counts for ordinary text).
    pub aliases: Vec<&'static str>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EncodingsResponse {
    pub encodings: Vec<EncodingInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub model: String,
    pub encoding: Encoding,
    pub source: ModelSource,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrefixInfo {
    pub prefix: &'static str,
    pub encoding: Encoding,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelsResponse {
    /// Configured models first, then built-in names.
    pub models: Vec<ModelInfo>,
    /// Built-in prefixes for names not listed (longest prefix wins).
    pub prefixes: Vec<PrefixInfo>,
}

/// One counting endpoint: the body it reads, the answer it gives and the
/// counting in between (run on the counting pool). Every endpoint is
/// served by [`handle`], which accounts for the request exactly once.
pub trait CountJob: DeserializeOwned + Send + 'static {
    /// The `endpoint` label of its metrics.
    const ENDPOINT: &'static str;
    type Answer: Serialize + Send + 'static;
    /// Counts. `body_bytes` is the size of the request body.
    fn run(
        self,
        enc: &Encoders,
        snap: Option<&ConfigSnapshot>,
        body_bytes: u64,
    ) -> Result<(Self::Answer, Counted), ApiError>;
}

/// Reads the body, counts on the pool and answers; the guard records the
/// request when dropped, also when the client goes away first (499).
async fn handle<J: CountJob>(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let mut guard = CountGuard::start(&state.recorder, J::ENDPOINT);
    let res = async {
        let body = read_body(&req, payload, state.max_body_bytes).await?;
        let (enc, snap) = (state.encoders.clone(), state.snapshot.current());
        state
            .pool
            .run(body.len(), move || {
                let job: J = parse_json(&body)?;
                job.run(&enc, snap.as_deref(), body.len() as u64)
            })
            .await
            .map_err(job_failed)?
    }
    .await;
    let resp = match res {
        Ok((answer, counted)) => {
            guard.counted(counted);
            HttpResponse::Ok().json(answer)
        }
        Err(e) => e.error_response(),
    };
    guard.answered(resp.status().as_u16());
    resp
}

impl CountJob for CountRequest {
    const ENDPOINT: &'static str = "count";
    type Answer = CountResponse;

    fn run(
        self,
        enc: &Encoders,
        snap: Option<&ConfigSnapshot>,
        _: u64,
    ) -> Result<(CountResponse, Counted), ApiError> {
        let e = target(snap, self.model.as_deref(), self.encoding.as_deref())?;
        let tokens = enc.count(e, &self.text) as u64;
        let counted = Counted {
            encoding: Some(e.name()),
            tokens,
            bytes: self.text.len() as u64,
        };
        Ok((
            CountResponse {
                tokens,
                encoding: e,
                model: self.model,
            },
            counted,
        ))
    }
}

impl CountJob for BatchCountRequest {
    const ENDPOINT: &'static str = "batch";
    type Answer = BatchCountResponse;

    fn run(
        self,
        enc: &Encoders,
        snap: Option<&ConfigSnapshot>,
        _: u64,
    ) -> Result<(BatchCountResponse, Counted), ApiError> {
        if self.texts.len() > MAX_BATCH_TEXTS {
            return Err(ApiError::invalid(
                format!("at most {MAX_BATCH_TEXTS} texts per batch"),
                Some("texts"),
            ));
        }
        let e = target(snap, self.model.as_deref(), self.encoding.as_deref())?;
        let counts: Vec<u64> = self.texts.iter().map(|t| enc.count(e, t) as u64).collect();
        let total = counts.iter().sum();
        let counted = Counted {
            encoding: Some(e.name()),
            tokens: total,
            bytes: self.texts.iter().map(|t| t.len() as u64).sum(),
        };
        Ok((
            BatchCountResponse {
                counts,
                total,
                encoding: e,
                model: self.model,
            },
            counted,
        ))
    }
}

impl CountJob for ChatCountRequest {
    const ENDPOINT: &'static str = "chat";
    type Answer = ChatCountResponse;

    fn run(
        self,
        enc: &Encoders,
        snap: Option<&ConfigSnapshot>,
        body_bytes: u64,
    ) -> Result<(ChatCountResponse, Counted), ApiError> {
        let e = target(snap, Some(&self.model), self.encoding.as_deref())?;
        let c = count_chat(enc, e, &self).map_err(|p| ApiError::invalid(p.0, Some("messages")))?;
        let counted = Counted {
            encoding: Some(e.name()),
            tokens: c.tokens,
            bytes: body_bytes,
        };
        Ok((
            ChatCountResponse {
                tokens: c.tokens,
                encoding: e,
                model: self.model,
                approximate: c.approximate,
            },
            counted,
        ))
    }
}

/// The encoding for a request: `encoding` if given, else `model`'s.
fn target(
    snap: Option<&ConfigSnapshot>,
    model: Option<&str>,
    encoding: Option<&str>,
) -> Result<Encoding, ApiError> {
    if let Some(name) = encoding {
        return Encoding::parse(name).ok_or_else(|| ApiError::UnknownEncoding {
            encoding: echo(name),
            known_encodings: Encoding::known_names(),
        });
    }
    let Some(model) = model else {
        return Err(ApiError::invalid(
            "give `model` or `encoding`",
            Some("model"),
        ));
    };
    models::resolve(snap, model)
        .map(|(e, _)| e)
        .ok_or_else(|| ApiError::UnknownModel {
            model: echo(model),
            known_models: known_models(snap),
            known_prefixes: BUILTIN_PREFIXES
                .iter()
                .map(|(p, _)| p.to_string())
                .collect(),
        })
}

fn known_models(snap: Option<&ConfigSnapshot>) -> Vec<String> {
    let mut v: Vec<String> = snap
        .map(|s| s.models.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default();
    for (m, _) in BUILTIN_MODELS {
        if !v.iter().any(|x| x == m) {
            v.push(m.to_string());
        }
    }
    v
}

fn job_failed(e: crate::pool::JobError) -> ApiError {
    ApiError::Unexpected(anyhow::Error::new(e))
}

/// Counts the tokens of one text.
#[utoipa::path(
    post,
    path = "/v1/tokens/count",
    tag = "tokens",
    request_body = CountRequest,
    responses(
        (status = 200, description = "The count", body = CountResponse),
        (status = 400, description = "Malformed JSON, missing or mistyped fields, unknown model or encoding", body = ErrorBody),
        (status = 413, description = "Body over the limit (MAX_BODY_BYTES)", body = ErrorBody),
    )
)]
pub async fn count(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle::<CountRequest>(state, req, payload).await
}

/// Counts many texts with one encoding.
#[utoipa::path(
    post,
    path = "/v1/tokens/count/batch",
    tag = "tokens",
    request_body = BatchCountRequest,
    responses(
        (status = 200, description = "One count per text, in order", body = BatchCountResponse),
        (status = 400, description = "Malformed JSON, missing or mistyped fields, unknown model or encoding, too many texts", body = ErrorBody),
        (status = 413, description = "Body over the limit (MAX_BODY_BYTES)", body = ErrorBody),
    )
)]
pub async fn count_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle::<BatchCountRequest>(state, req, payload).await
}

/// Counts the prompt tokens of an OpenAI chat request.
#[utoipa::path(
    post,
    path = "/v1/tokens/count/chat",
    tag = "tokens",
    request_body = ChatCountRequest,
    responses(
        (status = 200, description = "Prompt tokens", body = ChatCountResponse),
        (status = 400, description = "Malformed JSON, missing or mistyped fields, unknown model or encoding", body = ErrorBody),
        (status = 413, description = "Body over the limit (MAX_BODY_BYTES)", body = ErrorBody),
    )
)]
pub async fn count_chat_request(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    handle::<ChatCountRequest>(state, req, payload).await
}

/// The encodings this service counts with.
#[utoipa::path(
    get,
    path = "/v1/encodings",
    tag = "tokens",
    responses((status = 200, description = "Known encodings", body = EncodingsResponse))
)]
pub async fn encodings() -> HttpResponse {
    let encodings = Encoding::ALL
        .iter()
        .map(|e| EncodingInfo {
            name: *e,
            aliases: Encoding::ALIASES
                .iter()
                .filter(|(_, t)| t == e)
                .map(|(a, _)| *a)
                .collect(),
        })
        .collect();
    HttpResponse::Ok().json(EncodingsResponse { encodings })
}

/// Model → encoding: the config snapshot first, then the built-in map.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "tokens",
    responses((status = 200, description = "Known models and prefixes", body = ModelsResponse))
)]
pub async fn list_models(state: web::Data<AppState>) -> HttpResponse {
    let snap = state.snapshot.current();
    let mut models_out: Vec<ModelInfo> = Vec::new();
    if let Some(s) = snap.as_deref() {
        for m in &s.models {
            if let Some((encoding, source)) = models::resolve(Some(s), &m.name) {
                models_out.push(ModelInfo {
                    model: m.name.clone(),
                    encoding,
                    source,
                });
            }
        }
    }
    for (m, e) in BUILTIN_MODELS {
        if !models_out.iter().any(|x| x.model == *m) {
            models_out.push(ModelInfo {
                model: m.to_string(),
                encoding: *e,
                source: ModelSource::Builtin,
            });
        }
    }
    let prefixes = BUILTIN_PREFIXES
        .iter()
        .map(|(p, e)| PrefixInfo {
            prefix: p,
            encoding: *e,
        })
        .collect();
    HttpResponse::Ok().json(ModelsResponse {
        models: models_out,
        prefixes,
    })
}
