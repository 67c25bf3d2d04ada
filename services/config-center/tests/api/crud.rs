//! Full create/read/update/delete round trips, with the published snapshot
//! checked after every change.

use crate::both;
use crate::helpers::{Backend, TestApp};
use serde_json::json;

async fn namespaces_crud(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let body = json!({"code":"team-a","name":"Team A","description":"first team","enabled":true,
        "limits":{"max_concurrency":100,"rpm":600,"tpm":200000},"monthly_budget_usd":"50.00"});
    let r = app.post("/api/v1/namespaces", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    assert_eq!(created["code"], "team-a");
    assert_eq!(created["name"], "Team A");
    assert_eq!(created["description"], "first team");
    assert_eq!(created["enabled"], true);
    assert_eq!(
        created["limits"],
        json!({"max_concurrency":100,"rpm":600,"tpm":200000})
    );
    assert_eq!(created["monthly_budget_usd"], "50.00");
    let v1 = r.version();
    let snap = app.snapshot_at(v1).await;
    assert_eq!(snap.version, v1);
    let ns = snap.namespace("team-a").expect("namespace in snapshot");
    assert_eq!(ns.name, "Team A");
    assert_eq!(ns.limits.rpm, Some(600));
    assert_eq!(ns.limits.max_concurrency, Some(100));
    assert_eq!(ns.limits.tpm, Some(200000));
    assert_eq!(ns.monthly_budget_usd.unwrap().to_string(), "50.00");

    // Defaults: name = code, enabled, unlimited.
    let r = app
        .post("/api/v1/namespaces", json!({"code":"team-b"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["name"], "team-b");
    assert_eq!(
        r.json()["limits"],
        json!({"max_concurrency":null,"rpm":null,"tpm":null})
    );
    assert_eq!(r.json()["monthly_budget_usd"], json!(null));

    let got = app.get("/api/v1/namespaces/team-a").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), created);

    let list = app.get("/api/v1/namespaces").await;
    assert_eq!(list.status, 200);
    let codes: Vec<_> = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, ["team-a", "team-b"]);

    // Merge patch: only rpm changes among limits; budget removed.
    let r = app
        .patch(
            "/api/v1/namespaces/team-a",
            json!({"enabled":false,"limits":{"rpm":60},"monthly_budget_usd":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json();
    assert_eq!(p["enabled"], false);
    assert_eq!(p["name"], "Team A");
    assert_eq!(
        p["limits"],
        json!({"max_concurrency":100,"rpm":60,"tpm":200000})
    );
    assert_eq!(p["monthly_budget_usd"], json!(null));
    let v2 = r.version();
    assert!(v2 > v1);
    let snap = app.snapshot_at(v2).await;
    let ns = snap.namespace("team-a").unwrap();
    assert!(!ns.enabled);
    assert_eq!(ns.limits.rpm, Some(60));
    assert_eq!(ns.monthly_budget_usd, None);
    assert_eq!(app.get("/api/v1/namespaces/team-a").await.json(), p);

    // `limits: null` removes every limit.
    let r = app
        .patch("/api/v1/namespaces/team-a", json!({"limits":null}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["limits"],
        json!({"max_concurrency":null,"rpm":null,"tpm":null})
    );
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.namespace("team-a").unwrap().limits.is_unlimited());

    let r = app.delete("/api/v1/namespaces/team-a").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.namespace("team-a").is_none());
    assert!(snap.namespace("team-b").is_some());
    app.get("/api/v1/namespaces/team-a")
        .await
        .assert_error(404, "not_found");
    app.delete("/api/v1/namespaces/team-a")
        .await
        .assert_error(404, "not_found");
}
both!(namespaces_crud);

async fn models_crud(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let r = app
        .post(
            "/api/v1/models",
            json!({"name":"gpt-4o-mini","encoding":"o200k_base","input_price_per_1m":"0.15",
                "output_price_per_1m":"0.60","context_window":128000,"enabled":true}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let m = r.json();
    assert_eq!(m["input_price_per_1m"], "0.15");
    assert_eq!(m["output_price_per_1m"], "0.60");
    assert_eq!(m["context_window"], 128000);
    let snap = app.snapshot_at(r.version()).await;
    let sm = snap.model("gpt-4o-mini").unwrap();
    assert_eq!(sm.encoding, "o200k_base");
    assert_eq!(sm.input_price_per_1m.unwrap().to_string(), "0.15");
    assert_eq!(sm.output_price_per_1m.unwrap().to_string(), "0.60");
    assert_eq!(sm.context_window, Some(128000));

    // Prices beyond f64 precision survive exactly, through SQL and Redis.
    let exact = "0.123456789012345678";
    let r = app
        .patch(
            "/api/v1/models/gpt-4o-mini",
            json!({"input_price_per_1m": exact, "output_price_per_1m": null, "encoding":"cl100k_base"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["input_price_per_1m"], exact);
    assert_eq!(r.json()["output_price_per_1m"], json!(null));
    assert_eq!(r.json()["context_window"], 128000);
    let snap = app.snapshot_at(r.version()).await;
    let sm = snap.model("gpt-4o-mini").unwrap();
    assert_eq!(sm.input_price_per_1m.unwrap().to_string(), exact);
    assert_eq!(sm.output_price_per_1m, None);
    assert_eq!(sm.encoding, "cl100k_base");
    let got = app.get("/api/v1/models/gpt-4o-mini").await;
    assert_eq!(got.json()["input_price_per_1m"], exact);

    app.create_model("gpt-3.5-turbo").await;
    let names: Vec<_> = app.get("/api/v1/models").await.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["gpt-3.5-turbo", "gpt-4o-mini"]);

    let r = app.delete("/api/v1/models/gpt-3.5-turbo").await;
    assert_eq!(r.status, 204);
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.model("gpt-3.5-turbo").is_none());
    assert!(snap.model("gpt-4o-mini").is_some());
    app.get("/api/v1/models/gpt-3.5-turbo")
        .await
        .assert_error(404, "not_found");
}
both!(models_crud);

async fn instances_crud(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let secret = "sk-upstream-SECRET-7f3a9c2e";
    app.create_namespace("team-a").await;
    app.create_namespace("team-b").await;
    app.create_model("gpt-4o-mini").await;
    app.create_model("gpt-4o").await;
    let r = app
        .post(
            "/api/v1/instances",
            json!({"id":"openai-eu-1","namespace_code":"team-a","model":"gpt-4o-mini",
                "base_url":"https://api.example.com/v1/","upstream_model":"gpt-4o-mini-2024-07-18",
                "api_key":secret,"weight":10,"timeout_ms":60000,"enabled":true,
                "health_check":{"path":"/models","interval_s":15}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let i = r.json();
    assert_eq!(i["base_url"], "https://api.example.com/v1");
    assert_eq!(i["api_key_set"], true);
    assert_eq!(i["api_key_last4"], "9c2e");
    assert!(i.get("api_key").is_none());
    assert_eq!(i["health_check"], json!({"path":"/models","interval_s":15}));
    let snap = app.snapshot_at(r.version()).await;
    let si = &snap.instances[0];
    assert_eq!(si.id, "openai-eu-1");
    // The gateway needs the secret: it is in the Redis snapshot only.
    assert_eq!(si.api_key.as_deref(), Some(secret));
    assert_eq!(si.weight, 10);
    assert_eq!(si.upstream_model, "gpt-4o-mini-2024-07-18");
    assert_eq!(si.health_check.as_ref().unwrap().path, "/models");

    app.create_instance("b-1", "team-b", "gpt-4o", None).await;
    app.create_instance("a-2", "team-a", "gpt-4o", None).await;
    let ids = |v: serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(app.get("/api/v1/instances").await.json()),
        ["a-2", "b-1", "openai-eu-1"]
    );
    assert_eq!(
        ids(app.get("/api/v1/instances?namespace=team-a").await.json()),
        ["a-2", "openai-eu-1"]
    );
    assert_eq!(
        ids(app.get("/api/v1/instances?model=gpt-4o").await.json()),
        ["a-2", "b-1"]
    );
    assert_eq!(
        ids(app
            .get("/api/v1/instances?namespace=team-a&model=gpt-4o")
            .await
            .json()),
        ["a-2"]
    );
    let got = app.get("/api/v1/instances/b-1").await.json();
    assert_eq!(got["api_key_set"], false);
    assert_eq!(got["api_key_last4"], json!(null));
    assert_eq!(got["upstream_model"], "gpt-4o");
    assert_eq!(got["weight"], 1);
    assert_eq!(got["timeout_ms"], 60000);

    // Patch: new secret, weight 0 (drained), moved to another namespace.
    let secret2 = "sk-upstream-ROTATED-11aa22bb";
    let r = app
        .patch(
            "/api/v1/instances/openai-eu-1",
            json!({"api_key":secret2,"weight":0,"namespace_code":"team-b","health_check":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json();
    assert_eq!(p["api_key_last4"], "22bb");
    assert_eq!(p["weight"], 0);
    assert_eq!(p["namespace_code"], "team-b");
    assert_eq!(p["health_check"], json!(null));
    let snap = app.snapshot_at(r.version()).await;
    let si = snap
        .instances
        .iter()
        .find(|i| i.id == "openai-eu-1")
        .unwrap();
    assert_eq!(si.api_key.as_deref(), Some(secret2));
    assert_eq!(si.weight, 0);
    assert_eq!(si.namespace_code, "team-b");
    assert!(si.health_check.is_none());

    // `api_key: null` removes the secret.
    let r = app
        .patch("/api/v1/instances/openai-eu-1", json!({"api_key":null}))
        .await;
    assert_eq!(r.json()["api_key_set"], false);
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap
        .instances
        .iter()
        .find(|i| i.id == "openai-eu-1")
        .unwrap()
        .api_key
        .is_none());

    // Unknown references are refused with the field named.
    let e = app
        .patch("/api/v1/instances/b-1", json!({"model":"nope"}))
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "model");
    let e = app
        .patch("/api/v1/instances/b-1", json!({"namespace_code":"nope"}))
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "namespace_code");

    let r = app.delete("/api/v1/instances/openai-eu-1").await;
    assert_eq!(r.status, 204);
    let snap = app.snapshot_at(r.version()).await;
    assert!(snap.instances.iter().all(|i| i.id != "openai-eu-1"));
    app.get("/api/v1/instances/openai-eu-1")
        .await
        .assert_error(404, "not_found");

    // The published snapshot over the API redacts secrets too.
    app.patch("/api/v1/instances/b-1", json!({"api_key":secret}))
        .await;
    let s = app.get("/api/v1/snapshot").await;
    assert_eq!(s.status, 200);
    let inst = s.json()["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "b-1")
        .cloned()
        .unwrap();
    assert_eq!(inst["api_key_set"], true);
    assert!(inst.get("api_key").is_none());

    // No answer of this whole test carried a secret.
    let all = app.all_responses();
    assert!(!all.contains(secret), "secret leaked in a response");
    assert!(!all.contains(secret2), "secret leaked in a response");
    assert!(!all.contains("sk-upstream-"), "secret leaked in a response");
}
both!(instances_crud);

async fn api_keys_lifecycle(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    let r = app
        .post(
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"ci","expires_at":null,"allowed_models":null}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk-aigw-"), "{key}");
    assert!(key.len() >= 8 + 43, "{key}");
    assert!(key[8..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(created["prefix"], key[..12]);
    assert_eq!(created["namespace_code"], "team-a");
    assert_eq!(created["revoked"], false);

    let hash = aigw_types::hash_api_key(&key);
    let snap = app.snapshot_at(r.version()).await;
    let sk = snap.api_keys.iter().find(|k| k.id == id).unwrap();
    assert_eq!(sk.key_hash, hash);
    assert_eq!(sk.namespace_code, "team-a");
    assert!(!sk.revoked);
    assert!(sk.is_active(i64::MAX - 1));

    // Neither GET nor the database has the key; the database has its hash.
    let list = app.get("/api/v1/namespaces/team-a/api-keys").await;
    assert_eq!(list.status, 200);
    let items = list.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.as_str());
    assert_eq!(items[0]["name"], "ci");
    assert!(items[0].get("key").is_none());
    let one = app
        .get(&format!("/api/v1/namespaces/team-a/api-keys/{id}"))
        .await;
    assert_eq!(one.status, 200);
    assert!(one.json().get("key").is_none());
    let dump = app.db.dump().await;
    assert!(dump.contains(&hash), "the dump does not show stored data");
    assert!(!dump.contains(&key), "plaintext key stored in the database");
    assert!(
        !dump.contains(&key[8..]),
        "key material stored in the database"
    );
    let answers = app.all_responses();
    assert_eq!(answers.matches(&key).count(), 1, "key shown more than once");

    // A restricted, expiring key.
    let r = app
        .post(
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"bot","expires_at":"2099-01-01T00:00:00Z","allowed_models":["gpt-4o-mini"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["expires_at"], "2099-01-01T00:00:00.000Z");
    let id2 = r.json()["id"].as_str().unwrap().to_string();
    let snap = app.snapshot_at(r.version()).await;
    let k2 = snap.api_keys.iter().find(|k| k.id == id2).unwrap();
    assert_eq!(k2.expires_at_ms, Some(4_070_908_800_000));
    assert_eq!(
        k2.allowed_models.as_deref(),
        Some(&["gpt-4o-mini".to_string()][..])
    );

    let e = app
        .post(
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"x","allowed_models":["no-such-model"]}),
        )
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "allowed_models");
    let e = app
        .post(
            "/api/v1/namespaces/team-a/api-keys",
            json!({"name":"x","expires_at":"2001-01-01T00:00:00Z"}),
        )
        .await
        .assert_error(400, "validation_error");
    assert_eq!(e["field"], "expires_at");
    app.post("/api/v1/namespaces/nope/api-keys", json!({"name":"x"}))
        .await
        .assert_error(404, "not_found");

    // Revoke: the snapshot marks it, the list shows it, a second revoke
    // changes nothing (no new version).
    let r = app
        .delete(&format!("/api/v1/namespaces/team-a/api-keys/{id}"))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let v = r.version();
    let snap = app.snapshot_at(v).await;
    assert!(snap.api_keys.iter().find(|k| k.id == id).unwrap().revoked);
    let listed = app.get("/api/v1/namespaces/team-a/api-keys").await.json();
    let k = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(k["revoked"], true);
    assert!(k["revoked_at"].is_string());
    let again = app
        .delete(&format!("/api/v1/namespaces/team-a/api-keys/{id}"))
        .await;
    assert_eq!(again.status, 204);
    assert!(again.header("x-config-version").is_none());
    assert_eq!(app.redis_snapshot().await.unwrap().1, v);
    // Another namespace's path does not reach the key.
    app.create_namespace("team-b").await;
    app.delete(&format!("/api/v1/namespaces/team-b/api-keys/{id2}"))
        .await
        .assert_error(404, "not_found");
}
both!(api_keys_lifecycle);

async fn instance_retry_and_billing_scope(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    // Defaults: no resend on an unknown outcome, no billing scope.
    app.create_instance("plain", "team-a", "gpt-4o-mini", None)
        .await;
    let got = app.get("/api/v1/instances/plain").await.json();
    assert_eq!(got["retry_unknown_outcome"], false);
    assert_eq!(got["openai_organization"], json!(null));
    assert_eq!(got["openai_project"], json!(null));

    let r = app
        .post(
            "/api/v1/instances",
            json!({"id":"scoped","namespace_code":"team-a","model":"gpt-4o-mini",
                "base_url":"https://api.example.com/v1","retry_unknown_outcome":true,
                "openai_organization":"org-abc123","openai_project":"proj_xyz"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let i = r.json();
    assert_eq!(i["retry_unknown_outcome"], true);
    assert_eq!(i["openai_organization"], "org-abc123");
    assert_eq!(i["openai_project"], "proj_xyz");
    let snap = app.snapshot_at(r.version()).await;
    let si = snap.instances.iter().find(|i| i.id == "scoped").unwrap();
    assert!(si.retry_unknown_outcome);
    assert_eq!(si.openai_organization.as_deref(), Some("org-abc123"));
    assert_eq!(si.openai_project.as_deref(), Some("proj_xyz"));
    let plain = snap.instances.iter().find(|i| i.id == "plain").unwrap();
    assert!(!plain.retry_unknown_outcome);
    assert!(plain.openai_organization.is_none());

    // Patch: opt out, clear the project, keep the organization.
    let r = app
        .patch(
            "/api/v1/instances/scoped",
            json!({"retry_unknown_outcome":false,"openai_project":null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let snap = app.snapshot_at(r.version()).await;
    let si = snap.instances.iter().find(|i| i.id == "scoped").unwrap();
    assert!(!si.retry_unknown_outcome);
    assert_eq!(si.openai_organization.as_deref(), Some("org-abc123"));
    assert!(si.openai_project.is_none());

    // They travel as header values: visible ASCII only.
    for bad in [json!("org 1"), json!(""), json!("org\u{e9}")] {
        let e = app
            .patch(
                "/api/v1/instances/scoped",
                json!({ "openai_organization": bad }),
            )
            .await
            .assert_error(400, "validation_error");
        assert_eq!(e["field"], "openai_organization");
    }
    let e = app
        .patch(
            "/api/v1/instances/scoped",
            json!({"retry_unknown_outcome":"yes"}),
        )
        .await;
    assert_eq!(e.status, 400, "{}", e.text);
}
both!(instance_retry_and_billing_scope);
