//! Every upstream provider through the real binaries (issue 14): the
//! config-center stores an instance per provider (OpenAI as the reference,
//! Anthropic, Azure OpenAI with a deployment and `api-version` and in its
//! v1 form, Gemini) and models with cache prices; the official OpenAI
//! Python SDK drives the gateway — whole answers, streams with usage, tool
//! calls, an upstream error, a retry to the second instance, a stream cut
//! before its usage — with the mock's cache-read, cache-write (Anthropic)
//! and reasoning tokens, and the official Anthropic SDK drives
//! `POST /v1/messages` to a Gemini instance. Then, computed from the mock's
//! deterministic usage and the prices, to the token and the nano-dollar:
//! the gateway's Redis counters, the token-service's model series (Redis
//! and `/metrics`) and monthly cost, every ledger row, and what each
//! upstream request looked like at the mock (path, key header, which
//! instance), each request known by the `x-request-id` the gateway
//! answered with.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::admin::{upstream_secret, Prices};
use aigw_e2e::counters::{Counts, ModelTotals};
use aigw_e2e::sdk;
use aigw_e2e::stack::{Stack, StackOptions};
use aigw_e2e::wait::eventually;
use aigw_testkit::prom::Scrape;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The mock's answer with its default five chunks: N = 5 text tokens.
const ANSWER: &str = "Hello from the mock upstream";
const N: u64 = 5;
/// The tool call's arguments, `{"location": "Paris"}`: two pieces.
const A: u64 = 2;
/// Knobs of `providers_e2e.py`: cache reads, cache writes (Anthropic), reasoning.
const CACHED: u64 = 100;
const WRITE: u64 = 30;
const REASONING: u64 = 4;
/// A stream cut before its usage: the gateway records the messages' text,
/// "Say hello", which the token-service counts as 2 tokens.
const CUT_PROMPT: u64 = 2;

/// One provider's namespace (its code is the name), model and instances.
struct Upstream {
    name: &'static str,
    provider: &'static str,
    model: &'static str,
    /// The model the mock sees (Azure's deployment form: the deployment).
    rule_model: &'static str,
    prices: Prices<'static>,
    /// Instance fields besides the key.
    fields: Value,
    /// Path and query of a whole chat answer at the mock.
    path: &'static str,
    query: &'static str,
    /// Where the instance key goes, and its prefix there.
    key_header: &'static str,
    key_prefix: &'static str,
}

fn upstreams() -> Vec<Upstream> {
    vec![
        Upstream {
            name: "openai",
            provider: "openai",
            model: "m-openai",
            rule_model: "m-openai",
            prices: Prices {
                cached_input: Some("0.075"),
                ..Prices::new("0.15", "0.6")
            },
            fields: json!({}),
            path: "/v1/chat/completions",
            query: "",
            key_header: "authorization",
            key_prefix: "Bearer ",
        },
        Upstream {
            name: "anthropic",
            provider: "anthropic",
            model: "m-anthropic",
            rule_model: "m-anthropic",
            prices: Prices {
                cached_input: Some("0.3"),
                cache_write: Some("3.75"),
                ..Prices::new("3", "15")
            },
            fields: json!({"api_version": "2023-06-01"}),
            path: "/v1/messages",
            query: "",
            key_header: "x-api-key",
            key_prefix: "",
        },
        Upstream {
            name: "azure-dep",
            provider: "azure_openai",
            model: "m-azure-dep",
            rule_model: "dep-azure",
            // Prices whose per-record cost is not a whole nano-dollar.
            prices: Prices {
                cached_input: Some("0.0617283"),
                ..Prices::new("0.1234567", "0.7654321")
            },
            fields: json!({"api_version": "2024-10-21", "azure_deployment": "dep-azure"}),
            path: "/openai/deployments/dep-azure/chat/completions",
            query: "api-version=2024-10-21",
            key_header: "api-key",
            key_prefix: "",
        },
        Upstream {
            name: "azure-v1",
            provider: "azure_openai",
            model: "m-azure-v1",
            rule_model: "m-azure-v1",
            prices: Prices {
                cached_input: Some("1.25"),
                ..Prices::new("2.5", "10")
            },
            fields: json!({}),
            path: "/openai/v1/chat/completions",
            query: "",
            key_header: "api-key",
            key_prefix: "",
        },
        Upstream {
            name: "gemini",
            provider: "gemini",
            model: "m-gemini",
            rule_model: "m-gemini",
            prices: Prices {
                cached_input: Some("0.0750003"),
                cache_write: Some("0.5"),
                ..Prices::new("0.3000001", "2.5")
            },
            fields: json!({}),
            path: "/v1beta/models/m-gemini:generateContent",
            query: "",
            key_header: "x-goog-api-key",
            key_prefix: "",
        },
    ]
}

