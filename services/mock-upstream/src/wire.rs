//! Helpers every provider's handlers share: reading a body, JSON string
//! literals, the clock, deterministic embedding vectors.

use crate::error::MockError;
use crate::state::State;
use serde::Deserialize;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|e| MockError::InvalidRequest(e.to_string()))
}

#[allow(clippy::disallowed_methods)] // a provider's own clock (`created` fields)
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A string as a JSON literal.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A deterministic vector for input `item`: same request, same numbers.
pub fn vector(item: u32, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|j| {
            let h = (item as u64 + 1).wrapping_mul(2_654_435_761) ^ (j as u64).wrapping_mul(40_503);
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// `dimensions` (or the configured length) checked against the bounds.
pub fn embedding_dim(state: &State, asked: Option<usize>) -> Result<usize, MockError> {
    let dim = asked.unwrap_or(state.config.embedding_dim);
    if dim == 0 || dim > crate::config::MAX_EMBEDDING_DIM {
        return Err(MockError::InvalidRequest(format!(
            "dimensions must be 1..={}",
            crate::config::MAX_EMBEDDING_DIM
        )));
    }
    Ok(dim)
}
