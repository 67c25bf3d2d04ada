//! `/ui/instances`: upstream instances with their live health as the
//! gateways report it (refreshed every few seconds with htmx); creating
//! one. The upstream secret is write-only: the page says whether one is set.

use super::error::UiError;
use super::forms::{checked, committed, int, opt, see_other};
use super::layout::{csrf_input, field, form_problem, Input, Nav, Page, Problem};
use super::live;
use super::session::Session;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::routes::instances::{create_instance, CreateInstance, HealthCheckInput};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use aigw_types::Provider;
use maud::{html, Markup};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct InstanceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    namespace_code: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    upstream_model: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    azure_deployment: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    weight: String,
    #[serde(default)]
    timeout_ms: String,
    #[serde(default, rename = "health_check.path")]
    health_path: String,
    enabled: Option<String>,
    retry_unknown_outcome: Option<String>,
    #[serde(default)]
    openai_organization: String,
    #[serde(default)]
    openai_project: String,
}

impl Default for InstanceForm {
    fn default() -> Self {
        InstanceForm {
            csrf: String::new(),
            id: String::new(),
            namespace_code: String::new(),
            model: String::new(),
            provider: Provider::Openai.as_str().into(),
            base_url: String::new(),
            upstream_model: String::new(),
            api_key: String::new(),
            azure_deployment: String::new(),
            api_version: String::new(),
            weight: "1".into(),
            timeout_ms: "60000".into(),
            health_path: String::new(),
            enabled: Some("true".into()),
            retry_unknown_outcome: None,
            openai_organization: String::new(),
            openai_project: String::new(),
        }
    }
}

impl InstanceForm {
    fn input(&self) -> Result<CreateInstance, ApiError> {
        Ok(CreateInstance {
            id: self.id.trim().to_string(),
            namespace_code: self.namespace_code.clone(),
            model: self.model.clone(),
            provider: opt(&self.provider),
            base_url: self.base_url.trim().to_string(),
            upstream_model: opt(&self.upstream_model),
            api_key: opt(&self.api_key),
            azure_deployment: opt(&self.azure_deployment),
            api_version: opt(&self.api_version),
            weight: int("weight", &self.weight)?,
            timeout_ms: int("timeout_ms", &self.timeout_ms)?,
            enabled: Some(checked(&self.enabled)),
            health_check: opt(&self.health_path).map(|path| HealthCheckInput {
                path,
                interval_s: None,
            }),
            retry_unknown_outcome: Some(checked(&self.retry_unknown_outcome)),
            openai_organization: opt(&self.openai_organization),
            openai_project: opt(&self.openai_project),
        })
    }
}

const FIELDS: &[&str] = &[
    "id",
    "namespace_code",
    "model",
    "provider",
    "base_url",
    "upstream_model",
    "api_key",
    "azure_deployment",
    "api_version",
    "weight",
    "timeout_ms",
    "health_check.path",
    "enabled",
    "retry_unknown_outcome",
    "openai_organization",
    "openai_project",
];

