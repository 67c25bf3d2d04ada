//! Series written by the config-center.

use crate::family::Family;

pub static ALL: &[&Family] = &[];
