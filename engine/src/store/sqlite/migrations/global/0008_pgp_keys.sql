-- Per-tenant OpenPGP keys (see engine::exchange::pgp): the tenant's own key pair,
-- whose secret half is sealed with the installation's master key, and the
-- customer's public key that exports are encrypted to.
CREATE TABLE tenant_pgp_keys (
    tenant_id     INTEGER PRIMARY KEY,
    sealed_secret BLOB,
    public_key    TEXT,
    customer_key  TEXT,
    updated_at    INTEGER NOT NULL -- unix ms
);
