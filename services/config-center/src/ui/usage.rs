//! `/ui/usage`: the usage explorer over the spend ledger.

use super::error::UiError;
use super::layout::{Nav, Page};
use super::session::Session;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use maud::html;

pub async fn show(session: Session) -> Result<HttpResponse, UiError> {
    let page = Page {
        title: "Usage",
        nav: Nav::Usage,
        csrf: Some(session.csrf()),
        chart: true,
    };
    Ok(page.render(
        StatusCode::OK,
        html! { p { "The usage explorer reads the spend ledger." } },
    ))
}
