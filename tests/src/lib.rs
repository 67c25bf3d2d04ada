//! Helpers for the end-to-end tests.
pub mod monitoring;
pub mod stack;
