//! The Redis key schema: every key any service reads or writes, in one place.
//!
//! # Units
//! - Counters are integers (`INCRBY`).
//! - Durations are stored as integer **microseconds** (`total_response_time`,
//!   histogram sums); they are rendered in seconds.
//! - `metrics:global:last_request_time` is unix **milliseconds**.
//! - Money is stored as integer **nano-USD** (1e-9 USD) and rendered in USD.
//!
//! # Series keys (the product specification's names, exact)
//! | key | type | meaning |
//! |---|---|---|
//! | `metrics:global:total_requests` | string, counter | all requests |
//! | `metrics:global:total_errors` | string, counter | status ≥ 400 or upstream failure |
//! | `metrics:global:total_response_time` | string, counter, µs | sum of response times |
//! | `metrics:global:last_request_time` | string, max, unix ms | last request |
//! | `metrics:ns:{ns}:total_requests` | string, counter | |
//! | `metrics:ns:{ns}:successful_requests` | string, counter | |
//! | `metrics:ns:{ns}:failed_requests` | string, counter | |
//! | `metrics:ns:{ns}:total_response_time` | string, counter, µs | |
//! | `metrics:ns:{ns}:concurrent_requests` | string, gauge | sum over live replicas |
//! | `metrics:ns:{ns}:status:{code}` | string, counter | per status code |
//! | `metrics:instance:{instance_id}:{ns}` | string, 1 healthy / 0 unhealthy | |
//!
//! Every other series is declared in [`crate::families`], one file per
//! writing service, each key template under `metrics:`; e.g. the model
//! series `metrics:model:{model}:{ns}:{requests,errors,tokens_in,tokens_out,
//! tokens_cache_read,tokens_cache_write,tokens_reasoning,cost_nusd}` in
//! [`crate::families::token_service`] (cache reads and writes are parts of
//! `tokens_in`, reasoning a part of `tokens_out`). The cost a budget is
//! checked against: [`ns_month_cost`].
//!
//! # Bookkeeping keys
//! | key | type | meaning |
//! |---|---|---|
//! | `metrics:index:{family}` | set | label values (joined by U+001F) of every series of a family |
//! | `{` + gauge key + `}:replicas` | hash | replica id → that replica's value of a per-replica gauge ([`gauge_replicas`]: in the gauge key's cluster slot) |
//! | `metrics:gauges` | set | every per-replica gauge key, so any flush can recompute sums |
//! | `metrics:replicas` | set | every replica id that has written per-replica gauges |
//! | `metrics:replica:{replica}` | string with TTL | liveness: present while the replica flushes |
//! | `metrics:flush:{replica}:{seq}` | string with TTL | a flush that was applied (exactly-once marker) |
//! | `metrics:flush:{replica}:{seq}:` + `{` + tag + `}` | string with TTL | on a Redis Cluster: the part of a flush in the slot of hash tag `tag` was applied ([`crate::slots::in_slot`]) |
//! | `metrics:once:{scope}:{id}` | string with TTL | a record that was applied (idempotence marker) |
//! | `metrics:once:{scope}:{id}:` + `{` + tag + `}` | string with TTL | on a Redis Cluster: the record's writes in the slot of `tag` were applied |
//!
//! On a Redis Cluster every script and `MULTI` touches keys of one slot:
//! a flush or once-batch is split by slot and each part carries its own
//! marker, placed in that slot by a hash tag; the names of the table
//! above do not change (`docs/RELIABILITY.md`, "Redis Cluster and
//! Sentinel").
//!
//! # Config and usage
//! | key | type | meaning |
//! |---|---|---|
//! | `config:snapshot` | string, JSON | the whole `aigw_types::ConfigSnapshot` at one version, written atomically |
//! | `config:version` | string, integer | version of `config:snapshot` |
//! | `config:updates` | pub/sub channel | the new version, published after each write |
//! | `usage:stream` | stream | entries with field `records`: a JSON array of usage records |
//! | consumer group `token-service` on `usage:stream` | | |
//! | `usage:ledger` | stream | entries with field `row`: one `aigw_types::LedgerRow` as JSON (the token-service appends it in the script that accounts the record) |
//! | consumer group `config-center` on `usage:ledger` | | the spend ledger's writer (`docs/ledger.md`) |
//!
//! # Admin console (config-center)
//! | key | type | meaning |
//! |---|---|---|
//! | `console:session:{hash}` | string, with expiry | a signed-in session's CSRF token, under the SHA-256 of the session id |
//! | `console:signin_failures:{ip}` | integer, with expiry | failed sign-ins from one address in the current window |
//!
//! # Metrics exporter
//! | key | type | meaning |
//! |---|---|---|
//! | `metrics:exporter:{service}` | string, with expiry | the replica (`{host}-{pid}`) of `service` that shows the fleet series on its `/metrics` (`exporter.rs`) |
//!
//! # Rate limits (the gateway's RPM/TPM windows)
//! | key | type | meaning |
//! |---|---|---|
//! | `ratelimit:ns:{ns}:rpm` | hash | unix second → requests started in it (last 60 s) |
//! | `ratelimit:ns:{ns}:tpm` | hash | unix second → tokens used in it (last 60 s) |
//! | `ratelimit:ns:{ns}:inflight` | sorted set | one member per request in flight in the fleet (`{replica}:{n}`), scored by its lease's expiry in Unix ms |

