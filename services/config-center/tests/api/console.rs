//! The web console over HTTP: sign-in and its cookie, sign-out, CSRF on
//! every write, the security headers, escaping, validation errors next to
//! their field, and no stored secret on any page. (The browser flow is in
//! `tests/tests/console_browser.rs`.)

use crate::both;
use crate::helpers::{Backend, Res, TestApp, TOKEN};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

/// A browser without a cookie jar or redirects: the tests see every answer.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Browser<'a> {
        Browser {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self
            .client
            .request(method, format!("{}{}", self.app.addr, path));
        match &self.cookie {
            Some(c) => r.header(COOKIE, c),
            None => r,
        }
    }

    async fn get(&self, path: &str) -> Res {
        self.app.finish(self.req(reqwest::Method::GET, path)).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Res {
        self.app
            .finish(self.req(reqwest::Method::POST, path).form(form))
            .await
    }

    /// Signs in with the admin token; returns the Set-Cookie line.
    async fn sign_in(&mut self) -> String {
        let r = self.post("/ui/sign-in", &[("token", TOKEN)]).await;
        assert_eq!(r.status, 303, "{}", r.text);
        assert_eq!(r.header("location").as_deref(), Some("/ui"));
        let set = r.header(SET_COOKIE.as_str()).expect("session cookie");
        self.cookie = Some(set.split(';').next().unwrap().to_string());
        set
    }

    /// The CSRF token the page's forms carry.
    async fn csrf(&self) -> String {
        let r = self.get("/ui/namespaces").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let at = r.text.find(r#"name="csrf" value=""#).expect("csrf field") + 19;
        r.text[at..].split('"').next().unwrap().to_string()
    }
}

async fn session_keys(app: &TestApp) -> Vec<String> {
    let mut c = app.redis.conn().await;
    redis::cmd("KEYS")
        .arg("console:session:*")
        .query_async(&mut c)
        .await
        .unwrap()
}

async fn sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let mut br = Browser::new(&app);
    let r = br.get("/ui").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header(LOCATION.as_str()).as_deref(), Some("/ui/sign-in"));

    let r = br.post("/ui/sign-in", &[("token", "not-the-token")]).await;
    assert_eq!(r.status, 401);
    assert!(r.header(SET_COOKIE.as_str()).is_none());
    assert!(r.text.contains(r#"id="f-token-error""#), "{}", r.text);
    assert!(session_keys(&app).await.is_empty());

    let set = br.sign_in().await;
    let attrs: Vec<&str> = set.split("; ").collect();
    assert!(
        attrs[0].starts_with("aigw_console=") && attrs[0].len() == 13 + 43,
        "{set}"
    );
    for a in ["Path=/ui", "HttpOnly", "SameSite=Strict", "Max-Age=28800"] {
        assert!(attrs.contains(&a), "{a} missing from {set}");
    }
    assert!(!attrs.contains(&"Secure"), "{set}");
    let keys = session_keys(&app).await;
    assert_eq!(keys.len(), 1);
    // Only the id's hash names the Redis key, and it expires.
    assert!(!keys[0].contains(&attrs[0][13..]));
    let mut c = app.redis.conn().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((1..=28800).contains(&ttl), "{ttl}");

    let r = br.get("/ui").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("<h1>Overview</h1>"));

    // Behind a TLS-terminating proxy the cookie is Secure.
    let r = app
        .finish(
            br.client
                .post(format!("{}/ui/sign-in", app.addr))
                .header("x-forwarded-proto", "https")
                .form(&[("token", TOKEN)]),
        )
        .await;
    assert!(r.header(SET_COOKIE.as_str()).unwrap().ends_with("; Secure"));

    let csrf = br.csrf().await;
    let r = br.post("/ui/sign-out", &[]).await;
    assert_eq!(r.status, 403);
    let r = br.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header(LOCATION.as_str()).as_deref(), Some("/ui/sign-in"));
    assert!(r.header(SET_COOKIE.as_str()).unwrap().contains("Max-Age=0"));
    // The old cookie opens nothing any more.
    assert_eq!(br.get("/ui").await.status, 303);
    assert_eq!(
        session_keys(&app).await.len(),
        1,
        "only the https session is left"
    );
}
both!(sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session);

