//! The local journal of the batched writer: what a process recorded and has
//! not yet seen confirmed by Redis survives a SIGKILL of that process.
//!
//! # Files
//! A replica writes into `JOURNAL_DIR`:
//! - `{replica}.lock`: held with an exclusive `flock` for the life of the
//!   process; the kernel releases it when the process dies, which is how a
//!   replayer tells a dead replica's journal from a live one's.
//! - `{replica}.{seq}.journal`: a segment. Its frames are the entries
//!   committed ([`crate::recorder::Entry`]) while `seq` was the writer's next
//!   flush id, so they are exactly the deltas that flush `seq` carries: the
//!   recorder drains its cells, takes the flush id and starts the next
//!   segment under one exclusive lock, while each entry applies its deltas
//!   and appends its frame under the shared side of the same lock. A segment
//!   without frames is renamed to the next id instead; a file named `seq`
//!   therefore says that every flush id below `seq` may have been sent.
//!
//! A segment is deleted once Redis confirmed its flush; normally a replica
//! has two: the one whose flush is in flight and the one being written
//! (and, between a flush's start and its rotation, or after a flush with
//! nothing to write, the next one, prepared ahead).
//!
//! # Frames
//! `"AGJ1"`, payload length (u32 LE), CRC-32 of the payload (u32 LE),
//! payload: items, each a tag byte — 1 counter add, 2 max raise, 3 histogram
//! observation (family name, label values, 8-byte value), 4 usage record
//! (JSON).
//!
//! # Writing
//! A segment's file is mapped shared (`MAP_SHARED`) for its whole bound and
//! a frame is copied into the mapping behind the previous one: the mapping's
//! pages are the kernel's page cache pages of the file, so once the copy is
//! done the frame survives a crash of the process without a system call per
//! frame. There is no fsync (a host crash can lose what the kernel had not
//! written back yet). The file is extended ahead of the frames by writing
//! zeros, so the file system has allocated the blocks under a page before a
//! frame touches it: a full disk fails that `write(2)` (the journal stops,
//! the entries still count in memory) instead of faulting the process. The
//! unwritten rest reads as zeros and is not taken for damage.
//!
//! The flusher prepares the next segment before it takes the exclusive
//! lock ([`Journal::prepare`]): the file is created and extended to about
//! what the current segment holds, so in steady traffic the entries of a
//! flush interval never extend the file themselves (an extension holds the
//! segment's mutex while it writes). When they outgrow it, the file is
//! extended by the entry that crosses its end (16 KiB, doubling up to
//! 1 MiB at a time). When the next segment is prepared and long enough
//! already (an idle interval), the flusher hands no work to a blocking
//! thread ([`Journal::is_prepared`]). A prepared segment holds no frames;
//! left behind by a crash, it replays as nothing.
//!
//! A frame cut short by a SIGKILL mid-copy, or damaged, fails its length
//! or checksum: the reader skips to the next frame marker and counts the
//! bytes skipped.
//!
//! # Replay
//! [`crate::replay::replay_dir`] finds segments of replicas whose lock is free, rebuilds
//! each segment's deltas in a recorder carrying the dead replica's id and
//! flushes it under the segment's flush id: a flush the dead replica had
//! already applied is recognised by its exactly-once marker and not applied
//! again. Segments are deleted once confirmed.
//!
//! # Bounds
//! A segment stops taking frames at `max_bytes` (entries beyond it are
//! counted and kept in memory only, as without a journal); that happens only
//! while Redis is unreachable for long, since segments rotate every flush.

use crate::family::Family;
use memmap2::{Advice, MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

/// Where a recorder keeps its journal.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    pub dir: PathBuf,
    /// Largest segment; frames beyond it are not journaled.
    pub max_bytes: u64,
}

/// Default bound of one segment (`JOURNAL_MAX_BYTES`).
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

