//! Anthropic, Gemini and Azure OpenAI instances behind the gateway's OpenAI
//! API: what the upstream receives (path, key header, translated body), what
//! the client sees (answers, chunk order, errors in OpenAI's shape), retries,
//! and the usage record's token counts, cache and reasoning tokens included.

use crate::helpers::*;
use aigw_types::{ConfigSnapshot, InstanceConfig, Provider, TokenSource, UsageRecord};
use mock_upstream::overrides::RuleRequest;
use mock_upstream::MockServer;
use serde_json::{json, Value};

pub const CLAUDE: &str = "claude-test";
pub const CLAUDE_PAIR: &str = "claude-pair";
pub const GEMINI: &str = "gemini-test";
pub const GEMINI_PAIR: &str = "gemini-pair";
pub const AZURE_DEPLOYMENT: &str = "azure-deployment";
pub const AZURE_V1: &str = "azure-v1";
pub const AZURE_PAIR: &str = "azure-pair";
pub const GPT: &str = "gpt-test";

/// The mock's address without `/v1`.
pub fn root(up: &MockServer) -> String {
    up.base_url().trim_end_matches("/v1").to_string()
}

pub fn provider_instance(
    id: &str,
    model: &str,
    provider: Provider,
    up: &MockServer,
) -> InstanceConfig {
    let base = match provider {
        Provider::Openai | Provider::Anthropic => up.base_url(),
        Provider::Gemini => format!("{}/v1beta", root(up)),
        Provider::AzureOpenai => root(up),
    };
    let mut i = instance(id, "team-a", model, &base);
    i.provider = provider;
    i
}

/// One namespace with an instance of each provider (the Azure deployment
/// form with `api-version`, and the v1 form), and a model of two instances
/// per provider for retries.
pub fn providers_snapshot(up: &MockServer) -> ConfigSnapshot {
    let mut dep = provider_instance("z1", AZURE_DEPLOYMENT, Provider::AzureOpenai, up);
    dep.api_version = Some("2024-10-21".into());
    dep.azure_deployment = Some("dep-1".into());
    let instances = vec![
        provider_instance("c1", CLAUDE, Provider::Anthropic, up),
        provider_instance("cp1", CLAUDE_PAIR, Provider::Anthropic, up),
        provider_instance("cp2", CLAUDE_PAIR, Provider::Anthropic, up),
        provider_instance("g1", GEMINI, Provider::Gemini, up),
        provider_instance("gp1", GEMINI_PAIR, Provider::Gemini, up),
        provider_instance("gp2", GEMINI_PAIR, Provider::Gemini, up),
        dep,
        provider_instance("v1", AZURE_V1, Provider::AzureOpenai, up),
        provider_instance("zp1", AZURE_PAIR, Provider::AzureOpenai, up),
        provider_instance("zp2", AZURE_PAIR, Provider::AzureOpenai, up),
        provider_instance("o1", GPT, Provider::Openai, up),
    ];
    ConfigSnapshot {
        version: 1,
        generated_at_ms: 1_700_000_000_000,
        namespaces: vec![ns("team-a")],
        api_keys: vec![key("team-a", KEY_A)],
        models: [
            CLAUDE,
            CLAUDE_PAIR,
            GEMINI,
            GEMINI_PAIR,
            AZURE_DEPLOYMENT,
            AZURE_V1,
            AZURE_PAIR,
            GPT,
        ]
        .into_iter()
        .map(model)
        .collect(),
        instances,
    }
}

fn body(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": stream,
    })
}

/// A stream's chunks, each as `(delta, finish_reason)`, then the usage
/// chunk (if any) and whether `[DONE]` ended it.
struct Chunks {
    deltas: Vec<(Value, Value)>,
    usage: Option<Value>,
    done: bool,
}

