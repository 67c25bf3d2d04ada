//! The config snapshot in Redis (`config:snapshot`, `config:version`,
//! `config:updates`): how its one writer publishes it ([`publish`]) and how
//! every reader keeps a copy current ([`SnapshotWatcher`], into a
//! [`SnapshotSink`] such as [`SnapshotCell`]).
//!
//! The contract both sides keep: a snapshot and its version are written in
//! one script that never goes backwards, then the version is published;
//! readers install a snapshot only if it is newer than the one they hold,
//! keep the last good one while Redis is unreachable or holds something
//! unreadable, and never wait on Redis without a bound.

mod cell;
mod publish;
mod watcher;

pub use cell::SnapshotCell;
pub use publish::{publish, PublishError, Published};
pub use watcher::{SnapshotSink, SnapshotWatcher, WatchError, WatcherSettings};
