//! Console sessions: signing in with the admin token (compared in constant
//! time) opens a session whose random id travels in an HttpOnly,
//! SameSite=Strict cookie (`Secure` when the request came over HTTPS) and
//! whose state — its CSRF token — lives in Redis with the session's TTL,
//! so every config-center replica knows it. Only the id's SHA-256 names
//! the Redis key.

use super::error::UiError;
use crate::auth;
use crate::domain::random_base62;
use crate::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;
use subtle::ConstantTimeEq;

/// The session cookie.
pub const COOKIE: &str = "aigw_console";
/// Random characters of a session id and of a CSRF token (256 bits).
const TOKEN_LEN: usize = 43;

fn redis_key(id: &str) -> String {
    aigw_metrics::keys::console_session(&aigw_types::hash_api_key(id))
}

/// A signed-in operator's session.
#[derive(Debug)]
pub struct Session {
    id: String,
    csrf: String,
}

pub(super) fn unavailable(e: redis::RedisError) -> UiError {
    tracing::warn!(error = %e, "console session store unreachable");
    UiError::SessionsUnavailable
}

/// A connection to the console's store (Redis), or the page saying it is
/// unreachable.
pub(super) async fn store(state: &AppState) -> Result<aigw_metrics::RedisHandle, UiError> {
    state.redis.get().await.map_err(unavailable)
}

impl Session {
    /// Opens a session when `token` is the admin token.
    pub async fn sign_in(state: &AppState, token: &str) -> Result<Option<Session>, UiError> {
        let ok: bool = auth::token_hash(token.trim())
            .ct_eq(&state.admin_token_hash)
            .into();
        if !ok {
            return Ok(None);
        }
        let s = Session {
            id: random_base62(TOKEN_LEN),
            csrf: random_base62(TOKEN_LEN),
        };
        let mut c = store(state).await?;
        redis::cmd("SET")
            .arg(redis_key(&s.id))
            .arg(&s.csrf)
            .arg("EX")
            .arg(state.console_session_ttl.as_secs().max(1))
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(Some(s))
    }

    async fn load(state: &AppState, id: &str) -> Result<Option<Session>, UiError> {
        let mut c = store(state).await?;
        let csrf: Option<String> = redis::cmd("GET")
            .arg(redis_key(id))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(csrf.map(|csrf| Session {
            id: id.to_string(),
            csrf,
        }))
    }

    /// Ends the session everywhere.
    pub async fn sign_out(self, state: &AppState) -> Result<(), UiError> {
        let mut c = store(state).await?;
        redis::cmd("DEL")
            .arg(redis_key(&self.id))
            .query_async::<()>(&mut c)
            .await
            .map_err(unavailable)
    }

    /// The token every POST form of this session carries.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a write whose form did not carry this session's token
    /// (compared in constant time).
    pub fn check_csrf(&self, presented: &str) -> Result<(), UiError> {
        let ok: bool = auth::token_hash(presented)
            .ct_eq(&auth::token_hash(&self.csrf))
            .into();
        if ok {
            Ok(())
        } else {
            Err(UiError::Csrf)
        }
    }

    /// The `Set-Cookie` value that opens this session in the browser.
    pub fn cookie(&self, state: &AppState, req: &HttpRequest) -> String {
        cookie_value(
            &self.id,
            state.console_session_ttl.as_secs().max(1),
            is_https(req),
        )
    }
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn expired_cookie(req: &HttpRequest) -> String {
    cookie_value("", 0, is_https(req))
}

fn cookie_value(id: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// Whether the browser reached us over HTTPS: directly, or through a proxy
/// that says so in `X-Forwarded-Proto`.
fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
        || req
            .headers()
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn cookie_id(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == TOKEN_LEN && v.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Pages that need a session take it as an argument; without one the
/// browser is sent to the sign-in page.
impl FromRequest for Session {
    type Error = UiError;
    type Future = Pin<Box<dyn Future<Output = Result<Session, UiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let id = cookie_id(req);
        Box::pin(async move {
            let (Some(state), Some(id)) = (state, id) else {
                return Err(UiError::SignInRequired);
            };
            Session::load(&state, &id)
                .await?
                .ok_or(UiError::SignInRequired)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_http_only_strict_and_secure_over_https() {
        let c = cookie_value("abc", 60, false);
        assert_eq!(
            c,
            "aigw_console=abc; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        assert!(cookie_value("abc", 60, true).ends_with("; Secure"));
    }

    #[test]
    fn csrf_must_match_exactly() {
        let s = Session {
            id: "i".into(),
            csrf: "token-1".into(),
        };
        assert!(s.check_csrf("token-1").is_ok());
        assert!(matches!(s.check_csrf("token-2"), Err(UiError::Csrf)));
        assert!(matches!(s.check_csrf(""), Err(UiError::Csrf)));
    }
}