async fn stream(app: &TestApp, body: Value) -> Chunks {
    let resp = app.chat(KEY_A, body).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = resp.text().await.unwrap();
    let mut out = Chunks {
        deltas: Vec::new(),
        usage: None,
        done: false,
    };
    for d in sse_data(&text) {
        assert!(!out.done, "nothing after [DONE]: {text}");
        if d == "[DONE]" {
            out.done = true;
            continue;
        }
        let c: Value = serde_json::from_str(&d).unwrap();
        if c.get("prompt_filter_results").is_some() && c["choices"] == json!([]) {
            // Azure opens its streams with its prompt filter's results.
            continue;
        }
        assert!(out.usage.is_none(), "the usage chunk is the last: {text}");
        assert_eq!(c["object"], "chat.completion.chunk", "{d}");
        let choices = c["choices"].as_array().unwrap();
        if choices.is_empty() {
            if c.get("usage").is_some() {
                out.usage = Some(c["usage"].clone());
            }
            continue;
        }
        out.deltas.push((
            choices[0]["delta"].clone(),
            choices[0]["finish_reason"].clone(),
        ));
    }
    out
}

fn text_of(deltas: &[(Value, Value)]) -> Vec<String> {
    deltas
        .iter()
        .filter_map(|(d, _)| d["content"].as_str().filter(|s| !s.is_empty()))
        .map(str::to_string)
        .collect()
}

fn usage_json(prompt: u64, cached: u64, write: u64, completion: u64, reasoning: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    })
}

/// The usage record's counts: (prompt, cached, cache write, completion,
/// reasoning, source).
pub fn counts(r: &UsageRecord) -> (u64, u64, u64, u64, u64, TokenSource) {
    (
        r.prompt_tokens,
        r.cached_tokens,
        r.cache_write_tokens,
        r.completion_tokens,
        r.reasoning_tokens,
        r.token_source,
    )
}

fn rule(up: &MockServer, provider: &str, times: u32, knobs: Value) {
    up.state()
        .rules
        .add(RuleRequest {
            provider: Some(provider.into()),
            model: None,
            times: Some(times),
            mock: mock(knobs),
        })
        .unwrap();
}

async fn start() -> (MockServer, TestApp) {
    let up = upstream("p").await;
    let app = TestApp::spawn(&providers_snapshot(&up)).await;
    (up, app)
}

#[tokio::test]
async fn anthropic_answers_streams_and_usage_with_cache_tokens() {
    let (up, app) = start().await;
    up.set(mock(
        json!({"cached_tokens": 100, "cache_write_tokens": 30, "reasoning_tokens": 4}),
    ));
    // P = 2 ("Say hello") + 2 ("Be brief"); R = 100; W = 30; N = 3; T = 4.
    let mut req = body(CLAUDE, false);
    req["messages"] = json!([
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Say hello"},
    ]);
    req["max_tokens"] = json!(50);
    req["temperature"] = json!(0.5);
    req["stop"] = json!("END");
    let resp = app.chat(KEY_A, req.clone()).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-test-upstream-c1");
    assert!(v["id"].as_str().unwrap().starts_with("msg_mock_"), "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"], usage_json(134, 100, 30, 7, 4));

    // What Anthropic received: its path, key header and version, the
    // system prompt hoisted, no client credentials.
    let sent = up.requests().pop().unwrap();
    assert_eq!(sent.path(), "/v1/messages");
    assert_eq!(
        sent.header("x-api-key").as_deref(),
        Some("sk-upstream-secret-c1")
    );
    assert_eq!(
        sent.header("anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body(),
        json!({
            "model": "claude-test-upstream-c1",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "Be brief"}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}],
            "temperature": 0.5,
            "stop_sequences": ["END"],
        })
    );

    // Streamed with the usage asked for: role, three words, finish, usage,
    // [DONE] (thinking is counted, not shown).
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let s = stream(&app, req.clone()).await;
    assert_eq!(s.deltas[0].0, json!({"role": "assistant", "content": ""}));
    assert_eq!(text_of(&s.deltas), ["Hello", " from", " the"]);
    assert_eq!(s.deltas.len(), 5, "{:?}", s.deltas);
    assert_eq!(s.deltas[4], (json!({}), json!("stop")));
    assert!(s.deltas[..4].iter().all(|(_, f)| f.is_null()));
    assert_eq!(s.usage, Some(usage_json(134, 100, 30, 7, 4)));
    assert!(s.done);

    // Not asked for: no usage chunk, the usage is still recorded.
    req["stream_options"] = Value::Null;
    let s = stream(&app, req).await;
    assert_eq!(s.usage, None);
    assert!(s.done);

    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 3);
    for (r, streamed) in recs.iter().zip([false, true, true]) {
        assert_eq!(
            counts(r),
            (134, 100, 30, 7, 4, TokenSource::Upstream),
            "{r:?}"
        );
        assert_eq!(r.model, CLAUDE);
        assert_eq!(r.instance_id.as_deref(), Some("c1"));
        assert_eq!((r.status, r.stream), (200, streamed));
    }
    assert_eq!(app.get_i64("metrics:ns:team-a:status:200").await, 3);
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "The weather of a place",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}
    }}])
}

