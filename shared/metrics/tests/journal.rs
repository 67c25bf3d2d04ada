//! The journal against a real Redis: what a recorder committed and had not
//! seen confirmed is replayed exactly once after the process is gone (also
//! after a flush that Redis applied but whose segment was not deleted yet),
//! a torn or damaged frame loses only itself, and a live replica's journal
//! is never replayed.

use aigw_metrics::families::gateway::{Namespace, NsStatus, NS_LATENCY, NS_REQUESTS, NS_STATUS};
use aigw_metrics::journal::read_segment;
use aigw_metrics::replay::{replay_dir, ReplayReport};
use aigw_metrics::{Heartbeat, JournalConfig, Recorder, RecorderConfig};
use aigw_testkit::{RedisServer, TempDir};
use redis::AsyncCommands;
use std::path::{Path, PathBuf};

const NS: Namespace<'static> = Namespace {
    namespace_code: "j",
};

fn journaled(dir: &Path) -> Recorder {
    Recorder::with_journal(
        RecorderConfig::for_service("jt"),
        &JournalConfig {
            dir: dir.to_path_buf(),
            max_bytes: 64 * 1024 * 1024,
        },
    )
    .unwrap()
}

/// One request's worth: a counter, a status counter, a histogram
/// observation and a usage record, as one entry.
fn request(rec: &Recorder, i: usize) {
    let requests = NS_REQUESTS.series(rec, &NS);
    let status = NS_STATUS.series(
        rec,
        &NsStatus {
            namespace_code: "j",
            status_code: "200",
        },
    );
    let latency = NS_LATENCY.series(rec, &NS);
    let mut e = rec.entry();
    e.inc(&requests);
    e.inc(&status);
    e.observe(&latency, 1000 + i as u64);
    e.record(format!(r#"{{"id":"r{i}"}}"#));
    assert_eq!(e.commit(), 0);
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .collect();
    v.sort();
    v
}

/// A segment's bytes up to the end of its last frame: the file is extended
/// with zeros ahead of the frames (every frame here ends with its record's
/// `}`, so no frame loses a byte).
fn written(seg: &Path) -> Vec<u8> {
    let mut data = std::fs::read(seg).unwrap();
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    data.truncate(end);
    data
}

/// Every record id in the usage stream, in order.
async fn stream_ids(redis: &RedisServer) -> Vec<String> {
    let mut c = redis.conn().await;
    let entries: redis::streams::StreamRangeReply = c
        .xrange_all(aigw_metrics::keys::USAGE_STREAM)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for e in entries.ids {
        let payload: String = e.get(aigw_metrics::keys::USAGE_FIELD).unwrap();
        let v: Vec<serde_json::Value> = serde_json::from_str(&payload).unwrap();
        ids.extend(v.iter().map(|r| r["id"].as_str().unwrap().to_string()));
    }
    ids
}

async fn replay(dir: &Path, redis: &RedisServer) -> ReplayReport {
    let mut c = redis.conn().await;
    replay_dir(dir, "survivor", &RecorderConfig::for_service("jt"), &mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_recorders_journal_is_replayed_exactly_once() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-replay");
    let rec = journaled(dir.path());
    let mut c = redis.conn().await;

    // Flush 1 applied and its segment deleted.
    for i in 0..10 {
        request(&rec, i);
    }
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 1, "only the open segment");

    // Flush 2 applied, but the process "dies" before deleting its segment:
    // the segment is put back as it was.
    for i in 10..15 {
        request(&rec, i);
    }
    let open = segments(dir.path())[0].clone();
    let kept = std::fs::read(&open).unwrap();
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    std::fs::write(&open, kept).unwrap();

    // Committed, never flushed.
    for i in 15..22 {
        request(&rec, i);
    }
    // While the recorder lives, its journal is not someone else's to replay.
    assert_eq!(replay(dir.path(), &redis).await.replicas.len(), 0);
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 15);

    // The process dies: no final flush, the lock goes with it.
    drop(rec);
    let report = replay(dir.path(), &redis).await;
    assert_eq!(report.replicas.len(), 1, "{report:?}");
    assert_eq!(report.segments, 2, "{report:?}");
    assert_eq!(report.frames, 5 + 7, "{report:?}");
    assert_eq!(
        report.applied, 1,
        "flush 2 was not applied twice: {report:?}"
    );
    assert_eq!(report.skipped_bytes, 0);

    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 22);
    assert_eq!(redis.get_i64("metrics:ns:j:status:200").await, 22);
    let count: i64 = c.hget("metrics:ns:j:latency_us", "count").await.unwrap();
    assert_eq!(count, 22);
    let ids = stream_ids(&redis).await;
    let want: Vec<String> = (0..22).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, want, "every record once, in order");
    // Nothing left to replay.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    assert_eq!(replay(dir.path(), &redis).await, ReplayReport::default());
}

