//! OpenAPI-driven fuzzing (schemathesis, from PyPI, in `.venv`) of the
//! config-center's and the token-service's documents against the real
//! binaries: zero 5xx, zero crashes, and auth never ignored.
//!
//! CI runs a short pass (`AIGW_FUZZ_EXAMPLES`, default 25 examples per
//! operation, well under two minutes for both services); `scripts/fuzz.sh`
//! runs a long one with every conformance check. Without the venv the test
//! is skipped outside CI and fails in CI (`scripts/test.sh` installs it).

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn schemathesis() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/schemathesis");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v.is_empty()),
        "schemathesis is missing from .venv (scripts/test.sh installs tests/requirements.txt)"
    );
    eprintln!(
        "skipped: {} not found (run scripts/test.sh once)",
        p.display()
    );
    None
}

/// Checks of the CI pass; `AIGW_FUZZ_CHECKS` widens them (scripts/fuzz.sh).
fn checks() -> String {
    std::env::var("AIGW_FUZZ_CHECKS").unwrap_or_else(|_| "not_a_server_error,ignored_auth".into())
}

fn examples() -> String {
    std::env::var("AIGW_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into())
}

/// Runs schemathesis; (exit code, output).
fn run(bin: &PathBuf, args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(bin)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn summary(out: &str) -> String {
    out.lines()
        .map(str::trim)
        .filter(|l| {
            (l.starts_with(|c: char| c.is_ascii_digit()) && l.contains("generated"))
                || l.starts_with("Seed:")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_fuzzing_finds_no_5xx_and_no_crash() {
    let Some(bin) = schemathesis() else { return };
    let mut s = Stack::start(StackOptions {
        gateways: 0,
        mocks: 0,
        ..StackOptions::default()
    })
    .await;
    // Something to find for the operations that read one item.
    s.namespace("team-a", serde_json::json!({})).await;
    s.model("gpt-4o-mini", "0.15", "0.60").await;

    let dir = aigw_testkit::TempDir::new("schemathesis");
    let doc = dir.path().join("config-center.json");
    let r = s
        .http
        .get(format!("{}/api/v1/openapi.json", s.cc.url()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    std::fs::write(&doc, r.bytes().await.unwrap()).unwrap();

    let common = |extra: Vec<String>| {
        let mut a = vec![
            "run".to_string(),
            "--checks".into(),
            checks(),
            "--max-examples".into(),
            examples(),
            // One worker: with threads, Python 3.11's `ast.parse` (used by
            // hypothesis to describe filters) can fail with "AST constructor
            // recursion depth mismatch" — a tool error, not a finding.
            "--workers".into(),
            "1".into(),
            "--request-timeout".into(),
            "10".into(),
            "--report-dir".into(),
            dir.path().join("reports").display().to_string(),
        ];
        a.extend(extra);
        a
    };
    let cc_args = common(vec![
        doc.display().to_string(),
        "--url".into(),
        s.cc.url(),
        "-H".into(),
        format!("Authorization: Bearer {ADMIN_TOKEN}"),
    ]);
    let ts_args = common(vec![format!("{}/openapi.json", s.ts.url())]);
    let (bin2, bin3) = (bin.clone(), bin.clone());
    let (cc, ts) = tokio::join!(
        tokio::task::spawn_blocking(move || run(&bin2, &cc_args)),
        tokio::task::spawn_blocking(move || run(&bin3, &ts_args)),
    );
    let (cc, ts) = (cc.unwrap(), ts.unwrap());

    let alive_cc = s.cc.is_running();
    let alive_ts = s.ts.is_running();
    let panics = s
        .all_logs()
        .iter()
        .filter(|(_, l)| l.contains("panicked"))
        .count();
    report(
        "OpenAPI fuzzing (schemathesis) of the config-center and the token-service",
        &format!(
            "{} examples per operation, checks {}; config-center: {}; token-service: {}",
            examples(),
            checks(),
            summary(&cc.1),
            summary(&ts.1)
        ),
        &format!(
            "failing runs {}; crashes {}; panics {panics}",
            u8::from(cc.0 != Some(0)) + u8::from(ts.0 != Some(0)),
            u8::from(!alive_cc) + u8::from(!alive_ts)
        ),
    );
    assert!(alive_cc, "config-center crashed:\n{}", s.cc.logs());
    assert!(alive_ts, "token-service crashed:\n{}", s.ts.logs());
    assert_eq!(panics, 0, "a service panicked");
    assert_eq!(cc.0, Some(0), "config-center fuzzing failed:\n{}", cc.1);
    assert_eq!(ts.0, Some(0), "token-service fuzzing failed:\n{}", ts.1);
    for url in [s.cc.url(), s.ts.url()] {
        assert_eq!(s.json(&format!("{url}/health")).await["status"], "ok");
    }
    let _ = s.cc.terminate(Duration::from_secs(10)).await;
}
