//! The spend ledger's queries as the domain sees them: the filter, the
//! grouping, the cursor of the newest-first row pages, parsed once from a
//! query string and trusted afterwards; the answers' shapes, as JSON and as
//! CSV. Nothing here knows HTTP or SQL (`storage::ledger` runs the
//! queries; `routes::usage` serves them).

use crate::domain::{format_ms, parse_code, parse_model_name, parse_time, ValidationError};
use aigw_types::LedgerRow;
use serde::Serialize;
use utoipa::ToSchema;

/// Which rows a query covers. `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub namespace: Option<String>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

/// A dimension of `GET /api/v1/usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Namespace,
    Key,
    Model,
    /// UTC calendar day.
    Day,
    /// UTC hour.
    Hour,
}

impl GroupBy {
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Namespace,
        GroupBy::Key,
        GroupBy::Model,
        GroupBy::Day,
        GroupBy::Hour,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Namespace => "namespace",
            GroupBy::Key => "key",
            GroupBy::Model => "model",
            GroupBy::Day => "day",
            GroupBy::Hour => "hour",
        }
    }

    fn parse(s: &str) -> Result<GroupBy, ValidationError> {
        GroupBy::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new("group_by", "must be namespace, key, model, day or hour")
            })
    }
}

/// How an answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
}

/// Where the next newest-first page starts: after the row with this time
/// and request id. Shown to clients as `{started_at_ms}.{request_id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowCursor {
    pub started_at_ms: i64,
    pub request_id: String,
}

/// Longest request id the ledger accepts (the token-service's bound).
pub const MAX_REQUEST_ID: usize = 256;

impl RowCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.started_at_ms, self.request_id)
    }

    pub fn parse(s: &str) -> Result<RowCursor, ValidationError> {
        let bad = || ValidationError::new("cursor", "must be a next_cursor of a previous page");
        let (ms, id) = s.split_once('.').ok_or_else(bad)?;
        let started_at_ms: i64 = ms.parse().map_err(|_| bad())?;
        if started_at_ms < 0 || id.is_empty() || id.len() > MAX_REQUEST_ID {
            return Err(bad());
        }
        Ok(RowCursor {
            started_at_ms,
            request_id: id.to_string(),
        })
    }
}

/// Rows per page of `GET /api/v1/usage/requests`: JSON pages and CSV
/// exports have their own bounds.
pub const DEFAULT_ROWS: u32 = 50;
pub const MAX_JSON_ROWS: u32 = 500;
pub const DEFAULT_CSV_ROWS: u32 = 10_000;
pub const MAX_CSV_ROWS: u32 = 100_000;
/// Most groups one aggregate answer holds (more: narrow the filter).
pub const MAX_GROUPS: u32 = 10_000;

/// A parsed query of either usage route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub filter: UsageFilter,
    /// Distinct, in the order given.
    pub group_by: Vec<GroupBy>,
    /// `None`: decided by the `Accept` header.
    pub format: Option<Format>,
    pub limit: Option<u32>,
    pub cursor: Option<RowCursor>,
}

/// Which parameters a route takes besides the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryKind {
    /// `group_by`.
    Totals,
    /// `limit`, `cursor`.
    Rows,
}

fn once<'a>(slot: &mut Option<&'a str>, name: &str, v: &'a str) -> Result<(), ValidationError> {
    if slot.replace(v).is_some() {
        return Err(ValidationError::new(name, "given more than once"));
    }
    Ok(())
}

