//! Deployment test support: renders the kustomizations under `deploy/k8s`
//! (the subset of kustomize they use, refusing anything else, and compared
//! with `kubectl kustomize` where it is installed), turns YAML into JSON
//! objects and reads pod specs; and, for the Kubernetes and compose files
//! alike, what they are checked against: the environment variable names a
//! service's code spells and the longest a service takes to shut down.

use crate::monitoring::{keys, scalar, workspace_root};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

/// The kustomizations `deploy/k8s` ships, relative to the workspace root.
pub const KUSTOMIZATIONS: [&str; 3] = [
    "deploy/k8s/base",
    "deploy/k8s/overlays/dev",
    "deploy/k8s/overlays/prod",
];

/// Kinds that have no namespace (the namespace transformer leaves them be).
const CLUSTER_SCOPED: [&str; 6] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
];

/// Fields of a kustomization this renderer implements. Anything else is
/// refused, so the renderer can never silently differ from kustomize.
const SUPPORTED: [&str; 10] = [
    "apiVersion",
    "kind",
    "resources",
    "components",
    "namespace",
    "labels",
    "images",
    "generatorOptions",
    "secretGenerator",
    "configMapGenerator",
];

// ----- YAML → JSON ----------------------------------------------------------

/// A YAML node as JSON (mapping keys become strings).
pub fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap_or_else(|_| panic!("bad float {r}"))),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let k = scalar(k).unwrap_or_else(|| panic!("non-scalar mapping key {k:?}"));
                    (k, to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::BadValue => panic!("unresolvable YAML node {y:?}"),
    }
}

/// Every non-empty document of a YAML text, as JSON.
pub fn json_documents(text: &str, what: &str) -> Vec<Value> {
    YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("{what} is not YAML: {e}"))
        .iter()
        .filter(|d| !matches!(d, Yaml::Null | Yaml::BadValue))
        .map(to_json)
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ----- rendering -------------------------------------------------------------

/// Renders the kustomization in `dir` (absolute, or relative to the
/// workspace root) as `kustomize build` would.
pub fn render(dir: &str) -> Vec<Value> {
    let mut out = Vec::new();
    accumulate(&workspace_root().join(dir), "Kustomization", &mut out);
    out
}

/// The files a kustomization reads, itself included (to find manifests no
/// kustomization uses).
pub fn files_used(dir: &str) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    collect_files(&workspace_root().join(dir), &mut out);
    out
}

