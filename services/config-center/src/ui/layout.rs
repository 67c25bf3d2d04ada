//! The console's page shell and form pieces: every page is rendered through
//! [`page`], so every page carries the same header, navigation, assets and
//! headers; every interpolated value goes through maud, which escapes it.

use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

/// The vendored scripts and styles, by the names `assets.rs` serves.
pub const HTMX: &str = "/ui/assets/htmx-2.0.11.min.js";
pub const UPLOT_JS: &str = "/ui/assets/uPlot-1.6.32.iife.min.js";
pub const UPLOT_CSS: &str = "/ui/assets/uPlot-1.6.32.min.css";
pub const CONSOLE_JS: &str = "/ui/assets/console.js";
pub const CONSOLE_CSS: &str = "/ui/assets/console.css";

/// htmx settings: no style element of its own (the CSP forbids inline
/// styles), no eval, no scripts from swapped content.
const HTMX_CONFIG: &str =
    r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;

/// Which navigation entry is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    None,
    Overview,
    Namespaces,
    Models,
    Instances,
    Usage,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/ui", "Overview"),
    (Nav::Namespaces, "/ui/namespaces", "Namespaces"),
    (Nav::Models, "/ui/models", "Models"),
    (Nav::Instances, "/ui/instances", "Instances"),
    (Nav::Usage, "/ui/usage", "Usage"),
];

/// A whole page. `csrf` is the session's token when signed in (the
/// navigation then offers sign-out); `chart` loads the chart library.
pub struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub csrf: Option<&'a str>,
    pub chart: bool,
}

impl Page<'_> {
    pub fn render(&self, status: StatusCode, body: Markup) -> HttpResponse {
        let doc = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="htmx-config" content=(HTMX_CONFIG);
                    title { (self.title) " · AI gateway console" }
                    link rel="stylesheet" href=(CONSOLE_CSS);
                    @if self.chart { link rel="stylesheet" href=(UPLOT_CSS); }
                    script src=(HTMX) defer {}
                    @if self.chart { script src=(UPLOT_JS) defer {} }
                    script src=(CONSOLE_JS) defer {}
                }
                body {
                    header.top {
                        a.brand href="/ui" { "AI gateway" }
                        @if let Some(csrf) = self.csrf {
                            nav aria-label="Main" {
                                ul {
                                    @for (n, href, label) in NAV {
                                        li {
                                            a href=(href) aria-current=[(*n == self.nav).then_some("page")] { (label) }
                                        }
                                    }
                                }
                            }
                            form.signout method="post" action="/ui/sign-out" {
                                (csrf_input(csrf))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                    main id="main" {
                        h1 { (self.title) }
                        (body)
                    }
                }
            }
        };
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
            .body(doc.into_string())
    }
}

/// The hidden CSRF field every POST form carries.
pub fn csrf_input(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// What a form shows after the API refused its input: the message, next to
/// the field it names when the form has that field.
#[derive(Debug, Clone)]
pub struct Problem {
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    /// A client mistake becomes a problem shown on the form; anything else
    /// (a database failure) stays an error.
    pub fn from_api(e: ApiError) -> Result<Problem, ApiError> {
        if e.status_code().is_client_error() {
            Ok(Problem {
                field: e.field().map(str::to_string),
                message: e.to_string(),
            })
        } else {
            Err(e)
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }

    fn is_for(&self, name: &str) -> bool {
        self.field.as_deref() == Some(name)
    }
}

/// The problem's message when none of `fields` shows it.
pub fn form_problem(problem: Option<&Problem>, fields: &[&str]) -> Markup {
    html! {
        @if let Some(p) = problem.filter(|p| !fields.iter().any(|f| p.is_for(f))) {
            p.error role="alert" { (p.message) }
        }
    }
}

fn field_id(name: &str) -> String {
    format!("f-{}", name.replace(['.', '_'], "-"))
}

/// How a form field is drawn.
pub enum Input<'a> {
    /// `<input type=…>` with its current value.
    Text { kind: &'a str, value: &'a str },
    /// `<select>`: options (value, label) and the selected value.
    Select {
        options: &'a [(String, String)],
        selected: &'a str,
    },
    /// A checkbox.
    Check { checked: bool },
}

/// A labelled field; the problem's message sits under it when it names it.
pub fn field(
    label: &str,
    name: &str,
    input: Input<'_>,
    hint: Option<&str>,
    problem: Option<&Problem>,
) -> Markup {
    let id = field_id(name);
    let err_id = format!("{id}-error");
    let err = problem.filter(|p| p.is_for(name));
    let invalid = err.map(|_| "true");
    let described = err.map(|_| err_id.as_str());
    html! {
        div.field.check[matches!(input, Input::Check { .. })] {
            @match input {
                Input::Check { checked } => {
                    input id=(id) type="checkbox" name=(name) value="true" checked[checked]
                        aria-invalid=[invalid] aria-describedby=[described];
                    label for=(id) { (label) }
                }
                Input::Text { kind, value } => {
                    label for=(id) { (label) }
                    input id=(id) type=(kind) name=(name) value=(value)
                        aria-invalid=[invalid] aria-describedby=[described];
                }
                Input::Select { options, selected } => {
                    label for=(id) { (label) }
                    select id=(id) name=(name) aria-invalid=[invalid] aria-describedby=[described] {
                        @for (v, l) in options {
                            option value=(v) selected[v == selected] { (l) }
                        }
                    }
                }
            }
            @if let Some(h) = hint { small.hint { (h) } }
            @if let Some(e) = err { p.error id=(err_id) role="alert" { (e.message) } }
        }
    }
}

/// Money for people: USD with up to 6 decimals, trailing zeros cut.
pub fn usd(nano: i64) -> String {
    let d = rust_decimal::Decimal::new(nano, 9).round_dp(6).normalize();
    format!("${d}")
}
