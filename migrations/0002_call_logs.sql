-- One row per gateway call, written by the worker from the Redis usage stream.
--
-- Partitioned by month on created_at: the table grows without bound, every read is bounded by
-- a time range (analytics, settlements) and so touches only the partitions it needs, and
-- retention is DETACH/DROP of a whole partition instead of a long DELETE and vacuum.
--
-- No foreign keys, on purpose: this is the highest-volume insert in the system, the history
-- must outlive agents and keys, and the worker must never be stuck behind an event it cannot
-- write (a foreign key failure would turn one deleted draft into a poison message).
CREATE TABLE call_logs (
    id             UUID NOT NULL DEFAULT gen_random_uuid(),
    agent_id       UUID NOT NULL,
    -- The version that served the call (the admission script returns it), so a call can be
    -- traced to the exact config in agent_versions.
    agent_version  INT NOT NULL
                   CONSTRAINT call_logs_agent_version_positive CHECK (agent_version >= 1),
    api_key_id     UUID NOT NULL,
    user_id        UUID NOT NULL,
    -- The gateway's own id for the call, unique per call. Not the client's X-Request-ID as
    -- such: a client may repeat that, and two calls must never collapse into one row.
    request_id     TEXT NOT NULL
                   CONSTRAINT call_logs_request_id_length
                   CHECK (char_length(request_id) BETWEEN 1 AND 128),
    -- Quota units charged for the call.
    units          BIGINT NOT NULL DEFAULT 0
                   CONSTRAINT call_logs_units_nonnegative CHECK (units >= 0),
    -- The provider answered 2xx and the answer completed (DESIGN.md). A client that hung up
    -- after that is still billable, and logged as 'cancelled'.
    billable       BOOLEAN NOT NULL,
    input_tokens   INT CONSTRAINT call_logs_input_tokens_nonnegative CHECK (input_tokens >= 0),
    output_tokens  INT CONSTRAINT call_logs_output_tokens_nonnegative CHECK (output_tokens >= 0),
    latency_ms     INT CONSTRAINT call_logs_latency_nonnegative CHECK (latency_ms >= 0),
    status         TEXT NOT NULL
                   CONSTRAINT call_logs_status_valid
                   CHECK (status IN ('success', 'error', 'timeout', 'blocked', 'cancelled')),
    error_code     TEXT
                   CONSTRAINT call_logs_error_code_length CHECK (char_length(error_code) <= 64),
    cost_usd       NUMERIC(12, 6) NOT NULL DEFAULT 0
                   CONSTRAINT call_logs_cost_nonnegative CHECK (cost_usd >= 0),
    -- The usage event's own timestamp, never the time of insertion, and so deliberately
    -- without a DEFAULT: see the idempotency note below.
    created_at     TIMESTAMPTZ NOT NULL,
    -- Seed property 4: a call that is not billable charges nothing.
    CONSTRAINT call_logs_unbillable_costs_no_units CHECK (billable OR units = 0),
    CONSTRAINT call_logs_billable_status CHECK (NOT billable OR status IN ('success', 'cancelled')),
    -- Every unique constraint on a partitioned table must include the partition key.
    PRIMARY KEY (id, created_at),
    -- Idempotent ingestion. The Redis stream delivers at least once: the worker may crash
    -- after INSERT and before XACK, and the event is then delivered again. Because created_at
    -- is taken from the event itself (not now()), a redelivered event carries the same
    -- (request_id, created_at) pair as its first delivery, lands in the same partition, and
    -- INSERT ... ON CONFLICT (request_id, created_at) DO NOTHING turns it into a no-op. A
    -- bare UNIQUE (request_id) is impossible here: Postgres only enforces uniqueness within a
    -- partition, so the key must contain created_at.
    CONSTRAINT call_logs_request_key UNIQUE (request_id, created_at)
) PARTITION BY RANGE (created_at);

-- Declared on the parent, so every partition, present and future, gets them.
CREATE INDEX call_logs_agent_idx ON call_logs (agent_id, created_at);
CREATE INDEX call_logs_user_idx ON call_logs (user_id, created_at);

-- Creates the monthly partitions call_logs_YYYY_MM for `months` months from the month of
-- `start_month`, skipping those that exist; returns how many it created. The worker calls it
-- ahead of time (there is no DEFAULT partition: an event for a month without a partition
-- fails loudly and stays in the stream, rather than piling up in a catch-all that would
-- later block creating that month's partition).
--
-- Months are UTC months whatever the session's TimeZone: the bounds are written with an
-- explicit +00 offset.
--
-- Each partition is created detached and then attached. ATTACH PARTITION needs only a SHARE
-- UPDATE EXCLUSIVE lock on call_logs, which does not conflict with the worker's inserts or
-- with long analytics reads; CREATE TABLE ... PARTITION OF would need ACCESS EXCLUSIVE, wait
-- behind every running read, and stall all ingestion queued behind it.
CREATE FUNCTION ensure_call_log_partitions(start_month date, months int)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    parent          regclass := 'call_logs'::regclass;
    parent_schema   name;
    first_month     date;
    month_start     date;
    partition_name  text;
    existing        regclass;
    created         int := 0;
BEGIN
    IF start_month IS NULL OR months IS NULL OR months NOT BETWEEN 0 AND 120 THEN
        RAISE EXCEPTION 'ensure_call_log_partitions(%, %): need a month and 0..120 months',
            start_month, months
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT relnamespace::regnamespace::name INTO parent_schema FROM pg_class WHERE oid = parent;
    first_month := date_trunc('month', start_month::timestamp)::date;

    -- Serialise concurrent callers (two workers starting together): without it both could
    -- see a month missing and the second CREATE TABLE would fail. Released at commit.
    PERFORM pg_advisory_xact_lock(4703812221946383436);  -- "AGLKCALL"

    FOR i IN 0 .. months - 1 LOOP
        month_start := (first_month + make_interval(months => i))::date;
        partition_name := 'call_logs_' || to_char(month_start, 'YYYY_MM');
        existing := to_regclass(format('%I.%I', parent_schema, partition_name));
        IF existing IS NOT NULL THEN
            -- A table by that name that is not our partition (say, one detached for
            -- archiving) must not be mistaken for one: inserts for its month would fail.
            IF NOT EXISTS (
                SELECT 1 FROM pg_inherits WHERE inhrelid = existing AND inhparent = parent
            ) THEN
                RAISE EXCEPTION '%.% exists but is not a partition of call_logs',
                    parent_schema, partition_name
                    USING ERRCODE = 'duplicate_table';
            END IF;
            CONTINUE;
        END IF;
        EXECUTE format(
            'CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
            parent_schema, partition_name, parent
        );
        EXECUTE format(
            'ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
            parent, parent_schema, partition_name,
            to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char((month_start + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00'
        );
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- The previous month too: events buffered in Redis across the month boundary (or a worker
-- that was down over it) still have somewhere to land.
SELECT ensure_call_log_partitions(
    (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date, 4
);
