-- SFTP accounts of the file exchange, global because an SSH login names only the
-- user and the account decides the tenant. Passwords are argon2 PHC strings;
-- public keys are OpenSSH lines, one per line.
CREATE TABLE broadside.exchange_accounts (
    username      text PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES broadside.tenants (id),
    password_hash text,
    public_keys   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);
