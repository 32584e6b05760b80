-- On-chain proof (control_plane/chain): the outbox of chain transactions.
--
-- One job per thing to put on chain: `mint_agent` (an agent's ERC-1155 token, on first
-- publication) and `record_settlement` (a settlement's record). Triggers write the job in the
-- same transaction as the business change, so no publication or settlement can commit without
-- its job, whatever code path made it; `UNIQUE (kind, subject_id)` makes a second publication
-- (unpublish, publish again) or a retried transaction a no-op. The worker sends them
-- (control_plane/chain/outbox.py); with the chain off they simply wait.
--
-- Life of a job: `pending` (nothing sent yet, or waiting: chain down, no wallet) -> `sent`
-- (a signed transaction is stored BEFORE it is broadcast: tx_hash, nonce and its exact bytes,
-- so a worker that dies after broadcasting is resolved by looking the hash up, never by
-- signing a second transaction) -> `confirmed` (the receipt is CHAIN_CONFIRMATIONS blocks deep;
-- agents.token_id / token_tx_hash or settlements.tx_hash written in the same transaction) or
-- `failed` (with a reason: the chain refused it for good).

CREATE TABLE chain_jobs (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT NOT NULL
                     CONSTRAINT chain_jobs_kind_valid
                     CHECK (kind IN ('mint_agent', 'record_settlement')),
    -- The agent's or the settlement's id: the chain keys the transaction by it too (the token
    -- id is the agent UUID as an integer, the record's id the settlement UUID as bytes32).
    subject_id       UUID NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CONSTRAINT chain_jobs_status_valid
                     CHECK (status IN ('pending', 'sent', 'confirmed', 'failed')),
    attempts         INT NOT NULL DEFAULT 0
                     CONSTRAINT chain_jobs_attempts_nonnegative CHECK (attempts >= 0),
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- A worker working on the job holds it until then; a dead worker's job is taken over after.
    locked_until     TIMESTAMPTZ,
    last_error       TEXT
                     CONSTRAINT chain_jobs_last_error_length CHECK (char_length(last_error) <= 1000),
    contract_address TEXT
                     CONSTRAINT chain_jobs_contract_address_format
                     CHECK (contract_address ~ '^0x[0-9a-fA-F]{40}$'),
    tx_hash          TEXT
                     CONSTRAINT chain_jobs_tx_hash_format CHECK (tx_hash ~ '^0x[0-9a-fA-F]{64}$'),
    tx_nonce         NUMERIC(78, 0),
    signed_tx        BYTEA,
    block_number     BIGINT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at     TIMESTAMPTZ,
    CONSTRAINT chain_jobs_subject_key UNIQUE (kind, subject_id),
    CONSTRAINT chain_jobs_sent_has_tx
        CHECK (status NOT IN ('sent', 'confirmed') OR tx_hash IS NOT NULL),
    CONSTRAINT chain_jobs_signed_together
        CHECK ((tx_nonce IS NULL) = (signed_tx IS NULL)),
    CONSTRAINT chain_jobs_confirmed_complete
        CHECK (status <> 'confirmed' OR (block_number IS NOT NULL AND confirmed_at IS NOT NULL)),
    CONSTRAINT chain_jobs_failed_has_reason CHECK (status <> 'failed' OR last_error IS NOT NULL)
);
CREATE INDEX chain_jobs_due_idx ON chain_jobs (next_attempt_at) WHERE status IN ('pending', 'sent');
CREATE TRIGGER chain_jobs_set_updated_at BEFORE UPDATE ON chain_jobs
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE FUNCTION chain_jobs_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chain_jobs (kind, subject_id) VALUES (TG_ARGV[0], NEW.id)
    ON CONFLICT (kind, subject_id) DO NOTHING;
    RETURN NULL;
END
$$;

-- First publication: the agent's token is minted to its creator.
CREATE TRIGGER agents_chain_mint
    AFTER INSERT OR UPDATE OF status ON agents
    FOR EACH ROW WHEN (NEW.status = 'active' AND NEW.token_id IS NULL)
    EXECUTE FUNCTION chain_jobs_enqueue('mint_agent');

-- A settled settlement is recorded on chain.
CREATE TRIGGER settlements_chain_record
    AFTER INSERT OR UPDATE OF status ON settlements
    FOR EACH ROW WHEN (NEW.status = 'settled' AND NEW.tx_hash IS NULL)
    EXECUTE FUNCTION chain_jobs_enqueue('record_settlement');

-- What already exists when this runs: every published agent and every settled settlement.
INSERT INTO chain_jobs (kind, subject_id)
SELECT 'mint_agent', id FROM agents WHERE published_at IS NOT NULL AND token_id IS NULL
ON CONFLICT DO NOTHING;
INSERT INTO chain_jobs (kind, subject_id)
SELECT 'record_settlement', id FROM settlements WHERE status = 'settled' AND tx_hash IS NULL
ON CONFLICT DO NOTHING;
