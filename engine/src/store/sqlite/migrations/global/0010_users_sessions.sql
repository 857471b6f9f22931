-- People who log in to the web application (tenant users, and operators with no
-- tenant), and their sessions. The authentication state lives in `data` (JSON
-- owned by engine::auth::user); `version` makes updates compare-and-swap.
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    tenant_id  INTEGER,
    version    INTEGER NOT NULL DEFAULT 1,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL -- unix ms
);
CREATE INDEX users_tenant ON users (tenant_id, name);

-- Sessions by the SHA-256 of their random id, never the id itself.
CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL,
    data       TEXT NOT NULL,
    expires_at INTEGER NOT NULL -- unix ms
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
