-- Money out and the numbers both sides look at: creator balances, earnings accruals and
-- settlements, withdrawals through payout providers, usage rollups for analytics, and the
-- developer-webhook outbox.
--
-- Everything derived from call_logs (accruals, rollups) is maintained by ONE statement-level
-- trigger on call_logs, so it moves in the same transaction as the insert, exactly once per
-- new row: a redelivered usage event hits ON CONFLICT DO NOTHING, never reaches the trigger's
-- transition table and so moves nothing. Whoever inserts call_logs (the usage worker, the
-- reaper's events, a backfill) cannot forget it.

-- ---------------------------------------------------------------------------------------------
-- Creator balances
-- ---------------------------------------------------------------------------------------------

-- pending_earnings (0001) is gross revenue not yet settled; available_balance is settled net
-- revenue that may be withdrawn (a withdrawal takes its amount out at request time and a failed
-- payout puts it back); total_earnings is the lifetime settled net. A constant DEFAULT makes the
-- new column a catalog-only change.
ALTER TABLE creator_profiles
    ADD COLUMN available_balance NUMERIC(20, 8) NOT NULL DEFAULT 0
        CONSTRAINT creator_profiles_available_balance_nonnegative CHECK (available_balance >= 0),
    -- The creator's Stripe Connect account (payouts by Stripe transfer).
    ADD COLUMN stripe_account_id TEXT
        CONSTRAINT creator_profiles_stripe_account_id_format
        CHECK (stripe_account_id ~ '^acct_[A-Za-z0-9_]{1,64}$');
CREATE UNIQUE INDEX creator_profiles_stripe_account_key ON creator_profiles (stripe_account_id)
    WHERE stripe_account_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Earnings accruals and settlements
-- ---------------------------------------------------------------------------------------------

-- Billable revenue per creator per hour of INGESTION (not of the call): the late-arrival rule.
-- A settlement takes every unsettled accrual of its creator that started before its period's
-- end and marks it with its id, under row locks. An ingestion that finds its hour's accrual
-- already settled adds to the next hour's instead (call_logs_rollup below), so usage the worker
-- wrote late lands in the next settlement: never lost, never counted twice. The sum of a
-- creator's unsettled accruals equals creator_profiles.pending_earnings.
CREATE TABLE earnings_accruals (
    creator_id     UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    accrued_hour   TIMESTAMPTZ NOT NULL
                   CONSTRAINT earnings_accruals_whole_hour
                   CHECK (date_bin('1 hour', accrued_hour, TIMESTAMPTZ '2000-01-01 00:00:00+00')
                          = accrued_hour),
    gross          NUMERIC(20, 8) NOT NULL DEFAULT 0
                   CONSTRAINT earnings_accruals_gross_nonnegative CHECK (gross >= 0),
    calls          BIGINT NOT NULL DEFAULT 0
                   CONSTRAINT earnings_accruals_calls_nonnegative CHECK (calls >= 0),
    settlement_id  UUID REFERENCES settlements (id) ON DELETE RESTRICT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (creator_id, accrued_hour)
);
CREATE INDEX earnings_accruals_unsettled_idx ON earnings_accruals (accrued_hour, creator_id)
    WHERE settlement_id IS NULL;
CREATE INDEX earnings_accruals_settlement_idx ON earnings_accruals (settlement_id)
    WHERE settlement_id IS NOT NULL;
CREATE TRIGGER earnings_accruals_set_updated_at BEFORE UPDATE ON earnings_accruals
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- What a settlement was computed from: its calls and the fee rate then in force.
ALTER TABLE settlements
    ADD COLUMN calls BIGINT NOT NULL DEFAULT 0
        CONSTRAINT settlements_calls_nonnegative CHECK (calls >= 0),
    ADD COLUMN fee_percent NUMERIC(5, 2) NOT NULL DEFAULT 0
        CONSTRAINT settlements_fee_percent_range CHECK (fee_percent BETWEEN 0 AND 100);
CREATE INDEX settlements_creator_idx ON settlements (creator_id, period_end DESC);
CREATE INDEX settlements_period_end_idx ON settlements (period_end DESC, id);

-- Revenue earned before this migration has no accruals yet: it becomes one accrual per creator,
-- settled with the next period.
INSERT INTO earnings_accruals (creator_id, accrued_hour, gross)
SELECT user_id, date_bin('1 hour', now(), TIMESTAMPTZ '2000-01-01 00:00:00+00'), pending_earnings
FROM creator_profiles WHERE pending_earnings > 0;

-- ---------------------------------------------------------------------------------------------
-- Withdrawals through payout providers
-- ---------------------------------------------------------------------------------------------

-- 0001 modelled only on-chain payouts (a wallet and a tx hash). A withdrawal now names its
-- payout provider ('ledger' records only; 'stripe' is a Stripe Connect transfer; 'onchain' is
-- reserved for the blockchain payout) and the provider's reference for the money that left.
ALTER TABLE withdrawals
    ALTER COLUMN wallet_address DROP NOT NULL,
    ADD COLUMN payout_provider TEXT NOT NULL DEFAULT 'ledger'
        CONSTRAINT withdrawals_payout_provider_valid
        CHECK (payout_provider IN ('ledger', 'stripe', 'onchain')),
    -- Where the money goes, copied at request time (a Connect account id, a wallet).
    ADD COLUMN destination TEXT
        CONSTRAINT withdrawals_destination_length CHECK (char_length(destination) <= 255),
    ADD COLUMN provider_reference TEXT
        CONSTRAINT withdrawals_provider_reference_length
        CHECK (char_length(provider_reference) BETWEEN 1 AND 255),
    -- The client's Idempotency-Key: a retried request returns the first withdrawal.
    ADD COLUMN request_key TEXT
        CONSTRAINT withdrawals_request_key_length CHECK (char_length(request_key) BETWEEN 1 AND 255),
    -- Payout attempts. Every attempt sends the same idempotency key (the withdrawal id), and an
    -- attempt after one whose outcome is unknown first asks the provider what happened.
    ADD COLUMN attempts INT NOT NULL DEFAULT 0
        CONSTRAINT withdrawals_attempts_nonnegative CHECK (attempts >= 0),
    ADD COLUMN next_attempt_at TIMESTAMPTZ DEFAULT now(),
    ADD COLUMN last_error TEXT
        CONSTRAINT withdrawals_last_error_length CHECK (char_length(last_error) <= 1000),
    DROP CONSTRAINT withdrawals_completed_is_traceable,
    ADD CONSTRAINT withdrawals_completed_is_traceable
        CHECK (status <> 'completed' OR (provider_reference IS NOT NULL AND completed_at IS NOT NULL)),
    ADD CONSTRAINT withdrawals_open_is_scheduled
        CHECK (status NOT IN ('pending', 'processing') OR next_attempt_at IS NOT NULL);
CREATE UNIQUE INDEX withdrawals_request_key ON withdrawals (creator_id, request_key)
    WHERE request_key IS NOT NULL;
CREATE INDEX withdrawals_due_idx ON withdrawals (next_attempt_at)
    WHERE status IN ('pending', 'processing');

-- ---------------------------------------------------------------------------------------------
-- Usage rollups (analytics)
-- ---------------------------------------------------------------------------------------------

-- Latency histograms: bucket i (1-based) counts latencies in [bounds[i], bounds[i + 1]) ms; the
-- bounds grow by 2^(1/4), so a percentile read from a histogram is within ~10% of the exact
-- value. control_plane/analytics/histogram.py holds the same list (a test compares them).
CREATE FUNCTION latency_bucket_bounds() RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 16, 19, 23, 27, 32, 38, 45, 54, 64, 76,
                 91, 108, 128, 152, 181, 215, 256, 304, 362, 431, 512, 609, 724, 861, 1024, 1218,
                 1448, 1722, 2048, 2435, 2896, 3444, 4096, 4871, 5793, 6889, 8192, 9742, 11585,
                 13777, 16384, 19484, 23170, 27554, 32768, 38968, 46341, 55109, 65536, 77936,
                 92682, 110218, 131072, 155872, 185364, 220436, 262144, 311744]
