-- Global tables of an embedded installation: the tenants, and the allocator that makes
-- campaign ids unique across tenants (each tenant file keeps its own campaigns).
CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL  -- unix ms
);

-- AUTOINCREMENT: an id is never handed out twice, even after the highest is deleted.
CREATE TABLE campaign_ids (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL  -- unix ms
);
