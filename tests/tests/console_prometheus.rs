//! The console's overview with `PROMETHEUS_URL` set, over the real stack
//! and a real `prometheus` scraping it every second: after traffic of known
//! shape, the page shows per namespace exactly what Prometheus' own query
//! API answers for the same expressions at the moment the page states;
//! with Prometheus gone, answering something else or not answering at
//! all, the page still renders, says so, and shows the Redis counters,
//! which equal the requests sent. The basic-auth password in `PROMETHEUS_URL` is on no page
//! and in no log line.

use aigw_e2e::load::{chat_body, send};
use aigw_e2e::monitoring::{test_prometheus_config, which, LogsOnPanic, Prometheus, Targets};
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const MODEL: &str = "gpt-4o-mini";
/// The password of `PROMETHEUS_URL`'s user info: never to be shown.
const PROM_PASSWORD: &str = "prom-PASSWORD-7d41b0e9";

/// The overview's three queries, as `docs/console.md` lists them.
const REQUESTS: &str =
    "max by (namespace_code) (increase(ai_gateway_namespace_requests_total[1h]))";
const FAILED: &str =
    "max by (namespace_code) (increase(ai_gateway_namespace_failed_requests_total[1h]))";
const P95: &str = "histogram_quantile(0.95, max by (namespace_code, le) (rate(ai_gateway_request_duration_seconds_bucket[1h])))";

