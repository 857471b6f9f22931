-- API keys of every tenant, global because a request names only its key id and
-- the key decides the tenant. The secret is sealed (AES-256-GCM under the master
-- key), never stored in the clear.
CREATE TABLE broadside.api_keys (
    key_id        text PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES broadside.tenants (id),
    sealed_secret bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE INDEX api_keys_tenant ON broadside.api_keys (tenant_id, created_at);
