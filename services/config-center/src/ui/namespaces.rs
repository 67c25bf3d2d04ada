//! `/ui/namespaces`: the list with limits and each budget against this
//! month's spend, creating, editing, enabling and disabling.

use super::error::UiError;
use super::forms::{checked, committed, int, namespace, opt, published, see_other};
use super::layout::{csrf_input, field, form_problem, usd, Input, Nav, Page, Problem};
use super::live;
use super::session::Session;
use crate::domain::Namespace;
use crate::error::ApiError;
use crate::routes::common::MAX_PAGE;
use crate::routes::namespaces::{
    create_namespace, patch_namespace, CreateNamespace, LimitsInput, LimitsPatch, PatchNamespace,
};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

/// The create and edit form, by the admin API's field names.
#[derive(Debug, Default, Deserialize)]
pub struct NamespaceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "limits.max_concurrency")]
    max_concurrency: String,
    #[serde(default, rename = "limits.rpm")]
    rpm: String,
    #[serde(default, rename = "limits.tpm")]
    tpm: String,
    #[serde(default)]
    monthly_budget_usd: String,
    enabled: Option<String>,
}

impl NamespaceForm {
    fn of(n: &Namespace) -> NamespaceForm {
        let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        NamespaceForm {
            csrf: String::new(),
            code: n.code.clone(),
            name: n.name.clone(),
            description: n.description.clone(),
            max_concurrency: num(n.limits.max_concurrency.map(u64::from)),
            rpm: num(n.limits.rpm.map(u64::from)),
            tpm: num(n.limits.tpm),
            monthly_budget_usd: n
                .monthly_budget_usd
                .map(|d| d.to_string())
                .unwrap_or_default(),
            enabled: n.enabled.then(|| "true".into()),
        }
    }

    fn create_input(&self) -> Result<CreateNamespace, ApiError> {
        Ok(CreateNamespace {
            code: self.code.trim().to_string(),
            name: opt(&self.name),
            description: Some(self.description.clone()),
            enabled: Some(checked(&self.enabled)),
            limits: Some(LimitsInput {
                max_concurrency: int("limits.max_concurrency", &self.max_concurrency)?,
                rpm: int("limits.rpm", &self.rpm)?,
                tpm: int("limits.tpm", &self.tpm)?,
            }),
            monthly_budget_usd: opt(&self.monthly_budget_usd),
        })
    }

    /// Every field replaces what is stored; an empty one clears it.
    fn patch_input(&self) -> Result<PatchNamespace, ApiError> {
        Ok(PatchNamespace {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            enabled: Some(checked(&self.enabled)),
            limits: Some(Some(LimitsPatch {
                max_concurrency: Some(int("limits.max_concurrency", &self.max_concurrency)?),
                rpm: Some(int("limits.rpm", &self.rpm)?),
                tpm: Some(int("limits.tpm", &self.tpm)?),
            })),
            monthly_budget_usd: Some(opt(&self.monthly_budget_usd)),
        })
    }
}

const FIELDS: &[&str] = &[
    "code",
    "name",
    "description",
    "limits.max_concurrency",
    "limits.rpm",
    "limits.tpm",
    "monthly_budget_usd",
    "enabled",
];

fn form(
    action: &str,
    f: &NamespaceForm,
    csrf: &str,
    editing: bool,
    problem: Option<&Problem>,
) -> Markup {
    let text = |value| Input::Text {
        kind: "text",
        value,
    };
    let number = |value| Input::Text {
        kind: "number",
        value,
    };
    html! {
        form.card method="post" action=(action) {
            (csrf_input(csrf))
            (form_problem(problem, FIELDS))
            div.grid {
                @if !editing {
                    (field("Code", "code", text(&f.code), Some("lowercase letters, digits, '-' and '_'; cannot change later"), problem))
                }
                (field("Name", "name", text(&f.name), Some("defaults to the code"), problem))
                (field("Description", "description", text(&f.description), None, problem))
                (field("Max concurrent requests", "limits.max_concurrency", number(&f.max_concurrency), Some("empty = unlimited"), problem))
                (field("Requests per minute", "limits.rpm", number(&f.rpm), Some("empty = unlimited"), problem))
                (field("Tokens per minute", "limits.tpm", number(&f.tpm), Some("empty = unlimited"), problem))
                (field("Monthly budget (USD)", "monthly_budget_usd", text(&f.monthly_budget_usd), Some("e.g. 50.00; empty = unlimited"), problem))
                (field("Enabled", "enabled", Input::Check { checked: checked(&f.enabled) }, None, problem))
            }
            div.actions {
                button type="submit" { @if editing { "Save" } @else { "Create namespace" } }
            }
        }
    }
}

/// This month's spend against the budget, as a meter and in words.
fn budget_cell(n: &Namespace, spent_nano: Option<i64>) -> Markup {
    let spent = spent_nano.map(usd).unwrap_or_else(|| "unknown".into());
    html! {
        @match n.monthly_budget_usd {
            None => { "unlimited" br; small.hint { (spent) " this month" } }
            Some(b) => {
                @let max = b.to_f64().unwrap_or(0.0);
                @let value = spent_nano.unwrap_or(0) as f64 / 1e9;
                meter min="0" max=(max) high=(max * 0.8) optimum="0" value=(value.min(max))
                    aria-label=(format!("{} spent of ${} budget", spent, b)) {}
                br;
                small { (spent) " of $" (b) }
            }
        }
    }
}

