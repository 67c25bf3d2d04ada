//! The headers of an upstream request and of the answer relayed to the
//! client: what is stripped (credentials, hop-by-hop, billing scope), what
//! the gateway sets (request id, instance credentials, `X-Forwarded-For`).

use actix_web::http::header as ah;
use actix_web::HttpRequest;

pub const REQUEST_ID: &str = "x-request-id";

/// A client-supplied request id, if it is short and plain enough to echo.
pub fn client_request_id(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.to_string())
}

/// Client headers that must not reach an upstream: credentials, hop-by-hop
/// headers, and those the gateway sets itself.
fn strip_request_header(name: &str) -> bool {
    matches!(
        name,
        "authorization"
            | "cookie"
            | "x-api-key"
            | "api-key"
            | "x-goog-api-key"
            // Set from the instance for the providers that need it.
            | "anthropic-version"
            | "proxy-authorization"
            | "proxy-authenticate"
            | "proxy-connection"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "content-type"
            | "expect"
            // The gateway reads the answer (usage), so it must be plain.
            | "accept-encoding"
            | REQUEST_ID
            // Billing scope comes from the instance, never the client.
            | "openai-organization"
            | "openai-project"
            // Rebuilt with the peer appended / dropped (see `Forward`).
            | "x-forwarded-for"
            | "forwarded"
    )
}

/// Upstream headers that must not reach the client.
fn strip_response_header(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "set-cookie"
            | "openai-organization"
            | "openai-project"
            | REQUEST_ID
    )
}

/// The headers of one upstream request: the client's, filtered, with the
/// request id, the JSON content type, the instance's credentials and
/// billing scope, and `X-Forwarded-For` with the client's address appended.
/// A client's `Forwarded` header is dropped: its chain cannot be extended
/// without parsing it, and `X-Forwarded-For` carries the same.
pub struct Forward<'a> {
    pub client: &'a ah::HeaderMap,
    pub request_id: &'a str,
    /// The instance key in its provider's header (`authorization: Bearer
    /// …`, `x-api-key`, `api-key`, `x-goog-api-key`), when it has one.
    pub auth: Option<(&'static str, &'a http::HeaderValue)>,
    /// A header the instance's provider requires (`anthropic-version`).
    pub provider: Option<(&'static str, &'a http::HeaderValue)>,
    /// The instance's `OpenAI-Organization` and `OpenAI-Project`.
    pub organization: Option<&'a http::HeaderValue>,
    pub project: Option<&'a http::HeaderValue>,
    /// The address the request came from.
    pub peer: Option<std::net::IpAddr>,
}

