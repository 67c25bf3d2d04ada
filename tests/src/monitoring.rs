//! Monitoring test support: the metric names the monitoring config relies on
//! (in one place, so a rename is a one-line change), a real `prometheus`
//! process with a test copy of `monitoring/prometheus.yml` and a client for
//! its HTTP API, the panel queries of the Grafana dashboards, the metric
//! names a PromQL expression reads, and small YAML helpers.

use aigw_testkit::{free_port, Proc, TempDir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use yaml_rust2::{Yaml, YamlLoader};

/// The workspace root (where `monitoring/` and `docker-compose.dev.yml` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf()
}

/// A program on `PATH`, if installed.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// Binary targets of the workspace, from `cargo metadata`.
pub fn workspace_binaries() -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut bins = BTreeSet::new();
    for p in meta["packages"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            if t["kind"].as_array().unwrap().iter().any(|k| k == "bin") {
                bins.insert(t["name"].as_str().unwrap().to_string());
            }
        }
    }
    bins
}

/// Metric names the e2e assertions use. The alert rules and dashboards spell
/// them too; the e2e test checks every name they read is really exported.
pub mod names {
    pub const REQUESTS: &str = "ai_gateway_requests_total";
    pub const ERRORS: &str = "ai_gateway_errors_total";
    pub const RESPONSE_TIME: &str = "ai_gateway_response_time_seconds";
    pub const NS_REQUESTS: &str = "ai_gateway_namespace_requests_total";
    pub const NS_STATUS: &str = "ai_gateway_namespace_status_codes_total";
    pub const MODEL_REQUESTS: &str = "model_requests_total";
    pub const MODEL_TOKENS_IN: &str = "model_tokens_input_total";
    pub const MODEL_TOKENS_OUT: &str = "model_tokens_output_total";
    pub const MODEL_TOKENS_CACHE_READ: &str = "model_tokens_cache_read_total";
    pub const MODEL_TOKENS_CACHE_WRITE: &str = "model_tokens_cache_write_total";
    pub const MODEL_TOKENS_REASONING: &str = "model_tokens_reasoning_total";
    pub const MODEL_COST: &str = "model_cost_usd_total";

    /// The design brief's four queries, verbatim.
    pub const DESIGN_QUERIES: [&str; 4] = [
        "sum(rate(ai_gateway_requests_total[5m]))",
        "sum(rate(ai_gateway_namespace_requests_total[5m])) by (namespace_code)",
        "ai_gateway_response_time_seconds",
        "sum(rate(ai_gateway_errors_total[5m])) / sum(rate(ai_gateway_requests_total[5m])) * 100",
    ];

    /// Names the alert rules or dashboards read that no service exports yet,
    /// with who should export them. Queries reading them are reported and
    /// skipped by the e2e test, which fails as soon as one is exported (so
    /// this list only ever shrinks).
    pub const PENDING: &[(&str, &str)] = &[];
}

// ----- YAML -----------------------------------------------------------------

/// Parses a YAML file (first document).
pub fn load_yaml(path: &Path) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    assert!(!docs.is_empty(), "{} is empty", path.display());
    docs.swap_remove(0)
}

/// `map[key]`, also looking into a `<<` merge key (compose anchors).
pub fn get<'a>(map: &'a Yaml, key: &str) -> &'a Yaml {
    let v = &map[key];
    if !v.is_badvalue() {
        return v;
    }
    let merged = &map["<<"];
    if merged.is_badvalue() {
        v
    } else {
        &merged[key]
    }
}

