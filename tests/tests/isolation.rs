//! Isolation and secrets over the real binaries (issue 8): a namespace's key
//! reaches only its own models and instances and never the admin API;
//! revoked and expired keys stop working within a second; no secret (admin
//! token, upstream keys, client keys) shows up in logs at any level, API
//! answers, `/metrics` or Redis metric keys; brute force is counted; and
//! clients cannot grow the number of metric series.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::admin::upstream_secret;
use aigw_e2e::load::{chat_body, send};
use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions, ADMIN_TOKEN, FLUSH};
use aigw_testkit::prom::{sample, Scrape};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

async fn chat_count(s: &Stack, mock: usize) -> u64 {
    s.json(&format!("{}/mock/stats", s.mocks[mock].url())).await["requests"]["chat_completions"]
        .as_u64()
        .unwrap_or(0)
}

/// Two namespaces, each with its own model and instance, plus a model name
/// both serve from their own instance.
async fn two_namespaces(s: &Stack) -> (String, String) {
    s.namespace("team-a", json!({})).await;
    s.namespace("team-b", json!({})).await;
    for m in ["model-a", "model-b", "shared"] {
        s.model(m, "1", "2").await;
    }
    let inst = |id: &str, ns: &str, m: &str, mock: usize| {
        (
            id.to_string(),
            ns.to_string(),
            m.to_string(),
            s.mock_base(mock),
            upstream_secret(ns, mock),
        )
    };
    for (id, ns, m, base, secret) in [
        inst("a-1", "team-a", "model-a", 0),
        inst("a-shared", "team-a", "shared", 0),
        inst("b-1", "team-b", "model-b", 1),
        inst("b-shared", "team-b", "shared", 1),
    ] {
        s.instance(&id, &ns, &m, &base, json!({"api_key": secret}))
            .await;
    }
    let (_, ka, _) = s.key("team-a", json!({})).await;
    let (_, kb, v) = s.key("team-b", json!({})).await;
    s.wait_version(v).await;
    (ka, kb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reaches_only_its_namespace_and_never_the_admin_api() {
    let s = Stack::start(StackOptions {
        mocks: 2,
        ..StackOptions::default()
    })
    .await;
    let (ka, kb) = two_namespaces(&s).await;
    let gw = s.gw(0);

    // B's model does not exist for A, worded exactly like a model nobody has.
    let o = send(&s.http, &gw, &ka, &chat_body("model-b", false, None)).await;
    assert_eq!(o.status, Some(404), "{}", o.body);
    let none = send(&s.http, &gw, &ka, &chat_body("model-z", false, None)).await;
    assert_eq!(none.status, Some(404));
    assert_eq!(
        o.body.replace("model-b", "X"),
        none.body.replace("model-z", "X"),
        "the answer must not reveal that another namespace has the model"
    );
    assert_eq!(
        chat_count(&s, 1).await,
        0,
        "B's instance was reached with A's key"
    );

    // A's list and lookups show A's models only.
    let list: Value = s
        .http
        .get(format!("{gw}/v1/models"))
        .bearer_auth(&ka)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["model-a", "shared"], "{list}");
    let r = s
        .http
        .get(format!("{gw}/v1/models/model-b"))
        .bearer_auth(&ka)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A shared model name goes to the caller's own instance, with its own
    // upstream secret.
    for _ in 0..5 {
        let o = send(&s.http, &gw, &ka, &chat_body("shared", false, None)).await;
        assert_eq!(o.status, Some(200), "{}", o.body);
    }
    assert_eq!(
        chat_count(&s, 1).await,
        0,
        "A's requests reached B's instance"
    );
    let stats = s.json(&format!("{}/mock/stats", s.mocks[0].url())).await;
    assert_eq!(
        stats["last_request"]["authorization"],
        format!("Bearer {}", upstream_secret("team-a", 0))
    );
    let o = send(&s.http, &gw, &kb, &chat_body("shared", false, None)).await;
    assert_eq!(o.status, Some(200));
    assert_eq!(
        chat_count(&s, 1).await,
        1,
        "B's request reached B's instance"
    );

    // A key restricted to one model cannot use the namespace's others.
    let (_, narrow, v) = s
        .key("team-a", json!({"allowed_models": ["model-a"]}))
        .await;
    s.wait_version(v).await;
    let o = send(&s.http, &gw, &narrow, &chat_body("shared", false, None)).await;
    assert_eq!(o.status, Some(403), "{}", o.body);
    let o = send(&s.http, &gw, &narrow, &chat_body("model-a", false, None)).await;
    assert_eq!(o.status, Some(200), "{}", o.body);

    // A client key is no admin token, on any admin route.
    let mut admin_statuses = Vec::new();
    for (m, path) in [
        (reqwest::Method::GET, "/api/v1/namespaces"),
        (reqwest::Method::GET, "/api/v1/namespaces/team-b"),
        (reqwest::Method::GET, "/api/v1/namespaces/team-b/api-keys"),
        (reqwest::Method::GET, "/api/v1/snapshot"),
        (reqwest::Method::GET, "/api/v1/instances"),
        (reqwest::Method::GET, "/api/v1/openapi.json"),
        (reqwest::Method::POST, "/api/v1/namespaces"),
        (reqwest::Method::DELETE, "/api/v1/namespaces/team-b"),
    ] {
        let body = (m == reqwest::Method::POST).then(|| json!({"code": "evil"}));
        let a = s.admin_as(Some(&ka), m.clone(), path, body).await;
        assert_eq!(a.status, 401, "{m} {path} with a client key: {}", a.text);
        admin_statuses.push(a.status);
    }
    // The gateway has no admin or per-namespace metrics route under the API.
    for path in [
        "/v1/metrics",
        "/v1/namespaces/team-b",
        "/api/v1/namespaces",
        "/v1/usage",
    ] {
        let r = s
            .http
            .get(format!("{gw}{path}"))
            .bearer_auth(&ka)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // Nothing was created by the attempts.
    let a = s
        .admin(reqwest::Method::GET, "/api/v1/namespaces/evil", None)
        .await;
    assert_eq!(a.status, 404);
    report(
        "namespace isolation: A's key on B's model, a shared model name, a restricted key, 8 admin routes, API paths for metrics",
        "22 requests",
        "0 crossed a namespace; 0 admin calls accepted; B's instance untouched",
    );
}

fn rfc3339_in(secs: u64) -> (String, u128) {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(secs);
    let s = t.as_secs();
    let (days, rem) = (s / 86400, s % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ),
        Duration::from_secs(s).as_millis(),
    )
}

/// Revoked and expired keys stop working within a second of the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_keys_stop_within_a_second() {
    let s = Stack::start(StackOptions::default()).await;
    let key = s.world("rev", "m1", json!({})).await;
    let gw = s.gw(0);
    let ok = send(&s.http, &gw, &key, &chat_body("m1", false, None)).await;
    assert_eq!(ok.status, Some(200));
    let id = s
        .admin(
            reqwest::Method::GET,
            "/api/v1/namespaces/rev/api-keys",
            None,
        )
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Revocation: from the admin API's answer to the first 401.
    s.revoke("rev", &id).await;
    let changed = Instant::now();
    let revoked_after = loop {
        let o = send(&s.http, &gw, &key, &chat_body("m1", false, None)).await;
        if o.status == Some(401) {
            assert!(o.body.contains("revoked"), "{}", o.body);
            break changed.elapsed();
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "revoked key still works: {:?}",
            o.status
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };

    // Expiry: the key stops at its expiry time.
    let (expires_at, expires_ms) = rfc3339_in(3);
    let (_, short, v) = s.key("rev", json!({"expires_at": expires_at})).await;
    s.wait_version(v).await;
    let o = send(&s.http, &gw, &short, &chat_body("m1", false, None)).await;
    assert_eq!(o.status, Some(200), "before expiry: {}", o.body);
    let expired_after = loop {
        let o = send(&s.http, &gw, &short, &chat_body("m1", false, None)).await;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        if o.status == Some(401) {
            assert!(o.body.contains("expired"), "{}", o.body);
            break Duration::from_millis(now_ms.saturating_sub(expires_ms) as u64);
        }
        assert!(now_ms < expires_ms + 10_000, "expired key still works");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    report(
        "key revoked / key expired while in use",
        "requests every 10 ms with the key",
        &format!(
            "revoked key refused {} ms after the change; expired key refused {} ms after expiry",
            revoked_after.as_millis(),
            expired_after.as_millis()
        ),
    );
    // The requirement: within a second of the change.
    assert!(
        revoked_after <= Duration::from_secs(1),
        "revocation took {revoked_after:?}"
    );
    assert!(
        expired_after <= Duration::from_secs(1),
        "expiry took {expired_after:?}"
    );
    // Both show as auth failures.
    tokio::time::sleep(FLUSH * 4).await;
    assert!(s.int("metrics:gateway:auth_failures:revoked_key").await >= 1);
    assert!(s.int("metrics:gateway:auth_failures:expired_key").await >= 1);
}

/// Brute force on the gateway and on the admin API is visible in a metric,
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_attempts_are_counted() {
    let s = Stack::start(StackOptions::default()).await;
    s.world("bf", "m1", json!({})).await;
    let gw = s.gw(0);
    for i in 0..50 {
        let o = send(
            &s.http,
            &gw,
            &format!("sk-aigw-guess-{i:04}"),
            &chat_body("m1", false, None),
        )
        .await;
        assert_eq!(o.status, Some(401));
    }
    for _ in 0..7 {
        let r = s
            .http
            .post(format!("{gw}/v1/chat/completions"))
            .json(&chat_body("m1", false, None))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    for i in 0..30 {
        let a = s
            .admin_as(
                Some(&format!("guess-{i}")),
                reqwest::Method::GET,
                "/api/v1/namespaces",
                None,
            )
            .await;
        assert_eq!(a.status, 401);
    }
    let got = s
        .settle(Duration::from_secs(10), &(50, 7), || async {
            (
                s.int("metrics:gateway:auth_failures:invalid_key").await,
                s.int("metrics:gateway:auth_failures:missing_key").await,
            )
        })
        .await;
    assert_eq!(got, (50, 7));
    let m = s.text(&format!("{gw}/metrics")).await;
    assert_eq!(
        sample(
            &m,
            "ai_gateway_auth_failures_total",
            &[("reason", "invalid_key")]
        ),
        Some(50.0)
    );
    assert_eq!(
        sample(
            &m,
            "ai_gateway_auth_failures_total",
            &[("reason", "missing_key")]
        ),
        Some(7.0)
    );
    // The config-center counts its 401s by route.
    let admin_401 = || async {
        let keys = s.keys("metrics:config_center:http_requests:*:*:401").await;
        let mut n = 0;
        for k in keys {
            n += s.int(&k).await;
        }
        n
    };
    let n = s.settle(Duration::from_secs(10), &30, admin_401).await;
    assert_eq!(n, 30);
    let m = s.text(&format!("{}/metrics", s.cc.url())).await;
    assert_eq!(
        sample(
            &m,
            "config_center_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/v1/namespaces"),
                ("status", "401")
            ]
        ),
        Some(30.0),
        "{m}"
    );
    report(
        "brute force: wrong and missing client keys, wrong admin tokens",
        "50 wrong keys + 7 without a key at the gateway, 30 wrong admin tokens",
        "all counted exactly: ai_gateway_auth_failures_total{reason} and config_center_http_requests_total{status=\"401\"}",
    );
}

/// Label cardinality is capped: random model names, keys, paths and methods
/// from clients add no metric series and no Redis keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_client_input_cannot_grow_metric_series() {
    let s = Stack::start(StackOptions::default()).await;
    let key = s.world("card", "m1", json!({})).await;

    async fn flood(s: &Stack, key: &str, round: usize, n: usize) {
        let gw = s.gw(0);
        for i in 0..n {
            let r = format!("r{round}x{i}-{}", i * 7919 % 10007);
            let _ = send(
                &s.http,
                &gw,
                key,
                &chat_body(&format!("model-{r}"), false, None),
            )
            .await;
            let _ = send(
                &s.http,
                &gw,
                &format!("sk-aigw-{r}"),
                &chat_body("m1", false, None),
            )
            .await;
            let _ = s
                .http
                .get(format!("{gw}/v1/{r}"))
                .bearer_auth(key)
                .send()
                .await;
            let _ = s.http.get(format!("{gw}/{r}")).send().await;
            let _ = s
                .http
                .request(
                    reqwest::Method::from_bytes(format!("M{}", i % 50).as_bytes()).unwrap(),
                    format!("{gw}/v1/chat/completions"),
                )
                .send()
                .await;
            let _ = s
                .admin(reqwest::Method::GET, &format!("/api/v1/{r}"), None)
                .await;
            let _ = s
                .admin(
                    reqwest::Method::GET,
                    &format!("/api/v1/namespaces/{r}"),
                    None,
                )
                .await;
            let _ = s
                .admin_as(None, reqwest::Method::GET, &format!("/{r}"), None)
                .await;
            let _ = s
                .admin(
                    reqwest::Method::from_bytes(format!("M{}", i % 50).as_bytes()).unwrap(),
                    "/api/v1/models",
                    None,
                )
                .await;
            let ts = s.ts.url();
            let _ = s
                .http
                .post(format!("{ts}/v1/tokens/count"))
                .json(&json!({"model": format!("model-{r}"), "text": "x"}))
                .send()
                .await;
            let _ = s
                .http
                .post(format!("{ts}/v1/tokens/count"))
                .json(&json!({"encoding": format!("enc-{r}"), "text": "x"}))
                .send()
                .await;
            let _ = s.http.get(format!("{ts}/{r}")).send().await;
        }
    }

    async fn census(s: &Stack) -> (usize, usize, usize, usize) {
        tokio::time::sleep(FLUSH * 6).await;
        // Exactly-once markers expire (TTL) and grow with time, not input.
        let keys = s
            .keys("metrics:*")
            .await
            .into_iter()
            .filter(|k| !k.starts_with("metrics:flush:") && !k.starts_with("metrics:once:"))
            .count();
        let mut members = 0;
        for idx in s.keys("metrics:index:*").await {
            let mut c = s.redis.conn().await;
            let n: usize = redis::cmd("SCARD")
                .arg(&idx)
                .query_async(&mut c)
                .await
                .unwrap();
            members += n;
        }
        let series = |t: String| Scrape::parse(&t).samples().len();
        let gw = series(s.text(&format!("{}/metrics", s.gw(0))).await);
        let cc = series(s.text(&format!("{}/metrics", s.cc.url())).await);
        (keys, members, gw, cc)
    }

    // A first round creates the bounded series these errors have (a 404
    // status, the `unmatched` route, the `OTHER` method, …).
    flood(&s, &key, 0, 60).await;
    // Scrapes count as requests too: the census itself must not add series.
    census(&s).await;
    let before = census(&s).await;
    flood(&s, &key, 1, 200).await;
    let after = census(&s).await;
    let ts_before = s.text(&format!("{}/metrics", s.ts.url())).await;
    let ts_series = |t: &str| {
        Scrape::parse(t)
            .samples()
            .iter()
            .filter(|s| {
                !s.name.starts_with("process_")
                    && !s.name.contains("_seconds")
                    && !s.name.contains("stream_")
            })
            .count()
    };
    flood(&s, &key, 2, 50).await;
    tokio::time::sleep(FLUSH * 6).await;
    let ts_after = s.text(&format!("{}/metrics", s.ts.url())).await;
    report(
        "label cardinality: random model names, client keys, paths, methods and encodings",
        "3 rounds, 310 × 12 random requests over the three services",
        &format!(
            "new Redis metric keys {}, new index members {}, new gateway series {}, new config-center series {}, new token-service series {}",
            after.0 as i64 - before.0 as i64,
            after.1 as i64 - before.1 as i64,
            after.2 as i64 - before.2 as i64,
            after.3 as i64 - before.3 as i64,
            ts_series(&ts_after) as i64 - ts_series(&ts_before) as i64
        ),
    );
    assert_eq!(
        after, before,
        "(Redis metric keys, index members, gateway series, config-center series)"
    );
    assert_eq!(
        ts_series(&ts_after),
        ts_series(&ts_before),
        "token-service series"
    );
    let keys = s.keys("metrics:*").await;
    assert!(
        keys.iter()
            .all(|k| !k.contains("r1x") && !k.contains("r2x")),
        "a client string became a key"
    );
}