$$;

-- The histogram (one count per bucket) of a set of latencies.
CREATE FUNCTION latency_histogram(latencies int[]) RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(c.n, 0)::int ORDER BY g.i)
    FROM generate_series(1, cardinality(latency_bucket_bounds())) AS g (i)
    LEFT JOIN (
        SELECT width_bucket(greatest(l, 0), latency_bucket_bounds()) AS b, count(*) AS n
        FROM unnest(latencies) AS l WHERE l IS NOT NULL GROUP BY 1
    ) c ON c.b = g.i
$$;

CREATE FUNCTION histogram_add(a int[], b int[]) RETURNS int[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i)
    FROM unnest(a, b) WITH ORDINALITY AS t (x, y, i)
$$;

-- Per agent per UTC hour, and per agent per UTC day (what a creator's dashboard reads).
-- Latency is of successful calls only: an error's latency says little about the agent.
-- `developers` is the number of distinct developers who called the agent in the bucket.
CREATE TABLE usage_agent_hourly (
    agent_id          UUID NOT NULL,
    hour              TIMESTAMPTZ NOT NULL,
    calls             BIGINT NOT NULL,
    billable_calls    BIGINT NOT NULL,
    successful_calls  BIGINT NOT NULL,
    error_calls       BIGINT NOT NULL,
    units             BIGINT NOT NULL,
    revenue           NUMERIC(20, 6) NOT NULL,
    input_tokens      BIGINT NOT NULL,
    output_tokens     BIGINT NOT NULL,
    latency_sum_ms    BIGINT NOT NULL,
    latency_histogram int[] NOT NULL,
    developers        BIGINT NOT NULL,
    PRIMARY KEY (agent_id, hour)
);
CREATE TABLE usage_agent_daily (
    agent_id          UUID NOT NULL,
    day               DATE NOT NULL,
    calls             BIGINT NOT NULL,
    billable_calls    BIGINT NOT NULL,
    successful_calls  BIGINT NOT NULL,
    error_calls       BIGINT NOT NULL,
    units             BIGINT NOT NULL,
    revenue           NUMERIC(20, 6) NOT NULL,
    input_tokens      BIGINT NOT NULL,
    output_tokens     BIGINT NOT NULL,
    latency_sum_ms    BIGINT NOT NULL,
    latency_histogram int[] NOT NULL,
    developers        BIGINT NOT NULL,
    PRIMARY KEY (agent_id, day)
);
-- Distinct developers across all of a creator's agents, per bucket.
CREATE TABLE usage_creator_hourly (
    creator_id  UUID NOT NULL,
    hour        TIMESTAMPTZ NOT NULL,
    developers  BIGINT NOT NULL,
    PRIMARY KEY (creator_id, hour)
);
CREATE TABLE usage_creator_daily (
    creator_id  UUID NOT NULL,
    day         DATE NOT NULL,
    developers  BIGINT NOT NULL,
    PRIMARY KEY (creator_id, day)
);

-- Distinct developers do not add up across buckets, so the sets are kept, with the buckets
-- each member was seen in as a bitmask: per day with a 24-bit mask of hours, per month with a
-- 31-bit mask of days. A member's bit going from 0 to 1 is a new distinct developer of that
-- hour or day (the counters above, found with PostgreSQL 18's RETURNING old/new); a range's
-- distinct developers are the members whose masks meet the range's: whole days from the
-- monthly sets (one row per developer per month), partial days from the daily ones. The masks
-- are INCLUDEd in the keys so that these counts are index-only scans: a set's rows are written
-- over a month and so lie scattered over the heap.
CREATE TABLE usage_agent_developers_daily (
    agent_id  UUID NOT NULL,
    day       DATE NOT NULL,
    user_id   UUID NOT NULL,
    hours     int NOT NULL,
    PRIMARY KEY (agent_id, day, user_id) INCLUDE (hours)
);
CREATE TABLE usage_agent_developers_monthly (
    agent_id  UUID NOT NULL,
    month     DATE NOT NULL,
    user_id   UUID NOT NULL,
    days      int NOT NULL,
    PRIMARY KEY (agent_id, month, user_id) INCLUDE (days)
);
CREATE TABLE usage_creator_developers_daily (
    creator_id  UUID NOT NULL,
    day         DATE NOT NULL,
    user_id     UUID NOT NULL,
    hours       int NOT NULL,
    PRIMARY KEY (creator_id, day, user_id) INCLUDE (hours)
);
CREATE TABLE usage_creator_developers_monthly (
    creator_id  UUID NOT NULL,
    month       DATE NOT NULL,
    user_id     UUID NOT NULL,
    days        int NOT NULL,
    PRIMARY KEY (creator_id, month, user_id) INCLUDE (days)
);
-- Per developer, key, agent and UTC hour: the developer's usage page.
CREATE TABLE usage_key_hourly (
    user_id          UUID NOT NULL,
    hour             TIMESTAMPTZ NOT NULL,
    api_key_id       UUID NOT NULL,
    agent_id         UUID NOT NULL,
    calls            BIGINT NOT NULL,
    billable_calls   BIGINT NOT NULL,
    successful_calls BIGINT NOT NULL,
    error_calls      BIGINT NOT NULL,
    units            BIGINT NOT NULL,
    spend            NUMERIC(20, 6) NOT NULL,
    input_tokens     BIGINT NOT NULL,
    output_tokens    BIGINT NOT NULL,
    PRIMARY KEY (user_id, hour, api_key_id, agent_id)
);

-- ---------------------------------------------------------------------------------------------
-- Developer webhooks
-- ---------------------------------------------------------------------------------------------

ALTER TABLE webhooks
    ADD COLUMN description TEXT
        CONSTRAINT webhooks_description_length CHECK (char_length(description) <= 500),
    -- quota.low fires when the remaining quota falls to this many units or fewer.
    ADD COLUMN quota_low_threshold BIGINT NOT NULL DEFAULT 10
        CONSTRAINT webhooks_quota_low_threshold_nonnegative CHECK (quota_low_threshold >= 0),
    -- Deliveries that ended failed in a row; reset by any success. Past a limit the worker
    -- disables the endpoint and says why.
    ADD COLUMN consecutive_failures INT NOT NULL DEFAULT 0
        CONSTRAINT webhooks_consecutive_failures_nonnegative CHECK (consecutive_failures >= 0),
    ADD COLUMN disabled_reason TEXT
        CONSTRAINT webhooks_disabled_reason_length CHECK (char_length(disabled_reason) <= 1000),
    ADD COLUMN disabled_at TIMESTAMPTZ;

-- The outcome of the last attempt, for the owner's delivery log (each attempt is in
-- webhook_delivery_attempts).
ALTER TABLE webhook_deliveries
    ADD COLUMN last_attempt_at TIMESTAMPTZ,
    ADD COLUMN last_latency_ms INT
        CONSTRAINT webhook_deliveries_last_latency_nonnegative CHECK (last_latency_ms >= 0);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);

