//! Upstreams that do not speak OpenAI's API: the request built for an
//! instance of Anthropic or Gemini from the client's OpenAI body, and the
//! answer, stream and error turned back into OpenAI's shapes with the usage
//! in OpenAI's meaning. Azure OpenAI speaks OpenAI's bodies on its own
//! paths and keys (`crate::routing`): only its errors are reshaped. OpenAI
//! instances never come here: their bodies pass through untouched
//! (`crate::request::ParsedBody::rewrite`).
//!
//! `docs/providers.md` lists what is translated and what is refused.

mod anthropic;
mod gemini;
mod openai;

use crate::error::GatewayError;
use crate::routing::{Endpoint, Instance};
use crate::upstream::ChunkMap;
use crate::usage::Usage;
use aigw_types::Provider;
use bytes::Bytes;
use std::sync::Arc;

const NAME_ANTHROPIC: &str = "anthropic";
const NAME_GEMINI: &str = "gemini";

/// Whether requests to `provider` are translated (else the OpenAI body goes
/// as is).
pub fn translates(provider: Provider) -> bool {
    matches!(provider, Provider::Anthropic | Provider::Gemini)
}

/// What answer translation needs to know of its request.
#[derive(Default)]
pub struct Exchange {
    provider: Provider,
    endpoint: Option<Endpoint>,
    /// The upstream model, for answers that name none.
    model: Arc<str>,
    created: i64,
    /// Embeddings asked for as base64.
    base64: bool,
}

/// The body for one attempt at a translated instance (`translates` holds),
/// and what its answer's translation needs.
pub fn request(
    inst: &Instance,
    endpoint: Endpoint,
    body: &[u8],
) -> Result<(Bytes, Exchange), GatewayError> {
    let mut x = Exchange {
        provider: inst.provider,
        endpoint: Some(endpoint),
        model: inst.upstream_model.clone(),
        created: aigw_service::clock::now_unix_s(),
        base64: false,
    };
    let name = inst.provider.as_str();
    let body = match (inst.provider, endpoint) {
        (Provider::Anthropic, Endpoint::Chat) => {
            anthropic::chat_request(body, &inst.upstream_model)?
        }
        (Provider::Gemini, Endpoint::Chat) => gemini::chat_request(body)?,
        (Provider::Gemini, Endpoint::Embeddings) => {
            let (b, base64) = gemini::embeddings_request(body, &inst.upstream_model)?;
            x.base64 = base64;
            b
        }
        (_, Endpoint::Embeddings) => {
            return Err(GatewayError::UnsupportedEndpoint {
                provider: name,
                endpoint: "embeddings",
            })
        }
        _ => {
            return Err(GatewayError::UnsupportedEndpoint {
                provider: name,
                endpoint: "legacy completions",
            })
        }
    };
    Ok((body, x))
}

/// A whole successful answer in OpenAI's shape, with its usage.
pub fn answer(x: &Exchange, body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    match (x.provider, x.endpoint) {
        (Provider::Anthropic, _) => anthropic::chat_answer(x, body),
        (Provider::Gemini, Some(Endpoint::Embeddings)) => gemini::embeddings_answer(x, body),
        (Provider::Gemini, _) => gemini::chat_answer(x, body),
        _ => Ok((Bytes::copy_from_slice(body), None)),
    }
}

/// The translation of a successful stream, chunk by chunk.
pub fn stream(x: &Exchange) -> Option<Box<dyn ChunkMap>> {
    match x.provider {
        Provider::Anthropic => Some(Box::new(anthropic::ChatStream::new(x))),
        Provider::Gemini => Some(Box::new(gemini::ChatStream::new(x))),
        _ => None,
    }
}

/// An upstream's error answer in OpenAI's error shape, and the status the
/// client gets (Anthropic's 529 "overloaded" is OpenAI's 503). Azure's
/// errors already in OpenAI's shape stay as they are.
pub fn error(provider: Provider, status: u16, body: &[u8]) -> Option<(u16, Bytes)> {
    let client_status = if status == 529 { 503 } else { status };
    let v = match provider {
        Provider::Openai => return None,
        Provider::Anthropic => anthropic::error_answer(status, body),
        Provider::Gemini => gemini::error_answer(status, body),
        Provider::AzureOpenai => {
            let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
            let e = v.get_mut("error")?.as_object_mut()?;
            if e.contains_key("type") {
                return None;
            }
            let code = e.get("code").and_then(|c| c.as_str()).map(str::to_string);
            let message = e
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("The upstream answered with an error.")
                .to_string();
            openai::error_json(status, code.as_deref(), &message)
        }
    };
    Some((client_status, Bytes::from(v.to_string())))
}
