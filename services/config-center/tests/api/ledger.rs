//! The spend ledger: rows from the `usage:ledger` stream stored once, the
//! queries (filters, groups, cursor pages, CSV), per-key totals, bad
//! queries, a locked or cut database, retention.

use crate::both;
use crate::helpers::{Backend, Db, TestApp};
use aigw_metrics::keys;
use aigw_types::LedgerRow;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;
/// 2025-11-27T00:00:00Z.
pub(crate) const T0: i64 = 1_764_201_600_000;

pub(crate) fn row(id: &str, ms: i64, ns: &str, key: Option<&str>, model: &str) -> LedgerRow {
    LedgerRow {
        request_id: id.to_string(),
        started_at_ms: ms,
        namespace_code: ns.to_string(),
        api_key_id: key.map(str::to_string),
        model: model.to_string(),
        instance_id: Some(format!("{ns}-i0")),
        endpoint: "chat".into(),
        stream: false,
        status: 200,
        error_kind: None,
        prompt_tokens: 10,
        completion_tokens: 20,
        cached_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        estimated: false,
        cost_nano_usd: 1_000,
        duration_us: 1_500,
        ttft_us: Some(700),
    }
}

/// Appends rows to the ledger stream, one row (a JSON object) per entry.
pub(crate) async fn push_rows_to(redis: &aigw_testkit::RedisServer, rows: &[LedgerRow]) {
    let mut c = redis.conn().await;
    for chunk in rows.chunks(5_000) {
        let mut p = redis::pipe();
        for r in chunk {
            p.cmd("XADD")
                .arg(keys::LEDGER_STREAM)
                .arg("*")
                .arg(keys::LEDGER_FIELD)
                .arg(serde_json::to_string(r).unwrap())
                .ignore();
        }
        p.query_async::<()>(&mut c).await.expect("XADD");
    }
}

async fn push_rows(app: &TestApp, rows: &[LedgerRow]) {
    push_rows_to(&app.redis, rows).await;
}

