//! Secrets in settings: tokens and URLs that may carry credentials. A
//! [`Secret`] prints redacted in `Debug`, `Display` and therefore in every
//! log line and error; only [`Secret::expose`] gives the value, at the one
//! place that needs it (a header, a connection).

use std::fmt;

/// What a redacted part is replaced with.
const REDACTED: &str = "***";

/// A secret value. Tokens print as `***`; URLs keep what helps an operator
/// (scheme, user, host, port, path) and redact the password and query.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    shown: String,
}

impl Secret {
    /// A token: nothing of it is ever shown.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret {
            value: value.into(),
            shown: REDACTED.to_string(),
        }
    }

    /// A URL such as `redis://:password@cache:6379/0`, shown as
    /// `redis://:***@cache:6379/0`. A value that does not parse as a URL is
    /// shown as `***`.
    pub fn url(value: impl Into<String>) -> Secret {
        let value = value.into();
        let shown = redact_url(&value).unwrap_or_else(|| REDACTED.to_string());
        Secret { value, shown }
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// What logs and errors show.
    pub fn redacted(&self) -> &str {
        &self.shown
    }
}

fn redact_url(v: &str) -> Option<String> {
    if let Some(shown) = redact_node_list(v) {
        return Some(shown);
    }
    let mut u = url::Url::parse(v).ok()?;
    if u.password().is_some() {
        u.set_password(Some(REDACTED)).ok()?;
    }
    if u.query().is_some() {
        // Query parameters may carry a password too.
        u.set_query(Some(REDACTED));
    }
    u.set_fragment(None);
    Some(u.to_string())
}

/// A URL naming several nodes (`redis+cluster://:pw@h1:1,h2:2`,
/// `redis+sentinel://…/master`), which `url` does not parse: everything
/// before the last `@` of the authority is the user and password. `None`
/// for other URLs.
fn redact_node_list(v: &str) -> Option<String> {
    let (scheme, rest) = v.split_once("://")?;
    if !scheme.contains('+') || scheme.contains(['/', '@', ':']) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains(['?', '#']) || authority.contains(char::is_whitespace) {
        return None;
    }
    let hosts = match authority.rfind('@') {
        None => return Some(v.to_string()),
        Some(i) => &authority[i + 1..],
    };
    let user = authority[..authority.rfind('@')?]
        .split_once(':')
        .map_or("", |(u, _)| u);
    Some(format!("{scheme}://{user}:{REDACTED}@{hosts}{tail}"))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?})", self.shown)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(\"***\")");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn urls_keep_host_and_port_but_not_the_password() {
        for (url, shown) in [
            (
                "redis://:hunter2@cache.internal:6380/1",
                "redis://:***@cache.internal:6380/1",
            ),
            (
                "rediss://app:hunter2@cache:6379",
                "rediss://app:***@cache:6379",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://cache:6379/0?password=hunter2",
                "redis://cache:6379/0?***",
            ),
            ("unix:///run/redis.sock", "unix:///run/redis.sock"),
            ("not a url hunter2", "***"),
            (
                "redis+cluster://:hunter2@n1:7000,n2:7001",
                "redis+cluster://:***@n1:7000,n2:7001",
            ),
            (
                "redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster",
                "redis+sentinel://:***@s1:26379,s2:26379/mymaster",
            ),
            (
                "redis+cluster://n1:7000,n2:7001",
                "redis+cluster://n1:7000,n2:7001",
            ),
            (
                "redis+cluster://:hunter2@n1:7000?x=hunter2",
                "redis+cluster://:***@n1:7000?***",
            ),
        ] {
            let s = Secret::url(url);
            assert_eq!(s.to_string(), shown, "{url}");
            assert!(!format!("{s:?}").contains("hunter2"), "{url}");
            assert_eq!(s.expose(), url);
        }
    }
}