CREATE TABLE webhook_delivery_attempts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  UUID NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      INT NOT NULL CONSTRAINT webhook_delivery_attempts_attempt_positive CHECK (attempt >= 1),
    status_code  INT CONSTRAINT webhook_delivery_attempts_status_code_range
                 CHECK (status_code BETWEEN 100 AND 599),
    latency_ms   INT CONSTRAINT webhook_delivery_attempts_latency_nonnegative CHECK (latency_ms >= 0),
    error        TEXT CONSTRAINT webhook_delivery_attempts_error_length CHECK (char_length(error) <= 1000),
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_delivery_attempts_delivery_idx ON webhook_delivery_attempts (delivery_id, attempt);

-- An event id as receivers see it: "evt_" + 32 hex digits.
CREATE FUNCTION new_event_id() RETURNS text
LANGUAGE sql VOLATILE AS $$ SELECT 'evt_' || replace(gen_random_uuid()::text, '-', '') $$;

-- quota.low / quota.exhausted, written with the quota change that crossed the line (usage
-- folded in by the worker, a refund taking units back), whoever made it.
CREATE FUNCTION quotas_webhook_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)
    SELECT w.id, new_event_id(), e.event_type,
           jsonb_build_object('user_id', n.user_id, 'remaining', e.remaining_after,
                              'threshold', w.quota_low_threshold,
                              'total_quota', n.total_quota, 'free_quota', n.free_quota,
                              'used_quota', n.used_quota)
    FROM new_quotas n
    JOIN old_quotas o USING (user_id)
    CROSS JOIN LATERAL (
        SELECT o.total_quota + o.free_quota - o.used_quota AS remaining_before,
               n.total_quota + n.free_quota - n.used_quota AS remaining_after
    ) r
    JOIN webhooks w ON w.user_id = n.user_id AND w.active
    CROSS JOIN LATERAL (
        SELECT 'quota.low'::text AS event_type, r.remaining_after
        WHERE r.remaining_before > w.quota_low_threshold
          AND r.remaining_after <= w.quota_low_threshold AND r.remaining_after > 0
        UNION ALL
        SELECT 'quota.exhausted', r.remaining_after
        WHERE r.remaining_before > 0 AND r.remaining_after <= 0
    ) e
    WHERE w.events ? e.event_type;
    RETURN NULL;
