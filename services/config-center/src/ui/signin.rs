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
use std::net::{IpAddr, SocketAddr};

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

/// Failed sign-ins one address may make per [`FAILURE_WINDOW_S`] before
/// it is refused until the window ends.
const MAX_FAILURES: i64 = 10;
const FAILURE_WINDOW_S: i64 = 60;

/// A sign-in posted from another site's page. Browsers say where a request
/// comes from in `Sec-Fetch-Site` (only `same-origin`, and `none` for one
/// the user typed, are the console's own); without it, `Origin` must name
/// the request's own host. (With the console's `Referrer-Policy:
/// no-referrer`, Chromium sends `Origin: null` on its own forms, so
/// `Sec-Fetch-Site` decides where it is present.) Without CSRF tokens
/// (there is no session yet), this keeps another site from signing a
/// browser in.
fn cross_site(req: &HttpRequest) -> bool {
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = h("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match h("origin") {
        None => false,
        Some(origin) => {
            let host = origin.split_once("://").map_or("", |(_, rest)| rest);
            host != req.connection_info().host()
        }
    }
}

/// The address a sign-in is counted against: the peer's, or, when the peer
/// is a trusted proxy, the client's as the proxies recorded it in
/// `X-Forwarded-For` (each appends the address it was reached from): the
/// rightmost entry that is not itself a trusted proxy. Entries left of it
/// are the client's to write, so they are never used; an entry that is not
/// an address stops the walk at the proxy that wrote it.
fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut client = peer;
    let lines: Vec<_> = req.headers().get_all("x-forwarded-for").collect();
    'walk: for line in lines.into_iter().rev() {
        let Ok(line) = line.to_str() else {
            break;
        };
        for entry in line.rsplit(',') {
            let Some(ip) = forwarded_ip(entry.trim()) else {
                break 'walk;
            };
            client = ip;
            if !is_trusted(&ip) {
                break 'walk;
            }
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Counts a failed sign-in of `ip`; the count in the current window.
async fn count_failure(state: &AppState, ip: &str) -> Result<i64, UiError> {
    let key = aigw_metrics::keys::console_signin_failures(ip);
    let mut c = super::session::store(state).await?;
    // The window starts with the first failure; INCR keeps its expiry.
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&key)
        .arg(0)
        .arg("EX")
        .arg(FAILURE_WINDOW_S)
        .arg("NX")
        .ignore()
        .incr(&key, 1)
        .query_async(&mut c)
        .await
        .map_err(super::session::unavailable)?;
    Ok(n)
}

async fn failures(state: &AppState, ip: &str) -> Result<i64, UiError> {
    let key = aigw_metrics::keys::console_signin_failures(ip);
    let mut c = super::session::store(state).await?;
    let n: Option<i64> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut c)
        .await
        .map_err(super::session::unavailable)?;
    Ok(n.unwrap_or(0))
}

fn too_many() -> HttpResponse {
    let problem = Problem {
        field: Some("token".into()),
        message: format!(
            "Too many failed sign-ins from this address; try again in {FAILURE_WINDOW_S} seconds."
        ),
    };
    let mut res = form(Some(&problem), StatusCode::TOO_MANY_REQUESTS);
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(FAILURE_WINDOW_S as u64),
    );
    res
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Form<SignInForm>,
) -> Result<HttpResponse, UiError> {
    if cross_site(&req) {
        tracing::warn!(
            origin = ?req.headers().get("origin"),
            fetch_site = ?req.headers().get("sec-fetch-site"),
            host = %req.connection_info().host(),
            "console sign-in refused: posted from another site"
        );
        let problem = Problem {
            field: None,
            message: "Sign in from the console's own page.".into(),
        };
        return Ok(form(Some(&problem), StatusCode::FORBIDDEN));
    }
    let ip = client_ip(&req, &state.trusted_proxies)
        .map_or_else(|| "unknown".to_string(), |a| a.to_string());
    if failures(&state, &ip).await? >= MAX_FAILURES {
        return Ok(too_many());
    }
    match Session::sign_in(&state, &body.token).await? {
        Some(session) => {
            tracing::info!("console sign-in");
            let mut res = see_other("/ui");
            res.headers_mut()
                .insert(header::SET_COOKIE, cookie(session.cookie(&state, &req)));
            Ok(res)
        }
        None => {
            tracing::warn!(client = %ip, "console sign-in refused: wrong admin token");
            if count_failure(&state, &ip).await? >= MAX_FAILURES {
                return Ok(too_many());
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let peer = SocketAddr::new(peer.parse().unwrap(), 40000);
        let mut req = TestRequest::default().peer_addr(peer);
        for line in forwarded {
            req = req.append_header(("x-forwarded-for", *line));
        }
        client_ip(&req.to_http_request(), &nets(trusted))
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_holds() {
        // No trusted proxies: the header is the client's own text.
        assert_eq!(client("10.0.0.5", &["198.51.100.9"], &[]), "10.0.0.5");
        // A peer outside the trusted ranges: the same.
        assert_eq!(
            client("203.0.113.50", &["198.51.100.9"], &["10.0.0.0/8"]),
            "203.0.113.50"
        );
        // One proxy: the address it appended.
        assert_eq!(
            client("10.0.0.5", &["198.51.100.9"], &["10.0.0.0/8"]),
            "198.51.100.9"
        );
        // What the client wrote itself, left of that, is not taken.
        assert_eq!(
            client("10.0.0.5", &["1.2.3.4, 198.51.100.9"], &["10.0.0.0/8"]),
            "198.51.100.9"
        );
        // Two proxies, over two header lines, one entry with a port.
        assert_eq!(
            client(
                "10.0.0.5",
                &["1.2.3.4, [2001:db8::7]:4711", "10.1.2.3"],
                &["10.0.0.0/8"]
            ),
            "2001:db8::7"
        );
        // Only trusted entries, or none: the leftmost proxy, or the peer.
        assert_eq!(
            client("10.0.0.5", &["10.9.9.9, 10.1.1.1"], &["10.0.0.0/8"]),
            "10.9.9.9"
        );
        assert_eq!(client("10.0.0.5", &[], &["10.0.0.0/8"]), "10.0.0.5");
        // Not an address: the walk stops at the proxy that wrote it.
        assert_eq!(
            client(
                "10.0.0.5",
                &["198.51.100.9, unknown, 10.2.2.2"],
                &["10.0.0.0/8"]
            ),
            "10.2.2.2"
        );
        assert_eq!(
            client("::1", &["198.51.100.9"], &["::1/128"]),
            "198.51.100.9"
        );
        // A line that is not text stops the walk too, at the proxy right
        // of it; what stands left of it is never reached.
        let req = TestRequest::default()
            .peer_addr(SocketAddr::new("10.0.0.5".parse().unwrap(), 40000))
            .append_header(("x-forwarded-for", "198.51.100.9"))
            .append_header((
                "x-forwarded-for",
                actix_web::http::header::HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap(),
            ))
            .append_header(("x-forwarded-for", "10.3.3.3"))
            .to_http_request();
        let ip = client_ip(&req, &nets(&["10.0.0.0/8"])).unwrap();
        assert_eq!(ip.to_string(), "10.3.3.3");
    }
}