#[tokio::test]
async fn anthropic_tool_calls_whole_streamed_and_answered() {
    let (up, app) = start().await;
    up.set(mock(json!({"tool_call": true, "chunks": 0})));
    let mut req = body(CLAUDE, false);
    req["tools"] = weather_tool();
    req["tool_choice"] = json!("required");
    let v: Value = app.chat(KEY_A, req.clone()).await.json().await.unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], Value::Null, "{v}");
    let call = &msg["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"location":"Paris"}"#);
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let sent = up.requests().pop().unwrap().body();
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "The weather of a place",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));

    // Streamed: the call opens with its id and name, its arguments follow
    // in pieces, the finish says tool_calls.
    req["stream"] = json!(true);
    let s = stream(&app, req.clone()).await;
    let calls: Vec<&Value> = s
        .deltas
        .iter()
        .filter_map(|(d, _)| d.get("tool_calls"))
        .collect();
    assert_eq!(calls[0][0]["index"], 0);
    assert_eq!(calls[0][0]["function"]["name"], "get_weather");
    assert!(calls[0][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("toolu_mock_"));
    let args: String = calls
        .iter()
        .map(|c| c[0]["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(args, r#"{"location": "Paris"}"#);
    assert_eq!(calls.len(), 3, "open + two argument pieces");
    assert_eq!(s.deltas.last().unwrap().1, "tool_calls");
    assert!(s.done);

    // The next turn: the assistant's call and the tool's result become
    // Anthropic's tool_use and tool_result blocks.
    up.set(mock(json!({})));
    req["stream"] = json!(false);
    req["messages"] = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": [
            {"type": "text", "text": "And this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}}
        ]},
    ]);
    let resp = app.chat(KEY_A, req).await;
    assert_eq!(resp.status(), 200);
    let sent = up.requests().pop().unwrap().body();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                "name": "get_weather", "input": {"location": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "text", "text": "And this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                    "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}
            ]}
        ])
    );
}