/// A YAML scalar as a string (numbers and booleans included).
pub fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Real(r) => Some(r.clone()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings, or one string split on whitespace (compose `command`).
pub fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::Array(a) => a.iter().filter_map(scalar).collect(),
        Yaml::String(s) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// Keys of a mapping, in order.
pub fn keys(y: &Yaml) -> Vec<String> {
    y.as_hash()
        .map(|h| h.keys().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// `(path, tag)` of every tagged node of a YAML text, e.g.
/// `("services.gateway.container_name", "!reset")`: the loader drops tags,
/// and compose's `!reset` / `!override` live in them.
pub fn yaml_tags(text: &str) -> Vec<(String, String)> {
    use yaml_rust2::parser::{Event, EventReceiver, Parser, Tag};
    enum Frame {
        Map(Option<String>),
        Seq(usize),
    }
    #[derive(Default)]
    struct Tags {
        frames: Vec<Frame>,
        path: Vec<String>,
        out: Vec<(String, String)>,
    }
    impl Tags {
        /// The path segment of the node being read in the current container.
        fn segment(&self) -> String {
            match self.frames.last() {
                Some(Frame::Map(Some(k))) => k.clone(),
                Some(Frame::Seq(i)) => i.to_string(),
                _ => String::new(),
            }
        }
        fn record(&mut self, tag: Option<Tag>) {
            if let Some(t) = tag {
                let mut p = self.path.clone();
                p.push(self.segment());
                self.out
                    .push((p.join("."), format!("{}{}", t.handle, t.suffix)));
            }
        }
        fn open(&mut self, tag: Option<Tag>, frame: Frame) {
            self.record(tag);
            if !self.frames.is_empty() {
                let seg = self.segment();
                self.path.push(seg);
            }
            self.frames.push(frame);
        }
        /// The current container has read one whole value.
        fn done(&mut self) {
            match self.frames.last_mut() {
                Some(Frame::Map(k)) => *k = None,
                Some(Frame::Seq(i)) => *i += 1,
                None => {}
            }
        }
    }
    impl EventReceiver for Tags {
        fn on_event(&mut self, ev: Event) {
            match ev {
                Event::Scalar(v, _, _, tag) => {
                    if let Some(Frame::Map(k @ None)) = self.frames.last_mut() {
                        *k = Some(v);
                        return;
                    }
                    self.record(tag);
                    self.done();
                }
                Event::MappingStart(_, tag) => self.open(tag, Frame::Map(None)),
                Event::SequenceStart(_, tag) => self.open(tag, Frame::Seq(0)),
                Event::MappingEnd | Event::SequenceEnd => {
                    self.frames.pop();
                    if !self.frames.is_empty() {
                        self.path.pop();
                    }
                    self.done();
                }
                _ => {}
            }
        }
    }
    let mut t = Tags::default();
    Parser::new_from_str(text)
        .load(&mut t, false)
        .unwrap_or_else(|e| panic!("not YAML: {e}"));
    t.out
}

// ----- Prometheus config ----------------------------------------------------

/// Where the test copy of the scrape config points each job.
pub struct Targets {
    pub gateway: String,
    pub config_center: String,
    pub token_service: String,
}

impl Targets {
    /// The stack's first gateway, its config-center and token-service.
    pub fn of(stack: &crate::stack::Stack) -> Targets {
        Targets {
            gateway: format!("127.0.0.1:{}", stack.gateways[0].port),
            config_center: format!("127.0.0.1:{}", stack.cc.port),
            token_service: format!("127.0.0.1:{}", stack.ts.port),
        }
    }
}

/// `monitoring/prometheus.yml` with localhost targets, `interval` for the
/// scrape and evaluation intervals and the rule file by absolute path:
/// the same text otherwise, so the test exercises the shipped config.
pub fn test_prometheus_config(t: &Targets, interval: &str) -> String {
    let root = workspace_root();
    let text =
        std::fs::read_to_string(root.join("monitoring/prometheus.yml")).expect("prometheus.yml");
    let replaced = [
        ("\"gateway:8080\"", format!("\"{}\"", t.gateway)),
        ("\"config-center:8000\"", format!("\"{}\"", t.config_center)),
        ("\"token-service:8000\"", format!("\"{}\"", t.token_service)),
        (
            "scrape_interval: 15s",
            format!("scrape_interval: {interval}"),
        ),
        (
            "evaluation_interval: 15s",
            format!("evaluation_interval: {interval}"),
        ),
        ("scrape_timeout: 10s", format!("scrape_timeout: {interval}")),
        (
            "  - alerts.yml",
            format!("  - {}", root.join("monitoring/alerts.yml").display()),
        ),
    ];
    let mut out = text.clone();
    for (from, to) in &replaced {
        assert_eq!(
            out.matches(from).count(),
            1,
            "prometheus.yml should contain {from} once"
        );
        out = out.replace(from, to);
    }
    out
}

/// `promtool check config` of `path`, failing on a rejection; false when
/// promtool is not installed (scripts/test.sh installs it).
pub fn promtool_check_config(path: &Path) -> bool {
    let Some(promtool) = which("promtool") else {
        println!("promtool not installed: {} not checked", path.display());
        return false;
    };
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check config {}:\n{}{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

// ----- a real Prometheus ----------------------------------------------------

/// A `prometheus` process on a free port with its own storage.
pub struct Prometheus {
    pub url: String,
    pub proc: Proc,
    http: reqwest::Client,
    _dir: TempDir,
}

/// Prints Prometheus's log when the test fails (the stack prints its own
/// services' logs).
pub struct LogsOnPanic<'a>(pub &'a Prometheus);
impl Drop for LogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- prometheus\n{}", self.0.proc.logs());
        }
    }
}

/// One series of an instant vector.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range query or a range-vector selector.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    /// (unix seconds, value)
    pub points: Vec<(f64, f64)>,
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn number(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

impl Prometheus {
    /// Starts `prometheus` with `config` and waits until it is ready; its
    /// scrape jobs send no token (an empty `metrics_token` file).
    pub async fn start(prometheus: &Path, config: &str) -> Prometheus {
        Prometheus::start_with_token(prometheus, config, "").await
    }

    /// [`Prometheus::start`] with `token` in the `metrics_token` file the
    /// scrape jobs read their bearer token from.
    pub async fn start_with_token(prometheus: &Path, config: &str, token: &str) -> Prometheus {
        let dir = TempDir::new("prometheus");
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config).expect("write prometheus config");
        std::fs::write(dir.path().join("metrics_token"), token).expect("write metrics_token");
        let port = free_port();
        let args = [
            format!("--config.file={}", cfg.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_string(),
        ];
        // Proc passes environment only, so a tiny shell carries the flags.
        let script = dir.path().join("run.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec {} {}\n",
                prometheus.display(),
                args.join(" ")
            ),
        )
        .expect("write run.sh");
        let status = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .expect("chmod");
        assert!(status.success());
        let mut proc = Proc::spawn_path(&script, "prometheus", &[]);
        let url = format!("http://127.0.0.1:{port}");
        proc.wait_ready(&format!("{url}/-/ready")).await;
        Prometheus {
            url,
            proc,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            _dir: dir,
        }
    }

    async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let body: Value = r.json().await.map_err(|e| format!("body: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "{}: {}",
                body["errorType"].as_str().unwrap_or("error"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(body["data"].clone())
    }

    /// An instant query now; a scalar result becomes one sample without labels.
    pub async fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        self.instant(expr, &[("query", expr.to_string())]).await
    }

    /// An instant query evaluated at `time` (unix seconds as Prometheus
    /// reads them, e.g. `1764272000.123`).
    pub async fn query_at(&self, expr: &str, time: &str) -> Result<Vec<Sample>, String> {
        self.instant(
            expr,
            &[("query", expr.to_string()), ("time", time.to_string())],
        )
        .await
    }

    async fn instant(&self, expr: &str, params: &[(&str, String)]) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", params).await?;
        match data["resultType"].as_str() {
            Some("vector") => Ok(data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Sample {
                    labels: labels_of(s),
                    value: number(&s["value"][1]),
                })
                .collect()),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: number(&data["result"][1]),
            }]),
            other => Err(format!("unexpected result type {other:?} for {expr}")),
        }
    }

    /// The single value of `expr` (None when it has no series).
    pub async fn value(&self, expr: &str) -> Option<f64> {
        let v = self
            .query(expr)
            .await
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(v.len() <= 1, "{expr} has {} series: {v:?}", v.len());
        v.first().map(|s| s.value)
    }

    /// The raw samples of a range-vector selector such as `x[5m]`.
    pub async fn raw(&self, selector: &str) -> Vec<Series> {
        let data = self
            .api("/api/v1/query", &[("query", selector.to_string())])
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(data["resultType"], "matrix", "{selector}");
        matrix(&data)
    }

    /// A range query from `start` to now (unix seconds) at `step` seconds.
    pub async fn query_range(
        &self,
        expr: &str,
        start: f64,
        step: f64,
    ) -> Result<Vec<Series>, String> {
        let end = unix_now();
        let data = self
            .api(
                "/api/v1/query_range",
                &[
                    ("query", expr.to_string()),
                    ("start", format!("{start:.3}")),
                    ("end", format!("{end:.3}")),
                    ("step", format!("{step}")),
                ],
            )
            .await?;
        Ok(matrix(&data))
    }

    /// Values of `label` over the series matching `selector` (Grafana's
    /// `label_values(selector, label)`).
    pub async fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let data = self
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", selector.to_string())],
            )
            .await
            .unwrap_or_else(|e| panic!("label_values({selector}, {label}): {e}"));
        data.as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    }

    /// (job, health, last error) of every active target.
    pub async fn targets(&self) -> Vec<(String, String, String)> {
        let data = self.api("/api/v1/targets", &[]).await.expect("targets");
        data["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap_or_default().to_string(),
                    t["health"].as_str().unwrap_or_default().to_string(),
                    t["lastError"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Polls the targets until there are `n`, all with `health` (`up`,
    /// `down`), or 20 s pass; returns the last seen.
    pub async fn wait_targets(&self, n: usize, health: &str) -> Vec<(String, String, String)> {
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = self.targets().await;
            if seen.len() == n && seen.iter().all(|(_, h, _)| h == health) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seen
    }

    /// The whole answer of `/api/v1/targets?state=any`: active targets with
    /// their final labels and scrape URL, dropped ones with what was
    /// discovered.
    pub async fn targets_any(&self) -> Value {
        self.api("/api/v1/targets", &[("state", "any".to_string())])
            .await
            .expect("targets")
    }

    /// (rule name, health, last error) of every loaded rule.
    pub async fn rules(&self) -> Vec<(String, String, String)> {
        let data = self.api("/api/v1/rules", &[]).await.expect("rules");
        let mut out = Vec::new();
        for g in data["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                out.push((
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["health"].as_str().unwrap_or_default().to_string(),
                    r["lastError"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        out
    }

    /// Polls `expr` until `ok` accepts its single value (or `limit` passes);
    /// returns the last value seen.
    pub async fn wait_value(
        &self,
        expr: &str,
        limit: Duration,
        ok: impl Fn(f64) -> bool,
    ) -> Option<f64> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.value(expr).await;
            if v.is_some_and(&ok) || tokio::time::Instant::now() >= deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn matrix(data: &Value) -> Vec<Series> {
    data["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| Series {
            labels: labels_of(s),
            points: s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| (p[0].as_f64().unwrap_or(0.0), number(&p[1])))
                .collect(),
        })
        .collect()
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

// ----- dashboards -----------------------------------------------------------

/// One query of one dashboard panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub panel_type: String,
    pub expr: String,
    /// Grafana runs it as an instant query (tables, pie charts, bar gauges).
    pub instant: bool,
}

/// A template variable of a dashboard.
#[derive(Debug, Clone)]
pub struct Variable {
    pub dashboard: String,
    pub name: String,
    pub query: String,
    pub multi: bool,
    pub include_all: bool,
}

/// Every dashboard file under `monitoring/grafana/dashboards`, parsed.
pub fn dashboards() -> Vec<(String, Value)> {
    let dir = workspace_root().join("monitoring/grafana/dashboards");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read dashboard");
            let v: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().to_string(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Panels of a dashboard, rows' nested panels included.
pub fn panels(d: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p.clone());
        for inner in p["panels"].as_array().into_iter().flatten() {
            out.push(inner.clone());
        }
    }
    out
}

/// Every panel query of every dashboard.
pub fn panel_queries() -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push(PanelQuery {
                        dashboard: file.clone(),
                        panel: p["title"].as_str().unwrap_or_default().to_string(),
                        panel_type: p["type"].as_str().unwrap_or_default().to_string(),
                        expr: expr.to_string(),
                        instant: t["instant"].as_bool() == Some(true),
                    });
                }
            }
        }
    }
    out
}

