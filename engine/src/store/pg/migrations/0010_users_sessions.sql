-- People who log in to the web application (tenant users, and operators with no
-- tenant), and their sessions. The authentication state lives in `data` (JSON
-- owned by engine::auth::user); `version` makes updates compare-and-swap.
CREATE TABLE broadside.users (
    name       text PRIMARY KEY,
    tenant_id  bigint REFERENCES broadside.tenants (id),
    version    bigint NOT NULL DEFAULT 1,
    data       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_tenant ON broadside.users (tenant_id, name);

-- Sessions by the SHA-256 of their random id, never the id itself.
CREATE TABLE broadside.sessions (
    id_hash    text PRIMARY KEY,
    user_name  text NOT NULL REFERENCES broadside.users (name),
    data       text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_expiry ON broadside.sessions (expires_at);