impl Forward<'_> {
    /// `X-Forwarded-For`: the client's list (its header lines joined) with
    /// the peer appended; `None` when there is neither.
    fn forwarded_for(&self) -> Option<String> {
        let mut out = String::with_capacity(48);
        for v in self.client.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { continue };
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(v);
        }
        if let Some(ip) = self.peer {
            if !out.is_empty() {
                out.push_str(", ");
            }
            push_ip(&mut out, ip);
        }
        (!out.is_empty()).then_some(out)
    }

    /// The instance's own headers after the client's: credentials and
    /// billing scope.
    fn instance_headers(&self) -> impl Iterator<Item = (&'static str, &http::HeaderValue)> {
        [
            self.auth,
            self.provider,
            self.organization.map(|v| ("openai-organization", v)),
            self.project.map(|v| ("openai-project", v)),
        ]
        .into_iter()
        .flatten()
    }

    /// The client headers that may travel on, as `(name, value)`.
    fn client_headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Headers named in `Connection` are hop-by-hop too.
        let listed: Vec<String> = self
            .client
            .get_all(ah::CONNECTION)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        self.client.iter().filter_map(move |(name, value)| {
            let n = name.as_str();
            (!strip_request_header(n) && !listed.iter().any(|l| l == n))
                .then(|| (n, value.as_bytes()))
        })
    }

    /// As a header map (the general client).
    pub fn header_map(&self) -> http::HeaderMap {
        use http::header::{HeaderName, HeaderValue};
        let mut out = http::HeaderMap::with_capacity(self.client.len() + 4);
        for (n, v) in self.client_headers() {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(v),
            ) {
                out.append(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(self.request_id) {
            out.insert(HeaderName::from_static(REQUEST_ID), v);
        }
        out.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = self
            .forwarded_for()
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            out.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
        for (n, v) in self.instance_headers() {
            out.insert(HeaderName::from_static(n), v.clone());
        }
        out
    }

    /// As HTTP/1.1 header lines (the direct client), with `Accept: */*`
    /// when the client sent none (what reqwest sends by default).
    pub fn header_lines(&self) -> Vec<u8> {
        use aigw_upstream_http::write_header;
        let mut out = Vec::with_capacity(256);
        let mut accept = false;
        for (n, v) in self.client_headers() {
            accept |= n == "accept";
            write_header(&mut out, n.as_bytes(), v);
        }
        if !accept {
            write_header(&mut out, b"accept", b"*/*");
        }
        if http::HeaderValue::from_str(self.request_id).is_ok() {
            write_header(&mut out, REQUEST_ID.as_bytes(), self.request_id.as_bytes());
        }
        write_header(&mut out, b"content-type", b"application/json");
        if let Some(v) = self.forwarded_for() {
            write_header(&mut out, b"x-forwarded-for", v.as_bytes());
        }
        for (n, v) in self.instance_headers() {
            write_header(&mut out, n.as_bytes(), v.as_bytes());
        }
        out
    }
}

/// `ip` in its usual text; an IPv4 address (nearly every peer) without
/// the formatting machinery, which cost more than the rest of the header.
fn push_ip(out: &mut String, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

pub fn copy_response_headers(src: &http::HeaderMap, dst: &mut actix_web::HttpResponseBuilder) {
    for (name, value) in src.iter() {
        let n = name.as_str();
        if strip_response_header(n) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            ah::HeaderName::from_bytes(n.as_bytes()),
            ah::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            dst.append_header((n, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_written_as_its_usual_text() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:192.0.2.1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn credential_and_hop_headers_are_not_forwarded() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("authorization", "Bearer sk-client"))
            .insert_header(("cookie", "a=b"))
            .insert_header(("x-api-key", "k"))
            .insert_header(("connection", "keep-alive, x-hop"))
            .insert_header(("x-hop", "1"))
            .insert_header(("x-custom", "kept"))
            .insert_header(("openai-beta", "assistants=v2"))
            .insert_header(("openai-organization", "org-client"))
            .insert_header(("openai-project", "proj-client"))
            .insert_header(("x-forwarded-for", "203.0.113.7"))
            .insert_header(("forwarded", "for=198.51.100.1"))
            .to_http_request();
        let auth = http::HeaderValue::from_static("Bearer sk-instance");
        let org = http::HeaderValue::from_static("org-instance");
        let fwd = Forward {
            client: req.headers(),
            request_id: "rid-1",
            auth: Some(("authorization", &auth)),
            provider: None,
            organization: Some(&org),
            project: None,
            peer: Some("192.0.2.9".parse().unwrap()),
        };
        // The direct client's header lines say the same as the general
        // client's header map.
        let lines = fwd.header_lines();
        let mut parsed = http::HeaderMap::new();
        for line in String::from_utf8(lines).unwrap().split_terminator("\r\n") {
            let (n, v) = line.split_once(": ").unwrap();
            parsed.append(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let mut map = fwd.header_map();
        assert!(map.get("accept").is_none());
        map.insert("accept", http::HeaderValue::from_static("*/*"));
        assert_eq!(parsed, map);
        for h in [&parsed, &map] {
            assert_eq!(h.get("x-custom").unwrap(), "kept");
            assert_eq!(h.get("openai-beta").unwrap(), "assistants=v2");
            assert_eq!(h.get("x-request-id").unwrap(), "rid-1");
            assert_eq!(h.get("authorization").unwrap(), "Bearer sk-instance");
            assert_eq!(h.get("content-type").unwrap(), "application/json");
            assert_eq!(h.get("openai-organization").unwrap(), "org-instance");
            assert_eq!(h.get("x-forwarded-for").unwrap(), "203.0.113.7, 192.0.2.9");
            assert_eq!(h.get_all("openai-organization").iter().count(), 1);
            for gone in [
                "cookie",
                "x-api-key",
                "connection",
                "x-hop",
                "openai-project",
                "forwarded",
            ] {
                assert!(h.get(gone).is_none(), "{gone} was forwarded");
            }
        }
    }
}
