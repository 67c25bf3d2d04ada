//! The official OpenAI Python SDK (from the project's virtual environment,
//! `tests/requirements.txt`) against a running gateway.

use crate::helpers::*;
use aigw_types::{ConfigSnapshot, Limits};
use std::path::PathBuf;
use std::time::Duration;

const KEY_LIMITED: &str = "sk-aigw-test-limited-000000000000000000000000";
const KEY_DISABLED: &str = "sk-aigw-test-disabled-00000000000000000000000";
const KEY_DOWN: &str = "sk-aigw-test-down-0000000000000000000000000000";

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPENAI_SDK_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    p.exists().then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_works_against_the_gateway() {
    let Some(python) = python() else {
        eprintln!("SKIPPED: no .venv with the openai SDK (run scripts/test.sh to create it)");
        return;
    };
    let up = upstream("a1").await;
    let mut limited = ns("team-limited");
    limited.limits = Limits {
        rpm: Some(1),
        ..Default::default()
    };
    let mut off = ns("team-off");
    off.enabled = false;
    let refused = format!("http://127.0.0.1:{}/v1", aigw_testkit::free_port());
    let snap = ConfigSnapshot {
        version: 1,
        generated_at_ms: 0,
        namespaces: vec![ns("team-a"), limited, off, ns("team-down")],
        api_keys: vec![
            key("team-a", KEY_A),
            key("team-limited", KEY_LIMITED),
            key("team-off", KEY_DISABLED),
            key("team-down", KEY_DOWN),
        ],
        models: vec![model(MODEL)],
        instances: vec![
            instance("a1", "team-a", MODEL, &up.base_url()),
            instance("l1", "team-limited", MODEL, &up.base_url()),
            instance("o1", "team-off", MODEL, &up.base_url()),
            instance("d1", "team-down", MODEL, &refused),
        ],
    };
    let app = TestApp::spawn(&snap).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/openai_compat.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("GATEWAY_URL", app.url("/v1"))
        .env("MODEL", MODEL)
        .env("KEY", KEY_A)
        .env("KEY_LIMITED", KEY_LIMITED)
        .env("KEY_DISABLED", KEY_DISABLED)
        .env("KEY_DOWN", KEY_DOWN)
        .env("ANSWER", ANSWER)
        .env(
            "EMBEDDING",
            serde_json::to_string(&mock_upstream::wire::vector(0, 16)).unwrap(),
        )
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("SDK script timed out")
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
}
