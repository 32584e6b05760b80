-- The client's own X-Request-ID for a call, next to the gateway's call id (request_id).
--
-- request_id must be unique per call, so it holds the gateway's call id; a client may send the
-- same X-Request-ID twice, so its value cannot be the key. Support still needs it ("what
-- happened to my request abc-123?"), hence this nullable column: NULL when the client sent
-- none the gateway kept, and for reservations the reaper gave back.
--
-- Nullable and without a default, so adding it is a catalog change only: no rewrite of any
-- partition. Partitions created later (ensure_call_log_partitions copies the parent with
-- LIKE) get the column and its constraint too.
ALTER TABLE call_logs
    ADD COLUMN client_request_id TEXT
        CONSTRAINT call_logs_client_request_id_length
        CHECK (char_length(client_request_id) BETWEEN 1 AND 128);
