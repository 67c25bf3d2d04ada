//! Inputs that break or stall tiktoken: whitespace runs past a million
//! characters (tiktoken's regex overflows and panics) and multi-megabyte
//! single-letter runs (seconds of work each). The service must count them
//! right and keep answering meanwhile.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use token_service::tokenize::reference::ReferenceEncoder;
use token_service::tokenize::Encoding;

const EIGHT_MIB: usize = 8 * 1024 * 1024;

async fn in_flight(app: &TestApp) -> f64 {
    sample(
        &app.metrics().await,
        "token_service_count_jobs_in_flight",
        &[],
    )
    .expect("in-flight gauge")
}

/// Four 8 MiB single-letter requests (two counted at a time, two queued):
/// each count equals Python tiktoken's, and `/health` answers while they
/// are being counted.
#[tokio::test]
async fn eight_mib_letter_runs_are_exact_and_health_answers_meanwhile() {
    let app = TestApp::spawn_with(|c| {
        c.count_concurrency = 2;
        // The test watches the in-flight gauge move: every scrape renders.
        c.metrics_cache_ttl = Duration::ZERO;
        // An 8 MiB text plus its JSON envelope.
        c.max_body_bytes = 9 * 1024 * 1024;
    })
    .await;
    let text = "a".repeat(EIGHT_MIB);
    let mut tasks = Vec::new();
    for e in ["o200k_base", "cl100k_base", "p50k_base", "r50k_base"] {
        let body = json!({"encoding": e, "text": text}).to_string();
        let (client, url) = (app.client.clone(), format!("{}/v1/tokens/count", app.base));
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).body(body).send().await.expect("send");
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.expect("json");
            (e, status, v)
        }));
    }
    // Wait until at least two jobs are queued or running on the pool…
    wait_for(
        Duration::from_secs(60),
        "two counting jobs in flight",
        || async { in_flight(&app).await >= 2.0 },
    )
    .await;
    // …then the health check answers while counting is still going on.
    let (s, body) = app.get("/health").await;
    assert_eq!((s, body.as_str()), (200, "{\"status\":\"ok\"}"));
    assert!(
        in_flight(&app).await >= 1.0,
        "counting finished before /health was checked: the test proved nothing"
    );
    for t in tasks {
        let (e, status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{e}: {v}");
        assert_eq!(v["tokens"], python_count(e, "a", EIGHT_MIB, ""), "{e}");
    }
    assert_eq!(in_flight(&app).await, 0.0);
    app.stop().await;
}

/// Whitespace runs past tiktoken's limit (Python tiktoken panics at about
/// one million characters, so there is no reference count from it): every
/// encoding's count through the API equals the independent reference
/// implementation (tiktoken's merge algorithm on tiktoken-rs's rank tables),
/// which itself matches Python on runs up to 900,000 characters.
#[tokio::test]
async fn whitespace_runs_past_a_million_are_exact() {
    let app = TestApp::spawn_with(|c| c.count_concurrency = 2).await;
    let texts = [" ".repeat(1_100_000) + "x", "\n \t".repeat(400_000) + "y"];
    // The reference on the same texts, in the background (it is slower).
    let reference = tokio::task::spawn_blocking({
        let texts = texts.clone();
        move || {
            let mut out = Vec::new();
            for e in Encoding::ALL {
                let r = ReferenceEncoder::new(e).unwrap();
                for t in &texts {
                    out.push((e, r.count(t) as u64));
                }
            }
            out
        }
    });
    let mut got = Vec::new();
    for e in Encoding::ALL {
        for t in &texts {
            got.push((e, app.count(e.name(), t).await));
        }
    }
    let (s, _) = app.get("/health").await;
    assert_eq!(s, 200);
    assert_eq!(got, reference.await.unwrap());
    // Sanity of the reference itself near the limit: Python's counts.
    let r = ReferenceEncoder::new(Encoding::O200kBase).unwrap();
    assert_eq!(
        r.count(&(" ".repeat(900_000) + "x")) as u64,
        python_count("o200k_base", " ", 900_000, "x")
    );
    app.stop().await;
}