#[tokio::test]
async fn anthropic_errors_are_openai_errors_and_refusals_name_the_parameter() {
    let (up, app) = start().await;
    // Overloaded (529) with no other instance: the client gets OpenAI's
    // 503 with Anthropic's error name.
    rule(&up, "anthropic", 1, json!({"status": 529}));
    let resp = app.chat(KEY_A, body(CLAUDE, false)).await;
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "overloaded_error");
    assert!(v["error"]["message"].as_str().unwrap().len() > 3);

    rule(
        &up,
        "anthropic",
        1,
        json!({"error": "invalid_request_error"}),
    );
    let resp = app.chat(KEY_A, body(CLAUDE, true)).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "invalid_request_error");

    // An error inside the stream: OpenAI's error event, no [DONE].
    rule(&up, "anthropic", 1, json!({"error_after_chunks": 2}));
    let resp = app.chat(KEY_A, body(CLAUDE, true)).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "overloaded_error", "{data:?}");
    assert!(!data.contains(&"[DONE]".to_string()));

    // What Anthropic cannot honour is refused by name, before any request.
    let before = up.request_count();
    for (param, value) in [
        ("seed", json!(7)),
        ("presence_penalty", json!(0.5)),
        ("temperature", json!(1.5)),
        ("response_format", json!({"type": "json_object"})),
        ("logit_bias", json!({"1": 2})),
        ("n", json!(2)),
    ] {
        let mut req = body(CLAUDE, false);
        req[param] = value;
        let resp = app.chat(KEY_A, req).await;
        assert_eq!(resp.status(), 400, "{param}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unsupported_parameter", "{param}");
        assert_eq!(v["error"]["param"], param);
        assert!(v["error"]["message"].as_str().unwrap().contains(param));
    }
    let mut req = body(CLAUDE, false);
    req["messages"][0]["name"] = json!("bob");
    let v: Value = app.chat(KEY_A, req).await.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages[0].name");
    // No embeddings at Anthropic.
    let resp = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": CLAUDE, "input": "x"}),
        )
        .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unsupported_endpoint");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic"));
    assert_eq!(up.request_count(), before, "nothing refused was sent");

    app.settle().await;
    let recs = app.usage_records().await;
    let kinds: Vec<(u16, Option<&str>)> = recs
        .iter()
        .map(|r| (r.status, r.error_kind.as_deref()))
        .collect();
    assert_eq!(kinds[0], (503, Some("upstream_error")));
    assert_eq!(kinds[1], (400, Some("upstream_client_error")));
    assert_eq!(kinds[3], (400, Some("unsupported_parameter")));
    assert_eq!(kinds.last().unwrap(), &(400, Some("unsupported_endpoint")));
}

/// A retryable error at one instance, then success at the other: the
/// client sees one answer, the retry is counted, the usage is the answer's.
async fn retried(app: &TestApp, up: &MockServer, model: &str, provider: &str, status: u16) {
    rule(up, provider, 1, json!({"status": status}));
    let before = up.request_count();
    let resp = app.chat(KEY_A, body(model, false)).await;
    assert_eq!(resp.status(), 200, "{model}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(up.request_count(), before + 2);
    let sent = up.requests();
    let keys: Vec<Option<String>> = sent[sent.len() - 2..]
        .iter()
        .map(|r| {
            r.header("x-api-key")
                .or(r.header("api-key"))
                .or(r.header("x-goog-api-key"))
        })
        .collect();
    assert_ne!(keys[0], keys[1], "the retry went to the other instance");
}

#[tokio::test]
async fn retries_go_to_the_other_instance_for_every_provider() {
    let (up, app) = start().await;
    retried(&app, &up, CLAUDE_PAIR, "anthropic", 529).await;
    retried(&app, &up, GEMINI_PAIR, "gemini", 503).await;
    retried(&app, &up, AZURE_PAIR, "azure_openai", 429).await;
    app.settle().await;
    assert_eq!(app.get_i64("metrics:ns:team-a:retries:status_5xx").await, 2);
    assert_eq!(app.get_i64("metrics:ns:team-a:retries:status_429").await, 1);
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert_eq!(r.status, 200);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens),
            (PROMPT_TOKENS, COMPLETION_TOKENS)
        );
    }
}