async fn sign_in_refuses_other_sites_and_throttles_wrong_tokens(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let br = Browser::new(&app);
    let post_from = |origin: &str| {
        br.client
            .post(format!("{}/ui/sign-in", app.addr))
            .header("origin", origin)
            .form(&[("token", TOKEN)])
    };
    // Another site's page cannot sign this browser in.
    let r = app.finish(post_from("http://evil.example")).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.header(SET_COOKIE.as_str()).is_none());
    let r = app
        .finish(
            br.client
                .post(format!("{}/ui/sign-in", app.addr))
                .header("sec-fetch-site", "cross-site")
                .form(&[("token", TOKEN)]),
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(session_keys(&app).await.is_empty());
    // The console's own page can: its Origin, or (Chromium under
    // `Referrer-Policy: no-referrer`) `Origin: null` with
    // `Sec-Fetch-Site: same-origin`.
    let own = app.addr.clone();
    let r = app.finish(post_from(&own)).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = app
        .finish(post_from("null").header("sec-fetch-site", "same-origin"))
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let r = app.finish(post_from("null")).await;
    assert_eq!(r.status, 403, "an opaque origin without Sec-Fetch-Site");

    // Ten wrong tokens from one address: the tenth and everything after,
    // the right token included, wait for the window to end.
    for i in 1..10 {
        let r = br.post("/ui/sign-in", &[("token", "guess")]).await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = br.post("/ui/sign-in", &[("token", "guess")]).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.header("retry-after").as_deref(), Some("60"));
    assert!(r.text.contains("Too many failed sign-ins"), "{}", r.text);
    let r = br.post("/ui/sign-in", &[("token", TOKEN)]).await;
    assert_eq!(r.status, 429);
    assert!(r.header(SET_COOKIE.as_str()).is_none());
    let mut c = app.redis.conn().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg("console:signin_failures:127.0.0.1")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
}
both!(sign_in_refuses_other_sites_and_throttles_wrong_tokens);

/// Wrong tokens from `x-forwarded-for: {client}` until the window refuses
/// them; the number of 401s before the 429.
async fn guess_until_refused(app: &TestApp, br: &Browser<'_>, client: &str) -> usize {
    for i in 0..20 {
        let r = app
            .finish(
                br.req(reqwest::Method::POST, "/ui/sign-in")
                    .header("x-forwarded-for", client)
                    .form(&[("token", "guess")]),
            )
            .await;
        match r.status.as_u16() {
            401 => continue,
            429 => return i,
            s => panic!("{s}: {}", r.text),
        }
    }
    panic!("twenty wrong tokens from {client} were never refused");
}

/// Behind a proxy named in `TRUSTED_PROXIES`, wrong tokens count against
/// the client the proxy names in `X-Forwarded-For`: the guesser is refused,
/// another client behind the same proxy still signs in. Without the
/// setting the header is only the client's own text: a guesser who writes
/// a new address each time is still counted as the one peer it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_failures_count_per_client() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await
    .expect("sqlite");
    let br = Browser::new(&app);
    assert_eq!(guess_until_refused(&app, &br, "198.51.100.9").await, 9);
    let sign_in = |client: &'static str| {
        br.req(reqwest::Method::POST, "/ui/sign-in")
            .header("x-forwarded-for", format!("1.2.3.4, {client}"))
            .form(&[("token", TOKEN)])
    };
    let r = app.finish(sign_in("198.51.100.9")).await;
    assert_eq!(r.status, 429, "the guesser, whatever it writes on the left");
    let r = app.finish(sign_in("203.0.113.7")).await;
    assert_eq!(r.status, 303, "another client: {}", r.text);
    let mut c = app.redis.conn().await;
    let counted: Vec<String> = redis::cmd("KEYS")
        .arg("console:signin_failures:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(counted, ["console:signin_failures:198.51.100.9"]);

    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let br = Browser::new(&app);
    for i in 0..9 {
        let r = app
            .finish(
                br.req(reqwest::Method::POST, "/ui/sign-in")
                    .header("x-forwarded-for", format!("198.51.100.{i}"))
                    .form(&[("token", "guess")]),
            )
            .await;
        assert_eq!(r.status, 401);
    }
    assert_eq!(guess_until_refused(&app, &br, "198.51.100.99").await, 0);
}

