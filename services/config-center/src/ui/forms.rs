//! Reading HTML form values into the admin API's inputs: an empty field is
//! an absent value, numbers are checked with the API's field names, and a
//! committed change is waited for (bounded) like the API does, so the
//! gateway sees it when the next page loads.

use super::error::UiError;
use super::layout::Problem;
use crate::domain::Namespace;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::HttpResponse;

/// Trimmed text, `None` when empty.
pub fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// A whole number, `None` when empty; a 400 naming `field` otherwise.
pub fn int(field: &str, s: &str) -> Result<Option<i64>, ApiError> {
    match opt(s) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::validation(field, "must be a whole number")),
    }
}

/// A checkbox: present (any value) means checked.
pub fn checked(v: &Option<String>) -> bool {
    v.is_some()
}

/// Waits for `version` to reach Redis (bounded by
/// `CONFIG_CENTER_PUBLISH_WAIT`), as the admin API's answers do; says
/// whether it did.
pub async fn published(state: &AppState, version: u64) -> bool {
    state.publisher.committed(version, state.publish_wait).await
}

/// What a form's change came to: the entity once its version is published
/// (bounded wait), or the API's refusal as a problem to show on the form
/// again; anything else (a database failure) is an error page.
pub async fn committed<T>(
    state: &AppState,
    done: Result<(T, u64), ApiError>,
) -> Result<Result<T, Problem>, UiError> {
    match done {
        Ok((t, v)) => {
            published(state, v).await;
            Ok(Ok(t))
        }
        Err(e) => Ok(Err(Problem::from_api(e)?)),
    }
}

/// Sends the browser on after a successful POST (post/redirect/get).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// The namespace a page is about, or a 404 page.
pub async fn namespace(state: &AppState, code: &str) -> Result<Namespace, UiError> {
    Ok(state
        .store
        .namespace(code)
        .await
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("namespace '{code}'")))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_numbers_are_checked() {
        assert_eq!(opt("  "), None);
        assert_eq!(opt(" a "), Some("a".into()));
        assert_eq!(int("limits.rpm", "").unwrap(), None);
        assert_eq!(int("limits.rpm", " 60 ").unwrap(), Some(60));
        let e = int("limits.rpm", "six").unwrap_err();
        assert_eq!(e.field(), Some("limits.rpm"));
    }
}
