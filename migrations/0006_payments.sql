-- Money in: quota packages bought through Stripe or Coinbase Commerce, credited exactly once.
--
-- 0001 created `payments` and `payment_events`; this file adds what crediting, refunds and
-- reconciliation need (control_plane/payments/):
-- * payments: the package bought, the provider's secondary reference (Stripe's payment
--   intent, Coinbase's charge code) that refunds and disputes point at, the hosted checkout
--   URL, and the refund accounting. Refunded units are taken back from what the developer
--   has left; the part already used is recorded as a loss (lost_units), never as a negative
--   balance.
-- * payment_events: which payment each verified event concerns and what became of it.
--   `deferred` events (e.g. a refund that arrived before the payment completed) are retried.
-- * quotas.adjust_seq + quota_adjustments: every change the control plane makes to a
--   balance (purchase, refund, dispute, manual credit) is one numbered row, written in the
--   Postgres transaction that makes it. The Redis balance is then adjusted by a script that
--   applies each row at most once (common/lua/adjust_quota.lua) and a reconciler retries rows
--   not yet applied (Redis down, process killed). A Redis balance loaded from Postgres
--   remembers the adjust_seq it was loaded at, so a row the load already included is never
--   applied on top of it.

-- --- payments ---------------------------------------------------------------------------------

ALTER TABLE payments
    ADD COLUMN package        TEXT
        CONSTRAINT payments_package_format CHECK (package ~ '^[a-z][a-z0-9_-]{0,31}$'),
    ADD COLUMN currency       TEXT NOT NULL DEFAULT 'usd'
        CONSTRAINT payments_currency_format CHECK (currency ~ '^[a-z]{3}$'),
    ADD COLUMN provider_ref   TEXT
        CONSTRAINT payments_provider_ref_length CHECK (char_length(provider_ref) BETWEEN 1 AND 255),
    ADD COLUMN checkout_url   TEXT
        CONSTRAINT payments_checkout_url_http
        CHECK (char_length(checkout_url) <= 4096 AND checkout_url ~ '^https?://'),
    ADD COLUMN refunded_usd   NUMERIC(12, 2) NOT NULL DEFAULT 0
        CONSTRAINT payments_refunded_usd_range CHECK (refunded_usd >= 0),
    ADD COLUMN refunded_units BIGINT NOT NULL DEFAULT 0
        CONSTRAINT payments_refunded_units_nonnegative CHECK (refunded_units >= 0),
    ADD COLUMN lost_units     BIGINT NOT NULL DEFAULT 0
        CONSTRAINT payments_lost_units_nonnegative CHECK (lost_units >= 0),
    ADD COLUMN failure_reason TEXT
        CONSTRAINT payments_failure_reason_length CHECK (char_length(failure_reason) <= 500),
    ADD CONSTRAINT payments_refund_within_amount CHECK (refunded_usd <= amount_usd),
    ADD CONSTRAINT payments_refund_within_units CHECK (refunded_units <= quota_purchased),
    ADD CONSTRAINT payments_loss_within_refund CHECK (lost_units <= refunded_units);

-- expired: the checkout was abandoned; disputed: the payer's bank pulled the money back.
ALTER TABLE payments DROP CONSTRAINT payments_status_valid;
ALTER TABLE payments ADD CONSTRAINT payments_status_valid
    CHECK (status IN ('pending', 'completed', 'failed', 'expired', 'refunded', 'disputed'));
ALTER TABLE payments DROP CONSTRAINT payments_completed_has_completed_at;
ALTER TABLE payments ADD CONSTRAINT payments_completed_has_completed_at
    CHECK (status NOT IN ('completed', 'refunded', 'disputed') OR completed_at IS NOT NULL);

-- Refund and dispute events name the payment intent (Stripe) or charge code (Coinbase).
CREATE UNIQUE INDEX payments_provider_ref_key ON payments (payment_method, provider_ref)
    WHERE provider_ref IS NOT NULL;
-- The admin list filters by status and provider, newest first.
CREATE INDEX payments_status_idx ON payments (status, created_at DESC);

-- --- payment_events ---------------------------------------------------------------------------

