//! The Kubernetes manifests of `deploy/k8s`: every kustomization renders
//! (and renders as `kubectl kustomize` does), every object passes the
//! Kubernetes schemas (and the ServiceMonitor the prometheus-operator's),
//! and what the manifests say agrees with the services themselves: the
//! environment variables they read, their ports, probe routes, shutdown
//! bounds, image user, and Prometheus discovery. The services are started
//! with exactly the environment the manifests give them.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::k8s::{
    by_id, comparable, container_env, data_value, env_file, env_names_read, files_used, id,
    kubectl_kustomize, main_container, named, of_kind, pod_spec, render, shutdown_bound, EnvSource,
    KUSTOMIZATIONS,
};
use aigw_e2e::monitoring::{
    load_yaml, promtool_check_config, scalar, strings, which, workspace_binaries, workspace_root,
};
use aigw_testkit::{free_port, PgDatabase, Proc, RedisServer, TempDir};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Kubernetes versions whose schemas the manifests must pass: the oldest
/// release they are written for and the newest the pinned
/// kubernetes-validate knows.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

/// The three services: Deployment (and binary) name, crate, port variable,
/// and the metric prefix of their own `/metrics`.
const SERVICES: [(&str, &str, &str, &str); 3] = [
    ("gateway", "services/gateway", "GATEWAY_PORT", "ai_gateway_"),
    (
        "config-center",
        "services/config-center",
        "CONFIG_CENTER_PORT",
        "config_center_",
    ),
    (
        "token-service",
        "services/token-service",
        "TOKEN_SERVICE_PORT",
        "token_service_",
    ),
];

/// The keys of the Secret `aigw-secrets` (DESIGN.md's configuration).
const SECRET_KEYS: [&str; 4] = ["ADMIN_TOKEN", "DATABASE_URL", "METRICS_TOKEN", "REDIS_URL"];

/// Keys of `aigw-secrets` a Deployment reads when present.
const OPTIONAL_SECRET_KEYS: [&str; 1] = ["PROMETHEUS_URL"];

const PRE_STOP_SECONDS: u64 = 5;

fn dev() -> Vec<Value> {
    render("deploy/k8s/overlays/dev")
}

fn prod() -> Vec<Value> {
    render("deploy/k8s/overlays/prod")
}

fn int(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"))
}

/// Literal values of a container's environment.
fn literal_env(c: &Value) -> BTreeMap<String, String> {
    container_env(c)
        .into_iter()
        .filter_map(|(k, s)| match s {
            EnvSource::Value(v) => Some((k, v)),
            _ => None,
        })
        .collect()
}

fn deploy_files() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.canonicalize().unwrap());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&workspace_root().join("deploy/k8s"), &mut out);
    out
}

#[test]
fn every_kustomization_renders_as_kubectl_kustomize_does() {
    let mut used = BTreeSet::new();
    for dir in KUSTOMIZATIONS {
        let ours = by_id(&render(dir));
        assert!(!ours.is_empty(), "{dir} renders nothing");
        used.extend(files_used(dir));
        match kubectl_kustomize(dir) {
            Some(theirs) => {
                let theirs = by_id(&theirs);
                let a: BTreeSet<_> = ours.keys().collect();
                let b: BTreeSet<_> = theirs.keys().collect();
                assert_eq!(a, b, "{dir}: objects differ from kubectl kustomize");
                for (k, v) in &ours {
                    assert_eq!(
                        comparable(v),
                        comparable(&theirs[k]),
                        "{dir}: {k} differs from kubectl kustomize"
                    );
                }
                println!(
                    "{dir}: {} objects, identical to kubectl kustomize",
                    ours.len()
                );
            }
            None => println!(
                "{dir}: {} objects (kubectl not installed: not compared with kustomize)",
                ours.len()
            ),
        }
    }
    // No manifest sits unused (and so unvalidated). The Prometheus scrape
    // config and the example secrets file are not kustomize inputs; other
    // tests check them.
    let root = workspace_root().join("deploy/k8s");
    for f in deploy_files() {
        let rel = f.strip_prefix(root.canonicalize().unwrap()).unwrap();
        let s = rel.display().to_string();
        if s.starts_with("prometheus/") || s.ends_with(".example") {
            continue;
        }
        assert!(
            used.contains(&f),
            "deploy/k8s/{s} is used by no kustomization"
        );
    }
}