#[tokio::test]
async fn a_torn_tail_and_a_damaged_frame_lose_only_themselves() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-torn");
    let rec = journaled(dir.path());
    for i in 0..6 {
        request(&rec, i);
    }
    drop(rec);
    let seg = segments(dir.path()).remove(0);
    // Records may carry prompt text: the service's user alone reads them.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&seg).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let mut data = written(&seg);
    let intact = read_segment(&data);
    assert_eq!(intact.frames, 6);
    assert_eq!(intact.skipped_bytes, 0);
    let frame_len = (data.len() - 8) / 6;

    // A bit flipped in the third frame's payload, and a seventh frame cut
    // short by a SIGKILL in the middle of its write.
    data[8 + 2 * frame_len + 20] ^= 0x40;
    let torn = data[8..8 + frame_len / 2].to_vec();
    data.extend_from_slice(&torn);
    std::fs::write(&seg, &data).unwrap();

    let report = replay(dir.path(), &redis).await;
    assert_eq!(report.frames, 5, "{report:?}");
    assert_eq!(
        report.skipped_bytes,
        frame_len + frame_len / 2,
        "{report:?}"
    );
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 5);
    let ids = stream_ids(&redis).await;
    assert_eq!(ids, ["r0", "r1", "r3", "r4", "r5"]);
}

#[test]
fn a_segment_cut_anywhere_reads_its_whole_frames_and_never_panics() {
    let dir = TempDir::new("journal-cut");
    let rec = journaled(dir.path());
    for i in 0..3 {
        request(&rec, i);
    }
    let data = written(&segments(dir.path())[0]);
    let frame_len = (data.len() - 8) / 3;
    for cut in 0..=data.len() {
        let r = read_segment(&data[..cut]);
        let whole = cut.saturating_sub(8) / frame_len;
        let torn = if cut < 8 { cut } else { (cut - 8) % frame_len };
        assert_eq!((r.frames, r.skipped_bytes), (whole, torn), "cut at {cut}");
    }
    // Garbage never panics.
    let mut noise = data.clone();
    for (i, b) in noise.iter_mut().enumerate() {
        *b = b.wrapping_mul(31).wrapping_add(i as u8);
    }
    let _ = read_segment(&noise);
}

#[tokio::test]
async fn a_full_segment_stops_journaling_and_everything_still_counts() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-full");
    let rec = Recorder::with_journal(
        RecorderConfig::for_service("jt"),
        &JournalConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 1024,
        },
    )
    .unwrap();
    for i in 0..10 {
        request(&rec, i);
    }
    let frame = read_segment(&std::fs::read(&segments(dir.path())[0]).unwrap());
    assert!(frame.frames >= 1 && frame.frames < 10, "{frame:?}");
    assert_eq!(rec.journal_skipped(), 10 - frame.frames as u64);
    // In memory, all ten count.
    let mut c = redis.conn().await;
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 10);
}

#[test]
fn the_unwritten_end_of_a_segment_is_not_damage_and_a_frame_cut_mid_copy_is() {
    let dir = TempDir::new("journal-tail");
    let rec = journaled(dir.path());
    for i in 0..3 {
        request(&rec, i);
    }
    let seg = segments(dir.path()).remove(0);
    let file = std::fs::read(&seg).unwrap();
    let data = written(&seg);
    // The file was extended ahead of the frames, by whole pages.
    assert!(file.len() > data.len(), "{} {}", file.len(), data.len());
    assert_eq!(file.len() % 4096, 0);
    let r = read_segment(&file);
    assert_eq!((r.frames, r.skipped_bytes), (3, 0));

    // A fourth frame cut short by a SIGKILL in the middle of its copy: the
    // bytes after it were never written.
    let frame_len = (data.len() - 8) / 3;
    let mut cut = data.clone();
    cut.extend_from_slice(&data[8..8 + frame_len / 2]);
    cut.resize(file.len(), 0);
    let r = read_segment(&cut);
    assert_eq!(r.frames, 3);
    assert_eq!(r.skipped_bytes, file.len() - data.len());
    drop(rec);
}

