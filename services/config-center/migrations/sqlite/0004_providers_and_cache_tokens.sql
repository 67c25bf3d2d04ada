-- Upstream providers: the wire protocol an instance speaks (openai,
-- anthropic, azure_openai, gemini) with Azure's deployment and the
-- api_version (Azure's `api-version`, Anthropic's `anthropic-version`);
-- the models' cache-read and cache-write prices (exact decimals as TEXT,
-- NULL = priced at the input price); the ledger's cache-write tokens.
ALTER TABLE instances ADD COLUMN provider TEXT NOT NULL DEFAULT 'openai';
ALTER TABLE instances ADD COLUMN azure_deployment TEXT;
ALTER TABLE instances ADD COLUMN api_version TEXT;
ALTER TABLE models ADD COLUMN cached_input_price_per_1m TEXT;
ALTER TABLE models ADD COLUMN cache_write_price_per_1m TEXT;
ALTER TABLE usage_ledger ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;