END
$$;
CREATE TRIGGER quotas_webhook_events AFTER UPDATE ON quotas
    REFERENCING OLD TABLE AS old_quotas NEW TABLE AS new_quotas
    FOR EACH STATEMENT EXECUTE FUNCTION quotas_webhook_events();

-- ---------------------------------------------------------------------------------------------
-- The call_logs trigger: rollups and accruals, once per new row
-- ---------------------------------------------------------------------------------------------

-- PostgreSQL 18: RETURNING old/new tells a set member's bits before and after the upsert.
CREATE FUNCTION call_logs_rollup() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
    accrual record;
    bucket timestamptz;
BEGIN
    -- Every upsert inserts in the order of its conflict key: two workers writing the same
    -- rows lock them in the same order, so they queue instead of deadlocking. Updates that
    -- would change nothing (a developer seen again in the same hour) are skipped.

    -- Per agent: the developer sets, then the sums with the new distinct developers.
    WITH calls AS (
        SELECT agent_id, user_id, created_at AT TIME ZONE 'UTC' AS utc FROM new_calls
    ),
    daily_set AS (
        INSERT INTO usage_agent_developers_daily AS p (agent_id, day, user_id, hours)
        SELECT agent_id, utc::date, user_id, bit_or(1 << extract(hour FROM utc)::int)
        FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (agent_id, day, user_id) DO UPDATE SET hours = p.hours | excluded.hours
            WHERE p.hours | excluded.hours <> p.hours
        RETURNING WITH (OLD AS was, NEW AS now)
            now.agent_id, now.day, coalesce(was.hours, 0) AS before, now.hours AS after
    ),
    monthly_set AS (
        INSERT INTO usage_agent_developers_monthly AS p (agent_id, month, user_id, days)
        SELECT agent_id, date_trunc('month', utc)::date, user_id,
               bit_or(1 << (extract(day FROM utc)::int - 1))
        FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (agent_id, month, user_id) DO UPDATE SET days = p.days | excluded.days
            WHERE p.days | excluded.days <> p.days
        RETURNING 1
    ),
    new_hourly AS (
        SELECT s.agent_id, (s.day + make_interval(hours => h)) AT TIME ZONE 'UTC' AS hour,
               count(*) AS developers
        FROM daily_set s, generate_series(0, 23) AS h
        WHERE (s.after & ~s.before & (1 << h)) <> 0
        GROUP BY 1, 2
    ),
    hourly AS (
        INSERT INTO usage_agent_hourly AS u
        SELECT g.*, coalesce(n.developers, 0)
        FROM (
            SELECT agent_id, date_bin('1 hour', created_at, origin) AS hour, count(*),
                   count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'success'),
                   count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
                   sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0),
                   coalesce(sum(output_tokens), 0),
                   coalesce(sum(latency_ms) FILTER (WHERE status = 'success'), 0),
                   latency_histogram(
                       coalesce(array_agg(latency_ms) FILTER (WHERE status = 'success'), '{}'))
            FROM new_calls GROUP BY 1, 2
        ) g
        LEFT JOIN new_hourly n USING (agent_id, hour)
        ORDER BY 1, 2
        ON CONFLICT (agent_id, hour) DO UPDATE SET
            calls = u.calls + excluded.calls,
            billable_calls = u.billable_calls + excluded.billable_calls,
            successful_calls = u.successful_calls + excluded.successful_calls,
            error_calls = u.error_calls + excluded.error_calls, units = u.units + excluded.units,
            revenue = u.revenue + excluded.revenue,
            input_tokens = u.input_tokens + excluded.input_tokens,
            output_tokens = u.output_tokens + excluded.output_tokens,
            latency_sum_ms = u.latency_sum_ms + excluded.latency_sum_ms,
            latency_histogram = histogram_add(u.latency_histogram, excluded.latency_histogram),
            developers = u.developers + excluded.developers
        RETURNING 1
    )
    INSERT INTO usage_agent_daily AS u
    SELECT g.*, coalesce(n.developers, 0)
    FROM (
        SELECT agent_id, (created_at AT TIME ZONE 'UTC')::date AS day, count(*),
               count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'success'),
               count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
               sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0),
               coalesce(sum(output_tokens), 0),
               coalesce(sum(latency_ms) FILTER (WHERE status = 'success'), 0),
               latency_histogram(
                   coalesce(array_agg(latency_ms) FILTER (WHERE status = 'success'), '{}'))
        FROM new_calls GROUP BY 1, 2
    ) g
    LEFT JOIN (
        SELECT agent_id, day, count(*) AS developers FROM daily_set WHERE before = 0
        GROUP BY 1, 2
    ) n USING (agent_id, day)
    ORDER BY 1, 2
    ON CONFLICT (agent_id, day) DO UPDATE SET
        calls = u.calls + excluded.calls,
        billable_calls = u.billable_calls + excluded.billable_calls,
        successful_calls = u.successful_calls + excluded.successful_calls,
        error_calls = u.error_calls + excluded.error_calls, units = u.units + excluded.units,
        revenue = u.revenue + excluded.revenue,
        input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        latency_sum_ms = u.latency_sum_ms + excluded.latency_sum_ms,
        latency_histogram = histogram_add(u.latency_histogram, excluded.latency_histogram),
        developers = u.developers + excluded.developers;

    -- Per creator (all their agents): the developer sets and the distinct-developer counts.
    WITH calls AS (
        SELECT a.creator_id, n.user_id, n.created_at AT TIME ZONE 'UTC' AS utc
        FROM new_calls n JOIN agents a ON a.id = n.agent_id
    ),
    daily_set AS (
        INSERT INTO usage_creator_developers_daily AS p (creator_id, day, user_id, hours)
        SELECT creator_id, utc::date, user_id, bit_or(1 << extract(hour FROM utc)::int)
        FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (creator_id, day, user_id) DO UPDATE SET hours = p.hours | excluded.hours
            WHERE p.hours | excluded.hours <> p.hours
        RETURNING WITH (OLD AS was, NEW AS now)
            now.creator_id, now.day, coalesce(was.hours, 0) AS before, now.hours AS after
    ),
    monthly_set AS (
        INSERT INTO usage_creator_developers_monthly AS p (creator_id, month, user_id, days)
        SELECT creator_id, date_trunc('month', utc)::date, user_id,
               bit_or(1 << (extract(day FROM utc)::int - 1))
        FROM calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (creator_id, month, user_id) DO UPDATE SET days = p.days | excluded.days
            WHERE p.days | excluded.days <> p.days
        RETURNING 1
    ),
    hourly AS (
        INSERT INTO usage_creator_hourly AS u
        SELECT s.creator_id, (s.day + make_interval(hours => h)) AT TIME ZONE 'UTC', count(*)
        FROM daily_set s, generate_series(0, 23) AS h
        WHERE (s.after & ~s.before & (1 << h)) <> 0
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (creator_id, hour) DO UPDATE SET developers = u.developers + excluded.developers
        RETURNING 1
    )
    INSERT INTO usage_creator_daily AS u
    SELECT creator_id, day, count(*) FROM daily_set WHERE before = 0 GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (creator_id, day) DO UPDATE SET developers = u.developers + excluded.developers;

    -- Per developer, key, agent and hour.
    INSERT INTO usage_key_hourly AS u
    SELECT user_id, date_bin('1 hour', created_at, origin), api_key_id, agent_id, count(*),
           count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'success'),
           count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
           sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0),
           coalesce(sum(output_tokens), 0)
    FROM new_calls GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (user_id, hour, api_key_id, agent_id) DO UPDATE SET
        calls = u.calls + excluded.calls,
        billable_calls = u.billable_calls + excluded.billable_calls,
        successful_calls = u.successful_calls + excluded.successful_calls,
        error_calls = u.error_calls + excluded.error_calls, units = u.units + excluded.units,
        spend = u.spend + excluded.spend, input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens;

    -- Accruals, by the hour of ingestion. An hour already settled takes nothing more: the
    -- revenue goes to the first later hour that is still open (the late-arrival rule).
    FOR accrual IN
        SELECT a.creator_id, sum(n.cost_usd) AS gross, count(*) AS calls
        FROM new_calls n JOIN agents a ON a.id = n.agent_id
        WHERE n.billable AND n.cost_usd > 0
        GROUP BY a.creator_id ORDER BY a.creator_id
    LOOP
        bucket := date_bin('1 hour', now(), origin);
        LOOP
            INSERT INTO earnings_accruals AS e (creator_id, accrued_hour, gross, calls)
            VALUES (accrual.creator_id, bucket, accrual.gross, accrual.calls)
            ON CONFLICT (creator_id, accrued_hour) DO UPDATE
                SET gross = e.gross + excluded.gross, calls = e.calls + excluded.calls
                WHERE e.settlement_id IS NULL;
            EXIT WHEN FOUND;
            bucket := bucket + interval '1 hour';
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER call_logs_rollup AFTER INSERT ON call_logs
    REFERENCING NEW TABLE AS new_calls
    FOR EACH STATEMENT EXECUTE FUNCTION call_logs_rollup();

