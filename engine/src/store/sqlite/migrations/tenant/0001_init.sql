-- One tenant's file. Per campaign, the import adds c<id>_recipients and c<id>_events.
CREATE TABLE campaigns (
    id         INTEGER PRIMARY KEY,  -- from the global campaign_ids allocator
    name       TEXT    NOT NULL UNIQUE,
    status     TEXT    NOT NULL DEFAULT 'draft',
    columns    TEXT    NOT NULL DEFAULT '[]',  -- JSON array of the import's column names
    imported   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,  -- unix ms
    pending    INTEGER NOT NULL DEFAULT 0,
    deferred   INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    bounced    INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    suppressed INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL,
    source        TEXT    NOT NULL,
    columns       TEXT    NOT NULL,  -- JSON array
    rows_loaded   INTEGER NOT NULL,
    rows_rejected INTEGER NOT NULL,
    committed_at  INTEGER NOT NULL  -- unix ms
);
CREATE INDEX imports_campaign ON imports (campaign_id);