/// A full run with every service at `RUST_LOG=trace`, then a grep of all
/// logs, API answers, `/metrics` and Redis metric keys and label values for
/// the admin token, the upstream secrets and the client keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_answers_or_metrics() {
    let mut s = Stack::start(StackOptions {
        log: "trace".into(),
        mocks: 2,
        ..StackOptions::default()
    })
    .await;
    let (ka, kb) = two_namespaces(&s).await;
    let gw = s.gw(0);
    let mut answers: Vec<String> = Vec::new();
    let mut secrets: Vec<String> = vec![
        ADMIN_TOKEN.to_string(),
        upstream_secret("team-a", 0),
        upstream_secret("team-b", 1),
        ka.clone(),
        kb.clone(),
    ];

    // Traffic of every kind, successes and failures.
    for (k, m) in [
        (&ka, "model-a"),
        (&kb, "model-b"),
        (&ka, "shared"),
        (&kb, "nope"),
    ] {
        for stream in [false, true] {
            let o = send(&s.http, &gw, k, &chat_body(m, stream, None)).await;
            answers.push(o.body);
        }
    }
    let o = send(
        &s.http,
        &gw,
        &ka,
        &chat_body("model-a", false, Some(json!({"status": 500}))),
    )
    .await;
    answers.push(o.body);
    let o = send(
        &s.http,
        &gw,
        &ka,
        &chat_body("model-a", true, Some(json!({"no_usage": true}))),
    )
    .await;
    answers.push(o.body);
    // A client key used where it does not belong, and near-miss guesses.
    let guess = format!("{}x", &ka[..ka.len() - 1]);
    secrets.push(guess.clone());
    let o = send(&s.http, &gw, &guess, &chat_body("model-a", false, None)).await;
    answers.push(o.body);
    let a = s
        .admin_as(Some(&ka), reqwest::Method::GET, "/api/v1/namespaces", None)
        .await;
    answers.push(a.text);
    let wrong_admin = format!("{ADMIN_TOKEN}-wrong");
    secrets.push(wrong_admin.clone());
    let a = s
        .admin_as(
            Some(&wrong_admin),
            reqwest::Method::GET,
            "/api/v1/snapshot",
            None,
        )
        .await;
    answers.push(a.text);
    // Bad input that carries secrets in the wrong places.
    let r = s
        .http
        .post(format!("{gw}/v1/chat/completions"))
        .bearer_auth(&ka)
        .body(format!("{{\"model\":\"{}\"", upstream_secret("team-a", 0)))
        .send()
        .await
        .unwrap();
    answers.push(r.text().await.unwrap());
    let a = s
        .admin(
            reqwest::Method::POST,
            "/api/v1/instances",
            Some(
                json!({"id": "x", "namespace_code": "team-a", "model": "model-a",
                        "base_url": "http://127.0.0.1:1/v1", "api_key": 12, "weight": ADMIN_TOKEN}),
            ),
        )
        .await;
    answers.push(a.text);
    // Rotating an upstream secret, and reading every admin view of it.
    let rotated = "sk-upstream-ROTATED-SECRET-77aa55cc33ee".to_string();
    secrets.push(rotated.clone());
    let a = s
        .admin(
            reqwest::Method::PATCH,
            "/api/v1/instances/a-1",
            Some(json!({"api_key": rotated})),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    answers.push(a.text);
    if let Some(v) = a.version {
        s.wait_version(v).await;
    }
    let o = send(&s.http, &gw, &ka, &chat_body("model-a", false, None)).await;
    assert_eq!(o.status, Some(200));
    answers.push(o.body);
    for path in [
        "/api/v1/instances",
        "/api/v1/instances/a-1",
        "/api/v1/snapshot",
        "/api/v1/namespaces/team-a/api-keys",
        "/api/v1/namespaces",
        "/api/v1/openapi.json",
    ] {
        answers.push(s.admin(reqwest::Method::GET, path, None).await.text);
    }
    // Token counting with a key-looking text is fine to answer (it is the
    // client's own text), but must not be logged.
    let r = s
        .http
        .post(format!("{}/v1/tokens/count", s.ts.url()))
        .json(&json!({"model": "model-a", "text": ka}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for url in [gw.clone(), s.cc.url(), s.ts.url()] {
        for p in ["/metrics", "/ready", "/health"] {
            answers.push(s.text(&format!("{url}{p}")).await);
        }
    }
    tokio::time::sleep(FLUSH * 6).await;

    // Redis: every metric key name and every label value in the index sets.
    let mut redis_text = s.keys("metrics:*").await.join("\n");
    for idx in s.keys("metrics:index:*").await {
        let mut c = s.redis.conn().await;
        let m: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&idx)
            .query_async(&mut c)
            .await
            .unwrap();
        redis_text.push_str(&m.join("\n"));
    }
    // Stop everything gracefully so the last log lines are written.
    for g in &mut s.gateways {
        g.terminate(Duration::from_secs(20)).await;
    }
    s.ts.terminate(Duration::from_secs(20)).await;
    s.cc.terminate(Duration::from_secs(20)).await;
    let logs = s.all_logs();
    let log_bytes: usize = logs.iter().map(|(_, l)| l.len()).sum();
    assert!(
        logs.iter()
            .any(|(n, l)| n == "gateway-0" && l.contains("TRACE")),
        "the gateway did not log at trace level"
    );

    let mut leaks = Vec::new();
    for secret in &secrets {
        for (name, log) in &logs {
            // The mock is the upstream: receiving its own key is its job.
            if name.starts_with("mock") {
                continue;
            }
            if let Some(i) = log.find(secret.as_str()) {
                let from = log[..i].rfind('\n').map(|p| p + 1).unwrap_or(0);
                let line: String = log[from..]
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(400)
                    .collect();
                leaks.push(format!("log of {name}: {line}"));
            }
        }
        for a in &answers {
            // A client's own key in its own token-count text is not a leak;
            // everything else is.
            if a.contains(secret.as_str()) {
                leaks.push(format!(
                    "answer: {}",
                    a.chars().take(300).collect::<String>()
                ));
            }
        }
        if redis_text.contains(secret.as_str()) {
            leaks.push(format!("Redis metric key or label: {secret}"));
        }
    }
    report(
        "secrets grep after a full run at RUST_LOG=trace (admin token, upstream keys incl. a rotated one, client keys, near-miss guesses)",
        &format!(
            "{} secrets × {} KiB of logs, {} API answers, /metrics of 3 services, every Redis metric key and label",
            secrets.len(),
            log_bytes / 1024,
            answers.len()
        ),
        &format!("{} leaks", leaks.len()),
    );
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