-- Calls logged before this migration, rolled up once (their revenue is already accrued above).
INSERT INTO usage_agent_developers_daily
SELECT agent_id, (created_at AT TIME ZONE 'UTC')::date, user_id,
       bit_or(1 << extract(hour FROM created_at AT TIME ZONE 'UTC')::int)
FROM call_logs GROUP BY 1, 2, 3;
INSERT INTO usage_agent_developers_monthly
SELECT agent_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, user_id,
       bit_or(1 << (extract(day FROM created_at AT TIME ZONE 'UTC')::int - 1))
FROM call_logs GROUP BY 1, 2, 3;
INSERT INTO usage_creator_developers_daily
SELECT a.creator_id, (c.created_at AT TIME ZONE 'UTC')::date, c.user_id,
       bit_or(1 << extract(hour FROM c.created_at AT TIME ZONE 'UTC')::int)
FROM call_logs c JOIN agents a ON a.id = c.agent_id GROUP BY 1, 2, 3;
INSERT INTO usage_creator_developers_monthly
SELECT a.creator_id, date_trunc('month', c.created_at AT TIME ZONE 'UTC')::date, c.user_id,
       bit_or(1 << (extract(day FROM c.created_at AT TIME ZONE 'UTC')::int - 1))
FROM call_logs c JOIN agents a ON a.id = c.agent_id GROUP BY 1, 2, 3;
INSERT INTO usage_agent_hourly
SELECT agent_id, date_bin('1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), count(*),
       count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'success'),
       count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
       sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
       coalesce(sum(latency_ms) FILTER (WHERE status = 'success'), 0),
       latency_histogram(coalesce(array_agg(latency_ms) FILTER (WHERE status = 'success'), '{}')),
       count(DISTINCT user_id)
