//! The Redis-backed `/metrics` rendering against a real Redis: valid
//! exposition text, bounded round trips, no KEYS/SCAN, and a quick answer
//! while Redis is down.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_metrics::families::gateway::{
    InstanceNs, Namespace, NsStatus, GLOBAL_REQUESTS, GLOBAL_RESPONSE_TIME,
    GLOBAL_RESPONSE_TIME_MEAN, INSTANCE_HEALTH, NS_CONCURRENT, NS_LATENCY, NS_REQUESTS, NS_STATUS,
};
use aigw_metrics::NoLabels;
use aigw_metrics::{
    Counter, Decl, Exposition, Heartbeat, Histogram, MetricsEndpoint, OnceBatch, Ops, Recorder,
    RecorderConfig, RedisConn, RedisTimeouts, Render, ScrapeGauge, ScrapeValues, Unit,
    FAST_BUCKETS_US,
};
use aigw_testkit::prom::Scrape;
use aigw_testkit::{RedisServer, TempDir};
use redis::AsyncCommands;
use std::process::Command;
use std::time::Duration;

aigw_metrics::label_set! {
    struct Ns { namespace_code }
}

/// Declared metrics, rendered from their declaration.
static REQUESTS: Counter<Ns<'static>> = Counter::new(Decl {
    id: "test_requests",
    key: "metrics:test:{}:requests",
    name: "test_typed_requests_total",
    help: "Typed requests per namespace.",
    unit: Unit::Count,
});
static LATENCY: Histogram<Ns<'static>> = Histogram::new(
    Decl {
        id: "test_latency_us",
        key: "metrics:test:{}:latency_us",
        name: "test_typed_latency_seconds",
        help: "Typed latency per namespace.",
        unit: Unit::Micros,
    },
    FAST_BUCKETS_US,
);
static BUDGET: ScrapeGauge<Ns<'static>> =
    ScrapeGauge::new("test_budget_usd", "A value computed at scrape time.");

static EXPOSITION: Exposition = Exposition {
    prefix: "test_svc",
    renders: &[
        Render::of(&REQUESTS),
        Render::of(&LATENCY),
        Render::of(&GLOBAL_REQUESTS),
        Render::mean(&GLOBAL_RESPONSE_TIME_MEAN),
        Render::of(&NS_REQUESTS),
        Render::of(&NS_STATUS),
        Render::of(&NS_CONCURRENT),
        Render::of(&INSTANCE_HEALTH),
        Render::of(&NS_LATENCY),
    ],
};

async fn populated(redis: &RedisServer, namespaces: usize, statuses: usize) -> Recorder {
    let rec = Recorder::new(RecorderConfig::for_service("test"));
    for n in 0..namespaces {
        let ns = format!("ns-{n}");
        for s in 0..statuses {
            let code = (200 + s).to_string();
            let status = NsStatus {
                namespace_code: &ns,
                status_code: &code,
            };
            NS_STATUS.add(&rec, &status, 1);
        }
        let n = Namespace {
            namespace_code: &ns,
        };
        NS_REQUESTS.add(&rec, &n, statuses as i64);
        NS_LATENCY.observe(&rec, &n, 30_000);
        NS_LATENCY.observe(&rec, &n, 3_000_000);
        NS_CONCURRENT.series(&rec, &n).add(1);
        let l = Ns {
            namespace_code: &ns,
        };
        REQUESTS.add(&rec, &l, 2);
        LATENCY.observe(&rec, &l, 250);
    }
    let instance = InstanceNs {
        instance_id: "inst-1",
        namespace_code: "ns-0",
    };
    INSTANCE_HEALTH.set(&rec, &instance, 1);
    GLOBAL_REQUESTS.add(&rec, &NoLabels, (namespaces * statuses) as i64);
    let total_us = (namespaces * statuses) as i64 * 250_000;
    GLOBAL_RESPONSE_TIME.add(&rec, &NoLabels, total_us);
    let mut c = RedisConn::new(&redis.url()).unwrap().get().await.unwrap();
    rec.flush(&mut c, Heartbeat::Alive(Duration::from_secs(60)))
        .await
        .unwrap();
    rec
}

fn value_of(text: &str, series: &str) -> Option<f64> {
    Scrape::parse(text).get(series)
}

