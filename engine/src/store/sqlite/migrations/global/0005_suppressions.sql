-- Per tenant, the addresses never to mail again (unsubscribes, hard bounces,
-- complaints, manual entries). Global so one lookup serves every campaign.
CREATE TABLE suppressions (
    tenant_id  INTEGER NOT NULL,
    email      TEXT    NOT NULL, -- normalized
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL, -- unix ms
    PRIMARY KEY (tenant_id, email)
) WITHOUT ROWID;
