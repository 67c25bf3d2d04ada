//! Every metric family of every service, so the whole Redis schema is in one
//! folder. One file per writer; every metric is a typed declaration
//! ([`crate::metric`]) naming its Redis family, its `/metrics` name, help,
//! unit and label struct.

pub mod config_center;
pub mod gateway;
pub mod token_service;

use crate::family::Family;

/// Every family, for schema tests (unique names, keys under `metrics:`).
pub fn all() -> Vec<&'static Family> {
    let mut v = Vec::new();
    v.extend(gateway::ALL.iter().map(|d| &d.family));
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
        let stored = gateway::ALL
            .iter()
            .chain(token_service::ALL)
            .chain(config_center::ALL)
            .map(|d| (d.name, d.help));
        let means = gateway::MEANS.iter().map(|m| (m.name, m.help));
        for (name, help) in stored.chain(means) {
            // A counter is shown without `_total` in OpenMetrics.
            let base = name.trim_end_matches("_total");
            assert!(shown.insert(base), "duplicate name {name}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(!help.is_empty(), "{name} has no help");
        }
    }
}
