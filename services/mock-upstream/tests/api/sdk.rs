//! Each provider's official Python SDK (from the project's virtual
//! environment, `tests/requirements.txt`) as a client of the mock: proof
//! that the mock speaks the formats those SDKs parse. The scripts live in
//! `tests/sdk/`; the mock enforces a key so the SDKs' auth headers count.

use crate::helpers::TestMock;
use mock_upstream::config::ExpectedKey;
use mock_upstream::Config;
use std::path::PathBuf;
use std::time::Duration;

const KEY: &str = "sdk-test-key";

/// The venv's Python; without one the test is skipped outside CI and fails
/// in CI (`scripts/test.sh` builds it).
fn python() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v.is_empty()),
        "{} is missing (scripts/test.sh installs tests/requirements.txt)",
        p.display()
    );
    eprintln!("SKIPPED: no .venv with the provider SDKs (run scripts/test.sh to create it)");
    None
}

async fn run_script(name: &str) {
    let Some(python) = python() else {
        return;
    };
    let mock = TestMock::start(Config {
        api_key: Some(ExpectedKey::new(KEY)),
        ..Config::default()
    })
    .await;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk");
    let run = tokio::process::Command::new(&python)
        .arg(dir.join(name))
        .current_dir(&dir)
        .env("MOCK_URL", &mock.base)
        .env("KEY", KEY)
        .env("PYTHONPATH", &dir)
        // Nothing from the environment may steer the SDKs elsewhere.
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("AZURE_OPENAI_API_KEY")
        .env_remove("AZURE_OPENAI_ENDPOINT")
        .env_remove("OPENAI_API_VERSION")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_GENAI_USE_VERTEXAI")
        .env_remove("GOOGLE_GENAI_API_VERSION")
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
        "{name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    mock.stop().await;
}

#[tokio::test]
async fn official_anthropic_sdk_reads_the_mock() {
    run_script("anthropic_sdk.py").await;
}

#[tokio::test]
async fn official_openai_sdk_azure_client_reads_the_mock() {
    run_script("azure_sdk.py").await;
}

#[tokio::test]
async fn official_google_genai_sdk_reads_the_mock() {
    run_script("gemini_sdk.py").await;
}