ALTER TABLE payment_events
    ADD COLUMN payment_id   UUID REFERENCES payments (id) ON DELETE RESTRICT,
    -- credited / failed / expired / refunded / disputed: it changed the payment;
    -- no_change: verified but nothing to do (already in that state, an event type we do not
    -- act on); ignored: about a payment that is not ours; deferred: not applicable yet, retried.
    ADD COLUMN outcome      TEXT NOT NULL DEFAULT 'no_change'
        CONSTRAINT payment_events_outcome_valid CHECK (outcome IN (
            'credited', 'failed', 'expired', 'refunded', 'disputed', 'no_change', 'ignored',
            'deferred')),
    ADD COLUMN attempts     INT NOT NULL DEFAULT 1
        CONSTRAINT payment_events_attempts_positive CHECK (attempts >= 1),
    ADD COLUMN processed_at TIMESTAMPTZ;
CREATE INDEX payment_events_payment_idx ON payment_events (payment_id, received_at)
    WHERE payment_id IS NOT NULL;
CREATE INDEX payment_events_deferred_idx ON payment_events (received_at)
    WHERE outcome = 'deferred';

-- --- quota adjustments ------------------------------------------------------------------------

ALTER TABLE quotas
    ADD COLUMN adjust_seq BIGINT NOT NULL DEFAULT 0
        CONSTRAINT quotas_adjust_seq_nonnegative CHECK (adjust_seq >= 0);

CREATE TABLE quota_adjustments (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- RESTRICT: a money trail outlives the account (0001's deletion policy).
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    payment_id  UUID REFERENCES payments (id) ON DELETE RESTRICT,
    kind        TEXT NOT NULL
                CONSTRAINT quota_adjustments_kind_valid
                CHECK (kind IN ('purchase', 'refund', 'dispute', 'manual_credit')),
    -- Units the adjustment is about: bought, to take back, or granted (always positive).
    units       BIGINT NOT NULL CONSTRAINT quota_adjustments_units_positive CHECK (units > 0),
    -- What Postgres applied to quotas.total_quota when the row was written: +units for a
    -- credit, -(what was left, at most units) for a take-back.
    planned     BIGINT NOT NULL,
    -- What the live Redis balance actually moved by; NULL until applied. A take-back can find
    -- less left in Redis than Postgres knew (usage not yet ingested): the difference is then
    -- given back to total_quota and counted as lost.
    applied     BIGINT,
    seq         BIGINT NOT NULL CONSTRAINT quota_adjustments_seq_positive CHECK (seq >= 1),
    actor_id    UUID,  -- the admin, for a manual credit (no FK: like audit_log)
    reason      TEXT CONSTRAINT quota_adjustments_reason_length CHECK (char_length(reason) <= 500),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    synced_at   TIMESTAMPTZ,
    CONSTRAINT quota_adjustments_user_seq_key UNIQUE (user_id, seq),
    CONSTRAINT quota_adjustments_sign CHECK (
        CASE WHEN kind IN ('purchase', 'manual_credit') THEN planned = units
             ELSE planned BETWEEN -units AND 0 END),
    CONSTRAINT quota_adjustments_applied_sign CHECK (
        applied IS NULL OR (planned >= 0 AND applied = planned)
        OR (planned < 0 AND applied BETWEEN planned AND 0)),
    CONSTRAINT quota_adjustments_synced_is_applied CHECK ((synced_at IS NULL) = (applied IS NULL)),
    CONSTRAINT quota_adjustments_payment_kinds
        CHECK ((payment_id IS NULL) = (kind = 'manual_credit'))
);
-- Exactly once: a payment is credited by one row, whatever its webhooks do.
CREATE UNIQUE INDEX quota_adjustments_one_purchase_key ON quota_adjustments (payment_id)
    WHERE kind = 'purchase';
CREATE INDEX quota_adjustments_payment_idx ON quota_adjustments (payment_id)
    WHERE payment_id IS NOT NULL;
-- The reconciler's scan: rows whose Redis step has not happened yet.
CREATE INDEX quota_adjustments_unsynced_idx ON quota_adjustments (created_at)
    WHERE synced_at IS NULL;
