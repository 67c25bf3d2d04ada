//! Static checks of the deployment and monitoring files: the compose file,
//! the Dockerfile, the Prometheus config and alert rules (through
//! `promtool`), the Grafana provisioning and dashboards, and the scripts.

use aigw_e2e::monitoring::{
    dashboards, get, keys, load_yaml, metric_names, panel_queries, panels, parse_label_values,
    scalar, strings, variables, which, workspace_binaries, workspace_root,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use yaml_rust2::Yaml;

const DATASOURCE_UID: &str = "aigw-prometheus";

/// `"8080:8080"` → ("8080", "8080"), host and container port.
fn port_pair(p: &str) -> (String, String) {
    let parts: Vec<&str> = p.split(':').collect();
    let container = parts.last().unwrap().split('/').next().unwrap().to_string();
    let host = if parts.len() >= 2 {
        parts[parts.len() - 2].to_string()
    } else {
        container.clone()
    };
    (host, container)
}

fn env_map(service: &Yaml) -> BTreeMap<String, String> {
    let env = get(service, "environment");
    match env {
        Yaml::Hash(h) => h
            .iter()
            .filter_map(|(k, v)| Some((scalar(k)?, scalar(v).unwrap_or_default())))
            .collect(),
        Yaml::Array(a) => a
            .iter()
            .filter_map(scalar)
            .filter_map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

#[test]
fn compose_file_names_ports_mounts_and_binaries() {
    let root = workspace_root();
    let compose = load_yaml(&root.join("docker-compose.dev.yml"));
    let services = &compose["services"];
    let names = keys(services);
    for s in [
        "redis",
        "config-center",
        "token-service",
        "gateway",
        "prometheus",
        "grafana",
        "mock-upstream",
    ] {
        assert!(
            names.contains(&s.to_string()),
            "service {s} missing: {names:?}"
        );
    }

    // Container names and published host ports, as the issue lists them.
    let expect = [
        ("redis", "ai-gateway-redis-dev", None),
        ("gateway", "ai-gateway-gateway-dev", Some(("8080", "8080"))),
        (
            "config-center",
            "ai-gateway-config-center-dev",
            Some(("8000", "8000")),
        ),
        ("token-service", "ai-gateway-token-service-dev", None),
        (
            "prometheus",
            "ai-gateway-prometheus-dev",
            Some(("9090", "9090")),
        ),
        ("grafana", "ai-gateway-grafana-dev", Some(("3001", "3000"))),
    ];
    for (svc, container, port) in expect {
        let s = &services[svc];
        assert_eq!(
            scalar(get(s, "container_name")).as_deref(),
            Some(container),
            "{svc}"
        );
        if let Some((host, inner)) = port {
            let ports: Vec<(String, String)> = strings(get(s, "ports"))
                .iter()
                .map(|p| port_pair(p))
                .collect();
            assert!(
                ports.contains(&(host.to_string(), inner.to_string())),
                "{svc} should publish {host}:{inner}, has {ports:?}"
            );
        }
    }
    // No two services publish the same host port.
    let mut published = BTreeSet::new();
    for svc in &names {
        for p in strings(get(&services[svc.as_str()], "ports")) {
            let (host, _) = port_pair(&p);
            assert!(
                published.insert(host.clone()),
                "host port {host} published twice"
            );
        }
    }

    // The services listen where Prometheus scrapes them (token-service on 8000).
    let ports_env = [
        ("gateway", "GATEWAY_PORT", "8080"),
        ("config-center", "CONFIG_CENTER_PORT", "8000"),
        ("token-service", "TOKEN_SERVICE_PORT", "8000"),
        ("mock-upstream", "MOCK_PORT", "9000"),
    ];
    for (svc, var, port) in ports_env {
        assert_eq!(
            env_map(&services[svc]).get(var).map(String::as_str),
            Some(port),
            "{svc} {var}"
        );
    }
    let grafana_env = env_map(&services["grafana"]);
    assert_eq!(
        grafana_env
            .get("GF_SECURITY_ADMIN_USER")
            .map(String::as_str),
        Some("admin")
    );
    assert_eq!(
        grafana_env
            .get("GF_SECURITY_ADMIN_PASSWORD")
            .map(String::as_str),
        Some("admin123")
    );

    // Every bind mount exists; every named volume is declared; data lives in volumes.
    let declared = keys(&compose["volumes"]);
    let mut mounts: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for svc in &names {
        for v in strings(get(&services[svc.as_str()], "volumes")) {
            let mut parts = v.splitn(3, ':');
            let (src, dst) = (
                parts.next().unwrap().to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            if src.starts_with("./") || src.starts_with('/') {
                let p = root.join(src.trim_start_matches("./"));
                assert!(p.exists(), "{svc} mounts {src}, which does not exist");
            } else {
                assert!(
                    declared.contains(&src),
                    "{svc} uses volume {src}, not declared in volumes:"
                );
            }
            mounts.entry(svc.clone()).or_default().push((src, dst));
        }
    }
    let has_volume_at = |svc: &str, dst: &str| {
        mounts
            .get(svc)
            .is_some_and(|m| m.iter().any(|(s, d)| d == dst && declared.contains(s)))
    };
    assert!(has_volume_at("redis", "/data"), "Redis data volume");
    assert!(
        has_volume_at("config-center", "/app/data"),
        "SQLite data volume"
    );
    assert!(
        has_volume_at("prometheus", "/prometheus"),
        "Prometheus data volume"
    );
    let prom_mounts = &mounts["prometheus"];
    for (src, dst) in [
        (
            "./monitoring/prometheus.yml",
            "/etc/prometheus/prometheus.yml",
        ),
        // Next to the config, where its relative `rule_files` entry points.
        ("./monitoring/alerts.yml", "/etc/prometheus/alerts.yml"),
    ] {
        assert!(
            prom_mounts.contains(&(src.to_string(), dst.to_string())),
            "prometheus should mount {src} at {dst}: {prom_mounts:?}"
        );
    }
    let prom_cmd = strings(get(&services["prometheus"], "command"));
    assert!(
        prom_cmd.contains(&"--storage.tsdb.retention.time=30d".to_string()),
        "retention 30 days: {prom_cmd:?}"
    );
    assert!(prom_cmd.contains(&"--config.file=/etc/prometheus/prometheus.yml".to_string()));

    // Grafana loads the provisioning and the dashboards where the provider looks.
    let provider =
        load_yaml(&root.join("monitoring/grafana/provisioning/dashboards/ai-gateway.yml"));
    let provider_path =
        scalar(&provider["providers"][0]["options"]["path"]).expect("provider path");
    let gmounts = &mounts["grafana"];
    assert!(gmounts.contains(&(
        "./monitoring/grafana/provisioning".to_string(),
        "/etc/grafana/provisioning".to_string()
    )));
    assert!(
        gmounts.contains(&(
            "./monitoring/grafana/dashboards".to_string(),
            provider_path.clone()
        )),
        "dashboards mounted at the provider path {provider_path}: {gmounts:?}"
    );

    // Healthchecks everywhere; depends_on names real services with conditions.
    for svc in &names {
        let s = &services[svc.as_str()];
        assert!(
            !get(s, "healthcheck").is_badvalue(),
            "{svc} has no healthcheck"
        );
        if let Yaml::Hash(deps) = get(s, "depends_on") {
            for (dep, cond) in deps {
                let dep = scalar(dep).unwrap();
                assert!(names.contains(&dep), "{svc} depends on unknown {dep}");
                let c = scalar(&cond["condition"]).unwrap_or_default();
                assert!(
                    [
                        "service_healthy",
                        "service_started",
                        "service_completed_successfully"
                    ]
                    .contains(&c.as_str()),
                    "{svc} → {dep}: condition {c:?}"
                );
            }
        }
    }
    for svc in [
        "gateway",
        "config-center",
        "token-service",
        "prometheus",
        "grafana",
    ] {
        assert!(
            !get(&services[svc], "depends_on").is_badvalue(),
            "{svc} should wait for what it needs"
        );
    }

    // Every built service runs a workspace binary the Dockerfile builds.
    let bins = workspace_binaries();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).expect("Dockerfile");
    let mut built = 0;
    for svc in &names {
        let s = &services[svc.as_str()];
        let build = get(s, "build");
        if build.is_badvalue() {
            continue;
        }
        built += 1;
        let file = scalar(&build["dockerfile"]).unwrap_or_else(|| "Dockerfile".into());
        assert!(root.join(&file).exists(), "{svc} builds {file}");
        let cmd = strings(get(s, "command"));
        let bin = cmd
            .first()
            .unwrap_or_else(|| panic!("{svc} has no command"));
        assert!(
            bins.contains(bin),
            "{svc} runs {bin}, not a workspace binary ({bins:?})"
        );
        assert!(
            dockerfile.contains(&format!("--bin {bin}")),
            "the Dockerfile does not build {bin}"
        );
    }
    assert_eq!(
        built, 4,
        "gateway, config-center, token-service and the mock are built"
    );
    assert!(dockerfile.contains("AS build") && dockerfile.contains("--release"));
    assert!(
        dockerfile.contains("FROM debian:bookworm-slim"),
        "small runtime stage"
    );
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    assert!(
        ignore.lines().any(|l| l.trim() == "target/"),
        "target/ stays out of the build context"
    );
}

#[test]
fn prometheus_config_targets_and_promtool() {
    let root = workspace_root();
    let cfg = load_yaml(&root.join("monitoring/prometheus.yml"));
    assert_eq!(
        scalar(&cfg["global"]["scrape_interval"]).as_deref(),
        Some("15s")
    );
    assert_eq!(
        scalar(&cfg["global"]["evaluation_interval"]).as_deref(),
        Some("15s")
    );
    let mut jobs = BTreeMap::new();
    for j in cfg["scrape_configs"].as_vec().expect("scrape_configs") {
        let name = scalar(&j["job_name"]).unwrap();
        let targets = strings(&j["static_configs"][0]["targets"]);
        let path = scalar(&j["metrics_path"]).unwrap_or_else(|| "/metrics".into());
        assert_eq!(path, "/metrics", "{name}");
        jobs.insert(name, targets);
    }
    assert_eq!(
        jobs,
        BTreeMap::from([
            ("gateway".to_string(), vec!["gateway:8080".to_string()]),
            (
                "config-center".to_string(),
                vec!["config-center:8000".to_string()]
            ),
            (
                "token-service".to_string(),
                vec!["token-service:8000".to_string()]
            ),
        ])
    );
    assert_eq!(strings(&cfg["rule_files"]), vec!["alerts.yml".to_string()]);

    let Some(promtool) = which("promtool") else {
        println!("SKIPPED promtool checks: promtool not installed (scripts/test.sh installs it)");
        return;
    };
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(root.join("monitoring/prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tests: Vec<_> = std::fs::read_dir(root.join("monitoring/tests"))
        .expect("monitoring/tests")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    assert!(!tests.is_empty());
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .args(&tests)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let root = workspace_root();
    let rules = load_yaml(&root.join("monitoring/alerts.yml"));
    let mut alerts = BTreeSet::new();
    for g in rules["groups"].as_vec().unwrap() {
        for r in g["rules"].as_vec().unwrap() {
            let name = scalar(&r["alert"]).expect("only alerting rules");
            assert!(
                ["warning", "critical"].contains(
                    &scalar(&r["labels"]["severity"])
                        .unwrap_or_default()
                        .as_str()
                ),
                "{name} needs a severity"
            );
            assert!(
                scalar(&r["annotations"]["summary"]).is_some(),
                "{name} needs a summary"
            );
            alerts.insert(name);
        }
    }
    // The list: error rate, P95 latency, instance unhealthy, service
    // down, Redis unreachable, usage stream lag, budget nearly spent.
    for a in [
        "AIGatewayHighErrorRate",
        "AIGatewayHighLatencyP95",
        "AIGatewayInstanceUnhealthy",
        "AIGatewayServiceDown",
        "AIGatewayRedisUnreachable",
        "TokenServiceUsageLagGrowing",
        "NamespaceBudgetNearlySpent",
    ] {
        assert!(alerts.contains(a), "{a} missing");
    }

    let mut fires = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("monitoring/tests")).unwrap() {
        let t = load_yaml(&entry.unwrap().path());
        for case in t["tests"].as_vec().unwrap() {
            for a in case["alert_rule_test"].as_vec().into_iter().flatten() {
                let name = scalar(&a["alertname"]).unwrap();
                match a["exp_alerts"].as_vec() {
                    Some(v) if !v.is_empty() => fires.insert(name),
                    _ => silent.insert(name),
                };
            }
        }
    }
    for a in &alerts {
        assert!(fires.contains(a), "no unit test fires {a}");
        assert!(silent.contains(a), "no unit test shows {a} staying silent");
    }
}

#[test]
fn grafana_provisioning_and_dashboards() {
    let root = workspace_root();
    let ds = load_yaml(&root.join("monitoring/grafana/provisioning/datasources/prometheus.yml"));
    let d0 = &ds["datasources"][0];
    assert_eq!(scalar(&d0["type"]).as_deref(), Some("prometheus"));
    assert_eq!(scalar(&d0["uid"]).as_deref(), Some(DATASOURCE_UID));
    assert_eq!(
        scalar(&d0["url"]).as_deref(),
        Some("http://prometheus:9090")
    );
    let provider =
        load_yaml(&root.join("monitoring/grafana/provisioning/dashboards/ai-gateway.yml"));
    assert_eq!(
        scalar(&provider["providers"][0]["folder"]).as_deref(),
        Some("AI Gateway")
    );
    assert_eq!(
        scalar(&provider["providers"][0]["type"]).as_deref(),
        Some("file")
    );

    let ds_ok = |v: &Value| v.is_null() || v["uid"] == DATASOURCE_UID;
    let ds_ok = &ds_ok;
    let all = dashboards();
    let files: Vec<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(files, ["model.json", "namespace.json", "overview.json"]);
    let mut uids = BTreeSet::new();
    for (file, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{file}: duplicate uid"
        );
        assert_eq!(d["refresh"], "30s", "{file}");
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}");
        let mut ids = BTreeSet::new();
        for p in panels(d) {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                ids.insert(p["id"].as_i64().unwrap()),
                "{file}: duplicate panel id"
            );
            if p["type"] == "row" {
                continue;
            }
            assert!(!title.is_empty(), "{file}: panel without title");
            assert!(
                ds_ok(&p["datasource"]),
                "{file}/{title}: datasource {}",
                p["datasource"]
            );
            let targets = p["targets"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}/{title}: no targets"));
            assert!(!targets.is_empty(), "{file}/{title}: no targets");
            for t in targets {
                assert!(ds_ok(&t["datasource"]), "{file}/{title}");
                let expr = t["expr"].as_str().unwrap_or_default();
                assert!(!expr.trim().is_empty(), "{file}/{title}: empty query");
                assert!(
                    !metric_names(expr).is_empty(),
                    "{file}/{title}: reads no metric: {expr}"
                );
            }
            let pos = &p["gridPos"];
            assert!(
                pos["w"].as_i64().unwrap() > 0
                    && pos["x"].as_i64().unwrap() + pos["w"].as_i64().unwrap() <= 24
            );
        }
    }

    // The panels the issue asks for, by title.
    let titles = |file: &str| -> BTreeSet<String> {
        let d = &all.iter().find(|(f, _)| f == file).unwrap().1;
        panels(d)
            .iter()
            .filter_map(|p| p["title"].as_str().map(String::from))
            .collect()
    };
    let want: &[(&str, &[&str])] = &[
        (
            "overview.json",
            &[
                "Request rate",
                "Total requests",
                "Response time",
                "Concurrent requests by namespace",
                "Request distribution by namespace",
                "Status code distribution",
                "Error rate",
            ],
        ),
        (
            "namespace.json",
            &[
                "Request rate",
                "Response time",
                "Concurrent requests",
                "Status codes",
                "Token usage",
                "Cost",
            ],
        ),
        (
            "model.json",
            &[
                "Request rate",
                "P95 response time",
                "Tokens in and out",
                "Cost",
                "Errors",
                "Time to first token (P95)",
            ],
        ),
    ];
    for (file, want) in want {
        let have = titles(file);
        for t in *want {
            assert!(have.contains(*t), "{file} lacks panel {t:?}: {have:?}");
        }
    }
    // Response time shows mean and P95.
    let overview_rt: Vec<_> = panel_queries()
        .into_iter()
        .filter(|q| q.dashboard == "overview.json" && q.panel == "Response time")
        .map(|q| q.expr)
        .collect();
    assert!(overview_rt
        .iter()
        .any(|e| e.contains("histogram_quantile(0.95")));
    assert!(overview_rt
        .iter()
        .any(|e| e.contains("_sum") || e.contains("response_time_seconds")));

    // Variables: multi-select namespace_code and model, values from the metrics.
    let vars = variables();
    let ns = vars
        .iter()
        .find(|v| v.dashboard == "namespace.json" && v.name == "namespace_code")
        .expect("namespace_code variable");
    assert!(ns.multi && ns.include_all, "{ns:?}");
    assert_eq!(
        parse_label_values(&ns.query).map(|(_, l)| l).as_deref(),
        Some("namespace_code")
    );
    let m = vars
        .iter()
        .find(|v| v.dashboard == "model.json" && v.name == "model")
        .expect("model variable");
    assert_eq!(
        parse_label_values(&m.query).map(|(_, l)| l).as_deref(),
        Some("model")
    );
    // Every panel of a dashboard with a variable filters by it.
    for q in panel_queries() {
        if q.dashboard == "namespace.json" {
            assert!(
                q.expr.contains("$namespace_code"),
                "{}: {}",
                q.panel,
                q.expr
            );
        }
        if q.dashboard == "model.json" {
            assert!(q.expr.contains("$model"), "{}: {}", q.panel, q.expr);
        }
    }
    println!(
        "{} panel queries in {} dashboards",
        panel_queries().len(),
        all.len()
    );
}

#[test]
fn scripts_parse_and_are_executable() {
    let root = workspace_root();
    for s in [
        "scripts/dev-up.sh",
        "scripts/dev-down.sh",
        "scripts/start-monitoring.sh",
    ] {
        let p = root.join(s);
        let out = Command::new("bash")
            .arg("-n")
            .arg(&p)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{s} is not executable");
    }
    let bat = std::fs::read_to_string(root.join("scripts/start-monitoring.bat")).expect("bat");
    assert!(bat.contains("docker compose -f docker-compose.dev.yml up -d"));
    assert!(bat.contains("http://localhost:3001"));
    // Windows batch files need CRLF line ends.
    assert!(bat.lines().count() > 5 && bat.split('\n').all(|l| l.is_empty() || l.ends_with('\r')));
}
