//! Series written by the token-service (model metrics and its own counters).

use crate::family::Family;

pub static ALL: &[&Family] = &[];
