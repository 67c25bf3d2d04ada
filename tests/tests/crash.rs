//! A gateway killed with SIGKILL in the middle of load (sixteen clients,
//! half of them streaming), then restarted on the same `JOURNAL_DIR` (or
//! not restarted, with a second gateway sharing the directory): the
//! restarted gateway (or the survivor) replays the dead one's journal
//! through the exactly-once flush markers, and the Redis counters and the
//! usage records that reach the token-service account for every answer a
//! client received.
//!
//! The rule: an answer a client received completely (a 200 whose body was
//! read to its end; for a stream, through `data: [DONE]`) is counted
//! exactly once. A request the kill cut off may or may not be counted (it is
//! when it was accounted before the process died: its last chunk was on its
//! way), at most once. So `complete ≤ counted ≤ complete + cut off`, every
//! counted request is a 200 in every counter, and each has its usage
//! record at the token-service.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

use aigw_e2e::load::{chat_body, Load, Observed, COMPLETION_TOKENS, PROMPT_TOKENS};
use aigw_e2e::report::report;
use aigw_e2e::stack::{Stack, StackOptions};
use aigw_e2e::wait::eventually;
use aigw_testkit::TempDir;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

const MODEL: &str = "m";
const NS: &str = "crash";

/// Answers the client received completely, requests in flight at the
/// kill that did not get theirs (cut off), and requests sent after it.
fn outcomes(seen: &Observed, killed_at: Instant) -> (i64, i64, i64) {
    let (mut complete, mut cut, mut after) = (0, 0, 0);
    for o in &seen.outcomes {
        if o.status == Some(200)
            && o.error.is_none()
            && (!o.body.starts_with("data:") || o.stream_done())
        {
            complete += 1;
        } else if o.started <= killed_at {
            cut += 1;
        } else {
            after += 1;
        }
    }
    (complete, cut, after)
}

/// What one run saw.
struct Run {
    complete: i64,
    cut: i64,
    /// Sent after the kill (refused).
    after: i64,
    /// Counted in Redis before the journal's replay.
    before: i64,
    /// Counted in the end.
    counted: i64,
}

impl Run {
    fn report(&self, fault: &str) {
        report(
            fault,
            &format!(
                "{} chat requests (1/2 streamed) from 16 clients before the kill: {} answered completely, {} in flight and cut off by it ({} sent after it, refused)",
                self.complete + self.cut,
                self.complete,
                self.cut,
                self.after
            ),
            &format!(
                "answered requests lost 0 ({} counted before the journal's replay, {} after it); counted twice 0; usage records missing 0",
                self.before, self.counted
            ),
        );
    }
}

/// Who replays the killed gateway's journal.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replayer {
    /// The killed gateway, restarted on the same directory.
    Restarted,
    /// The other gateways of a fleet sharing the directory, running
    /// throughout; the load goes through all of them or only the killed one.
    Survivors { gateways: usize, load_all: bool },
}

