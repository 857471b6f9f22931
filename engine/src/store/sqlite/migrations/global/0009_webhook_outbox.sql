-- Event webhooks: events waiting to be posted to the tenant's webhook URL,
-- written by the code that records the events and removed once the receiver
-- acknowledged them (at least once).
CREATE TABLE webhook_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL,
    event           TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL, -- unix ms
    created_at      INTEGER NOT NULL  -- unix ms
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (tenant_id, next_attempt_at, id);
