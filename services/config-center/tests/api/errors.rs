//! Every error status with its JSON body: 400, 401, 404, 405, 409, 413, 415.

use crate::both;
use crate::helpers::{Backend, TestApp, MAX_BODY, TOKEN};
use reqwest::Method;
use serde_json::json;

async fn validation_errors(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    let inst = |extra: serde_json::Value| {
        let mut v = json!({"id":"i-1","namespace_code":"team-a","model":"gpt-4o-mini",
            "base_url":"https://api.example.com/v1"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    // (path, body, field named in the error)
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/api/v1/namespaces", json!({"code":"Team-A"}), "code"),
        ("/api/v1/namespaces", json!({"code":"-a"}), "code"),
        ("/api/v1/namespaces", json!({"code":"a".repeat(64)}), "code"),
        ("/api/v1/namespaces", json!({"code":"a b"}), "code"),
        ("/api/v1/namespaces", json!({"code":"ok","name":""}), "name"),
        (
            "/api/v1/namespaces",
            json!({"code":"ok","monthly_budget_usd":"-1"}),
            "monthly_budget_usd",
        ),
        (
            "/api/v1/namespaces",
            json!({"code":"ok","monthly_budget_usd":"lots"}),
            "monthly_budget_usd",
        ),
        (
            "/api/v1/namespaces",
            json!({"code":"ok","limits":{"rpm":0}}),
            "limits.rpm",
        ),
        (
            "/api/v1/namespaces",
            json!({"code":"ok","limits":{"max_concurrency":-5}}),
            "limits.max_concurrency",
        ),
        (
            "/api/v1/models",
            json!({"name":"m","encoding":"utf-8"}),
            "encoding",
        ),
        (
            "/api/v1/models",
            json!({"name":"m/x","encoding":"o200k_base"}),
            "name",
        ),
        (
            "/api/v1/models",
            json!({"name":"m","encoding":"o200k_base","input_price_per_1m":"-0.01"}),
            "input_price_per_1m",
        ),
        (
            "/api/v1/models",
            json!({"name":"m","encoding":"o200k_base","output_price_per_1m":"1e3"}),
            "output_price_per_1m",
        ),
        (
            "/api/v1/models",
            json!({"name":"m","encoding":"o200k_base","context_window":0}),
            "context_window",
        ),
        (
            "/api/v1/instances",
            inst(json!({"base_url":"ftp://x/v1"})),
            "base_url",
        ),
        (
            "/api/v1/instances",
            inst(json!({"base_url":"not a url"})),
            "base_url",
        ),
        (
            "/api/v1/instances",
            inst(json!({"base_url":"https://u:p@x/v1"})),
            "base_url",
        ),
        ("/api/v1/instances", inst(json!({"weight":-1})), "weight"),
        (
            "/api/v1/instances",
            inst(json!({"timeout_ms":0})),
            "timeout_ms",
        ),
        ("/api/v1/instances", inst(json!({"id":"I_1"})), "id"),
        (
            "/api/v1/instances",
            inst(json!({"namespace_code":"nope"})),
            "namespace_code",
        ),
        ("/api/v1/instances", inst(json!({"model":"nope"})), "model"),
        (
            "/api/v1/instances",
            inst(json!({"api_key":"has space"})),
            "api_key",
        ),
        (
            "/api/v1/instances",
            inst(json!({"health_check":{"path":"models"}})),
            "health_check.path",
        ),
        (
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"  "}),
            "name",
        ),
        (
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"x","expires_at":"tomorrow"}),
            "expires_at",
        ),
        (
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"x","allowed_models":[]}),
            "allowed_models",
        ),
    ];
    for (path, body, field) in cases {
        let r = app.post(path, body.clone()).await;
        let e = r.assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{path} {body}: {}", r.text);
    }
    let e = app
        .patch("/api/v1/namespaces/team-a", json!({"limits":{"tpm":0}}))
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "limits.tpm");
    let e = app
        .patch(
            "/api/v1/models/gpt-4o-mini",
            json!({"input_price_per_1m":"-3"}),
        )
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "input_price_per_1m");
    // Nothing invalid was stored or published.
    let snap = app.snapshot_at(1).await;
    assert_eq!(snap.namespaces.len(), 1);
    assert_eq!(snap.models.len(), 1);
    assert!(snap.instances.is_empty());
    assert!(snap.api_keys.is_empty());
    assert!(app.get("/api/v1/namespaces/team-a").await.json()["limits"]["tpm"].is_null());
}
both!(validation_errors);