/// The namespace of the `/v1/messages` traffic: one Gemini instance of
/// the Gemini model, under its own upstream model name.
const MESSAGES: &str = "messages";
const MESSAGES_UPSTREAM: &str = "gemini-msgs";

/// One request as the ledger should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    ns: &'static str,
    model: &'static str,
    endpoint: &'static str,
    stream: bool,
    status: u16,
    prompt: u64,
    cached: u64,
    write: u64,
    completion: u64,
    reasoning: u64,
    /// Counted by the token-service: the upstream reported no usage.
    estimated: bool,
    cost: i64,
}

/// Every request of the run by its `x-request-id`, with the mock's usage.
fn expected(ups: &[Upstream]) -> BTreeMap<String, Expect> {
    let mut out = BTreeMap::new();
    let row = |u: &Upstream, endpoint, stream, status, usage: [u64; 5]| {
        let [prompt, cached, write, completion, reasoning] = usage;
        Expect {
            ns: u.name,
            model: u.model,
            endpoint,
            stream,
            status,
            prompt,
            cached,
            write,
            completion,
            reasoning,
            estimated: false,
            cost: u.prices.cost_nusd(prompt, cached, write, completion),
        }
    };
    for u in ups {
        let write = if u.provider == "anthropic" { WRITE } else { 0 };
        // "Say hello" is P = 2; the tool's answer "sunny" counts at every
        // provider but Gemini (a functionResponse counts nothing).
        let answer_prompt = if u.provider == "gemini" { 2 } else { 3 };
        let cache = [2 + CACHED + write, CACHED, write, N + REASONING, REASONING];
        for (step, stream, status, usage) in [
            ("whole", false, 200, cache),
            ("stream", true, 200, cache),
            ("tool", false, 200, [2, 0, 0, N + A, 0]),
            ("tool-stream", true, 200, [2, 0, 0, N + A, 0]),
            ("tool-answer", false, 200, [answer_prompt, 0, 0, N + A, 0]),
            ("error", false, 429, [0; 5]),
            ("retry", false, 200, [2, 0, 0, N, 0]),
            // Cut after two words, before any usage: the token-service
            // counts the prompt's text and the two words relayed.
            ("cut", true, 502, [CUT_PROMPT, 0, 0, 2, 0]),
        ] {
            let mut e = row(u, "chat", stream, status, usage);
            e.estimated = step == "cut";
            out.insert(format!("{}-{step}", u.name), e);
        }
    }
    let gemini = ups.iter().find(|u| u.provider == "gemini").unwrap();
    // "Be brief" + "Say hello": P = 4.
    let cache = [4 + CACHED, CACHED, 0, N + REASONING, REASONING];
    for (step, stream, usage) in [
        ("whole", false, cache),
        ("stream", true, cache),
        ("tool", false, [2, 0, 0, N + A, 0]),
    ] {
        let mut e = row(gemini, "messages", stream, 200, usage);
        e.ns = MESSAGES;
        out.insert(format!("{MESSAGES}-{step}"), e);
    }
    out
}

/// The model totals of `(model, ns)` the expected requests add up to.
fn totals(want: &BTreeMap<String, Expect>, model: &str, ns: &str) -> ModelTotals {
    let mut t = ModelTotals::default();
    for e in want.values().filter(|e| e.model == model && e.ns == ns) {
        t.requests += 1;
        t.errors += i64::from(e.status >= 400);
        t.tokens_in += e.prompt as i64;
        t.tokens_out += e.completion as i64;
        t.cache_read += e.cached as i64;
        t.cache_write += e.write as i64;
        t.reasoning += e.reasoning as i64;
        t.cost_nusd += e.cost;
    }
    t
}