/// Separator between label values in index-set members.
pub const LABEL_SEP: char = '\u{1f}';

pub const GLOBAL_TOTAL_REQUESTS: &str = "metrics:global:total_requests";
pub const GLOBAL_TOTAL_ERRORS: &str = "metrics:global:total_errors";
pub const GLOBAL_TOTAL_RESPONSE_TIME: &str = "metrics:global:total_response_time";
pub const GLOBAL_LAST_REQUEST_TIME: &str = "metrics:global:last_request_time";

pub fn ns_total_requests(ns: &str) -> String {
    format!("metrics:ns:{ns}:total_requests")
}
pub fn ns_successful_requests(ns: &str) -> String {
    format!("metrics:ns:{ns}:successful_requests")
}
pub fn ns_failed_requests(ns: &str) -> String {
    format!("metrics:ns:{ns}:failed_requests")
}
pub fn ns_total_response_time(ns: &str) -> String {
    format!("metrics:ns:{ns}:total_response_time")
}
pub fn ns_concurrent_requests(ns: &str) -> String {
    format!("metrics:ns:{ns}:concurrent_requests")
}
pub fn ns_status(ns: &str, status_code: u16) -> String {
    format!("metrics:ns:{ns}:status:{status_code}")
}
pub fn instance_health(instance_id: &str, ns: &str) -> String {
    format!("metrics:instance:{instance_id}:{ns}")
}

/// The token-service's cost of namespace `ns` in UTC month `month`
/// (`YYYY-MM`), nano-USD: what monthly budgets are checked against
/// (`families::token_service::NS_MONTH_COST`).
pub fn ns_month_cost(ns: &str, month: &str) -> String {
    format!("metrics:cost:ns:{ns}:month:{month}")
}

/// Requests per second of namespace `ns` over the last minute.
pub fn ratelimit_rpm(ns: &str) -> String {
    format!("ratelimit:ns:{ns}:rpm")
}

/// Tokens per second of namespace `ns` over the last minute.
pub fn ratelimit_tpm(ns: &str) -> String {
    format!("ratelimit:ns:{ns}:tpm")
}

/// The requests of namespace `ns` in flight across the fleet: concurrency
/// leases scored by their expiry.
pub fn ratelimit_inflight(ns: &str) -> String {
    format!("ratelimit:ns:{ns}:inflight")
}

/// A console session, named by the hash of its id.
pub fn console_session(id_hash: &str) -> String {
    format!("console:session:{id_hash}")
}

/// Failed console sign-ins from address `ip` in the current window.
pub fn console_signin_failures(ip: &str) -> String {
    format!("console:signin_failures:{ip}")
}

/// The lease naming the replica of `service` that exports the fleet
/// series.
pub fn metrics_exporter(service: &str) -> String {
    format!("metrics:exporter:{service}")
}

