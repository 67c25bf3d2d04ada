//! Every metric family of every service, so the whole Redis schema is in one
//! folder. One file per writer. The config-center's and the token-service's
//! metrics are typed declarations ([`crate::metric`]); the gateway's are
//! untyped [`Family`] values rendered with name and scale at the use site,
//! until the gateway moves to typed declarations.

pub mod config_center;
pub mod gateway;
pub mod token_service;

use crate::family::Family;

/// Every family, for schema tests (unique names, keys under `metrics:`).
pub fn all() -> Vec<&'static Family> {
    let mut v = Vec::new();
    v.extend_from_slice(gateway::ALL);
    v.extend(token_service::ALL.iter().map(|d| &d.family));
    v.extend(config_center::ALL.iter().map(|d| &d.family));
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

    #[test]
    fn shown_names_are_unique_and_valid() {
        let mut shown = HashSet::new();
        for d in token_service::ALL.iter().chain(config_center::ALL) {
            assert!(shown.insert(d.name), "duplicate name {}", d.name);
            assert!(
                d.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                d.name
            );
            assert!(!d.help.is_empty(), "{} has no help", d.name);
        }
    }
}