const FILE_MAGIC: &[u8; 8] = b"AIGWJ001";
const FRAME_MAGIC: &[u8; 4] = b"AGJ1";
const FRAME_HEAD: usize = 12;
/// A segment file's first extension; each next one doubles, up to [`GROW`].
const FIRST_GROW: usize = 16 * 1024;
/// The largest extension of a segment file.
const GROW: usize = 1024 * 1024;
/// Extensions end on a page boundary (4 KiB or a multiple of it).
const PAGE: usize = 4096;
/// The most a segment is prepared for ahead of its frames.
const MAX_PREPARED: usize = 64 * 1024 * 1024;
/// What an extension writes.
static ZEROS: [u8; GROW] = [0; GROW];
/// Larger frames are taken for damage.
const MAX_FRAME: usize = 64 * 1024 * 1024;
const EXT: &str = "journal";

pub(crate) const TAG_ADD: u8 = 1;
pub(crate) const TAG_RAISE: u8 = 2;
pub(crate) const TAG_OBSERVE: u8 = 3;
pub(crate) const TAG_RECORD: u8 = 4;

pub(crate) fn segment_path(dir: &Path, replica: &str, seq: u64) -> PathBuf {
    dir.join(format!("{replica}.{seq}.{EXT}"))
}

pub(crate) fn lock_path(dir: &Path, replica: &str) -> PathBuf {
    dir.join(format!("{replica}.lock"))
}

/// `(replica, seq)` of a segment file name.
pub(crate) fn parse_segment_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_suffix(EXT)?.strip_suffix('.')?;
    let (replica, seq) = stem.rsplit_once('.')?;
    if replica.is_empty() {
        return None;
    }
    Some((replica, seq.parse().ok()?))
}

/// Journal files hold usage records (which may carry prompt text to count):
/// readable by the service's user only.
const FILE_MODE: u32 = 0o600;

/// Creates a segment's file, maps it for `max_bytes` and writes the file
/// magic.
fn new_segment(path: &Path, max_bytes: u64) -> io::Result<Tail> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    let bound = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .max(FILE_MAGIC.len());
    let map = map_segment(&file, bound)?;
    let mut tail = Tail {
        file,
        map,
        used: 0,
        len: 0,
    };
    tail.put(FILE_MAGIC)?;
    Ok(tail)
}

/// Maps `len` bytes of a segment's file shared and writable, also beyond
/// the file's current end ([`Tail::put`] extends the file before it writes
/// there).
#[allow(unsafe_code)]
fn map_segment(file: &File, len: usize) -> io::Result<MmapMut> {
    // SAFETY: file mappings are unsafe in memmap2 because another process
    // could change or shorten the file under the mapping: reads could then
    // see bytes change, and a store beyond the file's end raises SIGBUS.
    // This process only stores into the mapping, never reads it back, and
    // stores only below the file's length, which only it sets (the file was
    // created just now with `create_new`, mode 0600, in the journal
    // directory, mode 0700, of the replica whose lock this process holds).
    // Other processes read a segment only once its replica's lock is free,
    // i.e. once this process is gone, and nothing shortens a segment.
    unsafe { MmapOptions::new().len(len).map_mut(file) }
}

/// Opens (creating) a replica's lock file.
pub(crate) fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Takes the exclusive lock of a replica's journal without waiting; false
/// when another process holds it.
#[allow(clippy::incompatible_msrv)] // File::try_lock: the toolchain in use has it
pub(crate) fn try_lock(f: &File) -> io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The segment being written.
pub(crate) struct Segment {
    tail: Mutex<Tail>,
    path: PathBuf,
    seq: u64,
    frames: AtomicU64,
}

impl Segment {
    /// The segment's id and the bytes its frames fill.
    pub(crate) fn fill(&self) -> (u64, usize) {
        (
            self.seq,
            self.tail.lock().unwrap_or_else(|e| e.into_inner()).used,
        )
    }
}

