//! The official OpenAI Python SDK (from the project's virtual environment,
//! `tests/requirements.txt`) against a running gateway.

use crate::helpers::*;
use aigw_types::{ConfigSnapshot, Limits, TokenSource, UsageRecord};
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
    run_script(
        &python,
        "openai_compat.py",
        &[
            ("GATEWAY_URL", app.url("/v1")),
            ("MODEL", MODEL.into()),
            ("KEY", KEY_A.into()),
            ("KEY_LIMITED", KEY_LIMITED.into()),
            ("KEY_DISABLED", KEY_DISABLED.into()),
            ("KEY_DOWN", KEY_DOWN.into()),
            ("ANSWER", ANSWER.into()),
            (
                "EMBEDDING",
                serde_json::to_string(&mock_upstream::wire::vector(0, 16)).unwrap(),
            ),
        ],
    )
    .await;
}

/// Runs `tests/sdk/{script}` with `envs` (and none of the SDKs' own
/// settings from the environment); fails with its output unless it exits
/// 0 saying OK.
async fn run_script(python: &std::path::Path, script: &str, envs: &[(&str, String)]) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(script);
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script).kill_on_drop(true);
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

/// (status, prompt, cached, cache write, completion, reasoning, source)
type Row = (u16, u64, u64, u64, u64, u64, TokenSource);

/// The usage records of `model` as rows, in a fixed order.
fn rows(recs: &[UsageRecord], model: &str) -> Vec<Row> {
    sorted(
        recs.iter()
            .filter(|r| r.model == model)
            .map(|r| {
                let (p, c, w, o, t, s) = crate::providers::counts(r);
                (r.status, p, c, w, o, t, s)
            })
            .collect(),
    )
}

fn sorted(mut v: Vec<Row>) -> Vec<Row> {
    v.sort_by_key(|r| format!("{r:?}"));
    v
}

/// The SDK reaches Anthropic, Gemini and Azure OpenAI (both path forms)
/// through the gateway binary: answers, streams, tool calls, errors and
/// retries as OpenAI's; then every usage record in `usage:stream` carries
/// the mock's counts exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_sdk_reaches_every_provider() {
    use crate::providers::*;
    let Some(python) = python() else {
        eprintln!("SKIPPED: no .venv with the openai SDK (run scripts/test.sh to create it)");
        return;
    };
    let up = upstream("p").await;
    let redis = aigw_testkit::RedisServer::start().await;
    publish(&redis, &providers_snapshot(&up)).await;
    let (mut gw, base) = spawn_gateway_binary(&redis, &[]).await;
    let models = serde_json::json!({
        "anthropic": ["anthropic", CLAUDE, CLAUDE_PAIR],
        "gemini": ["gemini", GEMINI, GEMINI_PAIR],
        "azure_deployment": ["azure_openai", AZURE_DEPLOYMENT, AZURE_PAIR],
        "azure_v1": ["azure_openai", AZURE_V1, AZURE_PAIR],
    });
    run_script(
        &python,
        "providers.py",
        &[
            ("GATEWAY_URL", format!("{base}/v1")),
            ("MOCK_URL", root(&up)),
            ("KEY", KEY_A.into()),
            ("ANSWER", ANSWER.into()),
            ("MODELS", models.to_string()),
        ],
    )
    .await;

    // Every request's record, flushed by the binary (29 requests).
    let mut recs = Vec::new();
    for _ in 0..500 {
        recs = usage_records(&redis).await;
        if recs.len() >= 29 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recs.len(), 29, "{recs:?}");
    let rows = |model: &str| rows(&recs, model);
    let up_ = TokenSource::Upstream;
    for (model, cached_prompt, write, tool_answer_prompt) in [
        (CLAUDE, 132, 30, 3),
        (GEMINI, 102, 0, 2),
        (AZURE_DEPLOYMENT, 102, 0, 3),
        (AZURE_V1, 102, 0, 3),
    ] {
        let mut expected = vec![
            // Cache and reasoning: whole and streamed.
            (200, cached_prompt, 100, write, 7, 4, up_),
            (200, cached_prompt, 100, write, 7, 4, up_),
            // Tool calls (3 words and 2 argument pieces), whole and
            // streamed, and the turn with the tool's answer.
            (200, 2, 0, 0, 5, 0, up_),
            (200, 2, 0, 0, 5, 0, up_),
            (200, tool_answer_prompt, 0, 0, 5, 0, up_),
            // The rate-limited request.
            (429, 0, 0, 0, 0, 0, TokenSource::None),
        ];
        if model == CLAUDE {
            // `seed`, refused by name: nothing reached the upstream.
            expected.push((400, 0, 0, 0, 0, 0, TokenSource::None));
        }
        assert_eq!(rows(model), sorted(expected), "{model}");
    }
    for pair in [CLAUDE_PAIR, GEMINI_PAIR] {
        assert_eq!(rows(pair), vec![(200, 2, 0, 0, 3, 0, up_)], "{pair}");
    }
    // Azure's pair served both Azure forms' retries.
    assert_eq!(rows(AZURE_PAIR), vec![(200, 2, 0, 0, 3, 0, up_); 2]);
    let refused: Vec<_> = recs
        .iter()
        .filter(|r| r.error_kind.as_deref() == Some("unsupported_parameter"))
        .collect();
    assert_eq!(refused.len(), 1);
    // Flushed in the same script call as the records.
    let mut c = redis.conn().await;
    let retries: i64 = redis::cmd("GET")
        .arg("metrics:ns:team-a:retries:status_5xx")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(retries, 4);
    gw.terminate(Duration::from_secs(10)).await;
}

