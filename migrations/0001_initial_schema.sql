-- AgentLink core schema. Postgres is the source of truth; Redis only holds state rebuilt from
-- these tables (plus the usage stream until the worker has written it to call_logs).
--
-- Conventions used throughout:
-- * Enumerations are TEXT + CHECK rather than ENUM types: adding a value is a one-line
--   constraint swap in a migration, with no ALTER TYPE ... ADD VALUE transaction caveats.
-- * Money is NUMERIC, never float. Prices use 6 decimals (Redis holds integer micro-dollars,
--   so a price must convert exactly); balances and ledgers use 8 (room for crypto payouts).
-- * Deletion policy. Users are never hard-deleted in normal operation: an account is closed by
--   status = 'deleted' and anonymised, because payments, settlements and withdrawals are
--   financial records that must outlive it. So:
--     - what a user merely configures or holds (profile, keys, quota, trials, webhooks,
--       sessions) goes with the user: ON DELETE CASCADE;
--     - anything with money or reputation attached (agents, payments, settlements,
--       withdrawals, reviews) blocks a hard delete: ON DELETE RESTRICT;
--     - "who did it" pointers (moderated_by, updated_by) are cleared: ON DELETE SET NULL.
--   An agent's own parts (versions, knowledge, trials, reviews) go with the agent, which in
--   turn can only be hard-deleted while it has no financial history (a never-published draft).
-- * Length limits in CHECKs are backstops well above what the API accepts; the API validates
--   with friendly messages, the database guarantees nothing absurd gets stored by any path.

-- btree_gist lets a GiST exclusion constraint mix a UUID equality with a range overlap
-- (settlements below). It is a trusted contrib extension: a database owner may create it.
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- One trigger function for every updated_at column, so no code path can forget to bump it.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Accounts
-- ---------------------------------------------------------------------------------------------

