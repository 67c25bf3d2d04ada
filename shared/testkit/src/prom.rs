//! Prometheus exposition text read back — the classic format (0.0.4) and
//! OpenMetrics — for every test that looks at `/metrics`. Strict: a line
//! that is neither a comment nor a well-formed sample is an error, so a
//! test reading values also checks the text is valid.

use std::collections::{BTreeMap, HashMap};

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// Whether the labels are exactly `want` (in any order).
    pub fn has_labels(&self, want: &[(&str, &str)]) -> bool {
        self.labels.len() == want.len() && self.has_labels_subset(want)
    }

    /// Whether every pair of `want` is among the labels.
    pub fn has_labels_subset(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The sample as written, `name{k="v",…}` (labels in written order).
    pub fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub text: String,
    samples: Vec<Sample>,
    /// Family name → `# TYPE`.
    types: HashMap<String, String>,
    /// Family name → `# HELP`.
    helps: HashMap<String, String>,
}

impl Scrape {
    /// Parses `text`; panics naming the first malformed line.
    #[track_caller]
    pub fn parse(text: &str) -> Scrape {
        Scrape::try_parse(text).unwrap_or_else(|e| panic!("{e}\n--- text ---\n{text}"))
    }

    pub fn try_parse(text: &str) -> Result<Scrape, String> {
        let mut s = Scrape {
            text: text.to_string(),
            ..Scrape::default()
        };
        for (n, line) in text.lines().enumerate() {
            let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('#') {
                let rest = rest.trim_start();
                if let Some(r) = rest.strip_prefix("TYPE ") {
                    let (name, ty) = r.split_once(' ').ok_or_else(|| err("bad TYPE"))?;
                    s.types.insert(name.to_string(), ty.trim().to_string());
                } else if let Some(r) = rest.strip_prefix("HELP ") {
                    let (name, help) = r.split_once(' ').unwrap_or((r, ""));
                    s.helps.insert(name.to_string(), help.to_string());
                }
                continue;
            }
            s.samples.push(parse_sample(line).map_err(|e| err(&e))?);
        }
        Ok(s)
    }

    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of `name` with exactly these labels (any order).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.named(name)
            .find(|s| s.has_labels(labels))
            .map(|s| s.value)
    }

    /// The value of a series written as `name` or `name{k="v",…}` (labels
    /// in any order).
    pub fn get(&self, series: &str) -> Option<f64> {
        let want = parse_sample(&format!("{series} 0")).ok()?;
        let pairs: Vec<(&str, &str)> = want
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.value(&want.name, &pairs)
    }

    /// The sum of `name` over every series whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.named(name)
            .filter(|s| s.has_labels_subset(labels))
            .map(|s| s.value)
            .sum()
    }

    /// `# TYPE` of a family (OpenMetrics names counters without `_total`).
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// `# HELP` of a family.
    pub fn help_of(&self, family: &str) -> Option<&str> {
        self.helps.get(family).map(String::as_str)
    }

    /// Number of samples whose name starts with `prefix`.
    pub fn count_prefixed(&self, prefix: &str) -> usize {
        self.samples
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .count()
    }

    /// Every sample as `series → value`, keyed as written.
    pub fn by_series(&self) -> BTreeMap<String, f64> {
        self.samples.iter().map(|s| (s.series(), s.value)).collect()
    }
}

/// The value of `name{labels}` in `text` (labels exactly, any order).
#[track_caller]
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    Scrape::parse(text).value(name, labels)
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut chars = line.char_indices().peekable();
    let mut end = 0;
    while let Some((i, c)) = chars.peek().copied() {
        if !is_name_char(c, i == 0) {
            break;
        }
        end = i + c.len_utf8();
        chars.next();
    }
    if end == 0 {
        return Err("no metric name".into());
    }
    let name = line[..end].to_string();
    let mut rest = &line[end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(r)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("no value")?)?;
    if let Some(ts) = fields.next() {
        ts.parse::<f64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

type Labels = Vec<(String, String)>;

/// Labels after `{`: returns them and the text after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = s[..eq].trim();
        if key.is_empty()
            || !key
                .chars()
                .enumerate()
                .all(|(i, c)| is_name_char(c, i == 0))
        {
            return Err(format!("bad label name {key:?}"));
        }
        let r = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut it = r.char_indices();
        let close = loop {
            match it.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match it.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        out.push((key.to_string(), value));
        s = r[close + 1..].trim_start();
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP reqs Requests.
# TYPE reqs counter
reqs_total{namespace_code="a",status="200"} 5
reqs_total{status="500",namespace_code="a"} 2
reqs_total{namespace_code="b",status="200"} 1.5e3
up 1
odd{v="a \"quoted\", comma\\ and\nline"} -Inf 1700000000
lat_bucket{le="+Inf"} 3
# EOF
"#;

    #[test]
    fn reads_samples_labels_types_and_help() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.samples().len(), 6);
        assert_eq!(
            s.value("reqs_total", &[("status", "500"), ("namespace_code", "a")]),
            Some(2.0)
        );
        assert_eq!(s.value("reqs_total", &[("namespace_code", "a")]), None);
        assert_eq!(
            s.get(r#"reqs_total{status="200",namespace_code="b"}"#),
            Some(1500.0)
        );
        assert_eq!(s.get("up"), Some(1.0));
        assert_eq!(s.sum("reqs_total", &[("namespace_code", "a")]), 7.0);
        assert_eq!(s.type_of("reqs"), Some("counter"));
        assert_eq!(s.help_of("reqs"), Some("Requests."));
        let odd = s.named("odd").next().unwrap();
        assert_eq!(odd.label("v"), Some("a \"quoted\", comma\\ and\nline"));
        assert_eq!(odd.value, f64::NEG_INFINITY);
        assert_eq!(
            Scrape::parse(&format!("{} 0\n", odd.series())).samples()[0].label("v"),
            odd.label("v")
        );
        assert_eq!(s.value("lat_bucket", &[("le", "+Inf")]), Some(3.0));
        assert_eq!(s.count_prefixed("reqs"), 3);
    }

    #[test]
    fn malformed_lines_are_errors() {
        for bad in [
            "reqs_total{a=\"1\" 5",
            "reqs_total{a=1} 5",
            "reqs_total five",
            "{a=\"1\"} 5",
            "reqs_total 5 6 7",
            "9bad 1",
        ] {
            assert!(Scrape::try_parse(bad).is_err(), "{bad}");
        }
    }
}
