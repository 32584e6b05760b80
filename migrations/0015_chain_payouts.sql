-- On-chain payouts (control_plane/earnings/payouts/onchain.py): a withdrawal paid by the
-- `onchain` provider is a `pay_withdrawal` chain job, sent by the chain outbox to the payout
-- vault (AgentLinkPayouts), keyed on chain by the withdrawal's id (the vault pays an id once).
--
-- The job is written by the provider when the payout worker takes the withdrawal (not by a
-- trigger: a withdrawal is paid through the PayoutProvider seam like any other), once per
-- withdrawal by `UNIQUE (kind, subject_id)`. The outbox writes the outcome in the job's own
-- transaction: confirmed -> the withdrawal `completed` with `tx_hash` and
-- `provider_reference` = the transaction hash; failed (the vault refused it) -> the
-- withdrawal `failed` and its amount back on the available balance (property 32).

ALTER TABLE chain_jobs
    DROP CONSTRAINT chain_jobs_kind_valid,
    ADD CONSTRAINT chain_jobs_kind_valid
        CHECK (kind IN ('mint_agent', 'record_settlement', 'pay_withdrawal'));

-- The control plane's /metrics counts jobs by kind and status (control_plane/chain/
-- job_metrics.py) on every scrape: an index-only scan instead of reading the whole table.
CREATE INDEX chain_jobs_kind_status_idx ON chain_jobs (kind, status);
