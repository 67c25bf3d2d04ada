//! Running the official Python SDKs (the project's `.venv`, from
//! `tests/requirements.txt`) against the stack: a script in `tests/` gets
//! its settings in the environment and prints its report as JSON.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// The virtual environment's interpreter.
pub fn python() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

/// Runs `tests/{script}` with `envs` (and none of the SDKs' own settings
/// from the environment); its stdout as JSON. Fails with the script's
/// output when it exits non-zero, prints something else or runs past two
/// minutes.
pub async fn run_script(script: &str, envs: &[(&str, String)]) -> Value {
    let python = python();
    assert!(
        python.exists(),
        ".venv/bin/python is missing (scripts/test.sh installs it)"
    );
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(script);
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(path).kill_on_drop(true);
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran past two minutes"))
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{script}'s report is not JSON ({e}):\n{stdout}\n{stderr}"))
}