#[tokio::test]
async fn gemini_answers_streams_tools_errors_and_usage() {
    let (up, app) = start().await;
    up.set(mock(json!({"cached_tokens": 100, "reasoning_tokens": 4})));
    // promptTokenCount = 2 + 100 (cached included), candidates 3, thoughts 4.
    let mut req = body(GEMINI, false);
    req["max_completion_tokens"] = json!(40);
    req["seed"] = json!(3);
    let v: Value = app.chat(KEY_A, req.clone()).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["model"], "gemini-test-upstream-g1");
    assert_eq!(v["usage"], usage_json(102, 100, 0, 7, 4));
    let sent = up.requests().pop().unwrap();
    assert_eq!(
        sent.path(),
        "/v1beta/models/gemini-test-upstream-g1:generateContent"
    );
    assert_eq!(
        sent.header("x-goog-api-key").as_deref(),
        Some("sk-upstream-secret-g1")
    );
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.body(),
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
            "generationConfig": {"maxOutputTokens": 40, "seed": 3},
        })
    );

    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let s = stream(&app, req.clone()).await;
    assert_eq!(s.deltas[0].0, json!({"role": "assistant", "content": ""}));
    assert_eq!(text_of(&s.deltas), ["Hello", " from", " the"]);
    assert_eq!(s.deltas.len(), 5, "{:?}", s.deltas);
    assert_eq!(s.deltas[4], (json!({}), json!("stop")));
    assert_eq!(s.usage, Some(usage_json(102, 100, 0, 7, 4)));
    assert!(s.done);
    let sent = up.requests().pop().unwrap();
    assert_eq!(sent.to_json()["query"], "alt=sse", "{}", sent.to_json());

    // Tool calls, whole and streamed.
    up.set(mock(json!({"tool_call": true})));
    req["tools"] = weather_tool();
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    req["stream"] = json!(false);
    req["stream_options"] = Value::Null;
    let v: Value = app.chat(KEY_A, req.clone()).await.json().await.unwrap();
    let msg = &v["choices"][0]["message"];
    assert_eq!(msg["content"], ANSWER);
    assert_eq!(
        msg["tool_calls"],
        json!([{"id": "call_0", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let sent = up.requests().pop().unwrap().body();
    assert_eq!(
        sent["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
    req["stream"] = json!(true);
    let s = stream(&app, req.clone()).await;
    let call = s
        .deltas
        .iter()
        .find_map(|(d, _)| d.get("tool_calls"))
        .unwrap();
    assert_eq!(call[0]["function"]["arguments"], "{\"location\":\"Paris\"}");
    assert_eq!(s.deltas.last().unwrap().1, "tool_calls");

    // The answer to the call: a functionResponse named after it.
    up.set(mock(json!({})));
    req["stream"] = json!(false);
    req["messages"] = json!([
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    ]);
    assert_eq!(app.chat(KEY_A, req).await.status(), 200);
    let sent = up.requests().pop().unwrap().body();
    assert_eq!(
        sent["systemInstruction"],
        json!({"parts": [{"text": "Be brief"}]})
    );
    assert_eq!(
        sent["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather",
                "args": {"location": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                "response": {"content": "sunny"}}}]},
        ])
    );

    // Errors: Gemini's status name as the code, OpenAI's type for the status.
    up.reset();
    rule(&up, "gemini", 5, json!({"status": 429}));
    let resp = app.chat(KEY_A, body(GEMINI, false)).await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "RESOURCE_EXHAUSTED");
    // An error inside the stream: OpenAI's error event, no [DONE].
    up.reset();
    rule(&up, "gemini", 1, json!({"error_after_chunks": 1}));
    let resp = app.chat(KEY_A, body(GEMINI, true)).await;
    let data = sse_data(&resp.text().await.unwrap());
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "UNAVAILABLE", "{data:?}");
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!data.contains(&"[DONE]".to_string()));
    let mut req = body(GEMINI, false);
    req["user"] = json!("u1");
    let v: Value = app.chat(KEY_A, req).await.json().await.unwrap();
    assert_eq!(v["error"]["param"], "user");

    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(counts(&recs[0]), (102, 100, 0, 7, 4, TokenSource::Upstream));
    assert_eq!(counts(&recs[1]), (102, 100, 0, 7, 4, TokenSource::Upstream));
    assert!(recs[1].stream);
}

#[tokio::test]
async fn gemini_embeddings_float_and_base64() {
    let (up, app) = start().await;
    let resp = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": GEMINI, "input": ["embed me", "and me too"], "dimensions": 4}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    // The values as the mock sent them.
    assert_eq!(
        data[0]["embedding"],
        json!(mock_upstream::wire::vector(0, 4))
    );
    assert_eq!(data[1]["index"], 1);
    assert_eq!(v["usage"], json!({"prompt_tokens": 5, "total_tokens": 5}));
    let sent = up.requests().pop().unwrap();
    assert_eq!(
        sent.path(),
        "/v1beta/models/gemini-test-upstream-g1:batchEmbedContents"
    );
    assert_eq!(
        sent.body()["requests"][1],
        json!({"model": "models/gemini-test-upstream-g1",
               "content": {"parts": [{"text": "and me too"}]}, "outputDimensionality": 4})
    );
    let resp = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": GEMINI, "input": "embed me", "encoding_format": "base64"}),
        )
        .await;
    let v: Value = resp.json().await.unwrap();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let floats: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, mock_upstream::wire::vector(0, 16));
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(
        (recs[0].prompt_tokens, recs[0].endpoint.as_str()),
        (5, "embeddings")
    );
}