fn venv_python() -> Option<PathBuf> {
    let p = workspace_root().join(".venv/bin/python");
    let ok = p.exists()
        && Command::new(&p)
            .args([
                "-c",
                "import importlib.util as u, sys; \
                 sys.exit(not all(u.find_spec(m) for m in \
                 ['kubernetes_validate', 'cloudcoil.models.prometheus_operator']))",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(p);
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v.is_empty()),
        "kubernetes-validate is missing from .venv (scripts/test.sh installs tests/requirements.txt)"
    );
    eprintln!("skipped: .venv lacks kubernetes-validate (run scripts/test.sh once)");
    None
}

/// Runs tests/k8s_validate.py over `objects` (`expect_invalid`: succeeds
/// only if every object fails): (success, output).
fn validate(python: &Path, objects: &[Value], expect_invalid: bool) -> (bool, String) {
    let dir = TempDir::new("k8s-validate");
    let file = dir.path().join("objects.jsonl");
    let lines: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut cmd = Command::new(python);
    cmd.arg(workspace_root().join("tests/k8s_validate.py"));
    for v in KUBERNETES_VERSIONS {
        cmd.args(["-k", v]);
    }
    if expect_invalid {
        cmd.arg("--expect-invalid");
    }
    let out = cmd.arg(&file).output().expect("run k8s_validate.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_object_passes_the_kubernetes_and_prometheus_operator_schemas() {
    let Some(python) = venv_python() else {
        return;
    };
    let mut all = BTreeMap::new();
    for dir in KUSTOMIZATIONS {
        for o in render(dir) {
            all.insert(format!("{dir}:{}", id(&o)), o);
        }
    }
    let objects: Vec<Value> = all.values().cloned().collect();
    let (ok, out) = validate(&python, &objects, false);
    assert!(ok, "schema validation failed:\n{out}");
    let monitors = objects
        .iter()
        .filter(|o| o["kind"] == "ServiceMonitor")
        .count();
    assert!(monitors >= 1, "the ServiceMonitor is validated too");
    let want = (objects.len() - monitors) * KUBERNETES_VERSIONS.len() + monitors;
    let passed = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(passed, want, "one pass per object and version:\n{out}");
    for v in KUBERNETES_VERSIONS {
        let minor = v.rsplit_once('.').unwrap().0;
        assert!(
            out.contains(&format!("ok {minor} Deployment/gateway")),
            "{out}"
        );
    }

    // The validation is strict: a misspelt field, a wrong type and an
    // unknown ServiceMonitor field each fail.
    let d = named(&objects, "Deployment", "gateway").clone();
    let mut typo = d.clone();
    typo["spec"]["replica"] = json!(2);
    let mut wrong_type = d;
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] =
        json!("http");
    let mut sm = named(&objects, "ServiceMonitor", "ai-gateway").clone();
    sm["spec"]["endpoints"][0]["prot"] = json!("http");
    let mut sm_interval = named(&objects, "ServiceMonitor", "ai-gateway").clone();
    sm_interval["spec"]["endpoints"][0]["interval"] = json!("15 seconds");
    let mut unknown_kind =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    unknown_kind["spec"] = json!({});
    let bad = [typo, wrong_type, sm, sm_interval, unknown_kind];
    let (all_failed, out) = validate(&python, &bad, true);
    assert!(
        all_failed,
        "each of: misspelt field, wrong type, unknown ServiceMonitor field, malformed \
         interval, kind without a schema must fail:\n{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("FAIL")).count(),
        bad.len(),
        "{out}"
    );
}

