//! Settings from the environment, read one way by every service: values are
//! trimmed and an empty value counts as unset; durations share one grammar
//! ([`parse_duration`]); a bad value is one [`EnvError`] naming the variable.
//!
//! The reader remembers every variable it was asked for, with its default as
//! a person would write it ([`Env::settings`]), so each service's documented
//! settings table can be checked against what its code really reads.

use crate::secret::Secret;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// A setting that cannot be used: the variable and what is wrong with it.
/// Secret values are never quoted in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct EnvError {
    pub var: &'static str,
    pub message: String,
}

impl EnvError {
    pub fn new(var: &'static str, message: impl Into<String>) -> EnvError {
        EnvError {
            var,
            message: message.into(),
        }
    }
}

/// One variable a service reads, with its default as documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub var: &'static str,
    /// `unset` for optional values without a default, `required` for
    /// values without which the service does not start.
    pub default: String,
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where settings come from: the process environment, or a map in tests.
pub struct Env {
    lookup: Lookup,
    read: Mutex<Vec<Setting>>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values are not shown: some are secrets.
        f.debug_struct("Env").finish_non_exhaustive()
    }
}

/// Whole numbers a setting can hold, with their range for error messages.
pub trait Number: FromStr + Display + Copy + PartialOrd {
    const RANGE: &'static str;
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            const RANGE: &'static str = concat!("0 to ", stringify!($t), "::MAX");
        }
    )*};
}
number!(u32, u64, usize);

impl Number for u16 {
    const RANGE: &'static str = "0 to 65535";
}

impl Env {
    /// The process environment. The one place a service reads it.
    #[allow(clippy::disallowed_methods)] // the one allowed reader of the environment
    pub fn process() -> Env {
        Env::from_lookup(|k| std::env::var(k).ok())
    }

    /// Variables from `get` (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Env {
        Env {
            lookup: Box::new(get),
            read: Mutex::new(Vec::new()),
        }
    }

    /// Variables from a list of pairs (tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        let map: std::collections::HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Env::from_lookup(move |k| map.get(k).cloned())
    }

    /// Every variable read so far, in the order first read.
    pub fn settings(&self) -> Vec<Setting> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn note(&self, var: &'static str, default: impl Into<String>) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if !read.iter().any(|s| s.var == var) {
            read.push(Setting {
                var,
                default: default.into(),
            });
        }
    }

    /// The trimmed value, `None` when unset or empty. Not recorded.
    fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// A text value with a default.
    pub fn string(&self, var: &'static str, default: &str) -> String {
        self.note(var, default);
        self.raw(var).unwrap_or_else(|| default.to_string())
    }

    /// A text value whose default is computed (`shown` documents it, e.g.
    /// `{hostname}-{pid}`).
    pub fn string_or_else(
        &self,
        var: &'static str,
        shown: &str,
        default: impl FnOnce() -> String,
    ) -> String {
        self.note(var, shown);
        self.raw(var).unwrap_or_else(default)
    }

    /// A text value without a default.
    pub fn optional(&self, var: &'static str) -> Option<String> {
        self.note(var, "unset");
        self.raw(var)
    }

    /// A whole number.
    pub fn number<T: Number>(&self, var: &'static str, default: T) -> Result<T, EnvError> {
        self.note(var, default.to_string());
        self.parse_number(var).map(|v| v.unwrap_or(default))
    }

    /// A whole number of at least `min`.
    pub fn number_at_least<T: Number>(
        &self,
        var: &'static str,
        default: T,
        min: T,
    ) -> Result<T, EnvError> {
        let v = self.number(var, default)?;
        if v < min {
            return Err(EnvError::new(var, format!("must be at least {min}")));
        }
        Ok(v)
    }

    /// A whole number of at least `min` whose default is computed (`shown`
    /// documents it, e.g. `CPUs`).
    pub fn number_or_else<T: Number>(
        &self,
        var: &'static str,
        shown: &str,
        default: impl FnOnce() -> T,
        min: T,
    ) -> Result<T, EnvError> {
        self.note(var, shown);
        let v = self.parse_number(var)?.unwrap_or_else(default);
        if v < min {
            return Err(EnvError::new(var, format!("must be at least {min}")));
        }
        Ok(v)
    }

    fn parse_number<T: Number>(&self, var: &'static str) -> Result<Option<T>, EnvError> {
        self.raw(var)
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    EnvError::new(
                        var,
                        format!("`{v}` is not a whole number from {}", T::RANGE),
                    )
                })
            })
            .transpose()
    }

    /// A duration in the shared grammar ([`parse_duration`]); zero allowed.
    pub fn duration(&self, var: &'static str, default: Duration) -> Result<Duration, EnvError> {
        self.note(var, format_duration(default));
        match self.raw(var) {
            None => Ok(default),
            Some(v) => parse_duration(&v).map_err(|m| EnvError::new(var, m)),
        }
    }

    /// A duration greater than zero.
    pub fn positive_duration(
        &self,
        var: &'static str,
        default: Duration,
    ) -> Result<Duration, EnvError> {
        let d = self.duration(var, default)?;
        if d.is_zero() {
            return Err(EnvError::new(var, "must be greater than zero"));
        }
        Ok(d)
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, EnvError> {
        self.note(var, default.to_string());
        match self.raw(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) => match v.as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(EnvError::new(
                    var,
                    format!("`{v}` is not true or false (also 1/0, yes/no, on/off)"),
                )),
            },
        }
    }

    /// One of a fixed set of words (case-insensitive), returned lower case.
    pub fn choice(
        &self,
        var: &'static str,
        default: &'static str,
        allowed: &[&str],
    ) -> Result<String, EnvError> {
        self.note(var, default);
        let v = self
            .raw(var)
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_else(|| default.to_string());
        if allowed.contains(&v.as_str()) {
            Ok(v)
        } else {
            Err(EnvError::new(
                var,
                format!("`{v}` is not one of {}", allowed.join(", ")),
            ))
        }
    }

    /// A secret token, or `None` when unset. Its value never appears in an
    /// error.
    pub fn secret(&self, var: &'static str) -> Option<Secret> {
        self.note(var, "unset");
        self.raw(var).map(Secret::new)
    }

    /// A secret token the service cannot start without.
    pub fn required_secret(&self, var: &'static str) -> Result<Secret, EnvError> {
        self.note(var, "required");
        self.raw(var)
            .map(Secret::new)
            .ok_or_else(|| EnvError::new(var, "missing; it is required"))
    }

    /// A URL that may carry credentials, with one of `schemes`. Shown
    /// redacted ([`Secret::url`]); its value never appears in an error.
    pub fn url(
        &self,
        var: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<Secret, EnvError> {
        self.note(var, default);
        let v = self.raw(var).unwrap_or_else(|| default.to_string());
        // A node list (`redis+cluster://h1:p1,h2:p2`) is no single URL: its
        // scheme is checked here, the rest by the service that reads it.
        let node_list = v.split_once("://").is_some_and(|(scheme, _)| {
            scheme.contains('+') && scheme != "redis+unix" && schemes.contains(&scheme)
        });
        let ok = node_list || url::Url::parse(&v).is_ok_and(|u| schemes.contains(&u.scheme()));
        if !ok {
            let list: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
            return Err(EnvError::new(
                var,
                format!("not a URL starting with {}", list.join(", ")),
            ));
        }
        Ok(Secret::url(v))
    }
}

