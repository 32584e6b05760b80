-- Per-key controls (OpenRouter-style), enforced by the gateway's admission script in the same
-- atomic step as the account's limits (common/lua/admit.lua); set through
-- PATCH /api/v1/developers/keys/{id}. NULL means "no such control".
--   spend_cap_units / spend_cap_period: at most this many quota units per UTC day, per UTC
--     month, or in total (both set or neither)
--   rate_limit: at most this many calls per rate window (60 s), on top of the account's limit
--   expires_at: the key stops working at this instant (a rotated key's grace period ends here)
--   allowed_agents: the only agents the key may call
ALTER TABLE api_keys
    ADD COLUMN spend_cap_units  BIGINT
               CONSTRAINT api_keys_spend_cap_positive CHECK (spend_cap_units > 0),
    ADD COLUMN spend_cap_period TEXT
               CONSTRAINT api_keys_spend_cap_period CHECK (spend_cap_period IN ('day', 'month', 'total')),
    ADD COLUMN rate_limit       INTEGER
               CONSTRAINT api_keys_rate_limit_positive CHECK (rate_limit > 0),
    ADD COLUMN expires_at       TIMESTAMPTZ,
    ADD COLUMN allowed_agents   UUID[],
    ADD CONSTRAINT api_keys_spend_cap_whole
        CHECK ((spend_cap_units IS NULL) = (spend_cap_period IS NULL));

-- Prompt caching: the prompt tokens the provider served from its cache (OpenAI's
-- prompt_tokens_details.cached_tokens, Anthropic's cache_read_input_tokens, Gemini's
-- cachedContentTokenCount), part of input_tokens. Billing does not depend on it.
ALTER TABLE call_logs
    ADD COLUMN cached_input_tokens INT NOT NULL DEFAULT 0
               CONSTRAINT call_logs_cached_input_tokens_nonnegative CHECK (cached_input_tokens >= 0);
