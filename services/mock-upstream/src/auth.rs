//! The key check each provider makes when `MOCK_API_KEY` is set, reading the
//! key where that provider's clients send it.

use crate::config::ExpectedKey;
use crate::error::{MockError, Provider};
use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::HttpRequest;

/// Where each provider's key travels: OpenAI `Authorization: Bearer`;
/// Anthropic `x-api-key` (its SDK may send `Authorization: Bearer`);
/// Azure `api-key` (or an Entra ID / v1 `Authorization: Bearer`); Gemini
/// `x-goog-api-key` or the `key` query parameter.
pub fn presented_key(provider: Provider, req: &HttpRequest) -> Option<String> {
    let h = req.headers();
    let own = match provider {
        Provider::OpenAi => None,
        Provider::Anthropic => header(h, "x-api-key"),
        Provider::AzureOpenAi => header(h, "api-key"),
        Provider::Gemini => header(h, "x-goog-api-key").or_else(|| query_key(req.query_string())),
    };
    own.map(String::from).or_else(|| match provider {
        Provider::Gemini => None,
        _ => header(h, AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(String::from),
    })
}

/// Nothing to check without `MOCK_API_KEY`; otherwise the provider's own
/// refusal for a missing or wrong key.
pub fn check(
    expected: Option<&ExpectedKey>,
    provider: Provider,
    req: &HttpRequest,
) -> Result<(), MockError> {
    let Some(expected) = expected else {
        return Ok(());
    };
    match presented_key(provider, req) {
        None => Err(MockError::Unauthorized { missing: true }),
        Some(k) if expected.matches(&k) => Ok(()),
        Some(_) => Err(MockError::Unauthorized { missing: false }),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

fn query_key(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("key="))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req(headers: &[(&str, &str)], uri: &str) -> HttpRequest {
        let mut r = TestRequest::post().uri(uri);
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    #[test]
    fn each_provider_reads_its_own_header() {
        let key = ExpectedKey::new("k1");
        let ok = |p, r: &HttpRequest| check(Some(&key), p, r);
        let bearer = req(&[("authorization", "Bearer k1")], "/");
        assert!(ok(Provider::OpenAi, &bearer).is_ok());
        assert!(ok(Provider::Anthropic, &bearer).is_ok());
        assert!(ok(Provider::AzureOpenAi, &bearer).is_ok());
        assert!(matches!(
            ok(Provider::Gemini, &bearer),
            Err(MockError::Unauthorized { missing: true })
        ));
        assert!(ok(Provider::Anthropic, &req(&[("x-api-key", "k1")], "/")).is_ok());
        assert!(ok(Provider::AzureOpenAi, &req(&[("api-key", "k1")], "/")).is_ok());
        assert!(ok(Provider::Gemini, &req(&[("x-goog-api-key", "k1")], "/")).is_ok());
        assert!(ok(
            Provider::Gemini,
            &req(&[], "/m:generateContent?alt=sse&key=k1")
        )
        .is_ok());
        assert!(matches!(
            ok(Provider::Anthropic, &req(&[("x-api-key", "k2")], "/")),
            Err(MockError::Unauthorized { missing: false })
        ));
        assert!(matches!(
            ok(Provider::OpenAi, &req(&[("api-key", "k1")], "/")),
            Err(MockError::Unauthorized { missing: true })
        ));
        // Without a configured key nothing is checked.
        assert!(check(None, Provider::Gemini, &req(&[], "/")).is_ok());
    }
}
