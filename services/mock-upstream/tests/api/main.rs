//! Black-box tests of the mock over HTTP, one module per provider: what a
//! gateway (or each provider's official SDK) sees from it.

mod anthropic;
mod azure;
mod control;
mod gemini;
mod helpers;
mod in_process;
mod openai;
mod sdk;
