//! Replaying the journals of replicas that are gone (see
//! [`crate::journal`]): each segment's frames are recorded again in a
//! recorder carrying the dead replica's id and flushed under the segment's
//! flush id, so a flush the dead replica had already applied is recognised
//! by its exactly-once marker.

use crate::family::{Family, Kind};
use crate::journal::{lock_path, open_lock, parse_segment_name, read_segment, try_lock, Item};
use crate::journal::{TAG_ADD, TAG_OBSERVE, TAG_RAISE};
use crate::ops::Heartbeat;
use crate::recorder::{Recorder, RecorderConfig};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// What [`replay_dir`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Replicas whose journal was replayed (their lock was free).
    pub replicas: Vec<String>,
    pub segments: usize,
    pub frames: usize,
    /// Flushes that Redis applied now (the others had been applied before).
    pub applied: usize,
    pub skipped_bytes: usize,
}

/// Replays every journal in `dir` whose replica is gone (its lock is free),
/// except `own`'s: each segment is flushed under the dead replica's id and
/// the segment's flush id, then deleted. `template` gives the stream and
/// record settings. Stops at the first Redis error (the files stay for the
/// next attempt).
pub async fn replay_dir<C: crate::conn::Placement>(
    dir: &Path,
    own: &str,
    template: &RecorderConfig,
    conn: &mut C,
) -> redis::RedisResult<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut by_replica: BTreeMap<String, Vec<(u64, PathBuf)>> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(io_err(e)),
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((replica, seq)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        if replica != own {
            by_replica
                .entry(replica.to_string())
                .or_default()
                .push((seq, e.path()));
        }
    }
    for (replica, mut segments) in by_replica {
        let lock_file = lock_path(dir, &replica);
        let lock = open_lock(&lock_file).map_err(io_err)?;
        if !try_lock(&lock).map_err(io_err)? {
            continue; // alive
        }
        segments.sort();
        for (seq, path) in segments {
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(e)),
            };
            let read = read_segment(&data);
            if read.skipped_bytes > 0 {
                tracing::warn!(
                    replica = %replica,
                    seq,
                    skipped_bytes = read.skipped_bytes,
                    "journal segment has a damaged or torn part; replaying its intact frames"
                );
            }
            let rec = Recorder::new(RecorderConfig {
                replica: replica.clone(),
                ..template.clone()
            });
            rec.set_next_seq(seq);
            apply_items(&rec, read.items);
            if matches!(
                rec.flush(conn, Heartbeat::None).await?,
                crate::FlushOutcome::Applied { .. }
            ) {
                report.applied += 1;
            }
            report.segments += 1;
            report.frames += read.frames;
            report.skipped_bytes += read.skipped_bytes;
            let _ = std::fs::remove_file(&path);
        }
        tracing::info!(replica = %replica, "replayed the journal of a replica that is gone");
        let _ = std::fs::remove_file(&lock_file);
        report.replicas.push(replica);
    }
    Ok(report)
}

fn io_err(e: io::Error) -> redis::RedisError {
    redis::RedisError::from(e)
}

/// Records decoded items into `rec`'s cells and record queue.
fn apply_items(rec: &Recorder, items: Vec<Item>) {
    let families = crate::families::all();
    for item in items {
        let (tag, family, labels, v) = match item {
            Item::Record(json) => {
                rec.push_record(json);
                continue;
            }
            Item::Add { family, labels, v } => (TAG_ADD, family, labels, v as u64),
            Item::Raise { family, labels, v } => (TAG_RAISE, family, labels, v as u64),
            Item::Observe { family, labels, v } => (TAG_OBSERVE, family, labels, v),
        };
        let Some(f) = families.iter().copied().find(|f| f.name == family) else {
            tracing::warn!(family = %family, "journal names an unknown metric family; skipped");
            continue;
        };
        let s = series(rec, f, &labels);
        match tag {
            TAG_ADD => s.add(v as i64),
            TAG_RAISE => s.set(v as i64),
            _ if matches!(f.kind, Kind::Histogram(_)) => s.observe(v),
            _ => {}
        }
    }
}

fn series(rec: &Recorder, f: &'static Family, labels: &[String]) -> crate::recorder::Series {
    let l: Vec<&str> = labels.iter().map(String::as_str).collect();
    rec.series(f, &l)
}
