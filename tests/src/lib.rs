//! Helpers for the end-to-end tests.
pub mod k8s;
pub mod monitoring;
pub mod stack;