#[tokio::test]
async fn frames_across_many_extensions_and_larger_than_one_are_all_replayed() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-grow");
    let rec = journaled(dir.path());
    // 300 frames of about 1 KiB cross every extension size (16 KiB
    // doubling to 1 MiB), and one frame of 3 MiB is larger than any.
    interval(&rec, 0..150);
    padded(&rec, 150, &"y".repeat(3 << 20));
    interval(&rec, 151..301);
    assert_eq!(rec.journal_skipped(), 0);
    let seg = segments(dir.path()).remove(0);
    let r = read_segment(&std::fs::read(&seg).unwrap());
    assert_eq!((r.frames, r.skipped_bytes), (301, 0));
    assert_eq!(file_len(&seg) % 4096, 0);

    drop(rec);
    let report = replay(dir.path(), &redis).await;
    assert_eq!(
        (report.frames, report.skipped_bytes),
        (301, 0),
        "{report:?}"
    );
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 301);
    let ids = stream_ids(&redis).await;
    let want: Vec<String> = (0..301).map(|i| format!("r{i}")).collect();
    assert_eq!(ids, want);
}

fn file_len(p: &Path) -> usize {
    std::fs::metadata(p).unwrap().len() as usize
}

/// One entry: a request counted and record `r{i}` carrying `pad`.
fn padded(rec: &Recorder, i: usize, pad: &str) {
    let requests = NS_REQUESTS.series(rec, &NS);
    let mut e = rec.entry();
    e.inc(&requests);
    e.record(format!(r#"{{"id":"r{i}","pad":"{pad}"}}"#));
    assert_eq!(e.commit(), 0);
}

/// Entries of about 1 KiB each, ids `r{i}` for `i` in `ids`.
fn interval(rec: &Recorder, ids: std::ops::Range<usize>) {
    let pad = "x".repeat(1000);
    for i in ids {
        padded(rec, i, &pad);
    }
}

#[tokio::test]
async fn the_segment_after_a_flush_is_ready_for_an_interval_like_the_last() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-prepared");
    let rec = journaled(dir.path());
    let mut c = redis.conn().await;
    interval(&rec, 0..300);
    let first = segments(dir.path()).remove(0);
    let first_written = written(&first).len();
    assert!(first_written > 300_000, "{first_written}");
    rec.flush(&mut c, Heartbeat::None).await.unwrap();

    // The flushed segment is gone; the next one was sized before the
    // rotation, so the same traffic again does not extend its file.
    let open = segments(dir.path());
    assert_eq!(open.len(), 1, "{open:?}");
    let ready = file_len(&open[0]);
    assert!(ready >= first_written, "{ready} < {first_written}");
    interval(&rec, 300..600);
    assert_eq!(file_len(&open[0]), ready, "the entries extended the file");
    let r = read_segment(&std::fs::read(&open[0]).unwrap());
    assert_eq!((r.frames, r.skipped_bytes), (300, 0));

    drop(rec);
    let report = replay(dir.path(), &redis).await;
    assert_eq!((report.frames, report.applied), (300, 1), "{report:?}");
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 600);
    let want: Vec<String> = (0..600).map(|i| format!("r{i}")).collect();
    assert_eq!(stream_ids(&redis).await, want);
}

#[tokio::test]
async fn a_prepared_segment_left_by_a_crash_replays_as_nothing() {
    let redis = RedisServer::start().await;
    let dir = TempDir::new("journal-prepared-crash");
    let rec = journaled(dir.path());
    let mut c = redis.conn().await;
    // A flush with nothing to write prepares the next segment and keeps it.
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    // A flush whose changes made no frame (a counter added outside an
    // entry): the empty segment gives way to the prepared one.
    NS_REQUESTS.series(&rec, &NS).add(5);
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    let open = segments(dir.path());
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(
        open[0].to_str().unwrap().ends_with(".2.journal"),
        "{open:?}"
    );
    // An idle flush prepares segment 3; entries go to segment 2; the
    // process dies with both files there.
    rec.flush(&mut c, Heartbeat::None).await.unwrap();
    assert_eq!(segments(dir.path()).len(), 2);
    for i in 0..7 {
        request(&rec, i);
    }
    drop(rec);
    let report = replay(dir.path(), &redis).await;
    assert_eq!(report.segments, 2, "{report:?}");
    assert_eq!((report.frames, report.applied), (7, 1), "{report:?}");
    assert_eq!(redis.get_i64("metrics:ns:j:total_requests").await, 5 + 7);
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