CREATE TABLE users (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored as typed; uniqueness is case-insensitive (index below) because mail providers
    -- treat addresses that way in practice and two accounts differing only by case are a
    -- support and phishing problem. The application lowercases as well.
    email           TEXT NOT NULL
                    CONSTRAINT users_email_shape CHECK (
                        char_length(email) <= 254 AND email ~ '^[^@[:space:]]+@[^@[:space:]]+$'
                    ),
    -- argon2id PHC string; never compared in SQL.
    password_hash   TEXT NOT NULL
                    CONSTRAINT users_password_hash_present CHECK (password_hash <> ''),
    user_type       TEXT NOT NULL
                    CONSTRAINT users_user_type_valid
                    CHECK (user_type IN ('creator', 'developer', 'admin')),
    -- RBAC role for the admin API. An admin without a role has no permissions (fails closed).
    admin_role      TEXT
                    CONSTRAINT users_admin_role_valid
                    CHECK (admin_role IN ('super_admin', 'moderator', 'support')),
    status          TEXT NOT NULL DEFAULT 'active'
                    CONSTRAINT users_status_valid
                    CHECK (status IN ('active', 'suspended', 'deleted')),
    rate_tier       TEXT NOT NULL DEFAULT 'free'
                    CONSTRAINT users_rate_tier_valid CHECK (rate_tier IN ('free', 'paid')),
    -- Virtual Redis shard chosen at registration; every Redis key the user owns lives under
    -- the hash tag {s<shard>}, and the user's API keys hash into this shard (DESIGN.md).
    -- Changing it would orphan the user's Redis state and invalidate every key they hold.
    redis_shard     SMALLINT NOT NULL
                    CONSTRAINT users_redis_shard_range CHECK (redis_shard BETWEEN 0 AND 1023),
    wallet_address  TEXT
                    CONSTRAINT users_wallet_address_format
                    CHECK (wallet_address ~ '^0x[0-9a-fA-F]{40}$'),
    email_verified  BOOLEAN NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_admin_role_only_for_admins CHECK (admin_role IS NULL OR user_type = 'admin')
);
-- Case-insensitive uniqueness, and the index the login lookup uses (WHERE lower(email) = $1).
-- It also covers deleted accounts: closing an account anonymises its email to free it.
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
CREATE INDEX users_created_at_idx ON users (created_at);
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE creator_profiles (
    user_id           UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name      TEXT NOT NULL
                      CONSTRAINT creator_profiles_display_name_length
                      CHECK (char_length(btrim(display_name)) BETWEEN 1 AND 100),
    bio               TEXT CONSTRAINT creator_profiles_bio_length CHECK (char_length(bio) <= 5000),
    avatar_url        TEXT
                      CONSTRAINT creator_profiles_avatar_url_http
                      CHECK (char_length(avatar_url) <= 2048 AND avatar_url ~ '^https?://'),
    verified          BOOLEAN NOT NULL DEFAULT false,
    -- A negative balance would mean we paid out money that was never earned.
    total_earnings    NUMERIC(20, 8) NOT NULL DEFAULT 0
                      CONSTRAINT creator_profiles_total_earnings_nonnegative
                      CHECK (total_earnings >= 0),
    pending_earnings  NUMERIC(20, 8) NOT NULL DEFAULT 0
                      CONSTRAINT creator_profiles_pending_earnings_nonnegative
                      CHECK (pending_earnings >= 0),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER creator_profiles_set_updated_at BEFORE UPDATE ON creator_profiles
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Rotating refresh tokens. Reuse of a rotated token (replaced_by set) means the family leaked:
-- the whole family is revoked, hence the family_id index.
CREATE TABLE refresh_tokens (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id    UUID NOT NULL,
    -- Only the SHA-256 of the token is kept; lowercase hex so lookups need no normalising.
    token_hash   CHAR(64) NOT NULL UNIQUE
                 CONSTRAINT refresh_tokens_token_hash_hex CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    replaced_by  UUID REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires_at_idx ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_replaced_by_idx ON refresh_tokens (replaced_by)
    WHERE replaced_by IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Agents
-- ---------------------------------------------------------------------------------------------

CREATE TABLE agents (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id        UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name              TEXT NOT NULL
                      CONSTRAINT agents_name_length
                      CHECK (char_length(btrim(name)) BETWEEN 1 AND 100),
    description       TEXT
                      CONSTRAINT agents_description_length
                      CHECK (char_length(description) <= 20000),
    category          TEXT
                      CONSTRAINT agents_category_length
                      CHECK (char_length(category) BETWEEN 1 AND 50),
    -- draft: never reachable through the gateway; active: listed and callable; inactive:
    -- unpublished by its creator; suspended: taken down by an admin (the creator cannot
    -- republish it).
    status            TEXT NOT NULL DEFAULT 'draft'
                      CONSTRAINT agents_status_valid
                      CHECK (status IN ('draft', 'active', 'inactive', 'suspended')),
    -- AES-256-GCM envelope (format byte, key id, nonce, ciphertext, tag) sealed with the agent
    -- id and version as associated data. The envelope is self-describing; config_key_id
    -- duplicates its key id only so that key rotation can find the rows still sealed with an
    -- old key through an index, without decrypting or parsing every row. 28 bytes is nonce +
    -- tag, the floor for any GCM envelope whatever its framing.
    config_encrypted  BYTEA NOT NULL
                      CONSTRAINT agents_config_encrypted_size
                      CHECK (octet_length(config_encrypted) > 28),
    config_key_id     TEXT NOT NULL
                      CONSTRAINT agents_config_key_id_format
                      CHECK (config_key_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    -- The API enforces the configurable $0.001-$100 range; the database only refuses what no
    -- configuration could make valid. Six decimals: the price must convert exactly to the
    -- integer micro-dollars Redis holds.
    price_per_call    NUMERIC(12, 6) NOT NULL
                      CONSTRAINT agents_price_per_call_range
                      CHECK (price_per_call > 0 AND price_per_call <= 1000000),
    -- Bumped on every config change; the gateway's decrypted-config cache is keyed by
    -- (id, version), so a bump is what makes every instance drop its stale copy.
    version           INT NOT NULL DEFAULT 1
                      CONSTRAINT agents_version_positive CHECK (version >= 1),
    total_calls       BIGINT NOT NULL DEFAULT 0
                      CONSTRAINT agents_total_calls_nonnegative CHECK (total_calls >= 0),
    total_revenue     NUMERIC(20, 8) NOT NULL DEFAULT 0
                      CONSTRAINT agents_total_revenue_nonnegative CHECK (total_revenue >= 0),
    -- Approved reviews only. Keeping the integer sum (not a running float average) makes the
    -- average exact and lets approve/reject/delete adjust it with plain additions. Every
    -- rating is 1..5, so the sum is bounded by the count on both sides.
    rating_sum        BIGINT NOT NULL DEFAULT 0,
    review_count      INT NOT NULL DEFAULT 0
                      CONSTRAINT agents_review_count_nonnegative CHECK (review_count >= 0),
    -- Derived, never written: it cannot drift from rating_sum/review_count, and it is a real
    -- column so the marketplace can index and sort on it.
    average_rating    NUMERIC(3, 2) GENERATED ALWAYS AS (
                          CASE WHEN review_count = 0 THEN 0
                               ELSE round(rating_sum::numeric / review_count, 2)
                          END
                      ) STORED,
    -- ERC-721 token ids are uint256, which BIGINT cannot hold.
    token_id          NUMERIC(78, 0) UNIQUE
                      CONSTRAINT agents_token_id_uint256
                      CHECK (token_id >= 0 AND token_id < 2::numeric ^ 256),
    token_tx_hash     TEXT
                      CONSTRAINT agents_token_tx_hash_format
                      CHECK (token_tx_hash ~ '^0x[0-9a-fA-F]{64}$'),
    featured          BOOLEAN NOT NULL DEFAULT false,
    -- Weighted so a hit in the name outranks one in the category, which outranks the
    -- description (ts_rank honours the weights). STORED so searches read it, never compute it.
    -- 'english' stems ("summarises" finds "summarise"); queries must use the same config.
    search_vector     tsvector GENERATED ALWAYS AS (
                          setweight(to_tsvector('english'::regconfig, coalesce(name, '')), 'A')
                          || setweight(
                              to_tsvector('english'::regconfig, coalesce(category, '')), 'B'
                          )
                          || setweight(
                              to_tsvector('english'::regconfig, coalesce(description, '')), 'C'
                          )
                      ) STORED,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at      TIMESTAMPTZ,
    CONSTRAINT agents_rating_sum_bounds
        CHECK (rating_sum BETWEEN review_count AND 5::bigint * review_count),
    -- "Newest" sorts by published_at; an active agent without one would sort nowhere.
    CONSTRAINT agents_active_has_published_at
        CHECK (status <> 'active' OR published_at IS NOT NULL),
    CONSTRAINT agents_token_mint_complete CHECK ((token_id IS NULL) = (token_tx_hash IS NULL))
);
CREATE INDEX agents_creator_idx ON agents (creator_id, created_at DESC);
CREATE INDEX agents_status_idx ON agents (status, created_at DESC);
CREATE INDEX agents_config_key_id_idx ON agents (config_key_id);
CREATE INDEX agents_search_vector_idx ON agents USING gin (search_vector);
-- Marketplace listings only ever show active agents, so the sort indexes are partial: smaller,
-- and unaffected by drafts. The id tail makes keyset pagination stable among equal keys.
-- total_calls is bumped by the usage worker in batches (one UPDATE per agent per flush, not
-- per call), which keeps the churn on the popularity index modest.
CREATE INDEX agents_market_popular_idx ON agents (total_calls DESC, id) WHERE status = 'active';
CREATE INDEX agents_market_rating_idx ON agents (average_rating DESC, review_count DESC, id)
    WHERE status = 'active';
CREATE INDEX agents_market_price_idx ON agents (price_per_call, id) WHERE status = 'active';
CREATE INDEX agents_market_newest_idx ON agents (published_at DESC, id) WHERE status = 'active';
CREATE INDEX agents_market_category_idx ON agents (category, total_calls DESC, id)
    WHERE status = 'active';
CREATE INDEX agents_market_featured_idx ON agents (published_at DESC, id)
    WHERE status = 'active' AND featured;
CREATE TRIGGER agents_set_updated_at BEFORE UPDATE ON agents
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Immutable history: one row per published config, so any version can be shown, diffed or
-- restored (seed property 9), and call_logs.agent_version always resolves to what ran.
CREATE TABLE agent_versions (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id          UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    version           INT NOT NULL CONSTRAINT agent_versions_version_positive CHECK (version >= 1),
    -- Sealed with this version's own associated data (agent id, version), exactly as the live
    -- row was; key rotation must re-encrypt these too, hence the key id and its index.
    config_encrypted  BYTEA NOT NULL
                      CONSTRAINT agent_versions_config_encrypted_size
                      CHECK (octet_length(config_encrypted) > 28),
    config_key_id     TEXT NOT NULL
                      CONSTRAINT agent_versions_config_key_id_format
                      CHECK (config_key_id ~ '^[A-Za-z0-9_-]{1,32}$'),
    price_per_call    NUMERIC(12, 6) NOT NULL
                      CONSTRAINT agent_versions_price_per_call_range
                      CHECK (price_per_call > 0 AND price_per_call <= 1000000),
    name              TEXT NOT NULL
                      CONSTRAINT agent_versions_name_length
                      CHECK (char_length(btrim(name)) BETWEEN 1 AND 100),
    description       TEXT
                      CONSTRAINT agent_versions_description_length
                      CHECK (char_length(description) <= 20000),
    category          TEXT
                      CONSTRAINT agent_versions_category_length
                      CHECK (char_length(category) BETWEEN 1 AND 50),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT agent_versions_agent_version_key UNIQUE (agent_id, version)
);
CREATE INDEX agent_versions_config_key_id_idx ON agent_versions (config_key_id);

-- ---------------------------------------------------------------------------------------------
-- Developer access: keys, quota, trials
-- ---------------------------------------------------------------------------------------------

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the key, lowercase hex: the gateway looks keys up by exactly this string.
    key_hash      CHAR(64) NOT NULL UNIQUE
                  CONSTRAINT api_keys_key_hash_hex CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    -- "ak_" + the first characters of the key, for the developer to recognise it; never
    -- enough of the key to matter.
    key_prefix    VARCHAR(8) NOT NULL
                  CONSTRAINT api_keys_key_prefix_format CHECK (key_prefix ~ '^ak_[0-9A-Za-z]*$'),
    name          TEXT CONSTRAINT api_keys_name_length CHECK (char_length(name) <= 100),
    permissions   JSONB NOT NULL DEFAULT '{}'
                  CONSTRAINT api_keys_permissions_object
                  CHECK (jsonb_typeof(permissions) = 'object'),
    last_used_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Revocation is a timestamp, not a delete: call_logs keep pointing at the key, and the
    -- dashboard can still show what a revoked key did.
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id, created_at DESC);

-- Postgres copy of each developer's quota. Redis holds the live counter (admission reserves
-- against it atomically); the worker folds usage back here, so Redis can be rebuilt from it.
-- Remaining = total_quota + free_quota - used_quota. There is deliberately no CHECK that
-- used <= total + free: a refund of already-consumed quota must be recordable as it happened.
CREATE TABLE quotas (
    user_id      UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    total_quota  BIGINT NOT NULL DEFAULT 0
                 CONSTRAINT quotas_total_nonnegative CHECK (total_quota >= 0),
    used_quota   BIGINT NOT NULL DEFAULT 0
                 CONSTRAINT quotas_used_nonnegative CHECK (used_quota >= 0),
    -- Seed property 35: every new developer starts with this many free units.
    free_quota   BIGINT NOT NULL DEFAULT 100
                 CONSTRAINT quotas_free_nonnegative CHECK (free_quota >= 0),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER quotas_set_updated_at BEFORE UPDATE ON quotas
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Seed property 25: exactly 3 free trial calls per (developer, agent) pair. Redis enforces it
-- on the hot path; this row is its durable copy and refuses a fourth.
CREATE TABLE trial_usage (
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    agent_id    UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    calls_used  INT NOT NULL DEFAULT 0
                CONSTRAINT trial_usage_calls_used_range CHECK (calls_used BETWEEN 0 AND 3),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, agent_id)
);
-- The PK serves per-user lookups; this one serves the agent's cascade and per-agent stats.
CREATE INDEX trial_usage_agent_idx ON trial_usage (agent_id);
CREATE TRIGGER trial_usage_set_updated_at BEFORE UPDATE ON trial_usage
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Money in: payments
-- ---------------------------------------------------------------------------------------------

CREATE TABLE payments (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount_usd       NUMERIC(12, 2) NOT NULL
                     CONSTRAINT payments_amount_positive CHECK (amount_usd > 0),
    quota_purchased  BIGINT NOT NULL
                     CONSTRAINT payments_quota_purchased_positive CHECK (quota_purchased > 0),
    payment_method   TEXT NOT NULL
                     CONSTRAINT payments_method_valid
                     CHECK (payment_method IN ('stripe', 'coinbase')),
    -- The provider's id (checkout session / charge). NULL until the provider has issued one.
    payment_id       TEXT
                     CONSTRAINT payments_payment_id_length
                     CHECK (char_length(payment_id) BETWEEN 1 AND 255),
    status           TEXT NOT NULL DEFAULT 'pending'
                     CONSTRAINT payments_status_valid
                     CHECK (status IN ('pending', 'completed', 'failed', 'refunded')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at     TIMESTAMPTZ,
    -- One provider payment credits quota at most once, however often its webhook arrives.
    CONSTRAINT payments_provider_payment_key UNIQUE (payment_method, payment_id),
    -- A refund reverses a completed payment, so both carry the completion time.
    CONSTRAINT payments_completed_has_completed_at
        CHECK (status NOT IN ('completed', 'refunded') OR completed_at IS NOT NULL)
);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);
CREATE INDEX payments_pending_idx ON payments (created_at) WHERE status = 'pending';
CREATE TRIGGER payments_set_updated_at BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Webhook idempotency: providers deliver at least once. The handler inserts the event with
-- ON CONFLICT DO NOTHING in the same transaction as its effect (crediting quota); a
-- redelivery inserts nothing and therefore does nothing.
CREATE TABLE payment_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider     TEXT NOT NULL
                 CONSTRAINT payment_events_provider_valid
                 CHECK (provider IN ('stripe', 'coinbase')),
    event_id     TEXT NOT NULL
                 CONSTRAINT payment_events_event_id_length
                 CHECK (char_length(event_id) BETWEEN 1 AND 255),
    event_type   TEXT,
    payload      JSONB NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT payment_events_provider_event_key UNIQUE (provider, event_id)
);