fn collect_files(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let k = kustomization(dir);
    out.insert(canonical(&dir.join("kustomization.yaml")));
    for r in list(&k, "resources")
        .into_iter()
        .chain(list(&k, "components"))
    {
        let p = dir.join(&r);
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.insert(canonical(&p));
        }
    }
    for g in ["secretGenerator", "configMapGenerator"] {
        for gen in k[g].as_vec().into_iter().flatten() {
            for f in list(gen, "envs").into_iter().chain(list(gen, "files")) {
                out.insert(canonical(&dir.join(f)));
            }
        }
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn kustomization(dir: &Path) -> Yaml {
    let path = dir.join("kustomization.yaml");
    let mut docs = YamlLoader::load_from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.swap_remove(0)
}

fn list(y: &Yaml, key: &str) -> Vec<String> {
    y[key]
        .as_vec()
        .map(|v| v.iter().filter_map(scalar).collect())
        .unwrap_or_default()
}

/// Adds what the kustomization (or component) in `dir` produces to `acc`,
/// in kustomize's order: resources, components, generators, then this
/// level's transformers over everything accumulated so far.
fn accumulate(dir: &Path, want_kind: &str, acc: &mut Vec<Value>) {
    let k = kustomization(dir);
    let here = dir.display();
    let kind = scalar(&k["kind"]).unwrap_or_else(|| "Kustomization".into());
    assert_eq!(kind, want_kind, "{here}: kind");
    for field in keys(&k) {
        assert!(
            SUPPORTED.contains(&field.as_str()),
            "{here}: kustomization field `{field}` is not implemented by tests/src/k8s.rs \
             (extend it, and the comparison with kubectl kustomize will check the result)"
        );
    }
    for r in list(&k, "resources") {
        let p = dir.join(&r);
        if p.is_dir() {
            let mut sub = Vec::new();
            accumulate(&p, "Kustomization", &mut sub);
            acc.extend(sub);
        } else {
            acc.extend(json_documents(&read(&p), &p.display().to_string()));
        }
    }
    for c in list(&k, "components") {
        accumulate(&dir.join(c), "Component", acc);
    }
    let no_hash = k["generatorOptions"]["disableNameSuffixHash"].as_bool() == Some(true);
    for (field, kind, data_key) in [
        ("secretGenerator", "Secret", "data"),
        ("configMapGenerator", "ConfigMap", "data"),
    ] {
        for gen in k[field].as_vec().into_iter().flatten() {
            let name = scalar(&gen["name"]).expect("generator name");
            for key in keys(gen) {
                assert!(
                    ["name", "envs", "literals", "options"].contains(&key.as_str()),
                    "{here}: {field} {name}: `{key}` is not implemented"
                );
            }
            assert!(
                no_hash || gen["options"]["disableNameSuffixHash"].as_bool() == Some(true),
                "{here}: {name} needs disableNameSuffixHash (name hashes are not implemented)"
            );
            let mut pairs = BTreeMap::new();
            for f in list(gen, "envs") {
                pairs.extend(env_file(&dir.join(f)));
            }
            for l in list(gen, "literals") {
                let (key, v) = l.split_once('=').expect("literal KEY=value");
                pairs.insert(key.to_string(), v.to_string());
            }
            let data: Map<String, Value> = pairs
                .into_iter()
                .map(|(key, v)| {
                    let v = if kind == "Secret" {
                        base64::engine::general_purpose::STANDARD.encode(v)
                    } else {
                        v
                    };
                    (key, Value::String(v))
                })
                .collect();
            let mut obj = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name}});
            obj[data_key] = Value::Object(data);
            if kind == "Secret" {
                obj["type"] = json!("Opaque");
            }
            acc.push(obj);
        }
    }
    if let Some(ns) = scalar(&k["namespace"]) {
        for o in acc.iter_mut() {
            if !CLUSTER_SCOPED.contains(&o["kind"].as_str().unwrap_or_default()) {
                o["metadata"]["namespace"] = json!(ns);
            }
        }
    }
    for l in k["labels"].as_vec().into_iter().flatten() {
        for key in keys(l) {
            assert!(
                key == "pairs",
                "{here}: labels.{key} is not implemented (only plain pairs)"
            );
        }
        let pairs = to_json(&l["pairs"]);
        for o in acc.iter_mut() {
            let meta = o["metadata"].as_object_mut().expect("metadata");
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            for (key, v) in pairs.as_object().expect("label pairs") {
                labels[key] = v.clone();
            }
        }
    }
    for img in k["images"].as_vec().into_iter().flatten() {
        for key in keys(img) {
            assert!(
                ["name", "newName", "newTag"].contains(&key.as_str()),
                "{here}: images.{key} is not implemented"
            );
        }
        let name = scalar(&img["name"]).expect("image name");
        let new_name = scalar(&img["newName"]);
        let new_tag = scalar(&img["newTag"]);
        for o in acc.iter_mut() {
            retag(o, &name, new_name.as_deref(), new_tag.as_deref());
        }
    }
}

/// kustomize's env-file format: `KEY=value` lines, `#` comments, blanks.
pub fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: `{l}` is not KEY=value", path.display()));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Applies an `images` entry to every container image under `v`.
fn retag(v: &mut Value, name: &str, new_name: Option<&str>, new_tag: Option<&str>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if k == "containers" || k == "initContainers" {
                    for c in child.as_array_mut().into_iter().flatten() {
                        let Some(image) = c["image"].as_str() else {
                            continue;
                        };
                        let (base, tag) = match image.rsplit_once(':') {
                            Some((b, t)) if !t.contains('/') => (b, Some(t)),
                            _ => (image, None),
                        };
                        if base == name {
                            let base = new_name.unwrap_or(base);
                            c["image"] = json!(match new_tag.or(tag) {
                                Some(t) => format!("{base}:{t}"),
                                None => base.to_string(),
                            });
                        }
                    }
                } else {
                    retag(child, name, new_name, new_tag);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| retag(c, name, new_name, new_tag)),
        _ => {}
    }
}