/// A segment's file, its mapping and how far both are filled.
struct Tail {
    file: File,
    /// The whole bound (`max_bytes`) of the segment.
    map: MmapMut,
    /// Bytes written: the file magic and the frames.
    used: usize,
    /// The file's length (written with zeros ahead of `used`).
    len: usize,
}

impl Tail {
    /// Copies `bytes` behind what was written; false (nothing written) when
    /// they would cross the segment's bound.
    fn put(&mut self, bytes: &[u8]) -> io::Result<bool> {
        let end = self.used + bytes.len();
        if end > self.map.len() {
            return Ok(false);
        }
        if end > self.len {
            self.extend(end)?;
        }
        self.map[self.used..end].copy_from_slice(bytes);
        self.used = end;
        Ok(true)
    }

    /// Writes zeros from the file's end to at least `end`, so the blocks
    /// are allocated (a full disk fails here, not under the mapping), and
    /// asks the kernel to map the new pages in one call instead of a page
    /// fault each.
    fn extend(&mut self, end: usize) -> io::Result<()> {
        let step = self.len.clamp(FIRST_GROW, GROW);
        let len = end
            .max(self.len + step)
            .next_multiple_of(PAGE)
            .min(self.map.len());
        let mut at = self.len;
        while at < len {
            let n = (len - at).min(GROW);
            self.file.write_all_at(&ZEROS[..n], at as u64)?;
            at += n;
        }
        // Best effort: kernels before 5.14 do not know the advice.
        let _ = self
            .map
            .advise_range(Advice::PopulateWrite, self.len, len - self.len);
        self.len = len;
        Ok(())
    }
}

/// A segment created ahead of its turn ([`Journal::prepare`]).
struct Prepared {
    seq: u64,
    path: PathBuf,
    tail: Tail,
}