FROM call_logs GROUP BY 1, 2;
INSERT INTO usage_agent_daily
SELECT agent_id, (created_at AT TIME ZONE 'UTC')::date, count(*),
       count(*) FILTER (WHERE billable), count(*) FILTER (WHERE status = 'success'),
       count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
       sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
       coalesce(sum(latency_ms) FILTER (WHERE status = 'success'), 0),
       latency_histogram(coalesce(array_agg(latency_ms) FILTER (WHERE status = 'success'), '{}')),
       count(DISTINCT user_id)
FROM call_logs GROUP BY 1, 2;
INSERT INTO usage_creator_hourly
SELECT a.creator_id, date_bin('1 hour', c.created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(DISTINCT c.user_id)
FROM call_logs c JOIN agents a ON a.id = c.agent_id GROUP BY 1, 2;
INSERT INTO usage_creator_daily
SELECT a.creator_id, (c.created_at AT TIME ZONE 'UTC')::date, count(DISTINCT c.user_id)
FROM call_logs c JOIN agents a ON a.id = c.agent_id GROUP BY 1, 2;
INSERT INTO usage_key_hourly
SELECT user_id, date_bin('1 hour', created_at, TIMESTAMPTZ '2000-01-01 00:00:00+00'), api_key_id,
       agent_id, count(*), count(*) FILTER (WHERE billable),
       count(*) FILTER (WHERE status = 'success'),
       count(*) FILTER (WHERE status IN ('error', 'timeout', 'blocked')),
       sum(units), sum(cost_usd), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0)
FROM call_logs GROUP BY 1, 2, 3, 4;