/// Runs the load, kills gateway 0 after `answered` answers, lets its
/// journal be replayed and checks the rule.
async fn killed_mid_load(flush: &str, answered: usize, replayer: Replayer) -> Run {
    let journal = TempDir::new("crash-journal");
    let mut s = Stack::start(StackOptions {
        gateways: match replayer {
            Replayer::Restarted => 1,
            Replayer::Survivors { gateways, .. } => gateways,
        },
        gateway_env: vec![
            ("JOURNAL_DIR".into(), journal.path().display().to_string()),
            ("METRICS_FLUSH_INTERVAL".into(), flush.into()),
        ],
        ..StackOptions::default()
    })
    .await;
    let key = s.world(NS, MODEL, json!({})).await;

    // Streams of five chunks 2 ms apart and whole answers after 5 ms: the
    // kill finds requests at every stage.
    let urls = match replayer {
        Replayer::Survivors { load_all: true, .. } => {
            (0..s.gateways.len()).map(|i| s.gw(i)).collect()
        }
        _ => vec![s.gw(0)],
    };
    let load = Load::start(
        s.http.clone(),
        urls,
        key,
        16,
        usize::MAX,
        Duration::ZERO,
        |i| {
            if i % 2 == 0 {
                chat_body(MODEL, true, Some(json!({"chunk_delay_ms": 2})))
            } else {
                chat_body(MODEL, false, Some(json!({"latency_ms": 5})))
            }
        },
    );
    load.wait_done(answered, Duration::from_secs(60)).await;
    let killed_at = Instant::now();
    s.gateways[0].kill().await;
    let seen = load.finish().await;
    let (complete, cut, after) = outcomes(&seen, killed_at);
    assert!(
        complete >= answered as i64 / 2,
        "{:?} {:?}",
        seen.by_status,
        seen.first_errors
    );
    let streamed = seen
        .outcomes
        .iter()
        .filter(|o| o.status == Some(200) && o.stream_done())
        .count();
    assert!(streamed > 0, "streams were answered too");
    let before = s.int(&format!("metrics:ns:{NS}:total_requests")).await;

    // The restarted gateway (a new replica id) replays the dead one's
    // journal before its first flush; a survivor finds it within its
    // periodic scan (10 s).
    if replayer == Replayer::Restarted {
        s.gateways[0].start().await;
    }
    let counted_ok = eventually(Duration::from_secs(30), || async {
        let c = s.gateway_counts(NS, &[200]).await;
        let m = s.model_totals(MODEL, NS).await;
        c.ns_requests >= complete
            && m.requests == c.ns_requests
            && s.int("metrics:token_service:usage_records_processed").await == c.ns_requests
    })
    .await;
    let c = s.gateway_counts(NS, &[200]).await;
    let m = s.model_totals(MODEL, NS).await;
    assert!(
        counted_ok,
        "complete {complete}, cut off {cut}, counted before the replay {before}: {c:?} {m:?}"
    );
    // Settled: a few more flushes change nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.gateway_counts(NS, &[200]).await, c);
    assert_eq!(s.model_totals(MODEL, NS).await, m);

    let counted = c.ns_requests;
    assert!(
        (complete..=complete + cut).contains(&counted),
        "complete {complete}, cut off {cut}, counted {counted}"
    );
    assert_eq!(c.global_requests, counted);
    assert_eq!(c.ns_successful, counted);
    assert_eq!(c.by_status[&200], counted);
    assert_eq!((c.global_errors, c.ns_failed), (0, 0));
    assert_eq!(
        (m.requests, m.errors, m.tokens_in, m.tokens_out),
        (
            counted,
            0,
            counted * PROMPT_TOKENS,
            counted * COMPLETION_TOKENS
        )
    );
    let latency_count = {
        let mut conn = s.redis.conn().await;
        let n: i64 = redis::cmd("HGET")
            .arg(format!("metrics:ns:{NS}:latency_us"))
            .arg("count")
            .query_async(&mut conn)
            .await
            .unwrap();
        n
    };
    assert_eq!(latency_count, counted);

    // A live gateway replayed the dead replica's journal, which is gone;
    // the live replicas' own journals remain.
    let live: Vec<usize> = (0..s.gateways.len())
        .filter(|i| s.gateways[*i].proc.is_some())
        .collect();
    // The counts can be whole before the scan ran (the kill may find
    // nothing unflushed): the survivors' scan comes within 10 s.
    assert!(
        eventually(Duration::from_secs(15), || async {
            live.iter().any(|i| {
                s.gateways[*i]
                    .logs()
                    .contains("journals of stopped replicas replayed")
            })
        })
        .await,
        "no replay logged"
    );
    let files: Vec<String> = std::fs::read_dir(journal.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let replicas: std::collections::BTreeSet<&str> =
        files.iter().map(|f| f.split('.').next().unwrap()).collect();
    assert_eq!(replicas.len(), live.len(), "{files:?}");
    Run {
        complete,
        cut,
        after,
        before,
        counted,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_load_loses_no_answered_request() {
    // Flushes every 100 ms: the kill lands among flushes applied, in flight
    // and not yet built.
    let run = killed_mid_load("100ms", 600, Replayer::Restarted).await;
    run.report("gateway SIGKILLed under load (flushing every 100 ms), restarted on its journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_never_flushed_is_counted_from_its_journal_alone() {
    // The first flush comes at start, before any request; the next after an
    // hour: every count comes from the journal.
    let run = killed_mid_load("1h", 300, Replayer::Restarted).await;
    assert_eq!(run.before, 0);
    assert!(run.counted >= 150, "{}", run.counted);
    run.report("gateway SIGKILLed under load before its first flush, restarted on its journal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surviving_gateway_replays_a_dead_replicas_journal_from_a_shared_directory() {
    // Nothing flushed before the kill (an hour's interval): every count
    // comes from the survivor's replay.
    let run = killed_mid_load(
        "1h",
        300,
        Replayer::Survivors {
            gateways: 2,
            load_all: false,
        },
    )
    .await;
    assert_eq!(run.before, 0);
    assert!(run.counted >= 150, "{}", run.counted);
    run.report(
        "one of two gateways sharing a journal directory SIGKILLed under load before its first flush, not restarted",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_three_gateways_killed_mid_load_loses_no_answered_request() {
    // Load through all three; the survivors keep answering and flushing
    // (every 100 ms) while one of them replays the dead one's journal.
    let run = killed_mid_load(
        "100ms",
        600,
        Replayer::Survivors {
            gateways: 3,
            load_all: true,
        },
    )
    .await;
    run.report("one of three gateways sharing a journal directory SIGKILLed under load through all three, not restarted");
}
