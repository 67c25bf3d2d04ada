//! The journal's failure path on a real process: when the journal's file
//! cannot grow (here the file size limit, `RLIMIT_FSIZE`; a full disk takes
//! the same path), the gateway stops journaling, says so once in its log,
//! and goes on answering and counting every request.

use crate::helpers::*;
use aigw_metrics::journal::read_segment;
use aigw_testkit::{RedisServer, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_grow_stops_and_every_request_still_counts() {
    let up = upstream("a1").await;
    let redis = RedisServer::start().await;
    let snap = one_instance(&up.base_url());
    publish(&redis, &snap).await;

    // Files of at most 256 blocks (128 or 256 KiB, by the shell's block
    // size); the signal a write beyond the limit raises is ignored, so the
    // write fails with EFBIG instead of killing the process.
    let dir = TempDir::new("journal-fsize");
    let journal = dir.path().join("journal");
    let wrapper = dir.path().join("gateway-fsize.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntrap '' XFSZ\nulimit -f 256\nexec '{}'\n",
            gateway_binary().display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (mut gw, base) = spawn_gateway_at(
        &wrapper,
        &redis,
        &[
            ("JOURNAL_DIR", journal.to_str().unwrap()),
            ("METRICS_FLUSH_INTERVAL", "1h"),
        ],
    )
    .await;

    // About 1 KB of journal per request: 600 requests need more than the
    // limit allows, and the flush interval keeps them all in one segment.
    let c = client();
    for _ in 0..600 {
        assert_eq!(chat_status(&c, &base).await, 200);
    }
    assert_eq!(gw.try_exit_code(), None, "the gateway is running");
    // One segment holds the frames; a flush with nothing to write (the
    // one at start, unless a request came first) left the next one
    // prepared, without frames.
    let segments: Vec<(usize, u64)> = std::fs::read_dir(&journal)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "journal"))
        .map(|e| {
            let data = std::fs::read(e.path()).unwrap();
            (read_segment(&data).frames, data.len() as u64)
        })
        .collect();
    let with_frames = segments.iter().filter(|s| s.0 > 0).count();
    assert_eq!(with_frames, 1, "{segments:?}");
    assert!(segments.len() <= 2, "{segments:?}");
    assert!(segments.iter().all(|s| s.1 <= 256 * 1024), "{segments:?}");
    eventually("the journal's failure in the log", || async {
        gw.logs()
            .contains("journal write failed; entries are kept in memory only")
    })
    .await;
    assert_eq!(
        gw.logs().matches("journal write failed").count(),
        1,
        "said once"
    );

    // Every request counts: a graceful stop flushes them all.
    assert_eq!(
        gw.terminate(std::time::Duration::from_secs(20)).await,
        Some(0)
    );
    assert_eq!(redis.get_i64("metrics:global:total_requests").await, 600);
    assert_eq!(redis.get_i64("metrics:ns:team-a:total_requests").await, 600);
}
