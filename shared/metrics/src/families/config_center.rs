//! Series written by the config-center: its HTTP traffic and the state of
//! the config it publishes.

use crate::family::{Family, Kind, FAST_BUCKETS_US};

/// HTTP requests by method (a fixed set, else `OTHER`), route template
/// (`unmatched` for unknown paths) and status code.
pub static HTTP_REQUESTS: Family = Family {
    name: "config_center_http_requests",
    key: "metrics:config_center:http_requests:{}:{}:{}",
    labels: &["method", "route", "status"],
    kind: Kind::Counter,
};
/// HTTP request latency, microseconds, same labels as [`HTTP_REQUESTS`].
pub static HTTP_LATENCY: Family = Family {
    name: "config_center_http_latency_us",
    key: "metrics:config_center:http_latency_us:{}:{}:{}",
    labels: &["method", "route", "status"],
    kind: Kind::Histogram(FAST_BUCKETS_US),
};
/// Snapshots written to Redis (a retry that finds the version already
/// there does not count).
pub static PUBLICATIONS: Family = Family {
    name: "config_center_publications",
    key: "metrics:config_center:publications",
    labels: &[],
    kind: Kind::Counter,
};
/// Publication attempts that failed (Redis or SQL unreachable, or Redis
/// holding a newer version); each retry counts.
pub static PUBLICATION_FAILURES: Family = Family {
    name: "config_center_publication_failures",
    key: "metrics:config_center:publication_failures",
    labels: &[],
    kind: Kind::Counter,
};
/// Unix milliseconds of the last successful publication.
pub static LAST_PUBLICATION: Family = Family {
    name: "config_center_last_publication_ms",
    key: "metrics:config_center:last_publication_ms",
    labels: &[],
    kind: Kind::Max,
};
/// Version of the snapshot last published.
pub static SNAPSHOT_VERSION: Family = Family {
    name: "config_center_snapshot_version",
    key: "metrics:config_center:snapshot_version",
    labels: &[],
    kind: Kind::Set,
};
/// Entities in the published snapshot by kind (`namespaces`, `api_keys`
/// (not revoked), `models`, `instances`).
pub static ENTITIES: Family = Family {
    name: "config_center_entities",
    key: "metrics:config_center:entities:{}",
    labels: &["kind"],
    kind: Kind::Set,
};

pub static ALL: &[&Family] = &[
    &HTTP_REQUESTS,
    &HTTP_LATENCY,
    &PUBLICATIONS,
    &PUBLICATION_FAILURES,
    &LAST_PUBLICATION,
    &SNAPSHOT_VERSION,
    &ENTITIES,
];