impl UsageQuery {
    /// Parses decoded query pairs. Unknown parameters, repeated ones
    /// (except `group_by`, which may also be a comma-separated list) and
    /// bad values are errors naming the parameter.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
        kind: QueryKind,
    ) -> Result<UsageQuery, ValidationError> {
        let (mut ns, mut key, mut model, mut from, mut to) = (None, None, None, None, None);
        let (mut format, mut limit, mut cursor) = (None, None, None);
        let mut group_by = Vec::new();
        for (k, v) in pairs {
            match (k, kind) {
                ("namespace", _) => once(&mut ns, k, v)?,
                ("key_id", _) => once(&mut key, k, v)?,
                ("model", _) => once(&mut model, k, v)?,
                ("from", _) => once(&mut from, k, v)?,
                ("to", _) => once(&mut to, k, v)?,
                ("format", _) => once(&mut format, k, v)?,
                ("group_by", QueryKind::Totals) => {
                    for g in v.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                        let g = GroupBy::parse(g)?;
                        if !group_by.contains(&g) {
                            group_by.push(g);
                        }
                    }
                }
                ("limit", QueryKind::Rows) => once(&mut limit, k, v)?,
                ("cursor", QueryKind::Rows) => once(&mut cursor, k, v)?,
                _ => {
                    let known = match kind {
                        QueryKind::Totals => "namespace, key_id, model, from, to, group_by, format",
                        QueryKind::Rows => {
                            "namespace, key_id, model, from, to, limit, cursor, format"
                        }
                    };
                    return Err(ValidationError::new(
                        k,
                        format!("unknown parameter; known: {known}"),
                    ));
                }
            }
        }
        let filter = UsageFilter {
            namespace: ns.map(|v| parse_code("namespace", v)).transpose()?,
            key_id: key.map(parse_key_id).transpose()?,
            model: model.map(|v| parse_model_name("model", v)).transpose()?,
            from_ms: from.map(|v| parse_time("from", v)).transpose()?,
            to_ms: to.map(|v| parse_time("to", v)).transpose()?,
        };
        if let (Some(f), Some(t)) = (filter.from_ms, filter.to_ms) {
            if f > t {
                return Err(ValidationError::new("to", "must not be before from"));
            }
        }
        let format = match format {
            None => None,
            Some("json") => Some(Format::Json),
            Some("csv") => Some(Format::Csv),
            Some(_) => return Err(ValidationError::new("format", "must be json or csv")),
        };
        let limit = limit
            .map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_CSV_ROWS).contains(n))
                    .ok_or_else(|| {
                        ValidationError::new(
                            "limit",
                            format!("must be 1 to {MAX_JSON_ROWS} ({MAX_CSV_ROWS} for CSV)"),
                        )
                    })
            })
            .transpose()?;
        Ok(UsageQuery {
            filter,
            group_by,
            format,
            limit,
            cursor: cursor
                .filter(|c| !c.is_empty())
                .map(RowCursor::parse)
                .transpose()?,
        })
    }

    /// Rows of one page in `format`, checked against its bound.
    pub fn page_size(&self, format: Format) -> Result<u32, ValidationError> {
        let (default, max) = match format {
            Format::Json => (DEFAULT_ROWS, MAX_JSON_ROWS),
            Format::Csv => (DEFAULT_CSV_ROWS, MAX_CSV_ROWS),
        };
        let n = self.limit.unwrap_or(default);
        if n > max {
            return Err(ValidationError::new(
                "limit",
                format!("must be 1 to {MAX_JSON_ROWS} ({MAX_CSV_ROWS} for CSV)"),
            ));
        }
        Ok(n)
    }
}

/// An API key id as the config-center issues them (a UUID), or any id of
/// the same alphabet up to 64 characters.
fn parse_key_id(s: &str) -> Result<String, ValidationError> {
    let ok =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(ValidationError::new(
            "key_id",
            "must be an API key id (letters, digits and '-', at most 64)",
        ))
    }
}

/// Sums over a set of ledger rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Totals {
    pub requests: i64,
    /// Requests with a status ≥ 400 or an error kind.
    pub errors: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Of the prompt tokens, cache reads.
    pub cached_tokens: i64,
    /// Of the prompt tokens, cache writes.
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    /// Requests whose tokens the token-service counted (no upstream usage).
    pub estimated_requests: i64,
    /// Cost in nano-USD (1e-9 USD): exact.
    pub cost_nano_usd: i64,
}

