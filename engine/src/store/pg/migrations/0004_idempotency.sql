-- Idempotency keys of batch submits (`POST /v1/messages`), global like API keys
-- because the key space is per tenant and small: a retried request with the
-- same key and body gets the stored response instead of a second batch.
CREATE TABLE broadside.idempotency_keys (
    tenant_id    bigint NOT NULL REFERENCES broadside.tenants (id),
    key          text NOT NULL,
    -- SHA-256 of the request body, hex: the same key with another body is refused.
    request_hash text NOT NULL,
    batch_id     bigint NOT NULL,
    -- The response body as first sent, returned byte for byte on a retry.
    response     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
