-- Whether a request with an unknown outcome may be resent to another
-- instance, and the OpenAI organization / project sent with the instance's key.
ALTER TABLE instances ADD COLUMN retry_unknown_outcome BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE instances ADD COLUMN openai_organization TEXT;
ALTER TABLE instances ADD COLUMN openai_project TEXT;
