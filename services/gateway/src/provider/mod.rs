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
mod messages;
mod openai;

use crate::error::GatewayError;
use crate::routing::{Endpoint, Instance};
use crate::upstream::ChunkMap;
use crate::usage::Usage;
use aigw_types::Provider;
use bytes::Bytes;
use openai::EventMap;
use std::sync::Arc;

const NAME_ANTHROPIC: &str = "anthropic";
const NAME_GEMINI: &str = "gemini";

/// Whether requests of `endpoint` to `provider` are translated (else the
/// OpenAI body goes as is).
pub fn translates(provider: Provider, endpoint: Endpoint) -> bool {
    endpoint == Endpoint::Messages || matches!(provider, Provider::Anthropic | Provider::Gemini)
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
    /// The client speaks Anthropic's Messages API.
    messages: bool,
}

/// An Anthropic Messages API body for an instance of any provider.
fn messages_request(inst: &Instance, body: &[u8], x: &mut Exchange) -> Result<Bytes, GatewayError> {
    x.messages = true;
    x.endpoint = Some(Endpoint::Chat);
    match inst.provider {
        Provider::Anthropic => {
            let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
                .map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
            v.insert("model".into(), inst.upstream_model.as_ref().into());
            Ok(Bytes::from(serde_json::Value::Object(v).to_string()))
        }
        Provider::Gemini => gemini::chat_request(&messages::to_openai(body, &inst.upstream_model)?),
        Provider::Openai | Provider::AzureOpenai => messages::to_openai(body, &inst.upstream_model),
    }
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
        messages: false,
    };
    let name = inst.provider.as_str();
    let body = match (inst.provider, endpoint) {
        (_, Endpoint::Messages) => messages_request(inst, body, &mut x)?,
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

/// A whole successful answer in the client's shape (OpenAI's, or
/// Anthropic's for the Messages API), with its usage.
pub fn answer(x: &Exchange, body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    if x.messages {
        if x.provider == Provider::Anthropic {
            return Ok((
                Bytes::copy_from_slice(body),
                crate::usage::usage_of_body(body),
            ));
        }
        let (openai, _) = openai_answer(x, body)?;
        return messages::answer(&openai);
    }
    openai_answer(x, body)
}

fn openai_answer(x: &Exchange, body: &[u8]) -> Result<(Bytes, Option<Usage>), GatewayError> {
    match (x.provider, x.endpoint) {
        (Provider::Anthropic, _) => anthropic::chat_answer(x, body),
        (Provider::Gemini, Some(Endpoint::Embeddings)) => gemini::embeddings_answer(x, body),
        (Provider::Gemini, _) => gemini::chat_answer(x, body),
        _ => Ok((Bytes::copy_from_slice(body), None)),
    }
}

/// The translation of a successful stream, chunk by chunk.
pub fn stream(x: &Exchange) -> Option<Box<dyn ChunkMap>> {
    if x.messages {
        let front = EventMap::boxed(messages::Stream::new(&x.model));
        return Some(match x.provider {
            Provider::Anthropic => Box::new(messages::UsageFill::default()),
            Provider::Gemini => Box::new(Chain(EventMap::boxed(gemini::ChatStream::new(x)), front)),
            Provider::Openai | Provider::AzureOpenai => front,
        });
    }
    match x.provider {
        Provider::Anthropic => Some(EventMap::boxed(anthropic::ChatStream::new(x))),
        Provider::Gemini => Some(EventMap::boxed(gemini::ChatStream::new(x))),
        _ => None,
    }
}

/// One translation after another.
struct Chain(Box<dyn ChunkMap>, Box<dyn ChunkMap>);

impl ChunkMap for Chain {
    fn map(&mut self, chunk: &[u8]) -> Bytes {
        let mid = self.0.map(chunk);
        if mid.is_empty() {
            return mid;
        }
        self.1.map(&mid)
    }

    fn end(&mut self) -> Bytes {
        let mid = self.0.end();
        let mut out = bytes::BytesMut::new();
        if !mid.is_empty() {
            out.extend_from_slice(&self.1.map(&mid));
        }
        out.extend_from_slice(&self.1.end());
        out.freeze()
    }
}

/// An upstream's error answer in the client's error shape, and the status
/// it gets. For OpenAI's API: Anthropic's 529 "overloaded" is OpenAI's 503,
/// Azure's errors already in OpenAI's shape stay as they are. For the
/// Messages API: Anthropic's errors pass as they are, others become
/// Anthropic's.
pub fn error(
    provider: Provider,
    endpoint: Endpoint,
    status: u16,
    body: &[u8],
) -> Option<(u16, Bytes)> {
    if endpoint == Endpoint::Messages {
        if provider == Provider::Anthropic {
            return None;
        }
        let (_, openai) = openai_error(provider, status, body)
            .unwrap_or_else(|| (status, Bytes::copy_from_slice(body)));
        return Some((status, messages::error(status, &openai)));
    }
    openai_error(provider, status, body)
}

fn openai_error(provider: Provider, status: u16, body: &[u8]) -> Option<(u16, Bytes)> {
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