/// `(uid, gid)` the Dockerfile's runtime stage runs as.
fn dockerfile_user() -> (u64, u64) {
    let text = std::fs::read_to_string(workspace_root().join("Dockerfile")).unwrap();
    let flag = |f: &str| -> u64 {
        let rest = text
            .split(f)
            .nth(1)
            .unwrap_or_else(|| panic!("Dockerfile has no {f}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (uid, gid) = (flag("--uid "), flag("--gid "));
    let user = text
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert_eq!(
        user.trim(),
        format!("{uid}:{gid}"),
        "USER names the ids useradd/groupadd create"
    );
    (uid, gid)
}

#[test]
fn workloads_agree_with_the_services_code() {
    let root = workspace_root();
    let objects = dev();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let bins = workspace_binaries();
    let (uid, gid) = dockerfile_user();
    let prometheus = load_yaml(&root.join("monitoring/prometheus.yml"));
    let mut scrape_targets = BTreeMap::new();
    for j in prometheus["scrape_configs"].as_vec().unwrap() {
        scrape_targets.insert(
            scalar(&j["job_name"]).unwrap(),
            strings(&j["static_configs"][0]["targets"]),
        );
    }

    for (name, crate_dir, port_var, _) in SERVICES {
        let d = named(&objects, "Deployment", name);
        let c = main_container(d);
        let spec = pod_spec(d);
        let read = env_names_read(crate_dir);

        // The image runs this service's binary, built by the Dockerfile.
        let cmd: Vec<&str> = c["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(cmd, [name], "{name}: command");
        assert!(bins.contains(name), "{name} is not a workspace binary");
        assert!(
            dockerfile.contains(&format!("--bin {name}")),
            "Dockerfile builds {name}"
        );

        // Every variable is one the code reads; the port variable sets the
        // container port, which the Service and Prometheus use.
        let env = container_env(c);
        let names: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names.len(), env.len(), "{name}: duplicate env");
        let unread: Vec<_> = names.iter().filter(|n| !read.contains(**n)).collect();
        assert!(
            unread.is_empty(),
            "{name} sets {unread:?}, which its code does not read ({crate_dir})"
        );
        assert!(read.contains(port_var), "{name} reads {port_var}");
        let lit = literal_env(c);
        let port: u64 = lit
            .get(port_var)
            .unwrap_or_else(|| panic!("{name}: {port_var} set explicitly"))
            .parse()
            .unwrap();
        let ports = c["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 1, "{name}: one port");
        assert_eq!(ports[0]["name"], "http");
        assert_eq!(
            int(&ports[0]["containerPort"], "containerPort"),
            port,
            "{name}"
        );
        let svc = named(&objects, "Service", name);
        let sp = &svc["spec"]["ports"][0];
        assert_eq!(
            sp["targetPort"], "http",
            "{name}: Service targets the named port"
        );
        assert_eq!(
            int(&sp["port"], "port"),
            port,
            "{name}: Service port = container port"
        );
        assert_eq!(sp["name"], "http");
        // In-cluster addresses are those monitoring/prometheus.yml scrapes in compose.
        assert_eq!(
            scrape_targets.get(name),
            Some(&vec![format!("{name}:{port}")]),
            "{name}: the compose scrape target matches the Service address"
        );
        let selector = &svc["spec"]["selector"];
        assert_eq!(selector, &d["spec"]["selector"]["matchLabels"], "{name}");
        for (k, v) in selector.as_object().unwrap() {
            assert_eq!(&d["spec"]["template"]["metadata"]["labels"][k], v, "{name}");
        }

        // Probes: readiness /ready, liveness and startup /health, on the port.
        for (probe, path) in [
            ("readinessProbe", "/ready"),
            ("livenessProbe", "/health"),
            ("startupProbe", "/health"),
        ] {
            let g = &c[probe]["httpGet"];
            assert_eq!(g["path"], path, "{name} {probe}");
            assert_eq!(g["port"], "http", "{name} {probe}");
        }
        // Prometheus annotations name the same port and the metrics route.
        let ann = &d["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(ann["prometheus.io/scrape"], "true", "{name}");
        assert_eq!(ann["prometheus.io/port"], port.to_string(), "{name}");
        assert_eq!(ann["prometheus.io/path"], "/metrics", "{name}");

        // Kubernetes waits longer than the service may take to stop.
        let pre_stop: Vec<&str> = c["lifecycle"]["preStop"]["exec"]["command"]
            .as_array()
            .expect("preStop exec")
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(pre_stop, ["sleep", &PRE_STOP_SECONDS.to_string()], "{name}");
        let bound = PRE_STOP_SECONDS + shutdown_bound(name, &lit);
        let grace = int(&spec["terminationGracePeriodSeconds"], "grace");
        assert!(
            grace > bound,
            "{name}: terminationGracePeriodSeconds {grace} must exceed {bound}"
        );

        // Resources and the Dockerfile's user.
        for (k, v) in [
            ("requests", "cpu"),
            ("requests", "memory"),
            ("limits", "cpu"),
            ("limits", "memory"),
        ] {
            assert!(
                c["resources"][k][v].is_string(),
                "{name}: resources.{k}.{v}"
            );
        }
        let sc = &spec["securityContext"];
        assert_eq!(int(&sc["runAsUser"], "uid"), uid, "{name}: runAsUser");
        assert_eq!(int(&sc["runAsGroup"], "gid"), gid, "{name}: runAsGroup");
        assert_eq!(sc["runAsNonRoot"], true);
        assert_eq!(
            c["securityContext"]["readOnlyRootFilesystem"], true,
            "{name}"
        );
        assert_eq!(spec["automountServiceAccountToken"], false, "{name}");
        // The only writable paths are /tmp and the gateway's journal
        // (JOURNAL_DIR), each on an emptyDir (which outlives a restart of
        // the container, so a restarted gateway replays its journal).
        let mounts = c["volumeMounts"].as_array().unwrap();
        let mut want = vec!["/tmp".to_string()];
        if let Some(dir) = lit.get("JOURNAL_DIR") {
            want.push(dir.clone());
        }
        assert_eq!(
            name == "gateway",
            want.len() == 2,
            "{name}: JOURNAL_DIR set for the gateway only"
        );
        let paths: Vec<String> = mounts
            .iter()
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(paths, want, "{name}: writable paths");
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), mounts.len(), "{name}");
        for (vol, m) in volumes.iter().zip(mounts) {
            assert_eq!(vol["name"], m["name"]);
            assert!(vol["emptyDir"].is_object());
        }

        // A PodDisruptionBudget keeps all but one pod through node drains.
        let pdb = named(&objects, "PodDisruptionBudget", name);
        assert_eq!(pdb["spec"]["maxUnavailable"], 1, "{name}");
        assert_eq!(
            pdb["spec"]["selector"]["matchLabels"], d["spec"]["selector"]["matchLabels"],
            "{name}"
        );
    }

    // The gateway: at least two replicas, scaled by an HPA that never goes below two.
    let gw = named(&objects, "Deployment", "gateway");
    assert!(int(&gw["spec"]["replicas"], "replicas") >= 2);
    let hpa = named(&objects, "HorizontalPodAutoscaler", "gateway");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"})
    );
    let min = int(&hpa["spec"]["minReplicas"], "minReplicas");
    assert!(min >= 2 && int(&hpa["spec"]["maxReplicas"], "max") > min);
    // The HPA's CPU target is a share of the request, which must exist.
    assert_eq!(hpa["spec"]["metrics"][0]["resource"]["name"], "cpu");
}

/// Every container running one of the workspace's binaries (the mock
/// upstream of the dev overlay too) sets only variables its code reads, and
/// probes routes it serves on the port it listens on.
#[test]
fn every_workspace_container_sets_only_variables_its_code_reads() {
    let bins = workspace_binaries();
    let mut seen = BTreeSet::new();
    for o in of_kind(&dev(), "Deployment") {
        let c = main_container(o);
        let bin = c["command"][0].as_str().expect("command");
        assert!(
            bins.contains(bin),
            "{}: {bin} is not a workspace binary",
            id(o)
        );
        seen.insert(bin.to_string());
        let read = env_names_read(&format!("services/{bin}"));
        for (var, _) in container_env(c) {
            assert!(read.contains(&var), "{bin} does not read {var}");
        }
        let port = int(&c["ports"][0]["containerPort"], "port");
        let port_vars: Vec<String> = literal_env(c)
            .into_iter()
            .filter(|(k, v)| k.ends_with("_PORT") && v == &port.to_string())
            .map(|(k, _)| k)
            .collect();
        assert_eq!(port_vars.len(), 1, "{bin}: one *_PORT variable sets {port}");
    }
    let want: BTreeSet<String> = ["gateway", "config-center", "token-service", "mock-upstream"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(seen, want);
}

#[test]
fn probe_routes_exist_in_each_service() {
    // The runtime test below calls them; this names where they are.
    for (name, crate_dir, _, _) in SERVICES {
        let mut src = String::new();
        let dir = workspace_root().join(crate_dir).join("src");
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    src.push_str(&std::fs::read_to_string(p).unwrap());
                }
            }
        }
        for route in ["\"/ready\"", "\"/health\"", "\"/metrics\""] {
            assert!(src.contains(route), "{name} has no route {route}");
        }
    }
}

