-- API keys of every tenant, global because a request names only its key id and
-- the key decides the tenant. The secret is sealed (AES-256-GCM under the master
-- key), never stored in the clear.
CREATE TABLE api_keys (
    key_id        TEXT    PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    sealed_secret BLOB    NOT NULL,
    created_at    INTEGER NOT NULL, -- unix ms
    revoked_at    INTEGER           -- unix ms
);

CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