/// The one duration grammar of every setting: a whole number of seconds
/// (`30`), or numbers with units (`250ms`, `30s`, `1m`, `2h`, `7d`, also
/// combined: `1m 30s`).
#[allow(clippy::disallowed_methods)] // the one duration grammar
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|_| {
        format!(
            "`{v}` is not a duration (seconds, or with units: `250ms`, `30s`, `1m`, `2h`, `7d`)"
        )
    })
}

/// A duration as [`parse_duration`] reads it back, in the largest unit that
/// divides it: `30s`, `10m`, `7d`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn one_duration_grammar() {
        for (text, want) in [
            ("30", Duration::from_secs(30)),
            ("30s", Duration::from_secs(30)),
            ("1m", Duration::from_secs(60)),
            ("250ms", Duration::from_millis(250)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("1m 30s", Duration::from_secs(90)),
            (" 2h ", Duration::from_secs(7200)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
            assert_eq!(parse_duration(&format_duration(want)), Ok(want), "{text}");
        }
        for bad in ["soon", "-1", "1.5.2s", "10 parsecs"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains(bad.trim()), "{e}");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn errors_name_the_variable() {
        let e = env(&[("PORT", "eighty")])
            .number::<u16>("PORT", 1)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "PORT: `eighty` is not a whole number from 0 to 65535"
        );
        let e = env(&[("PORT", "70000")])
            .number::<u16>("PORT", 1)
            .unwrap_err();
        assert_eq!(e.var, "PORT");
        let e = env(&[("T", "soon")])
            .duration("T", Duration::ZERO)
            .unwrap_err();
        assert!(
            e.to_string().starts_with("T: `soon` is not a duration"),
            "{e}"
        );
        let e = env(&[("T", "0s")])
            .positive_duration("T", Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(e.to_string(), "T: must be greater than zero");
        let e = env(&[("N", "0")])
            .number_at_least("N", 5usize, 1)
            .unwrap_err();
        assert_eq!(e.to_string(), "N: must be at least 1");
        let e = env(&[("F", "maybe")]).flag("F", true).unwrap_err();
        assert_eq!(e.var, "F");
        let e = env(&[("L", "xml")])
            .choice("L", "text", &["text", "json"])
            .unwrap_err();
        assert_eq!(e.to_string(), "L: `xml` is not one of text, json");
    }

    #[test]
    fn empty_means_unset_and_values_are_trimmed() {
        let e = env(&[("A", "  "), ("B", " x "), ("F", " YES ")]);
        assert_eq!(e.string("A", "d"), "d");
        assert_eq!(e.string("B", "d"), "x");
        assert!(e.flag("F", false).unwrap());
        assert_eq!(e.optional("A"), None);
    }

    #[test]
    fn secrets_and_urls_never_reach_errors() {
        let e = env(&[("U", "http://user:hunter2@x")])
            .url("U", "redis://127.0.0.1:6379", &["redis", "rediss"])
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(
            e.to_string(),
            "U: not a URL starting with redis://, rediss://"
        );
        let u = env(&[("U", "redis://:hunter2@cache:6380/1")])
            .url("U", "redis://127.0.0.1:6379", &["redis"])
            .unwrap();
        assert_eq!(u.expose(), "redis://:hunter2@cache:6380/1");
        assert!(!format!("{u} {u:?}").contains("hunter2"));
        assert!(env(&[]).required_secret("TOKEN").is_err());
    }

    #[test]
    fn every_read_is_listed_once_with_its_default() {
        let e = env(&[("PORT", "9000")]);
        e.number("PORT", 8000u16).unwrap();
        e.duration("WAIT", Duration::from_secs(30)).unwrap();
        e.number("PORT", 8000u16).unwrap();
        e.optional("NAME");
        e.number_or_else("WORKERS", "CPUs", || 2usize, 1).unwrap();
        let got: Vec<(String, String)> = e
            .settings()
            .into_iter()
            .map(|s| (s.var.to_string(), s.default))
            .collect();
        let want = [
            ("PORT", "8000"),
            ("WAIT", "30s"),
            ("NAME", "unset"),
            ("WORKERS", "CPUs"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
