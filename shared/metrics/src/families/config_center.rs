//! Metrics of the config-center: its HTTP traffic and the state of the
//! config it publishes. Each is declared once here (Redis family and how
//! `/metrics` shows it) and written through the batched recorder.

use crate::family::FAST_BUCKETS_US;
use crate::metric::{
    Counter, Decl, Desc, Histogram, MaxGauge, NoLabels, ScrapeGauge, SetGauge, Unit,
};

crate::label_set! {
    /// An HTTP request: method (a fixed set, else `OTHER`), route template
    /// (`unmatched` for unknown paths) and status code.
    pub struct Http { method, route, status }
}

crate::label_set! {
    /// An entity kind of the snapshot: `namespaces`, `api_keys` (not
    /// revoked), `models`, `instances`.
    pub struct EntityKind { kind }
}

pub static HTTP_REQUESTS: Counter<Http<'static>> = Counter::new(Decl {
    id: "config_center_http_requests",
    key: "metrics:config_center:http_requests:{}:{}:{}",
    name: "config_center_http_requests_total",
    help: "HTTP requests by method, route template and status.",
    unit: Unit::Count,
});

pub static HTTP_LATENCY: Histogram<Http<'static>> = Histogram::new(
    Decl {
        id: "config_center_http_latency_us",
        key: "metrics:config_center:http_latency_us:{}:{}:{}",
        name: "config_center_http_request_duration_seconds",
        help: "HTTP request latency by method, route template and status.",
        unit: Unit::Micros,
    },
    FAST_BUCKETS_US,
);

/// A retry that finds the version already in Redis does not count.
pub static PUBLICATIONS: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_publications",
    key: "metrics:config_center:publications",
    name: "config_center_publications_total",
    help: "Config snapshots written to Redis.",
    unit: Unit::Count,
});

/// Redis or SQL unreachable, or Redis holding a newer version; each retry
/// counts.
pub static PUBLICATION_FAILURES: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_publication_failures",
    key: "metrics:config_center:publication_failures",
    name: "config_center_publication_failures_total",
    help: "Failed attempts to publish the config snapshot (each retry counts).",
    unit: Unit::Count,
});

pub static LAST_PUBLICATION: MaxGauge<NoLabels> = MaxGauge::new(Decl {
    id: "config_center_last_publication_ms",
    key: "metrics:config_center:last_publication_ms",
    name: "config_center_last_publication_timestamp_seconds",
    help: "Unix time of the last successful publication.",
    unit: Unit::UnixMillis,
});

pub static SNAPSHOT_VERSION: SetGauge<NoLabels> = SetGauge::new(Decl {
    id: "config_center_snapshot_version",
    key: "metrics:config_center:snapshot_version",
    name: "config_center_snapshot_version",
    help: "Version of the config snapshot last published to Redis.",
    unit: Unit::Version,
});

pub static ENTITIES: SetGauge<EntityKind<'static>> = SetGauge::new(Decl {
    id: "config_center_entities",
    key: "metrics:config_center:entities:{}",
    name: "config_center_entities",
    help: "Entities in the published config by kind (api_keys: not revoked).",
    unit: Unit::Count,
});

// ----- the spend ledger (`usage:ledger` → SQL) -------------------------------

pub static LEDGER_ROWS: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_rows",
    key: "metrics:config_center:ledger_rows",
    name: "config_center_ledger_rows_written_total",
    help: "Spend-ledger rows inserted into SQL.",
    unit: Unit::Count,
});

/// Rows redelivered after their commit (e.g. an acknowledgement lost):
/// ignored by the request-id key.
pub static LEDGER_DUPLICATES: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_duplicates",
    key: "metrics:config_center:ledger_duplicates",
    name: "config_center_ledger_rows_duplicate_total",
    help: "Spend-ledger rows received again and ignored (already stored).",
    unit: Unit::Count,
});

pub static LEDGER_BATCHES: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_batches",
    key: "metrics:config_center:ledger_batches",
    name: "config_center_ledger_batches_total",
    help: "Spend-ledger batches committed to SQL.",
    unit: Unit::Count,
});

/// Each failed attempt counts; the batch stays pending and is retried.
pub static LEDGER_FAILURES: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_failures",
    key: "metrics:config_center:ledger_failures",
    name: "config_center_ledger_write_failures_total",
    help: "Failed attempts to write a spend-ledger batch to SQL (retried).",
    unit: Unit::Count,
});

pub static LEDGER_MALFORMED: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_malformed",
    key: "metrics:config_center:ledger_malformed",
    name: "config_center_ledger_malformed_total",
    help: "Spend-ledger stream entries that were not a ledger row (skipped).",
    unit: Unit::Count,
});

pub static LEDGER_DELETED: Counter<NoLabels> = Counter::new(Decl {
    id: "config_center_ledger_deleted",
    key: "metrics:config_center:ledger_deleted",
    name: "config_center_ledger_rows_deleted_total",
    help: "Spend-ledger rows deleted by retention.",
    unit: Unit::Count,
});

pub static LEDGER_PENDING: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "config_center_ledger_stream_pending",
    "Spend-ledger stream entries delivered to a writer and not yet stored.",
);

pub static LEDGER_LAG: ScrapeGauge<NoLabels> = ScrapeGauge::new(
    "config_center_ledger_stream_lag",
    "Spend-ledger stream entries not yet delivered to a writer.",
);

/// Every metric of the config-center.
pub static ALL: &[&Desc] = &[
    HTTP_REQUESTS.desc(),
    HTTP_LATENCY.desc(),
    PUBLICATIONS.desc(),
    PUBLICATION_FAILURES.desc(),
    LAST_PUBLICATION.desc(),
    SNAPSHOT_VERSION.desc(),
    ENTITIES.desc(),
    LEDGER_ROWS.desc(),
    LEDGER_DUPLICATES.desc(),
    LEDGER_BATCHES.desc(),
    LEDGER_FAILURES.desc(),
    LEDGER_MALFORMED.desc(),
    LEDGER_DELETED.desc(),
];