/// Every template variable of every dashboard.
pub fn variables() -> Vec<Variable> {
    let mut out = Vec::new();
    for (file, d) in dashboards() {
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            let query = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .or_else(|| v["definition"].as_str())
                .unwrap_or_default()
                .to_string();
            out.push(Variable {
                dashboard: file.clone(),
                name: v["name"].as_str().unwrap_or_default().to_string(),
                query,
                multi: v["multi"].as_bool() == Some(true),
                include_all: v["includeAll"].as_bool() == Some(true),
            });
        }
    }
    out
}

/// `label_values(selector, label)` → (selector, label).
pub fn parse_label_values(q: &str) -> Option<(String, String)> {
    let inner = q.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (sel, label) = inner.rsplit_once(',')?;
    Some((sel.trim().to_string(), label.trim().to_string()))
}

/// Replaces Grafana variables as Grafana would before sending the query:
/// `vars` maps a name to its (already formatted) value; the built-in
/// interval variables get fixed test values.
pub fn substitute(
    expr: &str,
    vars: &BTreeMap<String, String>,
    rate_interval: &str,
    range: &str,
) -> String {
    let mut out = expr
        .replace("$__rate_interval", rate_interval)
        .replace("$__range", range)
        .replace("$__interval", rate_interval);
    // Longest names first, so `$model` never eats part of `$model_x`.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for n in names {
        out = out
            .replace(&format!("${{{n}}}"), &vars[n])
            .replace(&format!("${n}"), &vars[n]);
    }
    out
}