async fn total(app: &TestApp, query: &str) -> Value {
    let r = app.get(&format!("/api/v1/usage{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["total"].clone()
}

/// Polls until the ledger holds `n` requests (bounded: 20 s).
async fn wait_requests(app: &TestApp, n: i64) {
    for _ in 0..200 {
        if total(app, "").await["requests"].as_i64() == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ledger never reached {n} rows: {}", total(app, "").await);
}

/// (length, pending) of the ledger stream.
async fn stream_state(app: &TestApp) -> (i64, i64) {
    let mut c = app.redis.conn().await;
    let len: i64 = redis::cmd("XLEN")
        .arg(keys::LEDGER_STREAM)
        .query_async(&mut c)
        .await
        .unwrap();
    let pending: Value = redis::cmd("XPENDING")
        .arg(keys::LEDGER_STREAM)
        .arg(keys::LEDGER_GROUP)
        .query_async::<redis::Value>(&mut c)
        .await
        .map(|v| match v {
            redis::Value::Array(a) => match a.first() {
                Some(redis::Value::Int(n)) => json!(n),
                _ => json!(0),
            },
            _ => json!(0),
        })
        .unwrap();
    (len, pending.as_i64().unwrap())
}

async fn stored_rows_land_once(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let rows: Vec<LedgerRow> = (0..30)
        .map(|i| row(&format!("r{i:02}"), T0 + i, "team-a", None, "m1"))
        .collect();
    push_rows(&app, &rows).await;
    // Redelivered rows (a lost acknowledgement) and one that is not a row.
    push_rows(&app, &rows[..5]).await;
    let mut c = app.redis.conn().await;
    // As the token-service appends them: the rows of one usage entry as a
    // JSON array in one entry (one of them a redelivery too).
    let more: Vec<LedgerRow> = (30..35)
        .map(|i| row(&format!("r{i:02}"), T0 + i, "team-a", None, "m1"))
        .chain([rows[0].clone()])
        .collect();
    let _: String = redis::cmd("XADD")
        .arg(keys::LEDGER_STREAM)
        .arg("*")
        .arg(keys::LEDGER_FIELD)
        .arg(serde_json::to_string(&more).unwrap())
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(keys::LEDGER_STREAM)
        .arg("*")
        .arg(keys::LEDGER_FIELD)
        .arg("{not a row")
        .query_async(&mut c)
        .await
        .unwrap();
    wait_requests(&app, 35).await;
    app.metrics_with(&[
        "config_center_ledger_rows_written_total 35",
        "config_center_ledger_rows_duplicate_total 6",
        "config_center_ledger_malformed_total 1",
    ])
    .await;
    // Acknowledged and deleted: nothing pending, the stream does not grow.
    for _ in 0..100 {
        if stream_state(&app).await == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stream_state(&app).await, (0, 0));
    let t = total(&app, "").await;
    assert_eq!(t["prompt_tokens"], 350);
    assert_eq!(t["cost_nano_usd"], 35_000);
    assert_eq!(t["cost_usd"], "0.000035000");
}
both!(stored_rows_land_once);

/// A varied set of rows: two namespaces, two keys (and none), two models,
/// over two days; several share a millisecond.
fn varied(key_a: &str) -> Vec<LedgerRow> {
    let mut v = Vec::new();
    for i in 0..24i64 {
        let ns = if i % 3 == 0 { "team-b" } else { "team-a" };
        let key = match (ns, i % 2) {
            ("team-a", 0) => Some(key_a),
            ("team-a", _) => None,
            _ => Some("kb-1"),
        };
        let model = if i % 4 < 2 { "m1" } else { "m2" };
        // Pairs share a millisecond; spread over 2 days and many hours.
        let ms = T0 + (i / 2) * 4 * 3_600_000 + 7;
        let mut r = row(&format!("req-{i:02}"), ms, ns, key, model);
        r.prompt_tokens = 10 + i as u64;
        r.completion_tokens = 100 + i as u64;
        r.cached_tokens = i as u64 % 5;
        r.cache_write_tokens = i as u64 % 4;
        r.reasoning_tokens = i as u64 % 3;
        r.cost_nano_usd = 1_000 * (i as u64 + 1);
        r.estimated = i % 5 == 0;
        if i % 7 == 0 {
            r.status = 502;
            r.error_kind = Some("upstream_error".into());
        }
        r.stream = i % 2 == 1;
        v.push(r);
    }
    v
}

fn sums(rows: &[&LedgerRow]) -> Value {
    let s = |f: &dyn Fn(&LedgerRow) -> u64| rows.iter().map(|r| f(r)).sum::<u64>();
    json!({
        "requests": rows.len(),
        "errors": rows.iter().filter(|r| r.status >= 400).count(),
        "prompt_tokens": s(&|r| r.prompt_tokens),
        "completion_tokens": s(&|r| r.completion_tokens),
        "cached_tokens": s(&|r| r.cached_tokens),
        "cache_write_tokens": s(&|r| r.cache_write_tokens),
        "reasoning_tokens": s(&|r| r.reasoning_tokens),
        "estimated_requests": rows.iter().filter(|r| r.estimated).count(),
        "cost_nano_usd": s(&|r| r.cost_nano_usd),
    })
}

fn only_totals(v: &Value) -> Value {
    let mut o = serde_json::Map::new();
    for k in [
        "requests",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "estimated_requests",
        "cost_nano_usd",
    ] {
        o.insert(k.into(), v[k].clone());
    }
    Value::Object(o)
}

async fn queries_filter_group_and_page(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    app.create_namespace("team-a").await;
    let k = app
        .post("/api/v1/namespaces/team-a/api-keys", json!({"name": "ci"}))
        .await;
    assert_eq!(k.status, 201, "{}", k.text);
    let key_a = k.json()["id"].as_str().unwrap().to_string();
    let rows = varied(&key_a);
    push_rows(&app, &rows).await;
    wait_requests(&app, rows.len() as i64).await;

    // Everything, and grouped by namespace and model.
    let all: Vec<&LedgerRow> = rows.iter().collect();
    assert_eq!(only_totals(&total(&app, "").await), sums(&all));
    let r = app
        .get("/api/v1/usage?group_by=namespace,model")
        .await
        .json();
    assert_eq!(r["group_by"], json!(["namespace", "model"]));
    let groups = r["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    for g in groups {
        let (ns, m) = (
            g["namespace"].as_str().unwrap(),
            g["model"].as_str().unwrap(),
        );
        let want: Vec<&LedgerRow> = rows
            .iter()
            .filter(|r| r.namespace_code == ns && r.model == m)
            .collect();
        assert_eq!(only_totals(g), sums(&want), "{ns}/{m}");
        assert!(g.get("day").is_none() && g.get("key_id").is_none(), "{g}");
    }
    // By key: requests without a key are one group with a null key_id.
    let r = app
        .get("/api/v1/usage?group_by=key&namespace=team-a")
        .await
        .json();
    let by_key: BTreeMap<String, i64> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["key_id"].as_str().unwrap_or("null").to_string(),
                g["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    let a_rows = rows.iter().filter(|r| r.namespace_code == "team-a");
    let with_key = a_rows.clone().filter(|r| r.api_key_id.is_some()).count() as i64;
    assert_eq!(
        by_key,
        BTreeMap::from([
            (key_a.clone(), with_key),
            ("null".to_string(), a_rows.count() as i64 - with_key)
        ])
    );
    // By day and hour, labelled in UTC.
    let r = app.get("/api/v1/usage?group_by=day").await.json();
    let days: Vec<(String, i64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["day"].as_str().unwrap().into(),
                g["requests"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        days,
        vec![
            ("2025-11-27".to_string(), 12),
            ("2025-11-28".to_string(), 12)
        ]
    );
    let r = app.get("/api/v1/usage?group_by=hour&model=m1").await.json();
    let first = &r["groups"][0];
    assert_eq!(first["hour"], "2025-11-27T00:00:00Z");
    assert_eq!(first["requests"], 2);

    // Filters: key, model, time window (from inclusive, to exclusive).
    let q = format!(
        "?key_id={key_a}&model=m2&from=2025-11-27T04:00:00.007Z&to=2025-11-28T04:00:00.007Z"
    );
    let want: Vec<&LedgerRow> = rows
        .iter()
        .filter(|r| {
            r.api_key_id.as_deref() == Some(key_a.as_str())
                && r.model == "m2"
                && r.started_at_ms >= T0 + 4 * 3_600_000 + 7
                && r.started_at_ms < T0 + DAY_MS + 4 * 3_600_000 + 7
        })
        .collect();
    assert!(!want.is_empty());
    assert_eq!(only_totals(&total(&app, &q).await), sums(&want));

    // Rows: newest first, ties by request id descending, pages of 5.
    let mut expected: Vec<&LedgerRow> = rows.iter().collect();
    expected
        .sort_by(|a, b| (b.started_at_ms, &b.request_id).cmp(&(a.started_at_ms, &a.request_id)));
    let mut got = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = app
            .get(&format!("/api/v1/usage/requests?limit=5&cursor={cursor}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let body = r.json();
        pages += 1;
        for it in body["items"].as_array().unwrap() {
            got.push(it.clone());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    let want_ids: Vec<&str> = expected.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, want_ids);
    // One row in full.
    let r0 = rows.iter().find(|r| r.request_id == "req-07").unwrap();
    let g0 = got.iter().find(|r| r["request_id"] == "req-07").unwrap();
    assert_eq!(
        g0,
        &json!({
            "request_id": "req-07", "time": "2025-11-27T12:00:00.007Z",
            "namespace": r0.namespace_code, "key_id": r0.api_key_id, "model": r0.model,
            "instance_id": r0.instance_id, "endpoint": "chat", "stream": true,
            "status": 502, "error_kind": "upstream_error",
            "prompt_tokens": 17, "completion_tokens": 107, "cached_tokens": 2,
            "cache_write_tokens": 3, "reasoning_tokens": 1, "estimated": false, "cost_nano_usd": 8000,
            "cost_usd": "0.000008000", "latency_ms": 1.5, "ttft_ms": 0.7
        })
    );
    // Filtered pages.
    let r = app
        .get("/api/v1/usage/requests?namespace=team-b&limit=500")
        .await
        .json();
    assert_eq!(
        r["items"].as_array().unwrap().len(),
        rows.iter().filter(|r| r.namespace_code == "team-b").count()
    );
    assert!(r["next_cursor"].is_null());

    // CSV, by parameter or by Accept header.
    let csv = app.get("/api/v1/usage?group_by=namespace&format=csv").await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert_eq!(
        lines[0],
        "namespace,requests,errors,prompt_tokens,completion_tokens,cached_tokens,\
         cache_write_tokens,reasoning_tokens,estimated_requests,cost_nano_usd,cost_usd"
    );
    assert!(lines[1].starts_with("team-a,16,"), "{}", lines[1]);
    let page = app
        .finish(
            app.raw(reqwest::Method::GET, "/api/v1/usage/requests?limit=10")
                .header("accept", "text/csv"),
        )
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.text.lines().count(), 11, "{}", page.text);
    assert!(page
        .text
        .starts_with("time,request_id,namespace,key_id,model,"));
    let next = page.header("x-next-cursor").expect("next cursor header");
    let rest = app
        .get(&format!(
            "/api/v1/usage/requests?format=csv&limit=100&cursor={next}"
        ))
        .await;
    assert_eq!(rest.text.lines().count(), 1 + rows.len() - 10);
    assert!(rest.header("x-next-cursor").is_none());

    // Per-key totals on the key's own record.
    let mine: Vec<&LedgerRow> = rows
        .iter()
        .filter(|r| r.api_key_id.as_deref() == Some(key_a.as_str()))
        .collect();
    let list = app.get("/api/v1/namespaces/team-a/api-keys").await.json();
    assert_eq!(only_totals(&list["items"][0]["usage"]), sums(&mine));
    let one = app
        .get(&format!("/api/v1/namespaces/team-a/api-keys/{key_a}"))
        .await
        .json();
    assert_eq!(only_totals(&one["usage"]), sums(&mine));
}
both!(queries_filter_group_and_page);

async fn bad_queries_are_json_400s(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    for (q, field) in [
        ("/api/v1/usage?group_by=week", "group_by"),
        ("/api/v1/usage?limit=3", "limit"),
        ("/api/v1/usage?from=yesterday", "from"),
        (
            "/api/v1/usage?from=2025-11-02T00:00:00Z&to=2025-11-01T00:00:00Z",
            "to",
        ),
        ("/api/v1/usage?namespace=Team%20A", "namespace"),
        ("/api/v1/usage/requests?limit=0", "limit"),
        ("/api/v1/usage/requests?limit=501", "limit"),
        ("/api/v1/usage/requests?cursor=abc", "cursor"),
        ("/api/v1/usage/requests?key_id=%27%20OR%201=1--", "key_id"),
        ("/api/v1/usage/requests?format=xml", "format"),
        ("/api/v1/usage/requests?model=a&model=b", "model"),
        ("/api/v1/usage/requests?group_by=day", "group_by"),
    ] {
        let r = app.get(q).await;
        let e = r.assert_error(400, "validation_error");
        assert_eq!(e["field"], field, "{q}: {}", r.text);
    }
    let r = app
        .send(reqwest::Method::GET, "/api/v1/usage", None, None)
        .await;
    r.assert_error(401, "unauthorized");
    let r = app
        .send(
            reqwest::Method::POST,
            "/api/v1/usage",
            Some(crate::helpers::TOKEN),
            None,
        )
        .await;
    r.assert_error(405, "method_not_allowed");
    // An empty ledger answers zeros, not an error.
    let t = total(&app, "?group_by=model").await;
    assert_eq!(t["requests"], 0);
}
both!(bad_queries_are_json_400s);

/// While the database refuses writes the rows wait in the stream; once it
/// is back every row lands once.
async fn rows_wait_out_a_database_outage(b: Backend) {
    let Some(app) = TestApp::spawn(b).await else {
        return;
    };
    let first: Vec<LedgerRow> = (0..20)
        .map(|i| row(&format!("a{i:02}"), T0 + i, "team-a", None, "m1"))
        .collect();
    push_rows(&app, &first).await;
    wait_requests(&app, 20).await;
    let second: Vec<LedgerRow> = (0..40)
        .map(|i| row(&format!("b{i:02}"), T0 + 100 + i, "team-a", None, "m1"))
        .collect();
    let outage = Outage::begin(&app.db).await;
    push_rows(&app, &second).await;
    // The writer fails at least once and keeps the rows pending.
    let mut failed = false;
    for _ in 0..200 {
        let m = app.metrics().await;
        let s = aigw_testkit::prom::Scrape::parse(&m);
        if s.value("config_center_ledger_write_failures_total", &[])
            .is_some_and(|v| v >= 1.0)
        {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed, "the outage never failed a batch");
    let (len, _) = stream_state(&app).await;
    assert_eq!(
        len, 40,
        "rows must stay in the stream while the database is out"
    );
    outage.end().await;
    wait_requests(&app, 60).await;
    let t = total(&app, "").await;
    assert_eq!(t["cost_nano_usd"], 60_000);
    app.metrics_with(&["config_center_ledger_rows_written_total 60"])
        .await;
}
both!(rows_wait_out_a_database_outage);

/// A database that refuses writes: SQLite locked by another connection's
/// exclusive transaction; PostgreSQL refusing new connections, every
/// existing one terminated.
enum Outage {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection, String),
}

impl Outage {
    async fn begin(db: &Db) -> Outage {
        use sqlx::{Connection, Executor};
        match db {
            Db::Sqlite { .. } => {
                let mut c = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
                c.execute("BEGIN EXCLUSIVE").await.unwrap();
                Outage::Sqlite(c)
            }
            Db::Postgres(pg) => {
                // From the server's admin database: a database cannot
                // refuse connections to the session that asks.
                let (base, name) = pg.url.rsplit_once('/').unwrap();
                let name = name.to_string();
                let mut c = sqlx::PgConnection::connect(&format!("{base}/postgres"))
                    .await
                    .unwrap();
                // The name is the test kit's own (aigw_test_<uuid>), not input.
                c.execute(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS false"#).as_str())
                    .await
                    .unwrap();
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(&name)
                .execute(&mut c)
                .await
                .unwrap();
                Outage::Postgres(c, name)
            }
        }
    }

    async fn end(self) {
        use sqlx::{Connection, Executor};
        match self {
            Outage::Sqlite(mut c) => {
                c.execute("ROLLBACK").await.unwrap();
                c.close().await.unwrap();
            }
            Outage::Postgres(mut c, name) => {
                c.execute(format!(r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS true"#).as_str())
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_rows_in_batches() {
    use config_center::ledger::Retention;
    use config_center::storage::Store;
    let Some(db) = Db::create(Backend::Sqlite).await else {
        return;
    };
    let store = Store::connect(&db.url(), 2).await.unwrap();
    let now = aigw_service::clock::now_ms();
    let mut rows = Vec::new();
    for i in 0..25 {
        rows.push(row(
            &format!("old{i:02}"),
            now - 91 * DAY_MS - i,
            "a",
            None,
            "m",
        ));
    }
    for i in 0..5 {
        rows.push(row(
            &format!("new{i}"),
            now - 89 * DAY_MS + i,
            "a",
            None,
            "m",
        ));
    }
    assert_eq!(store.insert_ledger_rows(&rows).await.unwrap(), 30);
    // Inserting again changes nothing.
    assert_eq!(store.insert_ledger_rows(&rows).await.unwrap(), 0);
    let cfg = crate::helpers::test_config(&db.url(), "redis://127.0.0.1:1")
        .ledger
        .clone();
    let cfg = config_center::config::LedgerConfig {
        retention: Duration::from_secs(90 * 86_400),
        retention_batch: 10,
        ..cfg
    };
    let retention = Retention {
        cfg,
        store: store.clone(),
        recorder: aigw_metrics::Recorder::new(aigw_metrics::RecorderConfig::for_service(
            "config-center",
        )),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    assert_eq!(retention.run_once(&cancel).await.unwrap(), 25);
    assert_eq!(retention.run_once(&cancel).await.unwrap(), 0);
    let left = store
        .usage_rows(&Default::default(), None, 100)
        .await
        .unwrap();
    let ids: Vec<&str> = left.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, vec!["new4", "new3", "new2", "new1", "new0"]);
}
