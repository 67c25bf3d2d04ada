//! `/ui/namespaces/{code}/keys`: a namespace's API keys — issuing one (the
//! key is shown once, on the answer to the form, with a copy button),
//! allowed models, expiry, revoking. Only prefixes are ever shown after.

use super::error::UiError;
use super::forms::{committed, namespace, opt, published, see_other};
use super::layout::{csrf_input, field, form_problem, usd, Input, Nav, Page, Problem};
use super::session::Session;
use crate::domain::{format_ms, IssuedKey};
use crate::error::ApiError;
use crate::routes::api_keys::{issue_api_key, revoke_api_key, CreateApiKey};
use crate::routes::common::MAX_PAGE;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_at: String,
    /// Comma-separated model names; empty = every model.
    #[serde(default)]
    allowed_models: String,
}

impl KeyForm {
    fn input(&self) -> CreateApiKey {
        CreateApiKey {
            name: self.name.clone(),
            expires_at: opt(&self.expires_at),
            allowed_models: opt(&self.allowed_models).map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
        }
    }
}

const FIELDS: &[&str] = &["name", "expires_at", "allowed_models"];

/// What the page shows above the list after a form was sent.
enum Outcome<'a> {
    None,
    Issued(&'a IssuedKey, &'a str),
    Problem(&'a Problem),
}

async fn page(
    state: &AppState,
    session: &Session,
    code: &str,
    f: &KeyForm,
    outcome: Outcome<'_>,
) -> Result<HttpResponse, UiError> {
    let ns = namespace(state, code).await?;
    let keys = state
        .store
        .list_api_keys(code, None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?;
    let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
    let spend = state
        .store
        .key_totals(code, &ids)
        .await
        .map_err(ApiError::from)?;
    let problem = match outcome {
        Outcome::Problem(p) => Some(p),
        _ => None,
    };
    let text = |value| Input::Text {
        kind: "text",
        value,
    };
    let title = format!("API keys of {}", ns.code);
    let body = html! {
        p { a href=(format!("/ui/namespaces/{}", ns.code)) { "Namespace " (ns.name) } }
        @if let Outcome::Issued(issued, name) = outcome {
            section.notice role="status" aria-labelledby="new-key-label" {
                h2 #new-key-label { "Key " (name) " created" }
                p { "Copy it now: it is shown only this once." }
                div.field {
                    label for="new-key" { "New API key" }
                    input #new-key.mono type="text" readonly value=(issued.plaintext);
                }
                div.actions { button.secondary type="button" data-copy="new-key" hidden { "Copy key" } }
            }
        }
        div.table-wrap {
            table {
                caption.hint { (keys.len()) " keys" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Prefix" } th scope="col" { "Models" }
                    th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "State" }
                    th.num scope="col" { "Requests" } th.num scope="col" { "Spend" }
                    th scope="col" { span.hint { "Action" } }
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { (k.name) }
                            td.mono { (k.prefix) "…" }
                            td { @match &k.allowed_models { None => "all", Some(m) => (m.join(", ")) } }
                            td { (format_ms(k.created_at_ms)) }
                            td { @match k.expires_at_ms { None => "never", Some(t) => (format_ms(t)) } }
                            td { @if k.revoked_at_ms.is_some() { span.badge.bad { "revoked" } } @else { span.badge.good { "active" } } }
                            @let t = spend.get(&k.id).copied().unwrap_or_default();
                            td.num { (t.requests) }
                            td.num { (usd(t.cost_nano_usd)) }
                            td {
                                @if k.revoked_at_ms.is_none() {
                                    form.inline method="post" action=(format!("/ui/namespaces/{}/keys/{}/revoke", ns.code, k.id)) {
                                        (csrf_input(session.csrf()))
                                        button.danger type="submit" aria-label=(format!("Revoke key {}", k.name)) { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New key" }
        form.card method="post" action=(format!("/ui/namespaces/{}/keys", ns.code)) {
            (csrf_input(session.csrf()))
            (form_problem(problem, FIELDS))
            div.grid {
                (field("Name", "name", text(&f.name), Some("what the key is for"), problem))
                (field("Allowed models", "allowed_models", text(&f.allowed_models), Some("comma-separated; empty = every model"), problem))
                (field("Expires at (UTC)", "expires_at", text(&f.expires_at), Some("e.g. 2030-01-01T00:00:00Z; empty = never"), problem))
            }
            div.actions { button type="submit" { "Create key" } }
        }
    };
    let status = match outcome {
        Outcome::Issued(..) => StatusCode::CREATED,
        Outcome::Problem(p) => p.status(),
        Outcome::None => StatusCode::OK,
    };
    let page = Page {
        title: &title,
        nav: Nav::Namespaces,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(status, body))
}

pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    code: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    page(&state, &session, &code, &KeyForm::default(), Outcome::None).await
}

pub async fn create(
    state: web::Data<AppState>,
    session: Session,
    code: web::Path<String>,
    body: web::Form<KeyForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let done = issue_api_key(&state, &code, body.input())
        .await
        .map(|(key, issued, v)| ((key, issued), v));
    match committed(&state, done).await? {
        Ok((key, issued)) => {
            let shown = Outcome::Issued(&issued, &key.name);
            page(&state, &session, &code, &KeyForm::default(), shown).await
        }
        Err(problem) => page(&state, &session, &code, &body, Outcome::Problem(&problem)).await,
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

pub async fn revoke(
    state: web::Data<AppState>,
    session: Session,
    path: web::Path<(String, String)>,
    body: web::Form<RevokeForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let (code, id) = path.into_inner();
    if let Some(v) = revoke_api_key(&state, &code, &id).await? {
        published(&state, v).await;
    }
    Ok(see_other(&format!("/ui/namespaces/{code}/keys")))
}