/// Index set of a family.
pub fn index(family: &str) -> String {
    format!("metrics:index:{family}")
}
/// Per-replica values of a per-replica gauge, in the gauge key's cluster
/// slot: `{gauge key}:replicas` with the gauge key as hash tag (or, when
/// the gauge key holds a hash tag of its own, `gauge key:replicas`).
pub fn gauge_replicas(gauge_key: &str) -> String {
    if has_hash_tag(gauge_key) {
        format!("{gauge_key}:replicas")
    } else {
        format!("{{{gauge_key}}}:replicas")
    }
}

/// Whether `key` holds a Redis Cluster hash tag (a non-empty `{…}`, the
/// first `{` to the next `}`).
fn has_hash_tag(key: &str) -> bool {
    key.find('{')
        .and_then(|o| key[o + 1..].find('}'))
        .is_some_and(|len| len > 0)
}
pub const GAUGES: &str = "metrics:gauges";
pub const REPLICAS: &str = "metrics:replicas";
pub const REPLICA_PREFIX: &str = "metrics:replica:";
pub fn replica_heartbeat(replica: &str) -> String {
    format!("{REPLICA_PREFIX}{replica}")
}
pub fn flush_marker(replica: &str, seq: u64) -> String {
    format!("metrics:flush:{replica}:{seq}")
}
pub fn once_marker(scope: &str, id: &str) -> String {
    format!("metrics:once:{scope}:{id}")
}

pub const CONFIG_SNAPSHOT: &str = "config:snapshot";
pub const CONFIG_VERSION: &str = "config:version";
pub const CONFIG_CHANNEL: &str = "config:updates";

pub const USAGE_STREAM: &str = "usage:stream";
pub const USAGE_GROUP: &str = "token-service";
/// Field of a usage stream entry holding the JSON array of records.
pub const USAGE_FIELD: &str = "records";

/// The spend ledger's stream: one entry per accounted usage record,
/// appended by the token-service in the script that accounts the record.
pub const LEDGER_STREAM: &str = "usage:ledger";
/// The config-center's consumer group on [`LEDGER_STREAM`].
pub const LEDGER_GROUP: &str = "config-center";
/// Field of a ledger entry holding one `aigw_types::LedgerRow` as JSON.
pub const LEDGER_FIELD: &str = "row";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_spec_names_are_exact() {
        assert_eq!(GLOBAL_TOTAL_REQUESTS, "metrics:global:total_requests");
        assert_eq!(GLOBAL_TOTAL_ERRORS, "metrics:global:total_errors");
        assert_eq!(
            GLOBAL_TOTAL_RESPONSE_TIME,
            "metrics:global:total_response_time"
        );
        assert_eq!(GLOBAL_LAST_REQUEST_TIME, "metrics:global:last_request_time");
        assert_eq!(ns_total_requests("a"), "metrics:ns:a:total_requests");
        assert_eq!(
            ns_successful_requests("a"),
            "metrics:ns:a:successful_requests"
        );
        assert_eq!(ns_failed_requests("a"), "metrics:ns:a:failed_requests");
        assert_eq!(
            ns_total_response_time("a"),
            "metrics:ns:a:total_response_time"
        );
        assert_eq!(
            ns_concurrent_requests("a"),
            "metrics:ns:a:concurrent_requests"
        );
        assert_eq!(ns_status("a", 429), "metrics:ns:a:status:429");
        assert_eq!(instance_health("i-1", "a"), "metrics:instance:i-1:a");
    }

    #[test]
    fn gauge_replica_hashes_share_the_gauge_slot() {
        use crate::slots::key_slot;
        for k in ["metrics:ns:a:concurrent_requests", "x:{tag}:y"] {
            let r = gauge_replicas(k);
            assert_eq!(key_slot(r.as_bytes()), key_slot(k.as_bytes()), "{r}");
        }
        assert_eq!(
            gauge_replicas("metrics:ns:a:concurrent_requests"),
            "{metrics:ns:a:concurrent_requests}:replicas"
        );
    }

    #[test]
    fn rate_limit_and_budget_keys() {
        assert_eq!(ratelimit_rpm("a"), "ratelimit:ns:a:rpm");
        assert_eq!(ratelimit_tpm("a"), "ratelimit:ns:a:tpm");
        assert_eq!(ratelimit_inflight("a"), "ratelimit:ns:a:inflight");
        assert_eq!(
            ns_month_cost("a", "2024-02"),
            "metrics:cost:ns:a:month:2024-02"
        );
    }
}
