//! Upstream providers on instances (the per-provider fields and their
//! rules) and the models' cache-read and cache-write prices: stored,
//! answered, validated with 400s naming the field, and published.

use crate::both;
use crate::helpers::{Backend, TestApp};
use aigw_types::Provider;
use serde_json::{json, Value};

const ANTHROPIC_SECRET: &str = "sk-ant-upstream-secret-1234";
const AZURE_SECRET: &str = "azure-upstream-secret-5678";

fn instance(id: &str, extra: Value) -> Value {
    let mut body = json!({"id": id, "namespace_code": "team-a", "model": "m1",
        "base_url": "https://upstream.example.com/v1"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn instances_carry_their_provider(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("m1").await;

    let r = app
        .post(
            "/api/v1/instances",
            instance(
                "claude",
                json!({"provider":"anthropic","base_url":"https://api.anthropic.com/v1",
                    "upstream_model":"claude-sonnet-4-5","api_key":ANTHROPIC_SECRET,
                    "api_version":"2023-06-01"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let i = r.json();
    assert_eq!(i["provider"], "anthropic");
    assert_eq!(i["api_version"], "2023-06-01");
    assert_eq!(i["azure_deployment"], json!(null));
    assert_eq!(i["api_key_set"], true);
    assert_eq!(i["api_key_last4"], "1234");

    let r = app
        .post(
            "/api/v1/instances",
            instance(
                "azure-dep",
                json!({"provider":"azure_openai","base_url":"https://res.openai.azure.com",
                    "api_key":AZURE_SECRET,"azure_deployment":"gpt-4o-mini-prod",
                    "api_version":"2024-10-21"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Azure's v1 API: no api_version, no deployment.
    let r = app
        .post(
            "/api/v1/instances",
            instance(
                "azure-v1",
                json!({"provider":"azure_openai","base_url":"https://res.openai.azure.com"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post(
            "/api/v1/instances",
            instance(
                "gem",
                json!({"provider":"gemini",
                    "base_url":"https://generativelanguage.googleapis.com/v1beta"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // No provider: openai, as before.
    let r = app
        .post("/api/v1/instances", instance("oai", json!({})))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["provider"], "openai");

    let snap = app.snapshot_at(r.version()).await;
    let si = |id: &str| snap.instances.iter().find(|i| i.id == id).unwrap().clone();
    let claude = si("claude");
    assert_eq!(claude.provider, Provider::Anthropic);
    assert_eq!(claude.api_version.as_deref(), Some("2023-06-01"));
    assert_eq!(claude.upstream_model, "claude-sonnet-4-5");
    // The gateway needs the secret in the clear; only the snapshot has it.
    assert_eq!(claude.api_key.as_deref(), Some(ANTHROPIC_SECRET));
    let azure = si("azure-dep");
    assert_eq!(azure.provider, Provider::AzureOpenai);
    assert_eq!(azure.base_url, "https://res.openai.azure.com");
    assert_eq!(azure.azure_deployment.as_deref(), Some("gpt-4o-mini-prod"));
    assert_eq!(azure.api_version.as_deref(), Some("2024-10-21"));
    let v1 = si("azure-v1");
    assert_eq!(
        (v1.provider, v1.azure_deployment, v1.api_version),
        (Provider::AzureOpenai, None, None)
    );
    assert_eq!(si("gem").provider, Provider::Gemini);
    assert_eq!(si("oai").provider, Provider::Openai);

    // Read back, one and all.
    let got = app.get("/api/v1/instances/azure-dep").await.json();
    assert_eq!(got["provider"], "azure_openai");
    assert_eq!(got["azure_deployment"], "gpt-4o-mini-prod");
    assert_eq!(got["api_version"], "2024-10-21");
    let list = app.get("/api/v1/instances").await.json();
    let providers: Vec<(&str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap(), i["provider"].as_str().unwrap()))
        .collect();
    assert_eq!(
        providers,
        [
            ("azure-dep", "azure_openai"),
            ("azure-v1", "azure_openai"),
            ("claude", "anthropic"),
            ("gem", "gemini"),
            ("oai", "openai"),
        ]
    );

    // Patch: Azure's v1 instance gets a versioned deployment path.
    let r = app
        .patch(
            "/api/v1/instances/azure-v1",
            json!({"api_version":"2024-12-01-preview","azure_deployment":"dep-2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let snap = app.snapshot_at(r.version()).await;
    let v1 = snap.instances.iter().find(|i| i.id == "azure-v1").unwrap();
    assert_eq!(v1.api_version.as_deref(), Some("2024-12-01-preview"));
    assert_eq!(v1.azure_deployment.as_deref(), Some("dep-2"));
    // An OpenAI instance with a billing scope moves to Anthropic only
    // without it.
    app.patch(
        "/api/v1/instances/oai",
        json!({"openai_organization":"org-1"}),
    )
    .await;
    let e = app
        .patch("/api/v1/instances/oai", json!({"provider":"anthropic"}))
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "openai_organization");
    let r = app
        .patch(
            "/api/v1/instances/oai",
            json!({"provider":"anthropic","openai_organization":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["provider"], "anthropic");
    let snap = app.snapshot_at(r.version()).await;
    let moved = snap.instances.iter().find(|i| i.id == "oai").unwrap();
    assert_eq!(moved.provider, Provider::Anthropic);
    assert!(moved.openai_organization.is_none());

    // The published snapshot as the API shows it: providers, no secrets.
    let shown = app.get("/api/v1/snapshot").await.json();
    let shown_of = |id: &str| {
        shown["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(shown_of("claude")["provider"], "anthropic");
    assert_eq!(shown_of("claude")["api_key_last4"], "1234");
    assert_eq!(
        shown_of("azure-dep")["azure_deployment"],
        "gpt-4o-mini-prod"
    );
    assert_eq!(shown_of("gem")["provider"], "gemini");

    // Secrets stay write-only: no answer carried them.
    let seen = app.all_responses();
    assert!(!seen.contains(ANTHROPIC_SECRET));
    assert!(!seen.contains(AZURE_SECRET));
}
both!(instances_carry_their_provider);

async fn provider_fields_are_validated(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("m1").await;
    let v0 = app.redis_snapshot().await.unwrap().1;
    let cases = [
        (json!({"provider":"azure"}), "provider"),
        (json!({"provider":""}), "provider"),
        (json!({"provider":"OpenAI"}), "provider"),
        (
            json!({"provider":"anthropic","azure_deployment":"d"}),
            "azure_deployment",
        ),
        (
            json!({"provider":"azure_openai","azure_deployment":"d"}),
            "azure_deployment",
        ),
        (
            json!({"provider":"gemini","api_version":"v1"}),
            "api_version",
        ),
        (json!({"api_version":"2024-10-21"}), "api_version"),
        (
            json!({"provider":"azure_openai","api_version":"2024 10 21"}),
            "api_version",
        ),
        (
            json!({"provider":"azure_openai","api_version":"v1","azure_deployment":"a/b"}),
            "azure_deployment",
        ),
        (
            json!({"provider":"anthropic","openai_organization":"org-1"}),
            "openai_organization",
        ),
        (
            json!({"provider":"gemini","openai_project":"proj_1"}),
            "openai_project",
        ),
    ];
    for (i, (extra, field)) in cases.into_iter().enumerate() {
        let e = app
            .post(
                "/api/v1/instances",
                instance(&format!("bad-{i}"), extra.clone()),
            )
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{extra}");
        assert!(
            e["message"].as_str().unwrap().len() > 10,
            "{extra}: {}",
            e["message"]
        );
    }
    // Not a string: still a JSON 400.
    let r = app
        .post(
            "/api/v1/instances",
            instance("bad-n", json!({"provider":1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["error"]["message"].is_string(), "{}", r.text);

    // Patches are checked on the result.
    app.post(
        "/api/v1/instances",
        instance(
            "az",
            json!({"provider":"azure_openai","api_version":"2024-10-21","azure_deployment":"d1"}),
        ),
    )
    .await;
    let v1 = app.redis_snapshot().await.unwrap().1;
    assert!(v1 > v0);
    for (patch, field) in [
        (json!({"api_version":null}), "azure_deployment"),
        (json!({"provider":"anthropic"}), "azure_deployment"),
        (json!({"provider":"nope"}), "provider"),
        (json!({"azure_deployment":""}), "azure_deployment"),
    ] {
        let e = app
            .patch("/api/v1/instances/az", patch.clone())
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{patch}");
    }
    // Nothing failed was stored or published.
    assert_eq!(app.redis_snapshot().await.unwrap().1, v1);
    let got = app.get("/api/v1/instances/az").await.json();
    assert_eq!(got["provider"], "azure_openai");
    assert_eq!(got["api_version"], "2024-10-21");
    assert_eq!(got["azure_deployment"], "d1");
    assert_eq!(
        app.get("/api/v1/instances?limit=500").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
both!(provider_fields_are_validated);

async fn models_have_cache_prices(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let r = app
        .post(
            "/api/v1/models",
            json!({"name":"claude-sonnet","encoding":"o200k_base","input_price_per_1m":"3",
                "output_price_per_1m":"15","cached_input_price_per_1m":"0.30",
                "cache_write_price_per_1m":"3.75"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = r.json();
    assert_eq!(m["cached_input_price_per_1m"], "0.30");
    assert_eq!(m["cache_write_price_per_1m"], "3.75");
    let snap = app.snapshot_at(r.version()).await;
    let sm = snap.model("claude-sonnet").unwrap();
    assert_eq!(sm.cached_input_price_per_1m.unwrap().to_string(), "0.30");
    assert_eq!(sm.cache_write_price_per_1m.unwrap().to_string(), "3.75");

    // Exact beyond f64, and null clears (back to the input price).
    let exact = "0.000000123456789012345678";
    let r = app
        .patch(
            "/api/v1/models/claude-sonnet",
            json!({"cached_input_price_per_1m": exact, "cache_write_price_per_1m": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["cached_input_price_per_1m"], exact);
    assert_eq!(r.json()["cache_write_price_per_1m"], json!(null));
    let snap = app.snapshot_at(r.version()).await;
    let sm = snap.model("claude-sonnet").unwrap();
    assert_eq!(sm.cached_input_price_per_1m.unwrap().to_string(), exact);
    assert_eq!(sm.cache_write_price_per_1m, None);
    assert_eq!(
        app.get("/api/v1/models/claude-sonnet").await.json()["cached_input_price_per_1m"],
        exact
    );
    // A model without them publishes none.
    app.create_model("plain").await;
    let snap = app.redis_snapshot().await.unwrap().0;
    let plain = snap.model("plain").unwrap();
    assert_eq!(
        (
            plain.cached_input_price_per_1m,
            plain.cache_write_price_per_1m
        ),
        (None, None)
    );

    for (body, field) in [
        (
            json!({"cached_input_price_per_1m":"-0.01"}),
            "cached_input_price_per_1m",
        ),
        (
            json!({"cache_write_price_per_1m":"abc"}),
            "cache_write_price_per_1m",
        ),
        (
            json!({"cache_write_price_per_1m":"1e3"}),
            "cache_write_price_per_1m",
        ),
    ] {
        let e = app
            .patch("/api/v1/models/claude-sonnet", body.clone())
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{body}");
        let mut create = json!({"name":"x","encoding":"o200k_base"});
        for (k, v) in body.as_object().unwrap() {
            create[k] = v.clone();
        }
        let e = app
            .post("/api/v1/models", create)
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{body}");
    }
}
both!(models_have_cache_prices);
