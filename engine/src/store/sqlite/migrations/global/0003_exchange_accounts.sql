-- SFTP accounts of the file exchange, global because an SSH login names only the
-- user and the account decides the tenant. Passwords are argon2 PHC strings;
-- public keys are OpenSSH lines, one per line.
CREATE TABLE exchange_accounts (
    username      TEXT    PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    password_hash TEXT,
    public_keys   TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL -- unix ms
);
