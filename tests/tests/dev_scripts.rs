//! `scripts/dev-up.sh` and `scripts/dev-down.sh` as a developer uses them:
//! a detached run stopped by dev-down, and a foreground run stopped with
//! Ctrl-C (SIGINT); and `scripts/seed-demo.sh` as the compose stack's
//! `demo-seed` service runs it for start-monitoring.sh/.bat. Every port is a
//! free one and the Redis a private one, so nothing collides with a real dev
//! stack on this machine.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::monitoring::{get, load_yaml, scalar, which, workspace_root};
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN};
use aigw_testkit::{bin_path, free_port, RedisServer, TempDir};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::Command;

struct DevEnv {
    run_dir: PathBuf,
    vars: Vec<(&'static str, String)>,
    gateway: u16,
    prometheus: u16,
}

impl DevEnv {
    fn new(redis: &RedisServer, dir: &TempDir) -> DevEnv {
        let run_dir = dir.path().join("run");
        let bin_dir = bin_path("gateway").parent().unwrap().to_path_buf();
        let (gateway, prometheus) = (free_port(), free_port());
        let vars = vec![
            ("AIGW_RUN_DIR", run_dir.display().to_string()),
            ("AIGW_BIN_DIR", bin_dir.display().to_string()),
            ("GATEWAY_PORT", gateway.to_string()),
            ("CONFIG_CENTER_PORT", free_port().to_string()),
            ("TOKEN_SERVICE_PORT", free_port().to_string()),
            ("MOCK_PORT", free_port().to_string()),
            ("PROMETHEUS_PORT", prometheus.to_string()),
            ("REDIS_URL", redis.url()),
            (
                "DATABASE_URL",
                format!("sqlite://{}/cc.db", dir.path().display()),
            ),
            ("ADMIN_TOKEN", "dev-scripts-admin-token".into()),
            ("RUST_LOG", "info".into()),
        ];
        DevEnv {
            run_dir,
            vars,
            gateway,
            prometheus,
        }
    }

    fn command(&self, script: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg(workspace_root().join("scripts").join(script))
            .envs(self.vars.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// The pids dev-up.sh recorded.
    fn pids(&self) -> Vec<(String, u32)> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(&self.run_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pid") {
                let name = p.file_stem().unwrap().to_string_lossy().to_string();
                let pid = std::fs::read_to_string(&p).unwrap().trim().parse().unwrap();
                v.push((name, pid));
            }
        }
        v.sort();
        v
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Whatever a failed test left running is stopped through dev-down.sh.
struct Cleanup<'a>(&'a DevEnv);
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(workspace_root().join("scripts/dev-down.sh"))
            .envs(self.0.vars.iter().map(|(k, v)| (*k, v.as_str())))
            .output();
    }
}

fn key_from(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.contains("Demo API key"))
        .unwrap_or_else(|| panic!("no key printed:\n{stdout}"));
    line.split_whitespace()
        .find(|w| w.starts_with("sk-aigw-"))
        .unwrap_or_else(|| panic!("no sk-aigw- key in {line:?}"))
        .to_string()
}

