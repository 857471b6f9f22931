-- Per-tenant OpenPGP keys (see engine::exchange::pgp): the tenant's own key pair,
-- whose secret half is sealed with the installation's master key, and the
-- customer's public key that exports are encrypted to.
CREATE TABLE broadside.tenant_pgp_keys (
    tenant_id     bigint PRIMARY KEY REFERENCES broadside.tenants (id),
    sealed_secret bytea,
    public_key    text,
    customer_key  text,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