/// A replica's open journal; the recorder guards [`Segment`] with its lock.
pub(crate) struct Journal {
    dir: PathBuf,
    replica: String,
    max_bytes: u64,
    /// The next segment, ready before the flush that starts it.
    prepared: Mutex<Option<Prepared>>,
    /// Bytes the segment before the current one held (a size hint).
    previous_used: AtomicUsize,
    /// Held (locked) for the life of the journal.
    _lock: File,
    skipped: AtomicU64,
    broken: AtomicBool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Creates the directory if needed, locks the replica's journal and
    /// starts its first segment for flush id `seq`.
    pub(crate) fn open(
        cfg: &JournalConfig,
        replica: &str,
        seq: u64,
    ) -> io::Result<(Journal, Segment)> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.dir)?;
        let lock = open_lock(&lock_path(&cfg.dir, replica))?;
        if !try_lock(&lock)? {
            return Err(io::Error::other(format!(
                "journal of replica {replica} is locked by another process"
            )));
        }
        let path = segment_path(&cfg.dir, replica, seq);
        let tail = new_segment(&path, cfg.max_bytes)?;
        Ok((
            Journal {
                dir: cfg.dir.clone(),
                replica: replica.to_string(),
                max_bytes: cfg.max_bytes,
                prepared: Mutex::new(None),
                previous_used: AtomicUsize::new(0),
                _lock: lock,
                skipped: AtomicU64::new(0),
                broken: AtomicBool::new(false),
            },
            Segment {
                tail: Mutex::new(tail),
                path,
                seq,
                frames: AtomicU64::new(0),
            },
        ))
    }

    /// Appends one frame: a copy into the segment's mapping (a `write(2)`
    /// of zeros when the file is extended). Called under the shared side of
    /// the recorder's lock.
    pub(crate) fn append(&self, seg: &Segment, frame: &[u8]) {
        if !self.broken.load(Relaxed) {
            let put = seg
                .tail
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .put(frame);
            match put {
                Ok(true) => {
                    seg.frames.fetch_add(1, Relaxed);
                    return;
                }
                Ok(false) => {}
                Err(e) => self.fail("journal write failed; entries are kept in memory only", &e),
            }
        }
        self.skipped.fetch_add(1, Relaxed);
    }

    fn fail(&self, what: &str, e: &io::Error) {
        if !self.broken.swap(true, Relaxed) {
            tracing::error!(error = %e, dir = %self.dir.display(), "{what}");
        }
    }

    /// Makes segment `current + 1` ready for the next [`Journal::rotate`]:
    /// creates its file and extends it to a little more than the larger of
    /// what the current segment holds now (`used`) and what the segment
    /// before it held (intervals differ when traffic changes or an early
    /// flush cuts one short), so that the entries after the rotation do
    /// not extend it on their way. Called by the flusher before it takes
    /// the exclusive lock, with no lock held. A failure is left to
    /// `rotate`, which creates the segment itself.
    pub(crate) fn prepare(&self, current: u64, used: usize) {
        if self.broken.load(Relaxed) {
            return;
        }
        let seq = current + 1;
        let want = self.wanted(used);
        let result = match self.prepared_for(seq) {
            Some(p) => Ok(p),
            None => {
                let path = segment_path(&self.dir, &self.replica, seq);
                new_segment(&path, self.max_bytes).map(|tail| Prepared { seq, path, tail })
            }
        }
        .and_then(|mut p| {
            if want > p.tail.len {
                p.tail.extend(want.min(p.tail.map.len()))?;
            }
            Ok(p)
        });
        match result {
            Ok(p) => *self.prepared.lock().unwrap_or_else(|e| e.into_inner()) = Some(p),
            Err(e) => tracing::debug!(error = %e, "journal segment not prepared ahead"),
        }
    }

    /// How long the next segment is prepared, given what the current one
    /// holds now.
    fn wanted(&self, used: usize) -> usize {
        let recent = used.max(self.previous_used.load(Relaxed));
        (recent + recent / 8).min(MAX_PREPARED)
    }

    /// Whether [`Journal::prepare`] would find nothing to do: segment
    /// `current + 1` is prepared and long enough (or the journal is
    /// broken). The flusher asks first, so that an idle interval, whose
    /// flush neither rotates nor grows the current segment, does not hand
    /// work to a blocking thread.
    pub(crate) fn is_prepared(&self, current: u64, used: usize) -> bool {
        if self.broken.load(Relaxed) {
            return true;
        }
        let want = self.wanted(used);
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|p| p.seq == current + 1 && p.tail.len >= want.min(p.tail.map.len()))
    }

    fn take_prepared(&self) -> Option<Prepared> {
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// The prepared segment for `seq`, if there is one; a prepared segment
    /// of another id is deleted.
    fn prepared_for(&self, seq: u64) -> Option<Prepared> {
        let p = self.take_prepared()?;
        if p.seq == seq {
            return Some(p);
        }
        let _ = std::fs::remove_file(&p.path);
        None
    }

    /// Flush `seq` (the segment's id) was taken: starts segment `seq + 1`
    /// (the prepared one when there is one). Returns the segment to delete
    /// once flush `seq` is confirmed, if it holds frames. Called under the
    /// exclusive side of the recorder's lock.
    pub(crate) fn rotate(&self, seg: &mut Segment, seq: u64) -> Option<PathBuf> {
        if self.broken.load(Relaxed) {
            return None;
        }
        let next = segment_path(&self.dir, &self.replica, seq + 1);
        let prepared = self.prepared_for(seq + 1);
        let result = if *seg.frames.get_mut() == 0 {
            match prepared {
                // Nothing to keep: the prepared file takes the empty one's
                // place.
                Some(p) => std::fs::remove_file(&seg.path).map(|()| {
                    *seg.tail.get_mut().unwrap_or_else(|e| e.into_inner()) = p.tail;
                    seg.path = p.path;
                    seg.seq = seq + 1;
                    None
                }),
                None => std::fs::rename(&seg.path, &next).map(|()| {
                    seg.path = next.clone();
                    seg.seq = seq + 1;
                    None
                }),
            }
        } else {
            let used = seg.tail.get_mut().unwrap_or_else(|e| e.into_inner()).used;
            self.previous_used.store(used, Relaxed);
            let tail = match prepared {
                Some(p) => Ok(p.tail),
                None => new_segment(&next, self.max_bytes),
            };
            tail.map(|tail| {
                let old = std::mem::replace(
                    seg,
                    Segment {
                        tail: Mutex::new(tail),
                        path: next.clone(),
                        seq: seq + 1,
                        frames: AtomicU64::new(0),
                    },
                );
                Some(old.path)
            })
        };
        result.unwrap_or_else(|e| {
            // The flush about to be sent has no successor segment: frames
            // written from now on could not be told apart from its own.
            self.fail("journal rotation failed; journaling stops", &e);
            None
        })
    }

    /// The segment of a confirmed flush is no longer needed.
    pub(crate) fn confirmed(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!(error = %e, path = %path.display(), "could not delete a flushed journal segment");
        }
    }

    /// Everything was flushed (graceful stop): removes the journal.
    pub(crate) fn close(&self, seg: &Segment) {
        if let Some(p) = self.take_prepared() {
            let _ = std::fs::remove_file(&p.path);
        }
        let _ = std::fs::remove_file(&seg.path);
        let _ = std::fs::remove_file(lock_path(&self.dir, &self.replica));
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Entries not journaled (segment full or the journal failed).
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped.load(Relaxed)
    }

    pub(crate) fn segment_seq(seg: &Segment) -> u64 {
        seg.seq
    }
}

