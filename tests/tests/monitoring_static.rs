//! Static checks of the deployment and monitoring files: the compose file,
//! the Dockerfile, the Prometheus config and alert rules (through
//! `promtool`), the Grafana provisioning and dashboards, and the scripts.

use aigw_e2e::k8s::{env_names_read, seconds, shutdown_bound};
use aigw_e2e::monitoring::{
    dashboards, get, keys, load_yaml, metric_names, panel_queries, panels, parse_label_values,
    promtool_check_config, scalar, strings, variables, which, workspace_binaries, workspace_root,
    yaml_tags,
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
    // The scrape jobs' bearer token file, from $METRICS_TOKEN.
    let prom_configs = get(&services["prometheus"], "configs");
    assert_eq!(
        scalar(&prom_configs[0]["source"]).as_deref(),
        Some("metrics_token")
    );
    assert_eq!(
        scalar(&prom_configs[0]["target"]).as_deref(),
        Some("/etc/prometheus/metrics_token")
    );
    assert_eq!(
        scalar(&compose["configs"]["metrics_token"]["content"]).as_deref(),
        Some("${METRICS_TOKEN:-}")
    );
    for svc in ["gateway", "config-center", "token-service"] {
        assert_eq!(
            env_map(&services[svc])
                .get("METRICS_TOKEN")
                .map(String::as_str),
            Some("${METRICS_TOKEN:-}"),
            "{svc} gets METRICS_TOKEN"
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

    // Healthchecks on every long-running service (not the one-shot seeder,
    // which runs only when asked for through its profile); depends_on names
    // real services with conditions.
    for svc in &names {
        let s = &services[svc.as_str()];
        if get(s, "profiles").is_badvalue() {
            assert!(
                !get(s, "healthcheck").is_badvalue(),
                "{svc} has no healthcheck"
            );
        }
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
    for svc in ["gateway", "config-center", "token-service"] {
        assert!(
            !get(&services[svc], "depends_on").is_badvalue(),
            "{svc} should wait for what it needs"
        );
    }
    // The monitoring comes up whatever state the services are in: Prometheus
    // waits for nothing, Grafana only for Prometheus to have started.
    assert!(
        get(&services["prometheus"], "depends_on").is_badvalue(),
        "prometheus must not wait for the services"
    );
    assert_eq!(
        keys(get(&services["grafana"], "depends_on")),
        ["prometheus"],
        "grafana waits for prometheus only"
    );
    assert_eq!(
        scalar(&get(&services["grafana"], "depends_on")["prometheus"]["condition"]).as_deref(),
        Some("service_started")
    );

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
        // METRICS_TOKEN, when set, is sent from the file beside the config.
        assert_eq!(
            scalar(&j["authorization"]["credentials_file"]).as_deref(),
            Some("metrics_token"),
            "{name}"
        );
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

    if !promtool_check_config(&root.join("monitoring/prometheus.yml")) {
        return;
    }
    let promtool = which("promtool").expect("promtool");
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
                "Token breakdown",
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
        "scripts/seed-demo.sh",
        "start-monitoring.sh",
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
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains('\r'), "{s} must have LF line ends");
    }
    let bat = std::fs::read_to_string(root.join("start-monitoring.bat")).expect("bat");
    // Windows batch files need CRLF line ends (.gitattributes keeps them).
    assert!(bat.lines().count() > 5 && bat.split('\n').all(|l| l.is_empty() || l.ends_with('\r')));
    let attributes = std::fs::read_to_string(root.join(".gitattributes")).expect(".gitattributes");
    assert!(attributes
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["*.bat", "text", "eol=crlf"]));
    assert!(attributes
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["*.sh", "text", "eol=lf"]));
}

