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

-- Access tokens carry the user's `token_generation` (JWT claim `gen`); every authenticated
-- request compares it, with the role, to the user's record (control_plane/auth/tokens.py).
-- Logout, logout everywhere, refresh-token reuse and any change of role bump it, so access
-- tokens already issued stop working at once instead of when they expire. The trigger makes a
-- role change bump it however it is made; the Redis record is written through by the code
-- that changes roles (control_plane/auth/sessions.py).
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION users_role_change_ends_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_type IS DISTINCT FROM OLD.user_type
       OR NEW.admin_role IS DISTINCT FROM OLD.admin_role THEN
        NEW.token_generation := OLD.token_generation + 1;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER users_role_change_ends_tokens
    BEFORE UPDATE OF user_type, admin_role ON users
    FOR EACH ROW EXECUTE FUNCTION users_role_change_ends_tokens();
