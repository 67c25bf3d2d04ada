//! The spend ledger end to end: traffic through the gateway (the official
//! OpenAI Python SDK, then a load generator), a database outage and a
//! token-service SIGKILL in the middle of the load; afterwards the ledger
//! holds exactly the requests sent, once each, and its totals equal the
//! Redis counters to the request, token and nano-dollar. On SQLite and on
//! PostgreSQL.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::load::{chat_body, Load};
use aigw_e2e::sdk;
use aigw_e2e::stack::{Stack, StackOptions};
use aigw_e2e::wait::eventually;
use aigw_testkit::PgDatabase;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const NS: &str = "team-l";
const MODEL: &str = "m-ledger";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Engine {
    Sqlite,
    Postgres,
}

async fn ledger_total(s: &Stack) -> Value {
    let a = s
        .admin(Method::GET, &format!("/api/v1/usage?namespace={NS}"), None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["total"].clone()
}

/// A database that fails for a while under load.
async fn outage(engine: Engine, s: &Stack, pg_url: Option<&str>) {
    use sqlx::{Connection, Executor};
    match engine {
        Engine::Sqlite => {
            // Another process's exclusive transaction: every write of the
            // config-center fails after its busy timeout.
            let url = format!("sqlite://{}", s.sqlite_path().display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            c.execute("BEGIN EXCLUSIVE").await.unwrap();
            tokio::time::sleep(Duration::from_secs(7)).await;
            c.execute("ROLLBACK").await.unwrap();
            c.close().await.unwrap();
        }
        Engine::Postgres => {
            // The database refuses new connections and the server drops
            // every open one, again and again, batches in flight included.
            // From the server's admin database: a database cannot refuse
            // connections to the session that asks.
            let (base, name) = pg_url.unwrap().rsplit_once('/').unwrap();
            let mut c = sqlx::PgConnection::connect(&format!("{base}/postgres"))
                .await
                .unwrap();
            // The name is the test kit's own (aigw_test_<uuid>), not input.
            let allow = |on: bool| format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS {on}"#);
            c.execute(allow(false).as_str()).await.unwrap();
            for _ in 0..40 {
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(name)
                .execute(&mut c)
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            c.execute(allow(true).as_str()).await.unwrap();
            c.close().await.unwrap();
        }
    }
}

async fn metric(s: &Stack, name: &str) -> f64 {
    let text = s.text(&format!("{}/metrics", s.cc.url())).await;
    aigw_testkit::prom::Scrape::parse(&text)
        .value(name, &[])
        .unwrap_or(0.0)
}

async fn ledger_equals_the_counters(engine: Engine) {
    if !sdk::python().exists() {
        panic!(".venv/bin/python is missing (scripts/test.sh installs it)");
    }
    let pg = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => match PgDatabase::create().await {
            Some(pg) => Some(pg),
            None => {
                assert!(
                    std::env::var_os("AIGW_REQUIRE_PG").is_none(),
                    "AIGW_REQUIRE_PG is set but PostgreSQL is not reachable"
                );
                eprintln!("skipping: no PostgreSQL");
                return;
            }
        },
    };
    let mut s = Stack::start(StackOptions {
        database_url: pg.as_ref().map(|p| p.url.clone()),
        config_center_env: vec![("CONFIG_CENTER_DB_MAX_CONNECTIONS".into(), "3".into())],
        ..StackOptions::default()
    })
    .await;
    let key = s.world(NS, MODEL, json!({})).await;
    let (key2_id, key2, v) = s.key(NS, json!({})).await;
    s.wait_version(v).await;

    // 1. The SDK's requests, each known by its id.
    let report = sdk::run_script(
        "ledger_sdk.py",
        &[
            ("GATEWAY_URL", format!("{}/v1", s.gw(0))),
            ("MODEL", MODEL.into()),
            ("KEY", key.clone()),
            ("KEY2", key2.clone()),
        ],
    )
    .await;
    let sdk_ids: BTreeSet<String> = ["key", "key2"]
        .iter()
        .flat_map(|k| report["ids"][k].as_array().unwrap().iter())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(sdk_ids.len(), 16, "{report}");

    // 2. Load, with the database failing and the token-service killed
    //    while it runs.
    let load = Load::start(
        s.http.clone(),
        vec![s.gw(0)],
        key.clone(),
        4,
        usize::MAX,
        Duration::from_millis(2),
        |i| chat_body(MODEL, i % 2 == 0, None),
    );
    load.wait_done(100, Duration::from_secs(20)).await;
    outage(engine, &s, pg.as_ref().map(|p| p.url.as_str())).await;
    load.wait_done(load.done() + 100, Duration::from_secs(20))
        .await;
    s.ts.kill().await;
    load.wait_done(load.done() + 200, Duration::from_secs(20))
        .await;
    s.ts.start().await;
    load.wait_done(load.done() + 100, Duration::from_secs(20))
        .await;
    let observed = load.finish().await;
    assert_eq!(observed.transport_errors, 0, "{:?}", observed.first_errors);
    assert_eq!(
        observed.status(200),
        observed.sent,
        "{:?}",
        observed.first_errors
    );
    assert!(
        metric(&s, "config_center_ledger_write_failures_total").await >= 1.0,
        "the outage never failed a ledger batch"
    );

    // 3. Every request the gateway counted reaches the model counters and
    //    the ledger.
    let sent = (sdk_ids.len() + observed.sent) as i64;
    let gw_requests = format!("metrics:ns:{NS}:total_requests");
    assert!(
        eventually(Duration::from_secs(30), || async {
            s.int(&gw_requests).await == sent
        })
        .await,
        "gateway counted {} of {sent}",
        s.int(&gw_requests).await
    );
    let counters = s
        .settle(Duration::from_secs(60), &sent, || async {
            s.model_totals(MODEL, NS).await.requests
        })
        .await;
    assert_eq!(counters, sent, "token-service accounted");
    let ledger = s
        .settle(Duration::from_secs(60), &sent, || async {
            ledger_total(&s).await["requests"].as_i64().unwrap_or(-1)
        })
        .await;
    assert_eq!(ledger, sent, "ledger rows");

    // 4. Totals equal the Redis counters exactly.
    let m = s.model_totals(MODEL, NS).await;
    let t = ledger_total(&s).await;
    assert_eq!(
        (
            t["requests"].as_i64().unwrap(),
            t["errors"].as_i64().unwrap(),
            t["prompt_tokens"].as_i64().unwrap(),
            t["completion_tokens"].as_i64().unwrap(),
            t["cost_nano_usd"].as_i64().unwrap(),
        ),
        (m.requests, m.errors, m.tokens_in, m.tokens_out, m.cost_nusd),
        "ledger {t} vs counters {m:?}"
    );
    assert_eq!(m.errors, 2);
    assert_eq!(t["cached_tokens"], report["cached"]);
    assert_eq!(t["reasoning_tokens"], report["reasoning"]);
    assert_eq!(t["estimated_requests"], 4);
    assert!(m.cost_nusd > 0);

    // 5. Exactly those requests, once each: the SDK's by id.
    let rows = s.ledger_rows(&format!("namespace={NS}")).await;
    assert_eq!(rows.len() as i64, sent);
    let ids: BTreeSet<String> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), rows.len(), "a request id appears twice");
    let missing: Vec<&String> = sdk_ids.difference(&ids).collect();
    assert!(missing.is_empty(), "SDK requests missing: {missing:?}");
    let by_key: BTreeMap<String, usize> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["key_id"].as_str().unwrap_or("none").to_string())
            .or_default() += 1;
        m
    });
    assert_eq!(by_key.get(&key2_id), Some(&8), "{by_key:?}");
    assert!(!by_key.contains_key("none"), "{by_key:?}");

    // 6. The key's own record shows its totals.
    let keys = s
        .admin(
            Method::GET,
            &format!("/api/v1/namespaces/{NS}/api-keys"),
            None,
        )
        .await;
    let k2 = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key2_id.as_str())
        .expect("key2 listed")
        .clone();
    assert_eq!(k2["usage"]["requests"], 8, "{k2}");
    let total_by_keys: i64 = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["usage"]["cost_nano_usd"].as_i64().unwrap())
        .sum();
    assert_eq!(total_by_keys, m.cost_nusd);

    // 7. Nothing left behind in the stream: a batch's entries are
    // acknowledged just after the batch is committed (the writer's next
    // step), so the rows can be visible a moment before.
    assert!(
        eventually(Duration::from_secs(30), || async {
            metric(&s, "config_center_ledger_stream_pending").await == 0.0
        })
        .await,
        "ledger entries left pending: {}",
        metric(&s, "config_center_ledger_stream_pending").await
    );
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_equals_the_counters_on_sqlite() {
    ledger_equals_the_counters(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_equals_the_counters_on_postgres() {
    ledger_equals_the_counters(Engine::Postgres).await;
}