/// A session cookie (`name=value`) for the console.
async fn sign_in(cc: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("{cc}/ui/sign-in"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("sign-in answers");
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// The overview's HTML (status 200 asserted).
async fn overview(stack: &Stack, cookie: &str) -> String {
    let r = stack
        .http
        .get(format!("{}/ui", stack.cc.url()))
        .header("cookie", cookie)
        .send()
        .await
        .expect("overview answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of attribute `name` in the start tag beginning at `tag`.
fn attr(tag: &str, name: &str) -> Option<String> {
    let end = tag.find('>')?;
    let head = &tag[..end];
    let at = head.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = head[at..].find('"')?;
    Some(head[at..at + len].to_string())
}

/// Text without tags.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

/// One namespace row of the overview: class of each cell → (text,
/// `data-value`).
fn row(page: &str, ns: &str) -> BTreeMap<String, (String, Option<String>)> {
    let start = page
        .find(&format!("<tr data-namespace=\"{ns}\">"))
        .unwrap_or_else(|| panic!("no row for {ns}:\n{page}"));
    let tr = &page[start..start + page[start..].find("</tr>").unwrap()];
    let mut cells = BTreeMap::new();
    for td in tr.split("<td").skip(1) {
        let td = td.split("</td>").next().unwrap();
        let Some(class) = attr(td, "class") else {
            continue;
        };
        let inner = &td[td.find('>').unwrap() + 1..];
        cells.insert(class, (text(inner), attr(td, "data-value")));
    }
    cells
}

/// The `data-source` and `data-time` of the paragraph naming the source.
fn source(page: &str) -> (String, Option<String>) {
    let id = page
        .find("id=\"traffic-source\"")
        .unwrap_or_else(|| panic!("no source paragraph:\n{page}"));
    let tag = &page[page[..id].rfind('<').unwrap()..];
    (attr(tag, "data-source").unwrap(), attr(tag, "data-time"))
}

/// Whether `shown` (`4.8 ms`, `412 ms`, `1.25 s`) is `seconds` rounded to
/// the digits shown.
fn shows_seconds(shown: &str, seconds: f64) -> bool {
    let Some((n, unit)) = shown.split_once(' ') else {
        return false;
    };
    let scale = match unit {
        "ms" => 1e-3,
        "s" => 1.0,
        _ => return false,
    };
    let decimals = n.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let half_digit = 0.5 * 10f64.powi(-decimals) * scale;
    n.parse::<f64>()
        .is_ok_and(|v| (v * scale - seconds).abs() <= half_digit * 1.000_001)
}

/// `expr` at `time`, by namespace.
async fn by_ns(prom: &Prometheus, expr: &str, time: &str) -> BTreeMap<String, f64> {
    prom.query_at(expr, time)
        .await
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
        .into_iter()
        .map(|s| (s.labels["namespace_code"].clone(), s.value))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_shows_prometheus_figures_and_falls_back_to_redis() {
    let Some(prometheus) = which("prometheus") else {
        println!("SKIPPED: prometheus is not installed (scripts/test.sh installs it)");
        return;
    };
    let mut stack = Stack::start(StackOptions::default()).await;
    let key_a = stack.world("team-a", MODEL, json!({})).await;
    let key_b = stack.world("team-b", MODEL, json!({})).await;

    // A real Prometheus scraping the stack every second; the config-center
    // restarts to read it, with credentials in the URL.
    let mut prom = Prometheus::start(
        &prometheus,
        &test_prometheus_config(&Targets::of(&stack), "1s"),
    )
    .await;
    let prom_host = prom.url.trim_start_matches("http://").to_string();
    stack.cc.set_env(
        "PROMETHEUS_URL",
        format!("http://viewer:{PROM_PASSWORD}@{prom_host}"),
    );
    // Three seconds behind: longer than the test config's 1 s scrape
    // timeout, so no scrape in flight changes what the page was answered.
    stack.cc.set_env("PROMETHEUS_QUERY_OFFSET", "3s");
    stack.cc.restart().await;
    {
        let logs = LogsOnPanic(&prom);
        let up = prom.wait_targets(3, "up").await;
        assert!(
            up.len() == 3 && up.iter().all(|(_, h, _)| h == "up"),
            "{up:?}"
        );

        // Warm-up: every series the queries read exists before the measured
        // traffic (a counter's first sample is where `increase` starts).
        let gw = stack.gw(0);
        let ok = chat_body(MODEL, false, None);
        let bad = chat_body(MODEL, false, Some(json!({"status": 400})));
        let send_n = |key: String, body: serde_json::Value, n: usize, want: u16| {
            let (http, gw) = (stack.http.clone(), gw.clone());
            async move {
                for _ in 0..n {
                    let o = send(&http, &gw, &key, &body).await;
                    assert_eq!(o.status, Some(want), "{}", o.body);
                }
            }
        };
        send_n(key_a.clone(), ok.clone(), 1, 200).await;
        send_n(key_a.clone(), bad.clone(), 1, 400).await;
        send_n(key_b.clone(), ok.clone(), 1, 200).await;
        let settled = |series: &'static str, ns: &'static str, want: f64| {
            let prom = &prom;
            async move {
                let expr = format!("max({series}{{namespace_code=\"{ns}\"}})");
                let got = prom
                    .wait_value(&expr, Duration::from_secs(30), |v| v == want)
                    .await;
                assert_eq!(got, Some(want), "{expr}");
            }
        };
        settled("ai_gateway_namespace_requests_total", "team-a", 2.0).await;
        settled("ai_gateway_namespace_failed_requests_total", "team-a", 1.0).await;
        settled("ai_gateway_namespace_requests_total", "team-b", 1.0).await;

        // Measured: team-a 6 answered and 2 refused by the upstream, team-b 3.
        send_n(key_a.clone(), ok.clone(), 6, 200).await;
        send_n(key_a.clone(), bad.clone(), 2, 400).await;
        send_n(key_b.clone(), ok.clone(), 3, 200).await;
        settled("ai_gateway_namespace_requests_total", "team-a", 10.0).await;
        settled("ai_gateway_namespace_failed_requests_total", "team-a", 3.0).await;
        settled("ai_gateway_request_duration_seconds_count", "team-a", 10.0).await;
        settled("ai_gateway_namespace_requests_total", "team-b", 4.0).await;
        settled("ai_gateway_request_duration_seconds_count", "team-b", 4.0).await;

        // The page, once it is evaluated after the settled scrape, and
        // Prometheus asked the same at the moment the page states, once a
        // later scrape of the gateway is stored (scrapes of one target are
        // stored in order, so nothing at or before that moment is missing).
        let gw_scrape = "timestamp(up{job=\"gateway\"})";
        let settled_at = prom.value(gw_scrape).await.expect("a gateway scrape");
        let cookie = sign_in(&stack.cc.url()).await;
        let (page, time) = loop {
            let page = overview(&stack, &cookie).await;
            assert!(!page.contains("id=\"prometheus-note\""), "{page}");
            let (src, time) = source(&page);
            assert_eq!(src, "prometheus");
            let time = time.expect("the evaluation time");
            if time.parse::<f64>().unwrap() >= settled_at {
                break (page, time);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let after = prom
            .wait_value(gw_scrape, Duration::from_secs(30), |t| {
                t > time.parse::<f64>().unwrap()
            })
            .await;
        assert!(after.is_some_and(|t| t > time.parse::<f64>().unwrap()));
        for q in [REQUESTS, FAILED, P95] {
            assert!(page.contains(q), "the page lists {q}");
        }
        assert!(page.contains("the last 1 h"), "{page}");
        let requests = by_ns(&prom, REQUESTS, &time).await;
        let failed = by_ns(&prom, FAILED, &time).await;
        let p95 = by_ns(&prom, P95, &time).await;
        for (ns, measured) in [("team-a", 8.0), ("team-b", 3.0)] {
            let cells = row(&page, ns);
            let r = requests[ns];
            println!(
                "{ns} at {time}: page {cells:?}; Prometheus {r} requests, {:?} failed, p95 {:?} s",
                failed.get(ns),
                p95.get(ns)
            );
            // `increase` only stretches what it saw between the samples.
            assert!(r >= measured, "{ns}: increase {r} < {measured}");
            let (shown, value) = &cells["num requests"];
            assert_eq!(
                value.as_deref().map(|v| v.parse::<f64>().unwrap()),
                Some(r),
                "{ns}"
            );
            assert_eq!(shown, &format!("{r:.0}"), "{ns}");
            let rate = failed.get(ns).copied().unwrap_or(0.0) / r;
            assert_eq!(
                cells["num error-rate"].0,
                format!("{:.1} %", rate * 100.0),
                "{ns}"
            );
            let (shown_p95, value_p95) = &cells["num p95"];
            let want = p95[ns];
            assert!(want.is_finite() && want > 0.0, "{ns}: p95 {want}");
            assert_eq!(
                value_p95.as_deref().map(|v| v.parse::<f64>().unwrap()),
                Some(want),
                "{ns}"
            );
            assert!(
                shows_seconds(shown_p95, want),
                "{ns}: {shown_p95} for {want} s"
            );
        }
        assert!(failed.get("team-b").is_none_or(|v| *v == 0.0), "{failed:?}");
        assert_eq!(row(&page, "team-b")["num error-rate"].0, "0.0 %");
        assert!(!page.contains(PROM_PASSWORD) && !page.contains("viewer:"));

        // Prometheus gone: the page renders from Redis and says so.
        drop(logs);
        prom.proc.kill().await;
        let page = overview(&stack, &cookie).await;
        assert!(
            page.contains("Prometheus could not be reached: requests, error rate and p95 latency below are the Redis"),
            "{page}"
        );
        assert_eq!(source(&page), ("redis".to_string(), None));
        let a = row(&page, "team-a");
        assert_eq!(
            a["num requests"],
            ("10".to_string(), Some("10".to_string()))
        );
        assert_eq!(a["num error-rate"].0, "30.0 %");
        assert!(a["num p95"].0.starts_with('≤'), "{:?}", a["num p95"]);
        assert_eq!(row(&page, "team-b")["num requests"].0, "4");
        assert!(page.contains("since the counters began"));
        assert!(!page.contains(PROM_PASSWORD));
    }

    // Something that is not Prometheus: the same fallback, with its reason.
    let mock = stack.mocks[0].url();
    stack.cc.set_env(
        "PROMETHEUS_URL",
        mock.replace("http://", &format!("http://viewer:{PROM_PASSWORD}@")),
    );
    stack.cc.restart().await;
    let cookie = sign_in(&stack.cc.url()).await;
    let page = overview(&stack, &cookie).await;
    assert!(page.contains("Prometheus answered HTTP 404: "), "{page}");
    assert_eq!(row(&page, "team-a")["num requests"].0, "10");
    assert!(!page.contains(PROM_PASSWORD));

    // A Prometheus that never answers: the page waits PROMETHEUS_TIMEOUT,
    // no longer. (The kernel completes the connection; nobody reads it.)
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    stack.cc.set_env(
        "PROMETHEUS_URL",
        format!("http://viewer:{PROM_PASSWORD}@127.0.0.1:{silent_port}"),
    );
    stack.cc.set_env("PROMETHEUS_TIMEOUT", "500ms");
    stack.cc.restart().await;
    let cookie = sign_in(&stack.cc.url()).await;
    let page = overview(&stack, &cookie).await;
    assert!(
        page.contains("Prometheus did not answer within 500ms: "),
        "{page}"
    );
    assert_eq!(row(&page, "team-a")["num requests"].0, "10");
    assert!(!page.contains(PROM_PASSWORD));
    drop(silent);
    for (name, log) in stack.all_logs() {
        assert!(!log.contains(PROM_PASSWORD), "{name} logged the password");
    }
}