#[tokio::test]
async fn renders_exact_values_with_types_and_help() {
    let redis = RedisServer::start().await;
    let rec = populated(&redis, 3, 2).await;
    let ep = MetricsEndpoint::new(
        RedisConn::new(&redis.url()).unwrap(),
        &EXPOSITION,
        Some(rec),
    );
    let mut values = ScrapeValues::new();
    values.set(
        &BUDGET,
        &Ns {
            namespace_code: "ns-1",
        },
        12.5,
    );
    values.set(
        &BUDGET,
        &Ns {
            namespace_code: "ns-2",
        },
        0.0,
    );
    let text = ep.render_with(&values).await;
    assert!(
        text.contains("# TYPE ai_gateway_requests counter"),
        "{text}"
    );
    // Declared metrics: name, help, type and scale from the declaration.
    assert!(
        text.contains("# HELP test_typed_requests Typed requests per namespace."),
        "{text}"
    );
    assert!(
        text.contains("# TYPE test_typed_requests counter"),
        "{text}"
    );
    assert_eq!(
        value_of(&text, r#"test_typed_requests_total{namespace_code="ns-2"}"#),
        Some(2.0)
    );
    assert!(text.contains("# TYPE test_typed_latency_seconds histogram"));
    assert_eq!(
        value_of(
            &text,
            r#"test_typed_latency_seconds_bucket{le="0.00025",namespace_code="ns-0"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"test_typed_latency_seconds_sum{namespace_code="ns-0"}"#
        ),
        Some(0.00025)
    );
    // Scrape-time gauges, after the stored series.
    assert!(text.contains("# TYPE test_budget_usd gauge"), "{text}");
    assert_eq!(
        value_of(&text, r#"test_budget_usd{namespace_code="ns-1"}"#),
        Some(12.5)
    );
    assert_eq!(
        value_of(&text, r#"test_budget_usd{namespace_code="ns-2"}"#),
        Some(0.0)
    );
    assert!(
        text.contains("# HELP ai_gateway_requests All requests to the API endpoints."),
        "{text}"
    );
    assert_eq!(value_of(&text, "ai_gateway_requests_total"), Some(6.0));
    assert_eq!(
        value_of(&text, "ai_gateway_response_time_seconds"),
        Some(0.25)
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_namespace_status_codes_total{namespace_code="ns-1",status_code="201"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_namespace_concurrent_requests{namespace_code="ns-2"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_instance_healthy{instance_id="inst-1",namespace_code="ns-0"}"#
        ),
        Some(1.0)
    );
    assert!(text.contains("# TYPE ai_gateway_request_duration_seconds histogram"));
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_request_duration_seconds_bucket{le="0.05",namespace_code="ns-0"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_request_duration_seconds_bucket{le="+Inf",namespace_code="ns-0"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_request_duration_seconds_count{namespace_code="ns-0"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_request_duration_seconds_sum{namespace_code="ns-0"}"#
        ),
        Some(3.03)
    );
    assert_eq!(value_of(&text, "test_svc_redis_up"), Some(1.0));
    assert!(value_of(&text, "test_svc_uptime_seconds").is_some());
    assert!(value_of(&text, "process_resident_memory_bytes").is_some());
    assert!(value_of(&text, "process_cpu_seconds_total").is_some());
    assert!(value_of(&text, "process_open_fds").is_some());
    assert!(text.trim_end().ends_with("# EOF"));

    check_with_promtool(&aigw_metrics::openmetrics_to_text(&text));
    let (ct, classic) = ep.render_negotiated(Some("text/plain"), None).await;
    assert_eq!(ct, aigw_metrics::CONTENT_TYPE_TEXT);
    assert!(classic.contains("# TYPE ai_gateway_requests_total counter"));
    assert!(!classic.contains("# EOF"));
    check_with_promtool(&classic);
    let (ct, _) = ep
        .render_negotiated(
            Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            None,
        )
        .await;
    assert_eq!(ct, aigw_metrics::CONTENT_TYPE);
    parse_with_python(&text);
}

/// `promtool check metrics` reads the text from stdin; it must report no
/// problem. promtool is installed by scripts/test.sh.
fn check_with_promtool(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        if std::env::var_os("CI").is_some() {
            panic!("promtool missing in CI");
        }
        eprintln!("skipping promtool check: promtool not installed");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses the text with the official Python client's OpenMetrics parser.
fn parse_with_python(text: &str) {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if !py.exists() {
        if std::env::var_os("CI").is_some() {
            panic!("python venv missing in CI");
        }
        eprintln!("skipping parser check: no .venv (run scripts/test.sh)");
        return;
    }
    let dir = TempDir::new("metrics-text");
    let f = dir.path().join("m.txt");
    std::fs::write(&f, text).unwrap();
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(open(sys.argv[1]).read()))
types = {f.name: f.type for f in fams}
assert types["ai_gateway_requests"] == "counter", types
assert types["ai_gateway_request_duration_seconds"] == "histogram", types
assert types["ai_gateway_namespace_concurrent_requests"] == "gauge", types
print(len(fams))
"#;
    let out = Command::new(py)
        .args(["-c", script, f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "OpenMetrics parser rejected the text:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_scrape_of_10k_series_uses_two_round_trips_and_no_keys_or_scan() {
    let redis = RedisServer::start().await;
    let rec = populated(&redis, 1000, 10).await;
    redis.reset_stats().await;
    let ep = MetricsEndpoint::new(
        RedisConn::new(&redis.url()).unwrap(),
        &EXPOSITION,
        Some(rec),
    );
    let text = ep.render(None).await;
    assert_eq!(
        value_of(
            &text,
            r#"ai_gateway_namespace_status_codes_total{namespace_code="ns-999",status_code="209"}"#
        ),
        Some(1.0)
    );
    let samples = text
        .lines()
        .filter(|l| l.starts_with("ai_gateway_namespace_status_codes_total{"))
        .count();
    assert_eq!(samples, 10_000);
    assert_eq!(ep.round_trips(), 2);
    assert_eq!(redis.command_calls("keys").await, 0);
    assert_eq!(redis.command_calls("scan").await, 0);
    let stats = redis.command_stats().await;
    assert!(
        stats
            .iter()
            .all(|(c, _)| !c.contains("scan") && c != "keys"),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_scrape_while_redis_is_down_answers_with_local_metrics() {
    let mut redis = RedisServer::start().await;
    let conn = RedisConn::with_timeouts(
        &redis.url(),
        RedisTimeouts {
            connect: Duration::from_millis(200),
            response: Duration::from_millis(500),
        },
    )
    .unwrap();
    let ep = MetricsEndpoint::new(conn, &EXPOSITION, None);
    assert_eq!(
        value_of(&ep.render(None).await, "test_svc_redis_up"),
        Some(1.0)
    );
    redis.stop().await;
    let text = tokio::time::timeout(Duration::from_secs(5), ep.render(None))
        .await
        .expect("scrape hung while redis was down");
    assert_eq!(value_of(&text, "test_svc_redis_up"), Some(0.0));
    assert!(value_of(&text, "process_resident_memory_bytes").is_some());
    assert!(!text.contains("ai_gateway_requests_total"));
}

#[tokio::test]
async fn once_batches_apply_each_record_once() {
    let redis = RedisServer::start().await;
    let mut c = redis.conn().await;
    let mut batch = OnceBatch::new();
    for id in ["r1", "r2", "r1"] {
        let mut ops = Ops::new();
        ops.counter(
            &REQUESTS,
            &Ns {
                namespace_code: "a",
            },
            1,
        );
        ops.observe(
            &LATENCY,
            &Ns {
                namespace_code: "a",
            },
            1000,
        );
        batch.push("test", id, ops);
    }
    assert_eq!(batch.apply(&mut c, 3600).await.unwrap(), 2);
    // Redelivery of the same records changes nothing.
    assert_eq!(batch.apply(&mut c, 3600).await.unwrap(), 0);
    let v: i64 = c.get("metrics:test:a:requests").await.unwrap();
    assert_eq!(v, 2);
    let n: i64 = c.hget("metrics:test:a:latency_us", "count").await.unwrap();
    assert_eq!(n, 2);
    let idx: Vec<String> = c.smembers("metrics:index:test_requests").await.unwrap();
    assert_eq!(idx, vec!["a".to_string()]);
}