async fn list_page(
    state: &AppState,
    session: &Session,
    f: &NamespaceForm,
    problem: Option<&Problem>,
) -> Result<HttpResponse, UiError> {
    let rows = state
        .store
        .list_namespaces(None, MAX_PAGE as u32)
        .await
        .map_err(ApiError::from)?;
    let codes: Vec<&str> = rows.iter().map(|n| n.code.as_str()).collect();
    let stats = live::namespace_stats(state, &codes).await;
    let body = html! {
        div.table-wrap {
            table {
                caption.hint { (rows.len()) " namespaces" }
                thead { tr {
                    th scope="col" { "Code" } th scope="col" { "Name" } th scope="col" { "State" }
                    th scope="col" { "Limits" } th scope="col" { "Budget this month" } th scope="col" { "Keys" }
                } }
                tbody {
                    @for (i, n) in rows.iter().enumerate() {
                        @let spent = stats.as_ref().map(|s| s[i].month_cost_nano);
                        tr {
                            td { a href=(format!("/ui/namespaces/{}", n.code)) { code { (n.code) } } }
                            td { (n.name) }
                            td { @if n.enabled { span.badge.good { "enabled" } } @else { span.badge.bad { "disabled" } } }
                            td.mono { (limits_text(n)) }
                            td { (budget_cell(n, spent)) }
                            td { a href=(format!("/ui/namespaces/{}/keys", n.code)) { "API keys" span.hint { " of " (n.code) } } }
                        }
                    }
                }
            }
        }
        h2 { "New namespace" }
        (form("/ui/namespaces", f, session.csrf(), false, problem))
    };
    let page = Page {
        title: "Namespaces",
        nav: Nav::Namespaces,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(problem.map_or(StatusCode::OK, Problem::status), body))
}

fn limits_text(n: &Namespace) -> String {
    let l = &n.limits;
    let part = |label: &str, v: Option<u64>| v.map(|v| format!("{label} {v}"));
    let parts: Vec<String> = [
        part("concurrency", l.max_concurrency.map(u64::from)),
        part("rpm", l.rpm.map(u64::from)),
        part("tpm", l.tpm),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

pub async fn list(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, UiError> {
    let f = NamespaceForm {
        enabled: Some("true".into()),
        ..NamespaceForm::default()
    };
    list_page(&state, &session, &f, None).await
}

pub async fn create(
    state: web::Data<AppState>,
    session: Session,
    body: web::Form<NamespaceForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let done = async { create_namespace(&state, body.create_input()?).await }.await;
    match committed(&state, done).await? {
        Ok(ns) => Ok(see_other(&format!("/ui/namespaces/{}", ns.code))),
        Err(problem) => list_page(&state, &session, &body, Some(&problem)).await,
    }
}

async fn edit_page(
    state: &AppState,
    session: &Session,
    code: &str,
    f: Option<&NamespaceForm>,
    problem: Option<&Problem>,
) -> Result<HttpResponse, UiError> {
    let n = namespace(state, code).await?;
    let stats = live::namespace_stats(state, &[code]).await;
    let spent = stats.as_ref().map(|s| s[0].month_cost_nano);
    let stored = NamespaceForm::of(&n);
    let f = f.unwrap_or(&stored);
    let action = format!("/ui/namespaces/{}", n.code);
    let title = format!("Namespace {}", n.code);
    let body = html! {
        p {
            @if n.enabled { span.badge.good { "enabled" } } @else { span.badge.bad { "disabled" } }
            " · " a href=(format!("/ui/namespaces/{}/keys", n.code)) { "API keys" }
            " · " a href=(format!("/ui/usage?namespace={}", n.code)) { "Usage" }
        }
        section.card aria-label="Budget" {
            h2 { "Budget this month" }
            (budget_cell(&n, spent))
        }
        h2 { "Settings" }
        (form(&action, f, session.csrf(), true, problem))
        form.card method="post" action=(format!("/ui/namespaces/{}/enabled", n.code)) {
            (csrf_input(session.csrf()))
            input type="hidden" name="enabled" value=(if n.enabled { "false" } else { "true" });
            @if n.enabled {
                p { "Disabling refuses every request of this namespace at the gateway." }
                button.danger type="submit" { "Disable " (n.code) }
            } @else {
                button type="submit" { "Enable " (n.code) }
            }
        }
    };
    let page = Page {
        title: &title,
        nav: Nav::Namespaces,
        csrf: Some(session.csrf()),
        chart: false,
    };
    Ok(page.render(problem.map_or(StatusCode::OK, Problem::status), body))
}

pub async fn edit(
    state: web::Data<AppState>,
    session: Session,
    code: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    edit_page(&state, &session, &code, None, None).await
}

pub async fn update(
    state: web::Data<AppState>,
    session: Session,
    code: web::Path<String>,
    body: web::Form<NamespaceForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let done = async { patch_namespace(&state, &code, body.patch_input()?).await }.await;
    match committed(&state, done).await? {
        Ok(ns) => Ok(see_other(&format!("/ui/namespaces/{}", ns.code))),
        Err(problem) => edit_page(&state, &session, &code, Some(&body), Some(&problem)).await,
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    enabled: String,
}

pub async fn set_enabled(
    state: web::Data<AppState>,
    session: Session,
    code: web::Path<String>,
    body: web::Form<EnabledForm>,
) -> Result<HttpResponse, UiError> {
    session.check_csrf(&body.csrf)?;
    let patch = PatchNamespace {
        name: None,
        description: None,
        enabled: Some(body.enabled == "true"),
        limits: None,
        monthly_budget_usd: None,
    };
    let (ns, v) = patch_namespace(&state, &code, patch).await?;
    published(&state, v).await;
    Ok(see_other(&format!("/ui/namespaces/{}", ns.code)))
}
