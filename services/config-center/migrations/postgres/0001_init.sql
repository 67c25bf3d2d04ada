-- The config-center's truth. Text keys use the "C" collation so ordering
-- (and cursor pagination) is bytewise, exactly as on SQLite; money is TEXT
-- holding an exact decimal (the sqlx Any driver does not carry NUMERIC);
-- times are unix milliseconds.

CREATE TABLE config_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- Bumped in the same transaction as every change; the published
    -- snapshot carries it, so it must never go backwards.
    version BIGINT NOT NULL
);
INSERT INTO config_state (id, version) VALUES (1, 1);

CREATE TABLE namespaces (
    code TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    max_concurrency BIGINT,
    rpm BIGINT,
    tpm BIGINT,
    monthly_budget_usd TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE models (
    name TEXT COLLATE "C" PRIMARY KEY,
    encoding TEXT NOT NULL,
    input_price_per_1m TEXT,
    output_price_per_1m TEXT,
    context_window BIGINT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    namespace_code TEXT COLLATE "C" NOT NULL REFERENCES namespaces (code),
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    -- JSON array of model names, NULL = every model.
    allowed_models TEXT,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX api_keys_namespace ON api_keys (namespace_code, id);

CREATE TABLE instances (
    id TEXT COLLATE "C" PRIMARY KEY,
    namespace_code TEXT COLLATE "C" NOT NULL REFERENCES namespaces (code),
    model TEXT COLLATE "C" NOT NULL REFERENCES models (name),
    base_url TEXT NOT NULL,
    upstream_model TEXT NOT NULL,
    -- The upstream secret: the gateway needs it in the clear.
    api_key TEXT,
    weight BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    health_check_path TEXT,
    health_check_interval_s BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX instances_namespace ON instances (namespace_code, id);
CREATE INDEX instances_model ON instances (model, id);
