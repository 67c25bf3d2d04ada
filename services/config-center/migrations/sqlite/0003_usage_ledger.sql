-- The spend ledger: one row per request the token-service accounted,
-- written from the stream `usage:ledger` (docs/ledger.md). The request id is
-- the key, so a redelivered row is ignored (ON CONFLICT DO NOTHING).
-- Times are unix milliseconds, durations microseconds, cost nano-USD;
-- booleans 0/1. The API key's id only, never the key.

CREATE TABLE usage_ledger (
    request_id TEXT PRIMARY KEY,
    started_at_ms BIGINT NOT NULL,
    namespace_code TEXT NOT NULL,
    api_key_id TEXT,
    model TEXT NOT NULL,
    instance_id TEXT,
    endpoint TEXT NOT NULL,
    stream BIGINT NOT NULL,
    status BIGINT NOT NULL,
    error_kind TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    estimated BIGINT NOT NULL,
    cost_nano_usd BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    ttft_us BIGINT
);
-- Newest-first pages and retention; then the filters.
CREATE INDEX usage_ledger_time ON usage_ledger (started_at_ms, request_id);
CREATE INDEX usage_ledger_namespace ON usage_ledger (namespace_code, started_at_ms);
CREATE INDEX usage_ledger_key ON usage_ledger (api_key_id, started_at_ms);
CREATE INDEX usage_ledger_model ON usage_ledger (model, started_at_ms);
