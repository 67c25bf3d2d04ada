//! The OpenAPI document: it validates as OpenAPI 3, every route it lists
//! exists, and every `/api/v1` route refuses requests without the token.

use crate::both;
use crate::helpers::{Backend, TestApp, TOKEN};
use reqwest::Method;
use serde_json::Value;
use std::path::PathBuf;

/// (method, path with parameters filled in) for every operation.
fn operations(doc: &Value) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{code}", "team-a")
            .replace("{name}", "gpt-4o-mini")
            .replace("{id}", "some-id");
        assert!(!concrete.contains('{'), "unhandled parameter in {path}");
        for m in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            ops.push((method, concrete.clone()));
        }
    }
    ops
}

async fn every_route_needs_the_token(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    let ops = operations(&doc);
    let api: Vec<_> = ops
        .iter()
        .filter(|(_, p)| p.starts_with("/api/v1"))
        .collect();
    // Namespaces 5, keys 4, models 5, instances 5, snapshot, openapi, usage 2.
    assert_eq!(api.len(), 23, "{api:?}");
    for (method, path) in &api {
        for token in [None, Some("not-the-token")] {
            let r = app
                .send(method.clone(), path, token, Some(serde_json::json!({})))
                .await;
            r.assert_error(401, "unauthorized");
        }
        // With the token the route exists: whatever the answer, it is not
        // "no such route" nor "method not allowed" — the document cannot
        // name a route the server does not serve.
        let r = app
            .send(
                method.clone(),
                path,
                Some(TOKEN),
                Some(serde_json::json!({})),
            )
            .await;
        assert_ne!(r.status, 401, "{method} {path}");
        assert_ne!(r.status, 405, "{method} {path}: {}", r.text);
        if r.status == 404 {
            r.assert_error(404, "not_found");
        }
        assert!(r.status.as_u16() < 500, "{method} {path}: {}", r.text);
    }
    // The operations endpoints are open.
    for (method, path) in ops.iter().filter(|(_, p)| !p.starts_with("/api/v1")) {
        let r = app.send(method.clone(), path, None, None).await;
        assert_eq!(r.status, 200, "{method} {path}");
    }
}
both!(every_route_needs_the_token);

fn venv_python() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    p.exists().then_some(p)
}

#[tokio::test]
async fn openapi_document_validates() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let r = app.get("/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    // The provider fields and the cache prices are documented.
    let schemas = &doc["components"]["schemas"];
    for (schema, fields) in [
        (
            "CreateInstance",
            &["provider", "azure_deployment", "api_version"][..],
        ),
        (
            "PatchInstance",
            &["provider", "azure_deployment", "api_version"],
        ),
        (
            "InstanceView",
            &["provider", "azure_deployment", "api_version"],
        ),
        (
            "CreateModel",
            &["cached_input_price_per_1m", "cache_write_price_per_1m"],
        ),
        (
            "PatchModel",
            &["cached_input_price_per_1m", "cache_write_price_per_1m"],
        ),
        (
            "ModelView",
            &["cached_input_price_per_1m", "cache_write_price_per_1m"],
        ),
        ("Totals", &["cache_write_tokens"]),
        ("LedgerRowView", &["cache_write_tokens"]),
    ] {
        for f in fields {
            assert!(
                schemas[schema]["properties"][f].is_object(),
                "{schema}.{f} missing from the OpenAPI document"
            );
        }
    }
    assert!(
        schemas["CreateInstance"]["properties"]["provider"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("azure_openai"))
    );
    let Some(python) = venv_python() else {
        eprintln!("skipping OpenAPI validation: no .venv (run scripts/test.sh to create it)");
        return;
    };
    let dir = aigw_testkit::TempDir::new("cc-openapi");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &r.text).unwrap();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, json; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1]))); print('valid')",
        ])
        .arg(&file)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejected the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");

    // The check can fail: a broken document is rejected.
    let mut broken = doc.clone();
    broken["paths"]["/api/v1/models"]["get"]["responses"] = Value::String("nope".into());
    std::fs::write(&file, broken.to_string()).unwrap();
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, json; from openapi_spec_validator import validate; \
             validate(json.load(open(sys.argv[1])))",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "validator accepted a broken document"
    );
}