/// `kubectl kustomize` of `dir` when kubectl is installed (it embeds
/// kustomize), as JSON objects.
pub fn kubectl_kustomize(dir: &str) -> Option<Vec<Value>> {
    let kubectl = crate::monitoring::which("kubectl")?;
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(workspace_root().join(dir))
        .output()
        .expect("run kubectl kustomize");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(json_documents(
        &String::from_utf8_lossy(&out.stdout),
        &format!("kubectl kustomize {dir}"),
    ))
}

/// An object with its Secret data decoded: kustomize wraps long base64
/// values over several lines, which Kubernetes ignores.
pub fn comparable(o: &Value) -> Value {
    let mut o = o.clone();
    if o["kind"] == "Secret" {
        if let Some(data) = o["data"].as_object_mut() {
            for v in data.values_mut() {
                let b64: String = v
                    .as_str()
                    .expect("secret data")
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64");
                *v = Value::String(String::from_utf8(bytes).expect("UTF-8 secret"));
            }
        }
    }
    o
}

/// `kind/namespace/name` of an object.
pub fn id(o: &Value) -> String {
    format!(
        "{}/{}/{}",
        o["kind"].as_str().unwrap_or("?"),
        o["metadata"]["namespace"].as_str().unwrap_or("-"),
        o["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Objects keyed by [`id`]; panics on a duplicate.
pub fn by_id(objects: &[Value]) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    for o in objects {
        assert!(m.insert(id(o), o.clone()).is_none(), "duplicate {}", id(o));
    }
    m
}

// ----- reading objects -------------------------------------------------------

/// The objects of `kind`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

/// The object of `kind` named `name`.
pub fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The pod spec of a workload.
pub fn pod_spec(o: &Value) -> &Value {
    &o["spec"]["template"]["spec"]
}

/// The container of `deployment` named like it.
pub fn main_container(deployment: &Value) -> &Value {
    let name = &deployment["metadata"]["name"];
    pod_spec(deployment)["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| &c["name"] == name))
        .unwrap_or_else(|| panic!("{} has no container named after it", id(deployment)))
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvSource {
    Value(String),
    /// `optional`: the container starts without the key.
    Secret {
        name: String,
        key: String,
        optional: bool,
    },
    ConfigMap {
        name: String,
        key: String,
    },
}

/// The `env` of a container, in order.
pub fn container_env(c: &Value) -> Vec<(String, EnvSource)> {
    c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_string();
            let from = &e["valueFrom"];
            let src = if let Some(v) = e["value"].as_str() {
                EnvSource::Value(v.to_string())
            } else if from["secretKeyRef"].is_object() {
                EnvSource::Secret {
                    name: from["secretKeyRef"]["name"].as_str().unwrap().into(),
                    key: from["secretKeyRef"]["key"].as_str().unwrap().into(),
                    optional: from["secretKeyRef"]["optional"] == true,
                }
            } else if from["configMapKeyRef"].is_object() {
                EnvSource::ConfigMap {
                    name: from["configMapKeyRef"]["name"].as_str().unwrap().into(),
                    key: from["configMapKeyRef"]["key"].as_str().unwrap().into(),
                }
            } else {
                panic!("env {name}: unsupported source {e}")
            };
            (name, src)
        })
        .collect()
}

/// The value of `key` in a rendered Secret or ConfigMap.
pub fn data_value(objects: &[Value], kind: &str, name: &str, key: &str) -> String {
    let o = named(objects, kind, name);
    let v = o["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{kind} {name} has no key {key}"));
    if kind == "Secret" {
        let decoded = comparable(o);
        decoded["data"][key].as_str().unwrap().to_string()
    } else {
        v.to_string()
    }
}

// ----- what the code reads ---------------------------------------------------

/// Source directories of a workspace binary: its crate's `src` and those of
/// the workspace crates it depends on.
fn source_dirs(crate_dir: &str) -> Vec<PathBuf> {
    let root = workspace_root();
    let workspace = read(&root.join("Cargo.toml"));
    let manifest = read(&root.join(crate_dir).join("Cargo.toml"));
    let mut dirs = vec![root.join(crate_dir).join("src")];
    // `aigw-x = { path = "shared/x" }` in the workspace; `aigw-x.workspace = true` here.
    for line in workspace.lines() {
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if let Some(path) = rest
            .split("path = \"")
            .nth(1)
            .and_then(|p| p.split('"').next())
        {
            if manifest
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{name}.")))
            {
                dirs.push(root.join(path).join("src"));
            }
        }
    }
    dirs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Environment variable names the code of a binary crate spells as string
/// literals (`"GATEWAY_PORT"`), outside `#[cfg(test)]` modules, in its own
/// sources and those of the workspace crates it uses; plus `RUST_LOG` when
/// the code reads the tracing filter from the environment
/// (`EnvFilter::*_default_env`, which reads `RUST_LOG`).
pub fn env_names_read(crate_dir: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    for d in source_dirs(crate_dir) {
        rust_files(&d, &mut files);
    }
    let mut names = BTreeSet::new();
    for f in files {
        let text = read(&f);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        // Quote characters that do not delimit a string literal.
        let code = code.replace("\\\"", "").replace("'\"'", "");
        if code.contains("from_default_env") {
            names.insert("RUST_LOG".to_string());
        }
        for (i, lit) in code.split('"').enumerate() {
            // Odd pieces are inside quotes (good enough for env names: no
            // escaped quotes around them).
            if i % 2 == 1
                && lit.len() >= 3
                && lit.starts_with(|c: char| c.is_ascii_uppercase())
                && lit
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                names.insert(lit.to_string());
            }
        }
    }
    names
}

// ----- shutdown ----------------------------------------------------------------

/// `30s`, `2m`, `500ms` or plain seconds, rounded up to whole seconds.
pub fn seconds(v: &str) -> u64 {
    let v = v.trim();
    if let Ok(n) = v.parse::<u64>() {
        return n;
    }
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).expect("unit"));
    let n: u64 = num.parse().expect("number");
    match unit {
        "ms" => n.div_ceil(1000),
        "s" => n,
        "m" => n * 60,
        _ => panic!("unexpected duration {v}"),
    }
}