async fn chat_status(gateway: u16, key: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{gateway}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_up_detached_is_stopped_by_dev_down_and_foreground_by_ctrl_c() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("dev-scripts");
    let env = DevEnv::new(&redis, &dir);
    let _cleanup = Cleanup(&env);
    let with_prometheus = which("prometheus").is_some();

    // ---- detached ----
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        env.command("dev-up.sh").arg("--detach").output(),
    )
    .await
    .expect("dev-up.sh --detach finished")
    .expect("run dev-up.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "dev-up.sh failed:\n{stdout}\n{stderr}"
    );
    let key = key_from(&stdout);
    assert!(
        stdout.contains("sent 10 demo requests through the gateway (10 answered 2xx)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "sent 2 requests to claude-sonnet, an Anthropic instance on the mock (2 answered 2xx)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "curl http://127.0.0.1:{}/v1/chat/completions",
        env.gateway
    )));
    assert!(stdout.contains("from openai import OpenAI"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(env.run_dir.join("demo-api-key"))
            .unwrap()
            .trim(),
        key
    );
    // The printed key works, from outside the script.
    assert_eq!(chat_status(env.gateway, &key).await, 200);

    let pids = env.pids();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = vec!["config-center", "gateway", "mock-upstream", "token-service"];
    if with_prometheus {
        want.push("prometheus");
        want.sort();
        assert!(stdout.contains(&format!(
            "Prometheus            http://127.0.0.1:{}",
            env.prometheus
        )));
        // The generated native config points at the native ports.
        let cfg = std::fs::read_to_string(env.run_dir.join("prometheus.yml")).unwrap();
        assert!(
            cfg.contains(&format!("\"127.0.0.1:{}\"", env.gateway)),
            "{cfg}"
        );
        assert!(!cfg.contains("gateway:8080"), "{cfg}");
        // The console's overview reads it.
        assert!(
            stdout.contains("Console overview      traffic from Prometheus (PROMETHEUS_URL)"),
            "{stdout}"
        );
        let cc_log = std::fs::read_to_string(env.run_dir.join("logs/config-center.log")).unwrap();
        assert!(
            cc_log.contains("the console's overview queries Prometheus"),
            "{cc_log}"
        );
        if let Some(promtool) = which("promtool") {
            let o = std::process::Command::new(promtool)
                .args(["check", "config"])
                .arg(env.run_dir.join("prometheus.yml"))
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        }
    } else {
        println!("prometheus not installed: dev-up.sh runs without it");
    }
    // Redis was reachable, so the script did not start its own.
    assert_eq!(names, want, "started processes");
    for (name, pid) in &pids {
        assert!(alive(*pid), "{name} ({pid}) should run detached");
        let log = env.run_dir.join("logs").join(format!("{name}.log"));
        assert!(log.exists(), "{} missing", log.display());
    }

    let out = env
        .command("dev-down.sh")
        .output()
        .await
        .expect("dev-down.sh");
    let down = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{down}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, pid) in &pids {
        assert!(
            !alive(*pid),
            "{name} ({pid}) still running after dev-down.sh"
        );
        assert!(down.contains(&format!("stopped {name} ({pid})")), "{down}");
    }
    assert!(env.pids().is_empty(), "pid files removed");
    let out = env
        .command("dev-down.sh")
        .output()
        .await
        .expect("dev-down.sh");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to stop"));

    // ---- foreground, stopped with Ctrl-C ----
    let log = dir.path().join("foreground.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut child = env
        .command("dev-up.sh")
        .arg("--no-prometheus")
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .expect("spawn dev-up.sh");
    let mut ready = false;
    for _ in 0..1800 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("press Ctrl-C")
        {
            ready = true;
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "dev-up.sh exited early ({st}):\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "dev-up.sh never got ready:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let pids = env.pids();
    assert_eq!(pids.len(), 4, "{pids:?}");
    let key = key_from(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(chat_status(env.gateway, &key).await, 200);

    let script = child.id().expect("script pid");
    std::process::Command::new("kill")
        .args(["-INT", &script.to_string()])
        .status()
        .unwrap();
    let st = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("dev-up.sh stops after Ctrl-C")
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "exit {st}:\n{text}");
    assert!(text.contains("stopping 4 processes"), "{text}");
    for (name, pid) in &pids {
        assert!(!alive(*pid), "{name} ({pid}) still running after Ctrl-C");
    }
    assert!(env.pids().is_empty(), "pid files removed");
}

/// The compose service `demo-seed`'s environment with its compose host
/// names pointed at `stack`'s processes (and `ADMIN_TOKEN` as exported by
/// the user, which the service passes through).
fn demo_seed_env(stack: &Stack) -> Vec<(String, String)> {
    let compose = load_yaml(&workspace_root().join("docker-compose.dev.yml"));
    let env = get(&compose["services"]["demo-seed"], "environment");
    let hosts = [
        ("http://config-center:8000", stack.cc.url()),
        ("http://gateway:8080", stack.gw(0)),
        ("http://mock-upstream:9000", stack.mocks[0].url()),
    ];
    env.as_hash()
        .expect("demo-seed environment")
        .iter()
        .map(|(k, v)| {
            let k = scalar(k).unwrap();
            let mut v = scalar(v).unwrap();
            for (from, to) in &hosts {
                v = v.replace(from, to);
            }
            if k == "ADMIN_TOKEN" {
                assert_eq!(v, "${ADMIN_TOKEN:-dev-admin-token}");
                v = ADMIN_TOKEN.to_string();
            }
            assert!(
                !v.contains("config-center:")
                    && !v.contains("gateway:")
                    && !v.contains("mock-upstream:"),
                "{k}={v}"
            );
            (k, v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_as_compose_runs_it_seeds_the_namespace_its_example_uses() {
    let stack = Stack::start(StackOptions::default()).await;
    let env = demo_seed_env(&stack);
    let public = env
        .iter()
        .find(|(k, _)| k == "PUBLIC_GATEWAY_URL")
        .map(|(_, v)| v.clone())
        .expect("PUBLIC_GATEWAY_URL");
    let mut keys = Vec::new();
    for run in 1..=2 {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            Command::new("bash")
                .arg(workspace_root().join("scripts/seed-demo.sh"))
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .expect("seed-demo.sh finished")
        .expect("run seed-demo.sh");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "run {run}:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("sent 10 demo requests through the gateway (10 answered 2xx)"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("sent 2 requests to claude-sonnet, an Anthropic instance on the mock (2 answered 2xx)"),
            "run {run}: {stdout}"
        );
        // The printed example: the public gateway URL and the seeded model.
        assert!(
            stdout.contains(&format!("curl {public}/v1/chat/completions")),
            "{stdout}"
        );
        assert!(stdout.contains(r#""model":"gpt-4o-mini""#), "{stdout}");
        assert!(!stdout.contains("also in"), "no key file unless asked for");
        keys.push(key_from(&stdout));
    }
    assert_ne!(keys[0], keys[1], "every run makes a new key");

    // The namespace, model and instance the example uses exist once, and
    // both printed keys belong to it and work.
    let ns = stack
        .admin(reqwest::Method::GET, "/api/v1/namespaces/demo", None)
        .await;
    assert_eq!(ns.status, 200, "{}", ns.text);
    let inst = stack
        .admin(reqwest::Method::GET, "/api/v1/instances/mock-1", None)
        .await;
    assert_eq!(inst.body["base_url"], stack.mock_base(0), "{}", inst.text);
    assert_eq!(inst.body["namespace_code"], "demo");
    // The translated provider of the demo: an Anthropic instance on the
    // same mock.
    let claude = stack
        .admin(
            reqwest::Method::GET,
            "/api/v1/instances/mock-claude-1",
            None,
        )
        .await;
    assert_eq!(
        (&claude.body["provider"], &claude.body["base_url"]),
        (
            &serde_json::json!("anthropic"),
            &serde_json::json!(stack.mock_base(0))
        ),
        "{}",
        claude.text
    );
    let listed = stack
        .admin(
            reqwest::Method::GET,
            "/api/v1/namespaces/demo/api-keys",
            None,
        )
        .await;
    let items = listed.body["items"].as_array().expect("key list");
    assert_eq!(items.len(), 2, "{}", listed.text);
    for key in &keys {
        assert!(
            items
                .iter()
                .any(|k| key.starts_with(k["prefix"].as_str().unwrap())),
            "{key} is one of demo's keys: {}",
            listed.text
        );
        assert_eq!(chat_status(stack.gateways[0].port, key).await, 200);
    }
    // Each run: one warm-up answer plus 10 plus 2 to claude-sonnet, all 200
    // and all in `demo` (plus the two checks above).
    let want = 2 * 13 + 2;
    let got = stack
        .settle(Duration::from_secs(30), &want, || {
            stack.int("metrics:ns:demo:status:200")
        })
        .await;
    assert_eq!(got, want, "200s counted for namespace demo");
}
