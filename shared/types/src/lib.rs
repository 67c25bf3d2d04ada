//! Types shared by the services: the routing config snapshot the config-center
//! publishes and the gateway and token-service read, the usage record the
//! gateway produces and the token-service consumes, OpenAI's error envelope
//! and the budget month.
//!
//! Snapshot and usage record are JSON on the wire (Redis). Writers and
//! readers use these very types, so what one side writes is exactly what the
//! other deserializes. (The gateway writes its usage records with
//! [`UsageRecord::write_json`], byte for byte what serde writes for them.)

pub mod month;
pub mod openai_error;
pub mod snapshot;
pub mod usage;

pub use month::BudgetMonth;
pub use openai_error::{ErrorEnvelope, ErrorObject, NoDetail};
pub use snapshot::{
    hash_api_key, ApiKeyConfig, ConfigSnapshot, HealthCheckConfig, InstanceConfig, Limits,
    ModelConfig, NamespaceConfig, Provider, API_KEY_PREFIX,
};
pub use usage::{CountText, LedgerRow, TokenSource, UsageRecord};