/// The Anthropic SDK reaches every provider through `POST /v1/messages`:
/// answers, streams, tool use and errors as Anthropic's; every usage record
/// carries the mock's counts exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_anthropic_sdk_reaches_every_provider() {
    use crate::providers::*;
    let Some(python) = python() else {
        eprintln!("SKIPPED: no .venv with the anthropic SDK (run scripts/test.sh to create it)");
        return;
    };
    let up = upstream("p").await;
    let app = TestApp::spawn(&providers_snapshot(&up)).await;
    let models = serde_json::json!({
        "anthropic": ["anthropic", CLAUDE],
        "openai": ["openai", GPT],
        "gemini": ["gemini", GEMINI],
        "azure": ["azure_openai", AZURE_V1],
    });
    run_script(
        &python,
        "anthropic_messages.py",
        &[
            ("GATEWAY_URL", app.url("")),
            ("MOCK_URL", root(&up)),
            ("KEY", KEY_A.into()),
            ("ANSWER", ANSWER.into()),
            ("MODELS", models.to_string()),
        ],
    )
    .await;

    app.settle().await;
    let recs = app.usage_records().await;
    let rows = |model: &str| rows(&recs, model);
    assert!(recs.iter().all(|r| r.endpoint == "messages"));
    let up_ = TokenSource::Upstream;
    for (model, write, tool_answer_prompt) in [
        (CLAUDE, 30, 3),
        (GPT, 0, 3),
        (GEMINI, 0, 2),
        (AZURE_V1, 0, 3),
    ] {
        let mut expected = vec![
            // "Be brief" + "Say hello", cache reads and writes: whole and
            // streamed.
            (200, 4 + 100 + write, 100, write, 3, 0, up_),
            (200, 4 + 100 + write, 100, write, 3, 0, up_),
            (200, 2, 0, 0, 5, 0, up_),
            (200, 2, 0, 0, 5, 0, up_),
            (200, tool_answer_prompt, 0, 0, 5, 0, up_),
            (429, 0, 0, 0, 0, 0, TokenSource::None),
        ];
        if model == GPT {
            // The request with a Bearer token.
            expected.push((200, 2, 0, 0, 3, 0, up_));
        }
        assert_eq!(rows(model), sorted(expected), "{model}");
    }
}