-- ---------------------------------------------------------------------------------------------
-- Money out: settlements and withdrawals
-- ---------------------------------------------------------------------------------------------

CREATE TABLE settlements (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id    UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL,
    amount        NUMERIC(20, 8) NOT NULL
                  CONSTRAINT settlements_amount_nonnegative CHECK (amount >= 0),
    platform_fee  NUMERIC(20, 8) NOT NULL
                  CONSTRAINT settlements_platform_fee_nonnegative CHECK (platform_fee >= 0),
    net_amount    NUMERIC(20, 8) NOT NULL
                  CONSTRAINT settlements_net_amount_nonnegative CHECK (net_amount >= 0),
    tx_hash       TEXT
                  CONSTRAINT settlements_tx_hash_format CHECK (tx_hash ~ '^0x[0-9a-fA-F]{64}$'),
    status        TEXT NOT NULL DEFAULT 'pending'
                  CONSTRAINT settlements_status_valid
                  CHECK (status IN ('pending', 'processing', 'settled', 'failed')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at    TIMESTAMPTZ,
    -- Seed property 15, exactly: NUMERIC arithmetic, no rounding slack.
    CONSTRAINT settlements_net_is_amount_minus_fee CHECK (net_amount = amount - platform_fee),
    CONSTRAINT settlements_period_order CHECK (period_end > period_start),
    CONSTRAINT settlements_settled_has_settled_at
        CHECK (status <> 'settled' OR settled_at IS NOT NULL),
    -- A re-run of the settlement job for the same period is a no-op (ON CONFLICT) ...
    CONSTRAINT settlements_creator_period_key UNIQUE (creator_id, period_start, period_end),
    -- ... and no two settlements of one creator may cover the same instant, which is what
    -- actually prevents paying the same calls twice (e.g. a daily run inside a monthly one).
    -- A failed settlement is retried by updating its row, never by a second row.
    CONSTRAINT settlements_no_overlapping_periods EXCLUDE USING gist (
        creator_id WITH =, tstzrange(period_start, period_end, '[)') WITH &&
    )
);
CREATE INDEX settlements_open_idx ON settlements (created_at)
    WHERE status IN ('pending', 'processing');
CREATE TRIGGER settlements_set_updated_at BEFORE UPDATE ON settlements
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE withdrawals (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    creator_id      UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    amount          NUMERIC(20, 8) NOT NULL
                    CONSTRAINT withdrawals_amount_positive CHECK (amount > 0),
    fee             NUMERIC(20, 8) NOT NULL CONSTRAINT withdrawals_fee_nonnegative CHECK (fee >= 0),
    net_amount      NUMERIC(20, 8) NOT NULL
                    CONSTRAINT withdrawals_net_amount_nonnegative CHECK (net_amount >= 0),
    -- Copied from the profile at request time: a later wallet change must not redirect a
    -- withdrawal that is already on its way.
    wallet_address  TEXT NOT NULL
                    CONSTRAINT withdrawals_wallet_address_format
                    CHECK (wallet_address ~ '^0x[0-9a-fA-F]{40}$'),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CONSTRAINT withdrawals_status_valid
                    CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    tx_hash         TEXT
                    CONSTRAINT withdrawals_tx_hash_format CHECK (tx_hash ~ '^0x[0-9a-fA-F]{64}$'),
    failure_reason  TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at    TIMESTAMPTZ,
    -- Seed property 16.
    CONSTRAINT withdrawals_net_is_amount_minus_fee CHECK (net_amount = amount - fee),
    -- Money that left must be traceable on chain; money that did not must say why (and the
    -- application returns it to the balance, seed property 32).
    CONSTRAINT withdrawals_completed_is_traceable
        CHECK (status <> 'completed' OR (tx_hash IS NOT NULL AND completed_at IS NOT NULL)),
    CONSTRAINT withdrawals_failed_has_reason
        CHECK (status <> 'failed' OR failure_reason IS NOT NULL)
);
CREATE INDEX withdrawals_creator_idx ON withdrawals (creator_id, created_at DESC);
CREATE INDEX withdrawals_open_idx ON withdrawals (created_at)
    WHERE status IN ('pending', 'processing');
CREATE TRIGGER withdrawals_set_updated_at BEFORE UPDATE ON withdrawals
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Reviews
-- ---------------------------------------------------------------------------------------------

CREATE TABLE reviews (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id      UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    -- RESTRICT: an approved review is counted in agents.rating_sum; silently cascading it
    -- away would leave the average wrong.
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    rating        SMALLINT NOT NULL CONSTRAINT reviews_rating_range CHECK (rating BETWEEN 1 AND 5),
    content       TEXT CONSTRAINT reviews_content_length CHECK (char_length(content) <= 5000),
    status        TEXT NOT NULL DEFAULT 'pending'
                  CONSTRAINT reviews_status_valid
                  CHECK (status IN ('pending', 'approved', 'rejected')),
    moderated_by  UUID REFERENCES users (id) ON DELETE SET NULL,
    moderated_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Seed property 23: one review per developer per agent, even under concurrent submits.
    CONSTRAINT reviews_agent_user_key UNIQUE (agent_id, user_id),
    CONSTRAINT reviews_moderated_has_moderated_at
        CHECK (status = 'pending' OR moderated_at IS NOT NULL)
);
CREATE INDEX reviews_agent_approved_idx ON reviews (agent_id, created_at DESC)
    WHERE status = 'approved';
CREATE INDEX reviews_user_idx ON reviews (user_id);
-- The admin moderation queue, oldest first.
CREATE INDEX reviews_pending_idx ON reviews (created_at) WHERE status = 'pending';
CREATE INDEX reviews_moderated_by_idx ON reviews (moderated_by) WHERE moderated_by IS NOT NULL;
CREATE TRIGGER reviews_set_updated_at BEFORE UPDATE ON reviews
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Outgoing webhooks
-- ---------------------------------------------------------------------------------------------

CREATE TABLE webhooks (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id           UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- An absolute http(s) URL with a host and no whitespace. Which hosts are allowed (no
    -- private addresses: SSRF) is decided by the application at registration and delivery.
    url               TEXT NOT NULL
                      CONSTRAINT webhooks_url_http
                      CHECK (
                          char_length(url) <= 2048
                          AND url ~ '^https?://[^[:space:]/?#]+([/?#][^[:space:]]*)?$'
                      ),
    -- A non-empty JSON array of event names, e.g. ["quota.low", "call.completed"].
    events            JSONB NOT NULL
                      CONSTRAINT webhooks_events_array CHECK (jsonb_typeof(events) = 'array'),
    -- The signing secret must be recoverable to sign each delivery, so it cannot be hashed;
    -- it is sealed with the platform's AES-GCM key ring, in an envelope carrying its key id.
    secret_encrypted  BYTEA NOT NULL
                      CONSTRAINT webhooks_secret_encrypted_size
                      CHECK (octet_length(secret_encrypted) > 28),
    active            BOOLEAN NOT NULL DEFAULT true,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- CASE, not AND: SQL does not promise to short-circuit, and jsonb_array_length raises on
    -- a non-array.
    CONSTRAINT webhooks_events_nonempty_strings CHECK (
        CASE WHEN jsonb_typeof(events) = 'array'
             THEN jsonb_array_length(events) BETWEEN 1 AND 100
                  AND NOT jsonb_path_exists(events, '$[*] ? (@.type() != "string")')
             ELSE false
        END
    )
);
CREATE INDEX webhooks_user_idx ON webhooks (user_id) WHERE active;
CREATE TRIGGER webhooks_set_updated_at BEFORE UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The delivery outbox. A row is written in the same transaction as the event it reports, so
-- an event is never lost or sent for a change that rolled back; the worker then delivers.
CREATE TABLE webhook_deliveries (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- CASCADE: a deleted endpoint has nowhere to deliver to.
    webhook_id        UUID NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- The event's own id (also sent to the receiver for its own de-duplication). Unique per
    -- endpoint, so enqueuing the same event twice is a no-op (ON CONFLICT DO NOTHING).
    event_id          TEXT NOT NULL
                      CONSTRAINT webhook_deliveries_event_id_length
                      CHECK (char_length(event_id) BETWEEN 1 AND 255),
    event_type        TEXT NOT NULL,
    payload           JSONB NOT NULL,
    status            TEXT NOT NULL DEFAULT 'pending'
                      CONSTRAINT webhook_deliveries_status_valid
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    -- Seed property 24 allows 3 retries; 10 is the hard ceiling any configuration may use.
    attempts          INT NOT NULL DEFAULT 0
                      CONSTRAINT webhook_deliveries_attempts_range
                      CHECK (attempts BETWEEN 0 AND 10),
    next_attempt_at   TIMESTAMPTZ DEFAULT now(),
    last_status_code  INT
                      CONSTRAINT webhook_deliveries_status_code_range
                      CHECK (last_status_code BETWEEN 100 AND 599),
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at      TIMESTAMPTZ,
    CONSTRAINT webhook_deliveries_webhook_event_key UNIQUE (webhook_id, event_id),
    -- A pending row without a due time would never be picked up.
    CONSTRAINT webhook_deliveries_pending_is_scheduled
        CHECK (status <> 'pending' OR next_attempt_at IS NOT NULL),
    CONSTRAINT webhook_deliveries_delivered_has_delivered_at
        CHECK (status <> 'delivered' OR delivered_at IS NOT NULL)
);
-- The worker's scan: WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY
-- next_attempt_at ... FOR UPDATE SKIP LOCKED. Partial, so finished rows cost it nothing.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_created_idx ON webhook_deliveries (created_at);

-- ---------------------------------------------------------------------------------------------
-- Admin: audit log and feature flags
-- ---------------------------------------------------------------------------------------------

-- Who did what, append-only. actor_id deliberately has no foreign key: the record must
-- survive whatever happens to the account, and writing it must never fail on one.
CREATE TABLE audit_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor_id     UUID,
    actor_role   TEXT,
    action       TEXT NOT NULL
                 CONSTRAINT audit_log_action_format CHECK (action ~ '^[a-z][a-z0-9_.:-]{0,99}$'),
    target_type  TEXT,
    target_id    TEXT,
    details      JSONB NOT NULL DEFAULT '{}',
    ip           INET,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_created_at_idx ON audit_log (created_at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, created_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, created_at DESC);

-- An audit trail that the application can rewrite is not one. Retention is an operator's
-- job: TRUNCATE, or DELETE with this trigger disabled by the table owner.
CREATE FUNCTION audit_log_forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_forbid_change();

CREATE TABLE feature_flags (
    key          TEXT PRIMARY KEY
                 CONSTRAINT feature_flags_key_format CHECK (key ~ '^[a-z][a-z0-9_]{0,63}$'),
    enabled      BOOLEAN NOT NULL DEFAULT false,
    description  TEXT NOT NULL DEFAULT '',
    updated_by   UUID REFERENCES users (id) ON DELETE SET NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TRIGGER feature_flags_set_updated_at BEFORE UPDATE ON feature_flags
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The seed's flags. What needs outside accounts or contracts (crypto payments, minting) starts
-- off; what the platform does by itself starts on.
INSERT INTO feature_flags (key, enabled, description) VALUES
    ('enable_crypto_payments', false, 'Accept Coinbase Commerce payments for quota.'),
    ('enable_blockchain_mint', false, 'Mint an ERC-721 token when an agent is published.'),
    ('enable_rag', true, 'Retrieve knowledge-base chunks into agent prompts.'),
    ('enable_webhooks', true, 'Deliver outgoing webhooks to developer endpoints.'),
    ('enable_trial_mode', true, 'Allow 3 free trial calls per developer and agent.'),
    ('maintenance_mode', false, 'Serve a maintenance error instead of normal operation.');
