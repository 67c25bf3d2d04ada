//! The admin console in a real browser: `tests/browser/console_flow.py`
//! drives Debian's headless Chromium with selenium over the whole stack
//! (sign in, namespace, model, instance at the mock upstream, key, a chat
//! completion through the gateway with the official OpenAI SDK, the
//! request in the overview and the usage explorer, revoke, refused) and
//! checks escaping, CSP, labels, 390 px and keyboard sign-out on the way.
//! Screenshots land in `target/console-screenshots/`;
//! `AIGW_DOCS_SCREENSHOTS=1` also refreshes `docs/img/console/`.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::monitoring::workspace_root;
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN};
use std::path::{Path, PathBuf};

/// The venv's Python when it has selenium and the OpenAI SDK, and the
/// browser is installed; in CI their absence is a failure.
fn browser_python() -> Option<PathBuf> {
    let p = workspace_root().join(".venv/bin/python");
    let python_ok = p.exists()
        && std::process::Command::new(&p)
            .args(["-c", "import selenium, openai"])
            .status()
            .is_ok_and(|s| s.success());
    let browser_ok =
        Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if python_ok && browser_ok {
        return Some(p);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v.is_empty()),
        "chromium, chromium-driver or selenium is missing (scripts/test.sh installs them)"
    );
    eprintln!(
        "skipped: no chromium/chromedriver or no selenium in .venv (run scripts/test.sh once)"
    );
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_flow_in_headless_chromium() {
    let Some(python) = browser_python() else {
        return;
    };
    let stack = Stack::start(StackOptions::default()).await;
    let root = workspace_root();
    let shots = root.join("target/console-screenshots");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(root.join("tests/browser/console_flow.py"))
        .env("CC_URL", stack.cc.url())
        .env("GW_URL", stack.gw(0))
        .env("MOCK_BASE", stack.mock_base(0))
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SCREENSHOT_DIR", &shots)
        .kill_on_drop(true);
    if std::env::var("AIGW_DOCS_SCREENSHOTS").is_ok_and(|v| v == "1") {
        cmd.env("DOCS_IMG_DIR", root.join("docs/img/console"));
    }
    let run = tokio::time::timeout(std::time::Duration::from_secs(240), cmd.output())
        .await
        .expect("the browser flow finished within 4 minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        for (name, log) in stack.all_logs() {
            eprintln!("----- {name} -----\n{}", tail(&log, 60));
        }
        panic!("browser flow failed ({}):\n{stdout}\n{stderr}", run.status);
    }
    let seen: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    assert_eq!(seen["after_revoke"], 401, "{seen}");
    assert!(seen["pages_checked"].as_u64().unwrap() >= 15, "{seen}");

    // What the browser did is what the stack holds: exactly one request of
    // the namespace succeeded, and its key is revoked in the snapshot.
    let mut c = stack.redis.conn().await;
    let ok: Option<i64> = redis::cmd("GET")
        .arg(aigw_metrics::keys::ns_successful_requests("team-web"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(ok, Some(1));
    let snap: String = redis::cmd("GET")
        .arg(aigw_metrics::keys::CONFIG_SNAPSHOT)
        .query_async(&mut c)
        .await
        .unwrap();
    let snap: aigw_types::ConfigSnapshot = serde_json::from_str(&snap).unwrap();
    let key = snap
        .api_keys
        .iter()
        .find(|k| k.namespace_code == "team-web")
        .expect("the key");
    assert!(key.revoked);
    assert_eq!(key.prefix, seen["key_prefix"].as_str().unwrap());
    for page in [
        "sign-in",
        "overview",
        "namespaces",
        "namespace",
        "key-created",
        "keys",
        "models",
        "instances",
        "mobile",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "screenshot {page}"
        );
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
