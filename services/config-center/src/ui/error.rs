//! What the console answers when a page cannot be shown: sign-in needed
//! (303 to the sign-in page), a missing or wrong CSRF token (403), the
//! admin API's errors (their status, with their message), and sessions
//! unavailable while Redis is down (503). Always an HTML page.

use super::layout::{Nav, Page};
use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use maud::html;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("sign in first")]
    SignInRequired,
    #[error("the form expired or did not come from this console; reload the page and try again")]
    Csrf,
    #[error("sessions are unavailable: Redis cannot be reached")]
    SessionsUnavailable,
    /// The detail is logged, not shown: it may quote what was sent.
    #[error("the form could not be read")]
    BadForm(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for UiError {
    fn status_code(&self) -> StatusCode {
        match self {
            UiError::SignInRequired => StatusCode::SEE_OTHER,
            UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::SessionsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            UiError::BadForm(_) => StatusCode::BAD_REQUEST,
            UiError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let UiError::SignInRequired = self {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/ui/sign-in"))
                .finish();
        }
        let message = match self {
            // The cause is logged by the admin API's error type; never shown.
            UiError::Api(ApiError::Unexpected(_)) => "internal error".to_string(),
            e => e.to_string(),
        };
        let page = Page {
            title: "Something went wrong",
            nav: Nav::None,
            csrf: None,
            chart: false,
        };
        page.render(
            self.status_code(),
            html! {
                p.error role="alert" { (message) }
                p { a href="/ui" { "Back to the overview" } }
            },
        )
    }
}

/// Unreadable form bodies: a 400 page, never a panic.
pub fn form_error(err: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    tracing::debug!(error = %err, "console form refused");
    UiError::BadForm(err.to_string()).into()
}

pub async fn not_found() -> Result<HttpResponse, UiError> {
    Err(ApiError::RouteNotFound.into())
}