#[tokio::test]
async fn azure_deployment_and_v1_forms() {
    let (up, app) = start().await;
    up.set(mock(json!({"cached_tokens": 10, "reasoning_tokens": 2})));
    for (model, path, query, upstream_model) in [
        (
            AZURE_DEPLOYMENT,
            "/openai/deployments/dep-1/chat/completions",
            "api-version=2024-10-21",
            "azure-deployment-upstream-z1",
        ),
        (
            AZURE_V1,
            "/openai/v1/chat/completions",
            "",
            "azure-v1-upstream-v1",
        ),
    ] {
        let v: Value = app
            .chat(KEY_A, body(model, false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], ANSWER, "{v}");
        assert_eq!(v["usage"]["prompt_tokens"], 12);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 10);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            2
        );
        let sent = up.requests().pop().unwrap();
        assert_eq!(sent.path(), path);
        assert_eq!(sent.to_json()["query"], query);
        assert!(sent
            .header("api-key")
            .unwrap()
            .starts_with("sk-upstream-secret-"));
        assert_eq!(sent.header("authorization"), None);
        assert_eq!(sent.body()["model"], upstream_model);

        let mut req = body(model, true);
        req["stream_options"] = json!({"include_usage": true});
        let s = stream(&app, req).await;
        assert_eq!(text_of(&s.deltas), ["Hello", " from", " the"]);
        assert_eq!(s.deltas.last().unwrap().1, "stop");
        assert_eq!(s.usage.as_ref().unwrap()["prompt_tokens"], 12);
        assert!(s.done);
    }
    // Embeddings on the deployment's path, the body as the client sent it.
    let resp = app
        .post(
            "/v1/embeddings",
            Some(KEY_A),
            &json!({"model": AZURE_DEPLOYMENT, "input": "embed me"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let got: Vec<f32> = v["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got, mock_upstream::wire::vector(0, 16));
    let sent = up.requests().pop().unwrap();
    assert_eq!(sent.path(), "/openai/deployments/dep-1/embeddings");
    assert_eq!(sent.to_json()["query"], "api-version=2024-10-21");
    // Tool calls pass through in OpenAI's shape.
    up.set(mock(json!({"tool_call": true})));
    let mut req = body(AZURE_V1, false);
    req["tools"] = weather_tool();
    let v: Value = app.chat(KEY_A, req).await.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    // Azure's errors get OpenAI's `type`.
    up.reset();
    rule(&up, "azure_openai", 5, json!({"status": 429}));
    let resp = app.chat(KEY_A, body(AZURE_DEPLOYMENT, false)).await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(v["error"]["code"], "429");

    app.settle().await;
    let recs = app.usage_records().await;
    for r in &recs[..4] {
        assert_eq!(
            (
                r.prompt_tokens,
                r.cached_tokens,
                r.completion_tokens,
                r.reasoning_tokens
            ),
            (12, 10, 5, 2),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_translated_stream_cut_before_its_usage_is_counted_not_zero() {
    let (up, app) = start().await;
    for (model, provider) in [(CLAUDE, "anthropic"), (GEMINI, "gemini")] {
        rule(&up, provider, 1, json!({"abort_after_chunks": 2}));
        let resp = app.chat(KEY_A, body(model, true)).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap_or_default();
        assert!(!text.contains("[DONE]"), "{text}");
    }
    app.settle().await;
    let recs = app.usage_records().await;
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r.token_source, TokenSource::Counted, "{r:?}");
        let t = r.count_text.as_ref().unwrap();
        assert_eq!(t.prompt, "Say hello");
        assert_eq!(t.completion, "Hello from");
        assert_eq!((r.prompt_tokens, r.completion_tokens), (0, 0));
    }
}

/// `POST /v1/messages` with `x-api-key`.
async fn messages(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", KEY_A)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `(event name, data)` of an Anthropic event stream.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap();
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn the_messages_api_reaches_every_provider() {
    let (up, app) = start().await;
    // (model, cache writes, prompt in OpenAI's meaning)
    let cases = [
        (CLAUDE, 30, 132),
        (GPT, 0, 102),
        (GEMINI, 0, 102),
        (AZURE_V1, 0, 102),
    ];
    for (model, write, _) in cases {
        up.set(mock(
            json!({"cached_tokens": 100, "cache_write_tokens": write,
                           "reasoning_tokens": 4}),
        ));
        let req = json!({"model": model, "max_tokens": 50, "system": "Be brief",
                         "messages": [{"role": "user", "content": "Say hello"}]});
        let resp = messages(&app, req.clone()).await;
        assert_eq!(resp.status(), 200, "{model}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["type"], "message", "{model}: {v}");
        assert_eq!(v["role"], "assistant");
        let texts: Vec<&Value> = v["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "text")
            .collect();
        assert_eq!(texts[0]["text"], ANSWER, "{model}: {v}");
        assert_eq!(v["stop_reason"], "end_turn");
        // "Be brief" and "Say hello": P = 4.
        assert_eq!(v["usage"]["input_tokens"], 4, "{model}: {v}");
        assert_eq!(v["usage"]["cache_read_input_tokens"], 100);
        assert_eq!(v["usage"]["cache_creation_input_tokens"], write);
        assert_eq!(v["usage"]["output_tokens"], 7);

        let mut req = req;
        req["stream"] = json!(true);
        let resp = messages(&app, req).await;
        assert_eq!(resp.status(), 200);
        let ev = events(&resp.text().await.unwrap());
        let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "message_start", "{model}: {names:?}");
        assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
        let text: String = ev
            .iter()
            .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "text_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, ANSWER, "{model}");
        let delta = &ev[ev.len() - 2].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["output_tokens"], 7);
        if model != CLAUDE {
            // The translated sequence: one text block, opened and closed.
            assert_eq!(
                names,
                [
                    "message_start",
                    "content_block_start",
                    "content_block_delta",
                    "content_block_delta",
                    "content_block_delta",
                    "content_block_stop",
                    "message_delta",
                    "message_stop"
                ],
                "{model}"
            );
        }
    }
    // Tool use through a translated provider.
    up.set(mock(json!({"tool_call": true, "chunks": 0})));
    let req = json!({"model": GPT, "max_tokens": 50,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather?"}]});
    let v: Value = messages(&app, req).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "tool_use", "{v}");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["name"], "get_weather");
    assert_eq!(v["content"][0]["input"], json!({"location": "Paris"}));
    let sent = up.requests().pop().unwrap().body();
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    // Bearer works too; a missing key is a 401.
    let resp = app
        .post(
            "/v1/messages",
            Some(KEY_A),
            &json!({"model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let resp = app
        .post(
            "/v1/messages",
            None,
            &json!({"model": GPT, "max_tokens": 5, "messages": []}),
        )
        .await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    // What cannot be translated is refused by name, in Anthropic's shape.
    let resp = messages(
        &app,
        json!({"model": GPT, "max_tokens": 5, "top_k": 3,
               "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("top_k"),
        "{v}"
    );
    // An upstream error in Anthropic's shape.
    up.reset();
    rule(&up, "openai", 5, json!({"status": 429}));
    let resp = messages(
        &app,
        json!({"model": GPT, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    app.settle().await;
    let recs = app.usage_records().await;
    for (i, (model, write, prompt)) in cases.into_iter().enumerate() {
        for r in &recs[2 * i..2 * i + 2] {
            assert_eq!(r.model, model);
            assert_eq!(r.endpoint, "messages");
            assert_eq!(
                counts(r),
                (prompt + 2, 100, write, 7, 4, TokenSource::Upstream),
                "{r:?}"
            );
        }
    }
}