/// The instance table; htmx swaps it for a fresh one every 5 s.
async fn table(state: &AppState) -> Result<Markup, UiError> {
    let rows = state
        .store
        .list_instances(None, None, None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?;
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|i| (i.id.as_str(), i.namespace_code.as_str()))
        .collect();
    let health = live::instance_health(state, &pairs).await;
    Ok(html! {
        div.table-wrap #instances hx-get="/ui/instances/table" hx-trigger="every 5s" hx-swap="outerHTML" {
            table {
                caption.hint { (rows.len()) " instances; health as the gateways last reported it" }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Namespace" } th scope="col" { "Model" }
                    th scope="col" { "Provider" } th scope="col" { "Upstream" } th.num scope="col" { "Weight" } th scope="col" { "Upstream key" }
                    th scope="col" { "State" } th scope="col" { "Health" }
                } }
                tbody {
                    @for (i, h) in rows.iter().zip(&health) {
                        tr {
                            td.mono { (i.id) }
                            td { a href=(format!("/ui/namespaces/{}", i.namespace_code)) { (i.namespace_code) } }
                            td.mono { (i.model) }
                            td.mono { (i.provider.as_str()) }
                            td.mono { (i.base_url) br; small.hint { (i.upstream_model) } }
                            td.num { (i.weight) }
                            td { @if i.api_key.is_some() { "set" } @else { "none" } }
                            td { @if i.enabled { span.badge.good { "enabled" } } @else { span.badge.bad { "disabled" } } }
                            td {
                                @match h {
                                    Some(true) => span.badge.good { "healthy" },
                                    Some(false) => span.badge.bad { "unhealthy" },
                                    None => span.badge { "no report" },
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

pub async fn live_table(
    state: web::Data<AppState>,
    _session: Session,
) -> Result<HttpResponse, UiError> {
    let t = table(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .body(t.into_string()))
}

async fn page(
    state: &AppState,
    session: &Session,
    f: &InstanceForm,
    problem: Option<&Problem>,
) -> Result<HttpResponse, UiError> {
    let namespaces: Vec<(String, String)> = state
        .store
        .list_namespaces(None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|n| (n.code.clone(), format!("{} ({})", n.code, n.name)))
        .collect();
    let models: Vec<(String, String)> = state
        .store
        .list_models(None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|m| (m.name.clone(), m.name))
        .collect();
    let providers: Vec<(String, String)> = Provider::ALL
        .iter()
        .map(|p| (p.as_str().to_string(), p.as_str().to_string()))
        .collect();
    let text = |value| Input::Text {
        kind: "text",
        value,
    };
    let number = |value| Input::Text {
        kind: "number",
        value,
    };
    let body = html! {
        (table(state).await?)
        h2 { "New instance" }
        form.card method="post" action="/ui/instances" {
            (csrf_input(session.csrf()))
            (form_problem(problem, FIELDS))
            div.grid {
                (field("Id", "id", text(&f.id), Some("lowercase letters, digits, '-' and '_'"), problem))
                (field("Namespace", "namespace_code", Input::Select { options: &namespaces, selected: &f.namespace_code }, None, problem))
                (field("Model", "model", Input::Select { options: &models, selected: &f.model }, None, problem))
                (field("Provider", "provider", Input::Select { options: &providers, selected: &f.provider }, Some("the upstream's API; see docs/providers.md"), problem))
                (field("Base URL", "base_url", Input::Text { kind: "url", value: &f.base_url }, Some("e.g. https://api.openai.com/v1; Azure: https://NAME.openai.azure.com"), problem))
                (field("Upstream model", "upstream_model", text(&f.upstream_model), Some("empty = the model's name"), problem))
                (field("Upstream API key", "api_key", Input::Text { kind: "password", value: "" }, Some("write-only: never shown again"), problem))
                (field("API version", "api_version", text(&f.api_version), Some("Azure's api-version (empty = v1 API) or Anthropic's anthropic-version"), problem))
                (field("Azure deployment", "azure_deployment", text(&f.azure_deployment), Some("Azure with an API version only; empty = the upstream model"), problem))
                (field("Weight", "weight", number(&f.weight), Some("0 takes it out of rotation"), problem))
                (field("Timeout (ms)", "timeout_ms", number(&f.timeout_ms), None, problem))
                (field("Health check path", "health_check.path", text(&f.health_path), Some("e.g. /models; empty = passive checks only"), problem))
                (field("Enabled", "enabled", Input::Check { checked: checked(&f.enabled) }, None, problem))
                (field("Resend on unknown outcome", "retry_unknown_outcome", Input::Check { checked: checked(&f.retry_unknown_outcome) }, Some("fail over a request that may have been processed (off for paid upstreams)"), problem))
                (field("OpenAI-Organization", "openai_organization", text(&f.openai_organization), Some("sent with this instance's key; empty = none"), problem))
                (field("OpenAI-Project", "openai_project", text(&f.openai_project), Some("sent with this instance's key; empty = none"), problem))
            }
            div.actions { button type="submit" { "Create instance" } }
        }
    };
    let page = Page {
        title: "Instances",
        nav: Nav::Instances,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(problem.map_or(StatusCode::OK, Problem::status), body))
}

pub async fn list(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, UiError> {
    page(&state, &session, &InstanceForm::default(), None).await
}

pub async fn create(
    state: web::Data<AppState>,
    session: Session,
    body: web::Form<InstanceForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let done = async { create_instance(&state, body.input()?).await }.await;
    match committed(&state, done).await? {
        Ok(_) => Ok(see_other("/ui/instances")),
        Err(problem) => page(&state, &session, &body, Some(&problem)).await,
    }
}
