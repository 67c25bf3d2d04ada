//! Helpers for the end-to-end tests over the real binaries.

// The harness reads its own switches (`CI`, `TEST_LOG`, …) and the wall
// clock it compares the services' timestamps with; the rules of
// clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]
pub mod admin;
pub mod counters;
pub mod k8s;
pub mod load;
pub mod monitoring;
pub mod raw_http;
pub mod report;
pub mod sdk;
pub mod stack;
pub mod wait;