/// Grafana's formatting of a multi-value selection inside `=~`.
pub fn regex_values(values: &[String]) -> String {
    if values.len() == 1 {
        values[0].clone()
    } else {
        format!("({})", values.join("|"))
    }
}

// ----- PromQL metric names --------------------------------------------------

const PROMQL_WORDS: &[&str] = &[
    // Aggregation operators (`sum by (x) (...)` has no parenthesis right after the name).
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "Inf",
    "NaN",
];

/// The metric names an expression reads: bare selectors plus the names a
/// `__name__` matcher lists. Good enough for the expressions of this
/// project (no nested strings with braces, no subquery tricks).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // The previous significant word, to skip label lists after by/without/on/...
    let mut prev_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let q = c;
            i += 1;
            while i < chars.len() && chars[i] != q {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '{' {
            // Label matchers: pick names out of __name__ matchers only.
            let start = i;
            while i < chars.len() && chars[i] != '}' {
                i += 1;
            }
            let body: String = chars[start + 1..i.min(chars.len())].iter().collect();
            for m in body.split(',') {
                if let Some((k, v)) = m.split_once(['=', '!']) {
                    if k.trim() == "__name__" {
                        let v = v
                            .trim_start_matches(['=', '~', '!'])
                            .trim()
                            .trim_matches('"');
                        names.extend(v.split('|').map(String::from));
                    }
                }
            }
            i += 1;
            continue;
        }
        if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '('
            && [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&prev_word.as_str())
        {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
            prev_word.clear();
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let is_call = j < chars.len() && chars[j] == '(';
            if !is_call && !PROMQL_WORDS.contains(&word.as_str()) {
                // A duration unit after a number (5m) never gets here: digits
                // start those tokens and are consumed below.
                names.insert(word.clone());
            }
            prev_word = word;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !c.is_whitespace() {
            prev_word.clear();
        }
        i += 1;
    }
    names
}