// ----- encoding ----------------------------------------------------------

/// Starts a frame in `buf` (cleared); finish it with [`end_frame`].
pub(crate) fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(FRAME_MAGIC);
    buf.extend_from_slice(&[0; 8]);
}

/// Fills in the length and checksum of the frame in `buf`.
pub(crate) fn end_frame(buf: &mut [u8]) {
    let payload = &buf[FRAME_HEAD..];
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(payload).to_le_bytes();
    buf[4..8].copy_from_slice(&len);
    buf[8..12].copy_from_slice(&crc);
}

/// Appends one series item (tags 1–3).
pub(crate) fn put_series(buf: &mut Vec<u8>, tag: u8, family: &Family, labels: &[String], v: u64) {
    buf.push(tag);
    let name = family.name.as_bytes();
    buf.push(name.len().min(255) as u8);
    buf.extend_from_slice(&name[..name.len().min(255)]);
    buf.push(labels.len().min(255) as u8);
    for l in labels.iter().take(255) {
        let b = &l.as_bytes()[..l.len().min(u16::MAX as usize)];
        buf.extend_from_slice(&(b.len() as u16).to_le_bytes());
        buf.extend_from_slice(b);
    }
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends one usage record (tag 4).
pub(crate) fn put_record(buf: &mut Vec<u8>, json: &str) {
    buf.push(TAG_RECORD);
    buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
    buf.extend_from_slice(json.as_bytes());
}

// ----- reading -----------------------------------------------------------

/// One decoded item of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Add {
        family: String,
        labels: Vec<String>,
        v: i64,
    },
    Raise {
        family: String,
        labels: Vec<String>,
        v: i64,
    },
    Observe {
        family: String,
        labels: Vec<String>,
        v: u64,
    },
    Record(String),
}

