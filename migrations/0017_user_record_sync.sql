-- A user's gateway record in Redis (status, rate tier, and the type, role and token generation
-- that every authenticated request is checked against) is written through by the code that
-- changes the user (control_plane/gateway_sync.py). A change made any other way (plain SQL by
-- an operator, a data migration) left the cached record stale until it expired: a demoted
-- admin's access tokens kept working on the old role and generation. Every change of those
-- columns now queues the user here, in the same transaction, and the worker rewrites the
-- record from the committed row (control_plane/user_record_sync.py), within a second.
CREATE TABLE user_record_sync (
    user_id   UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    queued_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION users_queue_record_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO user_record_sync (user_id) VALUES (NEW.id) ON CONFLICT (user_id) DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_queue_record_sync
    AFTER UPDATE OF status, rate_tier, user_type, admin_role, token_generation ON users
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.rate_tier IS DISTINCT FROM NEW.rate_tier
          OR OLD.user_type IS DISTINCT FROM NEW.user_type
          OR OLD.admin_role IS DISTINCT FROM NEW.admin_role
          OR OLD.token_generation IS DISTINCT FROM NEW.token_generation)
    EXECUTE FUNCTION users_queue_record_sync();