/// The metric family a series name belongs to (`x_bucket` → `x`).
pub fn family_of(name: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base;
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_skip_functions_labels_and_keywords() {
        let n = metric_names(
            r#"histogram_quantile(0.95, sum by (namespace_code, le) (max without (instance) (rate(ai_gateway_request_duration_seconds_bucket{namespace_code=~"$ns"}[5m])))) > 30"#,
        );
        assert_eq!(
            n,
            BTreeSet::from(["ai_gateway_request_duration_seconds_bucket".to_string()])
        );
        let n = metric_names(
            r#"max(rate(a_total[5m])) / max(rate(b_total[1m])) * 100 > 5 and on () max(increase(a_total[5m])) >= 20"#,
        );
        assert_eq!(
            n,
            BTreeSet::from(["a_total".to_string(), "b_total".to_string()])
        );
        let n = metric_names(r#"{__name__=~"x_up|y_up"} == 0 or up{job="g"} == 0"#);
        assert_eq!(
            n,
            BTreeSet::from(["x_up".to_string(), "y_up".to_string(), "up".to_string()])
        );
        let n =
            metric_names("max by (namespace_code) (c) / max by (namespace_code) (d > 0) >= 0.9");
        assert_eq!(n, BTreeSet::from(["c".to_string(), "d".to_string()]));
    }

    #[test]
    fn substitution_and_label_values() {
        let vars = BTreeMap::from([("namespace_code".to_string(), "(a|b)".to_string())]);
        assert_eq!(
            substitute(
                r#"rate(x{namespace_code=~"$namespace_code"}[$__rate_interval])"#,
                &vars,
                "1m",
                "5m"
            ),
            r#"rate(x{namespace_code=~"(a|b)"}[1m])"#
        );
        assert_eq!(
            parse_label_values("label_values(model_requests_total, model)"),
            Some(("model_requests_total".to_string(), "model".to_string()))
        );
        assert_eq!(family_of("x_seconds_bucket"), "x_seconds");
    }
}