/// The one-click start, as the product specification names it: at the
/// repository root, for Windows and for everything else, both starting the
/// compose stack and seeding the demo through the compose service
/// `demo-seed`, and printing only addresses that compose publishes.
#[test]
fn one_click_start_scripts_start_the_stack_and_seed_the_demo() {
    let root = workspace_root();
    let spec = std::fs::read_to_string(root.parent().unwrap().join("shared/product-spec.md"));
    if let Ok(spec) = spec {
        assert!(
            spec.contains("start-monitoring.bat"),
            "the spec names the script"
        );
    }
    assert!(!root.join("scripts/start-monitoring.sh").exists());
    assert!(!root.join("scripts/start-monitoring.bat").exists());
    let compose = load_yaml(&root.join("docker-compose.dev.yml"));
    let services = &compose["services"];
    let mut published = BTreeSet::new();
    for svc in keys(services) {
        for p in strings(get(&services[svc.as_str()], "ports")) {
            published.insert(port_pair(&p).0);
        }
    }
    for script in ["start-monitoring.sh", "start-monitoring.bat"] {
        let text = std::fs::read_to_string(root.join(script)).unwrap();
        // Normalised: the .sh spells the file list through an array.
        let flat = text.replace(
            "\"${COMPOSE[@]}\" \"${FILE[@]}\"",
            "docker compose -f docker-compose.dev.yml",
        );
        let up = flat
            .find("docker compose -f docker-compose.dev.yml up -d --build")
            .unwrap_or_else(|| panic!("{script} starts the stack"));
        let seed = flat
            .find("docker compose -f docker-compose.dev.yml run --rm demo-seed")
            .unwrap_or_else(|| panic!("{script} seeds the demo"));
        assert!(up < seed, "{script}: start, then seed");
        for url in text.split("http://localhost:").skip(1) {
            let port: String = url.chars().take_while(|c| c.is_ascii_digit()).collect();
            assert!(
                published.contains(&port),
                "{script} prints localhost:{port}, which compose does not publish"
            );
        }
        assert!(text.contains("docs/operations.md") || text.contains("docs\\operations.md"));
    }
    // What demo-seed runs, and how.
    let seed = &services["demo-seed"];
    assert_eq!(
        strings(get(seed, "profiles")),
        ["seed"],
        "runs only when asked for"
    );
    assert_eq!(
        scalar(get(seed, "image")).as_deref(),
        scalar(get(&services["gateway"], "image")).as_deref(),
        "the stack's image"
    );
    let cmd = strings(get(seed, "command"));
    assert_eq!(cmd[0], "bash");
    let mounts = strings(get(seed, "volumes"));
    assert_eq!(
        mounts,
        [format!("./scripts/seed-demo.sh:{}:ro", cmd[1])],
        "runs the mounted script"
    );
    let deps = keys(get(seed, "depends_on"));
    for d in ["config-center", "gateway", "mock-upstream"] {
        assert!(deps.contains(&d.to_string()), "demo-seed waits for {d}");
        assert_eq!(
            scalar(&get(seed, "depends_on")[d]["condition"]).as_deref(),
            Some("service_healthy")
        );
    }
    // Its URLs name the compose services at the ports they listen on.
    let env = env_map(seed);
    let listen = |svc: &str, var: &str| env_map(&services[svc])[var].clone();
    assert_eq!(
        env["CONFIG_CENTER_URL"],
        format!(
            "http://config-center:{}",
            listen("config-center", "CONFIG_CENTER_PORT")
        )
    );
    assert_eq!(
        env["GATEWAY_URL"],
        format!("http://gateway:{}", listen("gateway", "GATEWAY_PORT"))
    );
    assert_eq!(
        env["MOCK_BASE_URL"],
        format!(
            "http://mock-upstream:{}/v1",
            listen("mock-upstream", "MOCK_PORT")
        )
    );
    assert_eq!(env["PUBLIC_GATEWAY_URL"], "http://localhost:8080");
    assert_eq!(
        env["ADMIN_TOKEN"],
        env_map(&services["config-center"])["ADMIN_TOKEN"],
        "the config-center's token"
    );
    // Every variable it sets is one the script reads.
    let script = std::fs::read_to_string(root.join("scripts/seed-demo.sh")).unwrap();
    for k in env.keys() {
        assert!(
            script.contains(&format!("{k}=\"${{{k}:-")),
            "seed-demo.sh does not read {k}"
        );
    }
}

/// Every variable a compose service of ours sets is read by its binary's
/// code, and Docker waits longer than the service may take to stop.
#[test]
fn compose_services_set_only_variables_their_code_reads_and_stop_in_time() {
    let root = workspace_root();
    let compose = load_yaml(&root.join("docker-compose.dev.yml"));
    let services = &compose["services"];
    for svc in keys(services) {
        let s = &services[svc.as_str()];
        if get(s, "build").is_badvalue() {
            continue;
        }
        let bin = strings(get(s, "command"))[0].clone();
        let read = env_names_read(&format!("services/{bin}"));
        let env = env_map(s);
        for k in env.keys() {
            assert!(
                read.contains(k),
                "compose {svc} sets {k}, which {bin} does not read"
            );
        }
        let grace = seconds(&scalar(get(s, "stop_grace_period")).expect("stop_grace_period"));
        if ["gateway", "config-center", "token-service"].contains(&bin.as_str()) {
            let bound = shutdown_bound(&bin, &env);
            assert!(
                grace > bound,
                "{svc}: stop_grace_period {grace}s must exceed {bound}s"
            );
        }
    }
}

