//! A small HTTP/1.1 client for plain-HTTP upstreams, driven by the request
//! handler itself. It knows nothing of the gateway.
//!
//! Each HTTP worker owns one [`Pool`]. A request checks out an idle
//! keep-alive connection to the instance (or opens one), writes the request
//! head and body in one `write`, and reads the answer on the handler's own
//! task: there is no connection task, no channel between a connection and
//! the handler, and a read hands over everything the socket had, so the
//! events an upstream sent together reach the client in one write. A body
//! read to its end puts the connection back in the pool; a body dropped
//! early closes it, which cancels the request upstream.
//!
//! # Send once
//!
//! A request is written to the upstream at most once. Once the whole
//! request was written, nothing is sent again, whatever follows: the
//! connection ends (end of file or reset) before an answer, after a `1xx`,
//! or in the middle of a body; a read times out; the answer is invalid. The
//! upstream may have processed the request (and billed for it), so the
//! outcome is unknown and [`Error::request_unsent`] is false.
//!
//! A request goes on a new connection only when provably nothing was
//! processed:
//! - a kept connection is checked just before use with a non-blocking
//!   `peek`: one the upstream closed (or that holds unexpected bytes) is
//!   dropped before a byte of the request is written;
//! - on a reused connection, writing failed before the whole request was
//!   written and no byte of an answer arrived: the request goes once more
//!   on a new connection. Failures on a new connection are returned as they
//!   are.
//!
//! [`Error::request_unsent`] is true only for a connect failure, a connect
//! timeout, or a write that failed before the request was complete; the
//! caller may send such a request elsewhere.
//!
//! # Framing
//!
//! Answers are read by hyper 1.x's client rules (`proto/h1/role.rs`,
//! `decode.rs`):
//! - the status code must be 100–999 (`HTTP/1.1 099` is an error, never a
//!   success); `1xx` heads other than 101 are skipped, 101 is an error; 204
//!   and 304 have no body;
//! - `Content-Length`: every comma-separated value of every line is plain
//!   decimal digits (no sign, no junk) and all are equal, else the answer is
//!   an error;
//! - `Transfer-Encoding`: an error on an HTTP/1.0 answer; the last coding of
//!   the last line must be `chunked` (hyper would read any other coding
//!   until the close; this client refuses it); with `Content-Length` too,
//!   `Transfer-Encoding` wins and the connection is not reused;
//! - without either, the body ends when the connection closes, and the
//!   connection is not reused; HTTP/1.0 answers are reused only with
//!   `Connection: keep-alive`, and a `Connection: close` is never undone;
//! - chunked bodies: a size line is hex digits (checked for overflow), then
//!   optional spaces or tabs, then optional extensions, then CRLF; a bare
//!   LF, in a size line, an extension or after chunk data, is an error;
//!   extensions are capped at 16 KiB over the whole body; trailers at
//!   16 KiB and 100 lines, each line a valid field and CRLF-terminated.
//!
//! Bytes beyond an answer keep the connection out of the pool.

mod error;
mod framing;
mod head;
mod held;
mod pool;

pub use error::Error;
pub use held::Held;
pub use pool::{write_header, Body, Pool, PoolConfig, Request, Response};