#[test]
fn secrets_and_settings_come_from_one_secret_and_one_config_map() {
    let root = workspace_root();
    let dev = dev();
    let mut secret_keys = BTreeSet::new();
    for (name, _, _, _) in SERVICES {
        let c = main_container(named(&dev, "Deployment", name));
        for (var, src) in container_env(c) {
            match src {
                EnvSource::Secret {
                    name: s,
                    key,
                    optional,
                } => {
                    assert_eq!(s, "aigw-secrets", "{name} {var}");
                    assert_eq!(key, var, "{name}: the key is named as the variable");
                    assert_eq!(
                        optional,
                        OPTIONAL_SECRET_KEYS.contains(&key.as_str()),
                        "{name}: {key} optional or not"
                    );
                    if !optional {
                        secret_keys.insert(key);
                    }
                }
                EnvSource::ConfigMap { name: m, key } => {
                    assert_eq!(m, "aigw-config", "{name} {var}");
                    data_value(&dev, "ConfigMap", "aigw-config", &key);
                }
                EnvSource::Value(_) => {
                    assert!(
                        !SECRET_KEYS.contains(&var.as_str()),
                        "{name}: {var} must come from the Secret"
                    );
                }
            }
        }
    }
    let want: BTreeSet<String> = SECRET_KEYS.iter().map(|s| s.to_string()).collect();
    assert_eq!(secret_keys, want);

    // No committed Secret outside the dev overlay; prod documents what to create.
    for dir in ["deploy/k8s/base", "deploy/k8s/overlays/prod"] {
        assert!(
            of_kind(&render(dir), "Secret").is_empty(),
            "{dir} must not carry a Secret"
        );
    }
    let example = env_file(&root.join("deploy/k8s/overlays/prod/secrets.env.example"));
    assert_eq!(example.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (k, v) in &example {
        assert!(
            v.contains('<') && v.contains('>'),
            "{k}: a placeholder, not a value"
        );
    }
    let docs = std::fs::read_to_string(root.join("docs/deploy.md")).expect("docs/deploy.md");
    for k in SECRET_KEYS.iter().chain(&OPTIONAL_SECRET_KEYS) {
        assert!(docs.contains(k), "docs/deploy.md explains {k}");
    }
    assert!(docs.contains("create secret generic aigw-secrets"));
    // The dev overlay's values are dev placeholders.
    for k in SECRET_KEYS {
        let v = data_value(&dev, "Secret", "aigw-secrets", k);
        assert!(
            v.contains("dev") || v == "redis://redis:6379",
            "{k} in the dev overlay should be an obvious dev value: {v}"
        );
    }
    assert!(root.join(".gitignore").exists());
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "secrets.env"),
        "a filled-in secrets.env is never committed"
    );
}

