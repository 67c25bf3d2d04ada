//! Every metric family of every service, so the whole Redis schema is in one
//! folder. One file per writer.

pub mod config_center;
pub mod gateway;
pub mod token_service;

use crate::family::Family;

/// Every family, for schema tests (unique names, keys under `metrics:`).
pub fn all() -> Vec<&'static Family> {
    let mut v = Vec::new();
    v.extend_from_slice(gateway::ALL);
    v.extend_from_slice(token_service::ALL);
    v.extend_from_slice(config_center::ALL);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_keys_are_unique_and_prefixed() {
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for f in all() {
            assert!(names.insert(f.name), "duplicate family name {}", f.name);
            assert!(keys.insert(f.key), "duplicate key template {}", f.key);
            assert!(f.key.starts_with("metrics:"), "{}", f.key);
            assert_eq!(
                f.key.matches("{}").count(),
                f.labels.len(),
                "placeholders of {}",
                f.name
            );
        }
    }
}
