//! Reading request bodies with a size limit, so an oversized body is a JSON
//! 413 rather than the framework's plain-text one, and parsing them so that
//! broken JSON and wrong fields are told apart.

use crate::error::ApiError;
use actix_web::web::{Bytes, BytesMut, Payload};
use actix_web::HttpRequest;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// After refusing a body, read (and drop) at most this much more of it so the
/// client, still sending, sees the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 32 * 1024 * 1024;

/// Longest error message echoed back (serde quotes the offending value).
const MAX_MESSAGE: usize = 300;

/// The whole body, or 413 when it exceeds `limit` bytes.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain(&mut payload, 0).await;
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid(format!("could not read the request body: {e}"), None)
        })?;
        if buf.len() + chunk.len() > limit {
            let seen = buf.len() + chunk.len();
            drop(buf);
            drain(&mut payload, seen).await;
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

async fn drain(payload: &mut Payload, mut seen: usize) {
    while seen < DRAIN_LIMIT {
        match payload.next().await {
            Some(Ok(chunk)) => seen += chunk.len(),
            _ => break,
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Parses a JSON body: not JSON → `invalid_json`; JSON of the wrong shape
/// (missing field, wrong type) → `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson("the body is empty".into()));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::invalid(truncate(e.to_string()), None),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::InvalidJson(truncate(e.to_string()))
            }
        }
    })
}

/// A name from the request, shortened for echoing in an error message.
pub fn echo(s: &str) -> String {
    truncate(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct T {
        #[allow(dead_code)]
        text: String,
    }

    #[test]
    fn json_errors_are_classified() {
        assert!(matches!(
            parse_json::<T>(b""),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"{\"text\":"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"not json"),
            Err(ApiError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_json::<T>(b"{}"),
            Err(ApiError::InvalidRequest { .. })
        ));
        assert!(matches!(
            parse_json::<T>(b"{\"text\":5}"),
            Err(ApiError::InvalidRequest { .. })
        ));
        assert!(parse_json::<T>(b"{\"text\":\"x\"}").is_ok());
        let long = format!("{{\"text\":{{\"a\":\"{}\"}}}}", "x".repeat(10_000));
        match parse_json::<T>(long.as_bytes()) {
            Err(ApiError::InvalidRequest { message, .. }) => {
                assert!(message.len() <= MAX_MESSAGE + 3)
            }
            other => panic!("{other:?}"),
        }
    }
}
