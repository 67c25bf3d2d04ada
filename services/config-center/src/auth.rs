//! Admin authentication for everything under `/api/v1`.

use crate::error::ApiError;
use crate::state::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, Error, ResponseError};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What the configured token is compared through: hashing both sides first
/// makes the comparison constant-time in the token's length too.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn presented_token(req: &ServiceRequest) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Answers 401 unless `Authorization: Bearer <ADMIN_TOKEN>` is present;
/// runs before any body is read.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let ok = match (req.app_data::<web::Data<AppState>>(), presented_token(&req)) {
        (Some(state), Some(token)) => bool::from(token_hash(token).ct_eq(&state.admin_token_hash)),
        _ => false,
    };
    if !ok {
        let res = ApiError::Unauthorized.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