/// What reading one segment found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SegmentRead {
    pub items: Vec<Item>,
    pub frames: usize,
    /// Bytes that were not part of a whole, intact frame (a torn tail).
    pub skipped_bytes: usize,
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Option<usize> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn str(&mut self, n: usize) -> Option<String> {
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<Vec<Item>> {
    let mut c = Cursor(p);
    let mut items = Vec::new();
    while !c.0.is_empty() {
        let tag = c.u8()?;
        if tag == TAG_RECORD {
            let n = c.u32()?;
            items.push(Item::Record(c.str(n)?));
            continue;
        }
        let n = c.u8()? as usize;
        let family = c.str(n)?;
        let count = c.u8()? as usize;
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            let n = c.u16()?;
            labels.push(c.str(n)?);
        }
        let v = c.u64()?;
        items.push(match tag {
            TAG_ADD => Item::Add {
                family,
                labels,
                v: v as i64,
            },
            TAG_RAISE => Item::Raise {
                family,
                labels,
                v: v as i64,
            },
            TAG_OBSERVE => Item::Observe { family, labels, v },
            _ => return None,
        });
    }
    Some(items)
}

/// The length and items of the intact frame at the start of `rest`.
fn frame_at(rest: &[u8]) -> Option<(usize, Vec<Item>)> {
    if rest.len() < FRAME_HEAD || !rest.starts_with(FRAME_MAGIC) {
        return None;
    }
    let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
    let crc = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]);
    if len > MAX_FRAME || rest.len() < FRAME_HEAD + len {
        return None;
    }
    let payload = &rest[FRAME_HEAD..FRAME_HEAD + len];
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((FRAME_HEAD + len, decode_payload(payload)?))
}

/// Reads the frames of one segment's bytes. Never fails: damaged or torn
/// frames are skipped (the reader moves on to the next frame marker).
pub fn read_segment(data: &[u8]) -> SegmentRead {
    let mut r = SegmentRead::default();
    let mut pos = if data.starts_with(FILE_MAGIC) {
        FILE_MAGIC.len()
    } else {
        r.skipped_bytes += data.len().min(FILE_MAGIC.len());
        data.len().min(FILE_MAGIC.len())
    };
    // Start of the damaged stretch being skipped.
    let mut skipping_from: Option<usize> = None;
    while pos < data.len() {
        match frame_at(&data[pos..]) {
            Some((len, items)) => {
                if let Some(from) = skipping_from.take() {
                    r.skipped_bytes += pos - from;
                }
                r.items.extend(items);
                r.frames += 1;
                pos += len;
            }
            // The rest of the file's last extension, never written.
            None if skipping_from.is_none() && data[pos..].iter().all(|&b| b == 0) => break,
            None => {
                skipping_from.get_or_insert(pos);
                pos = match find(&data[pos + 1..], FRAME_MAGIC) {
                    Some(i) => pos + 1 + i,
                    None => data.len(),
                };
            }
        }
    }
    if let Some(from) = skipping_from {
        r.skipped_bytes += data.len() - from;
    }
    r
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prepared segment is recognised as ready for the segment it follows
    /// and the fill it was sized for, and not past them.
    #[test]
    fn a_prepared_segment_is_ready_until_the_segment_outgrows_it() {
        let dir = aigw_testkit::TempDir::new("journal-prepared");
        let cfg = JournalConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 8 * 1024 * 1024,
        };
        let (journal, _segment) = Journal::open(&cfg, "r1", 7).unwrap();
        let used = 100 * 1024;
        assert!(!journal.is_prepared(7, used), "nothing prepared yet");
        journal.prepare(7, used);
        assert!(journal.is_prepared(7, used));
        assert!(journal.is_prepared(7, used / 2), "a smaller fill fits");
        assert!(!journal.is_prepared(7, 2 * used), "the segment outgrew it");
        assert!(
            !journal.is_prepared(8, used),
            "prepared for another segment"
        );
        journal.prepare(7, 2 * used);
        assert!(journal.is_prepared(7, 2 * used));
        // Beyond the segment's bound there is nothing more to prepare.
        journal.prepare(7, 64 * 1024 * 1024);
        assert!(journal.is_prepared(7, 64 * 1024 * 1024));
    }
}