#[test]
fn dev_overlay_runs_one_redis_and_one_postgresql_that_the_urls_name() {
    let root = workspace_root();
    let dev = dev();
    let sets = of_kind(&dev, "StatefulSet");
    let names: BTreeSet<&str> = sets
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["postgres", "redis"]));
    for s in &sets {
        assert_eq!(s["spec"]["replicas"], 1, "{}", id(s));
        assert!(
            s["spec"]["volumeClaimTemplates"].is_array(),
            "{}: data on a volume",
            id(s)
        );
    }
    let port_of = |svc: &str| {
        int(
            &named(&dev, "Service", svc)["spec"]["ports"][0]["port"],
            "port",
        )
    };

    let redis_url = data_value(&dev, "Secret", "aigw-secrets", "REDIS_URL");
    assert_eq!(redis_url, format!("redis://redis:{}", port_of("redis")));

    let db = data_value(&dev, "Secret", "aigw-secrets", "DATABASE_URL");
    let pg = env_file(&root.join("deploy/k8s/overlays/dev/postgres.env"));
    assert_eq!(
        db,
        format!(
            "postgres://{}:{}@postgres:{}/{}",
            pg["POSTGRES_USER"],
            pg["POSTGRES_PASSWORD"],
            port_of("postgres"),
            pg["POSTGRES_DB"]
        )
    );
    let postgres = named(&dev, "StatefulSet", "postgres");
    assert_eq!(
        main_container(postgres)["envFrom"][0]["secretRef"]["name"],
        "postgres-dev"
    );
    // Everything lives in one namespace, which the overlay creates.
    let ns = named(&dev, "Namespace", "ai-gateway-dev");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    for o in &dev {
        if o["kind"] != "Namespace" {
            assert_eq!(o["metadata"]["namespace"], "ai-gateway-dev", "{}", id(o));
        }
    }
    // The locally built image.
    for (name, _, _, _) in SERVICES {
        assert_eq!(
            main_container(named(&dev, "Deployment", name))["image"],
            "ai-gateway:dev"
        );
    }
}

/// The "restricted" Pod Security Standard, as far as these pods can break
/// it (kubernetes.io/docs/concepts/security/pod-security-standards).
#[test]
fn every_pod_meets_the_restricted_pod_security_standard() {
    for dir in ["deploy/k8s/overlays/dev", "deploy/k8s/overlays/prod"] {
        for o in render(dir) {
            let spec = pod_spec(&o);
            if spec.is_null() {
                continue;
            }
            let what = format!("{dir} {}", id(&o));
            for host in ["hostNetwork", "hostPID", "hostIPC"] {
                assert_ne!(spec[host], true, "{what}: {host}");
            }
            let psc = &spec["securityContext"];
            assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
            for v in spec["volumes"].as_array().into_iter().flatten() {
                let kinds: Vec<&String> = v
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "name")
                    .collect();
                assert!(
                    kinds.iter().all(|k| [
                        "emptyDir",
                        "configMap",
                        "secret",
                        "persistentVolumeClaim",
                        "projected",
                        "downwardAPI"
                    ]
                    .contains(&k.as_str())),
                    "{what}: volume types {kinds:?}"
                );
            }
            for c in spec["containers"].as_array().unwrap() {
                let sc = &c["securityContext"];
                let name = c["name"].as_str().unwrap();
                assert!(
                    psc["runAsNonRoot"] == true || sc["runAsNonRoot"] == true,
                    "{what} {name}: runAsNonRoot"
                );
                assert_ne!(psc["runAsUser"], 0, "{what}");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{what} {name}");
                assert_ne!(sc["privileged"], true, "{what} {name}");
                assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what} {name}");
                assert!(sc["capabilities"]["add"].is_null(), "{what} {name}");
                for p in c["ports"].as_array().into_iter().flatten() {
                    assert!(p["hostPort"].is_null(), "{what} {name}: hostPort");
                }
            }
        }
    }
}