/// The instance whose key a request the mock recorded carried.
fn instance_of(req: &Value, u_name: &str, header: &str, prefix: &str) -> Option<String> {
    let sent = req["headers"][header].as_str()?;
    (0..2)
        .find(|i| sent == format!("{prefix}{}", upstream_secret(u_name, *i)))
        .map(|i| format!("{u_name}-i{i}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_is_accounted_to_the_token_and_the_nano_dollar() {
    let s = Stack::start(StackOptions {
        mock_env: vec![("MOCK_RECORD_REQUESTS".into(), "1000".into())],
        ..StackOptions::default()
    })
    .await;
    let ups = upstreams();

    // Through the admin API: per provider a namespace, a model with cache
    // prices and two instances; the Messages namespace on the Gemini model.
    let mut keys = BTreeMap::new();
    for u in &ups {
        s.priced_model(u.model, &u.prices).await;
        s.namespace(u.name, json!({})).await;
        for i in 0..2 {
            let mut fields = u.fields.clone();
            fields["api_key"] = upstream_secret(u.name, i).into();
            fields["timeout_ms"] = 10_000.into();
            s.provider_instance(
                &format!("{}-i{i}", u.name),
                u.name,
                u.model,
                u.provider,
                0,
                fields,
            )
            .await;
        }
        let (_, key, _) = s.key(u.name, json!({})).await;
        keys.insert(u.name, key);
    }
    s.namespace(MESSAGES, json!({})).await;
    s.provider_instance(
        &format!("{MESSAGES}-i0"),
        MESSAGES,
        "m-gemini",
        "gemini",
        0,
        json!({"api_key": upstream_secret(MESSAGES, 0), "upstream_model": MESSAGES_UPSTREAM}),
    )
    .await;
    let (_, messages_key, v) = s.key(MESSAGES, json!({})).await;
    s.wait_version(v).await;

    // The traffic, every provider at once.
    let providers: serde_json::Map<String, Value> = ups
        .iter()
        .map(|u| {
            (
                u.name.to_string(),
                json!({"provider": u.provider, "model": u.model,
                       "rule_model": u.rule_model, "key": keys[u.name]}),
            )
        })
        .collect();
    let messages = json!({"provider": "gemini", "model": "m-gemini",
                          "rule_model": MESSAGES_UPSTREAM, "key": messages_key});
    let report = sdk::run_script(
        "providers_e2e.py",
        &[
            ("GATEWAY_URL", s.gw(0)),
            ("MOCK_URL", s.mocks[0].url()),
            ("ANSWER", ANSWER.into()),
            ("PROVIDERS", Value::Object(providers).to_string()),
            ("MESSAGES", messages.to_string()),
        ],
    )
    .await;
    // The gateway's id of each request (its usage record's), by the
    // `{name}-{step}` of `expected`.
    let label: BTreeMap<String, String> =
        report["ids"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(name, steps)| {
                steps.as_object().unwrap().iter().map(move |(step, id)| {
                    (id.as_str().unwrap().to_string(), format!("{name}-{step}"))
                })
            })
            .collect();
    // Every override rule was used up by the requests it was meant for.
    let rules = s
        .json(&format!("{}/mock/overrides", s.mocks[0].url()))
        .await;
    assert_eq!(rules["overrides"], json!([]), "rules left: {rules}");

    let want = expected(&ups);
    let total = want.len() as i64;
    assert_eq!(
        label.values().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>(),
        "{report}"
    );

    // 1. The gateway's counters: each request once, by status; one retry
    //    of each kind per provider.
    let global = s
        .settle(Duration::from_secs(20), &total, || async {
            s.int("metrics:global:total_requests").await
        })
        .await;
    assert_eq!(global, total);
    assert_eq!(
        s.int("metrics:global:total_errors").await,
        2 * ups.len() as i64
    );
    for u in &ups {
        assert_eq!(
            s.gateway_counts(u.name, &[200, 429, 502, 503]).await,
            Counts {
                global_requests: total,
                global_errors: 2 * ups.len() as i64,
                ns_requests: 8,
                ns_successful: 6,
                ns_failed: 2,
                by_status: [(200, 6), (429, 1), (502, 1), (503, 0)].into(),
            },
            "{}",
            u.name
        );
        for (reason, n) in [("status_429", 1), ("status_5xx", 1)] {
            let key = format!("metrics:ns:{}:retries:{reason}", u.name);
            assert_eq!(s.int(&key).await, n, "{key}");
        }
    }
    let m = s.gateway_counts(MESSAGES, &[200]).await;
    assert_eq!(
        (m.ns_requests, m.ns_successful, m.by_status[&200]),
        (3, 3, 3)
    );

    // 2. The token-service's model series and monthly cost in Redis.
    let pairs: Vec<(&str, &str)> = ups
        .iter()
        .map(|u| (u.model, u.name))
        .chain([("m-gemini", MESSAGES)])
        .collect();
    for (model, ns) in &pairs {
        let t = totals(&want, model, ns);
        let got = s
            .settle(Duration::from_secs(20), &t, || async {
                s.model_totals(model, ns).await
            })
            .await;
        assert_eq!(got, t, "{model} in {ns}");
        let mut month = 0;
        for k in s.keys(&format!("metrics:cost:ns:{ns}:month:*")).await {
            month += s.int(&k).await;
        }
        assert_eq!(month, t.cost_nusd, "monthly cost of {ns}");
    }
    assert!(totals(&want, "m-anthropic", "anthropic").cache_write > 0);

    // 3. The same on the token-service's /metrics (cached for a second).
    let series = |model: &str, ns: &str, scrape: &Scrape| -> Vec<f64> {
        let labels = [("model", model), ("namespace_code", ns)];
        [
            "model_requests_total",
            "model_errors_total",
            "model_tokens_input_total",
            "model_tokens_output_total",
            "model_tokens_cache_read_total",
            "model_tokens_cache_write_total",
            "model_tokens_reasoning_total",
        ]
        .iter()
        .map(|n| scrape.value(n, &labels).unwrap_or(-1.0))
        .collect()
    };
    let metrics_url = format!("{}/metrics", s.ts.url());
    let exported = eventually(Duration::from_secs(10), || async {
        let scrape = Scrape::parse(&s.text(&metrics_url).await);
        pairs.iter().all(|(model, ns)| {
            let t = totals(&want, model, ns);
            let cost = scrape
                .value(
                    "model_cost_usd_total",
                    &[("model", model), ("namespace_code", ns)],
                )
                .unwrap_or(-1.0);
            series(model, ns, &scrape)
                == [
                    t.requests,
                    t.errors,
                    t.tokens_in,
                    t.tokens_out,
                    t.cache_read,
                    t.cache_write,
                    t.reasoning,
                ]
                .map(|v| v as f64)
                && (cost - t.cost_nusd as f64 / 1e9).abs() < 1e-12
        })
    })
    .await;
    assert!(exported, "{}", s.text(&metrics_url).await);

    // 4. The ledger: one row per request, as the mock's usage and the
    //    prices make it.
    let rows = s
        .settle(Duration::from_secs(20), &(total as usize), || async {
            s.ledger_rows("").await.len()
        })
        .await;
    assert_eq!(rows, total as usize, "ledger rows");
    let rows: BTreeMap<String, Value> = s
        .ledger_rows("")
        .await
        .into_iter()
        .map(|r| {
            let id = r["request_id"].as_str().unwrap();
            let name = label.get(id).cloned().unwrap_or_else(|| id.to_string());
            (name, r)
        })
        .collect();
    assert_eq!(
        rows.keys().collect::<BTreeSet<_>>(),
        want.keys().collect::<BTreeSet<_>>()
    );
    for (id, e) in &want {
        let r = &rows[id];
        let got = Expect {
            ns: e.ns,
            model: e.model,
            endpoint: e.endpoint,
            stream: r["stream"].as_bool().unwrap(),
            status: r["status"].as_u64().unwrap() as u16,
            prompt: r["prompt_tokens"].as_u64().unwrap(),
            cached: r["cached_tokens"].as_u64().unwrap(),
            write: r["cache_write_tokens"].as_u64().unwrap(),
            completion: r["completion_tokens"].as_u64().unwrap(),
            reasoning: r["reasoning_tokens"].as_u64().unwrap(),
            estimated: r["estimated"].as_bool().unwrap(),
            cost: r["cost_nano_usd"].as_i64().unwrap(),
        };
        assert_eq!(&got, e, "{id}: {r}");
        assert_eq!(
            (&r["namespace"], &r["model"], &r["endpoint"]),
            (&json!(e.ns), &json!(e.model), &json!(e.endpoint)),
            "{id}"
        );
    }

    // 5. At the mock: each provider's path and key header, each request
    //    sent once — the failed ones twice, to both instances, and the
    //    retry answered by the instance the ledger names.
    let journal = s
        .json(&format!("{}/mock/requests?limit=1000", s.mocks[0].url()))
        .await;
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in journal["requests"].as_array().unwrap() {
        if let Some(name) = r["headers"]["x-request-id"]
            .as_str()
            .and_then(|id| label.get(id))
        {
            by_id.entry(name.clone()).or_default().push(r.clone());
        }
    }
    for u in &ups {
        let sent = |step: &str| {
            by_id
                .get(&format!("{}-{step}", u.name))
                .cloned()
                .unwrap_or_default()
        };
        let whole = sent("whole");
        assert_eq!(whole.len(), 1, "{}", u.name);
        assert_eq!(
            (whole[0]["path"].as_str(), whole[0]["query"].as_str()),
            (Some(u.path), Some(u.query)),
            "{}",
            u.name
        );
        if u.provider == "anthropic" {
            assert_eq!(whole[0]["headers"]["anthropic-version"], "2023-06-01");
        }
        for step in [
            "whole",
            "stream",
            "tool",
            "tool-stream",
            "tool-answer",
            "retry",
            "error",
            "cut",
        ] {
            let reqs = sent(step);
            let by: Vec<String> = reqs
                .iter()
                .map(|r| {
                    instance_of(r, u.name, u.key_header, u.key_prefix)
                        .unwrap_or_else(|| panic!("{}-{step}: no instance key: {r}", u.name))
                })
                .collect();
            let attempts = if matches!(step, "retry" | "error") {
                2
            } else {
                1
            };
            assert_eq!(by.len(), attempts, "{}-{step}: {by:?}", u.name);
            if attempts == 2 {
                assert_ne!(by[0], by[1], "{}-{step} went to one instance twice", u.name);
            }
            let row = &rows[&format!("{}-{step}", u.name)];
            assert_eq!(
                row["instance_id"],
                by[by.len() - 1].as_str(),
                "{}-{step}",
                u.name
            );
        }
    }
    let msgs = &by_id[&format!("{MESSAGES}-whole")];
    assert_eq!(
        msgs[0]["path"],
        format!("/v1beta/models/{MESSAGES_UPSTREAM}:generateContent")
    );

    // 6. The ledger's totals per namespace and model equal the counters.
    let a = s
        .admin(Method::GET, "/api/v1/usage?group_by=namespace,model", None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let groups = a.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), pairs.len(), "{}", a.text);
    for g in groups {
        let (ns, model) = (
            g["namespace"].as_str().unwrap(),
            g["model"].as_str().unwrap(),
        );
        let m = s.model_totals(model, ns).await;
        let num = |k: &str| g[k].as_i64().unwrap();
        assert_eq!(
            ModelTotals {
                requests: num("requests"),
                errors: num("errors"),
                tokens_in: num("prompt_tokens"),
                tokens_out: num("completion_tokens"),
                cost_nusd: num("cost_nano_usd"),
                cache_read: num("cached_tokens"),
                cache_write: num("cache_write_tokens"),
                reasoning: num("reasoning_tokens"),
            },
            m,
            "{g}"
        );
    }
}
