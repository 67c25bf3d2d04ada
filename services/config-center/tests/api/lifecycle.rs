//! The real binary: configuration, dev mode, graceful shutdown, and logs
//! that never carry a secret.

use crate::both;
use crate::helpers::{Backend, Db};
use aigw_testkit::{free_port, Proc, RedisServer};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_config-center");
const ADMIN: &str = "lifecycle-admin-token-XYZ987";

fn spawn(envs: &[(&str, String)]) -> Proc {
    Proc::spawn_path(Path::new(BIN), "config-center", envs)
}

async fn call(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, String) {
    let mut r = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn secrets_stay_out_of_logs(b: Backend) {
    let Some(db) = Db::create(b).await else {
        return;
    };
    let redis = RedisServer::start().await;
    let port = free_port();
    let mut proc = spawn(&[
        ("ADMIN_TOKEN", ADMIN.to_string()),
        ("CONFIG_CENTER_PORT", port.to_string()),
        ("BIND_ADDR", "127.0.0.1".to_string()),
        ("DATABASE_URL", db.url()),
        ("REDIS_URL", redis.url()),
        ("RUST_LOG", "debug".to_string()),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    proc.wait_ready(&format!("{base}/health")).await;
    let c = reqwest::Client::new();
    use reqwest::Method as M;
    let secret = "sk-upstream-NEVER-LOG-ME-a1b2c3";
    let secret2 = "sk-upstream-ALSO-SECRET-d4e5f6";
    let u = |p: &str| format!("{base}{p}");
    assert_eq!(
        call(
            &c,
            M::POST,
            u("/api/v1/namespaces"),
            ADMIN,
            Some(json!({"code":"team-a"}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &c,
            M::POST,
            u("/api/v1/models"),
            ADMIN,
            Some(json!({"name":"m","encoding":"o200k_base"}))
        )
        .await
        .0,
        201
    );
    let inst = json!({"id":"i-1","namespace_code":"team-a","model":"m","base_url":"http://127.0.0.1:9/v1","api_key":secret});
    assert_eq!(
        call(
            &c,
            M::POST,
            u("/api/v1/instances"),
            ADMIN,
            Some(inst.clone())
        )
        .await
        .0,
        201
    );
    // A duplicate, an invalid patch and a mistyped secret: error paths too.
    assert_eq!(
        call(&c, M::POST, u("/api/v1/instances"), ADMIN, Some(inst))
            .await
            .0,
        409
    );
    assert_eq!(
        call(
            &c,
            M::PATCH,
            u("/api/v1/instances/i-1"),
            ADMIN,
            Some(json!({"api_key":secret,"weight":-1}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &c,
            M::PATCH,
            u("/api/v1/instances/i-1"),
            ADMIN,
            Some(json!({"api_key":[secret]}))
        )
        .await
        .0,
        400
    );
    assert_eq!(
        call(
            &c,
            M::PATCH,
            u("/api/v1/instances/i-1"),
            ADMIN,
            Some(json!({"api_key":secret2}))
        )
        .await
        .0,
        200
    );
    let (s, listed) = call(&c, M::GET, u("/api/v1/instances"), ADMIN, None).await;
    assert_eq!(s, 200);
    let (s, snap) = call(&c, M::GET, u("/api/v1/snapshot"), ADMIN, None).await;
    assert_eq!(s, 200);
    let (s, created) = call(
        &c,
        M::POST,
        u("/api/v1/namespaces/team-a/api-keys"),
        ADMIN,
        Some(json!({"name":"k"})),
    )
    .await;
    assert_eq!(s, 201);
    let key = serde_json::from_str::<Value>(&created).unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        call(&c, M::GET, u("/api/v1/namespaces"), "wrong-token", None)
            .await
            .0,
        401
    );
    for body in [&listed, &snap] {
        assert!(!body.contains(secret) && !body.contains(secret2), "{body}");
    }

    // SIGTERM: drains and exits 0.
    let code = proc.terminate(Duration::from_secs(20)).await;
    let logs = proc.logs();
    assert_eq!(code, Some(0), "{logs}");
    // The logs were captured (debug level, requests and changes)…
    assert!(logs.contains("instance created"), "{logs}");
    assert!(logs.contains("API key issued"), "{logs}");
    assert!(logs.contains("config-center stopped"), "{logs}");
    // …and hold no secret.
    for s in [secret, secret2, key.as_str(), &key[8..], ADMIN] {
        assert!(!logs.contains(s), "secret in logs: {s}");
    }
    assert!(!logs.contains("sk-upstream-"), "secret in logs");
}
both!(secrets_stay_out_of_logs);

#[tokio::test]
async fn refuses_to_start_without_admin_token() {
    let mut proc = spawn(&[
        ("CONFIG_CENTER_PORT", free_port().to_string()),
        ("REDIS_URL", "redis://127.0.0.1:1".to_string()),
    ]);
    let mut code = None;
    for _ in 0..200 {
        if let Some(c) = proc.try_exit_code() {
            code = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(code, Some(Some(2)), "{}", proc.logs());
    assert!(
        proc.logs().contains("ADMIN_TOKEN: missing; it is required"),
        "{}",
        proc.logs()
    );
}

#[tokio::test]
async fn dev_mode_generates_a_token_and_uses_the_default_sqlite_file() {
    // No DATABASE_URL: the process creates data/config-center.db in its
    // working directory (a private temp dir); Redis is not even running.
    let port = free_port();
    let mut proc = spawn(&[
        ("CONFIG_CENTER_DEV_MODE", "1".to_string()),
        ("CONFIG_CENTER_PORT", port.to_string()),
        ("BIND_ADDR", "127.0.0.1".to_string()),
        ("REDIS_URL", "redis://127.0.0.1:1".to_string()),
        // Without Redis the last metrics flush retries until this bound.
        ("SHUTDOWN_TIMEOUT", "2s".to_string()),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    proc.wait_ready(&format!("{base}/health")).await;
    let logs = proc.logs();
    let token = logs
        .lines()
        .find_map(|l| l.split("generated ADMIN_TOKEN=").nth(1))
        .expect("token printed")
        .trim()
        .to_string();
    assert!(token.len() >= 43, "{token}");
    let c = reqwest::Client::new();
    let (s, body) = call(
        &c,
        reqwest::Method::POST,
        format!("{base}/api/v1/namespaces"),
        &token,
        Some(json!({"code":"dev"})),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        call(
            &c,
            reqwest::Method::GET,
            format!("{base}/api/v1/namespaces"),
            "guess",
            None
        )
        .await
        .0,
        401
    );
    let code = proc.terminate(Duration::from_secs(20)).await;
    let logs = proc.logs();
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        logs.matches(&token).count(),
        1,
        "token printed more than once"
    );
}