#[test]
fn service_monitor_scrapes_the_three_services_as_the_specification_jobs() {
    let prod = prod();
    let sm = named(&prod, "ServiceMonitor", "ai-gateway");
    let spec = &sm["spec"];
    let prometheus = load_yaml(&workspace_root().join("monitoring/prometheus.yml"));
    let interval = scalar(&prometheus["global"]["scrape_interval"]).unwrap();
    let label = spec["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(spec["endpoints"].as_array().unwrap().len(), 1);
    let ep = &spec["endpoints"][0];
    assert_eq!(
        ep["authorization"],
        json!({"type": "Bearer", "credentials": {"name": "aigw-secrets", "key": "METRICS_TOKEN"}}),
        "sends the Secret's METRICS_TOKEN"
    );
    assert_eq!(
        ep["interval"],
        interval.as_str(),
        "same interval as the compose Prometheus"
    );
    assert!(
        spec["namespaceSelector"].is_null(),
        "its own namespace: the Services' namespace"
    );
    assert_eq!(sm["metadata"]["namespace"], "ai-gateway");

    // Which Services the selector picks: exactly the three, each giving
    // its job name through the job label.
    let sel = &spec["selector"];
    let matches = |labels: &Value| -> bool {
        let ml_ok = sel["matchLabels"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| &labels[k] == v);
        let me_ok = sel["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let have = &labels[e["key"].as_str().unwrap()];
                let values = e["values"].as_array().cloned().unwrap_or_default();
                match e["operator"].as_str().unwrap() {
                    "In" => values.contains(have),
                    "NotIn" => !values.contains(have),
                    "Exists" => !have.is_null(),
                    "DoesNotExist" => have.is_null(),
                    o => panic!("operator {o}"),
                }
            });
        ml_ok && me_ok
    };
    let dev = dev();
    let mut all_services = of_kind(&prod, "Service");
    all_services.extend(of_kind(&dev, "Service"));
    let picked: BTreeSet<String> = all_services
        .iter()
        .filter(|s| matches(&s["metadata"]["labels"]))
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = SERVICES.iter().map(|s| s.0.to_string()).collect();
    assert_eq!(
        picked, want,
        "the ServiceMonitor selects the three Services only"
    );
    for (name, _, _, _) in SERVICES {
        let svc = named(&prod, "Service", name);
        assert_eq!(svc["metadata"]["labels"][label], name, "{name}: job label");
        let port_names: Vec<&Value> = svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["name"])
            .collect();
        assert!(
            port_names.contains(&&ep["port"]),
            "{name} has port {}",
            ep["port"]
        );
        let d = named(&prod, "Deployment", name);
        assert_eq!(
            ep["path"], d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"],
            "{name}: same path as the annotation"
        );
    }
    // The job names are the ones the alert rules and dashboards select.
    let alerts = std::fs::read_to_string(workspace_root().join("monitoring/alerts.yml")).unwrap();
    assert!(alerts.contains("job=~\"gateway|config-center|token-service\""));
}

/// Prometheus's meta label name of a pod label or annotation key.
fn meta(prefix: &str, key: &str) -> String {
    let k: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("__meta_kubernetes_pod_{prefix}_{k}")
}