/// The longest a service takes from SIGTERM to exit, in seconds, from the
/// shutdown setting its manifest gives it. Mirrors each service's
/// `run_until_stopped` (services/*/src/startup.rs):
/// - gateway: actix drains for `SHUTDOWN_GRACE`, then the final metrics
///   flush is bounded by min(`SHUTDOWN_GRACE`, 10 s);
/// - config-center: drain `SHUTDOWN_TIMEOUT`, then the publisher and the
///   flusher are each awaited up to `SHUTDOWN_TIMEOUT` + 1 s;
/// - token-service: drain, then the consumer and the config watcher, each
///   up to `SHUTDOWN_TIMEOUT`, then the flusher up to `SHUTDOWN_TIMEOUT` + 1 s.
pub fn shutdown_bound(service: &str, env: &BTreeMap<String, String>) -> u64 {
    let get = |k: &str| {
        seconds(
            env.get(k)
                .unwrap_or_else(|| panic!("{service}: set {k} explicitly so the bound is visible")),
        )
    };
    match service {
        "gateway" => {
            let g = get("SHUTDOWN_GRACE");
            g + g.min(10)
        }
        "config-center" => {
            let t = get("SHUTDOWN_TIMEOUT");
            t + 2 * (t + 1)
        }
        "token-service" => {
            let t = get("SHUTDOWN_TIMEOUT");
            3 * t + t + 1
        }
        _ => unreachable!(),
    }
}