/// `docker-compose.scale.yml` lifts what keeps a service to one container:
/// the fixed container name and host port, and a scrape config with one
/// fixed target per job.
#[test]
fn compose_scale_override_lets_the_gateway_and_token_service_scale() {
    let root = workspace_root();
    let base = load_yaml(&root.join("docker-compose.dev.yml"));
    let text = std::fs::read_to_string(root.join("docker-compose.scale.yml")).unwrap();
    let over = load_yaml(&root.join("docker-compose.scale.yml"));
    let tags: BTreeSet<(String, String)> = yaml_tags(&text).into_iter().collect();
    let scaled = ["gateway", "token-service"];
    assert_eq!(
        keys(&over["services"]),
        ["gateway", "token-service", "prometheus"]
    );
    for svc in scaled {
        assert!(
            tags.contains(&(format!("services.{svc}.container_name"), "!reset".into())),
            "{svc}: container_name reset: {tags:?}"
        );
        assert!(
            tags.contains(&(format!("services.{svc}.ports"), "!override".into())),
            "{svc}: ports replaced"
        );
        let base_ports = strings(get(&base["services"][svc], "ports"));
        let ports = strings(&over["services"][svc]["ports"]);
        assert_eq!(ports.len(), 1);
        let (host, container) = port_pair(&ports[0]);
        let (base_host, base_container) = port_pair(&base_ports[0]);
        assert_eq!(container, base_container, "{svc}");
        let (lo, hi) = host
            .split_once('-')
            .unwrap_or_else(|| panic!("{svc}: a host port range"));
        assert_eq!(lo, base_host, "{svc}: the range starts at the usual port");
        let n = hi.parse::<u32>().unwrap() - lo.parse::<u32>().unwrap() + 1;
        assert!(n >= 3, "{svc}: room for at least 3 replicas");
    }
    // No other tag: anything else merges as compose normally does.
    assert_eq!(tags.len(), 2 * scaled.len(), "{tags:?}");
    // Published host ports stay disjoint after the override.
    let mut used: Vec<(String, u32, u32)> = Vec::new();
    for svc in keys(&base["services"]) {
        let ports = if scaled.contains(&svc.as_str()) {
            strings(&over["services"][svc.as_str()]["ports"])
        } else {
            strings(get(&base["services"][svc.as_str()], "ports"))
        };
        for p in ports {
            let host = port_pair(&p).0;
            let (lo, hi) = host.split_once('-').unwrap_or((&host, &host));
            let (lo, hi) = (lo.parse().unwrap(), hi.parse().unwrap());
            for (other, a, b) in &used {
                assert!(
                    hi < *a || lo > *b,
                    "{svc} {lo}-{hi} overlaps {other} {a}-{b}"
                );
            }
            used.push((svc.clone(), lo, hi));
        }
    }
    // Prometheus gets a config equal to prometheus.yml except that the
    // scaled jobs discover every replica by DNS.
    let mounts = strings(&over["services"]["prometheus"]["volumes"]);
    assert_eq!(
        mounts,
        ["./monitoring/prometheus-scaled.yml:/etc/prometheus/prometheus.yml:ro"]
    );
    let plain = load_yaml(&root.join("monitoring/prometheus.yml"));
    let scaled_cfg = load_yaml(&root.join("monitoring/prometheus-scaled.yml"));
    assert_eq!(plain["global"], scaled_cfg["global"]);
    assert_eq!(plain["rule_files"], scaled_cfg["rule_files"]);
    let jobs = |c: &Yaml| -> Vec<String> {
        c["scrape_configs"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|j| scalar(&j["job_name"]).unwrap())
            .collect()
    };
    assert_eq!(jobs(&plain), jobs(&scaled_cfg));
    for (a, b) in plain["scrape_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .zip(scaled_cfg["scrape_configs"].as_vec().unwrap())
    {
        let job = scalar(&a["job_name"]).unwrap();
        assert_eq!(a["authorization"], b["authorization"], "{job}");
        if scaled.contains(&job.as_str()) {
            let target = strings(&a["static_configs"][0]["targets"]).remove(0);
            let (host, port) = target.split_once(':').unwrap();
            let sd = &b["dns_sd_configs"][0];
            assert_eq!(strings(&sd["names"]), [host], "{job}");
            assert_eq!(scalar(&sd["type"]).as_deref(), Some("A"), "{job}");
            assert_eq!(scalar(&sd["port"]).as_deref(), Some(port), "{job}");
            assert!(b["static_configs"].is_badvalue(), "{job}");
        } else {
            assert_eq!(a, b, "{job} unchanged");
        }
    }
    promtool_check_config(&root.join("monitoring/prometheus-scaled.yml"));
}

/// Every document a README, doc, script or deployment file names exists.
#[test]
fn no_file_names_a_missing_document() {
    let root = workspace_root();
    let mut files = vec![
        root.join("README.md"),
        root.join("ARCHITECTURE.md"),
        root.join("start-monitoring.sh"),
        root.join("start-monitoring.bat"),
        root.join("docker-compose.dev.yml"),
        root.join("docker-compose.scale.yml"),
    ];
    for dir in ["docs", "scripts"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            // Text files only (docs/img holds the console's screenshots).
            if e.path().is_file() {
                files.push(e.path());
            }
        }
    }
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap().replace('\\', "/");
        for (i, _) in text.match_indices("docs/") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            if !name.ends_with(".md") {
                continue;
            }
            checked += 1;
            assert!(
                root.join(name).exists(),
                "{} names {name}, which does not exist",
                f.display()
            );
        }
    }
    assert!(checked > 10, "{checked} references checked");
}