async fn every_write_needs_the_session_csrf_token(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    let mut br = Browser::new(&app);
    br.sign_in().await;
    let csrf = br.csrf().await;
    let writes: &[(&str, &[(&str, &str)])] = &[
        ("/ui/namespaces", &[("code", "made-by-forgery")]),
        ("/ui/namespaces/team-a", &[("name", "forged")]),
        ("/ui/namespaces/team-a/enabled", &[("enabled", "false")]),
        ("/ui/namespaces/team-a/keys", &[("name", "forged")]),
        (
            "/ui/models",
            &[("name", "forged-model"), ("encoding", "o200k_base")],
        ),
        ("/ui/instances", &[("id", "forged")]),
        ("/ui/sign-out", &[]),
    ];
    for (path, fields) in writes {
        for token in [None, Some("wrong"), Some(&csrf[..42])] {
            let mut form = fields.to_vec();
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let r = br.post(path, &form).await;
            assert_eq!(r.status, 403, "{path} with {token:?}: {}", r.text);
            assert!(r.header("content-type").unwrap().starts_with("text/html"));
            assert!(
                r.text.contains("did not come from this console"),
                "{}",
                r.text
            );
        }
    }
    let ns = app.get("/api/v1/namespaces").await.json();
    assert_eq!(ns["items"].as_array().unwrap().len(), 1);
    assert_eq!(ns["items"][0]["name"], "team-a");
    assert_eq!(ns["items"][0]["enabled"], true);
    assert_eq!(
        app.get("/api/v1/namespaces/team-a/api-keys").await.json()["items"],
        json!([])
    );
    assert_eq!(app.get("/api/v1/models").await.json()["items"], json!([]));
    // A session's token does not work for another session.
    let mut other = Browser::new(&app);
    other.sign_in().await;
    let r = other
        .post("/ui/namespaces", &[("code", "x"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 403);
    // With the right token the same write goes through.
    let r = br
        .post(
            "/ui/namespaces",
            &[("code", "team-b"), ("csrf", &csrf), ("enabled", "true")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/namespaces/team-b").await.json()["enabled"],
        true
    );
}
both!(every_write_needs_the_session_csrf_token);

async fn pages_carry_a_strict_csp_and_no_inline_code(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    let mut br = Browser::new(&app);
    let r = br.get("/ui/sign-in").await;
    let csp = r.header("content-security-policy").expect("CSP");
    for d in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(d), "{d} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    br.sign_in().await;
    for path in [
        "/ui/sign-in",
        "/ui",
        "/ui/namespaces",
        "/ui/namespaces/team-a",
        "/ui/namespaces/team-a/keys",
        "/ui/models",
        "/ui/instances",
        "/ui/usage",
    ] {
        let r = br.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(
            r.header("content-security-policy").as_deref(),
            Some(csp.as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
        // No inline script, style element or style attribute.
        for (i, _) in r.text.match_indices("<script") {
            let tag = &r.text[i..i + r.text[i..].find('>').unwrap()];
            assert!(
                tag.contains(" src=\"/ui/assets/"),
                "{path}: inline script {tag}"
            );
        }
        assert!(
            !r.text.contains("<style") && !r.text.contains(" style="),
            "{path}"
        );
        assert!(
            !r.text.contains(" on") || !r.text.contains("onclick="),
            "{path}"
        );
    }
    for (asset, ct) in [
        ("htmx-2.0.11.min.js", "text/javascript"),
        ("uPlot-1.6.32.iife.min.js", "text/javascript"),
        ("uPlot-1.6.32.min.css", "text/css"),
        ("console.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let r = Browser::new(&app).get(&format!("/ui/assets/{asset}")).await;
        assert_eq!(r.status, 200, "{asset}");
        assert!(r.header("content-type").unwrap().starts_with(ct), "{asset}");
    }
    assert_eq!(br.get("/ui/assets/nope.js").await.status, 404);
    let r = br.get("/ui/no-such-page").await;
    assert_eq!(r.status, 404);
    assert!(r.header("content-security-policy").is_some());
}
both!(pages_carry_a_strict_csp_and_no_inline_code);

const EVIL: &str = r#"<script>alert("x")</script>' "q" &amp;"#;
const EVIL_ESCAPED: &str =
    "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' &quot;q&quot; &amp;amp;";

async fn names_holding_markup_are_shown_as_text(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let r = app
        .post(
            "/api/v1/namespaces",
            json!({"code": "evil", "name": EVIL, "description": EVIL}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post("/api/v1/namespaces/evil/api-keys", json!({"name": EVIL}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut br = Browser::new(&app);
    br.sign_in().await;
    for path in [
        "/ui",
        "/ui/namespaces",
        "/ui/namespaces/evil",
        "/ui/namespaces/evil/keys",
        "/ui/instances",
    ] {
        let r = br.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.text.contains("<script>alert"), "{path}: {}", r.text);
        assert!(!r.text.contains(r#""q""#), "{path}: unescaped quote");
    }
    let r = br.get("/ui/namespaces/evil/keys").await;
    assert!(r.text.contains(EVIL_ESCAPED), "{}", r.text);
    // In an attribute (the form's value) the quotes are escaped too.
    let r = br.get("/ui/namespaces/evil").await;
    assert!(
        r.text.contains(&format!(r#"value="{EVIL_ESCAPED}""#)),
        "{}",
        r.text
    );
}
both!(names_holding_markup_are_shown_as_text);

async fn validation_errors_sit_next_to_their_field(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let mut br = Browser::new(&app);
    br.sign_in().await;
    let csrf = br.csrf().await;
    // (path, form fields, id of the message, start of the message)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            "/ui/namespaces",
            &[("code", "Bad Code")],
            "f-code-error",
            "code: must match",
        ),
        (
            "/ui/namespaces",
            &[("code", "ok"), ("limits.rpm", "six")],
            "f-limits-rpm-error",
            "limits.rpm: must be a whole number",
        ),
        (
            "/ui/namespaces",
            &[("code", "ok"), ("limits.rpm", "0")],
            "f-limits-rpm-error",
            "limits.rpm: must be between 1 and",
        ),
        (
            "/ui/namespaces",
            &[("code", "ok"), ("monthly_budget_usd", "-1")],
            "f-monthly-budget-usd-error",
            "monthly_budget_usd: must be &gt;= 0",
        ),
        (
            "/ui/models",
            &[("name", "m"), ("encoding", "nope")],
            "f-encoding-error",
            "encoding: unknown encoding",
        ),
        (
            "/ui/instances",
            &[
                ("id", "i-1"),
                ("namespace_code", "none"),
                ("model", "none"),
                ("base_url", "ftp://x"),
            ],
            "f-base-url-error",
            "base_url: must be an http(s) URL",
        ),
        (
            "/ui/instances",
            &[
                ("id", "i-1"),
                ("namespace_code", "none"),
                ("model", "none"),
                ("provider", "azure"),
                ("base_url", "https://x.example.com"),
            ],
            "f-provider-error",
            "provider: unknown provider",
        ),
        (
            "/ui/instances",
            &[
                ("id", "i-1"),
                ("namespace_code", "none"),
                ("model", "none"),
                ("provider", "gemini"),
                ("base_url", "https://x.example.com"),
                ("api_version", "v1"),
            ],
            "f-api-version-error",
            "api_version: only for providers azure_openai and anthropic",
        ),
        (
            "/ui/models",
            &[
                ("name", "m"),
                ("encoding", "o200k_base"),
                ("cached_input_price_per_1m", "-1"),
            ],
            "f-cached-input-price-per-1m-error",
            "cached_input_price_per_1m: must be &gt;= 0",
        ),
    ];
    for (path, fields, id, message) in cases {
        let mut form = fields.to_vec();
        form.push(("csrf", &csrf));
        let r = br.post(path, &form).await;
        assert_eq!(r.status, 400, "{path} {fields:?}: {}", r.text);
        let at = r
            .text
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("{id} missing: {}", r.text));
        assert!(
            r.text[at..].contains(message),
            "{message}: {}",
            &r.text[at..at + 200]
        );
        // The input points at its message and keeps what was typed.
        let input = id.trim_end_matches("-error");
        assert!(
            r.text
                .contains(&format!(r#"aria-invalid="true" aria-describedby="{id}""#)),
            "{input}: {}",
            r.text
        );
    }
    // A duplicate is a conflict shown on the form.
    app.create_namespace("taken").await;
    let r = br
        .post("/ui/namespaces", &[("code", "taken"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("already exists"), "{}", r.text);
    assert_eq!(
        app.get("/api/v1/namespaces").await.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
both!(validation_errors_sit_next_to_their_field);

async fn a_key_is_shown_once_and_no_page_shows_a_stored_secret(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("gpt-4o-mini").await;
    let upstream_secret = "sk-upstream-NEVER-SHOWN-0123456789";
    let r = app
        .post(
            "/api/v1/instances",
            json!({"id": "i-1", "namespace_code": "team-a", "model": "gpt-4o-mini",
                   "base_url": "http://127.0.0.1:9/v1", "api_key": upstream_secret}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut br = Browser::new(&app);
    br.sign_in().await;
    let csrf = br.csrf().await;
    let r = br
        .post(
            "/ui/namespaces/team-a/keys",
            &[
                ("name", "ci"),
                ("allowed_models", "gpt-4o-mini"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let at = r.text.find(r#"id="new-key""#).expect("the new key");
    let key = r.text[at..]
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(key.starts_with("sk-aigw-") && key.len() == 51, "{key}");
    let keys = app.get("/api/v1/namespaces/team-a/api-keys").await.json();
    assert_eq!(keys["items"][0]["prefix"], &key[..12]);
    assert_eq!(keys["items"][0]["allowed_models"], json!(["gpt-4o-mini"]));
    // The snapshot carries the hash of exactly this key, published before
    // the page answered.
    let (snap, _) = app.redis_snapshot().await.unwrap();
    assert_eq!(snap.api_keys[0].key_hash, aigw_types::hash_api_key(&key));

    let mut pages = String::new();
    for path in [
        "/ui",
        "/ui/namespaces",
        "/ui/namespaces/team-a",
        "/ui/namespaces/team-a/keys",
        "/ui/models",
        "/ui/instances",
        "/ui/instances/table",
        "/ui/usage",
    ] {
        let r = br.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        pages.push_str(&r.text);
    }
    assert!(pages.contains(&key[..12]), "the prefix is listed");
    for secret in [
        key.as_str(),
        upstream_secret,
        &upstream_secret[upstream_secret.len() - 4..],
        TOKEN,
    ] {
        assert!(!pages.contains(secret), "a page shows {secret}");
    }

    // Revoking from the console reaches the snapshot.
    let id = keys["items"][0]["id"].as_str().unwrap().to_string();
    let r = br
        .post(
            &format!("/ui/namespaces/team-a/keys/{id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let k = app
        .get(&format!("/api/v1/namespaces/team-a/api-keys/{id}"))
        .await
        .json();
    assert_eq!(k["revoked"], true);
    let (snap, _) = app.redis_snapshot().await.unwrap();
    assert!(
        snap.api_keys[0].revoked,
        "published before the page answered"
    );
}
both!(a_key_is_shown_once_and_no_page_shows_a_stored_secret);

async fn the_console_creates_an_instance_of_a_provider(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    app.create_model("claude-sonnet").await;
    let mut br = Browser::new(&app);
    br.sign_in().await;
    let csrf = br.csrf().await;
    // The form offers every provider, OpenAI chosen.
    let page = br.get("/ui/instances").await;
    for p in ["openai", "anthropic", "azure_openai", "gemini"] {
        assert!(
            page.text.contains(&format!(r#"<option value="{p}""#)),
            "{p}: {}",
            page.text
        );
    }
    assert!(
        page.text.contains(r#"<option value="openai" selected"#),
        "{}",
        page.text
    );
    let r = br
        .post(
            "/ui/instances",
            &[
                ("id", "azure-1"),
                ("namespace_code", "team-a"),
                ("model", "claude-sonnet"),
                ("provider", "azure_openai"),
                ("base_url", "https://contoso.openai.azure.com"),
                ("api_version", "2024-10-21"),
                ("azure_deployment", "dep-1"),
                ("weight", "1"),
                ("timeout_ms", "60000"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    let (snap, _) = app.redis_snapshot().await.unwrap();
    let i = &snap.instances[0];
    assert_eq!(i.provider, aigw_types::Provider::AzureOpenai);
    assert_eq!(i.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(i.azure_deployment.as_deref(), Some("dep-1"));
    // The list shows the provider.
    let table = br.get("/ui/instances/table").await;
    assert!(
        table.text.contains(r#"<td class="mono">azure_openai</td>"#),
        "{}",
        table.text
    );
}
both!(the_console_creates_an_instance_of_a_provider);