impl Totals {
    pub fn add(&mut self, o: &Totals) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cached_tokens += o.cached_tokens;
        self.cache_write_tokens += o.cache_write_tokens;
        self.reasoning_tokens += o.reasoning_tokens;
        self.estimated_requests += o.estimated_requests;
        self.cost_nano_usd += o.cost_nano_usd;
    }
}

/// One group of an aggregate: the values of its `group_by` dimensions
/// (the others absent) and its totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageGroup {
    pub namespace: Option<String>,
    /// `None` also for requests without a key (grouped together).
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// Start of the UTC day or hour, unix milliseconds.
    pub day_ms: Option<i64>,
    pub hour_ms: Option<i64>,
    pub totals: Totals,
}

/// nano-USD as a decimal USD string with 9 decimals, e.g. `0.000150000`.
pub fn usd(nano: i64) -> String {
    let sign = if nano < 0 { "-" } else { "" };
    let n = nano.unsigned_abs();
    format!("{sign}{}.{:09}", n / 1_000_000_000, n % 1_000_000_000)
}

/// `YYYY-MM-DD` of a UTC day start.
pub fn format_day(ms: i64) -> String {
    format_ms(ms)[..10].to_string()
}

/// `YYYY-MM-DDTHH:00:00Z` of a UTC hour start.
pub fn format_hour(ms: i64) -> String {
    format!("{}:00:00Z", &format_ms(ms)[..13])
}

/// A group as answered in JSON: only its dimensions' fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageGroupView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Present (possibly `null`: requests without a key) when grouped by key.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub key_id: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `YYYY-MM-DD` (UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// `YYYY-MM-DDTHH:00:00Z`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hour: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
    /// `cost_nano_usd` in USD, as an exact decimal string.
    pub cost_usd: String,
}

impl UsageGroupView {
    pub fn new(g: &UsageGroup, group_by: &[GroupBy]) -> UsageGroupView {
        UsageGroupView {
            namespace: g.namespace.clone(),
            key_id: group_by.contains(&GroupBy::Key).then(|| g.key_id.clone()),
            model: g.model.clone(),
            day: g.day_ms.map(format_day),
            hour: g.hour_ms.map(format_hour),
            totals: g.totals,
            cost_usd: usd(g.totals.cost_nano_usd),
        }
    }
}

/// A ledger row as answered in JSON.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerRowView {
    pub request_id: String,
    /// When the request arrived (RFC 3339 UTC, milliseconds).
    pub time: String,
    pub namespace: String,
    pub key_id: Option<String>,
    pub model: String,
    pub instance_id: Option<String>,
    /// `chat`, `completions` or `embeddings`.
    pub endpoint: String,
    pub stream: bool,
    pub status: u16,
    pub error_kind: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of the prompt tokens, cache reads.
    pub cached_tokens: u64,
    /// Of the prompt tokens, cache writes.
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// The token-service counted the tokens (the upstream reported none).
    pub estimated: bool,
    pub cost_nano_usd: u64,
    pub cost_usd: String,
    /// Total duration in milliseconds (microsecond precision).
    pub latency_ms: f64,
    /// Time to first byte in milliseconds.
    pub ttft_ms: Option<f64>,
}

impl From<&LedgerRow> for LedgerRowView {
    fn from(r: &LedgerRow) -> Self {
        LedgerRowView {
            request_id: r.request_id.clone(),
            time: format_ms(r.started_at_ms),
            namespace: r.namespace_code.clone(),
            key_id: r.api_key_id.clone(),
            model: r.model.clone(),
            instance_id: r.instance_id.clone(),
            endpoint: r.endpoint.clone(),
            stream: r.stream,
            status: r.status,
            error_kind: r.error_kind.clone(),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            estimated: r.estimated,
            cost_nano_usd: r.cost_nano_usd,
            cost_usd: usd(r.cost_nano_usd as i64),
            latency_ms: r.duration_us as f64 / 1000.0,
            ttft_ms: r.ttft_us.map(|t| t as f64 / 1000.0),
        }
    }
}

