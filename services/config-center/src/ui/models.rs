//! `/ui/models`: models with their encoding and prices; creating one.

use super::error::UiError;
use super::forms::{checked, committed, int, opt, see_other};
use super::layout::{csrf_input, field, form_problem, Input, Nav, Page, Problem};
use super::session::Session;
use crate::domain::KNOWN_ENCODINGS;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::routes::models::{create_model, CreateModel};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct ModelForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    encoding: String,
    #[serde(default)]
    input_price_per_1m: String,
    #[serde(default)]
    output_price_per_1m: String,
    #[serde(default)]
    cached_input_price_per_1m: String,
    #[serde(default)]
    cache_write_price_per_1m: String,
    #[serde(default)]
    context_window: String,
    enabled: Option<String>,
}

impl Default for ModelForm {
    fn default() -> Self {
        ModelForm {
            csrf: String::new(),
            name: String::new(),
            encoding: "o200k_base".into(),
            input_price_per_1m: String::new(),
            output_price_per_1m: String::new(),
            cached_input_price_per_1m: String::new(),
            cache_write_price_per_1m: String::new(),
            context_window: String::new(),
            enabled: Some("true".into()),
        }
    }
}

impl ModelForm {
    fn input(&self) -> Result<CreateModel, ApiError> {
        Ok(CreateModel {
            name: self.name.trim().to_string(),
            encoding: self.encoding.clone(),
            input_price_per_1m: opt(&self.input_price_per_1m),
            output_price_per_1m: opt(&self.output_price_per_1m),
            cached_input_price_per_1m: opt(&self.cached_input_price_per_1m),
            cache_write_price_per_1m: opt(&self.cache_write_price_per_1m),
            context_window: int("context_window", &self.context_window)?,
            enabled: Some(checked(&self.enabled)),
        })
    }
}

const FIELDS: &[&str] = &[
    "name",
    "encoding",
    "input_price_per_1m",
    "output_price_per_1m",
    "cached_input_price_per_1m",
    "cache_write_price_per_1m",
    "context_window",
    "enabled",
];

async fn page(
    state: &AppState,
    session: &Session,
    f: &ModelForm,
    problem: Option<&Problem>,
) -> Result<HttpResponse, UiError> {
    let models = state
        .store
        .list_models(None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?;
    let encodings: Vec<(String, String)> = KNOWN_ENCODINGS
        .iter()
        .map(|e| (e.to_string(), e.to_string()))
        .collect();
    let text = |value| Input::Text {
        kind: "text",
        value,
    };
    let price = |p: &Option<rust_decimal::Decimal>| {
        p.map(|p| format!("${p}"))
            .unwrap_or_else(|| "unknown".into())
    };
    // Cache prices fall back to the input price.
    let cache_price = |p: &Option<rust_decimal::Decimal>| {
        p.map(|p| format!("${p}"))
            .unwrap_or_else(|| "= input".into())
    };
    let body = html! {
        div.table-wrap {
            table {
                caption.hint { (models.len()) " models; prices in USD per million tokens" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Encoding" }
                    th.num scope="col" { "Input price" } th.num scope="col" { "Output price" }
                    th.num scope="col" { "Cache read" } th.num scope="col" { "Cache write" }
                    th.num scope="col" { "Context window" } th scope="col" { "State" }
                } }
                tbody {
                    @for m in &models {
                        tr {
                            td.mono { (m.name) }
                            td.mono { (m.encoding) }
                            td.num { (price(&m.input_price_per_1m)) }
                            td.num { (price(&m.output_price_per_1m)) }
                            td.num { (cache_price(&m.cached_input_price_per_1m)) }
                            td.num { (cache_price(&m.cache_write_price_per_1m)) }
                            td.num { @match m.context_window { Some(c) => (c), None => "—" } }
                            td { @if m.enabled { span.badge.good { "enabled" } } @else { span.badge.bad { "disabled" } } }
                        }
                    }
                }
            }
        }
        h2 { "New model" }
        form.card method="post" action="/ui/models" {
            (csrf_input(session.csrf()))
            (form_problem(problem, FIELDS))
            div.grid {
                (field("Name", "name", text(&f.name), Some("the name clients send, e.g. gpt-4o-mini"), problem))
                (field("Encoding", "encoding", Input::Select { options: &encodings, selected: &f.encoding }, Some("tiktoken encoding for counting"), problem))
                (field("Input price (USD / 1M tokens)", "input_price_per_1m", text(&f.input_price_per_1m), Some("e.g. 0.15; empty = unknown"), problem))
                (field("Output price (USD / 1M tokens)", "output_price_per_1m", text(&f.output_price_per_1m), Some("e.g. 0.60; empty = unknown"), problem))
                (field("Cache-read price (USD / 1M tokens)", "cached_input_price_per_1m", text(&f.cached_input_price_per_1m), Some("prompt tokens served from the provider's cache; empty = input price"), problem))
                (field("Cache-write price (USD / 1M tokens)", "cache_write_price_per_1m", text(&f.cache_write_price_per_1m), Some("prompt tokens written to the provider's cache; empty = input price"), problem))
                (field("Context window (tokens)", "context_window", Input::Text { kind: "number", value: &f.context_window }, None, problem))
                (field("Enabled", "enabled", Input::Check { checked: checked(&f.enabled) }, None, problem))
            }
            div.actions { button type="submit" { "Create model" } }
        }
    };
    let page = Page {
        title: "Models and prices",
        nav: Nav::Models,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(problem.map_or(StatusCode::OK, Problem::status), body))
}

pub async fn list(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, UiError> {
    page(&state, &session, &ModelForm::default(), None).await
}

pub async fn create(
    state: web::Data<AppState>,
    session: Session,
    body: web::Form<ModelForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let done = async { create_model(&state, body.input()?).await }.await;
    match committed(&state, done).await? {
        Ok(_) => Ok(see_other("/ui/models")),
        Err(problem) => page(&state, &session, &body, Some(&problem)).await,
    }
}