/// The labels Prometheus's Kubernetes pod discovery attaches to a pod of
/// `workload`, for a pod IP.
fn pod_meta_labels(workload: &Value, ns: &str, pod: &str) -> BTreeMap<String, String> {
    let t = &workload["spec"]["template"]["metadata"];
    let mut m = BTreeMap::new();
    m.insert("__meta_kubernetes_namespace".into(), ns.into());
    m.insert("__meta_kubernetes_pod_name".into(), pod.into());
    for (prefix, field) in [("label", "labels"), ("annotation", "annotations")] {
        for (k, v) in t[field].as_object().into_iter().flatten() {
            m.insert(meta(prefix, k), v.as_str().unwrap().into());
            m.insert(meta(&format!("{prefix}present"), k), "true".into());
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotation_scrape_config_finds_the_pods_as_the_specification_jobs() {
    let root = workspace_root();
    let path = root.join("deploy/k8s/prometheus/scrape-config.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = aigw_e2e::k8s::json_documents(&text, "scrape-config.yml").remove(0);
    let prod = prod();
    let ns = named(&prod, "Namespace", "ai-gateway")["metadata"]["name"].clone();
    let job = &cfg["scrape_configs"][0];
    assert_eq!(job["kubernetes_sd_configs"][0]["role"], "pod");
    assert_eq!(
        job["kubernetes_sd_configs"][0]["namespaces"]["names"],
        json!([ns]),
        "discovers the prod overlay's namespace"
    );
    assert_eq!(cfg["global"]["scrape_interval"], "15s");

    // This machine's Prometheus is built without Kubernetes discovery, so
    // the pods come as static targets carrying the meta labels the pod
    // discovery would attach (from the rendered manifests); the relabelling
    // under test is the file's, unchanged. A long interval: the targets are
    // only listed, never scraped.
    let ns = ns.as_str().unwrap();
    let mut groups = Vec::new();
    let mut pods = Vec::new();
    for (name, _, _, _) in SERVICES {
        let d = named(&prod, "Deployment", name);
        pods.push(pod_meta_labels(d, ns, &format!("{name}-7d9f-x")));
    }
    // Not ours, or not asking to be scraped: dropped.
    pods.push(pod_meta_labels(
        named(&dev(), "StatefulSet", "redis"),
        ns,
        "redis-0",
    ));
    let mut stranger = pod_meta_labels(named(&prod, "Deployment", "gateway"), ns, "other-1");
    stranger.insert(meta("label", "app.kubernetes.io/name"), "other".into());
    pods.push(stranger);
    for labels in &pods {
        groups.push(json!({"targets": ["127.0.0.1:1"], "labels": labels}));
    }
    // It sends the Secret's METRICS_TOKEN, mounted as a file.
    assert_eq!(job["authorization"]["type"], "Bearer");
    assert!(
        job["authorization"]["credentials_file"]
            .as_str()
            .is_some_and(|f| f.ends_with("/aigw-secrets/METRICS_TOKEN")),
        "{job}"
    );
    let dir = TempDir::new("scrape-config");
    let token_file = dir.path().join("METRICS_TOKEN");
    std::fs::write(&token_file, "dev-metrics-token").unwrap();
    let mut test_job = job.clone();
    test_job["authorization"]["credentials_file"] = json!(token_file.to_str().unwrap());
    let m = test_job.as_object_mut().unwrap();
    m.remove("kubernetes_sd_configs");
    m.insert("static_configs".into(), Value::Array(groups));
    m.insert("scrape_interval".into(), json!("1h"));
    let test_cfg = json!({"global": cfg["global"], "scrape_configs": [test_job]});

    let Some(prometheus) = which("prometheus") else {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "prometheus is not installed (scripts/test.sh installs it)"
        );
        eprintln!("skipped: prometheus not installed");
        return;
    };
    // JSON is YAML: Prometheus reads it as its config.
    let file = dir.path().join("prometheus.yml");
    std::fs::write(&file, test_cfg.to_string()).unwrap();
    promtool_check_config(&file);
    let p = aigw_e2e::monitoring::Prometheus::start(&prometheus, &test_cfg.to_string()).await;
    let mut data = Value::Null;
    for _ in 0..100 {
        data = p.targets_any().await;
        let n = |k: &str| data[k].as_array().map_or(0, Vec::len);
        if n("activeTargets") + n("droppedTargets") == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active = data["activeTargets"].as_array().expect("active targets");
    let mut found = BTreeMap::new();
    for t in active {
        found.insert(
            t["labels"]["job"].as_str().unwrap().to_string(),
            (
                t["scrapeUrl"].as_str().unwrap().to_string(),
                t["labels"]["pod"].as_str().unwrap_or_default().to_string(),
                t["labels"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        );
    }
    let mut want = BTreeMap::new();
    for (name, _, _, _) in SERVICES {
        let d = named(&prod, "Deployment", name);
        let ann = &d["spec"]["template"]["metadata"]["annotations"];
        want.insert(
            name.to_string(),
            (
                format!(
                    "http://127.0.0.1:{}{}",
                    ann["prometheus.io/port"].as_str().unwrap(),
                    ann["prometheus.io/path"].as_str().unwrap()
                ),
                format!("{name}-7d9f-x"),
                ns.to_string(),
            ),
        );
    }
    assert_eq!(
        found, want,
        "jobs, scrape URLs and labels of the discovered pods"
    );
    assert_eq!(
        data["droppedTargets"].as_array().map_or(0, Vec::len),
        2,
        "redis (no annotation) and a foreign app are dropped: {data}"
    );
}

/// Starts each service with the environment its Deployment gives it (with
/// the Secret and ConfigMap of the dev overlay), changing only what points
/// at this machine: the port (a free one; the port variable is proven to
/// set it), Redis and the database (private ones), the journal directory
/// (a private one) and the bind address.
/// Each answers its probes and `/metrics`, logs as configured, and stops
/// cleanly on SIGTERM within its termination grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_start_with_the_manifest_environment_and_answer_their_probes() {
    let objects = dev();
    let redis = RedisServer::start().await;
    let pg = PgDatabase::create().await;
    let sqlite = TempDir::new("k8s-env-db");
    let journal = TempDir::new("k8s-env-journal");
    let database_url = match &pg {
        Some(db) => db.url.clone(),
        None => {
            assert!(
                std::env::var("AIGW_REQUIRE_PG").is_err(),
                "PostgreSQL required (AIGW_REQUIRE_PG) but unreachable"
            );
            println!("PostgreSQL unreachable: the config-center uses SQLite here");
            format!("sqlite://{}/cc.db", sqlite.path().display())
        }
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut running = Vec::new();
    // Start order: the config-center publishes the snapshot the gateway waits for.
    for (name, _, port_var, prefix) in [SERVICES[1], SERVICES[2], SERVICES[0]] {
        let d = named(&objects, "Deployment", name);
        let c = main_container(d);
        let port = free_port();
        let mut vars: Vec<(String, String)> = Vec::new();
        for (var, src) in container_env(c) {
            let v = match (var.as_str(), src) {
                (v, _) if v == port_var => port.to_string(),
                ("REDIS_URL", _) => redis.url(),
                ("DATABASE_URL", _) => database_url.clone(),
                ("JOURNAL_DIR", _) => journal.path().display().to_string(),
                (_, EnvSource::Value(v)) => v,
                (_, EnvSource::Secret { optional: true, .. }) => continue,
                (_, EnvSource::Secret { name, key, .. }) => {
                    data_value(&objects, "Secret", &name, &key)
                }
                (_, EnvSource::ConfigMap { name, key }) => {
                    data_value(&objects, "ConfigMap", &name, &key)
                }
            };
            vars.push((var, v));
        }
        vars.push(("BIND_ADDR".into(), "127.0.0.1".into()));
        let env: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let mut proc = Proc::spawn(name, &env);
        let base = format!("http://127.0.0.1:{port}");
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let path = c[probe]["httpGet"]["path"].as_str().unwrap();
            proc.wait_ready(&format!("{base}{path}")).await;
        }
        let ann = &d["spec"]["template"]["metadata"]["annotations"];
        let metrics_url = format!("{base}{}", ann["prometheus.io/path"].as_str().unwrap());
        // The Secret's METRICS_TOKEN closes /metrics to anyone without it.
        let token = &env
            .iter()
            .find(|(k, _)| *k == "METRICS_TOKEN")
            .expect("METRICS_TOKEN from the Secret")
            .1;
        let open = http.get(&metrics_url).send().await.unwrap();
        assert_eq!(open.status(), 401, "{name} /metrics without the token");
        let metrics = http
            .get(&metrics_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200, "{name} /metrics");
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains(prefix),
            "{name} /metrics has {prefix}* series"
        );
        let logs = proc.logs();
        let json_logs = env.iter().any(|(k, v)| *k == "LOG_FORMAT" && v == "json");
        let first = logs
            .lines()
            .next()
            .unwrap_or_else(|| panic!("{name} logged nothing"));
        assert_eq!(
            serde_json::from_str::<Value>(first).is_ok(),
            json_logs,
            "{name}: LOG_FORMAT {} but the first log line is {first}",
            if json_logs { "json" } else { "unset" }
        );
        let grace = int(&pod_spec(d)["terminationGracePeriodSeconds"], "grace");
        running.push((name, proc, grace));
    }
    // Reverse order, as a rollout of the whole namespace would stop them.
    while let Some((name, mut proc, grace)) = running.pop() {
        let limit = Duration::from_secs(grace - PRE_STOP_SECONDS);
        let code = proc.terminate(limit).await;
        assert_eq!(
            code,
            Some(0),
            "{name} did not exit cleanly on SIGTERM within the grace period:\n{}",
            proc.logs()
        );
    }
}