async fn body_errors(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut r = app.raw(Method::POST, "/api/v1/namespaces").body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        r
    };
    let json = Some("application/json");
    // Malformed JSON.
    app.finish(post("{\"code\":", json))
        .await
        .assert_error(400, "invalid_body");
    app.finish(post("", json))
        .await
        .assert_error(400, "invalid_body");
    // Wrong type, missing field, unknown field.
    let r = app.finish(post("{\"code\":42}", json)).await;
    r.assert_error(400, "invalid_body");
    let e = app
        .finish(post("{\"name\":\"x\"}", json))
        .await
        .assert_error(400, "invalid_body");
    assert_eq!(e["field"], "code");
    let e = app
        .finish(post("{\"code\":\"x\",\"colour\":\"red\"}", json))
        .await
        .assert_error(400, "invalid_body");
    assert_eq!(e["field"], "colour");
    // Money must be a string: no binary floating point on the way in.
    app.finish(post("{\"code\":\"x\",\"monthly_budget_usd\":50.5}", json))
        .await
        .assert_error(400, "invalid_body");
    // A wrongly typed secret is not echoed back.
    app.create_namespace("team-a").await;
    app.create_model("m").await;
    let r = app
        .post(
            "/api/v1/instances",
            json!({"id":"i","namespace_code":"team-a","model":"m","base_url":"http://x/v1",
                "api_key":["sk-echo-me-not-123"]}),
        )
        .await;
    r.assert_error(400, "invalid_body");
    let r = app
        .finish(
            app.raw(Method::POST, "/api/v1/instances")
                .header("content-type", "application/json")
                .body(r#"{"id":"i","namespace_code":"team-a","model":"m","base_url":"http://x/v1","weight":"sk-echo-me-not-456"}"#),
        )
        .await;
    r.assert_error(400, "invalid_body");
    assert!(!app.all_responses().contains("sk-echo-me-not"));
    // Bad query strings.
    app.get("/api/v1/namespaces?limit=abc")
        .await
        .assert_error(400, "invalid_query");

    // 415: wrong or missing content type.
    app.finish(post("{\"code\":\"x\"}", Some("text/plain")))
        .await
        .assert_error(415, "unsupported_media_type");
    app.finish(post("{\"code\":\"x\"}", None))
        .await
        .assert_error(415, "unsupported_media_type");
    // application/merge-patch+json is JSON too.
    let r = app
        .finish(
            app.raw(Method::PATCH, "/api/v1/namespaces/team-a")
                .header("content-type", "application/merge-patch+json")
                .body("{\"name\":\"A\"}"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // 413: larger than MAX_BODY_BYTES, with and without a length.
    let big = format!(
        "{{\"code\":\"x\",\"description\":\"{}\"}}",
        "a".repeat(MAX_BODY + 1)
    );
    app.finish(
        app.raw(Method::POST, "/api/v1/namespaces")
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await
    .assert_error(413, "payload_too_large");
    let stream = futures_stream(big.into_bytes());
    app.finish(
        app.raw(Method::POST, "/api/v1/namespaces")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await
    .assert_error(413, "payload_too_large");
    assert!(app.get("/api/v1/namespaces/x").await.status == 404);
}
both!(body_errors);

/// A body sent in chunks without Content-Length.
fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(4096).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

async fn auth_and_routing_errors(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    // 401 without, with a wrong, or with a malformed token.
    for token in [None, Some("wrong-token"), Some("")] {
        let r = app
            .send(Method::GET, "/api/v1/namespaces", token, None)
            .await;
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate").as_deref(), Some("Bearer"));
    }
    let r = app
        .finish(
            app.client
                .get(format!("{}/api/v1/namespaces", app.addr))
                .header("authorization", format!("Basic {TOKEN}")),
        )
        .await;
    r.assert_error(401, "unauthorized");
    // 401 comes before body checks: no token and a bad body is still 401.
    app.send(
        Method::POST,
        "/api/v1/namespaces",
        None,
        Some(json!({"code":"Bad!"})),
    )
    .await
    .assert_error(401, "unauthorized");
    // Unknown routes: 404 JSON, inside and outside /api/v1.
    app.get("/api/v1/nothing-here")
        .await
        .assert_error(404, "route_not_found");
    app.send(Method::GET, "/nothing-here", None, None)
        .await
        .assert_error(404, "route_not_found");
    // Wrong method: 405 JSON with Allow.
    let r = app
        .send(Method::PUT, "/api/v1/namespaces", Some(TOKEN), None)
        .await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET, POST"));
    app.send(
        Method::POST,
        "/api/v1/models/x",
        Some(TOKEN),
        Some(json!({})),
    )
    .await
    .assert_error(405, "method_not_allowed");
    app.send(Method::DELETE, "/health", None, None)
        .await
        .assert_error(405, "method_not_allowed");
    // 404 for absent entities (also for ids that could never be valid).
    for path in [
        "/api/v1/namespaces/nope",
        "/api/v1/namespaces/NOPE",
        "/api/v1/models/nope",
        "/api/v1/instances/nope",
        "/api/v1/namespaces/nope/api-keys",
        "/api/v1/namespaces/nope/api-keys/0190",
        "/api/v1/namespaces/%FF%FE",
    ] {
        app.get(path).await.assert_error(404, "not_found");
    }
    app.patch("/api/v1/models/nope", json!({"enabled":false}))
        .await
        .assert_error(404, "not_found");
    app.patch("/api/v1/instances/nope", json!({"enabled":false}))
        .await
        .assert_error(404, "not_found");
}
both!(auth_and_routing_errors);

async fn conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    app.create_instance("i-1", "team-a", "gpt-4o-mini", None)
        .await;
    let e = app
        .post("/api/v1/namespaces", json!({"code":"team-a"}))
        .await
        .assert_error(409, "already_exists");
    assert_eq!(e["field"], "code");
    let e = app
        .post(
            "/api/v1/models",
            json!({"name":"gpt-4o-mini","encoding":"o200k_base"}),
        )
        .await
        .assert_error(409, "already_exists");
    assert_eq!(e["field"], "name");
    let e = app
        .post(
            "/api/v1/instances",
            json!({"id":"i-1","namespace_code":"team-a","model":"gpt-4o-mini","base_url":"http://x/v1"}),
        )
        .await
        .assert_error(409, "already_exists");
    assert_eq!(e["field"], "id");

    // Still referenced: namespace with an instance, model with an instance.
    app.delete("/api/v1/namespaces/team-a")
        .await
        .assert_error(409, "in_use");
    app.delete("/api/v1/models/gpt-4o-mini")
        .await
        .assert_error(409, "in_use");
    // …and a namespace with a live key.
    app.delete("/api/v1/instances/i-1").await;
    let key = app
        .post("/api/v1/namespaces/team-a/api-keys", json!({"name":"k"}))
        .await
        .json();
    app.delete("/api/v1/namespaces/team-a")
        .await
        .assert_error(409, "in_use");
    // Once the key is revoked the namespace goes, revoked key and all.
    let id = key["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/namespaces/team-a/api-keys/{id}"))
            .await
            .status,
        204
    );
    let r = app.delete("/api/v1/namespaces/team-a").await;
    assert_eq!(r.status, 204, "{}", r.text);
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.namespaces.is_empty());
    assert!(snap.api_keys.is_empty());
    let r = app.delete("/api/v1/models/gpt-4o-mini").await;
    assert_eq!(r.status, 204, "{}", r.text);
    // No error body anywhere spoke of the database.
    let all = app.all_responses().to_lowercase();
    for word in ["sqlite", "postgres", "constraint", "sqlx", "violat"] {
        assert!(!all.contains(word), "database text leaked: {word}");
    }
}
both!(conflicts);
