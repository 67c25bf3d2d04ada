//! Black-box tests of the mock over HTTP, one module per provider: what a
//! gateway (or each provider's official SDK) sees from it.

// Tests read their own switches (CI, TEST_LOG, …) and the wall clock;
// the rules of clippy.toml are for the services.
#![allow(clippy::disallowed_methods)]

mod anthropic;
mod azure;
mod control;
mod gemini;
mod helpers;
mod in_process;
mod openai;
mod sdk;
