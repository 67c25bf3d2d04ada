//! Helpers for the end-to-end tests over the real binaries.
pub mod admin;
pub mod counters;
pub mod k8s;
pub mod load;
pub mod monitoring;
pub mod raw_http;
pub mod report;
pub mod stack;
pub mod wait;
