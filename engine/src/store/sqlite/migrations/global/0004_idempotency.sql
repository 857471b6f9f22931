-- Idempotency keys of batch submits (`POST /v1/messages`): a retried request with
-- the same key and body gets the stored response instead of a second batch.
CREATE TABLE idempotency_keys (
    tenant_id    INTEGER NOT NULL REFERENCES tenants (id),
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL, -- SHA-256 of the request body, hex
    batch_id     INTEGER NOT NULL,
    response     TEXT    NOT NULL, -- the response body as first sent
    created_at   INTEGER NOT NULL, -- unix ms
    PRIMARY KEY (tenant_id, key)
);
