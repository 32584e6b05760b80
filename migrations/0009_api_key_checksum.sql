-- API keys with a checksum (crypto/api_keys.py): keys issued from now on are `ak_` + 32 base62
-- + 6 base62 of their CRC32, so the gateway refuses forged keys before any lookup. Every key
-- that exists when this runs was issued without one: `legacy_format` marks them (the column's
-- first default fills them all with true), and the gateway keeps their hashes in memory to
-- tell a legacy key we issued from a made-up one, again without a lookup. New rows are
-- checksummed keys, hence the default false afterwards.

ALTER TABLE api_keys ADD COLUMN legacy_format BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE api_keys ALTER COLUMN legacy_format SET DEFAULT false;

-- The gateway's start-up read of the legacy hashes (a shrinking set: none are made any more).
CREATE INDEX api_keys_legacy_idx ON api_keys (key_hash) WHERE legacy_format;
