//! `/ui/sign-in` and `/ui/sign-out`.

use super::error::UiError;
use super::forms::see_other;
use super::layout::{field, Input, Nav, Page, Problem};
use super::session::{expired_cookie, Session};
use crate::state::AppState;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::html;
use serde::Deserialize;

fn form(problem: Option<&Problem>, status: StatusCode) -> HttpResponse {
    let page = Page {
        title: "Sign in",
        nav: Nav::None,
        csrf: None,
        chart: false,
    };
    page.render(
        status,
        html! {
            form.card method="post" action="/ui/sign-in" {
                p { "Sign in with the config-center's admin token (" code { "ADMIN_TOKEN" } ")." }
                (field("Admin token", "token", Input::Text { kind: "password", value: "" }, None, problem))
                div.actions { button type="submit" { "Sign in" } }
            }
        },
    )
}

pub async fn show() -> HttpResponse {
    form(None, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Form<SignInForm>,
) -> Result<HttpResponse, UiError> {
    match Session::sign_in(&state, &body.token).await? {
        Some(session) => {
            tracing::info!("console sign-in");
            let mut res = see_other("/ui");
            res.headers_mut()
                .insert(header::SET_COOKIE, cookie(session.cookie(&state, &req)));
            Ok(res)
        }
        None => {
            tracing::warn!("console sign-in refused: wrong admin token");
            let problem = Problem {
                field: Some("token".into()),
                message: "That is not the admin token.".into(),
            };
            Ok(form(Some(&problem), StatusCode::UNAUTHORIZED))
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    body: web::Form<CsrfForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    session.sign_out(&state).await?;
    let mut res = see_other("/ui/sign-in");
    res.headers_mut()
        .insert(header::SET_COOKIE, cookie(expired_cookie(&req)));
    Ok(res)
}

fn cookie(v: String) -> HeaderValue {
    HeaderValue::try_from(v).expect("cookie values are ASCII")
}