/// One CSV field: quoted when it holds a separator, quote or line break;
/// a leading `=`, `+`, `-` or `@` is prefixed with `'` so spreadsheets do
/// not run it as a formula.
fn csv_field(out: &mut String, s: &str) {
    let guarded = s.starts_with(['=', '+', '-', '@']);
    if guarded || s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn csv_line(out: &mut String, fields: &[&str]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

const TOTAL_COLUMNS: [&str; 10] = [
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "estimated_requests",
    "cost_nano_usd",
    "cost_usd",
];

/// The groups of an aggregate as CSV: one column per dimension, then the
/// totals.
pub fn totals_csv(groups: &[UsageGroup], group_by: &[GroupBy]) -> String {
    let mut out = String::new();
    let mut header: Vec<&str> = group_by
        .iter()
        .map(|g| match g {
            GroupBy::Key => "key_id",
            other => other.as_str(),
        })
        .collect();
    header.extend(TOTAL_COLUMNS);
    csv_line(&mut out, &header);
    for g in groups {
        let mut cells: Vec<String> = group_by
            .iter()
            .map(|d| match d {
                GroupBy::Namespace => g.namespace.clone().unwrap_or_default(),
                GroupBy::Key => g.key_id.clone().unwrap_or_default(),
                GroupBy::Model => g.model.clone().unwrap_or_default(),
                GroupBy::Day => g.day_ms.map(format_day).unwrap_or_default(),
                GroupBy::Hour => g.hour_ms.map(format_hour).unwrap_or_default(),
            })
            .collect();
        let t = &g.totals;
        cells.extend(
            [
                t.requests,
                t.errors,
                t.prompt_tokens,
                t.completion_tokens,
                t.cached_tokens,
                t.cache_write_tokens,
                t.reasoning_tokens,
                t.estimated_requests,
                t.cost_nano_usd,
            ]
            .map(|n| n.to_string()),
        );
        cells.push(usd(t.cost_nano_usd));
        csv_line(
            &mut out,
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

/// Rows as CSV, in the order given, with a header line.
pub fn rows_csv(rows: &[LedgerRow]) -> String {
    let mut out = String::new();
    csv_line(
        &mut out,
        &[
            "time",
            "request_id",
            "namespace",
            "key_id",
            "model",
            "instance_id",
            "endpoint",
            "stream",
            "status",
            "error_kind",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "estimated",
            "cost_nano_usd",
            "cost_usd",
            "latency_us",
            "ttft_us",
        ],
    );
    for r in rows {
        let cells = [
            format_ms(r.started_at_ms),
            r.request_id.clone(),
            r.namespace_code.clone(),
            r.api_key_id.clone().unwrap_or_default(),
            r.model.clone(),
            r.instance_id.clone().unwrap_or_default(),
            r.endpoint.clone(),
            r.stream.to_string(),
            r.status.to_string(),
            r.error_kind.clone().unwrap_or_default(),
            r.prompt_tokens.to_string(),
            r.completion_tokens.to_string(),
            r.cached_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.reasoning_tokens.to_string(),
            r.estimated.to_string(),
            r.cost_nano_usd.to_string(),
            usd(r.cost_nano_usd as i64),
            r.duration_us.to_string(),
            r.ttft_us.map(|t| t.to_string()).unwrap_or_default(),
        ];
        csv_line(
            &mut out,
            &cells.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str, kind: QueryKind) -> Result<UsageQuery, ValidationError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(s.as_bytes())
            .into_owned()
            .collect();
        UsageQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), kind)
    }

    #[test]
    fn parses_filters_and_groups() {
        let u = q(
            "namespace=team-a&model=gpt-4o&from=2025-11-01T00:00:00Z&to=2025-11-02T00:00:00Z\
             &group_by=model,day&group_by=model&group_by=namespace",
            QueryKind::Totals,
        )
        .unwrap();
        assert_eq!(u.filter.namespace.as_deref(), Some("team-a"));
        assert_eq!(u.filter.from_ms, Some(1_761_955_200_000));
        assert_eq!(u.filter.to_ms, Some(1_762_041_600_000));
        assert_eq!(
            u.group_by,
            vec![GroupBy::Model, GroupBy::Day, GroupBy::Namespace]
        );
        let r = q("limit=10&cursor=1700000000000.abc-1", QueryKind::Rows).unwrap();
        assert_eq!(r.limit, Some(10));
        assert_eq!(
            r.cursor,
            Some(RowCursor {
                started_at_ms: 1_700_000_000_000,
                request_id: "abc-1".into()
            })
        );
        // A request id may itself hold dots: only the first one splits.
        assert_eq!(
            RowCursor::parse("5.a.b").unwrap().request_id,
            "a.b".to_string()
        );
    }

    #[test]
    fn bad_input_names_the_parameter() {
        for (s, kind, field) in [
            ("group_by=week", QueryKind::Totals, "group_by"),
            ("limit=5", QueryKind::Totals, "limit"),
            ("group_by=day", QueryKind::Rows, "group_by"),
            ("namespace=A", QueryKind::Rows, "namespace"),
            ("namespace=a&namespace=b", QueryKind::Rows, "namespace"),
            ("model=a/b", QueryKind::Rows, "model"),
            ("key_id=x%27;--", QueryKind::Rows, "key_id"),
            ("from=yesterday", QueryKind::Rows, "from"),
            (
                "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
                QueryKind::Rows,
                "to",
            ),
            ("limit=0", QueryKind::Rows, "limit"),
            ("limit=abc", QueryKind::Rows, "limit"),
            ("cursor=zz", QueryKind::Rows, "cursor"),
            ("cursor=-1.x", QueryKind::Rows, "cursor"),
            ("format=xml", QueryKind::Rows, "format"),
            ("bogus=1", QueryKind::Rows, "bogus"),
        ] {
            let e = q(s, kind).unwrap_err();
            assert_eq!(e.field, field, "{s}: {e}");
        }
        let big = q("limit=501", QueryKind::Rows).unwrap();
        assert!(big.page_size(Format::Json).is_err());
        assert_eq!(big.page_size(Format::Csv).unwrap(), 501);
    }

    #[test]
    fn money_and_time_labels() {
        assert_eq!(usd(0), "0.000000000");
        assert_eq!(usd(150), "0.000000150");
        assert_eq!(usd(12_345_000_000), "12.345000000");
        assert_eq!(format_day(1_764_201_600_000), "2025-11-27");
        assert_eq!(format_hour(1_764_205_200_000), "2025-11-27T01:00:00Z");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let g = UsageGroup {
            model: Some("m,1".into()),
            totals: Totals {
                requests: 2,
                cost_nano_usd: 5,
                ..Totals::default()
            },
            ..UsageGroup::default()
        };
        let csv = totals_csv(&[g], &[GroupBy::Model]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next().unwrap(),
            "model,requests,errors,prompt_tokens,completion_tokens,cached_tokens,\
             cache_write_tokens,reasoning_tokens,estimated_requests,cost_nano_usd,cost_usd"
        );
        assert_eq!(
            lines.next().unwrap(),
            "\"m,1\",2,0,0,0,0,0,0,0,5,0.000000005"
        );
        let mut s = String::new();
        csv_field(&mut s, "=HYPERLINK(\"x\")");
        assert_eq!(s, "\"'=HYPERLINK(\"\"x\"\")\"");
    }
}
